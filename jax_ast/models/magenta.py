"""Magenta arbitrary image stylization (Ghiasi et al., BMVC 2017), docs/architectures.md, Magenta.

style image -> Inception-v3 (to Mixed_6e) -> spatial mean (768) -> 1x1 conv "bottleneck" -> code b (100)
code b -> 13 pairs of 1x1 convs -> (beta, gamma) for the 13 conditional style norm (CSN) sites
content -> transformer (contract with BatchNorm, 5 residual blocks and expand with CSN) -> sigmoid

Parameters (top level = the three trained parts, `TRAINABLE`):

* ``style_predictor``: ``InceptionV3`` (see `jax_ast.models.inception`) and ``Conv`` (the bottleneck,
  the checkpoint's top-level ``Conv/{weights,biases}``);
* ``style_params``: one entry per CSN site (`STYLE_NORM_SITES`), each with ``Conv`` (beta) and
  ``Conv_1`` (gamma), 1x1 kernels [1, 1, 100, C] with bias;
* ``transformer``: ``contract_conv{1,2,3}`` (``kernel`` + ``BatchNorm``), ``residual{r}_conv{j}`` and
  ``expand_conv{e}`` (``kernel`` only; slim drops conv biases when a normaliser is set).

The ``batch_stats`` collection holds the moving averages of the Inception and contract BatchNorms.

``variant="mobile"`` is Magenta's distilled mobile model (``build_mobilenet_model``): the style predictor is
a MobileNetV2 (`jax_ast.models.mobilenet`) and the transformer has width multiplier 0.25 (contract 8/16/32,
residual 32, expand 16/8/3). Its batch norms are folded into conv biases (the release is an inference
graph): the contract convs carry ``kernel`` + ``bias`` and there is no ``batch_stats`` collection.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_ast.models.inception import MIN_INPUT_SIZE, InceptionV3, conv_hwio
from jax_ast.models.layers import reflect_pad, upsample_nearest
from jax_ast.models.mobilenet import MIN_INPUT_SIZE as MOBILE_MIN_INPUT_SIZE, MobileStylePredictor
from jax_ast.models.space_to_depth import conv_space_to_depth, upsample_conv3
from jax_ast.models.mixing import blend_regions, mix_codes
from jax_ast.checks import check_images
from jax_ast.ops import adain_with_stats
from jax_ast.shared_stats import site_moments, stage_output

CSN_EPSILON = 1e-5  # `conditional_style_norm`: tf.nn.moments (biased) + 1e-5
CONTRACT_BN_EPSILON = 1e-3  # slim batch_norm defaults
CONTRACT_BN_MOMENTUM = 0.999
TRANSFORMER_STDDEV = 0.01  # N(0, 0.01) initialiser of `nza_model.transform`
SLIM_CONV_INIT = nn.initializers.xavier_uniform()  # slim.conv2d default (bottleneck, style params); zero bias
MIN_CONTENT_SIZE = 5  # smallest side for which every reflect padding is narrower than its input

# (flax site name, TF scope below "transformer/", channels); order = `style_normalization_activations`.
STYLE_NORM_SITES: tuple[tuple[str, str, int], ...] = tuple(
    (f"residual{r}_conv{j}", f"residual/residual{r}/conv{j}", 128) for r in range(1, 6) for j in (1, 2)
) + (("expand_conv1", "expand/conv1/conv", 64), ("expand_conv2", "expand/conv2/conv", 32),
     ("expand_conv3", "expand/conv3/conv", 3))

# (flax name, TF scope below "transformer/", features, kernel, stride)
CONTRACT_CONVS: tuple[tuple[str, str, int, int, int], ...] = (
    ("contract_conv1", "contract/conv1", 32, 9, 1),
    ("contract_conv2", "contract/conv2", 64, 3, 2),
    ("contract_conv3", "contract/conv3", 128, 3, 2),
)
NUM_RESIDUAL_BLOCKS = 5
EXPAND_CONVS: tuple[tuple[str, int, int], ...] = (  # (flax name, upsampling factor, kernel)
    ("expand_conv1", 2, 3), ("expand_conv2", 2, 3), ("expand_conv3", 1, 9))

SITE_DEPTHS: dict[str, int] = {site: depth for site, _, depth in STYLE_NORM_SITES}
VARIANTS = ("inception", "mobile")  # the default first
TRANSFORMER_ALPHA = {"inception": 1.0, "mobile": 0.25}  # `transformer_alpha` of each release
MOBILE_SPACE_TO_DEPTH = 4  # block size of the mobile transformer's 9x9 convs (`Transformer.space_to_depth`)
FUSED_UPSAMPLING_MAX_FEATURES = 8  # see `Transformer.space_to_depth`


def width(depth: int, alpha: float) -> int:
    """Channels of a transformer layer at width multiplier `alpha` (magenta's ``int(alpha * depth)``); the
    3 output channels stay 3."""
    return depth if depth == 3 else int(alpha * depth)

NormParams = dict[str, tuple[jax.Array, jax.Array]]


def conditional_style_norm(feats: jax.Array, beta: jax.Array, gamma: jax.Array) -> jax.Array:
    """CSN: gamma * (x - mean) / sqrt(var + 1e-5) + beta, moments over H, W (biased); gamma used as is.

    Args:
      feats: [B, H, W, C].
      beta, gamma: [B, C] or [1, C] (broadcast over the batch).
    """
    shared = site_moments(feats, ddof=0, eps=CSN_EPSILON)  # None unless tiled (jax_ast.shared_stats)
    styled = adain_with_stats(feats, beta[:, None, None, :], gamma[:, None, None, :], ddof=0, eps=CSN_EPSILON,
                              content_stats=shared)
    return styled.astype(feats.dtype)


class ReflectConv(nn.Module):
    """Reflect-pad k//2, VALID conv (param `kernel`, HWIO), optional center-only BatchNorm, optional `bias`
    (a BatchNorm folded into the conv, as in the mobile release). `space_to_depth` > 1 computes a stride-1
    conv on blocks of that size (`jax_ast.models.space_to_depth`: the same sums, faster with few channels)."""

    features: int
    kernel_size: int
    stride: int = 1
    batch_norm: bool = False
    dtype: Any = jnp.float32
    use_bias: bool = False
    space_to_depth: int = 0
    upsample_first: bool = False  # nearest x2 upsampling of the input is part of this conv (3x3 only)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        k = self.kernel_size
        kernel = self.param("kernel", nn.initializers.normal(TRANSFORMER_STDDEV), (k, k, x.shape[-1], self.features))
        if self.upsample_first:
            y = upsample_conv3(x, kernel, self.dtype)
        elif self.space_to_depth > 1 and self.stride == 1:
            y = conv_space_to_depth(reflect_pad(x, k // 2), kernel, self.space_to_depth, self.dtype)
        else:
            y = conv_hwio(reflect_pad(x, k // 2), kernel, self.stride, [(0, 0), (0, 0)], self.dtype)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(y.dtype)
        if self.batch_norm:
            y = nn.BatchNorm(use_running_average=not train, use_scale=False, epsilon=CONTRACT_BN_EPSILON,
                             momentum=CONTRACT_BN_MOMENTUM, use_fast_variance=False,
                             dtype=self.dtype, name="BatchNorm")(y)
        return y


class Transformer(nn.Module):
    """`nza_model.transform`: content [B, H, W, 3] -> [B, 4*ceil(H/4), 4*ceil(W/4), 3] in (0, 1).

    The stride-2 contract convs reflect-pad 1 then VALID-convolve, giving ceil(H/2) each; the expand
    stage doubles twice, hence the 4*ceil(H/4) output (the caller crops).

    Attributes:
      alpha: width multiplier of every layer but the 3-channel output (1 Inception release, 0.25 mobile).
      folded_batch_norm: the contract convs carry a bias instead of a BatchNorm (mobile release).
      space_to_depth: block size for the two full-resolution 9x9 convs (0: direct). The mobile model's
        3 -> 8 and 8 -> 3 convs run 3-5x faster on CPU with 4 (docs/performance.md). It also computes an
        upsampling 3x3 conv with at most `FUSED_UPSAMPLING_MAX_FEATURES` outputs on the low-resolution grid
        (`upsample_conv3`; measured faster for 16 -> 8, slower for 32 -> 16).
    """

    dtype: Any = jnp.float32
    alpha: float = 1.0
    folded_batch_norm: bool = False
    space_to_depth: int = 0

    @nn.compact
    def __call__(self, content: jax.Array, norm_params: NormParams, train: bool = False) -> jax.Array:
        h = content.astype(self.dtype)
        folded = self.folded_batch_norm
        for name, _, features, kernel, stride in CONTRACT_CONVS:
            block = self.space_to_depth if kernel == 9 else 0
            conv = ReflectConv(width(features, self.alpha), kernel, stride, not folded, self.dtype, folded, block,
                               name=name)
            h = nn.relu(conv(h, train))
        channels = h.shape[-1]
        for r in range(1, NUM_RESIDUAL_BLOCKS + 1):
            residual = h = stage_output(h)  # tiled: later statistics passes start here (jax_ast.shared_stats)
            h = ReflectConv(channels, 3, dtype=self.dtype, name=f"residual{r}_conv1")(h)
            h = nn.relu(conditional_style_norm(h, *norm_params[f"residual{r}_conv1"]))
            h = ReflectConv(channels, 3, dtype=self.dtype, name=f"residual{r}_conv2")(h)
            h = residual + conditional_style_norm(h, *norm_params[f"residual{r}_conv2"])  # no ReLU after the add
        h = stage_output(h)
        for name, factor, kernel in EXPAND_CONVS:
            features, block = width(SITE_DEPTHS[name], self.alpha), self.space_to_depth if kernel == 9 else 0
            fused = self.space_to_depth > 1 and factor == 2 and features <= FUSED_UPSAMPLING_MAX_FEATURES
            conv = ReflectConv(features, kernel, dtype=self.dtype, space_to_depth=block, upsample_first=fused,
                               name=name)
            h = conv(h) if fused else conv(upsample_nearest(h, factor))
            h = conditional_style_norm(h, *norm_params[name])
            h = nn.sigmoid(h) if name == "expand_conv3" else nn.relu(h)
        return h.astype(jnp.float32)


class StylePredictor(nn.Module):
    """Inception-v3 to Mixed_6e -> spatial mean (768) -> 1x1 conv with bias (`Conv`) -> code [B, bottleneck]."""

    bottleneck: int = 100
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, style: jax.Array, train: bool = False) -> jax.Array:
        feats = InceptionV3(dtype=self.dtype, name="InceptionV3")(style, train)
        pooled = jnp.mean(feats.astype(jnp.float32), axis=(1, 2), keepdims=True)
        code = nn.Conv(self.bottleneck, (1, 1), kernel_init=SLIM_CONV_INIT, name="Conv")(pooled)
        return code[:, 0, 0, :]


class StyleNormParams(nn.Module):
    """One CSN site's (beta, gamma), each [B, depth]."""

    depth: int

    @nn.compact
    def __call__(self, code: jax.Array) -> tuple[jax.Array, jax.Array]:
        beta = nn.Conv(self.depth, (1, 1), kernel_init=SLIM_CONV_INIT, name="Conv")(code)
        gamma = nn.Conv(self.depth, (1, 1), kernel_init=SLIM_CONV_INIT, name="Conv_1")(code)
        return beta[:, 0, 0, :], gamma[:, 0, 0, :]


class StyleParams(nn.Module):
    """Code [B, bottleneck] -> {site: (beta, gamma)}, each [B, C], by the site's `Conv` (beta) and `Conv_1` (gamma);
    C at the transformer's width multiplier `alpha`."""

    alpha: float = 1.0

    @nn.compact
    def __call__(self, code: jax.Array) -> NormParams:
        code = code[:, None, None, :].astype(jnp.float32)
        return {site: StyleNormParams(width(depth, self.alpha), name=site)(code) for site, _, depth in STYLE_NORM_SITES}


class Magenta(nn.Module):
    """Arbitrary stylization network of Ghiasi et al. 2017 (the interface of `jax_ast.models`).

    Attributes:
      bottleneck: size of the style code (100 in the released model).
      dtype: computation dtype; parameters, statistics and the output stay float32.
      variant: "inception" (the paper's model) or "mobile" (MobileNetV2 predictor, transformer at width 0.25,
        batch norms folded; any style size works).

    Styles (and the content, when alpha < 1) go through Inception, so they need at least
    `MIN_INPUT_SIZE` (43) pixels per side; the content needs `MIN_CONTENT_SIZE` (5). Inputs are RGB
    in [0, 1], used as is (the original feeds [0, 1] also to Inception). With ``train=True`` both
    BatchNorms use batch statistics: apply with ``mutable=["batch_stats"]``. Train with alpha = 1 (the
    original never trains with interpolation; alpha < 1 would also run the content through Inception's
    BatchNorms and update their moving averages a second time).
    """

    bottleneck: int = 100
    dtype: Any = jnp.float32
    variant: str = "inception"

    TRAINABLE = ("style_predictor", "style_params", "transformer")

    def setup(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown Magenta variant {self.variant!r}; valid choices: {', '.join(VARIANTS)}")
        mobile = self.variant == "mobile"
        alpha = TRANSFORMER_ALPHA[self.variant]
        predictor = MobileStylePredictor if mobile else StylePredictor
        self.style_predictor = predictor(self.bottleneck, self.dtype)
        self.style_params = StyleParams(alpha)
        self.transformer = Transformer(self.dtype, alpha, folded_batch_norm=mobile,
                                       space_to_depth=MOBILE_SPACE_TO_DEPTH if mobile else 0)

    def encode_style(self, style: jax.Array, train: bool = False) -> jax.Array:
        """style float[B, Hs, Ws, 3] in [0, 1] -> style code float32[B, bottleneck]."""
        min_size = MOBILE_MIN_INPUT_SIZE if self.variant == "mobile" else MIN_INPUT_SIZE
        check_images(style, "style", min_size=min_size, model="Magenta")
        return self.style_predictor(style, train)

    def stylize_with_code(self, content: jax.Array, code: jax.Array, alpha: Any = 1.0, train: bool = False,
                          identity_code: Optional[jax.Array] = None) -> jax.Array:
        """Stylize content [B, H, W, 3] with a style code [B or 1, bottleneck] -> float32[B, H, W, 3].

        alpha < 1 interpolates in the code space towards the content's own code (the README's
        "identity interpolation"): b = (1 - alpha) * b(content as style) + alpha * code. That code is
        `identity_code` when given, else it is computed here, which runs Inception on the content
        (so the content then needs >= 43 pixels per side).
        """
        return self.stylize_codes(self.encode_content(content), code, alpha, content.shape[1], content.shape[2],
                                  train=train, identity_code=identity_code)

    def encode_content(self, content: jax.Array) -> jax.Array:
        """The content code: the content [B, H, W, 3] itself, checked (the transformer is the whole network,
        so nothing of it can be computed once per content)."""
        check_images(content, "content", min_size=MIN_CONTENT_SIZE, model="Magenta")
        return content

    def stylize_codes(self, content_code: jax.Array, code: jax.Array, alpha: Any, height: int, width: int,
                      train: bool = False, identity_code: Optional[jax.Array] = None) -> jax.Array:
        """`stylize_with_code` of an `encode_content` code (the content image [B, height, width, 3]) ->
        float32 [B, height, width, 3]. `stylize_with_code` is exactly this."""
        if content_code.shape[1:3] != (height, width):
            raise ValueError(f"Magenta's content code is the content image: its size {content_code.shape[1:3]} "
                             f"must be (height, width) = {(height, width)}")
        mixed = self._mix_identity(content_code, code, alpha, train, identity_code)
        return self._render(content_code, mixed, train)

    def __call__(self, content: jax.Array, style: jax.Array, alpha: Any = 1.0,
                 train: bool = False) -> tuple[jax.Array, dict[str, jax.Array]]:
        """(content [B, H, W, 3], style [B or 1, Hs, Ws, 3]) -> (stylized float32[B, H, W, 3], aux).

        aux["style_embedding"] is the code actually applied, after the alpha interpolation, [B or 1, 100].
        """
        check_images(content, "content", min_size=MIN_CONTENT_SIZE, model="Magenta")
        code = self._mix_identity(content, self.encode_style(style, train), alpha, train, None)
        return self._render(content, code, train), {"style_embedding": code}

    def stylize_interpolated(self, content: jax.Array, styles: Sequence[jax.Array], weights: Any,
                             alpha: Any = 1.0, train: bool = False) -> jax.Array:
        """Stylize with the code sum_i w_i b(styles[i]), weights normalised to sum 1 (`jax_ast.models.mixing`);
        alpha < 1 then interpolates that code towards the content's own (as `stylize_with_code`)."""
        if len(styles) == 0 or len(styles) != len(weights):
            raise ValueError(f"stylize_interpolated needs as many weights as styles (at least one), "
                             f"got {len(styles)} styles and {len(weights)} weights")
        return self.stylize_mixed(content, [self.encode_style(s, train) for s in styles], weights, alpha, train)

    def stylize_mixed(self, content: jax.Array, codes: Sequence[jax.Array], weights: Any, alpha: Any = 1.0,
                      train: bool = False) -> jax.Array:
        """`stylize_interpolated` with precomputed `encode_style` codes [B or 1, bottleneck]."""
        return self.stylize_with_code(content, mix_codes(codes, weights), alpha, train)

    def stylize_masked(self, content: jax.Array, styles: Sequence[jax.Array], masks: Sequence[jax.Array],
                       alpha: Any = 1.0) -> jax.Array:
        """Spatial control by blending whole renders: region k shows the content stylized with style k.

        A code has no spatial extent and every conditional norm takes its statistics over the whole
        image, so regions cannot be given different codes inside the network; the K stylized images are
        blended per pixel instead (`jax_ast.models.mixing.blend_regions`; uncovered pixels keep the
        content). With the same style in every region this is exactly the unmasked image.

        Args:
          content: float[B, H, W, 3]. styles: K arrays float[B or 1, Hs_k, Ws_k, 3].
          masks: K arrays [B or 1, H, W] in [0, 1] at the content's resolution.
        """
        return self.stylize_regions(content, [self.encode_style(s) for s in styles], masks, alpha)

    def stylize_regions(self, content: jax.Array, codes: Sequence[jax.Array], masks: Sequence[jax.Array],
                        alpha: Any = 1.0) -> jax.Array:
        """`stylize_masked` with precomputed `encode_style` codes."""
        if len(codes) != len(masks):
            raise ValueError(f"need one mask per style, got {len(codes)} styles and {len(masks)} masks")
        check_images(content, "content", min_size=MIN_CONTENT_SIZE, model="Magenta")
        for mask in masks:
            if jnp.ndim(mask) != 3 or jnp.shape(mask)[1:] != content.shape[1:3]:
                raise ValueError(f"masks must be [B, {content.shape[1]}, {content.shape[2]}] like the content, "
                                 f"got shape {jnp.shape(mask)}")
        identity_code = None if _is_one(alpha) else self.encode_style(content)
        renders = [self._render(content, self._mix_identity(content, code, alpha, False, identity_code), False)
                   for code in codes]
        return blend_regions(content, renders, masks)

    def _render(self, content: jax.Array, code: jax.Array, train: bool) -> jax.Array:
        """Transformer output cropped from [B, 4*ceil(H/4), 4*ceil(W/4), 3] back to the content's size."""
        stylized = self.transformer(content, self.style_params(code), train)
        # lax.slice rather than indexing: with symbolic sides (ONNX export, docs/export.md) indexing traces to a
        # gather jax2onnx cannot convert; the values are the same.
        return jax.lax.slice(stylized, (0, 0, 0, 0), stylized.shape[:1] + content.shape[1:3] + stylized.shape[3:])

    def _mix_identity(self, content: jax.Array, code: jax.Array, alpha: Any, train: bool,
                      identity_code: Optional[jax.Array]) -> jax.Array:
        if _is_one(alpha):
            return code
        if identity_code is None:
            identity_code = self.encode_style(content, train)
        return (1.0 - alpha) * identity_code + alpha * code


def _is_one(alpha: Any) -> bool:
    """alpha is the Python number 1 (full style: the content's own code is not needed)."""
    return isinstance(alpha, (int, float)) and alpha == 1.0


def build_magenta(**config: Any) -> Magenta:
    """Registry factory: ``build("magenta", bottleneck=100, dtype=jnp.float32, variant="inception")``."""
    return Magenta(**config)
