"""Compose the concerns into the whole stack; `__main__.py` only loads config, calls `build` and exports.

Order matters where one concern names another's output, and where the deploy must wait for a step:
the IRSA roles exist before the domain (its access policy and master user name them); the dataflow's
permissions are attached after the domain exists (they name its ARN); the access-mapping Job runs after
the domain's access policy and the nodes exist, and the dataflow's StatefulSet only after the Job completed,
after the role's policy (a new model id is allowed before any pod asks for it) and after the recovery bucket.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import bastion as bastion_mod
from infra.access import ADMIN_SERVICE_ACCOUNT, AccessMapping, build_access_mapping
from infra.alarms import Alarms, build_alarms
from infra.bastion import Bastion, build_bastion, build_bastion_role, build_bastion_security_group
from infra.batch import BatchStore, build_batch_store, dataflow_batch_statements
from infra.cluster import Cluster, build_cluster
from infra.config import StackConfig
from infra.dashboard import build_dashboard
from infra.iam import attach_dataflow_policy, bedrock_statements, build_irsa_role, operator_policy, to_json
from infra.network import Network, build_network
from infra.observability import Observability, build_observability
from infra.recovery_store import PREFIX as RECOVERY_PREFIX
from infra.recovery_store import RecoveryStore, build_recovery_store
from infra.registry import Registry, build_registry
from infra.search import Search, build_search, build_search_security_group, build_service_linked_role
from infra.stream import Stream, build_stream
from infra.workload import DataflowSettings, Workload, build_namespace, build_workload


@dataclass
class Program:
    config: StackConfig
    network: Network
    stream: Stream
    registry: Registry
    recovery: RecoveryStore
    batch: BatchStore
    cluster: Cluster
    search: Search
    bastion: Bastion
    access: AccessMapping
    workload: Workload
    observability: Observability
    alarms: Alarms
    dashboard: aws.cloudwatch.Dashboard
    dataflow_role_arn: pulumi.Output[str]
    admin_role_arn: pulumi.Output[str]
    operator_policy_arn: pulumi.Output[str]
    model_statements: list[dict]

    def outputs(self) -> dict[str, pulumi.Input]:
        """What `pulumi stack output` shows: everything DEPLOY.md refers to."""
        region = self.config.region
        return {
            "region": region,
            "streamName": self.stream.name,
            "streamArn": self.stream.arn,
            "opensearchEndpoint": self.search.endpoint,
            "dashboardsUrl": self.search.dashboards_url,
            "bastionInstanceId": self.bastion.instance_id,
            # Commands in the CLI's shorthand syntax: they work pasted and as `$(pulumi stack output ...)`.
            "portForwardCommand": pulumi.Output.all(self.bastion.instance_id, self.search.endpoint).apply(
                lambda a: bastion_mod.port_forward_command(a[0], a[1], region)
            ),
            "portForwardParameters": self.search.endpoint.apply(lambda e: bastion_mod.tunnel_parameters(443, 9443, e)),
            "dashboardsTunnelCommand": self.bastion.instance_id.apply(
                lambda i: bastion_mod.dashboards_tunnel_command(i, region)
            ),
            # The bare JSON, for `--parameters "$(pulumi stack output dashboardsTunnelParameters)"`.
            "dashboardsTunnelParameters": bastion_mod.tunnel_parameters(bastion_mod.PROXY_PORT, bastion_mod.PROXY_PORT),
            "operatorPolicyArn": self.operator_policy_arn,
            "ecrRepositoryUrl": self.registry.repository_url,
            "image": self.workload.image,
            "clusterName": self.cluster.name,
            "kubeconfig": self.cluster.kubeconfig,
            "dataflowRoleArn": self.dataflow_role_arn,
            "searchAdminRoleArn": self.admin_role_arn,
            "namespace": self.workload.namespace,
            "zoneIds": self.network.zone_ids,
            "recoveryStoreUrl": self.recovery.url,
            "recoveryStoreBucket": self.recovery.bucket,
            # The backfill's BACKFILL_ROLE_ARN and BACKFILL_JOB_URL (also set in the dataflow's pods).
            "batchRoleArn": self.batch.role_arn,
            "backfillJobUrl": self.batch.job_url,
            "batchBucket": self.batch.bucket,
            "enrichmentGeneration": self.config.enrichment_generation,
            "prometheusWorkspaceId": self.observability.workspace_id,
            "prometheusEndpoint": self.observability.prometheus_endpoint,
            "alarmTopicArn": self.alarms.topic_arn,
            "dashboardUrl": self.dashboard.dashboard_name.apply(
                lambda d: (
                    f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards/dashboard/{d}"
                )
            ),
        }


def build(cfg: StackConfig) -> Program:
    name, tags = cfg.name, cfg.resource_tags
    account_id = aws.get_caller_identity().account_id

    network = build_network(name, cfg.region, cfg.vpc_cidr, tags, cfg.availability_zone_ids)
    stream = build_stream(name, cfg.stream_capacity_mode, cfg.stream_shard_count, cfg.stream_retention_hours, tags)
    registry = build_registry(name, tags, cfg.image_tag)
    recovery = build_recovery_store(name, tags)
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
        log_retention_days=cfg.control_plane_log_retention_days,
        tags=tags,
    )
    irsa = (cluster.oidc_provider_arn, cluster.oidc_issuer, cfg.namespace)
    dataflow_role = build_irsa_role(f"{name}-dataflow", *irsa, cfg.service_account, tags)
    # The domain's master user: only the access-mapping Job's service account can assume it.
    admin_role = build_irsa_role(f"{name}-search-admin", *irsa, ADMIN_SERVICE_ACCOUNT, tags)
    search_sg = build_search_security_group(name, network.vpc_id, [cluster.security_group_id, bastion_sg.id], tags)
    search = build_search(
        name,
        engine_version=cfg.opensearch_engine_version,
        instance_type=cfg.opensearch_instance_type,
        instance_count=cfg.opensearch_instance_count,
        volume_size_gb=cfg.opensearch_volume_size_gb,
        subnet_ids=network.private_subnet_ids,
        security_group_id=search_sg.id,
        master_role_arn=admin_role.arn,
        access_principal_arns=[dataflow_role.arn, bastion_role.arn, admin_role.arn],
        service_linked_role=build_service_linked_role(name, cfg.create_service_linked_role),
        tags=tags,
    )
    model_statements = bedrock_statements(cfg.bedrock_model_id, cfg.region, account_id, cfg.bedrock_model_regions)
    batch = build_batch_store(name, cfg.region, account_id, model_statements, cfg.batch_job_files_expire_days, tags)
    dataflow_policy = attach_dataflow_policy(
        f"{name}-dataflow",
        dataflow_role.name,
        stream.arn,
        stream.key_arn,
        model_statements,
        search.domain_arn,
        recovery.arn,
        RECOVERY_PREFIX,
        batch=lambda bucket, role: dataflow_batch_statements(bucket, role, cfg.region, account_id, model_statements),
        batch_bucket_arn=batch.arn,
        batch_role_arn=batch.role_arn,
    )
    bastion = build_bastion(
        name,
        role=bastion_role,
        security_group_id=bastion_sg.id,
        subnet_id=network.private_subnet_ids[0],
        instance_type=cfg.bastion_instance_type,
        opensearch_endpoint=search.endpoint,
        region=cfg.region,
        tags=tags,
    )
    operator = aws.iam.Policy(
        f"{name}-operator",
        name=f"{name}-operator",
        description=f"{name}: Session Manager port forwarding to the bastion only (Dashboards tunnel)",
        policy=to_json(operator_policy(cfg.region, account_id, name, bastion_mod.BASTION_TAG)),
        tags=tags,
    )
    image = pulumi.Output.concat(registry.repository_url, ":", cfg.image_tag)
    namespace = build_namespace(name, cluster.provider, cfg.namespace)
    access = build_access_mapping(
        name,
        provider=cluster.provider,
        namespace=namespace,
        namespace_name=cfg.namespace,
        admin_role_arn=admin_role.arn,
        image=image,
        opensearch_endpoint=search.endpoint,
        region=cfg.region,
        writer_role_arn=dataflow_role.arn,
        reader_role_arn=bastion_role.arn,
        index=cfg.opensearch_index,
        dlq_index=cfg.opensearch_dlq_index,
        depends_on=[search.access_policy, cluster.node_group],
    )
    workload = build_workload(
        name,
        provider=cluster.provider,
        namespace=namespace,
        namespace_name=cfg.namespace,
        service_account=cfg.service_account,
        role_arn=dataflow_role.arn,
        image=image,
        replicas=cfg.dataflow_replicas,
        workers_per_process=cfg.dataflow_workers_per_process,
        recovery_partitions=cfg.recovery_partitions,
        recovery_store_url=recovery.url,
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
            enrichment_generation=cfg.enrichment_generation,
            backfill_job_url=batch.job_url,
            backfill_role_arn=batch.role_arn,
        ),
        depends_on=[access.job, dataflow_policy, *recovery.ready],
    )
    observability = build_observability(
        name,
        cluster=cluster,
        region=cfg.region,
        account_id=account_id,
        subnet_ids=network.private_subnet_ids,
        namespace=cfg.namespace,
        log_retention_days=cfg.container_log_retention_days,
        scraper_access_entry=cfg.prometheus_scraper_access_entry,
        tags=tags,
    )
    alarms = build_alarms(
        name,
        thresholds=cfg.alarms,
        region=cfg.region,
        account_id=account_id,
        email=cfg.alarm_email,
        workspace_id=observability.workspace_id,
        workspace_arn=observability.workspace_arn,
        stream_name=stream.name,
        domain_name=search.domain_name,
        opensearch_instance_count=cfg.opensearch_instance_count,
        opensearch_volume_size_gb=cfg.opensearch_volume_size_gb,
        cluster_name=cluster.name,
        namespace=cfg.namespace,
        tags=tags,
    )
    dashboard = build_dashboard(
        name,
        region=cfg.region,
        account_id=account_id,
        stream_name=stream.name,
        domain_name=search.domain_name,
        model_id=cfg.bedrock_model_id,
        cluster_name=cluster.name,
        namespace=cfg.namespace,
        alarm_arns=[a.arn for a in alarms.alarms.values()],
        prometheus_endpoint=observability.prometheus_endpoint,
    )
    return Program(
        config=cfg,
        network=network,
        stream=stream,
        registry=registry,
        recovery=recovery,
        batch=batch,
        cluster=cluster,
        search=search,
        bastion=bastion,
        access=access,
        workload=workload,
        observability=observability,
        alarms=alarms,
        dashboard=dashboard,
        dataflow_role_arn=dataflow_role.arn,
        admin_role_arn=admin_role.arn,
        operator_policy_arn=operator.arn,
        model_statements=model_statements,
    )
