"""SANet (Park & Lee, CVPR 2019): style-attentional fusion at relu4_1 and relu5_1 of the VGG-19 encoder.

Trains its attention transform and decoder. Native loss (`sanet_native_loss`): content at relu4_1/relu5_1,
mean/std style at relu1_1..relu5_1, plus the two identity losses (docs/architectures.md, SANet).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax

from jax_ast.archs.adain import VGG_FILES, square_resize_crop
from jax_ast.archs.base import Architecture, ObjectiveInputs, ObjectiveResult
from jax_ast.losses import SANET_STYLE_LAYERS, Breakdown, Feats, mean_std_style_loss
from jax_ast.losses.common import check_map, check_pair, check_statistics, mse_per_sample, pair
from jax_ast.models.sanet import ENCODER_VARIANT, ENCODER_VARIANTS, build_sanet
from jax_ast.ops import mean_variance_norm
from jax_ast.pretrained.cache import RemoteFile

_MANUAL = ("the SANet port (https://github.com/GlebSBrykin/SANET) distributes its weights via Yandex.Disk "
           "links in its README and its GitHub release; download {name} from there")


@dataclasses.dataclass(frozen=True)
class SANetOptions:
    """SANet's own training options: the weights of its two identity losses."""

    identity_pixel_weight: float = dataclasses.field(default=50.0, metadata={"help": "SANet's pixel identity loss"})
    identity_feature_weight: float = dataclasses.field(default=1.0,
                                                       metadata={"help": "SANet's feature identity loss"})


def sanet_native_loss(*, output_feats: Feats, content_feats: Feats, style_feats: Feats, content: jax.Array,
                      style: jax.Array, identity_content: jax.Array, identity_style: jax.Array,
                      identity_content_feats: Feats, identity_style_feats: Feats, content_weight: float = 1.0,
                      style_weight: float = 3.0, identity_pixel_weight: float = 50.0,
                      identity_feature_weight: float = 1.0) -> tuple[jax.Array, Breakdown]:
    """SANet: normalised content loss at relu4_1 + relu5_1, mean/std style loss over relu1_1..relu5_1,
    and the two identity losses on I_cc = D(T(c, c)) and I_ss = D(T(s, s)).

    Args:
      *_feats: vgg19_normalised features with relu1_1..relu5_1 (style_feats are also needed by the
        identity loss, so style_weight=0 is how classic/balanced drop the native style term here).
      content, style: the input images [B, H, W, 3]; identity_*: the identity reconstructions.
    """
    content_term = 0.0
    for layer in ("relu4_1", "relu5_1"):
        content_layer, output_layer = pair(content_feats, output_feats, layer, "content", same_size=True)
        check_statistics(content_layer, f"layer {layer!r}", 1)
        content_term = content_term + mse_per_sample(mean_variance_norm(output_layer),
                                                      mean_variance_norm(content_layer))
    style_term, style_parts = mean_std_style_loss(style_feats, output_feats, layers=SANET_STYLE_LAYERS)
    for name, reference, reconstruction in (("content", content, identity_content),
                                            ("style", style, identity_style)):
        check_pair(f"identity_{name}", f"{name} image", check_map(reference, f"{name}", "input"),
                    check_map(reconstruction, f"identity_{name}", "reconstructed"), same_size=True)
    identity_pixel = mse_per_sample(identity_content, content) + mse_per_sample(identity_style, style)
    identity_feature = 0.0
    for layer in SANET_STYLE_LAYERS:
        for reference_feats, identity_feats, role in ((content_feats, identity_content_feats, "content"),
                                                      (style_feats, identity_style_feats, "style")):
            reference, identity = pair(reference_feats, identity_feats, layer, role, same_size=True)
            identity_feature = identity_feature + mse_per_sample(identity, reference)
    total = (content_weight * content_term + style_weight * style_term
             + identity_pixel_weight * identity_pixel + identity_feature_weight * identity_feature)
    breakdown = {"content": content_term, "style": style_term, "identity_pixel": identity_pixel,
                 "identity_feature": identity_feature, **style_parts}
    return total, breakdown


def objective(inputs: ObjectiveInputs) -> ObjectiveResult:
    stylized, aux = inputs.apply(inputs.content, inputs.style, train=True, with_identity=True)
    layers = SANET_STYLE_LAYERS
    feats = lambda x, constant=False: inputs.features(x, layers, constant=constant)  # noqa: E731
    w, options = inputs.weights, inputs.options
    total, terms = sanet_native_loss(
        output_feats=feats(stylized), content_feats=feats(inputs.content, True), style_feats=feats(inputs.style, True),
        content=inputs.content, style=inputs.style, identity_content=aux["identity_content"],
        identity_style=aux["identity_style"], identity_content_feats=feats(aux["identity_content"]),
        identity_style_feats=feats(aux["identity_style"]), content_weight=w.content_weight,
        style_weight=inputs.style_weight, identity_pixel_weight=options.identity_pixel_weight,
        identity_feature_weight=options.identity_feature_weight)
    return ObjectiveResult(total, terms, stylized, {})


def release_tables(variant: str | None) -> dict:
    from jax_ast.pretrained import adain, sanet  # noqa: PLC0415

    return {"decoder": adain.decoder_table(), "transform": sanet.transform_table()}


def load_release(vgg_file: Path, decoder_file: Path, transform_file: Path, **_: object):
    from jax_ast.pretrained.sanet import load_sanet  # noqa: PLC0415

    return load_sanet(vgg_file, decoder_file, transform_file)


PLUGIN = Architecture(
    name="sanet", display_name="SANet", title="SANet (Park & Lee, CVPR 2019)", build=build_sanet, order=1,
    original_encoder=ENCODER_VARIANT, encoders=ENCODER_VARIANTS, encoder_deepest=lambda variant: "relu5_1",
    native_loss_network=lambda encoder: None, objective=objective, native_style_terms=("style", "mean_std"),
    options=SANetOptions, inference_options=("chunk_size",),
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
    downloads={name: RemoteFile(None, manual=_MANUAL.format(name=name), note=f"SANet {name}")
               for name in ("decoder_iter_500000.pth", "transformer_iter_500000.pth")},
)
