"""Does the corpus pipeline's own cost stay flat as the corpus grows? A simulation.

    .venv/bin/python benchmarks/scale_sim.py pipeline 1000 10000 100000
    .venv/bin/python benchmarks/scale_sim.py views --runs 10000 --files 100

`pipeline`: for each size N, a fresh dataset of N synthetic recordings (2-3 s of speech each,
distinct bytes, FLAC) goes through the real corpus pipeline (discover, plan, fetch
and decode, VAD, ASR, write, commit in parts of `runner.commit_every`) in its own
process, with a fake ASR backend whose cost is a constant per audio second (it
sleeps, so the model's time is known exactly and subtracted). Printed per size:
wall time, the pipeline's own time per item (wall minus the fake model's time,
divided by N), its CPU time per item (user + system, which other work on the machine
disturbs far less than wall time) and the process's peak resident memory (the DirectRunner runs the
workers in the driver's process, so this is an upper bound on the driver's), then
the ratios N_max / N_min. Targets: per-item overhead <= 1.2x, peak memory <= 1.5x.

`views`: a dataset of R committed runs with F part files each is written (tiny
files, real markers); printed: the time to open it (read the markers and create the
DuckDB views) and to count the rows of one table.

Benchmarks print; they never assert a time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ASR_S_PER_AUDIO_S = 0.002  # the fake model's cost: 2 ms per second of audio


def make_audio(folder: Path, n: int) -> None:
    """n short FLAC files of speech (espeak-ng sentences) with distinct bytes (seeded noise)."""
    import soundfile as sf

    from tests.audio_fixtures import speech_clip

    clips = [speech_clip(sentence=k) for k in range(5)]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sub = folder / f"{i // 1000:04d}"
        if i % 1000 == 0:
            sub.mkdir(exist_ok=True)
        clip = clips[i % len(clips)]
        x = clip + np.random.default_rng(i).normal(0, 0.002, clip.size).astype(np.float32)
        sf.write(sub / f"{i:07d}.flac", x, 16000, format="FLAC", subtype="PCM_16")


@dataclass(frozen=True)
class SleepyFactory:
    """A fake ASR backend (the tests' FakeBackend) that costs a constant per audio second."""

    model_id: str = "fake"

    def __call__(self):
        from tests.fakes import FakeBackend

        class Sleepy(FakeBackend):
            def decode(self, items, options, normalizer, feature_transform=None):
                time.sleep(ASR_S_PER_AUDIO_S * sum(len(it.audio) for it in items) / 16000)
                return super().decode(items, options, normalizer, feature_transform)

        return Sleepy()

    def fingerprint(self) -> str:
        return "sleepy"


def _cpu_s() -> float:
    """CPU seconds used by this process and its children so far (user + system)."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def one_size(audio: str, root: str) -> dict[str, float]:
    """Run the corpus pipeline on `audio` into `root` (in this process); measure it."""
    from speechmill.config import load_config
    from speechmill.pipelines.corpus import run_corpus
    from speechmill.store import Store, connect

    cfg = load_config(
        text=f"store: {{root: {root}}}\n"
        f"sources: [{{kind: local, name: sim, paths: [{audio}]}}]\n"
        "asr: {batch_size: 8}\n"
    )
    t0, c0 = time.monotonic(), _cpu_s()
    result = run_corpus(cfg, factory=SleepyFactory(), progress=False)
    wall, cpu = time.monotonic() - t0, _cpu_s() - c0
    con = connect(Store(root))
    audio_s, n = con.execute("SELECT sum(duration_s), count(*) FROM segments").fetchone()
    con.close()
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "segments": float(n),
        "model_s": ASR_S_PER_AUDIO_S * float(audio_s or 0.0),
        "parts": float(len(result.markers)),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def pipeline(sizes: list[int], work: Path) -> None:
    rows = []
    for n in sizes:
        audio = work / f"audio-{n}"
        if not audio.exists():
            t0 = time.monotonic()
            make_audio(audio, n)
            print(f"  made {n} files in {time.monotonic() - t0:.0f} s", flush=True)
        root = work / f"ds-{n}"
        shutil.rmtree(root, ignore_errors=True)
        out = subprocess.run(
            [sys.executable, __file__, "one", str(audio), str(root)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        m = json.loads(out.stdout.strip().splitlines()[-1])
        per_item_ms = 1000 * (m["wall_s"] - m["model_s"]) / n
        cpu_ms = 1000 * m["cpu_s"] / n
        rows.append((n, m, per_item_ms, cpu_ms))
        print(
            f"{n:>8d} items  {int(m['parts']):4d} parts  wall {m['wall_s']:8.1f} s  "
            f"segments {int(m['segments'])}  model {m['model_s']:6.1f} s  overhead {per_item_ms:6.2f} ms/item  "
            f"cpu {cpu_ms:6.2f} ms/item  "
            f"peak {m['peak_mb']:7.0f} MB",
            flush=True,
        )
        shutil.rmtree(root, ignore_errors=True)
    (n0, m0, o0, c0), (n1, m1, o1, c1) = rows[0], rows[-1]
    print(
        f"ratios {n1}/{n0}: per-item overhead {o1 / o0:.2f}x (target <= 1.2), "
        f"cpu per item {c1 / c0:.2f}x, "
        f"peak memory {m1['peak_mb'] / m0['peak_mb']:.2f}x (target <= 1.5)"
    )


def views(runs: int, files: int, work: Path) -> None:
    """Open a dataset of `runs` committed runs x `files` part files each."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from speechmill.schemas import TABLES
    from speechmill.store import DataFile, Store, connect
    from speechmill.store.store import Marker, utcnow

    root = work / f"views-{runs}x{files}"
    spec = TABLES["rejects"]
    if not (root / "runs").exists():
        t0 = time.monotonic()
        row = {c.name: None for c in spec.columns} | {
            "item_kind": "source",
            "stage": "s",
            "category": "empty",
            "reason": "r",
            "retryable": False,
        }
        for r in range(runs):
            run_id = f"20260101T{r // 3600 % 24:02d}{r // 60 % 60:02d}{r % 60:02d}Z-{r:06x}"
            d = root / "tables" / "rejects" / f"run={run_id}"
            d.mkdir(parents=True)
            listed = []
            t = pa.Table.from_pylist(
                [row | {"item_id": f"{r}", "run_id": run_id}], schema=spec.schema
            )
            first = root / f"tables/rejects/run={run_id}/part-00000.parquet"
            pq.write_table(t, first)
            for k in range(files):  # copies of one file: the reader opens every one
                rel = f"tables/rejects/run={run_id}/part-{k:05d}.parquet"
                if k:
                    shutil.copyfile(first, root / rel)
                listed.append(DataFile("rejects", rel, 1))
            now = utcnow()
            m = Marker(run_id, "sim", now, now, "sim", 5, "h", {}, {}, (), "none", tuple(listed))
            m = Marker(**{**m.__dict__, "exact_dirs": True})
            (root / "runs").mkdir(exist_ok=True)
            (root / "runs" / f"{run_id}.json").write_text(m.to_json())
        print(f"  wrote {runs} runs x {files} files in {time.monotonic() - t0:.0f} s")
    t0 = time.monotonic()
    con = connect(Store(str(root)))
    opened = time.monotonic() - t0
    t0 = time.monotonic()
    (n,) = con.execute("SELECT count(*) FROM rejects_history").fetchone()
    counted = time.monotonic() - t0
    print(
        f"views over {runs} runs x {files} files = {runs * files} files: "
        f"open {opened:.1f} s, count {n} rows {counted:.1f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("pipeline")
    p.add_argument("sizes", type=int, nargs="+")
    p.add_argument("--workdir", default="/tmp/speechmill-scale")
    p = sub.add_parser("views")
    p.add_argument("--runs", type=int, default=10_000)
    p.add_argument("--files", type=int, default=100)
    p.add_argument("--workdir", default="/tmp/speechmill-scale")
    p = sub.add_parser("one")
    p.add_argument("audio")
    p.add_argument("root")
    args = ap.parse_args()
    if args.mode == "one":
        print(json.dumps(one_size(args.audio, args.root)))
        return
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    if args.mode == "pipeline":
        print(
            f"scale simulation: corpus pipeline, 2-3 s speech recordings, fake ASR at "
            f"{1000 * ASR_S_PER_AUDIO_S:g} ms per audio second, DirectRunner, 2 cores"
        )
        pipeline(sorted(args.sizes), work)
    else:
        views(args.runs, args.files, work)


if __name__ == "__main__":
    main()
