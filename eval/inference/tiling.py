"""High-resolution stylisation in overlapping tiles with feathered blending.

A content larger than the network can hold in memory is cut into equal tiles of ``tile`` x ``tile`` pixels
that overlap their neighbours by at least ``overlap`` pixels. Every tile is stylised with the same style code
(encoded once, from the whole style image), and the tiles are blended back with linear-ramp weights: inside an
overlap a tile's weight rises from ~0 at its edge to 1 ``overlap`` pixels in, so seams fade instead of
showing, and the tile borders (where the decoder sees its own padding) count least. Image borders take full
weight.

Every network normalises the content features by their statistics (AdaIN, SANet's mean-variance norm,
LinearTransfer's mean and covariance, Magenta's instance norms). A tile alone sees only its part of the
content, so by default (``statistics="exact"``) the tiles share the whole image's statistics, gathered in a
first pass over the tiles (`eval.inference.tile_statistics`); ``"per-tile"`` lets each tile use its own.
docs/high_resolution.md gives the measured differences to the untiled image.

Memory: one step of `Stylizer.step_size` tiles is on the device at a time, plus three float32 host copies
of the image (content, weighted sum, output), so peak memory follows the tile size, not the image size.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator, Sequence

import jax
import numpy as np

from eval.inference.tile_statistics import STATISTICS, SharedStatistics, core_windows

Tree = Any


@dataclasses.dataclass(frozen=True)
class TileConfig:
    """Tile size and overlap in pixels; ``overlap`` must leave a positive stride (``overlap < tile``).

    ``statistics``: where the tiles' normalisation statistics come from, one of
    `eval.inference.tile_statistics.STATISTICS` (``exact``, ``downscaled``, ``per-tile``).
    """

    tile: int
    overlap: int = 32
    statistics: str = "exact"

    def __post_init__(self):
        if self.tile < 1:
            raise ValueError(f"tile must be a positive number of pixels, got {self.tile}")
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"overlap must be in [0, tile) = [0, {self.tile}), got {self.overlap}")
        if self.statistics not in STATISTICS:
            raise ValueError(f"statistics must be one of {STATISTICS}, got {self.statistics!r}")


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of `tile` pixels covering [0, length), neighbours overlapping >= `overlap`.

    Tiles advance by ``tile - overlap``; the last one is aligned to the end (it may overlap more). A length
    of at most `tile` gives one tile at 0.
    """
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def ramp(size: int, overlap: int, *, rise: bool, fall: bool) -> np.ndarray:
    """float32 [size] weights: a linear rise over the first `overlap` pixels (``rise``), a fall over the last.

    The rise is (i + 0.5) / overlap at pixel i, so two tiles that overlap by exactly `overlap` pixels have
    weights summing to 1; no pixel gets weight 0.
    """
    weights = np.ones(size, np.float32)
    if overlap == 0:
        return weights
    edge = (np.arange(min(overlap, size), dtype=np.float32) + 0.5) / overlap
    if rise:
        weights[:edge.size] = np.minimum(weights[:edge.size], edge)
    if fall:
        weights[size - edge.size:] = np.minimum(weights[size - edge.size:], edge[::-1])
    return weights


def tiles(height: int, width: int, config: TileConfig) -> list[tuple[int, int, np.ndarray]]:
    """(top, left, float32 [th, tw] weight) of every tile of a [height, width] image, tiles row by row.

    The tile shape is ``(min(tile, height), min(tile, width))`` for all tiles, so one compiled program
    serves them all. Edges that lie on the image border are not ramped.
    """
    tile_h, tile_w = min(config.tile, height), min(config.tile, width)
    rows, cols = tile_starts(height, tile_h, config.overlap), tile_starts(width, tile_w, config.overlap)
    out = []
    for top in rows:
        weight_h = ramp(tile_h, config.overlap, rise=top > 0, fall=top + tile_h < height)
        for left in cols:
            weight_w = ramp(tile_w, config.overlap, rise=left > 0, fall=left + tile_w < width)
            out.append((top, left, weight_h[:, None] * weight_w[None, :]))
    return out


