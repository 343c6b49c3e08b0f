from __future__ import annotations

import dataclasses
import math
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speechmill.config import FiltersConfig
from speechmill.core.quality import filters as F
from speechmill.core.quality.filters import (
    FILTERS,
    KEEP,
    SourceStats,
    Verdict,
    apply,
    check,
    most_repeated_ngram,
    script_ratio,
    source_stats,
    speech_rate,
    text_language,
)
from speechmill.errors import ConfigError
from speechmill.schemas import Attribution, Utterance, Word

EN = "The train was late again, so we walked to the office together."
DE = "Der Zug hatte heute wieder Verspätung, also sind wir zusammen zu Fuß ins Büro gegangen."
FR = "Le train était encore en retard, alors nous sommes allés au bureau à pied ensemble."
NO_STATS = SourceStats({}, frozenset())


def utt(uid: str = "u01", **kw: Any) -> Utterance:
    """An utterance that every filter keeps under the default config; override any field."""
    text = kw.pop("text", EN)
    duration = kw.pop("duration_s", 5.0)
    fields: dict[str, Any] = {
        "utterance_id": uid,
        "recording_id": "rec",
        "source_id": "src",
        "start_sample": 0,
        "end_sample": int(duration * 16000),
        "start_s": 0.0,
        "duration_s": duration,
        "text": text,
        "words": [],
        "align_score": 0.9,
        "unaligned_words": 0,
        "aligner": "test",
        "asr_text": text,
        "avg_logprob": -0.2,
        "no_speech_prob": 0.01,
        "compression_ratio": 1.2,
        "language": "en",
        "language_prob": None,
        "license": "cc-by-4.0",
        "attribution": Attribution(),
        "run_id": "run",
    }
    fields.update(kw)
    return Utterance(**fields)


def verdict(u: Utterance, cfg: FiltersConfig | None = None, **kw: Any) -> Verdict:
    return check(u, cfg or FiltersConfig(), NO_STATS, target_language=kw.pop("lang", "en"), **kw)


def test_a_clean_utterance_is_kept():
    assert verdict(utt()) == KEEP
    assert apply([utt()], FiltersConfig(), target_language="en") == [KEEP]


# --------------------------------------------------------------------------- duration


@pytest.mark.parametrize(
    ("duration", "shown"),
    [(1.5, "1.50 s is below the minimum 2.00 s"), (31.25, "31.25 s is above the maximum 30.00 s")],
)
def test_duration(duration, shown):
    v = verdict(utt(duration_s=duration))
    assert (v.keep, v.filter) == (False, "duration")
    assert v.reason == f"duration: {shown}"
    assert verdict(utt(duration_s=2.0)).keep
    assert verdict(utt(duration_s=30.0)).keep


# --------------------------------------------------------------------------- charset


@pytest.mark.parametrize(
    ("text", "lang", "ratio"),
    [
        ("Hello world", "en", 1.0),
        ("Grüße aus Köln, Ça va? Señor", "de", 1.0),
        ("Привет, мир", "ru", 1.0),
        ("Привет, мир", "en", 0.0),
        ("Hello мир", "en", 5 / 8),
        ("我们走路去办公室。", "zh", 1.0),
        ("我们 walk", "zh", 2 / 6),
        ("今日はいい天気ですね、カメラ", "ja", 1.0),
        ("한국어 문장 漢字", "ko", 1.0),
        ("Ｈｅｌｌｏ", "en", 1.0),  # full-width Latin is Latin  # noqa: RUF001
        ("e\u0301te\u0301", "fr", 1.0),  # decomposed accents
        ("नमस्ते दुनिया", "hi", 1.0),
        ("\u0393\u03b5\u03b9\u03b1 \u03c3\u03bf\u03c5", "el", 1.0),  # Greek
        ("123 !!! 4.5", "en", 1.0),  # no letters: nothing contradicts
        ("Привет", "xx", 1.0),  # unknown language
        ("Hello", "en-US", 1.0),
        ("Zdravo svete, Здраво свете", "sr", 1.0),  # Serbian in either script
    ],
)
def test_script_ratio(text, lang, ratio):
    assert script_ratio(text, lang) == pytest.approx(ratio)


