"""The one error type of the tuning package: bad input a user can fix (storage, study)."""

from __future__ import annotations


class TuningError(Exception):
    """A storage that cannot be opened, a study that does not match the config, and the like.

    The CLI reports it as a user error (one line, exit 2); nothing in the study was changed.
    """
