"""Evaluate a style-transfer model on N content x style pairs: per-pair losses, summary, IST report, figures.

    python -m eval.run --arch A --weights PATH (--content-dir D | --content-tfds NAME) --style-dir D \\
        --pairs N --out DIR [--size 256] [--loss-vgg-weights FILE|random] [--benchmark]

Pairs are streamed in device-sharded batches: the model (`eval.inference.batching.Stylizer`) and every per-pair metric
(`eval.score.metrics.PairScorer`) run in one pmapped program (`eval.score.metrics.StylizeAndScore`), so outputs
are scored on the devices and come to the host once; the last batch is padded and masked. Each image's
loss-network targets and the network's code of each content (its encoder features) and each style are
computed once and kept in an LRU of ``--target-cache-mb`` MiB (`eval.score.target_cache`), so per pair only the
network's transform and decoder, and the loss network on the output, run; the scores are the same (0
recomputes everything for every pair). Only two batches of images are in memory at a time (plus the bounded image
and target caches and the K extreme thumbnails), and one CSV row per pair is written as soon as its batch
is done, so memory stays flat in N. Rerunning with the same ``--out`` resumes: only missing pairs are
computed (a larger ``--pairs`` extends the run).

Outputs in ``--out``: ``run.json`` (settings, seeded pairing), ``pairs.csv`` (one row per pair),
``skipped.csv`` (unusable images, with reasons), ``summary.json``/``summary.md`` (mean/median/std of every
metric, the paper-style table, Pearson r of the classic loss vs its bound per layer, ``--benchmark``
pairs/s), ``ist.json``/``ist.md`` (per-style spread and under-/over-stylised rankings), ``extremes.npz`` and
``figures/*.png``.

``pairs.csv`` columns: ``pair, content_index, style_index, content, style`` (names relative to the folder),
then per content layer and ``total``: ``content/<layer>``; per style layer and ``total``: ``classic/`` (the
paper's un-normalised Gram loss), ``classic_hw/`` (or ``classic_chw/``, Gram / HW or / CHW), ``bound/`` (its
supremum), ``balanced/``, ``mean_std/``; then ``ssim``, ``psnr`` (output vs content), ``color_lab``,
``color_rgb`` (output vs style); definitions in `eval.score.metrics`. Floats have 9 significant digits.

``--arch identity`` (output = content) and ``copy-style`` (output = style) are
checkpoint-free baselines. Model outputs are clipped to [0, 1] (as saved images are) unless ``--no-clip``.

No NaN is ever written: weights are checked for finite values when loaded, and a pair whose output or any
score is NaN or inf goes to ``skipped.csv`` with the reason (a warning per pair, counted in the summary).
``--out`` must be a new or empty folder, or the folder of an earlier run with the same settings.

Exit status (`eval.common.guards`): 0 when the run finished with at least one pair evaluated; 1 when no pair could
be evaluated (all skipped); 2 for a usage or input error (bad flag, missing or unusable data, weights or
``--out``, an unreadable ``run.json``, ``--size`` too small for the network), before anything is written;
3 when a result file could not be written (disk full, I/O error): the rows already in ``pairs.csv`` stay
whole, and rerunning the same command resumes.
"""

from __future__ import annotations

import dataclasses
import concurrent.futures
import contextlib
import resource
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable

import jax
import numpy as np

from eval.common import guards, layout, records
from eval.inference import loading
from eval.inference.baselines import BASELINES, BaselineStylizer
from eval.inference.batching import Stylizer
from eval.score import report
from eval.score import pairs as pairing_lib
from eval.score.config import EvalConfig, parse_config
from eval.score.extremes import ExtremeKeeper
from eval.score.metrics import PairScorer, StylizeAndScore
from eval.score.target_cache import ByteLRU, TargetStore
from jax_ast import compilation_cache
from jax_ast.data import DataError, FolderSource, open_source
from jax_ast.precision import parse_dtype
from jax_ast.progress import Progress

