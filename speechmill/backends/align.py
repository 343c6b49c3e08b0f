"""Forced-alignment backends: a known text + audio -> word timings.

`WhisperAligner` aligns through CTranslate2's Whisper `align` (the DTW path through
the cross-attention of the model's alignment heads, as faster-whisper computes
word timestamps) on an already loaded `FasterWhisperBackend`, so the ASR model is
loaded once per worker for both stages. Long audio is aligned in overlapping
windows of at most 30 s and stitched; word edges are then snapped to the quiet
runs around them (see `speechmill.core.align.alignment`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from speechmill.backends.faster_whisper import BUNDLED, MAX_FRAMES
from speechmill.core.align.alignment import (
    MARGIN_S,
    MAX_WINDOW_S,
    AlignedWord,
    Alignment,
    align_long_form,
    empty_alignment,
    silent_runs,
    snap_to_silence,
    split_on_spaces,
    to_input_words,
    token_word_timings,
)
from speechmill.core.audio.chunks import SAMPLE_RATE

if TYPE_CHECKING:
    from speechmill.backends.faster_whisper import FasterWhisperBackend

log = logging.getLogger(__name__)

MAX_TEXT_POSITIONS = 448  # Whisper's decoder context
MEDIAN_FILTER_WIDTH = 7  # faster-whisper's default
MIN_WINDOW_SAMPLES = SAMPLE_RATE // 10  # shorter audio is not aligned (words interpolated)
MAX_WINDOW_SAMPLES = int(MAX_WINDOW_S * SAMPLE_RATE)
# faster-whisper splits these languages into words at unicode boundaries, not spaces
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue"})


class Aligner(Protocol):
    name: str

    def align(
        self, audio: npt.NDArray[np.float32], text: str, language: str | None = None
    ) -> Alignment: ...


class WhisperAligner:
    """Cross-attention alignment through CTranslate2 `align` on a loaded Whisper model.

    `align(audio, text)` takes 16 kHz mono float audio of any length and any text;
    it returns one `AlignedWord` per whitespace-separated word of the text, with
    the word exactly as given and times in seconds from the start of `audio`.
    `snap_silence=False` returns Whisper's own times (no gaps between words).
    """

    def __init__(
        self,
        backend: FasterWhisperBackend,
        window_s: float = MAX_WINDOW_S,
        overlap_s: float = 5.0,
        *,
        snap_silence: bool = True,
    ) -> None:
        if not 0 < window_s <= MAX_WINDOW_S:
            raise ValueError(f"window_s must be in (0, {MAX_WINDOW_S}], got {window_s}")
        if not 0 <= overlap_s < window_s - MARGIN_S:
            raise ValueError(f"overlap_s must be in [0, window_s - {MARGIN_S}), got {overlap_s}")
        self.backend = backend
        self.window_s = float(window_s)
        self.overlap_s = float(overlap_s)
        self.snap_silence = snap_silence
        self.name = f"whisper-ct2:{backend.model_id}"

    @staticmethod
    def load(
        model: str = BUNDLED,
        device: str = "cpu",
        compute_type: str = "int8",
        **kw: Any,
    ) -> WhisperAligner:
        """Load the model; `window_s`, `overlap_s`, `snap_silence` go to the aligner,
        anything else (e.g. `cpu_threads`) to `FasterWhisperBackend.load`."""
        from speechmill.backends.faster_whisper import FasterWhisperBackend

        mine = {k: kw.pop(k) for k in ("window_s", "overlap_s", "snap_silence") if k in kw}
        backend = FasterWhisperBackend.load(model, device=device, compute_type=compute_type, **kw)
        return WhisperAligner(backend, **mine)

    # ------------------------------------------------------------------ align
    def align(
        self, audio: npt.NDArray[np.float32], text: str, language: str | None = None
    ) -> Alignment:
        words = text.split()
        if not words:
            return empty_alignment()
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"audio must be 1-D (16 kHz mono), got shape {audio.shape}")
        duration_s = audio.size / SAMPLE_RATE
        tokenizer = self._tokenizer_for(audio, language)

        def window(start_s: float, end_s: float, ws: Sequence[str]) -> list[AlignedWord | None]:
            i0 = round(start_s * SAMPLE_RATE)
            i1 = min(round(end_s * SAMPLE_RATE), i0 + MAX_WINDOW_SAMPLES)
            return self._align_window(audio[i0:i1], ws, tokenizer)

        result = align_long_form(
            words, duration_s, window, window_s=self.window_s, overlap_s=self.overlap_s
        )
        if not self.snap_silence:
            return result
        snapped = snap_to_silence(result.words, silent_runs(audio, SAMPLE_RATE))
        return Alignment(snapped, result.unaligned, result.score)

    # ------------------------------------------------------------------ helpers
    def _tokenizer_for(self, audio: npt.NDArray[np.float32], language: str | None) -> Any:
        b = self.backend
        if not b.multilingual:
            return b._tokenizer(language or "en")
        if language is None:
            language = self._detect_language(audio[:MAX_WINDOW_SAMPLES])
        return b._tokenizer(language)

    def _detect_language(self, audio: npt.NDArray[np.float32]) -> str:
        import ctranslate2

        if audio.size < MIN_WINDOW_SAMPLES:
            return "en"
        b = self.backend
        feats = b.features(audio)
        with b._lock:
            enc = b._encode([feats], MAX_FRAMES)
            detected = b._fw.model.detect_language(ctranslate2.StorageView.from_array(enc))
        best = max(detected[0], key=lambda tp: tp[1])[0]
        return str(best).strip("<|>")

    def _fit_tokens(self, tokenizer: Any, words: Sequence[str]) -> tuple[list[int], int]:
        """Tokens of the longest prefix of `words` that fits Whisper's context."""
        limit = MAX_TEXT_POSITIONS - len(tokenizer.sot_sequence) - 3  # no_timestamps, eot
        tokens = list(tokenizer.encode(" " + " ".join(words)))
        if len(tokens) <= limit:
            return tokens, len(words)
        lo, hi = 0, len(words)  # the answer is in [lo, hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if len(tokenizer.encode(" " + " ".join(words[:mid]))) <= limit:
                lo = mid
            else:
                hi = mid
        return list(tokenizer.encode(" " + " ".join(words[:lo]))) if lo else [], lo

    def _align_window(
        self, audio: npt.NDArray[np.float32], words: Sequence[str], tokenizer: Any
    ) -> list[AlignedWord | None]:
        import ctranslate2

        unplaced: list[AlignedWord | None] = [None] * len(words)
        if audio.size < MIN_WINDOW_SAMPLES:
            return unplaced
        tokens, n = self._fit_tokens(tokenizer, words)
        if n == 0:
            return unplaced
        b = self.backend
        feats = b.features(audio)
        with b._lock:
            enc = b._encode([feats], MAX_FRAMES)
            result = b._fw.model.align(
                ctranslate2.StorageView.from_array(enc),
                list(tokenizer.sot_sequence),
                [tokens],
                [int(feats.shape[1])],
                median_filter_width=MEDIAN_FILTER_WIDTH,
            )[0]
        with_eot = [*tokens, tokenizer.eot]
        if tokenizer.language_code in NO_SPACE_LANGUAGES:
            pieces, piece_tokens = tokenizer.split_tokens_on_unicode(with_eot)
        else:
            subwords, subword_tokens = tokenizer.split_tokens_on_unicode(with_eot)
            pieces, piece_tokens = split_on_spaces(subwords, subword_tokens, tokenizer.eot)
        timed = token_word_timings(
            pieces,
            piece_tokens,
            [(int(i), int(j)) for i, j in result.alignments],
            list(result.text_token_probs),
        )
        return to_input_words(words[:n], timed) + unplaced[n:]
