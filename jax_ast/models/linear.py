"""LinearTransfer (Li et al., CVPR 2019, "Learning Linear Transformations for Fast Arbitrary Style Transfer").

Mirrors `sunshineatnoon/LinearStyleTransfer` (docs/architectures.md, LinearTransfer) for its two released models:

| variant | encoder tap | channels | CNN widths         | decoder       | output multiple |
|---------|-------------|----------|--------------------|---------------|-----------------|
| `r41`   | relu4_1     | 512      | 512->256->128->32  | `DECODER_R41` | 8               |
| `r31`   | relu3_1     | 256      | 256->128->64->32   | `DECODER_R31` | 4               |

Forward pass: content and style features come from the frozen `vgg19_lst` encoder (floor max-pool). The
transform (`MulLayer`, the only trained part) centres both, predicts a 32x32 matrix from each
(`cnet` for the content, `snet` for the style), forms T = M_style @ M_content, applies T to the
1x1-compressed centred content, un-compresses and adds the *style* mean (the content mean is
discarded). The frozen decoder maps the result back to RGB.

Extensions over the original (which has neither):

* ``alpha`` blends in feature space: decoded = alpha * transformed + (1 - alpha) * content_feats, so
  alpha=1 is bit-for-bit the original and alpha=0 reconstructs the content.
* ``stylize_interpolated`` takes a weighted average of the transformed features obtained with each
  style (weights normalised to sum 1), then decodes once. Because the transform is affine in the
  style code (T is linear in M_style, the style mean enters additively, and the weights sum to 1),
  this equals transferring with the weighted average of the style codes.
* ``stylize_masked`` keeps each style's transformed features in its mask's region (docs/stylize.md).

Sizes: the encoder floors at every pool, so the original returns 8*floor(H/8) (r41) or 4*floor(H/4)
(r31) pixels. Here the content is reflect-padded at the bottom/right to that multiple and the output
is cropped back, so the stylized image always has the content's size (sizes that are already a
multiple pass through unchanged and match the original exactly).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jax_ast.models.decoders import DECODER_R31, DECODER_R41, Decoder, DecoderLayer
from jax_ast.models.layers import TORCH_KERNEL_INIT, blend_features, pad_to_multiple, padded_conv, torch_bias_init
from jax_ast.models.mixing import blend_regions, masks_to_grid, normalise_weights
from jax_ast.models.vgg import VGG, check_encoder
from jax_ast.checks import check_images
from jax_ast.ops import gram
from jax_ast.shared_stats import site_gram, site_mean

_HIGHEST = jax.lax.Precision.HIGHEST
ENCODER_VARIANT = "vgg19_lst"
ENCODER_VARIANTS = ("vgg19_lst", "vgg16_normalised")  # the original, or the ImageNet VGG-16 installed from PyPI


@dataclasses.dataclass(frozen=True)
class LinearVariant:
    """Static description of one released LinearTransfer model."""

    tap: str  # encoder layer the transform works on
    channels: int  # channels of that layer
    cnn_widths: tuple[int, ...]  # hidden widths of cnet/snet before the final conv to matrix_size
    decoder: tuple[DecoderLayer, ...]
    size_multiple: int  # 2**(number of pools before `tap`)


VARIANTS: dict[str, LinearVariant] = {
    "r41": LinearVariant("relu4_1", 512, (256, 128), DECODER_R41, 8),
    "r31": LinearVariant("relu3_1", 256, (128, 64), DECODER_R31, 4),
}


# LST's loss network (Train.py): encoder5 from `vgg_r51.pth`, i.e. `vgg19_lst` up to relu5_1; the style
# loss uses relu1_1..relu4_1 and the content loss relu4_1.
LOSS_NETWORK_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def loss_network(dtype: Any = jnp.float32) -> VGG:
    """The frozen LST loss network (`vgg_r51.pth` layout; load it with `load_linear_encoder5`)."""
    return VGG("vgg19_lst", taps=LOSS_NETWORK_TAPS, dtype=dtype)


def variant_spec(variant: str) -> LinearVariant:
    """The `LinearVariant` for a name; raises ValueError listing the valid names."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown LinearTransfer variant {variant!r}; valid variants: {', '.join(VARIANTS)}")
    return VARIANTS[variant]


