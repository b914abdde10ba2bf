"""The two baselines of `eval.run`: ``identity`` (output = content) and ``copy-style`` (output = style)."""

from __future__ import annotations

import numpy as np

BASELINES = ("identity", "copy-style")


class BaselineStylizer:
    """`--arch identity` (output = content) and `--arch copy-style` (output = style): no network, no checkpoint.

    Has the part of `eval.inference.batching.Stylizer`'s interface that `eval.run` uses (`step_size`, `stylize`).
    """

    def __init__(self, kind: str, step_size: int):
        if kind not in BASELINES:
            raise ValueError(f"unknown baseline {kind!r}; valid: {', '.join(BASELINES)}")
        self.kind, self.step_size = kind, step_size

    def stylize(self, contents: np.ndarray, styles: np.ndarray, *, alpha: float = 1.0) -> np.ndarray:
        del alpha  # a baseline has no content-style trade-off
        return np.array(contents if self.kind == "identity" else styles, dtype=np.float32, copy=True)
