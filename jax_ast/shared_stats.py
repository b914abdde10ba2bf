"""Content-normalisation sites whose statistics a caller can gather or replace (tiled stylisation).

Every content-side normalisation of the networks (AdaIN's and SANet's content mean/std, LinearTransfer's
content mean and covariance, each conditional instance norm of Magenta) asks this module for its statistics
first: `site_moments`, `site_mean`, `site_gram`. Outside a `collecting` block they return None and the model
computes its own statistics exactly as before (bit-identical). Inside one, the active `SiteHook` numbers the
sites in call order and, per site, either returns injected whole-image statistics or records the site's
partial sums over a window of each sample (the tile's core, so every image pixel counts once), or both.

The hook is set while a function is *traced*; its records leave that function as outputs, its injected
statistics enter as arguments, so the jitted function stays pure. docs/high_resolution.md describes the passes.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import numpy as np

_HOOK: contextvars.ContextVar["SiteHook | None"] = contextvars.ContextVar("shared_stats_hook", default=None)


@dataclasses.dataclass
class SiteHook:
    """What to do at each site, numbered 0, 1, ... in call order.

    Attributes:
      injected: per site, whole-image statistics to use instead of the sample's own (sites past its end use
        their own): (mean [1,1,1,C], std [1,1,1,C]) for moments, mean [1,1,1,C] for a mean, [1,C,C] for a gram.
      windows: float32 [B, 4] (top, bottom, left, right) of each sample's core as fractions of its height and
        width; a feature position counts when its centre lies inside.
      record: site numbers whose window sums to record (None: none).
      recorded: filled while tracing: site number -> dict of per-sample sums (see `_window_sums`).
      kinds: filled while tracing: site number -> (kind, ddof, eps).
      stage: (j, features [B, ...]) to use instead of the network's own at its j-th `stage_output` (a copy kept
        by an earlier pass over the same samples), so the layers before it drop out of the program; None: none.
      keep: the number of the `stage_output` whose features to keep in `kept` (None: none).
      kept: filled while tracing: the features of stage `keep`, or None.
      stages_before: filled while tracing: site number -> how many `stage_output`s came before it.
    """

    injected: tuple = ()
    windows: Any = None
    record: frozenset | None = None
    recorded: dict = dataclasses.field(default_factory=dict)
    kinds: dict = dataclasses.field(default_factory=dict)
    count: int = 0
    stage: tuple | None = None
    keep: int | None = None
    kept: Any = None
    stages_before: dict = dataclasses.field(default_factory=dict)
    stage_count: int = 0

    def visit(self, feats: jax.Array, kind: str, ddof: int = 0, eps: float = 0.0) -> Any:
        site, self.count = self.count, self.count + 1
        self.kinds[site] = (kind, ddof, eps)
        self.stages_before[site] = self.stage_count
        if self.record is not None and site in self.record:
            self.recorded[site] = _window_sums(feats, self.windows, gram=kind == "gram")
        return self.injected[site] if site < len(self.injected) else None

    def visit_stage(self, feats: jax.Array) -> jax.Array:
        index, self.stage_count = self.stage_count, self.stage_count + 1
        if index == self.keep:
            self.kept = feats
        if self.stage is not None and self.stage[0] == index:
            return self.stage[1].astype(feats.dtype)
        return feats


@contextlib.contextmanager
def collecting(hook: SiteHook) -> Iterator[SiteHook]:
    """Makes `hook` the active one inside the block (use it inside the traced function)."""
    token = _HOOK.set(hook)
    try:
        yield hook
    finally:
        _HOOK.reset(token)


def site_moments(feats: jax.Array, *, ddof: int, eps: float) -> tuple[jax.Array, jax.Array] | None:
    """Whole-image (mean, std) for a mean/std normalisation of `feats` [B, H, W, C], or None (use its own)."""
    hook = _HOOK.get()
    return None if hook is None else hook.visit(feats, "moments", ddof, eps)


def site_mean(feats: jax.Array) -> jax.Array | None:
    """Whole-image channel mean [1, 1, 1, C] for centring `feats`, or None (use its own)."""
    hook = _HOOK.get()
    return None if hook is None else hook.visit(feats, "mean")


def site_gram(feats: jax.Array) -> jax.Array | None:
    """Whole-image uncentred covariance F^T F / (H W), [1, C, C], or None (use its own)."""
    hook = _HOOK.get()
    return None if hook is None else hook.visit(feats, "gram")


def stage_output(feats: jax.Array) -> jax.Array:
    """`feats` [B, ...] at a point a later pass over the tiles can start from (e.g. a residual block's input),
    or the copy an earlier pass kept there (`SiteHook.stage`); outside `collecting`, `feats` itself."""
    hook = _HOOK.get()
    return feats if hook is None else hook.visit_stage(feats)


def _window_sums(feats: jax.Array, windows: jax.Array, *, gram: bool) -> dict[str, jax.Array]:
    """Per sample: count [B], window mean [B, C] and centred sum of squares [B, C] (or sum of outer
    products [B, C, C] for a gram site), over the positions whose centres lie in the sample's window."""
    feats = feats.astype(jnp.float32)
    _, height, width, _ = feats.shape
    rows = (jnp.arange(height, dtype=jnp.float32) + 0.5) / height
    cols = (jnp.arange(width, dtype=jnp.float32) + 0.5) / width
    inside_rows = (rows[None] >= windows[:, 0:1]) & (rows[None] < windows[:, 1:2])  # [B, H]
    inside_cols = (cols[None] >= windows[:, 2:3]) & (cols[None] < windows[:, 3:4])  # [B, W]
    mask = (inside_rows[:, :, None] & inside_cols[:, None, :]).astype(jnp.float32)[..., None]  # [B, H, W, 1]
    count = jnp.sum(mask, axis=(1, 2, 3))
    if gram:
        outer = jnp.einsum("bhwc,bhwd->bcd", feats * mask, feats, precision=jax.lax.Precision.HIGHEST)
        return {"count": count, "outer": outer}
    mean = jnp.sum(feats * mask, axis=(1, 2)) / jnp.maximum(count, 1.0)[:, None]
    squares = jnp.sum(mask * jnp.square(feats - mean[:, None, None, :]), axis=(1, 2))
    return {"count": count, "mean": mean, "squares": squares}


def combine(sums: dict[str, np.ndarray], kind: str, ddof: int, eps: float) -> Any:
    """Window sums of all tiles of one image (leading axis = tiles) -> that image's statistics to inject.

    Moments combine exactly in float64 (Chan et al.'s parallel variance); returns float32 arrays shaped as
    `SiteHook.injected` expects.
    """
    count = np.asarray(sums["count"], np.float64)
    total = count.sum()
    if kind == "gram":
        return (np.asarray(sums["outer"], np.float64).sum(0) / total)[None].astype(np.float32)
    means = np.asarray(sums["mean"], np.float64)
    mean = (count[:, None] * means).sum(0) / total
    squares = (np.asarray(sums["squares"], np.float64) + count[:, None] * np.square(means - mean)).sum(0)
    mean4 = mean[None, None, None, :].astype(np.float32)
    if kind == "mean":
        return mean4
    std = np.sqrt(squares / (total - ddof) + eps)
    return mean4, std[None, None, None, :].astype(np.float32)
