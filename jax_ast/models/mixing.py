"""Several styles in one image: the weight and mask rules every network follows (docs/stylize.md).

Weights: one per style, finite and non-negative, not all zero; they are normalised to sum 1, so
(0.7, 0.3), (7, 3) and (70, 30) mean the same mix and one-hot weights give exactly the single style.
Each network applies the normalised weights in its own space (AdaIN: the relu4_1 statistics; SANet: the
attended features; LinearTransfer: the transformed features; Magenta: the 100-d style code).

Masks: K soft masks in [0, 1] over the content. At each position region k gets the weight
m_k / max(sum_j m_j, 1): overlapping masks are renormalised, and where the masks sum to less than 1
the rest keeps the content (its features, or its pixels for networks that blend images).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jax_ast.models.layers import pad_to_multiple


def normalise_weights(weights: Any, count: int) -> jax.Array:
    """[K] interpolation weights -> float32 [K] summing to 1; concrete weights are validated.

    Raises:
      ValueError: not one weight per style, or (for concrete weights) a negative, non-finite or all-zero
        weight vector.
    """
    weights = jnp.asarray(weights, jnp.float32)
    if count == 0 or weights.shape != (count,):
        raise ValueError(f"need at least one style and one weight per style: {count} styles, "
                         f"weights of shape {weights.shape}")
    if not isinstance(weights, jax.core.Tracer):
        concrete = np.asarray(weights)
        if not np.all(np.isfinite(concrete)) or np.any(concrete < 0) or concrete.sum() <= 0:
            raise ValueError(f"style weights must be finite and non-negative with a positive sum, got "
                             f"{concrete.tolist()}")
    return weights / jnp.sum(weights)


def mix_codes(codes: Sequence[Any], weights: Any) -> Any:
    """sum_k w_k code_k over pytrees of equal structure, weights normalised (`normalise_weights`)."""
    normalised = normalise_weights(weights, len(codes))
    return jax.tree.map(lambda *leaves: sum(w * leaf for w, leaf in zip(normalised, leaves)), *codes)


def masks_to_grid(masks: Sequence[Any], height: int, width: int, multiple: int,
                  grid: tuple[int, int]) -> list[jax.Array]:
    """Content masks [B or 1, height, width] -> float32 [B or 1, *grid] on a feature grid.

    The masks are reflect-padded to `multiple` like the content, then resized (nearest) to `grid`.

    Raises:
      ValueError: a mask is not [B or 1, height, width].
    """
    resized = []
    for mask in masks:
        mask = jnp.asarray(mask, jnp.float32)
        if mask.ndim != 3 or mask.shape[1:] != (height, width):
            raise ValueError(f"masks must be [B, {height}, {width}] like the content, got shape {mask.shape}")
        padded = pad_to_multiple(mask[..., None], multiple)[..., 0]
        resized.append(jax.image.resize(padded, (mask.shape[0],) + tuple(grid), "nearest"))
    return resized


def blend_regions(base: jax.Array, regions: Sequence[jax.Array], masks: Sequence[jax.Array]) -> jax.Array:
    """Region k's values where mask k is on; the uncovered rest from `base`.

    Args:
      base: float [B, h, w, C] (content features or pixels).
      regions: K arrays [B, h, w, C], the result of each region's style over the whole grid.
      masks: K arrays float [B or 1, h, w] in [0, 1].

    Returns:
      float32 [B, h, w, C]: base * (1 - c * s) + sum_k m_k * s * region_k with c = sum_k m_k and
      s = 1 / max(c, 1).
    """
    if len(regions) != len(masks):
        raise ValueError(f"need one mask per region, got {len(regions)} regions and {len(masks)} masks")
    weights = [jnp.asarray(m, jnp.float32)[..., None] for m in masks]
    coverage = sum(weights)
    scale = 1.0 / jnp.maximum(coverage, 1.0)
    out = (1.0 - coverage * scale) * base.astype(jnp.float32)
    for weight, region in zip(weights, regions):
        out = out + weight * scale * region.astype(jnp.float32)
    return out
