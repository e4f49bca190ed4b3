"""IAM documents, parsed from the JSON the program registered: least privilege and a pinned IRSA trust."""

from __future__ import annotations

import json

import pytest

from infra.iam import KINESIS_READ_ACTIONS, bedrock_statements, dataflow_policy
from tests.infra.mocks import ACCOUNT, OIDC_ISSUER

STREAM_ARN = f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/reviewstream-dev-reviews"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/key-reviewstream-dev-stream"
DOMAIN_ARN = f"arn:aws:es:us-east-1:{ACCOUNT}:domain/reviewstream-dev-search"
MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"


def statements(doc: dict) -> list[dict]:
    found = doc["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


# Actions with no resource type: IAM accepts only "*" for them (Service Authorization Reference).
RESOURCELESS = {"bedrock:ListModelInvocationJobs"}


def assert_no_wildcards(doc: dict) -> None:
    for st in statements(doc):
        for action in as_list(st["Action"]):
            assert action != "*" and not action.endswith(":*"), action
            assert "*" not in action, f"wildcard action {action}"
        for resource in as_list(st["Resource"]):
            assert resource != "*" or set(as_list(st["Action"])) <= RESOURCELESS, st


def dataflow_doc(mocks) -> dict:
    policy = mocks.named("aws:iam/rolePolicy:RolePolicy", "reviewstream-dev-dataflow").inputs
    assert policy["role"] == "reviewstream-dev-dataflow"
    return json.loads(policy["policy"])


def test_dataflow_policy_has_no_wildcards(stack) -> None:
    _, mocks = stack
    assert_no_wildcards(dataflow_doc(mocks))


def test_dataflow_policy_grants_exactly_what_the_dataflow_uses(stack) -> None:
    _, mocks = stack
    by_sid = {st["Sid"]: st for st in statements(dataflow_doc(mocks))}
    assert set(by_sid) == {
        "ReadStream", "DecryptStream", "InvokeProfile", "InvokeProfileModel", "ReadModelLifecycle", "WriteSearch",
        "RecoveryPartitions", "RecoveryBucket", "BatchJobFiles", "BatchJobFilesList", "CreateBatchJobs",
        "FollowBatchJobs", "ListBatchJobs", "PassBatchRole",
    }  # fmt: skip
    assert by_sid["ReadStream"]["Resource"] == STREAM_ARN
    assert set(as_list(by_sid["ReadStream"]["Action"])) == set(KINESIS_READ_ACTIONS)
    assert not any(a in KINESIS_READ_ACTIONS for a in ("kinesis:ListStreams", "kinesis:PutRecords"))
    assert by_sid["DecryptStream"]["Action"] == "kms:Decrypt"
    assert by_sid["DecryptStream"]["Resource"] == KEY_ARN
    profile = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.{MODEL}"
    assert by_sid["InvokeProfile"] == {
        "Sid": "InvokeProfile", "Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": profile,
    }  # fmt: skip
    assert by_sid["InvokeProfileModel"]["Action"] == "bedrock:InvokeModel"
    assert by_sid["InvokeProfileModel"]["Resource"] == [f"arn:aws:bedrock:*::foundation-model/{MODEL}"]
    assert by_sid["InvokeProfileModel"]["Condition"] == {"StringEquals": {"bedrock:InferenceProfileArn": profile}}
    assert by_sid["ReadModelLifecycle"] == {
        "Sid": "ReadModelLifecycle", "Effect": "Allow", "Action": "bedrock:GetFoundationModel",
        "Resource": f"arn:aws:bedrock:us-east-1::foundation-model/{MODEL}",
    }  # fmt: skip
    assert by_sid["WriteSearch"]["Resource"] == f"{DOMAIN_ARN}/*"
    assert all(a.startswith("es:ESHttp") for a in by_sid["WriteSearch"]["Action"])
    assert all(st["Effect"] == "Allow" for st in by_sid.values())
    bucket = "arn:aws:s3:::reviewstream-dev-recovery-abc123"
    assert by_sid["RecoveryPartitions"]["Resource"] == f"{bucket}/reviewstream-dataflow/*"
    assert sorted(by_sid["RecoveryPartitions"]["Action"]) == ["s3:GetObject", "s3:PutObject"]
    assert by_sid["RecoveryBucket"] == {
        "Sid": "RecoveryBucket", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket,
    }  # fmt: skip


def test_irsa_trust_names_the_service_account_and_audience(stack) -> None:
    _, mocks = stack
    role = mocks.named("aws:iam/role:Role", "reviewstream-dev-dataflow").inputs
    (st,) = statements(json.loads(role["assumeRolePolicy"]))
    assert st["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert st["Principal"] == {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{OIDC_ISSUER}"}
    assert st["Condition"] == {
        "StringEquals": {
            f"{OIDC_ISSUER}:sub": "system:serviceaccount:reviewstream:dataflow",
            f"{OIDC_ISSUER}:aud": "sts.amazonaws.com",
        }
    }


def test_domain_access_policy_names_only_dataflow_bastion_and_admin(stack) -> None:
    _, mocks = stack
    doc = json.loads(mocks.one("aws:opensearch/domainPolicy:DomainPolicy").inputs["accessPolicies"])
    (st,) = statements(doc)
    roles = sorted(f"arn:aws:iam::{ACCOUNT}:role/reviewstream-dev-{r}" for r in ("dataflow", "bastion", "search-admin"))
    assert sorted(st["Principal"]["AWS"]) == roles
    assert st["Action"] == "es:ESHttp*"
    assert st["Resource"] == f"{DOMAIN_ARN}/*"


def test_every_inline_policy_and_trust_is_narrow(stack) -> None:
    _, mocks = stack
    for policy in mocks.of_type("aws:iam/rolePolicy:RolePolicy"):
        assert_no_wildcards(json.loads(policy.inputs["policy"]))
    for role in mocks.of_type("aws:iam/role:Role"):
        for st in statements(json.loads(role.inputs["assumeRolePolicy"])):
            assert st["Principal"] != "*" and st["Principal"].get("AWS") != "*"


def test_wildcard_check_would_catch_a_broad_policy() -> None:
    broad = dataflow_policy(
        STREAM_ARN, KEY_ARN, [{"Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": "*"}], DOMAIN_ARN
    )
    with pytest.raises(AssertionError):
        assert_no_wildcards(broad)
    broad = dataflow_policy(STREAM_ARN, KEY_ARN, [], DOMAIN_ARN)
    broad["Statement"][0]["Action"] = "kinesis:*"
    with pytest.raises(AssertionError):
        assert_no_wildcards(broad)


def invoke_statements(model_id: str, region: str = "us-east-1", regions: tuple[str, ...] = ()) -> dict[str, dict]:
    return {st["Sid"]: st for st in bedrock_statements(model_id, region, ACCOUNT, regions)}


@pytest.mark.parametrize(
    "prefix, region",
    [
        ("us", "us-east-1"), ("eu", "eu-west-1"), ("apac", "ap-northeast-1"), ("global", "us-east-1"),
        ("jp", "ap-northeast-1"), ("au", "ap-southeast-2"), ("ca", "ca-central-1"), ("us-gov", "us-gov-west-1"),
    ],
)  # fmt: skip
def test_every_inference_profile_prefix_gets_the_documented_pattern(prefix: str, region: str) -> None:
    """The profile ARN, plus its base model in any region but only through that profile (no region list)."""
    partition = "aws-us-gov" if prefix == "us-gov" else "aws"
    by_sid = invoke_statements(f"{prefix}.{MODEL}", region)
    profile = f"arn:{partition}:bedrock:{region}:{ACCOUNT}:inference-profile/{prefix}.{MODEL}"
    assert set(by_sid) == {"InvokeProfile", "InvokeProfileModel", "ReadModelLifecycle"}
    assert by_sid["InvokeProfile"]["Resource"] == profile
    model = by_sid["InvokeProfileModel"]
    assert model["Resource"] == [f"arn:{partition}:bedrock:*::foundation-model/{MODEL}"]
    assert model["Condition"] == {"StringEquals": {"bedrock:InferenceProfileArn": profile}}
    lifecycle = by_sid["ReadModelLifecycle"]
    assert lifecycle["Action"] == "bedrock:GetFoundationModel"
    assert lifecycle["Resource"] == f"arn:{partition}:bedrock:{region}::foundation-model/{MODEL}"
    assert_no_wildcards({"Statement": list(by_sid.values())})


def test_plain_model_id_keeps_its_single_region_arn() -> None:
    by_sid = invoke_statements(MODEL, "eu-west-1")
    assert by_sid == {
        "InvokeModel": {
            "Sid": "InvokeModel", "Effect": "Allow", "Action": "bedrock:InvokeModel",
            "Resource": [f"arn:aws:bedrock:eu-west-1::foundation-model/{MODEL}"],
        },
        "ReadModelLifecycle": {
            "Sid": "ReadModelLifecycle", "Effect": "Allow", "Action": "bedrock:GetFoundationModel",
            "Resource": f"arn:aws:bedrock:eu-west-1::foundation-model/{MODEL}",
        },
    }  # fmt: skip
    assert "Condition" not in by_sid["InvokeModel"]


def test_profile_models_may_be_pinned_to_regions() -> None:
    model = invoke_statements(f"eu.{MODEL}", "eu-west-1", ("eu-west-1", "eu-central-1"))["InvokeProfileModel"]
    assert model["Resource"] == [
        f"arn:aws:bedrock:eu-west-1::foundation-model/{MODEL}",
        f"arn:aws:bedrock:eu-central-1::foundation-model/{MODEL}",
    ]