def test_charset_drops_foreign_script_and_empty_labels():
    v = verdict(utt(text="Привет мир, как дела сегодня", asr_text="privet mir"))
    assert v.filter == "charset"
    assert (
        v.reason == "charset: 0.00 of the label's letters are in the Latin script of en, below 0.98"
    )
    for empty in ["", "   ", "...?!"]:
        v = verdict(utt(text=empty))
        assert (v.filter, v.reason) == ("charset", "charset: empty label")
    # digits and punctuation do not count against the script
    ok = utt(text="We met at 10:30, on 5/6 -- right? OK.")
    assert script_ratio(ok.text, "en") == 1.0
    assert verdict(ok).keep


def test_charset_threshold_is_configurable():
    u = utt(text="The word мир means world and peace in Russian", asr_text="")
    cfg = FiltersConfig(min_script_ratio=0.9, disable=["label_agreement", "hallucination"])
    assert verdict(u, cfg).keep
    v = verdict(u, FiltersConfig(min_script_ratio=0.99))
    assert v.filter == "charset"
    assert "0.92" in v.reason and "0.99" in v.reason


# --------------------------------------------------------------------------- text language


@pytest.mark.parametrize(("text", "lang"), [(EN, "en"), (DE, "de"), (FR, "fr")])
def test_text_language_identifies_sentences(text, lang):
    top, p = text_language(text)
    assert top == lang
    assert p > 0.9


def test_text_language_filter():
    v = verdict(utt(text=DE))
    assert (v.filter, v.reason[:32]) == ("text_language", "text_language: label reads as de")
    assert "p(en)=0.00 is below 0.50" in v.reason
    assert verdict(utt(text=FR), FiltersConfig(disable=["label_agreement"]), lang="en").filter == (
        "text_language"
    )
    # the right language passes
    assert verdict(utt(text=DE, language="de"), lang="de").keep
    assert verdict(utt(text=FR, language="fr"), lang="fr").keep
    # an English label for a German target
    assert verdict(utt(text=EN, language="de"), lang="de").filter == "text_language"


def test_text_language_skips_short_labels_and_unknown_targets():
    # fewer than 3 words: LID is not trusted, so text_language passes
    assert verdict(utt(text="Ja, danke!", asr_text="ja danke")).keep
    assert F.word_count("Ja, danke!") == 2
    # scripts written without spaces count letters as words
    assert F.word_count("我们走路去办公室") == 8
    # py3langid does not know Hawaiian: no judgement (charset still applies)
    assert verdict(utt(text=EN, language="haw"), lang="haw").keep


