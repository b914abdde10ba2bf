"""Host-side training input: image sources, the originals' crop augmentation, and a resumable batch stream.

Everything here is numpy on the host; nothing touches a device. The modules, each re-exported here:

* `jax_ast.data.images`: the `Source` protocol, `DataError`, `to_rgb_uint8` (shared by every source);
* `jax_ast.data.sources`: `FolderSource`, `BundledSource`, `ArraySource`, `open_source`;
* `jax_ast.data.tfds`: `TfdsSource` (tensorflow-datasets; imported only when first used);
* `jax_ast.data.augmentation`: `CropSpec`, `augment` (each network's specs: `jax_ast.archs.default_augment`);
* `jax_ast.data.stream`: `StyleTransferStream`, ``{"content": uint8[B, Sc, Sc, 3], "style": uint8[B, Ss, Ss, 3]}``.
"""

from __future__ import annotations

from typing import Any

from jax_ast.data.augmentation import CropSpec, ResizeMode, augment, resized_shape
from jax_ast.data.images import DataError, SkippedImageWarning, Source, describe, to_rgb_uint8
from jax_ast.data.sources import BUNDLED_KINDS, ArraySource, BundledSource, FolderSource, bundled_dir, open_source
from jax_ast.data.stream import StyleTransferStream

__all__ = ["BUNDLED_KINDS", "ArraySource", "BundledSource", "CropSpec", "DataError",
           "FolderSource", "ResizeMode", "SkippedImageWarning", "Source", "StyleTransferStream",
           "augment", "bundled_dir", "describe", "open_source", "resized_shape", "to_rgb_uint8"]


def __getattr__(name: str) -> Any:  # PEP 562: `from jax_ast.data import TfdsSource` without importing tfds early
    if name == "TfdsSource":
        from jax_ast.data.tfds import TfdsSource  # noqa: PLC0415

        return TfdsSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
