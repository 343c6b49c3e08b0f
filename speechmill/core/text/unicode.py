"""Strings from outside: find and replace what is not a valid Unicode scalar sequence.

Python strings may hold lone surrogates (U+D800..U+DFFF): JSON's `"\\ud800"` escape
decodes to one, and file names decoded with `surrogateescape` carry undecodable
bytes as U+DC80..U+DCFF. Arrow, Parquet and UTF-8 cannot store them, so one such
string would fail a whole table write. Noncharacters (U+FDD0..U+FDEF and the last
two code points of every plane) are storable but mark broken or hostile input.

`problem` names what is wrong (for a `bad_text` reject); `clean` makes any string
storable by replacing each offending code point with U+FFFD, the Unicode
replacement character. Every string stored from outside (titles, authors, tags,
licence marks, reasons, details) goes through `clean`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REPLACEMENT = "\ufffd"

_BAD = re.compile(
    "[\ud800-\udfff\ufdd0-\ufdef"
    + "".join(f"{chr(p * 0x10000 + 0xFFFE)}{chr(p * 0x10000 + 0xFFFF)}" for p in range(17))
    + "]"
)


def problem(text: str) -> str | None:
    """Why `text` is not a valid sequence of Unicode scalar values, or None if it is."""
    m = _BAD.search(text)
    if m is None:
        return None
    cp = ord(m.group())
    kind = "a lone surrogate" if 0xD800 <= cp <= 0xDFFF else "a Unicode noncharacter"
    return f"contains {kind} (U+{cp:04X} at position {m.start()}); it is not valid text"


def clean(text: str) -> str:
    """`text` with every surrogate and noncharacter replaced by U+FFFD."""
    return _BAD.sub(REPLACEMENT, text)


def clean_opt(text: str | None) -> str | None:
    """`clean` for optional strings."""
    return None if text is None else clean(text)


def clean_all(texts: Iterable[str]) -> list[str]:
    """`clean` applied to each string."""
    return [clean(t) for t in texts]


def safe_repr(value: object, limit: int = 300) -> str:
    """An ASCII repr of any value, cut to `limit` characters: always storable."""
    r = ascii(value)
    return r if len(r) <= limit else r[: limit - 3] + "..."
