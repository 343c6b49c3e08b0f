from __future__ import annotations

import json
import math

import jiwer
import pytest

from speechmill.core.quality.pair_metrics import (
    GROUP_KEYS,
    RowMetrics,
    aggregate,
    aug_label,
    format_table,
    pairwise_distance,
    row_metrics,
    snr_bucket,
    to_records,
    voice_label,
)

# Hand-scored rows (word edits of the 1-best, fewest errors in the list, reference
# words found in no hypothesis):
#   A: 6 ref words, 1-best deletes "the"              -> D1; oracle 1; comp 0
#   B: 2 ref words, 1-best "word" for "world"         -> S1; oracle 0 (2nd); comp 0
#   C: 2 ref words, 1-best adds "friend"              -> I1; oracle 1; comp 0
#   D: 1 ref word, empty list                         -> D1; oracle 1; comp 1
#   E: 3 ref words, two identical "tree" hypotheses   -> S1; oracle 1; comp 1
ROWS = [
    {
        "reference": "the cat sat on the mat",
        "hypotheses": ["the cat sat on mat", "a cat sat on the mat", "the bat sat on the mat hat"],
        "n_unique": 3,
    },
    {"reference": "hello world", "hypotheses": ["hello word", "hello world"], "n_unique": 2},
    {"reference": "good morning", "hypotheses": ["good morning friend"], "n_unique": 1},
    {"reference": "yes", "hypotheses": [], "n_unique": 0},
    {
        "reference": "one two three",
        "hypotheses": ["one two tree", "one two tree"],
        "n_unique": None,
    },
]
PAIRWISE_A = (2 / 6 + 3 / 7 + 3 / 7) / 3


def test_row_metrics_picks_first_best_and_scores_empty_list():
    assert row_metrics("the cat sat on the mat", ROWS[0]["hypotheses"]) == RowMetrics(
        1 / 6, 1 / 6, 0
    )
    assert row_metrics("hello world", ["hello word", "hello world"]) == RowMetrics(0.5, 0.0, 1)
    assert row_metrics("yes", []) == RowMetrics(1.0, 1.0, -1)
    assert row_metrics("", []) == RowMetrics(0.0, 0.0, -1)
    r = row_metrics("a b c d", ["a x c", "a b c d e", "b c d"])
    assert r.wer_1best == pytest.approx(jiwer.wer("a b c d", "a x c"))
    assert (r.oracle_wer, r.oracle_index) == (0.25, 1)  # first of the two one-error hypotheses


def test_aggregate_hand_computed():
    [g] = aggregate(ROWS, ())
    assert g.key == {} and g.pairs == 5 and g.ref_words == 14
    w = g.word
    assert (w.substitutions, w.deletions, w.insertions) == (2, 2, 1)
    assert g.wer == pytest.approx(5 / 14)
    assert (g.sub_rate, g.del_rate, g.ins_rate) == pytest.approx((2 / 14, 2 / 14, 1 / 14))
    assert g.oracle_errors == 4 and g.oracle_wer == pytest.approx(4 / 14)
    assert g.compositional_misses == 2 and g.compositional_oracle_wer == pytest.approx(2 / 14)
    assert (g.hypotheses, g.distinct_hypotheses) == (8, 7)
    assert g.distinct_ratio == pytest.approx(7 / 8)
    # non-empty lists A B C E; C (one hypothesis) and E (two identical) offer no alternative
    assert (g.lists, g.identical_lists, g.identical_share) == (4, 2, 0.5)
    # lists with >= 2 hypotheses: A, B (1 edit / 2 words), E (identical: 0)
    assert g.pairwise_lists == 3
    assert g.pairwise_distance == pytest.approx((PAIRWISE_A + 0.5 + 0.0) / 3)
    # n_unique null for E -> its distinct count (1)
    assert g.mean_n_unique == pytest.approx((3 + 2 + 1 + 0 + 1) / 5)
    assert g.mean_hypotheses == pytest.approx(8 / 5)


