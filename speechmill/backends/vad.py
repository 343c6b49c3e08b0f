"""Silero VAD through the ONNX model faster-whisper ships (no torch).

Long recordings are read in windows so memory stays bounded; regions cut by a
window edge are joined again.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from speechmill.core.audio.chunks import SAMPLE_RATE, Span, normalize_regions

WINDOW_S = 600.0

Detector = Callable[[npt.NDArray[np.float32]], list[Span]]


def silero_detector(
    threshold: float, min_speech_ms: int, min_silence_ms: int, speech_pad_ms: int, max_s: float
) -> Detector:
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    opts = VadOptions(
        threshold=threshold,
        min_speech_duration_ms=min_speech_ms,
        min_silence_duration_ms=min_silence_ms,
        speech_pad_ms=speech_pad_ms,
        max_speech_duration_s=max_s,
    )

    def detect(audio: npt.NDArray[np.float32]) -> list[Span]:
        if audio.size < 512:
            return []
        return [Span(int(t["start"]), int(t["end"])) for t in get_speech_timestamps(audio, opts)]

    return detect


def windowed_regions(
    read: Callable[[int, int], npt.NDArray[np.float32]],
    total: int,
    detect: Detector,
    window: int = int(WINDOW_S * SAMPLE_RATE),
) -> list[Span]:
    """Run `detect` over [0, total) in windows and stitch regions across window edges."""
    regions: list[Span] = []
    start = 0
    edge_slack = SAMPLE_RATE // 2
    while start < total:
        stop = min(total, start + window)
        audio = read(start, stop)
        found = [Span(r.start + start, r.end + start) for r in detect(audio)]
        if (
            regions
            and found
            and found[0].start - start < edge_slack
            and (start - regions[-1].end < edge_slack)
        ):
            regions[-1] = Span(regions[-1].start, found[0].end)
            found = found[1:]
        regions.extend(found)
        start = stop
    return normalize_regions(regions, total)
