"""Exceptions soundsim raises for bad input. Each message names the file or key at fault."""

from __future__ import annotations


class SoundsimError(Exception):
    """Base class: a problem with the user's input, reported without a traceback by the CLI."""


class ConfigError(SoundsimError):
    """The configuration is invalid (names the key and the allowed values)."""


class CollectionError(SoundsimError):
    """The collection (ground truth, vocabulary, ontology, audio folder) is inconsistent."""


class AudioError(SoundsimError):
    """An audio file cannot be used; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