RESUME_KEYS = ("arch", "weights", "variant", "model_seed", "alpha", "clip", "precision", "dtype", "size", "seed",
               "loss_network",
               "style_layers", "content_layers", "normalised_gram", "content_source", "style_source",
               "n_contents", "n_styles", "pairing")
RESUME_DEFAULTS = {"dtype": "float32"}  # settings added later: what a run.json without them ran with
_CACHE: dict[tuple, Any] = {}  # stylizers and scorers reused across main() calls in one process (tests)


@dataclasses.dataclass
class Session:
    """What one evaluation run works with: the networks, the seeded pairing and the image caches."""

    step_size: int  # pairs per step over all local devices
    scorer: PairScorer
    stylizer: Any  # an `eval.inference.batching.Stylizer`, or a `BaselineStylizer`
    pairing: pairing_lib.Pairing
    caches: tuple[pairing_lib.ImageCache, pairing_lib.ImageCache]  # content, style
    targets: TargetStore | None = None  # per-image targets and style codes; None: computed per pair


class SetupError(RuntimeError):
    """The model, the loss network or a data source cannot be loaded; the message says why."""


def _source_settings(cfg: EvalConfig) -> tuple[Any, Any, dict, dict]:
    """(content source, style source, their descriptions for run.json)."""
    if cfg.content_dir is not None:
        content = FolderSource(cfg.content_dir)
        content_desc = {"folder": str(cfg.content_dir.resolve())}
    else:
        content = open_source("content", tfds_name=cfg.content_tfds, tfds_split=cfg.content_split,
                              data_dir=cfg.data_dir)
        content_desc = {"tfds": cfg.content_tfds, "split": cfg.content_split, "data_dir": cfg.data_dir}
    style = FolderSource(cfg.style_dir)
    return content, style, content_desc, {"folder": str(cfg.style_dir.resolve())}


def _weights_key(weights: str | None) -> Any:
    """A cache key that changes when the weights file/folder does."""
    if weights in (None, "random"):
        return weights
    path = Path(weights)
    stat = path.stat() if path.exists() else None
    return (str(path.resolve()), stat and stat.st_mtime_ns, stat and stat.st_size)


def _cached(key: tuple, build: Callable[[], Any]) -> Any:
    """The object of `key` from `_CACHE`, else `build()`; one object per kind (`key[0]`) is kept, and an
    older one of that kind is dropped only once its replacement was built."""
    if key not in _CACHE:
        built = build()
        _CACHE.pop(next((k for k in _CACHE if k[0] == key[0]), None), None)
        _CACHE[key] = built
    return _CACHE[key]


def make_stylizer(cfg: EvalConfig, step_size: int) -> Any:
    """The model behind `Stylizer`'s interface (or a baseline), cached per settings within the process."""
    if cfg.arch in BASELINES:
        return BaselineStylizer(cfg.arch, step_size)
    key = ("stylizer", cfg.arch, _weights_key(cfg.weights), cfg.variant, cfg.model_seed, step_size,
           cfg.size, cfg.alpha, cfg.dtype)

    def build() -> Stylizer:
        model, variables = loading.load_model(cfg.arch, cfg.weights, variant=cfg.variant, seed=cfg.model_seed)
        model = model.clone(dtype=parse_dtype(cfg.dtype))  # its convolutions; statistics stay float32
        _check_size(model, variables, cfg)
        return Stylizer(model, variables, batch_size=step_size)

    return _cached(key, build)


def _check_size(model: Any, variables: Any, cfg: EvalConfig) -> None:
    """Traces the model once on --size inputs (shapes only, nothing runs), so a too-small size stops the run
    with one message before anything is written."""
    probe = jax.ShapeDtypeStruct((1, cfg.size, cfg.size, 3), np.float32)
    try:
        jax.eval_shape(lambda v, c, s: model.apply(v, c, s, alpha=cfg.alpha)[0], variables, probe, probe)
    except (ValueError, TypeError) as error:
        raise SetupError(f"--size {cfg.size} does not suit --arch {cfg.arch}: {error}") from None


