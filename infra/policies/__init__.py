"""Policy pack: the project's security bars as `pulumi-policy` resource validations.

Kept importable (no PolicyPack is started here) so the unit tests can run each policy's `validate` on
every resource of the mocked program; `__main__.py` serves them to `pulumi preview --policy-pack`.
Props are the engine's camelCase inputs. A value that is not known yet (preview) is not judged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from pulumi_policy import EnforcementLevel, ResourceValidationArgs, ResourceValidationPolicy

from infra.versions import support_problem

Report = Callable[[str, str | None], None]
Props = Mapping[str, Any]

ALLOWED_TLS_POLICIES = ("Policy-Min-TLS-1-2-PFS-2023-10", "Policy-Min-TLS-1-2-2019-07")
OPEN_CIDRS = ("0.0.0.0/0", "::/0")
NO_INGRESS_TAG = "reviewstream:no-ingress"
WORKLOAD_KINDS = (
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:batch/v1:Job",
)


def _get(props: Props | None, *path: str) -> Any:
    value: Any = props
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _policy_doc(value: Any) -> Mapping[str, Any] | None:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, Mapping) else None
    return None


def opensearch_domain(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type != "aws:opensearch/domain:Domain":
        return
    p = args.props
    if _get(p, "domainEndpointOptions", "enforceHttps") is not True:
        report("OpenSearch domain must enforce HTTPS", None)
    if _get(p, "domainEndpointOptions", "tlsSecurityPolicy") not in ALLOWED_TLS_POLICIES:
        report(f"OpenSearch TLS policy must be one of {ALLOWED_TLS_POLICIES}", None)
    if _get(p, "encryptAtRest", "enabled") is not True:
        report("OpenSearch domain must be encrypted at rest", None)
    if _get(p, "nodeToNodeEncryption", "enabled") is not True:
        report("OpenSearch domain must encrypt node-to-node traffic", None)
    if _get(p, "advancedSecurityOptions", "enabled") is not True:
        report("OpenSearch domain must enable fine-grained access control", None)
    if _get(p, "advancedSecurityOptions", "internalUserDatabaseEnabled") is True:
        report("OpenSearch master user must be an IAM ARN, not the internal user database", None)
    if not _get(p, "advancedSecurityOptions", "masterUserOptions", "masterUserArn"):
        report("OpenSearch fine-grained access control needs an IAM master user ARN", None)
    if not _get(p, "vpcOptions", "subnetIds"):
        report("OpenSearch domain must live in VPC subnets", None)
    subnets = _as_list(_get(p, "vpcOptions", "subnetIds"))
    count = int(_get(p, "clusterConfig", "instanceCount") or 1)  # the engine sends numbers as floats
    if _get(p, "clusterConfig", "zoneAwarenessEnabled") is True:
        zones = int(_get(p, "clusterConfig", "zoneAwarenessConfig", "availabilityZoneCount") or 2)
        if zones != len(subnets):
            report(f"OpenSearch zone awareness counts {zones} zones but the domain has {len(subnets)} subnets", None)
        if count % zones:
            report(f"OpenSearch instanceCount {count} does not spread evenly over {zones} zones", None)
    elif len(subnets) > 1:
        report("OpenSearch domain without zone awareness must be given exactly one subnet", None)


def opensearch_access_policy(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type != "aws:opensearch/domainPolicy:DomainPolicy":
        return
    doc = _policy_doc(_get(args.props, "accessPolicies"))
    if doc is None:
        return
    for statement in _as_list(doc.get("Statement")):
        principal = statement.get("Principal")
        aws_principals = _as_list(principal.get("AWS")) if isinstance(principal, Mapping) else [principal]
        if "*" in aws_principals:
            report("OpenSearch access policy must name its principals, not '*'", None)


def kinesis_encrypted(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type != "aws:kinesis/stream:Stream":
        return
    if _get(args.props, "encryptionType") != "KMS" or not _get(args.props, "kmsKeyId"):
        report("Kinesis stream must use KMS server-side encryption", None)


def kms_rotation(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type == "aws:kms/key:Key" and _get(args.props, "enableKeyRotation") is not True:
        report("KMS keys must have automatic rotation enabled", None)


def ecr_repository(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type != "aws:ecr/repository:Repository":
        return
    if _get(args.props, "imageTagMutability") != "IMMUTABLE":
        report("ECR repository tags must be IMMUTABLE", None)
    if _get(args.props, "imageScanningConfiguration", "scanOnPush") is not True:
        report("ECR repository must scan images on push", None)


def ec2_instance(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type != "aws:ec2/instance:Instance":
        return
    if _get(args.props, "metadataOptions", "httpTokens") != "required":
        report("EC2 instances must require IMDSv2 (httpTokens=required)", None)
    if _get(args.props, "rootBlockDevice", "encrypted") is not True:
        report("EC2 root volumes must be encrypted", None)
    if _get(args.props, "associatePublicIpAddress") is True:
        report("EC2 instances must not have a public IP", None)


def security_groups(args: ResourceValidationArgs, report: Report) -> None:
    """No ingress from the internet anywhere; none at all on groups tagged as no-ingress (the bastion)."""
    p = args.props
    if args.resource_type == "aws:ec2/securityGroup:SecurityGroup":
        ingress = _as_list(_get(p, "ingress"))
        if (_get(p, "tags") or {}).get(NO_INGRESS_TAG) == "true" and ingress:
            report("security group tagged no-ingress has an ingress rule", None)
        for rule in ingress:
            cidrs = _as_list(rule.get("cidrBlocks")) + _as_list(rule.get("ipv6CidrBlocks"))
            if any(c in OPEN_CIDRS for c in cidrs):
                report("security group allows ingress from the internet", None)
    elif args.resource_type == "aws:ec2/securityGroupRule:SecurityGroupRule":
        cidrs = _as_list(_get(p, "cidrBlocks")) + _as_list(_get(p, "ipv6CidrBlocks"))
        if _get(p, "type") == "ingress" and any(c in OPEN_CIDRS for c in cidrs):
            report("security group rule allows ingress from the internet", None)
    elif args.resource_type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule" and (
        _get(p, "cidrIpv4") in OPEN_CIDRS or _get(p, "cidrIpv6") in OPEN_CIDRS
    ):
        report("security group ingress rule allows the internet", None)


def private_network(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type == "aws:ec2/subnet:Subnet" and _get(args.props, "mapPublicIpOnLaunch") is True:
        report("subnets must not assign public IPs", None)
    if args.resource_type in ("aws:ec2/internetGateway:InternetGateway", "aws:ec2/eip:Eip"):
        report("the stack is private-only: no internet gateway or elastic IP", None)


def _wildcards(statement: Mapping[str, Any]) -> Iterable[str]:
    for action in _as_list(statement.get("Action")):
        if action == "*" or (isinstance(action, str) and action.endswith(":*")):
            yield f"wildcard action {action!r}"
    if "NotAction" in statement or "NotResource" in statement:
        yield "NotAction/NotResource"
    for resource in _as_list(statement.get("Resource")):
        if resource == "*":
            yield "wildcard resource '*'"


def iam_least_privilege(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type not in ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy"):
        return
    doc = _policy_doc(_get(args.props, "policy"))
    if doc is None:
        return
    for statement in _as_list(doc.get("Statement")):
        if statement.get("Effect") == "Allow":
            for problem in _wildcards(statement):
                report(f"IAM policy statement {statement.get('Sid', '')!r}: {problem}", None)


def iam_trust(args: ResourceValidationArgs, report: Report) -> None:
    """A web-identity trust must pin the subject (service account) and the audience."""
    if args.resource_type != "aws:iam/role:Role":
        return
    doc = _policy_doc(_get(args.props, "assumeRolePolicy"))
    if doc is None:
        return
    for statement in _as_list(doc.get("Statement")):
        principal = statement.get("Principal")
        if principal == "*" or (isinstance(principal, Mapping) and "*" in _as_list(principal.get("AWS"))):
            report("role trust policy must not trust '*'", None)
        if isinstance(principal, Mapping) and "Federated" in principal:
            equals = _get(statement, "Condition", "StringEquals") or {}
            if not any(k.endswith(":sub") for k in equals) or not any(k.endswith(":aud") for k in equals):
                report("web-identity trust must pin ':sub' and ':aud' with StringEquals", None)


def eks_cluster(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type != "eks:index:Cluster":
        return
    p = args.props
    if _get(p, "endpointPrivateAccess") is not True:
        report("EKS API endpoint must be reachable privately", None)
    if _get(p, "endpointPublicAccess") is True:
        cidrs = _as_list(_get(p, "publicAccessCidrs"))
        if not cidrs or any(c in OPEN_CIDRS for c in cidrs):
            report("a public EKS endpoint must be limited to named CIDRs", None)
    if _get(p, "nodeAssociatePublicIpAddress") is not False:
        report("EKS nodes must not get public IPs", None)
    if _get(p, "authenticationMode") != "API":
        report("EKS authentication mode must be API (access entries)", None)
    if not _get(p, "encryptionConfigKeyArn"):
        report("EKS secrets must be envelope-encrypted with KMS", None)


def k8s_hardened(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type not in WORKLOAD_KINDS:
        return
    pod = _get(args.props, "spec", "template", "spec") or {}
    if _get(pod, "securityContext", "runAsNonRoot") is not True:
        report("pod must run as non-root", None)
    if _get(pod, "securityContext", "seccompProfile", "type") != "RuntimeDefault":
        report("pod must use the RuntimeDefault seccomp profile", None)
    for container in _as_list(pod.get("containers")) + _as_list(pod.get("initContainers")):
        name = container.get("name")
        sc = container.get("securityContext") or {}
        if sc.get("readOnlyRootFilesystem") is not True:
            report(f"container {name}: root filesystem must be read-only", None)
        if sc.get("allowPrivilegeEscalation") is not False:
            report(f"container {name}: privilege escalation must be off", None)
        if "ALL" not in _as_list(_get(sc, "capabilities", "drop")):
            report(f"container {name}: must drop ALL capabilities", None)
        if sc.get("privileged") is True:
            report(f"container {name}: must not be privileged", None)
        if not _get(container, "resources", "limits"):
            report(f"container {name}: must set resource limits", None)


def today() -> date:
    """The date support windows are judged against (a function, so tests can pin it)."""
    return datetime.now(UTC).date()


def eks_version_supported(args: ResourceValidationArgs, report: Report) -> None:
    """Advisory: the configured Kubernetes version is in EKS standard support (see infra/versions.py)."""
    if args.resource_type != "eks:index:Cluster":
        return
    version = _get(args.props, "version")
    if isinstance(version, str):
        problem = support_problem(version, today())
        if problem:
            report(problem, None)


def log_retention(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type == "aws:cloudwatch/logGroup:LogGroup" and not _get(args.props, "retentionInDays"):
        report("CloudWatch log groups must set a retention", None)


def _policy(
    name: str,
    description: str,
    validate: Callable[[ResourceValidationArgs, Report], None],
    level: EnforcementLevel = EnforcementLevel.MANDATORY,
):
    return ResourceValidationPolicy(name=name, description=description, validate=validate, enforcement_level=level)


POLICIES: list[ResourceValidationPolicy] = [
    _policy("opensearch-domain-secure", "HTTPS, TLS 1.2+, encryption, FGAC with IAM master, VPC", opensearch_domain),
    _policy("opensearch-access-named", "Domain access policy names its principals", opensearch_access_policy),
    _policy("kinesis-kms", "Kinesis streams are KMS-encrypted", kinesis_encrypted),
    _policy("kms-rotation", "KMS keys rotate", kms_rotation),
    _policy("ecr-immutable-scanned", "ECR: immutable tags and scan on push", ecr_repository),
    _policy("ec2-imdsv2-encrypted", "EC2: IMDSv2, encrypted root, no public IP", ec2_instance),
    _policy("no-internet-ingress", "No ingress from the internet; bastion has none", security_groups),
    _policy("private-network", "Private subnets only", private_network),
    _policy("iam-no-wildcards", "IAM: no wildcard action or resource", iam_least_privilege),
    _policy("iam-trust-pinned", "IAM trust: no '*', web identity pinned", iam_trust),
    _policy("eks-private", "EKS: private endpoint, API auth, encrypted secrets", eks_cluster),
    _policy("k8s-hardened", "Kubernetes workloads: restricted security context, limits", k8s_hardened),
    _policy("log-retention", "CloudWatch log groups expire", log_retention),
    _policy(
        "eks-standard-support",
        "EKS version in standard support (extended support bills ~6x the control plane)",
        eks_version_supported,
        EnforcementLevel.ADVISORY,
    ),
]


def violations(resource_type: str, props: Props, name: str = "resource") -> list[str]:
    """Run every policy on one resource; the messages of the violations found (for tests and tools)."""
    found: list[str] = []
    args = ResourceValidationArgs(
        resource_type, props, f"urn:pulumi:test::test::{resource_type}::{name}", name, None, None
    )  # type: ignore[arg-type]
    for policy in POLICIES:
        validate = policy.validate
        for fn in validate if isinstance(validate, list) else [validate]:
            fn(args, lambda message, urn=None, p=policy.name: found.append(f"{p}: {message}"))
    return found
