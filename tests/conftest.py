from __future__ import annotations

import logging
from pathlib import Path

import pytest

from speechmill.config import Config, load_config

logging.getLogger("apache_beam").setLevel(logging.ERROR)


def make_config(folder: Path | str, extra: str = "") -> Config:
    text = f"sources:\n  - kind: local\n    name: test\n    paths: [{folder}]\n" + extra
    return load_config(text=text)


@pytest.fixture
def speech_dir(tmp_path: Path) -> Path:
    """Three short espeak-ng clips (fast to make; real speech for VAD)."""
    from tests.audio_fixtures import speech_clip, write_wav

    d = tmp_path / "in"
    d.mkdir()
    for i in range(3):
        write_wav(d / f"clip{i}.wav", speech_clip(sentence=i), 16000)
    return d


from hypothesis import settings  # noqa: E402

settings.register_profile("speechmill", deadline=None, max_examples=100)
settings.load_profile("speechmill")
