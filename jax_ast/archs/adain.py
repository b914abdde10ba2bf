"""AdaIN (Huang & Belongie, ICCV 2017): VGG-19 encoder to relu4_1, adaptive instance norm, mirrored decoder.

Trains its decoder only. Native loss (`adain_native_loss`): content = MSE to the AdaIN target at relu4_1,
style = mean/std distance at relu1_1..relu4_1 of the frozen encoder (docs/architectures.md, AdaIN).
"""

from __future__ import annotations

from pathlib import Path

import jax

from jax_ast.archs.base import Architecture, ObjectiveInputs, ObjectiveResult
from jax_ast.data.augmentation import CropSpec
from jax_ast.losses import ADAIN_STYLE_LAYERS, Breakdown, Feats, mean_std_style_loss
from jax_ast.losses.common import check_map, check_pair, features, mse_per_sample, optional_style
from jax_ast.models.adain import ENCODER_VARIANT, ENCODER_VARIANTS, build_adain
from jax_ast.pretrained.cache import ADAIN_RELEASE, RemoteFile

VGG_FILES = ("vgg_normalised.pth", "vgg_normalized.pth")


def adain_native_loss(*, output_feats: Feats, style_feats: Feats | None, target: jax.Array,
                      content_weight: float = 1.0, style_weight: float = 10.0) -> tuple[jax.Array, Breakdown]:
    """AdaIN (PyTorch port): content MSE of relu4_1(P) to the AdaIN target t, + mean/std style loss.

    Args:
      output_feats, style_feats: vgg19_normalised features with relu1_1..relu4_1; style_feats=None
        drops the style term (when the classic or balanced loss replaces it).
      target: [B, h, w, 512] the (alpha-blended) AdaIN output t that was decoded; held constant.
    """
    output = features(output_feats, "relu4_1", "output")
    check_pair("layer 'relu4_1'", "AdaIN target", check_map(target, "layer 'relu4_1'", "AdaIN target"), output,
               same_size=True)
    content = mse_per_sample(output, jax.lax.stop_gradient(target))
    style, style_parts = optional_style(
        style_feats, lambda: mean_std_style_loss(style_feats, output_feats, layers=ADAIN_STYLE_LAYERS))
    breakdown = {"content": content, **({"style": style} if style_parts else {}), **style_parts}
    return content_weight * content + style_weight * style, breakdown


def objective(inputs: ObjectiveInputs) -> ObjectiveResult:
    stylized, aux = inputs.apply(inputs.content, inputs.style, train=True)
    layers = ADAIN_STYLE_LAYERS
    style_feats = inputs.features(inputs.style, layers, constant=True) if inputs.native_style else None
    total, terms = adain_native_loss(output_feats=inputs.features(stylized, layers), style_feats=style_feats,
                                     target=aux["target"], content_weight=inputs.weights.content_weight,
                                     style_weight=inputs.style_weight)
    return ObjectiveResult(total, terms, stylized, {})


def square_resize_crop(crop: int):
    """``Resize((2 crop, 2 crop))`` (aspect distorted) then ``RandomCrop(crop)`` for content and style."""
    spec = CropSpec(resize="square", resize_to=2 * crop, crop=crop)
    return spec, spec


def release_tables(variant: str | None) -> dict:
    from jax_ast.pretrained import adain as weights  # noqa: PLC0415

    return {"decoder": weights.decoder_table()}


def load_release(vgg_file: Path, decoder_file: Path, **_: object):
    from jax_ast.pretrained.adain import load_adain  # noqa: PLC0415

    return load_adain(vgg_file, decoder_file)


PLUGIN = Architecture(
    name="adain", display_name="AdaIN", title="AdaIN (Huang & Belongie, ICCV 2017)", build=build_adain, order=0,
    original_encoder=ENCODER_VARIANT, encoders=ENCODER_VARIANTS, encoder_deepest=lambda variant: "relu4_1",
    native_loss_network=lambda encoder: None, objective=objective, native_style_terms=("style", "mean_std"),
    min_crop=16, min_crop_why="2x2 positions at relu4_1, stride 8",
    recipe=dict(learning_rate=1e-4, lr_decay=5e-5, iterations=160_000, batch_size=8, crop_size=256,
                content_weight=1.0, style_weight=10.0),
    augment=square_resize_crop,
    release_files="vgg_normalised.pth + decoder.pth",
    release_source="the GitHub release of naoto0804/pytorch-AdaIN (MIT)",
    release_patterns=lambda variant: {"encoder": VGG_FILES,
                                      "decoder": ("decoder.pth", "decoder_iter_*.pth", "iter_*.pth")},
    release_tables=release_tables, load_release=load_release,
    downloads={"decoder.pth": RemoteFile(ADAIN_RELEASE + "decoder.pth",
                                         note="AdaIN decoder converted from the Torch original")},
)
