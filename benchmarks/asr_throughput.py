"""ASR throughput: the pipeline vs a bare loop, and the cost of N-best vs 1-best.

    .venv/bin/python benchmarks/asr_throughput.py [--regime long|short|both] [--sentences N]
                                                  [--repeat N]

Everything runs in one process on the same generated speech (the demo sentences
spoken by the bundled piper voice), in two regimes:

  long   the demo's long-form recordings (VAD chunks of 15-30 s, as in a corpus run)
  short  one sentence per file (3-6 s utterances, as in GER / HyPoradise data)

For each regime:
  (b) the corpus pipeline (Beam DirectRunner: decode, VAD, RunInference, Parquet);
  (a) a bare loop calling the identical decode (same backend, beam, N, top-up,
      batch size) on the same chunks (the committed segments), audio preloaded;
  both with the same loaded backend: the model is loaded once (settings from the
  config, as the pipeline's factory would) and warmed up on one batch before any
  timing, and the pipeline gets it through its factory (`Loaded`), so neither side
  pays the model load or CTranslate2's first-batch warm-up, and b/a is the cost
  of the pipeline itself (per-run start-up, container decode, VAD, writes, commit);
  (b') and (a') the same without sampled top-ups: exactly the same decoding work on
  both sides (each side's WER and n_unique are its own);
  the N-best recipe (the config's: beam 5, N 5, local alternatives, sampled top-ups
  as the last resort) vs 1-best at beam 5 on those chunks;
  the encoder context floor at 10 s vs 30 s (the accuracy guard for trimming).

Beside every ratio: WER and mean n_unique, so no speed comes from doing less.
Each pipeline run is timed next to the bare loop it is compared with. With
`--repeat N` every timed step runs N times, interleaved, and each line reports its
fastest run: on a machine shared with other work the fastest run is the least
disturbed one, and both sides get the same treatment.
Never asserts a time; the figures go into the README's performance section.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from pathlib import Path

import soundfile as sf

from speechmill.backends.asr import AsrBackend, decode_with_retry
from speechmill.backends.tts import PiperTts, VoiceParams
from speechmill.core.asr.decoding import AsrItem, DecodeOptions
from speechmill.core.audio.chunks import SAMPLE_RATE
from speechmill.core.audio.io import load_audio, read_span
from speechmill.core.text.metrics import corpus_counts
from speechmill.core.text.normalize import get_normalizer
from speechmill.demo import DemoFile, demo_config, demo_sentences, prepare_audio
from speechmill.pipelines.corpus import run_corpus
from speechmill.store import Store, connect
from speechmill.transforms.asr import backend_factory

LOADED: dict[str, AsrBackend] = {}
"""The benchmark's loaded backends by model id (see `Loaded`)."""


@dataclasses.dataclass(frozen=True)
class Loaded:
    """A factory handing the pipeline the backend this script loaded.

    The DirectRunner (in memory, the demo config's runner) unpickles it in this
    process; `__call__` looks the backend up here at call time, since pickling the
    backend itself would copy the model.
    """

    model_id: str
    model_hash: str

    def __call__(self) -> AsrBackend:
        return sys.modules["__main__"].LOADED[self.model_id]

    def fingerprint(self) -> str:
        return self.model_hash


def load_backend(work: Path, made: list[DemoFile]) -> Loaded:
    """Load the model the demo config names (as the pipeline's factory does), decode one
    batch of the regime's audio to warm it up, and return a factory for the pipeline."""
    cfg = demo_config(work)
    t = time.perf_counter()
    backend = backend_factory(cfg.asr)()
    load_s = time.perf_counter() - t
    warm = [
        AsrItem(f"warm-up-{i}", load_audio(f.path)[: 30 * SAMPLE_RATE], "en")
        for i, f in enumerate(made[: cfg.asr.batch_size])
    ]
    t = time.perf_counter()
    decode_with_retry(
        backend, warm, DecodeOptions.from_config(cfg.asr), get_normalizer(cfg.asr.normalizer)
    )
    print(
        f"model loaded in {load_s:.1f} s, warmed up in {time.perf_counter() - t:.1f} s "
        "(outside every timing: the pipeline and the bare loops share it)"
    )
    LOADED[backend.model_id] = backend
    return Loaded(backend.model_id, backend.model_hash)


