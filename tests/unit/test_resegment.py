"""Resegmentation of aligned words into utterances: rules and invariants."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speechmill.core.align.alignment import AlignedWord
from speechmill.core.align.resegment import HARD_PAUSE_S, Cut, is_sentence_end, resegment


def sentence_words(specs, start=0.0, word_s=0.4):
    """Words from (text, pause after in s): each word `word_s` long, no gap inside."""
    t, out = start, []
    for text, pause in specs:
        tokens = text.split()
        for k, tok in enumerate(tokens):
            out.append(AlignedWord(tok, t, t + word_s, 0.9))
            t += word_s
            if k == len(tokens) - 1:
                t += pause
    return out


def spans(cuts):
    return [(c.first_word, c.last_word) for c in cuts]


def test_is_sentence_end():
    for w in ["end.", "why?", "now!", "so\u2026", 'said."', "this.)", "done.\u201d", "\u3002"]:
        assert is_sentence_end(w), w
    for w in ["Mr.", "dr.", "e.g.", "J.", "and", "well,", "3.5", '"quote"', ""]:
        assert not is_sentence_end(w), w


def test_cuts_at_sentence_ends_with_padding():
    words = sentence_words(
        [("one two three four five six.", 0.8), ("seven eight nine ten eleven.", 0.5)],
        start=1.0,
    )
    cuts = resegment(words, total_s=words[-1].end_s + 2.0)
    assert spans(cuts) == [(0, 5), (6, 10)]
    assert cuts[0].start_s == pytest.approx(0.85)
    assert cuts[0].end_s == pytest.approx(words[5].end_s + 0.15)
    assert cuts[1].start_s == pytest.approx(words[6].start_s - 0.15)
    assert cuts[1].end_s == pytest.approx(words[-1].end_s + 0.15)


def test_short_pause_is_cut_in_the_middle_and_edges_are_clamped():
    words = sentence_words(
        [("one two three four five six.", 0.2), ("seven eight nine ten.", 0)], word_s=0.6
    )
    total = words[-1].end_s + 0.05
    cuts = resegment(words, total_s=total)
    assert spans(cuts) == [(0, 5), (6, 9)]
    mid = (words[5].end_s + words[6].start_s) / 2
    assert cuts[0].end_s == pytest.approx(mid) == cuts[1].start_s
    assert cuts[0].start_s == 0.0 and cuts[1].end_s == pytest.approx(total)


def test_pause_inside_a_sentence_is_not_cut_unless_needed():
    words = sentence_words([("the train was late", 0.6), ("so we walked home.", 0.5)], word_s=0.6)
    words += sentence_words(
        [("another sentence follows here.", 0)], start=words[-1].end_s + 0.5, word_s=0.6
    )
    assert spans(resegment(words, total_s=20.0)) == [(0, 7), (8, 11)]


def test_long_pause_inside_a_sentence_is_cut():
    words = sentence_words([("the train was late", 1.5), ("so we walked home.", 0.5)], word_s=0.6)
    assert spans(resegment(words, total_s=20.0)) == [(0, 3), (4, 7)]


def test_short_sentence_joins_the_neighbour_across_the_weaker_boundary():
    words = sentence_words(
        [("one two three four five six.", 1.0), ("yes.", 0.4), ("seven eight nine ten eleven.", 0)]
    )
    # "yes." (0.4 s) cannot stand alone: it joins the sentence after the shorter pause
    assert spans(resegment(words, total_s=30.0)) == [(0, 5), (6, 11)]


def test_isolated_short_sentence_between_long_pauses_is_emitted_alone():
    words = sentence_words(
        [("one two three four five six.", HARD_PAUSE_S + 1), ("yes.", HARD_PAUSE_S + 1)]
    )
    words += sentence_words([("seven eight nine ten.", 0)], start=words[-1].end_s + 3)
    cuts = resegment(words, total_s=40.0)
    assert spans(cuts) == [(0, 5), (6, 6), (7, 10)]
    assert cuts[1].end_s - cuts[1].start_s < 2.0  # left to the duration filter


def test_long_sentence_is_split_at_its_longest_pauses():
    # 60 words without punctuation (24 s of words) with pauses of growing length
    words, t = [], 0.0
    pauses = {14: 0.35, 29: 0.9, 44: 0.5}
    for i in range(60):
        words.append(AlignedWord(f"w{i}", t, t + 0.4, 0.9))
        t += 0.4 + pauses.get(i, 0.0)
    cuts = resegment(words, total_s=t + 1, max_s=15.0)
    assert spans(cuts) == [(0, 29), (30, 59)]
    assert all(c.end_s - c.start_s <= 15.0 for c in cuts)


def test_no_pause_at_all_splits_at_the_largest_gaps():
    words, t = [], 0.0
    for i in range(100):  # 40 s of words, tiny gaps, one slightly larger
        words.append(AlignedWord(f"w{i}", t, t + 0.38, 0.9))
        t += 0.4 + (0.1 if i == 49 else 0.0)
    cuts = resegment(words, total_s=t, max_s=30.0)
    assert spans(cuts) == [(0, 49), (50, 99)]


def test_a_word_longer_than_max_s_is_its_own_utterance():
    words = [
        AlignedWord("a", 0.0, 1.0, 1.0),
        AlignedWord("looooong", 1.0, 40.0, 1.0),
        AlignedWord("b.", 40.0, 41.0, 1.0),
    ]
    cuts = resegment(words, total_s=41.0, max_s=30.0, min_s=0.0)
    assert spans(cuts) == [(0, 0), (1, 1), (2, 2)]


def test_edge_cases():
    assert resegment([], total_s=10.0) == []
    one = resegment([AlignedWord("hi", 0.5, 0.7, 1.0)], total_s=1.0)
    assert one == [Cut(pytest.approx(0.35), pytest.approx(0.85), 0, 0)]
    zero = resegment([AlignedWord("a", 0.0, 0.0, 0.0), AlignedWord("b", 0.0, 0.0, 0.0)], total_s=0)
    assert spans(zero) == [(0, 1)] and zero[0].start_s == zero[0].end_s == 0.0


# ----------------------------------------------------------------- invariants
word_piece = st.tuples(
    st.one_of(st.just(0.0), st.floats(0.0, 1.2), st.floats(1.2, 8.0)),  # duration
    st.sampled_from(["", "", "", ".", "?", ","]),  # ending
    st.one_of(st.just(0.0), st.floats(0, 0.35), st.floats(0.2, 3.0)),  # gap after
)


@st.composite
def aligned(draw):
    t = draw(st.floats(0, 3))
    words = []
    for i, (dur, mark, gap) in enumerate(draw(st.lists(word_piece, min_size=1, max_size=60))):
        words.append(AlignedWord(f"w{i}{mark}", t, t + dur, 0.5))
        t += dur + gap
    total = words[-1].end_s + draw(st.floats(0, 2))
    return words, total


def edges(words, total, pad):
    """The spec's utterance edges at each word, as first word and as last word."""
    n = len(words)
    first = [max(0.0, words[0].start_s - pad)] + [0.0] * (n - 1)
    last = [0.0] * (n - 1) + [min(total, words[-1].end_s + pad)]
    for i in range(n - 1):
        gap = words[i + 1].start_s - words[i].end_s
        if gap >= 2 * pad:
            last[i] = min(total, words[i].end_s + pad)
            first[i + 1] = max(0.0, words[i + 1].start_s - pad)
        else:
            last[i] = first[i + 1] = (words[i].end_s + words[i + 1].start_s) / 2
    return first, last