def make_scorer(cfg: EvalConfig) -> PairScorer:
    """The VGG-16 loss network with every per-pair metric, cached per settings within the process."""
    key = ("scorer", cfg.loss_network, _weights_key(cfg.loss_vgg_weights), cfg.style_layers,
           cfg.content_layers, cfg.normalised_gram, cfg.dtype)

    def build() -> PairScorer:
        from jax_ast.pretrained import load_vgg
        from jax_ast.pretrained.convert import check_finite
        layers = tuple(dict.fromkeys((*cfg.style_layers, *cfg.content_layers)))
        loss_net, params = load_vgg(cfg.loss_network, cfg.loss_vgg_weights, taps=layers)
        loss_net = loss_net.clone(dtype=parse_dtype(cfg.dtype))  # its convolutions; the scores are float32
        check_finite(params, f"--loss-vgg-weights {cfg.loss_vgg_weights or 'the installed ImageNet VGG-16'}")
        return PairScorer(loss_net, params, style_layers=cfg.style_layers, content_layers=cfg.content_layers,
                          normalised_gram=cfg.normalised_gram)

    return _cached(key, build)


def make_target_store(cfg: EvalConfig, scorer: PairScorer, stylizer: Any, step_size: int) -> TargetStore | None:
    """Each image's loss-network targets (and, for a network, each content's and each style's code), computed
    once and kept in an LRU of --target-cache-mb MiB; None when it is 0 (the per-pair path)."""
    if not cfg.target_cache_mb:
        return None
    compute = {"content": lambda images, step: scorer.targets("content", images, step_size=step),
               "style": lambda images, step: scorer.targets("style", images, step_size=step)}
    if isinstance(stylizer, Stylizer):
        compute["code"] = lambda images, step: stylizer.encode_styles(images, step_size=step)
        compute["content_code"] = lambda images, step: stylizer.encode_contents(images, step_size=step)
    return TargetStore(compute, ByteLRU(cfg.target_cache_mb * 2 ** 20), step_size=step_size,
                       n_devices=jax.local_device_count(), identity=cfg.size)


def run_settings(cfg: EvalConfig, content_desc: dict, style_desc: dict, n_contents: int,
                 n_styles: int) -> dict:
    """Everything that fixes the per-pair results (checked on resume) plus the requested pair count."""
    model_weights, loss_weights = (weights if weights in (None, "random") else str(Path(weights).resolve())
                                   for weights in (cfg.weights, cfg.loss_vgg_weights))
    return {"arch": cfg.arch, "weights": model_weights, "variant": cfg.variant, "model_seed": cfg.model_seed,
            "alpha": cfg.alpha, "clip": not cfg.no_clip, "precision": cfg.precision, "dtype": cfg.dtype,
            "size": cfg.size, "seed": cfg.seed,
            "loss_network": {"variant": cfg.loss_network, "weights": loss_weights},
            "style_layers": list(cfg.style_layers), "content_layers": list(cfg.content_layers),
            "normalised_gram": cfg.normalised_gram, "content_source": content_desc, "style_source": style_desc,
            "n_contents": n_contents, "n_styles": n_styles,
            "pairing": {"scheme": pairing_lib.PAIRING_SCHEME, "seed": cfg.seed}, "pairs": cfg.pairs}


