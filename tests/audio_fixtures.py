"""Generates every audio fixture the tests use (nothing is copied in).

    python -m tests.audio_fixtures OUT_DIR     # writes the bad-input set and speech clips

Speech comes from espeak-ng (fast, deterministic) or piper (neural, for the
real-model tests); everything else is synthesised with NumPy and written with
soundfile / PyAV.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf

SENTENCES = [
    "The river kept its promise and flooded the lower fields by morning.",
    "Seven violins were tuned before the concert hall opened its doors.",
    "A quiet engineer wrote the schedule on the back of an envelope.",
    "Every lighthouse on this coast is painted red and white.",
]


def espeak_speech(
    text: str, voice: str = "en-us", variant: str | None = None
) -> tuple[np.ndarray, int]:
    from speechmill.backends.tts import EspeakTts, VoiceParams

    s = EspeakTts().synthesize(text, VoiceParams(voice, variant=variant))
    return s.audio, s.sample_rate


def piper_speech(text: str, length_scale: float = 1.0) -> tuple[np.ndarray, int]:
    from speechmill.backends.tts import VoiceParams

    s = _piper().synthesize(
        text, VoiceParams("joe", length_scale=length_scale, noise_scale=0.0, noise_w_scale=0.0)
    )
    return s.audio, s.sample_rate


_PIPER = []


def _piper():  # one voice per process
    from speechmill.backends.tts import PiperTts

    if not _PIPER:
        _PIPER.append(PiperTts())
    return _PIPER[0]


def resample(audio: np.ndarray, src: int, dst: int) -> np.ndarray:
    n = round(len(audio) * dst / src)
    return np.interp(np.linspace(0, len(audio) - 1, n), np.arange(len(audio)), audio).astype(
        np.float32
    )


def speech_clip(seconds_pad: float = 0.3, sentence: int = 0, rate: int = 16000) -> np.ndarray:
    audio, sr = espeak_speech(SENTENCES[sentence % len(SENTENCES)])
    audio = resample(audio, sr, rate)
    pad = np.zeros(int(seconds_pad * rate), dtype=np.float32)
    return np.concatenate([pad, audio, pad])


def write_wav(
    path: Path, audio: np.ndarray, rate: int, subtype: str = "PCM_16", channels: int = 1
) -> Path:
    data = audio if channels == 1 else np.stack([audio * (0.9**c) for c in range(channels)], axis=1)
    sf.write(str(path), data, rate, subtype=subtype)
    return path


def write_mp3(path: Path, audio: np.ndarray, rate: int) -> Path:
    import av

    with av.open(str(path), "w", format="mp3") as out:
        st = out.add_stream("libmp3lame", rate=rate, layout="mono")
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for p in st.encode(frame):
            out.mux(p)
        for p in st.encode(None):
            out.mux(p)
    return path


def write_encoded(path: Path, audio: np.ndarray, rate: int, fmt: str, codec: str) -> Path:
    """Encode with PyAV: ("ogg", "libopus") for Opus, ("ipod"/"mp4", "aac") for M4A, ..."""
    import av

    target = 48000 if codec in ("libopus", "opus") else rate
    if target != rate:
        audio = resample(audio, rate, target)
    with av.open(str(path), "w", format=fmt) as out:
        st = out.add_stream(codec, rate=target, layout="mono")
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = target
        for p in st.encode(frame):
            out.mux(p)
        for p in st.encode(None):
            out.mux(p)
    return path


def write_long_silence(path: Path, seconds: float, rate: int = 16000) -> Path:
    """A long silent FLAC, written in blocks (tiny on disk)."""
    block = np.zeros(rate * 60, dtype=np.int16)
    with sf.SoundFile(
        str(path), "w", samplerate=rate, channels=1, subtype="PCM_16", format="FLAC"
    ) as f:
        left = int(seconds * rate)
        while left > 0:
            n = min(left, block.size)
            f.write(block[:n])
            left -= n
    return path


def bad_inputs(out: Path, *, long_silence_s: float = 2 * 3600) -> dict[str, Path]:
    """The bad-input matrix of the dataset-contract issue: name -> file."""
    out.mkdir(parents=True, exist_ok=True)
    speech = speech_clip(sentence=1)
    files: dict[str, Path] = {}
    files["ok_16k"] = write_wav(out / "ok_16k.wav", speech, 16000)
    files["u8"] = write_wav(out / "u8.wav", speech, 16000, "PCM_U8")
    files["s24"] = write_wav(out / "s24.wav", speech, 16000, "PCM_24")
    files["s32"] = write_wav(out / "s32.wav", speech, 16000, "PCM_32")
    files["float"] = write_wav(out / "float.wav", speech, 16000, "FLOAT")
    files["rate_8k"] = write_wav(out / "rate_8k.wav", resample(speech, 16000, 8000), 8000)
    files["rate_48k"] = write_wav(out / "rate_48k.wav", resample(speech, 16000, 48000), 48000)
    files["stereo"] = write_wav(out / "stereo.wav", speech, 16000, channels=2)
    files["six_ch"] = write_wav(out / "six_ch.wav", speech, 16000, channels=6)
    files["mp3"] = write_mp3(out / "speech.mp3", speech, 16000)
    whole = (out / "ok_16k.wav").read_bytes()
    (out / "truncated.wav").write_bytes(whole[: len(whole) // 2])
    files["truncated"] = out / "truncated.wav"
    mp3 = (out / "speech.mp3").read_bytes()
    (out / "truncated.mp3").write_bytes(mp3[: len(mp3) // 3])
    files["truncated_mp3"] = out / "truncated.mp3"
    rng = np.random.default_rng(7)
    (out / "corrupt.wav").write_bytes(
        whole[:44] + rng.integers(0, 256, 20000, dtype=np.uint8).tobytes()
    )
    files["corrupt"] = out / "corrupt.wav"
    (out / "random.mp3").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    files["random"] = out / "random.mp3"
    (out / "zero.wav").write_bytes(b"")
    files["zero"] = out / "zero.wav"
    (out / "text.wav").write_text("this is not audio, just text with a .wav name\n" * 20)
    files["text"] = out / "text.wav"
    files["tiny"] = write_wav(out / "tiny.wav", speech[:800], 16000)
    files["silent_2h"] = write_long_silence(out / "silent_2h.flac", long_silence_s)
    return files


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "fixtures")
    for name, path in bad_inputs(target).items():
        print(f"{name:14s} {path}")
