"""AdaIN arbitrary style transfer (Huang & Belongie 2017), PyTorch-port conventions.

Pipeline (docs/architectures.md, AdaIN): c4 = relu4_1(content), s4 = relu4_1(style) of
`vgg19_normalised`, t = AdaIN(c4, s4) with unbiased variance + 1e-5 inside both square roots,
t <- alpha * t + (1 - alpha) * c4, stylized = D(t) with the `decoder.pth` topology (`DECODER_R41`).

Sizes: the ceil-mode encoder and the x8 decoder turn H into 8 * ceil(H / 8). The content is therefore
reflect-padded on the bottom/right to a multiple of 8 before encoding and the decoded image is cropped
back, so the output always has the content's size (at multiples of 8 this is exactly the original).
The style is never padded: only its channel statistics are used.

A style code is the relu4_1 channel (mean, std) of the style. AdaIN is affine in those statistics, so
style interpolation (sum_i w_i AdaIN(c, s_i), weights normalised) is AdaIN with the weighted mean of
the codes: `mix_style_codes`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_ast.models.decoders import DECODER_R41, Decoder
from jax_ast.models.layers import blend_features, pad_to_multiple
from jax_ast.models.mixing import blend_regions, masks_to_grid, mix_codes
from jax_ast.models.vgg import VGG, check_encoder
from jax_ast.checks import check_images
from jax_ast.ops import adain_with_stats, channel_mean_std
from jax_ast.shared_stats import site_moments

ENCODER_VARIANT = "vgg19_normalised"
# Encoders AdaIN can be trained on: the original normalised VGG-19, or the ImageNet VGG-16 installed from PyPI.
ENCODER_VARIANTS = ("vgg19_normalised", "vgg16_normalised")
FEATURE_STRIDE = 8  # relu4_1 is at 1/8 resolution
STAT_DDOF = 1  # torch Tensor.var (unbiased), as in the PyTorch port's calc_mean_std
STAT_EPS = 1e-5  # inside the square root of both sigmas

StyleCode = dict[str, jax.Array]  # {"mean": f32[B,1,1,C], "std": f32[B,1,1,C]}


def adain_with_code(content_feats: jax.Array, code: StyleCode) -> jax.Array:
    """AdaIN(c, s) given the style's code: sigma_s * (c - mu_c) / sigma_c + mu_s, float32 [B,h,w,C]."""
    shared = site_moments(content_feats, ddof=STAT_DDOF, eps=STAT_EPS)  # None unless tiled (shared_stats)
    return adain_with_stats(content_feats, code["mean"], code["std"], ddof=STAT_DDOF, eps=STAT_EPS,
                            content_stats=shared)


def mix_style_codes(codes: Sequence[StyleCode], weights: Any) -> StyleCode:
    """Weighted average of style codes, weights normalised to sum 1 (`jax_ast.models.mixing.normalise_weights`)."""
    return mix_codes([{key: code[key] for key in ("mean", "std")} for code in codes], weights)


def _as_list(stack: Any, name: str) -> list[jax.Array]:
    """A list of arrays, or an array stacked on axis 0, as a non-empty list."""
    items = list(stack)
    if not items:
        raise ValueError(f"{name} must hold at least one entry")
    return items


def masked_adain(content_feats: jax.Array, codes: Sequence[StyleCode], masks: Sequence[jax.Array]) -> jax.Array:
    """Spatial control: region k gets AdaIN(c restricted to mask k, style k).

    Each region's content statistics are mask-weighted (binary masks give the plain mean and unbiased
    variance of the positions inside the region, as the Torch original's `--mask`). Overlapping masks
    are renormalised to sum to 1; positions covered by no mask keep their content features.

    Args:
      content_feats: [B, h, w, C].
      codes: K style codes.
      masks: K arrays float [B or 1, h, w] in [0, 1] at feature resolution.

    Returns:
      float32 [B, h, w, C].
    """
    feats = content_feats.astype(jnp.float32)
    regions = []
    for mask, code in zip(masks, codes):
        weight = jnp.broadcast_to(jnp.asarray(mask, jnp.float32)[..., None], feats.shape[:3] + (1,))
        count = jnp.sum(weight, axis=(1, 2), keepdims=True)
        mean = jnp.sum(weight * feats, axis=(1, 2), keepdims=True) / jnp.maximum(count, 1.0)
        sq_dev = jnp.sum(weight * jnp.square(feats - mean), axis=(1, 2), keepdims=True)
        std = jnp.sqrt(sq_dev / jnp.maximum(count - STAT_DDOF, 1.0) + STAT_EPS)
        regions.append((feats - mean) / std * code["std"] + code["mean"])
    return blend_regions(feats, regions, masks)


