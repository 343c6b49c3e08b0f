"""Forced alignment of a known text to audio: word timings, long-form windows, pauses.

Pure helpers for the align stage (the model calls live in `speechmill.backends.align`):

* **Word timings from Whisper cross-attention** (`token_word_timings`,
  `split_on_spaces`, `to_input_words`): CTranslate2's Whisper `align` returns the
  DTW path through the cross-attention of the alignment heads as
  (text-token index, time index) pairs, 50 time steps per second of audio, and the
  probability of every text token. Word timings follow faster-whisper's
  `WhisperModel.find_alignment`: the text tokens are grouped into words as its
  `Tokenizer.split_to_word_tokens` does, a token's time is the first time step the
  path reaches it (the "jump time"), a word runs from the jump time of its first
  token to that of the next word's first token, and its probability is the mean of
  its tokens' probabilities. Two deliberate differences, both for pauses: a
  subword made only of punctuation (`."`, `,"`, `…`, `”`) is a word of its own
  (faster-whisper only splits off single ASCII punctuation characters), and an
  input word's span is that of its non-punctuation pieces. The DTW path sits on
  the sentence-final punctuation token while the speaker pauses, so leaving it out
  of the word's span turns the pause into a gap between words.
* **Mapping back to the input words** (`to_input_words`): the aligner aligns the
  input words joined by single spaces and returns exactly one result per input
  (whitespace-separated) word, with the word string as given, however the
  tokenizer split it (numbers, hyphens, apostrophes, punctuation, any script).
* **Long-form windows** (`align_long_form`): a text of any length is aligned to
  audio of any length in windows of at most `window_s` seconds (Whisper's 30 s)
  that overlap by `overlap_s`. Each window gets the next words (as many as the
  speech rate so far says could fit, generously: surplus words are squeezed into
  the end of the window and dropped, while too few words let the last one swallow
  the untranscribed rest); the words that end before `window_end - overlap_s`
  are kept (all of them in the last window) and the next window starts at the
  end of the last kept word, less `margin_s`. It always terminates and places
  every word: words no window could place get a span interpolated between their
  neighbours and score 0.0 (`Alignment.unaligned` counts them).
* **Silence snapping** (`silent_runs`, `snap_to_silence`): Whisper's alignment
  has no gaps between words (a word ends where the next begins; a pause is
  absorbed by a punctuation token or a neighbouring word), lags the audio by
  about 0.03-0.15 s, starts the first word of a window at the window start and
  can run the last one into trailing silence. Word edges next to a pause (a run
  of frames within 3 dB of the noise floor, at least 0.15 s long) are moved to
  the edges of that pause, so pauses show up as gaps between words, which is
  what resegmentation cuts at. Ends move back at most 0.1 s before Whisper's
  end: under noise the fading last syllable looks like silence to an energy
  detector, and Whisper hears it (`benchmarks/align_quality.py --snr-db 20`).
"""

from __future__ import annotations

import bisect
import difflib
import math
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

TOKENS_PER_SECOND = 50.0  # Whisper's encoder: one time step per 20 ms of audio
MAX_WINDOW_S = 30.0
MARGIN_S = 0.25  # the next window starts this much before the last kept word ends
EPS = 1e-6


@dataclass(frozen=True)
class AlignedWord:
    """One input word with its span, in seconds relative to the aligned audio."""

    word: str
    start_s: float
    end_s: float
    score: float


@dataclass(frozen=True)
class Alignment:
    """Every input word in order, each with a span (unplaced ones interpolated, score 0)."""

    words: tuple[AlignedWord, ...]
    unaligned: int  # words that could not be placed (spans interpolated)
    score: float  # mean word score (0..1); 0.0 for an empty text


def empty_alignment() -> Alignment:
    return Alignment((), 0, 0.0)


# ----------------------------------------------------------------- characters
def is_punctuation(text: str) -> bool:
    """Non-empty and made only of punctuation / symbol characters (no letters or digits)."""
    text = text.strip()
    return bool(text) and all(unicodedata.category(c)[0] in "PS" for c in text)


def has_content(text: str) -> bool:
    """Holds a letter, digit or combining mark (something that is spoken)."""
    return any(unicodedata.category(c)[0] in "LNM" for c in text)


