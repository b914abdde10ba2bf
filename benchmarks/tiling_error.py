"""How far a tiled stylisation is from the whole-image one: ``python -m benchmarks.tiling_error``.

``--weights`` (older name ``--checkpoint``) as in `eval.stylize` (a params file, release files or ``random``),
``imagenet``: the real ImageNet VGG-16 encoder with a seeded random rest (`benchmarks.inputs`), or ``mobile``:
the mobile Magenta with its released weights (`jax_ast.pretrained.magenta_mobile`, ``--arch magenta``). The content
(``golden_gate_bridge_fog.jpg``, resized to ``--size`` square) is stylised whole and in tiles
(`eval.inference.tiling`) with one style code (``van_gogh_starry_night.jpg``, shorter side min(size, 256)), once per
``--statistics`` mode; prints per mode the mean and max absolute difference of the clamped outputs (pixel values
in [0, 1]), the seconds, and the seam ratio (`seam_ratio`) of the tiled and of the whole output.
``--no-whole`` skips the untiled run (for sizes where it does not fit) and reports seconds and seam ratios only.
``--content NAME`` picks another bundled photo; ``--save DIR`` writes the outputs (``whole.png``, ``<mode>.png``)
for looking at the tile borders.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from eval.inference import loading
from eval.inference.batching import Stylizer
from eval.inference.tile_statistics import STATISTICS
from eval.inference.tiling import TileConfig, TiledStylizer, tile_starts
from jax_ast import imageio
from jax_ast.archs import ARCHS
from jax_ast.data import bundled_dir


def border_lines(length: int, tile: int, overlap: int) -> list[int]:
    """Positions i where a tile starts or ends (the jump between pixel i-1 and i) along one axis."""
    starts = tile_starts(length, min(tile, length), overlap)
    lines = {s for s in starts[1:]} | {s + tile for s in starts[:-1]}
    return sorted(line for line in lines if 0 < line < length)


def seam_ratio(image: np.ndarray, tile: int, overlap: int) -> float:
    """Mean |jump| between neighbouring pixels across tile borders / the same mean everywhere else.

    `image` float [H, W, 3]. ~1 when the borders are invisible in the statistics of neighbour differences;
    above 1 where the image steps at the borders.
    """
    height, width = image.shape[:2]
    jumps_h = np.abs(np.diff(image, axis=0)).mean(axis=(1, 2))  # [H-1]: jump between rows i and i+1
    jumps_w = np.abs(np.diff(image, axis=1)).mean(axis=(0, 2))
    rows = np.zeros(height - 1, bool)
    rows[[line - 1 for line in border_lines(height, tile, overlap)]] = True
    cols = np.zeros(width - 1, bool)
    cols[[line - 1 for line in border_lines(width, tile, overlap)]] = True
    on = np.concatenate([jumps_h[rows], jumps_w[cols]])
    off = np.concatenate([jumps_h[~rows], jumps_w[~cols]])
    return float(on.mean() / off.mean()) if on.size else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tiling_error", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=ARCHS, default="adain")
    parser.add_argument("--weights", "--checkpoint", dest="weights", default="imagenet")
    parser.add_argument("--size", type=int, default=512, help="content side, or height with --width")
    parser.add_argument("--width", type=int, default=0, help="content width (default: --size)")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--statistics", nargs="+", choices=STATISTICS, default=["per-tile", "exact", "downscaled"])
    parser.add_argument("--no-whole", action="store_true", help="skip the untiled run")
    parser.add_argument("--content", default="golden_gate_bridge_fog.jpg", help="bundled content photo")
    parser.add_argument("--save", help="folder for the outputs (whole.png, <mode>.png)")
    args = parser.parse_args(argv)
    if args.weights == "imagenet":
        from benchmarks.inputs import variables_for
        model, variables = variables_for(args.arch)
    elif args.weights == "mobile":
        from jax_ast.pretrained.magenta_mobile import load_magenta_mobile
        model, variables = load_magenta_mobile()
    else:
        model, variables = loading.load_model(args.arch, args.weights)
    size = (args.size, args.width or args.size)
    content = imageio.load_image(bundled_dir("content") / args.content, size=size, mode="exact")
    style = imageio.load_image(bundled_dir("style") / "van_gogh_starry_night.jpg", size=min(args.size, 256))
    stylizer = Stylizer(model, variables, batch_size=1)
    code = stylizer.encode_styles(style[None])
    label = f"{args.arch} ({args.weights}) {size[0]}x{size[1]} px, tiles {args.tile} overlap {args.overlap}"
    whole = None
    if not args.no_whole:
        whole = np.clip(stylizer.stylize_with_codes(content[None], code), 0, 1)
        _save(args.save, "whole", whole[0])
        seams = seam_ratio(whole[0], args.tile, args.overlap)
        print(f"{label}: whole output std {whole.std():.4f}, seam ratio {seams:.3f}", flush=True)
    for mode in args.statistics:
        start = time.perf_counter()
        tiled_stylizer = TiledStylizer(stylizer, TileConfig(args.tile, args.overlap, mode))
        tiled = tiled_stylizer.stylize_with_codes(content[None], code)
        seconds = time.perf_counter() - start
        tiled = np.clip(tiled, 0, 1)
        _save(args.save, mode, tiled[0])
        line = f"{label}, {mode}: {seconds:.1f} s, seam ratio {seam_ratio(tiled[0], args.tile, args.overlap):.3f}"
        if whole is not None:
            difference = np.abs(tiled - whole)
            line += f", mean |tiled - whole| {difference.mean():.4f}, max {difference.max():.4f}"
        print(line, flush=True)
    return 0


def _save(folder: str | None, name: str, image: np.ndarray) -> None:
    if folder:
        imageio.save_image(Path(folder) / f"{name}.png", image)


if __name__ == "__main__":
    sys.exit(main())
