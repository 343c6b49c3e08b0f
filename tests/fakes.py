"""Fake ASR backend for transform and pipeline tests (injected through the factory)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from speechmill.core.asr.decoding import AsrItem, AsrOutput, DecodeOptions
from speechmill.core.asr.nbest import BEAM, Candidate, assemble
from speechmill.core.text.normalize import Normalizer


class PoisonError(RuntimeError):
    pass


@dataclass
class FakeBackend:
    """Deterministic hypotheses from the audio length; poisoned ids fail their whole batch."""

    poison: frozenset[str] = frozenset()
    model_id: str = "fake"
    model_hash: str = "fakehash"
    multilingual: bool = False
    calls: list[int] = field(default_factory=list)

    def decode(
        self,
        items: Sequence[AsrItem],
        options: DecodeOptions,
        normalizer: Normalizer,
        feature_transform=None,
    ) -> list[AsrOutput]:
        self.calls.append(len(items))
        if any(it.item_id in self.poison for it in items):
            raise PoisonError("poisoned item in batch")
        outs = []
        for it in items:
            secs = round(len(it.audio) / 16000, 1)
            words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
            beam = [
                Candidate(
                    tuple(range(3 + k)), f"Speech of {secs} seconds {words[k]}.", -1.0 - k, BEAM
                )
                for k in range(min(options.beam_size, len(words)))
            ]
            nbest = assemble(beam, normalizer, options.n_best)
            outs.append(
                AsrOutput(it.item_id, nbest, it.language or "en", None, float(np.float32(0.01)))
            )
        return outs


@dataclass(frozen=True)
class FakeFactory:
    poison: frozenset[str] = frozenset()
    model_id: str = "fake"

    def __call__(self) -> FakeBackend:
        return FakeBackend(self.poison)

    def fingerprint(self) -> str:
        return "fakehash"
