"""The ASR backend interface, and the per-item retry every caller goes through."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from speechmill.core.asr.decoding import AsrItem, AsrOutput, DecodeOptions, FeatureTransform
from speechmill.core.text.normalize import Normalizer

log = logging.getLogger(__name__)


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
