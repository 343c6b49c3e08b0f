"""In-memory audio helpers: FFmpeg resampling and decoding noise files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from speechmill.core.audio.io import AudioRejected, load_audio, resample


def test_resample_keeps_duration_and_pitch() -> None:
    t = np.arange(22050 * 2) / 22050
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    y = resample(x, 22050, 16000)
    assert y.dtype == np.float32 and abs(y.size - 32000) <= 1
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 16000 / y.size - 440) < 1.0
    assert resample(x, 22050, 22050) is not None and resample(x, 22050, 22050).size == x.size


def test_resample_removes_what_the_new_rate_cannot_hold() -> None:
    t = np.arange(22050) / 22050
    x = np.sin(2 * np.pi * 10000 * t).astype(np.float32)  # above the 8 kHz Nyquist of 16 kHz
    y = resample(x, 22050, 16000)
    assert float(np.sqrt(np.mean(y[200:-200] ** 2))) < 0.05


def test_load_audio_decodes_any_rate_to_16k_mono(tmp_path) -> None:
    stereo = np.stack([np.full(44100, 0.25), np.full(44100, -0.25)], axis=1).astype(np.float32)
    path = tmp_path / "n.flac"
    sf.write(str(path), stereo, 44100)
    audio = load_audio(str(path))
    assert audio.dtype == np.float32 and abs(audio.size - 16000) <= 32
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    with pytest.raises(AudioRejected):
        load_audio(str(bad))
