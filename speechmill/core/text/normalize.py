"""Named text normalisers. Every normalised column stores the name and version used."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version


@dataclass(frozen=True)
class Normalizer:
    """A callable normaliser with the name and package version to record beside its output."""

    name: str
    version: str
    fn: Callable[[str], str]

    def __call__(self, text: str) -> str:
        return " ".join(self.fn(text).split())


def _pkg_version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


@functools.cache
def get_normalizer(name: str) -> Normalizer:
    """`whisper-english` (Whisper's English normaliser), `whisper-basic`, or `lower`."""
    if name == "whisper-english":
        from whisper_normalizer.english import EnglishTextNormalizer

        return Normalizer(name, _pkg_version("whisper-normalizer"), EnglishTextNormalizer())
    if name == "whisper-basic":
        from whisper_normalizer.basic import BasicTextNormalizer

        return Normalizer(name, _pkg_version("whisper-normalizer"), BasicTextNormalizer())
    if name == "lower":
        return Normalizer(name, "1", str.lower)
    raise ValueError(f"unknown normaliser {name!r} (whisper-english, whisper-basic, lower)")
