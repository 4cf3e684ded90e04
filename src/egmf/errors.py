"""Errors a user can act on: each names the file, the field and what was expected."""

from __future__ import annotations

from pathlib import Path


class EGMFError(Exception):
    """Base class for every error EGMF raises on purpose."""


class DataFormatError(EGMFError, ValueError):
    """A dataset file does not match its documented format.

    The message always reads ``<file>: <field>: expected <expected>, got <got>`` so a user can find
    and fix the problem without reading our code.
    """

    def __init__(self, file: str | Path, field: str, expected: str, got: object = None):
        self.file = str(file)
        self.field = field
        self.expected = expected
        self.got = got
        msg = f"{self.file}: {field}: expected {expected}"
        if got is not None:
            msg += f", got {got}"
        super().__init__(msg)


class UnsafePickleError(DataFormatError):
    """A pickle asked to build an object that is not a numpy array or a builtin."""


class ConfigError(EGMFError, ValueError):
    """A config key or value is invalid; the message lists the valid choices."""


class RunFolderExistsError(EGMFError, FileExistsError):
    """Refuses to overwrite results a user already produced."""
