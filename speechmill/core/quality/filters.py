"""The corpus filter suite as pure functions over `Utterance` records.

Each filter looks at one utterance (plus per-source statistics of the batch) and
either keeps it or drops it with a one-line reason that names the filter, the
measured value and the threshold (datatrove style: nothing vanishes; the
PTransform turns every drop into a `rejects` row and a counter `filter/<name>`).
docs/filters.md gives every default and where it comes from.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from speechmill.config import FiltersConfig
from speechmill.core.text.metrics import cer
from speechmill.core.text.normalize import Normalizer, get_normalizer
from speechmill.errors import ConfigError
from speechmill.schemas import Utterance

FILTERS: tuple[str, ...] = (
    "duration",
    "charset",
    "text_language",
    "audio_language",
    "speech_rate",
    "alignment",
    "hallucination",
    "label_agreement",
    "duplicate",
)
"""Every filter, in the order they run; `check` reports the first that drops."""

MIN_SOURCE_UTTERANCES = 8
"""A source needs this many utterances (with a finite speech rate) for IQR bounds."""

MIN_LID_WORDS = 3
"""Labels with fewer words skip text language ID (it is unreliable on very short text)."""


@dataclass(frozen=True)
class Verdict:
    """Keep, or drop with the filter's name and a reason a user can act on."""

    keep: bool
    filter: str | None = None
    reason: str = ""


KEEP = Verdict(True)


@dataclass(frozen=True)
class SourceStats:
    """Per-source statistics computed over the batch being filtered."""

    rate_bounds: dict[str, tuple[float, float]]
    """source_id -> (lo, hi) chars/s; absent for sources with too few utterances."""
    duplicates: frozenset[str]
    """Utterance ids that repeat an earlier transcript of the same source."""
    duplicate_of: dict[str, str] = field(default_factory=dict)
    """Duplicate utterance id -> the id that is kept (for the reason)."""


# --------------------------------------------------------------------------- config


def enabled_filters(cfg: FiltersConfig) -> tuple[str, ...]:
    """The filters that run, in order; an unknown name in `disable` is a config error."""
    unknown = sorted(set(cfg.disable) - set(FILTERS))
    if unknown:
        raise ConfigError(
            f"filters.disable: unknown filter name(s) {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join(FILTERS)}"
        )
    return tuple(f for f in FILTERS if f not in cfg.disable)


# --------------------------------------------------------------------------- text helpers


def _base_language(language: str) -> str:
    """`en-US` -> `en`, `pt_BR` -> `pt`."""
    return re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]


def label_normalizer(language: str) -> Normalizer:
    """Whisper's English normaliser for English, its basic (multilingual) one otherwise."""
    name = "whisper-english" if _base_language(language) == "en" else "whisper-basic"
    return get_normalizer(name)


@functools.lru_cache(maxsize=8192)
def _normalize(text: str, language: str) -> str:
    return label_normalizer(language)(text)


def is_empty_label(text: str) -> bool:
    """True when the label has no letter and no digit (blank, or punctuation only)."""
    return not any(ch.isalnum() for ch in text)


_WORD_RE = re.compile(r"\w+(?:['\u2019]\w+)*")


def _tokens(text: str) -> list[str]:
    return _WORD_RE.findall(text.casefold())


def most_repeated_ngram(text: str, n: int = 3) -> tuple[tuple[str, ...], int]:
    """The word n-gram that occurs most often (overlaps count) and its count; ((), 0) if none.

    Words are case-folded runs of letters/digits (apostrophes inside words kept);
    punctuation is ignored, so "go, go, go" is the same as "go go go".
    """
    if n < 1:
        raise ValueError(f"n-gram length must be >= 1, got {n}")
    toks = _tokens(text)
    if len(toks) < n:
        return (), 0
    counts = Counter(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))
    gram, count = counts.most_common(1)[0]
    return gram, count


# --------------------------------------------------------------------------- scripts


