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

QUIET_PERCENTILE = 5.0
"""A region's own floor: this percentile of its frame energies (dB), so the levels below
are relative and a quiet 8 kHz phone call is scored like a loud 48 kHz studio copy."""
QUIET_LEVELS_DB = (3.0, 6.0, 10.0, 15.0)
"""A frame is quiet at level t when its energy is under the floor + t dB."""
EXTRA_PART_GAIN = 0.15
"""One more part than an even split makes is taken only when it lowers the total cost by
this much: when it moves a cut from a word or a closure (a quiet run under ~60 ms, cost
0.25 and more) into a pause (about 0.1)."""


def frame_energy(audio: npt.NDArray[np.float32], frame: int = FRAME) -> npt.NDArray[np.float64]:
    """Mean square per 10 ms frame, unsmoothed: `split_quiet` looks for runs of quiet
    frames, which smoothing would blur into the loud frames around them."""
    n = len(audio) // frame
    if n == 0:
        return np.zeros(0)
    energy: npt.NDArray[np.float64] = (
        np.square(audio[: n * frame].astype(np.float64)).reshape(n, frame).mean(axis=1)
    )
    return energy


def quiet_cost(energy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per frame, the cost of cutting there, in (0, 1]: lowest in the middle of the longest
    run of quiet frames, 1 (plus a tie-break of 1e-4 by energy) on a loud frame.

    For each level t of QUIET_LEVELS_DB, a frame scores 1 / (1 + its distance in frames to
    the nearest frame that is not quiet at t); the cost is the mean over the levels. A
    pause between sentences or at a comma (mostly 150 ms and more) is a long run and
    scores low; a stop closure inside a word (20-130 ms) scores higher however quiet it
    is. The levels are relative to the region's floor (QUIET_PERCENTILE): no absolute
    threshold, so the level and the band (8 kHz or 48 kHz) of a copy hardly matter.
    """
    n = energy.size
    if n == 0:
        return np.zeros(0)
    db = 10 * np.log10(np.maximum(energy, 1e-10))
    floor = float(np.percentile(db, QUIET_PERCENTILE))
    idx = np.arange(n)
    cost = np.zeros(n)
    for level in QUIET_LEVELS_DB:
        loud = db >= floor + level  # frames -1 and n count as loud
        left = np.maximum.accumulate(np.where(loud, idx, -1))
        right = np.minimum.accumulate(np.where(loud, idx, n)[::-1])[::-1]
        cost += 1.0 / (1 + np.minimum(idx - left, right - idx))
    spread = max(float(db.max()) - float(db.min()), 1e-9)
    return cost / len(QUIET_LEVELS_DB) + 1e-4 * (db - float(db.min())) / spread


def _sliding_min(x: npt.NDArray[np.float64], w: int) -> npt.NDArray[np.float64]:
    """out[i] = min(x[i : i + w]) for i in range(len(x) - w + 1), in O(len(x))."""
    n = x.size
    blocks = -(-n // w)
    xp = np.concatenate([x, np.full(blocks * w - n, np.inf)]).reshape(blocks, w)
    prefix = np.minimum.accumulate(xp, axis=1).ravel()
    suffix = np.minimum.accumulate(xp[:, ::-1], axis=1)[:, ::-1].ravel()
    i = np.arange(n - w + 1)
    return np.minimum(suffix[i], prefix[i + w - 1])


def _best_cuts(
    span: Span,
    parts: int,
    max_len: int,
    cost: npt.NDArray[np.float64],
    search: int,
    frame: int,
) -> tuple[float, list[int]] | None:
    """The cuts into `parts` parts, each at most `max_len` and at least `max_len // 2`,
    cut k within `search` of the even split's cut k, with the lowest total cost: dynamic
    programming over the frame centres. None if no such cuts lie on frame centres."""
    if parts < 2:
        return (0.0, []) if span.length <= max_len else None
    min_part, half = max_len // 2, frame // 2
    last_j = (span.length - half - 1) // frame  # the last frame centre inside the span

    def centre(j: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return span.start + j * frame + half

    # between consecutive cuts (both frame centres) lie (j - j') frames
    a, b = -(-min_part // frame), max_len // frame
    if a > b:
        return None
    layers: list[tuple[int, npt.NDArray[np.float64]]] = []  # (first j, best total per j)
    for k in range(1, parts):
        even = span.start + (span.length * k) // parts
        lo = max(span.start + 1, even - search)
        hi = min(span.end - 1, even + search)
        j0 = max(0, -(-(lo - span.start - half) // frame))
        j1 = min(last_j, (hi - span.start - half) // frame)
        if j1 < j0:
            return None
        j = np.arange(j0, j1 + 1, dtype=np.int64)
        here = np.full(j.size, 1.0 + 1e-4)  # frames past `energy` count as loud
        here[j < cost.size] = cost[j[j < cost.size]]
        if not layers:
            first = centre(j) - span.start
            prev = np.where((first >= min_part) & (first <= max_len), 0.0, np.inf)
        else:
            p0, pbest = layers[-1]
            # min of pbest over j' in [j - b, j - a], with inf outside the previous window
            w = b - a + 1
            ext = np.concatenate([np.full(w, np.inf), pbest, np.full(w, np.inf)])
            mins = _sliding_min(ext, w)
            # ext index of j' is j' - p0 + w; the window [j - b, j - a] starts at j - b
            at = j - b - p0 + w
            ok = (at >= 0) & (at < mins.size)
            prev = np.where(ok, np.take(mins, at, mode="clip"), np.inf)
        layers.append((j0, prev + here))
    j0, best = layers[-1]
    tail = span.end - centre(np.arange(j0, j0 + best.size, dtype=np.int64))
    best = np.where((tail >= min_part) & (tail <= max_len), best, np.inf)
    if not np.isfinite(best).any():
        return None
    i = int(np.argmin(best))
    total = float(best[i])
    cuts = [j0 + i]
    for p0, pbest in reversed(layers[:-1]):
        jj = cuts[-1]
        r0, r1 = max(p0, jj - b), min(p0 + pbest.size - 1, jj - a)
        cuts.append(r0 + int(np.argmin(pbest[r0 - p0 : r1 + 1 - p0])))
    return total, [int(c) for c in centre(np.array(cuts[::-1], dtype=np.int64))]


def split_quiet(
    span: Span, max_len: int, energy: npt.NDArray[np.float64], search: int, frame: int = FRAME
) -> list[Span]:
    """Split a span longer than max_len in its longest pauses.

    `energy[i]` is frame i's energy from `span.start` (`frame_energy`). The span is cut into
    as many parts as an even split makes, or one more where that takes a cut out of a word
    (EXTRA_PART_GAIN); every part is at most `max_len` and at least `max_len // 2`, and cut
    k lies within `search` samples of the even split's cut k. Within those bounds the cuts
    are chosen together, the lowest total `quiet_cost` (so an early cut never forces a
    later one into a word): each in the middle of the longest run of quiet frames near it.
    `search` 0 gives the even split, and so does a span with no room to choose.
    """
    if span.length <= max_len or search <= 0:
        return split_long(span, max_len)
    parts = -(-span.length // max_len)
    cost = quiet_cost(energy)
    best = _best_cuts(span, parts, max_len, cost, search, frame)
    # one more part costs at least `parts` times the cheapest frame: try it only if it can win
    if best is None or parts * float(cost.min(initial=1.0)) + EXTRA_PART_GAIN < best[0]:
        more = _best_cuts(span, parts + 1, max_len, cost, search, frame)
        if more is not None and (best is None or more[0] + EXTRA_PART_GAIN < best[0]):
            best = more
    if best is None:  # no room to choose (a span a hair under parts * max_len)
        return split_long(span, max_len)
    bounds = [span.start, *best[1], span.end]
    return [Span(a, b) for a, b in itertools.pairwise(bounds)]


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
    `max_len`; longer regions are split in their longest pauses (`split_quiet`, with
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