def split_on_spaces(
    subwords: Sequence[str], subword_tokens: Sequence[Sequence[int]], eot: int
) -> tuple[list[str], list[list[int]]]:
    """faster-whisper's `Tokenizer.split_tokens_on_spaces`, given its unicode split.

    A subword starts a new word when it is a special token, starts with a space,
    or is punctuation only; otherwise it joins the previous word. Punctuation only
    here means every character is punctuation or a symbol, so multi-character
    pieces such as `."` and non-ASCII ones such as `…` also stand alone.
    """
    words: list[str] = []
    word_tokens: list[list[int]] = []
    for subword, tokens in zip(subwords, subword_tokens, strict=True):
        special = bool(tokens) and tokens[0] >= eot
        if special or subword.startswith(" ") or is_punctuation(subword) or not words:
            words.append(subword)
            word_tokens.append(list(tokens))
        else:
            words[-1] += subword
            word_tokens[-1].extend(tokens)
    return words, word_tokens


# ----------------------------------------------------------------- DTW -> words
@dataclass(frozen=True)
class TokenWord:
    """A word as the tokenizer splits the text, with faster-whisper's timing."""

    text: str
    n_tokens: int
    start_s: float
    end_s: float
    probability: float


def jump_times(
    alignments: Sequence[tuple[int, int]],
    n_tokens: int,
    tokens_per_second: float = TOKENS_PER_SECOND,
) -> npt.NDArray[np.float64]:
    """Seconds at which the DTW path first reaches each text token (`n_tokens` values).

    On a well-formed path (text indices 0, 1, ... without holes, as CTranslate2
    returns) this is faster-whisper's `time_indices[jumps] / tokens_per_second`.
    A token the path skips takes the time of the next token it reaches.
    """
    out = np.full(n_tokens, np.nan, dtype=np.float64)
    for text_index, time_index in alignments:
        k = int(text_index)
        if 0 <= k < n_tokens and np.isnan(out[k]):
            out[k] = float(time_index) / tokens_per_second
    last = np.nan
    for k in range(n_tokens - 1, -1, -1):  # holes take the next known time
        if np.isnan(out[k]):
            out[k] = last
        else:
            last = out[k]
    first_known = 0.0
    for k in range(n_tokens):  # a missing tail takes the last known time
        if np.isnan(out[k]):
            out[k] = first_known
        else:
            first_known = out[k]
    return np.maximum.accumulate(out) if n_tokens else out


def token_word_timings(
    words: Sequence[str],
    word_tokens: Sequence[Sequence[int]],
    alignments: Sequence[tuple[int, int]],
    text_token_probs: Sequence[float],
    tokens_per_second: float = TOKENS_PER_SECOND,
) -> list[TokenWord]:
    """faster-whisper's `find_alignment` for one text.

    `words` / `word_tokens` are the tokenizer's split of the text tokens followed
    by end-of-text (so the last entry is the end-of-text "word", which gets no
    timing). Returns one `TokenWord` per word before end-of-text.
    """
    if len(word_tokens) <= 1:
        return []
    sizes = [len(t) for t in word_tokens]
    n_tokens = sum(sizes)
    times = jump_times(alignments, n_tokens, tokens_per_second)
    bounds = np.concatenate([[0], np.cumsum(sizes[:-1])]).astype(np.int64)
    probs = np.asarray(text_token_probs, dtype=np.float64)
    out: list[TokenWord] = []
    for w in range(len(words) - 1):
        i, j = int(bounds[w]), int(bounds[w + 1])
        p = probs[i:j]
        out.append(
            TokenWord(
                text=words[w],
                n_tokens=j - i,
                start_s=float(times[i]),
                end_s=float(times[j]),
                probability=float(np.mean(p)) if p.size else 0.0,
            )
        )
    return out


def joined_text(words: Sequence[str]) -> str:
    """The text the aligner sees: the words joined by single spaces, after a space."""
    return " " + " ".join(words)


def _char_map(decoded: str, original: str) -> list[int]:
    """Offset in `original` of every offset 0..len(decoded) in `decoded`."""
    if decoded == original:
        return list(range(len(decoded) + 1))
    pos = [0] * (len(decoded) + 1)
    matcher = difflib.SequenceMatcher(None, decoded, original, autojunk=False)
    for _tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for k in range(i1, i2 + 1):
            pos[k] = j1 + ((k - i1) * (j2 - j1)) // max(1, i2 - i1)
    return pos


