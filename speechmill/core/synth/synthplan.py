"""Planning synthetic pairs: ids, splits, voice choice and character substitution.

Everything here is a pure function of the run's seed and the text, so the same
config over the same texts plans the same items with the same ids, on any
runner and in any order:

* `text_id`   = sha256 of the normalised reference (first 24 hex digits);
* `split`     = a hash of the normalised reference, so a sentence never leaks
  across train/dev/test whatever voice or augmentation it gets;
* `item_seed` = derive_seed(run seed, text id, variant index);
* `pair_id`   = sha256 of (text id, TTS parameters, augmentation parameters,
  item seed), never of audio bytes (piper's noise is unseeded).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from speechmill.core.asr.nbest import derive_seed, uniform
from speechmill.schemas.synth import AugParams, TtsParams

SUBSTITUTION_ALPHABET = "abcdefghijklmnopqrstuvwxyz'"


def text_id(reference: str) -> str:
    """Id of a text: sha256 of its normalised form."""
    return hashlib.sha256(reference.encode("utf-8")).hexdigest()[:24]


def split_of(reference: str, dev_fraction: float, test_fraction: float) -> str:
    """`train`, `dev` or `test` from a hash of the normalised reference alone."""
    u = uniform(derive_seed("split", reference), 0)
    if u < test_fraction:
        return "test"
    if u < test_fraction + dev_fraction:
        return "dev"
    return "train"


def item_seed(run_seed: int, tid: str, variant: int) -> int:
    return derive_seed("synth", run_seed, tid, variant)


def pair_id(tid: str, tts: TtsParams, aug: AugParams, seed: int) -> str:
    """Id of a synthetic pair from what made it (never from audio bytes)."""
    payload = json.dumps(
        [tid, dataclasses.asdict(tts), dataclasses.asdict(aug), seed],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class VoiceOption:
    """One concrete voice the run may use (a piper model + speaker, or an espeak voice)."""

    engine: str  # "piper" | "espeak-ng" | "plugin"
    model: str  # piper model reference as configured; plugin `module:Class`; "" for espeak
    voice: str  # piper voice name, or the espeak voice
    speaker: int | None = None
    variant: str | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class ScaleRanges:
    length_scale: tuple[float, float]
    noise_scale: tuple[float, float]
    noise_w_scale: tuple[float, float]


def choose_voice(options: Sequence[VoiceOption], rng: np.random.Generator) -> VoiceOption:
    """One voice, by weight (a spec's weight is shared among its concrete voices)."""
    if not options:
        raise ValueError("no voices to choose from")
    weights = np.array([o.weight for o in options], dtype=np.float64)
    return options[int(rng.choice(len(options), p=weights / weights.sum()))]


def plan_tts(
    option: VoiceOption, ranges: ScaleRanges, rng: np.random.Generator, seed: int
) -> TtsParams:
    """Per-utterance synthesis parameters, sampled from the configured ranges."""
    length = float(rng.uniform(*ranges.length_scale))
    noise: float | None = None
    noise_w: float | None = None
    if option.engine == "piper":
        noise = float(rng.uniform(*ranges.noise_scale))
        noise_w = float(rng.uniform(*ranges.noise_w_scale))
    return TtsParams(
        engine=f"plugin:{option.model}" if option.engine == "plugin" else option.engine,
        voice=option.voice,
        speaker=option.speaker,
        variant=option.variant,
        length_scale=round(length, 4),
        noise_scale=None if noise is None else round(noise, 4),
        noise_w_scale=None if noise_w is None else round(noise_w, 4),
        seed=seed,
    )


def substitute(text: str, rate: float, seed: int, alphabet: str = SUBSTITUTION_ALPHABET) -> str:
    """Replace each non-space character with probability `rate` by a different one."""
    if rate <= 0 or not text:
        return text
    rng = np.random.default_rng(seed)
    out = []
    for ch in text:
        if ch.isspace() or rng.random() >= rate:
            out.append(ch)
            continue
        choices = [c for c in alphabet if c != ch]
        out.append(choices[int(rng.integers(len(choices)))])
    return "".join(out)


def substitute_list(
    hyps: Sequence[str], *, share: float, rate: float, seed: int
) -> tuple[list[str], list[bool]]:
    """Apply `substitute` to a seeded share of the hypotheses; flags say which changed."""
    out: list[str] = []
    flags: list[bool] = []
    for i, h in enumerate(hyps):
        if share > 0 and uniform(derive_seed(seed, "sub", i), 0) < share:
            new = substitute(h, rate, derive_seed(seed, "sub-chars", i))
        else:
            new = h
        out.append(new)
        flags.append(new != h)
    return out, flags


def fraction_for(n_synthetic: int, ratio: float) -> int:
    """How many real pairs make them `ratio` of the output next to n synthetic ones."""
    if ratio <= 0:
        return 0
    if ratio >= 1:
        raise ValueError("real_ratio must be < 1 when there are synthetic pairs")
    return round(n_synthetic * ratio / (1 - ratio))
