from __future__ import annotations

import itertools

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from speechmill.core.audio.chunks import (
    FRAME,
    Span,
    _best_cuts,
    frame_energy,
    local_media_id,
    normalize_regions,
    plan_chunks,
    quiet_cost,
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
    even = split_long(span, max_len)
    # as many parts as an even split, or one more (to take a cut out of a word)
    assert len(even) <= len(parts) <= len(even) + 1
    if len(parts) > 1:
        assert min(p.length for p in parts) >= max_len // 2  # no slivers
        # each cut within `search` of where the even split into as many parts cuts
        n = len(parts)
        for k, p in enumerate(parts[1:], start=1):
            assert abs(p.start - (start + length * k // n)) <= search
    if search == 0:
        assert parts == even


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


def words_only(seconds: float, pauses: dict[float, tuple[float, float]], seed: int = 0):
    """Continuous 'speech' with no pause at all: words of 150-400 ms and 40 ms stop closures
    (0.002 rms) between them; plus, at each `pauses` time t (s), a silence of
    (length s, rms). The audio and the pauses as Spans."""
    rng = np.random.default_rng(seed)
    parts, n = [], 0
    while n < seconds * SR:
        parts.append(rng.normal(0, 0.2, int(rng.uniform(0.15, 0.4) * SR)))  # a word
        parts.append(rng.normal(0, 0.002, int(0.04 * SR)))  # a closure
        n += parts[-2].size + parts[-1].size
    x = np.concatenate(parts).astype(np.float32)[: int(seconds * SR)]
    spans = []
    for t, (length, rms) in pauses.items():
        a, b = int(t * SR), int((t + length) * SR)
        x[a:b] = rng.normal(0, rms, b - a) if rms else 0.0
        spans.append(Span(a, b))
    return x, spans


def quiet_split(x: np.ndarray, max_len: int = 30 * SR, search: int = 8 * SR) -> list[int]:
    return [p.start for p in split_quiet(Span(0, len(x)), max_len, frame_energy(x), search)[1:]]


def test_a_long_pause_wins_over_a_deeper_short_closure():
    # at the even split's cut (22.5 s) a 100 ms closure of digital silence, the quietest
    # point there is; 3 s later a 200 ms pause, only as quiet as the closures
    x, (closure, pause) = words_only(45.0, {22.45: (0.1, 0.0), 25.5: (0.2, 0.002)})
    (cut,) = quiet_split(x)
    assert pause.start <= cut < pause.end and not closure.start <= cut < closure.end, cut / SR


def test_cuts_are_chosen_together_so_none_is_forced_into_a_word():
    # 80 s in 3 parts of <= 30 s. Taking the deepest pause first (20.05 s, digital
    # silence) would leave 59.75 s for two parts: a second cut forced to 50.0-50.25 s,
    # inside words. Together: 24 s and 52 s, both in pauses.
    x, pauses = words_only(
        80.0, {20.05: (0.4, 0.0), 24.0: (0.2, 0.002), 52.0: (0.2, 0.002)}, seed=1
    )
    cuts = quiet_split(x)
    assert len(cuts) == 2
    assert all(any(p.start <= c < p.end for p in pauses[1:]) for c in cuts), [c / SR for c in cuts]


def test_one_more_part_when_the_even_number_forces_a_cut_into_a_word():
    # 59.9 s in 2 parts of <= 30 s leaves the cut 29.9-30.0 s, inside words; 3 parts
    # can cut in the pauses at 19.5 and 39.5 s
    x, pauses = words_only(59.9, {19.5: (0.2, 0.002), 39.5: (0.2, 0.002)}, seed=2)
    x[int(29.8 * SR) : int(30.1 * SR)] = 0.2  # a word (loud) where the 2-part cut must be
    cuts = quiet_split(x)
    assert len(cuts) == 2 and all(
        p.start <= c < p.end for c, p in zip(cuts, pauses, strict=True)
    ), [c / SR for c in cuts]
    # with a pause where the 2-part cut has to fall, 2 parts stay
    x, (pause,) = words_only(59.9, {29.9: (0.2, 0.002)}, seed=2)
    (cut,) = quiet_split(x)
    assert pause.start <= cut < pause.end


def test_quiet_cost_is_relative_to_the_regions_own_level():
    x, (pause,) = words_only(45.0, {25.5: (0.2, 0.002)}, seed=3)
    cost = quiet_cost(frame_energy(x))
    assert pause.start // FRAME <= int(np.argmin(cost)) < pause.end // FRAME
    assert cost.max() <= 1.0 + 1e-4 and cost.min() > 0
    # the same audio 40 dB quieter, or under noise 25 dB below the words: the same cut
    noisy = x + np.random.default_rng(0).normal(0, 0.2 / 18, x.size).astype(np.float32)
    assert quiet_split(x) == quiet_split(x * 0.01) == quiet_split(noisy)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(2, 5),
    st.integers(10, 30),
    st.integers(0, 99),
    st.integers(0, 12),
    st.integers(0, 2**32 - 1),
)
def test_cuts_chosen_together_are_the_cheapest(frame, max_len, extra, search, seed):
    # brute force over every frame centre for spans of up to 4 parts
    length = max_len + 1 + extra * max_len // 33
    span = Span(7, 7 + length)
    cost = quiet_cost(np.random.default_rng(seed).random(length // frame))
    parts = -(-length // max_len)
    for n in (parts, parts + 1):
        wins = [
            [
                p
                for p in range(span.start + frame // 2, span.end, frame)
                if abs(p - (span.start + length * k // n)) <= search and span.start < p
            ]
            for k in range(1, n)
        ]

        def total(cuts):
            return sum(
                cost[(c - span.start) // frame]
                if (c - span.start) // frame < cost.size
                else 1 + 1e-4
                for c in cuts
            )

        valid = [
            c
            for c in itertools.product(*wins)
            if all(
                max_len // 2 <= b - a <= max_len
                for a, b in itertools.pairwise([span.start, *c, span.end])
            )
        ]
        got = _best_cuts(span, n, max_len, cost, search, frame)
        if not valid:
            assert got is None
            continue
        assert got is not None
        assert abs(got[0] - min(total(c) for c in valid)) < 1e-9
        assert abs(total(got[1]) - got[0]) < 1e-9 and tuple(got[1]) in valid