class CovarianceNet(nn.Module):
    """LST's `CNN`: centred features -> a matrix_size x matrix_size matrix.

    Three zero-padded 3x3 convs with bias (ReLU between), the uncentred covariance Y Y^T / (h*w) of
    the result, flattened row-major, then a dense layer, reshaped row-major. Initialised like the
    PyTorch original (`layers.TORCH_KERNEL_INIT`): the transform multiplies two such outputs, so Flax's
    default init would start training from outputs ~1e3 times too large.

    Call:
      centred_feats: [B, h, w, C] (already mean-free per channel).
      Returns float32 [B, m, m].
    """

    widths: Sequence[int]
    matrix_size: int = 32
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, centred_feats: jax.Array, content: bool = False) -> jax.Array:
        x = centred_feats.astype(self.dtype)
        for index, features in enumerate((*self.widths, self.matrix_size)):
            if index:
                x = nn.relu(x)
            x = padded_conv(x, features, 3, name=f"conv{index + 1}", padding="zero", dtype=self.dtype,
                            torch_init=True)
        shared = site_gram(x) if content else None  # whole-image covariance when tiled (jax_ast.shared_stats)
        covariance = gram(x, "hw") if shared is None else jnp.broadcast_to(shared, (x.shape[0],) + shared.shape[1:])
        # float32 [B, m, m]; not re-centred, as in the original
        flat = covariance.reshape(covariance.shape[0], -1)  # row-major, like torch .view
        out = nn.Dense(self.matrix_size**2, name="fc", precision=_HIGHEST, kernel_init=TORCH_KERNEL_INIT,
                       bias_init=torch_bias_init(flat.shape[-1]))(flat)
        return out.reshape(-1, self.matrix_size, self.matrix_size)


