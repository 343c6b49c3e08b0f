"""Audio I/O: hashing, decoding anything PyAV reads to 16 kHz mono FLAC, reading spans.

Decoding streams frame by frame (memory stays flat for hours of audio) and stops
as soon as a limit is passed. Every failure is an `AudioRejected` with a reject
category, never a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import tempfile
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from speechmill.core.audio.chunks import SAMPLE_RATE
from speechmill.core.osutil import default_file_mode
from speechmill.schemas import Category, Dropped

_BLOCK = 1 << 20
CANCEL_DB = 20.0
"""A down-mix this many dB quieter than its loudest channel has cancelled (e.g. R = -L)."""
FLAC_WRITE_SAMPLES = 1 << 16
"""Samples gathered before one FLAC write (~4 s): one encoder call per block, not per frame."""
_WAVE_PCM = 1
_FILE_MODE = default_file_mode()
_WAVE_EXTENSIBLE = 0xFFFE


class AudioRejected(Dropped):
    """An input that cannot become a recording: its `Drop` (category, reason, detail)."""

    def __init__(self, category: Category, reason: str, detail: str | None = None) -> None:
        super().__init__(category, reason, detail)


@dataclass(frozen=True)
class Transcoded:
    num_samples: int
    orig_sample_rate: int
    orig_channels: int
    orig_codec: str
    orig_container: str
    orig_sample_format: str
    rms_dbfs: float
    downmix: str = "mean"

    @property
    def duration_s(self) -> float:
        return self.num_samples / SAMPLE_RATE


def sha256_file(path: str) -> tuple[str, int]:
    """(hex digest, size in bytes) of a local file, read in blocks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def dbfs(sum_squares: float, n: int) -> float:
    """RMS level in dB relative to full scale; -inf for digital silence."""
    if n <= 0 or sum_squares <= 0:
        return -math.inf
    return 10.0 * math.log10(sum_squares / n)


def _layout_name(cc: Any) -> tuple[int, str | None]:
    layout = getattr(cc, "layout", None)
    channels = int(getattr(layout, "nb_channels", 0) or getattr(cc, "channels", 0) or 0)
    return channels, getattr(layout, "name", None)


def channel_planes(frame: Any) -> npt.NDArray[np.float64]:
    """A decoded frame as float64 of shape (channels, samples), zero-centred."""
    arr: npt.NDArray[Any] = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        arr = arr.reshape(-1, channels).T
    out: npt.NDArray[np.float64] = arr.astype(np.float64)
    if arr.dtype == np.uint8:
        out -= 128.0
    return out


class ChannelEnergy:
    """Per-channel and mean-mix energy of a multi-channel stream, to detect cancellation."""

    def __init__(self) -> None:
        self.channels: npt.NDArray[np.float64] | None = None
        self.mix = 0.0

    def add(self, planes: npt.NDArray[np.float64]) -> None:
        energy = np.einsum("ij,ij->i", planes, planes)
        self.channels = energy if self.channels is None else self.channels + energy
        m = planes.mean(axis=0)
        self.mix += float(np.dot(m, m))

    def cancelled_channel(self) -> int | None:
        """The loudest channel if the mean mix is CANCEL_DB below it, else None."""
        if self.channels is None or self.channels.size < 2:
            return None
        k = int(np.argmax(self.channels))
        loudest = float(self.channels[k])
        if loudest <= 0:
            return None
        if self.mix <= loudest * 10 ** (-CANCEL_DB / 10):
            return k
        return None


