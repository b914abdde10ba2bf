"""How far a tiled stylisation is from the whole-image one: ``python -m benchmarks.tiling_error``.

``--weights`` (older name ``--checkpoint``) as in `eval.stylize` (a params file, release files or ``random``), or
``imagenet``: the real ImageNet VGG-16 encoder with a seeded random rest (`benchmarks.inputs`). The content
(``golden_gate_bridge_fog.jpg``, resized to ``--size`` square) is stylised whole and in tiles
(`eval.inference.tiling`) with one style code (``van_gogh_starry_night.jpg``, shorter side min(size, 256)); prints the mean and max
absolute difference of the clamped outputs (pixel values in [0, 1]) and the whole output's standard deviation.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from eval.inference import loading
from eval.inference.batching import Stylizer
from eval.inference.tiling import TileConfig, TiledStylizer
from jax_ast import imageio
from jax_ast.archs import ARCHS
from jax_ast.data import bundled_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tiling_error", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=ARCHS, default="adain")
    parser.add_argument("--weights", "--checkpoint", dest="weights", default="imagenet")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=64)
    args = parser.parse_args(argv)
    if args.weights == "imagenet":
        from benchmarks.inputs import variables_for
        model, variables = variables_for(args.arch)
    else:
        model, variables = loading.load_model(args.arch, args.weights)
    content = imageio.load_image(bundled_dir("content") / "golden_gate_bridge_fog.jpg", size=(args.size, args.size),
                                 mode="exact")
    style = imageio.load_image(bundled_dir("style") / "van_gogh_starry_night.jpg", size=min(args.size, 256))
    stylizer = Stylizer(model, variables, batch_size=1)
    code = stylizer.encode_styles(style[None])
    whole = np.clip(stylizer.stylize_with_codes(content[None], code), 0, 1)
    tiled = TiledStylizer(stylizer, TileConfig(args.tile, args.overlap)).stylize_with_codes(content[None], code)
    difference = np.abs(np.clip(tiled, 0, 1) - whole)
    print(f"{args.arch} ({args.weights}) {args.size} px, tiles {args.tile} overlap {args.overlap}: mean |tiled - "
          f"whole| {difference.mean():.4f}, max {difference.max():.4f}; whole output std {whole.std():.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
