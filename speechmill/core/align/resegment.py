"""Resegmentation: aligned long-form words -> utterances cut at sentence ends and pauses.

`resegment(words, total_s=...)` splits a recording's aligned words into
utterances (`Cut`s), GigaSpeech 2 style:

* Cuts fall only between words. Every word is in exactly one utterance, and the
  utterances are in order and do not overlap.
* An utterance's audio runs from its first word's start - `pad_s` to its last
  word's end + `pad_s`, clamped to [0, total_s]. Where the pause between two
  utterances is shorter than 2 * `pad_s`, both cut in the middle of the pause
  instead, so no utterance reaches into its neighbour's words.
* Where to cut is one dynamic programme over the boundaries between words. It
  minimises, in this order: (1) the seconds by which utterances exceed `max_s`,
  (2) the seconds by which they fall short of `min_s`, and then (3) maximises the
  value of the cuts made:

  | boundary | value |
  |---|---|
  | sentence end (`is_sentence_end`) | 2 + pause (s, capped at 2) |
  | pause of at least `min_pause_s` | pause - 1 (only pauses over 1 s are cut unasked) |
  | any other gap between words | gap - 5 (only when needed to respect `max_s`) |

  So every sentence end is cut where both sides keep `min_s`; short sentences
  are joined to a neighbour (across the weaker boundary); a stretch longer than
  `max_s` is split at its longest pauses, or where it has none at the largest
  gaps between words. `max_s` is respected whenever the words allow it (no
  single word, with its padding, is longer).
* A pause of `HARD_PAUSE_S` (2 s) or more always ends an utterance: seconds of
  silence are never kept inside one. An utterance that cannot reach `min_s` (an
  isolated short sentence between long pauses, a recording holding one short
  word) is still emitted; the duration filter downstream decides what to drop,
  and it is recorded there as a reject, not lost here.

Words are expected in order and not overlapping (what the aligner returns), with
times inside [0, total_s].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from speechmill.core.align.alignment import AlignedWord

HARD_PAUSE_S = 2.0
SENTENCE_ENDS = ".?!\u2026\u3002\uff1f\uff01\u061f\u0964"  # ... and the CJK full stop,
# full-width ? and !, the Arabic question mark and the Devanagari danda
CLOSERS = "\"')]}\u201d\u2019\u00bb\u300d\u300f"  # and curly quotes, », CJK brackets
ABBREVIATIONS = frozenset(
    {"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "jr.", "sr.", "vs.", "mt.", "no.", "e.g.", "i.e."}
)
SENTENCE_VALUE = 2.0
PAUSE_CAP_S = 2.0
PAUSE_COST = 1.0
GAP_COST = 5.0

# (seconds over max_s, seconds under min_s, -value of the cuts)
Cost = tuple[float, float, float]


@dataclass(frozen=True)
class Cut:
    """One utterance: its audio span (s) and the inclusive range of word indices."""

    start_s: float
    end_s: float
    first_word: int
    last_word: int


def is_sentence_end(word: str) -> bool:
    """A word that ends a sentence: `.` `?` `!` `…` (or the CJK, Arabic and Devanagari
    marks) at the end, optionally followed by closing quotes or brackets; not a
    common abbreviation (`Mr.`, `Dr.`, `e.g.`, ...) or an initial (`J.`)."""
    w = word.rstrip(CLOSERS)
    if not w or w[-1] not in SENTENCE_ENDS:
        return False
    if w.lower() in ABBREVIATIONS:
        return False
    return not (len(w) == 2 and w[0].isalpha() and w[1] == ".")  # an initial: "J."


def _add(a: Cost, b: Cost) -> Cost:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def resegment(
    words: Sequence[AlignedWord],
    *,
    total_s: float,
    min_s: float = 2.0,
    max_s: float = 30.0,
    min_pause_s: float = 0.3,
    pad_s: float = 0.15,
) -> list[Cut]:
    """Cut aligned words into utterances (see the module docstring for the rules)."""
    n = len(words)
    if n == 0:
        return []
    total_s = max(0.0, float(total_s))
    starts = [w.start_s for w in words]
    ends = [w.end_s for w in words]

    def clamp(x: float) -> float:
        return min(max(x, 0.0), total_s)

    # utterance edges at each word, as first (cut_start) or last (cut_end) word
    cut_start = [clamp(starts[0] - pad_s)] + [0.0] * (n - 1)
    cut_end = [0.0] * (n - 1) + [clamp(ends[-1] + pad_s)]
    gaps = [starts[i + 1] - ends[i] for i in range(n - 1)]
    for i, gap in enumerate(gaps):
        if gap >= 2 * pad_s:
            cut_end[i] = clamp(ends[i] + pad_s)
            cut_start[i + 1] = clamp(starts[i + 1] - pad_s)
        else:
            mid = clamp((ends[i] + starts[i + 1]) / 2)
            cut_end[i] = cut_start[i + 1] = mid

    values = []
    for i, gap in enumerate(gaps):
        pause = min(max(gap, 0.0), PAUSE_CAP_S)
        if is_sentence_end(words[i].word):
            values.append(SENTENCE_VALUE + pause)
        elif gap >= min_pause_s:
            values.append(pause - PAUSE_COST)
        else:
            values.append(min(pause, min_pause_s) - GAP_COST)

    cuts: list[Cut] = []
    block_start = 0
    for i in range(n):
        if i == n - 1 or gaps[i] >= HARD_PAUSE_S:
            for first, last in _segment_block(
                block_start, i, cut_start, cut_end, values, min_s, max_s
            ):
                cuts.append(Cut(cut_start[first], cut_end[last], first, last))
            block_start = i + 1
    return cuts


def _segment_block(
    lo: int,
    hi: int,
    cut_start: Sequence[float],
    cut_end: Sequence[float],
    values: Sequence[float],
    min_s: float,
    max_s: float,
) -> list[tuple[int, int]]:
    """Best split of words lo..hi (inclusive) into (first, last) word ranges."""
    # best[k]: cost of words lo..lo+k-1 split into utterances; back[k]: start of the last one
    size = hi - lo + 1
    best: list[Cost | None] = [None] * (size + 1)
    back = [0] * (size + 1)
    best[0] = (0.0, 0.0, 0.0)
    for k in range(1, size + 1):
        last = lo + k - 1
        choice: tuple[Cost, int] | None = None
        for j in range(k - 1, -1, -1):  # the utterance is words lo+j .. last
            first = lo + j
            prev = best[j]
            assert prev is not None
            d = cut_end[last] - cut_start[first]
            cost: Cost = (max(0.0, d - max_s), max(0.0, min_s - d), 0.0)
            if j > 0:
                cost = (cost[0], cost[1], -values[first - 1])
            total = _add(prev, cost)
            if choice is None or total < choice[0]:
                choice = (total, j)
            if d > max_s:
                break  # the shortest over-long choice is the last one tried
        assert choice is not None
        best[k], back[k] = choice
    out: list[tuple[int, int]] = []
    k = size
    while k > 0:
        j = back[k]
        out.append((lo + j, lo + k - 1))
        k = j
    out.reverse()
    return out
