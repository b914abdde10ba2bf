"""LinearTransfer (Li et al., CVPR 2019): a learned linear transform of relu4_1 (or relu3_1) features.

Trains its transform only, on a frozen auto-encoder; without a pretrained decoder, training first
pre-trains one as an image auto-encoder (stage "decoder"; its steps are `LinearOptions`). Native loss
(`linear_native_loss`) on LST's own VGG-19 up to relu5_1: content at relu4_1, Gram style at
relu1_1..relu4_1 (docs/architectures.md, LinearTransfer).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp

from jax_ast.archs.base import Architecture, ObjectiveInputs, ObjectiveResult
from jax_ast.data.augmentation import CropSpec
from jax_ast.losses import ADAIN_STYLE_LAYERS, Breakdown, Feats, content_loss
from jax_ast.losses.common import mse_per_sample, optional_style, pair, weighted_sum
from jax_ast.models.linear import ENCODER_VARIANT, ENCODER_VARIANTS, build_linear
from jax_ast.ops import accumulation_dtype, gram, squared_frobenius
from jax_ast.pretrained.cache import LST_MANUAL, RemoteFile

LOSS_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


@dataclasses.dataclass(frozen=True)
class LinearOptions:
    """LinearTransfer's own training options: the auto-encoder stage that runs first without --pretrained."""

    decoder_iterations: int = dataclasses.field(
        default=20_000, metadata={"help": "LinearTransfer without --pretrained: auto-encoder steps run first"})
    decoder_learning_rate: float | None = dataclasses.field(
        default=None, metadata={"help": "learning rate of LinearTransfer's decoder pre-training "
                                        "(default: --learning-rate)"})

    def __post_init__(self):
        if self.decoder_iterations <= 0:
            raise ValueError(f"decoder_iterations must be positive, got {self.decoder_iterations}")
        if self.decoder_learning_rate is not None and not 0 < self.decoder_learning_rate <= 1:  # as learning_rate
            raise ValueError(f"decoder_learning_rate must be a number in (0, 1], got {self.decoder_learning_rate!r}")


def linear_native_loss(*, output_feats: Feats, content_feats: Feats, style_feats: Feats | None,
                       content_weight: float = 1.0, style_weight: float = 0.02) -> tuple[jax.Array, Breakdown]:
    """LinearTransfer: MSE at relu4_1 + per layer [sum_c (mu_P - mu_S)^2 + sum_cc' (G_P - G_S)^2], G = FF^T/(CHW).

    Features come from the LST loss network (encoder5, `vgg19_lst`) at relu1_1..relu4_1. The original
    sums over the batch and divides by B, i.e. the batch mean of these per-sample sums.
    style_feats=None drops the style term (when the classic or balanced loss replaces it).
    """
    content_layer, output_layer = pair(content_feats, output_feats, "relu4_1", "content", same_size=True)
    content = mse_per_sample(output_layer, content_layer)

    def style_term():
        per_layer = {}
        for layer in ADAIN_STYLE_LAYERS:
            style_layer, output_layer = pair(style_feats, output_feats, layer, "style", same_size=False)
            output_layer, style_layer = (x.astype(accumulation_dtype(x)) for x in (output_layer, style_layer))
            mean_diff = jnp.mean(output_layer, axis=(1, 2)) - jnp.mean(style_layer, axis=(1, 2))
            gram_diff = gram(output_layer, "chw") - gram(style_layer, "chw")
            per_layer[layer] = jnp.sum(jnp.square(mean_diff), axis=1) + squared_frobenius(gram_diff)
        return weighted_sum("lst_style", per_layer, {layer: 1.0 for layer in per_layer})

    style, style_parts = optional_style(style_feats, style_term)
    breakdown = {"content": content, **({"style": style} if style_parts else {}), **style_parts}
    return content_weight * content + style_weight * style, breakdown


