"""SANet arbitrary style transfer (Park & Lee, CVPR 2019), GlebSBrykin port conventions.

Pipeline (docs/architectures.md, SANet): c4, c5 = relu4_1, relu5_1(content) and s4, s5 of the style
(`vgg19_normalised`); CS = merge_conv(reflect_pad(SA4(c4, s4) + up2(SA5(c5, s5)))); CS is blended
with the content's relu4_1, CS <- alpha * CS + (1 - alpha) * c4 (the same feature-space strength knob
as AdaIN; alpha = 1 is the original), and stylized = D(CS) with the `DECODER_R41` topology.

Sizes: up2(relu5_1) only matches relu4_1 when the input is a multiple of 16, so the content is
reflect-padded (bottom/right) to a multiple of 16 and the output cropped back. The style enters only
through attention, which accepts any number of positions, so it is not padded (at multiples of 16
this is exactly the original); for the identity image D(T(s, s)) it is padded and cropped too.

Attention memory is [B, Nc, Ns] per level. `chunk_size` splits the content positions into chunks
evaluated one after another (a rematerialised `lax.map`, so the backward pass is bounded as well);
softmax rows are independent, so chunking does not change the result.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_ast.models.decoders import DECODER_R41, Decoder
from jax_ast.models.layers import blend_features, pad_to_multiple, reflect_pad, upsample_nearest
from jax_ast.models.mixing import blend_regions, masks_to_grid, normalise_weights
from jax_ast.models.vgg import VGG, check_encoder
from jax_ast.checks import check_images
from jax_ast.ops import mean_variance_norm
from jax_ast.shared_stats import site_moments

ENCODER_VARIANT = "vgg19_normalised"
ENCODER_VARIANTS = ("vgg19_normalised", "vgg16_normalised")  # the original, or the ImageNet VGG-16 from PyPI
LEVELS = ("relu4_1", "relu5_1")
SIZE_MULTIPLE = 16  # relu5_1 stride; makes up2(relu5_1) the size of relu4_1
CHANNELS = 512

StyleCode = dict[str, jax.Array]  # {"relu4_1": s4, "relu5_1": s5}


def _norm(feats: jax.Array, *, content: bool = False) -> jax.Array:
    """SANet's norm: per-channel (x - mean) / sqrt(unbiased var + 1e-5), float32. A `content` norm is a
    `jax_ast.shared_stats` site (whole-image statistics when tiled)."""
    feats = feats.astype(jnp.float32)
    shared = site_moments(feats, ddof=1, eps=1e-5) if content else None
    return mean_variance_norm(feats, ddof=1, eps=1e-5, stats=shared)


def _flatten(feats: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, H*W, C]."""
    return feats.reshape(feats.shape[0], -1, feats.shape[-1])


def _attend(queries: jax.Array, keys: jax.Array, values: jax.Array) -> jax.Array:
    """softmax_over_style(Q K^T) V without 1/sqrt(C): [B,Nq,C], [B,Ns,C], [B,Ns,C] -> [B,Nq,C]."""
    weights = jax.nn.softmax(jnp.einsum("bqc,bsc->bqs", queries, keys), axis=-1)
    return jnp.einsum("bqs,bsc->bqc", weights, values)


