"""Text preparation for synthesis: sentence splitting, TTS normalisation, checks.

`prepare(text, cfg)` turns one raw input text into the pieces a voice reads:

1. split into sentences (`split_sentences`, when `cfg.split_sentences`);
2. check each sentence's content (`check_text` rules: control characters,
   markup, URLs and e-mail addresses, letters in a script the voice cannot read,
   nothing to read);
3. split a sentence whose spoken form is over `max_chars` or `max_words` at
   clause boundaries (`; : --`, then `,`), joining clauses back greedily while
   they fit;
4. normalise each piece for TTS (`normalize_for_tts`) and check its size.

Every piece becomes a `Prepared` (`raw`: the sentence or clause as written;
`spoken`: what the voice reads) or a `Drop` (a `bad_text` reject), in order.
`prepare` never returns an empty list: an empty input gives one `Drop`.

Only English is expanded (numbers, dates, times, money, units, abbreviations,
symbols). For any other language `normalize_for_tts` only collapses whitespace:
the TTS engine's own front end reads digits and symbols in that language.

URLs and e-mail addresses are rejected, not spelled: how a voice should read
them depends on context, and spelled addresses make poor references. Bare domain
names in prose ("Amazon.com") are read as "Amazon dot com".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from speechmill.core.quality.filters import char_script, language_script, word_count
from speechmill.core.text import unicode as uni
from speechmill.schemas.rejects import Category, Drop

# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Prepared:
    """One sentence (or clause) ready for the voice."""

    raw: str
    """The sentence as written (whitespace collapsed)."""
    spoken: str
    """What the voice reads: `raw` after `normalize_for_tts`."""


class PrepConfig(Protocol):
    """The `SynthConfig` fields `prepare` reads."""

    @property
    def language(self) -> str: ...
    @property
    def min_chars(self) -> int: ...
    @property
    def max_chars(self) -> int: ...
    @property
    def min_words(self) -> int: ...
    @property
    def max_words(self) -> int: ...
    @property
    def split_sentences(self) -> bool: ...


DETAIL_CHARS = 200
"""Drop details quote at most this many characters of the text."""


def _excerpt(text: str, limit: int = DETAIL_CHARS) -> str:
    """At most `limit` characters of `text`, storable (surrogates replaced)."""
    text = uni.clean(text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _is_english(language: str) -> bool:
    return language.lower().replace("_", "-").split("-")[0] == "en"


# --------------------------------------------------------------------------- numbers

_ONES = _words(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
)
_TENS = ("", "", *_words("twenty thirty forty fifty sixty seventy eighty ninety"))
_SCALES = ("", *_words("thousand million billion trillion quadrillion quintillion sextillion"))
_ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def _under_100(n: int) -> str:
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


def _under_1000(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    parts = [f"{_ONES[hundreds]} hundred"] if hundreds else []
    if rest:
        parts.append(_under_100(rest))
    return " ".join(parts)


def digits_to_words(digits: str) -> str:
    """Each digit by name: "007" -> "zero zero seven"."""
    return " ".join(_ONES[int(d)] for d in digits if d.isdigit())


def number_to_words(n: int) -> str:
    """A cardinal in American English: 1234 -> "one thousand two hundred thirty-four"."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n == 0:
        return "zero"
    if n >= 1000 ** len(_SCALES):
        return digits_to_words(str(n))
    groups: list[str] = []
    scale = 0
    while n:
        n, group = divmod(n, 1000)
        if group:
            groups.append(_under_1000(group) + (f" {_SCALES[scale]}" if scale else ""))
        scale += 1
    return " ".join(reversed(groups))


def _ordinal_word(word: str) -> str:
    if word in _ORDINAL_WORDS:
        return _ORDINAL_WORDS[word]
    if word.endswith("y"):
        return word[:-1] + "ieth"
    return word + "th"


def ordinal_to_words(n: int) -> str:
    """An ordinal: 22 -> "twenty-second", 103 -> "one hundred third"."""
    head, space, last = number_to_words(n).rpartition(" ")
    first, hyphen, unit = last.rpartition("-")
    return head + space + first + hyphen + _ordinal_word(unit)


def year_to_words(n: int) -> str:
    """A year as said: 1999 "nineteen ninety-nine", 2005 "two thousand five",
    2010 "twenty ten", 1900 "nineteen hundred", 1905 "nineteen oh five"."""
    if not 1000 <= n <= 9999 or n % 1000 == 0 or 2000 <= n <= 2009:
        return number_to_words(n)
    high, low = divmod(n, 100)
    if low == 0:
        return f"{_under_100(high)} hundred"
    if low < 10:
        return f"{_under_100(high)} oh {_ONES[low]}"
    return f"{_under_100(high)} {_under_100(low)}"


def _plural_word(words: str) -> str:
    """ "nineteen ninety" -> "nineteen nineties", "two thousand" -> "two thousands"."""
    head, space, last = words.rpartition(" ")
    if last.endswith("y"):
        last = last[:-1] + "ies"
    elif last.endswith("x"):
        last += "es"
    else:
        last += "s"
    return head + space + last


def _numeral(text: str) -> str:
    """Digits as written ("1,234.5", "007", ".5") -> words."""
    text = text.replace(",", "")
    whole, _, frac = text.partition(".")
    if not whole:
        words = ""
    elif (len(whole) > 1 and whole.startswith("0")) or len(whole) > 3 * len(_SCALES):
        words = digits_to_words(whole)
    else:
        words = number_to_words(int(whole))
    if frac:
        words = f"{words} point {digits_to_words(frac)}".strip()
    return words


# --------------------------------------------------------------------------- sentences

