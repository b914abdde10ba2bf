"""Per-pair evaluation metrics on device: loss-network losses, SSIM, PSNR and colour-statistics distances.

Every metric is a pure jnp function of a batch and returns one float32 value per pair ([B]). `PairScorer`
runs all of them in one pmapped program over the local devices (`jax_ast.parallel.run_in_steps`: the last,
partial batch is padded with edge copies and the padding dropped by its mask).

Definitions (images are float RGB in [0, 1], NHWC):

* PSNR(content, output) = 10 log10(1 / MSE) over all pixels and channels, with MSE floored at 1e-10, so
  identical images give the cap `PSNR_CAP_DB` = 100 dB instead of infinity.
* SSIM(content, output): Wang et al. 2004 per RGB channel, averaged over channels and over the "valid" window
  positions: Gaussian window 11 x 11, sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1, population
  (weighted) statistics. Identical images give exactly 1. Images must be at least 11 px on a side.
* Colour-statistics distance to the style: sqrt(sum_c (mean_P,c - mean_S,c)^2 + (std_P,c - std_S,c)^2) over the
  three channels of CIE Lab (D65, sRGB input; L in [0, 100]) -> ``color_lab``, and of RGB in [0, 1] ->
  ``color_rgb``. std is the population std over all pixels. A proxy for "only the dominant colour transferred".
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import jax_ast.losses as L
from jax_ast import parallel

PSNR_CAP_DB = 100.0
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03
D65_WHITE = (0.95047, 1.0, 1.08883)
SRGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375),
               (0.2126729, 0.7151522, 0.0721750),
               (0.0193339, 0.1191920, 0.9503041))
IMAGE_METRICS = ("ssim", "psnr", "color_lab", "color_rgb")


def psnr(reference: jax.Array, image: jax.Array) -> jax.Array:
    """[B, H, W, 3] x 2 in [0, 1] -> float32 [B] PSNR in dB, capped at `PSNR_CAP_DB` (identical images)."""
    diff = reference.astype(jnp.float32) - image.astype(jnp.float32)
    mse = jnp.mean(jnp.square(diff), axis=(1, 2, 3))
    return 10.0 * jnp.log10(1.0 / jnp.maximum(mse, 10.0 ** (-PSNR_CAP_DB / 10.0)))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian taps, float32 [size]."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    taps = np.exp(-0.5 * np.square(offsets / sigma))
    return (taps / taps.sum()).astype(np.float32)


def _filter_valid(images: jax.Array, taps: jax.Array) -> jax.Array:
    """Separable 'valid' filtering of [B, H, W, C] along H and W with the same 1-D taps."""
    size = taps.shape[0]
    height, width = images.shape[1] - size + 1, images.shape[2] - size + 1
    rows = sum(taps[i] * images[:, i:i + height] for i in range(size))
    return sum(taps[i] * rows[:, :, i:i + width] for i in range(size))


def ssim(reference: jax.Array, image: jax.Array) -> jax.Array:
    """[B, H, W, 3] x 2 in [0, 1] (H, W >= 11) -> float32 [B] mean SSIM (see the module docstring)."""
    if min(reference.shape[1:3]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW} px a side, got {reference.shape}")
    x, y = reference.astype(jnp.float32), image.astype(jnp.float32)
    taps = jnp.asarray(gaussian_window())
    mean_x, mean_y = _filter_valid(x, taps), _filter_valid(y, taps)
    var_x = _filter_valid(x * x, taps) - mean_x * mean_x
    var_y = _filter_valid(y * y, taps) - mean_y * mean_y
    cov = _filter_valid(x * y, taps) - mean_x * mean_y
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    numerator = (2.0 * mean_x * mean_y + c1) * (2.0 * cov + c2)
    denominator = (mean_x * mean_x + mean_y * mean_y + c1) * (var_x + var_y + c2)
    return jnp.mean(numerator / denominator, axis=(1, 2, 3))


def rgb_to_lab(images: jax.Array) -> jax.Array:
    """sRGB [..., 3] in [0, 1] -> CIE Lab (D65 white), float32 [..., 3]; L in [0, 100]."""
    rgb = jnp.clip(images.astype(jnp.float32), 0.0, 1.0)
    linear = jnp.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ jnp.asarray(SRGB_TO_XYZ, jnp.float32).T / jnp.asarray(D65_WHITE, jnp.float32)
    delta = 6.0 / 29.0
    f = jnp.where(xyz > delta ** 3, jnp.cbrt(jnp.maximum(xyz, delta ** 3)), xyz / (3.0 * delta ** 2) + 4.0 / 29.0)
    return jnp.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])],
                     axis=-1)


def color_stats_distance(image: jax.Array, target: jax.Array) -> jax.Array:
    """[B, H, W, 3] x 2 -> [B] Euclidean distance of the stacked per-channel (mean, population std)."""
    def stats(x):
        x = x.astype(jnp.float32)
        return jnp.concatenate([jnp.mean(x, axis=(1, 2)), jnp.std(x, axis=(1, 2))], axis=-1)
    return jnp.sqrt(jnp.sum(jnp.square(stats(image) - stats(target)), axis=-1))


def image_metrics(content: jax.Array, style: jax.Array, output: jax.Array) -> dict[str, jax.Array]:
    """{"ssim", "psnr"} of output vs content and {"color_lab", "color_rgb"} of output vs style, each [B]."""
    return {"ssim": ssim(content, output), "psnr": psnr(content, output),
            "color_lab": color_stats_distance(rgb_to_lab(output), rgb_to_lab(style)),
            "color_rgb": color_stats_distance(output, style)}


def loss_term_names(normalised_gram: str) -> tuple[str, ...]:
    """The `jax_ast.losses` terms scored per pair, in column order."""
    return ("content", "classic", f"classic_{normalised_gram}", "bound", "balanced", "mean_std")


def _loss_columns(values: dict[str, jax.Array], terms: Sequence[str]) -> dict[str, jax.Array]:
    """Term totals renamed "<term>/total"; the per-layer "<term>/<layer>" keys as they are."""
    return {(f"{name}/total" if name in terms else name): value for name, value in values.items()}


def loss_metrics(loss_net, loss_net_params, content: jax.Array, style: jax.Array, output: jax.Array, *,
                 style_layers: Sequence[str], content_layers: Sequence[str],
                 normalised_gram: str) -> dict[str, jax.Array]:
    """Every loss of `jax_ast.losses` for (C, S, P) triples, through `jax_ast.losses.loss_terms` (the entry
    point training uses too).

    Returns {"<term>/<layer>": [B]} and "<term>/total" for term in content, classic (un-normalised Gram, the
    paper's), classic_<normalised_gram> (Gram / HW or / CHW), bound (supremum of the un-normalised classic
    loss), balanced and mean_std (the AdaIN statistics loss on the style layers).
    """
    terms = loss_term_names(normalised_gram)
    values = L.loss_terms(loss_net, loss_net_params, content, style, output, terms=terms,
                          style_layers=tuple(style_layers), content_layers=tuple(content_layers), gram_norm="none")
    return _loss_columns(values, terms)


def loss_metrics_from_targets(loss_net, loss_net_params, targets: dict[str, Any], output: jax.Array, *,
                              style_layers: Sequence[str], content_layers: Sequence[str],
                              normalised_gram: str) -> dict[str, jax.Array]:
    """`loss_metrics` with the content's and the style's side precomputed: the loss network runs on `output`
    only, and the terms come from `jax_ast.losses.terms_from_targets` (the function `loss_terms` ends in).

    Args:
      targets: {"content": `L.content_targets(...)`, "style": `L.style_targets(...)`} with leading axis B,
        as `PairScorer.targets` returns them.
    """
    terms = loss_term_names(normalised_gram)
    layers = tuple(dict.fromkeys((*style_layers, *content_layers)))
    output_feats = loss_net.clone(taps=layers).apply(loss_net_params, output)
    values = L.terms_from_targets(targets["content"], targets["style"], output_feats, terms=terms,
                                  style_layers=tuple(style_layers), content_layers=tuple(content_layers),
                                  gram_norm="none")
    return _loss_columns(values, terms)


def metric_names(style_layers: Sequence[str], content_layers: Sequence[str], normalised_gram: str) -> list[str]:
    """The metric columns in output order (matches the keys of `PairScorer.score`)."""
    names = [f"content/{layer}" for layer in content_layers] + ["content/total"]
    for term in loss_term_names(normalised_gram)[1:]:
        names += [f"{term}/{layer}" for layer in style_layers] + [f"{term}/total"]
    return names + list(IMAGE_METRICS)


class PairScorer:
    """All per-pair metrics of (content, style, output) batches, pmapped over the local devices.

    Scores come two ways with the same values: from the images (`score`: the loss network runs on content,
    style and output), or from per-image targets computed once (`targets`, then `score` with them: the loss
    network runs on the output only); `eval.score.target_cache` keeps the targets per image.

    Args:
      loss_net: a `jax_ast.models.vgg.VGG` module; loss_net_params: its params (not wrapped in {"params"}).
      style_layers, content_layers: tap names; normalised_gram: "hw" or "chw" for the second classic loss.

    Attributes:
      names: the metric names, in column order. trace_count: compilations of the scoring programs so far
        (one per image size and kind).
    """

    def __init__(self, loss_net, loss_net_params, *, style_layers: Sequence[str], content_layers: Sequence[str],
                 normalised_gram: str = "hw"):
        if normalised_gram not in ("hw", "chw"):
            raise ValueError(f"unknown normalised_gram {normalised_gram!r}; valid: 'hw', 'chw'")
        self.names = metric_names(style_layers, content_layers, normalised_gram)
        self.n_devices = jax.local_device_count()
        self.trace_count = 0
        self.variables = parallel.replicate_variables({"params": loss_net_params})  # placed on the devices once
        style_layers, content_layers = tuple(style_layers), tuple(content_layers)
        layers = {"style_layers": style_layers, "content_layers": content_layers, "normalised_gram": normalised_gram}

        def metrics(variables, content, style, output, targets=None):
            if targets is None:
                losses = loss_metrics(loss_net, variables, content, style, output, **layers)
            else:
                losses = loss_metrics_from_targets(loss_net, variables, targets, output, **layers)
            return {**losses, **image_metrics(content, style, output)}

        def score(variables, content, style, output, targets):
            self.trace_count += 1  # runs once per trace of this scorer's own programs
            return metrics(variables, content, style, output, targets)

        # Targets come from the same network as the outputs' features (every layer, the order of
        # `loss_metrics_from_targets`), and the content features from a program that also runs the deeper
        # layers: XLA fuses a shorter network differently, which moves features by ~1e-6 relative, and the
        # cached scores must equal the per-pair ones (tests/test_target_cache.py).
        feature_net = loss_net.clone(taps=tuple(dict.fromkeys((*style_layers, *content_layers))))

        def style_targets(variables, images, feats=None):
            return L.style_targets(feature_net.apply(variables, images) if feats is None else feats,
                                   layers=style_layers, terms=loss_term_names(normalised_gram)[1:])

        def content_targets(variables, images):
            feats = feature_net.apply(variables, images)
            return L.content_targets(feats, layers=content_layers), style_targets(variables, images, feats)

        self.metrics = metrics  # (variables, content, style, output[, targets]) -> {name: [B]}, for fused programs
        self._score = parallel.pmap(functools.partial(score, targets=None), in_axes=(None, 0, 0, 0))
        self._score_targets = parallel.pmap(score, in_axes=(None, 0, 0, 0, 0))
        self._targets = {"content": parallel.pmap(content_targets, in_axes=(None, 0)),
                         "style": parallel.pmap(style_targets, in_axes=(None, 0))}

    def targets(self, role: str, images: np.ndarray, *, step_size: int) -> dict[str, Any]:
        """float [n, S, S, 3] in [0, 1] -> the "content" or "style" targets (host numpy, leading axis n).

        Content: {layer: [n, h, w, C]} of the content layers; style: {layer: {"gram", "pixels", "mean", "std"}}
        (`jax_ast.losses.style_targets`). `step_size`: a multiple of the device count (one program per value).
        """
        targets = parallel.run_in_steps(self._targets[role], self.variables, (images,), step_size)
        return targets[0] if role == "content" else targets  # the content program's style part is dropped

    def score(self, contents: np.ndarray, styles: np.ndarray, outputs: np.ndarray, *,
              step_size: int | None = None, targets: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
        """float [B, S, S, 3] x 3 in [0, 1] -> {name: float32 [B]} on the host.

        The batch is padded to `step_size` (default: B rounded up to the device count; pass the same value for
        every call so the last, partial batch reuses the compiled program) and the padding dropped by its mask.
        With `targets` ({"content": ..., "style": ...} rows of `targets`, leading axis B) the loss network runs
        on the outputs only.
        """
        step = step_size or -(-len(contents) // self.n_devices) * self.n_devices
        if step % self.n_devices or step < len(contents):
            raise ValueError(f"step_size {step} must be a multiple of {self.n_devices} devices and >= {len(contents)}")
        if targets is None:
            return parallel.run_in_steps(self._score, self.variables, (contents, styles, outputs), step)
        return parallel.run_in_steps(self._score_targets, self.variables, (contents, styles, outputs, targets), step)


class StylizeAndScore:
    """Stylise (content, style) pairs and score them in one pmapped program, so the outputs are scored where
    they are computed and come to the host once, with their scores.

    With `with_targets`, the program takes each pair's precomputed content code and style code (the network's
    `encode_content` and `encode_style`) and loss-network targets (`PairScorer.targets`) instead of running
    the encoder and the loss network on the content and the style again: per pair it runs the network's
    transform and decoder (`stylize_codes`) and the loss network on the output. The images are still used
    by the image metrics (SSIM and PSNR against the content, colour distances against the style).

    Args:
      stylizer: an `eval.inference.batching.Stylizer` (its model and device-placed variables are used).
      scorer: a `PairScorer`.
      alpha: the content-style trade-off. clip: clip outputs to [0, 1] before scoring (NaN stays NaN and
        inf becomes NaN, so a non-finite output is still seen as one).

    Attributes:
      trace_count: compilations so far (one per image size).
    """

    def __init__(self, stylizer: Any, scorer: PairScorer, *, alpha: float, clip: bool, with_targets: bool = False):
        model = stylizer.model
        self.trace_count = 0
        self.with_targets = with_targets

        def finish(output):
            output = output.astype(jnp.float32)
            if clip:
                output = jnp.where(jnp.isfinite(output), jnp.clip(output, 0.0, 1.0), jnp.nan)
            return output

        def fused(variables, content, style):
            self.trace_count += 1  # runs once per trace
            output = finish(model.apply(variables["model"], content, style, alpha=alpha)[0])
            return output, scorer.metrics(variables["scorer"], content, style, output)

        def fused_targets(variables, content, style, content_code, code, targets):
            self.trace_count += 1  # runs once per trace
            output = finish(model.apply(variables["model"], content_code, code, alpha, *content.shape[1:3],
                                        method=type(model).stylize_codes))
            return output, scorer.metrics(variables["scorer"], content, style, output, targets)

        self._fused = parallel.pmap(fused_targets if with_targets else fused,
                                    in_axes=(None, 0, 0, 0, 0, 0) if with_targets else (None, 0, 0))
        self._variables = {"model": stylizer.variables, "scorer": scorer.variables}

    def __call__(self, contents: np.ndarray, styles: np.ndarray, *, step_size: int, content_codes: Any = None,
                 codes: Any = None, targets: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """float [B, S, S, 3] x 2 in [0, 1] -> (outputs float32 [B, S, S, 3], {name: float32 [B]}) on the host.

        `content_codes`, `codes` (style codes) and `targets` (rows with leading axis B) are required with
        `with_targets`, and ignored without.
        """
        batched = (contents, styles, content_codes, codes, targets) if self.with_targets else (contents, styles)
        return parallel.run_in_steps(self._fused, self._variables, batched, step_size)
