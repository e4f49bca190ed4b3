"""Batch-inference knobs: Bedrock's batch quotas (with its defaults), the compressed timescale, and faults.

Set from `--batch-*` flags at start and changed while running with `POST /_admin/batch` (a partial JSON object of
the fields below). The quotas are Bedrock's defaults from "Amazon Bedrock endpoints and quotas" (per model, and
adjustable per account, hence knobs). Times are real seconds on this server: a job spends `submitted_s`,
`validating_s` and `scheduled_s` in those statuses, and one hour of `timeoutDurationInHours` lasts `hour_s`.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields

GIB = 1024**3


@dataclass
class BatchKnobs:
    # Quotas (Bedrock's defaults).
    min_records: int = 100  # "Minimum number of records per batch inference job" (across all files)
    max_records_per_file: int = 50_000  # "Records per input file per batch inference job"
    max_records_per_job: int = 50_000  # "Records per batch inference job"
    max_file_bytes: int = 1 * GIB  # "Batch inference input file size"
    max_job_bytes: int = 5 * GIB  # "Batch inference job size"
    max_jobs: int = 20  # "Sum of in-progress and submitted batch inference jobs using a base model"
    # Timescale.
    submitted_s: float = 1.0
    validating_s: float = 1.0
    scheduled_s: float = 2.0
    stopping_s: float = 0.5
    hour_s: float = 60.0  # one hour of timeoutDurationInHours (24 h: 24 minutes by default)
    record_ms: float = 0.0  # added model time per record
    parallel: int = 8  # records of one job generated at once
    # Faults.
    fail_rate: float = 0.0  # probability that a job fails half way through (status Failed, `fail_message`)
    fail_message: str = "An internal error occurred while processing the job. Retry the job."
    record_error_rate: float = 0.0  # probability that a record gets a 500 `error` instead of `modelOutput`
    record_malformed_rate: float = 0.0  # probability that a record's answer breaks the reviewstream contract
    hold_scheduled: bool = False  # jobs stay Scheduled until they expire (status Expired)
    shuffle: bool = True  # output order differs from input order, as Bedrock does not guarantee it
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("fail_rate", "record_error_rate", "record_malformed_rate"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"batch {name} must be between 0 and 1, got {getattr(self, name)!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"batch {f.name} must not be negative")
        if self.parallel < 1:
            raise ValueError("batch parallel must be at least 1")

    def to_dict(self) -> dict:
        return asdict(self)

    def updated(self, changes: dict) -> BatchKnobs:
        """A new BatchKnobs with `changes` applied; ValueError on an unknown field or a bad value."""
        known = {f.name: f for f in fields(self)}
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ValueError(f"unknown batch knob(s): {', '.join(unknown)}; known: {', '.join(known)}")
        merged = {**self.to_dict(), **changes}
        try:
            return BatchKnobs(**{k: _coerce(k, v, known[k].type) for k, v in merged.items()})
        except (TypeError, ValueError) as err:
            raise ValueError(str(err)) from err


def _coerce(name: str, value: object, annotation: object) -> object:
    kind = str(annotation)
    if value is None:
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"batch {name} must be true or false")
        return value
    if kind == "str":
        return str(value)
    if kind.startswith("int"):
        return int(value)  # type: ignore[call-overload]
    return float(value)  # type: ignore[arg-type]


def add_batch_arguments(p: argparse.ArgumentParser) -> None:
    """`--batch-<knob>` flags for every BatchKnobs field."""
    g = p.add_argument_group("batch inference knobs (also changeable at run time: POST /_admin/batch)")
    defaults = BatchKnobs()
    for f in fields(BatchKnobs):
        flag = "--batch-" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if str(f.type) == "bool":
            g.add_argument(flag, dest="batch_" + f.name, action=argparse.BooleanOptionalAction, default=default)
        else:
            kind = {"int": int, "float": float, "str": str}.get(str(f.type).split(" ")[0], int)
            g.add_argument(flag, dest="batch_" + f.name, type=kind, default=default, help=f"default: {default}")


def batch_knobs_from_args(args: argparse.Namespace) -> BatchKnobs:
    return BatchKnobs(**{f.name: getattr(args, "batch_" + f.name) for f in fields(BatchKnobs)})


def batch_argv(args: argparse.Namespace) -> list[str]:
    """The `--batch-*` flags that differ from the defaults, to pass `args` on to a server process."""
    defaults = BatchKnobs()
    out: list[str] = []
    for f in fields(BatchKnobs):
        value = getattr(args, "batch_" + f.name, None)
        if value is None or value == getattr(defaults, f.name):
            continue
        flag = "--batch-" + f.name.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + flag[2:])
        else:
            out += [flag, str(value)]
    return out