def short_audio(out: Path, n: int) -> list[DemoFile]:
    out.mkdir(parents=True, exist_ok=True)
    piper = PiperTts()
    made = []
    for i, text in enumerate(demo_sentences()[:n]):
        speech = piper.synthesize(text, VoiceParams("joe", length_scale=0.95 + 0.05 * (i % 4)))
        path = out / f"utt-{i:03d}.wav"
        sf.write(str(path), speech.audio, speech.sample_rate, subtype="PCM_16")
        made.append(DemoFile(str(path), "piper", text, len(speech.audio) / speech.sample_rate))
    return made


def wer_of(outs, chunks, refs, norm) -> float:
    """1-best of each chunk, joined per recording in time order, against its text."""
    by_rec: dict[str, list[tuple[int, str]]] = {}
    for (rec, start), o in zip(chunks, outs, strict=True):
        text = o.nbest.hyps[0].text if o.nbest and o.nbest.hyps else ""
        by_rec.setdefault(rec, []).append((start, text))
    pairs = [
        (norm(ref), norm(" ".join(t for _, t in sorted(by_rec.get(rec, [])))))
        for rec, ref in refs.items()
    ]
    return corpus_counts(pairs).rate


def mean_unique(outs) -> float:
    return sum(o.nbest.n_unique for o in outs) / max(1, len(outs))


def topped(outs) -> int:
    return sum(any(h.method == "sample" for h in o.nbest.hyps) for o in outs)


def bare_loop(backend, items, options, norm, batch):
    t = time.perf_counter()
    outs = []
    for i in range(0, len(items), batch):
        outs.extend(decode_with_retry(backend, items[i : i + batch], options, norm))
    return outs, time.perf_counter() - t


def run_pipeline(cfg, factory: Loaded) -> float:
    """Wall time of one corpus run into an empty store."""
    shutil.rmtree(cfg.store.root, ignore_errors=True)
    t = time.perf_counter()
    run_corpus(cfg, progress=False, factory=factory)
    return time.perf_counter() - t


def pipeline_quality(cfg, refs, norm) -> tuple[float, float, int]:
    """WER (1-best per chunk, joined per recording), mean n_unique and topped-up lists
    of what the pipeline committed."""
    con = connect(Store(cfg.store.root))
    got = dict(
        con.execute(
            "SELECT recording_id, string_agg(text, ' ' ORDER BY start_sample) "
            "FROM segments GROUP BY 1"
        ).fetchall()
    )
    wer = corpus_counts([(norm(r), norm(got.get(k, ""))) for k, r in refs.items()]).rate
    unique = con.execute("SELECT avg(n_unique) FROM hypotheses").fetchone()[0]
    top = con.execute(
        "SELECT count(*) FILTER (WHERE list_contains(method, 'sample')) FROM hypotheses"
    ).fetchone()[0]
    return wer, unique, top


