"""Small Flax building blocks shared by the encoders, decoders and transfer modules (NHWC)."""

from __future__ import annotations

import functools
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

Padding = Literal["reflect", "zero"]


def reflect_pad(x: jax.Array, pad: int) -> jax.Array:
    """Reflection padding of H and W, identical to torch ``ReflectionPad2d`` (edge not repeated).

    [B, H, W, C] -> [B, H + 2 pad, W + 2 pad, C]; needs H, W > pad. Values are ``jnp.pad(mode="reflect")``'s;
    the gradient is the same sum, formed by `_reflect_pad_bwd` (see there for why).
    """
    if pad == 0:
        return x
    return _reflect_pad(x, pad)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _reflect_pad(x: jax.Array, pad: int) -> jax.Array:
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def _reflect_pad_fwd(x: jax.Array, pad: int) -> tuple[jax.Array, None]:
    return _reflect_pad(x, pad), None


def _add_mirrored(out: jax.Array, first: jax.Array, last: jax.Array, axis: int) -> jax.Array:
    """Adds the two border slabs [.., pad, ..] of a reflect pad of `axis` onto the positions they copied.

    `out` is the gradient's middle [.., n, ..]; padded positions pad-1 .. 0 copied input positions 1 .. pad and
    the last pad ones copied n-1-pad .. n-2, so each slab is mirrored and added there in place.
    """
    size, pad = out.shape[axis], first.shape[axis]
    mirror = (lambda slab: jnp.flip(slab, axis)) if pad > 1 else (lambda slab: slab)  # no reverse op when pad = 1
    top, bottom = [slice(None)] * out.ndim, [slice(None)] * out.ndim
    top[axis], bottom[axis] = slice(1, pad + 1), slice(size - 1 - pad, size - 1)
    return out.at[tuple(top)].add(mirror(first)).at[tuple(bottom)].add(mirror(last))


def _fold_rows(grad: jax.Array, pad: int) -> jax.Array:
    """Transpose of reflect-padding H by `pad`: [B, H + 2 pad, w, C] -> [B, H, w, C]."""
    return _add_mirrored(grad[:, pad:-pad], grad[:, :pad], grad[:, -pad:], axis=1)


def _reflect_pad_bwd(pad: int, _: None, grad: jax.Array) -> tuple[jax.Array]:
    """Gradient of `reflect_pad`: [B, H + 2 pad, W + 2 pad, C] -> [B, H, W, C].

    The same sums as JAX's transpose of ``jnp.pad(mode="reflect")``, in another order (equal up to float
    rounding). Only the thin border slabs are folded separately, then added in place; JAX's own transpose sums
    zero-padded whole-size pieces and took 2 to 12x as long on CPU (docs/performance.md, "Where the CPU training
    step spends its time").
    """
    middle = _fold_rows(grad[:, :, pad:-pad], pad)
    return (_add_mirrored(middle, _fold_rows(grad[:, :, :pad], pad), _fold_rows(grad[:, :, -pad:], pad), axis=2),)


