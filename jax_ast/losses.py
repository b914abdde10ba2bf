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

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp

from jax_ast.ops import GramNorm, accumulation_dtype, channel_mean_std, gram, mean_variance_norm, squared_frobenius

Feats = Mapping[str, jax.Array]
Breakdown = dict[str, jax.Array]

# The paper's loss network is ImageNet VGG-16: style at relu1_2, relu2_2, relu3_3, relu4_3, content at relu3_3.
PAPER_STYLE_LAYERS: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
PAPER_CONTENT_LAYERS: tuple[str, ...] = ("relu3_3",)
ADAIN_STYLE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
SANET_STYLE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STYLE_TERMS: tuple[str, ...] = ("classic", "bound", "balanced", "mean_std")
TERMS: tuple[str, ...] = ("content", *STYLE_TERMS)  # the terms of `feature_terms` (plus classic_hw/chw)
MEAN_STD_DDOF, MEAN_STD_EPS = 1, 1e-5  # the mean/std loss's statistics: torch's unbiased variance + 1e-5
__all__ = [
    "gram", "content_loss", "classic_style_loss", "style_loss_bound", "balanced_style_loss",
    "mean_std_style_loss", "total_variation_loss", "adain_native_loss", "sanet_native_loss",
    "linear_native_loss", "magenta_native_loss", "content_targets", "style_targets", "terms_from_targets",
    "feature_terms", "loss_terms", "compute_loss_terms",
]


def _check_layers(layers: Sequence[str], loss: str) -> tuple[str, ...]:
    """`layers` as a tuple; an empty list or a bare string is a configuration error, not a zero loss."""
    if isinstance(layers, str):
        raise ValueError(f"{loss}: layers must be a sequence of layer names, got the string {layers!r} "
                         f"(write ({layers!r},))")
    layers = tuple(layers)
    if not layers:
        raise ValueError(f"{loss}: layers is empty; give at least one layer (every loss returns a [B] total)")
    return layers


def _layer_weights(layers: Sequence[str], weights: Mapping[str, float] | Sequence[float] | None) -> dict[str, float]:
    """Per-layer weights as a dict; None means 1 for every layer."""
    if weights is None:
        return {layer: 1.0 for layer in layers}
    if isinstance(weights, Mapping):
        missing = [layer for layer in layers if layer not in weights]
        if missing:
            raise ValueError(f"no weight given for layers {missing}; weights has {sorted(weights)}")
        return {layer: float(weights[layer]) for layer in layers}
    weights = tuple(weights)
    if len(weights) != len(layers):
        raise ValueError(f"{len(weights)} weights for {len(layers)} layers {tuple(layers)}")
    return dict(zip(layers, map(float, weights)))


def _features(feats: Feats, layer: str, role: str) -> jax.Array:
    if layer not in feats:
        raise KeyError(f"{role} features have no layer {layer!r}; available: {sorted(feats)}")
    return _check_map(feats[layer], f"layer {layer!r}", role)


def _check_map(x: jax.Array, name: str, role: str) -> jax.Array:
    """`x` if it is a non-empty [B, H, W, C] map (empty maps give 0/0 = NaN in every mean)."""
    if x.ndim != 4 or 0 in x.shape[1:]:
        raise ValueError(f"{name}: {role} features have shape {tuple(x.shape)}; expected a non-empty "
                         "[B, H, W, C] map (H, W and C at least 1)")
    return x


def _shape_problem(reference: tuple, output: tuple, *, same_size: bool) -> str | None:
    """Why [B, H, W, C] shapes `reference` and `output` cannot be compared, or None.

    Channels must agree, and batch sizes unless one of them is 1 (broadcast, e.g. one style image);
    with `same_size` (losses that compare positions) H and W too.
    """
    (ref_b, ref_h, ref_w, ref_c), (out_b, out_h, out_w, out_c) = reference, output
    return ("channel counts differ" if ref_c != out_c
            else "batch sizes differ" if ref_b != out_b and 1 not in (ref_b, out_b)
            else "spatial sizes differ" if same_size and (ref_h, ref_w) != (out_h, out_w) else None)


