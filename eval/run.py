"""Evaluate a style-transfer model on N content x style pairs: per-pair losses, summary, IST report, figures.

    python -m eval.run --arch A --checkpoint PATH (--content-dir D | --content-tfds NAME) --style-dir D \\
        --pairs N --out DIR [--size 256] [--loss-vgg-weights FILE|random] [--benchmark]

Pairs are streamed in device-sharded batches (model: `eval.batching.Stylizer`; loss network and image
metrics: `eval.pair_metrics.PairScorer`, one pmap each, last batch padded and masked); only two batches of
images are in memory at a time (plus a bounded image cache and the K extreme thumbnails), and one CSV row
per pair is written as soon as its batch is done, so memory stays flat in N. Rerunning with the same
``--out`` resumes: only missing pairs are computed (a larger ``--pairs`` extends the run).

Outputs in ``--out``: ``run.json`` (settings, seeded pairing), ``pairs.csv`` (one row per pair),
``skipped.csv`` (unusable images, with reasons), ``summary.json``/``summary.md`` (mean/median/std of every
metric, the paper-style table, Pearson r of the classic loss vs its bound per layer, ``--benchmark``
pairs/s), ``ist.json``/``ist.md`` (per-style spread and under-/over-stylised rankings), ``extremes.npz`` and
``figures/*.png``.

``pairs.csv`` columns: ``pair, content_index, style_index, content, style`` (names relative to the folder),
then per content layer and ``total``: ``content/<layer>``; per style layer and ``total``: ``classic/`` (the
paper's un-normalised Gram loss), ``classic_hw/`` (or ``classic_chw/``, Gram / HW or / CHW), ``bound/`` (its
supremum), ``balanced/``, ``mean_std/``; then ``ssim``, ``psnr`` (output vs content), ``color_lab``,
``color_rgb`` (output vs style); definitions in `eval.pair_metrics`. Floats have 9 significant digits.

``--arch identity`` (output = content) and ``copy-style`` (output = style) are
checkpoint-free baselines. Model outputs are clipped to [0, 1] (as saved images are) unless ``--no-clip``.

No NaN is ever written: weights are checked for finite values when loaded, and a pair whose output or any
score is NaN or inf goes to ``skipped.csv`` with the reason (a warning per pair, counted in the summary).
``--out`` must be a new or empty folder, or the folder of an earlier run with the same settings.

Exit status (`eval.guards`): 0 when the run finished with at least one pair evaluated; 1 when no pair could
be evaluated (all skipped); 2 for a usage or input error (bad flag, missing or unusable data, weights or
``--out``, an unreadable ``run.json``, ``--size`` too small for the network), before anything is written;
3 when a result file could not be written (disk full, I/O error): the rows already in ``pairs.csv`` stay
whole, and rerunning the same command resumes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import resource
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, Iterable

import jax
import numpy as np

from eval import guards, records, report
from eval import pairs as pairing_lib
from eval.extremes import ExtremeKeeper
from eval.pair_metrics import SSIM_WINDOW, PairScorer
from jax_ast import losses as L
from jax_ast.configs import LOSS_NETWORKS
from jax_ast.data import DataError, FolderSource, open_source
from jax_ast.models import ARCHS
from jax_ast.progress import Progress

ALL_ARCHS = (*ARCHS, *pairing_lib.BASELINES)
RESUME_KEYS = ("arch", "checkpoint", "variant", "model_seed", "alpha", "clip", "precision", "size", "seed",
               "loss_network",
               "style_layers", "content_layers", "normalised_gram", "content_source", "style_source",
               "n_contents", "n_styles", "pairing")
MIN_SIZE = 16
_CACHE: dict[tuple, Any] = {}  # stylizers and scorers reused across main() calls in one process (tests)


class SetupError(RuntimeError):
    """The model, the loss network or a data source cannot be loaded; the message says why."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval.run", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--arch", required=True, help=f"one of: {', '.join(ALL_ARCHS)}")
    parser.add_argument("--checkpoint", help="release-file directory, native params file or 'random' (not for "
                                             "the identity/copy-style baselines)")
    parser.add_argument("--variant", help="architecture variant, e.g. r31/r41 for linear")
    parser.add_argument("--model-seed", type=int, default=0, help="seed of --checkpoint random")
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
    parser.add_argument("--normalised-gram", choices=("hw", "chw"), default="hw",
                        help="Gram normalisation of the second classic loss (columns classic_<norm>/...)")
    parser.add_argument("--batch-size", type=int, help="pairs per step over all devices (default 16 per device)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="image loading threads")
    parser.add_argument("--cache-images", type=int, default=256, help="decoded images kept per role (LRU)")
    parser.add_argument("--max-pairs-this-run", type=int, help="stop after this many new pairs (resume later)")
    parser.add_argument("--top-k", type=int, default=6, help="lowest/highest pairs shown per loss")
    parser.add_argument("--thumb-size", type=int, default=96, help="thumbnail side of the extreme-pair grids")
    parser.add_argument("--ist-top", type=int, default=10, help="styles listed in each IST ranking")
    parser.add_argument("--ist-min-pairs", type=int, default=2, help="styles with fewer pairs are not ranked")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    parser.add_argument("--benchmark", action="store_true", help="add pairs/s and stage timings to summary.json")
    parser.add_argument("--no-progress", action="store_true", help="no progress lines")
    return parser


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors end in `parser.error` (exit 2) with one message."""
    if args.arch not in ALL_ARCHS:
        parser.error(f"unknown --arch {args.arch!r}; valid choices: {', '.join(ALL_ARCHS)}")
    baseline = args.arch in pairing_lib.BASELINES
    if baseline and args.checkpoint:
        parser.error(f"--arch {args.arch} is a baseline without weights; drop --checkpoint")
    if not baseline and not args.checkpoint:
        parser.error(f"--arch {args.arch} needs --checkpoint (release-file directory, params file or 'random')")
    for flag, low in (("pairs", 1), ("size", MIN_SIZE), ("workers", 1), ("cache_images", 0), ("top_k", 1),
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
    if (args.out.is_dir() and not any((args.out / name).exists() for name in (report.RUN_NAME, report.CSV_NAME))
            and any(args.out.iterdir())):
        parser.error(guards.printable(f"--out {args.out} is a folder that holds other files but no eval.run "
                                      "results; use a new or empty folder"))


def _source_settings(args: argparse.Namespace) -> tuple[Any, Any, dict, dict]:
    """(content source, style source, their descriptions for run.json)."""
    if args.content_dir is not None:
        content = FolderSource(args.content_dir)
        content_desc = {"folder": str(args.content_dir.resolve())}
    else:
        content = open_source("content", tfds_name=args.content_tfds, tfds_split=args.content_split,
                              data_dir=args.data_dir)
        content_desc = {"tfds": args.content_tfds, "split": args.content_split, "data_dir": args.data_dir}
    style = FolderSource(args.style_dir)
    return content, style, content_desc, {"folder": str(args.style_dir.resolve())}


def _checkpoint_key(checkpoint: str | None) -> Any:
    """A cache key that changes when the checkpoint file/folder does."""
    if checkpoint in (None, "random"):
        return checkpoint
    path = Path(checkpoint)
    stat = path.stat() if path.exists() else None
    return (str(path.resolve()), stat and stat.st_mtime_ns, stat and stat.st_size)


def make_stylizer(args: argparse.Namespace, step_size: int) -> Any:
    """The model behind `Stylizer`'s interface (or a baseline), cached per settings within the process."""
    if args.arch in pairing_lib.BASELINES:
        return pairing_lib.BaselineStylizer(args.arch, step_size)
    key = ("stylizer", args.arch, _checkpoint_key(args.checkpoint), args.variant, args.model_seed, step_size,
           args.size, args.alpha)
    if key not in _CACHE:
        from eval.batching import Stylizer
        from eval.stylize import load_model
        model, variables = load_model(args.arch, args.checkpoint, variant=args.variant, seed=args.model_seed)
        _check_size(model, variables, args)
        _CACHE.pop(next((k for k in _CACHE if k[0] == "stylizer"), None), None)
        _CACHE[key] = Stylizer(model, variables, batch_size=step_size)
    return _CACHE[key]


def _check_size(model: Any, variables: Any, args: argparse.Namespace) -> None:
    """Traces the model once on --size inputs (shapes only, nothing runs), so a too-small size stops the run
    with one message before anything is written."""
    probe = jax.ShapeDtypeStruct((1, args.size, args.size, 3), np.float32)
    try:
        jax.eval_shape(lambda v, c, s: model.apply(v, c, s, alpha=args.alpha)[0], variables, probe, probe)
    except (ValueError, TypeError) as error:
        raise SetupError(f"--size {args.size} does not suit --arch {args.arch}: {error}") from None


def make_scorer(args: argparse.Namespace) -> PairScorer:
    """The VGG-16 loss network with every per-pair metric, cached per settings within the process."""
    key = ("scorer", args.loss_network, _checkpoint_key(args.loss_vgg_weights), args.style_layers,
           args.content_layers, args.normalised_gram)
    if key not in _CACHE:
        from jax_ast.pretrained import load_vgg
        from jax_ast.pretrained.convert import check_finite
        layers = tuple(dict.fromkeys((*args.style_layers, *args.content_layers)))
        loss_net, params = load_vgg(args.loss_network, args.loss_vgg_weights, taps=layers)
        check_finite(params, f"--loss-vgg-weights {args.loss_vgg_weights or 'the installed ImageNet VGG-16'}")
        _CACHE.pop(next((k for k in _CACHE if k[0] == "scorer"), None), None)
        _CACHE[key] = PairScorer(loss_net, params, style_layers=args.style_layers,
                                 content_layers=args.content_layers, normalised_gram=args.normalised_gram)
    return _CACHE[key]


def run_settings(args: argparse.Namespace, content_desc: dict, style_desc: dict, n_contents: int,
                 n_styles: int) -> dict:
    """Everything that fixes the per-pair results (checked on resume) plus the requested pair count."""
    checkpoint = args.checkpoint
    if checkpoint not in (None, "random"):
        checkpoint = str(Path(checkpoint).resolve())
    weights = args.loss_vgg_weights
    if weights not in (None, "random"):
        weights = str(Path(weights).resolve())
    return {"arch": args.arch, "checkpoint": checkpoint, "variant": args.variant, "model_seed": args.model_seed,
            "alpha": args.alpha, "clip": not args.no_clip, "precision": args.precision, "size": args.size, "seed": args.seed,
            "loss_network": {"variant": args.loss_network, "weights": weights},
            "style_layers": list(args.style_layers), "content_layers": list(args.content_layers),
            "normalised_gram": args.normalised_gram, "content_source": content_desc, "style_source": style_desc,
            "n_contents": n_contents, "n_styles": n_styles,
            "pairing": {"scheme": pairing_lib.PAIRING_SCHEME, "seed": args.seed}, "pairs": args.pairs}


def check_resume(out_dir: Path, settings: dict) -> None:
    """Raises `records.RecordsError` when `out_dir` holds a run with other settings."""
    path = out_dir / report.RUN_NAME
    if not path.exists():
        return
    try:
        previous = records.read_json(path)
    except (OSError, ValueError) as error:  # truncated, not JSON, not UTF-8
        raise records.RecordsError(f"{path} is unreadable ({type(error).__name__}: {error}), so the run in "
                                   f"{out_dir} cannot be resumed safely; use another --out") from None
    if not isinstance(previous, dict):
        raise records.RecordsError(f"{path} holds a JSON {type(previous).__name__}, not eval.run settings, so the "
                                   f"run in {out_dir} cannot be resumed safely; use another --out")
    differing = [k for k in RESUME_KEYS if previous.get(k) != records.json_roundtrip(settings.get(k))]
    if differing:
        details = "; ".join(f"{k}: {previous.get(k)!r} there, {settings.get(k)!r} now" for k in differing)
        raise records.RecordsError(f"{out_dir} holds a run with other settings ({details}); use another --out")


class _Progress(Progress):
    """Progress in pairs (`jax_ast.progress`): a bar, or a line with the pair rate about every 10 % or 30 s."""

    def __init__(self, total: int, enabled: bool):
        self.start = time.perf_counter()
        super().__init__(total, unit="pair", enabled=enabled, every_seconds=30.0, line=self._line)

    def _line(self, done: int, total: int) -> str:
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        return f"[{done}/{total} pairs] {rate:.1f} pairs/s"


def _rows(chunk: pairing_lib.Chunk, metrics: dict[str, np.ndarray], names: list[str],
          caches: tuple[pairing_lib.ImageCache, pairing_lib.ImageCache]) -> list[list]:
    return [[pair, c, s, caches[0].name(c), caches[1].name(s), *(metrics[n][row] for n in names)]
            for row, (pair, c, s) in enumerate(zip(chunk.pairs, chunk.content_indices, chunk.style_indices))]


def _precision(precision: str) -> Any:
    """A context with the matmul precision of --precision ('default' keeps the process-wide setting)."""
    return contextlib.nullcontext() if precision == "default" else jax.default_matmul_precision(precision)


def stylize_and_score(stylizer: Any, scorer: PairScorer, chunk: pairing_lib.Chunk, *, alpha: float, clip: bool,
                      precision: str, step_size: int, timings: dict[str, float]
                      ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(outputs float32 [n, S, S, 3], {metric: [n]}) of one loaded chunk; adds stage seconds to `timings`.

    Clipping keeps NaN and turns inf into NaN, so a pair whose raw output was not finite is still seen as such.
    """
    contents = chunk.contents.astype(np.float32) / 255.0
    styles = chunk.styles.astype(np.float32) / 255.0
    start = time.perf_counter()
    with _precision(precision):
        outputs = np.asarray(stylizer.stylize(contents, styles, alpha=alpha), np.float32)
    if clip:
        outputs = np.where(np.isfinite(outputs), np.clip(outputs, 0.0, 1.0), np.float32(np.nan))
    middle = time.perf_counter()
    with _precision(precision):
        metrics = scorer.score(contents, styles, outputs, step_size=step_size)
    timings["stylize"] += middle - start
    timings["score"] += time.perf_counter() - middle
    return outputs, metrics


def drop_nonfinite(chunk: pairing_lib.Chunk, outputs: np.ndarray, metrics: dict[str, np.ndarray],
                   names: list[str]) -> tuple[pairing_lib.Chunk, np.ndarray, dict, list[tuple[int, int, int, str]]]:
    """Removes the pairs whose output or any score is NaN or inf; returns them as (pair, c, s, reason) too."""
    bad_output = ~np.isfinite(outputs.reshape(len(outputs), -1)).all(axis=1)
    bad_scores = {name: ~np.isfinite(metrics[name]) for name in names}
    keep = ~(bad_output | np.any([bad_scores[name] for name in names], axis=0))
    if keep.all():
        return chunk, outputs, metrics, []
    dropped = []
    for row in np.flatnonzero(~keep):
        reason = ("non-finite model output (NaN or inf)" if bad_output[row] else
                  f"non-finite scores: {', '.join(name for name in names if bad_scores[name][row])}")
        dropped.append((chunk.pairs[row], chunk.content_indices[row], chunk.style_indices[row], reason))
    rows = np.flatnonzero(keep)
    kept = pairing_lib.Chunk([chunk.pairs[r] for r in rows], [chunk.content_indices[r] for r in rows],
                             [chunk.style_indices[r] for r in rows], chunk.contents[rows], chunk.styles[rows],
                             chunk.skipped)
    return kept, outputs[rows], {name: values[rows] for name, values in metrics.items()}, dropped


def stream_pairs(args: argparse.Namespace, context: dict, logs: tuple[records.CsvLog, records.CsvLog],
                 keeper: ExtremeKeeper) -> dict:
    """Computes every missing pair (at most --max-pairs-this-run), appending rows as batches finish.

    Pairs with an unreadable image, or a non-finite output or score, are appended to the skipped log.
    Returns the timings of this invocation (seconds per stage, pairs, first-batch time, non-finite pairs).
    """
    results, skipped_log = logs
    stylizer, scorer, caches = context["stylizer"], context["scorer"], context["caches"]
    done = results.done | skipped_log.done
    todo = min(args.pairs - sum(1 for pair in done if pair < args.pairs), args.max_pairs_this_run or args.pairs)
    chunks = pairing_lib.batched(pairing_lib.missing_pairs(args.pairs, done), context["step_size"],
                                 limit=args.max_pairs_this_run)
    timings = {"load_wait": 0.0, "stylize": 0.0, "score": 0.0, "write": 0.0, "pairs": 0, "first_batch": None,
               "nonfinite": 0}
    progress = _Progress(max(todo, 0), enabled=not args.no_progress)
    start = last_save = time.perf_counter()
    loader = pairing_lib.prefetch_chunks(chunks, context["pairing"], *caches, workers=args.workers)
    while True:
        wait_start = time.perf_counter()
        chunk = next(loader, None)
        timings["load_wait"] += time.perf_counter() - wait_start
        if chunk is None:
            break
        computed, finished = len(chunk.pairs), len(chunk.pairs) + len(chunk.skipped)
        _log_skipped(skipped_log, chunk.skipped, caches)
        if chunk.pairs:
            outputs, metrics = stylize_and_score(stylizer, scorer, chunk, alpha=args.alpha, clip=not args.no_clip,
                                                 precision=args.precision, step_size=context["step_size"],
                                                 timings=timings)
            chunk, outputs, metrics, nonfinite = drop_nonfinite(chunk, outputs, metrics, scorer.names)
            _log_skipped(skipped_log, nonfinite, caches)
            timings["nonfinite"] += len(nonfinite)
            write_start = time.perf_counter()
            results.append(_rows(chunk, metrics, scorer.names, caches))
            if chunk.pairs:
                keeper.update(chunk.pairs, metrics, chunk.contents, chunk.styles, outputs)
            if time.perf_counter() - last_save > 10:
                keeper.save(args.out / report.EXTREMES_NAME)
                last_save = time.perf_counter()
            timings["write"] += time.perf_counter() - write_start
        timings["pairs"] += computed
        if timings["first_batch"] is None:
            timings["first_batch"] = (time.perf_counter() - start, computed)
        progress.update(finished)
    progress.close()
    timings["total"] = time.perf_counter() - start
    keeper.save(args.out / report.EXTREMES_NAME)
    if timings["nonfinite"]:
        print(f"warning: {timings['nonfinite']} pairs had a NaN or inf output or score and were skipped, not "
              f"written (reasons in {args.out / report.SKIPPED_NAME})", file=sys.stderr)
    return timings


def _log_skipped(log: records.CsvLog, skipped: list[tuple[int, int, int, str]],
                 caches: tuple[pairing_lib.ImageCache, pairing_lib.ImageCache]) -> None:
    """Appends (pair, content, style, reason) tuples to the skipped log, with one warning line each."""
    log.append([(pair, c, s, caches[0].name(c), caches[1].name(s), guards.printable(reason))
                for pair, c, s, reason in skipped])
    for pair, c, s, reason in skipped:
        print(f"warning: pair {pair} skipped: {guards.printable(reason)}", file=sys.stderr)


def benchmark_block(timings: dict, step_size: int, size: int) -> dict:
    """pairs/s of this invocation: steady state (after the first, compiling batch) and overall."""
    first_seconds, first_pairs = timings["first_batch"] or (0.0, 0)
    steady_pairs, steady_seconds = timings["pairs"] - first_pairs, timings["total"] - first_seconds
    return {"pairs": timings["pairs"], "seconds": timings["total"],
            "pairs_per_second": steady_pairs / steady_seconds if steady_pairs and steady_seconds > 0 else None,
            "pairs_per_second_overall": timings["pairs"] / timings["total"] if timings["total"] > 0 else None,
            "first_batch_seconds": first_seconds,
            "stage_seconds": {k: timings[k] for k in ("load_wait", "stylize", "score", "write")},
            "batch_size": step_size, "size": size, "devices": jax.local_device_count(),
            "backend": jax.default_backend(), "device_kind": jax.local_devices()[0].device_kind,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def recompute_images(context: dict, args: argparse.Namespace, pairs: list[int]) -> dict[int, tuple]:
    """(content, style, output) images of a few pairs, for extreme-pair thumbnails a resumed run lacks."""
    images = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.workers) as pool:
        for start in range(0, len(pairs), context["step_size"]):
            chunk = pairing_lib.load_chunk(pairs[start:start + context["step_size"]], context["pairing"],
                                           *context["caches"], pool)
            if chunk.pairs:
                contents, styles = (x.astype(np.float32) / 255.0 for x in (chunk.contents, chunk.styles))
                with _precision(args.precision):
                    outputs = np.asarray(context["stylizer"].stylize(contents, styles, alpha=args.alpha))
                for row, pair in enumerate(chunk.pairs):
                    images[pair] = (chunk.contents[row], chunk.styles[row], np.clip(outputs[row], 0.0, 1.0))
    return images


def evaluate(args: argparse.Namespace) -> dict:
    """Runs (or resumes) the evaluation described by validated `args`; returns the summary."""
    content_source, style_source, content_desc, style_desc = _source_settings(args)
    settings = run_settings(args, content_desc, style_desc, len(content_source), len(style_source))
    check_resume(args.out, settings)
    n_devices = jax.local_device_count()
    step_size = -(-(args.batch_size or 16 * n_devices) // n_devices) * n_devices
    try:
        scorer, stylizer = make_scorer(args), make_stylizer(args, step_size)
    except (ValueError, OSError, KeyError) as error:  # CheckpointError, WeightsError, DownloadError, ...
        raise SetupError(f"{type(error).__name__}: {error}") from error
    args.out.mkdir(parents=True, exist_ok=True)
    context = {"step_size": step_size, "scorer": scorer, "stylizer": stylizer,
               "pairing": pairing_lib.Pairing(len(content_source), len(style_source), args.seed),
               "caches": (pairing_lib.ImageCache(content_source, args.size, args.cache_images),
                          pairing_lib.ImageCache(style_source, args.size, args.cache_images))}
    if args.pairs > context["pairing"].size:
        print(f"warning: {args.pairs} pairs requested but only {context['pairing'].size} distinct content x style "
              "pairs exist; pairs repeat", file=sys.stderr)
    keeper = ExtremeKeeper(report.GRID_LOSSES, args.top_k, args.thumb_size)
    with records.CsvLog(args.out / report.CSV_NAME, [*report.KEY_COLUMNS, *scorer.names]) as results, \
            records.CsvLog(args.out / report.SKIPPED_NAME, [*report.KEY_COLUMNS, "reason"]) as skipped:
        records.write_json(args.out / report.RUN_NAME, settings)
        try:
            keeper.load(args.out / report.EXTREMES_NAME, keep_pairs=results.done)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:  # a cache: rebuilt
            keeper = ExtremeKeeper(report.GRID_LOSSES, args.top_k, args.thumb_size)
            print(f"warning: {args.out / report.EXTREMES_NAME} is unreadable ({type(error).__name__}); the extreme "
                  "pairs are recomputed from pairs.csv", file=sys.stderr)
        if results.truncated:
            print(f"resuming: dropped an interrupted last line ({results.truncated} bytes)", file=sys.stderr)
        print(f"{args.arch}: {len(results.done)} of {args.pairs} pairs already done; {n_devices} "
              f"{jax.default_backend()} device(s), batch {step_size}, {args.size}x{args.size}", file=sys.stderr)
        timings = stream_pairs(args, context, (results, skipped), keeper)
    pairing, (contents, styles) = context["pairing"], context["caches"]
    return report.write_report(
        args.out, settings, scorer.names, args.style_layers, keeper, style_name=styles.name,
        pair_caption=lambda p: " / ".join(cache.name(i) for cache, i in zip((contents, styles), pairing(p))),
        recompute=lambda pairs: recompute_images(context, args, pairs), make_figures=not args.no_figures,
        ist_top=args.ist_top, ist_min_pairs=args.ist_min_pairs,
        benchmark=benchmark_block(timings, step_size, args.size) if args.benchmark else None)


def main(argv: Iterable[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    _validate(parser, args)
    try:
        summary = evaluate(args)
    except (SetupError, records.RecordsError, DataError, FileNotFoundError) as error:
        print(guards.printable(f"error: {error}"), file=sys.stderr)
        return guards.EXIT_USAGE
    except OSError as error:  # records.WriteError, or a summary/figure that could not be written
        print(guards.printable(f"error: {error}"), file=sys.stderr)
        return guards.EXIT_WRITE_FAILED
    print(guards.printable(report.summary_markdown(summary)))
    return guards.EXIT_OK if summary["pairs"]["done"] else guards.EXIT_NOTHING_DONE


if __name__ == "__main__":
    sys.exit(main())
