"""read_texts: every text source kind, with unreadable items as problems, never dropped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from speechmill.config import TextSource
from speechmill.errors import ConfigError, StoreError
from speechmill.schemas import Attribution, Category, Label, Segment, Utterance
from speechmill.store import Store
from speechmill.transforms.texts import RawText, read_texts, source_name
from tests.pipeline.helpers import commit_records


def read(kind: str, path: Path | str, **kw: Any) -> list[RawText]:
    return list(read_texts(TextSource(kind=kind, path=str(path), **kw)))


def good(items: list[RawText]) -> list[tuple[str, str | None]]:
    return [(r.key, r.text) for r in items if r.problem is None]


def bad(items: list[RawText]) -> dict[str, str]:
    return {r.key: r.problem.reason for r in items if r.problem is not None}


# --------------------------------------------------------------------------- text


def test_text_lines_are_keyed_by_line_number_and_blank_lines_are_not_items(tmp_path: Path):
    f = tmp_path / "lines.txt"
    f.write_bytes(b"\xef\xbb\xbfThe kettle whistled twice.\r\n\n   \nA heron stood in the reeds.\n")
    items = read("text", f)
    assert good(items) == [
        ("lines.txt:1", "The kettle whistled twice."),
        ("lines.txt:4", "A heron stood in the reeds."),
    ]
    assert all(r.source == "lines.txt" and r.problem is None for r in items)


def test_invalid_utf8_line_is_a_problem_and_reading_goes_on(tmp_path: Path):
    f = tmp_path / "mixed.txt"
    f.write_bytes(b"First good line here.\ncaf\xe9 au lait\nLast good line here.\n")
    items = read("text", f, name="mixed")
    assert good(items) == [
        ("mixed:1", "First good line here."),
        ("mixed:3", "Last good line here."),
    ]
    problem = items[1].problem
    assert items[1].key == "mixed:2" and items[1].text is None
    assert problem is not None and problem.category == Category.BAD_TEXT
    assert "line 2 is not valid UTF-8" in problem.reason
    assert "0xe9" in problem.reason and "column 4" in problem.reason


def test_max_texts_caps_the_items(tmp_path: Path):
    f = tmp_path / "many.txt"
    f.write_text("".join(f"Sentence number {i} is here.\n" for i in range(50)))
    items = read("text", f, max_texts=3)
    assert [r.key for r in items] == ["many.txt:1", "many.txt:2", "many.txt:3"]


def test_source_name_defaults_to_the_file_name(tmp_path: Path):
    assert source_name(TextSource(kind="text", path=str(tmp_path / "a" / "b.txt"))) == "b.txt"
    assert source_name(TextSource(kind="corpus", path=str(tmp_path / "root") + "/")) == "root"
    assert source_name(TextSource(kind="text", path="x.txt", name="news")) == "news"


def test_missing_file_raises_a_config_error_naming_the_path(tmp_path: Path):
    missing = tmp_path / "nowhere.txt"
    with pytest.raises(ConfigError, match=r"no such file: .*nowhere\.txt"):
        read_texts(TextSource(kind="text", path=str(missing)))  # raises before iterating
    with pytest.raises(ConfigError, match="is a folder"):
        read("jsonl", tmp_path)


# --------------------------------------------------------------------------- jsonl


def test_jsonl_reads_the_column_and_reports_each_bad_line(tmp_path: Path):
    f = tmp_path / "items.jsonl"
    lines = [
        json.dumps({"body": "Rain fell on the old tin roof.", "id": 1}),
        "",
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"title": "no body here"}),
        json.dumps({"body": None}),
        json.dumps({"body": 42}),
        json.dumps({"body": "Snow covered the quiet town."}),
    ]
    f.write_text("\n".join(lines) + "\n")
    items = read("jsonl", f, column="body")
    assert good(items) == [
        ("items.jsonl:1", "Rain fell on the old tin roof."),
        ("items.jsonl:8", "Snow covered the quiet town."),
    ]
    problems = bad(items)
    assert set(problems) == {f"items.jsonl:{n}" for n in (3, 4, 5, 6, 7)}
    assert "not valid JSON" in problems["items.jsonl:3"]
    assert "JSON list, not an object" in problems["items.jsonl:4"]
    assert "no 'body' field (fields: title)" in problems["items.jsonl:5"]
    assert "is null" in problems["items.jsonl:6"]
    assert "holds a number, not a string" in problems["items.jsonl:7"]
    assert all(r.problem.category == Category.BAD_TEXT for r in items if r.problem)


# --------------------------------------------------------------------------- csv


def test_csv_reads_the_column_and_keys_records_by_their_first_line(tmp_path: Path):
    f = tmp_path / "table.csv"
    f.write_bytes(
        b"\xef\xbb\xbfid,sentence\n"
        b'1,"A fox ran, then it stopped."\n'
        b'2,"A line that\nspans two lines."\n'
        b"3\n"
        b"\n"
        b"4,bad \xff byte here\n"
        b"5,The end of the table.\n"
    )
    items = read("csv", f, column="sentence")
    assert good(items) == [
        ("table.csv:2", "A fox ran, then it stopped."),
        ("table.csv:3", "A line that\nspans two lines."),
        ("table.csv:8", "The end of the table."),
    ]
    problems = bad(items)
    assert "none in column 'sentence'" in problems["table.csv:5"]
    assert "not valid UTF-8" in problems["table.csv:7"]


def test_csv_without_the_column_is_one_problem(tmp_path: Path):
    f = tmp_path / "t.csv"
    f.write_text("id,body\n1,Some words here.\n2,More words here.\n")
    items = read("csv", f)
    assert len(items) == 1
    assert items[0].key == "t.csv:header" and items[0].problem is not None
    assert "no column 'text' (columns: 'id', 'body')" in items[0].problem.reason


def test_empty_csv_has_no_items(tmp_path: Path):
    f = tmp_path / "empty.csv"
    f.write_text("")
    assert read("csv", f) == []


# --------------------------------------------------------------------------- parquet


def test_parquet_streams_batches_and_reports_nulls(tmp_path: Path):
    f = tmp_path / "big.parquet"
    texts = [f"Row {i} has words." if i % 1000 else None for i in range(2500)]
    pq.write_table(pa.table({"text": texts, "n": list(range(2500))}), f, row_group_size=700)
    items = read("parquet", f)
    assert len(items) == 2500
    assert items[1] == RawText("big.parquet", "big.parquet:2", "Row 1 has words.")
    assert set(bad(items)) == {"big.parquet:1", "big.parquet:1001", "big.parquet:2001"}
    assert "row 1001: column 'text' is null" in bad(items)["big.parquet:1001"]
    assert [r.key for r in read("parquet", f, max_texts=2)] == ["big.parquet:1", "big.parquet:2"]


def test_parquet_non_string_column_and_missing_column(tmp_path: Path):
    f = tmp_path / "nums.parquet"
    pq.write_table(pa.table({"text": [1, 2], "other": ["a", "b"]}), f)
    items = read("parquet", f)
    assert [r.key for r in items] == ["nums.parquet:1", "nums.parquet:2"]
    assert all("holds a number, not a string" in r.problem.reason for r in items if r.problem)
    items = read("parquet", f, column="body")
    assert len(items) == 1 and items[0].key == "nums.parquet:header"
    assert items[0].problem is not None and "no column 'body'" in items[0].problem.reason


def test_unreadable_file_is_an_io_error_item(tmp_path: Path):
    f = tmp_path / "broken.parquet"
    f.write_bytes(b"this is not a parquet file at all")
    items = read("parquet", f)
    assert len(items) == 1 and items[0].key == "broken.parquet:read"
    assert items[0].problem is not None and items[0].problem.category == Category.IO_ERROR


# --------------------------------------------------------------------------- corpus


def segment(sid: str, text: str) -> Segment:
    return Segment(
        segment_id=sid,
        recording_id="rec",
        start_sample=0,
        end_sample=16000,
        start_s=0.0,
        duration_s=1.0,
        text=text,
        language="en",
        language_prob=None,
        avg_logprob=-0.1,
        no_speech_prob=0.0,
        compression_ratio=1.0,
        num_tokens=5,
        model_id="m",
        decoder_id="d",
        license="cc0",
        attribution=Attribution(),
        run_id="",
    )


def utterance(uid: str, text: str) -> Utterance:
    return Utterance(
        utterance_id=uid,
        recording_id="rec",
        source_id="src",
        start_sample=0,
        end_sample=32000,
        start_s=0.0,
        duration_s=2.0,
        text=text,
        words=[],
        align_score=0.9,
        unaligned_words=0,
        aligner="test",
        asr_text=text,
        avg_logprob=-0.1,
        no_speech_prob=0.0,
        compression_ratio=1.0,
        language="en",
        language_prob=None,
        license="cc0",
        attribution=Attribution(),
        run_id="",
    )


def label(uid: str, rnd: int, text: str, decision: str) -> Label:
    return Label(uid, rnd, "m", "h", "d", text, text.lower(), None, None, decision, None, "")


def test_corpus_reads_segments_when_there_are_no_kept_utterances(tmp_path: Path):
    store = Store(str(tmp_path / "ds"))
    commit_records(
        store, {"segments": [segment("s2", "second segment text"), segment("s1", "first one")]}
    )
    items = read("corpus", store.root)
    assert good(items) == [("ds:s1", "first one"), ("ds:s2", "second segment text")]
    assert [r.key for r in read("corpus", store.root, max_texts=1)] == ["ds:s1"]


def test_corpus_prefers_the_latest_label_of_kept_utterances(tmp_path: Path):
    store = Store(str(tmp_path / "ds"))
    commit_records(
        store,
        {
            "segments": [segment("s1", "a segment that is not used")],
            "utterances": [utterance("u1", "aligned one"), utterance("u2", "aligned two")],
            "labels": [
                label("u1", 0, "aligned one", "seed"),
                label("u1", 1, "relabelled one", "keep"),
                label("u2", 0, "aligned two", "seed"),
                label("u2", 1, "rejected two", "reject"),
            ],
        },
    )
    items = read("corpus", store.root, name="real")
    assert good(items) == [("real:u1", "relabelled one")]
    assert items[0].source == "real"


def test_corpus_root_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="no such dataset root"):
        read("corpus", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="no committed runs"):
        read("corpus", tmp_path / "empty")
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(ConfigError, match="not a dataset root"):
        read("corpus", f)
