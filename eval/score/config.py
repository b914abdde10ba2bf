"""`eval.run`'s flags, their validation, and the typed configuration they produce: `EvalConfig`."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from eval.common import guards, layout
from eval.inference import loading
from eval.inference.baselines import BASELINES
from eval.score.metrics import SSIM_WINDOW
from jax_ast import archs, compilation_cache
from jax_ast import losses as L
from jax_ast.configs import LOSS_NETWORKS
from jax_ast.precision import DTYPES

MIN_SIZE = 16


def all_archs() -> tuple[str, ...]:
    """The registered networks (read now: a plug-in registered after this import counts), then the baselines."""
    return (*archs.names(), *BASELINES)


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """One evaluation run (the flags of `python -m eval.run`, validated). Sizes in pixels."""

    arch: str
    weights: str | None
    variant: str | None
    model_seed: int
    content_dir: Path | None
    content_tfds: str | None
    content_split: str
    data_dir: str | None
    style_dir: Path
    pairs: int
    seed: int
    out: Path
    size: int
    alpha: float
    no_clip: bool
    loss_network: str
    loss_vgg_weights: str | None
    style_layers: tuple[str, ...]
    content_layers: tuple[str, ...]
    precision: str
    dtype: str
    normalised_gram: str
    batch_size: int | None
    workers: int
    cache_images: int
    target_cache_mb: int
    max_pairs_this_run: int | None
    top_k: int
    thumb_size: int
    ist_top: int
    ist_min_pairs: int
    no_figures: bool
    benchmark: bool
    no_progress: bool
    no_compilation_cache: bool

    @property
    def baseline(self) -> bool:
        """A checkpoint-free baseline (identity, copy-style) rather than a network."""
        return self.arch in BASELINES


def parse_config(argv: list[str] | None = None) -> EvalConfig:
    """The validated `EvalConfig` of a command line; a usage error exits 2 with one message."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _validate(parser, args)
    return EvalConfig(**{field.name: getattr(args, field.name) for field in dataclasses.fields(EvalConfig)})


