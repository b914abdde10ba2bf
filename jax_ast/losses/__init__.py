"""The loss module of jax-ast: plain, pure functions of feature dicts (``import jax_ast.losses as L``).

Features are NHWC dicts keyed by tap name (``{"relu3_3": [B, H, W, C], ...}``). Every loss returns
``(total, breakdown)``: ``total`` has shape [B] (one value per sample; the caller takes the batch mean)
and ``breakdown`` maps ``"<term>/<layer>"`` to [B] arrays. Everything is jit/vmap/grad-safe and
accumulates in float32 even for bfloat16 features.

Inputs are checked (from static shapes, so also under jit) before any arithmetic: an empty layer list,
feature maps of different channel or batch sizes (a reference batch of 1 is broadcast), different spatial
sizes where positions are compared, and empty maps (which would give NaN) each raise one ValueError
naming the layer and the shapes.

The balanced loss (Cheng et al., CVPR 2021) divides each layer's classic Gram loss by its supremum
V^l = (||G(F(S))||^2 + ||G(F(P))||^2) / N^l. With N^l the same constant as in the MSE (C_l^2), N^l
cancels and the balanced layer loss is ||A - B||^2 / (||A||^2 + ||B||^2) in [0, 1], invariant to the
Gram normalisation and to any common scale of the features (docs/losses.md, Balanced loss).
"""

from jax_ast.losses.common import (ADAIN_STYLE_LAYERS, GRAM_TERMS, MEAN_STD_DDOF, MEAN_STD_EPS, PAPER_CONTENT_LAYERS,
                                   PAPER_STYLE_LAYERS, SANET_STYLE_LAYERS, STYLE_TERMS, TERMS, Breakdown, Feats)
from jax_ast.losses.entry import compute_loss_terms, feature_terms, loss_terms, terms_from_targets
from jax_ast.losses.paper import (balanced_style_loss, classic_style_loss, content_loss, mean_std_style_loss,
                                  style_loss_bound, total_variation_loss)
from jax_ast.losses.targets import content_targets, style_targets
from jax_ast.ops import gram

__all__ = [
    "gram", "content_loss", "classic_style_loss", "style_loss_bound", "balanced_style_loss",
    "mean_std_style_loss", "total_variation_loss", "content_targets", "style_targets", "terms_from_targets",
    "feature_terms", "loss_terms", "compute_loss_terms",
]