_reflect_pad.defvjp(_reflect_pad_fwd, _reflect_pad_bwd)


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
    """Nearest-neighbour upsampling by an integer factor: [B, H, W, C] -> [B, fH, fW, C]."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def pad_to_multiple(images: jax.Array, multiple: int) -> jax.Array:
    """Reflect-pad H and W on the bottom/right to the next multiple of `multiple`: [B,H,W,C] -> [B,H',W',C].

    Reflection needs H, W > the padding added (always true for H, W >= `multiple`).
    """
    pad_h = -images.shape[1] % multiple
    pad_w = -images.shape[2] % multiple
    if not (pad_h or pad_w):
        return images
    return jnp.pad(images, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="reflect")


def blend_features(transformed: jax.Array, content_feats: jax.Array, alpha: Any) -> jax.Array:
    """Feature-space style strength: alpha * transformed + (1 - alpha) * content_feats.

    Args:
      transformed, content_feats: [B, h, w, C] (content_feats may also broadcast, e.g. batch 1).
      alpha: a scalar or one value per sample [B]; exactly `transformed` (as float32) at alpha = 1.

    Returns:
      [B, h, w, C], float32 for float32 or bfloat16 inputs.

    Raises:
      ValueError: alpha is neither a scalar nor of shape [B].
    """
    alpha = jnp.asarray(alpha, jnp.float32)
    if alpha.ndim == 1:
        alpha = alpha[:, None, None, None]
    elif alpha.ndim != 0:
        raise ValueError(f"alpha must be a scalar or of shape [B], got shape {alpha.shape}")
    return alpha * transformed + (1.0 - alpha) * content_feats


def max_pool_2x2(x: jax.Array, *, ceil_mode: bool = False) -> jax.Array:
    """2x2 stride-2 max pool; ``ceil_mode`` pads bottom/right with -inf like torch's ceil_mode=True."""
    if ceil_mode:
        pad_h, pad_w = x.shape[1] % 2, x.shape[2] % 2
        if pad_h or pad_w:
            x = jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), constant_values=-jnp.inf)
    return _max_pool_2x2_even(x[:, : x.shape[1] // 2 * 2, : x.shape[2] // 2 * 2])


def _windows(x: jax.Array) -> jax.Array:
    """[B, 2h, 2w, C] -> [B, h, 2, w, 2, C]: the 2x2 windows as their own axes (a free reshape)."""
    batch, height, width, channels = x.shape
    return x.reshape(batch, height // 2, 2, width // 2, 2, channels)


@jax.custom_vjp
def _max_pool_2x2_even(x: jax.Array) -> jax.Array:
    """2x2 stride-2 max pool of [B, 2h, 2w, C] -> [B, h, w, C], as a reshape and a max.

    Values and gradients are those of ``nn.max_pool(x, (2, 2), strides=(2, 2))``: the gradient goes to the first
    maximum of each window in row-major order, as XLA's select-and-scatter (and torch) route it. The custom VJP
    exists for speed: on CPU, JAX's max-pool gradient lowers to index-carrying reduce-windows that ran 6 to 30x
    slower than torch's max-pool backward (docs/performance.md, "Where the CPU training step spends its time").
    """
    return _windows(x).max(axis=(2, 4))


def _max_pool_2x2_fwd(x: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    out = _max_pool_2x2_even(x)
    return out, (x, out)


def _max_pool_2x2_bwd(residuals: tuple[jax.Array, jax.Array], grad: jax.Array) -> tuple[jax.Array]:
    x, out = residuals
    hit = _windows(x) == out[:, :, None, :, None, :]  # [B, h, 2, w, 2, C]: where each window attains its max
    taken = jnp.zeros_like(hit[:, :, 0, :, 0])
    rows = []
    for dy in range(2):  # row-major window order; each position takes the gradient only if no earlier one did
        cols = []
        for dx in range(2):
            first = hit[:, :, dy, :, dx] & ~taken
            taken = taken | first
            cols.append(jnp.where(first, grad, jnp.zeros_like(grad)))
        rows.append(jnp.stack(cols, axis=3))  # [B, h, w, 2, C]
    return (jnp.stack(rows, axis=2).reshape(x.shape),)  # [B, h, 2, w, 2, C] -> [B, 2h, 2w, C]


_max_pool_2x2_even.defvjp(_max_pool_2x2_fwd, _max_pool_2x2_bwd)


def avg_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 stride-2 VALID average pool (TF-slim VGG-16 in Magenta's loss network)."""
    return nn.avg_pool(x, (2, 2), strides=(2, 2), padding="VALID")


# PyTorch's default init of nn.Conv2d / nn.Linear: weights and biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
# Flax's lecun_normal has 3x that variance; in a chain that multiplies activations (LinearTransfer's
# covariance matrices) the difference compounds to ~1e3-1e4 times larger initial outputs than the original.
TORCH_KERNEL_INIT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in: int):
    """PyTorch's default bias init for a layer with `fan_in` inputs per output."""
    bound = 1.0 / float(fan_in) ** 0.5

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return init


def padded_conv(
    x: jax.Array,
    features: int,
    kernel_size: int = 3,
    *,
    name: str,
    padding: Padding = "reflect",
    strides: int = 1,
    use_bias: bool = True,
    dtype: Any = jnp.float32,
    kernel_init: Any = nn.initializers.lecun_normal(),
    torch_init: bool = False,
) -> jax.Array:
    """Pad explicitly, then convolve; call inside a parent's ``@nn.compact`` method.

    The ``nn.Conv`` is registered in the *calling* module under ``name``, so parameter paths stay flat
    (``{"conv1_1": {"kernel", "bias"}}``) and map one-to-one to the original checkpoints' keys.

    Args:
      x: [B, H, W, Cin].
      padding: "reflect" (torch ``ReflectionPad2d(k//2)`` + VALID conv) or "zero" (``padding=k//2``).
      dtype: computation dtype; parameters stay float32.
      torch_init: initialise kernel and bias as PyTorch's nn.Conv2d does (overrides `kernel_init`).
    """
    pad = kernel_size // 2
    bias_init: Any = nn.initializers.zeros
    if torch_init:
        kernel_init = TORCH_KERNEL_INIT
        bias_init = torch_bias_init(x.shape[-1] * kernel_size * kernel_size)
    if padding == "reflect":
        x = reflect_pad(x, pad)
        conv_padding: Any = "VALID"
    elif padding == "zero":
        conv_padding = ((pad, pad), (pad, pad))
    else:
        raise ValueError(f"unknown padding {padding!r}; use 'reflect' or 'zero'")
    return nn.Conv(
        features,
        (kernel_size, kernel_size),
        strides=(strides, strides),
        padding=conv_padding,
        use_bias=use_bias,
        dtype=dtype,
        kernel_init=kernel_init,
        bias_init=bias_init,
        name=name,
    )(x)
