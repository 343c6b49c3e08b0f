"""What an ASR decode takes and gives: options (built from config in one place), items,
outputs, and the one mapping from an N-best list to table columns.

Every pipeline builds its `DecodeOptions` with `DecodeOptions.from_config(cfg.asr, ...)`
(overrides name what differs: the relabel teacher's beam, synth's context floor),
and every N-best list becomes columns through `nbest_columns` (segments and
utterances in `hypotheses`, synthetic and real pairs in `pairs`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from speechmill.config import AsrConfig
from speechmill.core.asr.nbest import Candidate, NBest
from speechmill.schemas.rejects import Category, Drop

# A transform of log-mel features (n_mels, frames) -> same shape, e.g. frequency masking.
FeatureTransform = Callable[[npt.NDArray[np.float32], str], npt.NDArray[np.float32]]


@dataclass(frozen=True)
class DecodeOptions:
    """Decode settings. The defaults are `AsrConfig`'s (a test holds them equal)."""

    beam_size: int = 5
    n_best: int = 5
    top_up: bool = True
    alternatives: int = 8  # one-token substitutions tried per list short of n (0: none)
    alt_window: int = 32  # ... among the 1-best's first alt_window tokens
    temperatures: tuple[float, ...] = (1.0, 1.3)
    sample_budget: int = 8
    sample_max_tokens: int = 64
    topk: int = 0
    max_new_tokens: int = 224
    min_context_s: float = 30.0
    token_logprobs: bool = False  # rescore each hypothesis token by token (one forced decode)

    @staticmethod
    def from_config(cfg: AsrConfig, **overrides: Any) -> DecodeOptions:
        """The options `cfg` describes; `overrides` replace named fields (checked)."""
        base = DecodeOptions(
            beam_size=cfg.beam_size,
            n_best=cfg.n_best,
            top_up=cfg.top_up,
            alternatives=cfg.alternatives,
            alt_window=cfg.alt_window,
            temperatures=tuple(cfg.sample_temperatures),
            sample_budget=cfg.sample_budget,
            sample_max_tokens=cfg.sample_max_tokens,
            topk=cfg.sample_topk,
            max_new_tokens=cfg.max_new_tokens,
            min_context_s=cfg.min_context_s,
        )
        return dataclasses.replace(base, **overrides)

    def describe(self) -> str:
        extra = ",token_lp" if self.token_logprobs else ""
        return (
            f"beam={self.beam_size},n={self.n_best},top_up={self.top_up},"
            f"alt={self.alternatives}/{self.alt_window},"
            f"T={','.join(map(str, self.temperatures))},topk={self.topk},"
            f"budget={self.sample_budget},max_tokens_topup={self.sample_max_tokens},"
            f"max_tokens={self.max_new_tokens},ctx={self.min_context_s}{extra}"
        )


def wants_top_up(beam: Sequence[Candidate], options: DecodeOptions) -> bool:
    """Whether sampled top-ups are tried for a list whose beam search returned `beam`.

    Only for short lists: on long, confident chunks the beam's variants differ in case
    and punctuation, and samples rarely add a distinct one (docs/nbest.md).
    """
    longest = max((len(c.tokens) for c in beam), default=0)
    return options.top_up and longest <= options.sample_max_tokens


@dataclass(frozen=True)
class AsrItem:
    """One piece of audio to decode: float32 mono at 16 kHz, with a language hint and,
    optionally, the text said before it (decoded as Whisper's previous-text prompt)."""

    item_id: str
    audio: npt.NDArray[np.float32]
    language: str | None = None
    prompt: str | None = None  # text said just before (e.g. the previous chunk's 1-best)


@dataclass(frozen=True)
class AsrOutput:
    """What the backend returns per item: the N-best list, or an error."""

    item_id: str
    nbest: NBest | None
    language: str
    language_prob: float | None
    no_speech_prob: float
    error: str | None = None


def asr_failure(out: AsrOutput, what: str) -> Drop | None:
    """The drop of an item the model failed on (`what`: chunk, utterance, item)."""
    if out.error is not None or out.nbest is None:
        return Drop(Category.ASR_ERROR, f"the ASR model failed on this {what}", out.error)
    return None


def no_text(nbest: NBest, *, best_only: bool) -> Drop | None:
    """The drop of a list with no text: in its 1-best (`best_only`), or in all of it."""
    norms = nbest.norms
    empty = not norms or (not norms[0].strip() if best_only else not any(n.strip() for n in norms))
    return Drop(Category.EMPTY_TRANSCRIPT, "ASR produced no text") if empty else None


@dataclass(frozen=True)
class NBestColumns:
    """An N-best list as aligned columns, best first (docs/nbest.md defines each)."""

    texts: list[str]  # as decoded
    texts_norm: list[str]  # after the normaliser
    sum_logprob: list[float]
    num_tokens: list[int]
    avg_logprob: list[float]
    method: list[str]
    temperature: list[float | None]
    seed: list[int | None]
    token_logprobs: list[list[float]] | None  # all hypotheses have them, or none
    n_requested: int
    n_unique: int


def nbest_columns(nbest: NBest) -> NBestColumns:
    """The one mapping from an N-best list to table columns."""
    hyps = nbest.hyps
    scored = all(h.token_logprobs is not None for h in hyps)
    return NBestColumns(
        texts=[h.text for h in hyps],
        texts_norm=list(nbest.norms),
        sum_logprob=[h.sum_logprob for h in hyps],
        num_tokens=[h.num_tokens for h in hyps],
        avg_logprob=[h.avg_logprob for h in hyps],
        method=[h.method for h in hyps],
        temperature=[h.temperature for h in hyps],
        seed=[h.seed for h in hyps],
        token_logprobs=[list(h.token_logprobs or ()) for h in hyps] if scored else None,
        n_requested=nbest.n_requested,
        n_unique=nbest.n_unique,
    )