def test_compositional_oracle_counts_reference_tokens_with_multiplicity():
    # "the" twice in the reference: both covered by one "the" in a hypothesis;
    # "cat" twice, in no hypothesis: two misses. Order and insertions do not matter.
    [g] = aggregate([{"reference": "the cat the cat", "hypotheses": ["dog the", "x y z"]}])
    assert g.compositional_misses == 2 and g.compositional_oracle_wer == 0.5


def test_pairwise_distance():
    assert pairwise_distance(ROWS[0]["hypotheses"]) == pytest.approx(PAIRWISE_A)
    assert pairwise_distance(["a"]) == 0.0
    assert pairwise_distance(["", ""]) == 0.0
    assert pairwise_distance(["", "a b"]) == 1.0


def test_cer_counts_hand_computed():
    [g] = aggregate([{"reference": "abc de", "hypotheses": ["abd de f"]}])
    c = g.char
    # a b c ' ' d e -> a b d ' ' d e ' ' f : 1 substitution, 2 insertions over 6 characters
    assert (c.substitutions, c.deletions, c.insertions, c.ref_len) == (1, 0, 2, 6)
    assert g.cer == pytest.approx(3 / 6)


SENTENCES = [
    ("the quick brown fox jumps over the lazy dog", "the quick brown fox jumped over a lazy dog"),
    ("she sells sea shells by the sea shore", "she sells shells by the sea shore"),
    ("it is a truth universally acknowledged", "it is a truth that is universally acknowledged"),
    ("hello world", ""),
    ("good morning everyone", "good morning every one"),
    ("call me ishmael", "call me ishmael"),
    ("a b c d e f", "f e d c b a"),
    ("numbers like twenty two", "numbers like 22"),
]


def test_corpus_wer_and_cer_match_jiwer():
    refs = [r for r, _ in SENTENCES]
    hyps = [h for _, h in SENTENCES]
    rows = [{"reference": r, "hypotheses": [h, "unused alternative"]} for r, h in SENTENCES]
    [g] = aggregate(rows)
    words = jiwer.process_words(refs, hyps)
    assert g.wer == pytest.approx(words.wer)
    assert (g.word.substitutions, g.word.deletions, g.word.insertions) == (
        words.substitutions,
        words.deletions,
        words.insertions,
    )
    chars = jiwer.process_characters(refs, hyps)
    assert g.cer == pytest.approx(chars.cer)
    assert g.char.errors == chars.substitutions + chars.deletions + chars.insertions


def _row(split, engine, voice, aug, synthetic=True, source="books"):
    return {
        "split": split,
        "source": source,
        "is_synthetic": synthetic,
        "tts": {"engine": engine, "voice": voice, "speaker": None, "variant": None},
        "aug": aug,
        "reference": "a b c d",
        "hypotheses": ["a b c d"] if split == "train" else ["a b x d", "a b c d"],
        "n_unique": 1 if split == "train" else 2,
    }