def _check_pair(name: str, role: str, reference: jax.Array, output: jax.Array, *, same_size: bool) -> None:
    """Raise one ValueError naming `name` and both shapes unless the maps can be compared (`_shape_problem`)."""
    problem = _shape_problem(reference.shape, output.shape, same_size=same_size)
    if problem:
        raise ValueError(f"{name}: {role} features {tuple(reference.shape)} and output features "
                         f"{tuple(output.shape)} do not match ({problem})")


def _pair(reference_feats: Feats, output_feats: Feats, layer: str, role: str, *,
          same_size: bool) -> tuple[jax.Array, jax.Array]:
    """The `role` and output maps of `layer`, checked with `_check_pair`."""
    reference = _features(reference_feats, layer, role)
    output = _features(output_feats, layer, "output")
    _check_pair(f"layer {layer!r}", role, reference, output, same_size=same_size)
    return reference, output


def _check_statistics(x: jax.Array, name: str, ddof: int) -> None:
    """Channel statistics with `ddof` need more than `ddof` positions (else a division by <= 0)."""
    if x.shape[1] * x.shape[2] <= ddof:
        raise ValueError(f"{name}: features of shape {tuple(x.shape)} have {x.shape[1] * x.shape[2]} spatial "
                         f"position(s); the mean/std statistics (ddof={ddof}) need more than {ddof}")


def _weighted_sum(name: str, per_layer: Breakdown, weights: dict[str, float]) -> tuple[jax.Array, Breakdown]:
    total = sum(weights[layer] * value for layer, value in per_layer.items())
    return total, {f"{name}/{layer}": value for layer, value in per_layer.items()}


def _mse_per_sample(a: jax.Array, b: jax.Array) -> jax.Array:
    """Mean over all non-batch axes of (a - b)^2, float32: [B, ...] -> [B]."""
    dtype = jnp.promote_types(accumulation_dtype(a), accumulation_dtype(b))
    diff = a.astype(dtype) - b.astype(dtype)
    return jnp.mean(jnp.square(diff), axis=tuple(range(1, diff.ndim)))


def content_loss(target_feats: Feats, output_feats: Feats, *, layers: Sequence[str] = PAPER_CONTENT_LAYERS,
                 weights=None) -> tuple[jax.Array, Breakdown]:
    """Feature MSE (mean over H, W, C) per layer between target and output features (of equal shapes)."""
    layers = _check_layers(layers, "content_loss")
    w = _layer_weights(layers, weights)
    per_layer = {}
    for layer in layers:
        target, output = _pair(target_feats, output_feats, layer, "target", same_size=True)
        per_layer[layer] = _mse_per_sample(output, target)
    return _weighted_sum("content", per_layer, w)


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


