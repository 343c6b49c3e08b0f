"""The GPU check: the same speech decoded on the CPU and on CUDA, xRT and WER for each.

    scripts/gpu_check.sh                     # the whole check on a GPU machine (installs, runs)
    python scripts/gpu_check.py make-audio OUT          # generated speech + its text (piper)
    python scripts/gpu_check.py backend --audio OUT     # the ASR backend alone, per device/batch
    python scripts/gpu_check.py pipelines --audio OUT   # corpus + synth pipelines, per device

`backend` needs only numpy, ctranslate2, faster-whisper and this repository (so it runs
where nothing else can be installed); `pipelines` needs the locked environment. Devices
without a GPU print the CPU rows and say that CUDA was not seen. WER is the 1-best text
against the known text after Whisper's English normaliser; the devices must agree.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SENTENCES = [
    "The river kept its promise and flooded the lower fields by morning.",
    "Seven violins were tuned before the concert hall opened its doors.",
    "A quiet engineer wrote the schedule on the back of an envelope.",
    "Every lighthouse on this coast is painted red and white.",
    "The bakery on the corner sells warm bread until noon.",
    "Our train was delayed because a tree had fallen on the line.",
    "She planted tomatoes, beans and a row of sunflowers in May.",
    "The museum will close early on the first Friday of the month.",
    "He carried the heavy box up four flights of narrow stairs.",
    "Rain is expected tonight, so bring a coat if you go out.",
    "The children counted the boats that came into the harbour.",
    "A small dog waited patiently outside the post office.",
]


def make_audio(out: Path, clips: int = 36) -> None:
    """`clips` FLAC files of 1-3 piper sentences each (about 2.5 minutes), texts.json."""
    import soundfile as sf

    from tests.audio_fixtures import piper_speech, resample

    out.mkdir(parents=True, exist_ok=True)
    texts = {}
    for i in range(clips):
        n = 1 + i % 3
        text = " ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(n))
        audio, sr = piper_speech(text, length_scale=(0.9, 1.0, 1.15)[i % 3])
        audio = resample(audio, sr, 16000)
        pad = np.zeros(4000, np.float32)
        sf.write(out / f"clip{i:03d}.flac", np.concatenate([pad, audio, pad]), 16000)
        texts[f"clip{i:03d}"] = text
    (out / "texts.json").write_text(json.dumps(texts, indent=1), encoding="utf-8")


def _read(path: Path) -> np.ndarray:
    try:
        import soundfile as sf
    except ImportError:  # a machine with nothing installed: 16-bit WAV through SciPy
        from scipy.io import wavfile

        return wavfile.read(path)[1].astype(np.float32) / 32768
    return np.asarray(sf.read(path, dtype="float32")[0])


def load_audio(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The clips (`KEY.flac` or `KEY.wav`, 16 kHz mono) and their texts (texts.json)."""
    texts = json.loads((folder / "texts.json").read_text(encoding="utf-8"))
    audio = {}
    for k in texts:
        path = folder / f"{k}.flac"
        audio[k] = _read(path if path.exists() else folder / f"{k}.wav")
    return audio, texts


def wer(refs: list[str], hyps: list[str]) -> float:
    """Corpus WER after Whisper's English normaliser (word-level edit distance). Not
    `core.text.metrics`: that needs rapidfuzz, and `backend` must run without it."""
    from speechmill.core.text.normalize import get_normalizer

    norm = get_normalizer("whisper-english")
    errors = words = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        r, h = norm(ref).split(), norm(hyp).split()
        d = list(range(len(h) + 1))
        for i, rw in enumerate(r, 1):
            prev, d[0] = d[0], i
            for j, hw in enumerate(h, 1):
                prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (rw != hw))
        errors += d[len(h)]
        words += len(r)
    return errors / max(words, 1)


def devices() -> list[str]:
    from speechmill.backends.devices import cuda_devices

    return ["cpu", "cuda"] if cuda_devices() > 0 else ["cpu"]


