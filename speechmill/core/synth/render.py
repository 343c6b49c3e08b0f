"""Rendering one synthetic utterance: speak, check, degrade, check; or why not.

The engine and the degradation are passed in as functions, so the decisions (what
counts as no audio, what is too long, which failure is which category) are tested
without a TTS engine or Beam; `transforms.synth.SynthesizeDoFn` only wires them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from speechmill.core.audio.chunks import SAMPLE_RATE
from speechmill.faults import fault_point
from speechmill.schemas.rejects import Category, Drop

MAX_AUDIO_S = 30.0
"""Longest synthetic utterance: what one Whisper window holds."""

Audio = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Rendered:
    clean: Audio
    noisy: Audio

    @property
    def duration_s(self) -> float:
        return self.noisy.size / SAMPLE_RATE


def render(
    speak: Callable[[], Audio],
    degrade: Callable[[Audio], Audio],
    *,
    max_audio_s: float = MAX_AUDIO_S,
    error_detail: Callable[[BaseException], str] = repr,
) -> Rendered | Drop:
    """The clean and degraded 16 kHz audio of one utterance, or the drop that stops it."""
    try:
        clean = speak()
    except Exception as e:
        return Drop(Category.TTS_ERROR, "the TTS engine failed", error_detail(e))
    if clean.size < SAMPLE_RATE // 10 or float(np.abs(clean).max(initial=0.0)) < 1e-4:
        return Drop(Category.TTS_ERROR, "the TTS engine produced no audio")
    fault_point("synth.augment")
    try:
        noisy = degrade(clean)
    except Exception as e:
        return Drop(Category.INTERNAL, "augmentation failed", error_detail(e))
    out = Rendered(clean, np.asarray(noisy, dtype=np.float32))
    if out.duration_s > max_audio_s:
        return Drop(
            Category.TOO_LONG,
            f"synthesised audio is {out.duration_s:.1f} s, over the {max_audio_s:.0f} s a "
            "Whisper window holds; lower synth.max_words",
        )
    return out
