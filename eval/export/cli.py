"""`python -m eval.export --arch A [--variant V] [--weights P] --out model.onnx`: a network as ONNX files.

Writes ``--out`` (the whole stylisation: content_image, style_image -> stylized_image) and, unless
``--no-split``, ``<stem>.encode_style.onnx`` and ``<stem>.stylize_with_code.onnx`` beside it. Every check
(unknown arch or variant, weights of another network, an existing output without ``--overwrite``, the
converter missing) ends in one message and exit 2 before anything is written.
docs/export.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eval.common import guards
from eval.export import graphs
from eval.inference.loading import load_model
from jax_ast import archs
from jax_ast.errors import CheckpointError

DEFAULT_SIDE = 512  # --size where the sides cannot stay dynamic, and --style-size without --size


def build_parser() -> argparse.ArgumentParser:
    parser = guards.Parser(prog="python -m eval.export", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", required=True, help=f"network: {', '.join(archs.names())}")
    parser.add_argument("--variant", default=None, help="the network's variant (default: its first)")
    parser.add_argument("--weights", default=None,
                        help="release directory, params file, or 'random' (default: the weights installed with jax-ast)")
    parser.add_argument("--out", required=True, type=Path, help="the .onnx file of the whole stylisation")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="content height and width the graphs take (default: any, where the network allows "
                             f"it (magenta), else {DEFAULT_SIDE} {DEFAULT_SIDE})")
    parser.add_argument("--style-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help=f"style height and width (default: --size, else {DEFAULT_SIDE} {DEFAULT_SIDE})")
    parser.add_argument("--no-split", action="store_true", help="write only the whole-stylisation graph")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return parser


def output_paths(out: Path, split: bool) -> list[Path]:
    """--out, then the split pair beside it: <stem>.encode_style.onnx, <stem>.stylize_with_code.onnx."""
    stem = out.with_suffix("")
    return [out, *([Path(f"{stem}.encode_style.onnx"), Path(f"{stem}.stylize_with_code.onnx")] if split else [])]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    guards.check_arch(parser, args.arch, archs.names())
    variants = archs.get(args.arch).variants
    if args.variant is not None and args.variant not in variants:
        valid = ", ".join(variants) if variants else "none (it has no variants)"
        parser.error(f"unknown --variant {args.variant!r} for --arch {args.arch}; valid: {valid}")
    if min(*(args.size or [DEFAULT_SIDE]), *(args.style_size or [DEFAULT_SIDE])) < graphs.MIN_DYNAMIC_SIDE:
        parser.error(f"--size and --style-size must be at least {graphs.MIN_DYNAMIC_SIDE} pixels per side")
    paths = output_paths(args.out, not args.no_split)
    for path in paths:
        problem = guards.output_file_problem(path, overwrite=args.overwrite)
        if problem:
            parser.error(guards.printable(f"--out {problem}"))
    if not graphs.converter_installed():
        parser.error(f"the ONNX converter {graphs.CONVERTER} is not installed; pip install 'jax-ast[export]'")
    try:
        model, variables = load_model(args.arch, args.weights, variant=args.variant)
    except CheckpointError as error:
        parser.error(guards.printable(str(error)))
    meta = {"arch": args.arch, "variant": args.variant or str(archs.get(args.arch).default_variant),
            "weights": args.weights or "installed"}
    size = tuple(args.size) if args.size else None if graphs.dynamic_sides(model) else (DEFAULT_SIDE,) * 2
    style_size = tuple(args.style_size or args.size or (DEFAULT_SIDE,) * 2)
    exported = graphs.export_graphs(model, variables, size=size, style_size=style_size, meta=meta,
                                    split=not args.no_split)
    for path, graph in zip(paths, exported):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(graph.proto.SerializeToString())
        tmp.replace(path)
        print(f"wrote {path} ({graph.name}: {', '.join(graph.inputs)} -> {', '.join(graph.outputs)})")
    return guards.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