class AdaIN(nn.Module):
    """AdaIN network: frozen `vgg19_normalised` up to relu4_1 + trainable mirror decoder.

    Attributes:
      dtype: computation dtype of encoder and decoder (parameters stay float32).
      encoder: VGG variant of the frozen encoder, one of `ENCODER_VARIANTS` (the original by default).

    Parameters: `encoder` (VGG layout: preprocess, conv1_1 ... conv4_1) and `decoder` (conv4_1 ... conv1_1).
    """

    dtype: Any = jnp.float32
    encoder_variant: str = ENCODER_VARIANT
    TRAINABLE: ClassVar[tuple[str, ...]] = ("decoder",)

    def setup(self):
        self.encoder = VGG(self.encoder_variant, taps=("relu4_1",), dtype=self.dtype)
        self.decoder = Decoder(DECODER_R41, dtype=self.dtype)

    def encode_content(self, content: jax.Array) -> jax.Array:
        """content [B,H,W,3] in [0,1] -> relu4_1 of the padded content [B, ceil(H/8), ceil(W/8), 512]."""
        check_images(content, "content")
        return self.encoder(pad_to_multiple(content, FEATURE_STRIDE))["relu4_1"]

    def encode_style(self, style: jax.Array) -> StyleCode:
        """style [B,Hs,Ws,3] in [0,1] -> {"mean", "std"}: relu4_1 channel statistics, each f32 [B,1,1,512]."""
        check_images(style, "style")
        mean, std = channel_mean_std(self.encoder(style)["relu4_1"], ddof=STAT_DDOF, eps=STAT_EPS)
        return {"mean": mean, "std": std}

    def decode(self, feats: jax.Array, height: int, width: int) -> jax.Array:
        """relu4_1-like features -> float32 image cropped to [B, height, width, 3]."""
        return self.decoder(feats)[:, :height, :width, :]

    def __call__(self, content: jax.Array, style: jax.Array, alpha: Any = 1.0, train: bool = False):
        """Stylize `content` [B,H,W,3] with `style` [B or 1,Hs,Ws,3], both RGB in [0,1].

        Returns:
          (stylized float32 [B,H,W,3] unclamped, aux) with aux["target"] = the blended AdaIN features t
          (the native content loss compares relu4_1(stylized) with t) and aux["content_feats"] = c4.
        """
        del train  # no train-time behaviour (no dropout / batch norm)
        content_feats = self.encode_content(content)
        target = blend_features(adain_with_code(content_feats, self.encode_style(style)), content_feats, alpha)
        stylized = self.decode(target, content.shape[1], content.shape[2])
        return stylized, {"target": target, "content_feats": content_feats}

    def stylize_with_code(self, content: jax.Array, code: StyleCode, alpha: Any = 1.0) -> jax.Array:
        """Stylize with a precomputed `encode_style` code; equals `__call__`'s image."""
        return self.stylize_codes(self.encode_content(content), code, alpha, content.shape[1], content.shape[2])

    def stylize_codes(self, content_code: jax.Array, code: StyleCode, alpha: Any, height: int,
                      width: int) -> jax.Array:
        """Stylize a precomputed `encode_content` code (relu4_1 [B,h,w,512]) with an `encode_style` code ->
        float32 [B, height, width, 3], the content's size. `stylize_with_code` is exactly this."""
        target = blend_features(adain_with_code(content_code, code), content_code, alpha)
        return self.decode(target, height, width)

    def stylize_interpolated(self, content: jax.Array, styles: Sequence[jax.Array] | jax.Array, weights: Any,
                             alpha: Any = 1.0) -> jax.Array:
        """Style interpolation: t = sum_i w_i AdaIN(c4, s4_i) with weights normalised to sum to 1.

        Args:
          content: [B,H,W,3]. styles: N arrays [B or 1,Hs_i,Ws_i,3] (sizes may differ) or [N,B,Hs,Ws,3].
          weights: [N] non-negative, not all zero.
        """
        codes = [self.encode_style(s) for s in _as_list(styles, "styles")]
        return self.stylize_mixed(content, codes, weights, alpha)

    def stylize_mixed(self, content: jax.Array, codes: Sequence[StyleCode], weights: Any,
                      alpha: Any = 1.0) -> jax.Array:
        """`stylize_interpolated` with precomputed `encode_style` codes. AdaIN is affine in the code, so
        mixing the codes equals mixing the AdaIN outputs."""
        if jnp.shape(weights) != (len(codes),):
            raise ValueError(f"need one weight per style: {len(codes)} styles, weights of shape {jnp.shape(weights)}")
        return self.stylize_with_code(content, mix_style_codes(codes, weights), alpha)

    def stylize_masked(self, content: jax.Array, styles: Sequence[jax.Array] | jax.Array,
                       masks: Sequence[jax.Array] | jax.Array, alpha: Any = 1.0) -> jax.Array:
        """Spatial control: style k is applied where mask k is on (see `masked_adain`).

        Args:
          content: [B,H,W,3]. styles: K arrays [B or 1,Hs,Ws,3] or [K,B,Hs,Ws,3].
          masks: K arrays [B or 1,H,W] in [0,1] over the content (or [K,B,H,W]); e.g. (m, 1 - m) for the
            Torch original's foreground/background pair. They are reflect-padded like the content and
            resized (nearest) to the relu4_1 grid.
        """
        codes = [self.encode_style(s) for s in _as_list(styles, "styles")]
        return self.stylize_regions(content, codes, masks, alpha)

    def stylize_regions(self, content: jax.Array, codes: Sequence[StyleCode], masks: Sequence[jax.Array] | jax.Array,
                        alpha: Any = 1.0) -> jax.Array:
        """`stylize_masked` with precomputed `encode_style` codes."""
        masks = _as_list(masks, "masks")
        if len(codes) != len(masks):
            raise ValueError(f"need one mask per style, got {len(codes)} styles and {len(masks)} masks")
        content_feats = self.encode_content(content)
        height, width = content.shape[1:3]
        feat_masks = masks_to_grid(masks, height, width, FEATURE_STRIDE, content_feats.shape[1:3])
        target = blend_features(masked_adain(content_feats, codes, feat_masks), content_feats, alpha)
        return self.decode(target, height, width)


def build_adain(dtype: Any = jnp.float32, encoder: str = ENCODER_VARIANT) -> AdaIN:
    """Registry factory: `build("adain", dtype="bfloat16", encoder="vgg16_normalised")`."""
    check_encoder("AdaIN", encoder, ENCODER_VARIANTS)
    return AdaIN(dtype=jnp.dtype(dtype), encoder_variant=encoder)
