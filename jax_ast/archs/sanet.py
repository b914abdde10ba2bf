"""SANet (Park & Lee, CVPR 2019): style-attentional fusion at relu4_1 and relu5_1 of the VGG-19 encoder.

Trains its attention transform and decoder. Native loss: content at relu4_1/relu5_1, mean/std style at
relu1_1..relu5_1, plus the two identity losses (docs/architectures.md, SANet).
"""

from __future__ import annotations

from pathlib import Path

import jax_ast.losses as L
from jax_ast.archs.adain import VGG_FILES, square_resize_crop
from jax_ast.archs.base import Architecture, ObjectiveInputs, ObjectiveResult
from jax_ast.models.sanet import ENCODER_VARIANT, ENCODER_VARIANTS, build_sanet


def objective(inputs: ObjectiveInputs) -> ObjectiveResult:
    stylized, aux = inputs.apply(inputs.content, inputs.style, train=True, with_identity=True)
    layers = L.SANET_STYLE_LAYERS
    feats = lambda x, constant=False: inputs.features(x, layers, constant=constant)  # noqa: E731
    w = inputs.weights
    total, terms = L.sanet_native_loss(
        output_feats=feats(stylized), content_feats=feats(inputs.content, True), style_feats=feats(inputs.style, True),
        content=inputs.content, style=inputs.style, identity_content=aux["identity_content"],
        identity_style=aux["identity_style"], identity_content_feats=feats(aux["identity_content"]),
        identity_style_feats=feats(aux["identity_style"]), content_weight=w.content_weight,
        style_weight=inputs.style_weight, identity_pixel_weight=w.identity_pixel_weight,
        identity_feature_weight=w.identity_feature_weight)
    return ObjectiveResult(total, terms, stylized, {})


def release_tables(variant: str | None) -> dict:
    from jax_ast.pretrained import adain, sanet  # noqa: PLC0415

    return {"decoder": adain.decoder_table(), "transform": sanet.transform_table()}


def load_release(vgg_file: Path, decoder_file: Path, transform_file: Path, **_: object):
    from jax_ast.pretrained.sanet import load_sanet  # noqa: PLC0415

    return load_sanet(vgg_file, decoder_file, transform_file)


PLUGIN = Architecture(
    name="sanet", title="SANet (Park & Lee, CVPR 2019)", build=build_sanet,
    original_encoder=ENCODER_VARIANT, encoders=ENCODER_VARIANTS, encoder_deepest=lambda variant: "relu5_1",
    native_loss_network=lambda encoder: None, objective=objective,
    min_crop=32, min_crop_why="2x2 positions at relu5_1, stride 16",
    recipe=dict(learning_rate=1e-4, lr_decay=5e-5, iterations=160_000, batch_size=5, crop_size=256,
                content_weight=1.0, style_weight=3.0),
    augment=square_resize_crop,
    release_files="vgg_normalised.pth + decoder_iter_*.pth + transformer_iter_*.pth",
    release_source=("vgg_normalised.pth: the GitHub release of naoto0804/pytorch-AdaIN (MIT); decoder and "
                    "transformer: the Yandex.Disk links in the README of GlebSBrykin/SANET"),
    release_patterns=lambda variant: {"encoder": VGG_FILES, "decoder": ("decoder_iter_*.pth", "decoder.pth"),
                                      "transform": ("transformer_iter_*.pth", "transformer.pth")},
    release_tables=release_tables, load_release=load_release,
)