@given(
    aligned(),
    st.floats(0.0, 4.0),
    st.floats(3.0, 30.0),
    st.floats(0.1, 1.0),
    st.floats(0.0, 0.3),
)
def test_resegment_invariants(case, min_s, max_s, min_pause_s, pad_s):
    words, total = case
    cuts = resegment(
        words, total_s=total, min_s=min_s, max_s=max_s, min_pause_s=min_pause_s, pad_s=pad_s
    )
    eps = 1e-9
    # every word in exactly one utterance, in order
    assert cuts[0].first_word == 0 and cuts[-1].last_word == len(words) - 1
    for a, b in itertools.pairwise(cuts):
        assert b.first_word == a.last_word + 1
        assert a.end_s <= b.start_s + eps  # ordered, disjoint
    for c in cuts:
        assert c.first_word <= c.last_word
        assert 0.0 <= c.start_s <= c.end_s <= total + eps
        # the words' spans are inside the utterance's
        assert c.start_s <= words[c.first_word].start_s + eps
        assert words[c.last_word].end_s <= c.end_s + eps
    # max_s is respected whenever the words allow it (cutting after every word would)
    first, last = edges(words, total, pad_s)
    if all(last[i] - first[i] <= max_s for i in range(len(words))):
        assert all(c.end_s - c.start_s <= max_s + eps for c in cuts)
    # a cut that is neither a sentence end nor a pause over 1 s is only made where
    # joining its two sides would be longer than max_s
    for a, b in itertools.pairwise(cuts):
        i = a.last_word
        gap = words[i + 1].start_s - words[i].end_s
        if not is_sentence_end(words[i].word) and gap < 0.99:
            assert last[b.last_word] - first[a.first_word] > max_s
    # and the edges are the spec's
    for c in cuts:
        assert c.start_s == pytest.approx(first[c.first_word])
        assert c.end_s == pytest.approx(last[c.last_word])


@given(aligned())
def test_resegment_cuts_every_sentence_end_it_can(case):
    words, total = case
    cuts = resegment(words, total_s=total, min_s=0.0, max_s=1000.0)
    cut_after = {c.last_word for c in cuts}
    for i, w in enumerate(words[:-1]):
        if is_sentence_end(w.word):
            assert i in cut_after
