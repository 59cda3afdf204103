"""User errors: the CLI prints their message and exits 2, without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input a user can fix (params, names, missing files)."""


def user_error_types() -> tuple[type[BaseException], ...]:
    """Library exceptions that mean "bad input", not "bug"."""
    from sakd.atomic import WriteError
    from sakd.registry import UnknownNameError
    from sakd.schema import ConfigError
    from sakd.tracking_errors import TrackingStoreError
    from sakd.train.checkpoint import CheckpointError
    from sakd.train.errors import TrainingDiverged

    types: list[type[BaseException]] = [UserError, ConfigError, UnknownNameError, CheckpointError,
                                        TrainingDiverged, WriteError, TrackingStoreError]
    try:
        from sakd.data.errors import DataError

        types.append(DataError)
    except ImportError:  # pragma: no cover - data package always present in a full checkout
        pass
    return tuple(types)
