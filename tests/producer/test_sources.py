"""Readers on small files written here: aclImdb layout, CSV quirks, synthetic reviews, stable ids."""

from __future__ import annotations

import os

import orjson
import pytest

from producer.records import DATE_WINDOW_START_MS, USER_POOL, make_review, parse_label
from producer.sources import CsvSource, ImdbSource, SourceError, SyntheticSource


def write_imdb(root, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


IMDB_FILES = {
    "aclImdb/train/pos/10_9.txt": "Great film.<br /><br />Loved it.",
    "aclImdb/train/pos/2_8.txt": "Fine acting, fine story.",
    "aclImdb/train/neg/2_1.txt": "Dreadful, ça ne va pas.",
    "aclImdb/test/pos/0_10.txt": "A classic.",
    "aclImdb/test/neg/7_3.txt": "Boring.",
    "aclImdb/train/unsup/5_0.txt": "Not labelled: never read.",
    "aclImdb/train/pos/empty_7.txt": "   ",
}


def test_imdb_reader_ids_labels_order(tmp_path) -> None:
    write_imdb(tmp_path, IMDB_FILES)
    source = ImdbSource(tmp_path / "aclImdb")
    reviews = list(source)
    assert [(r.review_id, r.label) for r in reviews] == [
        ("imdb-train-neg-2_1", "negative"),
        ("imdb-train-pos-2_8", "positive"),
        ("imdb-train-pos-10_9", "positive"),
        ("imdb-test-pos-0_10", "positive"),
        ("imdb-test-neg-7_3", "negative"),
    ]
    assert source.total == 6 and source.skipped == 1  # the blank file
    assert reviews[2].text == "Great film.<br /><br />Loved it."  # kept as is
    assert reviews[0].text == "Dreadful, ça ne va pas."
    assert {r.source for r in reviews} == {"imdb"}


def test_imdb_split_and_parent_dir(tmp_path) -> None:
    write_imdb(tmp_path, IMDB_FILES)
    test_only = list(ImdbSource(tmp_path, "test"))  # the folder holding aclImdb/ works too
    assert [r.review_id for r in test_only] == ["imdb-test-pos-0_10", "imdb-test-neg-7_3"]


def test_imdb_errors_are_clear(tmp_path) -> None:
    with pytest.raises(SourceError, match="not a directory"):
        ImdbSource(tmp_path / "missing").files()
    (tmp_path / "train").mkdir()
    with pytest.raises(SourceError, match="no reviews"):
        ImdbSource(tmp_path).files()


CSV_TEXT = (
    "\ufeffreview,sentiment\n"
    "\"One of the other reviewers has mentioned that after watching just 1 Oz episode you'll be hooked."
    ' <br /><br />The ""wire"", indeed, is great",positive\n'
    '"A wonderful little production.\nSecond line, with a comma.",Positive\n'
    "\n"
    "I thought this was a wonderful way to spend time,negative \n"
    "No label here,meh\n"
    ",negative\n"
    "Basically there's a family where a little boy,neg\n"
)


def test_csv_reader_handles_imdb_dataset_quirks(tmp_path) -> None:
    path = tmp_path / "IMDB Dataset.csv"
    path.write_text(CSV_TEXT, encoding="utf-8")
    source = CsvSource(path)
    reviews = list(source)
    assert [(r.review_id, r.label) for r in reviews] == [
        ("imdb-dataset-1", "positive"),
        ("imdb-dataset-2", "positive"),
        ("imdb-dataset-3", "negative"),
        ("imdb-dataset-6", "negative"),
    ]
    assert reviews[0].text.endswith('<br /><br />The "wire", indeed, is great')
    assert reviews[1].text == "A wonderful little production.\nSecond line, with a comma."
    assert source.skipped == 2
    assert {r.source for r in reviews} == {"csv:IMDB Dataset.csv"}


def test_csv_columns_in_any_order_and_missing_columns(tmp_path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("Sentiment,id,Review\nnegative,1,Bad.\n", encoding="utf-8")
    assert [(r.review_id, r.text) for r in CsvSource(path)] == [("b-1", "Bad.")]
    bad = tmp_path / "c.csv"
    bad.write_text("text,label\nx,positive\n", encoding="utf-8")
    with pytest.raises(SourceError, match="'review' and 'sentiment'"):
        list(CsvSource(bad))


def test_ids_and_records_are_stable_across_runs(tmp_path) -> None:
    write_imdb(tmp_path, IMDB_FILES)
    csv_path = tmp_path / "r.csv"
    csv_path.write_text(CSV_TEXT, encoding="utf-8")
    for make in (lambda: ImdbSource(tmp_path), lambda: CsvSource(csv_path), lambda: SyntheticSource(50, 9)):
        first = [r.to_json() for r in make()]
        # touching the files changes nothing: no mtime, no clock in a record
        for path in tmp_path.rglob("*.*"):
            os.utime(path, (1, 1))
        assert [r.to_json() for r in make()] == first


def test_synthetic_reviews_are_seeded_balanced_and_varied() -> None:
    a = list(SyntheticSource(400, seed=1))
    assert [r.review_id for r in a[:2]] == ["synthetic-1-0", "synthetic-1-1"]
    assert list(SyntheticSource(400, seed=1)) == a
    assert [r.text for r in SyntheticSource(400, seed=2)] != [r.text for r in a]
    assert list(SyntheticSource(10, seed=1)) == a[:10]  # a smaller run is a prefix
    positives = sum(r.label == "positive" for r in a)
    assert 150 <= positives <= 250
    assert len({r.text for r in a}) >= 390
    assert all(len(r.text.split()) >= 5 for r in a)


def test_record_encoding_matches_the_contract() -> None:
    review = make_review("csv-1", "Très bien 👍", "positive", "csv:x.csv")
    doc = orjson.loads(review.to_json())
    assert set(doc) == {"review_id", "user_id", "date_time", "text", "label", "source"}
    assert doc["text"] == "Très bien 👍" and "Très".encode() in review.to_json()  # UTF-8, not escaped
    assert isinstance(doc["date_time"], int) and doc["date_time"] >= DATE_WINDOW_START_MS
    assert doc["user_id"].startswith("user-") and int(doc["user_id"][5:]) < USER_POOL
    assert review == make_review("csv-1", "Très bien 👍", "positive", "csv:x.csv")


@pytest.mark.parametrize(("raw", "label"), [(" Positive ", "positive"), ("NEG", "negative"), ("1", None), ("", None)])
def test_parse_label(raw: str, label: str | None) -> None:
    assert parse_label(raw) == label


def test_realistic_length_distribution_is_imdb_like() -> None:
    import random
    import statistics

    from producer.synthetic import MAX_WORDS, MIN_WORDS, realistic_length

    rng = random.Random(2024)
    lengths = [realistic_length(rng) for _ in range(5000)]
    assert 160 <= statistics.median(lengths) <= 180
    assert 205 <= statistics.mean(lengths) <= 245
    assert 0.006 <= sum(n > 900 for n in lengths) / len(lengths) <= 0.018
    assert min(lengths) >= MIN_WORDS and max(lengths) <= MAX_WORDS
    assert statistics.quantiles(lengths, n=10)[0] >= 60  # few very short reviews: the body of IMDB is 100-300


def test_realistic_synthetic_reviews_follow_the_distribution() -> None:
    import statistics

    from producer.synthetic import MAX_WORDS

    reviews = list(SyntheticSource(2000, seed=3, lengths="realistic"))
    words = [len(r.text.split()) for r in reviews]
    assert 160 <= statistics.median(words) <= 190
    assert 205 <= statistics.mean(words) <= 250
    assert 0.004 <= sum(n > 900 for n in words) / len(words) <= 0.02 and max(words) <= MAX_WORDS
    assert list(SyntheticSource(50, seed=3, lengths="realistic")) == reviews[:50]  # seeded, a prefix
    assert [r.review_id for r in reviews[:50]] == [r.review_id for r in SyntheticSource(50, seed=3)]
    assert 900 <= sum(r.label == "positive" for r in reviews) <= 1100
    assert len({r.text for r in reviews}) == len(reviews)
    long_ones = [r for r in reviews if len(r.text.split()) > 400]
    assert long_ones and all("\n\n" in r.text for r in long_ones)  # paragraphs, not one wall of text
    with pytest.raises(ValueError, match="unknown lengths"):
        list(SyntheticSource(1, seed=3, lengths="huge"))