_CLOSERS = "\"')]}\u201d\u2019\u00bb\u300d\u300f"
_OPENERS = "\"'([{\u201c\u2018\u00ab\u300c\u300e\u00bf\u00a1"
_SENTENCE_END = re.compile(
    r"(?<![.?!\u2026])(?P<term>[.?!\u2026]+)[" + re.escape(_CLOSERS) + r"]*(?=\s|$)"
    r"|[\u3002\uff01\uff1f]+[" + re.escape(_CLOSERS) + r"]*"
)
# Followed by a name or a number, never the end of a sentence.
_NEVER_FINAL = frozenset(
    _words(
        "mr mrs ms mx dr prof st mt ft rev fr gen col capt lt sgt cmdr adm maj gov sen rep pres "
        "hon messrs mme mlle vs v e.g i.e cf viz approx ca c fig figs eq vol pp op no nos"
    )
)
# Words that start sentences: after "U.S." or "a.m." they mean a new sentence began.
_STARTERS = frozenset(
    _words(
        "a an the it its he she we they i you this that these those there here but and so "
        "or yet in on at after before when while if however then now today his her our their "
        "my your what who why how where some many most all one"
    )
)
_DOTTED = re.compile(r"(?:[A-Za-z]{1,2}\.)+[A-Za-z]{1,2}")


CONTEXT_CHARS = 64
"""Rules look this far around a match (keeps long texts linear)."""


def _before(text: str, index: int) -> str:
    """Up to CONTEXT_CHARS characters before `index`."""
    return text[max(0, index - CONTEXT_CHARS) : index]


def _after(text: str, index: int) -> str:
    """Up to CONTEXT_CHARS characters from `index`."""
    return text[index : index + CONTEXT_CHARS]


def _next_word(text: str) -> str:
    rest = text.lstrip().lstrip(_OPENERS)
    match = re.match(r"\S*", rest)
    return match.group(0) if match else ""


def _is_boundary(text: str, match: re.Match[str]) -> bool:
    term = match.group("term")
    if term is None:  # a CJK full stop, question or exclamation mark
        return True
    nxt = _next_word(_after(text, match.end()))
    if not nxt:
        return True
    if nxt[0].islower() or nxt[0] in ",;:":
        return False
    if term != ".":  # ?, !, ... and ellipses end a sentence before a capital
        return True
    before = _before(text, match.start())
    token = before.rsplit(None, 1)[-1].lstrip(_OPENERS) if before.strip() else ""
    lower = token.lower()
    if lower == "no":
        return not nxt[0].isdigit()
    if lower in _NEVER_FINAL:
        return False
    if len(token) == 1 and token.isupper():  # an initial: "John F. Kennedy"
        return False
    if _DOTTED.fullmatch(token):  # U.S., a.m., Ph.D
        return nxt.lower().strip(_CLOSERS + ",;:") in _STARTERS
    return True


def _split_block(block: str) -> list[str]:
    out: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(block):
        if match.end() < len(block) and _is_boundary(block, match):
            out.append(block[start : match.end()].strip())
            start = match.end()
    out.append(block[start:].strip())
    return [s for s in out if s]


def split_sentences(text: str) -> list[str]:
    """Sentences of a paragraph, whitespace collapsed.

    A sentence ends at `.`, `?`, `!` or an ellipsis (and any closing quotes or
    brackets after it) followed by a space and a word that does not start in
    lower case; at CJK full stops; and at blank lines. A full stop after a title
    or abbreviation that precedes a name or number (Mr., Dr., St., e.g., No. 5),
    after an initial (John F. Kennedy) or in a decimal (3.14) does not end one;
    after a dotted abbreviation (U.S., a.m.) only when a typical sentence
    opener follows.
    """
    out: list[str] = []
    for block in re.split(r"\n[^\S\n]*\n", text):
        out.extend(_split_block(" ".join(block.split())))
    return out


# --------------------------------------------------------------------------- normalisation

_MONTHS = _words(
    "January February March April May June July August September October November December"
)
_MONTH_NAMES = {m.lower(): m for m in _MONTHS} | {m[:3].lower(): m for m in _MONTHS if m != "May"}
_MONTH_NAMES["sept"] = "September"
_MONTH_RE = (
    r"(?P<month>(?:January|February|March|April|May|June|July|August|September|October"
    r"|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\b\.?)"
)
_NUM = r"(?<!\d)(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?"
_SIGN = r"(?P<sign>(?<![\w.,])[-+])?"


def _keep_stop(match: re.Match[str], words: str) -> str:
    """`words`, plus the full stop the match swallowed when it ended the sentence."""
    rest = _after(match.string, match.end())
    at_end = match.end() + len(rest) == len(match.string) and not rest.strip(" \"')]}")
    return words + "." if match.group(0).endswith(".") and at_end else words


def _signed(match: re.Match[str], words: str) -> str:
    sign = match.groupdict().get("sign")
    return {"-": "minus ", "+": "plus "}.get(sign or "", "") + words


_VULGAR = {
    "\u00bd": "1/2",
    "\u2153": "1/3",
    "\u2154": "2/3",
    "\u00bc": "1/4",
    "\u00be": "3/4",
    "\u2155": "1/5",
    "\u215b": "1/8",
    "\u215c": "3/8",
    "\u215d": "5/8",
    "\u215e": "7/8",
}
_TRANSLATE = str.maketrans(
    {
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2033": '"',
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u2039": "'",
        "\u203a": "'",
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2212": "-",
        "\u2015": "\u2014",
        "\u2122": "",  # trade mark
        "\u00ae": "",  # registered
        "\u2044": "/",
    }
)


