"""LinearTransfer (Li et al., CVPR 2019): a learned linear transform of relu4_1 (or relu3_1) features.

Trains its transform only, on a frozen auto-encoder; without a pretrained decoder, training first
pre-trains one as an image auto-encoder (stage "decoder"). Native loss on LST's own VGG-19 up to relu5_1:
content at relu4_1, Gram style at relu1_1..relu4_1 (docs/architectures.md, LinearTransfer).
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp

import jax_ast.losses as L
from jax_ast.archs.base import Architecture, ObjectiveInputs, ObjectiveResult
from jax_ast.models.linear import ENCODER_VARIANT, ENCODER_VARIANTS, build_linear

LOSS_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


def objective(inputs: ObjectiveInputs) -> ObjectiveResult:
    content, style, features = inputs.content, inputs.style, inputs.features
    if inputs.stage == "decoder":  # auto-encoder: alpha=0 decodes the content's own features
        stylized, _ = inputs.apply(content, content, alpha=0.0)
        pixel = jnp.mean(jnp.square(stylized - content), axis=(1, 2, 3))
        feature, _ = L.content_loss(features(content, LOSS_LAYERS, constant=True), features(stylized, LOSS_LAYERS),
                                    layers=LOSS_LAYERS)
        total = pixel + inputs.weights.content_weight * feature
        return ObjectiveResult(total, {"pixel": pixel, "feature": feature}, stylized, {})
    stylized, _ = inputs.apply(content, style, train=True)
    total, terms = L.linear_native_loss(
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
    from jax_ast.data import CropSpec  # noqa: PLC0415 - jax_ast.data reads the plug-ins

    spec = CropSpec(resize="shorter", resize_to=crop, crop=crop, hflip=True)
    return spec, spec


def release_tables(variant: str | None) -> dict:
    from jax_ast.pretrained import linear  # noqa: PLC0415

    return {"decoder": linear.decoder_table(variant or "r41"), "transform": linear.transform_table()}


def load_release(vgg_file: Path, decoder_file: Path, transform_file: Path, *, variant: str = "r41", **_: object):
    from jax_ast.pretrained.linear import load_linear  # noqa: PLC0415

    return load_linear(vgg_file, decoder_file, transform_file, variant=variant)


PLUGIN = Architecture(
    name="linear", title="LinearTransfer (Li et al., CVPR 2019)", build=build_linear,
    original_encoder=ENCODER_VARIANT, encoders=ENCODER_VARIANTS, variants=("r41", "r31"),
    encoder_deepest=lambda variant: {"r41": "relu4_1", "r31": "relu3_1"}[variant or "r41"],
    native_loss_network=native_loss_network, objective=objective,
   
    min_crop=16, min_crop_why="2x2 positions at relu4_1, stride 8",
    recipe=dict(learning_rate=1e-4, lr_decay=1e-5, iterations=100_000, batch_size=8, crop_size=256,
                content_weight=1.0, style_weight=0.02),
    augment=shorter_side_crop_flip, pretrains_decoder=True,
    release_files="vgg_r41.pth + dec_r41.pth + r41.pth (the r31 files with --variant r31)",
    release_source="models.zip on Google Drive, linked from sunshineatnoon/LinearStyleTransfer (BSD-2-Clause)",
    release_patterns=lambda variant: {"encoder": (f"vgg_{variant}.pth",), "decoder": (f"dec_{variant}.pth",),
                                      "transform": (f"{variant}.pth",)},
    release_tables=release_tables, optional_parts=("transform",), load_release=load_release,
)
