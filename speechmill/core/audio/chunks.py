"""Speech regions -> chunks of at most 30 s, and the ids derived from offsets."""

from __future__ import annotations

import hashlib
import itertools
import math
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from speechmill.schemas.rejects import Category, Drop

SAMPLE_RATE = 16000


@dataclass(frozen=True, order=True)
class Span:
    """[start, end) in samples at 16 kHz."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


def normalize_regions(regions: Iterable[Span], total: int) -> list[Span]:
    """Clamp to [0, total), drop empty ones, sort, and merge overlaps."""
    out: list[Span] = []
    for r in sorted(Span(max(0, r.start), min(total, r.end)) for r in regions):
        if r.end <= r.start:
            continue
        if out and r.start <= out[-1].end:
            out[-1] = Span(out[-1].start, max(out[-1].end, r.end))
        else:
            out.append(r)
    return out


def split_long(span: Span, max_len: int) -> list[Span]:
    """Split a span into equal parts no longer than max_len."""
    if span.length <= max_len:
        return [span]
    parts = -(-span.length // max_len)
    bounds = [span.start + (span.length * i) // parts for i in range(parts + 1)]
    return [Span(a, b) for a, b in itertools.pairwise(bounds)]


FRAME = SAMPLE_RATE // 100  # 10 ms
"""The resolution of quiet-point splitting."""


def frame_energy(audio: npt.NDArray[np.float32], frame: int = FRAME) -> npt.NDArray[np.float64]:
    """Mean square per frame, smoothed over 100 ms so a stop closure inside a word (30-80 ms
    of near-silence) scores above a pause between words."""
    n = len(audio) // frame
    if n == 0:
        return np.zeros(0)
    e = np.square(audio[: n * frame].astype(np.float64)).reshape(n, frame).mean(axis=1)
    k = min(10, n)
    return np.convolve(e, np.ones(k) / k, mode="same")


def split_quiet(
    span: Span, max_len: int, energy: npt.NDArray[np.float64], search: int, frame: int = FRAME
) -> list[Span]:
    """Split a span longer than max_len at its quietest points, never evenly.

    `energy[i]` is frame i's energy from `span.start`. There are as many parts as an even
    split would make; each cut is the quietest frame within `search` samples of where the
    even split would put it, never past `max_len` from the previous cut, at least
    `max_len // 2` after it and `max_len // 4` before the end, so no part is a sliver and
    cuts fall in pauses where there are any.
    """
    if span.length <= max_len:
        return [span]
    out: list[Span] = []
    start = span.start
    while span.end - start > max_len:
        parts = -(-(span.end - start) // max_len)
        target = start + (span.end - start) // parts
        lo = max(start + max_len // 2, target - search, span.end - (parts - 1) * max_len)
        hi = min(start + max_len, target + search, span.end - max_len // 4)
        a, b = (lo - span.start) // frame, (hi - span.start) // frame
        window = energy[a:b]
        if window.size == 0:  # no room to choose
            cut = min(start + max_len, max(lo, target))
        else:
            cut = span.start + (a + int(np.argmin(window))) * frame + frame // 2
            cut = min(max(cut, lo), hi)
        out.append(Span(start, cut))
        start = cut
    out.append(Span(start, span.end))
    return out


def plan_chunks(
    regions: Sequence[Span],
    *,
    total: int,
    max_len: int,
    merge_gap: int,
    min_len: int,
    energy: Callable[[Span], npt.NDArray[np.float64]] | None = None,
    search: int = 0,
) -> tuple[list[Span], list[Span]]:
    """Greedily merge speech regions into chunks (kept, too_short).

    Regions closer than `merge_gap` are merged while the chunk stays within
    `max_len`; longer regions are split at their quietest points (`split_quiet`, with
    `energy(region)` the region's frame energies), or evenly without `energy`. Chunks
    shorter than `min_len` are returned separately so they can be rejected, not dropped.
    """
    if max_len <= 0:
        raise ValueError("max_len must be positive")
    pieces = [
        p
        for r in normalize_regions(regions, total)
        for p in (
            split_quiet(r, max_len, energy(r), search)
            if energy is not None and r.length > max_len
            else split_long(r, max_len)
        )
    ]
    chunks: list[Span] = []
    cur: Span | None = None
    for p in pieces:
        if cur is not None and p.start - cur.end <= merge_gap and p.end - cur.start <= max_len:
            cur = Span(cur.start, p.end)
            continue
        if cur is not None:
            chunks.append(cur)
        cur = p
    if cur is not None:
        chunks.append(cur)
    kept = [c for c in chunks if c.length >= min_len]
    short = [c for c in chunks if c.length < min_len]
    return kept, short


def local_url(abs_path: str) -> str:
    """How a local path is stored in `sources.url`: the path itself, or, when the name
    is not valid UTF-8 (decoded with surrogateescape, so not storable), a `file://`
    URL with the raw bytes percent-encoded. `local_path` reverses it."""
    try:
        abs_path.encode("utf-8")
    except UnicodeEncodeError:
        raw = abs_path.encode("utf-8", "surrogateescape")
        return "file://" + urllib.parse.quote_from_bytes(raw, safe="/")
    return abs_path


def local_path(url: str) -> str:
    """The file system path of a stored local `sources.url` (see `local_url`)."""
    if url.startswith("file://"):
        return urllib.parse.unquote_to_bytes(url[len("file://") :]).decode(
            "utf-8", "surrogateescape"
        )
    return url


def local_media_id(abs_path: str) -> str:
    """`local:` + 24 hex digits of sha256 of the absolute path."""
    return "local:" + hashlib.sha256(abs_path.encode("utf-8", "surrogateescape")).hexdigest()[:24]


def segment_id(recording_id: str, span: Span) -> str:
    """`<recording_id[:24]>-<start>-<end>`: the same chunk always gets the same id."""
    return f"{recording_id[:24]}-{span.start}-{span.end}"


def silent(rms_dbfs: float, floor_dbfs: float) -> Drop | None:
    """A recording whose overall RMS is under the floor (or digital silence) is dropped."""
    if math.isfinite(rms_dbfs) and rms_dbfs >= floor_dbfs:
        return None
    return Drop(
        Category.SILENT,
        f"RMS {rms_dbfs:.1f} dBFS is below audio.silence_dbfs ({floor_dbfs} dBFS)",
    )


def no_speech(kept: Sequence[Span], short: Sequence[Span]) -> Drop | None:
    """A recording where VAD kept no chunk is dropped (saying if it found only short ones)."""
    if kept:
        return None
    if not short:
        return Drop(Category.NO_SPEECH, "VAD found no speech")
    return Drop(
        Category.NO_SPEECH,
        "VAD found only very short speech",
        f"{len(short)} regions under vad.min_chunk_s",
    )