def check_resume(out_dir: Path, settings: dict) -> None:
    """Raises `records.RecordsError` when `out_dir` holds a run with other settings."""
    path = out_dir / layout.RUN_JSON
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
    previous = report.upgrade_settings(previous)  # a folder from before a key was renamed resumes too
    differing = [k for k in RESUME_KEYS
                 if previous.get(k, RESUME_DEFAULTS.get(k)) != records.json_roundtrip(settings.get(k))]
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
                      precision: str, step_size: int, timings: dict[str, float],
                      targets: TargetStore | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(outputs float32 [n, S, S, 3], {metric: [n]}) of one loaded chunk; adds stage seconds to `timings`.

    With `targets`, each image's loss-network targets (and each content's and style's code) come from that
    store, computed once per image; the scores are the same. Clipping keeps NaN and turns inf into NaN, so a pair whose raw
    output was not finite is still seen as such.
    """
    contents = chunk.contents.astype(np.float32) / 255.0
    styles = chunk.styles.astype(np.float32) / 255.0
    start = time.perf_counter()
    network = isinstance(stylizer, Stylizer)
    with _precision(precision):
        rows = target_rows(targets, chunk, contents, styles, codes=network)
    middle = time.perf_counter()
    timings["targets"] += middle - start
    if network:  # stylise and score on the devices in one program
        # Keyed on the objects themselves (held by the key), so a new stylizer never meets a stale program;
        # one kind per mode, so a process that uses both (benchmarks.eval_cache, tests) keeps both compiled.
        with_targets = rows is not None
        fused = _cached(("fused_targets" if with_targets else "fused", stylizer, scorer, alpha, clip),
                        lambda: StylizeAndScore(stylizer, scorer, alpha=alpha, clip=clip, with_targets=with_targets))
        with _precision(precision):
            outputs, metrics = fused(contents, styles, step_size=step_size, **(rows or {}))
        timings["stylize_score"] += time.perf_counter() - middle
        return outputs, metrics
    with _precision(precision):  # a baseline: its outputs are the inputs, on the host
        outputs = np.asarray(stylizer.stylize(contents, styles, alpha=alpha), np.float32)
    if clip:
        outputs = np.where(np.isfinite(outputs), np.clip(outputs, 0.0, 1.0), np.float32(np.nan))
    scored = time.perf_counter()
    with _precision(precision):
        metrics = scorer.score(contents, styles, outputs, step_size=step_size,
                               targets=None if rows is None else rows["targets"])
    timings["stylize"] += scored - middle
    timings["score"] += time.perf_counter() - scored
    return outputs, metrics


def target_rows(targets: TargetStore | None, chunk: pairing_lib.Chunk, contents: np.ndarray, styles: np.ndarray,
                *, codes: bool) -> dict[str, Any] | None:
    """{"targets": {"content", "style"} rows[, "content_codes", "codes": content- and style-code rows]} of a
    chunk's pairs, or None."""
    if targets is None:
        return None
    rows = {"targets": {"content": targets.rows("content", chunk.content_indices, contents),
                        "style": targets.rows("style", chunk.style_indices, styles)}}
    if codes:
        rows["content_codes"] = targets.rows("content_code", chunk.content_indices, contents)
        rows["codes"] = targets.rows("code", chunk.style_indices, styles)
    return rows


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


