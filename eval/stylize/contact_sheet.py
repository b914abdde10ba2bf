"""A contact sheet of `eval.stylize` outputs: styles along the top, contents down the left, outputs between.

    python -m eval.stylize.contact_sheet --results out/magenta-mobile --content jax_ast/samples/content \\
        --style jax_ast/samples/style --contents chelsea_cat ... --styles hokusai_great_wave ... \\
        --out docs/images/mobile_magenta_grid.jpg

Reads ``<results>/<content-stem>__<style-stem>.{png,jpg}`` (the names `eval.stylize` writes); every thumbnail
is centre-cropped square and resized to ``--thumb`` px. README's picture of the bare run is made this way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from eval.common import guards
from jax_ast import imageio

GAP = 4  # px of white between thumbnails; twice that after the header row and column


def thumbnail(path: Path, side: int) -> np.ndarray:
    """uint8[side, side, 3]: the image's centre square, resized with PIL's antialiasing filter."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        short = min(image.size)
        left, top = (image.width - short) // 2, (image.height - short) // 2
        square = image.crop((left, top, left + short, top + short))
        return np.asarray(square.resize((side, side), Image.Resampling.LANCZOS))


def sheet(contents: Sequence[Path], styles: Sequence[Path], outputs: Sequence[Sequence[Path]], *,
          thumb: int = 160) -> np.ndarray:
    """uint8[(1 + C) * thumb + gaps, (1 + S) * thumb + gaps, 3]: a blank corner, the styles along the top,
    the contents down the left and ``outputs[c][s]`` in row c + 1, column s + 1."""
    rows, columns = len(contents) + 1, len(styles) + 1
    tops, lefts = _offsets(rows, thumb), _offsets(columns, thumb)
    grid = np.full((tops[-1] + thumb, lefts[-1] + thumb, 3), 255, np.uint8)
    cells = {(0, s + 1): path for s, path in enumerate(styles)}
    cells.update({(c + 1, 0): path for c, path in enumerate(contents)})
    cells.update({(c + 1, s + 1): path for c, row in enumerate(outputs) for s, path in enumerate(row)})
    for (row, column), path in cells.items():
        grid[tops[row]:tops[row] + thumb, lefts[column]:lefts[column] + thumb] = thumbnail(path, thumb)
    return grid


def _offsets(count: int, thumb: int) -> list[int]:
    """Start pixel of each of `count` thumbnails along one axis: the header, a double gap, then single gaps."""
    return [0] + [thumb + 2 * GAP + i * (thumb + GAP) for i in range(count - 1)]


def _find(folder: Path, stem: str, what: str) -> Path:
    matches = sorted(p for p in folder.glob(f"{stem}.*") if p.suffix.lower() in imageio.IMAGE_EXTENSIONS)
    if not matches:
        raise FileNotFoundError(f"no {what} image {stem}.* in {folder}")
    return matches[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = guards.Parser(prog="python -m eval.stylize.contact_sheet", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, required=True, help="the --out folder of an eval.stylize run")
    parser.add_argument("--content", type=Path, required=True, help="the folder of its content images")
    parser.add_argument("--style", type=Path, required=True, help="the folder of its style images")
    parser.add_argument("--contents", nargs="+", required=True, help="content file stems, one row each")
    parser.add_argument("--styles", nargs="+", required=True, help="style file stems, one column each")
    parser.add_argument("--thumb", type=int, default=160, help="thumbnail side in px (default 160)")
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality (default 85)")
    parser.add_argument("--out", type=Path, required=True, help="the sheet's file (.jpg or .png)")
    args = parser.parse_args(None if argv is None else list(argv))
    if args.thumb < 8:
        parser.error(f"--thumb must be >= 8, got {args.thumb}")
    try:
        contents = [_find(args.content, stem, "content") for stem in args.contents]
        styles = [_find(args.style, stem, "style") for stem in args.styles]
        outputs = [[_find(args.results, f"{c}__{s}", "stylised") for s in args.styles] for c in args.contents]
    except FileNotFoundError as error:
        parser.error(guards.printable(str(error)))
    image = Image.fromarray(sheet(contents, styles, outputs, thumb=args.thumb))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    jpeg = args.out.suffix.lower() in (".jpg", ".jpeg")
    image.save(args.out, **({"quality": args.quality, "optimize": True} if jpeg else {}))
    print(f"{args.out}: {image.width} x {image.height} px, {args.out.stat().st_size / 1024:.0f} KiB", file=sys.stderr)
    return guards.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
