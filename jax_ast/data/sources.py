"""Image sources on the host: `FolderSource`, the bundled samples (`BundledSource`, `bundled_dir`),
`ArraySource`, and `open_source`, which picks one from the command-line options (`TfdsSource` lives in
`jax_ast.data.tfds` and is imported only when a tfds dataset is asked for)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from jax_ast.data.images import DataError, Source, to_rgb_uint8
from jax_ast.imageio import ImageError, list_images, load_pixels

BUNDLED_KINDS = ("content", "style")


class FolderSource:
    """The images in a folder (recursively by default; sorted, hidden files skipped), or a single image file.

    Raises:
      FileNotFoundError: `root` does not exist (the message names it).
      DataError: `root` holds no image file, or cannot be used (a symlink loop, permission denied).
    """

    def __init__(self, root: str | os.PathLike, recursive: bool = True):
        self.root = Path(root)
        try:
            self.paths: list[Path] = list_images(self.root, recursive=recursive)
        except FileNotFoundError:
            raise FileNotFoundError(f"image folder {self.root} does not exist") from None
        except ImageError as error:
            raise DataError(str(error)) from None

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> np.ndarray:
        """uint8 [H, W, 3] RGB; raises `ImageError` naming the file for a corrupt or unusable one."""
        # min_side=1: small images are upscaled by the crop augmentation instead of being rejected.
        return to_rgb_uint8(load_pixels(self.paths[index], min_side=1))

    def load_reduced(self, index: int, shorter_side: int) -> np.ndarray:
        """`load`, but an image far larger than `shorter_side` is decoded at a reduced scale
        (`jax_ast.imageio.load_pixels`), so decoding memory follows the crop recipe, not the file."""
        return to_rgb_uint8(load_pixels(self.paths[index], shorter_side=shorter_side, min_side=1))

    def describe(self, index: int) -> str:
        return str(self.paths[index])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, {len(self)} images)"


def bundled_dir(kind: str) -> Path:
    """The folder of sample images shipped inside the package: ``jax_ast/samples/{content,style}``."""
    if kind not in BUNDLED_KINDS:
        raise ValueError(f"unknown bundled image set {kind!r}; valid: {', '.join(BUNDLED_KINDS)}")
    import jax_ast  # local: jax_ast/__init__ must stay import-light and never import this module

    return Path(jax_ast.__file__).resolve().parent / "samples" / kind


class BundledSource(FolderSource):
    """The sample content or style images bundled with jax-ast (the default of ``python -m train.run``)."""

    def __init__(self, kind: str):
        super().__init__(bundled_dir(kind))
        self.kind = kind

    def __repr__(self) -> str:
        return f"BundledSource({self.kind!r}, {len(self)} images)"


class ArraySource:
    """In-memory images (any layout `to_rgb_uint8` accepts), e.g. for tests or pre-decoded data."""

    def __init__(self, images: Sequence[np.ndarray], names: Sequence[str] | None = None):
        self.images = list(images)
        if not self.images:
            raise DataError("ArraySource needs at least one image")
        self.names = list(names) if names is not None else [f"array[{i}]" for i in range(len(self.images))]
        if len(self.names) != len(self.images):
            raise ValueError(f"got {len(self.names)} names for {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> np.ndarray:
        return to_rgb_uint8(self.images[index])

    def describe(self, index: int) -> str:
        return self.names[index]


def open_source(role: str, *, folder: str | os.PathLike | None = None, tfds_name: str | None = None,
                tfds_split: str = "train", data_dir: str | None = None) -> Source:
    """The source for `role` ("content"/"style"): a folder, a tfds dataset, or else the bundled samples."""
    if role not in BUNDLED_KINDS:
        raise ValueError(f"unknown role {role!r}; valid: {', '.join(BUNDLED_KINDS)}")
    if folder and tfds_name:
        raise ValueError(f"give either a folder or a tfds dataset for {role}, not both")
    if folder:
        return FolderSource(folder)
    if tfds_name:
        from jax_ast.data.tfds import TfdsSource

        return TfdsSource(tfds_name, split=tfds_split, data_dir=data_dir)
    return BundledSource(role)

