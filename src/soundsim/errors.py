"""Exceptions soundsim raises for bad input. Each message names the file or key at fault."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class SoundsimError(Exception):
    """Base class: a problem with the user's input, reported without a traceback by the CLI."""


class ConfigError(SoundsimError):
    """The configuration is invalid (names the key and the allowed values)."""


class CollectionError(SoundsimError):
    """The collection (ground truth, vocabulary, ontology, audio folder) is inconsistent."""


class InputError(SoundsimError, ValueError):
    """A bad argument to the Python API (:mod:`soundsim.api`); the message names
    the argument and the clip(s) at fault. A :class:`ValueError` too."""


class AudioError(SoundsimError):
    """An audio file cannot be used; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def first_few(items: Iterable[Any], k: int = 5, quote: bool = False) -> str:
    """``"a, b, c, d, e, ... (3 more)"``: the first ``k`` items of a list for an
    error message (strings in quotes with ``quote``)."""
    items = list(items)
    more = f", ... ({len(items) - k} more)" if len(items) > k else ""
    return ", ".join(repr(x) if quote and isinstance(x, str) else str(x) for x in items[:k]) + more