def _riff_fmt(head: bytes) -> tuple[int, int, int] | None:
    """(format tag, channels, bits per sample) of a RIFF/WAVE header, or None."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(head):
        size = int.from_bytes(head[pos + 4 : pos + 8], "little")
        if head[pos : pos + 4] == b"fmt ":
            body = head[pos + 8 : pos + 8 + size]
            if len(body) < 16:
                return None
            tag = int.from_bytes(body[0:2], "little")
            if tag == _WAVE_EXTENSIBLE and len(body) >= 26:
                tag = int.from_bytes(body[24:26], "little")  # the sub-format GUID's tag
            return tag, int.from_bytes(body[2:4], "little"), int.from_bytes(body[14:16], "little")
        pos += 8 + size + (size & 1)
    return None


def demux_options(src: str) -> dict[str, str]:
    """FFmpeg demuxer options for opening `src` (empty: FFmpeg's defaults).

    FFmpeg opens a 16-bit PCM WAV by running every format prober over its first 32
    packets, looking for a DTS or AC-3 bitstream carried as PCM (S/PDIF in WAV), and
    that costs more than decoding a clip of a few seconds. Such a bitstream needs two
    channels, so for a mono 16-bit PCM WAV the probe stops after the first packet
    (`max_probe_packets=0`: FFmpeg still probes that one); the file decodes to the same
    samples. Every other file is opened with the defaults.
    """
    try:
        with open(src, "rb") as f:
            head = f.read(4096)
    except OSError:
        return {}
    fmt = _riff_fmt(head)
    if fmt == (_WAVE_PCM, 1, 16):
        return {"max_probe_packets": "0"}
    return {}


def transcode_to_flac(
    src: str,
    dst: str,
    *,
    min_duration_s: float,
    max_duration_s: float,
) -> Transcoded:
    """Decode `src` to 16 kHz mono 16-bit FLAC at `dst` (written atomically).

    Channels are down-mixed by FFmpeg's resampler. When that mix cancels (channels in
    opposite phase, e.g. right = -left, so the mix is digital silence), the file is
    decoded again from its loudest channel alone; `Transcoded.downmix` says which.

    Raises AudioRejected (undecodable, no_audio, too_short, too_long).
    """
    import av
    import soundfile as sf

    try:
        container = av.open(src, metadata_errors="ignore", options=demux_options(src))
    except Exception as e:  # PyAV raises many FFmpeg error types
        raise AudioRejected(
            Category.UNDECODABLE, "not a media file PyAV can open", f"{type(e).__name__}: {e}"
        ) from None
    tmp_path = None
    try:
        if not container.streams.audio:
            raise AudioRejected(Category.NO_AUDIO, "the file has no audio stream")
        stream = container.streams.audio[0]
        cc = stream.codec_context
        channels, _layout = _layout_name(cc)
        orig_rate = int(cc.sample_rate or stream.rate or 0)
        codec = str(cc.name or "unknown")
        fmt_name = str(container.format.name or "unknown")
        sample_fmt = str(cc.format.name if cc.format is not None else "unknown")
        declared = container.duration / 1e6 if container.duration else None
        if declared is not None and declared > max_duration_s * 1.05 + 1:
            raise AudioRejected(
                Category.TOO_LONG,
                f"declared duration {declared:.0f} s is over the {max_duration_s:.0f} s limit",
            )
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(prefix=".tmp-", suffix=".flac", dir=os.path.dirname(dst))
        os.fchmod(fd, _FILE_MODE)  # the umask's mode, not mkstemp's 0600
        os.close(fd)
        max_samples = int(max_duration_s * SAMPLE_RATE)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        n = 0
        sq = 0.0
        with sf.SoundFile(
            tmp_path, "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16", format="FLAC"
        ) as out:
            pending: list[npt.NDArray[np.int16]] = []
            held = 0

            def flush() -> None:
                nonlocal held
                if pending:
                    out.write(pending[0] if len(pending) == 1 else np.concatenate(pending))
                    pending.clear()
                    held = 0

            def write(frames: list[Any]) -> None:
                nonlocal n, sq, held
                for rf in frames:
                    pcm = rf.to_ndarray().reshape(-1).astype(np.int16, copy=False)
                    pending.append(pcm)
                    held += pcm.size
                    n += pcm.size
                    f = pcm.astype(np.float64) / 32768.0
                    sq += float(np.dot(f, f))
                if n > max_samples:
                    raise AudioRejected(
                        Category.TOO_LONG,
                        f"longer than the {max_duration_s:.0f} s limit (audio.max_duration_s)",
                    )
                if held >= FLAC_WRITE_SAMPLES:
                    flush()

            energy = ChannelEnergy()
            try:
                for frame in container.decode(stream):
                    frame.pts = None
                    if len(frame.layout.channels) > 1:
                        energy.add(channel_planes(frame))
                    write(resampler.resample(frame))
                write(resampler.resample(None))
                flush()
            except AudioRejected:
                raise
            except Exception as e:
                raise AudioRejected(
                    Category.UNDECODABLE,
                    "decoding failed (corrupt or truncated media)",
                    f"{type(e).__name__}: {e}",
                ) from None
        downmix = "mono" if channels <= 1 else "mean"
        chosen = energy.cancelled_channel()
        if chosen is not None:
            n, sq = _one_channel_to_flac(src, tmp_path, chosen)
            downmix = f"channel{chosen}"
        if orig_rate <= 0 or n == 0:
            raise AudioRejected(Category.UNDECODABLE, "no audio samples could be decoded")
        if n < min_duration_s * SAMPLE_RATE:
            raise AudioRejected(
                Category.TOO_SHORT,
                f"{n / SAMPLE_RATE:.2f} s is under the {min_duration_s} s minimum",
            )
        os.replace(tmp_path, dst)
        tmp_path = None
        return Transcoded(
            num_samples=n,
            orig_sample_rate=orig_rate,
            orig_channels=channels,
            orig_codec=codec,
            orig_container=fmt_name,
            orig_sample_format=sample_fmt,
            rms_dbfs=dbfs(sq, n),
            downmix=downmix,
        )
    finally:
        container.close()
        if tmp_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_path)


def _one_channel_to_flac(src: str, dst: str, channel: int) -> tuple[int, float]:
    """Decode channel `channel` of `src` alone to 16 kHz mono FLAC; (samples, sum of squares).

    Only called after a first pass decoded the same file, so errors are not expected.
    """
    import av
    import soundfile as sf

    n = 0
    sq = 0.0
    with (
        av.open(src, metadata_errors="ignore") as container,
        sf.SoundFile(
            dst, "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16", format="FLAC"
        ) as out,
    ):
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        scale: float | None = None
        for frame in [*container.decode(stream), None]:
            if frame is None:
                frames = resampler.resample(None)
            else:
                planes = channel_planes(frame)
                if scale is None:
                    scale = _full_scale(frame.format.name)
                mono = av.AudioFrame.from_ndarray(
                    (planes[channel] / scale).astype(np.float32).reshape(1, -1),
                    format="flt",
                    layout="mono",
                )
                mono.sample_rate = frame.sample_rate
                frames = resampler.resample(mono)
            for rf in frames:
                pcm = rf.to_ndarray().reshape(-1).astype(np.int16, copy=False)
                out.write(pcm)
                n += pcm.size
                f = pcm.astype(np.float64) / 32768.0
                sq += float(np.dot(f, f))
    return n, sq


def _full_scale(sample_format: str) -> float:
    """The value of full scale of a sample format (float formats: 1)."""
    base = sample_format.rstrip("p")
    return {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9.223372036854776e18}.get(
        base, 1.0
    )


def read_span(
    source: str | IO[bytes], start: int = 0, stop: int | None = None
) -> npt.NDArray[np.float32]:
    """Samples [start, stop) of a stored FLAC as float32 in [-1, 1].

    `source` is a local path or a seekable binary file (the store's `open`: for an
    object store only the byte ranges the decoder seeks to are fetched).
    """
    import soundfile as sf

    if not isinstance(source, str):
        source.seek(0)
    with sf.SoundFile(source) as f:
        if f.samplerate != SAMPLE_RATE or f.channels != 1:
            name = source if isinstance(source, str) else getattr(source, "path", "audio")
            raise ValueError(f"{name}: expected 16 kHz mono, got {f.samplerate} Hz x{f.channels}")
        f.seek(start)
        frames = -1 if stop is None else max(0, stop - start)
        data = f.read(frames, dtype="float32", always_2d=False)
    return np.asarray(data, dtype=np.float32)


def load_audio(path: str, max_duration_s: float = 600.0) -> npt.NDArray[np.float32]:
    """Decode any file PyAV reads to 16 kHz mono float32 in memory (noise files, tests).

    Raises AudioRejected like `transcode_to_flac` (undecodable, no audio, too long).
    """
    import av

    try:
        container = av.open(path, metadata_errors="ignore", options=demux_options(path))
    except Exception as e:
        raise AudioRejected(
            Category.UNDECODABLE, "not a media file PyAV can open", f"{type(e).__name__}: {e}"
        ) from None
    pieces: list[npt.NDArray[np.float32]] = []
    total = 0
    with container:
        if not container.streams.audio:
            raise AudioRejected(Category.NO_AUDIO, "the file has no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        try:
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    arr = out.to_ndarray().reshape(-1).astype(np.float32)
                    pieces.append(arr)
                    total += arr.size
                if total > max_duration_s * SAMPLE_RATE:
                    raise AudioRejected(
                        Category.TOO_LONG, f"longer than {max_duration_s:.0f} s", path
                    )
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray().reshape(-1).astype(np.float32))
        except AudioRejected:
            raise
        except Exception as e:
            raise AudioRejected(
                Category.UNDECODABLE, "decoding failed", f"{type(e).__name__}: {e}"
            ) from None
    if not pieces:
        raise AudioRejected(Category.EMPTY, "no audio samples")
    return np.concatenate(pieces)


def resample(
    audio: npt.NDArray[np.floating], sr_in: float, sr_out: float
) -> npt.NDArray[np.float32]:
    """Mono float32 from sr_in to sr_out (soxr, high quality, no delay), exactly
    round(len * sr_out / sr_in) samples."""
    return resample_to(audio, sr_in, sr_out, round(np.size(audio) * sr_out / sr_in))


def resample_to(
    audio: npt.NDArray[np.floating], sr_in: float, sr_out: float, n_out: int
) -> npt.NDArray[np.float32]:
    """`resample` with the output length given (trimmed or zero-padded to `n_out`)."""
    import soxr

    if sr_in <= 0 or sr_out <= 0:
        raise ValueError("sample rates must be positive")
    a = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
    if sr_in == sr_out or a.size == 0:
        y = a
    else:
        y = np.asarray(soxr.resample(a, sr_in, sr_out, quality="HQ"), dtype=np.float32)
    if y.size >= n_out:
        return y[:n_out]
    return np.concatenate([y, np.zeros(n_out - y.size, np.float32)])
