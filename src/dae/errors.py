"""dae's own error types: what a user can fix. The CLI prints these as one line and exits 1
(2 for a bad config or name); any other exception is a bug and keeps its traceback."""

from __future__ import annotations


class UserError(Exception):
    """Base of the errors the CLI reports as `dae CMD: error: MESSAGE`."""

    exit_code = 1


class ConfigError(UserError, ValueError):
    """A config key is unknown, mistyped or out of range; the message starts with the key."""

    exit_code = 2

    def __init__(self, key: str, message: str):
        self.key = key
        self.detail = message
        super().__init__(f"{key}: {message}" if key else message)


class UnknownNameError(UserError, KeyError):
    """A short name (dataset, preset, kind, metric group) that no table lists."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the command needs is not there; the message names it."""


class RunFolderError(UserError, FileExistsError):
    """A run folder is missing, or already holds a run that would be overwritten."""


class OutputExistsError(UserError, FileExistsError):
    """An output folder already holds what the command would overwrite; the message names it."""


class CorruptFileError(UserError, ValueError):
    """A file dae wrote is unreadable (cut short, or edited by hand); the message names the fix."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, truncated, unsafe or from another model; the message names it."""


class DataFormatError(UserError, ValueError):
    """A data file is missing, truncated or not in the expected format; the message names it."""


class NonFiniteLossError(UserError, FloatingPointError):
    """A loss became NaN/inf; the last good checkpoint is kept."""


class DownloadError(UserError, OSError):
    """A download failed (offline, a proxy, a wrong --base-url); the message names the URL."""
