"""Ids, splits, voice choice and character substitution of the synth plan."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from speechmill.core.synth import synthplan
from speechmill.schemas.synth import AugParams, TtsParams


def test_text_id_and_split_depend_only_on_the_reference() -> None:
    a = synthplan.text_id("the ferry leaves at seven")
    assert a == synthplan.text_id("the ferry leaves at seven")
    assert a != synthplan.text_id("the ferry leaves at eight")
    assert len(a) == 24
    assert synthplan.split_of("x y", 0.1, 0.1) == synthplan.split_of("x y", 0.1, 0.1)


def test_split_fractions_are_respected() -> None:
    counts = collections.Counter(
        synthplan.split_of(f"sentence number {i}", 0.1, 0.2) for i in range(5000)
    )
    assert abs(counts["test"] / 5000 - 0.2) < 0.03
    assert abs(counts["dev"] / 5000 - 0.1) < 0.03
    assert counts["train"] > counts["test"] > counts["dev"]


def test_no_dev_or_test_when_fractions_are_zero() -> None:
    assert {synthplan.split_of(f"s {i}", 0.0, 0.0) for i in range(200)} == {"train"}


def test_pair_id_changes_with_every_part_of_the_plan() -> None:
    tts = TtsParams(engine="piper", voice="joe", length_scale=1.0, seed=1)
    aug = AugParams(noise_type="pink", snr_db=5.0, seed=2)
    base = synthplan.pair_id("t1", tts, aug, 7)
    assert base == synthplan.pair_id("t1", tts, aug, 7)
    assert base != synthplan.pair_id("t2", tts, aug, 7)
    assert base != synthplan.pair_id("t1", TtsParams(engine="piper", voice="joe", seed=1), aug, 7)
    assert base != synthplan.pair_id("t1", tts, AugParams(noise_type="pink", seed=2), 7)
    assert base != synthplan.pair_id("t1", tts, aug, 8)


def test_voice_choice_follows_weights() -> None:
    opts = [
        synthplan.VoiceOption("piper", "m", "joe", weight=3.0),
        synthplan.VoiceOption("espeak-ng", "", "en-us", weight=1.0),
    ]
    rng = np.random.default_rng(0)
    counts = collections.Counter(synthplan.choose_voice(opts, rng).voice for _ in range(4000))
    assert abs(counts["joe"] / 4000 - 0.75) < 0.03
    with pytest.raises(ValueError):
        synthplan.choose_voice([], rng)


def test_plan_tts_samples_inside_ranges_and_only_piper_gets_noise_scales() -> None:
    ranges = synthplan.ScaleRanges((0.8, 1.2), (0.3, 0.5), (0.6, 0.7))
    rng = np.random.default_rng(3)
    piper = synthplan.plan_tts(synthplan.VoiceOption("piper", "m", "joe"), ranges, rng, 5)
    assert 0.8 <= (piper.length_scale or 0) <= 1.2
    assert 0.3 <= (piper.noise_scale or 0) <= 0.5
    assert 0.6 <= (piper.noise_w_scale or 0) <= 0.7
    espeak = synthplan.plan_tts(
        synthplan.VoiceOption("espeak-ng", "", "en-us", variant="f2"), ranges, rng, 5
    )
    assert espeak.noise_scale is None and espeak.variant == "f2" and espeak.seed == 5


def test_substitution_rate_and_determinism() -> None:
    text = "the quick brown fox jumps over the lazy dog " * 50
    out = synthplan.substitute(text, 0.1, seed=11)
    assert out == synthplan.substitute(text, 0.1, seed=11)
    assert len(out) == len(text)
    assert all((a == " ") == (b == " ") for a, b in zip(text, out, strict=True))
    changed = sum(a != b for a, b in zip(text, out, strict=True))
    letters = sum(not c.isspace() for c in text)
    assert abs(changed / letters - 0.1) < 0.03
    assert synthplan.substitute(text, 0.0, seed=11) == text


def test_substitute_list_keeps_the_share_and_flags_changes() -> None:
    hyps = [f"hypothesis number {i} with several words" for i in range(400)]
    out, flags = synthplan.substitute_list(hyps, share=0.25, rate=0.2, seed=3)
    assert out == synthplan.substitute_list(hyps, share=0.25, rate=0.2, seed=3)[0]
    assert abs(sum(flags) / 400 - 0.25) < 0.06
    assert all((o != h) == f for o, h, f in zip(out, hyps, flags, strict=True))
    none, flags0 = synthplan.substitute_list(hyps, share=0.0, rate=0.2, seed=3)
    assert none == hyps and not any(flags0)


def test_real_pair_count_for_a_ratio() -> None:
    assert synthplan.fraction_for(90, 0.1) == 10
    assert synthplan.fraction_for(90, 0.0) == 0
    with pytest.raises(ValueError):
        synthplan.fraction_for(90, 1.0)
