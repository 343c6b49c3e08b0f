"""CTC forced alignment in NumPy: the Viterbi path through blank-interleaved targets.

Given per-frame log-probabilities `log_probs[T, V]` of a CTC model and a target
token sequence `y_1..y_L` (no blanks), the alignment is the most probable
frame-level path that collapses to `y` (merge repeats, then drop blanks). The
trellis runs over the extended sequence `blank, y_1, blank, y_2, ..., y_L, blank`
(S = 2L + 1 states): a state stays, steps to the next state, or skips the blank
between two *different* tokens (Graves et al. 2006; the same recursion as
torchaudio's `forced_align` and Kürzinger et al.'s CTC segmentation, with max in
place of sum). Two equal neighbouring tokens need a blank frame between them, so
the shortest feasible input has `L + repeats` frames.

Kept pure (NumPy only) so the alignment logic is tested without torch; the torch
backend (`speechmill.backends.ctc`) only computes `log_probs`.
"""

from __future__ import annotations

import itertools
import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from speechmill.core.align.alignment import AlignedWord, Alignment, finish, has_content

__all__ = [
    "TokenSpan",
    "align_words",
    "attach_punctuation",
    "ctc_forced_align",
    "fitting_prefix",
    "group_spans",
    "merge_tokens",
    "min_frames",
    "place_words",
    "tokenize_words",
    "words_from_spans",
]


@dataclass(frozen=True)
class TokenSpan:
    """One emitted token: frames `[start_frame, end_frame)`, mean log-prob over them."""

    token: int
    start_frame: int
    end_frame: int
    score: float

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame


def min_frames(targets: Sequence[int]) -> int:
    """Fewest frames a CTC path for `targets` needs: one per token, one blank per repeat."""
    repeats = sum(1 for a, b in itertools.pairwise(targets) if a == b)
    return len(targets) + repeats