def _codes(words: str) -> frozenset[str]:
    return frozenset(words.split())


# (display name, first words of the Unicode character names, languages). Codes are
# ISO 639-1 where one exists, plus the ones Whisper uses (haw, jw, yue).
_SCRIPT_GROUPS: tuple[tuple[str, frozenset[str], frozenset[str]], ...] = (
    (
        "Latin",
        frozenset({"LATIN"}),
        _codes(
            "af an az br bs ca cs cy da de en eo es et eu fi fo fr fy ga gd gl ha haw hr ht "
            "hu id ig is it jv jw la lb lg ln lt lv mg mi ms mt nb nl nn no oc om pl pt qu "
            "ro rw se sk sl sn so sq st su sv sw tk tl tr uz vi wa xh yo zu"
        ),
    ),
    (
        "Cyrillic",
        frozenset({"CYRILLIC"}),
        _codes("ba be bg cv kk ky mk mn ru sah tg tt uk"),
    ),
    ("Cyrillic or Latin", frozenset({"CYRILLIC", "LATIN"}), frozenset({"sr"})),
    ("Latin or Arabic", frozenset({"LATIN", "ARABIC"}), frozenset({"ku"})),
    ("Greek", frozenset({"GREEK"}), frozenset({"el"})),
    ("Arabic", frozenset({"ARABIC"}), _codes("ar ary arz ckb fa ps sd sdh ug ur")),
    ("Hebrew", frozenset({"HEBREW"}), frozenset({"he", "yi"})),
    ("Devanagari", frozenset({"DEVANAGARI"}), _codes("bho gom hi mai mr ne sa")),
    ("Bengali", frozenset({"BENGALI"}), frozenset({"as", "bn"})),
    ("Gurmukhi", frozenset({"GURMUKHI"}), frozenset({"pa"})),
    ("Gujarati", frozenset({"GUJARATI"}), frozenset({"gu"})),
    ("Oriya", frozenset({"ORIYA"}), frozenset({"or"})),
    ("Tamil", frozenset({"TAMIL"}), frozenset({"ta"})),
    ("Telugu", frozenset({"TELUGU"}), frozenset({"te"})),
    ("Kannada", frozenset({"KANNADA"}), frozenset({"kn"})),
    ("Malayalam", frozenset({"MALAYALAM"}), frozenset({"ml"})),
    ("Sinhala", frozenset({"SINHALA"}), frozenset({"si"})),
    ("Thai", frozenset({"THAI"}), frozenset({"th"})),
    ("Lao", frozenset({"LAO"}), frozenset({"lo"})),
    ("Tibetan", frozenset({"TIBETAN"}), frozenset({"bo", "dz"})),
    ("Myanmar", frozenset({"MYANMAR"}), frozenset({"my"})),
    ("Khmer", frozenset({"KHMER"}), frozenset({"km"})),
    ("Georgian", frozenset({"GEORGIAN"}), frozenset({"ka"})),
    ("Armenian", frozenset({"ARMENIAN"}), frozenset({"hy"})),
    ("Ethiopic", frozenset({"ETHIOPIC"}), frozenset({"am", "ti"})),
    ("Hangul", frozenset({"HANGUL", "CJK", "IDEOGRAPHIC"}), frozenset({"ko"})),
    (
        "Japanese (kana and kanji)",
        frozenset({"HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA", "CJK", "IDEOGRAPHIC"}),
        frozenset({"ja"}),
    ),
    ("Han (CJK)", frozenset({"CJK", "IDEOGRAPHIC"}), frozenset({"zh", "yue", "wuu"})),
)

_LANGUAGE_SCRIPTS: dict[str, tuple[str, frozenset[str]]] = {
    lang: (display, scripts) for display, scripts, langs in _SCRIPT_GROUPS for lang in langs
}

