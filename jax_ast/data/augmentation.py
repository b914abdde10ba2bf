"""The originals' crop augmentation: `CropSpec` (resize, upscale if small, crop, flip; each network's plug-in
declares its own, `jax_ast.archs.default_augment`); `augment` applies a spec to one uint8 [H, W, 3] image."""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
from PIL import Image

ResizeMode = Literal["shorter", "square"]


@dataclasses.dataclass(frozen=True)
class CropSpec:
    """How one training image becomes a `crop` x `crop` patch.

    1. resize: "square" -> `resize_to` x `resize_to` (aspect distorted, torchvision ``Resize((s, s))``);
       "shorter" -> shorter side `resize_to`, longer side ``int(resize_to * long / short)`` (``Resize(s)``);
       None -> no resize (the image's own size).
    2. An image still smaller than `crop` on a side is upscaled (aspect kept) so its shorter side is `crop`.
    3. crop: random position (``RandomCrop``) or centred (``CenterCrop``, offsets ``round((size - crop) / 2)``).
    4. hflip: mirror left-right with probability 1/2.
    Resizing is PIL bilinear (antialiased), as torchvision does on PIL images.
    """

    resize: ResizeMode | None = "shorter"
    resize_to: int | None = 256
    crop: int = 256
    hflip: bool = False
    random_crop: bool = True

    def __post_init__(self):
        if self.resize not in ("shorter", "square", None):
            raise ValueError(f"unknown resize {self.resize!r}; valid: 'shorter', 'square', None")
        if not isinstance(self.crop, int) or self.crop < 1:
            raise ValueError(f"crop must be a positive int, got {self.crop!r}")
        if self.resize is None:
            if self.resize_to:
                raise ValueError(f"resize_to={self.resize_to} needs resize='shorter' or 'square'")
        elif not isinstance(self.resize_to, int) or self.resize_to < self.crop:
            raise ValueError(f"resize_to must be an int >= crop ({self.crop}), got {self.resize_to!r}")


def _shorter_side_shape(height: int, width: int, size: int) -> tuple[int, int]:
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def resized_shape(height: int, width: int, spec: CropSpec) -> tuple[int, int]:
    """(height, width) of the image after steps 1-2 of `spec` (the frame the crop is taken from)."""
    if spec.resize == "square":
        shape = (spec.resize_to, spec.resize_to)
    elif spec.resize == "shorter":
        shape = _shorter_side_shape(height, width, spec.resize_to)
    else:
        shape = (height, width)
    if min(shape) < spec.crop:
        shape = _shorter_side_shape(*shape, spec.crop)
    return shape


def augment(image: np.ndarray, spec: CropSpec, rng: np.random.Generator) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [crop, crop, 3] following `spec` (random choices drawn from `rng`).

    Only the cropped window is resampled (PIL ``resize(box=...)``), which gives the same pixels as resizing the
    whole image and then cropping, at a fraction of the cost for the 512 -> 256 recipes.
    """
    height, width = image.shape[:2]
    new_height, new_width = resized_shape(height, width, spec)
    crop = spec.crop
    if spec.random_crop:
        top = int(rng.integers(0, new_height - crop + 1))
        left = int(rng.integers(0, new_width - crop + 1))
    else:
        top = int(round((new_height - crop) / 2.0))
        left = int(round((new_width - crop) / 2.0))
    flip = spec.hflip and bool(rng.random() < 0.5)
    if (new_height, new_width) == (height, width):
        patch = image[top:top + crop, left:left + crop]
    else:
        scale_y, scale_x = height / new_height, width / new_width
        box = (left * scale_x, top * scale_y, min(width, (left + crop) * scale_x),
               min(height, (top + crop) * scale_y))
        patch = np.asarray(Image.fromarray(image).resize((crop, crop), Image.Resampling.BILINEAR, box=box))
    if flip:
        patch = patch[:, ::-1]
    return np.ascontiguousarray(patch)

