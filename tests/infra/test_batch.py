"""Bedrock batch inference infra (infra/batch.py), from what the program registered under Pulumi mocks: the role
Bedrock assumes, its prefix scoping, the dataflow's job permissions and PassRole, the bucket and its lifecycle,
the outputs and the pods' environment."""

from __future__ import annotations

import json

import pytest

from dataflow.settings import load_settings
from infra import program
from infra.batch import PREFIX
from infra.config import StackConfig
from tests.infra.conftest import resolve, run
from tests.infra.mocks import ACCOUNT, RecordingMocks
from tests.infra.test_iam import MODEL, as_list, assert_no_wildcards, dataflow_doc, statements
from tests.infra.test_workload import env_of, statefulset

BUCKET = "arn:aws:s3:::reviewstream-dev-batch-abc123"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/reviewstream-dev-bedrock-batch"
JOBS = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:model-invocation-job/*"
PROFILE = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.{MODEL}"


def batch_role(mocks: RecordingMocks) -> tuple[dict, dict]:
    role = mocks.named("aws:iam/role:Role", "reviewstream-dev-bedrock-batch").inputs
    policy = mocks.named("aws:iam/rolePolicy:RolePolicy", "reviewstream-dev-bedrock-batch").inputs
    assert policy["role"] == "reviewstream-dev-bedrock-batch"
    return json.loads(role["assumeRolePolicy"]), json.loads(policy["policy"])


def test_only_bedrock_may_assume_the_batch_role_for_our_accounts_jobs(stack) -> None:
    _, mocks = stack
    trust, _ = batch_role(mocks)
    (st,) = statements(trust)
    assert st["Principal"] == {"Service": "bedrock.amazonaws.com"} and st["Action"] == "sts:AssumeRole"
    assert st["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnEquals": {"aws:SourceArn": JOBS},
    }


def test_the_batch_role_reads_only_inputs_and_writes_only_outputs_in_our_account(stack) -> None:
    _, mocks = stack
    _, policy = batch_role(mocks)
    assert_no_wildcards(policy)
    by_sid = {st["Sid"]: st for st in statements(policy)}
    assert set(by_sid) == {"ReadJobInput", "WriteJobOutput", "ListJobFiles", "InvokeProfile", "InvokeProfileModel"}
    assert (by_sid["ReadJobInput"]["Action"], by_sid["ReadJobInput"]["Resource"]) == (
        "s3:GetObject",
        f"{BUCKET}/{PREFIX}/*/input/*",
    )
    assert (by_sid["WriteJobOutput"]["Action"], by_sid["WriteJobOutput"]["Resource"]) == (
        "s3:PutObject",
        f"{BUCKET}/{PREFIX}/*/output/*",
    )
    assert by_sid["ListJobFiles"]["Resource"] == BUCKET
    assert by_sid["ListJobFiles"]["Condition"]["StringLike"] == {"s3:prefix": [f"{PREFIX}/*"]}
    for sid in ("ReadJobInput", "WriteJobOutput", "ListJobFiles"):
        assert by_sid[sid]["Condition"]["StringEquals"] == {"aws:ResourceAccount": ACCOUNT}
    s3_actions = {a for st in by_sid.values() for a in as_list(st["Action"]) if a.startswith("s3:")}
    assert s3_actions == {"s3:GetObject", "s3:PutObject", "s3:ListBucket"}  # no delete, no bucket settings
    # The model only through the profile, as the live flow calls it.
    assert by_sid["InvokeProfile"]["Resource"] == PROFILE
    assert by_sid["InvokeProfileModel"]["Condition"] == {"StringEquals": {"bedrock:InferenceProfileArn": PROFILE}}


def test_the_dataflow_creates_follows_and_stops_jobs_and_passes_only_the_batch_role_to_bedrock(stack) -> None:
    _, mocks = stack
    by_sid = {st["Sid"]: st for st in statements(dataflow_doc(mocks))}
    assert by_sid["CreateBatchJobs"]["Action"] == "bedrock:CreateModelInvocationJob"
    assert set(by_sid["CreateBatchJobs"]["Resource"]) == {JOBS, PROFILE, f"arn:aws:bedrock:*::foundation-model/{MODEL}"}
    follow = by_sid["FollowBatchJobs"]
    assert set(follow["Action"]) == {
        "bedrock:GetModelInvocationJob", "bedrock:StopModelInvocationJob", "bedrock:TagResource",
        "bedrock:ListTagsForResource",
    }  # fmt: skip
    assert follow["Resource"] == JOBS
    assert by_sid["ListBatchJobs"] == {
        "Sid": "ListBatchJobs", "Effect": "Allow", "Action": "bedrock:ListModelInvocationJobs", "Resource": "*",
    }  # fmt: skip
    assert by_sid["PassBatchRole"] == {
        "Sid": "PassBatchRole",
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": ROLE,
        "Condition": {"StringEquals": {"iam:PassedToService": "bedrock.amazonaws.com"}},
    }
    passes = [st for st in by_sid.values() if "iam:PassRole" in as_list(st["Action"])]
    assert passes == [by_sid["PassBatchRole"]]
    assert by_sid["BatchJobFiles"]["Resource"] == f"{BUCKET}/{PREFIX}/*"
    assert sorted(by_sid["BatchJobFiles"]["Action"]) == ["s3:GetObject", "s3:PutObject"]
    assert by_sid["BatchJobFilesList"]["Condition"] == {"StringLike": {"s3:prefix": [f"{PREFIX}/*"]}}
    # The recovery bucket's statements stay on the recovery bucket: the two never share a grant.
    recovery = [st for sid, st in by_sid.items() if sid.startswith("Recovery")]
    assert all("-batch-" not in r for st in recovery for r in as_list(st["Resource"]))


def test_job_files_bucket_is_private_encrypted_unversioned_and_expires_job_files(stack) -> None:
    _, mocks = stack
    name = "reviewstream-dev-batch"
    block = mocks.named("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", name).inputs
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls"))
    sse_type = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    rule = mocks.named(sse_type, name).inputs["rules"][0]["applyServerSideEncryptionByDefault"]
    assert rule == {"sseAlgorithm": "AES256"}  # S3-managed keys: no KMS key for the batch role to be granted
    (deny,) = json.loads(mocks.named("aws:s3/bucketPolicy:BucketPolicy", name).inputs["policy"])["Statement"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert [v.name for v in mocks.of_type("aws:s3/bucketVersioning:BucketVersioning")] == ["reviewstream-dev-recovery"]
    (expire,) = mocks.named("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", name).inputs["rules"]
    assert expire["status"] == "Enabled" and expire["filter"] == {"prefix": f"{PREFIX}/"}
    assert expire["expiration"] == {"days": 14}
    assert expire["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 1}


def test_the_expiry_is_settable_and_never_shorter_than_a_job(mocks: RecordingMocks) -> None:
    run(lambda: program.build(StackConfig(batch_job_files_expire_days=30)))
    lifecycle_type = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
    lifecycle = mocks.named(lifecycle_type, "reviewstream-dev-batch")
    assert lifecycle.inputs["rules"][0]["expiration"] == {"days": 30}
    with pytest.raises(ValueError, match="batchJobFilesExpireDays=3 is under 8"):
        run(lambda: program.build(StackConfig(batch_job_files_expire_days=3)))


def test_outputs_and_the_pods_environment_name_the_role_and_the_job_url(stack) -> None:
    built, mocks = stack
    outputs = built.outputs()
    assert resolve(outputs["batchRoleArn"]) == ROLE
    url = resolve(outputs["backfillJobUrl"])
    assert url == f"s3://reviewstream-dev-batch-abc123/{PREFIX}"
    assert resolve(outputs["enrichmentGeneration"]) == 0
    env = env_of(statefulset(mocks)["spec"]["template"]["spec"]["containers"][0])
    assert (env["BACKFILL_JOB_URL"], env["BACKFILL_ROLE_ARN"]) == (url, ROLE)
    assert load_settings({"ENRICHMENT_GENERATION": env["ENRICHMENT_GENERATION"]}).enrichment_generation == 0


def test_the_live_flows_generation_is_a_stack_setting(mocks: RecordingMocks) -> None:
    run(lambda: program.build(StackConfig(enrichment_generation=3)))
    env = env_of(statefulset(mocks)["spec"]["template"]["spec"]["containers"][0])
    assert env["ENRICHMENT_GENERATION"] == "3"
    with pytest.raises(ValueError, match="enrichmentGeneration must be between 0 and 1000000"):
        StackConfig(enrichment_generation=-1)