class MulLayer(nn.Module):
    """LST's transformation module (`MulLayer`); the only trained part of LinearTransfer.

    Params: `cnet`, `snet` (`CovarianceNet`), `compress` (1x1 conv C->m), `unzip` (1x1 conv m->C).
    """

    channels: int
    cnn_widths: Sequence[int]
    matrix_size: int = 32
    dtype: Any = jnp.float32

    def setup(self):
        self.cnet = CovarianceNet(self.cnn_widths, self.matrix_size, self.dtype)
        self.snet = CovarianceNet(self.cnn_widths, self.matrix_size, self.dtype)
        self.compress = nn.Conv(self.matrix_size, (1, 1), dtype=self.dtype, precision=_HIGHEST,
                                kernel_init=TORCH_KERNEL_INIT, bias_init=torch_bias_init(self.channels))
        self.unzip = nn.Conv(self.channels, (1, 1), dtype=self.dtype, precision=_HIGHEST,
                             kernel_init=TORCH_KERNEL_INIT, bias_init=torch_bias_init(self.matrix_size))

    def __call__(self, content_feats: jax.Array, style_feats: jax.Array) -> tuple[jax.Array, jax.Array]:
        """[B, h, w, C] content and [B, hs, ws, C] style features -> (transformed [B, h, w, C], T [B, m, m])."""
        style_matrix, style_mean = self.encode_style(style_feats)
        return self.transfer(content_feats, style_matrix, style_mean)

    def encode_style(self, style_feats: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Style features -> (M_style float32 [B, m, m], style mean float32 [B, 1, 1, C])."""
        style_feats = style_feats.astype(jnp.float32)
        style_mean = jnp.mean(style_feats, axis=(1, 2), keepdims=True)
        return self.snet(style_feats - style_mean), style_mean

    def transfer(self, content_feats: jax.Array, style_matrix: jax.Array,
                 style_mean: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Apply T = M_style @ M_content to the compressed centred content, add the style mean.

        A style code with batch 1 is broadcast over the content batch.

        Returns:
          (transformed float32 [B, h, w, C], transform_matrix float32 [B, m, m]).
        """
        content_feats = content_feats.astype(jnp.float32)
        batch = content_feats.shape[0]
        if style_matrix.shape[0] != batch:
            if style_matrix.shape[0] != 1:
                raise ValueError(f"style batch {style_matrix.shape[0]} does not match content batch {batch} "
                                 "(a style batch of 1 is broadcast)")
            style_matrix = jnp.broadcast_to(style_matrix, (batch, *style_matrix.shape[1:]))
            style_mean = jnp.broadcast_to(style_mean, (batch, *style_mean.shape[1:]))
        shared_mean = site_mean(content_feats)  # None unless tiled (jax_ast.shared_stats)
        mean = jnp.mean(content_feats, axis=(1, 2), keepdims=True) if shared_mean is None else shared_mean
        centred = content_feats - mean
        content_matrix = self.cnet(centred, content=True)
        transform_matrix = jnp.einsum("bij,bjk->bik", style_matrix, content_matrix, precision=_HIGHEST)
        compressed = self.compress(centred.astype(self.dtype)).astype(jnp.float32)
        # NCHW original: (T @ Z) with Z of shape [m, h*w]; here Z is [B, h, w, m].
        mixed = jnp.einsum("bij,bhwj->bhwi", transform_matrix, compressed, precision=_HIGHEST)
        transformed = self.unzip(mixed.astype(self.dtype)).astype(jnp.float32) + style_mean
        return transformed, transform_matrix


class LinearTransfer(nn.Module):
    """LinearTransfer network: frozen `vgg19_lst` encoder, trained `MulLayer`, frozen decoder.

    Attributes:
      variant: "r41" (default, the paper's model) or "r31".
      matrix_size: side of the transformation matrix (32 in both released models).
      dtype: computation dtype of the convolutions; statistics and matrices stay float32.

    Params: `encoder` (same layout as `VGG("vgg19_lst")` up to the tap), `transform` (`MulLayer`),
    `decoder` (`Decoder(DECODER_R41 | DECODER_R31)`). Only `transform` is trained (TRAINABLE).
    """

    variant: str = "r41"
    matrix_size: int = 32
    dtype: Any = jnp.float32
    encoder_variant: str = ENCODER_VARIANT  # one of ENCODER_VARIANTS

    TRAINABLE: ClassVar[tuple[str, ...]] = ("transform",)

    def setup(self):
        spec = variant_spec(self.variant)
        self.encoder = VGG(self.encoder_variant, taps=(spec.tap,), dtype=self.dtype)
        self.transform = MulLayer(spec.channels, spec.cnn_widths, self.matrix_size, self.dtype)
        self.decoder = Decoder(spec.decoder, dtype=self.dtype)

    def __call__(self, content: jax.Array, style: jax.Array, alpha: Any = 1.0,
                 train: bool = False) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Stylize a content batch with a style batch.

        Args:
          content: float[B, Hc, Wc, 3] RGB in [0, 1], Hc and Wc >= the variant's size multiple.
          style: float[B or 1, Hs, Ws, 3] RGB in [0, 1] (any size >= the multiple).
          alpha: feature-space blend weight of the transformed features in [0, 1], a scalar or [B].
          train: unused (no dropout or batch statistics); kept for the common interface.

        Returns:
          (stylized float32 [B, Hc, Wc, 3] unclamped, aux) with aux = {"transform_matrix": [B, m, m],
          "content_feats": encoder features of the padded content [B, h, w, C], "transformed_feats":
          the features that were decoded (after the alpha blend) [B, h, w, C]}.
        """
        del train
        # checked before encoding the style
        check_images(content, "content", min_size=variant_spec(self.variant).size_multiple,
                     model=f"LinearTransfer {self.variant}")
        return self._stylize(content, self.encode_style(style), alpha)

    def encode_style(self, style: jax.Array) -> dict[str, jax.Array]:
        """Style images [B, Hs, Ws, 3] -> code {"style_matrix": [B, m, m], "style_mean": [B, 1, 1, C]}."""
        spec = variant_spec(self.variant)
        check_images(style, "style", min_size=spec.size_multiple, model=f"LinearTransfer {self.variant}")
        style_feats = self.encoder(style)[spec.tap]
        style_matrix, style_mean = self.transform.encode_style(style_feats)
        return {"style_matrix": style_matrix, "style_mean": style_mean}

    def stylize_with_code(self, content: jax.Array, code: dict[str, jax.Array], alpha: Any = 1.0) -> jax.Array:
        """Stylize with a code from `encode_style` (batch B or 1); returns float32 [B, Hc, Wc, 3]."""
        _check_alpha(alpha)  # before encoding
        return self.stylize_codes(self.encode_content(content), code, alpha, content.shape[1], content.shape[2])

    def encode_content(self, content: jax.Array) -> jax.Array:
        """content [B, Hc, Wc, 3] in [0, 1] -> encoder features (relu4_1 or relu3_1 of the variant) of the
        content reflect-padded to the size multiple, float32 [B, h, w, C]."""
        return self._encode_content(content)[0]

    def stylize_codes(self, content_code: jax.Array, code: dict[str, jax.Array], alpha: Any, height: int,
                      width: int) -> jax.Array:
        """Stylize a precomputed `encode_content` code with an `encode_style` code -> float32
        [B, height, width, 3], the content's size. `stylize_with_code` is exactly this."""
        return self._stylize_feats(content_code, code, alpha, height, width)[0]

    def stylize_interpolated(self, content: jax.Array, styles: Sequence[jax.Array] | jax.Array, weights: Any,
                             alpha: Any = 1.0) -> jax.Array:
        """Mix several styles by a weighted average of their transformed content features.

        Args:
          content: float[B, Hc, Wc, 3] RGB in [0, 1].
          styles: K style batches, each float[B or 1, Hs_k, Ws_k, 3] (sizes may differ), or one array
            [K, B, Hs, Ws, 3].
          weights: [K] non-negative with a positive sum; normalised to sum 1.
          alpha: feature-space blend with the content features, applied after the mix.

        Returns:
          float32 [B, Hc, Wc, 3].
        """
        return self.stylize_mixed(content, [self.encode_style(style) for style in styles], weights, alpha)

    def stylize_mixed(self, content: jax.Array, codes: Sequence[dict[str, jax.Array]], weights: Any,
                      alpha: Any = 1.0) -> jax.Array:
        """`stylize_interpolated` with precomputed `encode_style` codes."""
        normalised = normalise_weights(weights, len(codes))
        _check_alpha(alpha)
        content_feats, height, width = self._encode_content(content)
        mixed = jnp.zeros_like(content_feats)
        for weight, code in zip(normalised, codes):
            transformed, _ = self.transform.transfer(content_feats, code["style_matrix"], code["style_mean"])
            mixed = mixed + weight * transformed
        decoded = blend_features(mixed, content_feats, alpha)
        return self.decoder(decoded)[:, :height, :width]

    def stylize_masked(self, content: jax.Array, styles: Sequence[jax.Array], masks: Sequence[jax.Array],
                       alpha: Any = 1.0) -> jax.Array:
        """Spatial control: region k decodes the content transformed with style k.

        The transformed features of each style (on the whole content) are blended per region at the
        encoder tap's resolution (`jax_ast.models.mixing.blend_regions`), as the original's
        photorealistic masks keep each region's transform to its region.

        Args:
          content: float[B, Hc, Wc, 3]. styles: K arrays float[B or 1, Hs_k, Ws_k, 3].
          masks: K arrays [B or 1, Hc, Wc] in [0, 1] over the content; reflect-padded like the content and
            resized (nearest) to the tap's grid. Uncovered positions keep the content features.
        """
        return self.stylize_regions(content, [self.encode_style(style) for style in styles], masks, alpha)

    def stylize_regions(self, content: jax.Array, codes: Sequence[dict[str, jax.Array]], masks: Sequence[jax.Array],
                        alpha: Any = 1.0) -> jax.Array:
        """`stylize_masked` with precomputed `encode_style` codes."""
        if len(codes) != len(masks):
            raise ValueError(f"need one mask per style, got {len(codes)} styles and {len(masks)} masks")
        _check_alpha(alpha)
        content_feats, height, width = self._encode_content(content)
        grid_masks = masks_to_grid(masks, height, width, variant_spec(self.variant).size_multiple,
                                   content_feats.shape[1:3])
        transformed = [self.transform.transfer(content_feats, code["style_matrix"], code["style_mean"])[0]
                       for code in codes]
        decoded = blend_features(blend_regions(content_feats, transformed, grid_masks), content_feats, alpha)
        return self.decoder(decoded)[:, :height, :width]

    def _encode_content(self, content: jax.Array) -> tuple[jax.Array, int, int]:
        """Reflect-pad to the size multiple and encode: -> (feats float32 [B, h, w, C], Hc, Wc)."""
        spec = variant_spec(self.variant)
        check_images(content, "content", min_size=spec.size_multiple, model=f"LinearTransfer {self.variant}")
        height, width = content.shape[1], content.shape[2]
        padded = pad_to_multiple(content, spec.size_multiple)
        return self.encoder(padded)[spec.tap].astype(jnp.float32), height, width

    def _stylize(self, content: jax.Array, code: dict[str, jax.Array],
                 alpha: Any) -> tuple[jax.Array, dict[str, jax.Array]]:
        _check_alpha(alpha)
        content_feats, height, width = self._encode_content(content)
        return self._stylize_feats(content_feats, code, alpha, height, width)

    def _stylize_feats(self, content_feats: jax.Array, code: dict[str, jax.Array], alpha: Any, height: int,
                       width: int) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Transform, alpha-blend and decode encoder features; -> (stylized cropped to (height, width), aux)."""
        _check_alpha(alpha)
        transformed, transform_matrix = self.transform.transfer(
            content_feats, code["style_matrix"], code["style_mean"])
        decoded_feats = blend_features(transformed, content_feats, alpha)
        stylized = self.decoder(decoded_feats)[:, :height, :width]
        aux = {"transform_matrix": transform_matrix, "content_feats": content_feats,
               "transformed_feats": decoded_feats}
        return stylized, aux


def _check_alpha(alpha: Any) -> None:
    """Range-check a concrete alpha (traced values are left to the caller)."""
    if isinstance(alpha, jax.core.Tracer):
        return
    values = np.asarray(alpha, np.float32)
    if np.any(values < 0.0) or np.any(values > 1.0):
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")


_CONFIG_FIELDS = ("matrix_size", "dtype", "encoder")


def build_linear(variant: str = "r41", **config: Any) -> LinearTransfer:
    """Registry factory: ``build("linear", variant="r31", dtype=jnp.bfloat16)``.

    Raises:
      ValueError: for an unknown variant or config key, listing the valid ones.
    """
    variant_spec(variant)
    unknown = sorted(set(config) - set(_CONFIG_FIELDS))
    if unknown:
        raise ValueError(f"unknown LinearTransfer config keys {unknown}; valid keys: variant, "
                         f"{', '.join(_CONFIG_FIELDS)}")
    if "dtype" in config:
        config["dtype"] = jnp.dtype(config["dtype"])
    if "encoder" in config:
        config["encoder_variant"] = config.pop("encoder")
        check_encoder("LinearTransfer", config["encoder_variant"], ENCODER_VARIANTS)
    return LinearTransfer(variant=variant, **config)
