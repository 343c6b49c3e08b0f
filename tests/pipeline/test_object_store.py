"""Datasets on an object store, for real: an S3-protocol server on 127.0.0.1 (moto's).

The corpus, refine, relabel and synth pipelines run against an `s3://` root and
must commit the same tables, row for row, as the same runs against a local root
(the clean runs of the fault-injection suite). A run killed on S3 resumes to the
same tables, gc cleans the bucket, the lock is exclusive, and the read commands
work on the remote root.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from speechmill import faults
from speechmill.cli import main
from speechmill.errors import LockedError
from speechmill.store import collect_garbage
from tests.pipeline.test_faults import (  # the same inputs, configs and checks
    assert_same,
    consistent,
    fail_at,
    history,
    run,
    states,
    store_of,
    tidy,
    work,
)
from tests.s3_server import S3, s3, s3_server

__all__ = ["s3", "s3_server", "states", "work"]


def test_every_pipeline_on_s3_commits_what_a_local_root_commits(
    s3: S3, work: Path, states: dict[str, Path]
) -> None:
    root = s3.root("corpus")
    opts = s3.options_yaml
    for pipeline in ("corpus", "refine", "relabel"):
        run(pipeline, work, root, opts)
        assert_same(history(root, s3.options), history(states[f"clean-{pipeline}"]))
    synth_root = s3.root("synth")
    run("synth", work, synth_root, opts)
    assert_same(history(synth_root, s3.options), history(states["clean-synth"]))
    consistent(root, s3.options)
    tidy(root, s3.options)
    keys = s3.keys("corpus/")
    assert any(k.startswith("corpus/media/") and k.endswith(".flac") for k in keys)
    assert any(k.startswith("corpus/runs/") for k in keys)


@pytest.mark.parametrize(
    "spec",
    [
        "transcribe@2",
        pytest.param("commit.runs_row@1", marks=pytest.mark.slow),
        pytest.param("part.done", marks=pytest.mark.slow),
    ],
)
def test_a_run_killed_on_s3_resumes_and_gc_cleans_the_bucket(
    spec: str, s3: S3, work: Path, states: dict[str, Path]
) -> None:
    root = s3.root("killed")
    fail_at(spec, lambda: run("corpus", work, root, s3.options_yaml))
    consistent(root, s3.options)
    run("corpus", work, root, s3.options_yaml)
    collect_garbage(store_of(root, s3.options))
    tidy(root, s3.options)
    assert_same(history(root, s3.options), history(states["clean-corpus"]))


def test_gc_removes_debris_from_the_bucket(s3: S3, work: Path) -> None:
    root = s3.root("debris")
    fail_at("transcribe@2", lambda: run("corpus", work, root, s3.options_yaml))
    store = store_of(root, s3.options)
    before = set(s3.keys("debris/"))
    assert any("/media/" in k for k in before)
    report = collect_garbage(store)
    assert report.removed and not {f"debris/{r}" for r in report.removed} & set(s3.keys())
    tidy(root, s3.options)
    faults.reset()


def test_the_lock_on_an_object_store_is_exclusive(s3: S3) -> None:
    store = store_of(s3.root("locked"), s3.options)
    with store.lock("refresh"):
        assert "locked/runs/_lock.json" in s3.keys("locked/")
        other = store_of(s3.root("locked"), s3.options)
        with pytest.raises(LockedError, match="break-lock"), other.lock("refresh"):
            pass
    assert "locked/runs/_lock.json" not in s3.keys("locked/")


def test_read_commands_work_on_an_s3_root(
    s3: S3, work: Path, states: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = s3.root("readable")
    run("corpus", work, root, s3.options_yaml)
    cfg = tmp_path / "remote.yaml"
    cfg.write_text(f"store: {{root: {root}, options: {s3.options_yaml}}}\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["tables", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert f"dataset {root}:" in out and "segments" in out
    assert main(["query", "--config", str(cfg), "select count(*) as n from segments"]) == 0
    assert capsys.readouterr().out.split()[-1] == str(
        len(history(states["clean-corpus"])["segments"])
    )
    assert main(["rejects", "--config", str(cfg), "--by", "category"]) == 0
    assert "undecodable" in capsys.readouterr().out
    assert main(["summary", "--config", str(cfg)]) == 0
    assert "segments" in capsys.readouterr().out
    assert main(["gc", "--config", str(cfg), "--dry-run"]) == 0
    assert "would remove 0 files" in capsys.readouterr().out


def test_span_reads_fetch_only_the_bytes_of_the_span(s3: S3, tmp_path: Path) -> None:
    import numpy as np
    import soundfile as sf

    from speechmill.core.audio.io import read_span
    from speechmill.store import fs

    audio = np.random.default_rng(0).uniform(-0.5, 0.5, 16000 * 240).astype(np.float32)
    local = tmp_path / "long.flac"
    sf.write(local, audio, 16000, format="FLAC", subtype="PCM_16")
    store = store_of(s3.root("spans"), s3.options)
    path = store.path("media/long.flac")
    fs.upload(str(local), path)
    size = local.stat().st_size
    with fs.open_read(path) as f:
        part = read_span(f, 16000 * 120, 16000 * 121)
        fetched = f.cache.total_requested_bytes
    assert np.array_equal(part, read_span(str(local), 16000 * 120, 16000 * 121))
    assert np.array_equal(store.read_span(path, 5, 10), read_span(str(local), 5, 10))
    assert fetched < size / 2, (fetched, size)  # ranged reads, not the whole object
