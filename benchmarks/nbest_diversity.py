"""Distinct hypotheses per list, run after run: the minimum, not the average.

    .venv/bin/python benchmarks/nbest_diversity.py [--runs 3]

piper's audio differs from run to run (its noise scales), so a recipe that reaches
N distinct on one run can fall short on the next. Each run here synthesises the
demo's recordings afresh (`speechmill demo`'s audio: piper and espeak-ng parts) and
runs the corpus pipeline with the demo's config, in both regimes:

  long-form   the demo recordings (VAD chunks of up to 30 s)
  short       the same sentences one per file (`asr_throughput.short_audio`)

Printed per run and regime: mean `n_unique` over the pipeline's lists, the lists
short of N, and how each list was filled (beam / alternatives / samples). Then
the minimum of the means over the runs (target, issue 14: >= 4.8 in every regime
and every run). Benchmarks print; they never assert.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from asr_throughput import short_audio  # noqa: E402

from speechmill.demo import demo_config, prepare_audio  # noqa: E402
from speechmill.pipelines.corpus import run_corpus  # noqa: E402
from speechmill.store import Store, connect  # noqa: E402


def lists(root: str) -> tuple[float, int, int, dict[str, int]]:
    con = connect(Store(root))
    mean, short, n = con.execute(
        "SELECT avg(n_unique), count(*) FILTER (WHERE n_unique < n_requested), count(*) "
        "FROM hypotheses"
    ).fetchone()
    methods = dict(
        con.execute(
            "SELECT m, count(*) FROM (SELECT unnest(method) AS m FROM hypotheses) GROUP BY 1"
        ).fetchall()
    )
    return float(mean), int(short), int(n), methods


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sentences", type=int, default=30, help="clips in the short regime")
    ap.add_argument("--workdir", default="/tmp/speechmill-bench/diversity")
    args = ap.parse_args()
    means: dict[str, list[float]] = {"long-form": [], "short": []}
    for run in range(args.runs):
        for regime, values in means.items():
            work = Path(args.workdir) / f"{regime}-{run}"
            shutil.rmtree(work, ignore_errors=True)
            if regime == "long-form":
                prepare_audio(work / "audio")  # the same command each run, as `make demo`
            else:
                short_audio(work / "audio", args.sentences)
            cfg = demo_config(work)
            run_corpus(cfg, progress=False)
            mean, short, n, methods = lists(cfg.store.root)
            values.append(mean)
            print(
                f"run {run}  {regime:9s}  mean n_unique {mean:.2f}  lists short of N {short}/{n}"
                f"  hypotheses by method {methods}",
                flush=True,
            )
    for regime, values in means.items():
        print(f"{regime:9s}  minimum over {args.runs} runs of the mean n_unique: {min(values):.2f}")


if __name__ == "__main__":
    main()
