"""Seeded content x style pairing and the prefetching, bounded-memory image loader of `eval.run`.

Pairing: with ``M = n_c * n_s`` possible pairs, pair ``k`` (0-based) is grid cell ``g = P_e(k mod M)`` of
"epoch" ``e = k // M``: content ``g // n_s``, style ``g % n_s``. ``P_e`` is a seeded pseudo-random permutation
of ``[0, M)`` (a 4-round Feistel network on the next even power of two, cycle-walked into range), so pair
``k`` is a pure function of ``(seed, k, n_c, n_s)`` (a run can be resumed or extended to more pairs), the
first ``M`` pairs are all distinct (a sample without replacement of the grid), and nothing of size ``M`` is
ever held in memory (COCO x Painter-by-Numbers has ~9e9 cells).

Images are resized (shorter side to `size`, PIL bilinear) and centre-cropped to ``size x size``, so content,
style and output share one spatial size, which the balanced loss needs (docs/losses.md, Balanced loss).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import threading
from typing import Any, Iterator, Sequence

import numpy as np

from eval.common.guards import printable
from jax_ast.data import CropSpec, Source, augment, describe

PAIRING_SCHEME = ("pair k -> grid cell g = P_e(k mod M), e = k // M, M = n_c * n_s; content = g // n_s, "
                  "style = g % n_s; P_e = seeded 4-round Feistel permutation of [0, M) with cycle walking "
                  "(eval.score.pairs.Pairing)")
_MASK64 = (1 << 64) - 1
FEISTEL_ROUNDS = 4


def _mix64(value: int) -> int:
    """splitmix64's finaliser: a well-mixed 64-bit hash of a 64-bit integer."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


class Pairing:
    """Maps pair numbers to (content index, style index); O(1) memory and time per pair."""

    def __init__(self, n_contents: int, n_styles: int, seed: int):
        if n_contents < 1 or n_styles < 1:
            raise ValueError(f"need at least one content and one style image, got {n_contents} and {n_styles}")
        self.n_contents, self.n_styles, self.seed = n_contents, n_styles, seed
        self.size = n_contents * n_styles
        self._half_bits = max(1, -(-max(1, (self.size - 1).bit_length()) // 2))

    def _feistel(self, value: int, epoch: int) -> int:
        mask = (1 << self._half_bits) - 1
        left, right = value >> self._half_bits, value & mask
        key = _mix64(_mix64(self.seed & _MASK64) ^ epoch)
        for round_index in range(FEISTEL_ROUNDS):
            left, right = right, left ^ (_mix64(key ^ (round_index << 56) ^ right) & mask)
        return (left << self._half_bits) | right

    def cell(self, pair: int) -> int:
        """The grid cell (content * n_styles + style) of pair number `pair` >= 0."""
        if pair < 0:
            raise ValueError(f"pair numbers are >= 0, got {pair}")
        epoch, value = divmod(pair, self.size)
        value = self._feistel(value, epoch)
        while value >= self.size:  # cycle walking: stays a permutation of [0, size)
            value = self._feistel(value, epoch)
        return value

    def __call__(self, pair: int) -> tuple[int, int]:
        """(content index, style index) of pair number `pair` >= 0."""
        return divmod(self.cell(pair), self.n_styles)


def center_square(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [size, size, 3]: shorter side resized to `size`, then centre-cropped."""
    spec = CropSpec(resize="shorter", resize_to=size, crop=size, random_crop=False)
    return augment(image, spec, rng=None)


class ImageCache:
    """Square uint8 images of one source by index, with a bounded LRU cache (thread-safe).

    Args:
      source: a `jax_ast.data` source. size: output side. capacity: images kept (>= 0).
    """

    def __init__(self, source: Source, size: int, capacity: int):
        self.source, self.size, self.capacity = source, size, capacity
        self._images: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, index: int) -> np.ndarray:
        """uint8 [size, size, 3]; raises whatever the source raises for an unusable image."""
        with self._lock:
            if index in self._images:
                self._images.move_to_end(index)
                return self._images[index]
        image = center_square(self.source.load(index), self.size)
        with self._lock:
            self._images[index] = image
            while len(self._images) > self.capacity:
                self._images.popitem(last=False)
        return image

    def name(self, index: int) -> str:
        """A one-line name of image `index` (a path relative to the folder, or the dataset record).

        Undecodable file-name bytes are shown as ``\\xNN``, other unprintable characters as '?'.
        """
        root = getattr(self.source, "root", None)
        paths = getattr(self.source, "paths", None)
        if root is not None and paths is not None and root.is_dir():
            text = str(paths[index].relative_to(root))
        else:
            text = describe(self.source, index)
        return "".join(c if c.isprintable() else "?" for c in printable(text))


@dataclasses.dataclass
class Chunk:
    """Loaded images of consecutive pairs; `skipped` holds (pair, content, style, reason) of unusable ones."""

    pairs: list[int]
    content_indices: list[int]
    style_indices: list[int]
    contents: np.ndarray  # uint8 [n, S, S, 3]
    styles: np.ndarray  # uint8 [n, S, S, 3]
    skipped: list[tuple[int, int, int, str]]


def load_chunk(pairs: Sequence[int], pairing: Pairing, contents: ImageCache, styles: ImageCache,
               pool: concurrent.futures.Executor) -> Chunk:
    """Loads the images of `pairs` with `pool`; a pair whose image fails is skipped with the reason."""
    indices = [pairing(p) for p in pairs]

    def load(pair_indices):
        content_index, style_index = pair_indices
        try:
            return contents.get(content_index), styles.get(style_index), None
        except Exception as error:  # an unusable image ends this pair only, never the run
            return None, None, f"{type(error).__name__}: {error}"

    chunk = Chunk([], [], [], np.zeros((0,), np.uint8), np.zeros((0,), np.uint8), [])
    loaded_contents, loaded_styles = [], []
    for pair, (content_index, style_index), (content, style, reason) in zip(pairs, indices, pool.map(load, indices)):
        if reason is not None:
            chunk.skipped.append((pair, content_index, style_index, reason))
            continue
        chunk.pairs.append(pair)
        chunk.content_indices.append(content_index)
        chunk.style_indices.append(style_index)
        loaded_contents.append(content)
        loaded_styles.append(style)
    if loaded_contents:
        chunk.contents, chunk.styles = np.stack(loaded_contents), np.stack(loaded_styles)
    return chunk


def prefetch_chunks(chunks: Sequence[Sequence[int]] | Iterator[Sequence[int]], pairing: Pairing,
                    contents: ImageCache, styles: ImageCache, workers: int) -> Iterator[Chunk]:
    """Yields loaded chunks in order while the next one loads in the background (two chunks in memory)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool, \
            concurrent.futures.ThreadPoolExecutor(max_workers=1) as ahead:
        pending = None
        for pairs in chunks:
            future = ahead.submit(load_chunk, list(pairs), pairing, contents, styles, pool)
            if pending is not None:
                yield pending.result()
            pending = future
        if pending is not None:
            yield pending.result()


def missing_pairs(total: int, done: Any) -> Iterator[int]:
    """Pair numbers in [0, total) not in `done` (a set), in order."""
    return (pair for pair in range(total) if pair not in done)


def batched(items: Iterator[int], size: int, limit: int | None = None) -> Iterator[list[int]]:
    """Consecutive lists of at most `size` items, `limit` items in all (None: all)."""
    batch, taken = [], 0
    for item in items:
        if limit is not None and taken >= limit:
            break
        batch.append(item)
        taken += 1
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
