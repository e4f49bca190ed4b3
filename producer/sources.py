"""Review readers: the Large Movie Review Dataset (aclImdb), a `review,sentiment` CSV, and synthetic reviews.

Each reader yields `Review`s in a deterministic order with stable ids, knows its size when it can (for the
progress bar), and counts the inputs it had to skip instead of failing the run over one bad row.
Id schemes:
- aclImdb: `imdb-<split>-<pos|neg>-<file stem>`, e.g. `imdb-train-pos-123_8` for `train/pos/123_8.txt`.
- CSV: `<slug of the file stem>-<n>`, n = 1-based record number after the header (skipped rows keep their
  number, so the ids of the other rows never shift); the same file always gives the same ids.
- synthetic: `synthetic-<seed>-<index>`.
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from producer.records import Label, Review, make_review, parse_label, slug
from producer.synthetic import synthetic_reviews

log = logging.getLogger(__name__)

IMDB_SPLITS = ("train", "test")
IMDB_LABELS: dict[str, Label] = {"pos": "positive", "neg": "negative"}
# Warn about the first few bad CSV rows individually, then only count them.
MAX_ROW_WARNINGS = 5


class SourceError(ValueError):
    """The input cannot be read at all (missing directory, no header, ...); the message says what to fix."""


@dataclass
class ImdbSource:
    """`DIR/{train,test}/{pos,neg}/<id>_<rating>.txt`; `DIR` may also be the folder holding `aclImdb/`."""

    root: Path
    split: str = "both"
    skipped: int = 0
    _files: list[tuple[str, str, Path]] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return "imdb"

    def _base(self) -> Path:
        if (
            not (self.root / "train").is_dir()
            and not (self.root / "test").is_dir()
            and (self.root / "aclImdb").is_dir()
        ):
            return self.root / "aclImdb"
        return self.root

    def files(self) -> list[tuple[str, str, Path]]:
        """(split, pos|neg, path), ordered by split, then numeric review number, so pos and neg interleave."""
        if self._files is None:
            if not self.root.is_dir():
                raise SourceError(f"--imdb: {self.root} is not a directory")
            base = self._base()
            splits = IMDB_SPLITS if self.split == "both" else (self.split,)
            found: list[tuple[int, int, str, str, Path]] = []
            for split_rank, split in enumerate(splits):
                for folder in IMDB_LABELS:
                    for path in (base / split / folder).glob("*.txt"):
                        number, _, _ = path.stem.partition("_")
                        key = int(number) if number.isdigit() else sys.maxsize
                        found.append((split_rank, key, path.stem, folder, path))
            found.sort(key=lambda item: (item[0], item[1], item[2], item[3]))
            if not found:
                raise SourceError(f"--imdb: no reviews under {base} (expected {'|'.join(splits)}/{{pos,neg}}/*.txt)")
            self._files = [(splits[rank], folder, path) for rank, _, _, folder, path in found]
        return self._files

    @property
    def total(self) -> int:
        return len(self.files())

    def __iter__(self) -> Iterator[Review]:
        for split, folder, path in self.files():
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError as err:
                self.skipped += 1
                log.warning("skipping %s: %s", path, err)
                continue
            if not text.strip():
                self.skipped += 1
                log.warning("skipping %s: empty review", path)
                continue
            yield make_review(f"imdb-{split}-{folder}-{path.stem}", text, IMDB_LABELS[folder], self.name)


@dataclass
class CsvSource:
    """A CSV with `review` and `sentiment` columns (any order, any case), e.g. Kaggle's IMDB Dataset.csv.

    Text is kept exactly as written (HTML like `<br />` included: the pipeline cleans it); rows with an
    empty review or a sentiment other than positive/negative are skipped and counted.
    """

    path: Path
    skipped: int = 0
    total: int | None = None

    @property
    def name(self) -> str:
        return f"csv:{self.path.name}"

    def __iter__(self) -> Iterator[Review]:
        # csv's default 128 KiB field limit would reject a very long review; Kinesis' 1 MiB limit is the real one.
        csv.field_size_limit(max(csv.field_size_limit(), 16 * 1024 * 1024))
        prefix = slug(self.path.stem)
        try:
            handle = self.path.open(encoding="utf-8-sig", errors="replace", newline="")
        except OSError as err:
            raise SourceError(f"--csv: cannot open {self.path}: {err.strerror or err}") from err
        with handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            columns = {name.strip().lower(): i for i, name in enumerate(header or [])}
            if "review" not in columns or "sentiment" not in columns:
                raise SourceError(
                    f"--csv: {self.path} needs a header with 'review' and 'sentiment' columns, got {header!r}"
                )
            text_col, label_col = columns["review"], columns["sentiment"]
            number = 0
            for row in reader:
                if not row:
                    continue  # a blank line is not a record and takes no number
                number += 1
                text = row[text_col] if text_col < len(row) else ""
                label = parse_label(row[label_col]) if label_col < len(row) else None
                if label is None or not text.strip():
                    self.skipped += 1
                    if self.skipped <= MAX_ROW_WARNINGS:
                        why = "empty review" if label is not None else "sentiment is not positive/negative"
                        log.warning("%s: skipping record %d: %s", self.path.name, number, why)
                    continue
                yield make_review(f"{prefix}-{number}", text, label, self.name)
        if self.skipped > MAX_ROW_WARNINGS:
            log.warning("%s: skipped %d records in all", self.path.name, self.skipped)


@dataclass
class SyntheticSource:
    """`count` seeded synthetic reviews (see producer.synthetic)."""

    count: int
    seed: int
    skipped: int = 0
    lengths: str = "short"  # or "realistic": IMDB-like word counts (see producer.synthetic)

    @property
    def name(self) -> str:
        return "synthetic"

    @property
    def total(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Review]:
        return synthetic_reviews(self.count, self.seed, self.lengths)


Source = ImdbSource | CsvSource | SyntheticSource
