"""The targets of the losses: what the style terms need of a style image, and the content term of a content
image, computed once per image (eval.run caches them per image; docs/performance.md, eval.run's target cache).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp

from jax_ast.losses.common import (GRAM_TERMS, MEAN_STD_DDOF, MEAN_STD_EPS, PAPER_CONTENT_LAYERS, PAPER_STYLE_LAYERS,
                                   STYLE_TERMS, Feats, check_layers, check_statistics, features, upcast)
from jax_ast.ops import GramNorm, accumulation_dtype, channel_mean_std, gram


def content_targets(content_feats: Feats, *, layers: Sequence[str] = PAPER_CONTENT_LAYERS) -> dict[str, jax.Array]:
    """The content loss's targets: the content features of `layers`, {layer: [B, H, W, C]} (checked)."""
    return {layer: upcast(features(content_feats, layer, "content"))
            for layer in check_layers(layers, "content_targets")}


def style_targets(style_feats: Feats, *, layers: Sequence[str] = PAPER_STYLE_LAYERS,
                  terms: Sequence[str] = STYLE_TERMS,
                  ddof: int = MEAN_STD_DDOF, eps: float = MEAN_STD_EPS) -> dict[str, dict[str, jax.Array]]:
    """What the style terms need of the style features, per layer (everything else comes from the output).

    Args:
      style_feats: {layer: [B, H, W, C]}. terms: the style terms to serve (see `feature_terms`).
      ddof, eps: of the mean/std statistics (`jax_ast.ops.channel_mean_std`).

    Returns:
      {layer: {"pixels": float32 [B] (H * W, for the Gram normalisations), "gram": float32 [B, C, C]
      un-normalised Gram (Gram terms), "mean", "std": float32 [B, 1, 1, C] (mean_std)}}. The squared
      Gram norms of the bound are not stored: they are one reduction of "gram".
    """
    layers = check_layers(layers, "style_targets")
    targets = {}
    for layer in layers:
        style = upcast(features(style_feats, layer, "style"))
        target = {"pixels": jnp.full(style.shape[:1], style.shape[1] * style.shape[2], accumulation_dtype(style))}
        if any(term in GRAM_TERMS for term in terms):
            target["gram"] = gram(style)
        if "mean_std" in terms:
            check_statistics(style, f"layer {layer!r}", ddof)
            target["mean"], target["std"] = channel_mean_std(style, ddof=ddof, eps=eps)
        targets[layer] = target
    return targets


def normalised_gram(target: Mapping[str, jax.Array], gram_norm: GramNorm) -> jax.Array:
    """The target's Gram with `gram_norm` (as `jax_ast.ops.gram` would have normalised it), [B, C, C]."""
    style_gram = target["gram"]
    if gram_norm == "none":
        return style_gram
    divisor = target["pixels"] * (style_gram.shape[-1] if gram_norm == "chw" else 1)
    return style_gram / divisor[:, None, None]

