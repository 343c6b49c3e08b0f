from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt
import pytest

from speechmill.backends.codec import CodecError, codec_roundtrip
from speechmill.config import AugmentConfig, Range
from speechmill.core.audio import augment as A
from speechmill.schemas.synth import AugParams

SR = 16000


def voiced(sr: int = SR, dur: float = 1.0, seed: int = 0) -> npt.NDArray[np.float32]:
    """A speech-like test signal: harmonics of a gliding f0 under a syllable envelope."""
    t = np.arange(int(sr * dur)) / sr
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t + seed) + 20 * t
    ph = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * ph) / k for k in range(1, 25))
    env = 0.3 + 0.7 * np.sin(2 * np.pi * 3 * t) ** 2
    y = x * env
    return (0.3 * y / np.max(np.abs(y))).astype(np.float32)


def snr_of(speech: npt.NDArray[np.floating], noise: npt.NDArray[np.floating]) -> float:
    return 10 * np.log10(A.active_power(speech) / np.mean(np.asarray(noise, np.float64) ** 2))


def band_share(x: npt.NDArray[np.floating], lo: float, hi: float, sr: int = SR) -> float:
    p = np.abs(np.fft.rfft(np.asarray(x, np.float64))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / sr)
    return float(p[(f >= lo) & (f < hi)].sum() / p.sum())


def lag_of(y: npt.NDArray[np.floating], x: npt.NDArray[np.floating]) -> int:
    n = 2 * len(x)
    xc = np.fft.irfft(np.fft.rfft(y, n) * np.conj(np.fft.rfft(x, n)), n)
    k = int(np.argmax(xc))
    return k if k < len(x) else k - n


# ---------------------------------------------------------------------------- noise


@pytest.mark.parametrize("snr", [-5.0, 0.0, 7.5, 20.0])
def test_mix_at_snr_hits_the_target(snr: float) -> None:
    rng = np.random.default_rng(1)
    speech = np.concatenate([np.zeros(4000), voiced(), np.zeros(4000)]).astype(np.float32)
    noise = A.coloured_noise("pink", speech.size, rng) * 0.05
    mix = A.mix_at_snr(speech, noise, snr)
    assert mix.dtype == np.float32 and mix.shape == speech.shape
    # estimate the joint scale (1 unless the peak limiter acted) and split the parts
    ref = speech + A.noise_gain(speech, noise, snr) * noise
    scale = float(np.dot(mix, ref) / np.dot(ref, ref))
    assert abs(snr_of(scale * speech, mix - scale * speech) - snr) < 0.2
    assert np.max(np.abs(mix)) <= 1.0


def test_mix_at_snr_scales_down_jointly_instead_of_clipping() -> None:
    speech = voiced() * 3.0  # peak 0.9
    noise = A.coloured_noise("white", speech.size, np.random.default_rng(2))
    mix = A.mix_at_snr(speech, noise, 0.0)
    assert np.isclose(np.max(np.abs(mix)), 1.0, atol=1e-6)
    ref = speech + A.noise_gain(speech, noise, 0.0) * noise
    scale = float(np.dot(mix, ref) / np.dot(ref, ref))
    assert scale < 1.0
    np.testing.assert_allclose(mix, scale * ref, atol=1e-5)
    assert abs(snr_of(scale * speech, mix - scale * speech)) < 0.2


def test_silence_ignored_by_active_power_and_mix_checks_lengths() -> None:
    s = voiced()
    padded = np.concatenate([np.zeros(3 * s.size), s])
    assert np.isclose(A.active_power(padded), A.active_power(s), rtol=0.05)
    with pytest.raises(ValueError):
        A.mix_at_snr(s, s[:-1], 10.0)
    silent = np.zeros(100, np.float32)
    np.testing.assert_array_equal(A.mix_at_snr(silent, np.ones(100), 5.0), silent)


