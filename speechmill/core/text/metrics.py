"""Error rates with substitution/deletion/insertion counts, and hallucination signals."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein


@dataclass(frozen=True)
class ErrorCounts:
    """Edit operations turning a reference into a hypothesis."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    ref_len: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """errors / reference length; 0 for an empty pair, 1 per insertion into nothing."""
        if self.ref_len == 0:
            return 0.0 if self.errors == 0 else float(self.errors)
        return self.errors / self.ref_len

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.ref_len + other.ref_len,
        )


def edit_counts(ref: Sequence[str], hyp: Sequence[str]) -> ErrorCounts:
    """Minimum edit counts between two token sequences."""
    s = d = i = 0
    for op in Levenshtein.editops(list(ref), list(hyp)):
        if op.tag == "replace":
            s += 1
        elif op.tag == "delete":
            d += 1
        else:
            i += 1
    return ErrorCounts(s, d, i, len(ref))


def word_counts(ref: str, hyp: str) -> ErrorCounts:
    return edit_counts(ref.split(), hyp.split())


def char_counts(ref: str, hyp: str) -> ErrorCounts:
    """Characters, with runs of whitespace collapsed to one space."""
    return edit_counts(list(" ".join(ref.split())), list(" ".join(hyp.split())))


def wer(ref: str, hyp: str) -> float:
    return word_counts(ref, hyp).rate


def cer(ref: str, hyp: str) -> float:
    return char_counts(ref, hyp).rate


def corpus_counts(pairs: Iterable[tuple[str, str]], *, chars: bool = False) -> ErrorCounts:
    total = ErrorCounts()
    for ref, hyp in pairs:
        total = total + (char_counts(ref, hyp) if chars else word_counts(ref, hyp))
    return total


def compression_ratio(text: str) -> float:
    """len(utf-8 bytes) / len(zlib-compressed bytes), as Whisper computes it.

    A lone surrogate (not encodable) counts as one replaced byte.
    """
    data = text.encode("utf-8", "replace")
    if not data:
        return 0.0
    return len(data) / len(zlib.compress(data))
