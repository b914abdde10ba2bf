"""Generated style images at the extremes of Gram magnitude (licence-free: made here from a seed).

    python -m eval.reproduce.stress_styles --out DIR [--size 256] [--seed 0]

The paper reports that the classic style loss differs by more than 1000x across style images. Ordinary
paintings span far less (docs/reproduction.md), so `eval.reproduce` adds these, built to sit at both ends of
the VGG feature magnitude: near-blank canvases and thin line drawings (few, weak activations), very dark
paintings, flat colour fields, and saturated high-contrast patterns (many strong activations). Every file is a
deterministic function of (name, size, seed); names start with ``stress_`` so reports can tell them apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

PREFIX = "stress_"


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """[size, size, 3] in [0, 1]: uniform noise on a cells x cells grid, bicubically upsampled."""
    grid = (rng.random((cells, cells, 3)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(grid).resize((size, size), Image.BICUBIC), np.float32) / 255.0


def near_blank_canvas(rng: np.random.Generator, size: int) -> np.ndarray:
    """Off-white primed canvas with a faint weave: almost no structure at any scale."""
    base = np.array([0.94, 0.92, 0.87], np.float32)
    return base + 0.01 * (_smooth_noise(rng, size, size // 4) - 0.5)


def _strokes(rng: np.random.Generator, size: int, paper: tuple, ink: tuple, count: int,
             corners: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A `paper`-coloured canvas with `count` one-pixel polylines of `corners` random points in `ink`."""
    image = Image.new("RGB", (size, size), paper)
    draw = ImageDraw.Draw(image)
    for _ in range(count):
        draw.line([tuple(rng.integers(0, size, 2).tolist()) for _ in range(corners)], fill=ink, width=1)
    return image, draw


def faint_pencil_lines(rng: np.random.Generator, size: int) -> np.ndarray:
    """A few light grey strokes on white paper."""
    image, _ = _strokes(rng, size, (250, 250, 248), (205, 205, 205), count=6, corners=3)
    return np.asarray(image, np.float32) / 255.0


def thin_line_drawing(rng: np.random.Generator, size: int) -> np.ndarray:
    """Dense black ink hatching and contours, one pixel wide, on white."""
    image, draw = _strokes(rng, size, (255, 255, 255), (0, 0, 0), count=40, corners=4)
    for _ in range(8):
        x, y, r = (int(v) for v in rng.integers(size // 8, size - size // 8, 3) // (1, 1, 4))
        draw.ellipse((x - r, y - r, x + r, y + r), outline=(0, 0, 0), width=1)
    return np.asarray(image, np.float32) / 255.0


def very_dark_painting(rng: np.random.Generator, size: int) -> np.ndarray:
    """A nocturne: smooth brown-blue shapes at under a tenth of full brightness."""
    return 0.08 * _smooth_noise(rng, size, 6) * np.array([1.0, 0.8, 1.2], np.float32)


def black_canvas(rng: np.random.Generator, size: int) -> np.ndarray:
    """Almost black, with a faint texture (a blank image is the lower limit of the Gram magnitude)."""
    return 0.02 + 0.01 * _smooth_noise(rng, size, size // 8)


def flat_colour_field(rng: np.random.Generator, size: int) -> np.ndarray:
    """Two soft-edged flat colour rectangles on a third colour (colour-field painting)."""
    colours = rng.random((3, 3)).astype(np.float32)
    image = np.broadcast_to(colours[0], (size, size, 3)).copy()
    image[size // 8: size // 2 - size // 16, size // 8: -size // 8] = colours[1]
    image[size // 2 + size // 16: -size // 8, size // 8: -size // 8] = colours[2]
    blurred = Image.fromarray((image * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(size / 64))
    return np.asarray(blurred, np.float32) / 255.0


def saturated_stripes(rng: np.random.Generator, size: int) -> np.ndarray:
    """Diagonal stripes of fully saturated red, blue and yellow, a few pixels wide."""
    palette = np.array([[1, 0, 0], [0, 0, 1], [1, 1, 0]], np.float32)
    period = int(rng.integers(4, 9))
    y, x = np.mgrid[:size, :size]
    return palette[((x + y) // period) % 3]


def high_contrast_checker(rng: np.random.Generator, size: int) -> np.ndarray:
    """A black-and-white checkerboard with small cells, rotated: strong edges everywhere."""
    cell = int(rng.integers(3, 7))
    y, x = np.mgrid[:size, :size]
    u, v = (x + y) // cell, (x - y + size) // cell
    return np.repeat((((u + v) % 2).astype(np.float32))[..., None], 3, axis=2)


def saturated_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Per-pixel random fully saturated colours (the upper end of high-frequency energy)."""
    return (rng.random((size, size, 3)) > 0.5).astype(np.float32)


STYLES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "near_blank_canvas": near_blank_canvas, "faint_pencil_lines": faint_pencil_lines,
    "thin_line_drawing": thin_line_drawing, "very_dark_painting": very_dark_painting,
    "black_canvas": black_canvas, "flat_colour_field": flat_colour_field,
    "saturated_stripes": saturated_stripes, "high_contrast_checker": high_contrast_checker,
    "saturated_noise": saturated_noise,
}


def make(name: str, size: int = 256, seed: int = 0) -> np.ndarray:
    """The style image `name` as uint8 [size, size, 3]."""
    if name not in STYLES:
        raise ValueError(f"unknown stress style {name!r}; known: {', '.join(STYLES)}")
    rng = np.random.default_rng([seed, list(STYLES).index(name)])
    return (np.clip(STYLES[name](rng, size), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_all(folder: Path, size: int = 256, seed: int = 0) -> list[Path]:
    """Writes every stress style as ``<folder>/stress_<name>.png`` (lossless); returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in STYLES:
        path = folder / f"{PREFIX}{name}.png"
        Image.fromarray(make(name, size, seed)).save(path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.reproduce.stress_styles", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs (created)")
    parser.add_argument("--size", type=int, default=256, help="side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.size < 16:
        parser.error("--size must be >= 16")
    for path in write_all(args.out, args.size, args.seed):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