def to_input_words(
    input_words: Sequence[str], token_words: Sequence[TokenWord]
) -> list[AlignedWord | None]:
    """One result per input word (None: no token of the text landed on it).

    The token words' texts, concatenated, are the decoded `joined_text(input_words)`;
    each token word belongs to the input word its characters fall in. An input
    word's span is that of its pieces that hold letters or digits (all of its
    pieces if none does), its score the token-weighted mean probability of all of
    its pieces.
    """
    original = joined_text(input_words)
    decoded = "".join(t.text for t in token_words)
    pos = _char_map(decoded, original)
    starts: list[int] = []
    at = 1
    for w in input_words:
        starts.append(at)
        at += len(w) + 1
    pieces: list[list[TokenWord]] = [[] for _ in input_words]
    offset = 0
    for tw in token_words:
        a, b = pos[offset], pos[offset + len(tw.text)]
        offset += len(tw.text)
        # the input words whose characters [s, s + len) overlap [a, b)
        lo = max(0, bisect.bisect_right(starts, a) - 1)
        for k in range(lo, len(input_words)):
            s = starts[k]
            if s >= b:
                break
            if s + len(input_words[k]) > a:
                pieces[k].append(tw)
    out: list[AlignedWord | None] = []
    for word, ps in zip(input_words, pieces, strict=True):
        if not ps:
            out.append(None)
            continue
        core = [p for p in ps if has_content(p.text)] or ps
        n = sum(p.n_tokens for p in ps)
        score = sum(p.probability * p.n_tokens for p in ps) / n if n else 0.0
        out.append(
            AlignedWord(
                word=word,
                start_s=min(p.start_s for p in core),
                end_s=max(p.end_s for p in core),
                score=float(min(1.0, max(0.0, score))),
            )
        )
    return out


# ----------------------------------------------------------------- long form
# Align `words` to the audio [start_s, end_s): one result per word, times relative
# to start_s, None for a word the aligner could not place.
WindowAligner = Callable[[float, float, Sequence[str]], Sequence["AlignedWord | None"]]


def _clean_window(
    results: Sequence[AlignedWord | None], n: int, length_s: float
) -> list[AlignedWord | None]:
    """Exactly n results, inside [0, length_s], in order and not overlapping."""
    out: list[AlignedWord | None] = list(results[:n]) + [None] * max(0, n - len(results))
    prev = 0.0
    for i, r in enumerate(out):
        if r is None:
            continue
        if not (math.isfinite(r.start_s) and math.isfinite(r.end_s)):
            out[i] = None
            continue
        start = min(max(r.start_s, prev, 0.0), length_s)
        end = min(max(r.end_s, start), length_s)
        score = r.score if math.isfinite(r.score) else 0.0
        out[i] = replace(r, start_s=start, end_s=end, score=min(1.0, max(0.0, score)))
        prev = end
    return out


def _speech_rate(placed: Sequence[AlignedWord | None], pos: int) -> float | None:
    """Words per second over the first `pos` words (None until there are enough)."""
    first = next((w for w in placed[:pos] if w is not None), None)
    last = next((w for w in reversed(placed[:pos]) if w is not None), None)
    if pos < 5 or first is None or last is None:
        return None
    span = last.end_s - first.start_s
    return pos / span if span > 1.0 else None


