"""Input checks shared by the models: one clear ValueError instead of a shape error deep inside a network."""

from __future__ import annotations

from typing import Any


def check_images(images: Any, name: str, *, min_size: int = 0, model: str | None = None) -> None:
    """Raise a ValueError unless `images` is an RGB batch [B, H, W, 3] with H and W at least `min_size`.

    Args:
      images: any array with `ndim` and `shape` (jax or numpy).
      name: what the images are, for the message ("content", "style").
      min_size: smallest height and width in pixels the caller can process.
      model: optional prefix naming who needs them ("Magenta", "InceptionV3 up to Mixed_6e").
    """
    prefix = f"{model}: " if model else ""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{prefix}{name} must be RGB images of shape [B, H, W, 3], got shape {tuple(images.shape)}")
    if any(side < min_size for side in images.shape[1:3]):  # per side: decidable for symbolic export sides too
        raise ValueError(f"{prefix}{name} images of at least {min_size}x{min_size} pixels are needed, "
                         f"got {images.shape[1]}x{images.shape[2]}")
