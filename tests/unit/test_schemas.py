from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import pytest

from speechmill.schema_docs import render
from speechmill.schemas import (
    SCHEMA_NOTES,
    SCHEMA_VERSION,
    TABLES,
    Attribution,
    Category,
    Recording,
    spec_of,
)
from speechmill.schemas.base import col, table

DOC = Path(__file__).parents[2] / "docs" / "schema.md"


def test_schema_doc_is_generated_from_the_code() -> None:
    assert DOC.read_text() == render(), "docs/schema.md is stale: run `make docs`"


def test_every_version_has_a_release_note() -> None:
    assert SCHEMA_VERSION in SCHEMA_NOTES


def test_the_contract_tables_exist_with_primary_keys() -> None:
    for name in ("sources", "recordings", "segments", "hypotheses", "rejects", "runs"):
        spec = TABLES[name]
        assert spec.primary_key
        assert "run_id" in spec.schema.names
        for k in spec.primary_key:
            assert not spec.schema.field(k).nullable


def test_rejects_columns_follow_the_design() -> None:
    names = TABLES["rejects"].schema.names
    assert names == [
        "item_id",
        "item_kind",
        "parent_id",
        "source_id",
        "stage",
        "category",
        "reason",
        "detail",
        "duration_s",
        "retryable",
        "run_id",
    ]


def test_nullability_comes_from_annotations() -> None:
    s = TABLES["segments"].schema
    assert s.field("language_prob").nullable
    assert not s.field("text").nullable


def test_record_round_trips_through_arrow() -> None:
    rec = Recording(
        recording_id="a" * 64,
        media_id="local:x",
        audio_uri="media/aa/aa/x.flac",
        duration_s=1.5,
        num_samples=24000,
        sample_rate=16000,
        orig_sample_rate=44100,
        orig_channels=2,
        downmix="mean",
        orig_codec="mp3",
        orig_container="mp3",
        orig_sample_format="fltp",
        orig_size_bytes=100,
        rms_dbfs=-20.0,
        language="en",
        license="cc-by-4.0",
        attribution=Attribution("ann", "talk", "http://x"),
        run_id="r",
    )
    spec = spec_of(Recording)
    t = spec.to_table([rec])
    assert t.schema.equals(spec.schema)
    row = t.to_pylist()[0]
    assert row["attribution"] == {"author": "ann", "title": "talk", "url": "http://x"}
    back = spec.from_row(row)
    assert dataclasses.replace(back, attribution=rec.attribution) == rec


def test_wrong_record_type_is_refused() -> None:
    with pytest.raises(TypeError):
        TABLES["segments"].to_row(object())


def test_undeclared_column_is_refused() -> None:
    with pytest.raises(TypeError, match="col"):

        @table("bad_table", primary_key=("a",), doc="x")
        @dataclasses.dataclass(frozen=True)
        class Bad:
            a: str = col(pa.string(), "a")
            run_id: str = dataclasses.field(default="r")


def test_categories_are_documented() -> None:
    from speechmill.schemas import CATEGORY_DOCS

    assert set(CATEGORY_DOCS) == set(Category)


def test_timestamp_columns_are_utc() -> None:
    f = TABLES["runs"].schema.field("committed_at")
    assert f.type == pa.timestamp("us", tz="UTC")