def regime(
    name: str, work: Path, made: list[DemoFile], factory: Loaded, repeat: int = 1
) -> dict[str, float]:
    cfg = demo_config(work)
    norm = get_normalizer(cfg.asr.normalizer)
    backend = factory()
    audio_s = sum(f.seconds for f in made)
    print(f"\n== {name}: {len(made)} files, {audio_s:.1f} s of speech ==")
    # The same comparison without top-ups: beam outputs (and so the need for
    # top-ups) can differ with batch composition, which makes b/a noisy; without
    # top-ups both sides do exactly the same decoding work.
    plain_cfg = cfg.model_copy(update={"asr": cfg.asr.model_copy(update={"top_up": False})})
    nbest = DecodeOptions.from_config(cfg.asr)
    options = {
        "a": nbest,
        "one": dataclasses.replace(nbest, beam_size=5, n_best=1, top_up=False),
        "a'": dataclasses.replace(nbest, top_up=False),
        "short": dataclasses.replace(nbest, min_context_s=10.0),
    }
    batch = cfg.asr.batch_size
    secs: dict[str, list[float]] = {k: [] for k in ("b", "a", "one", "a'", "b'", "short")}
    outs: dict[str, list] = {}
    for rep in range(repeat):
        # each pipeline run is timed next to the bare loop it is compared with
        secs["b"].append(run_pipeline(cfg, factory))
        if rep == 0:
            store = Store(cfg.store.root)
            rows = (
                connect(store)
                .execute(
                    "SELECT s.url, g.recording_id, g.start_sample, g.end_sample, r.audio_uri "
                    "FROM segments g JOIN recordings r USING (recording_id) "
                    "JOIN sources s USING (recording_id) ORDER BY 1, 3"
                )
                .fetchall()
            )
            text_of = {f.path: f.text for f in made}
            refs = {rec: text_of[url] for url, rec, *_ in rows}
            chunks = [(rec, a) for _, rec, a, _, _ in rows]
            items = [
                AsrItem(f"{rec}-{a}-{b}", read_span(store.path(uri), a, b), "en")
                for _, rec, a, b, uri in rows
            ]
            pipe_quality = pipeline_quality(cfg, refs, norm)
        for key in ("a", "one", "a'"):
            outs[key], s = bare_loop(backend, items, options[key], norm, batch)
            secs[key].append(s)
        secs["b'"].append(run_pipeline(plain_cfg, factory))
        if rep == 0:
            plain_quality = pipeline_quality(plain_cfg, refs, norm)
        outs["short"], s = bare_loop(backend, items, options["short"], norm, batch)
        secs["short"].append(s)
    best = {k: min(v) for k, v in secs.items()}  # each side's fastest of `repeat` runs

    def line(label, outs_, secs, wer=None, uniq=None, top=None):
        wer = wer_of(outs_, chunks, refs, norm) if wer is None else wer
        uniq = mean_unique(outs_) if uniq is None else uniq
        top = topped(outs_) if top is None else top
        print(
            f"  {label:34s} {audio_s / secs:6.2f} audio-s/s  {secs:6.1f} s  WER {100 * wer:4.1f}%"
            f"  mean n_unique {uniq:.2f}  topped-up lists {top}"
        )

    print(f"  {len(items)} chunks, {sum(len(i.audio) for i in items) / 16000:.1f} s; batch {batch}")
    if repeat > 1:
        print(f"  each time: the fastest of {repeat} runs, interleaved")
    bare_s, pipe_s, one_s = best["a"], best["b"], best["one"]
    beam_s, plain_pipe_s = best["a'"], best["b'"]
    line("(a) bare loop, N-best recipe", outs["a"], bare_s)
    line("(b) pipeline, N-best recipe", None, pipe_s, *pipe_quality)
    print(f"  b/a = {bare_s / pipe_s:.3f}  (target >= 0.95)")
    line("1-best, beam 5", outs["one"], one_s)
    line("(a') bare loop, no sampled top-ups", outs["a'"], beam_s)
    line("(b') pipeline, no sampled top-ups", None, plain_pipe_s, *plain_quality)
    print(
        f"  b'/a' (no sampled top-ups on either side) = {beam_s / plain_pipe_s:.3f}  (target >= 0.95)"
    )
    print(
        f"  N-best recipe / 1-best = {bare_s / one_s:.3f}  (target <= 1.3);"
        f"  without sampled top-ups / 1-best = {beam_s / one_s:.3f}"
    )
    line("N-best recipe, context floor 10 s", outs["short"], best["short"])
    print(f"  context 10 s / 30 s time = {best['short'] / bare_s:.3f}")
    return {"b/a": bare_s / pipe_s, "nbest/1best": bare_s / one_s}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--regime", choices=["long", "short", "both"], default="both")
    ap.add_argument("--sentences", type=int, default=30, help="sentences in the short regime")
    ap.add_argument("--workdir", default="/tmp/speechmill-bench")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every timed step this many times, interleaved, and report the fastest "
        "(for a machine shared with other work)",
    )
    args = ap.parse_args()
    work = Path(args.workdir)
    print(f"model {demo_config(work).asr.model}; decode settings from configs/demo.yaml")
    factory: Loaded | None = None
    if args.regime in ("long", "both"):
        w = work / "long"
        shutil.rmtree(w, ignore_errors=True)
        made = [f for f in prepare_audio(w / "audio", espeak_sentences=0) if f.part == "piper"]
        factory = factory or load_backend(w, made)
        regime("long-form (demo recordings)", w, made, factory, args.repeat)
    if args.regime in ("short", "both"):
        w = work / "short"
        shutil.rmtree(w, ignore_errors=True)
        made = short_audio(w / "audio", args.sentences)
        factory = factory or load_backend(w, made)
        regime("short utterances (one sentence per file)", w, made, factory, args.repeat)


if __name__ == "__main__":
    main()
