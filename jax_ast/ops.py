"""Pure feature-space operations shared by the models and the losses.

Every function works on NHWC arrays, is jit/vmap/grad-safe and has no side effects. Statistics that
can overflow in low precision (Gram matrices of un-normalised VGG features reach ~1e11) are always
accumulated in float32, whatever the input dtype.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

GramNorm = Literal["none", "hw", "chw"]
GRAM_NORMS: tuple[str, ...] = ("none", "hw", "chw")


def accumulation_dtype(x: jax.Array) -> jnp.dtype:
    """float32 for bf16/f16/f32 inputs, float64 for float64 inputs (x64 mode)."""
    return jnp.promote_types(x.dtype, jnp.float32)


def channel_mean_std(feats: jax.Array, *, ddof: int = 1, eps: float = 1e-5) -> tuple[jax.Array, jax.Array]:
    """Per-sample, per-channel spatial mean and std.

    Args:
      feats: [B, H, W, C].
      ddof: 1 for torch's unbiased ``Tensor.var`` (the PyTorch AdaIN/SANet ports), 0 for biased
        (``tf.nn.moments``, BatchNorm, Magenta).
      eps: added to the variance inside the square root, so constant maps give finite gradients.

    Returns:
      (mean, std), each float32 [B, 1, 1, C].
    """
    feats = feats.astype(accumulation_dtype(feats))
    count = feats.shape[1] * feats.shape[2]
    if count - ddof <= 0:
        raise ValueError(f"channel_mean_std needs more than {ddof} spatial positions, got shape {feats.shape}")
    mean = jnp.mean(feats, axis=(1, 2), keepdims=True)
    var = jnp.sum(jnp.square(feats - mean), axis=(1, 2), keepdims=True) / (count - ddof)
    return mean, jnp.sqrt(var + eps)


def mean_variance_norm(feats: jax.Array, *, ddof: int = 1, eps: float = 1e-5,
                       stats: tuple[jax.Array, jax.Array] | None = None) -> jax.Array:
    """(x - mean) / std per sample and channel; the `norm` of SANet and the content side of AdaIN.

    `stats`: (mean, std) broadcastable to [B, 1, 1, C] to use instead of the features' own (tiled
    stylisation injects whole-image statistics, `jax_ast.shared_stats`); None computes them.
    """
    mean, std = channel_mean_std(feats, ddof=ddof, eps=eps) if stats is None else stats
    return ((feats.astype(mean.dtype) - mean) / std).astype(feats.dtype)


def adain_with_stats(content: jax.Array, mean: jax.Array, std: jax.Array, *, ddof: int = 1,
                     eps: float = 1e-5, content_stats: tuple[jax.Array, jax.Array] | None = None) -> jax.Array:
    """std * (x - mean(x)) / std(x) + mean: content normalised per sample and channel, then re-scaled.

    The one normalise-and-rescale of the library: AdaIN (target = a style's statistics) and Magenta's
    conditional style norm (target = predicted beta, gamma) both use it.

    Args:
      content: [B, H, W, C] features.
      mean, std: target statistics broadcastable to [B, 1, 1, C] (e.g. `channel_mean_std` of a style).
      ddof, eps: as in `channel_mean_std`, for the content's own statistics.
      content_stats: (mean, std) to use instead of the content's own (as in `mean_variance_norm`).

    Returns:
      float32 [B, H, W, C] (float64 for float64 input).
    """
    if content_stats is None:
        content_stats = channel_mean_std(content, ddof=ddof, eps=eps)
    content_mean, content_std = content_stats
    normalized = (content.astype(content_mean.dtype) - content_mean) / content_std
    return normalized * std + mean


def adain(content: jax.Array, style: jax.Array, *, ddof: int = 1, eps: float = 1e-5) -> jax.Array:
    """Adaptive instance normalisation: content re-scaled to the style's channel mean and std.

    Args:
      content: [B, Hc, Wc, C] features.
      style: [B, Hs, Ws, C] features (sizes may differ from the content's).

    Returns:
      [B, Hc, Wc, C] with, per channel, mean = mean(style) and std = std(style) (eps-adjusted).
    """
    style_mean, style_std = channel_mean_std(style, ddof=ddof, eps=eps)
    return adain_with_stats(content, style_mean, style_std, ddof=ddof, eps=eps).astype(content.dtype)


def gram(feats: jax.Array, normalize: GramNorm = "none") -> jax.Array:
    """Gram matrix F^T F of NHWC features, accumulated in float32.

    Args:
      feats: [B, H, W, C].
      normalize: "none" (the paper's un-normalised Gram), "hw" (divide by H*W, Magenta) or "chw"
        (divide by C*H*W, LinearTransfer and the CENG501 reproduction).

    Returns:
      [B, C, C] in float32 (float64 for float64 input).
    """
    if normalize not in GRAM_NORMS:
        raise ValueError(f"unknown gram normalisation {normalize!r}; choose one of {GRAM_NORMS}")
    batch, height, width, channels = feats.shape
    flat = feats.reshape(batch, height * width, channels)
    out = jnp.einsum("bnc,bnd->bcd", flat, flat, preferred_element_type=accumulation_dtype(feats),
                     precision=jax.lax.Precision.HIGHEST)
    if normalize == "hw":
        out = out / (height * width)
    elif normalize == "chw":
        out = out / (channels * height * width)
    return out


def squared_frobenius(matrices: jax.Array) -> jax.Array:
    """Sum of squares over the last two axes: [B, C, C] -> float32 [B]."""
    matrices = matrices.astype(accumulation_dtype(matrices))
    return jnp.sum(jnp.square(matrices), axis=(-2, -1))
