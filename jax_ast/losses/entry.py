"""The shared entry point: one loss-network pass per image, every term training and evaluation need.

`loss_terms` is training's classic/balanced style term and eval's per-pair scores; `terms_from_targets`
scores outputs against cached targets (`jax_ast.losses.targets`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp

from jax_ast.losses.common import (PAPER_CONTENT_LAYERS, PAPER_STYLE_LAYERS, TERMS, Feats, check_layers, check_terms,
                                   pair, upcast, weighted_sum)
from jax_ast.losses.paper import content_loss, style_layer
from jax_ast.losses.targets import content_targets, style_targets
from jax_ast.ops import GramNorm


def terms_from_targets(content_targets: Feats | None, style_targets: Mapping[str, Mapping[str, jax.Array]] | None,
                       output_feats: Feats, *, terms: Sequence[str] = TERMS,
                       style_layers: Sequence[str] = PAPER_STYLE_LAYERS,
                       content_layers: Sequence[str] = PAPER_CONTENT_LAYERS, gram_norm: GramNorm = "none",
                       detach_denominator: bool = False) -> dict[str, jax.Array]:
    """The named loss terms of the output features against precomputed targets, each [B].

    Args:
      content_targets: `content_targets(...)` of the content images (None without the "content" term).
      style_targets: `style_targets(...)` of the style images, with every layer of `style_layers` and what
        `terms` need (None when only "content" is asked for). A target batch of 1 is broadcast.
      output_feats: {layer: [B, H, W, C]} of the outputs; the only input that carries gradients here.
      terms, style_layers, content_layers, gram_norm, detach_denominator: see `feature_terms`.

    Returns:
      {term: total [B]} plus {"<term>/<layer>": [B]} for every asked term.
    """
    output_feats = upcast(output_feats)
    computed: dict[str, jax.Array] = {}
    for term in check_terms(terms):
        if term == "content":
            if content_targets is None:
                raise ValueError("the content term needs content features, got None")
            total, parts = content_loss(content_targets, output_feats, layers=content_layers)
        else:
            if style_targets is None:
                raise ValueError(f"the {term} term needs style features, got None")
            layers = check_layers(style_layers, f"the {term} term")
            per_layer = {layer: style_layer(term, _layer_targets(style_targets, layer), output_feats, layer,
                                            gram_norm=gram_norm, detach_denominator=detach_denominator)
                         for layer in layers}
            total, parts = weighted_sum(term, per_layer, {layer: 1.0 for layer in layers})
        computed[term] = total
        computed.update(parts)
    return computed


def _layer_targets(targets: Mapping[str, Mapping[str, jax.Array]], layer: str) -> Mapping[str, jax.Array]:
    if layer not in targets:
        raise KeyError(f"style targets have no layer {layer!r}; available: {sorted(targets)}")
    return targets[layer]


def feature_terms(content_feats: Feats | None, style_feats: Feats, output_feats: Feats, *,
                  terms: Sequence[str] = TERMS, style_layers: Sequence[str] = PAPER_STYLE_LAYERS,
                  content_layers: Sequence[str] = PAPER_CONTENT_LAYERS, gram_norm: GramNorm = "none",
                  detach_denominator: bool = False) -> dict[str, jax.Array]:
    """The named loss terms of (content, style, output) features, each [B]: `terms_from_targets` of the
    content's and the style's targets (`content_targets`, `style_targets`).

    Args:
      terms: names from `TERMS`, plus "classic_hw" / "classic_chw": the classic loss with that Gram
        normalisation (plain "classic" uses `gram_norm`; "bound" too). `content_feats` may be None when
        "content" is not asked for.
      detach_denominator: of the balanced loss (see `balanced_style_loss`).

    Returns:
      {term: total [B]} plus {"<term>/<layer>": [B]} for every asked term, float32 whatever the features'
      dtype (bfloat16 features are upcast before any Gram, norm or difference).
    """
    terms = check_terms(terms)
    content = None
    if "content" in terms and content_feats is not None:
        content = content_targets(content_feats, layers=content_layers)
    style = None
    if any(term != "content" for term in terms):
        for layer in check_layers(style_layers, "feature_terms"):  # named by the features, not their targets
            pair(style_feats, output_feats, layer, "style", same_size=False)
        style = style_targets(style_feats, layers=style_layers, terms=terms)
    return terms_from_targets(content, style, output_feats, terms=terms, style_layers=style_layers,
                              content_layers=content_layers, gram_norm=gram_norm,
                              detach_denominator=detach_denominator)


def loss_terms(loss_net, loss_net_params, content: jax.Array | None, style: jax.Array, output: jax.Array, *,
               terms: Sequence[str] = TERMS, style_layers: Sequence[str] = PAPER_STYLE_LAYERS,
               content_layers: Sequence[str] = PAPER_CONTENT_LAYERS, gram_norm: GramNorm = "none",
               detach_denominator: bool = False) -> dict[str, jax.Array]:
    """The loss terms of (content, style, output) triples on a loss network: the one entry point of
    training's classic/balanced style term and of eval's per-pair scores.

    The network is an argument, so this module still imports no model: the loss network's features are
    computed here, and every term by `feature_terms`.

    Args:
      loss_net: a `jax_ast.models.vgg.VGG` module (its `taps` are replaced by the layers needed).
      loss_net_params: its variables ({"params": ...}).
      content, style, output: float[B, H, W, 3] RGB in [0, 1]; `content` may be None without the content
        term. Content and style are targets: no gradient flows to them; gradients flow to `output` (and
        the loss-network params).
      terms, style_layers, content_layers, gram_norm, detach_denominator: see `feature_terms`.

    Returns:
      {term: total [B]} plus {"<term>/<layer>": [B]} for every term in `terms`.
    """
    wants_content = "content" in terms
    wants_style = any(term != "content" for term in terms)
    layers = tuple(dict.fromkeys((*(style_layers if wants_style else ()), *(content_layers if wants_content else ()))))
    net = loss_net.clone(taps=layers)
    targets = [x for x in ((content if wants_content else None), style) if x is not None]
    # The targets are constants of the loss (the style Gram and content features are detached, as in
    # every reference implementation), so their pass is kept out of the backward graph; batching
    # content and style together halves the number of loss-network calls.
    if len(targets) == 2 and content.shape == style.shape:
        stacked = net.apply(loss_net_params, jnp.concatenate(targets, axis=0))
        target_feats = [{k: v[: content.shape[0]] for k, v in stacked.items()},
                        {k: v[content.shape[0]:] for k, v in stacked.items()}]
    else:
        target_feats = [net.apply(loss_net_params, x) for x in targets]
    target_feats = jax.lax.stop_gradient(target_feats)
    content_feats = target_feats[0] if len(target_feats) == 2 else None
    output_feats = net.apply(loss_net_params, output)
    return feature_terms(content_feats, target_feats[-1], output_feats, terms=terms, style_layers=style_layers,
                         content_layers=content_layers, gram_norm=gram_norm, detach_denominator=detach_denominator)


compute_loss_terms = jax.jit(loss_terms, static_argnames=("loss_net", "terms", "style_layers", "content_layers",
                                                          "gram_norm", "detach_denominator"))
"""`loss_terms`, jit-compiled once per (network, terms, layers, shapes)."""