def _clean_unicode(text: str) -> str:
    """Quotes, dashes, fractions, invisible characters, compatibility forms."""
    text = re.sub(
        r"(\d?)([" + "".join(_VULGAR) + "])",
        lambda m: (m.group(1) + " " if m.group(1) else "") + _VULGAR[m.group(2)],
        text,
    )
    text = text.translate(_TRANSLATE)
    if not text.isascii():
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return unicodedata.normalize("NFKC", text)


def _dashes(text: str) -> str:
    text = re.sub(r"(?<=\d)\s*[\u2013\u2014]\s*(?=[$\u00a3\u20ac]?\d)", " to ", text)
    text = re.sub(r" ?(?:[\u2013\u2014]|--+) ?", ", ", text)
    return re.sub(r"(?<=\S) - (?=\S)", ", ", text)


_PHONE = re.compile(r"(?<![\d-])(?:\((\d{3})\)\s?|(\d{3})[-.])(\d{3})[-.](\d{4})(?![\d-])")


def _phone(match: re.Match[str]) -> str:
    area = match.group(1) or match.group(2)
    return ", ".join(digits_to_words(g) for g in (area, match.group(3), match.group(4)))


def _date_words(month: int, day: int, year: str | None, *, day_first: bool, the: bool) -> str:
    name = _MONTHS[month - 1]
    if day_first:
        words = f"{'the ' if the else ''}{ordinal_to_words(day)} of {name}"
    else:
        words = f"{name} {ordinal_to_words(day)}"
    return words + (f", {year_to_words(int(year))}" if year else "")


_ISO_DATE = re.compile(r"(?<![\d-])(\d{4})-(\d{2})-(\d{2})(?![\d-])")
_US_DATE = re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})/(\d{4})(?![\d/])")
_MONTH_DAY = re.compile(
    r"\b" + _MONTH_RE + r"\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?\b(?:,?\s+(?P<year>\d{4})\b)?"
)
_MONTH_YEAR = re.compile(r"\b" + _MONTH_RE + r"(?=\s+\d{4}\b)")
_DAY_MONTH = re.compile(
    r"\b(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH_RE + r"(?:,?\s+(?P<year>\d{4})\b)?"
)


def _iso_date(match: re.Match[str]) -> str:
    _, month, day = (int(g) for g in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return match.group(0)
    return _date_words(month, day, match.group(1), day_first=False, the=False)


def _us_date(match: re.Match[str]) -> str:
    first, second = int(match.group(1)), int(match.group(2))
    month, day = (first, second) if first <= 12 else (second, first)
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return match.group(0)
    return _date_words(month, day, match.group(3), day_first=False, the=False)


def _named_date(match: re.Match[str], *, day_first: bool) -> str:
    day = int(match.group("day"))
    if not 1 <= day <= 31:
        return match.group(0)
    month = _MONTHS.index(_MONTH_NAMES[match.group("month").rstrip(".").lower()]) + 1
    the = not _before(match.string, match.start()).lower().endswith("the ")
    words = _date_words(month, day, match.group("year"), day_first=day_first, the=the)
    return words if match.group("year") else _keep_stop(match, words)


_AMPM = r"(?P<ap>[AaPp])\.?\s?[Mm]\.?(?![A-Za-z])"
_CLOCK = re.compile(r"(?<![\d:.])(?P<h>\d{1,2}):(?P<m>\d{2})(?![\d:])(?:\s?" + _AMPM + ")?")
_HOUR = re.compile(r"(?<![\d:.,])(?P<h>\d{1,2})\s?" + _AMPM)


def _time(match: re.Match[str]) -> str:
    hour = int(match.group("h"))
    minute = int(match.groupdict().get("m") or 0)
    ampm = match.group("ap")
    if hour > (12 if ampm else 23) or minute > 59 or (ampm and hour == 0):
        return match.group(0)
    words = number_to_words(hour)
    if minute:
        words += f" oh {_ONES[minute]}" if minute < 10 else f" {_under_100(minute)}"
    elif not ampm:
        words += " o'clock" if hour <= 12 else " hundred"
    if ampm:
        return _keep_stop(match, f"{words} {ampm.upper()}M")
    return words


_ABBREVIATIONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), words)
    for pattern, words in (
        (r"\bMrs\b\.?", "Missus"),
        (r"\bMr\b\.?", "Mister"),
        (r"\bMs\b\.?(?=\s+[A-Z])", "Miz"),
        (r"\bProf\b\.?(?=\s+[A-Z])", "Professor"),
        (r"\bMt\b\.?(?=\s+[A-Z])", "Mount"),
        (r"\bFt\.(?=\s+[A-Z])", "Fort"),
        (r"\bJr\b\.?", "Junior"),
        (r"\bSr\.", "Senior"),
        (r"\bRev\.(?=\s+[A-Z])", "Reverend"),
        (r"\bGen\.(?=\s+[A-Z])", "General"),
        (r"\bCol\.(?=\s+[A-Z])", "Colonel"),
        (r"\bCapt\.(?=\s+[A-Z])", "Captain"),
        (r"\bLt\.(?=\s+[A-Z])", "Lieutenant"),
        (r"\bSgt\.(?=\s+[A-Z])", "Sergeant"),
        (r"\bGov\.(?=\s+[A-Z])", "Governor"),
        (r"\bSen\.(?=\s+[A-Z])", "Senator"),
        (r"\bRep\.(?=\s+[A-Z])", "Representative"),
        (r"\bPres\.(?=\s+[A-Z])", "President"),
        (r"\b[Vv]s\b\.?|\bv\.(?=\s+[A-Z])", "versus"),
        (r"\b[Ee]tc\b\.?", "et cetera"),
        (r"\b[Ee]\.\s?g\.?(?![A-Za-z])", "for example"),
        (r"\b[Ii]\.\s?e\.?(?![A-Za-z])", "that is"),
        (r"\b[Cc]f\.", "compare"),
        (r"\b[Aa]pprox\b\.?", "approximately"),
        (r"\bN[Oo]\.(?=\s*\d)|\bno\.(?=\s*\d)", "number"),
        (r"\bNos\.(?=\s*\d)", "numbers"),
        (r"\b[Ff]ig\.(?=\s*\d)", "figure"),
        (r"\bInc\.", "Incorporated"),
        (r"\bLtd\.", "Limited"),
        (r"\bCorp\.", "Corporation"),
        (r"\bAve\.", "Avenue"),
        (r"\bBlvd\.", "Boulevard"),
        (r"\bRd\.", "Road"),
        (r"\bDept\.", "Department"),
        (r"\bUniv\.", "University"),
    )
)
_NUMBER_SIGN = re.compile(r"#\s?(?=\d)")
_ABOUT = re.compile(r"~\s?(?=\d)")
_DOCTOR = re.compile(r"\bDr\b(\.?)")
_SAINT = re.compile(r"\bSt\b(\.?)")


