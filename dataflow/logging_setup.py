"""Structured logging: one line per event, `event key=value ...`, with time, level and logger."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s event=%(message)s"


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format=FORMAT)
    for noisy in ("botocore", "aiobotocore", "urllib3", "opensearch"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
