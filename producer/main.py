"""reviewstream producer: put customer reviews on a Kinesis data stream, one JSON record per review.

Runs as `python producer/main.py ...` or `python -m producer.main ...`. The Kinesis endpoint is whatever
botocore resolves: real AWS by default, or a local emulator through the standard `AWS_ENDPOINT_URL_KINESIS`
(or `AWS_ENDPOINT_URL`) variable, so there is one code path for both.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the `producer` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import logging
import os
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

from producer.kinesis_writer import (
    Backoff,
    Entry,
    KinesisWriter,
    WriteAborted,
    WriteStats,
)
from producer.records import Review
from producer.sources import CsvSource, ImdbSource, Source, SourceError, SyntheticSource
from producer.synthetic import LENGTHS

log = logging.getLogger("producer")

DEFAULT_SYNTHETIC = 1000
DEFAULT_SEED = 42
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DESCRIPTION = f"""\
Put customer reviews on an Amazon Kinesis data stream, one JSON record per review:
  {{"review_id", "user_id", "date_time" (epoch ms), "text", "label" (positive|negative), "source"}}
with the review_id as partition key. Choose one source: --imdb, --csv or --synthetic (the default, with
{DEFAULT_SYNTHETIC} reviews, when none is given).
"""

EPILOG = """\
ids (stable: re-sending the same input sends the same ids, so the pipeline overwrites, never duplicates):
  --imdb       imdb-<split>-<pos|neg>-<file stem>   e.g. imdb-train-pos-123_8 for train/pos/123_8.txt
  --csv        <file stem, lowercased, [^a-z0-9_] runs -> '-'>-<n>, n = 1-based record number after the header
  --synthetic  synthetic-<seed>-<index>
  user_id is user-NNNNN and date_time a point in 2024, both derived from a hash of the review id.

endpoint and credentials: boto3's standard chain. For a local emulator set AWS_ENDPOINT_URL_KINESIS
(or AWS_ENDPOINT_URL), e.g. AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:4567. The stream must exist.

sending: PutRecords batches of up to 500 records and 5 MiB; a record over 1 MiB is reported as failed and
not sent. Failed entries of a partial failure, and whole calls that fail with throttling, 5xx or
connection errors, are retried with exponential backoff and full jitter, up to --max-retries times. A
whole call that still fails (or cannot succeed: missing stream, access denied) aborts the run; records
not attempted are then reported as failed too.

output: a progress bar on stderr (terminals only), logs on stderr, and one summary line on stdout:
  sent=N retried=N failed=N skipped=N rate=X reviews/s elapsed=Ys
retried counts record re-sends; skipped counts unreadable input rows/files. With --dry-run the records
go to stdout as JSON lines and the summary to stderr.

exit status: 0 all sent, 1 some records failed (listed in --failed-file), 2 bad arguments or input,
130 interrupted.
"""


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {raw}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="producer/main.py",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = parser.add_argument_group("input (choose one)").add_mutually_exclusive_group()
    src.add_argument(
        "--imdb",
        type=Path,
        metavar="DIR",
        help="Large Movie Review Dataset folder (aclImdb, or its parent): DIR/{train,test}/{pos,neg}/*.txt; "
        "the label comes from the folder",
    )
    src.add_argument(
        "--csv",
        type=Path,
        metavar="FILE",
        help="CSV with 'review' and 'sentiment' (positive|negative) columns, e.g. IMDB Dataset.csv; "
        "text is sent as is (HTML such as <br /> included), invalid rows are skipped and counted",
    )
    src.add_argument(
        "--synthetic",
        type=_non_negative_int,
        metavar="N",
        help=f"N seeded synthetic reviews with known labels (default source: {DEFAULT_SYNTHETIC} reviews)",
    )
    parser.add_argument(
        "--lengths",
        choices=LENGTHS,
        default="short",
        help="with --synthetic: review lengths, short (15-60 words) or realistic (IMDB-like: median ~170 words, "
        "tail to 2,500) (default: short)",
    )
    parser.add_argument(
        "--split",
        choices=("train", "test", "both"),
        default="both",
        help="with --imdb: which split to read (default: both, train first)",
    )
    sel = parser.add_argument_group("selection")
    sel.add_argument("--limit", type=_non_negative_int, metavar="N", help="send at most N reviews")
    sel.add_argument(
        "--shuffle",
        action="store_true",
        help="send in a seeded random order (reads the whole input first); --limit then takes a random sample",
    )
    sel.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"seed for --synthetic and --shuffle (default: {DEFAULT_SEED})",
    )
    out = parser.add_argument_group("sending")
    out.add_argument(
        "--stream",
        default=os.environ.get("KINESIS_STREAM_NAME") or "reviews",
        help="stream name (default: $KINESIS_STREAM_NAME, else 'reviews'; now: %(default)s)",
    )
    out.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION") or None,
        help="AWS region (default: $AWS_REGION, else boto3's own default such as $AWS_DEFAULT_REGION)",
    )
    out.add_argument(
        "--rate",
        type=_non_negative_float,
        default=0.0,
        metavar="R",
        help="records per second, paced with a token bucket (default: 0 = as fast as possible)",
    )
    out.add_argument(
        "--max-retries",
        type=_non_negative_int,
        default=8,
        metavar="N",
        help="retries per batch for failed entries and failed calls (default: %(default)s)",
    )
    out.add_argument(
        "--backoff-base",
        type=_non_negative_float,
        default=0.1,
        metavar="S",
        help="backoff: retry n waits uniform(0, min(max, base * 2**n)) seconds (default: %(default)s)",
    )
    out.add_argument(
        "--backoff-max",
        type=_non_negative_float,
        default=5.0,
        metavar="S",
        help="backoff cap in seconds (default: %(default)s)",
    )
    out.add_argument(
        "--failed-file",
        type=Path,
        metavar="FILE",
        help="write the records that finally failed here, one 'review_id<TAB>error_code<TAB>message' line "
        "each (written, possibly empty, on every run)",
    )
    out.add_argument("--dry-run", action="store_true", help="print the records as JSON lines; send nothing")
    ui = parser.add_argument_group("output")
    ui.add_argument("-q", "--quiet", action="store_true", help="no progress bar, warnings and errors only")
    ui.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def make_source(args: argparse.Namespace) -> Source:
    if args.imdb is not None:
        return ImdbSource(args.imdb, args.split)
    if args.csv is not None:
        return CsvSource(args.csv)
    count = DEFAULT_SYNTHETIC if args.synthetic is None else args.synthetic
    return SyntheticSource(count, args.seed, lengths=args.lengths)


def select(source: Source, *, shuffle: bool, seed: int, limit: int | None) -> tuple[Iterator[Review], int | None]:
    """The reviews to send and how many there will be (None when unknown until read)."""
    if shuffle:
        reviews = list(source)
        random.Random(seed).shuffle(reviews)
        chosen = reviews[:limit] if limit is not None else reviews
        return iter(chosen), len(chosen)
    total = source.total
    if limit is not None:
        total = limit if total is None else min(total, limit)
    return islice(iter(source), limit), total


def to_entry(review: Review) -> Entry:
    return Entry(review.review_id, review.to_json(), review.review_id)


def summary_line(stats: WriteStats, skipped: int, elapsed: float) -> str:
    rate = stats.sent / elapsed if elapsed > 0 else 0.0
    return (
        f"sent={stats.sent} retried={stats.retried} failed={stats.failed} skipped={skipped} "
        f"rate={rate:.1f} reviews/s elapsed={elapsed:.2f}s"
    )


def make_client(region: str | None):  # -> KinesisClient
    """A Kinesis client with botocore's retries off (the writer retries) and the standard endpoint chain."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=10,
        read_timeout=60,
        user_agent_extra="reviewstream-producer",
    )
    return boto3.session.Session().client("kinesis", region_name=region, config=config)