def test_text_language_is_loaded_once_across_threads():
    results: list[tuple[str, float]] = []
    threads = [threading.Thread(target=lambda: results.append(text_language(DE))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r[0] for r in results] == ["de"] * 4
    assert F._identifier() is F._identifier()


# --------------------------------------------------------------------------- audio language


def test_audio_language():
    # English-only models report no probability: the filter does not apply
    assert verdict(utt(language_prob=None)).keep
    assert verdict(utt(language_prob=0.93)).keep
    v = verdict(utt(language_prob=0.31))
    assert v.filter == "audio_language"
    assert v.reason == "audio_language: Whisper's p(en)=0.31 is below 0.50"
    v = verdict(utt(language="de", language_prob=0.88))
    assert v.reason == "audio_language: Whisper detected de (p=0.88), not the target en"
    assert verdict(utt(language_prob=0.31), FiltersConfig(min_audio_lid_prob=0.3)).keep


# --------------------------------------------------------------------------- speech rate


def test_speech_rate_counts_normalised_characters_over_the_word_span():
    # "hello world" -> 10 characters without the space
    assert speech_rate(utt(text="Hello, world!", duration_s=5.0)) == pytest.approx(2.0)
    words = [Word("hello", 1.0, 1.5, 0.9), Word("world", 1.5, 3.0, 0.9)]
    assert speech_rate(utt(text="Hello, world!", words=words)) == pytest.approx(5.0)
    assert speech_rate(utt(text="", duration_s=0.0)) == 0.0
    assert math.isinf(speech_rate(utt(text="abc", duration_s=0.0)))


def _rate_batch(durations: list[float], source: str = "podcast") -> list[Utterance]:
    text = "abcde fghij"  # 10 characters
    return [
        utt(f"{source}-{i:03d}", text=text, duration_s=d, source_id=source)
        for i, d in enumerate(durations)
    ]


def test_speech_rate_filter_drops_outliers_of_the_source():
    batch = _rate_batch([4.0, 4.2, 4.4, 4.6, 4.8, 5.0, 5.2, 5.4, 5.6, 0.5])  # last: 20 chars/s
    cfg = FiltersConfig(
        min_duration_s=0.1, dedupe="none", disable=["text_language", "label_agreement"]
    )
    stats = source_stats(batch, cfg)
    lo, hi = stats.rate_bounds["podcast"]
    assert lo < 10 / 5.6 and 10 / 4.0 < hi < 20
    verdicts = apply(batch, cfg, target_language="en")
    assert [v.keep for v in verdicts] == [True] * 9 + [False]
    v = verdicts[-1]
    assert v.filter == "speech_rate"
    assert v.reason.startswith("speech_rate: 20.0 chars/s is above ")
    assert v.reason.endswith(f"{hi:.1f} (Q3 + 1.5 IQR of source podcast)")
    slow = check(
        utt(text="abcde fghij", duration_s=29.0, source_id="podcast"),
        cfg,
        stats,
        target_language="en",
    )
    assert slow.reason.startswith("speech_rate: 0.3 chars/s is below ")
    assert "(Q1 - 1.5 IQR of source podcast)" in slow.reason


def test_speech_rate_needs_eight_utterances_per_source():
    cfg = FiltersConfig()
    assert source_stats(_rate_batch([4.0] * 7 + [0.5]), cfg).rate_bounds.keys() == {"podcast"}
    assert source_stats(_rate_batch([4.0] * 6 + [0.5]), cfg).rate_bounds == {}
    both = _rate_batch([4.0] * 8, "a") + _rate_batch([4.0] * 3, "b")
    assert source_stats(both, cfg).rate_bounds.keys() == {"a"}


@given(
    st.lists(st.floats(0.5, 60.0), min_size=8, max_size=40),
    st.floats(0.0, 3.0).filter(lambda k: k > 0),
)
def test_iqr_bounds_contain_the_middle_half(durations, k):
    batch = _rate_batch(durations)
    lo, hi = source_stats(batch, FiltersConfig(speech_rate_iqr_k=k)).rate_bounds["podcast"]
    rates = sorted(speech_rate(u) for u in batch)
    n = len(rates)
    middle = rates[math.ceil((n - 1) / 4) : math.floor(3 * (n - 1) / 4) + 1]
    assert len(middle) >= n // 2 - 1
    assert all(lo <= r <= hi for r in middle)
    assert lo <= rates[n // 2] <= hi
    # the order of the batch does not matter
    assert source_stats(batch[::-1], FiltersConfig(speech_rate_iqr_k=k)).rate_bounds["podcast"] == (
        lo,
        hi,
    )


# --------------------------------------------------------------------------- alignment


def test_alignment():
    v = verdict(utt(align_score=0.12))
    assert v.reason == "alignment: mean word score 0.12 is below 0.20"
    words = [Word(f"w{i}", i * 0.4, i * 0.4 + 0.3, 0.9) for i in range(8)]
    v = verdict(utt(words=words, unaligned_words=2))
    assert v.reason == "alignment: 2 of 10 words unaligned (0.20), above 0.10"
    assert verdict(utt(words=words, unaligned_words=0)).keep
    assert verdict(utt(words=words, unaligned_words=2), FiltersConfig(max_unaligned_ratio=0.2)).keep


# --------------------------------------------------------------------------- hallucination


def test_most_repeated_ngram():
    def count(text: str, n: int = 3) -> int:
        return most_repeated_ngram(text, n)[1]

    assert count("") == 0
    assert count("one two") == 0
    assert count(EN) == 1
    assert count("a b c a b c a b c a b c") == 4
    assert count("Go, go, GO! go go.") == 3  # overlapping, case and punctuation
    assert count("thank you thank you thank you", n=2) == 3
    assert most_repeated_ngram("we can't stop we can't stop we can't stop") == (
        ("we", "can't", "stop"),
        3,
    )
    with pytest.raises(ValueError, match="n-gram"):
        most_repeated_ngram("x", n=0)


def test_hallucination():
    v = verdict(utt(compression_ratio=3.1))
    assert v.reason == "hallucination: compression ratio 3.10 is above 2.40 (repetitive decode)"
    loop = "and then we go and then we go and then we go and then we go"
    v = verdict(utt(asr_text=loop), FiltersConfig(disable=["label_agreement"]))
    assert v.filter == "hallucination"
    assert "'and then we' occurs 4 times" in v.reason and "limit 4" in v.reason
    # without an own decode, the label is checked for loops
    v = verdict(utt(text=loop, asr_text=""), FiltersConfig(disable=["label_agreement"]))
    assert v.filter == "hallucination"
    v = verdict(utt(no_speech_prob=0.8, avg_logprob=-1.4))
    assert v.reason == (
        "hallucination: no_speech_prob 0.80 is above 0.60 with avg_logprob -1.40 below -1.00 "
        "(Whisper's no-speech rule)"
    )
    v = verdict(utt(no_speech_prob=0.1, avg_logprob=-1.4))
    assert v.reason == "hallucination: avg_logprob -1.40 is below -1.00 (low decoder confidence)"
    v = verdict(utt(avg_logprob=float("-inf")))
    assert v.reason.startswith("hallucination: no decode of the utterance's audio")
    # a high no-speech probability alone is not enough (Whisper's rule needs both)
    assert verdict(utt(no_speech_prob=0.9, avg_logprob=-0.3)).keep


# --------------------------------------------------------------------------- label agreement


def test_label_agreement():
    v = verdict(utt(asr_text="The rain was great again, so we talked to the officer."))
    assert v.keep  # small CER
    v = verdict(utt(asr_text="Completely different words were heard here."))
    assert v.filter == "label_agreement"
    assert v.reason.startswith("label_agreement: CER ")
    assert v.reason.endswith("between the label and the utterance's own decode is above 0.30")
    # both sides normalised with Whisper's English normaliser
    u = utt(
        text="Mr. Smith paid twenty five dollars today.", asr_text="mister smith paid $25 today"
    )
    assert verdict(u).keep
    # a second label of the same audio replaces the own decode
    v = verdict(utt(), other_label="Something else entirely was said by the teacher.")
    assert v.reason.endswith("between the label and the other label is above 0.30")
    assert verdict(utt(asr_text="nothing alike at all here"), other_label=EN.lower()).keep


def test_label_agreement_uses_the_basic_normaliser_for_other_languages():
    u = utt(text=DE, asr_text=DE.upper().replace(",", ""), language="de")
    assert verdict(u, lang="de").keep
    assert F.label_normalizer("de").name == "whisper-basic"
    assert F.label_normalizer("en").name == "whisper-english"


# --------------------------------------------------------------------------- duplicates


def test_duplicates_keep_the_smallest_id_per_source():
    batch = [
        utt("u3", text="Hello there, general Kenobi."),
        utt("u1", text="hello there general kenobi"),
        utt("u2", text="HELLO THERE — GENERAL KENOBI!"),
        utt("u4", text="hello there general kenobi", source_id="other"),
        utt("u5", text="A different sentence entirely."),
    ]
    stats = source_stats(batch, FiltersConfig())
    assert stats.duplicates == {"u2", "u3"}
    assert stats.duplicate_of == {"u2": "u1", "u3": "u1"}
    v = check(batch[0], FiltersConfig(), stats, target_language="en")
    assert v == Verdict(
        False,
        "duplicate",
        "duplicate: same normalised transcript as u1 in source src (dedupe: source)",
    )
    assert source_stats(batch, FiltersConfig(dedupe="none")).duplicates == frozenset()
    assert check(batch[0], FiltersConfig(dedupe="none"), stats, target_language="en").keep


def test_apply_dedupes_among_survivors():
    cfg = FiltersConfig(disable=["text_language", "label_agreement"])
    text = "we walked to the office together"
    batch = [
        utt("u1", text=text, duration_s=1.0),  # smallest id, but too short
        utt("u2", text=text),
        utt("u3", text=text),
    ]
    verdicts = apply(batch, cfg, target_language="en")
    assert [v.filter for v in verdicts] == ["duration", None, "duplicate"]
    assert "as u2" in verdicts[2].reason
    assert [
        v.keep
        for v in apply(batch, cfg.model_copy(update={"dedupe": "none"}), target_language="en")
    ] == [False, True, True]


# --------------------------------------------------------------------------- the suite


def test_disable_list_and_unknown_names():
    short = utt(duration_s=1.0)
    assert verdict(short).filter == "duration"
    assert verdict(short, FiltersConfig(disable=["duration"])).keep
    assert F.enabled_filters(FiltersConfig(disable=["duration", "duplicate"])) == FILTERS[1:-1]
    with pytest.raises(ConfigError, match=r"speech_rat'.*choose from"):
        verdict(short, FiltersConfig(disable=["speech_rat"]))
    with pytest.raises(ConfigError):
        apply([short], FiltersConfig(disable=["nope"]), target_language="en")


def test_the_first_drop_in_filters_order_is_reported():
    u = utt(text="Привет", duration_s=1.0, compression_ratio=5.0, align_score=0.0)
    assert verdict(u).filter == "duration"
    assert verdict(u, FiltersConfig(disable=["duration"])).filter == "charset"
    assert verdict(u, FiltersConfig(disable=["duration", "charset"])).filter == "alignment"


DROPS = {
    "duration": (utt(duration_s=45.0), "45.00", "30.00"),
    "charset": (utt(text="Привет мир как дела"), "0.00", "0.98"),
    "text_language": (utt(text=DE), "p(en)=0.00", "0.50"),
    "audio_language": (utt(language_prob=0.2), "0.20", "0.50"),
    "alignment": (utt(align_score=0.05), "0.05", "0.20"),
    "hallucination": (utt(compression_ratio=2.9), "2.90", "2.40"),
    "label_agreement": (utt(asr_text="no match whatsoever"), "CER ", "0.30"),
}


@pytest.mark.parametrize("name", sorted(DROPS))
def test_reasons_name_the_filter_the_value_and_the_threshold(name):
    u, value, threshold = DROPS[name]
    v = verdict(u)
    assert (v.keep, v.filter) == (False, name)
    assert v.reason.startswith(f"{name}: ")
    assert value in v.reason and threshold in v.reason
    assert "\n" not in v.reason
    # and each one can be switched off on its own
    assert verdict(u, FiltersConfig(disable=[name])).filter != name


def test_verdicts_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        KEEP.keep = False  # type: ignore[misc]
    assert set(FILTERS) == set(F._CHECKS)
