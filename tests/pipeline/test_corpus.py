from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from speechmill import faults
from speechmill.pipelines.corpus import run_corpus
from speechmill.store import Store, collect_garbage
from tests.audio_fixtures import bad_inputs, speech_clip, write_wav
from tests.conftest import make_config
from tests.fakes import FakeFactory
from tests.pipeline.helpers import check_accounting, no_duplicates, rows

REPO = Path(__file__).parents[2]


def run(cfg, root, **kw):
    return run_corpus(cfg, root=str(root), factory=FakeFactory(), progress=False, **kw)


def test_bad_inputs_are_ingested_or_rejected_with_a_category(tmp_path):
    files = bad_inputs(tmp_path / "in")
    root = tmp_path / "ds"
    result = run(make_config(tmp_path / "in"), root)
    (run_id,) = result.run_ids
    check_accounting(root, run_id)
    out = dict(
        rows(
            root,
            """
        select s.url, coalesce(j.category, 'ok:' || r.orig_sample_rate || ':' || r.orig_channels
               || ':' || r.orig_codec || ':' || (select count(*) from segments g
                                               where g.recording_id = r.recording_id))
        from sources s
        left join rejects j on j.item_id = s.media_id or j.item_id = s.recording_id
        left join recordings r on r.recording_id = s.recording_id
    """,
        )
    )
    got = {name: out[str(path)] for name, path in files.items()}
    assert got == {
        "ok_16k": "ok:16000:1:pcm_s16le:1",
        "u8": "ok:16000:1:pcm_u8:1",
        "s24": "ok:16000:1:pcm_s24le:1",
        "s32": "ok:16000:1:pcm_s32le:1",
        "float": "ok:16000:1:pcm_f32le:1",
        "rate_8k": "ok:8000:1:pcm_s16le:1",
        "rate_48k": "ok:48000:1:pcm_s16le:1",
        "stereo": "ok:16000:2:pcm_s16le:1",
        "six_ch": "ok:16000:6:pcm_s16le:1",
        "mp3": "ok:16000:1:mp3float:1",
        "truncated": "ok:16000:1:pcm_s16le:1",
        "truncated_mp3": "ok:16000:1:mp3float:1",
        "corrupt": "no_speech",  # a valid header over random bytes decodes to noise
        "random": "undecodable",
        "text": "undecodable",
        "zero": "empty",
        "tiny": "too_short",
        "silent_2h": "silent",
    }
    durations = dict(
        rows(
            root, "select s.url, r.duration_s from sources s join recordings r using (recording_id)"
        )
    )
    assert durations[str(files["rate_8k"])] == pytest.approx(
        durations[str(files["ok_16k"])], abs=0.01
    )
    assert durations[str(files["silent_2h"])] == pytest.approx(7200.0)
    # the stored audio is 16 kHz mono FLAC
    import soundfile as sf

    for (uri,) in rows(root, "select audio_uri from recordings"):
        info = sf.info(str(root / uri))
        assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")


def test_idempotent_reruns_and_incremental_new_file(tmp_path, speech_dir):
    root = tmp_path / "ds"
    cfg = make_config(speech_dir)
    first = run(cfg, root)
    assert len(first.run_ids) == 1
    ids = rows(root, "select segment_id from segments order by 1")
    assert len(ids) == 3
    second = run(cfg, root)
    assert second.run_ids == [] and second.skipped == 3
    assert rows(root, "select segment_id from segments order by 1") == ids
    no_duplicates(root)
    # a second dataset built from the same input gets the same ids
    run(cfg, tmp_path / "other")
    assert rows(tmp_path / "other", "select segment_id from segments order by 1") == ids
    write_wav(speech_dir / "new.wav", speech_clip(sentence=3), 16000)
    third = run(cfg, root)
    (run3,) = third.run_ids
    assert rows(root, f"select url from sources_history where run_id = '{run3}'") == [
        (str(speech_dir / "new.wav"),)
    ]
    assert len(rows(root, "select * from segments")) == 4
    no_duplicates(root)
    check_accounting(root, run3)


