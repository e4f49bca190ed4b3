"""EKS cluster (pulumi-eks): private API endpoint (public only to the operator's CIDRs), a managed node
group in the private subnets, managed CoreDNS and kube-proxy add-ons at the version EKS recommends for the
cluster's Kubernetes version, and the control-plane log group with a retention.

No volumes: the dataflow's recovery state lives in S3 (infra/recovery_store.py), so pods are not pinned to a
zone and the node group's Auto Scaling group replaces a lost node in any healthy zone.

Add-ons: with no default node group pulumi-eks installs a *self-managed* CoreDNS, which EKS never upgrades;
after a control-plane upgrade it falls behind. Here both are EKS add-ons whose version is looked up for the
configured Kubernetes version (`aws.eks.get_addon_version`, the default one), so changing
reviewstream:kubernetesVersion moves them with it.

Nodes use the EKS-created cluster security group (`skip_default_security_groups`), which is what the
OpenSearch security group admits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from infra.iam import AWS_MANAGED, service_trust_policy, to_json

NODE_POLICIES = (
    f"{AWS_MANAGED}/AmazonEKSWorkerNodePolicy",
    f"{AWS_MANAGED}/AmazonEKS_CNI_Policy",
    f"{AWS_MANAGED}/AmazonEC2ContainerRegistryPullOnly",
)
MANAGED_ADDONS = ("coredns", "kube-proxy")


@dataclass
class Cluster:
    name: str
    kubernetes_version: str
    kubeconfig: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    provider: k8s.Provider
    node_group: eks.ManagedNodeGroup
    addons: list[aws.eks.Addon]


def build_cluster(
    name: str,
    *,
    vpc_id: pulumi.Input[str],
    subnet_ids: Sequence[pulumi.Input[str]],
    kubernetes_version: str,
    public_access_cidrs: Sequence[str],
    node_instance_type: str,
    node_min_size: int,
    node_max_size: int,
    node_desired_size: int,
    log_retention_days: int,
    tags: dict[str, str],
) -> Cluster:
    cluster_name = f"{name}-eks"
    # EKS writes control-plane logs to this group; created first, it has a retention (EKS's own never expires).
    log_group = aws.cloudwatch.LogGroup(
        f"{name}-eks-logs", name=f"/aws/eks/{cluster_name}/cluster", retention_in_days=log_retention_days, tags=tags
    )
    secrets_key = aws.kms.Key(
        f"{name}-eks-secrets",
        description=f"{cluster_name}: Kubernetes secrets envelope encryption",
        enable_key_rotation=True,
        deletion_window_in_days=7,
        tags=tags,
    )
    node_role = aws.iam.Role(
        f"{name}-node", assume_role_policy=to_json(service_trust_policy("ec2.amazonaws.com")), tags=tags
    )
    for i, arn in enumerate(NODE_POLICIES):
        aws.iam.RolePolicyAttachment(f"{name}-node-{i}", role=node_role.name, policy_arn=arn)

    cluster = eks.Cluster(
        cluster_name,
        name=cluster_name,
        version=kubernetes_version,
        vpc_id=vpc_id,
        private_subnet_ids=list(subnet_ids),
        node_associate_public_ip_address=False,
        endpoint_private_access=True,
        # The operator's CIDRs (config, kept for every later `pulumi up`/`destroy`); none = private only.
        endpoint_public_access=bool(public_access_cidrs),
        public_access_cidrs=list(public_access_cidrs) or None,
        authentication_mode=eks.AuthenticationMode.API,
        create_oidc_provider=True,
        skip_default_node_group=True,
        skip_default_security_groups=True,
        encryption_config_key_arn=secrets_key.arn,
        enabled_cluster_log_types=["api", "audit", "authenticator"],
        # Ours below, as EKS add-ons with a version (pulumi-eks would install a self-managed CoreDNS).
        coredns_addon_options=eks.CoreDnsAddonOptionsArgs(enabled=False),
        kube_proxy_addon_options=eks.KubeProxyAddonOptionsArgs(enabled=False),
        tags=tags,
        opts=pulumi.ResourceOptions(depends_on=[log_group]),
    )
    node_group = eks.ManagedNodeGroup(
        f"{name}-nodes",
        cluster=cluster,
        node_role=node_role,
        subnet_ids=list(subnet_ids),
        instance_types=[node_instance_type],
        scaling_config=aws.eks.NodeGroupScalingConfigArgs(
            min_size=node_min_size, max_size=node_max_size, desired_size=node_desired_size
        ),
        enable_imd_sv2=True,
        tags=tags,
    )
    addons = [
        aws.eks.Addon(
            f"{name}-{addon}",
            cluster_name=cluster_name,
            addon_name=addon,
            addon_version=aws.eks.get_addon_version_output(
                addon_name=addon, kubernetes_version=kubernetes_version, most_recent=False
            ).version,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=tags,
            opts=pulumi.ResourceOptions(depends_on=[cluster, node_group]),  # CoreDNS needs nodes to turn ACTIVE
        )
        for addon in MANAGED_ADDONS
    ]
    provider = k8s.Provider(f"{name}-k8s", kubeconfig=cluster.kubeconfig_json, enable_server_side_apply=True)
    return Cluster(
        name=cluster_name,
        kubernetes_version=kubernetes_version,
        kubeconfig=pulumi.Output.secret(cluster.kubeconfig_json),
        oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_issuer=cluster.oidc_issuer,
        security_group_id=cluster.cluster_security_group_id,
        provider=provider,
        node_group=node_group,
        addons=addons,
    )
