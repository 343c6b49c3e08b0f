"""The backend-independent parts of the N-best recipe, built over a backend's tokenizer
and teacher-forced decode: sampled top-ups, local alternatives and token rescoring.

Both ASR backends build their lists with these, so a list means the same whatever
decoded it (docs/nbest.md); a backend supplies only its beam search and its
`ForcedDecode`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy.typing as npt

from speechmill.core.asr.decoding import DecodeOptions
from speechmill.core.asr.nbest import (
    ALT,
    SAMPLE,
    Budget,
    Candidate,
    ForcedDecode,
    NBest,
    derive_seed,
    local_alternatives,
    replay_sample,
    rescored,
    token_logprobs,
)
from speechmill.core.text.normalize import Normalizer


class Tokenizer(Protocol):
    """What the recipe needs of a Whisper tokenizer (faster-whisper's and openai-whisper's
    both have it)."""

    @property
    def eot(self) -> int: ...

    def decode(self, tokens: list[int]) -> str: ...


Sampler = Callable[[int, int], list[Candidate]]
Alternatives = Callable[[int], list[Candidate]]


def sampler(forced: ForcedDecode, tk: Tokenizer, item_id: str, options: DecodeOptions) -> Sampler:
    """`sampler(k, round)`: k replayable samples of one item at the round's temperature,
    within the item's budget of forced-decode rows."""
    budget = Budget(rows_left=options.sample_budget)

    def draw(k: int, round_: int) -> list[Candidate]:
        temperature = options.temperatures[min(round_, len(options.temperatures) - 1)]
        seeds = [derive_seed(item_id, round_, j) for j in range(k)]
        drawn = replay_sample(
            seeds,
            forced,
            eot=tk.eot,
            temperature=temperature,
            topk=options.topk,
            max_tokens=options.max_new_tokens,
            budget=budget,
            last_token=tk.eot,
        )
        return [
            Candidate(
                tokens=toks,
                text=tk.decode(list(toks)).strip(),
                sum_logprob=lp,
                method=SAMPLE,
                temperature=temperature,
                seed=seed,
            )
            for seed, d in zip(seeds, drawn, strict=True)
            if d is not None
            for toks, lp in [d]
        ]

    return draw


def alternatives(
    tk: Tokenizer,
    best: Candidate,
    logits: Callable[[], Sequence[npt.NDArray[Any]]],
    limit: int,
    normalizer: Normalizer,
) -> Alternatives:
    """`alternatives(k)`: up to k one-token substitutions of `best` (`local_alternatives`);
    `logits()` gives the distributions at `best`'s first positions (called only if the
    list asks). Swaps with the same letters and digits after normalising are not tried."""

    def word(token: int) -> str:
        return "".join(ch for ch in normalizer(tk.decode([token]).strip()) if ch.isalnum())

    def found(k: int) -> list[Candidate]:
        subs = local_alternatives(
            best,
            logits(),
            min(k, limit),
            eot=tk.eot,
            differs=lambda old, new: word(old) != word(new),
        )
        return [
            Candidate(tokens=toks, text=tk.decode(list(toks)).strip(), sum_logprob=lp, method=ALT)
            for toks, lp in subs
        ]

    return found


def with_token_logprobs(nbest: NBest, forced: ForcedDecode, eot: int) -> NBest:
    """Every hypothesis rescored token by token with one teacher-forced decode."""
    results = forced([c.tokens for c in nbest.hyps], window=1)
    return dataclasses.replace(
        nbest,
        hyps=tuple(
            rescored(c, token_logprobs(c.tokens, logits, eot))
            for c, (_, logits) in zip(nbest.hyps, results, strict=True)
        ),
    )
