"""Every setting of the dataflow, read from the environment in this one place.

Each setting has a documented default (docs/REFERENCE.md, "Settings"). A missing or malformed value raises
`SettingsError` whose message is one line naming the variable, so `python -m bytewax.run dataflow.flow`
fails at start instead of minutes later.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, cast

# Claude 3 Haiku (the reference design's model) reached end of life on Bedrock in 2026; the current Haiku
# is reached through a cross-region inference profile.
DEFAULT_MODEL_ID = "us.anthropic.claude-haiku-4-5-20251001-v1:0"

StartKind = Literal["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"]
Auth = Literal["none", "sigv4"]
START_POSITIONS = ("TRIM_HORIZON", "LATEST")
# Generations above this would not fit the external version (dataflow/opensearch_sink/generation.py).
MAX_ENRICHMENT_GENERATION = 1_000_000


class SettingsError(ValueError):
    """A setting is missing or malformed; the message is one line naming it."""


@dataclass(frozen=True)
class StartPosition:
    """Where a shard with no checkpoint starts: TRIM_HORIZON, LATEST or AT_TIMESTAMP."""

    kind: StartKind
    timestamp: datetime | None = None

    @classmethod
    def parse(cls, raw: str) -> StartPosition:
        value = raw.strip()
        if value.upper() in START_POSITIONS:
            return cls(cast(StartKind, value.upper()))
        if value.upper().startswith("AT_TIMESTAMP:"):
            stamp = value.split(":", 1)[1]
            try:
                parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            except ValueError as err:
                raise SettingsError(f"KINESIS_START_POSITION: {stamp!r} is not an ISO-8601 timestamp") from err
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return cls("AT_TIMESTAMP", parsed)
        raise SettingsError(f"KINESIS_START_POSITION: {raw!r} is not TRIM_HORIZON, LATEST or AT_TIMESTAMP:<iso-8601>")


@dataclass(frozen=True)
class Settings:
    """The dataflow's configuration; build it with `load_settings()`."""

    aws_region: str = "us-east-1"
    kinesis_stream_name: str = "reviews"
    kinesis_start_position: StartPosition = field(default_factory=lambda: StartPosition("TRIM_HORIZON"))
    kinesis_stop_at_end: bool = False
    kinesis_partitions: int = 8
    kinesis_get_records_limit: int = 1000
    kinesis_poll_interval_s: float = 0.25
    kinesis_idle_poll_max_s: float = 1.0
    kinesis_discovery_interval_s: float = 30.0
    kinesis_backpressure_max_wait_s: float = 0.5
    bedrock_model_id: str = DEFAULT_MODEL_ID
    bedrock_max_concurrency: int = 16
    bedrock_min_concurrency: int = 1
    bedrock_initial_concurrency: int = 2
    bedrock_latency_tolerance: float = 1.5
    bedrock_latency_baseline_s: float = 300.0
    bedrock_max_timeout_attempts: int = 10
    enrich_notify_interval_s: float = 0.02
    # keys tried per shard for one enriched in this process (channels/routes.py); None = auto: 16 with fewer
    # open shards than the cluster has workers, else 1
    enrich_local_key_tries: int | None = None
    bedrock_timeout_s: float = 30.0
    bedrock_max_attempts: int = 5
    bedrock_max_throttled_attempts: int = 30
    bedrock_adaptive: bool = True
    bedrock_check_lifecycle: bool = True  # GetFoundationModel at start: one line when the model is not ACTIVE
    # 1: packing cost the only model measured here accuracy, and day 2 is proven at 1 (BENCHMARKS.md, "Packing");
    # 8 with structured output pays 47% of 1/request's cost on short reviews, 68% on long ones
    bedrock_reviews_per_request: int = 1
    # When packing: one answer of every 50th pack is asked again alone; below 97% agreement the worker stops packing
    bedrock_packing_audit_every: int = 50
    bedrock_packing_min_agreement: float = 0.97
    bedrock_packing_audit_quiet_s: float = 60.0  # no audit in a process's first minute of packs (audit.py)
    bedrock_max_tokens_per_review: int = 120
    bedrock_backoff_base_s: float = 0.5
    bedrock_backoff_max_s: float = 20.0
    bedrock_max_buffered: int = 0  # 0 = derived: 4 x concurrency x reviews per request
    bedrock_price_input_per_mtok: float | None = None
    bedrock_price_output_per_mtok: float | None = None
    bedrock_service_tier: ServiceTier = "default"  # Converse serviceTier, when the model offers it (catalog.py)
    bedrock_structured_output: StructuredOutput = "auto"  # auto: outputConfig where the model has it; off: never
    review_max_chars: int = 20_000
    opensearch_url: str = "http://127.0.0.1:9200"
    opensearch_auth: Auth = "none"
    opensearch_index: str = "processed_reviews"
    opensearch_dlq_index: str = "processed_reviews_dlq"
    opensearch_bulk_max_docs: int = 500
    opensearch_bulk_max_bytes: int = 5 * 1024 * 1024
    opensearch_timeout_s: float = 30.0
    opensearch_backoff_max_s: float = 30.0
    opensearch_auth_grace_s: float = 600.0  # role mappings take minutes to apply after a deploy
    opensearch_start_timeout_s: float = 60.0
    opensearch_max_pending_docs: int = 2000  # results the background writer may queue; 0 = write on the worker
    opensearch_refresh_interval: str = ""  # "" = the domain's default (1s); else set on the results index at start
    # Which enrichment the results are: a newer generation replaces older results, an older one never replaces
    # newer ones (dataflow/opensearch_sink/generation.py). 0 = the documents written before generations existed.
    enrichment_generation: int = 0
    metrics_port: int = 9108
    heartbeat_file: str | None = None
    log_level: str = "INFO"

    @property
    def max_buffered_reviews(self) -> int:
        """Reviews the enrichment step holds before it pushes back on the source."""
        if self.bedrock_max_buffered > 0:
            return self.bedrock_max_buffered
        return 4 * self.bedrock_max_concurrency * self.bedrock_reviews_per_request


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _int(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as err:
        raise SettingsError(f"{name}: {raw!r} is not an integer") from err
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise SettingsError(f"{name}: {value} must be {bound}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as err:
        raise SettingsError(f"{name}: {raw!r} is not a number") from err
    if value < minimum:
        raise SettingsError(f"{name}: {value} must be >= {minimum}")
    return value


def _share(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default, 0.0)
    if value > 1.0:
        raise SettingsError(f"{name}: {value} must be between 0 and 1")
    return value


def _opt_float(env: Mapping[str, str], name: str) -> float | None:
    if _get(env, name) is None:
        return None
    return _float(env, name, 0.0, 0.0)


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _get(env, name)
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}: {raw!r} is not a boolean (true/false)")


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    return _get(env, name) or default


def _refresh_interval(env: Mapping[str, str]) -> str:
    """OPENSEARCH_REFRESH_INTERVAL: an OpenSearch time value (`200ms`, `1s`, `30s`) or `-1` (no periodic refresh)."""
    raw = _str(env, "OPENSEARCH_REFRESH_INTERVAL", "")
    if raw and not re.fullmatch(r"-1|\d+(ms|s|m)", raw):
        raise SettingsError(f"OPENSEARCH_REFRESH_INTERVAL: {raw!r} is not a time value like 200ms, 1s or 30s (or -1)")
    return raw


def _log_level(env: Mapping[str, str]) -> str:
    level = _str(env, "LOG_LEVEL", "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"LOG_LEVEL: {level!r} is not DEBUG, INFO, WARNING or ERROR")
    return level


ServiceTier = Literal["priority", "default", "flex"]
StructuredOutput = Literal["auto", "off"]
SERVICE_TIERS = ("priority", "default", "flex")


def _one_of(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _str(env, name, default).strip().lower()
    if value not in allowed:
        raise SettingsError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _local_key_tries(env: Mapping[str, str]) -> int | None:
    """ENRICH_LOCAL_KEY_TRIES: `auto` (None: channels/routes.py decides from the stream and the cluster) or 1-64."""
    raw = _str(env, "ENRICH_LOCAL_KEY_TRIES", "auto").strip().lower()
    if raw == "auto":
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 64:
        raise SettingsError(f"ENRICH_LOCAL_KEY_TRIES: {raw!r} is not 'auto' or a number of tries from 1 to 64")
    return int(raw)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raise `SettingsError` naming the first bad one."""
    env = os.environ if env is None else env
    auth = _str(env, "OPENSEARCH_AUTH", "none").lower()
    if auth not in ("none", "sigv4"):
        raise SettingsError(f"OPENSEARCH_AUTH: {auth!r} is not 'sigv4' or 'none'")
    url = _str(env, "OPENSEARCH_URL", Settings.opensearch_url)
    if not url.startswith(("http://", "https://")):
        raise SettingsError(f"OPENSEARCH_URL: {url!r} must start with http:// or https://")
    level = _log_level(env)
    max_conc = _int(env, "BEDROCK_MAX_CONCURRENCY", Settings.bedrock_max_concurrency, 1, 1024)
    return Settings(
        aws_region=_str(env, "AWS_REGION", _str(env, "AWS_DEFAULT_REGION", Settings.aws_region)),
        kinesis_stream_name=_str(env, "KINESIS_STREAM_NAME", Settings.kinesis_stream_name),
        kinesis_start_position=StartPosition.parse(_str(env, "KINESIS_START_POSITION", "TRIM_HORIZON")),
        kinesis_stop_at_end=_bool(env, "KINESIS_STOP_AT_END", False),
        kinesis_partitions=_int(env, "KINESIS_PARTITIONS", Settings.kinesis_partitions, 1, 4096),
        kinesis_get_records_limit=_int(env, "KINESIS_GET_RECORDS_LIMIT", Settings.kinesis_get_records_limit, 1, 10_000),
        kinesis_poll_interval_s=_float(env, "KINESIS_POLL_INTERVAL_S", Settings.kinesis_poll_interval_s, 0.2),
        kinesis_idle_poll_max_s=_float(env, "KINESIS_IDLE_POLL_MAX_S", Settings.kinesis_idle_poll_max_s, 0.2),
        kinesis_discovery_interval_s=_float(
            env, "KINESIS_DISCOVERY_INTERVAL_S", Settings.kinesis_discovery_interval_s, 0.2
        ),
        kinesis_backpressure_max_wait_s=_float(
            env, "KINESIS_BACKPRESSURE_MAX_WAIT_S", Settings.kinesis_backpressure_max_wait_s, 0.02
        ),
        bedrock_model_id=_str(env, "BEDROCK_MODEL_ID", DEFAULT_MODEL_ID),
        bedrock_max_concurrency=max_conc,
        bedrock_min_concurrency=_int(env, "BEDROCK_MIN_CONCURRENCY", 1, 1, max_conc),
        bedrock_initial_concurrency=min(
            max_conc, _int(env, "BEDROCK_INITIAL_CONCURRENCY", Settings.bedrock_initial_concurrency, 1, 1024)
        ),
        bedrock_latency_tolerance=_float(env, "BEDROCK_LATENCY_TOLERANCE", Settings.bedrock_latency_tolerance, 1.05),
        bedrock_latency_baseline_s=_float(env, "BEDROCK_LATENCY_BASELINE_S", Settings.bedrock_latency_baseline_s, 1.0),
        bedrock_max_timeout_attempts=_int(
            env, "BEDROCK_MAX_TIMEOUT_ATTEMPTS", Settings.bedrock_max_timeout_attempts, 1, 10_000
        ),
        enrich_notify_interval_s=_float(env, "ENRICH_NOTIFY_INTERVAL_S", Settings.enrich_notify_interval_s, 0.001),
        enrich_local_key_tries=_local_key_tries(env),
        bedrock_timeout_s=_float(env, "BEDROCK_TIMEOUT_S", Settings.bedrock_timeout_s, 0.05),
        bedrock_max_attempts=_int(env, "BEDROCK_MAX_ATTEMPTS", Settings.bedrock_max_attempts, 1, 100),
        bedrock_max_throttled_attempts=_int(
            env, "BEDROCK_MAX_THROTTLED_ATTEMPTS", Settings.bedrock_max_throttled_attempts, 1, 10_000
        ),
        bedrock_adaptive=_bool(env, "BEDROCK_ADAPTIVE", True),
        bedrock_check_lifecycle=_bool(env, "BEDROCK_CHECK_LIFECYCLE", True),
        bedrock_reviews_per_request=_int(
            env, "BEDROCK_REVIEWS_PER_REQUEST", Settings.bedrock_reviews_per_request, 1, 50
        ),
        bedrock_packing_audit_every=_int(
            env, "BEDROCK_PACKING_AUDIT_EVERY", Settings.bedrock_packing_audit_every, 0, 1_000_000
        ),
        bedrock_packing_min_agreement=_share(
            env, "BEDROCK_PACKING_MIN_AGREEMENT", Settings.bedrock_packing_min_agreement
        ),
        bedrock_packing_audit_quiet_s=_float(
            env, "BEDROCK_PACKING_AUDIT_QUIET_S", Settings.bedrock_packing_audit_quiet_s, 0.0
        ),
        bedrock_max_tokens_per_review=_int(
            env, "BEDROCK_MAX_TOKENS_PER_REVIEW", Settings.bedrock_max_tokens_per_review, 16, 4096
        ),
        bedrock_backoff_base_s=_float(env, "BEDROCK_BACKOFF_BASE_S", Settings.bedrock_backoff_base_s, 0.0),
        bedrock_backoff_max_s=_float(env, "BEDROCK_BACKOFF_MAX_S", Settings.bedrock_backoff_max_s, 0.0),
        bedrock_max_buffered=_int(env, "BEDROCK_MAX_BUFFERED", 0, 0),
        bedrock_price_input_per_mtok=_opt_float(env, "BEDROCK_PRICE_INPUT_PER_MTOK"),
        bedrock_price_output_per_mtok=_opt_float(env, "BEDROCK_PRICE_OUTPUT_PER_MTOK"),
        bedrock_service_tier=cast(ServiceTier, _one_of(env, "BEDROCK_SERVICE_TIER", "default", SERVICE_TIERS)),
        bedrock_structured_output=cast(
            StructuredOutput, _one_of(env, "BEDROCK_STRUCTURED_OUTPUT", "auto", ("auto", "off"))
        ),
        review_max_chars=_int(env, "REVIEW_MAX_CHARS", Settings.review_max_chars, 1),
        opensearch_url=url.rstrip("/"),
        opensearch_auth=cast(Auth, auth),
        opensearch_index=_str(env, "OPENSEARCH_INDEX", Settings.opensearch_index),
        opensearch_dlq_index=_str(env, "OPENSEARCH_DLQ_INDEX", Settings.opensearch_dlq_index),
        opensearch_bulk_max_docs=_int(env, "OPENSEARCH_BULK_MAX_DOCS", Settings.opensearch_bulk_max_docs, 1),
        opensearch_bulk_max_bytes=_int(env, "OPENSEARCH_BULK_MAX_BYTES", Settings.opensearch_bulk_max_bytes, 1024),
        opensearch_timeout_s=_float(env, "OPENSEARCH_TIMEOUT_S", Settings.opensearch_timeout_s, 0.1),
        opensearch_backoff_max_s=_float(env, "OPENSEARCH_BACKOFF_MAX_S", Settings.opensearch_backoff_max_s, 0.0),
        opensearch_auth_grace_s=_float(env, "OPENSEARCH_AUTH_GRACE_S", Settings.opensearch_auth_grace_s, 0.0),
        opensearch_start_timeout_s=_float(env, "OPENSEARCH_START_TIMEOUT_S", Settings.opensearch_start_timeout_s, 0.0),
        opensearch_max_pending_docs=_int(env, "OPENSEARCH_MAX_PENDING_DOCS", Settings.opensearch_max_pending_docs, 0),
        opensearch_refresh_interval=_refresh_interval(env),
        enrichment_generation=_int(env, "ENRICHMENT_GENERATION", 0, 0, MAX_ENRICHMENT_GENERATION),
        metrics_port=_int(env, "METRICS_PORT", Settings.metrics_port, 0, 65535),
        heartbeat_file=_get(env, "HEARTBEAT_FILE"),
        log_level=level,
    )


@dataclass(frozen=True)
class RecoverySettings:
    """The recovery store's configuration (dataflow/recovery): read by its init step and its supervisor.

    The partitions' durable copy lives at `store_url` (s3://bucket/prefix); each pod keeps, in `directory`, the
    partitions whose index % replicas == ordinal. The pod's place comes from the StatefulSet: its name ends in
    the ordinal, BYTEWAX_REPLICAS is the cluster's size.
    """

    store_url: str
    directory: str
    partitions: int
    replicas: int
    ordinal: int
    snapshot_interval_s: float = 30.0  # Bytewax's -s, and the backup loop's period: a backup after each snapshot
    # Bytewax's -b: snapshots kept this long. A stored copy older than this cannot be resumed with the others
    # (recovery.cut_too_far): it bounds how long backups may fail, so it is well above backup_max_age_s.
    retain_s: float = 1800.0
    wait_s: float = 600.0  # how long a pod other than 0 waits for the first pod to create the set
    align_wait_s: float = 120.0  # how long a pod other than 0 waits for pod 0's resume epoch (scheduling, pulls)
    backup_max_age_s: float = 600.0  # readiness fails when a partition's stored copy was not current for this long
    final_backup_s: float = 30.0  # how long the last backup is retried after the dataflow exits (< the grace period)
    metrics_port: int = 9109  # the supervisor's /metrics (the backups' age); 0: off
    heartbeat_file: str | None = None
    log_level: str = "INFO"

    def bytewax_args(self) -> list[str]:
        """The recovery flags of `python -m bytewax.run`, from these settings (the supervisor appends them)."""
        return ["-r", self.directory, "-s", f"{self.snapshot_interval_s:g}", "-b", f"{self.retain_s:g}"]

    @property
    def bucket(self) -> str:
        return self.store_url.removeprefix("s3://").split("/", 1)[0]

    @property
    def prefix(self) -> str:
        rest = self.store_url.removeprefix("s3://").split("/", 1)
        return rest[1].strip("/") if len(rest) > 1 else ""


def load_recovery_settings(env: Mapping[str, str] | None = None) -> RecoverySettings:
    """RECOVERY_STORE_URL, RECOVERY_DIR, RECOVERY_PARTITIONS, BYTEWAX_REPLICAS, BYTEWAX_POD_NAME (or HOSTNAME)."""
    env = os.environ if env is None else env
    url = _get(env, "RECOVERY_STORE_URL")
    if url is None or not re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/[^\s]*)?", url):
        raise SettingsError(f"RECOVERY_STORE_URL: {url!r} is not s3://<bucket>/<prefix>")
    directory = _get(env, "RECOVERY_DIR")
    if directory is None:
        raise SettingsError("RECOVERY_DIR: must name the directory of this pod's recovery partitions")
    replicas = _int(env, "BYTEWAX_REPLICAS", 1, 1, 1024)
    pod = _str(env, "BYTEWAX_POD_NAME", _str(env, "HOSTNAME", ""))
    suffix = pod.rsplit("-", 1)[-1]
    if replicas == 1 and not suffix.isdigit():
        ordinal = 0
    elif not suffix.isdigit():
        raise SettingsError(f"BYTEWAX_POD_NAME: cannot derive a pod ordinal from {pod!r}")
    else:
        ordinal = int(suffix)
    if ordinal >= replicas:
        raise SettingsError(f"BYTEWAX_POD_NAME: ordinal {ordinal} of {pod!r} is not below BYTEWAX_REPLICAS={replicas}")
    partitions = _int(env, "RECOVERY_PARTITIONS", 8, 1, 4096)
    if replicas > partitions:
        raise SettingsError(
            f"BYTEWAX_REPLICAS={replicas} exceeds RECOVERY_PARTITIONS={partitions}: a pod beyond the partitions "
            "would hold no state; run at most as many pods as partitions"
        )
    return RecoverySettings(
        store_url=url.rstrip("/"),
        directory=directory,
        partitions=partitions,
        replicas=replicas,
        ordinal=ordinal,
        snapshot_interval_s=_float(env, "RECOVERY_SNAPSHOT_INTERVAL_S", RecoverySettings.snapshot_interval_s, 0.2),
        retain_s=_float(env, "RECOVERY_RETAIN_S", RecoverySettings.retain_s, 0.0),
        wait_s=_float(env, "RECOVERY_WAIT_S", RecoverySettings.wait_s, 0.0),
        align_wait_s=_float(env, "RECOVERY_ALIGN_WAIT_S", RecoverySettings.align_wait_s, 0.0),
        backup_max_age_s=_float(env, "RECOVERY_BACKUP_MAX_AGE_S", RecoverySettings.backup_max_age_s, 1.0),
        final_backup_s=_float(env, "RECOVERY_FINAL_BACKUP_S", RecoverySettings.final_backup_s, 0.0),
        metrics_port=_int(env, "RECOVERY_METRICS_PORT", RecoverySettings.metrics_port, 0, 65535),
        heartbeat_file=_get(env, "HEARTBEAT_FILE"),
        log_level=_log_level(env),
    )


@dataclass(frozen=True)
class BackfillSettings:
    """The backfill's own settings (`python -m bytewax.run dataflow.backfill`, docs/DESIGN.md section 9).

    Exactly one input: BACKFILL_ARCHIVE (a CSV or JSONL path or s3:// URI) or BACKFILL_FROM (an ISO-8601
    start of the stream range, with BACKFILL_TO its end, default: the backfill's start). The per-job limits are
    Bedrock quotas (Service Quotas, "Minimum number of records per batch inference job", "Records per batch
    inference job", "Batch inference input file size", "Sum of in-progress and submitted batch inference
    jobs"): the defaults are the usual ones, set them to your account's.
    """

    job_url: str  # s3://bucket/prefix where job inputs and outputs live
    role_arn: str  # the service role Bedrock assumes to read and write them
    archive: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    run_id: str = ""  # "" = derived from the input, the range and the model
    min_records: int = 100
    max_records: int = 50_000
    max_file_bytes: int = 1024**3
    max_concurrent_jobs: int = 20
    on_demand_below: int = 100  # fewer records than this left over (or unanswered) go to Converse instead
    max_resubmits: int = 2
    poll_interval_s: float = 60.0
    timeout_hours: int = 24
    page_records: int = 1000  # records per job input file, and so per page of answers held in memory at once


def _stamp(env: Mapping[str, str], name: str) -> datetime | None:
    raw = _get(env, name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as err:
        raise SettingsError(f"{name}: {raw!r} is not an ISO-8601 timestamp") from err
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def load_backfill_settings(env: Mapping[str, str] | None = None, now: datetime | None = None) -> BackfillSettings:
    """Read and validate the BACKFILL_* settings; raise `SettingsError` naming the first bad one."""
    env = os.environ if env is None else env
    job_url = _get(env, "BACKFILL_JOB_URL")
    if job_url is None or not re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/[^\s]*)?", job_url):
        raise SettingsError(f"BACKFILL_JOB_URL: {job_url!r} is not s3://<bucket>/<prefix> (where job files go)")
    role = _get(env, "BACKFILL_ROLE_ARN")
    if role is None or not re.fullmatch(r"arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+", role):
        raise SettingsError(f"BACKFILL_ROLE_ARN: {role!r} is not the ARN of the role Bedrock assumes for batch jobs")
    archive, start = _get(env, "BACKFILL_ARCHIVE"), _stamp(env, "BACKFILL_FROM")
    if (archive is None) == (start is None):
        raise SettingsError("BACKFILL_ARCHIVE / BACKFILL_FROM: set exactly one (an archive, or a stream range start)")
    end = _stamp(env, "BACKFILL_TO") or (None if start is None else (now or datetime.now(UTC)))
    if start is not None and end is not None and end <= start:
        raise SettingsError(f"BACKFILL_TO: {end.isoformat()} is not after BACKFILL_FROM {start.isoformat()}")
    run_id = _str(env, "BACKFILL_RUN_ID", "")
    if run_id and not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9-]{0,39}", run_id):
        raise SettingsError(f"BACKFILL_RUN_ID: {run_id!r} must be 1-40 letters, digits or '-' (it names the jobs)")
    min_records = _int(env, "BACKFILL_MIN_RECORDS", BackfillSettings.min_records, 1)
    return BackfillSettings(
        job_url=job_url.rstrip("/"),
        role_arn=role,
        archive=archive,
        start=start,
        end=end,
        run_id=run_id,
        min_records=min_records,
        max_records=_int(env, "BACKFILL_MAX_RECORDS", BackfillSettings.max_records, 2 * min_records),
        max_file_bytes=_int(env, "BACKFILL_MAX_FILE_BYTES", BackfillSettings.max_file_bytes, 64 * 1024),
        max_concurrent_jobs=_int(env, "BACKFILL_MAX_CONCURRENT_JOBS", BackfillSettings.max_concurrent_jobs, 1),
        on_demand_below=_int(env, "BACKFILL_ON_DEMAND_BELOW", BackfillSettings.on_demand_below, 0),
        max_resubmits=_int(env, "BACKFILL_MAX_RESUBMITS", BackfillSettings.max_resubmits, 0, 10),
        poll_interval_s=_float(env, "BACKFILL_POLL_INTERVAL_S", BackfillSettings.poll_interval_s, 0.05),
        timeout_hours=_int(env, "BACKFILL_TIMEOUT_HOURS", BackfillSettings.timeout_hours, 24, 168),
        page_records=_int(env, "BACKFILL_PAGE_RECORDS", BackfillSettings.page_records, 1, 99_999),
    )