def _doctor(match: re.Match[str]) -> str:
    nxt = _next_word(_after(match.string, match.end()))
    if nxt[:1].isupper():
        return "Doctor"
    return _keep_stop(match, "Drive") if match.group(1) else match.group(0)


def _saint(match: re.Match[str]) -> str:
    before = _before(match.string, match.start()).rstrip()
    prev = before.rsplit(None, 1)[-1] if before else ""
    first = not before or before == prev or before[-1] in ".!?"
    nxt = _next_word(_after(match.string, match.end()))
    if (prev[:1].isupper() or prev[:1].isdigit()) and not first:
        return _keep_stop(match, "Street")
    if nxt[:1].isupper():
        return "Saint"
    return _keep_stop(match, "Street")


def _expand(words: str) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        before = _before(match.string, match.start()).rstrip(" \"'([")
        first = not before or before[-1] in ".!?"
        capital = first and match.group(0)[:1].isupper() and words[:1].islower()
        return _keep_stop(match, words[:1].upper() + words[1:] if capital else words)

    return replace


def _abbreviations(text: str) -> str:
    text = _DOCTOR.sub(_doctor, text)
    text = _SAINT.sub(_saint, text)
    for pattern, words in _ABBREVIATIONS:
        text = pattern.sub(_expand(words), text)
    text = _NUMBER_SIGN.sub("number ", text)
    return _ABOUT.sub("about ", text)


# (symbol or code, singular, plural, minor singular, minor plural)
_CURRENCIES: dict[str, tuple[str, str, str | None, str | None]] = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "US$": ("US dollar", "US dollars", "cent", "cents"),
    "USD": ("US dollar", "US dollars", "cent", "cents"),
    "\u00a3": ("pound", "pounds", "penny", "pence"),
    "GBP": ("pound", "pounds", "penny", "pence"),
    "\u20ac": ("euro", "euros", "cent", "cents"),
    "EUR": ("euro", "euros", "cent", "cents"),
    "\u00a5": ("yen", "yen", None, None),
    "JPY": ("yen", "yen", None, None),
    "\u20b9": ("rupee", "rupees", None, None),
    "INR": ("rupee", "rupees", None, None),
}
_SCALE_ABBR = {
    "k": "thousand",
    "K": "thousand",
    "m": "million",
    "M": "million",
    "mn": "million",
    "b": "billion",
    "B": "billion",
    "bn": "billion",
    "tn": "trillion",
}
_MONEY_PREFIX = re.compile(
    _SIGN
    + r"(?P<cur>US\$|[$\u00a3\u20ac\u00a5\u20b9])\s?(?P<num>"
    + _NUM
    + r")(?:\s?(?P<scale>thousand|million|billion|trillion)\b|(?P<abbr>mn|bn|tn|[kKmMbB])\b)?"
)
_MONEY_SUFFIX = re.compile(
    _SIGN + r"(?P<num>" + _NUM + r")\s?(?:(?P<cent>\u00a2)|(?P<cur>USD|EUR|GBP|JPY|INR)\b)"
)


def _money(match: re.Match[str]) -> str:
    num = match.group("num")
    unit: tuple[str, str, str | None, str | None]
    if match.groupdict().get("cent"):
        unit = ("cent", "cents", None, None)
    else:
        unit = _CURRENCIES[match.group("cur")]
    one, many, minor_one, minor_many = unit
    scale = match.groupdict().get("scale") or _SCALE_ABBR.get(match.groupdict().get("abbr") or "")
    if scale:
        return _signed(match, f"{_numeral(num)} {scale} {many}")
    whole, _, frac = num.replace(",", "").partition(".")
    if frac and (len(frac) > 2 or minor_one is None):
        return _signed(match, f"{_numeral(num)} {many}")
    units = int(whole or "0")
    cents = int(frac.ljust(2, "0")) if frac else 0
    parts = []
    if units or not cents:
        parts.append(f"{number_to_words(units)} {one if units == 1 else many}")
    if cents:
        parts.append(f"{number_to_words(cents)} {minor_one if cents == 1 else minor_many}")
    return _signed(match, " and ".join(parts))


_PERCENT = re.compile(_SIGN + r"(?P<num>" + _NUM + r"|\.\d+)\s?%")

