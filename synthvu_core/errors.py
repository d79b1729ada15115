"""User-facing errors.

Every failure a user can cause (bad NIfTI, unknown label codes, a foreign checkpoint, an empty
selection...) raises a :class:`SynthVUError` whose message names the file and the problem. The CLI
prints it on one line and exits 2; the dashboard shows it with ``st.error``.
"""

from __future__ import annotations


class SynthVUError(Exception):
    """Base class of every error a user can cause."""


class DataError(SynthVUError):
    """A volume, label map or dataset is unusable."""


class CheckpointError(SynthVUError):
    """A generator folder, card or weight file is missing, invalid or foreign."""


class DatasetFolderError(CheckpointError):
    """A VU dataset folder given where a generator folder is expected."""


class ReportError(SynthVUError):
    """An evaluation report is missing, stale or belongs to another dataset."""


class SelectionError(SynthVUError):
    """A request selects nothing (zero samples, an unknown position, an empty split)."""


class OutputError(SynthVUError):
    """An output path cannot be written, has an unknown suffix, or holds something that is not ours."""


class DiskFullError(OutputError):
    """The disk filled while an output was written; the message names the path, the bytes needed and free."""

    def __init__(self, message: str, path: object = None) -> None:
        super().__init__(message)
        self.path = path
