"""A stride-1 convolution computed on space-to-depth blocks: the same sums, better shaped for CPU GEMMs.

XLA's CPU convolution is slow when both channel counts are tiny: Magenta mobile's full-resolution 9x9
convs (3 -> 8 and 8 -> 3) ran at 3-6 GFLOP/s. Folding b x b pixel blocks into channels turns a k x k conv
with C -> O channels into a ceil((k + b - 1) / b)-square conv with b*b*C -> b*b*O channels on a b-times
smaller grid (some kernel taps are structural zeros, about 1.8x the FLOPs at k=9, b=4), which ran 3-5x
faster on this 2-core CPU (docs/performance.md). The result equals the direct convolution up to float32
summation order.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jax_ast.models.inception import conv_hwio


def _block_taps(kernel_size: int, block: int) -> tuple[np.ndarray, int]:
    """(index [K2, b, b] into the kernel's k taps (k = a zero tap), K2): tap of output phase r read by block
    offset P at input phase q is b*P + q - r."""
    taps = -(-(kernel_size + block - 1) // block)
    index = np.arange(taps)[:, None, None] * block + np.arange(block)[None, :, None] - np.arange(block)[None, None, :]
    return np.where((index >= 0) & (index < kernel_size), index, kernel_size), taps


def block_kernel(kernel: jax.Array, block: int) -> jax.Array:
    """HWIO kernel [k, k, C, O] -> the space-to-depth kernel [K2, K2, b*b*C, b*b*O]."""
    k, _, channels, features = kernel.shape
    index, taps = _block_taps(k, block)
    padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))  # tap k is zero
    gathered = padded[index[:, :, :, None, None, None], index[None, None, None, :, :, :]]  # [P,q,r,Q,q',s,C,O]
    return gathered.transpose(0, 3, 1, 4, 6, 2, 5, 7).reshape(taps, taps, block * block * channels,
                                                              block * block * features)


def conv_space_to_depth(padded: jax.Array, kernel: jax.Array, block: int, dtype: Any = jnp.float32) -> jax.Array:
    """VALID stride-1 conv of an already padded [B, Hp, Wp, C] with HWIO `kernel` [k, k, C, O], computed on
    `block` x `block` pixel blocks -> [B, Hp - k + 1, Wp - k + 1, O]."""
    batch, height, width, channels = padded.shape
    k, features, b = kernel.shape[0], kernel.shape[-1], block
    out_h, out_w = height - k + 1, width - k + 1
    rows, cols = -(-out_h // b), -(-out_w // b)
    taps = -(-(k + b - 1) // b)
    grid_h, grid_w = rows + taps - 1, cols + taps - 1
    # Zeros past the bottom/right edge only feed outputs that are cropped away below.
    x = jnp.pad(padded, ((0, 0), (0, b * grid_h - height), (0, b * grid_w - width), (0, 0)))
    x = x.reshape(batch, grid_h, b, grid_w, b, channels).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(batch, grid_h, grid_w, b * b * channels)
    y = conv_hwio(x, block_kernel(kernel, b), 1, [(0, 0), (0, 0)], dtype)
    y = y.reshape(batch, rows, cols, b, b, features).transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(batch, rows * b, cols * b, features)[:, :out_h, :out_w]


def _phase_taps() -> np.ndarray:
    """[2, 3, 3] one-hot: output phase r of a nearest-x2-upsampled, reflect-padded 3x3 conv reads, through
    its tap u, the low-resolution row at offset (r + u - 1) // 2 (index 0..2 for offsets -1..1)."""
    taps = np.zeros((2, 3, 3), np.float32)
    for phase in range(2):
        for tap in range(3):
            taps[phase, tap, (phase + tap - 1) // 2 + 1] = 1.0
    return taps


def upsample_conv3(x: jax.Array, kernel: jax.Array, dtype: Any = jnp.float32) -> jax.Array:
    """Nearest x2 upsampling, reflect padding 1 and a VALID 3x3 conv, computed on the low-resolution grid.

    [B, H, W, C] with HWIO `kernel` [3, 3, C, O] -> [B, 2H, 2W, O]. Each of the 4 output phases is a conv of
    the input with a combined kernel, so one 3x3 conv with 4*O outputs on the edge-padded input (reflecting
    the upsampled image by 1 reads the edge pixel again) followed by depth-to-space gives the same sums at
    a quarter of the positions.
    """
    batch, height, width, channels = x.shape
    features = kernel.shape[-1]
    taps = _phase_taps()
    combined = jnp.einsum("rua,svb,uvco->abcrso", taps, taps, kernel).reshape(3, 3, channels, 4 * features)
    y = conv_hwio(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge"), combined, 1, [(0, 0), (0, 0)], dtype)
    y = y.reshape(batch, height, width, 2, 2, features).transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(batch, 2 * height, 2 * width, features)