def align_long_form(
    words: Sequence[str],
    duration_s: float,
    align_window: WindowAligner,
    *,
    window_s: float = MAX_WINDOW_S,
    overlap_s: float = 5.0,
    margin_s: float = MARGIN_S,
    initial_rate: float = 4.0,
    slack: float = 1.5,
    min_window_s: float = 0.2,
) -> Alignment:
    """Align `words` to `duration_s` seconds of audio in overlapping windows.

    `align_window(start_s, end_s, words)` aligns some words to one window of the
    audio (at most `window_s` long). See the module docstring for the plan; the
    result has one `AlignedWord` per input word, in order, with
    non-decreasing, non-overlapping spans inside [0, duration_s].

    Window sizing: `initial_rate` words per second (fast speech) until five words
    are placed, then the measured rate; times `slack`, plus four. A window that
    was given fewer words than remain never keeps its last placed word (it may
    have absorbed audio of words it was not given). If nothing is left to keep:
    when the words given all ended before the overlap, the window is tried again
    with twice the words; otherwise (the next word does not end before the
    overlap: music, silence or untranscribed speech first) the window moves on by
    `window_s - overlap_s`.
    """
    if not 0 < window_s <= MAX_WINDOW_S + EPS:
        raise ValueError(f"window_s must be in (0, {MAX_WINDOW_S}], got {window_s}")
    if not 0 <= overlap_s < window_s - margin_s:
        raise ValueError(f"overlap_s must be in [0, window_s - margin_s), got {overlap_s}")
    n = len(words)
    if n == 0:
        return empty_alignment()
    duration_s = max(0.0, float(duration_s))
    placed: list[AlignedWord | None] = [None] * n
    pos = 0
    t = 0.0
    while pos < n and duration_s - t >= min_window_s:
        w_end = min(t + window_s, duration_s)
        final = w_end >= duration_s - EPS
        length = w_end - t
        rate = _speech_rate(placed, pos) or initial_rate
        k = n - pos if final else min(n - pos, math.ceil(length * rate * slack) + 4)
        while True:
            given = list(words[pos : pos + k])
            res = _clean_window(align_window(t, w_end, given), k, length)
            complete = pos + k == n and res[-1] is not None
            # in a window that is not the last, a word must end strictly before the
            # overlap (words squeezed against the window's end never count)
            cutoff = length + EPS if final else length - overlap_s - EPS
            keepable = [i for i, r in enumerate(res) if r is not None and r.end_s < cutoff]
            if not complete and keepable:
                last_placed = max(i for i, r in enumerate(res) if r is not None)
                keepable = [i for i in keepable if i != last_placed]
            if keepable:
                j = keepable[-1]
                for i in range(j + 1):
                    r = res[i]
                    if r is not None:
                        placed[pos + i] = replace(r, start_s=r.start_s + t, end_s=r.end_s + t)
                pos += j + 1
                last = res[j]
                assert last is not None
                t = max(t, last.end_s + t - margin_s)
                break
            ends = [r.end_s for r in res if r is not None]
            if ends and ends[-1] < cutoff and pos + k < n:
                k = min(n - pos, 2 * k)  # the words given ran out inside the window
                continue
            if not final:
                t += window_s - overlap_s
            else:
                t = duration_s  # nothing more can be placed: interpolate the rest
            break
    return finish(words, placed, duration_s)


def finish(
    words: Sequence[str], placed: Sequence[AlignedWord | None], duration_s: float
) -> Alignment:
    """Interpolate unplaced words between their neighbours; clamp; make monotonic."""
    n = len(words)
    out: list[AlignedWord] = []
    unaligned = 0
    i = 0
    prev_end = 0.0
    while i < n:
        r = placed[i]
        if r is not None:
            start = min(max(r.start_s, prev_end, 0.0), duration_s)
            end = min(max(r.end_s, start), duration_s)
            out.append(AlignedWord(words[i], start, end, r.score))
            prev_end = end
            i += 1
            continue
        j = i
        while j < n and placed[j] is None:
            j += 1
        nxt = placed[j] if j < n else None
        right = duration_s if nxt is None else min(max(nxt.start_s, prev_end), duration_s)
        right = max(right, prev_end)
        weights = [len(words[k]) + 1 for k in range(i, j)]
        total = float(sum(weights))
        at = prev_end
        for k, wgt in zip(range(i, j), weights, strict=True):
            end = min(at + (right - prev_end) * wgt / total, right)
            out.append(AlignedWord(words[k], at, end, 0.0))
            at = end
        unaligned += j - i
        prev_end = at
        i = j
    score = sum(w.score for w in out) / n if n else 0.0
    return Alignment(tuple(out), unaligned, float(score))


# ----------------------------------------------------------------- silence
def frame_levels_db(
    audio: npt.NDArray[np.floating], sample_rate: int, frame_s: float = 0.01
) -> npt.NDArray[np.float64]:
    """RMS level (dBFS, floored at -100) of consecutive frames of `frame_s` seconds."""
    hop = max(1, round(frame_s * sample_rate))
    x = np.asarray(audio, dtype=np.float64).ravel()
    n = x.size // hop
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    frames = x[: n * hop].reshape(n, hop)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    return np.asarray(np.maximum(20.0 * np.log10(rms + 1e-12), -100.0), dtype=np.float64)


