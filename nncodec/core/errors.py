"""Exceptions that nncodec reports to users as one clear line.

Every error a user can cause with bad input (a corrupt, truncated or foreign file, a file made by a
newer format, a missing model) is an ``NncodecError``. The CLI prints ``nncodec: NAME: message`` and
exits 1; anything else escaping is a bug.
"""

from __future__ import annotations


class NncodecError(Exception):
    """Base class of every error caused by the input or the environment, not by a bug."""


class NotNncodecError(NncodecError):
    """The data does not start with the nncodec magic bytes."""


class TruncatedError(NncodecError):
    """The data ends in the middle of a frame."""


class CorruptError(NncodecError):
    """A checksum, size or structural check failed."""


class UnsupportedFormatError(NncodecError):
    """The frame was written by a newer format version or uses features this build does not know."""


class ModelError(NncodecError):
    """A model the data needs is missing, or its weights do not match the recorded hash."""


class MemoryLimitError(NncodecError):
    """Coding the data would need more memory than the limit the user set (-M)."""


class CodecUnavailableError(NncodecError):
    """A codec was requested (by name or by a frame) that this build does not provide."""
