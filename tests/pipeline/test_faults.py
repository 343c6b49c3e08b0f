"""Fault injection: kill every pipeline at many points, resume, and prove nothing is lost.

Each scenario starts from a committed state, runs a pipeline with
`SPEECHMILL_FAULT=<point>` so it fails at that point (speechmill/faults.py), checks
that what is visible is still consistent (every marker's files exist), runs the
same command again without the fault, runs `gc`, and then requires:

* the committed tables equal a clean run's row for row (every column but `run_id`
  and the discovery time; `<table>_history`, so a duplicate would show);
* no file under `tables/` that no marker lists, no torn temporary file, no
  manifest and no intent left behind; every stored media file is referenced.

In-process scenarios use `raise` (a BaseException, so per-item handlers cannot
swallow it); the subprocess ones use `exit` (`os._exit`) and SIGKILL from outside.
The full list runs with `-m slow`; the default suite runs the points marked fast.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from speechmill import faults
from speechmill.config import Config, load_config
from speechmill.pipelines.corpus import run_corpus
from speechmill.pipelines.refine import run_refine
from speechmill.pipelines.relabel import run_round
from speechmill.pipelines.synth import run_synth
from speechmill.schemas import TABLES
from speechmill.store import Store, collect_garbage, connect, fs
from tests.audio_fixtures import speech_clip, write_wav
from tests.fakes import FakeFactory

REPO = Path(__file__).parents[2]
VOLATILE = {"run_id", "discovered_at"}

# (pipeline, fault spec, in the default suite?) — 21 distinct points in all
SCENARIOS: list[tuple[str, str, bool]] = [
    ("corpus", "decode@1", False),
    ("corpus", "vad@2", False),
    ("corpus", "transcribe@2", True),
    ("corpus", "write.part@1", False),
    ("corpus", "write.manifest", False),
    ("corpus", "store.begin", False),
    ("corpus", "commit.begin", False),
    ("corpus", "commit.runs_row@1", False),
    ("corpus", "commit.marker", True),
    ("corpus", "commit.done@1", True),
    ("corpus", "part.done", True),
    ("gc", "gc.delete@1", True),
    ("refine", "align@1", True),
    ("refine", "refine.decode@2", False),
    ("refine", "filter", False),
    ("refine", "commit.marker", False),
    ("relabel", "relabel.gate", True),
    ("relabel", "commit.runs_row", False),
    ("synth", "synth.text@2", False),
    ("synth", "synth.tts@3", False),
    ("synth", "synth.augment@1", False),
    ("synth", "synth.asr@2", True),
    ("synth", "synth.real", True),
    ("synth", "write.part@1", False),
]


def test_the_scenarios_cover_at_least_20_distinct_points() -> None:
    points = {spec.split("@")[0].split(":")[0] for _, spec, _ in SCENARIOS}
    assert points <= set(faults.POINTS) and len(points) >= 20
    assert points == set(faults.POINTS)


# ------------------------------------------------------------------------- inputs


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("faults")
    src = tmp / "in"
    src.mkdir()
    for i in range(3):  # long enough for two utterances each (refine) at 2 s minimum
        speech = [speech_clip(sentence=(i + k) % 5) for k in range(2)]
        gap = np.zeros(8000, np.float32)
        write_wav(src / f"talk{i}.wav", np.concatenate([speech[0], gap, speech[1], gap]), 16000)
    (src / "broken.wav").write_bytes(b"RIFF....WAVEfmt not really")
    texts = tmp / "texts.txt"
    texts.write_text(
        "The ferry leaves the harbour early on weekdays.\n"
        "Our library opened a reading room in the spring.\n"
        "<p>markup is a bad text</p>\n"
        "Bring a torch and something warm to drink.\n",
        encoding="utf-8",
    )
    return tmp


def config(work: Path, root: Path | str, options: str = "{}") -> Config:
    return load_config(
        text=f"""
