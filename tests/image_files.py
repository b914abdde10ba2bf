"""Small random PNG files on disk for the CLI tests (test_hostile_eval.py, test_hostile_surfaces.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image


def random_png(path, seed: int, size: int | tuple[int, int] = 32, mode: str = "RGB") -> Path:
    """Writes uniform random pixels (`mode` RGB, RGBA or L; `size` a side or (height, width)) to `path`, a str,
    Path or bytes path (undecodable names included), creating its folder; returns it as a Path."""
    path = Path(os.fsdecode(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = (size, size) if isinstance(size, int) else size
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    Image.fromarray(pixels if channels > 1 else pixels[..., 0], mode).save(path, format="PNG")
    return path


def content_and_style_folders(root: Path) -> tuple[Path, Path]:
    """root/content and root/style with two 32 px images each (seeds 0, 1 and 10, 11)."""
    for role, offset in (("content", 0), ("style", 10)):
        for index in range(2):
            random_png(root / role / f"{role[0]}{index}.png", offset + index)
    return root / "content", root / "style"
