"""The stack's knobs, read once from Pulumi config (namespace `reviewstream`) into a typed dataclass.

Tests build `StackConfig` directly; `load()` is the only place that touches `pulumi.Config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from dataflow.settings import MAX_ENRICHMENT_GENERATION
from infra.versions import DEFAULT_VERSION

DEFAULT_MODEL_ID = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
CAPACITY_MODES = ("ON_DEMAND", "PROVISIONED")
ZONE_COUNT = 2  # subnets, EKS control-plane zones and OpenSearch zones alike
PUBLIC_ACCESS_HINT = (
    "reviewstream:clusterPublicAccessCidrs is empty: `pulumi up` needs the Kubernetes API. Set your address "
    "(pulumi config set --path 'reviewstream:clusterPublicAccessCidrs[0]' <your-ip>/32) or, when Pulumi runs "
    "inside the VPC, pulumi config set reviewstream:clusterPrivateEndpointOnly true"
)


@dataclass(frozen=True)
class AlarmThresholds:
    """When an alarm fires (docs/DEPLOY.md "Watching it" says what each means). Stack keys: `alarm<Name>`."""

    consumer_lag_s: int = 600  # Kinesis iterator age / a shard's MillisBehindLatest: 10 minutes behind
    no_index_minutes: int = 15  # records read but no document indexed for this long
    dead_letter_ratio: float = 0.05  # dead letters per record read, over 10 minutes
    bedrock_throttled_ratio: float = 0.25  # throttled (or unavailable) share of Bedrock requests, 10 minutes
    bedrock_error_ratio: float = 0.05  # failed share (timeout, transient, request, config), 10 minutes
    opensearch_free_storage_percent: int = 20  # of one node's volume
    opensearch_jvm_pressure_percent: int = 85
    pod_restarts: int = 3  # container restarts in the namespace within 15 minutes
    backup_age_s: int = 900  # a recovery partition's copy in S3 older than this
    epoch_age_s: int = 300  # the last completed epoch (checkpoint) older than this (10 snapshot intervals)
    packing_disagree_ratio: float = 0.03  # packed answers whose audit alone disagrees, over an hour (10+ compared)

    def __post_init__(self) -> None:
        ratios = (self.dead_letter_ratio, self.bedrock_throttled_ratio, self.bedrock_error_ratio)
        for ratio in (*ratios, self.packing_disagree_ratio):
            if not 0 < ratio < 1:
                raise ValueError(
                    "alarm ratios (alarmDeadLetterRatio, alarmBedrock*Ratio, alarmPackingDisagreeRatio) must be"
                    " between 0 and 1"
                )
        if not 0 < self.opensearch_free_storage_percent < 100 or not 0 < self.opensearch_jvm_pressure_percent <= 100:
            raise ValueError("alarmOpensearchFreeStoragePercent and alarmOpensearchJvmPressurePercent are percents")


# Stack key of each threshold, e.g. alarmConsumerLagS.
ALARM_KEYS = {
    name: "alarm" + "".join(p.title() for p in name.split("_")) for name in AlarmThresholds.__dataclass_fields__
}


@dataclass(frozen=True)
class StackConfig:
    """Everything the program can be told; defaults are the documented dev sizes."""

    project: str = "reviewstream"
    stack: str = "dev"
    region: str = "us-east-1"
    vpc_cidr: str = "10.40.0.0/16"
    stream_capacity_mode: str = "ON_DEMAND"
    stream_shard_count: int = 2
    stream_retention_hours: int = 48
    bedrock_model_id: str = DEFAULT_MODEL_ID
    # Regions the model may be routed to; empty = derived from the inference profile's geography prefix.
    bedrock_model_regions: tuple[str, ...] = ()
    bedrock_max_concurrency: int = 16
    bedrock_reviews_per_request: int = 1
    bedrock_timeout_s: float = 30.0
    bedrock_max_attempts: int = 5
    opensearch_engine_version: str = "OpenSearch_2.19"
    opensearch_instance_type: str = "t3.medium.search"
    opensearch_instance_count: int = 2
    opensearch_volume_size_gb: int = 20
    create_service_linked_role: bool = True
    kubernetes_version: str = DEFAULT_VERSION
    # The operator's addresses allowed to the public EKS API endpoint: kept, since every later `pulumi up`
    # and `pulumi destroy` talk to the Kubernetes API. Empty = private endpoint only (Pulumi in the VPC).
    cluster_public_access_cidrs: tuple[str, ...] = ()
    cluster_private_endpoint_only: bool = False
    control_plane_log_retention_days: int = 30
    # Zone ids (e.g. use1-az1); empty = the first two available zones EKS supports.
    availability_zone_ids: tuple[str, ...] = ()
    node_instance_type: str = "t3.large"
    node_min_size: int = 1
    node_max_size: int = 3
    node_desired_size: int = 2
    dataflow_replicas: int = 2
    dataflow_workers_per_process: int = 2
    recovery_partitions: int = 8  # fixed at the first deploy: the largest dataflowReplicas it allows
    # ENRICHMENT_GENERATION of the live flow (dataflow/opensearch_sink/generation.py): raise it before a re-run.
    enrichment_generation: int = 0
    batch_job_files_expire_days: int = 14  # Bedrock batch job files (infra/batch.py) are deleted after this
    kinesis_start_position: str = "TRIM_HORIZON"
    image_tag: str = "0.1.0"
    namespace: str = "reviewstream"
    service_account: str = "dataflow"
    opensearch_index: str = "processed_reviews"
    opensearch_dlq_index: str = "processed_reviews_dlq"
    bastion_instance_type: str = "t3.micro"
    # Watching it (infra/observability.py, infra/alarms.py): container logs kept this long; alarms mailed here.
    container_log_retention_days: int = 14
    alarm_email: str = ""
    # EKS in API mode: AMP creates the scraper's access entry itself; true = the stack creates it instead.
    prometheus_scraper_access_entry: bool = False
    alarms: AlarmThresholds = field(default_factory=AlarmThresholds)
    tags: dict[str, str] = field(default_factory=dict)

    def check_cluster_access(self) -> None:
        """The deploy reaches the Kubernetes API either through named CIDRs or from inside the VPC."""
        if not self.cluster_public_access_cidrs and not self.cluster_private_endpoint_only:
            raise ValueError(PUBLIC_ACCESS_HINT)
        if self.cluster_public_access_cidrs and self.cluster_private_endpoint_only:
            raise ValueError("clusterPublicAccessCidrs and clusterPrivateEndpointOnly=true contradict each other")

    def __post_init__(self) -> None:
        if self.stream_capacity_mode not in CAPACITY_MODES:
            raise ValueError(f"streamCapacityMode: {self.stream_capacity_mode!r} is not one of {CAPACITY_MODES}")
        if not self.node_min_size <= self.node_desired_size <= self.node_max_size:
            raise ValueError("eksNodeMinSize <= eksNodeDesiredSize <= eksNodeMaxSize must hold")
        if self.dataflow_replicas < 1 or self.dataflow_workers_per_process < 1:
            raise ValueError("dataflowReplicas and dataflowWorkersPerProcess must be >= 1")
        if self.dataflow_replicas > self.recovery_partitions:
            raise ValueError(
                f"dataflowReplicas={self.dataflow_replicas} exceeds recoveryPartitions={self.recovery_partitions}: "
                "a pod beyond the partitions would hold no state; the partition count is fixed at the first "
                'deploy (docs/DEPLOY.md "Operating it"), so choose it for the largest cluster you expect'
            )
        if not 0 <= self.enrichment_generation <= MAX_ENRICHMENT_GENERATION:
            raise ValueError(f"enrichmentGeneration must be between 0 and {MAX_ENRICHMENT_GENERATION}")
        if self.opensearch_instance_count < 1:
            raise ValueError("opensearchInstanceCount must be >= 1")
        if self.opensearch_instance_count > 1 and self.opensearch_instance_count % ZONE_COUNT:
            raise ValueError(
                f"opensearchInstanceCount={self.opensearch_instance_count} must be a multiple of the "
                f"{ZONE_COUNT} zones (zone awareness spreads nodes evenly), or 1"
            )
        if self.availability_zone_ids and len(set(self.availability_zone_ids)) != ZONE_COUNT:
            raise ValueError(f"availabilityZoneIds must name {ZONE_COUNT} distinct zone ids")

    @property
    def name(self) -> str:
        """Prefix of every physical name, so two stacks in one account never collide."""
        return f"{self.project}-{self.stack}"

    @property
    def resource_tags(self) -> dict[str, str]:
        return {"project": self.project, "stack": self.stack, **self.tags}


def load() -> StackConfig:
    """Read the stack's config; unset keys keep the dataclass defaults."""
    cfg = pulumi.Config("reviewstream")
    aws_cfg = pulumi.Config("aws")
    d = StackConfig()
    loaded = StackConfig(
        project=pulumi.get_project(),
        stack=pulumi.get_stack(),
        region=aws_cfg.get("region") or d.region,
        vpc_cidr=cfg.get("vpcCidr") or d.vpc_cidr,
        stream_capacity_mode=(cfg.get("streamCapacityMode") or d.stream_capacity_mode).upper(),
        stream_shard_count=cfg.get_int("streamShardCount") or d.stream_shard_count,
        stream_retention_hours=cfg.get_int("streamRetentionHours") or d.stream_retention_hours,
        bedrock_model_id=cfg.get("bedrockModelId") or d.bedrock_model_id,
        bedrock_model_regions=tuple(cfg.get_object("bedrockModelRegions") or ()),
        bedrock_max_concurrency=cfg.get_int("bedrockMaxConcurrency") or d.bedrock_max_concurrency,
        bedrock_reviews_per_request=cfg.get_int("bedrockReviewsPerRequest") or d.bedrock_reviews_per_request,
        bedrock_timeout_s=cfg.get_float("bedrockTimeoutS") or d.bedrock_timeout_s,
        bedrock_max_attempts=cfg.get_int("bedrockMaxAttempts") or d.bedrock_max_attempts,
        opensearch_engine_version=cfg.get("opensearchEngineVersion") or d.opensearch_engine_version,
        opensearch_instance_type=cfg.get("opensearchInstanceType") or d.opensearch_instance_type,
        opensearch_instance_count=cfg.get_int("opensearchInstanceCount") or d.opensearch_instance_count,
        opensearch_volume_size_gb=cfg.get_int("opensearchVolumeSizeGb") or d.opensearch_volume_size_gb,
        create_service_linked_role=_bool(cfg.get_bool("createServiceLinkedRole"), d.create_service_linked_role),
        kubernetes_version=cfg.get("kubernetesVersion") or d.kubernetes_version,
        cluster_public_access_cidrs=tuple(cfg.get_object("clusterPublicAccessCidrs") or ()),
        cluster_private_endpoint_only=_bool(cfg.get_bool("clusterPrivateEndpointOnly"), False),
        control_plane_log_retention_days=cfg.get_int("controlPlaneLogRetentionDays")
        or d.control_plane_log_retention_days,
        availability_zone_ids=tuple(cfg.get_object("availabilityZoneIds") or ()),
        node_instance_type=cfg.get("eksNodeInstanceType") or d.node_instance_type,
        node_min_size=_int(cfg.get_int("eksNodeMinSize"), d.node_min_size),
        node_max_size=_int(cfg.get_int("eksNodeMaxSize"), d.node_max_size),
        node_desired_size=_int(cfg.get_int("eksNodeDesiredSize"), d.node_desired_size),
        dataflow_replicas=cfg.get_int("dataflowReplicas") or d.dataflow_replicas,
        dataflow_workers_per_process=cfg.get_int("dataflowWorkersPerProcess") or d.dataflow_workers_per_process,
        recovery_partitions=cfg.get_int("recoveryPartitions") or d.recovery_partitions,
        enrichment_generation=_int(cfg.get_int("enrichmentGeneration"), d.enrichment_generation),
        batch_job_files_expire_days=cfg.get_int("batchJobFilesExpireDays") or d.batch_job_files_expire_days,
        kinesis_start_position=cfg.get("kinesisStartPosition") or d.kinesis_start_position,
        image_tag=cfg.get("imageTag") or d.image_tag,
        bastion_instance_type=cfg.get("bastionInstanceType") or d.bastion_instance_type,
        container_log_retention_days=cfg.get_int("containerLogRetentionDays") or d.container_log_retention_days,
        alarm_email=cfg.get("alarmEmail") or d.alarm_email,
        prometheus_scraper_access_entry=_bool(cfg.get_bool("prometheusScraperAccessEntry"), False),
        alarms=_alarms(cfg),
    )
    loaded.check_cluster_access()
    return loaded


def _alarms(cfg: pulumi.Config) -> AlarmThresholds:
    """Each threshold from its `alarm<Name>` key, typed like its default."""
    d = AlarmThresholds()
    values: dict[str, int | float] = {}
    for name, key in ALARM_KEYS.items():
        default = getattr(d, name)
        read = cfg.get_float(key) if isinstance(default, float) else cfg.get_int(key)
        values[name] = default if read is None else read
    return AlarmThresholds(**values)  # type: ignore[arg-type]


def _bool(value: bool | None, default: bool) -> bool:
    return default if value is None else value


def _int(value: int | None, default: int) -> int:
    """Like `or`, but keeps an explicit 0 (a node group may scale to zero)."""
    return default if value is None else value