# (symbol, singular, plural); matched case-sensitively right after a number.
_UNITS: dict[str, tuple[str, str]] = {
    "km\u00b2": ("square kilometer", "square kilometers"),
    "m\u00b2": ("square meter", "square meters"),
    "cm\u00b2": ("square centimeter", "square centimeters"),
    "ft\u00b2": ("square foot", "square feet"),
    "m\u00b3": ("cubic meter", "cubic meters"),
    "cm\u00b3": ("cubic centimeter", "cubic centimeters"),
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "m/s": ("meter per second", "meters per second"),
    "km": ("kilometer", "kilometers"),
    "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "\u00b5m": ("micrometer", "micrometers"),
    "\u03bcm": ("micrometer", "micrometers"),
    "nm": ("nanometer", "nanometers"),
    "m": ("meter", "meters"),
    "mi": ("mile", "miles"),
    "ft": ("foot", "feet"),
    "yd": ("yard", "yards"),
    "kg": ("kilogram", "kilograms"),
    "mg": ("milligram", "milligrams"),
    "\u00b5g": ("microgram", "micrograms"),
    "\u03bcg": ("microgram", "micrograms"),
    "g": ("gram", "grams"),
    "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "ml": ("milliliter", "milliliters"),
    "mL": ("milliliter", "milliliters"),
    "L": ("liter", "liters"),
    "l": ("liter", "liters"),
    "ha": ("hectare", "hectares"),
    "\u00b0C": ("degree Celsius", "degrees Celsius"),
    "\u00b0F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "\u00b0": ("degree", "degrees"),
    "Hz": ("hertz", "hertz"),
    "kHz": ("kilohertz", "kilohertz"),
    "MHz": ("megahertz", "megahertz"),
    "GHz": ("gigahertz", "gigahertz"),
    "kWh": ("kilowatt hour", "kilowatt hours"),
    "kW": ("kilowatt", "kilowatts"),
    "MW": ("megawatt", "megawatts"),
    "W": ("watt", "watts"),
    "V": ("volt", "volts"),
    "mAh": ("milliamp hour", "milliamp hours"),
    "KB": ("kilobyte", "kilobytes"),
    "kB": ("kilobyte", "kilobytes"),
    "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"),
    "TB": ("terabyte", "terabytes"),
    "dB": ("decibel", "decibels"),
    "ms": ("millisecond", "milliseconds"),
    "sec": ("second", "seconds"),
    "secs": ("second", "seconds"),
    "min": ("minute", "minutes"),
    "mins": ("minute", "minutes"),
    "hr": ("hour", "hours"),
    "hrs": ("hour", "hours"),
    "x": ("times", "times"),
}
_UNIT = re.compile(
    _SIGN
    + r"(?P<num>"
    + _NUM
    + r")\s?(?P<unit>"
    + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
    + r")(?![\w\u00b2\u00b3])"
)
_DIMENSION = re.compile(r"(?<=\d)\s?[x\u00d7]\s?(?=\d)")


def _unit(match: re.Match[str]) -> str:
    num = match.group("num")
    one, many = _UNITS[match.group("unit")]
    return _signed(match, f"{_numeral(num)} {one if num == '1' else many}")


_DECADE = re.compile(r"(?<![\w'])(?P<year>[1-9]\d{2}0)'?s\b|(?<![\w])'?(?P<short>[1-9]0)'?s\b")
_ORDINAL = re.compile(r"(?<![\w.,])(?P<num>\d{1,3}(?:,\d{3})+|\d+)(?:st|nd|rd|th)\b")
_FRACTION = re.compile(r"(?<![\d/.,])(?:(?P<whole>\d+)\s)?(?P<n>\d+)/(?P<d>\d+)(?![\d/])")
_DOTTED_NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d+){2,}(?![\d.]*\d)")
_LETTER_DIGIT = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")
_RANGE = re.compile(r"(?<=\d)\s?-\s?(?=\d)")
_NUMBER = re.compile(_SIGN + r"(?P<num>" + _NUM + r"|(?<!\d)\.\d+)")
_YEAR_CUES = frozenset(
    _words(
        "in since by from until till to through of during before after circa c year years "
        "early late mid around the spring summer autumn fall winter"
    )
) | {m.lower() for m in _MONTHS}


def _decade(match: re.Match[str]) -> str:
    if match.group("year"):
        return _plural_word(year_to_words(int(match.group("year"))))
    return _plural_word(number_to_words(int(match.group("short"))))


def _fraction(match: re.Match[str]) -> str:
    num, den = int(match.group("n")), int(match.group("d"))
    whole = match.group("whole")
    if num == 24 and den == 7 and not whole:
        return "twenty-four seven"
    if den == 0:
        return match.group(0)
    if 2 <= den <= 10 and num <= den:
        if den == 2:
            words = "a half" if whole else "one half"
        else:
            name = "quarter" if den == 4 else ordinal_to_words(den)
            plural = _plural_word(name) if num != 1 else name
            words = f"{'a' if whole and num == 1 else number_to_words(num)} {plural}"
        if whole:
            return f"{number_to_words(int(whole))} and {words}"
        return words
    prefix = f"{number_to_words(int(whole))} " if whole else ""
    return f"{prefix}{number_to_words(num)} over {number_to_words(den)}"


def _is_year_context(match: re.Match[str]) -> bool:
    before = _before(match.string, match.start()).rstrip()
    prev = before.rsplit(None, 1)[-1].strip(_OPENERS + ",").lower() if before else ""
    if not before or before[-1] in ".!?" or prev in _YEAR_CUES:
        return True
    after = _after(match.string, match.end())
    nxt = _next_word(after).lower().strip(_CLOSERS + ".,;:!?")
    if not after.strip() or after.lstrip()[:1] in ",;:.!?)":
        return True
    return nxt in {"and", "to", "through", "ad", "bc", "bce", "ce", "a.d", "b.c"}