def ctc_forced_align(
    log_probs: npt.NDArray[np.floating[Any]],
    targets: Sequence[int],
    blank: int = 0,
    *,
    free_end: bool = False,
) -> tuple[list[int], list[float]]:
    """The Viterbi CTC path: (token per frame, blanks included; log-prob of each frame).

    With `free_end` the path may stop anywhere in the targets: it is the best path
    for some prefix of them (for a window whose text runs on past its end); the
    caller reads how far it got from the path.

    Raises ValueError for a malformed input (not 2-D, no frames, a target out of
    range or equal to `blank`), for too few frames (`T < min_frames(targets)`,
    unless `free_end`), and when no path has a finite score (e.g. a needed token
    has log-prob -inf everywhere). Ties go to the path that stays longest in earlier
    states, and with `free_end` to the longer prefix (deterministic).
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.ndim != 2:
        raise ValueError(f"log_probs must be 2-D [frames, vocab], got shape {lp.shape}")
    n_frames, vocab = lp.shape
    if not 0 <= blank < vocab:
        raise ValueError(f"blank {blank} is outside the vocabulary of size {vocab}")
    tg = [int(x) for x in targets]
    for tok in tg:
        if tok == blank:
            raise ValueError(f"targets contain the blank token {blank}")
        if not 0 <= tok < vocab:
            raise ValueError(f"target {tok} is outside the vocabulary of size {vocab}")
    need = min_frames(tg)
    if n_frames == 0 or (n_frames < need and not free_end):
        raise ValueError(
            f"{n_frames} frames are too few for {len(tg)} targets "
            f"({need - len(tg)} repeats need a blank between them): at least {max(need, 1)}"
        )
    if not tg:
        return [blank] * n_frames, lp[:, blank].tolist()
    if free_end:  # tokens past what the frames can hold are out of reach anyway
        tg = tg[: fitting_prefix([[tok] for tok in tg], n_frames)]

    n_states = 2 * len(tg) + 1
    ext = np.full(n_states, blank, dtype=np.int64)
    ext[1::2] = tg
    # Skipping the blank at s-1 is allowed into a token that differs from the one at s-2.
    can_skip = np.zeros(n_states, dtype=bool)
    can_skip[3::2] = ext[3::2] != ext[1:-2:2]

    neg = -np.inf
    alpha = np.full(n_states, neg)
    alpha[:2] = lp[0, ext[:2]]
    back = np.zeros((n_frames, n_states), dtype=np.int8)  # 0 stay, 1 step, 2 skip
    cand = np.full((3, n_states), neg)
    cols = np.arange(n_states)
    for t in range(1, n_frames):
        cand[0] = alpha
        cand[1, 1:] = alpha[:-1]
        cand[2, 2:] = alpha[:-2]
        cand[2, ~can_skip] = neg
        choice = np.argmax(cand, axis=0)
        back[t] = choice
        alpha = cand[choice, cols] + lp[t, ext]

    if free_end:
        last = n_states - 1 - int(np.argmax(alpha[::-1]))
    else:
        last = n_states - 1 if alpha[-1] >= alpha[-2] else n_states - 2
    if not np.isfinite(alpha[last]):
        raise ValueError("no CTC path with a finite score: a target is impossible in these frames")
    path = [0] * n_frames
    s = last
    for t in range(n_frames - 1, -1, -1):
        path[t] = int(ext[s])
        s -= int(back[t, s])
    scores = lp[np.arange(n_frames), path].tolist()
    return path, scores


def merge_tokens(path: Sequence[int], scores: Sequence[float], blank: int = 0) -> list[TokenSpan]:
    """Runs of the same non-blank token in a frame path -> spans (blank frames dropped)."""
    if len(path) != len(scores):
        raise ValueError(f"path has {len(path)} frames but scores has {len(scores)}")
    spans: list[TokenSpan] = []
    t = 0
    n = len(path)
    while t < n:
        tok = path[t]
        end = t + 1
        while end < n and path[end] == tok:
            end += 1
        if tok != blank:
            spans.append(TokenSpan(int(tok), t, end, math.fsum(scores[t:end]) / (end - t)))
        t = end
    return spans


def group_spans(spans: Sequence[TokenSpan], lengths: Sequence[int]) -> list[list[TokenSpan]]:
    """Split token spans into consecutive groups of the given sizes (tokens per word)."""
    if sum(lengths) != len(spans):
        raise ValueError(f"{len(spans)} spans cannot be split into groups of {list(lengths)}")
    out: list[list[TokenSpan]] = []
    i = 0
    for n in lengths:
        if n < 0:
            raise ValueError("group lengths must be >= 0")
        out.append(list(spans[i : i + n]))
        i += n
    return out


def _word(word: str, spans: Sequence[TokenSpan], frame_s: float, offset_s: float) -> AlignedWord:
    frames = sum(sp.frames for sp in spans)
    mean = math.fsum(sp.score * sp.frames for sp in spans) / frames
    return AlignedWord(
        word,
        offset_s + spans[0].start_frame * frame_s,
        offset_s + spans[-1].end_frame * frame_s,
        min(1.0, math.exp(mean)),
    )


def words_from_spans(
    words: Sequence[str],
    spans_per_word: Sequence[Sequence[TokenSpan]],
    frame_s: float,
    offset_s: float = 0.0,
) -> tuple[AlignedWord, ...]:
    """One AlignedWord per word with spans (a word with none is left out: unaligned).

    A word runs from its first token's first frame to its last token's end; its
    score is exp(mean log-prob over its token frames), in (0, 1].
    """
    if len(words) != len(spans_per_word):
        raise ValueError(f"{len(words)} words but {len(spans_per_word)} span groups")
    return tuple(
        _word(w, spans, frame_s, offset_s)
        for w, spans in zip(words, spans_per_word, strict=True)
        if spans
    )


def tokenize_words(
    words: Sequence[str], dictionary: Mapping[str, int], blank: int = 0, vocab: int | None = None
) -> list[list[int]]:
    """Token ids of each word for a character-level CTC model (an empty list: unalignable).

    Lower-cased, accents stripped (NFKD), typographic apostrophes as `'`; a character
    becomes a token if it is a letter, digit or apostrophe, the dictionary has it, and
    its id is neither the blank nor outside the model's `vocab`. Other characters
    (punctuation, and letters the model lacks) are dropped.
    """
    out: list[list[int]] = []
    for word in words:
        folded = unicodedata.normalize("NFKD", word.lower().replace("\u2019", "'"))
        ids = []
        for c in folded:
            if not (c.isalnum() or c == "'"):
                continue
            tok = dictionary.get(c)
            if tok is None or tok == blank or (vocab is not None and tok >= vocab):
                continue
            ids.append(tok)
        out.append(ids)
    return out


def fitting_prefix(word_tokens: Sequence[Sequence[int]], n_frames: int) -> int:
    """How many leading words fit `n_frames` (CTC needs a frame per token, a blank per repeat)."""
    need = 0
    prev: int | None = None
    for i, toks in enumerate(word_tokens):
        for tok in toks:
            need += 2 if tok == prev else 1
            prev = tok
        if need > n_frames:
            return i
    return len(word_tokens)


def place_words(
    log_probs: npt.NDArray[np.floating[Any]],
    words: Sequence[str],
    word_tokens: Sequence[Sequence[int]],
    frame_s: float,
    blank: int = 0,
    offset_s: float = 0.0,
    *,
    free_end: bool = False,
) -> list[AlignedWord | None]:
    """One result per word: its span from the Viterbi path, or None when it has no tokens,
    or comes after the longest prefix of words that fits the frames, or no path exists.
    With `free_end` the path may stop before the last words (they get None), as for a
    window of long audio that was given more words than it holds.

    A word without letters or digits (punctuation: `—`, `&`) that has no tokens gets the
    end of the word right before it (or the start of the one right after) as a
    zero-length span and that word's score: it is part of its neighbour, not an
    unaligned word (`attach_punctuation`).
    """
    if len(words) != len(word_tokens):
        raise ValueError(f"{len(words)} words but {len(word_tokens)} token lists")
    lp = np.asarray(log_probs)
    n = fitting_prefix(word_tokens, lp.shape[0] if lp.ndim == 2 else 0)
    placed: list[AlignedWord | None] = [None] * len(words)
    flat = [tok for toks in word_tokens[:n] for tok in toks]
    if flat:
        try:
            path, scores = ctc_forced_align(lp, flat, blank, free_end=free_end)
        except ValueError:
            path = []
        if path:
            spans = merge_tokens(path, scores, blank)
            at = 0
            for i, toks in enumerate(word_tokens[:n]):
                if not toks:
                    continue
                if at + len(toks) > len(spans):  # the path stopped before this word ended
                    break
                placed[i] = _word(words[i], spans[at : at + len(toks)], frame_s, offset_s)
                at += len(toks)
    return attach_punctuation(words, placed)


def attach_punctuation(
    words: Sequence[str], placed: Sequence[AlignedWord | None]
) -> list[AlignedWord | None]:
    """Unplaced punctuation-only words take a zero-length span at the edge of the word
    right before them (or, failing that, right after them), and its score."""
    out = list(placed)
    loose = [i for i, w in enumerate(words) if out[i] is None and not has_content(w)]
    for i in loose:
        before = out[i - 1] if i > 0 else None
        if before is not None:
            out[i] = AlignedWord(words[i], before.end_s, before.end_s, before.score)
    for i in reversed(loose):
        after = out[i + 1] if i + 1 < len(out) else None
        if out[i] is None and after is not None:
            out[i] = AlignedWord(words[i], after.start_s, after.start_s, after.score)
    return out


def align_words(
    log_probs: npt.NDArray[np.floating[Any]],
    words: Sequence[str],
    word_tokens: Sequence[Sequence[int]],
    frame_s: float,
    blank: int = 0,
    duration_s: float | None = None,
) -> Alignment:
    """Force-align words (each a token sequence) to all frames in one Viterbi pass.

    As every aligner's result: one AlignedWord per input word, in order; words that
    cannot be placed (no tokens, or past what fits the frames) get spans interpolated
    between their neighbours with score 0 and are counted in `unaligned`; `score` is
    the mean word score. `duration_s` defaults to frames x `frame_s`.
    """
    placed = place_words(log_probs, words, word_tokens, frame_s, blank)
    if duration_s is None:
        duration_s = np.asarray(log_probs).shape[0] * frame_s
    return finish(words, placed, duration_s)
