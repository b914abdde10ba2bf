"""Exceptions shared by the training (`train/`) and evaluation (`eval/`) entry points."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint or weights file that cannot be read or does not match the run or the --arch (one message;
    files untouched). A ValueError, so callers that report bad inputs catch it with the others."""
