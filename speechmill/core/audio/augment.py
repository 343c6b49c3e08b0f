"""Audio augmentation for synthetic speech: pure numpy, reproducible from `AugParams`.

`plan` samples which degradations an utterance gets (each with its probability)
and their parameters from one per-item seed; `apply` replays them on float32
mono audio in a fixed order:

    speed -> reverb -> additive noise -> telephone band -> codec

Speed is a property of the talker, the room reverberates the voice, the noise
is added in the room (not reverberated), the telephone channel band-limits
voice and noise together, and the lossy codec comes last (through an injected
callable, e.g. `speechmill.backends.codec.codec_roundtrip`, so this module
stays pure). Every random draw inside `apply` comes from generators seeded
with `derive_seed(params.seed, purpose)`, so the same params give the same
audio bit for bit. Frequency masking is not an audio effect: it is a
`FeatureTransform` for the ASR backend (`frequency_masking`, `masking_for`).

Conventions: SNR is measured over the speech's *active* frames (20 ms frames
within 40 dB of the loudest one, see `active_power`) against the noise's
power over the whole signal, so leading/trailing TTS silence does not
inflate the noise. Only speed changes the length (to round(len / factor)).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from speechmill.config import AugmentConfig
from speechmill.core.asr.nbest import derive_seed
from speechmill.core.audio.io import resample, resample_to
from speechmill.schemas.synth import AugParams

Audio = npt.NDArray[np.float32]
# A transform of log-mel features (n_mels, frames) -> same shape; the same type as
# speechmill.backends.asr.FeatureTransform (kept here so the core imports no backend).
FeatureTransform = Callable[[npt.NDArray[np.float32], str], npt.NDArray[np.float32]]
# (noise_source, n_samples, rng) -> noise of exactly n samples at the audio's rate.
NoiseFn = Callable[[str, int, np.random.Generator], npt.NDArray[np.floating]]
# (audio, sample_rate, codec name) -> audio of the same rate and length.
CodecFn = Callable[[Audio, int, str], Audio]

ColouredKind = Literal["white", "pink", "brown"]
COLOURED: tuple[str, ...] = ("white", "pink", "brown")
BABBLE_TALKERS = (3, 6)  # inclusive range of talkers mixed into babble noise
DRR_DB = (-2.0, 6.0)  # direct-to-reverberant ratio of synthetic rooms
TELEPHONE_BAND_HZ = (300.0, 3400.0)
_BABBLE_RE = re.compile(r"^babble:(\d+) talkers$")


# ---------------------------------------------------------------------------- plan


def plan(cfg: AugmentConfig, seed: int, *, babble_available: bool) -> AugParams:
    """Sample the degradations of one utterance from its seed (same seed, same plan).

    Each augmentation draws from its own generator (seeded by purpose), so changing
    one probability or range does not reshuffle the others. Sampled values are
    rounded (SNR 0.01 dB, RT60 1 ms, speed 0.001) and the rounded value is the one
    `apply` uses. `noise_source` is the coloured kind ('pink'), a noise file path,
    or 'babble:<n> talkers'. `substitution_rate` is left to the text side.
    """

    def gen(purpose: str) -> np.random.Generator:
        return np.random.default_rng(derive_seed(seed, "plan", purpose))

    noise_type: str | None = None
    noise_source: str | None = None
    snr_db: float | None = None
    g = gen("noise")
    if g.random() < cfg.noise_p:
        kinds = [
            k
            for k in cfg.noise_types
            if (k != "file" or cfg.noise_files) and (k != "babble" or babble_available)
        ]
        if kinds:
            noise_type = str(kinds[int(g.integers(len(kinds)))])
            if noise_type == "file":
                noise_source = cfg.noise_files[int(g.integers(len(cfg.noise_files)))]
            elif noise_type == "babble":
                lo, hi = BABBLE_TALKERS
                noise_source = f"babble:{int(g.integers(lo, hi + 1))} talkers"
            else:
                noise_source = noise_type
            snr_db = round(float(g.uniform(cfg.snr_db.low, cfg.snr_db.high)), 2)

    rt60: float | None = None
    g = gen("reverb")
    if g.random() < cfg.reverb_p:
        rt60 = round(float(g.uniform(cfg.rt60_s.low, cfg.rt60_s.high)), 3)

    speed: float | None = None
    g = gen("speed")
    if g.random() < cfg.speed_p:
        speed = round(float(g.uniform(cfg.speed.low, cfg.speed.high)), 3)

    telephone: bool | None = None
    if gen("telephone").random() < cfg.telephone_p:
        telephone = True

    codec: str | None = None
    g = gen("codec")
    if g.random() < cfg.codec_p and cfg.codecs:
        codec = str(cfg.codecs[int(g.integers(len(cfg.codecs)))])

    masks: int | None = None
    width: int | None = None
    if gen("masking").random() < cfg.masking_p and cfg.freq_masks > 0:
        masks, width = cfg.freq_masks, cfg.freq_mask_width

    return AugParams(
        noise_type=noise_type,
        noise_source=noise_source,
        snr_db=snr_db,
        reverb_rt60_s=rt60,
        speed=speed,
        codec=codec,
        telephone=telephone,
        freq_masks=masks,
        freq_mask_width=width,
        seed=seed,
    )


# ---------------------------------------------------------------------------- apply


def apply(
    audio: npt.NDArray[np.floating],
    sr: int,
    params: AugParams,
    *,
    noise: NoiseFn | None = None,
    codec: CodecFn | None = None,
) -> Audio:
    """Degrade `audio` as `params` says: speed -> reverb -> noise -> telephone -> codec.

    `noise` supplies babble and file noise (see `noise_provider`); white, pink and
    brown noise are generated here. `codec` is required when `params.codec` is set
    (pass `lambda x, sr, c: x` to apply the codec elsewhere). The result is float32,
    scaled down (never clipped) if its peak would exceed 1.
    """
    x = _mono(audio)
    if params.speed is not None and params.speed != 1.0:
        x = change_speed(x, params.speed, sr)
    if params.reverb_rt60_s is not None:
        rir = synthetic_rir(params.reverb_rt60_s, sr, _rng(params, "rir"))
        x = reverberate(x, rir)
    if params.noise_type is not None:
        if params.snr_db is None:
            raise ValueError("noise_type is set but snr_db is not")
        rng = _rng(params, "noise")
        if params.noise_type in COLOURED:
            n: npt.NDArray[np.floating] = coloured_noise(params.noise_type, x.size, rng)
        else:
            if noise is None:
                raise ValueError(f"{params.noise_type} noise needs a `noise` provider")
            n = noise(params.noise_source or params.noise_type, x.size, rng)
        x = mix_at_snr(x, n, params.snr_db)
    if params.telephone:
        x = telephone(x, sr)
    if params.codec is not None:
        if codec is None:
            raise ValueError(f"params ask for codec {params.codec!r} but no `codec` was given")
        y = _mono(codec(x, sr, params.codec))
        if y.size != x.size:
            raise ValueError(f"codec returned {y.size} samples for {x.size}")
        x = y
    return _limit_peak(x)


def _rng(params: AugParams, purpose: str) -> np.random.Generator:
    if params.seed is None:
        raise ValueError("AugParams.seed is required to replay random augmentations")
    return np.random.default_rng(derive_seed(params.seed, "apply", purpose))


def _mono(x: npt.NDArray[np.floating]) -> Audio:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 1:
        raise ValueError(f"expected mono audio (1-D), got shape {a.shape}")
    return a


def _limit_peak(x: npt.NDArray[np.floating], max_peak: float = 1.0) -> Audio:
    y = np.asarray(x, dtype=np.float32)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > max_peak:
        y = (y * (max_peak / peak)).astype(np.float32)
    return y


# ---------------------------------------------------------------------------- noise


def coloured_noise(kind: str, n: int, rng: np.random.Generator) -> Audio:
    """Unit-RMS noise of `n` samples: white, pink (power ~ 1/f) or brown (~ 1/f^2).

    Shaped in the frequency domain: the spectrum of white Gaussian noise is scaled
    by f^-0.5 (pink) or f^-1 (brown); the DC bin is zeroed.
    """
    if kind not in COLOURED:
        raise ValueError(f"unknown noise colour {kind!r}; expected one of {COLOURED}")
    if n <= 0:
        return np.zeros(0, dtype=np.float32)
    white = rng.standard_normal(n)
    if kind == "white":
        out = white
    else:
        spec = np.fft.rfft(white)
        k = np.arange(spec.size, dtype=np.float64)
        k[0] = 1.0
        spec *= k ** (-0.5 if kind == "pink" else -1.0)
        spec[0] = 0.0
        out = np.fft.irfft(spec, n)
    return _unit_rms(out)


def loop_to_length(
    x: npt.NDArray[np.floating], n: int, rng: np.random.Generator, *, fade: int = 256
) -> Audio:
    """`n` samples of `x` from a random offset, looped with short crossfades if too short."""
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError("cannot loop empty audio")
    if n <= 0:
        return np.zeros(0, dtype=np.float32)
    if a.size >= n:
        start = int(rng.integers(0, a.size - n + 1))
        return a[start : start + n].astype(np.float32)
    a = np.roll(a, -int(rng.integers(0, a.size)))
    f = min(fade, a.size // 4)
    if f > 0:  # crossfade the tail into the head so every seam is smooth
        ramp = np.linspace(0.0, 1.0, f + 2)[1:-1]
        head = a[:f] * ramp + a[-f:] * (1.0 - ramp)
        a = np.concatenate([head, a[f:-f]])
    reps = -(-n // a.size)
    return np.tile(a, reps)[:n].astype(np.float32)


def babble(talkers: Sequence[npt.NDArray[np.floating]], n: int, rng: np.random.Generator) -> Audio:
    """Babble of `n` samples: every talker normalised, looped from a random offset, summed.

    The caller chooses the talkers (typically 3-6 other utterances); each is scaled
    to unit active power with a random +-3 dB gain, and the sum to unit RMS.
    """
    if not talkers:
        raise ValueError("babble needs at least one talker")
    acc = np.zeros(max(n, 0), dtype=np.float64)
    for t in talkers:
        a = np.asarray(t, dtype=np.float64).reshape(-1)
        p = active_power(a)
        if p <= 0:
            continue
        gain = 10.0 ** (float(rng.uniform(-3.0, 3.0)) / 20.0)
        acc += loop_to_length(a / math.sqrt(p), n, rng).astype(np.float64) * gain
    return _unit_rms(acc)


def noise_provider(
    babble_pool: Sequence[npt.NDArray[np.floating]] = (),
    load_file: Callable[[str], npt.NDArray[np.floating]] | None = None,
) -> NoiseFn:
    """A `noise` callable for `apply`: babble from `babble_pool`, files via `load_file`.

    'babble:<n> talkers' picks n distinct utterances of the pool (fewer if the pool is
    smaller) with the item's generator; any other source is a file path, loaded by
    `load_file` (mono, already at the audio's sample rate; cache it there) and looped
    or cropped to length. The pool must be the same on every run to reproduce.
    """

    def noise(source: str, n: int, rng: np.random.Generator) -> npt.NDArray[np.floating]:
        m = _BABBLE_RE.match(source)
        if m:
            if not babble_pool:
                raise ValueError("babble noise requested but the babble pool is empty")
            k = min(int(m.group(1)), len(babble_pool))
            idx = rng.choice(len(babble_pool), size=k, replace=False)
            return babble([babble_pool[int(i)] for i in idx], n, rng)
        if load_file is None:
            raise ValueError(f"noise source {source!r} needs `load_file`")
        return loop_to_length(load_file(source), n, rng)

    return noise


def active_power(x: npt.NDArray[np.floating], *, frame: int = 320, floor_db: float = 40.0) -> float:
    """Mean power over the frames within `floor_db` of the loudest (20 ms at 16 kHz)."""
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size == 0:
        return 0.0
    pad = (-a.size) % frame
    frames = np.concatenate([a, np.zeros(pad)]).reshape(-1, frame)
    counts = np.full(frames.shape[0], frame, dtype=np.float64)
    if pad:
        counts[-1] = frame - pad
    energy = (frames**2).sum(axis=1)
    power = energy / counts
    top = float(power.max())
    if top <= 0:
        return 0.0
    keep = power >= top * 10.0 ** (-floor_db / 10.0)
    return float(energy[keep].sum() / counts[keep].sum())


def noise_gain(
    speech: npt.NDArray[np.floating], noise: npt.NDArray[np.floating], snr_db: float
) -> float:
    """The factor for `noise` that puts it `snr_db` below the speech's active power."""
    ps = active_power(speech)
    pn = float(np.mean(np.asarray(noise, dtype=np.float64) ** 2)) if np.size(noise) else 0.0
    if ps <= 0 or pn <= 0:
        return 0.0
    return math.sqrt(ps / (pn * 10.0 ** (snr_db / 10.0)))


def mix_at_snr(
    speech: npt.NDArray[np.floating],
    noise: npt.NDArray[np.floating],
    snr_db: float,
    *,
    max_peak: float = 1.0,
) -> Audio:
    """speech + noise at `snr_db` (active speech power vs whole-noise power, see module doc).

    `noise` must be as long as `speech`. If the mix peaks above `max_peak` both are
    scaled down together, so the SNR is kept. Silent speech or noise: speech unchanged.
    """
    s = np.asarray(speech, dtype=np.float64).reshape(-1)
    nz = np.asarray(noise, dtype=np.float64).reshape(-1)
    if s.size != nz.size:
        raise ValueError(f"noise has {nz.size} samples, speech {s.size}")
    mix = s + noise_gain(s, nz, snr_db) * nz
    return _limit_peak(mix, max_peak)


def _unit_rms(x: npt.NDArray[np.floating]) -> Audio:
    a = np.asarray(x, dtype=np.float64)
    rms = math.sqrt(float(np.mean(a**2))) if a.size else 0.0
    return (a / rms if rms > 0 else a).astype(np.float32)


# ---------------------------------------------------------------------------- reverb


def synthetic_rir(rt60_s: float, sr: int, rng: np.random.Generator) -> Audio:
    """A room impulse response: direct path, early reflections, exponential noise tail.

    The direct path is at sample 0 (1.0). 3-8 early reflections fall between 2 and
    40 ms; the diffuse tail (Gaussian noise under a 60 dB / `rt60_s` envelope) starts
    at the first reflection with a 5 ms fade-in and is scaled to a direct-to-
    reverberant ratio drawn from `DRR_DB`. Length: 1.2 x RT60 (the tail is -72 dB).
    """
    if rt60_s <= 0:
        raise ValueError("rt60_s must be positive")
    length = max(math.ceil(1.2 * rt60_s * sr), int(0.05 * sr))
    t = np.arange(length, dtype=np.float64) / sr
    decay = 3.0 * math.log(10.0) / rt60_s  # amplitude: exp(-decay t) is -60 dB at rt60
    env = np.exp(-decay * t)

    n_early = int(rng.integers(3, 9))
    delays = np.sort(rng.uniform(0.002, 0.040, n_early))
    idx = np.minimum((delays * sr).astype(np.int64), length - 1)
    early = np.zeros(length)
    gains = rng.uniform(0.2, 0.7, n_early) * rng.choice([-1.0, 1.0], n_early)
    np.add.at(early, idx, gains * env[idx])

    onset = int(idx[0])
    ramp = np.clip((np.arange(length) - onset) / max(1.0, 0.005 * sr), 0.0, 1.0)
    tail = rng.standard_normal(length) * env * ramp
    reverb = early + tail
    drr_db = float(rng.uniform(*DRR_DB))
    energy = float(np.sum(reverb**2))
    reverb *= math.sqrt(10.0 ** (-drr_db / 10.0) / energy)
    h = reverb
    h[0] = 1.0
    return h.astype(np.float32)


def reverberate(x: npt.NDArray[np.floating], rir: npt.NDArray[np.floating]) -> Audio:
    """`x` convolved with `rir` (FFT), aligned on the RIR's peak, same length and RMS."""
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    h = np.asarray(rir, dtype=np.float64).reshape(-1)
    if a.size == 0 or h.size == 0:
        return a.astype(np.float32)
    lag = int(np.argmax(np.abs(h)))
    nfft = _fast_len(a.size + h.size - 1)
    y = np.fft.irfft(np.fft.rfft(a, nfft) * np.fft.rfft(h, nfft), nfft)[lag : lag + a.size]
    rms_in = math.sqrt(float(np.mean(a**2)))
    rms_out = math.sqrt(float(np.mean(y**2)))
    if rms_out > 0:
        y *= rms_in / rms_out
    return y.astype(np.float32)


def _fast_len(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (FFT-friendly)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


# ---------------------------------------------------------------------------- resampling


def change_speed(x: npt.NDArray[np.floating], factor: float, sr: int) -> Audio:
    """Play `x` `factor` times faster, like sox `speed`: pitch and tempo change together.

    The samples are resampled as if recorded at `factor * sr` (soxr, delay-free), so the
    duration becomes round(len / factor) at the same `sr`.
    """
    if factor <= 0:
        raise ValueError("speed factor must be positive")
    a = np.asarray(x, dtype=np.float32).reshape(-1)
    if factor == 1.0:
        return a
    return resample_to(a, factor * sr, sr, round(a.size / factor))


# ---------------------------------------------------------------------------- telephone


def telephone(x: npt.NDArray[np.floating], sr: int, *, mulaw: bool = True) -> Audio:
    """A narrowband telephone channel: 8 kHz, G.711 mu-law, 300-3400 Hz, back to `sr`.

    The band-pass is an FFT mask with raised-cosine edges (200-300 Hz, 3400-3600 Hz),
    applied after the mu-law quantiser so its noise is band-limited too. Length and
    active level are kept.
    """
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size == 0:
        return a.astype(np.float32)
    narrow = resample(a, sr, 8000).astype(np.float64) if sr != 8000 else a
    if mulaw:
        narrow = _mulaw_roundtrip(narrow)
    narrow = _band_mask(narrow, 8000, *TELEPHONE_BAND_HZ, edge_hz=100.0)
    y = resample(narrow, 8000, sr).astype(np.float64) if sr != 8000 else narrow
    y = _fit_length(y, a.size)
    p_in, p_out = active_power(a), active_power(y)
    if p_out > 0:
        y *= math.sqrt(p_in / p_out)
    return y.astype(np.float32)


def _mulaw_roundtrip(x: npt.NDArray[np.float64], mu: float = 255.0) -> npt.NDArray[np.float64]:
    """8-bit mu-law companding and expansion (G.711-like)."""
    c = np.clip(x, -1.0, 1.0)
    y = np.sign(c) * np.log1p(mu * np.abs(c)) / math.log1p(mu)
    q = np.round((y + 1.0) * 127.5) / 127.5 - 1.0
    return np.asarray(np.sign(q) * np.expm1(np.abs(q) * math.log1p(mu)) / mu, dtype=np.float64)


def _band_mask(
    x: npt.NDArray[np.float64], sr: int, low_hz: float, high_hz: float, *, edge_hz: float
) -> npt.NDArray[np.float64]:
    """Zero-phase band-pass by an FFT gain mask with raised-cosine edges."""
    pad = int(0.1 * sr)  # room for the mask's short impulse response: no wrap-around
    nfft = _fast_len(x.size + 2 * pad)
    spec = np.fft.rfft(np.concatenate([np.zeros(pad), x]), nfft)
    f = np.fft.rfftfreq(nfft, 1.0 / sr)
    lo = np.clip((f - (low_hz - edge_hz)) / edge_hz, 0.0, 1.0)
    hi = np.clip(((high_hz + 2 * edge_hz) - f) / (2 * edge_hz), 0.0, 1.0)
    gain = np.sin(0.5 * np.pi * lo) ** 2 * np.sin(0.5 * np.pi * hi) ** 2
    return np.fft.irfft(spec * gain, nfft)[pad : pad + x.size]


def _fit_length(y: npt.NDArray[np.float64], n: int) -> npt.NDArray[np.float64]:
    if y.size >= n:
        return y[:n]
    return np.concatenate([y, np.zeros(n - y.size)])


# ---------------------------------------------------------------------------- masking


def frequency_masking(seed: int, masks: int, max_width: int) -> FeatureTransform:
    """SpecAugment frequency masks over mel bins, the same for the same (seed, item_id).

    Each of `masks` masks has a width drawn from 1..`max_width` (capped at n_mels) and a
    uniform start; masked bins get the mean of that item's features. Returns a copy.
    """
    if masks < 0 or max_width < 1:
        raise ValueError("masks must be >= 0 and max_width >= 1")

    def transform(features: npt.NDArray[np.float32], item_id: str) -> npt.NDArray[np.float32]:
        return _mask(features, derive_seed(seed, item_id, "freq_mask"), masks, max_width)

    return transform


def masking_for(selected: Mapping[str, tuple[int, int]], seed: int) -> FeatureTransform:
    """A transform masking only the items in `selected` (item_id -> (masks, max_width)).

    Other items pass through untouched, so one ASR batch can mix masked and clean
    items; each masked item's masks depend on (seed, item_id) only, not on the batch.
    """
    chosen = dict(selected)

    def transform(features: npt.NDArray[np.float32], item_id: str) -> npt.NDArray[np.float32]:
        spec = chosen.get(item_id)
        if spec is None or spec[0] <= 0:
            return features
        masks, width = spec
        return _mask(features, derive_seed(seed, item_id, "freq_mask"), masks, max(1, width))

    return transform


def _mask(
    features: npt.NDArray[np.float32], seed: int, masks: int, max_width: int
) -> npt.NDArray[np.float32]:
    feats = np.array(features, dtype=np.float32, copy=True)
    if feats.ndim != 2 or feats.size == 0:
        raise ValueError(f"expected features (n_mels, frames), got shape {feats.shape}")
    n_mels = feats.shape[0]
    value = np.float32(feats.mean())
    rng = np.random.default_rng(seed)
    for _ in range(masks):
        width = int(rng.integers(1, min(max_width, n_mels) + 1))
        start = int(rng.integers(0, n_mels - width + 1))
        feats[start : start + width, :] = value
    return feats