def stream_pairs(cfg: EvalConfig, session: Session, logs: tuple[records.CsvLog, records.CsvLog],
                 keeper: ExtremeKeeper) -> dict:
    """Computes every missing pair (at most --max-pairs-this-run), appending rows as batches finish.

    Pairs with an unreadable image, or a non-finite output or score, are appended to the skipped log.
    Returns the timings of this invocation (seconds per stage, pairs, first-batch time, non-finite pairs).
    """
    results, skipped_log = logs
    stylizer, scorer, caches = session.stylizer, session.scorer, session.caches
    done = results.done | skipped_log.done
    todo = min(cfg.pairs - sum(1 for pair in done if pair < cfg.pairs), cfg.max_pairs_this_run or cfg.pairs)
    chunks = pairing_lib.batched(pairing_lib.missing_pairs(cfg.pairs, done), session.step_size,
                                 limit=cfg.max_pairs_this_run)
    timings = {"load_wait": 0.0, "targets": 0.0, "stylize": 0.0, "score": 0.0, "stylize_score": 0.0, "write": 0.0,
               "pairs": 0, "first_batch": None, "nonfinite": 0}
    progress = _Progress(max(todo, 0), enabled=not cfg.no_progress)
    start = last_save = time.perf_counter()
    loader = pairing_lib.prefetch_chunks(chunks, session.pairing, *caches, workers=cfg.workers)
    while True:
        wait_start = time.perf_counter()
        chunk = next(loader, None)
        timings["load_wait"] += time.perf_counter() - wait_start
        if chunk is None:
            break
        computed, finished = len(chunk.pairs), len(chunk.pairs) + len(chunk.skipped)
        _log_skipped(skipped_log, chunk.skipped, caches)
        if chunk.pairs:
            outputs, metrics = stylize_and_score(stylizer, scorer, chunk, alpha=cfg.alpha, clip=not cfg.no_clip,
                                                 precision=cfg.precision, step_size=session.step_size,
                                                 timings=timings, targets=session.targets)
            chunk, outputs, metrics, nonfinite = drop_nonfinite(chunk, outputs, metrics, scorer.names)
            _log_skipped(skipped_log, nonfinite, caches)
            timings["nonfinite"] += len(nonfinite)
            write_start = time.perf_counter()
            results.append(_rows(chunk, metrics, scorer.names, caches))
            if chunk.pairs:
                keeper.update(chunk.pairs, metrics, chunk.contents, chunk.styles, outputs)
            if time.perf_counter() - last_save > 10:
                keeper.save(cfg.out / layout.EXTREMES_NPZ)
                last_save = time.perf_counter()
            timings["write"] += time.perf_counter() - write_start
        timings["pairs"] += computed
        if timings["first_batch"] is None:
            timings["first_batch"] = (time.perf_counter() - start, computed)
        progress.update(finished)
    progress.close()
    timings["total"] = time.perf_counter() - start
    keeper.save(cfg.out / layout.EXTREMES_NPZ)
    if timings["nonfinite"]:
        print(f"warning: {timings['nonfinite']} pairs had a NaN or inf output or score and were skipped, not "
              f"written (reasons in {cfg.out / layout.SKIPPED_CSV})", file=sys.stderr)
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
            "stage_seconds": {k: timings[k] for k in ("load_wait", "targets", "stylize", "score", "stylize_score",
                                                        "write")},
            "batch_size": step_size, "size": size, "devices": jax.local_device_count(),
            "backend": jax.default_backend(), "device_kind": jax.local_devices()[0].device_kind,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def recompute_images(session: Session, cfg: EvalConfig, pairs: list[int]) -> dict[int, tuple]:
    """(content, style, output) images of a few pairs, for extreme-pair thumbnails a resumed run lacks."""
    images = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=cfg.workers) as pool:
        for start in range(0, len(pairs), session.step_size):
            chunk = pairing_lib.load_chunk(pairs[start:start + session.step_size], session.pairing,
                                           *session.caches, pool)
            if chunk.pairs:
                contents, styles = (x.astype(np.float32) / 255.0 for x in (chunk.contents, chunk.styles))
                with _precision(cfg.precision):
                    outputs = np.asarray(session.stylizer.stylize(contents, styles, alpha=cfg.alpha))
                for row, pair in enumerate(chunk.pairs):
                    images[pair] = (chunk.contents[row], chunk.styles[row], np.clip(outputs[row], 0.0, 1.0))
    return images


