"""The corpus graph leaves out steps with nothing to read; WriteTables writes one manifest.

Every Beam step costs a short run start-up time (a stage or more each), so steps
whose input is known to be empty when the graph is built are not built at all.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import apache_beam as beam
import pytest

from speechmill.config import Config, load_config
from speechmill.pipelines.corpus import build_corpus, plan, run_corpus
from speechmill.pipelines.plan import remove_plan
from speechmill.schemas import Reject
from speechmill.store import Store
from speechmill.store.store import manifest_dir
from speechmill.transforms.write import WriteTables
from tests.audio_fixtures import speech_clip, write_wav
from tests.conftest import make_config
from tests.fakes import FakeFactory
from tests.pipeline.test_hostile_input import _source

OPTIONAL = {"CommittedFiles", "DiscoverRejects", "SkippedSources"}


def top_level_steps(cfg: Config, root: Path) -> set[str]:
    """The labels of the corpus graph's top-level steps for what `root` holds now."""
    store = Store.from_config(cfg, str(root))
    work = plan(cfg, store, "r-graph")
    try:
        p = beam.Pipeline()
        build_corpus(
            p,
            part=work.parts[0][1],
            pre_rejects=work.pre_rejects,
            pre_sources=work.pre_sources,
            cfg=cfg,
            store=store,
            run_id="r-graph",
            factory=FakeFactory(),
            model_hash="h",
        )
        return {t.full_label for t in p.transforms_stack[0].parts}
    finally:
        work.close()
        remove_plan(store, "r-graph")


def test_a_fresh_store_builds_no_step_with_nothing_to_read(tmp_path: Path, speech_dir: Path):
    steps = top_level_steps(make_config(speech_dir), tmp_path / "ds")
    assert {"Acquire", "Dedupe", "VAD", "Transcribe", "WriteTables"} <= steps
    assert not steps & OPTIONAL


def test_the_steps_come_back_when_they_have_rows(tmp_path: Path, speech_dir: Path):
    root = tmp_path / "ds"
    cfg = make_config(speech_dir)
    run_corpus(cfg, root=str(root), factory=FakeFactory(), progress=False)
    write_wav(speech_dir / "new.wav", speech_clip(sentence=3), 16000)
    steps = top_level_steps(cfg, root)
    assert "CommittedFiles" in steps  # recordings committed: new bytes are joined with them
    missing = load_config(
        text=f"sources:\n  - kind: local\n    paths: [{speech_dir}, {tmp_path}/nope]\n"
    )
    assert "DiscoverRejects" in top_level_steps(missing, tmp_path / "other")


def _reject(run_id: str) -> Reject:
    return Reject("a", "source", None, None, "decode", "empty", "r", None, None, False, run_id)


def manifests(store: Store, run_id: str) -> list[list[dict[str, object]]]:
    return [json.loads(p.read_text()) for p in Path(manifest_dir(store, run_id)).glob("*.json")]


def test_write_tables_lists_every_file_in_one_manifest(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    sources = [dataclasses.replace(_source(f"m{i}", "t"), run_id="r1") for i in range(3)]
    with beam.Pipeline() as p:
        _ = {
            "sources": p | "Sources" >> beam.Create(sources),
            "rejects": p | "Rejects" >> beam.Create([_reject("r1")]),
            "segments": p | "NoSegments" >> beam.Create([]),
        } | WriteTables(store, "r1", max_rows=1)
    (only,) = manifests(store, "r1")
    assert sorted(str(e["table"]) for e in only) == ["rejects", "sources", "sources", "sources"]
    assert sum(f.rows for f in store.run_files("r1")) == 4


def test_write_tables_with_no_rows_writes_no_manifest(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    with beam.Pipeline() as p:
        _ = {"rejects": p | beam.Create([])} | WriteTables(store, "r2")
    assert manifests(store, "r2") == [] and store.run_files("r2") == []


def test_write_tables_refuses_a_record_of_a_table_it_was_not_given(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    with (
        pytest.raises(Exception, match="WriteTables got a SourceItem record"),
        beam.Pipeline() as p,
    ):
        _ = {"segments": p | beam.Create([_source("m", "t")])} | WriteTables(store, "r3")