def stylize_tiled(stylize: Callable[[np.ndarray], np.ndarray], content: np.ndarray, config: TileConfig,
                  *, tiles_per_call: int = 1) -> np.ndarray:
    """Stylises float [H, W, 3] `content` tile by tile and blends the tiles.

    Args:
      stylize: float32 [n, th, tw, 3] tiles -> float32 [n, th, tw, 3] stylised tiles (same style for all).
      content: the image, float [H, W, 3] in [0, 1].
      config: tile size and overlap.
      tiles_per_call: tiles passed to `stylize` at once (the last call may hold fewer).

    Returns:
      float32 [H, W, 3], unclamped like the network's output.
    """
    height, width = content.shape[:2]
    layout = tiles(height, width, config)
    tile_h, tile_w = layout[0][2].shape
    total = np.zeros((height, width, 3), np.float32)
    weight_sum = np.zeros((height, width, 1), np.float32)
    for start in range(0, len(layout), tiles_per_call):
        group = layout[start:start + tiles_per_call]
        batch = np.stack([content[top:top + tile_h, left:left + tile_w] for top, left, _ in group])
        for (top, left, weight), stylized in zip(group, stylize(batch)):
            total[top:top + tile_h, left:left + tile_w] += stylized * weight[:, :, None]
            weight_sum[top:top + tile_h, left:left + tile_w] += weight[:, :, None]
    return total / weight_sum


class TiledStylizer:
    """An `eval.inference.batching.Stylizer` that stylises each content in tiles (`stylize_tiled`).

    Styles are encoded by the wrapped stylizer on the whole style image, once; only the contents are tiled.
    It offers the methods `eval.stylize` calls (`encode_styles`, `encode_many`, `stylize_with_codes`,
    `stylize_pairs`, `stylize`), so it replaces a `Stylizer` anywhere.
    """

    def __init__(self, stylizer: Any, config: TileConfig):
        self.inner = stylizer
        self.config = config
        self.n_devices = stylizer.n_devices
        self.step_size = stylizer.step_size
        self.shared = None if config.statistics == "per-tile" else SharedStatistics(stylizer, config.statistics)

    def encode_styles(self, styles: np.ndarray) -> Tree:
        return self.inner.encode_styles(styles)

    def encode_many(self, styles: Sequence[np.ndarray]) -> list[Tree]:
        return self.inner.encode_many(styles)

    def stylize(self, contents: np.ndarray, styles: np.ndarray, *, alpha: float = 1.0) -> np.ndarray:
        """contents [B, H, W, 3], styles [B, Hs, Ws, 3] -> float32 [B, H, W, 3], each content tiled."""
        return self.stylize_with_codes(contents, self.encode_styles(styles), alpha=alpha)

    def stylize_with_codes(self, contents: np.ndarray, codes: Tree, *, alpha: float = 1.0) -> np.ndarray:
        """contents float[B, H, W, 3] with per-row codes (leading axis B) -> float32[B, H, W, 3]."""
        outputs = []
        for row, content in enumerate(contents):
            code = jax.tree.map(lambda leaf, row=row: np.asarray(leaf)[row], codes)

            content = np.asarray(content, np.float32)
            injected = self._whole_image_statistics(content, code, alpha)

            def run(batch: np.ndarray, code=code, injected=injected) -> np.ndarray:
                repeated = jax.tree.map(lambda leaf: np.broadcast_to(leaf, (len(batch),) + leaf.shape), code)
                if injected is None:
                    return self.inner.stylize_with_codes(batch, repeated, alpha=alpha)
                return self.shared.stylize(batch, repeated, injected, alpha=alpha)

            outputs.append(stylize_tiled(run, content, self.config, tiles_per_call=self.step_size))
        return np.stack(outputs)

    def _whole_image_statistics(self, content: np.ndarray, code: Tree, alpha: float) -> tuple | None:
        """Per-site statistics of the whole [H, W, 3] content to inject, or None (per-tile, or one tile)."""
        height, width = content.shape[:2]
        layout = tiles(height, width, self.config)
        if self.shared is None or len(layout) == 1:
            return None
        tile_h, tile_w = layout[0][2].shape
        windows = core_windows(tile_starts(height, tile_h, self.config.overlap),
                               tile_starts(width, tile_w, self.config.overlap), tile_h, tile_w, height, width)
        return self.shared.gather(content, code, layout, windows, alpha=alpha)

    def stylize_pairs(self, contents: Sequence[np.ndarray], codes: Sequence[Tree],
                      pairs: Sequence[tuple[int, int]], *, alpha: float = 1.0
                      ) -> Iterator[tuple[list[int], np.ndarray | Exception]]:
        """As `Stylizer.stylize_pairs`, one pair per step (each pair is already a batch of tiles)."""
        for position, (content_index, code_index) in enumerate(pairs):
            code = jax.tree.map(lambda leaf: np.asarray(leaf)[None], codes[code_index])
            try:
                yield [position], self.stylize_with_codes(contents[content_index][None], code, alpha=alpha)
            except Exception as error:  # reported per pair by the caller, naming the files
                yield [position], error