def test_identical_bytes_are_stored_once_and_linked(tmp_path, speech_dir):
    shutil.copy(speech_dir / "clip0.wav", speech_dir / "copy.wav")
    root = tmp_path / "ds"
    run(make_config(speech_dir), root)
    linked = rows(root, "select recording_id, count(*) from sources group by 1 having count(*) > 1")
    assert len(linked) == 1 and linked[0][1] == 2
    assert len(rows(root, "select * from recordings")) == 3
    # later, a third copy links to the committed recording without decoding again
    shutil.copy(speech_dir / "clip0.wav", speech_dir / "copy2.wav")
    (run2,) = run(make_config(speech_dir), root).run_ids
    assert rows(root, f"select count(*) from recordings_history where run_id = '{run2}'") == [(0,)]
    assert rows(
        root, f"select recording_id is not null from sources_history where run_id = '{run2}'"
    ) == [(True,)]


def test_a_crash_inside_a_stage_leaves_nothing_visible(tmp_path, speech_dir, monkeypatch):
    root = tmp_path / "ds"
    cfg = make_config(speech_dir)
    monkeypatch.setenv(faults.ENV, "transcribe@1")
    faults.reset()
    with pytest.raises(faults.FaultInjected):
        run(cfg, root)
    monkeypatch.delenv(faults.ENV)
    store = Store(str(root))
    assert store.markers() == []
    assert rows(root, "select count(*) from recordings") == [(0,)]
    debris = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".flac" for p in debris)  # written by the failed run, invisible
    report = collect_garbage(store)
    assert report.removed and not any(root.glob("media/**/*.flac"))
    ok = run(make_config(speech_dir), root)
    assert len(ok.run_ids) == 1
    assert rows(root, "select count(*) from segments") == [(3,)]


def test_a_killed_process_is_recovered(tmp_path, speech_dir):
    root = tmp_path / "ds"
    script = textwrap.dedent(f"""
        from speechmill.pipelines.corpus import run_corpus
        from tests.conftest import make_config
        from tests.fakes import FakeFactory
        cfg = make_config({str(speech_dir)!r})
        run_corpus(cfg, root={str(root)!r}, factory=FakeFactory(), progress=False)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO), faults.ENV: "vad@1:exit"},
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    store = Store(str(root))
    assert store.markers() == []
    assert list(root.glob("runs/_active/*.json"))  # the intent of the dead run
    report = collect_garbage(store)
    assert any(r.startswith("runs/_active/") for r in report.removed)
    assert not list(root.glob("runs/_active/*.json"))
    result = run(make_config(speech_dir), root)
    assert len(result.run_ids) == 1
    check_accounting(root, result.run_ids[0])
    assert collect_garbage(store).removed == []


def test_long_runs_commit_in_parts(tmp_path, speech_dir):
    root = tmp_path / "ds"
    cfg = make_config(speech_dir, "runner:\n  commit_every: 2\n")
    result = run(cfg, root)
    assert len(result.run_ids) == 2
    assert result.run_ids[0].endswith("-p001") and result.run_ids[1].endswith("-p002")
    markers = Store(str(root)).markers()
    assert markers[1].parent_runs == (markers[0].run_id,)
    assert rows(root, "select count(*) from segments") == [(3,)]


def test_missing_paths_are_rejects_not_crashes(tmp_path, speech_dir):
    root = tmp_path / "ds"
    from speechmill.config import load_config

    cfg = load_config(
        text=f"sources:\n  - kind: local\n    paths: [{speech_dir}, {tmp_path}/nope]\n"
    )
    (_run_id,) = run(cfg, root).run_ids
    assert rows(root, "select stage, category, retryable from rejects") == [
        ("discover", "not_found", True)
    ]
    assert rows(root, "select count(*) from segments") == [(3,)]
