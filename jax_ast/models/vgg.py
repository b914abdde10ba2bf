"""One VGG encoder module for the five VGG feature spaces used in arbitrary style transfer.

The variants are NOT interchangeable (docs/architectures.md, VGG encoders and Pitfalls): each has its own
input convention, padding and pooling, and pretrained decoders only work with their own encoder.

| variant            | input convention (applied inside)      | padding | pooling     | source                    |
|--------------------|----------------------------------------|---------|-------------|---------------------------|
| `vgg16`, `vgg19`   | (x - ImageNet mean) / ImageNet std      | zero    | max, floor  | torchvision `features`    |
| `vgg19_normalised` | learned 1x1 conv (RGB->BGR*255 - mean)  | reflect | max, ceil   | AdaIN/SANet `vgg_normalised.pth` |
| `vgg19_lst`        | learned 1x1 conv                        | reflect | max, floor  | LinearTransfer `vgg_r31/r41/r51.pth` |
| `vgg16_caffe`      | BGR*255 - (103.939, 116.779, 123.68)    | zero    | max, floor  | Oxford VGG-16 via Keras       |
| `vgg16_normalised` | BGR*255 - (103.939, 116.779, 123.68)    | zero    | max, floor  | the same, channels rescaled to mean 1 (encoder) |
| `vgg16_slim`       | x*255 - (123.68, 116.779, 103.939), RGB | zero    | avg, floor  | TF-slim `vgg_16` (Magenta loss net) |

Input is always RGB float in [0, 1], NHWC. Parameters are named `conv{block}_{index}` (+ `preprocess`
for the learned 1x1 conv), so checkpoint conversion is a name table, not a re-layout.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_ast.checks import check_images
from jax_ast.models.layers import avg_pool_2x2, max_pool_2x2, padded_conv

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)


@dataclasses.dataclass(frozen=True)
class VGGSpec:
    """Static description of one VGG variant."""

    convs_per_block: tuple[int, ...]
    padding: str  # "zero" | "reflect"
    pooling: str  # "max" | "max_ceil" | "avg"
    preprocess: str  # "imagenet" | "learned_1x1" | "caffe_rgb" | "caffe_bgr"


CHANNELS_PER_BLOCK = (64, 128, 256, 512, 512)

VGG_SPECS: dict[str, VGGSpec] = {
    "vgg16": VGGSpec((2, 2, 3, 3, 3), "zero", "max", "imagenet"),
    "vgg19": VGGSpec((2, 2, 4, 4, 4), "zero", "max", "imagenet"),
    "vgg19_normalised": VGGSpec((2, 2, 4, 4, 4), "reflect", "max_ceil", "learned_1x1"),
    "vgg19_lst": VGGSpec((2, 2, 4, 4, 4), "reflect", "max", "learned_1x1"),
    "vgg16_caffe": VGGSpec((2, 2, 3, 3, 3), "zero", "max", "caffe_bgr"),
    "vgg16_normalised": VGGSpec((2, 2, 3, 3, 3), "zero", "max", "caffe_bgr"),
    "vgg16_slim": VGGSpec((2, 2, 3, 3, 3), "zero", "avg", "caffe_rgb"),
}


def tap_names(variant: str) -> tuple[str, ...]:
    """All ReLU tap names of a variant in forward order, e.g. ("relu1_1", ..., "relu5_4")."""
    spec = _spec(variant)
    return tuple(f"relu{b + 1}_{i + 1}" for b, n in enumerate(spec.convs_per_block) for i in range(n))


def conv_names(variant: str) -> tuple[str, ...]:
    """Parameter names of the 3x3 convs in forward order ("conv1_1", ...)."""
    return tuple(name.replace("relu", "conv") for name in tap_names(variant))


def check_encoder(network: str, encoder: str, valid: tuple[str, ...]) -> None:
    """Raise one ValueError naming the valid encoders unless `encoder` is one of them."""
    if encoder not in valid:
        raise ValueError(f"{network} cannot use the encoder {encoder!r}; valid encoders: {', '.join(valid)}")


def _spec(variant: str) -> VGGSpec:
    if variant not in VGG_SPECS:
        raise ValueError(f"unknown VGG variant {variant!r}; choose one of {sorted(VGG_SPECS)}")
    return VGG_SPECS[variant]


class VGG(nn.Module):
    """VGG feature extractor returning a dict of named ReLU taps.

    Attributes:
      variant: one of `VGG_SPECS`.
      taps: tap names to return; the forward pass stops at the deepest one. Default: every tap.
      dtype: computation dtype (float32 default; bfloat16 for speed). Parameters stay float32.

    Call:
      images: float[B, H, W, 3], RGB in [0, 1].
      Returns {tap: [B, h, w, C]} in `dtype`.
    """

    variant: str = "vgg19"
    taps: Sequence[str] | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array) -> dict[str, jax.Array]:
        spec = _spec(self.variant)
        all_taps = tap_names(self.variant)
        wanted = tuple(all_taps if self.taps is None else self.taps)
        unknown = [t for t in wanted if t not in all_taps]
        if unknown or not wanted:
            raise ValueError(f"unknown taps {unknown or wanted} for {self.variant}; valid taps: {all_taps}")
        check_images(images, "images", model=f"VGG {self.variant}")
        deepest = max(all_taps.index(t) for t in wanted)

        x = self._preprocess(images.astype(jnp.float32), spec).astype(self.dtype)
        feats: dict[str, jax.Array] = {}
        position = 0
        for block, n_convs in enumerate(spec.convs_per_block):
            if block > 0:
                x = avg_pool_2x2(x) if spec.pooling == "avg" else max_pool_2x2(x, ceil_mode=spec.pooling == "max_ceil")
            for index in range(n_convs):
                name = f"{block + 1}_{index + 1}"
                x = padded_conv(x, CHANNELS_PER_BLOCK[block], 3, name=f"conv{name}", padding=spec.padding,
                                dtype=self.dtype)
                x = nn.relu(x)
                if f"relu{name}" in wanted:
                    feats[f"relu{name}"] = x
                if position == deepest:
                    return feats
                position += 1
        return feats

    def _preprocess(self, images: jax.Array, spec: VGGSpec) -> jax.Array:
        if spec.preprocess == "imagenet":
            return (images - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
        if spec.preprocess == "caffe_rgb":
            return images * 255.0 - jnp.asarray(CAFFE_MEAN_RGB)
        if spec.preprocess == "caffe_bgr":  # the Oxford/Keras convention: BGR channel order, 0-255, mean removed
            return images[..., ::-1] * 255.0 - jnp.asarray(CAFFE_MEAN_RGB[::-1])
        # The normalised Caffe VGG does RGB[0,1] -> BGR*255 - mean with a (learned) 1x1 conv.
        return nn.Conv(3, (1, 1), name="preprocess")(images)