store: {{root: {root}, options: {options}}}
sources: [{{kind: local, name: talks, paths: [{work / "in"}], language: en}}]
asr: {{beam_size: 5, n_best: 3, batch_size: 2}}
runner: {{commit_every: 2}}
filters: {{min_duration_s: 0.5, disable: [speech_rate, label_agreement, alignment, hallucination]}}
relabel: {{batch_size: 2}}
synth:
  texts: [{{kind: text, path: {work / "texts.txt"}, name: lines}}]
  voices: [{{engine: piper}}]  # byte-reproducible with zero noise scales (espeak-ng is not)
  noise_scale: {{low: 0, high: 0}}
  noise_w_scale: {{low: 0, high: 0}}
  augment: {{noise_p: 0.5, reverb_p: 0.3, speed_p: 0, telephone_p: 0, codec_p: 0, masking_p: 0}}
  real_root: {work / "refined"}
  real_ratio: 0.3
"""
    )


def aligner():
    from speechmill.pipelines.refine import aligner_factory

    return aligner_factory(load_config(text="").align, "bundled:tiny.en", "cpu", "int8")


def run(pipeline: str, work: Path, root: Path | str, options: str = "{}") -> None:
    cfg = config(work, root, options)
    if pipeline in ("corpus", "gc"):
        run_corpus(cfg, factory=FakeFactory(), progress=False)
    elif pipeline == "refine":
        run_refine(cfg, asr=FakeFactory(), aligner=aligner())
    elif pipeline == "relabel":
        run_round(cfg, teacher="fake", round_k=1, factory=FakeFactory(), progress=False)
    else:
        run_synth(cfg, asr=FakeFactory(), progress=False)


@pytest.fixture(scope="module")
def states(work: Path) -> dict[str, Path]:
    """Per pipeline: the committed state it starts from, and a clean run's result.

    One chain of clean runs: corpus -> refine -> relabel, and synth (which mixes in
    real pairs from the refined state).
    """
    empty = work / "empty"
    empty.mkdir()
    out = {"corpus": empty, "gc": empty, "synth": empty}
    before = empty
    for pipeline in ("corpus", "refine", "relabel"):
        clean = work / f"clean-{pipeline}"
        shutil.copytree(before, clean)
        run(pipeline, work, clean)
        out[pipeline], out[f"clean-{pipeline}"] = before, clean
        before = clean
    shutil.copytree(out["clean-refine"], work / "refined")
    out["clean-gc"] = out["clean-corpus"]
    out["clean-synth"] = work / "clean-synth"
    run("synth", work, out["clean-synth"])
    return out


# ------------------------------------------------------------------------- checks


def store_of(root: Path | str, options: dict[str, str] | None = None) -> Store:
    from speechmill.config import StoreOptions

    return Store(str(root), StoreOptions(**(options or {})))


def history(root: Path | str, options: dict[str, str] | None = None) -> dict[str, list[tuple]]:
    con = connect(store_of(root, options))
    try:
        out = {}
        for name, spec in TABLES.items():
            if name == "runs":
                continue
            cols = [c.name for c in spec.columns if c.name not in VOLATILE]
            order = ", ".join(f'"{k}"' for k in spec.primary_key)
            sql = f"select {', '.join(map(repr, cols)).replace(chr(39), chr(34))} "
            out[name] = con.execute(f'{sql} from "{name}_history" order by {order}').fetchall()
        return out
    finally:
        con.close()


def consistent(root: Path | str, options: dict[str, str] | None = None) -> None:
    """What a reader sees right after a crash: every marker's files exist."""
    store = store_of(root, options)
    for m in store.markers():
        for f in m.files:
            assert fs.exists(store.path(f.path)), f"{m.run_id} lists missing {f.path}"


def tidy(root: Path | str, options: dict[str, str] | None = None) -> None:
    """After gc: nothing but committed files and referenced media (local or object store)."""
    store = store_of(root, options)
    listed = {f.path for m in store.markers() for f in m.files}
    stored = {fs.relative(store.root, i.path) for i in fs.walk(store.path("tables"))}
    assert stored == listed, f"unlisted: {sorted(stored - listed)[:5]}"
    leftovers = [
        rel
        for rel in (fs.relative(store.root, i.path) for i in fs.walk(store.path("runs")))
        if rel.count("/") != 1 or not rel.endswith(".json") or "/.tmp-" in rel
    ]
    assert leftovers == []
    assert collect_garbage(store, dry_run=True).removed == []