# Scripts written without spaces between words: each letter counts as a word for LID.
_SPACELESS = frozenset(
    {"CJK", "IDEOGRAPHIC", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA", "THAI", "LAO"}
    | {"KHMER", "MYANMAR", "TIBETAN"}
)

# Letters and marks whose name says nothing about the script (they take the script of
# the text around them): combining diacritics, modifier letters, ordinal indicators.
_NEUTRAL = frozenset({"", "COMBINING", "MODIFIER", "FEMININE", "MASCULINE"})


@functools.lru_cache(maxsize=65536)
def char_script(ch: str) -> str | None:
    """The script of a letter or mark, as the first word of its Unicode name.

    None for anything that is not a letter or mark (digits, punctuation, spaces,
    symbols) and for script-neutral ones (combining diacritics, modifier letters).
    Full- and half-width forms count as their base script.
    """
    if not unicodedata.category(ch).startswith(("L", "M")):
        return None
    name = unicodedata.name(ch, "")
    for prefix in ("FULLWIDTH ", "HALFWIDTH "):
        name = name.removeprefix(prefix)
    script = name.split(" ", 1)[0]
    return None if script in _NEUTRAL else script


def language_script(language: str) -> tuple[str, frozenset[str]] | None:
    """(display name, script names) of a language's writing system; None if unknown."""
    return _LANGUAGE_SCRIPTS.get(_base_language(language))


def script_ratio(text: str, language: str) -> float:
    """Share of the text's letters that are in the language's script (0..1).

    Digits, punctuation, whitespace, symbols and script-neutral marks are ignored.
    An unknown language, or a text without letters, gives 1.0 (nothing contradicts).
    """
    known = language_script(language)
    if known is None:
        return 1.0
    scripts = known[1]
    total = inside = 0
    for ch in unicodedata.normalize("NFC", text):
        s = char_script(ch)
        if s is None:
            continue
        total += 1
        inside += s in scripts
    return 1.0 if total == 0 else inside / total


def word_count(text: str) -> int:
    """Whitespace-separated words; in scripts written without spaces, each letter counts."""
    n = 0
    for tok in text.split():
        spaceless = sum(char_script(ch) in _SPACELESS for ch in tok)
        n += spaceless if spaceless else 1
    return n


# --------------------------------------------------------------------------- text LID

_LID: Any = None
_LID_LOCK = threading.Lock()

# Close relatives that text LID confuses: their probabilities are pooled for the target.
_LID_GROUPS: tuple[frozenset[str], ...] = (
    frozenset({"no", "nn", "nb"}),
    frozenset({"zh", "yue", "wuu"}),
    frozenset({"hr", "bs", "sr"}),
    frozenset({"ar", "ary", "arz"}),
    frozenset({"ms", "id"}),
    frozenset({"uz", "uzs"}),
)
_LID_ALIASES = {"jw": "jv", "nb": "no"}


def _identifier() -> Any:
    """py3langid's identifier with normalised probabilities, loaded once (thread-safe)."""
    global _LID  # noqa: PLW0603 - a lazily loaded, read-only model shared by threads
    if _LID is None:
        with _LID_LOCK:
            if _LID is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                _LID = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _LID


def text_language_probs(text: str) -> dict[str, float]:
    """py3langid's probability for each of its languages (they sum to 1)."""
    return {str(lang): float(p) for lang, p in _identifier().rank(text)}


def text_language(text: str) -> tuple[str, float]:
    """The most likely language of the text (py3langid code) and its probability."""
    probs = text_language_probs(text)
    lang = max(probs, key=probs.__getitem__)
    return lang, probs[lang]


def _lid_group(language: str) -> frozenset[str]:
    code = _base_language(language)
    code = _LID_ALIASES.get(code, code)
    for group in _LID_GROUPS:
        if code in group:
            return group
    return frozenset({code})


# --------------------------------------------------------------------------- speech rate


def speech_span_s(u: Utterance) -> float:
    """First word start to last word end when words exist (and span > 0), else duration_s."""
    if u.words:
        span = max(w.end_s for w in u.words) - min(w.start_s for w in u.words)
        if span > 0:
            return span
    return u.duration_s


def speech_rate(u: Utterance) -> float:
    """Characters of the normalised label (no spaces) per second of speech."""
    chars = sum(not ch.isspace() for ch in _normalize(u.text, u.language))
    span = speech_span_s(u)
    if span <= 0:
        return math.inf if chars else 0.0
    return chars / span


def _quartiles(values: Sequence[float]) -> tuple[float, float]:
    """Q1 and Q3 by linear interpolation (numpy's default), clamped to their neighbours."""
    xs = sorted(values)
    last = len(xs) - 1

    def q(p: float) -> float:
        pos = p * last
        i = math.floor(pos)
        j = min(i + 1, last)
        v = xs[i] + (xs[j] - xs[i]) * (pos - i)
        return min(max(v, xs[i]), xs[j])

    return q(0.25), q(0.75)


def rate_bounds(rates: Sequence[float], k: float) -> tuple[float, float] | None:
    """[Q1 - k IQR, Q3 + k IQR] of the finite rates; None with fewer than 8 of them."""
    finite = [r for r in rates if math.isfinite(r)]
    if len(finite) < MIN_SOURCE_UTTERANCES:
        return None
    q1, q3 = _quartiles(finite)
    iqr = max(0.0, q3 - q1)
    return q1 - k * iqr, q3 + k * iqr


# --------------------------------------------------------------------------- batch statistics


def find_duplicates(utts: Sequence[Utterance]) -> dict[str, str]:
    """Duplicate id -> kept id: same normalised label within a source, smallest id kept.

    Labels that normalise to nothing are never duplicates (the charset filter drops them).
    """
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for u in utts:
        norm = _normalize(u.text, u.language)
        if norm.strip():
            groups[(u.source_id, norm)].append(u.utterance_id)
    out: dict[str, str] = {}
    for ids in groups.values():
        kept = min(ids)
        out.update({i: kept for i in ids if i != kept})
    return out


def rate_bounds_by_source(utts: Sequence[Utterance], k: float) -> dict[str, tuple[float, float]]:
    """source_id -> speech-rate bounds, for sources with enough utterances."""
    by_source: dict[str, list[float]] = defaultdict(list)
    for u in utts:
        by_source[u.source_id].append(speech_rate(u))
    return {src: b for src, rates in by_source.items() if (b := rate_bounds(rates, k)) is not None}


def source_stats(utts: Sequence[Utterance], cfg: FiltersConfig) -> SourceStats:
    """Speech-rate bounds per source and duplicate transcripts, over this batch."""
    bounds = rate_bounds_by_source(utts, cfg.speech_rate_iqr_k)
    dup_of = find_duplicates(utts) if cfg.dedupe == "source" else {}
    return SourceStats(bounds, frozenset(dup_of), dup_of)


# --------------------------------------------------------------------------- the filters

# Each returns None (keep) or the reason without the "<filter>: " prefix.
_Check = Callable[[Utterance, FiltersConfig, SourceStats, str, str | None], str | None]


def _duration(
    u: Utterance, cfg: FiltersConfig, stats: SourceStats, target: str, other: str | None
) -> str | None:
    if u.duration_s < cfg.min_duration_s:
        return f"{u.duration_s:.2f} s is below the minimum {cfg.min_duration_s:.2f} s"
    if u.duration_s > cfg.max_duration_s:
        return f"{u.duration_s:.2f} s is above the maximum {cfg.max_duration_s:.2f} s"
    return None


def _charset(
    u: Utterance, cfg: FiltersConfig, stats: SourceStats, target: str, other: str | None
) -> str | None:
    if is_empty_label(u.text):
        return "empty label"
    known = language_script(target)
    if known is None:
        return None
    ratio = script_ratio(u.text, target)
    if ratio < cfg.min_script_ratio:
        return (
            f"{ratio:.2f} of the label's letters are in the {known[0]} script of {target}, "
            f"below {cfg.min_script_ratio:.2f}"
        )
    return None


def _text_language(
    u: Utterance, cfg: FiltersConfig, stats: SourceStats, target: str, other: str | None
) -> str | None:
    if word_count(u.text) < MIN_LID_WORDS:
        return None
    probs = text_language_probs(u.text)
    group = _lid_group(target)
    if not group & probs.keys():
        return None  # py3langid does not know the target language: no judgement
    top = max(probs, key=probs.__getitem__)
    p_target = sum(probs.get(lang, 0.0) for lang in group)
    if top not in group and p_target < cfg.min_text_lid_prob:
        return (
            f"label reads as {top} (p={probs[top]:.2f}); p({target})={p_target:.2f} "
            f"is below {cfg.min_text_lid_prob:.2f}"
        )
    return None


def _audio_language(
    u: Utterance, cfg: FiltersConfig, stats: SourceStats, target: str, other: str | None
) -> str | None:
    if u.language_prob is None:
        return None  # English-only model: the language came from the config
    if _base_language(u.language) != _base_language(target):
        return f"Whisper detected {u.language} (p={u.language_prob:.2f}), not the target {target}"
    if u.language_prob < cfg.min_audio_lid_prob:
        return f"Whisper's p({target})={u.language_prob:.2f} is below {cfg.min_audio_lid_prob:.2f}"
    return None


def _speech_rate(
    u: Utterance, cfg: FiltersConfig, stats: SourceStats, target: str, other: str | None
) -> str | None:
    bounds = stats.rate_bounds.get(u.source_id)
    if bounds is None:
        return None
    lo, hi = bounds
    rate = speech_rate(u)
    k = cfg.speech_rate_iqr_k
    if rate > hi:
        return f"{rate:.1f} chars/s is above {hi:.1f} (Q3 + {k:g} IQR of source {u.source_id})"
    if rate < lo:
        return f"{rate:.1f} chars/s is below {lo:.1f} (Q1 - {k:g} IQR of source {u.source_id})"
    return None


def unaligned_ratio(u: Utterance) -> float:
    """Share of the label's words the aligner could not place (0 when there are none)."""
    total = len(u.words) + u.unaligned_words
    return u.unaligned_words / total if total else 0.0


def _alignment(
    u: Utterance, cfg: FiltersConfig, stats: SourceStats, target: str, other: str | None
) -> str | None:
    if u.align_score < cfg.min_align_score:
        return f"mean word score {u.align_score:.2f} is below {cfg.min_align_score:.2f}"
    ratio = unaligned_ratio(u)
    if ratio > cfg.max_unaligned_ratio:
        total = len(u.words) + u.unaligned_words
        return (
            f"{u.unaligned_words} of {total} words unaligned ({ratio:.2f}), "
            f"above {cfg.max_unaligned_ratio:.2f}"
        )
    return None


def _hallucination(
    u: Utterance, cfg: FiltersConfig, stats: SourceStats, target: str, other: str | None
) -> str | None:
    if u.compression_ratio > cfg.max_compression_ratio:
        return (
            f"compression ratio {u.compression_ratio:.2f} is above "
            f"{cfg.max_compression_ratio:.2f} (repetitive decode)"
        )
    gram, count = most_repeated_ngram(u.asr_text or u.text, 3)
    if count >= cfg.max_ngram_repeats:
        return (
            f"the 3-gram '{' '.join(gram)}' occurs {count} times, "
            f"at or above the limit {cfg.max_ngram_repeats}"
        )
    if not math.isfinite(u.avg_logprob):
        return f"no decode of the utterance's audio (avg_logprob {u.avg_logprob})"
    if u.avg_logprob < cfg.min_avg_logprob:
        if u.no_speech_prob > cfg.max_no_speech_prob:
            return (
                f"no_speech_prob {u.no_speech_prob:.2f} is above {cfg.max_no_speech_prob:.2f} "
                f"with avg_logprob {u.avg_logprob:.2f} below {cfg.min_avg_logprob:.2f} "
                "(Whisper's no-speech rule)"
            )
        return (
            f"avg_logprob {u.avg_logprob:.2f} is below {cfg.min_avg_logprob:.2f} "
            "(low decoder confidence)"
        )
    return None


def _label_agreement(
    u: Utterance, cfg: FiltersConfig, stats: SourceStats, target: str, other: str | None
) -> str | None:
    if other is None:
        hyp, what = u.asr_text, "the utterance's own decode"
    else:
        hyp, what = other, "the other label"
    rate = cer(_normalize(u.text, target), _normalize(hyp, target))
    if rate > cfg.max_label_cer:
        return f"CER {rate:.2f} between the label and {what} is above {cfg.max_label_cer:.2f}"
    return None


def _duplicate(
    u: Utterance, cfg: FiltersConfig, stats: SourceStats, target: str, other: str | None
) -> str | None:
    if cfg.dedupe != "source" or u.utterance_id not in stats.duplicates:
        return None
    kept = stats.duplicate_of.get(u.utterance_id)
    of = f" as {kept}" if kept else " as an earlier utterance"
    return f"same normalised transcript{of} in source {u.source_id} (dedupe: source)"


_CHECKS: dict[str, _Check] = {
    "duration": _duration,
    "charset": _charset,
    "text_language": _text_language,
    "audio_language": _audio_language,
    "speech_rate": _speech_rate,
    "alignment": _alignment,
    "hallucination": _hallucination,
    "label_agreement": _label_agreement,
    "duplicate": _duplicate,
}


def _run(
    names: Sequence[str],
    u: Utterance,
    cfg: FiltersConfig,
    stats: SourceStats,
    target: str,
    other: str | None,
) -> Verdict:
    for name in names:
        reason = _CHECKS[name](u, cfg, stats, target, other)
        if reason is not None:
            return Verdict(False, name, f"{name}: {reason}")
    return KEEP


def check(
    u: Utterance,
    cfg: FiltersConfig,
    stats: SourceStats,
    *,
    target_language: str,
    other_label: str | None = None,
) -> Verdict:
    """Run the enabled filters in FILTERS order and return the first drop (or KEEP).

    `other_label` is a second label of the same audio (e.g. a teacher's decode) for
    label agreement; without it the label is compared with `u.asr_text`.
    """
    return _run(enabled_filters(cfg), u, cfg, stats, target_language, other_label)


def apply(
    utts: Sequence[Utterance],
    cfg: FiltersConfig,
    *,
    target_language: str,
    other_labels: Mapping[str, str] | None = None,
) -> list[Verdict]:
    """One verdict per utterance, in order.

    Speech-rate bounds are computed over the whole batch. Duplicates are found among
    the utterances that pass every other filter, so the copy that is kept (the
    smallest id) is always one that survives: a transcript never disappears because
    its smallest-id copy failed, say, the duration filter.
    """
    names = enabled_filters(cfg)
    others = other_labels or {}
    stats = SourceStats(rate_bounds_by_source(utts, cfg.speech_rate_iqr_k), frozenset())
    before = tuple(n for n in names if n != "duplicate")
    verdicts = [
        _run(before, u, cfg, stats, target_language, others.get(u.utterance_id)) for u in utts
    ]
    if "duplicate" not in names or cfg.dedupe != "source":
        return verdicts
    survivors = [u for u, v in zip(utts, verdicts, strict=True) if v.keep]
    dup_of = find_duplicates(survivors)
    final = SourceStats(stats.rate_bounds, frozenset(dup_of), dup_of)
    return [
        _run(("duplicate",), u, cfg, final, target_language, None) if v.keep else v
        for u, v in zip(utts, verdicts, strict=True)
    ]