def backend(folder: Path, model: str, n_best: int) -> None:
    from speechmill.backends.asr import decode_with_retry
    from speechmill.backends.devices import resolve_compute_type
    from speechmill.backends.faster_whisper import FasterWhisperBackend
    from speechmill.core.asr.decoding import AsrItem, DecodeOptions
    from speechmill.core.text.normalize import get_normalizer

    audio, texts = load_audio(folder)
    keys = sorted(audio)
    seconds = sum(len(a) for a in audio.values()) / 16000
    opts = DecodeOptions(beam_size=max(5, n_best), n_best=n_best)
    norm = get_normalizer("whisper-english")
    print(f"backend check: {len(keys)} clips, {seconds:.0f} s of speech, {model}, N-best {n_best}")
    if devices() == ["cpu"]:
        print("  CUDA: not seen by CTranslate2 here; CPU rows only")
    best: dict[str, list[str]] = {}
    for device in devices():
        ct = resolve_compute_type("auto", device)
        t0 = time.monotonic()
        be = FasterWhisperBackend.load(model, device, ct)
        load_s = time.monotonic() - t0
        for batch in (8,) if device == "cpu" else (1, 8, 16, 32):
            items = [AsrItem(k, audio[k], "en") for k in keys]
            decode_with_retry(be, items[:batch], opts, norm)  # warm-up
            t0 = time.monotonic()
            outs = []
            for i in range(0, len(items), batch):
                outs += decode_with_retry(be, items[i : i + batch], opts, norm)
            wall = time.monotonic() - t0
            failed = [o for o in outs if o.error is not None]
            if failed:
                print(
                    f"  {device:4s} {ct:8s} batch {batch:2d}  FAILED on {len(failed)}/{len(outs)} "
                    f"clips: {failed[0].error}"
                )
                continue
            hyps = [o.nbest.hyps[0].text if o.nbest else "" for o in outs]
            uniq = np.mean([o.nbest.n_unique if o.nbest else 0 for o in outs])
            best[f"{device}/{batch}"] = hyps
            print(
                f"  {device:4s} {ct:8s} batch {batch:2d}  {seconds / wall:7.1f} x RT  "
                f"WER {100 * wer([texts[k] for k in keys], hyps):5.2f}%  "
                f"distinct {uniq:.2f}/{n_best}  (load {load_s:.1f} s)"
            )
    first = next(iter(best.values()))
    for name, hyps in best.items():
        same = sum(a == b for a, b in zip(first, hyps, strict=True))
        print(f"  1-best equal to {next(iter(best))}: {name} {same}/{len(first)}")


def pipelines(folder: Path, work: Path) -> None:
    """The corpus pipeline on the clips and the synth pipeline on the texts, per device."""
    from speechmill.store import Store, connect

    audio, texts = load_audio(folder)
    work.mkdir(parents=True, exist_ok=True)
    lines = work / "texts.txt"
    lines.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    seconds = sum(len(a) for a in audio.values()) / 16000
    for device in devices():
        root = work / f"ds-{device}"
        cfg = work / f"{device}.yaml"
        cfg.write_text(
            f"store: {{root: {root}}}\n"
            f"sources: [{{kind: local, name: clips, paths: [{folder}], language: en}}]\n"
            f"asr: {{device: {device}}}\n"
            f"synth: {{texts: [{{kind: text, path: {lines}, name: lines}}], "
            f"voices: [{{engine: piper}}]}}\n",
            encoding="utf-8",
        )
        for pipeline in ("run", "synth"):
            t0 = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "speechmill.cli", pipeline, str(cfg), "--no-progress"],
                check=True,
                capture_output=True,
            )
            wall = time.monotonic() - t0
            con = connect(Store(str(root)))
            if pipeline == "run":
                rows = con.execute(
                    "SELECT src.url, string_agg(s.text, ' ' ORDER BY s.start_s) FROM segments s "
                    "JOIN sources src USING (recording_id) GROUP BY 1"
                ).fetchall()
                hyps = {Path(url).stem: t for url, t in rows}
                keys = sorted(texts)
                w = wer([texts[k] for k in keys], [hyps.get(k, "") for k in keys])
                print(
                    f"  corpus  {device:4s} {seconds / wall:6.1f} x RT (wall {wall:5.1f} s, "
                    f"model load included)  WER {100 * w:5.2f}%"
                )
            else:
                n, m = con.execute("SELECT count(*), avg(wer_1best) FROM pairs").fetchone()
                print(f"  synth   {device:4s} {n} pairs in {wall:5.1f} s  mean pair WER {m:.3f}")
            con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("make-audio")
    p.add_argument("out", type=Path)
    p = sub.add_parser("backend")
    p.add_argument("--audio", type=Path, required=True)
    p.add_argument("--model", default="bundled:tiny.en")
    p.add_argument("--n-best", type=int, default=5)
    p = sub.add_parser("pipelines")
    p.add_argument("--audio", type=Path, required=True)
    p.add_argument("--work", type=Path, default=Path("/tmp/speechmill-gpu-check"))
    args = ap.parse_args()
    if args.mode == "make-audio":
        make_audio(args.out)
    elif args.mode == "backend":
        backend(args.audio, args.model, args.n_best)
    else:
        pipelines(args.audio, args.work)


if __name__ == "__main__":
    main()
