"""The losses of the paper and of the classic AST literature, as functions of feature dicts.

The balanced loss (Cheng et al., CVPR 2021) divides each layer's classic Gram loss by its supremum
V^l = (||G(F(S))||^2 + ||G(F(P))||^2) / N^l (docs/losses.md, Balanced loss).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp

from jax_ast.losses.common import (ADAIN_STYLE_LAYERS, MEAN_STD_DDOF, MEAN_STD_EPS, PAPER_CONTENT_LAYERS,
                                   PAPER_STYLE_LAYERS, Breakdown, Feats, check_layers, check_statistics, features,
                                   layer_weights, mse_per_sample, pair, shape_problem, unknown_term, weighted_sum)
from jax_ast.losses.targets import normalised_gram, style_targets
from jax_ast.ops import GramNorm, accumulation_dtype, channel_mean_std, gram, squared_frobenius


def content_loss(target_feats: Feats, output_feats: Feats, *, layers: Sequence[str] = PAPER_CONTENT_LAYERS,
                 weights=None) -> tuple[jax.Array, Breakdown]:
    """Feature MSE (mean over H, W, C) per layer between target and output features (of equal shapes)."""
    layers = check_layers(layers, "content_loss")
    w = layer_weights(layers, weights)
    per_layer = {}
    for layer in layers:
        target, output = pair(target_feats, output_feats, layer, "target", same_size=True)
        per_layer[layer] = mse_per_sample(output, target)
    return weighted_sum("content", per_layer, w)


def classic_style_loss(style_feats: Feats, output_feats: Feats, *, layers: Sequence[str] = PAPER_STYLE_LAYERS,
                       weights=None, gram_norm: GramNorm = "none") -> tuple[jax.Array, Breakdown]:
    """The classic AST style loss: per layer, MSE over the C*C Gram entries of G(F(S)) and G(F(P))."""
    return _style_loss("classic", style_feats, output_feats, layers, weights, gram_norm=gram_norm)


def style_loss_bound(style_feats: Feats, output_feats: Feats, *, layers: Sequence[str] = PAPER_STYLE_LAYERS,
                     gram_norm: GramNorm = "none") -> tuple[jax.Array, Breakdown]:
    """The paper's per-layer supremum V^l = (||G(F(S))||^2 + ||G(F(P))||^2) / C_l^2 of the classic loss.

    N^l = C_l^2 is the constant of the classic loss's MSE, which makes V^l a true upper bound
    (classic^l <= V^l for any features; docs/losses.md, The bound). The total is the unweighted layer sum.
    Both maps of a layer must have the same channel count (C_l is one number).
    """
    return _style_loss("bound", style_feats, output_feats, layers, None, gram_norm=gram_norm)


def balanced_layer(style_gram: jax.Array, output_gram: jax.Array, *, detach_denominator: bool,
                   eps: float) -> jax.Array:
    """||A - B||^2 / (||A||^2 + ||B||^2) per sample, computed on Grams rescaled to O(1).

    The ratio is invariant to a common scale, so both Grams are divided by a stop-gradient per-sample
    scale first: this keeps float32 far from overflow (raw Gram entries reach ~1e11) and makes `eps` a
    relative tolerance. The stop-gradient is exact because the ratio does not depend on the scale.
    """
    scale = jnp.maximum(jnp.max(jnp.abs(style_gram), axis=(1, 2)), jnp.max(jnp.abs(output_gram), axis=(1, 2)))
    scale = jax.lax.stop_gradient(jnp.maximum(scale, jnp.finfo(scale.dtype).tiny))[:, None, None]
    style_gram, output_gram = style_gram / scale, output_gram / scale
    numerator = squared_frobenius(style_gram - output_gram)
    denominator = squared_frobenius(style_gram) + squared_frobenius(output_gram)
    if detach_denominator:
        denominator = jax.lax.stop_gradient(denominator)
    return numerator / (denominator + eps)


def balanced_style_loss(style_feats: Feats, output_feats: Feats, *, layers: Sequence[str] = PAPER_STYLE_LAYERS,
                        weights=None, detach_denominator: bool = False,
                        eps: float = 1e-12) -> tuple[jax.Array, Breakdown]:
    """The balanced (style-aware normalised) style loss: sum_l w_l * classic^l / V^l, each term in [0, 1].

    Args:
      style_feats, output_feats: {layer: [B, H, W, C]} of the style image S and the pastiche P
        (same spatial size, otherwise per-image 1/(HW) factors no longer cancel).
      detach_denominator: stop the gradient through V^l (an ablation; the paper's literal formula
        differentiates through ||G(F(P))||^2).
      eps: relative tolerance added to the rescaled denominator; all-zero features give 0, not NaN.

    Returns:
      (total [B], {"balanced/<layer>": [B]}). Normalisation is per sample, as the paper requires.
    """
    return _style_loss("balanced", style_feats, output_feats, layers, weights,
                       detach_denominator=detach_denominator, balanced_eps=eps)


def mean_std_style_loss(style_feats: Feats, output_feats: Feats, *, layers: Sequence[str] = ADAIN_STYLE_LAYERS,
                        weights=None, ddof: int = 1, eps: float = 1e-5) -> tuple[jax.Array, Breakdown]:
    """AdaIN/SANet style loss: per layer MSE(mean_P, mean_S) + MSE(std_P, std_S), each averaged over C.

    The batch mean of `total` equals the PyTorch port's loss (MSE averaged over B*C, unbiased var + 1e-5).
    """
    return _style_loss("mean_std", style_feats, output_feats, layers, weights, ddof=ddof, std_eps=eps)


def _style_loss(term: str, style_feats: Feats, output_feats: Feats, layers: Sequence[str], weights, *,
                ddof: int = MEAN_STD_DDOF, std_eps: float = MEAN_STD_EPS, **options) -> tuple[jax.Array, Breakdown]:
    """One of the public style losses above: checks, the style's targets, then `style_layer` per layer."""
    loss = {"classic": "classic_style_loss", "bound": "style_loss_bound", "balanced": "balanced_style_loss",
            "mean_std": "mean_std_style_loss"}[term]
    layers = check_layers(layers, loss)
    w = layer_weights(layers, weights)
    for layer in layers:
        pair(style_feats, output_feats, layer, "style", same_size=False)
    targets = style_targets(style_feats, layers=layers, terms=(term,), ddof=ddof, eps=std_eps)
    per_layer = {layer: style_layer(term, targets[layer], output_feats, layer, ddof=ddof, std_eps=std_eps,
                                    **options) for layer in layers}
    return weighted_sum(term, per_layer, w)



