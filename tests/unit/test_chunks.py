from __future__ import annotations

import itertools

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from speechmill.core.audio.chunks import (
    FRAME,
    Span,
    frame_energy,
    local_media_id,
    normalize_regions,
    plan_chunks,
    segment_id,
    split_long,
    split_quiet,
)

SR = 16000
spans = st.lists(
    st.tuples(st.integers(-1000, 40 * 60 * SR), st.integers(0, 90 * SR)).map(
        lambda t: Span(t[0], t[0] + t[1])
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(spans, st.integers(SR // 2, 30 * SR), st.integers(0, 3 * SR), st.integers(0, SR))
def test_chunks_are_ordered_disjoint_bounded_and_cover_speech(regions, max_len, gap, min_len):
    total = 40 * 60 * SR
    kept, short = plan_chunks(regions, total=total, max_len=max_len, merge_gap=gap, min_len=min_len)
    chunks = sorted(kept + short)
    for c in chunks:
        assert 0 <= c.start < c.end <= total
        assert c.length <= max_len
    for a, b in itertools.pairwise(chunks):
        assert a.end <= b.start
    assert all(c.length >= min_len for c in kept)
    assert all(c.length < min_len for c in short)
    # every speech sample is in exactly one chunk (nothing dropped silently)
    speech = normalize_regions(regions, total)
    covered = sum(c.length for c in chunks)
    assert covered >= sum(r.length for r in speech)
    for r in speech:
        inside = sum(max(0, min(r.end, c.end) - max(r.start, c.start)) for c in chunks)
        assert inside == r.length


@given(st.integers(0, 10**9), st.integers(1, 10**7), st.integers(1000, 10**6))
def test_split_long_is_exact(start, length, max_len):
    parts = split_long(Span(start, start + length), max_len)
    assert parts[0].start == start and parts[-1].end == start + length
    assert all(p.length <= max_len and p.length > 0 for p in parts)
    assert all(a.end == b.start for a, b in itertools.pairwise(parts))


def test_merges_close_regions_up_to_max_len():
    r = [Span(0, 5 * SR), Span(5 * SR + 100, 10 * SR), Span(25 * SR, 40 * SR)]
    kept, short = plan_chunks(r, total=60 * SR, max_len=30 * SR, merge_gap=SR, min_len=0)
    assert kept == [Span(0, 10 * SR), Span(25 * SR, 40 * SR)]
    assert short == []


@given(st.text(min_size=1, max_size=200))
def test_ids_are_deterministic(path):
    assert local_media_id(path) == local_media_id(path)
    assert local_media_id(path).startswith("local:")
    assert len(local_media_id(path)) == len("local:") + 24


@given(st.integers(0, 10**9), st.integers(1, 10**6))
def test_segment_ids_differ_by_offsets(start, length):
    rid = "ab" * 32
    a = segment_id(rid, Span(start, start + length))
    b = segment_id(rid, Span(start, start + length + 1))
    assert a != b and a == segment_id(rid, Span(start, start + length))


@settings(max_examples=500, deadline=None)
@example(0, 203002, 193246, 126234, 303)  # a greedy cut once left a 0.6 s last part
@given(
    st.integers(0, 10**6),
    st.integers(1, 200 * SR),
    st.integers(SR, 30 * SR),
    st.integers(0, 10 * SR),
    st.integers(0, 2**32 - 1),
)
def test_split_quiet_is_exact_balanced_and_bounded(start, length, max_len, search, seed):
    span = Span(start, start + length)
    energy = np.random.default_rng(seed).random(length // FRAME + 1)
    parts = split_quiet(span, max_len, energy, search)
    assert parts[0].start == start and parts[-1].end == span.end
    assert all(0 < p.length <= max_len for p in parts)
    assert all(a.end == b.start for a, b in itertools.pairwise(parts))
    assert len(parts) == len(split_long(span, max_len))  # as many parts as an even split
    if len(parts) > 1:
        assert min(p.length for p in parts) >= max_len // 4  # no slivers


def words_and_pauses(seconds: float, seed: int = 0) -> tuple[np.ndarray, list[Span]]:
    """Continuous 'speech': words of 150-500 ms with 20-60 ms stop closures inside them,
    separated by pauses of 120-250 ms (shorter than any VAD's min_silence); the pauses."""
    rng = np.random.default_rng(seed)
    out, pauses, t = [], [], 0
    while t < seconds * SR:
        for _ in range(rng.integers(1, 3)):  # a word, maybe with a closure inside
            n = int(rng.uniform(0.15, 0.5) * SR)
            out.append(rng.normal(0, 0.2, n))
            out.append(rng.normal(0, 0.002, int(rng.uniform(0.02, 0.06) * SR)))
            t += n + len(out[-1])
        out.append(rng.normal(0, 0.2, int(0.1 * SR)))
        t += int(0.1 * SR)
        gap = int(rng.uniform(0.12, 0.25) * SR)
        pauses.append(Span(t, t + gap))
        out.append(rng.normal(0, 0.002, gap))
        t += gap
    return np.concatenate(out).astype(np.float32), pauses


def test_long_regions_are_cut_in_pauses_not_inside_words():
    audio, pauses = words_and_pauses(75.0)
    region = Span(0, len(audio))
    max_len = 30 * SR

    def in_pause(cut: int) -> bool:
        return any(p.start <= cut < p.end for p in pauses)

    kept, _ = plan_chunks(
        [region],
        total=len(audio),
        max_len=max_len,
        merge_gap=0,
        min_len=0,
        energy=lambda r: frame_energy(audio[r.start : r.end]),
        search=8 * SR,
    )
    cuts = [c.start for c in kept[1:]]
    assert len(cuts) == 2 and all(in_pause(c) for c in cuts), cuts
    assert all(c.length <= max_len for c in kept)
    even = [p.start for p in split_long(region, max_len)[1:]]
    assert not all(in_pause(c) for c in even)  # what the even split did
