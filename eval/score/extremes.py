"""The K lowest- and K highest-loss pairs of a streamed run, with thumbnails, in constant memory.

`ExtremeKeeper` holds, per loss and side, a heap of at most K entries (value, pair, thumbnails of content,
style and output), so memory does not grow with the number of pairs. It is saved to an ``.npz`` next to the
results after each batch (atomically) and reloaded when a run resumes. Ties are broken by the pair number
(the lower pair counts as lower), which makes the kept set a pure function of the recorded values.
"""

from __future__ import annotations

import heapq
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from jax_ast import imageio
from jax_ast.files import atomic_writer

SIDES = ("lowest", "highest")


def thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    """float [H, W, 3] in [0, 1] (clipped) or uint8 -> uint8 [size, size, 3] (PIL bilinear)."""
    if image.dtype != np.uint8:
        image = imageio.to_uint8(np.nan_to_num(image, nan=0.0))
    if image.shape[:2] == (size, size):
        return np.ascontiguousarray(image)
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def _key(side: str, value: float, pair: int) -> tuple[float, int]:
    """Heap key: the heap root is the entry to evict first (the worst kept one)."""
    if side == "highest":  # min-heap of the K highest: root = smallest value, highest pair among equals
        return (value, -pair)
    return (-value, -pair)  # K lowest: root = largest value, highest pair among equals


class ExtremeKeeper:
    """Per loss, the K lowest and K highest values seen, each with (content, style, output) thumbnails.

    Args:
      losses: metric names to track. k: entries per side (>= 1). thumb_size: thumbnail side in pixels.
    """

    def __init__(self, losses: Sequence[str], k: int, thumb_size: int):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.losses, self.k, self.thumb_size = tuple(losses), k, thumb_size
        self._heaps: dict[tuple[str, str], list] = {(loss, side): [] for loss in self.losses for side in SIDES}

    def wants(self, loss: str, side: str, value: float, pair: int) -> bool:
        """Whether (value, pair) would enter the heap; NaN values never do."""
        if not np.isfinite(value):
            return False
        heap = self._heaps[(loss, side)]
        return len(heap) < self.k or _key(side, value, pair) > heap[0][0]

    def offer(self, loss: str, side: str, value: float, pair: int, images: Sequence[np.ndarray]) -> None:
        """Adds the entry if it is among the K most extreme so far; `images` = (content, style, output)."""
        if not self.wants(loss, side, value, pair):
            return
        heap = self._heaps[(loss, side)]
        if any(entry[1] == pair for entry in heap):
            return
        thumbs = np.stack([thumbnail(image, self.thumb_size) for image in images])
        entry = (_key(side, value, pair), pair, float(value), thumbs)
        if len(heap) < self.k:
            heapq.heappush(heap, entry)
        else:
            heapq.heapreplace(heap, entry)

    def update(self, pairs: Sequence[int], metrics: dict[str, np.ndarray], contents: np.ndarray,
               styles: np.ndarray, outputs: np.ndarray) -> None:
        """Offers every pair of a batch (thumbnails are only made for entries that are kept)."""
        for loss in self.losses:
            for side in SIDES:
                for row, pair in enumerate(pairs):
                    value = float(metrics[loss][row])
                    if self.wants(loss, side, value, pair):
                        self.offer(loss, side, value, pair, (contents[row], styles[row], outputs[row]))

    def entries(self, loss: str, side: str) -> list[tuple[int, float, np.ndarray]]:
        """(pair, value, uint8 [3, t, t, 3] thumbnails), most extreme first."""
        heap = sorted(self._heaps[(loss, side)], key=lambda entry: entry[0], reverse=True)
        return [(pair, value, thumbs) for _, pair, value, thumbs in heap]

    def pairs(self, loss: str, side: str) -> set[int]:
        return {entry[1] for entry in self._heaps[(loss, side)]}

    def save(self, path: str | os.PathLike) -> None:
        """Writes every heap to an .npz (atomically: temporary file, then rename)."""
        arrays = {}
        for (loss, side), heap in self._heaps.items():
            prefix = f"{loss}|{side}"
            arrays[f"{prefix}|pairs"] = np.asarray([e[1] for e in heap], np.int64)
            arrays[f"{prefix}|values"] = np.asarray([e[2] for e in heap], np.float64)
            arrays[f"{prefix}|thumbs"] = (np.stack([e[3] for e in heap]) if heap else
                                          np.zeros((0, 3, self.thumb_size, self.thumb_size, 3), np.uint8))
        with atomic_writer(path) as stream:
            np.savez(stream, **arrays)

    def load(self, path: str | os.PathLike, keep_pairs: Iterable[int] | None = None) -> None:
        """Re-offers the entries saved at `path` (only pairs in `keep_pairs`, when given); no-op if missing."""
        path = Path(path)
        if not path.exists():
            return
        keep = None if keep_pairs is None else set(keep_pairs)
        with np.load(path, allow_pickle=False) as data:
            for loss in self.losses:
                for side in SIDES:
                    prefix = f"{loss}|{side}"
                    if f"{prefix}|pairs" not in data.files:
                        continue
                    thumbs = data[f"{prefix}|thumbs"]
                    if thumbs.shape[2:4] != (self.thumb_size, self.thumb_size):
                        continue  # another --thumb-size: recomputed by the caller
                    for pair, value, images in zip(data[f"{prefix}|pairs"], data[f"{prefix}|values"], thumbs):
                        if keep is None or int(pair) in keep:
                            self.offer(loss, side, float(value), int(pair), list(images))


def true_extremes(pairs: np.ndarray, values: np.ndarray, k: int) -> dict[str, list[int]]:
    """{"lowest": [...], "highest": [...]} pair numbers of the K extreme finite values (same ties as the heaps)."""
    finite = np.isfinite(values)
    pairs, values = pairs[finite].astype(np.int64), values[finite]
    lowest = np.lexsort((pairs, values))[:k]
    highest = np.lexsort((pairs, -values))[:k]
    return {"lowest": [int(p) for p in pairs[lowest]], "highest": [int(p) for p in pairs[highest]]}