def style_layer(term: str, target: Mapping[str, jax.Array], output_feats: Feats, layer: str, *,
                gram_norm: GramNorm = "none", detach_denominator: bool = False, balanced_eps: float = 1e-12,
                 ddof: int = MEAN_STD_DDOF, std_eps: float = MEAN_STD_EPS) -> jax.Array:
    """One style term of one layer, [B], from the style's `target` (`style_targets`) and the output features."""
    output = features(output_feats, layer, "output")
    reference = target["gram"] if "gram" in target else target["mean"]
    problem = shape_problem((reference.shape[0], 1, 1, reference.shape[-1]), output.shape, same_size=False)
    if problem:
        raise ValueError(f"layer {layer!r}: style targets (of shape {tuple(reference.shape)}) and output "
                         f"features {tuple(output.shape)} do not match ({problem})")
    if term in ("classic", "classic_hw", "classic_chw"):
        norm = gram_norm if term == "classic" else term.split("_", 1)[1]
        return jnp.mean(jnp.square(normalised_gram(target, norm) - gram(output, norm)), axis=(1, 2))
    if term == "bound":
        style_gram, output_gram = normalised_gram(target, gram_norm), gram(output, gram_norm)
        channels = style_gram.shape[-1]
        return (squared_frobenius(style_gram) + squared_frobenius(output_gram)) / (channels * channels)
    if term == "balanced":
        return balanced_layer(target["gram"], gram(output), detach_denominator=detach_denominator, eps=balanced_eps)
    if term == "mean_std":
        check_statistics(output, f"layer {layer!r}", ddof)
        output_mean, output_std = channel_mean_std(output, ddof=ddof, eps=std_eps)
        return mse_per_sample(output_mean, target["mean"]) + mse_per_sample(output_std, target["std"])
    raise unknown_term(term)


def total_variation_loss(images: jax.Array) -> jax.Array:
    """Magenta's total variation: 0.5 * (mean squared vertical diff + mean squared horizontal diff), [B].

    An axis of length 1 has no pairs of neighbouring pixels, so its term is 0: the image does not vary
    along it (the empty sum of squared differences), and no pixel pair constrains the gradient. The plain
    mean would be 0/0 = NaN. Empty images (H, W or C = 0) raise a ValueError.
    """
    if images.ndim != 4 or 0 in images.shape[1:]:
        raise ValueError(f"total_variation_loss: images have shape {tuple(images.shape)}; expected a non-empty "
                         "[B, H, W, C] batch (H, W and C at least 1)")
    images = images.astype(accumulation_dtype(images))
    no_pairs = jnp.zeros(images.shape[:1], images.dtype)
    vertical = (jnp.mean(jnp.square(images[:, 1:] - images[:, :-1]), axis=(1, 2, 3))
                if images.shape[1] > 1 else no_pairs)
    horizontal = (jnp.mean(jnp.square(images[:, :, 1:] - images[:, :, :-1]), axis=(1, 2, 3))
                  if images.shape[2] > 1 else no_pairs)
    return 0.5 * (vertical + horizontal)

