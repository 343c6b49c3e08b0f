"""Label quality on long-form speech: the corpus pipeline's labels vs the bare model.

    .venv/bin/python benchmarks/label_quality.py [--seconds 80] [--files 2] [-v]
        [--search S] [--no-even] [--workdir DIR]

Long-form audio made here (the demo sentences spoken by the bundled piper voice,
deterministic) in two shapes, each in three encodings:

  shapes     pauses       sentences with natural pauses (0.35-0.9 s)
             continuous   runs of over 60 s, sentences 0.08-0.25 s apart (and the
                          0.2-0.4 s piper pauses at a comma), one VAD region
  encodings  16k          16 kHz mono WAV
             tel8k        8 kHz mu-law WAV (telephone band)
             48k-stereo   48 kHz stereo FLAC

Scored against the known text after Whisper's English normaliser:
  bare       faster-whisper's own long-form `transcribe(beam_size=5, language="en")`
             on the same weights (tiny.en int8), the reference users compare with;
  pipeline   the corpus pipeline's segment texts (1-best), with the quiet-point split
             (`vad.split_search_s`, the default) and with the even split it replaced.
Printed: WER per shape and encoding, the ratio pipeline/bare, and the share of chunk
boundaries that fall inside a word. Word timings come from the bare model's
`word_timestamps=True` on the 16 kHz copy, each word trimmed to where it is heard:
silences of 150 ms or more in the clean audio (before its noise; 10 ms frames under
-50 dBFS) are cut off a word's edges, because Whisper stretches a word over the pause
next to it ("late again, so we": "so" from the end of "again", 300 ms before it is
heard), and the silences inside piper's words (stop closures) are 130 ms at most. A
boundary more than 30 ms inside a word counts, unless it lies in a pause the audio was
made with (known exactly); the count by the untrimmed timings is printed beside it.
Targets (issue 14): ratio <= 1.00, cuts inside words <= 1%.

Options: --search sets `vad.split_search_s` for the quiet split (default: the config's);
--no-even skips the even split's run; -v lists every boundary inside a word.
Benchmarks print; they never assert.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from speechmill.backends.faster_whisper import resolve_model  # noqa: E402
from speechmill.backends.tts import PiperTts, VoiceParams  # noqa: E402
from speechmill.config import VadConfig, load_config  # noqa: E402
from speechmill.core.audio.io import resample  # noqa: E402
from speechmill.core.text.metrics import corpus_counts  # noqa: E402
from speechmill.core.text.normalize import get_normalizer  # noqa: E402
from speechmill.demo import demo_sentences  # noqa: E402
from speechmill.pipelines.corpus import run_corpus  # noqa: E402
from speechmill.store import Store, connect  # noqa: E402

SR = 16000
SHAPES = {"pauses": (0.35, 0.9), "continuous": (0.08, 0.25)}
ENCODINGS = ("16k", "tel8k", "48k-stereo")
INSIDE_S = 0.03
FRAME = SR // 100
SILENT_DBFS = -50.0
SILENT_S = 0.15


Gaps = dict[str, list[tuple[float, float]]]
"""Per recording (`shape-i`): the pauses put between its sentences, in seconds (exact)."""


def make_audio(out: Path, seconds: float, files: int) -> tuple[dict[str, str], Gaps, Gaps]:
    """Per file key (`shape-i-encoding`): its text; per recording, the pauses put between
    its sentences and the silences of its clean audio (`silences`); the files under
    `out`."""
    piper = PiperTts()
    sentences = demo_sentences()
    texts: dict[str, str] = {}
    pauses: Gaps = {}
    quiet: Gaps = {}
    k = 0
    for shape, (lo, hi) in SHAPES.items():
        for i in range(files):
            rng = random.Random(f"{shape}-{i}")
            parts, words, t = [], [], 0.0
            gaps: list[tuple[float, float]] = []
            while t < seconds:
                text = sentences[k % len(sentences)]
                k += 1
                s = piper.synthesize(
                    text, VoiceParams("joe", length_scale=1.0, noise_scale=0.0, noise_w_scale=0.0)
                )
                audio = resample(s.audio, s.sample_rate, SR)
                trimmed = trim(audio)
                gap = np.zeros(int(rng.uniform(lo, hi) * SR), np.float32)
                parts += [trimmed, gap]
                words.append(text)
                t += len(trimmed) / SR
                # the trim keeps 25 ms of the TTS's own silence on each side of a sentence
                gaps.append((t - 0.025, t + len(gap) / SR + 0.025))
                t += len(gap) / SR
            x = np.concatenate(parts[:-1])
            quiet[f"{shape}-{i}"] = silences(x)
            x = x + np.random.default_rng(k).normal(0, 0.001, x.size).astype(np.float32)
            base = f"{shape}-{i}"
            pauses[base] = gaps[:-1]
            sf.write(out / f"{base}-16k.wav", x, SR, subtype="PCM_16")
            tel = resample(x, SR, 8000)
            sf.write(out / f"{base}-tel8k.wav", tel, 8000, subtype="ULAW")
            wide = resample(x, SR, 48000)
            sf.write(out / f"{base}-48k-stereo.flac", np.stack([wide, wide * 0.8], 1), 48000)
            for enc in ENCODINGS:
                texts[f"{base}-{enc}"] = " ".join(words)
    return texts, pauses, quiet


def silences(x: np.ndarray) -> list[tuple[float, float]]:
    """Runs of at least SILENT_S of 10 ms frames of the clean audio (before its noise)
    under SILENT_DBFS, in seconds: pauses, such as piper makes at a comma (200-400 ms).
    The silences inside piper's words (stop closures) are 130 ms at most."""
    n = len(x) // FRAME
    e = np.square(x[: n * FRAME].astype(np.float64)).reshape(n, FRAME).mean(axis=1)
    quiet = np.concatenate([[False], e < 10 ** (SILENT_DBFS / 10), [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    return [
        (a * FRAME / SR, b * FRAME / SR)
        for a, b in zip(edges[::2], edges[1::2], strict=True)
        if (b - a) * FRAME >= SILENT_S * SR
    ]


def audible(
    words: list[tuple[float, float]], quiet: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Each word's timing without the silence at its edges: Whisper's word timestamps
    stretch a word over the pause before or after it (one word ends where the next
    starts), so "again, so" has "so" start where "again" ends, 300 ms before it is
    heard. Silence inside a word (a stop closure) stays inside it."""
    out = []
    for start, end in words:
        a, b = start, end
        for qa, qb in quiet:
            if qa <= a < qb:
                a = min(qb, b)
            if qa < b <= qb:
                b = max(qa, a)
        out.append((a, b))
    return out


def trim(audio: np.ndarray, floor: float = 0.01) -> np.ndarray:
    """The TTS output without its leading and trailing silence (pauses are set here)."""
    loud = np.flatnonzero(np.abs(audio) > floor)
    if loud.size == 0:
        return audio
    return audio[max(0, loud[0] - 400) : loud[-1] + 400]


def bare(
    folder: Path, keys: list[str]
) -> tuple[dict[str, str], dict[str, list[tuple[float, float]]]]:
    """faster-whisper's long-form transcribe, beam 5; word timings of the 16 kHz copies."""
    from faster_whisper import WhisperModel

    model = WhisperModel(resolve_model("bundled:tiny.en"), device="cpu", compute_type="int8")
    texts, words = {}, {}
    for key in keys:
        path = next(folder.glob(f"{key}.*"))
        timed = key.endswith("-16k")
        segs, _ = model.transcribe(str(path), beam_size=5, language="en", word_timestamps=timed)
        segs = list(segs)
        texts[key] = " ".join(s.text.strip() for s in segs)
        if timed:
            words[key.removesuffix("-16k")] = [
                (w.start, w.end) for s in segs for w in (s.words or [])
            ]
    return texts, words


def pipeline(
    folder: Path, root: Path, search_s: float
) -> tuple[dict[str, str], dict[str, list[float]]]:
    """The corpus pipeline's 1-best per file, and its chunk boundaries (seconds)."""
    shutil.rmtree(root, ignore_errors=True)
    cfg = load_config(
        text=f"store: {{root: {root}}}\n"
        f"sources: [{{kind: local, name: lq, paths: [{folder}], language: en}}]\n"
        f"vad: {{split_search_s: {search_s}}}\n"
    )
    run_corpus(cfg, progress=False)
    con = connect(Store(str(root)))
    rows = con.execute(
        "SELECT s.url, g.start_s, g.start_s + g.duration_s, g.text FROM segments g "
        "JOIN sources s USING (recording_id) ORDER BY 1, 2"
    ).fetchall()
    con.close()
    texts: dict[str, list[str]] = {}
    cuts: dict[str, list[float]] = {}
    for url, start, end, text in rows:
        key = Path(url).name.rsplit(".", 1)[0]
        texts.setdefault(key, []).append(text)
        cuts.setdefault(key, []).extend([float(start), float(end)])
    return {k: " ".join(v) for k, v in texts.items()}, cuts


def recording_of(key: str) -> str:
    """`pauses-0-tel8k` -> `pauses-0` (the word timings are the same in every encoding)."""
    for enc in ENCODINGS:
        if key.endswith(f"-{enc}"):
            return key[: -len(enc) - 1]
    return key


def inside(
    cuts: list[float],
    words: list[tuple[float, float]],
    gaps: list[tuple[float, float]],
    show: str = "",
) -> int:
    """Boundaries inside a word: not in a pause the audio was made with (exact), and more
    than 30 ms inside a word by `words` (the bare model's timings)."""
    n = 0
    for c in cuts:
        if any(a <= c <= b for a, b in gaps):
            continue
        hit = [(a, b) for a, b in words if a + INSIDE_S < c < b - INSIDE_S]
        if hit:
            n += 1
            if show:
                print(
                    f"    {show}: boundary {c:.2f} s inside a word {hit[0][0]:.2f}-{hit[0][1]:.2f} s"
                )
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=80.0, help="length of each recording")
    ap.add_argument("--files", type=int, default=2, help="recordings per shape")
    ap.add_argument("--workdir", default="/tmp/speechmill-label-quality")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each cut inside a word")
    ap.add_argument(
        "--search",
        type=float,
        default=VadConfig().split_search_s,
        help="vad.split_search_s of the quiet split (default: the config default)",
    )
    ap.add_argument("--no-even", action="store_true", help="skip the even split's run")
    args = ap.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    audio = work / "audio"
    audio.mkdir(parents=True)
    refs, pauses, quiet = make_audio(audio, args.seconds, args.files)
    keys = sorted(refs)
    norm = get_normalizer("whisper-english")
    total_s = sum(sf.info(p).duration for p in audio.iterdir())
    print(
        f"label quality: {len(keys)} files, {total_s / 60:.1f} min of speech "
        f"({args.files} per shape x 3 encodings), tiny.en int8, 2 cores"
    )
    bare_text, words = bare(audio, keys)
    systems = {"bare": (bare_text, {})}
    systems["pipeline, quiet split"] = pipeline(audio, work / "quiet", args.search)
    if not args.no_even:
        systems["pipeline, even split"] = pipeline(audio, work / "even", 0.0)

    def wer(texts: dict[str, str], sel: list[str]) -> float:
        return corpus_counts((norm(refs[k]), norm(texts.get(k, ""))) for k in sel).rate

    print(
        f"\n{'system':24s}"
        + "".join(f"{s + '/' + e:>22s}" for s in SHAPES for e in ENCODINGS)
        + f"{'all':>8s}"
    )
    for name, (texts, _) in systems.items():
        cells = [
            100 * wer(texts, [k for k in keys if k.startswith(s) and k.endswith(e)])
            for s in SHAPES
            for e in ENCODINGS
        ]
        print(
            f"{name:24s}"
            + "".join(f"{c:21.2f}%" for c in cells)
            + f"{100 * wer(texts, keys):7.2f}%"
        )
    base = wer(bare_text, keys)
    for name in [n for n in systems if n != "bare"]:
        texts, cuts = systems[name]
        n_cuts = n_in = n_raw = 0
        for k, c in cuts.items():
            rec = recording_of(k)
            wk = words.get(rec, [])
            inner = [x for x in c if x > 0.5]  # the recording's own start is no cut
            n_cuts += len(inner)
            show = k if args.verbose else ""
            n_in += inside(inner, audible(wk, quiet[rec]), pauses[rec], show)
            n_raw += inside(inner, wk, pauses[rec], f"{show} (untrimmed timings)" if show else "")
        ratio = wer(texts, keys) / base if base else float("nan")
        print(
            f"{name}: WER ratio pipeline/bare {ratio:.2f} (target <= 1.00); "
            f"chunk boundaries inside a word {n_in}/{n_cuts} = {100 * n_in / max(n_cuts, 1):.1f}% "
            f"(target <= 1%; by Whisper's untrimmed word timings {n_raw}/{n_cuts} = "
            f"{100 * n_raw / max(n_cuts, 1):.1f}%)"
        )


if __name__ == "__main__":
    main()