def write_failed(path: Path, stats: WriteStats) -> None:
    lines = (f"{f.review_id}\t{f.error_code}\t{' '.join(f.error_message.split())}\n" for f in stats.failures)
    path.write_text("".join(lines), encoding="utf-8")


def dry_run(reviews: Iterable[Review]) -> int:
    out = sys.stdout.buffer
    count = 0
    for review in reviews:
        out.write(review.to_json() + b"\n")
        count += 1
    out.flush()
    return count


def setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not verbose:
        for noisy in ("botocore", "boto3", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def run(args: argparse.Namespace) -> int:
    source = make_source(args)
    started = time.monotonic()
    try:
        reviews, total = select(source, shuffle=args.shuffle, seed=args.seed, limit=args.limit)
        if args.dry_run:
            count = dry_run(reviews)
            summary = summary_line(WriteStats(), source.skipped, time.monotonic() - started)
            print(f"{summary} dry_run={count}", file=sys.stderr)
            return 0
    except SourceError as err:
        log.error("%s", err)
        return EXIT_USAGE

    from botocore.exceptions import BotoCoreError, NoRegionError
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    try:
        client = make_client(args.region)
    except NoRegionError:
        log.error("no AWS region: pass --region or set AWS_REGION")
        return EXIT_USAGE
    except BotoCoreError as err:  # e.g. a named profile that does not exist
        log.error("cannot create the Kinesis client: %s", err)
        return EXIT_USAGE
    log.info(
        "sending %s reviews from %s to stream %r at %s",
        "?" if total is None else total,
        source.name,
        args.stream,
        client.meta.endpoint_url,
    )
    bar = tqdm(total=total, unit="rev", disable=args.quiet or not sys.stderr.isatty(), file=sys.stderr)
    writer = KinesisWriter(
        client,
        args.stream,
        max_retries=args.max_retries,
        backoff=Backoff(args.backoff_base, args.backoff_max),
        on_progress=bar.update,
    )
    code = 0
    started = time.monotonic()
    try:
        with logging_redirect_tqdm(), bar:
            writer.write((to_entry(r) for r in reviews), rate=args.rate)
    except WriteAborted as err:
        log.error("aborted: %s", err)
        code = EXIT_FAILED
    except SourceError as err:
        log.error("%s", err)
        code = EXIT_USAGE
    except KeyboardInterrupt:
        log.error("interrupted; the batch in flight may or may not have landed")
        code = EXIT_INTERRUPTED
    elapsed = time.monotonic() - started
    stats = writer.stats
    if stats.failures:
        log.error("%d records failed: %s", stats.failed, stats.failure_codes())
        code = code or EXIT_FAILED
    if args.failed_file is not None:
        write_failed(args.failed_file, stats)
    print(summary_line(stats, source.skipped, elapsed), flush=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.quiet, args.verbose)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
