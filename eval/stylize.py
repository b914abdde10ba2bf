"""Stylise every content x style pair with one network.

``python -m eval.stylize --arch adain --checkpoint DIR --content C --style S --out O``

A video file as ``--content`` (or a folder of frames with ``--video-frames``) gives one stylised video per
style (`eval.stylize_video`, docs/video.md); ``--tile PX`` stylises large contents in feathered tiles
(`eval.tiling`, docs/high_resolution.md).

Outputs are ``<out>/<content-stem>__<style-stem>.png``. Existing outputs are never replaced silently: the
run stops before loading the model unless ``--overwrite`` is given. A bad image is converted or skipped with a
warning naming the file and the reason; one bad file never ends the run. An output holding NaN or inf is not
written (a black image would hide the fault) and counted as skipped. A summary (written, skipped with
reasons, images/s) is printed at the end.

Exit status (`eval.guards`): 0 when at least one image was written; 1 when none was; 2 for a usage or input
error (bad flag, missing input, ``--out`` not a folder or holding outputs, a checkpoint that cannot be loaded,
does not match the model or holds non-finite weights), before any model runs; 3 when the disk is full (or
the file-size limit is hit): the run stops, and the images written before are whole.

``--checkpoint`` is one of: a directory holding the original release files under their canonical names
(listed below), a native params file written by ``jax_ast.pretrained.save_params``, or the literal
``random`` (seeded random weights; the output is meaningless, for smoke tests only). ``--list-archs`` prints
every network's files and where they come from.

Several styles in one image (`eval.style_mixing`, docs/stylize.md): ``--style a.jpg b.jpg --style-weights 0.7
0.3`` mixes them (weights normalised to sum 1) into ``<content>__a@0.7+b@0.3.png``; ``--mask fg.png`` with two
styles puts the first on the mask's white foreground and the second on its black background. Without these
flags every ``--style`` file or folder is applied on its own.

With none of --arch, --checkpoint, --content, --style, --out, the run uses `eval.presets.README_MODEL`: the
model README's main command trains, on the bundled samples; if it does not exist yet, the run prints the
command that trains it and exits 2.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import jax
import numpy as np

from eval import guards, presets, style_mixing, stylize_video
from eval.batching import Stylizer, group_by_shape
from eval.tiling import TileConfig, TiledStylizer
from jax_ast import archs, color, compilation_cache, imageio
from jax_ast import progress as progress_lib
from jax_ast.archs import ARCHS
from jax_ast.errors import CheckpointError
from jax_ast.archs import build
from jax_ast.pretrained import native
from jax_ast.pretrained.convert import check_finite
from jax_ast.xla_flags import FAST_COMPILE

# Shorter-side resize per network's own inference default (docs/architectures.md, each network's inference); SANet's
# original runs at native size, which can exhaust memory (quadratic attention), so 512 is used like AdaIN.
DEFAULT_SIZES = {arch: archs.get(arch).stylize_size for arch in ARCHS}
CONTENT_CHUNK = 16  # contents held in memory at once (their pairs with every style are run together)
# SANet's default attention chunk: the relu4_1 positions of a 512x512 content (64*64), so the default size runs
# unchunked and larger ones hold at most [4096, style positions] attention weights at a time.
DEFAULT_ATTENTION_CHUNK = 4096


@dataclasses.dataclass
class Summary:
    """What a run did: files written, (file, reason) skips and the stylisation wall time."""

    written: list[Path] = dataclasses.field(default_factory=list)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def report(self) -> str:
        rate = len(self.written) / self.seconds if self.seconds > 0 else 0.0
        speed = f"{rate:.2f} img/s" if rate >= 0.1 or rate == 0 else f"{1 / rate:.1f} s/img"
        lines = [f"written: {len(self.written)} images in {self.seconds:.1f} s ({speed}, including compilation)",
                 f"skipped: {len(self.skipped)}"]
        lines += [f"  {guards.printable(name)}: {guards.printable(reason)}" for name, reason in self.skipped]
        return "\n".join(lines)


class Progress(progress_lib.Progress):
    """Progress in images (`jax_ast.progress`: a bar or a line per ~10 %); `write` keeps messages readable."""

    def __init__(self, total: int, enabled: bool = True):
        super().__init__(total, unit="img", enabled=enabled)

    def write(self, message: str) -> None:
        super().write(guards.printable(message))


@dataclasses.dataclass(frozen=True)
class Options:
    """Per-run settings of `stylize_all`."""

    out_dir: Path
    alpha: float = 1.0
    preserve_color: str = "none"
    size: int | None = 512
    style_size: int | None = 512
    extension: str = ".png"
    progress: bool = True


class DiskFullError(OSError):
    """An output could not be written because the disk (or the file-size limit) is full; the run stops."""


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """File stems for output names; stems shared by several files get their parent folders and suffix added."""
    stems = [p.stem for p in paths]
    counts = {stem: stems.count(stem) for stem in stems}
    names = []
    for path, stem in zip(paths, stems):
        if counts[stem] > 1:
            stem = "_".join([*path.parent.parts[-2:], path.stem, path.suffix.lstrip(".")])
        names.append(stem)
    return names


def output_names(content_paths: Sequence[Path], style_paths: Sequence[Path], extension: str) -> list[str]:
    """The output file name of every content x style pair, as `stylize_all` writes them."""
    return [f"{c}__{s}{extension}" for c in unique_stems(content_paths) for s in unique_stems(style_paths)]


def _load_all(paths: Sequence[Path], size: int | None, summary: Summary, progress: Progress,
              role: str) -> dict[int, np.ndarray]:
    """Loads images by index; bad files are recorded in the summary and reported, never raised."""
    images = {}
    for index, path in enumerate(paths):
        try:
            images[index] = imageio.load_image(path, size=size)
        except imageio.ImageError as error:
            summary.skipped.append((str(path), f"{role} skipped: {error.reason}"))
            progress.write(f"warning: skipping {role} {path}: {error.reason}")
    return images


def _encode(stylizer: Any, styles: dict[Any, np.ndarray], names: dict[Any, str], summary: Summary,
            progress: Progress) -> dict[Any, Any]:
    """Encodes styles, batching equal sizes; a group that fails is reported and left out."""
    keys = list(styles)
    codes = {}
    for indices in group_by_shape([styles[k] for k in keys]).values():
        group = [keys[i] for i in indices]
        try:
            batch = stylizer.encode_styles(np.stack([styles[k] for k in group]))
        except Exception as error:  # e.g. a style too small for the network; reported, the run continues
            for key in group:
                summary.skipped.append((names[key], f"style encoding failed: {type(error).__name__}: {error}"))
            progress.write(f"warning: encoding failed for {', '.join(names[k] for k in group)}: {error}")
            continue
        for row, key in enumerate(group):
            codes[key] = jax.tree.map(lambda leaf, row=row: leaf[row], batch)
    return codes


def stylize_all(stylizer: Any, content_paths: Sequence[Path], style_paths: Sequence[Path],
                options: Options) -> Summary:
    """Runs every content x style pair through `stylizer` (an `eval.batching.Stylizer`), writing images."""
    summary = Summary()
    progress = Progress(len(content_paths) * len(style_paths), enabled=options.progress)
    start = time.perf_counter()
    content_names, style_names = unique_stems(content_paths), unique_stems(style_paths)
    styles = _load_all(style_paths, options.style_size, summary, progress, "style")
    progress.update((len(style_paths) - len(styles)) * len(content_paths))
    shared_codes = {}
    if options.preserve_color != "coral":  # coral recolours each style per content: encode per pair instead
        shared_codes = _encode(stylizer, styles, {i: str(style_paths[i]) for i in styles}, summary, progress)
        progress.update((len(styles) - len(shared_codes)) * len(content_paths))
    for chunk_start in range(0, len(content_paths), CONTENT_CHUNK):
        chunk = range(chunk_start, min(chunk_start + CONTENT_CHUNK, len(content_paths)))
        contents = _load_all([content_paths[i] for i in chunk], options.size, summary, progress, "content")
        contents = {chunk[i]: image for i, image in contents.items()}
        progress.update((len(chunk) - len(contents)) * len(styles))
        if options.preserve_color == "coral":
            recoloured = {(c, s): color.coral(styles[s], contents[c]) for c in contents for s in styles}
            names = {(c, s): f"{style_paths[s]} (coral to {content_paths[c]})" for c, s in recoloured}
            codes = _encode(stylizer, recoloured, names, summary, progress)
            progress.update(len(recoloured) - len(codes))
        else:
            codes = {(c, s): shared_codes[s] for c in contents for s in shared_codes}
        _stylize_chunk(stylizer, contents, codes, (content_names, style_names), options, summary, progress)
    summary.seconds = time.perf_counter() - start
    progress.close()
    return summary


def stylize_mixed_all(mixer: style_mixing.Mixer, content_paths: Sequence[Path], options: Options) -> Summary:
    """Writes one image per content with all the styles of `mixer.spec` (weights or a mask), as `stylize_all`."""
    summary = Summary()
    progress = Progress(len(content_paths), enabled=options.progress)
    start = time.perf_counter()
    style_paths = mixer.spec.style_paths
    styles = _load_all(style_paths, options.style_size, summary, progress, "style")
    if len(styles) < len(style_paths):  # a mix without one of its styles is not the requested image
        summary.skipped += [(str(path), "not stylised: a style of the mix could not be read") for path in content_paths]
        content_paths = []
    styles = [styles[i] for i in sorted(styles)]
    # coral recolours the styles to each content: `mixer` encodes them per content then
    codes = mixer.encode(styles) if content_paths and options.preserve_color != "coral" else None
    style_names = unique_stems(style_paths)
    for path, name in zip(content_paths, unique_stems(content_paths)):
        content = _load_all([path], options.size, summary, progress, "content").get(0)
        label = style_mixing.output_label(name, mixer.spec, style_names)
        try:
            stylized = None if content is None else mixer(content, styles, codes)
        except Exception as error:  # e.g. a content too small for the network; reported, the run continues
            summary.skipped.append((label, f"stylisation failed: {type(error).__name__}: {error}"))
            progress.write(f"warning: stylisation failed for {label}: {error}")
        else:
            if stylized is not None:
                _save(stylized, content, label, options, summary, progress)
        progress.update(1)
    summary.seconds = time.perf_counter() - start
    progress.close()
    return summary


def _stylize_chunk(stylizer: Any, contents: dict[int, np.ndarray], codes: dict[tuple[int, int], Any],
                   names: tuple[list[str], list[str]], options: Options, summary: Summary,
                   progress: Progress) -> None:
    """Stylises the (content index, style index) keys of `codes`, post-processes and saves each result."""
    pair_keys = list(codes)
    content_keys = sorted(contents)
    content_list = [contents[c] for c in content_keys]
    position_of = {c: i for i, c in enumerate(content_keys)}
    pairs = [(position_of[c], i) for i, (c, _) in enumerate(pair_keys)]
    code_list = [codes[key] for key in pair_keys]
    for positions, result in stylizer.stylize_pairs(content_list, code_list, pairs, alpha=options.alpha):
        for row, position in enumerate(positions):
            content_index, style_index = pair_keys[position]
            label = f"{names[0][content_index]}__{names[1][style_index]}"
            if isinstance(result, Exception):
                summary.skipped.append((label, f"stylisation failed: {type(result).__name__}: {result}"))
                progress.write(f"warning: stylisation failed for {label}: {result}")
            else:
                _save(result[row], contents[content_index], label, options, summary, progress)
            progress.update(1)


def _save(stylized: np.ndarray, content: np.ndarray, label: str, options: Options, summary: Summary,
          progress: Progress) -> None:
    if options.preserve_color == "luminance":
        stylized = color.preserve_luminance(stylized, content)
    if not np.all(np.isfinite(stylized)):
        summary.skipped.append((label, "non-finite output (NaN or inf); not written"))
        progress.write(f"warning: {label}: the network output NaN or inf; not written")
        return
    try:
        summary.written.append(imageio.save_image(options.out_dir / f"{label}{options.extension}", stylized))
    except OSError as error:
        if error.errno in guards.DISK_FULL_ERRNOS:  # every further image would fail the same way
            raise DiskFullError(f"cannot write {label}{options.extension} in {options.out_dir}: "
                                f"{error.strerror}; stopped after {len(summary.written)} images (each written "
                                "whole)") from error
        summary.skipped.append((label, f"could not write: {error}"))
        progress.write(f"warning: could not write {label}: {error}")


# ---------------------------------------------------------------------------------------------- checkpoints

PROBE_SIZE = 64  # init probe: a multiple of 16 (SANet) and large enough for Magenta's Inception


def load_model(arch: str, checkpoint: str, *, variant: str | None = None, seed: int = 0) -> tuple[Any, Any]:
    """(model, variables) for `arch` from release files, a native params file, or 'random'.

    Loaded weights are checked once here, so that a bad file gives one `CheckpointError` instead of black
    images or a flax error per batch: every value must be finite, and a native file must hold exactly the
    model's parameter tree.
    """
    config = {} if variant is None else {"variant": variant}
    try:
        if checkpoint == "random":
            return _random_model(arch, config, seed)
        path = Path(checkpoint)
        if path.is_file() and native.is_native(path):
            model, variables = _load_native(arch, path, config)
        else:
            model, variables = _load_release(arch, path, config)
        check_finite(variables, checkpoint)
        return model, variables
    except (ValueError, TypeError, OSError, KeyError, ImportError) as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"cannot load --arch {arch} --checkpoint {checkpoint}: {type(error).__name__}: "
                              f"{error}") from error


def random_model(arch: str, *, seed: int = 0, **config: Any) -> tuple[Any, Any]:
    """(model, seeded random variables) for `arch`, without the warning banner (tests)."""
    return _random_init(arch, tuple(sorted(config.items())), seed)


def _random_model(arch: str, config: dict, seed: int) -> tuple[Any, Any]:
    model, variables = random_model(arch, seed=seed, **config)
    banner = "!" * 78
    print(f"{banner}\nWARNING: --checkpoint random: {arch} has RANDOM weights (seed {seed}).\n"
          f"The output images are MEANINGLESS; use this only for smoke tests.\n{banner}", file=sys.stderr)
    return model, variables


@functools.lru_cache(maxsize=4)
def _random_init(arch: str, config: tuple, seed: int) -> tuple[Any, Any]:
    """Seeded random variables, cached per process.

    The init program runs once, so XLA's optimisations cost more than they save: compiling without them
    takes ~3x less time on CPU (same threefry random numbers).
    """
    model = build(arch, **dict(config))
    probe = np.zeros((1, PROBE_SIZE, PROBE_SIZE, 3), np.float32)
    key = jax.random.key(seed)
    init = jax.jit(model.init).lower(key, probe, probe).compile(compiler_options=FAST_COMPILE)
    return model, init(key, probe, probe)


def _load_release(arch: str, path: Path, config: dict) -> tuple[Any, Any]:
    """Original release files through the plug-in's importer: ``load_release(*files, **config)``."""
    plugin = archs.get(arch)
    if plugin.release_patterns is not None and not path.is_dir():
        raise CheckpointError(f"--arch {arch} needs a directory with {plugin.release_files} or a native params "
                              f"file, got {path}")
    try:
        files = plugin.find_release_files(path, config.get("variant"))
    except FileNotFoundError as error:
        raise CheckpointError(str(error)) from None
    return plugin.load_release(*files, **config)