def test_aggregate_groups_and_sorts():
    noisy = {"noise_type": "pink", "snr_db": 3.0}
    rows = [
        _row("test", "piper", "en_US-joe-medium", noisy),
        _row("train", "piper", "en_US-joe-medium", None),
        _row("dev", "espeak-ng", "en-us", {"noise_type": "white", "snr_db": 25.0}),
        _row("train", "espeak-ng", "en-us", noisy),
        _row("test", None, None, None, synthetic=False, source="corpus:/data"),
    ]
    by_split = aggregate(rows, ["split"])
    assert [g.key["split"] for g in by_split] == ["train", "dev", "test"]
    assert [g.pairs for g in by_split] == [2, 1, 2]
    assert by_split[0].wer == 0.0 and by_split[2].wer == 0.25
    assert by_split[2].oracle_wer == 0.0

    by_two = aggregate(rows, ["snr", "is_synthetic"])
    assert [tuple(g.key.values()) for g in by_two] == [
        ("clean", "synthetic"),
        ("clean", "real"),
        ("0-5", "synthetic"),
        (">=20", "synthetic"),
    ]
    voices = {g.key["voice"]: g.pairs for g in aggregate(rows, ["voice"])}
    assert voices == {"espeak-ng:en-us": 2, "piper:en_US-joe-medium": 2, "real": 1}
    # group counts add up to the overall counts
    [total] = aggregate(rows)
    assert sum(g.word.errors for g in by_two) == total.word.errors
    assert sum(g.ref_words for g in by_two) == total.ref_words == 20
    assert {g.key["aug"] for g in aggregate(rows, ["aug"])} == {"clean", "noise"}
    assert [g.key["source"] for g in aggregate(rows, ["source"])] == ["books", "corpus:/data"]
    with pytest.raises(ValueError, match="unknown group"):
        aggregate(rows, ["speaker"])
    with pytest.raises(ValueError, match="repeated"):
        aggregate(rows, ["split", "split"])
    assert set(GROUP_KEYS) == {"split", "voice", "aug", "snr", "source", "is_synthetic"}


def test_aggregate_of_nothing():
    [g] = aggregate([])
    assert g.pairs == 0 and g.wer == 0.0 and g.pairwise_distance is None
    assert aggregate([], ["split"]) == []


def test_labels():
    assert (
        voice_label({"engine": "piper", "voice": "en_US-joe-medium", "speaker": 3})
        == "piper:en_US-joe-medium#spk3"
    )
    assert (
        voice_label({"engine": "piper", "voice": "/models/en_GB-alan-low.onnx", "speaker": None})
        == "piper:en_GB-alan-low"
    )
    assert voice_label({"engine": "espeak-ng", "voice": "en-us", "variant": "f3"}) == (
        "espeak-ng:en-us+f3"
    )
    assert voice_label({"engine": None, "voice": None}) == "real"
    assert voice_label(None) == "real"

    assert aug_label(None) == aug_label({}) == "clean"
    assert aug_label({"noise_type": None, "telephone": False, "freq_masks": 0}) == "clean"
    assert aug_label({"reverb_rt60_s": 0.4, "noise_type": "babble", "snr_db": 5.0}) == (
        "noise+reverb"
    )
    full = {
        "noise_type": "file",
        "reverb_rt60_s": 0.3,
        "speed": 1.05,
        "telephone": True,
        "codec": "opus",
        "freq_masks": 2,
        "substitution_rate": 0.05,
    }
    assert aug_label(full) == "noise+reverb+speed+telephone+codec+mask"

    assert snr_bucket(None) == snr_bucket(math.nan) == "clean"
    assert [snr_bucket(x) for x in (-3.0, 0.0, 4.99, 5.0, 10.0, 19.9, 20.0, 40.0)] == [
        "<0",
        "0-5",
        "0-5",
        "5-10",
        "10-20",
        "10-20",
        ">=20",
        ">=20",
    ]


def test_format_table_and_records():
    rows = [dict(r, split="train") for r in ROWS[:3]] + [dict(r, split="dev") for r in ROWS[3:]]
    groups = aggregate(rows, ["split"])
    text = format_table(groups, ["split"])
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["split", "pairs", "words", "WER"]
    assert len(lines) == 4 and len({len(line) for line in lines[:2]}) == 1
    train = lines[2].split()
    assert train[:3] == ["train", "3", "10"]
    assert train[3] == "30.0"  # 3 errors / 10 words
    overall = format_table(aggregate(ROWS), ())
    assert "35.7" in overall and "all" in overall.splitlines()[2]  # 5 / 14 = 35.7 %

    records = to_records(groups)
    json.dumps(records)
    assert records[0]["group"] == {"split": "train"}
    assert records[0]["wer"] == pytest.approx(0.3)
    assert records[1]["pairwise_distance"] == 0.0  # dev: D (empty) and E (identical)
    assert to_records(aggregate([]))[0]["pairwise_distance"] is None
