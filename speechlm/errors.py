"""User-facing errors.

A :class:`SpeechLMError` is a problem with what the user handed us (a missing file, bad audio,
an incompatible model). The CLI prints its message on one line and exits with code 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SpeechLMError(Exception):
    """Base class for errors caused by user input; ``str(err)`` is a one-line explanation."""


class AudioError(SpeechLMError, ValueError):
    """An audio file is missing, unreadable, empty, too short or contains non-finite samples."""


class ModelError(SpeechLMError, ValueError):
    """A model directory is missing, malformed, or incompatible with another stage."""


class DataError(SpeechLMError, ValueError):
    """A manifest, unit file or corpus is missing or malformed."""
