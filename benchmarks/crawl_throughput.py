"""Crawl throughput: the fetch stage with one thread vs its thread pool, on stalling servers.

    .venv/bin/python benchmarks/crawl_throughput.py [--stalls 8] [--fast 20] [--workdir DIR]

A local site on 127.0.0.1 (started here) serves `--fast` good MP3s and `--stalls`
media URLs that send their headers and a few bytes, then nothing: a download
waits for `crawl.socket_timeout_s` and ends as a `timeout` reject. The items are
discovered once (a list source; yt-dlp reads only headers, so discovery does not
stall), then the fetch stage (`AcquireDoFn` after the corpus pipeline's
Reshuffle, downloads + decode to FLAC) runs on the DirectRunner:

  (a) sequential   crawl.fetch_concurrency: 1 (the stage before issue 10)
  (b) concurrent   the defaults: 8 threads, at most 4 on one host
  (c) concurrent   8 threads, 8 on one host

Every item is on the one local host, so (b) is bound by the per-host limit: 8
stalls in 4 slots take two stall times, so a/b stays under 8/2 = 4 (on a real crawl
items spread over hosts). (c) lifts that limit; its target is a/c >= 4. What is
left in (c) is one stall time, yt-dlp's own CPU time per item (about 0.1 s, under
the GIL) and Beam's start-up (about 1 s). `rate_limit_s: 0`: the default 1 s pacing
per host would space the 28 requests to this one host at least 1 s apart in every
mode and measure the pacing, not the fetch stage (pacing is per host and kept by
the pool). The 5 s socket timeout stands in for production's 30 s (the longer the
stall, the larger the ratio). Prints wall times, the ratios and whether the rejects
are identical; never asserts a time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import apache_beam as beam

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speechmill.config import Config, load_config
from speechmill.pipelines.corpus import plan
from speechmill.pipelines.runs import pipeline_options
from speechmill.schemas import Reject, SourceItem
from speechmill.store import Store, new_run_id
from speechmill.transforms.common import REJECTS, SOURCES
from speechmill.transforms.fetch import AcquireDoFn
from tests.crawl_site import stall_site
from tests.http_server import Site

CONFIG = """
store: {{root: {root}}}
crawl:
  allow_hosts: [127.0.0.1]
  socket_timeout_s: {timeout}
  item_deadline_s: {deadline}
  retries: 0
  fetch_concurrency: {threads}
  per_host_concurrency: {per_host}
sources:
  - {{kind: list, name: bench, path: {urls}, rate_limit_s: 0}}
"""


def config(work: Path, urls: Path, threads: int, per_host: int, timeout: float) -> Config:
    text = CONFIG.format(
        root=work / f"ds-{threads}-{per_host}",
        urls=urls,
        threads=threads,
        per_host=per_host,
        timeout=timeout,
        deadline=2 * timeout,
    )
    return load_config(text=text)


def _line(r: Reject) -> str:
    return json.dumps([r.item_id, r.stage, r.category, r.retryable])


def fetch_stage(cfg: Config, items: list[SourceItem], out: Path) -> tuple[float, list, int, int]:
    """Wall time of the fetch stage alone; its rejects, `sources` rows and recordings."""
    shutil.rmtree(cfg.store.root, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.monotonic()
    with beam.Pipeline(options=pipeline_options(cfg)) as p:
        got = (
            p
            | "Sources" >> beam.Create(items)
            | "Spread" >> beam.Reshuffle()
            | "Acquire"
            >> beam.ParDo(
                AcquireDoFn(
                    cfg.store.root,
                    cfg.audio,
                    "bench",
                    frozenset(),
                    crawl=cfg.crawl,
                    pacing={"bench": (0.0, None)},
                )
            ).with_outputs(SOURCES, REJECTS, main="recordings")
        )
        shown = (
            got[REJECTS] | "ShowRejects" >> beam.Map(lambda r: "reject " + _line(r)),
            got[SOURCES] | "ShowSources" >> beam.Map(lambda s: "source " + s.media_id),
            got.recordings | "ShowRecordings" >> beam.Map(lambda r: "recording " + r.media_id),
        ) | "All" >> beam.Flatten()
        _ = shown | "Write" >> beam.io.WriteToText(str(out / "rows"), shard_name_template="")
    wall = time.monotonic() - t0

    lines = (out / "rows").read_text().splitlines() if (out / "rows").exists() else []
    kinds = [line.partition(" ") for line in lines]
    rejects = sorted(json.loads(rest) for kind, _, rest in kinds if kind == "reject")
    return (
        wall,
        rejects,
        sum(kind == "source" for kind, _, _ in kinds),
        sum(kind == "recording" for kind, _, _ in kinds),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stalls", type=int, default=8)
    ap.add_argument("--fast", type=int, default=20)
    ap.add_argument("--socket-timeout", type=float, default=5.0)
    ap.add_argument("--workdir", default="/tmp/speechmill-crawl-bench")
    args = ap.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with Site(work / "site") as site:
        stalls, fast = stall_site(site, args.stalls, args.fast)
        urls = work / "urls.txt"
        mixed = [u for pair in zip(stalls, fast, strict=False) for u in pair]
        mixed += fast[len(stalls) :] + stalls[len(fast) :]
        urls.write_text("".join(u + "\n" for u in mixed))

        t0 = time.monotonic()
        base = config(work, urls, 1, 1, args.socket_timeout)
        store = Store(base.store.root)
        work_plan = plan(base, store, new_run_id())
        items = list(work_plan.todo_items(store))
        work_plan.close()
        discovery = time.monotonic() - t0

        runs = {}
        for label, threads, per_host in (
            ("(a) sequential, 1 thread", 1, 1),
            ("(b) 8 threads, 4 per host", 8, 4),
            ("(c) 8 threads, 8 per host", 8, 8),
        ):
            cfg = config(work, urls, threads, per_host, args.socket_timeout)
            runs[label] = fetch_stage(cfg, items, work / f"out-{threads}-{per_host}")

    print(
        f"crawl throughput: {args.stalls} stalling + {args.fast} fast items on one local host "
        f"(socket_timeout_s {args.socket_timeout:g}, rate_limit_s 0, DirectRunner)"
    )
    print(f"    discovery (driver, once, not in the times below): {discovery:.1f} s")
    seq_wall, seq_rejects, _, _ = runs["(a) sequential, 1 thread"]
    for label, (wall, rejects, n_sources, n_recordings) in runs.items():
        cats: dict[str, int] = {}
        for _, _, category, _ in rejects:
            cats[category] = cats.get(category, 0) + 1
        print(
            f"{label:28s} fetch stage {wall:6.1f} s   ratio {seq_wall / wall:5.2f}x   "
            f"sources rows {n_sources}, recordings {n_recordings}, rejects {cats}"
        )
    same = all(r[1] == seq_rejects for r in runs.values())
    print(
        f"    rejects identical in all modes: {'yes' if same else 'NO'}   "
        "(target: (c) >= 4x; (b) < 4x by construction: two waves of stalls on one host)"
    )


if __name__ == "__main__":
    main()
