"""Pulumi mocks for the infra tests: record every resource with its resolved inputs, return plausible outputs.

pulumi-eks `Cluster` and `ManagedNodeGroup` are remote component resources: under mocks the Python SDK
registers them like any resource (type `eks:index:Cluster`) and resolves their output properties from
the state `new_resource` returns, so we return the scalar outputs the program reads (kubeconfig,
OIDC provider, cluster security group). Nothing inside those components is created here: that is what
pulumi-eks does at deploy time, and it is out of reach offline (see docs/DEPLOY.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi

from dataflow.compat import require

# NoResourceRefsMonitor subclasses Pulumi's mock monitor and reads its protobuf module: Pulumi's internals.
PULUMI_TESTED = ("3.272.0", "3.272.0")
require("pulumi", *PULUMI_TESTED, what="the infra tests' mock monitor (pulumi.runtime.mocks, resource_pb2)")

from pulumi.runtime.mocks import MockMonitor  # noqa: E402
from pulumi.runtime.proto import resource_pb2  # noqa: E402

ACCOUNT = "123456789012"
REGION = "us-east-1"
OIDC_ISSUER = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "c", "cluster": {"server": "https://EXAMPLE.gr7.us-east-1.eks.amazonaws.com"}}],
    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    "current-context": "c",
    "users": [{"name": "u", "user": {"exec": {"command": "aws"}}}],
}


@dataclass
class Recorded:
    typ: str
    name: str
    inputs: dict[str, Any]
    custom: bool
    provider: str | None


@dataclass(frozen=True)
class Options:
    """What the engine is told besides the inputs: explicit and input dependencies, ignored changes."""

    dependencies: frozenset[str]
    ignore_changes: tuple[str, ...]
    replace_on_changes: tuple[str, ...] = ()
    delete_before_replace: bool = False


# Zone ids as a real us-east-1 account may map them: the first name is the zone EKS control planes refuse.
ZONES = {"us-east-1a": "use1-az3", "us-east-1b": "use1-az1", "us-east-1c": "use1-az2", "us-east-1d": "use1-az4"}


@dataclass
class RecordingMocks(pulumi.runtime.Mocks):
    resources: list[Recorded] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    options: dict[tuple[str, str], Options] = field(default_factory=dict)
    zones: dict[str, str] = field(default_factory=lambda: dict(ZONES))

    def depends_on(self, typ: str, name: str, other_typ: str, other_name: str) -> bool:
        """Whether the engine would create `name` only after `other_name` (explicit or through an input)."""
        return any(u.endswith(f"{other_typ}::{other_name}") for u in self.options[(typ, name)].dependencies)

    def of_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str) -> Recorded:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, got {[r.name for r in found]}"
        return found[0]

    def named(self, typ: str, name: str) -> Recorded:
        found = [r for r in self.of_type(typ) if r.name == name]
        assert len(found) == 1, f"no {typ} named {name}: {[r.name for r in self.of_type(typ)]}"
        return found[0]

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        self.calls.append(args.token)
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/ci", "userId": "AIDA", "id": ACCOUNT}, []
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            # Like EC2: names and ids in the same order; exclusions by id honoured.
            excluded = set(args.args.get("excludeZoneIds") or ())
            kept = [(n, z) for n, z in self.zones.items() if z not in excluded]
            return {"names": [n for n, _ in kept], "zoneIds": [z for _, z in kept], "id": REGION}, []
        if args.token == "aws:ssm/getParameter:getParameter":
            return {
                "name": args.args.get("name"),
                "value": "ami-0123456789abcdef0",
                "type": "String",
                "arn": "arn:aws:ssm:us-east-1::parameter/x",
                "id": args.args.get("name"),
            }, []
        if args.token == "aws:eks/getAddonVersion:getAddonVersion":
            # Like DescribeAddonVersions: the default version of the add-on for that Kubernetes version.
            k8s = args.args["kubernetesVersion"]
            version = {
                "coredns": f"v1.12.1-eksbuild.{k8s}",
                "kube-proxy": f"v{k8s}.0-eksbuild.1",
                "amazon-cloudwatch-observability": f"v4.4.0-eksbuild.{k8s}",
            }[args.args["addonName"]]
            return {**args.args, "version": version, "id": args.args["addonName"]}, []
        raise AssertionError(f"unexpected invoke {args.token}")

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        self.resources.append(Recorded(args.typ, args.name, dict(args.inputs), bool(args.custom), args.provider))
        state = dict(args.inputs)
        typ, name = args.typ, args.name
        physical = state.get("name") or name
        rid = f"{name}-id"
        if typ == "eks:index:Cluster":
            return None, {
                "kubeconfig": KUBECONFIG,
                "kubeconfigJson": json.dumps(KUBECONFIG),
                "oidcProviderArn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{OIDC_ISSUER}",
                "oidcProviderUrl": f"https://{OIDC_ISSUER}",
                "oidcIssuer": OIDC_ISSUER,
                "clusterSecurityGroupId": "sg-0eksclustersg",
                "nodeSecurityGroupId": "sg-0eksclustersg",
            }
        if typ == "eks:index:ManagedNodeGroup":
            return None, {}
        if not args.custom:
            return None, {}
        if typ.startswith("kubernetes:") and isinstance(state.get("metadata"), dict):
            # Like pulumi-kubernetes: an object without metadata.name is auto-named `<resource name>-<suffix>`.
            state["metadata"] = {"name": f"{name}-1a2b3c4d", **state["metadata"]}
        service = typ.split(":")[1].split("/")[0] if ":" in typ else "x"
        state.setdefault("arn", f"arn:aws:{service}:{REGION}:{ACCOUNT}:{physical}")
        if typ == "aws:kms/key:Key":
            rid = f"key-{name}"
            state.update(keyId=rid, arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{rid}")
        elif typ == "aws:iam/role:Role":
            state.update(name=physical, arn=f"arn:aws:iam::{ACCOUNT}:role/{physical}")
        elif typ == "aws:kinesis/stream:Stream":
            state.update(arn=f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{physical}")
        elif typ == "aws:s3/bucket:Bucket":
            rid = f"{state.get('bucketPrefix', name)}abc123"
            state.update(bucket=rid, arn=f"arn:aws:s3:::{rid}")
        elif typ == "aws:ecr/repository:Repository":
            state.update(repositoryUrl=f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{physical}")
        elif typ == "aws:opensearch/domain:Domain":
            domain = state["domainName"]
            state.update(
                arn=f"arn:aws:es:{REGION}:{ACCOUNT}:domain/{domain}",
                endpoint=f"vpc-{domain}-abc123.{REGION}.es.amazonaws.com",
                dashboardEndpoint=f"vpc-{domain}-abc123.{REGION}.es.amazonaws.com/_dashboards",
            )
        elif typ == "aws:amp/workspace:Workspace":
            rid = "ws-0123abcd-4567-89ef-0123-456789abcdef"
            state.update(
                arn=f"arn:aws:aps:{REGION}:{ACCOUNT}:workspace/{rid}",
                prometheusEndpoint=f"https://aps-workspaces.{REGION}.amazonaws.com/workspaces/{rid}/",
            )
        elif typ == "aws:amp/scraper:Scraper":
            # Like DescribeScraper: the collector's service-linked role, with its service-role path.
            state.update(
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/scraper.aps.amazonaws.com/"
                "AWSServiceRoleForAmazonPrometheusScraper_1234abcd-56ef-7"
            )
        elif typ == "aws:sns/topic:Topic":
            state.update(arn=f"arn:aws:sns:{REGION}:{ACCOUNT}:{physical}")
        elif typ == "aws:cloudwatch/metricAlarm:MetricAlarm":
            state.update(arn=f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{physical}")
        elif typ == "aws:ec2/vpcEndpoint:VpcEndpoint":
            state.update(prefixListId="pl-63a5400a")
        elif typ == "aws:ec2/instance:Instance":
            rid = "i-0123456789abcdef0"
        elif typ == "aws:ec2/securityGroup:SecurityGroup":
            rid = f"sg-{name}"
        elif typ == "aws:ec2/subnet:Subnet":
            rid = f"subnet-{name}"
        return rid, state


class NoResourceRefsMonitor(MockMonitor):
    """A mock monitor without resource references.

    Inputs such as `ManagedNodeGroup(cluster=<Cluster>, node_role=<Role>)` are then sent as URN/ID strings;
    with references on, the stock monitor rehydrates them on its worker thread's event loop and the
    program fails with "attached to a different loop".
    """

    def SupportsFeature(self, request):
        supported = request.id not in ("outputValues", "resourceReferences")
        return type("SupportsFeatureResponse", (object,), {"hasSupport": supported})

    def RegisterResource(self, request):
        deps = set(request.dependencies)
        for prop in request.propertyDependencies.values():
            deps.update(prop.urns)
        self.mocks.options[(request.type, request.name)] = Options(
            frozenset(deps),
            tuple(request.ignoreChanges),
            tuple(request.replaceOnChanges),
            bool(request.deleteBeforeReplace),
        )
        return super().RegisterResource(request)

    def GetDeploymentInfo(self, request):
        info = super().GetDeploymentInfo(request)
        features = [f for f in info.supportedFeatures if f != resource_pb2.RESOURCE_MONITOR_FEATURE_RESOURCE_REFERENCES]
        return resource_pb2.DeploymentInfo(supportedFeatures=features)
