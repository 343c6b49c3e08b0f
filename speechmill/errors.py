"""Typed errors with messages that tell the user what to do."""


class SpeechmillError(Exception):
    """Base class: the CLI prints these without a traceback."""


class ConfigError(SpeechmillError):
    """The config is invalid; the message names key, file and line."""


class StoreError(SpeechmillError):
    """The dataset root is unusable or inconsistent."""


class LockedError(StoreError):
    """Another refresh holds the dataset lock."""


class ModelError(SpeechmillError):
    """A model could not be found or loaded."""
