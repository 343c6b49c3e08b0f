"""Context across chunks: does the previous chunk's text, as Whisper's prompt, help?

    .venv/bin/python benchmarks/chunk_context.py [--files 6] [--seconds 100]

Whisper's own long-form decoding (openai-whisper `transcribe`, faster-whisper
`condition_on_previous_text=True`) passes the text decoded so far as a
`<|startofprev|>` prompt. The corpus pipeline decodes every chunk on its own, so
chunks of one recording can be batched with any others. This benchmark measures
what the prompt would buy before the pipeline pays for ordering chunks:

  long-form recordings made here (the demo and synth sentences spoken by the
  bundled piper voice at four speeds, joined with pauses of 0.3-0.8 s), cut into
  chunks by the corpus pipeline (VAD, `vad.max_chunk_s`), then every recording's
  chunks decoded in order by the same backend and settings (1-best, beam 5):
    none      each chunk alone (what the pipeline does)
    previous  each chunk with the 1-best of the chunk before it as the prompt

Printed: WER of each against the known text, and what the hallucination checks
the refine filters use would see (the most repeated 3-gram, and chunks whose text
is more than 1.5x or less than 0.5x the words the audio holds). Benchmarks print;
they never assert. The finding is in docs/performance.md#context-across-chunks.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
from importlib.resources import files as package_files
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from speechmill.backends.faster_whisper import FasterWhisperBackend  # noqa: E402
from speechmill.backends.tts import PiperTts, VoiceParams  # noqa: E402
from speechmill.core.asr.decoding import AsrItem, DecodeOptions  # noqa: E402
from speechmill.core.audio.io import read_span, resample  # noqa: E402
from speechmill.core.quality.filters import most_repeated_ngram  # noqa: E402
from speechmill.core.text.metrics import corpus_counts  # noqa: E402
from speechmill.core.text.normalize import get_normalizer  # noqa: E402
from speechmill.demo import demo_config  # noqa: E402
from speechmill.pipelines.corpus import run_corpus  # noqa: E402
from speechmill.store import Store, connect  # noqa: E402

SR = 16000


def sentences() -> list[str]:
    out = []
    for name in ("demo_sentences.txt", "synth_sentences.txt"):
        text = package_files("speechmill.data").joinpath(name).read_text()
        out += [s.strip() for s in text.splitlines() if s.strip() and not s.startswith("#")]
    return out


def make_audio(out: Path, n_files: int, seconds: float) -> dict[str, str]:
    """Long-form WAVs under `out`; returns each file's path and its text."""
    out.mkdir(parents=True, exist_ok=True)
    piper = PiperTts()
    pool = sentences()
    texts: dict[str, str] = {}
    k = 0
    for i in range(n_files):
        rng = random.Random(i)
        parts, words, t = [], [], 0.0
        while t < seconds:
            text = pool[k % len(pool)]
            k += 1
            speed = 0.85 + 0.1 * (k % 4)
            s = piper.synthesize(text, VoiceParams("joe", length_scale=speed))
            audio = resample(s.audio.astype(np.float32), s.sample_rate, SR)
            gap = np.zeros(int(rng.uniform(0.3, 0.8) * SR), np.float32)
            parts += [audio, gap]
            words.append(text)
            t += (len(audio) + len(gap)) / SR
        path = out / f"long-{i}.wav"
        sf.write(path, np.concatenate(parts), SR, subtype="PCM_16")
        texts[str(path)] = " ".join(words)
    return texts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=100.0)
    ap.add_argument("--workdir", default="/tmp/speechmill-bench/context")
    args = ap.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    texts = make_audio(work / "audio", args.files, args.seconds)
    cfg = demo_config(work)
    run_corpus(cfg, progress=False)
    store = Store(cfg.store.root)
    rows = (
        connect(store)
        .execute(
            "SELECT s.url, g.start_sample, g.end_sample, r.audio_uri FROM segments g "
            "JOIN recordings r USING (recording_id) JOIN sources s USING (recording_id) "
            "ORDER BY 1, 2"
        )
        .fetchall()
    )
    chunks: dict[str, list[np.ndarray]] = {}
    for url, a, b, uri in rows:
        path = url.removeprefix("file://")
        chunks.setdefault(path, []).append(read_span(store.path(uri), a, b))
    norm = get_normalizer("whisper-english")
    backend = FasterWhisperBackend.load()
    options = DecodeOptions(beam_size=5, n_best=1, top_up=False, alternatives=0)
    n_chunks = sum(len(c) for c in chunks.values())
    seconds = sum(len(a) for c in chunks.values() for a in c) / SR
    print(f"{len(chunks)} recordings, {n_chunks} chunks, {seconds:.0f} s of chunk audio")
    texts_by_mode: dict[str, list[str]] = {}
    for mode in ("none", "previous"):
        decoded: dict[str, list[str]] = {p: [] for p in chunks}
        for step in range(max(len(c) for c in chunks.values())):
            items = [
                AsrItem(
                    f"{p}-{step}",
                    c[step],
                    "en",
                    prompt=decoded[p][-1] if mode == "previous" and decoded[p] else None,
                )
                for p, c in chunks.items()
                if step < len(c)
            ]
            for it, out in zip(items, backend.decode(items, options, norm), strict=True):
                path = it.item_id.rsplit("-", 1)[0]
                decoded[path].append(out.nbest.hyps[0].text if out.nbest and out.nbest.hyps else "")
        counts = corpus_counts(
            [(norm(texts[p]), norm(" ".join(decoded[p]))) for p in chunks if p in texts]
        )
        worst = max((most_repeated_ngram(t)[1] for d in decoded.values() for t in d), default=0)
        rates = [
            len(t.split()) / (len(a) / SR)
            for p, c in chunks.items()
            for t, a in zip(decoded[p], c, strict=True)
        ]
        odd = sum(r > 1.5 * np.median(rates) or r < 0.5 * np.median(rates) for r in rates)
        print(
            f"  {mode:9s} WER {100 * counts.rate:5.2f}%  ({counts.errors}/{counts.ref_len} words)"
            f"  max 3-gram repeats {worst}  chunks with odd word rates {odd}/{n_chunks}"
        )
        texts_by_mode[mode] = [t for p in sorted(decoded) for t in decoded[p]]
    changed = sum(
        a != b for a, b in zip(texts_by_mode["none"], texts_by_mode["previous"], strict=True)
    )
    print(f"  chunks whose text the prompt changed: {changed}/{n_chunks}")


if __name__ == "__main__":
    main()
