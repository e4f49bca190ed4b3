"""Compose the concerns into the whole stack; `__main__.py` only loads config, calls `build` and exports.

Order matters only where one concern names another's output: the bastion role exists before the domain
(its master user), the IRSA role before the domain (its access policy), and the dataflow's permissions
are attached after the domain exists (they name its ARN).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import bastion as bastion_mod
from infra.bastion import Bastion, build_bastion, build_bastion_role, build_bastion_security_group
from infra.cluster import Cluster, build_cluster
from infra.config import StackConfig
from infra.iam import attach_dataflow_policy, bedrock_model_arns, build_irsa_role
from infra.network import Network, build_network
from infra.registry import Registry, build_registry
from infra.search import Search, build_search, build_search_security_group, build_service_linked_role
from infra.stream import Stream, build_stream
from infra.workload import DataflowSettings, Workload, build_workload


@dataclass
class Program:
    config: StackConfig
    network: Network
    stream: Stream
    registry: Registry
    cluster: Cluster
    search: Search
    bastion: Bastion
    workload: Workload
    dataflow_role_arn: pulumi.Output[str]
    model_arns: list[str]

    def outputs(self) -> dict[str, pulumi.Input]:
        """What `pulumi stack output` shows: everything DEPLOY.md refers to."""
        return {
            "streamName": self.stream.name,
            "streamArn": self.stream.arn,
            "opensearchEndpoint": self.search.endpoint,
            "dashboardsUrl": self.search.dashboards_url,
            "bastionInstanceId": self.bastion.instance_id,
            "portForwardCommand": pulumi.Output.all(self.bastion.instance_id, self.search.endpoint).apply(
                lambda a: bastion_mod.port_forward_command(a[0], a[1])
            ),
            "dashboardsTunnelCommand": self.bastion.instance_id.apply(bastion_mod.dashboards_tunnel_command),
            "ecrRepositoryUrl": self.registry.repository_url,
            "image": self.workload.image,
            "clusterName": self.cluster.name,
            "kubeconfig": self.cluster.kubeconfig,
            "dataflowRoleArn": self.dataflow_role_arn,
            "namespace": self.workload.namespace,
        }


def build(cfg: StackConfig) -> Program:
    name, tags = cfg.name, cfg.resource_tags
    account_id = aws.get_caller_identity().account_id

    network = build_network(name, cfg.region, cfg.vpc_cidr, tags)
    stream = build_stream(name, cfg.stream_capacity_mode, cfg.stream_shard_count, cfg.stream_retention_hours, tags)
    registry = build_registry(name, tags)
    bastion_role = build_bastion_role(name, tags)
    bastion_sg = build_bastion_security_group(name, network.vpc_id, network.vpc_cidr, network.s3_prefix_list_id, tags)
    cluster = build_cluster(
        name,
        vpc_id=network.vpc_id,
        subnet_ids=network.private_subnet_ids,
        kubernetes_version=cfg.kubernetes_version,
        public_access_cidrs=cfg.cluster_public_access_cidrs,
        node_instance_type=cfg.node_instance_type,
        node_min_size=cfg.node_min_size,
        node_max_size=cfg.node_max_size,
        node_desired_size=cfg.node_desired_size,
        tags=tags,
    )
    dataflow_role = build_irsa_role(
        f"{name}-dataflow",
        cluster.oidc_provider_arn,
        cluster.oidc_issuer,
        cfg.namespace,
        cfg.service_account,
        tags,
    )
    search_sg = build_search_security_group(name, network.vpc_id, [cluster.security_group_id, bastion_sg.id], tags)
    search = build_search(
        name,
        engine_version=cfg.opensearch_engine_version,
        instance_type=cfg.opensearch_instance_type,
        instance_count=cfg.opensearch_instance_count,
        volume_size_gb=cfg.opensearch_volume_size_gb,
        subnet_ids=network.private_subnet_ids,
        security_group_id=search_sg.id,
        master_role_arn=bastion_role.arn,
        access_principal_arns=[dataflow_role.arn, bastion_role.arn],
        service_linked_role=build_service_linked_role(name, cfg.create_service_linked_role),
        tags=tags,
    )
    model_arns = bedrock_model_arns(cfg.bedrock_model_id, cfg.region, account_id, cfg.bedrock_model_regions)
    attach_dataflow_policy(
        f"{name}-dataflow", dataflow_role.name, stream.arn, stream.key_arn, model_arns, search.domain_arn
    )
    bastion = build_bastion(
        name,
        role=bastion_role,
        security_group_id=bastion_sg.id,
        subnet_id=network.private_subnet_ids[0],
        instance_type=cfg.bastion_instance_type,
        opensearch_endpoint=search.endpoint,
        writer_role_arn=dataflow_role.arn,
        index=cfg.opensearch_index,
        dlq_index=cfg.opensearch_dlq_index,
        region=cfg.region,
        tags=tags,
    )
    workload = build_workload(
        name,
        provider=cluster.provider,
        namespace=cfg.namespace,
        service_account=cfg.service_account,
        role_arn=dataflow_role.arn,
        image_repository=registry.repository_url,
        image_tag=cfg.image_tag,
        replicas=cfg.dataflow_replicas,
        workers_per_process=cfg.dataflow_workers_per_process,
        recovery_partitions=cfg.recovery_partitions,
        recovery_volume_size_gb=cfg.recovery_volume_size_gb,
        storage_class=cluster.storage_class,
        settings=DataflowSettings(
            region=cfg.region,
            stream_name=stream.name,
            start_position=cfg.kinesis_start_position,
            model_id=cfg.bedrock_model_id,
            max_concurrency=cfg.bedrock_max_concurrency,
            reviews_per_request=cfg.bedrock_reviews_per_request,
            timeout_s=cfg.bedrock_timeout_s,
            max_attempts=cfg.bedrock_max_attempts,
            opensearch_endpoint=search.endpoint,
            index=cfg.opensearch_index,
            dlq_index=cfg.opensearch_dlq_index,
        ),
    )
    return Program(
        config=cfg,
        network=network,
        stream=stream,
        registry=registry,
        cluster=cluster,
        search=search,
        bastion=bastion,
        workload=workload,
        dataflow_role_arn=dataflow_role.arn,
        model_arns=model_arns,
    )
