"""Whole-image normalisation statistics for tiled stylisation (`eval.inference.tiling`).

Each network normalises its content features at a few sites (`jax_ast.shared_stats`). A tile alone would use
its own statistics there; these passes gather the whole image's instead, and the final pass stylises every
tile with them injected:

- ``exact`` (the default): one pass over the tiles per site, in network order. Pass k injects the sites before k and
  records site k's window sums over each tile's *core* (its share of the image, the overlaps split at their
  middle, so every pixel counts once); sums, sums of squares and outer products add up across tiles
  (`jax_ast.shared_stats.combine`). The record pass returns only site k's sums, so XLA drops the layers
  after it: pass k costs the network up to site k, or less where the network marks stages
  (`jax_ast.shared_stats.stage_output`, Magenta's residual block inputs): a pass keeps each tile's features at
  the last stage before its site and the later passes start there. AdaIN has 1 site, SANet 2, LinearTransfer
  2 (mean, covariance), Magenta 13 (every conditional instance norm: 10 residual, 3 expand).
- ``downscaled``: one forward pass of the whole image resized to fit in one tile, recording every site: an
  estimate, cheap but poor (a smaller image has less fine detail, so its features' spread differs: mobile
  Magenta at 512 px, 0.040 mean error against untiled where exact gives 0.0025, docs/high_resolution.md).
- ``per-tile``: no gathering; each tile uses its own statistics (the behaviour before shared statistics).

Even with exact statistics, tiles differ from the whole image where a convolution's receptive field reaches
the tile's border (zero/reflect padding instead of the neighbour's pixels); the feathered blend hides that.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jax_ast import parallel
from jax_ast.shared_stats import SiteHook, collecting, combine

Tree = Any
STATISTICS = ("exact", "downscaled", "per-tile")
ALL_SITES = frozenset(range(10_000))


def core_bounds(starts: list[int], tile: int, length: int) -> list[tuple[int, int]]:
    """[a, b) image range owned by each tile along one axis: overlaps are split at their middle."""
    cuts = [0] + [(start + previous + tile) // 2 for previous, start in zip(starts, starts[1:])] + [length]
    return list(zip(cuts, cuts[1:]))


def core_windows(starts_h: list[int], starts_w: list[int], tile_h: int, tile_w: int, height: int,
                 width: int) -> np.ndarray:
    """float32 [n_tiles, 4] (top, bottom, left, right) core of each tile as fractions of the tile, rows first."""
    rows = [((a - s) / tile_h, (b - s) / tile_h) for s, (a, b) in zip(starts_h, core_bounds(starts_h, tile_h, height))]
    cols = [((a - s) / tile_w, (b - s) / tile_w) for s, (a, b) in zip(starts_w, core_bounds(starts_w, tile_w, width))]
    return np.array([row + col for row in rows for col in cols], np.float32)


class SharedStatistics:
    """Gathers a content's whole-image statistics (`gather`) and stylises tiles with them (`stylize`).

    Args:
      stylizer: an `eval.inference.batching.Stylizer` (its model, replicated variables and step size).
      mode: one of `STATISTICS` except ``per-tile``.
    """

    def __init__(self, stylizer: Any, mode: str = "exact"):
        if mode not in STATISTICS or mode == "per-tile":
            raise ValueError(f"unknown statistics mode {mode!r}; choose one of {STATISTICS[:-1]}")
        self.mode, self.variables, self.step_size = mode, stylizer.variables, stylizer.step_size
        model = stylizer.model
        method = type(model).stylize_with_code
        self.kinds: dict[int, tuple] = {}
        self.stages_before: dict[int, int] = {}

        def record(variables, batch, code, windows, stage, injected, alpha, sites, stage_index, keep):
            hook = SiteHook(injected=injected, windows=windows, record=sites, keep=keep,
                            stage=None if stage is None else (stage_index, stage))
            with collecting(hook):
                model.apply(variables, batch, code, alpha=alpha, method=method)
            self.kinds.update(hook.kinds)  # at trace time: the kind, ddof and eps of each site seen
            self.stages_before.update(hook.stages_before)
            return hook.recorded, hook.kept

        def stylize(variables, batch, code, injected, alpha):
            with collecting(SiteHook(injected=injected)):
                return model.apply(variables, batch, code, alpha=alpha, method=method)

        self._record = parallel.pmap(record, in_axes=(None, 0, 0, 0, 0, None), static_broadcasted_argnums=(6, 7, 8, 9))
        self._stylize = parallel.pmap(stylize, in_axes=(None, 0, 0, None), static_broadcasted_argnums=(4,))

    def stylize(self, batch: np.ndarray, code: Tree, injected: tuple, *, alpha: float) -> np.ndarray:
        """float32 [n, th, tw, 3] tiles with per-row codes -> stylised tiles, `injected` at every site."""
        return parallel.run_in_steps(lambda v, b, c: self._stylize(v, b, c, injected, alpha), self.variables,
                                     (batch, code), self.step_size)

    def gather(self, content: np.ndarray, code: Tree, tile_layout: list, windows: np.ndarray, *,
               alpha: float) -> tuple:
        """Whole-image statistics of float32 [H, W, 3] `content` (one per site) for `SiteHook.injected`.

        Args:
          code: one unbatched style code. tile_layout: `tiling.tiles` of the content. windows: `core_windows`.
        """
        if self.mode == "downscaled":
            return self._downscaled(content, code, tile_layout[0][2].shape, alpha)
        injected: list = []
        stage = None  # (number, per-tile features) of the latest `stage_output` kept: later passes start there
        for site in range(self._count_sites(content, code, tile_layout, alpha)):
            latest = self.stages_before[site] - 1  # the last stage before the site (-1: none)
            keep = latest if latest >= 0 and (stage is None or stage[0] < latest) else None
            sums, kept = self._record_tiles(content, code, tile_layout, windows, tuple(injected), alpha,
                                            frozenset({site}), stage=stage, keep=keep)
            stage = stage if keep is None else (keep, kept)
            injected.append(combine(sums[site], *self.kinds[site]))
        return tuple(injected)

    def _count_sites(self, content, code, tile_layout, alpha) -> int:
        if not self.kinds:  # trace only (no compilation, no run) to learn the sites
            tile_h, tile_w = tile_layout[0][2].shape
            batch = np.zeros((self.step_size, tile_h, tile_w, 3), np.float32)
            jax.eval_shape(lambda v, b, c, w: self._record(v, b, c, w, None, (), alpha, frozenset(), None, None),
                           self.variables,
                           *parallel.shard((batch, _repeat(code, self.step_size),
                                            np.zeros((self.step_size, 4), np.float32)), jax.local_device_count()))
        return len(self.kinds)

    def _record_tiles(self, content, code, tile_layout, windows, injected, alpha, sites, *, stage=None,
                      keep=None) -> tuple[dict, np.ndarray | None]:
        """(site -> per-tile sums, per-tile features of stage `keep` or None), in tile order; `stage`: None or
        (number, per-tile features) to start from."""
        stage_index, features = (None, None) if stage is None else stage
        tile_h, tile_w = tile_layout[0][2].shape
        parts = []
        for start in range(0, len(tile_layout), self.step_size):
            group = slice(start, start + self.step_size)
            batch = np.stack([content[top:top + tile_h, left:left + tile_w] for top, left, _ in tile_layout[group]])
            parts.append(parallel.run_in_steps(
                lambda v, b, c, w, f: self._record(v, b, c, w, f, injected, alpha, sites, stage_index, keep),
                self.variables, (batch, _repeat(code, len(batch)), windows[group],
                                 None if features is None else features[group]), self.step_size))
        return jax.tree.map(lambda *leaves: np.concatenate(leaves), *parts)

    def _downscaled(self, content, code, tile_shape, alpha) -> tuple:
        height, width = content.shape[:2]
        scale = min(1.0, max(tile_shape) / max(height, width))
        size = (max(16, round(height * scale / 16) * 16), max(16, round(width * scale / 16) * 16))
        small = np.asarray(jax.image.resize(content, (*size, 3), "linear", antialias=True), np.float32)
        sums, _ = self._record_tiles(small, code, [(0, 0, np.ones(size, np.float32))],
                                     np.array([[0, 1, 0, 1]], np.float32), (), alpha, ALL_SITES)
        return tuple(combine(sums[site], *self.kinds[site]) for site in sorted(sums))


def _repeat(code: Tree, count: int) -> Tree:
    return jax.tree.map(lambda leaf: np.broadcast_to(np.asarray(leaf), (count,) + np.shape(leaf)), code)
