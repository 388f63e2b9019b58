"""The error type of training runs (a user mistake: one line, exit code 2 on the command line)."""

from __future__ import annotations

from tmkt_data.errors import TmktError


class TrainError(TmktError, ValueError):
    """A run cannot start or must stop (bad store, checkpoint mismatch, locked run folder, NaN loss)."""