def evaluate(cfg: EvalConfig) -> dict:
    """Runs (or resumes) the evaluation described by validated `cfg`; returns the summary."""
    content_source, style_source, content_desc, style_desc = _source_settings(cfg)
    settings = run_settings(cfg, content_desc, style_desc, len(content_source), len(style_source))
    check_resume(cfg.out, settings)
    n_devices = jax.local_device_count()
    step_size = -(-(cfg.batch_size or 16 * n_devices) // n_devices) * n_devices
    try:
        scorer, stylizer = make_scorer(cfg), make_stylizer(cfg, step_size)
    except (ValueError, OSError, KeyError) as error:  # CheckpointError, WeightsError, DownloadError, ...
        raise SetupError(f"{type(error).__name__}: {error}") from error
    cfg.out.mkdir(parents=True, exist_ok=True)
    session = Session(step_size=step_size, scorer=scorer, stylizer=stylizer,
                      pairing=pairing_lib.Pairing(len(content_source), len(style_source), cfg.seed),
                      caches=(pairing_lib.ImageCache(content_source, cfg.size, cfg.cache_images),
                              pairing_lib.ImageCache(style_source, cfg.size, cfg.cache_images)),
                      targets=make_target_store(cfg, scorer, stylizer, step_size))
    if cfg.pairs > session.pairing.size:
        print(f"warning: {cfg.pairs} pairs requested but only {session.pairing.size} distinct content x style "
              "pairs exist; pairs repeat", file=sys.stderr)
    keeper = ExtremeKeeper(report.GRID_LOSSES, cfg.top_k, cfg.thumb_size)
    with records.CsvLog(cfg.out / layout.PAIRS_CSV, [*report.KEY_COLUMNS, *scorer.names]) as results, \
            records.CsvLog(cfg.out / layout.SKIPPED_CSV, [*report.KEY_COLUMNS, "reason"]) as skipped:
        records.write_json(cfg.out / layout.RUN_JSON, settings)
        try:
            keeper.load(cfg.out / layout.EXTREMES_NPZ, keep_pairs=results.done)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:  # a cache: rebuilt
            keeper = ExtremeKeeper(report.GRID_LOSSES, cfg.top_k, cfg.thumb_size)
            print(f"warning: {cfg.out / layout.EXTREMES_NPZ} is unreadable ({type(error).__name__}); the extreme "
                  "pairs are recomputed from pairs.csv", file=sys.stderr)
        if results.truncated:
            print(f"resuming: dropped an interrupted last line ({results.truncated} bytes)", file=sys.stderr)
        print(f"{cfg.arch}: {len(results.done)} of {cfg.pairs} pairs already done; {n_devices} "
              f"{jax.default_backend()} device(s), batch {step_size}, {cfg.size}x{cfg.size}", file=sys.stderr)
        timings = stream_pairs(cfg, session, (results, skipped), keeper)
    pairing, (contents, styles) = session.pairing, session.caches
    return report.write_report(
        cfg.out, settings, scorer.names, cfg.style_layers, keeper, style_name=styles.name,
        pair_caption=lambda p: " / ".join(cache.name(i) for cache, i in zip((contents, styles), pairing(p))),
        recompute=lambda pairs: recompute_images(session, cfg, pairs), make_figures=not cfg.no_figures,
        ist_top=cfg.ist_top, ist_min_pairs=cfg.ist_min_pairs,
        benchmark=benchmark_block(timings, step_size, cfg.size) if cfg.benchmark else None)


def main(argv: Iterable[str] | None = None) -> int:
    cfg = parse_config(None if argv is None else list(argv))
    compilation_cache.enable(not cfg.no_compilation_cache)
    try:
        summary = evaluate(cfg)
    except (SetupError, records.RecordsError, DataError, FileNotFoundError) as error:
        print(guards.printable(f"error: {error}"), file=sys.stderr)
        return guards.EXIT_USAGE
    except OSError as error:  # records.WriteError, or a summary/figure that could not be written
        line = guards.printable(str(error)) if isinstance(error, records.WriteError) else \
            guards.write_failure(error, cfg.out)  # a WriteError names its CSV and its intact rows itself
        print(f"error: {line}", file=sys.stderr)
        return guards.EXIT_WRITE_FAILED
    print(guards.printable(report.summary_markdown(summary)))
    return guards.EXIT_OK if summary["pairs"]["done"] else guards.EXIT_NOTHING_DONE