def _number(match: re.Match[str]) -> str:
    num = match.group("num")
    year = re.fullmatch(r"1[1-9]\d\d|20\d\d", num) and not match.group("sign")
    if year and _is_year_context(match):
        return year_to_words(int(num))
    return _signed(match, _numeral(num))


_SYMBOLS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), w)
    for p, w in (
        (r" ?& ?", " and "),
        (r" ?\+ ?", " plus "),
        (r" ?= ?", " equals "),
        (r" ?%", " percent"),
        (r" ?@ ?", " at "),
        (r"#(?=\w)", "hashtag "),
        (r"\s#\s", " number "),
        (r" ?\u00d7 ?", " times "),
        (r" ?\u00f7 ?", " divided by "),
        (r" ?\u00b0", " degrees"),
        (r"\u00a7 ?", "section "),
        (r"\u00a9 ?", "copyright "),
        (r" < ", " less than "),
        (r" > ", " greater than "),
        (r"\b(and)/(or)\b", r"\1 \2"),
        (r"(?<=[A-Za-z])/(?=[A-Za-z])", " or "),
        (r"[*_|\\^`]+", " "),
    )
)
_DOMAIN = re.compile(
    r"(?<![\w.-])([A-Za-z][\w-]*)\.(com|org|net|edu|gov|io|co\.uk|ai)\b", re.IGNORECASE
)
_CITATION = re.compile(r"\[(?:\d+|[a-z]|citation needed|note \d+)(?:[,\u2013-]\s?\d+)*\]")


def _is_emoji(ch: str) -> bool:
    return unicodedata.category(ch) == "So" or 0x1F000 <= ord(ch) <= 0x1FAFF


def _tidy(text: str) -> str:
    if not text.isascii():
        text = "".join(" " if _is_emoji(ch) else ch for ch in text)
    text = " ".join(text.split())
    text = re.sub(r"\s+([,.;:!?)\]}])", r"\1", text)
    text = re.sub(r"([(\[{])\s+", r"\1", text)
    text = re.sub(r",(\s*,)+", ",", text)
    text = re.sub(r",(?=[A-Za-z])", ", ", text)
    text = re.sub(r"^[\s,;:]+", "", text)
    return text.strip()


def normalize_for_tts(text: str, language: str = "en") -> str:
    """The text as a voice should read it (English only; other languages: whitespace).

    English: cardinals (1,234; -5; 3.14 "three point one four"), ordinals (22nd),
    4-digit numbers 1100-2099 as years where the context says so (after "in",
    "since", a month, ...; at the start or end of a sentence): 1999 "nineteen
    ninety-nine", 2005 "two thousand five", 2010 "twenty ten", 1900 "nineteen
    hundred"; decades (1990s, '80s), money ($3.50, GBP 20, EUR 1,000, 5 cents,
    $2bn), percent, clock times (3:30 pm, 14:05), dates (2024-03-05, March 5,
    2024, 5 March 2024, 3/5/2024 read as US month/day unless the first number is
    over 12), phone numbers, fractions, ranges (10-20 "ten to twenty"), version
    numbers, units after numbers (km, kg, mph, degrees C, GB, ...; singular after
    exactly 1), abbreviations (Dr., Mr., Mrs., Ms., St., vs., etc., e.g., i.e.,
    No. 5, approx., Inc., ...), symbols (& + = % @ # ~), curly quotes, dashes,
    invisible characters, emoji and citation marks like [12]. Dotted initialisms
    (U.S., U.K.) are left as written: voices spell them. The result holds no
    digits. Markup, URLs and e-mail addresses are not handled (`check_text`
    rejects them).
    """
    if not _is_english(language):
        return " ".join(text.split())
    text = _clean_unicode(" ".join(text.split()))
    text = _CITATION.sub("", text)
    text = _DOMAIN.sub(lambda m: f"{m.group(1)} dot {m.group(2).replace('.', ' dot ')}", text)
    text = _PHONE.sub(_phone, text)
    text = _ISO_DATE.sub(_iso_date, text)
    text = _US_DATE.sub(_us_date, text)
    text = _MONTH_DAY.sub(lambda m: _named_date(m, day_first=False), text)
    text = _DAY_MONTH.sub(lambda m: _named_date(m, day_first=True), text)
    text = _MONTH_YEAR.sub(lambda m: _MONTH_NAMES[m.group("month").rstrip(".").lower()], text)
    text = _RANGE.sub(" to ", text)
    text = _CLOCK.sub(_time, text)
    text = _HOUR.sub(_time, text)
    text = _dashes(text)
    text = _abbreviations(text)
    text = _MONEY_PREFIX.sub(_money, text)
    text = _MONEY_SUFFIX.sub(_money, text)
    text = _PERCENT.sub(lambda m: _signed(m, _numeral(m.group("num")) + " percent"), text)
    text = _DIMENSION.sub(" by ", text)
    text = _UNIT.sub(_unit, text)
    text = _DECADE.sub(_decade, text)
    text = _ORDINAL.sub(lambda m: ordinal_to_words(int(m.group("num").replace(",", ""))), text)
    text = _FRACTION.sub(_fraction, text)
    text = _DOTTED_NUMBER.sub(lambda m: " point ".join(map(_numeral, m.group(0).split("."))), text)
    text = _LETTER_DIGIT.sub(" ", text)
    text = _NUMBER.sub(_number, text)
    for pattern, words in _SYMBOLS:
        text = pattern.sub(words, text)
    return _tidy(text)


