"""Opening media cheaply without changing what it decodes to (core/audio/io.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechmill.core.audio import io
from speechmill.core.audio.io import (
    FLAC_WRITE_SAMPLES,
    demux_options,
    read_span,
    transcode_to_flac,
)

FAST = {"max_probe_packets": "0"}


def _noise(n: int, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(n)
    x = 0.2 * np.sin(np.arange(n) * 0.05) + 0.05 * rng.standard_normal(n)
    return np.stack([x, 0.5 * x], axis=1) if channels == 2 else x


@pytest.mark.parametrize(
    ("channels", "subtype", "fmt", "expected"),
    [
        (1, "PCM_16", "WAV", FAST),
        (1, "PCM_16", "WAVEX", FAST),  # WAVE_FORMAT_EXTENSIBLE with a PCM sub-format
        (2, "PCM_16", "WAV", {}),  # two channels can carry a DTS/AC-3 bitstream: probed
        (1, "PCM_24", "WAV", {}),
        (1, "FLOAT", "WAV", {}),
        (1, "PCM_16", "FLAC", {}),
    ],
)
def test_only_mono_16_bit_pcm_wav_skips_the_bitstream_probe(
    tmp_path: Path, channels: int, subtype: str, fmt: str, expected: dict[str, str]
) -> None:
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, _noise(8000, channels), 16000, subtype=subtype, format=fmt)
    assert demux_options(str(path)) == expected


def test_files_that_are_not_wav_or_not_there_get_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt not really")
    (tmp_path / "text.wav").write_text("hello")
    for name in ("broken.wav", "text.wav", "missing.wav"):
        assert demux_options(str(tmp_path / name)) == {}


@pytest.mark.parametrize(
    ("rate", "seconds"), [(8000, 3.3), (16000, 3.3), (22050, 3.3), (44100, 3.3), (48000, 41.0)]
)
def test_the_short_probe_decodes_to_the_same_samples(
    tmp_path: Path, rate: int, seconds: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "a.wav"
    sf.write(src, _noise(int(seconds * rate)), rate, subtype="PCM_16")
    fast = transcode_to_flac(
        str(src), str(tmp_path / "fast.flac"), min_duration_s=0.1, max_duration_s=60
    )
    monkeypatch.setattr(io, "demux_options", lambda _src: {})
    slow = transcode_to_flac(
        str(src), str(tmp_path / "slow.flac"), min_duration_s=0.1, max_duration_s=60
    )
    assert fast == slow
    assert np.array_equal(
        read_span(str(tmp_path / "fast.flac")), read_span(str(tmp_path / "slow.flac"))
    )


def test_flac_written_in_blocks_holds_every_sample(tmp_path: Path) -> None:
    """16 kHz mono 16-bit in, so the stored FLAC must equal the input sample for sample,
    across several write blocks and a partial last one."""
    n = 2 * FLAC_WRITE_SAMPLES + 12345
    pcm = (_noise(n) * 32767).astype(np.int16)
    src = tmp_path / "a.wav"
    sf.write(src, pcm, 16000, subtype="PCM_16")
    info = transcode_to_flac(
        str(src), str(tmp_path / "a.flac"), min_duration_s=0.1, max_duration_s=60
    )
    assert info.num_samples == n
    got = sf.read(str(tmp_path / "a.flac"), dtype="int16")[0]
    assert np.array_equal(got, pcm)
