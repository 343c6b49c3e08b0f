from __future__ import annotations

import jiwer
import pytest
from hypothesis import given
from hypothesis import strategies as st

from speechmill.core.text.metrics import cer, compression_ratio, corpus_counts, wer, word_counts
from speechmill.core.text.normalize import get_normalizer

words = st.lists(st.sampled_from(["a", "b", "c", "dog", "cat", "the"]), min_size=1, max_size=12)


@given(words, words)
def test_wer_matches_jiwer(ref, hyp):
    r, h = " ".join(ref), " ".join(hyp)
    assert wer(r, h) == pytest.approx(jiwer.wer(r, h))


@given(words, words)
def test_cer_matches_jiwer(ref, hyp):
    r, h = " ".join(ref), " ".join(hyp)
    assert cer(r, h) == pytest.approx(jiwer.cer(r, h))


def test_counts_split_by_kind():
    c = word_counts("the cat sat down", "the bat sat")
    assert (c.substitutions, c.deletions, c.insertions, c.ref_len) == (1, 1, 0, 4)
    total = corpus_counts([("a b", "a"), ("c", "c d")])
    assert total.errors == 2 and total.ref_len == 3


def test_compression_ratio_flags_repetition():
    assert compression_ratio("hello " * 50) > 2.4 > compression_ratio("the quick brown fox jumps")
    assert compression_ratio("") == 0.0


def test_normalizer_is_named_and_versioned():
    n = get_normalizer("whisper-english")
    assert n.name == "whisper-english" and n.version not in ("", "unknown")
    assert n("Mr. Smith's TWENTY-one dogs!") == n("mister smith's 21 dogs")
    with pytest.raises(ValueError):
        get_normalizer("nope")
