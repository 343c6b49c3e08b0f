"""ASR throughput: the pipeline vs a bare loop, and the cost of N-best vs 1-best.

    .venv/bin/python benchmarks/asr_throughput.py [--regime long|short|both] [--sentences N]

Everything runs in one process on the same generated speech (the demo sentences
spoken by the bundled piper voice), in two regimes:

  long   the demo's long-form recordings (VAD chunks of 15-30 s, as in a corpus run)
  short  one sentence per file (3-6 s utterances, as in GER / HyPoradise data)

For each regime:
  (b) the corpus pipeline (Beam DirectRunner: decode, VAD, RunInference, Parquet);
  (a) a bare loop calling the identical decode (same backend, beam, N, top-up,
      batch size) on the same chunks (the committed segments), audio preloaded;
  the N-best recipe (beam 20, N 5, top-ups) vs 1-best at beam 5 on those chunks;
  the encoder context floor at 10 s vs 30 s (the accuracy guard for trimming).

Beside every ratio: WER and mean n_unique, so no speed comes from doing less.
Never asserts a time; the figures go into the README's performance section.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import time
from pathlib import Path

import soundfile as sf

from speechmill.backends.asr import decode_with_retry
from speechmill.backends.faster_whisper import FasterWhisperBackend
from speechmill.backends.tts import PiperTts, VoiceParams
from speechmill.core.asr.decoding import AsrItem, DecodeOptions
from speechmill.core.audio.io import read_span
from speechmill.core.text.metrics import corpus_counts
from speechmill.core.text.normalize import get_normalizer
from speechmill.demo import DemoFile, demo_config, demo_sentences, prepare_audio
from speechmill.pipelines.corpus import run_corpus
from speechmill.store import Store, connect


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


def regime(name: str, work: Path, made: list[DemoFile], backend) -> dict[str, float]:
    cfg = demo_config(work)
    norm = get_normalizer(cfg.asr.normalizer)
    audio_s = sum(f.seconds for f in made)
    print(f"\n== {name}: {len(made)} files, {audio_s:.1f} s of speech ==")
    t = time.perf_counter()
    run_corpus(cfg, progress=False)
    pipe_s = time.perf_counter() - t
    store = Store(cfg.store.root)
    con = connect(store)
    rows = con.execute(
        "SELECT s.url, g.recording_id, g.start_sample, g.end_sample, r.audio_uri FROM segments g "
        "JOIN recordings r USING (recording_id) JOIN sources s USING (recording_id) ORDER BY 1, 3"
    ).fetchall()
    text_of = {f.path: f.text for f in made}
    refs = {rec: text_of[url] for url, rec, *_ in rows}
    chunks = [(rec, a) for _, rec, a, _, _ in rows]
    items = [
        AsrItem(f"{rec}-{a}-{b}", read_span(store.path(uri), a, b), "en")
        for _, rec, a, b, uri in rows
    ]
    got = dict(
        con.execute(
            "SELECT recording_id, string_agg(text, ' ' ORDER BY start_sample) FROM segments GROUP BY 1"
        ).fetchall()
    )
    pipe_wer = corpus_counts([(norm(r), norm(got.get(k, ""))) for k, r in refs.items()]).rate
    pipe_unique = con.execute("SELECT avg(n_unique) FROM hypotheses").fetchone()[0]
    pipe_topped = con.execute(
        "SELECT count(*) FILTER (WHERE list_contains(method, 'sample')) FROM hypotheses"
    ).fetchone()[0]

    nbest = DecodeOptions.from_config(cfg.asr)
    batch = cfg.asr.batch_size
    outs, bare_s = bare_loop(backend, items, nbest, norm, batch)
    one, one_s = bare_loop(
        backend, items, dataclasses.replace(nbest, beam_size=5, n_best=1, top_up=False), norm, batch
    )
    beam_only, beam_s = bare_loop(
        backend, items, dataclasses.replace(nbest, top_up=False), norm, batch
    )
    short, short_s = bare_loop(
        backend, items, dataclasses.replace(nbest, min_context_s=10.0), norm, batch
    )

    def line(label, outs_, secs, wer=None, uniq=None, top=None):
        wer = wer_of(outs_, chunks, refs, norm) if wer is None else wer
        uniq = mean_unique(outs_) if uniq is None else uniq
        top = topped(outs_) if top is None else top
        print(
            f"  {label:34s} {audio_s / secs:6.2f} audio-s/s  {secs:6.1f} s  WER {100 * wer:4.1f}%"
            f"  mean n_unique {uniq:.2f}  topped-up lists {top}"
        )

    print(f"  {len(items)} chunks, {sum(len(i.audio) for i in items) / 16000:.1f} s; batch {batch}")
    line("(a) bare loop, N-best recipe", outs, bare_s)
    line("(b) pipeline, N-best recipe", None, pipe_s, pipe_wer, pipe_unique, pipe_topped)
    print(f"  b/a = {bare_s / pipe_s:.3f}  (target >= 0.9)")
    # The same comparison without top-ups: beam outputs (and so the need for
    # top-ups) can differ with batch composition, which makes the line above
    # noisy; without top-ups both sides do exactly the same decoding work.
    plain_cfg = cfg.model_copy(update={"asr": cfg.asr.model_copy(update={"top_up": False})})
    shutil.rmtree(store.root, ignore_errors=True)
    t = time.perf_counter()
    run_corpus(plain_cfg, progress=False)
    plain_pipe_s = time.perf_counter() - t
    line("1-best, beam 5", one, one_s)
    line("N-best, beam 20, no top-ups", beam_only, beam_s)
    line("(b') pipeline, no top-ups", beam_only, plain_pipe_s)
    print(f"  b'/a' (no top-ups on either side) = {beam_s / plain_pipe_s:.3f}  (target >= 0.9)")
    print(
        f"  N-best recipe / 1-best = {bare_s / one_s:.3f}  (target <= 1.3);"
        f"  beam 20 without top-ups / 1-best = {beam_s / one_s:.3f}"
    )
    line("N-best recipe, context floor 10 s", short, short_s)
    print(f"  context 10 s / 30 s time = {short_s / bare_s:.3f}")
    return {"b/a": bare_s / pipe_s, "nbest/1best": bare_s / one_s}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--regime", choices=["long", "short", "both"], default="both")
    ap.add_argument("--sentences", type=int, default=30, help="sentences in the short regime")
    ap.add_argument("--workdir", default="/tmp/speechmill-bench")
    args = ap.parse_args()
    work = Path(args.workdir)
    backend = FasterWhisperBackend.load()
    print(f"model {backend.model_id}; decode settings from configs/demo.yaml")
    if args.regime in ("long", "both"):
        w = work / "long"
        shutil.rmtree(w, ignore_errors=True)
        made = [f for f in prepare_audio(w / "audio", espeak_sentences=0) if f.part == "piper"]
        regime("long-form (demo recordings)", w, made, backend)
    if args.regime in ("short", "both"):
        w = work / "short"
        shutil.rmtree(w, ignore_errors=True)
        regime(
            "short utterances (one sentence per file)",
            w,
            short_audio(w / "audio", args.sentences),
            backend,
        )


if __name__ == "__main__":
    main()
