"""What every image source shares: the `Source` protocol, `DataError`, and `to_rgb_uint8`, which turns any decoded
image array into uint8 [H, W, 3] RGB.

A *source* is any object with ``__len__`` and ``load(index) -> uint8[H, W, 3]`` RGB, optionally
``describe(index) -> str`` for messages and ``load_reduced(index, shorter_side)``, which may decode a much larger
image at a reduced scale because the crop recipe resizes it to `shorter_side` anyway.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

class DataError(RuntimeError):
    """A data source that cannot be used at all (empty folder, unprepared dataset, every image unreadable)."""


class SkippedImageWarning(UserWarning):
    """An unreadable image was skipped (issued once per image)."""


class Source(Protocol):
    """An indexable set of images: ``load(index)`` gives uint8 [H, W, 3] RGB."""

    def __len__(self) -> int: ...

    def load(self, index: int) -> np.ndarray: ...


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Any decoded image array to uint8 [H, W, 3] RGB.

    Accepts [H, W], [H, W, 1] (grey), [H, W, 2] (grey + alpha), [H, W, 3], [H, W, 4] (RGBA) of dtype uint8,
    uint16 (scaled by 255/65535, rounded), bool, or float in [0, 1]. Alpha is composited onto white, as
    `jax_ast.imageio.load_image` does.
    """
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4) or 0 in array.shape[:2]:
        raise ValueError(f"expected an image of shape [H, W] or [H, W, 1|2|3|4], got {array.shape}")
    if array.dtype == np.uint8:
        values = array
    elif array.dtype == np.uint16:
        values = ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif array.dtype == np.bool_:
        values = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("float image holds NaN/inf values; float images must hold finite values in [0, 1]")
        if not (array.min() >= 0.0 and array.max() <= 1.0):
            raise ValueError(f"float image with values in [{float(array.min()):g}, {float(array.max()):g}]; "
                             "float images must hold finite values in [0, 1]")
        values = np.floor(array.astype(np.float32) * 255.0 + 0.5).astype(np.uint8)
    else:
        raise ValueError(f"unsupported image dtype {array.dtype}; valid: uint8, uint16, bool, float in [0, 1]")
    channels = values.shape[2]
    if channels in (2, 4):
        alpha = values[:, :, -1:].astype(np.float32) / 255.0
        colour = values[:, :, :-1].astype(np.float32)
        values = np.floor(colour * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    if values.shape[2] == 1:
        values = np.repeat(values, 3, axis=2)
    return np.ascontiguousarray(values)


def describe(source: Source, index: int) -> str:
    """A human-readable name of one image of `source` (file path, dataset record, ...)."""
    if hasattr(source, "describe"):
        return source.describe(index)
    return f"{type(source).__name__}[{index}]"