def _load_native(arch: str, path: Path, config: dict) -> tuple[Any, Any]:
    """A file written by `jax_ast.pretrained.save_params` (variables or params); its meta must name `arch`."""
    variables, meta = native.load_params(path)
    if meta.get("arch") != arch:
        raise CheckpointError(f"{path} holds params for arch {meta.get('arch')!r}, not {arch!r}")
    for key in ("variant", "encoder"):  # how the network was trained, e.g. on the ImageNet VGG-16 encoder
        if key in meta and key not in config:
            config = {**config, key: meta[key]}
    variables = variables if "params" in variables else {"params": variables}
    model = build(arch, **config)
    probe = jax.ShapeDtypeStruct((1, PROBE_SIZE, PROBE_SIZE, 3), np.float32)
    mismatch = guards.tree_mismatch(jax.eval_shape(model.init, jax.random.key(0), probe, probe), variables)
    if mismatch:
        variant = f" --variant {config['variant']}" if "variant" in config else ""
        raise CheckpointError(f"{path} does not match --arch {arch}{variant}: {mismatch}")
    return model, variables


def build_parser() -> argparse.ArgumentParser:
    release = "\n".join(f"  {arch:8s} {archs.get(arch).release_files}" for arch in ARCHS)
    parser = argparse.ArgumentParser(prog="python -m eval.stylize", description=__doc__,
                                     epilog=f"release files per --arch:\n{release}",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    bare = presets.README_MODEL
    parser.add_argument("--list-archs", action="store_true",
                        help="print every network, the weight files it takes and where they come from; then exit")
    parser.add_argument("--arch", help=f"network, one of: {', '.join(ARCHS)} (bare run: {bare.arch})")
    parser.add_argument("--checkpoint", help="release-file directory, native params file, or 'random' (smoke tests "
                                             f"only) (bare run: {bare.checkpoint})")
    parser.add_argument("--content", type=Path, help="content image file or directory (bare run: the bundled "
                                                     "content samples)")
    parser.add_argument("--style", type=Path, nargs="+",
                        help="style image files or directories, each applied on its own; with --style-weights or "
                             "--mask, image files mixed into one output (bare run: the bundled style samples)")
    parser.add_argument("--out", type=Path, help=f"output directory (created) (bare run: {bare.out})")
    parser.add_argument("--style-weights", type=float, nargs="+", default=None, metavar="W",
                        help="mix the --style images with these weights, one per style: non-negative, not all "
                             "zero, normalised to sum 1")
    parser.add_argument("--mask", type=Path, default=None,
                        help="image whose white foreground gets the first of two --style images and black "
                             "background the second (grey levels blend)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that already exist in --out (default: stop before running)")
    parser.add_argument("--alpha", type=float, default=1.0,
                        help="content-style trade-off in [0, 1] (default 1: full style)")
    parser.add_argument("--preserve-color", choices=color.PRESERVE_COLOR_METHODS, default="none",
                        help="coral: recolour the style to the content first; luminance: keep the content's chroma "
                             "(default: none)")
    parser.add_argument("--size", type=int, default=None,
                        help=f"content shorter side, 0 = native (default per arch: {DEFAULT_SIZES})")
    parser.add_argument("--style-size", type=int, default=None, help="style shorter side, 0 = native (default: --size)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per step over all devices (default: one per device); the last step of "
                             "each image size is padded to a full batch")
    parser.add_argument("--variant", default=None, help="architecture variant, e.g. r31/r41 for linear")
    parser.add_argument("--seed", type=int, default=0, help="seed of --checkpoint random (default 0)")
    parser.add_argument("--format", choices=("png", "jpg"), default="png", help="output file format (default png)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(compilation_cache.FLAG, action="store_true", help=compilation_cache.FLAG_HELP)
    high_res = parser.add_argument_group("high resolution (docs/high_resolution.md)")
    high_res.add_argument("--tile", type=int, default=0, metavar="PX",
                          help="stylise each content in PX x PX tiles blended over --tile-overlap, the style encoded "
                               "once (default 0: whole image)")
    high_res.add_argument("--tile-overlap", type=int, default=64, metavar="PX",
                          help="minimum overlap of neighbouring tiles, feathered linearly (default 64)")
    high_res.add_argument("--attention-chunk", type=int, default=None, metavar="N",
                          help="SANet: content positions per attention chunk, bounding its memory; same result "
                               f"(default {DEFAULT_ATTENTION_CHUNK}, 0: unchunked)")
    stylize_video.add_arguments(parser)
    return parser


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace,
              video: bool = False) -> tuple[list[Path], list[Path]]:
    """Argument checks that end in `parser.error` (exit 2) with one clear message; returns the image lists
    (no contents for a `video`)."""
    if args.arch not in ARCHS:
        parser.error(f"unknown --arch {args.arch!r}; valid choices: {', '.join(ARCHS)}")
    if args.checkpoint != "random" and not Path(args.checkpoint).exists() and not _is_tf_prefix(args.checkpoint):
        parser.error(f"--checkpoint {args.checkpoint} does not exist; give a directory with "
                     f"{archs.get(args.arch).release_files}, a native params file, or 'random'")
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
    if args.tile and not 0 <= args.tile_overlap < args.tile:
        parser.error(f"--tile-overlap must be in [0, --tile) = [0, {args.tile}), got {args.tile_overlap}")
    with_attention = [arch for arch in ARCHS if "chunk_size" in archs.get(arch).inference_options]
    if args.attention_chunk is not None and args.arch not in with_attention:
        parser.error(f"--attention-chunk is for the networks with attention ({', '.join(with_attention)}), "
                     f"not {args.arch}")
    if args.attention_chunk is not None and args.attention_chunk < 0:
        parser.error(f"--attention-chunk must be 0 (unchunked) or a positive count, got {args.attention_chunk}")


def _with_attention_chunk(model: Any, chunk: int | None) -> Any:
    """SANet with `chunk` content positions per attention chunk (None: the default, 0: unchunked)."""
    if not hasattr(model, "chunk_size"):
        return model
    chunk = DEFAULT_ATTENTION_CHUNK if chunk is None else chunk
    return model.clone(chunk_size=chunk or None)


def _check_outputs(parser: argparse.ArgumentParser, args: argparse.Namespace, content_paths: list[Path],
                   style_paths: list[Path]) -> None:
    """Stops (exit 2) when two pairs share an output name, or outputs exist in --out without --overwrite."""
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
    existing = set(os.listdir(args.out)) & set(names) if args.out.is_dir() and not args.overwrite else set()
    if existing:
        example = ", ".join(sorted(existing)[:3])
        parser.error(guards.printable(f"--out {args.out} already holds {len(existing)} of the {len(names)} output "
                                      f"files ({example}{', ...' if len(existing) > 3 else ''}); pass --overwrite "
                                      "to replace them, or choose another --out"))


def _is_tf_prefix(checkpoint: str) -> bool:
    """A TF checkpoint prefix such as ``.../model.ckpt`` names files that exist only with suffixes."""
    return Path(checkpoint + ".index").exists()


def main(argv: Iterable[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    if args.list_archs:
        print(presets.list_archs())
        return guards.EXIT_OK
    presets.apply(parser, args)  # a bare run: the README's trained model and the bundled samples
    source = stylize_video.open_source(parser, args)  # None unless --content is a video
    content_paths, style_paths = _validate(parser, args, video=source is not None)
    compilation_cache.enable(not args.no_compilation_cache)
    try:
        model, variables = load_model(args.arch, args.checkpoint, variant=args.variant, seed=args.seed)
    except CheckpointError as error:
        parser.error(guards.printable(str(error)))
    size = DEFAULT_SIZES[args.arch] if args.size is None else args.size
    style_size = size if args.style_size is None else args.style_size
    model = _with_attention_chunk(model, args.attention_chunk)
    stylizer = Stylizer(model, variables, batch_size=args.batch_size)
    if args.tile:
        stylizer = TiledStylizer(stylizer, TileConfig(args.tile, args.tile_overlap))
    if source is not None:
        print(f"{args.arch}: {stylize_video.describe(source)} x {len(style_paths)} styles, size {size or 'native'}",
              file=sys.stderr)
        return stylize_video.run(stylizer, source, style_paths, args, size=size or None,
                                 style_size=style_size or None)
    print(f"{args.arch}: {len(content_paths)} contents x {len(style_paths)} styles on {stylizer.n_devices} "
          f"{jax.default_backend()} device(s), step {stylizer.step_size}, size {size or 'native'}, "
          f"style size {style_size or 'native'}", file=sys.stderr)
    options = Options(out_dir=args.out, alpha=args.alpha, preserve_color=args.preserve_color, size=size or None,
                      style_size=style_size or None, extension=f".{args.format}", progress=not args.no_progress)
    try:
        if args.mix is None:
            summary = stylize_all(stylizer, content_paths, style_paths, options)
        else:
            mixer = style_mixing.Mixer(model, variables, args.mix, alpha=args.alpha, preserve_color=args.preserve_color)
            summary = stylize_mixed_all(mixer, content_paths, options)
    except DiskFullError as error:
        print(guards.printable(f"error: {error}"), file=sys.stderr)
        return guards.EXIT_WRITE_FAILED
    print(summary.report())
    return guards.EXIT_OK if summary.written else guards.EXIT_NOTHING_DONE


if __name__ == "__main__":
    sys.exit(main())
