"""`python -m dataflow.recovery restore` (the init container) and `... run -- COMMAND...` (the main process).

Both read RecoverySettings from the environment (dataflow/settings.py). A setting or layout problem ends with
one line and exit code 2, so the pod stops in Init:Error/CrashLoopBackOff with the reason in its log, rather
than starting from the stream's beginning. A write the store refused (another pod owns the objects) ends with
one line and exit code 4; `run` also exits 3 when the dataflow's last state did not reach the store.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from dataflow.logging_setup import configure_logging
from dataflow.metrics import start_metrics_server
from dataflow.recovery.align import align
from dataflow.recovery.backup import Backup
from dataflow.recovery.layout import LayoutError
from dataflow.recovery.restore import restore
from dataflow.recovery.store import Fenced, Store
from dataflow.recovery.supervisor import Exit, supervise
from dataflow.settings import SettingsError, load_recovery_settings

log = logging.getLogger("dataflow.recovery")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dataflow.recovery")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("restore", help="make RECOVERY_DIR hold this pod's partitions (the init container)")
    run = sub.add_parser(
        "run",
        help="run COMMAND with Bytewax's recovery flags appended (-r RECOVERY_DIR -s ... -b ...), backing "
        "RECOVERY_DIR up to the store (the main process)",
    )
    run.add_argument("child", nargs=argparse.REMAINDER, help="-- python -m bytewax.run dataflow.flow ...")
    args = parser.parse_args(argv)
    try:
        settings = load_recovery_settings()
    except SettingsError as err:
        configure_logging("INFO")
        log.error("%s", err)
        return 2
    configure_logging(settings.log_level)
    try:
        store = Store(settings.bucket, settings.prefix)
        if args.command == "restore":
            restore(settings, store)
            return 0
        child = args.child[1:] if args.child[:1] == ["--"] else args.child
        if not child:
            parser.error("run needs a command after --")
        backup = Backup(Path(settings.directory), store, settings.partitions)
        start_metrics_server(settings.metrics_port)
        return supervise(
            [*child, *settings.bytewax_args()],
            backup,
            settings.snapshot_interval_s,
            settings.heartbeat_file,
            before_start=lambda: align(backup, settings.ordinal, settings.align_wait_s),
            final_s=settings.final_backup_s,
        )
    except LayoutError as err:
        log.error("%s", err)
        return 2
    except Fenced as err:
        log.error("%s", err)
        return Exit.FENCED
    except (BotoCoreError, ClientError) as err:
        log.error(
            "recovery.store_unreachable error=%s: check RECOVERY_STORE_URL, the bucket, and the dataflow role's "
            "s3 permissions on it",
            err,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
