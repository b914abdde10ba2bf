"""Trace-time rewrites that make jax-ast networks convert with jax2onnx 0.17.1 (docs/export.md, Own lowerings).

Only `eval.export.graphs` enters `onnx_friendly()`, and only while it traces; the networks, their numerics and
their parity tests are untouched outside it. Inside:

* the mobile Magenta transformer's 9x9 convs run directly instead of on space-to-depth blocks
  (`jax_ast.models.space_to_depth`, an XLA-on-CPU speed-up): the blocks pad by an amount that depends on the
  side, which a symbolic (dynamic) side cannot give ``jnp.pad``. Same sums, another float32 order.
* Inception-v3's pools (Magenta, inception variant) are written without ``flax.linen.max_pool`` /
  ``avg_pool``, which jax2onnx replaces by patches that turn explicit ``(lo, hi)`` paddings into a string and
  fail:

  - max pools (all VALID in Inception-v3) go through ``flax.linen.pooling.pool`` with ``"VALID"``, which jax2onnx
    lowers to an NCHW ``MaxPool`` that onnxruntime runs (a bare ``lax.reduce_window_max`` becomes a 4-D
    ``MaxPool`` that onnxruntime rejects: "Unsupported pooling size");
  - SAME average pools without the padded positions are a ``reduce_window`` sum (jax2onnx: a depthwise
    ``Conv``) divided by the per-position count of real pixels, a NumPy constant
    (``nn.avg_pool(count_include_pad=False)``'s formula, so equal up to float32 summation order).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import flax.linen.pooling as pooling
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jax_ast.models import inception, magenta


def _window_counts(height: int, width: int, window: tuple[int, int], stride: int,
                   pads: list[tuple[int, int]]) -> np.ndarray:
    """[1, H', W', 1] number of real (unpadded) pixels under each window of a padded pool."""
    ones = np.pad(np.ones((height, width), np.float32), pads)
    rows = range(0, ones.shape[0] - window[0] + 1, stride)
    cols = range(0, ones.shape[1] - window[1] + 1, stride)
    counts = [[ones[r:r + window[0], c:c + window[1]].sum() for c in cols] for r in rows]
    return np.asarray(counts, np.float32)[None, :, :, None]


def _pool(x: jax.Array, unit: inception.PoolUnit) -> jax.Array:
    """`inception._pool` in ops jax2onnx lowers to graphs onnxruntime runs (see the module docstring)."""
    pads = inception._padding(x.shape, unit.window, unit.stride, unit.padding)
    if unit.kind == "max":
        if any(pads[0] + pads[1]):
            raise ValueError(f"{unit.name}: only VALID max pools are used in Inception-v3")
        return pooling.pool(x, -jnp.inf, lax.max, unit.window, (unit.stride, unit.stride), "VALID")
    if unit.padding != "SAME":
        raise ValueError(f"{unit.name}: only SAME average pools are used in Inception-v3")
    summed = lax.reduce_window(x, 0.0, lax.add, (1, *unit.window, 1),
                               (1, unit.stride, unit.stride, 1), [(0, 0), *pads, (0, 0)])
    return summed / _window_counts(x.shape[1], x.shape[2], unit.window, unit.stride, pads)


@contextlib.contextmanager
def onnx_friendly() -> Iterator[None]:
    """Within: the networks trace to ops jax2onnx 0.17.1 converts to graphs onnxruntime accepts."""
    pool, block = inception._pool, magenta.MOBILE_SPACE_TO_DEPTH
    inception._pool, magenta.MOBILE_SPACE_TO_DEPTH = _pool, 0
    try:
        yield
    finally:
        inception._pool, magenta.MOBILE_SPACE_TO_DEPTH = pool, block