# --------------------------------------------------------------------------- checks

_ALLOWED_CONTROLS = frozenset("\t\n")
_MARKUP: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a code fence", re.compile(r"```|~~~")),
    ("an HTML comment", re.compile(r"<!--|-->")),
    ("an HTML/XML tag", re.compile(r"</?[A-Za-z][\w:.-]*(?:\s[^<>]*)?/?>")),
    (
        "an HTML entity",
        re.compile(r"&(?:[A-Za-z][A-Za-z0-9]{1,31}|#\d{1,7}|#[xX][0-9A-Fa-f]{1,6});"),
    ),
    ("a wiki template", re.compile(r"\{\{|\}\}")),
    ("a wiki link", re.compile(r"\[\[|\]\]")),
    ("a wiki table", re.compile(r"\{\||\|\}")),
    ("wiki bold or italics", re.compile(r"'''?[^'\s][^']*'''?")),
    ("a wiki heading", re.compile(r"(?m)^[ \t]*==+[^=\n]+==+[ \t]*$")),
    ("a markdown link or image", re.compile(r"!?\[[^\[\]\n]*\]\([^()\s]*\)")),
    ("a markdown heading", re.compile(r"(?m)^#{1,6}\s")),
    ("a LaTeX command", re.compile(r"\\[A-Za-z]+\{")),
)
_URL = re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.[\w-]+\.\S+", re.IGNORECASE)
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# Letter-like signs whose Unicode name is not a script (units and maths).
_SIGNS = frozenset(_words("MICRO OHM ANGSTROM KELVIN"))


def _script(ch: str) -> str | None:
    script = char_script(ch)
    return None if script in _SIGNS else script


def _script_name(script: str) -> str:
    return "CJK" if script == "CJK" else script.title()


def _allowed_scripts(language: str) -> frozenset[str] | None:
    """Latin plus the language's script; None: Latin plus any one other script."""
    if _is_english(language):
        return frozenset({"LATIN"})
    known = language_script(language)
    return None if known is None else known[1] | {"LATIN"}


def _script_problem(text: str, language: str) -> Drop | None:
    allowed = _allowed_scripts(language)
    foreign: dict[str, str] = {}
    for ch in unicodedata.normalize("NFC", text):
        script = _script(ch)
        if script is None or script == "LATIN":
            continue
        if allowed is None or script not in allowed:
            foreign.setdefault(script, ch)
    if allowed is None and len(foreign) <= 1:
        return None
    if not foreign:
        return None
    found = ", ".join(f"{_script_name(s)} ({ch!r})" for s, ch in sorted(foreign.items()))
    if allowed is None:
        return Drop(
            Category.BAD_TEXT,
            f"mixes letters of several scripts ({found}); the {language!r} voice reads one",
            _excerpt(text),
        )
    names = " or ".join(sorted(_script_name(s) for s in allowed))
    return Drop(
        Category.BAD_TEXT,
        f"has letters outside the {names} script the {language!r} voice reads: {found}",
        _excerpt(text),
    )


def _content_problem(text: str, language: str) -> Drop | None:
    """Rules on what a text is made of (not its size)."""
    if not text.strip():
        return Drop(Category.BAD_TEXT, "the text is empty")
    invalid = uni.problem(text)
    if invalid is not None:
        return Drop(Category.BAD_TEXT, f"{invalid}; fix the input's encoding", _excerpt(text))
    for i, ch in enumerate(text):
        cat = unicodedata.category(ch)
        if (cat == "Cc" and ch not in _ALLOWED_CONTROLS) or cat in ("Cs", "Co"):
            kind = "a control" if cat == "Cc" else "an unprintable"
            return Drop(
                Category.BAD_TEXT,
                f"contains {kind} character U+{ord(ch):04X} at position {i}; clean the text",
                _excerpt(text),
            )
    if "\ufffd" in text:
        return Drop(
            Category.BAD_TEXT,
            "contains U+FFFD replacement characters: the text was decoded with the wrong encoding",
            _excerpt(text),
        )
    for what, pattern in _MARKUP:
        found = pattern.search(text)
        if found:
            return Drop(
                Category.BAD_TEXT,
                f"contains markup ({what}: {_excerpt(found.group(0), 40)!r}); strip markup "
                "before synthesis",
                _excerpt(text),
            )
    for what, pattern in (("a URL", _URL), ("an e-mail address", _EMAIL)):
        found = pattern.search(text)
        if found:
            return Drop(
                Category.BAD_TEXT,
                f"contains {what} ({_excerpt(found.group(0), 60)}), which a voice cannot read "
                "reliably; remove it or write it out",
                _excerpt(text),
            )
    if not any(unicodedata.category(ch)[0] in "LN" for ch in text):
        return Drop(
            Category.BAD_TEXT,
            "has no letters or digits to read (only symbols, punctuation or emoji)",
            _excerpt(text),
        )
    return _script_problem(text, language)


def _size_problem(
    text: str, *, min_chars: int, max_chars: int, min_words: int, max_words: int
) -> Drop | None:
    chars = len(text)
    words = word_count(text)
    if chars > max_chars:
        return Drop(
            Category.BAD_TEXT,
            f"is {chars} characters long, over synth.max_chars ({max_chars})",
            _excerpt(text),
        )
    if words > max_words:
        return Drop(
            Category.BAD_TEXT,
            f"has {words} words, over synth.max_words ({max_words})",
            _excerpt(text),
        )
    if chars < min_chars:
        return Drop(
            Category.BAD_TEXT,
            f"is {chars} characters long, under synth.min_chars ({min_chars})",
            _excerpt(text),
        )
    if words < min_words:
        return Drop(
            Category.BAD_TEXT,
            f"has {words} word{'s' if words != 1 else ''}, under synth.min_words ({min_words})",
            _excerpt(text),
        )
    return None


def check_text(
    text: str, *, min_chars: int, max_chars: int, min_words: int, max_words: int, language: str
) -> Drop | None:
    """The first reason `text` cannot be synthesised as it is, or None.

    Rejected (all `bad_text`): empty or whitespace-only; control characters other
    than tab and newline, private-use characters; strings that are not valid Unicode
    scalar sequences (lone surrogates, noncharacters); U+FFFD (wrong
    encoding); markup (HTML/XML tags, comments and entities, markdown links,
    images and headings, wiki links, templates, tables, headings and bold,
    LaTeX commands, code fences); URLs and e-mail addresses; no letters or digits
    (emoji or punctuation only); letters in a script the voice cannot read (for
    English: anything outside Latin; for a language in the script table: Latin
    plus that script; for an unknown language: Latin plus at most one other
    script); characters (len) or words (`filters.word_count`) outside the limits.
    """
    return _content_problem(text, language) or _size_problem(
        text, min_chars=min_chars, max_chars=max_chars, min_words=min_words, max_words=max_words
    )


# --------------------------------------------------------------------------- prepare

_CLAUSE_LEVELS = (
    re.compile(r"(?<=[;:]) +| ?(?:\u2014|\u2013|--+) ?| - "),
    re.compile(r"(?<=,)\s+"),
)
_CLAUSE_TRAIL = ",;:-\u2013\u2014 "


def _measure(raw: str, cfg: PrepConfig) -> tuple[int, int]:
    """(characters, words) of the spoken form of `raw`."""
    spoken = normalize_for_tts(raw, cfg.language)
    return len(spoken), word_count(spoken)


def _spans(raw: str, boundary: re.Pattern[str]) -> list[tuple[int, int]]:
    """(start, end) of the clauses between boundaries, punctuation kept with the clause."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in boundary.finditer(raw):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(raw)))
    return [(a, b) for a, b in spans if raw[a:b].strip(_CLAUSE_TRAIL)]


def _clauses(raw: str, cfg: PrepConfig, level: int = 0) -> list[str]:
    """`raw` cut at clause boundaries into pieces that fit, where it has boundaries.

    Clauses are cut at the strongest boundaries first (`; : --`, then `,`) and
    joined back greedily while the join fits (sizes add up the clauses' spoken
    forms), so pieces are as long as allowed. A piece is always a slice of `raw`
    (its own punctuation kept, a trailing clause mark dropped).
    """
    chars, words = _measure(raw, cfg)
    if level >= len(_CLAUSE_LEVELS) or (chars <= cfg.max_chars and words <= cfg.max_words):
        return [raw.strip(_CLAUSE_TRAIL) or raw]
    spans = _spans(raw, _CLAUSE_LEVELS[level])
    if len(spans) < 2:
        return _clauses(raw, cfg, level + 1)
    sizes = [_measure(raw[a:b], cfg) for a, b in spans]
    merged: list[str] = []
    (first, last), (chars, words) = spans[0], sizes[0]
    for (a, b), (c, w) in zip(spans[1:], sizes[1:], strict=True):
        joined = chars + (a - last) + c
        if joined <= cfg.max_chars and words + w <= cfg.max_words:
            last, chars, words = b, joined, words + w
        else:
            merged.append(raw[first:last])
            first, last, chars, words = a, b, c, w
    merged.append(raw[first:last])
    out: list[str] = []
    for piece in merged:
        out.extend(_clauses(piece.strip(_CLAUSE_TRAIL), cfg, level + 1))
    return out


def _piece(raw: str, cfg: PrepConfig) -> Prepared | Drop:
    spoken = normalize_for_tts(raw, cfg.language)
    if not any(unicodedata.category(ch)[0] in "LN" for ch in spoken):
        return Drop(
            Category.BAD_TEXT, "nothing left to read after TTS normalisation", _excerpt(raw)
        )
    problem = _size_problem(
        spoken,
        min_chars=cfg.min_chars,
        max_chars=cfg.max_chars,
        min_words=cfg.min_words,
        max_words=cfg.max_words,
    )
    if problem is None:
        return Prepared(raw, spoken)
    if len(spoken) > cfg.max_chars or word_count(spoken) > cfg.max_words:
        reason = problem.reason + ", with no clause boundary (; : , dash) left to split at"
        return Drop(problem.category, f"spoken form {reason}", _excerpt(raw))
    return Drop(problem.category, f"spoken form {problem.reason}", _excerpt(raw))


def prepare(text: str, cfg: PrepConfig) -> list[Prepared | Drop]:
    """One raw text -> its sentences (or clauses) ready for the voice, or why not.

    The list is in text order and never empty. Size limits apply to the spoken
    form (what the voice reads and what becomes the reference).
    """
    text = text.replace("\r\n", "\n")
    if not text.strip():
        return [Drop(Category.BAD_TEXT, "the text is empty")]
    sentences = split_sentences(text) if cfg.split_sentences else [" ".join(text.split())]
    out: list[Prepared | Drop] = []
    for sentence in sentences:
        problem = _content_problem(sentence, cfg.language)
        if problem is not None:
            out.append(problem)
            continue
        out.extend(_piece(piece, cfg) for piece in _clauses(sentence, cfg))
    return out or [Drop(Category.BAD_TEXT, "the text is empty")]
