"""How well the filter suite separates good utterances from injected bad ones.

    .venv/bin/python benchmarks/filter_quality.py [--good 40] [--bad 10]

A labelled test set is generated twice (seed A to tune, seed B to report):

  good            piper speech of a demo sentence, labelled with its text
  label_swap      piper speech of one sentence, labelled with another's text
  noise           coloured noise or a tone with a plausible label
  non_english     espeak-ng speaking German, French or Spanish; labelled with what
                  Whisper tiny.en makes of it (as a corpus run would)
  repetition      speech whose label is a Whisper-style repetition loop
  truncated       speech labelled with only the first part of its text

Each item becomes an `Utterance` the way `speechmill refine` makes one: the label is
force-aligned to the audio (word scores), the audio is decoded on its own (avg
log-prob, no-speech probability, compression ratio). Then the filters run.
Printed: recall on bad items overall and per category, retention of good items,
and the label WER of the kept set vs the unfiltered set against the true text.
Thresholds are tuned on seed A (grid over the decisive ones) and reported on B.
"""

from __future__ import annotations

import argparse
import itertools
import random
import time

import numpy as np

from speechmill.backends.align import WhisperAligner
from speechmill.backends.asr import decode_with_retry
from speechmill.backends.tts import EspeakTts, PiperTts, VoiceParams
from speechmill.config import FiltersConfig
from speechmill.core.asr.decoding import AsrItem, DecodeOptions
from speechmill.core.quality.filters import apply
from speechmill.core.text.metrics import compression_ratio, corpus_counts
from speechmill.core.text.normalize import get_normalizer
from speechmill.demo import demo_sentences
from speechmill.schemas import Attribution, Utterance, Word

FOREIGN = {
    "de": [
        "Der Zug kam heute morgen wieder zu spät am Bahnhof an.",
        "Meine Schwester kocht am Wochenende gern für die ganze Familie.",
        "Im Winter liegt in den Bergen oft sehr viel Schnee.",
        "Die Kinder spielen nach der Schule im großen Park.",
    ],
    "fr": [
        "Le train est encore arrivé en retard ce matin.",
        "Nous avons acheté du pain frais à la boulangerie du coin.",
        "Il pleut souvent en automne dans cette petite ville.",
        "Les enfants jouent dans le jardin après le déjeuner.",
    ],
    "es": [
        "El tren llegó tarde otra vez esta mañana a la estación.",
        "Mi hermano aprende a tocar la guitarra por las tardes.",
        "En verano hace mucho calor en el sur del país.",
        "Los niños leen un libro nuevo cada semana en la escuela.",
    ],
}
SR = 16000


def resample(audio: np.ndarray, src: int) -> np.ndarray:
    if src == SR:
        return audio.astype(np.float32)
    n = round(len(audio) * SR / src)
    return np.interp(np.linspace(0, len(audio) - 1, n), np.arange(len(audio)), audio).astype(
        np.float32
    )


def noise(rng: np.random.Generator, seconds: float) -> np.ndarray:
    n = int(seconds * SR)
    kind = rng.integers(3)
    if kind == 0:  # tone
        t = np.arange(n) / SR
        return (0.2 * np.sin(2 * np.pi * rng.uniform(150, 800) * t)).astype(np.float32)
    white = rng.normal(0, 1, n)
    if kind == 1:  # brown-ish
        white = np.cumsum(white)
        white -= np.convolve(white, np.ones(400) / 400, mode="same")
    return (0.1 * white / (np.abs(white).max() + 1e-9)).astype(np.float32)