@pytest.mark.parametrize(("kind", "slope"), [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_coloured_noise_spectral_slope(kind: str, slope: float) -> None:
    x = A.coloured_noise(kind, 64 * 1024, np.random.default_rng(3))
    assert x.size == 64 * 1024 and np.isclose(np.sqrt(np.mean(x.astype(np.float64) ** 2)), 1.0)
    seg = x.reshape(-1, 1024) * np.hanning(1024)
    p = np.mean(np.abs(np.fft.rfft(seg, axis=1)) ** 2, axis=0)
    f = np.fft.rfftfreq(1024, 1 / SR)
    sel = (f >= 100) & (f <= 6000)
    fitted = np.polyfit(np.log10(f[sel]), np.log10(p[sel]), 1)[0]
    assert abs(fitted - slope) < 0.15
    with pytest.raises(ValueError):
        A.coloured_noise("purple", 10, np.random.default_rng(0))


def test_loop_to_length_and_babble() -> None:
    rng = np.random.default_rng(4)
    short = voiced(dur=0.3)
    looped = A.loop_to_length(short, 10_000, rng)
    assert looped.shape == (10_000,)
    long = voiced(dur=2.0)
    crop = A.loop_to_length(long, 5000, rng)
    start = int(np.argmin([np.sum((long[i : i + 5000] - crop) ** 2) for i in range(0, 27001)]))
    np.testing.assert_array_equal(crop, long[start : start + 5000])

    talkers = [voiced(dur=0.5 + 0.2 * i, seed=i) * (i + 1) for i in range(4)]
    b = A.babble(talkers, 20_000, np.random.default_rng(5))
    assert b.shape == (20_000,) and np.isclose(np.sqrt(np.mean(b.astype(np.float64) ** 2)), 1.0)
    again = A.babble(talkers, 20_000, np.random.default_rng(5))
    np.testing.assert_array_equal(b, again)
    with pytest.raises(ValueError):
        A.babble([], 10, rng)


def test_noise_provider_babble_and_files() -> None:
    pool = [voiced(dur=0.4, seed=i) for i in range(8)]
    loaded: list[str] = []

    def load(path: str) -> npt.NDArray[np.float32]:
        loaded.append(path)
        return voiced(dur=0.2)

    noise = A.noise_provider(pool, load)
    b1 = noise("babble:5 talkers", 9000, np.random.default_rng(6))
    b2 = noise("babble:5 talkers", 9000, np.random.default_rng(6))
    assert b1.shape == (9000,)
    np.testing.assert_array_equal(b1, b2)
    f = noise("/noise/fan.wav", 9000, np.random.default_rng(7))
    assert f.shape == (9000,) and loaded == ["/noise/fan.wav"]
    with pytest.raises(ValueError):
        A.noise_provider()("babble:3 talkers", 10, np.random.default_rng(0))


# ---------------------------------------------------------------------------- reverb


def schroeder_rt60(h: npt.NDArray[np.floating], sr: int) -> float:
    e = np.cumsum(np.asarray(h, np.float64)[::-1] ** 2)[::-1]
    db = 10 * np.log10(e / e[0])
    i = np.where((db <= -5) & (db >= -25))[0]  # T20, extrapolated to 60 dB
    return float(-60 / np.polyfit(i / sr, db[i], 1)[0])


@pytest.mark.parametrize("rt60", [0.25, 0.5, 0.8])
def test_synthetic_rir_decays_at_the_requested_rt60(rt60: float) -> None:
    for seed in range(3):
        h = A.synthetic_rir(rt60, SR, np.random.default_rng(seed))
        assert h[0] == 1.0 and int(np.argmax(np.abs(h))) == 0
        assert abs(schroeder_rt60(h, SR) / rt60 - 1) < 0.25


def test_reverberate_keeps_length_level_and_alignment() -> None:
    x = voiced()
    h = A.synthetic_rir(0.4, SR, np.random.default_rng(8))
    y = A.reverberate(x, h)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.isclose(np.sqrt(np.mean(y.astype(np.float64) ** 2)), np.sqrt(np.mean(x**2.0)))
    assert lag_of(y, x) == 0
    delayed = np.concatenate([np.zeros(50, np.float32), h])  # pre-delay: aligned on peak
    assert lag_of(A.reverberate(x, delayed), x) == 0


# ---------------------------------------------------------------------------- resampling, speed


def test_resample_is_accurate_and_band_limited() -> None:
    t = np.arange(22050) / 22050
    y = A.resample(np.sin(2 * np.pi * 1000 * t), 22050, SR)
    assert y.size == SR
    ref = np.sin(2 * np.pi * 1000 * np.arange(SR) / SR)
    assert np.max(np.abs(y[200:-200] - ref[200:-200])) < 1e-3
    alias = A.resample(np.sin(2 * np.pi * 9000 * t), 22050, SR)  # above the new Nyquist
    assert np.sqrt(np.mean(alias[200:-200].astype(np.float64) ** 2)) < 1e-3
    x = voiced()
    back = A.resample(A.resample(x, SR, 48000), 48000, SR)
    assert back.size == x.size
    assert np.max(np.abs(back[300:-300] - x[300:-300])) < 5e-3
    assert A.resample(x, SR, SR).size == x.size and A.resample(x[:0], SR, 8000).size == 0


@pytest.mark.parametrize("factor", [0.9, 1.1, 1.037])
def test_change_speed_scales_duration(factor: float) -> None:
    x = voiced()
    y = A.change_speed(x, factor, SR)
    assert y.size == round(x.size / factor)
    # a tone's frequency is scaled by the factor
    t = np.arange(SR) / SR
    z = A.change_speed(np.sin(2 * np.pi * 1000 * t), factor, SR)
    spec = np.abs(np.fft.rfft(z * np.hanning(z.size)))
    peak_hz = np.argmax(spec) * SR / z.size
    assert abs(peak_hz - 1000 * factor) < 3


# ---------------------------------------------------------------------------- telephone


def test_telephone_band_limits() -> None:
    x = A.coloured_noise("white", 2 * SR, np.random.default_rng(9)) * 0.1
    assert band_share(x, 4000, 8000) > 0.4 and band_share(x, 0, 200) > 0.02
    y = A.telephone(x, SR)
    assert y.shape == x.shape and y.dtype == np.float32
    assert band_share(y, 4000, 8000) < 1e-4
    assert band_share(y, 0, 200) < 1e-4
    assert band_share(y, 300, 3400) > 0.95
    assert lag_of(A.telephone(voiced(), SR), voiced()) == 0


# ---------------------------------------------------------------------------- codec


@pytest.mark.parametrize("codec", ["mp3", "opus", "aac"])
def test_codec_roundtrip_keeps_length_and_alignment(codec: str) -> None:
    x = np.concatenate([np.zeros(1234, np.float32), voiced(dur=1.0)])
    y = codec_roundtrip(x, SR, codec)
    assert y.shape == x.shape and y.dtype == np.float32
    assert lag_of(y, x) == 0
    assert np.corrcoef(x, y)[0, 1] > 0.8


def test_codec_roundtrip_other_rate_and_errors() -> None:
    x = voiced(sr=22050, dur=0.5)
    y = codec_roundtrip(x, 22050, "opus", bitrate=24_000)  # opus has no 22.05 kHz mode
    assert y.shape == x.shape and lag_of(y, x) == 0 and np.corrcoef(x, y)[0, 1] > 0.8
    with pytest.raises(ValueError):
        codec_roundtrip(x, 22050, "flac")
    with pytest.raises(CodecError):
        codec_roundtrip(x, 22050, "mp3", bitrate=-5)


# ---------------------------------------------------------------------------- masking


def test_frequency_masking_is_deterministic_per_item() -> None:
    feats = np.random.default_rng(10).standard_normal((80, 300)).astype(np.float32)
    t = A.frequency_masking(seed=7, masks=2, max_width=8)
    a1, a2, b = t(feats, "item-a"), t(feats, "item-a"), t(feats, "item-b")
    np.testing.assert_array_equal(a1, a2)
    assert not np.array_equal(a1, b)
    assert a1.shape == feats.shape and a1.dtype == np.float32
    changed = np.where(np.any(a1 != feats, axis=1))[0]
    assert 1 <= changed.size <= 16
    np.testing.assert_allclose(a1[changed], feats.mean(), rtol=1e-6)
    assert np.all(np.ptp(a1[changed], axis=1) == 0)
    assert not np.array_equal(A.frequency_masking(8, 2, 8)(feats, "item-a"), a1)
    assert np.array_equal(
        feats, np.random.default_rng(10).standard_normal((80, 300)).astype(np.float32)
    )  # input untouched


def test_masking_for_only_masks_selected_items() -> None:
    feats = np.random.default_rng(11).standard_normal((80, 100)).astype(np.float32)
    t = A.masking_for({"x": (2, 8), "z": (0, 8)}, seed=3)
    assert t(feats, "y") is feats and t(feats, "z") is feats
    np.testing.assert_array_equal(t(feats, "x"), A.frequency_masking(3, 2, 8)(feats, "x"))


# ---------------------------------------------------------------------------- plan, apply


def cfg_all(p: float, **kw: object) -> AugmentConfig:
    return AugmentConfig(
        noise_p=p,
        reverb_p=p,
        speed_p=p,
        telephone_p=p,
        codec_p=p,
        masking_p=p,
        **kw,
    )


def test_plan_is_deterministic_and_respects_probabilities() -> None:
    cfg = AugmentConfig()
    assert A.plan(cfg, 42, babble_available=True) == A.plan(cfg, 42, babble_available=True)
    plans = [A.plan(cfg, s, babble_available=True) for s in range(300)]
    assert len({dataclasses.astuple(p) for p in plans}) > 50

    never = [A.plan(cfg_all(0.0), s, babble_available=True) for s in range(50)]
    assert all(p == AugParams(seed=s) for s, p in enumerate(never))

    always = [A.plan(cfg_all(1.0), s, babble_available=True) for s in range(50)]
    for p in always:
        assert p.noise_type in {"white", "pink", "brown", "babble"} and p.snr_db is not None
        assert 0.0 <= p.snr_db <= 20.0
        assert p.reverb_rt60_s is not None and 0.2 <= p.reverb_rt60_s <= 0.8
        assert p.speed is not None and 0.9 <= p.speed <= 1.1
        assert p.telephone is True and p.codec in {"mp3", "opus"}
        assert (p.freq_masks, p.freq_mask_width) == (2, 8)
        if p.noise_type == "babble":
            assert p.noise_source in {f"babble:{n} talkers" for n in range(3, 7)}
        else:
            assert p.noise_source == p.noise_type

    half = [A.plan(cfg_all(0.5), s, babble_available=True) for s in range(400)]
    share = np.mean([p.reverb_rt60_s is not None for p in half])
    assert 0.4 < share < 0.6


def test_plan_noise_bank_availability() -> None:
    cfg = cfg_all(1.0, noise_types=["babble", "file"], noise_files=[])
    assert all(A.plan(cfg, s, babble_available=False).noise_type is None for s in range(30))
    assert {A.plan(cfg, s, babble_available=True).noise_type for s in range(30)} == {"babble"}
    cfg = cfg_all(
        1.0, noise_types=["file"], noise_files=["a.wav", "b.wav"], snr_db=Range(low=5, high=5)
    )
    got = [A.plan(cfg, s, babble_available=False) for s in range(30)]
    assert {p.noise_source for p in got} == {"a.wav", "b.wav"} and {p.snr_db for p in got} == {5.0}


def test_apply_is_reproducible_and_in_order() -> None:
    x = voiced(dur=0.8)
    params = AugParams(
        noise_type="pink",
        noise_source="pink",
        snr_db=10.0,
        reverb_rt60_s=0.3,
        speed=1.1,
        telephone=True,
        seed=123,
    )
    y1 = A.apply(x, SR, params)
    y2 = A.apply(x, SR, params)
    np.testing.assert_array_equal(y1, y2)
    assert y1.size == round(x.size / 1.1) and np.max(np.abs(y1)) <= 1.0
    assert not np.array_equal(y1, A.apply(x, SR, dataclasses.replace(params, seed=124)))
    assert band_share(y1, 4000, 8000) < 1e-4  # telephone came after the noise
    np.testing.assert_array_equal(A.apply(x, SR, AugParams(seed=1)), x)

    calls: list[str] = []

    def fake_codec(a: npt.NDArray[np.float32], sr: int, name: str) -> npt.NDArray[np.float32]:
        calls.append(name)
        return a * 0.5

    out = A.apply(x, SR, AugParams(codec="mp3", seed=1), codec=fake_codec)
    assert calls == ["mp3"] and np.allclose(out, x * 0.5)
    with pytest.raises(ValueError):
        A.apply(x, SR, AugParams(codec="mp3", seed=1))
    with pytest.raises(ValueError):
        A.apply(
            x,
            SR,
            AugParams(noise_type="babble", noise_source="babble:3 talkers", snr_db=5.0, seed=1),
        )
    pool = [voiced(dur=0.5, seed=i) for i in range(5)]
    babbled = dataclasses.replace(params, noise_type="babble", noise_source="babble:3 talkers")
    b1 = A.apply(x, SR, babbled, noise=A.noise_provider(pool))
    np.testing.assert_array_equal(b1, A.apply(x, SR, babbled, noise=A.noise_provider(pool)))
