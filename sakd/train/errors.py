"""Training errors a user can act on (the CLI prints them as one line, exit 2).

A module of its own so the command line can recognise them without importing the training loop.
"""

from __future__ import annotations


class TrainingDiverged(RuntimeError):
    """A loss, parameter or buffer became NaN or infinite; the message says what was kept."""