def chunked_attend(queries: jax.Array, keys: jax.Array, values: jax.Array, chunk_size: int | None) -> jax.Array:
    """`_attend` over at most `chunk_size` query positions at a time (None: all at once); same result."""
    num_queries = queries.shape[1]
    if chunk_size is None or chunk_size >= num_queries:
        return _attend(queries, keys, values)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size}")
    num_chunks = -(-num_queries // chunk_size)
    padded = jnp.pad(queries, ((0, 0), (0, num_chunks * chunk_size - num_queries), (0, 0)))
    chunks = padded.reshape(queries.shape[0], num_chunks, chunk_size, -1).swapaxes(0, 1)
    attend_chunk = jax.checkpoint(lambda chunk: _attend(chunk, keys, values))
    out = jax.lax.map(attend_chunk, chunks)  # [num_chunks, B, chunk, C]
    return out.swapaxes(0, 1).reshape(queries.shape[0], num_chunks * chunk_size, -1)[:, :num_queries]


class SANetAttention(nn.Module):
    """Style-attentional module SA(Fc, Fs) = out_conv(h(Fs) softmax(f(norm Fc) g(norm Fs))^T) + Fc.

    Attributes:
      channels: feature depth C (512 at relu4_1 / relu5_1).
      chunk_size: content positions per attention chunk (None: no chunking).
      dtype: computation dtype of the 1x1 convs; softmax and the residual are float32.

    Parameters: `f`, `g`, `h`, `out_conv`, each a 1x1 conv C -> C with bias (torch key names).
    """

    channels: int = CHANNELS
    chunk_size: int | None = None
    dtype: Any = jnp.float32

    def setup(self):
        self.f = nn.Conv(self.channels, (1, 1), dtype=self.dtype)
        self.g = nn.Conv(self.channels, (1, 1), dtype=self.dtype)
        self.h = nn.Conv(self.channels, (1, 1), dtype=self.dtype)
        self.out_conv = nn.Conv(self.channels, (1, 1), dtype=self.dtype)

    def _project(self, content_feats, style_feats):
        queries = _flatten(self.f(_norm(content_feats, content=True).astype(self.dtype))).astype(jnp.float32)
        keys = _flatten(self.g(_norm(style_feats).astype(self.dtype))).astype(jnp.float32)
        values = _flatten(self.h(style_feats.astype(self.dtype))).astype(jnp.float32)  # raw style (not normed)
        return queries, keys, values

    def __call__(self, content_feats: jax.Array, style_feats: jax.Array) -> jax.Array:
        """content_feats [B,Hc,Wc,C], style_feats [B,Hs,Ws,C] -> float32 [B,Hc,Wc,C]."""
        queries, keys, values = self._project(content_feats, style_feats)
        attended = chunked_attend(queries, keys, values, self.chunk_size)
        attended = attended.reshape(content_feats.shape[:3] + (self.channels,)).astype(self.dtype)
        return self.out_conv(attended).astype(jnp.float32) + content_feats.astype(jnp.float32)

    def attention(self, content_feats: jax.Array, style_feats: jax.Array) -> jax.Array:
        """The attention matrix, float32 [B, Hc*Wc, Hs*Ws]; each row sums to 1 (unchunked, for inspection)."""
        queries, keys, _ = self._project(content_feats, style_feats)
        return jax.nn.softmax(jnp.einsum("bqc,bsc->bqs", queries, keys), axis=-1)


class Transform(nn.Module):
    """Multi-level fusion: merge_conv(reflect_pad(SA4(c4, s4) + up2(SA5(c5, s5)))), no activation.

    Parameters: `sanet4_1`, `sanet5_1` (SANetAttention) and `merge_conv` (3x3, 512 -> 512, bias).
    """

    channels: int = CHANNELS
    chunk_size: int | None = None
    dtype: Any = jnp.float32

    def setup(self):
        self.sanet4_1 = SANetAttention(channels=self.channels, chunk_size=self.chunk_size, dtype=self.dtype)
        self.sanet5_1 = SANetAttention(channels=self.channels, chunk_size=self.chunk_size, dtype=self.dtype)
        self.merge_conv = nn.Conv(self.channels, (3, 3), padding="VALID", dtype=self.dtype)

    def __call__(self, content_feats: dict[str, jax.Array], style_feats: dict[str, jax.Array]) -> jax.Array:
        """Dicts with "relu4_1" [B,h,w,C] and "relu5_1" [B,h/2,w/2,C] -> float32 [B,h,w,C]."""
        level4 = self.sanet4_1(content_feats["relu4_1"], style_feats["relu4_1"])
        level5 = upsample_nearest(self.sanet5_1(content_feats["relu5_1"], style_feats["relu5_1"]), 2)
        if level4.shape != level5.shape:
            raise ValueError(f"relu4_1 {level4.shape} and up2(relu5_1) {level5.shape} differ; "
                             f"inputs must be multiples of {SIZE_MULTIPLE} (SANet pads them itself)")
        merged = reflect_pad((level4 + level5).astype(self.dtype), 1)
        return self.merge_conv(merged).astype(jnp.float32)


class SANet(nn.Module):
    """SANet network: frozen `vgg19_normalised` (to relu5_1) + trainable `transform` and `decoder`.

    Attributes:
      chunk_size: content positions per attention chunk (None: unchunked); bounds memory at high resolution.
      dtype: computation dtype (parameters stay float32).
    """

    chunk_size: int | None = None
    dtype: Any = jnp.float32
    encoder_variant: str = ENCODER_VARIANT  # one of ENCODER_VARIANTS
    TRAINABLE: ClassVar[tuple[str, ...]] = ("transform", "decoder")

    def setup(self):
        self.encoder = VGG(self.encoder_variant, taps=LEVELS, dtype=self.dtype)
        self.transform = Transform(channels=CHANNELS, chunk_size=self.chunk_size, dtype=self.dtype)
        self.decoder = Decoder(DECODER_R41, dtype=self.dtype)

    def _encode(self, images: jax.Array, name: str, pad: bool) -> dict[str, jax.Array]:
        check_images(images, name)
        return self.encoder(pad_to_multiple(images, SIZE_MULTIPLE) if pad else images)

    def encode_style(self, style: jax.Array) -> StyleCode:
        """style [B,Hs,Ws,3] in [0,1] -> {"relu4_1": s4, "relu5_1": s5} (unpadded style features)."""
        return self._encode(style, "style", pad=False)

    def _stylize(self, content_feats, code, alpha, height, width):
        transformed = self.transform(content_feats, code)
        return self._decode(transformed, content_feats, alpha, height, width), transformed

    def _decode(self, transformed, content_feats, alpha, height, width):
        """Blend the transformed features with the content's relu4_1 by alpha, decode, crop to (height, width)."""
        blended = blend_features(transformed, content_feats["relu4_1"], alpha)
        return self.decoder(blended)[:, :height, :width, :]

    def __call__(self, content: jax.Array, style: jax.Array, alpha: Any = 1.0, train: bool = False,
                 with_identity: bool = False):
        """Stylize `content` [B,H,W,3] with `style` [B,Hs,Ws,3], both RGB in [0,1].

        Returns:
          (stylized float32 [B,H,W,3] unclamped, aux) with aux "content_feats" and "style_feats" (dicts of
          relu4_1 / relu5_1; the content's are of the padded content), "transformed" (T(c, s) before the
          alpha blend) and, if `with_identity`, "identity_content" = D(T(c, c)) [B,H,W,3] and
          "identity_style" = D(T(s, s)) [B,Hs,Ws,3] for the identity losses.
        """
        del train  # no train-time behaviour
        content_feats = self._encode(content, "content", pad=True)
        style_feats = self.encode_style(style)
        stylized, transformed = self._stylize(content_feats, style_feats, alpha, *content.shape[1:3])
        aux = {"content_feats": content_feats, "style_feats": style_feats, "transformed": transformed}
        if with_identity:
            aux["identity_content"] = self._stylize(content_feats, content_feats, 1.0, *content.shape[1:3])[0]
            aligned = style.shape[1] % SIZE_MULTIPLE == 0 and style.shape[2] % SIZE_MULTIPLE == 0
            padded_style = style_feats if aligned else self._encode(style, "style", pad=True)
            aux["identity_style"] = self._stylize(padded_style, padded_style, 1.0, *style.shape[1:3])[0]
        return stylized, aux

    def encode_content(self, content: jax.Array) -> StyleCode:
        """content [B,H,W,3] in [0,1] -> {"relu4_1", "relu5_1"} of the content padded to a multiple of 16."""
        return self._encode(content, "content", pad=True)

    def stylize_with_code(self, content: jax.Array, code: StyleCode, alpha: Any = 1.0) -> jax.Array:
        """Stylize with a precomputed `encode_style` code; equals `__call__`'s image."""
        return self.stylize_codes(self.encode_content(content), code, alpha, *content.shape[1:3])

    def stylize_codes(self, content_code: StyleCode, code: StyleCode, alpha: Any, height: int,
                      width: int) -> jax.Array:
        """Stylize a precomputed `encode_content` code with an `encode_style` code -> float32
        [B, height, width, 3], the content's size. `stylize_with_code` is exactly this."""
        return self._stylize(content_code, code, alpha, height, width)[0]

    def stylize_interpolated(self, content: jax.Array, styles: Sequence[jax.Array], weights: Any,
                             alpha: Any = 1.0) -> jax.Array:
        """Style interpolation in the attended-feature space: CS = sum_k w_k T(c, s_k), then alpha, then D.

        Args:
          content: [B,H,W,3]. styles: K arrays [B,Hs_k,Ws_k,3] (sizes may differ).
          weights: [K] non-negative, not all zero; normalised to sum 1 (`jax_ast.models.mixing`).
        """
        return self.stylize_mixed(content, [self.encode_style(s) for s in styles], weights, alpha)

    def stylize_mixed(self, content: jax.Array, codes: Sequence[StyleCode], weights: Any,
                      alpha: Any = 1.0) -> jax.Array:
        """`stylize_interpolated` with precomputed `encode_style` codes -> float32 [B,H,W,3]."""
        normalised = normalise_weights(weights, len(codes))
        content_feats = self._encode(content, "content", pad=True)
        mixed = sum(w * self.transform(content_feats, code) for w, code in zip(normalised, codes))
        return self._decode(mixed, content_feats, alpha, *content.shape[1:3])

    def stylize_masked(self, content: jax.Array, styles: Sequence[jax.Array], masks: Sequence[jax.Array],
                       alpha: Any = 1.0) -> jax.Array:
        """Spatial control: region k decodes T(c, s_k) (`jax_ast.models.mixing.blend_regions` at relu4_1).

        Args:
          content: [B,H,W,3]. styles: K arrays [B,Hs_k,Ws_k,3].
          masks: K arrays [B or 1,H,W] in [0,1] over the content; reflect-padded like the content and
            resized (nearest) to the relu4_1 grid. Uncovered positions keep the content's relu4_1.
        """
        return self.stylize_regions(content, [self.encode_style(s) for s in styles], masks, alpha)

    def stylize_regions(self, content: jax.Array, codes: Sequence[StyleCode], masks: Sequence[jax.Array],
                        alpha: Any = 1.0) -> jax.Array:
        """`stylize_masked` with precomputed `encode_style` codes -> float32 [B,H,W,3]."""
        if len(codes) != len(masks):
            raise ValueError(f"need one mask per style, got {len(codes)} styles and {len(masks)} masks")
        height, width = content.shape[1:3]
        content_feats = self._encode(content, "content", pad=True)
        grid = content_feats["relu4_1"].shape[1:3]
        feat_masks = masks_to_grid(masks, height, width, SIZE_MULTIPLE, grid)
        transformed = [self.transform(content_feats, code) for code in codes]
        mixed = blend_regions(content_feats["relu4_1"], transformed, feat_masks)
        return self._decode(mixed, content_feats, alpha, height, width)

    def attention_weights(self, content: jax.Array, style: jax.Array, level: str = "relu4_1") -> jax.Array:
        """Attention matrix of one level, float32 [B, Nc, Ns] (rows sum to 1). Memory is quadratic."""
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; valid levels: {LEVELS}")
        content_feats = self._encode(content, "content", pad=True)
        style_feats = self.encode_style(style)
        module = self.transform.sanet4_1 if level == "relu4_1" else self.transform.sanet5_1
        return module.attention(content_feats[level], style_feats[level])


def build_sanet(dtype: Any = jnp.float32, chunk_size: int | None = None, encoder: str = ENCODER_VARIANT) -> SANet:
    """Registry factory: `build("sanet", chunk_size=1024, encoder="vgg16_normalised")`."""
    check_encoder("SANet", encoder, ENCODER_VARIANTS)
    return SANet(chunk_size=chunk_size, dtype=jnp.dtype(dtype), encoder_variant=encoder)