def build_parser() -> argparse.ArgumentParser:
    parser = guards.Parser(prog="python -m eval.run", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--arch", required=True, help=f"one of: {', '.join(all_archs())}")
    parser.add_argument("--weights", "--checkpoint", dest="weights",
                        help="release-file directory, params file (`jax_ast.pretrained.save_params`) or 'random' "
                             "(not for the identity/copy-style baselines); --checkpoint is its older name; "
                             "default: the weights installed with jax-ast, where there are some "
                             f"({loading.installed_flags()})")
    parser.add_argument("--variant", help="architecture variant, e.g. r31/r41 for linear")
    parser.add_argument("--model-seed", type=int, default=0, help="seed of --weights random")
    content = parser.add_mutually_exclusive_group(required=True)
    content.add_argument("--content-dir", type=Path, help="folder of content images")
    content.add_argument("--content-tfds", help="prepared tfds dataset of content images, e.g. coco/2017")
    parser.add_argument("--content-split", default="train", help="split of --content-tfds")
    parser.add_argument("--data-dir", help="tfds data_dir of --content-tfds")
    parser.add_argument("--style-dir", type=Path, required=True, help="folder of style images")
    parser.add_argument("--pairs", type=int, required=True, help="number of content x style pairs N")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pairing")
    parser.add_argument("--out", type=Path, required=True, help="output folder (rerun to resume)")
    parser.add_argument("--size", type=int, default=256, help="content, style and output are size x size "
                                                               "(shorter side resized, centre crop)")
    parser.add_argument("--alpha", type=float, default=1.0, help="content-style trade-off in [0, 1]")
    parser.add_argument("--no-clip", action="store_true", help="score the raw (unclipped) model outputs")
    parser.add_argument("--loss-network", choices=LOSS_NETWORKS, default=LOSS_NETWORKS[0],
                        help="VGG-16 loss network: vgg16_slim (Magenta's, avg pooling; the paper's layers) or "
                             "vgg16_caffe (max pooling), both the ImageNet VGG-16 installed with jax-ast, or vgg16 "
                             "(torchvision's, downloaded once)")
    parser.add_argument("--loss-vgg-weights", help="weights file of --loss-network, or 'random' (tests only); "
                                                   "default: the installed ImageNet VGG-16 (torchvision's file "
                                                   "for vgg16)")
    parser.add_argument("--style-layers", default=",".join(L.PAPER_STYLE_LAYERS), help="comma-separated taps")
    parser.add_argument("--content-layers", default=",".join(L.PAPER_CONTENT_LAYERS), help="comma-separated taps")
    parser.add_argument("--precision", choices=("default", "highest"), default="default",
                        help="matmul/conv precision of the model and the loss network: 'default' is XLA's "
                             "(TF32 on recent NVIDIA GPUs), 'highest' full float32 (slower on GPU)")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32",
                        help="compute dtype of the convolutions of the model and the loss network: bfloat16 for "
                             "accelerators (statistics, Grams and scores stay float32)")
    parser.add_argument("--normalised-gram", choices=("hw", "chw"), default="hw",
                        help="Gram normalisation of the second classic loss (columns classic_<norm>/...)")
    parser.add_argument("--batch-size", type=int, help="pairs per step over all devices (default 16 per device)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="image loading threads")
    parser.add_argument("--cache-images", type=int, default=256, help="decoded images kept per role (LRU)")
    parser.add_argument("--target-cache-mb", type=int, default=1024,
                        help="MiB of per-image loss-network targets and style codes kept (LRU), so each image "
                             "goes through the loss network and the style encoder once; 0: recompute them "
                             "for every pair")
    parser.add_argument("--max-pairs-this-run", type=int, help="stop after this many new pairs (resume later)")
    parser.add_argument("--top-k", type=int, default=6, help="lowest/highest pairs shown per loss")
    parser.add_argument("--thumb-size", type=int, default=96, help="thumbnail side of the extreme-pair grids")
    parser.add_argument("--ist-top", type=int, default=10, help="styles listed in each IST ranking")
    parser.add_argument("--ist-min-pairs", type=int, default=2, help="styles with fewer pairs are not ranked")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    parser.add_argument("--benchmark", action="store_true", help="add pairs/s and stage timings to summary.json")
    parser.add_argument("--no-progress", action="store_true", help="no progress lines")
    parser.add_argument(compilation_cache.FLAG, action="store_true", help=compilation_cache.FLAG_HELP)
    return parser


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors end in `parser.error` (exit 2) with one message."""
    guards.check_arch(parser, args.arch, all_archs())
    baseline = args.arch in BASELINES
    if baseline and args.weights:
        parser.error(f"--arch {args.arch} is a baseline without weights; drop --weights")
    if not baseline and not args.weights and loading.installed_release(args.arch, args.variant) is None:
        parser.error(f"--arch {args.arch} needs --weights (release-file directory, params file or 'random'); "
                     f"without it only {loading.installed_flags()} run (on the weights installed with jax-ast)")
    for flag, low in (("pairs", 1), ("size", MIN_SIZE), ("workers", 1), ("cache_images", 0), ("target_cache_mb", 0),
                      ("top_k", 1),
                      ("thumb_size", 8), ("ist_top", 1), ("ist_min_pairs", 1)):
        if getattr(args, flag) < low:
            parser.error(f"--{flag.replace('_', '-')} must be >= {low}, got {getattr(args, flag)}")
    for flag in ("batch_size", "max_pairs_this_run"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if not 0.0 <= args.alpha <= 1.0:
        parser.error(f"--alpha must be in [0, 1], got {args.alpha}")
    from jax_ast.models.vgg import tap_names
    for flag in ("style_layers", "content_layers"):
        layers = [t.strip() for t in getattr(args, flag).split(",") if t.strip()]
        unknown = [t for t in layers if t not in tap_names(args.loss_network)]
        if not layers or unknown:
            parser.error(f"--{flag.replace('_', '-')}: unknown taps {unknown or layers}; valid VGG-16 taps: "
                         f"{', '.join(tap_names('vgg16'))}")
        setattr(args, flag, tuple(dict.fromkeys(layers)))
    if args.size < SSIM_WINDOW:
        parser.error(f"--size must be >= {SSIM_WINDOW} (the SSIM window)")
    for flag in ("content_dir", "style_dir"):
        folder = getattr(args, flag)
        if folder is not None and folder.exists() and not folder.is_dir():
            parser.error(guards.printable(f"--{flag.replace('_', '-')} {folder} is a file, not a folder of images"))
    problem = guards.output_dir_problem(args.out)
    if problem:
        parser.error(f"--out {problem}")
    if (args.out.is_dir() and not any((args.out / name).exists() for name in (layout.RUN_JSON, layout.PAIRS_CSV))
            and any(args.out.iterdir())):
        parser.error(guards.printable(f"--out {args.out} is a folder that holds other files but no eval.run "
                                      "results; use a new or empty folder"))
