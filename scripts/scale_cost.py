"""What a speechmill build costs on Dataflow GPU workers, stage by stage: a model, not a run.

    .venv/bin/python scripts/scale_cost.py                   # the defaults (docs/scale.md)
    .venv/bin/python scripts/scale_cost.py --help            # every input is a flag
    .venv/bin/python scripts/scale_cost.py --l4-speed 0.3 --summary-only

Nothing here was run on a GPU or on Dataflow. Each stage's throughput (x real time, per
worker) is derived from one of three kinds of input, and each input says which it is:

* measured: printed by a benchmark of this repository on 2 CPU cores with Whisper
  tiny.en int8 (docs/performance.md, docs/align.md, docs/synth.md, README.md);
* published: a figure from a named public source (docs/scale.md gives the URLs);
* assumption: a guess, marked as such, to be replaced by a measurement.

Prices are list prices for us-central1 as read for docs/scale.md; check current prices.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

RESOURCES = ("net", "cpu", "gpu")


def _inp(default: Any, kind: str, text: str) -> Any:
    """A dataclass field that is also a CLI flag; `kind` is measured, published, assumption
    or price."""
    return field(default=default, metadata={"kind": kind, "help": text})


@dataclass(frozen=True)
class Inputs:
    """Every input of the model. Defaults are explained in docs/scale.md."""

    # -- the two scenarios --------------------------------------------------------------
    build_hours: float = _inp(100_000.0, "assumption", "hours of source audio, full build")
    refresh_hours: float = _inp(1_000.0, "assumption", "hours of new audio, weekly refresh")
    build_workers: int = _inp(100, "assumption", "GPU workers (max_num_workers), build")
    refresh_workers: int = _inp(10, "assumption", "GPU workers (max_num_workers), refresh")
    synth_pairs_build: int = _inp(1_000_000, "assumption", "TTS->ASR pairs made, build")
    synth_pairs_refresh: int = _inp(10_000, "assumption", "TTS->ASR pairs made, refresh")
    relabel_rounds: int = _inp(0, "assumption", "noisy-student rounds costed (teacher = model)")

    # -- shape of the data --------------------------------------------------------------
    speech_fraction: float = _inp(0.8, "assumption", "VAD speech / source audio (demo: 0.92)")
    utterance_fraction: float = _inp(
        0.9, "measured", "utterance audio / speech (demo refine: 0.055 h of 220.7 s)"
    )
    synth_pair_s: float = _inp(4.15, "measured", "seconds of audio per pair (demo-synth)")

    # -- measured on the development machine (2 vCPU, tiny.en int8) ----------------------
    dev_vcpus: int = _inp(2, "measured", "vCPUs of the machine the CPU figures come from")
    decode_vad_xrt_dev: float = _inp(
        48.6, "measured", "decode+VAD+write, x RT on 2 vCPU: 218.5 s / (30.7 s - 26.2 s)"
    )
    vad_share: float = _inp(0.5, "assumption", "share of decode_vad_xrt_dev time that is VAD")
    nbest_factor_long: float = _inp(
        2.254, "measured", "N-best recipe / 1-best beam 5, long-form chunks"
    )
    nbest_factor_short: float = _inp(
        1.248, "measured", "N-best recipe / 1-best beam 5, 3-6 s utterances"
    )
    best1_long_dev: float = _inp(16.49, "measured", "1-best beam 5, long chunks, audio-s/s")
    long_chunk_s: float = _inp(17.1, "measured", "mean long-form chunk: 205.1 s / 12")
    best1_short_dev: float = _inp(4.03, "measured", "1-best beam 5, short clips, audio-s/s")
    short_clip_s: float = _inp(3.48, "measured", "mean short clip: 104.5 s / 30")
    utterance_mean_s: float = _inp(3.67, "measured", "mean utterance (demo refine: 198 s / 54)")
    context10_ratio: float = _inp(
        0.433, "measured", "time at min_context_s 10 / at 30, short clips (synth's setting)"
    )
    align_cost_ratio: float = _inp(
        0.589, "measured", "alignment time / 1-best beam-5 time: 16.49 / 28 audio-s/s"
    )
    tts_core_s_per_pair: float = _inp(
        0.476, "measured", "piper CPU seconds per pair, all cores: ~10 s x 2 / 42"
    )

    # -- published ----------------------------------------------------------------------
    ref_large_batched_xrt: float = _inp(
        45.9, "published", "faster-whisper large-v2 fp16 batch 8, RTX 3070 Ti: 13 min in 17 s"
    )
    large_rel_speed: float = _inp(1.0, "published", "large-v3 speed / large-v2 (same network)")
    tiny_rel_speed: float = _inp(10.0, "published", "tiny speed / large (openai/whisper, A100)")

    # -- assumptions about the workers ---------------------------------------------------
    l4_speed: float = _inp(0.6, "assumption", "L4 throughput / RTX 3070 Ti, Whisper decode")
    t4_speed: float = _inp(0.4, "assumption", "T4 throughput / RTX 3070 Ti, Whisper decode")
    vcpu_efficiency: float = _inp(0.8, "assumption", "CPU stage speed-up per added vCPU")
    utilisation: float = _inp(0.8, "assumption", "useful share of billed worker time")
    startup_min: float = _inp(10.0, "assumption", "billed minutes per worker per job to start")
    fetch_mb_per_audio_hour: float = _inp(60.0, "assumption", "download size (128 kbit/s)")
    fetch_mb_s_per_worker: float = _inp(5.0, "assumption", "sustained download, one worker")

    # -- prices, USD, us-central1 (check current prices) ---------------------------------
    dataflow_vcpu_hr: float = _inp(0.056, "price", "Dataflow batch worker, per vCPU-hour")
    dataflow_mem_gb_hr: float = _inp(0.003557, "price", "Dataflow batch worker, per GB-hour")
    dataflow_pd_gb_hr: float = _inp(0.000054, "price", "Dataflow standard PD, per GB-hour")
    worker_disk_gb: float = _inp(50.0, "assumption", "boot/work disk per worker, GB")
    l4_gpu_hr: float = _inp(0.56, "price", "NVIDIA L4, per GPU-hour")
    t4_gpu_hr: float = _inp(0.35, "price", "NVIDIA T4, per GPU-hour")
    g2_vcpus: int = _inp(8, "price", "g2-standard-8 vCPUs")
    g2_mem_gb: float = _inp(32.0, "price", "g2-standard-8 memory, GB")
    n1_vcpus: int = _inp(8, "price", "n1-standard-8 vCPUs")
    n1_mem_gb: float = _inp(30.0, "price", "n1-standard-8 memory, GB")
    g2_gce_host_hr: float = _inp(0.29358, "price", "g2-standard-8 on Compute Engine, no GPU")
    n1_gce_host_hr: float = _inp(0.37995, "price", "n1-standard-8 on Compute Engine")
    billing: str = _inp("dataflow", "price", "dataflow (Dataflow rates) or gce (own VMs)")
    discount: float = _inp(0.0, "assumption", "fraction off every price (CUD, FlexRS, spot)")
    split_cpu_stages: bool = _inp(
        False, "assumption", "run fetch/decode/VAD/TTS on GPU-less workers of the same shape"
    )


def short_penalty(inp: Inputs, seconds: float) -> float:
    """Decode cost per audio second of clips `seconds` long, relative to long-form chunks.

    Fitted to the two measured 1-best points: a fixed cost per clip (the encoder runs on
    at least `min_context_s` of padded input) plus a cost per audio second.
    """
    per_long = inp.long_chunk_s / inp.best1_long_dev  # seconds of compute per chunk
    per_short = inp.short_clip_s / inp.best1_short_dev
    per_s = (per_long - per_short) / (inp.long_chunk_s - inp.short_clip_s)
    fixed = per_long - per_s * inp.long_chunk_s
    return (fixed + per_s * seconds) / seconds * inp.best1_long_dev


@dataclass(frozen=True)
class Worker:
    name: str
    gpu: str
    vcpus: int
    mem_gb: float
    gpu_hr: float
    gce_host_hr: float
    speed: float  # Whisper throughput relative to the RTX 3070 Ti of the published benchmark

    def price(self, inp: Inputs, with_gpu: bool = True) -> float:
        """USD per billed worker-hour."""
        if inp.billing == "gce":
            host = self.gce_host_hr
        else:
            host = (
                self.vcpus * inp.dataflow_vcpu_hr
                + self.mem_gb * inp.dataflow_mem_gb_hr
                + inp.worker_disk_gb * inp.dataflow_pd_gb_hr
            )
        return (host + (self.gpu_hr if with_gpu else 0.0)) * (1.0 - inp.discount)


def workers(inp: Inputs) -> list[Worker]:
    return [
        Worker(
            "g2-standard-8",
            "L4",
            inp.g2_vcpus,
            inp.g2_mem_gb,
            inp.l4_gpu_hr,
            inp.g2_gce_host_hr,
            inp.l4_speed,
        ),
        Worker(
            "n1-standard-8",
            "T4",
            inp.n1_vcpus,
            inp.n1_mem_gb,
            inp.t4_gpu_hr,
            inp.n1_gce_host_hr,
            inp.t4_speed,
        ),
    ]


MODELS = ("tiny.en", "large-v3")


@dataclass(frozen=True)
class Stage:
    name: str
    job: str  # stages of one job run on the same workers at the same time
    resource: str  # net, cpu or gpu: what limits the stage
    audio_h: float  # hours of audio the stage processes (0 for start-up)
    xrt: float  # x real time on one worker (0 for start-up)
    fixed_worker_h: float = 0.0  # start-up: billed worker-hours, not audio

    def worker_h(self, inp: Inputs) -> float:
        if self.xrt <= 0:
            return self.fixed_worker_h
        return self.audio_h / self.xrt / inp.utilisation


def stages(inp: Inputs, w: Worker, model: str, hours: float, pairs: int, n: int) -> list[Stage]:
    """The stages of one scenario on `n` workers of kind `w` with Whisper `model`."""
    cpu = w.vcpus / inp.dev_vcpus * inp.vcpu_efficiency  # CPU stages: speed-up over dev
    rel = inp.tiny_rel_speed if model == "tiny.en" else inp.large_rel_speed
    best1 = inp.ref_large_batched_xrt * w.speed * rel  # 1-best beam 5, long chunks, this GPU
    speech = hours * inp.speech_fraction
    utt = speech * inp.utterance_fraction
    synth_h = pairs * inp.synth_pair_s / 3600.0
    jobs = (
        ["corpus", "refine"]
        + (["synth"] if pairs else [])
        + (["relabel"] if inp.relabel_rounds else [])
    )
    fetch = inp.fetch_mb_s_per_worker * 3600.0 / inp.fetch_mb_per_audio_hour
    decode = inp.decode_vad_xrt_dev / (1.0 - inp.vad_share) * cpu
    vad = inp.decode_vad_xrt_dev / inp.vad_share * cpu
    utt_pen = short_penalty(inp, inp.utterance_mean_s)
    out = [
        Stage("fetch", "corpus", "net", hours, fetch),
        Stage("decode", "corpus", "cpu", hours, decode),
        Stage("VAD", "corpus", "cpu", hours, vad),
        Stage("ASR N-best", "corpus", "gpu", speech, best1 / inp.nbest_factor_long),
        Stage("align", "refine", "gpu", speech, best1 / inp.align_cost_ratio),
        Stage("refine decode", "refine", "gpu", utt, best1 / (utt_pen * inp.nbest_factor_short)),
    ]
    if pairs:
        tts = inp.synth_pair_s / inp.tts_core_s_per_pair * inp.dev_vcpus * cpu
        synth_pen = short_penalty(inp, inp.synth_pair_s) * inp.context10_ratio
        out += [
            Stage("synth TTS", "synth", "cpu", synth_h, tts),
            Stage(
                "synth ASR", "synth", "gpu", synth_h, best1 / (synth_pen * inp.nbest_factor_short)
            ),
        ]
    if inp.relabel_rounds:
        name = f"relabel x{inp.relabel_rounds}"
        out.append(Stage(name, "relabel", "gpu", utt * inp.relabel_rounds, best1 / utt_pen))
    startup = len(jobs) * n * inp.startup_min / 60.0
    out.append(Stage("worker start-up", "start", "gpu", 0.0, 0.0, startup))
    return out


@dataclass(frozen=True)
class Result:
    rows: list[tuple[Stage, float, float]]  # stage, worker-hours, cost
    serial_h: float  # billed worker-hours, stages one after another
    overlap_h: float  # worker-hours of the busiest pool of each job (wall time x workers)
    cost_serial: float
    cost_overlap: float


def pool(inp: Inputs, st: Stage) -> str:
    return "cpu" if inp.split_cpu_stages and st.resource != "gpu" else "gpu"


def evaluate(inp: Inputs, w: Worker, sts: list[Stage]) -> Result:
    price = {"gpu": w.price(inp), "cpu": w.price(inp, with_gpu=False)}
    rows = []
    for st in sts:
        h = st.worker_h(inp)
        rows.append((st, h, h * price[pool(inp, st)]))
    serial = sum(h for _, h, _ in rows)
    # Overlapped: within a job and a worker pool, stages limited by different resources
    # (network, CPUs, GPU) run at the same time; the job takes as long as its busiest one.
    busy: dict[tuple[str, str, str], float] = {}
    for st, h, _ in rows:
        key = (st.job, pool(inp, st), st.resource)
        busy[key] = busy.get(key, 0.0) + h
    per_pool: dict[tuple[str, str], float] = {}
    for (job, p, _), h in busy.items():
        per_pool[(job, p)] = max(per_pool.get((job, p), 0.0), h)
    cost_overlap = sum(h * price[p] for (_, p), h in per_pool.items())
    # Pools of one job run side by side: the job lasts as long as its slowest pool.
    per_job: dict[str, float] = {}
    for (job, _), h in per_pool.items():
        per_job[job] = max(per_job.get(job, 0.0), h)
    overlap = sum(per_job.values())
    return Result(rows, serial, overlap, sum(c for _, _, c in rows), cost_overlap)


def fmt_h(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}" if x >= 1 else f"{x:.2f}"


def fmt_x(x: float) -> str:
    return "" if x <= 0 else f"{x:,.0f}x" if x >= 10 else f"{x:.1f}x"


def table(inp: Inputs, w: Worker, label: str, hours: float, pairs: int, n: int) -> list[str]:
    results = {m: evaluate(inp, w, stages(inp, w, m, hours, pairs, n)) for m in MODELS}
    head = f"{'stage':<16} {'by':<4} {'audio h':>9} |"
    for m in MODELS:
        head += f" {m + ' xRT':>14} {'worker-h':>9} {'wall h':>7} {'USD':>9} |"
    lines = [
        f"== {label}: {fmt_h(hours)} h of audio, {n} x {w.name} + {w.gpu} "
        f"(${w.price(inp):.3f}/worker-h) ==",
        head,
        "-" * len(head),
    ]
    base = results[MODELS[0]].rows
    for i, (st, _, _) in enumerate(base):
        line = f"{st.name:<16} {st.resource:<4} "
        line += f"{fmt_h(st.audio_h) if st.audio_h else '':>9} |"
        for m in MODELS:
            s, h, c = results[m].rows[i]
            line += f" {fmt_x(s.xrt):>14} {fmt_h(h):>9} {fmt_h(h / n):>7} {c:>9,.0f} |"
        lines.append(line)
    lines.append("-" * len(head))
    for name, attr_h, attr_c in (
        ("total, serial", "serial_h", "cost_serial"),
        ("total, overlap", "overlap_h", "cost_overlap"),
    ):
        line = f"{name:<16} {'':<4} {'':>9} |"
        for m in MODELS:
            r = results[m]
            h, c = getattr(r, attr_h), getattr(r, attr_c)
            line += f" {'':>14} {fmt_h(h):>9} {fmt_h(h / n):>7} {c:>9,.0f} |"
        lines.append(line)
    return lines


def scenarios(inp: Inputs) -> list[tuple[str, float, int, int]]:
    return [
        ("100k-hour build", inp.build_hours, inp.synth_pairs_build, inp.build_workers),
        ("weekly refresh", inp.refresh_hours, inp.synth_pairs_refresh, inp.refresh_workers),
    ]


def summary(inp: Inputs) -> list[str]:
    head = (
        f"{'scenario':<16} {'worker':<20} {'model':<9} {'worker-h':>9} {'wall h':>7} "
        f"{'USD':>9} {'USD/h audio':>11} {'overlap USD':>11}"
    )
    lines = [head, "-" * len(head)]
    for label, hours, pairs, n in scenarios(inp):
        for w in workers(inp):
            for m in MODELS:
                r = evaluate(inp, w, stages(inp, w, m, hours, pairs, n))
                lines.append(
                    f"{label:<16} {w.name + ' + ' + w.gpu:<20} {m:<9} {fmt_h(r.serial_h):>9} "
                    f"{fmt_h(r.serial_h / n):>7} {r.cost_serial:>9,.0f} "
                    f"{r.cost_serial / hours:>11.3f} {r.cost_overlap:>11,.0f}"
                )
    return lines


def report(inp: Inputs, summary_only: bool = False) -> str:
    out = [
        f"billing: {inp.billing}; utilisation {inp.utilisation}; discount {inp.discount}; "
        f"CPU stages on {'GPU-less workers' if inp.split_cpu_stages else 'the GPU workers'}",
        "xRT: audio hours per worker-hour at full use; worker-h include utilisation; "
        "wall h = worker-h / workers",
        "",
    ]
    if not summary_only:
        for label, hours, pairs, n in scenarios(inp):
            for w in workers(inp):
                out += [*table(inp, w, label, hours, pairs, n), ""]
    out += summary(inp)
    return "\n".join(out)


def parse(argv: Sequence[str] | None = None) -> tuple[Inputs, bool]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for f in dataclasses.fields(Inputs):
        flag = "--" + f.name.replace("_", "-")
        text = f"[{f.metadata['kind']}] {f.metadata['help']} (default: {f.default})"
        if isinstance(f.default, bool):
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=f.default, help=text
            )
        elif f.name == "billing":
            parser.add_argument(flag, choices=["dataflow", "gce"], default=f.default, help=text)
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default, help=text)
    parser.add_argument("--summary-only", action="store_true", help="print the summary only")
    ns = vars(parser.parse_args(argv))
    summary_only = bool(ns.pop("summary_only"))
    inp = Inputs(**ns)
    if not 0 < inp.vad_share < 1 or not 0 < inp.utilisation <= 1:
        parser.error("--vad-share must lie in (0, 1) and --utilisation in (0, 1]")
    return inp, summary_only


def main(argv: Sequence[str] | None = None) -> None:
    inp, summary_only = parse(argv)
    print(report(inp, summary_only))


if __name__ == "__main__":
    main()
