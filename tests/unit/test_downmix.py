"""Down-mix cancellation: stereo in opposite phase is decoded from its loudest channel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechmill.core.audio.io import read_span, transcode_to_flac


def _tone(seconds: float = 1.0, sr: int = 44100) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)


@pytest.mark.parametrize(
    ("subtype", "fmt"),
    [("PCM_16", "WAV"), ("PCM_U8", "WAV"), ("PCM_24", "FLAC"), ("FLOAT", "WAV")],
)
def test_opposite_phase_stereo_is_decoded_from_one_channel(
    tmp_path: Path, subtype: str, fmt: str
) -> None:
    x = _tone()
    src = tmp_path / f"a.{fmt.lower()}"
    sf.write(src, np.stack([x, -x], axis=1), 44100, subtype=subtype, format=fmt)
    info = transcode_to_flac(
        str(src), str(tmp_path / "a.flac"), min_duration_s=0.1, max_duration_s=60
    )
    assert info.downmix in ("channel0", "channel1")
    assert info.rms_dbfs > -30  # not silent
    audio = read_span(str(tmp_path / "a.flac"))
    assert len(audio) == info.num_samples and float(np.abs(audio).max()) > 0.2


def test_ordinary_stereo_keeps_the_mean_mix(tmp_path: Path) -> None:
    x = _tone()
    src = tmp_path / "b.wav"
    sf.write(src, np.stack([x, 0.3 * x], axis=1), 44100)
    info = transcode_to_flac(
        str(src), str(tmp_path / "b.flac"), min_duration_s=0.1, max_duration_s=60
    )
    assert info.downmix == "mean"


def test_mono_says_mono_and_silence_stays_silent(tmp_path: Path) -> None:
    sf.write(tmp_path / "m.wav", _tone(), 44100)
    info = transcode_to_flac(
        str(tmp_path / "m.wav"), str(tmp_path / "m.flac"), min_duration_s=0.1, max_duration_s=60
    )
    assert info.downmix == "mono"
    sf.write(tmp_path / "z.wav", np.zeros((44100, 2)), 44100)
    info = transcode_to_flac(
        str(tmp_path / "z.wav"), str(tmp_path / "z.flac"), min_duration_s=0.1, max_duration_s=60
    )
    assert info.downmix == "mean" and info.rms_dbfs == float("-inf")


def test_a_multichannel_file_with_one_inverted_pair_is_picked_by_loudness(tmp_path: Path) -> None:
    x = _tone()
    src = tmp_path / "c.wav"
    sf.write(src, np.stack([x, -x, 0 * x, 0 * x], axis=1), 44100, subtype="PCM_16")
    info = transcode_to_flac(
        str(src), str(tmp_path / "c.flac"), min_duration_s=0.1, max_duration_s=60
    )
    assert info.downmix in ("channel0", "channel1")