def _balanced_layer(style_gram: jax.Array, output_gram: jax.Array, *, detach_denominator: bool,
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
    """One of the public style losses above: checks, the style's targets, then `_style_layer` per layer."""
    loss = {"classic": "classic_style_loss", "bound": "style_loss_bound", "balanced": "balanced_style_loss",
            "mean_std": "mean_std_style_loss"}[term]
    layers = _check_layers(layers, loss)
    w = _layer_weights(layers, weights)
    for layer in layers:
        _pair(style_feats, output_feats, layer, "style", same_size=False)
    targets = style_targets(style_feats, layers=layers, terms=(term,), ddof=ddof, eps=std_eps)
    per_layer = {layer: _style_layer(term, targets[layer], output_feats, layer, ddof=ddof, std_eps=std_eps,
                                     **options) for layer in layers}
    return _weighted_sum(term, per_layer, w)


# ---------------------------------------------------------------------------------------------------
# Targets: what the style losses need of a style image, and the content loss of a content image,
# computed once per image (eval.run caches them per image; docs/performance.md, eval.run's target cache).


GRAM_TERMS: tuple[str, ...] = ("classic", "classic_hw", "classic_chw", "bound", "balanced")


def _upcast(tree: Any) -> Any:
    """Features in their accumulation dtype (bfloat16 -> float32; float64 stays): before any Gram, norm or
    difference."""
    return jax.tree.map(lambda x: x.astype(accumulation_dtype(x)), tree)


def content_targets(content_feats: Feats, *, layers: Sequence[str] = PAPER_CONTENT_LAYERS) -> dict[str, jax.Array]:
    """The content loss's targets: the content features of `layers`, {layer: [B, H, W, C]} (checked)."""
    return {layer: _upcast(_features(content_feats, layer, "content"))
            for layer in _check_layers(layers, "content_targets")}


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
    layers = _check_layers(layers, "style_targets")
    targets = {}
    for layer in layers:
        style = _upcast(_features(style_feats, layer, "style"))
        target = {"pixels": jnp.full(style.shape[:1], style.shape[1] * style.shape[2], accumulation_dtype(style))}
        if any(term in GRAM_TERMS for term in terms):
            target["gram"] = gram(style)
        if "mean_std" in terms:
            _check_statistics(style, f"layer {layer!r}", ddof)
            target["mean"], target["std"] = channel_mean_std(style, ddof=ddof, eps=eps)
        targets[layer] = target
    return targets


def _normalised_gram(target: Mapping[str, jax.Array], gram_norm: GramNorm) -> jax.Array:
    """The target's Gram with `gram_norm` (as `jax_ast.ops.gram` would have normalised it), [B, C, C]."""
    style_gram = target["gram"]
    if gram_norm == "none":
        return style_gram
    divisor = target["pixels"] * (style_gram.shape[-1] if gram_norm == "chw" else 1)
    return style_gram / divisor[:, None, None]


def _style_layer(term: str, target: Mapping[str, jax.Array], output_feats: Feats, layer: str, *,
                 gram_norm: GramNorm = "none", detach_denominator: bool = False, balanced_eps: float = 1e-12,
                 ddof: int = MEAN_STD_DDOF, std_eps: float = MEAN_STD_EPS) -> jax.Array:
    """One style term of one layer, [B], from the style's `target` (`style_targets`) and the output features."""
    output = _features(output_feats, layer, "output")
    reference = target["gram"] if "gram" in target else target["mean"]
    problem = _shape_problem((reference.shape[0], 1, 1, reference.shape[-1]), output.shape, same_size=False)
    if problem:
        raise ValueError(f"layer {layer!r}: style targets (of shape {tuple(reference.shape)}) and output "
                         f"features {tuple(output.shape)} do not match ({problem})")
    if term in ("classic", "classic_hw", "classic_chw"):
        norm = gram_norm if term == "classic" else term.split("_", 1)[1]
        return jnp.mean(jnp.square(_normalised_gram(target, norm) - gram(output, norm)), axis=(1, 2))
    if term == "bound":
        style_gram, output_gram = _normalised_gram(target, gram_norm), gram(output, gram_norm)
        channels = style_gram.shape[-1]
        return (squared_frobenius(style_gram) + squared_frobenius(output_gram)) / (channels * channels)
    if term == "balanced":
        return _balanced_layer(target["gram"], gram(output), detach_denominator=detach_denominator, eps=balanced_eps)
    if term == "mean_std":
        _check_statistics(output, f"layer {layer!r}", ddof)
        output_mean, output_std = channel_mean_std(output, ddof=ddof, eps=std_eps)
        return _mse_per_sample(output_mean, target["mean"]) + _mse_per_sample(output_std, target["std"])
    raise _unknown_term(term)


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


# ---------------------------------------------------------------------------------------------------
# Native training losses of the four networks (docs/architectures.md, each network's native loss).
# Each returns (weighted total [B], breakdown of *unweighted* terms). Pass style_weight=0 to drop the
# native style term when training with the classic or balanced loss instead (docs/losses.md, The objective and beta).


def _optional_style(style_feats: Feats | None, compute) -> tuple[jax.Array | float, Breakdown]:
    """The native style term, or nothing when `style_feats` is None (classic/balanced replace it)."""
    return (0.0, {}) if style_feats is None else compute()


def adain_native_loss(*, output_feats: Feats, style_feats: Feats | None, target: jax.Array,
                      content_weight: float = 1.0, style_weight: float = 10.0) -> tuple[jax.Array, Breakdown]:
    """AdaIN (PyTorch port): content MSE of relu4_1(P) to the AdaIN target t, + mean/std style loss.

    Args:
      output_feats, style_feats: vgg19_normalised features with relu1_1..relu4_1; style_feats=None
        drops the style term (when the classic or balanced loss replaces it).
      target: [B, h, w, 512] the (alpha-blended) AdaIN output t that was decoded; held constant.
    """
    output = _features(output_feats, "relu4_1", "output")
    _check_pair("layer 'relu4_1'", "AdaIN target", _check_map(target, "layer 'relu4_1'", "AdaIN target"), output,
                same_size=True)
    content = _mse_per_sample(output, jax.lax.stop_gradient(target))
    style, style_parts = _optional_style(
        style_feats, lambda: mean_std_style_loss(style_feats, output_feats, layers=ADAIN_STYLE_LAYERS))
    breakdown = {"content": content, **({"style": style} if style_parts else {}), **style_parts}
    return content_weight * content + style_weight * style, breakdown


def sanet_native_loss(*, output_feats: Feats, content_feats: Feats, style_feats: Feats, content: jax.Array,
                      style: jax.Array, identity_content: jax.Array, identity_style: jax.Array,
                      identity_content_feats: Feats, identity_style_feats: Feats, content_weight: float = 1.0,
                      style_weight: float = 3.0, identity_pixel_weight: float = 50.0,
                      identity_feature_weight: float = 1.0) -> tuple[jax.Array, Breakdown]:
    """SANet: normalised content loss at relu4_1 + relu5_1, mean/std style loss over relu1_1..relu5_1,
    and the two identity losses on I_cc = D(T(c, c)) and I_ss = D(T(s, s)).

    Args:
      *_feats: vgg19_normalised features with relu1_1..relu5_1 (style_feats are also needed by the
        identity loss, so style_weight=0 is how classic/balanced drop the native style term here).
      content, style: the input images [B, H, W, 3]; identity_*: the identity reconstructions.
    """
    content_term = 0.0
    for layer in ("relu4_1", "relu5_1"):
        content_layer, output_layer = _pair(content_feats, output_feats, layer, "content", same_size=True)
        _check_statistics(content_layer, f"layer {layer!r}", 1)
        content_term = content_term + _mse_per_sample(mean_variance_norm(output_layer),
                                                      mean_variance_norm(content_layer))
    style_term, style_parts = mean_std_style_loss(style_feats, output_feats, layers=SANET_STYLE_LAYERS)
    for name, reference, reconstruction in (("content", content, identity_content),
                                            ("style", style, identity_style)):
        _check_pair(f"identity_{name}", f"{name} image", _check_map(reference, f"{name}", "input"),
                    _check_map(reconstruction, f"identity_{name}", "reconstructed"), same_size=True)
    identity_pixel = _mse_per_sample(identity_content, content) + _mse_per_sample(identity_style, style)
    identity_feature = 0.0
    for layer in SANET_STYLE_LAYERS:
        for reference_feats, identity_feats, role in ((content_feats, identity_content_feats, "content"),
                                                      (style_feats, identity_style_feats, "style")):
            reference, identity = _pair(reference_feats, identity_feats, layer, role, same_size=True)
            identity_feature = identity_feature + _mse_per_sample(identity, reference)
    total = (content_weight * content_term + style_weight * style_term
             + identity_pixel_weight * identity_pixel + identity_feature_weight * identity_feature)
    breakdown = {"content": content_term, "style": style_term, "identity_pixel": identity_pixel,
                 "identity_feature": identity_feature, **style_parts}
    return total, breakdown


def linear_native_loss(*, output_feats: Feats, content_feats: Feats, style_feats: Feats | None,
                       content_weight: float = 1.0, style_weight: float = 0.02) -> tuple[jax.Array, Breakdown]:
    """LinearTransfer: MSE at relu4_1 + per layer [sum_c (mu_P - mu_S)^2 + sum_cc' (G_P - G_S)^2], G = FF^T/(CHW).

    Features come from the LST loss network (encoder5, `vgg19_lst`) at relu1_1..relu4_1. The original
    sums over the batch and divides by B, i.e. the batch mean of these per-sample sums.
    style_feats=None drops the style term (when the classic or balanced loss replaces it).
    """
    content_layer, output_layer = _pair(content_feats, output_feats, "relu4_1", "content", same_size=True)
    content = _mse_per_sample(output_layer, content_layer)

    def style_term():
        per_layer = {}
        for layer in ADAIN_STYLE_LAYERS:
            style_layer, output_layer = _pair(style_feats, output_feats, layer, "style", same_size=False)
            output_layer, style_layer = (x.astype(accumulation_dtype(x)) for x in (output_layer, style_layer))
            mean_diff = jnp.mean(output_layer, axis=(1, 2)) - jnp.mean(style_layer, axis=(1, 2))
            gram_diff = gram(output_layer, "chw") - gram(style_layer, "chw")
            per_layer[layer] = jnp.sum(jnp.square(mean_diff), axis=1) + squared_frobenius(gram_diff)
        return _weighted_sum("lst_style", per_layer, {layer: 1.0 for layer in per_layer})

    style, style_parts = _optional_style(style_feats, style_term)
    breakdown = {"content": content, **({"style": style} if style_parts else {}), **style_parts}
    return content_weight * content + style_weight * style, breakdown


MAGENTA_STYLE_WEIGHTS = {"relu1_2": 0.5e-3, "relu2_2": 0.5e-3, "relu3_3": 0.5e-3, "relu4_3": 0.5e-3}


def magenta_native_loss(*, output_feats: Feats, content_feats: Feats, style_feats: Feats | None, output: jax.Array,
                        content_weight: float = 1.0, style_weight: float = 1.0,
                        tv_weight: float = 1e4) -> tuple[jax.Array, Breakdown]:
    """Magenta (Ghiasi et al.): content MSE at vgg_16/conv3, Gram/(HW) MSE at conv1..conv4 with weights
    0.5e-3 each (scaled by `style_weight`), and total variation (weight 1e4) on the output image.

    Features come from the TF-slim VGG-16 (`vgg16_slim`, average pooling). style_feats=None drops the
    style term (when the classic or balanced loss replaces it).
    """
    content, _ = content_loss(content_feats, output_feats, layers=("relu3_3",))
    style, style_parts = _optional_style(style_feats, lambda: classic_style_loss(
        style_feats, output_feats, layers=tuple(MAGENTA_STYLE_WEIGHTS), weights=MAGENTA_STYLE_WEIGHTS,
        gram_norm="hw"))
    tv = total_variation_loss(output)
    total = content_weight * content + style_weight * style + tv_weight * tv
    breakdown = {"content": content, **({"style": style} if style_parts else {}), "total_variation": tv}
    return total, {**breakdown, **style_parts}


# ---------------------------------------------------------------------------------------------------
# The shared entry point: one loss-network pass per image, every term training and evaluation need.


def _unknown_term(term: str) -> ValueError:
    return ValueError(f"unknown loss term {term!r}; valid: {', '.join(TERMS)}, classic_hw, classic_chw")


def _check_terms(terms: Sequence[str]) -> tuple[str, ...]:
    """`terms` as a tuple; the first unknown name raises `_unknown_term`."""
    terms = tuple(terms)
    for term in terms:
        if term not in (*TERMS, "classic_hw", "classic_chw"):
            raise _unknown_term(term)
    return terms


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
    output_feats = _upcast(output_feats)
    computed: dict[str, jax.Array] = {}
    for term in _check_terms(terms):
        if term == "content":
            if content_targets is None:
                raise ValueError("the content term needs content features, got None")
            total, parts = content_loss(content_targets, output_feats, layers=content_layers)
        else:
            if style_targets is None:
                raise ValueError(f"the {term} term needs style features, got None")
            layers = _check_layers(style_layers, f"the {term} term")
            per_layer = {layer: _style_layer(term, _layer_targets(style_targets, layer), output_feats, layer,
                                             gram_norm=gram_norm, detach_denominator=detach_denominator)
                         for layer in layers}
            total, parts = _weighted_sum(term, per_layer, {layer: 1.0 for layer in layers})
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
    terms = _check_terms(terms)
    content = None
    if "content" in terms and content_feats is not None:
        content = content_targets(content_feats, layers=content_layers)
    style = None
    if any(term != "content" for term in terms):
        for layer in _check_layers(style_layers, "feature_terms"):  # named by the features, not their targets
            _pair(style_feats, output_feats, layer, "style", same_size=False)
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