def make_set(seed: int, n_good: int, n_bad: int, piper: PiperTts, espeak: EspeakTts):
    """[(category, audio, label, true_text)]"""
    rng = np.random.default_rng(seed)
    pyrng = random.Random(seed)
    sentences = demo_sentences()
    pyrng.shuffle(sentences)
    pool = itertools.cycle(sentences)

    def speak(text: str) -> np.ndarray:
        s = piper.synthesize(
            text,
            VoiceParams(
                "joe",
                length_scale=float(rng.uniform(0.9, 1.15)),
                noise_scale=0.5,
                noise_w_scale=0.7,
            ),
        )
        pad = np.zeros(int(0.2 * SR), np.float32)
        return np.concatenate([pad, resample(s.audio, s.sample_rate), pad])

    items = []
    for _ in range(n_good):
        t = next(pool)
        items.append(("good", speak(t), t, t))
    for _ in range(n_bad):
        t, other = next(pool), next(pool)
        items.append(("label_swap", speak(t), other, t))
    for _ in range(n_bad):
        t = next(pool)
        items.append(("noise", noise(rng, rng.uniform(2.5, 6.0)), t, ""))
    langs = list(FOREIGN)
    for i in range(n_bad):
        lang = langs[i % len(langs)]
        text = FOREIGN[lang][(i // len(langs)) % len(FOREIGN[lang])]
        s = espeak.synthesize(text, VoiceParams(lang, variant=["m3", "f2"][i % 2]))
        items.append(("non_english", resample(s.audio, s.sample_rate), None, text))
    for _ in range(n_bad):
        t = next(pool)
        words = t.rstrip(".").split()
        loop = " ".join(words[:3])
        label = " ".join(words[:4]) + " " + " ".join([loop] * int(rng.integers(4, 8)))
        items.append(("repetition", speak(t), label, t))
    for _ in range(n_bad):
        t = next(pool)
        words = t.split()
        items.append(("truncated", speak(t), " ".join(words[: max(2, len(words) // 2)]), t))
    return items


def to_utterances(items, aligner: WhisperAligner, backend, norm):
    opts = DecodeOptions(beam_size=5, n_best=1, top_up=False)
    outs = []
    for i in range(0, len(items), 8):
        batch = items[i : i + 8]
        outs += decode_with_retry(
            backend, [AsrItem(f"u{i + j}", b[1], "en") for j, b in enumerate(batch)], opts, norm
        )
    utts = []
    for k, ((_cat, audio, given, _truth), out) in enumerate(zip(items, outs, strict=True)):
        best = out.nbest.hyps[0] if out.nbest and out.nbest.hyps else None
        asr = best.text if best else ""
        label = asr if given is None else given
        al = aligner.align(audio, label, "en")
        utts.append(
            Utterance(
                utterance_id=f"u{k:04d}",
                recording_id="r" * 64,
                source_id="bench",
                start_sample=0,
                end_sample=len(audio),
                start_s=0.0,
                duration_s=len(audio) / SR,
                text=label,
                words=[Word(w.word, w.start_s, w.end_s, w.score) for w in al.words],
                align_score=al.score,
                unaligned_words=al.unaligned,
                aligner=aligner.name,
                asr_text=asr,
                avg_logprob=best.avg_logprob if best else float("-inf"),
                no_speech_prob=out.no_speech_prob,
                compression_ratio=compression_ratio(asr),
                language="en",
                language_prob=None,
                license="cc0-1.0",
                attribution=Attribution(),
                run_id="bench",
            )
        )
    return utts


def evaluate(items, utts, cfg: FiltersConfig, norm, verbose: bool = False):
    verdicts = apply(utts, cfg, target_language="en")
    cats = sorted({c for c, *_ in items})
    stats = {}
    for c in cats:
        idx = [i for i, it in enumerate(items) if it[0] == c]
        dropped = sum(not verdicts[i].keep for i in idx)
        stats[c] = (dropped, len(idx))
    good_kept = stats["good"][1] - stats["good"][0]
    bad = [(d, n) for c, (d, n) in stats.items() if c != "good"]
    recall = sum(d for d, _ in bad) / max(1, sum(n for _, n in bad))
    retention = good_kept / max(1, stats["good"][1])

    def wer(keep_only: bool) -> float:
        pairs = [
            (norm(it[3]), norm(u.text))
            for it, u, v in zip(items, utts, verdicts, strict=True)
            if v.keep or not keep_only
        ]
        return corpus_counts(pairs).rate

    by_filter: dict[str, int] = {}
    for v in verdicts:
        if not v.keep and v.filter:
            by_filter[v.filter] = by_filter.get(v.filter, 0) + 1
    return recall, retention, stats, wer(True), wer(False), by_filter


def tune(items, utts, norm, base: FiltersConfig) -> FiltersConfig:
    """Grid over the decisive thresholds: best recall with retention >= 0.9 (then WER)."""
    best: tuple[float, float, FiltersConfig] | None = None
    for align, cer, lp in itertools.product(
        (0.1, 0.2, 0.3, 0.4), (0.15, 0.25, 0.35, 0.5), (-1.2, -1.0, -0.8, -0.6)
    ):
        cfg = base.model_copy(
            update={"min_align_score": align, "max_label_cer": cer, "min_avg_logprob": lp}
        )
        recall, retention, _, kept_wer, _, _ = evaluate(items, utts, cfg, norm)
        if retention < 0.9:
            continue
        key = (recall, -kept_wer)
        if best is None or key > (best[0], best[1]):
            best = (recall, -kept_wer, cfg)
    return best[2] if best else base


def report(name: str, items, utts, cfg, norm) -> None:
    recall, retention, stats, kept_wer, all_wer, by_filter = evaluate(items, utts, cfg, norm)
    print(f"\n== {name} ==")
    print(f"  recall on bad items: {100 * recall:.1f}%  (target >= 95%)")
    print(f"  retention of good items: {100 * retention:.1f}%  (target >= 90%)")
    for c, (d, n) in stats.items():
        label = "kept" if c == "good" else "caught"
        value = n - d if c == "good" else d
        print(f"    {c:12s} {label} {value}/{n}")
    print(
        f"  label WER kept {100 * kept_wer:.1f}% vs unfiltered {100 * all_wer:.1f}%"
        f"  -> ratio {kept_wer / all_wer if all_wer else 0:.2f}  (target <= 0.7)"
    )
    print(f"  drops by filter: {dict(sorted(by_filter.items()))}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--good", type=int, default=40)
    ap.add_argument("--bad", type=int, default=10)
    args = ap.parse_args()
    t0 = time.time()
    aligner = WhisperAligner.load()
    backend = aligner.backend
    norm = get_normalizer("whisper-english")
    piper, espeak = PiperTts(), EspeakTts()
    sets = {}
    for name, seed in (("A (tuning)", 1), ("B (report)", 2)):
        items = make_set(seed, args.good, args.bad, piper, espeak)
        sets[name] = (items, to_utterances(items, aligner, backend, norm))
    default = FiltersConfig()
    items_a, utts_a = sets["A (tuning)"]
    items_b, utts_b = sets["B (report)"]
    report("seed B with the shipped defaults", items_b, utts_b, default, norm)
    tuned = tune(items_a, utts_a, norm, default)
    print(
        f"\ntuned on seed A: min_align_score={tuned.min_align_score} "
        f"max_label_cer={tuned.max_label_cer} min_avg_logprob={tuned.min_avg_logprob}"
    )
    report("seed B with the thresholds tuned on seed A", items_b, utts_b, tuned, norm)
    print(f"\n({len(items_a) + len(items_b)} utterances, {time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
