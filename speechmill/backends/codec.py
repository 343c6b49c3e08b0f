"""Lossy codec round trips in memory (PyAV): mp3, opus, aac, sample-aligned to the input.

`codec_roundtrip` encodes float32 mono audio, decodes it again and returns the
same number of samples at the same rate, aligned to the input sample for sample.
Rates the encoder does not take (opus only takes 8/12/16/24/48 kHz) and a
decoder's own output rate (FFmpeg decodes opus at 48 kHz) are bridged with the
delay-free `resample` (soxr) of the audio core.

Encoder delay: the mp3 (LAME header) and Ogg Opus (pre-skip) containers tell the
decoder how many priming samples to drop; ADTS AAC does not (1024 samples). To
be exact whatever the container does, the delay of each (codec, rate, bitrate)
is measured once by cross-correlating a noise-burst probe with its round trip,
cached, and removed; the output is then cropped or zero-padded to the input
length.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from speechmill.core.audio.io import resample

CodecName = Literal["mp3", "opus", "aac"]


@dataclass(frozen=True)
class _Spec:
    encoder: str
    container: str
    bitrate: int


SPECS: dict[str, _Spec] = {
    "mp3": _Spec("libmp3lame", "mp3", 32_000),
    "opus": _Spec("libopus", "ogg", 16_000),
    "aac": _Spec("aac", "adts", 32_000),
}
DEFAULT_BITRATES: dict[str, int] = {name: spec.bitrate for name, spec in SPECS.items()}
_MAX_DELAY_S = 0.25  # the largest encoder delay searched for when calibrating


class CodecError(RuntimeError):
    """A codec round trip failed (encoder missing, encode or decode error)."""


def codec_roundtrip(
    audio: npt.NDArray[np.floating], sr: int, codec: str, bitrate: int | None = None
) -> npt.NDArray[np.float32]:
    """`audio` (float32 mono at `sr`) through `codec` at `bitrate` bit/s and back.

    Defaults: mp3 32 kbit/s, opus 16 kbit/s, aac 32 kbit/s. The result has the
    input's rate and length, aligned to it. Raises ValueError for an unknown codec
    and CodecError when PyAV/FFmpeg fails.
    """
    if codec not in SPECS:
        raise ValueError(f"unknown codec {codec!r}; expected one of {sorted(SPECS)}")
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected mono audio (1-D), got shape {x.shape}")
    if x.size == 0:
        return x.copy()
    rate = int(bitrate or SPECS[codec].bitrate)
    enc_sr = _encoder_rate(codec, sr)
    delay = _delay(codec, sr, rate)
    y = _roundtrip_raw(x, sr, codec, rate, enc_sr)
    y = y[delay:] if delay >= 0 else np.concatenate([np.zeros(-delay, np.float32), y])
    if y.size >= x.size:
        return np.ascontiguousarray(y[: x.size], dtype=np.float32)
    return np.concatenate([y, np.zeros(x.size - y.size, np.float32)])


@functools.lru_cache(maxsize=64)
def _encoder_rate(codec: str, sr: int) -> int:
    """`sr` if the encoder takes it, else the lowest supported rate above it (or 48 kHz)."""
    import av

    try:
        rates = av.codec.Codec(SPECS[codec].encoder, "w").audio_rates
    except Exception as e:
        raise CodecError(f"{codec}: encoder {SPECS[codec].encoder} unavailable: {e}") from e
    if not rates or sr in rates:
        return sr
    higher = sorted(r for r in rates if r >= sr)
    return int(higher[0]) if higher else int(max(rates))


@functools.lru_cache(maxsize=64)
def _delay(codec: str, sr: int, bitrate: int) -> int:
    """Samples by which the decoded output lags the input, measured with a probe."""
    rng = np.random.default_rng(12345)
    n = sr  # 1 s: silence, a 0.2 s noise burst at 0.4 s, silence
    probe = np.zeros(n, dtype=np.float32)
    t0 = int(0.4 * sr)
    burst = rng.standard_normal(int(0.2 * sr)) * np.hanning(int(0.2 * sr)) * 0.3
    probe[t0 : t0 + burst.size] = burst.astype(np.float32)
    y = _roundtrip_raw(probe, sr, codec, bitrate, _encoder_rate(codec, sr))
    max_lag = int(_MAX_DELAY_S * sr)
    m = min(y.size, n + max_lag)
    nfft = 1 << (2 * m).bit_length()
    xc = np.fft.irfft(np.fft.rfft(y[:m], nfft) * np.conj(np.fft.rfft(probe, nfft)), nfft)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    scores = np.concatenate([xc[: max_lag + 1], xc[nfft - max_lag :]])
    return int(lags[int(np.argmax(scores))])


def _roundtrip_raw(
    x: npt.NDArray[np.float32], sr: int, codec: str, bitrate: int, enc_sr: int
) -> npt.NDArray[np.float32]:
    """Encode at `enc_sr` and decode; the decoded audio resampled to `sr`, unaligned."""
    import av

    spec = SPECS[codec]
    pcm = resample(x, sr, enc_sr) if enc_sr != sr else x
    try:
        buf = io.BytesIO()
        with av.open(buf, "w", format=spec.container) as out:
            stream: Any = out.add_stream(spec.encoder, rate=enc_sr)
            stream.bit_rate = bitrate
            stream.layout = "mono"
            planar = "fltp" in {f.name for f in stream.codec_context.codec.audio_formats}
            fmt = "fltp" if planar else "flt"
            stream.format = fmt
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm, dtype=np.float32).reshape(1, -1),
                format=fmt,
                layout="mono",
            )
            frame.sample_rate = enc_sr
            frame.pts = 0
            for packet in stream.encode(frame):
                out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        chunks: list[npt.NDArray[np.float32]] = []
        dec_sr = enc_sr
        with av.open(io.BytesIO(buf.getvalue()), "r", format=spec.container) as inp:
            for f in inp.decode(inp.streams.audio[0]):
                dec_sr = int(f.sample_rate)
                chunks.append(_as_float(f.to_ndarray()))
    except Exception as e:  # FFmpeg raises many error types
        raise CodecError(
            f"{codec} round trip at {bitrate} bit/s failed: {type(e).__name__}: {e}"
        ) from e
    if not chunks:
        raise CodecError(f"{codec} round trip decoded no audio")
    y = np.concatenate(chunks)
    return resample(y, dec_sr, sr) if dec_sr != sr else y


def _as_float(arr: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """A decoded mono frame (planar (1, n) or packed (1, n)) as float32 in [-1, 1]."""
    a = np.asarray(arr).reshape(-1)
    if np.issubdtype(a.dtype, np.integer):
        return (a.astype(np.float64) / float(-np.iinfo(a.dtype).min)).astype(np.float32)
    return a.astype(np.float32, copy=False)
