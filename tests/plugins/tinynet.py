"""TinyNet: a fifth style-transfer network written outside jax-ast, to prove that a network is one module.

Registered with ``JAX_AST_PLUGINS=tests.plugins.tinynet`` (or ``jax_ast.archs.register(PLUGIN)``): nothing
else in the repository names it. One 3x3 convolution encodes to 8 channels, AdaIN-like conditioning
swaps the content's channel statistics for the style's, and one 3x3 convolution decodes; everything is
trained, from random init. Its native loss: content MSE on the output's own features, mean/std style on
the VGG-16 loss network at relu1_2, relu2_2, and a total-variation term weighted by its own option.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

import jax_ast.losses as L
from jax_ast.archs import Architecture, ObjectiveInputs, ObjectiveResult
from jax_ast.data.augmentation import CropSpec
from jax_ast.models.mixing import blend_regions, mix_codes
from jax_ast.ops import adain_with_stats, channel_mean_std

CHANNELS = 8
LOSS_LAYERS = ("relu1_2", "relu2_2")


class TinyNet(nn.Module):
    """encode (conv 3->8, relu) -> AdaIN with the style's statistics -> decode (conv 8->3, sigmoid)."""

    dtype: Any = jnp.float32
    TRAINABLE: ClassVar[tuple[str, ...]] = ("encoder", "decoder")

    def setup(self):
        self.encoder = nn.Conv(CHANNELS, (3, 3), dtype=self.dtype)
        self.decoder = nn.Conv(3, (3, 3), dtype=self.dtype)

    def encode_content(self, content: jax.Array) -> jax.Array:
        return nn.relu(self.encoder(content))

    def encode_style(self, style: jax.Array) -> dict[str, jax.Array]:
        mean, std = channel_mean_std(nn.relu(self.encoder(style)), ddof=1, eps=1e-5)
        return {"mean": mean, "std": std}

    def stylize_codes(self, content_code, code, alpha: Any, height: int, width: int) -> jax.Array:
        target = adain_with_stats(content_code, code["mean"], code["std"], ddof=1, eps=1e-5)
        target = alpha * target + (1 - alpha) * content_code
        return nn.sigmoid(self.decoder(target)).astype(jnp.float32)[:, :height, :width]

    def stylize_with_code(self, content: jax.Array, code, alpha: Any = 1.0) -> jax.Array:
        return self.stylize_codes(self.encode_content(content), code, alpha, content.shape[1], content.shape[2])

    def __call__(self, content: jax.Array, style: jax.Array, alpha: Any = 1.0, train: bool = False):
        del train
        return self.stylize_with_code(content, self.encode_style(style), alpha), {}

    def stylize_mixed(self, content, codes: Sequence[Any], weights, alpha: Any = 1.0) -> jax.Array:
        return self.stylize_with_code(content, mix_codes(codes, weights), alpha)

    def stylize_interpolated(self, content, styles, weights, alpha: Any = 1.0) -> jax.Array:
        return self.stylize_mixed(content, [self.encode_style(s) for s in styles], weights, alpha)

    def stylize_regions(self, content, codes, masks, alpha: Any = 1.0) -> jax.Array:
        return blend_regions(content, [self.stylize_with_code(content, c, alpha) for c in codes], list(masks))

    def stylize_masked(self, content, styles, masks, alpha: Any = 1.0) -> jax.Array:
        return self.stylize_regions(content, [self.encode_style(s) for s in styles], masks, alpha)


@dataclasses.dataclass(frozen=True)
class TinyOptions:
    """TinyNet's own option: one flag, ``--tiny-tv-weight``."""

    tiny_tv_weight: float = dataclasses.field(default=0.5, metadata={"help": "TinyNet's total variation term"})


def objective(inputs: ObjectiveInputs) -> ObjectiveResult:
    stylized, _ = inputs.apply(inputs.content, inputs.style, train=True)
    output_feats = inputs.features(stylized, LOSS_LAYERS)
    content, _ = L.content_loss(inputs.features(inputs.content, LOSS_LAYERS, constant=True), output_feats,
                                layers=LOSS_LAYERS)
    tv = L.total_variation_loss(stylized)
    total = inputs.weights.content_weight * content + inputs.options.tiny_tv_weight * tv
    terms = {"content": content, "tiny_tv": tv}
    if inputs.native_style:
        style, parts = L.mean_std_style_loss(inputs.features(inputs.style, LOSS_LAYERS, constant=True),
                                             output_feats, layers=LOSS_LAYERS)
        total = total + inputs.style_weight * style
        terms.update({"style": style, **parts})
    return ObjectiveResult(total, terms, stylized, {})


def _crop(crop: int):
    spec = CropSpec(resize="shorter", resize_to=crop, crop=crop)
    return spec, spec


def _no_release(*files, **_):
    raise ValueError("TinyNet has no release files; pass a params.npz written by train.run")


PLUGIN = Architecture(
    name="tinynet", display_name="TinyNet", title="TinyNet (a test plug-in)", build=lambda dtype=jnp.float32: TinyNet(
        dtype=jnp.dtype(dtype)),
    original_encoder=None, encoders=(), encoder_deepest=None,
    native_loss_network=lambda encoder: ("vgg16_slim", "relu2_2"), objective=objective,
    native_style_terms=("style", "mean_std"), options=TinyOptions,
    min_crop=8, min_crop_why="two 3x3 convolutions", init_size=16, stylize_size=32,
    recipe=dict(learning_rate=1e-3, lr_decay=0.0, iterations=4, batch_size=8, crop_size=32,
                content_weight=1.0, style_weight=1.0),
    augment=_crop, release_files="none (train it)", release_source="tests/plugins/tinynet.py",
    release_patterns=lambda variant: {}, release_tables=lambda variant: {}, load_release=_no_release,
)
