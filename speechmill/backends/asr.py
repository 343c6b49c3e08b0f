"""The ASR backend interface, and the per-item retry every caller goes through."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from speechmill.core.asr.nbest import NBest
from speechmill.core.text.normalize import Normalizer

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000

# A transform of log-mel features (n_mels, frames) -> same shape, e.g. frequency masking.
FeatureTransform = Callable[[npt.NDArray[np.float32], str], npt.NDArray[np.float32]]


@dataclass(frozen=True)
class AsrItem:
    """One piece of audio to decode: float32 mono at 16 kHz, with a language hint."""

    item_id: str
    audio: npt.NDArray[np.float32]
    language: str | None = None


@dataclass(frozen=True)
class DecodeOptions:
    beam_size: int = 20
    n_best: int = 5
    top_up: bool = True
    temperatures: tuple[float, ...] = (1.0, 1.3)
    sample_budget: int = 8
    sample_max_tokens: int = 64
    topk: int = 0
    max_new_tokens: int = 224
    min_context_s: float = 30.0
    token_logprobs: bool = False  # rescore each hypothesis token by token (one forced decode)

    def describe(self) -> str:
        extra = ",token_lp" if self.token_logprobs else ""
        return (
            f"beam={self.beam_size},n={self.n_best},top_up={self.top_up},"
            f"T={','.join(map(str, self.temperatures))},topk={self.topk},"
            f"budget={self.sample_budget},max_tokens_topup={self.sample_max_tokens},"
            f"max_tokens={self.max_new_tokens},ctx={self.min_context_s}{extra}"
        )


@dataclass(frozen=True)
class AsrOutput:
    """What the backend returns per item: the N-best list, or an error."""

    item_id: str
    nbest: NBest | None
    language: str
    language_prob: float | None
    no_speech_prob: float
    error: str | None = None


class AsrBackend(Protocol):
    """A loaded ASR model. Implementations live beside this file."""

    model_id: str
    model_hash: str
    multilingual: bool

    def decode(
        self,
        items: Sequence[AsrItem],
        options: DecodeOptions,
        normalizer: Normalizer,
        feature_transform: FeatureTransform | None = None,
    ) -> list[AsrOutput]:
        """Decode a batch; one output per item, in order. May raise for the whole batch."""
        ...


def decode_with_retry(
    backend: AsrBackend,
    items: Sequence[AsrItem],
    options: DecodeOptions,
    normalizer: Normalizer,
    feature_transform: FeatureTransform | None = None,
) -> list[AsrOutput]:
    """Decode a batch; if it fails, decode item by item so one bad item fails alone."""
    try:
        out = backend.decode(items, options, normalizer, feature_transform)
        if len(out) != len(items):
            raise RuntimeError(f"backend returned {len(out)} outputs for {len(items)} items")
        return out
    except Exception as batch_error:  # any model failure: retry one by one
        if len(items) == 1:
            return [_failed(items[0], batch_error)]
        log.warning("batch of %d failed (%s); retrying item by item", len(items), batch_error)
    outputs = []
    for item in items:
        try:
            outputs.extend(backend.decode([item], options, normalizer, feature_transform))
        except Exception as e:
            outputs.append(_failed(item, e))
    return outputs


def _failed(item: AsrItem, error: BaseException) -> AsrOutput:
    return AsrOutput(
        item_id=item.item_id,
        nbest=None,
        language=item.language or "",
        language_prob=None,
        no_speech_prob=float("nan"),
        error=f"{type(error).__name__}: {error}",
    )