def fail_at(spec: str, action: Callable[[], object]) -> None:
    os.environ[faults.ENV] = spec
    faults.reset()
    try:
        with pytest.raises(BaseException) as info:
            action()
        assert "fault injection" in str(info.value) or isinstance(
            info.value, faults.FaultInjected
        ), repr(info.value)
    finally:
        del os.environ[faults.ENV]
        faults.reset()


def resume_and_compare(pipeline: str, work: Path, root: Path, states: dict[str, Path]) -> None:
    run(pipeline, work, root)
    collect_garbage(Store(str(root)))
    tidy(root)
    assert_same(history(root), history(states[f"clean-{pipeline}"]))


def assert_same(got: dict[str, list[tuple]], want: dict[str, list[tuple]]) -> None:
    """Table by table, row by row; the first difference named by column."""
    for name, spec in TABLES.items():
        if name not in want:
            continue
        cols = [c.name for c in spec.columns if c.name not in VOLATILE]
        a, b = got[name], want[name]
        assert len(a) == len(b), f"{name}: {len(a)} rows, a clean run has {len(b)}"
        for ra, rb in zip(a, b, strict=True):
            diff = [(c, x, y) for c, x, y in zip(cols, ra, rb, strict=True) if x != y]
            assert not diff, f"{name} {ra[: len(spec.primary_key)]}: {diff[:3]}"


@pytest.mark.parametrize(
    ("pipeline", "spec"),
    [
        pytest.param(p, s, marks=() if fast else pytest.mark.slow, id=f"{p}-{s}")
        for p, s, fast in SCENARIOS
    ],
)
def test_a_run_killed_at_any_point_resumes_to_the_clean_result(
    pipeline: str, spec: str, work: Path, states: dict[str, Path], tmp_path: Path
) -> None:
    root = tmp_path / "ds"
    shutil.copytree(states[pipeline], root)
    if pipeline == "gc":
        fail_at("transcribe@2", lambda: run("corpus", work, root))  # debris to collect
        assert list((root / "media").rglob("*.flac"))
        fail_at(spec, lambda: collect_garbage(Store(str(root))))
        consistent(root)
        collect_garbage(Store(str(root)))
        tidy(root)
    else:
        fail_at(spec, lambda: run(pipeline, work, root))
        consistent(root)
    resume_and_compare("corpus" if pipeline == "gc" else pipeline, work, root, states)


# ------------------------------------------------------------------- other processes


SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tests.pipeline.test_faults import run
    run(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
    """
)


def child(pipeline: str, work: Path, root: Path, fault: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(faults.ENV, None)
    if fault:
        env[faults.ENV] = fault
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, pipeline, str(work), str(root)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    "spec", ["commit.marker:exit", pytest.param("write.part@1:kill", marks=pytest.mark.slow)]
)
def test_a_process_that_dies_mid_commit_leaves_a_state_the_next_run_repairs(
    spec: str, work: Path, states: dict[str, Path], tmp_path: Path
) -> None:
    root = tmp_path / "ds"
    shutil.copytree(states["corpus"], root)
    proc = child("corpus", work, root, spec)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode in (3, -signal.SIGKILL), err[-2000:]
    consistent(root)
    if spec.startswith("commit.marker"):
        assert list((root / "runs").glob(".tmp-*"))  # the torn marker, never read
    resume_and_compare("corpus", work, root, states)


def _sigkill_after(delay_s: float, work: Path, root: Path) -> None:
    proc = child("corpus", work, root)
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


@pytest.mark.parametrize(
    "delay_s",
    [3.0, pytest.param(1.5, marks=pytest.mark.slow), pytest.param(5.0, marks=pytest.mark.slow)],
)
def test_sigkill_from_outside_at_any_time_loses_nothing_committed(
    delay_s: float, work: Path, states: dict[str, Path], tmp_path: Path
) -> None:
    root = tmp_path / "ds"
    shutil.copytree(states["corpus"], root)
    _sigkill_after(delay_s, work, root)
    consistent(root)
    committed_before = {m.run_id for m in Store(str(root)).markers()}
    resume_and_compare("corpus", work, root, states)
    assert committed_before <= {m.run_id for m in Store(str(root)).markers()}


# ------------------------------------------------------------------- accounting
# Every input of a pipeline has children or exactly one reject (design.md). The
# clean runs above are the inputs: one per pipeline.


def _q(root: Path, sql: str) -> list[tuple]:
    con = connect(Store(str(root)))
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_accounting_corpus(states: dict[str, Path]) -> None:
    from tests.pipeline.helpers import check_accounting

    root = states["clean-corpus"]
    for m in Store(str(root)).markers():
        check_accounting(root, m.run_id)
    listed = len(list((Path(states["corpus"]).parent / "in").iterdir()))
    assert _q(root, "select count(*) from sources") == [(listed,)]


def test_accounting_refine(states: dict[str, Path]) -> None:
    root = states["clean-refine"]
    # every recording: utterances, or one recording-level reject of the align stage
    bad = _q(
        root,
        """select r.recording_id,
             (select count(*) from utterances u where u.recording_id = r.recording_id),
             (select count(*) from rejects j where j.item_id = r.recording_id
                and j.stage = 'align')
           from recordings r""",
    )
    assert bad and all((n > 0) != (k == 1) and k <= 1 for _, n, k in bad), bad
    # every utterance: exactly one round-0 label; a `reject` label <=> one filter reject
    rows = _q(
        root,
        """select u.utterance_id, count(l.utterance_id),
             count(*) filter (where l.decision = 'reject'),
             (select count(*) from rejects j where j.item_id = u.utterance_id)
           from utterances u left join labels l on l.utterance_id = u.utterance_id
             and l.round = 0 group by 1""",
    )
    assert rows and all(n == 1 and rej == k for _, n, rej, k in rows), rows


def test_accounting_relabel(states: dict[str, Path]) -> None:
    root = states["clean-relabel"]
    pool = _q(states["clean-refine"], "select utterance_id from kept_utterances order by 1")
    rows = _q(
        root,
        """select l.utterance_id, l.decision,
             (select count(*) from rejects j where j.item_id = l.utterance_id
                and j.stage = 'relabel-1')
           from labels l where l.round = 1 order by 1""",
    )
    assert [r[:1] for r in rows] == pool and pool
    assert all((decision == "reject") == (k == 1) and k <= 1 for _, decision, k in rows)


def test_accounting_synth(states: dict[str, Path], work: Path) -> None:
    root = states["clean-synth"]
    lines = (work / "texts.txt").read_text(encoding="utf-8").splitlines()
    text_rejects = _q(root, "select item_id from rejects where item_kind = 'text'")
    item_rejects = _q(root, "select item_id from rejects where item_kind = 'synth_item'")
    synthetic = _q(root, "select count(*) from pairs where is_synthetic")[0][0]
    # one sentence per line, one variant each: a pair or a reject per text
    assert len(text_rejects) == 1 and synthetic + len(item_rejects) == len(lines) - 1
    real = _q(root, "select count(*) from pairs where not is_synthetic")[0][0]
    assert real >= 1  # the real-speech mix-in ran and is accounted as pairs


@pytest.mark.parametrize("spec", ["transcribe", "part.done", "transcribe@2"])
def test_a_killed_multi_part_run_redoes_at_most_the_part_it_was_in(
    spec: str, work: Path, states: dict[str, Path], tmp_path: Path
) -> None:
    root = tmp_path / "ds"
    shutil.copytree(states["corpus"], root)
    every = config(work, root).runner.commit_every
    total = len(list((work / "in").iterdir()))
    fail_at(spec, lambda: run("corpus", work, root))
    before = Store(str(root)).markers()
    committed = sum(int(m.extra["items"]) for m in before)
    assert committed % every == 0 and committed < total  # whole parts, never a torn one
    run("corpus", work, root)
    after = [m for m in Store(str(root)).markers() if m.run_id not in {b.run_id for b in before}]
    redone = sum(int(m.extra["items"]) for m in after)
    # the rerun processes exactly what no committed part holds: the work lost to the
    # kill is the part in progress, at most `commit_every` items
    assert redone == total - committed
    assert after[0].extra["skipped"] == committed
    assert_same(history(root), history(states["clean-corpus"]))
