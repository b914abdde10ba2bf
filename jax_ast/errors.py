"""Exceptions shared by the training (`train/`) and evaluation (`eval/`) entry points."""

from __future__ import annotations


class LoadError(ValueError):
    """A weights or checkpoint file that cannot be used: unreadable, unsafe, or not matching the run or the
    --arch (one message naming the file; files untouched). The CLIs exit 2 on it. A ValueError, so callers
    that report bad inputs catch it with the others."""


class CheckpointError(LoadError):
    """A training checkpoint or a model file given to eval that cannot be loaded."""
