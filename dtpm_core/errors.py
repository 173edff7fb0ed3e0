"""Exception types of the DTPM core.

Every message names the file or value at fault and says what to do about it, so that the CLI
and the app can show it to a person unchanged.
"""

from __future__ import annotations


class DTPMError(Exception):
    """Base class for every error the core raises on purpose."""


class ConfigError(DTPMError, ValueError):
    """A configuration value or override is unknown or out of range."""


class ImageReadError(DTPMError):
    """An image file is missing, unreadable, corrupt or of an unsupported kind."""


class ImageWriteError(DTPMError):
    """An image could not be written (bad format option, no space, no permission)."""


class WeightsError(DTPMError):
    """A weight file is missing, corrupt, of the wrong kind or version."""


class BaseMismatchError(WeightsError):
    """An adapter file was trained on a different base model than the one loaded."""


class Cancelled(DTPMError):
    """A long computation was stopped on request (the `should_stop` hook returned True)."""


class OutOfMemory(DTPMError):
    """Restoration ran out of memory even at the smallest tile size."""


class ModelOutputError(DTPMError):
    """The model produced NaN or infinite values (broken weights); the message names the file."""