def objective(inputs: ObjectiveInputs) -> ObjectiveResult:
    content, style, features = inputs.content, inputs.style, inputs.features
    if inputs.stage == "decoder":  # auto-encoder: alpha=0 decodes the content's own features
        stylized, _ = inputs.apply(content, content, alpha=0.0)
        pixel = jnp.mean(jnp.square(stylized - content), axis=(1, 2, 3))
        feature, _ = content_loss(features(content, LOSS_LAYERS, constant=True), features(stylized, LOSS_LAYERS),
                                    layers=LOSS_LAYERS)
        total = pixel + inputs.weights.content_weight * feature
        return ObjectiveResult(total, {"pixel": pixel, "feature": feature}, stylized, {})
    stylized, _ = inputs.apply(content, style, train=True)
    total, terms = linear_native_loss(
        output_feats=features(stylized, LOSS_LAYERS), content_feats=features(content, LOSS_LAYERS, constant=True),
        style_feats=features(style, LOSS_LAYERS, constant=True) if inputs.native_style else None,
        content_weight=inputs.weights.content_weight, style_weight=inputs.style_weight)
    return ObjectiveResult(total, terms, stylized, {})


def native_loss_network(encoder: str | None) -> tuple[str, str]:
    """LST's loss network is its VGG-19 to relu5_1 (`vgg_r51.pth`); on the ImageNet VGG-16 encoder that
    same network serves (its loss taps stop at relu4_1)."""
    return ("vgg19_lst", "relu5_1") if encoder in (None, ENCODER_VARIANT) else (encoder, "relu4_1")


def shorter_side_crop_flip(crop: int):
    """``Resize(crop)`` of the shorter side, ``RandomCrop(crop)``, ``RandomHorizontalFlip``."""
    spec = CropSpec(resize="shorter", resize_to=crop, crop=crop, hflip=True)
    return spec, spec


def release_tables(variant: str | None) -> dict:
    from jax_ast.pretrained import linear  # noqa: PLC0415

    return {"decoder": linear.decoder_table(variant or "r41"), "transform": linear.transform_table()}


def load_release(vgg_file: Path, decoder_file: Path, transform_file: Path, *, variant: str = "r41", **_: object):
    from jax_ast.pretrained.linear import load_linear  # noqa: PLC0415

    return load_linear(vgg_file, decoder_file, transform_file, variant=variant)


PLUGIN = Architecture(
    name="linear", display_name="LinearTransfer", title="LinearTransfer (Li et al., CVPR 2019)", build=build_linear,
    order=2,
    original_encoder=ENCODER_VARIANT, encoders=ENCODER_VARIANTS, variants=("r41", "r31"),
    encoder_deepest=lambda variant: {"r41": "relu4_1", "r31": "relu3_1"}[variant or "r41"],
    native_loss_network=native_loss_network, objective=objective, native_style_terms=("style", "lst_style"),
    options=LinearOptions,
    min_crop=16, min_crop_why="2x2 positions at relu4_1, stride 8",
    recipe=dict(learning_rate=1e-4, lr_decay=1e-5, iterations=100_000, batch_size=8, crop_size=256,
                content_weight=1.0, style_weight=0.02),
    augment=shorter_side_crop_flip, pretrains_decoder=True,
    release_files="vgg_r41.pth + dec_r41.pth + r41.pth (the r31 files with --variant r31)",
    release_source="models.zip on Google Drive, linked from sunshineatnoon/LinearStyleTransfer (BSD-2-Clause)",
    release_patterns=lambda variant: {"encoder": (f"vgg_{variant}.pth",), "decoder": (f"dec_{variant}.pth",),
                                      "transform": (f"{variant}.pth",)},
    release_tables=release_tables, optional_parts=("transform",), load_release=load_release,
    downloads={name: RemoteFile(None, manual=LST_MANUAL.format(name=name), note=f"LinearTransfer {name}")
               for name in ("dec_r31.pth", "dec_r41.pth", "r31.pth", "r41.pth")},
)
