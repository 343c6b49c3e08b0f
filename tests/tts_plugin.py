"""A TTS plug-in for the tests: the adapter shape docs/synth.md describes, over espeak-ng.

A real adapter wraps a GPU engine (CosyVoice, XTTS, F5-TTS, Kokoro ...) the same way:
load once in __init__, return float32 mono audio and its rate from synthesize().
"""

from __future__ import annotations

from speechmill.backends.tts import EspeakTts, Speech, VoiceParams


class SlowEspeak:
    engine = "slow-espeak"

    def __init__(self) -> None:
        self._inner = EspeakTts()

    def synthesize(self, text: str, params: VoiceParams) -> Speech:
        slow = VoiceParams(voice=params.voice, length_scale=1.3 * params.length_scale)
        return self._inner.synthesize(text, slow)
