"""The encoder's context: padded to Whisper's 30 s, or sized to the audio?

    .venv/bin/python benchmarks/context_floor.py [--clips 108]

Whisper is trained on 30 s windows; `asr.min_context_s` lets short audio use a
shorter encoder input (whole 10 s steps that cover it, never below the floor),
which is several times cheaper. This measures what that costs in accuracy:
short clips made here (every demo, synth and babble sentence, bundled piper voice
at four speeds, 2-8 s), 1-best at beam 5, with the floor at 30, 20, 10 and 5 s.

Printed per floor: CPU seconds of the decode (this process's, so other load on
the machine does not count), the time ratio to 30 s, and WER with its error
count. The corpus default (`asr.min_context_s`) is the shortest floor whose WER is
no worse than 30 s on this set. Benchmarks print; they never assert.
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib.resources import files
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from speechmill.backends.faster_whisper import FasterWhisperBackend  # noqa: E402
from speechmill.backends.tts import PiperTts, VoiceParams  # noqa: E402
from speechmill.core.asr.decoding import AsrItem, DecodeOptions  # noqa: E402
from speechmill.core.audio.io import resample  # noqa: E402
from speechmill.core.text.metrics import corpus_counts  # noqa: E402
from speechmill.core.text.normalize import get_normalizer  # noqa: E402

FLOORS = (30.0, 20.0, 10.0, 5.0)


def sentences() -> list[str]:
    out = []
    for name in ("synth_sentences.txt", "demo_sentences.txt", "babble_sentences.txt"):
        text = files("speechmill.data").joinpath(name).read_text()
        out += [s.strip() for s in text.splitlines() if s.strip() and not s.startswith("#")]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=108)
    args = ap.parse_args()
    texts = sentences()[: args.clips]
    piper = PiperTts()
    items = []
    for i, text in enumerate(texts):
        s = piper.synthesize(text, VoiceParams("joe", length_scale=0.85 + 0.1 * (i % 4)))
        audio = resample(s.audio.astype(np.float32), s.sample_rate, 16000)
        items.append(AsrItem(f"u{i}", audio, "en"))
    seconds = [len(it.audio) / 16000 for it in items]
    print(f"{len(items)} clips, {sum(seconds):.0f} s, {min(seconds):.1f}-{max(seconds):.1f} s each")
    backend = FasterWhisperBackend.load()
    norm = get_normalizer("whisper-english")
    base = None
    for floor in FLOORS:
        options = DecodeOptions(
            beam_size=5, n_best=1, top_up=False, alternatives=0, min_context_s=floor
        )
        t = time.process_time()
        outs = []
        for i in range(0, len(items), 8):
            outs += backend.decode(items[i : i + 8], options, norm)
        cpu = time.process_time() - t
        base = base or cpu
        c = corpus_counts(
            [
                (norm(ref), norm(o.nbest.hyps[0].text if o.nbest and o.nbest.hyps else ""))
                for ref, o in zip(texts, outs, strict=True)
            ]
        )
        print(
            f"  floor {floor:4.0f} s  cpu {cpu:6.1f} s  time/30 s {cpu / base:.2f}"
            f"  WER {100 * c.rate:5.2f}%  ({c.errors}/{c.ref_len} words)"
        )


if __name__ == "__main__":
    main()