def silent_runs(
    audio: npt.NDArray[np.floating],
    sample_rate: int,
    *,
    frame_s: float = 0.01,
    min_silence_s: float = 0.15,
    above_floor_db: float = 3.0,
    floor_percentile: float = 5.0,
    lowest_floor_db: float = -70.0,
    min_range_db: float = 15.0,
) -> list[tuple[float, float]]:
    """Runs of quiet frames, (start_s, end_s), at least `min_silence_s` long.

    A frame is quiet when its level is less than `above_floor_db` above the noise
    floor: the `floor_percentile`-th percentile of the frame levels, but at least
    `lowest_floor_db` (so digital silence does not make every faint decay speech).
    Audio whose 99th-percentile level is less than `min_range_db` above the floor
    (no pauses, or all noise) has no quiet runs. The runs are meant as the cores
    of pauses: low threshold, long minimum, so noisy speech does not make them.
    """
    levels = frame_levels_db(audio, sample_rate, frame_s)
    if levels.size == 0:
        return []
    floor = max(float(np.percentile(levels, floor_percentile)), lowest_floor_db)
    peak = float(np.percentile(levels, 99.0))
    if peak - floor < min_range_db:
        return []
    quiet = levels < floor + above_floor_db
    hop_s = max(1, round(frame_s * sample_rate)) / sample_rate
    runs: list[tuple[float, float]] = []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    for a, b in zip(edges[0::2], edges[1::2], strict=True):
        if (b - a) * hop_s >= min_silence_s - EPS:
            runs.append((float(a * hop_s), float(b * hop_s)))
    return runs


def snap_to_silence(
    words: Sequence[AlignedWord],
    runs: Sequence[tuple[float, float]],
    *,
    tolerance_s: float = 0.3,
    min_word_s: float = 0.02,
    end_pullback_s: float = 0.1,
    end_into_pause_s: float = 0.3,
) -> tuple[AlignedWord, ...]:
    """Move word edges onto the quiet runs (pauses) next to them.

    * Between two words: the longest quiet run that overlaps the stretch from
      `tolerance_s` before the first word's end to `tolerance_s` after the second
      word's start (Whisper's times lag), and leaves each word at least
      `min_word_s`, becomes the gap between them.
    * A word that starts inside a quiet run starts where it ends (leading
      silence, or a window's first word that absorbed the pause before it).
    * A word that ends inside a quiet run ends near where it starts.

    Starts go to the end of the run: onsets are sharp. Ends go to the start of the
    run, but never more than `end_pullback_s` before Whisper's own end (which
    lags by about that much) nor more than `end_into_pause_s` after the run
    starts: the fading last syllable before a pause is often quieter than the
    noise floor + a few dB, and trusting energy alone there would clip it, while
    Whisper can put a word's end deep into a following pause.

    Order, non-overlap, word strings and scores are kept.
    """
    if not words or not runs:
        return tuple(words)
    ordered = sorted(runs)
    run_starts = [a for a, _ in ordered]
    starts = [w.start_s for w in words]
    ends = [w.end_s for w in words]

    def overlapping(lo: float, hi: float) -> list[tuple[float, float]]:
        k = max(0, bisect.bisect_right(run_starts, lo) - 1)
        found = []
        while k < len(ordered) and ordered[k][0] < hi:
            a, b = ordered[k]
            if b > lo:
                found.append((a, b))
            k += 1
        return found

    def end_in(a: float, b: float, whisper_end: float) -> float:
        return max(a, min(whisper_end - end_pullback_s, a + end_into_pause_s, b))

    for i in range(len(words) - 1):
        lo = ends[i] - tolerance_s
        hi = starts[i + 1] + tolerance_s
        best: tuple[float, float] | None = None
        for a, b in overlapping(lo, hi):
            if a < starts[i] + min_word_s or b > ends[i + 1] - min_word_s:
                continue
            if best is None or b - a > best[1] - best[0]:
                best = (a, b)
        if best is not None:
            ends[i] = end_in(best[0], best[1], words[i].end_s)
            starts[i + 1] = best[1]
    for i in range(len(words)):
        for a, b in overlapping(starts[i], starts[i] + EPS):
            if a <= starts[i] < b <= ends[i] - min_word_s:
                starts[i] = b
        for a, b in overlapping(ends[i] - EPS, ends[i]):
            if a < ends[i] <= b and a >= starts[i] + min_word_s:
                ends[i] = min(ends[i], end_in(a, b, words[i].end_s))
    return tuple(
        replace(w, start_s=s, end_s=e) for w, s, e in zip(words, starts, ends, strict=True)
    )
