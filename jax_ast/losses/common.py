"""What every loss of `jax_ast.losses` shares: the layer constants, the feature types and the input checks.

The checks read static shapes, so they also run under jit; each raises one ValueError (or KeyError for a
missing layer) naming the layer and the shapes. The native objectives of the networks (`jax_ast.archs`)
use them too.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp

from jax_ast.ops import accumulation_dtype

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
GRAM_TERMS: tuple[str, ...] = ("classic", "classic_hw", "classic_chw", "bound", "balanced")


def check_layers(layers: Sequence[str], loss: str) -> tuple[str, ...]:
    """`layers` as a tuple; an empty list or a bare string is a configuration error, not a zero loss."""
    if isinstance(layers, str):
        raise ValueError(f"{loss}: layers must be a sequence of layer names, got the string {layers!r} "
                         f"(write ({layers!r},))")
    layers = tuple(layers)
    if not layers:
        raise ValueError(f"{loss}: layers is empty; give at least one layer (every loss returns a [B] total)")
    return layers


def layer_weights(layers: Sequence[str], weights: Mapping[str, float] | Sequence[float] | None) -> dict[str, float]:
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


def features(feats: Feats, layer: str, role: str) -> jax.Array:
    if layer not in feats:
        raise KeyError(f"{role} features have no layer {layer!r}; available: {sorted(feats)}")
    return check_map(feats[layer], f"layer {layer!r}", role)


def check_map(x: jax.Array, name: str, role: str) -> jax.Array:
    """`x` if it is a non-empty [B, H, W, C] map (empty maps give 0/0 = NaN in every mean)."""
    if x.ndim != 4 or 0 in x.shape[1:]:
        raise ValueError(f"{name}: {role} features have shape {tuple(x.shape)}; expected a non-empty "
                         "[B, H, W, C] map (H, W and C at least 1)")
    return x


def shape_problem(reference: tuple, output: tuple, *, same_size: bool) -> str | None:
    """Why [B, H, W, C] shapes `reference` and `output` cannot be compared, or None.

    Channels must agree, and batch sizes unless one of them is 1 (broadcast, e.g. one style image);
    with `same_size` (losses that compare positions) H and W too.
    """
    (ref_b, ref_h, ref_w, ref_c), (out_b, out_h, out_w, out_c) = reference, output
    return ("channel counts differ" if ref_c != out_c
            else "batch sizes differ" if ref_b != out_b and 1 not in (ref_b, out_b)
            else "spatial sizes differ" if same_size and (ref_h, ref_w) != (out_h, out_w) else None)


def check_pair(name: str, role: str, reference: jax.Array, output: jax.Array, *, same_size: bool) -> None:
    """Raise one ValueError naming `name` and both shapes unless the maps can be compared (`shape_problem`)."""
    problem = shape_problem(reference.shape, output.shape, same_size=same_size)
    if problem:
        raise ValueError(f"{name}: {role} features {tuple(reference.shape)} and output features "
                         f"{tuple(output.shape)} do not match ({problem})")


def pair(reference_feats: Feats, output_feats: Feats, layer: str, role: str, *,
         same_size: bool) -> tuple[jax.Array, jax.Array]:
    """The `role` and output maps of `layer`, checked with `check_pair`."""
    reference = features(reference_feats, layer, role)
    output = features(output_feats, layer, "output")
    check_pair(f"layer {layer!r}", role, reference, output, same_size=same_size)
    return reference, output


def check_statistics(x: jax.Array, name: str, ddof: int) -> None:
    """Channel statistics with `ddof` need more than `ddof` positions (else a division by <= 0)."""
    if x.shape[1] * x.shape[2] <= ddof:
        raise ValueError(f"{name}: features of shape {tuple(x.shape)} have {x.shape[1] * x.shape[2]} spatial "
                         f"position(s); the mean/std statistics (ddof={ddof}) need more than {ddof}")


def weighted_sum(name: str, per_layer: Breakdown, weights: dict[str, float]) -> tuple[jax.Array, Breakdown]:
    total = sum(weights[layer] * value for layer, value in per_layer.items())
    return total, {f"{name}/{layer}": value for layer, value in per_layer.items()}


def mse_per_sample(a: jax.Array, b: jax.Array) -> jax.Array:
    """Mean over all non-batch axes of (a - b)^2, float32: [B, ...] -> [B]."""
    dtype = jnp.promote_types(accumulation_dtype(a), accumulation_dtype(b))
    diff = a.astype(dtype) - b.astype(dtype)
    return jnp.mean(jnp.square(diff), axis=tuple(range(1, diff.ndim)))



def upcast(tree: Any) -> Any:
    """Features in their accumulation dtype (bfloat16 -> float32; float64 stays): before any Gram, norm or
    difference."""
    return jax.tree.map(lambda x: x.astype(accumulation_dtype(x)), tree)



def optional_style(style_feats: Feats | None, compute) -> tuple[jax.Array | float, Breakdown]:
    """The native style term, or nothing when `style_feats` is None (classic/balanced replace it)."""
    return (0.0, {}) if style_feats is None else compute()



def unknown_term(term: str) -> ValueError:
    return ValueError(f"unknown loss term {term!r}; valid: {', '.join(TERMS)}, classic_hw, classic_chw")


def check_terms(terms: Sequence[str]) -> tuple[str, ...]:
    """`terms` as a tuple; the first unknown name raises `unknown_term`."""
    terms = tuple(terms)
    for term in terms:
        if term not in (*TERMS, "classic_hw", "classic_chw"):
            raise unknown_term(term)
    return terms
