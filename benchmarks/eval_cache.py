"""Benchmark: `eval.run` pairs/s with per-image targets cached (``--target-cache-mb``) vs the per-pair path.

    python -m benchmarks.eval_cache [--arch adain] [--weights random] [--size 256] [--contents 12]
        [--styles 14] [--pairs N] [--batch-size 8] [--rounds 3] [--loss-vgg-weights FILE|random]

Both paths run `eval.run.stylize_and_score` (the fused stylise-and-score program of `eval.run`) on the same
chunks of pairs of the bundled images (the first `--contents` and `--styles` of them), drawn by `eval.run`'s
seeded pairing (default: the whole grid, 12 x 14 = 168 pairs, so each content recurs 14 times and each style
12 times), with the real ImageNet VGG-16 loss network.
Old: the loss network runs on content, style and output of every pair, and the network encodes every
pair's content and style. New: each image's targets and each content's and style's code are computed once
per round (a fresh cache each round, so that work is counted); per pair the network runs its transform and
decoder only, and the loss network runs on the output only. Rounds interleave the
two paths (alternating which goes first); the figures are medians (and minima) over rounds, since a shared
machine's load moves both.
Programs are compiled in a warm-up pass first. It prints pairs/s old and new, their ratio, the steady-state
ratio (new without its target computations: a long run, where every image is already cached), and whether
every score of the two paths agrees to 1e-6 relative.

The stylizer's weights do not change its cost: ``--weights random`` (the default) times the network
with random weights (its images are meaningless; the scores still compare the two paths exactly).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.timing import OMP_WAIT_POLICY
from jax_ast.xla_flags import prefer_fast_cpu_convolutions

prefer_fast_cpu_convolutions()  # before JAX starts; docs/performance.md
os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from eval.inference import baselines  # noqa: E402
from eval.score import pairs  # noqa: E402
from eval.score import run as eval_run  # noqa: E402
from eval.score.config import parse_config  # noqa: E402
from jax_ast.data import FolderSource, bundled_dir  # noqa: E402

RTOL = 1e-6


def run_pass(cfg, session: tuple, chunks: list, store) -> tuple[float, dict[str, np.ndarray], dict[str, float]]:
    """(seconds, {metric: [pairs]}, stage seconds) of one pass over `chunks`; `store` None = the old path."""
    scorer, stylizer = session
    timings = dict.fromkeys(("targets", "stylize", "score", "stylize_score"), 0.0)
    start = time.perf_counter()
    results = [eval_run.stylize_and_score(stylizer, scorer, chunk, alpha=cfg.alpha, clip=not cfg.no_clip,
                                          precision=cfg.precision, step_size=stylizer.step_size, timings=timings,
                                          targets=store) for chunk in chunks]
    seconds = time.perf_counter() - start
    return seconds, {name: np.concatenate([m[name] for _, m in results]) for name in scorer.names}, timings


def worst_relative(old: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> tuple[float, str]:
    """The largest |new - old| / |old| over every score (exact zeros must stay zero), and its metric."""
    def relative(a, b):
        return float(np.max(np.where(a == b, 0.0, np.abs(b - a) / np.maximum(np.abs(a), np.finfo(np.float32).tiny))))
    return max((relative(old[name], new[name]), name) for name in old)


def time_stages(scorer, stylizer, chunk, store, rounds: int) -> int:
    """Prints the seconds of each stage of both paths on one chunk, apart (medians over `rounds` runs)."""
    contents, styles = (x.astype(np.float32) / 255.0 for x in (chunk.contents, chunk.styles))
    with_codes = not isinstance(stylizer, baselines.BaselineStylizer)
    rows = eval_run.target_rows(store, chunk, contents, styles, codes=with_codes)
    outputs = np.clip(stylizer.stylize(contents, styles), 0.0, 1.0)
    stages = {"score: loss network on content, style, output": lambda: scorer.score(contents, styles, outputs),
              "score: loss network on output, cached targets": lambda: scorer.score(contents, styles, outputs,
                                                                                    targets=rows["targets"]),
              "targets of the chunk's contents (once per image)": lambda: scorer.targets("content", contents,
                                                                                         step_size=len(contents)),
              "targets of the chunk's styles (once per image)": lambda: scorer.targets("style", styles,
                                                                                       step_size=len(styles))}
    if "codes" in rows:
        stages = {"stylize: encode content and style, decode": lambda: stylizer.stylize(contents, styles),
                  "stylize: encode content, cached style code, decode": lambda: stylizer.stylize_with_codes(
                      contents, rows["codes"]),
                  "stylize: cached content and style codes, decode": lambda: stylizer.stylize_codes(
                      rows["content_codes"], rows["codes"], height=contents.shape[1], width=contents.shape[2]),
                  **stages,
                  "content codes of the chunk's contents (once per image)": lambda: stylizer.encode_contents(
                      contents, step_size=len(contents)),
                  "style codes of the chunk's styles (once per image)": lambda: stylizer.encode_styles(
                      styles, step_size=len(styles))}
    times = {name: [] for name in stages}
    for stage in stages.values():  # compiles
        jax.block_until_ready(stage())
    for _ in range(rounds):
        for name, stage in stages.items():
            start = time.perf_counter()
            jax.block_until_ready(stage())
            times[name].append(time.perf_counter() - start)
    print(f"\n{len(contents)} pairs; seconds, median [min] over {rounds} interleaved rounds")
    for name, values in times.items():
        print(f"{name:<58}{statistics.median(values):>8.2f} [{min(values):.2f}]")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="adain", help="a network or a baseline (identity, copy-style)")
    parser.add_argument("--weights", "--checkpoint", dest="weights", default="random",
                        help="of --arch (timing is the same with any weights)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--contents", type=int, default=12, help="the first N bundled contents (at most 12)")
    parser.add_argument("--styles", type=int, default=14, help="the first N bundled styles (at most 14)")
    parser.add_argument("--pairs", type=int, help="pairs per pass (default: contents x styles, the whole grid)")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per step")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved old/new rounds")
    parser.add_argument("--target-cache-mb", type=int, default=1024)
    parser.add_argument("--loss-vgg-weights", default=None, help="default: the installed ImageNet VGG-16")
    parser.add_argument("--stages", action="store_true", help="instead: time the stylizer and the scorer apart, "
                                                               "old and new, on the first chunk")
    args = parser.parse_args(argv)
    caches = [pairs.ImageCache(FolderSource(bundled_dir(role)), args.size, 1024) for role in ("content", "style")]
    for flag, cache in (("contents", caches[0]), ("styles", caches[1])):
        if not 1 <= getattr(args, flag) <= len(cache.source):
            parser.error(f"--{flag} must be in [1, {len(cache.source)}], got {getattr(args, flag)}")
    args.pairs = args.pairs or args.contents * args.styles
    for flag in ("size", "pairs", "batch_size", "rounds", "target_cache_mb"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")

    out = Path(tempfile.mkdtemp(prefix="eval_cache_")) / "out"  # never written: the settings need one
    flags = ["--arch", args.arch, "--pairs", str(args.pairs), "--out", str(out), "--content-dir",
             str(bundled_dir("content")), "--style-dir", str(bundled_dir("style")), "--size", str(args.size),
             "--batch-size", str(args.batch_size), "--target-cache-mb", str(args.target_cache_mb)]
    if args.arch not in baselines.BASELINES:
        flags += ["--weights", args.weights]
    if args.loss_vgg_weights:
        flags += ["--loss-vgg-weights", args.loss_vgg_weights]
    cfg = parse_config(flags)
    step = -(-args.batch_size // jax.local_device_count()) * jax.local_device_count()
    scorer, stylizer = eval_run.make_scorer(cfg), eval_run.make_stylizer(cfg, step)
    stylizer_step = getattr(stylizer, "step_size", step)
    pairing = pairs.Pairing(args.contents, args.styles, seed=cfg.seed)
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        chunks = [pairs.load_chunk(list(range(start, min(start + stylizer_step, args.pairs))), pairing, *caches, pool)
                  for start in range(0, args.pairs, stylizer_step)]
    n_contents = len({c for chunk in chunks for c in chunk.content_indices})
    n_styles = len({s for chunk in chunks for s in chunk.style_indices})
    print(f"jax {jax.__version__}, {jax.local_device_count()} {jax.default_backend()} device(s), "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS')!r}")
    print(f"{args.arch} ({args.weights if args.arch not in baselines.BASELINES else 'baseline'} weights), loss "
          f"network {cfg.loss_network} ({cfg.loss_vgg_weights or 'installed ImageNet VGG-16'}), {args.pairs} pairs "
          f"of {n_contents} contents x {n_styles} styles at {args.size}x{args.size}, batch {stylizer_step}",
          flush=True)
    session = (scorer, stylizer)

    def new_store():
        return eval_run.make_target_store(cfg, scorer, stylizer, stylizer_step)

    if args.stages:
        return time_stages(scorer, stylizer, chunks[0], new_store(), args.rounds)

    start = time.perf_counter()  # compiles: the old program, the new one and the target programs' step sizes
    run_pass(cfg, session, chunks[:1], None)
    run_pass(cfg, session, chunks, new_store())
    print(f"warm-up (compile) {time.perf_counter() - start:.1f} s", flush=True)
    seconds: dict[str, list[float]] = {"old": [], "new": [], "new, all cached": []}
    worst, metric = 0.0, ""
    for round_index in range(args.rounds):
        store = new_store()
        if round_index % 2:  # alternate which path goes first, so a drift in the machine's load hits both
            new_seconds, new_scores, stages = run_pass(cfg, session, chunks, store)
            old_seconds, old_scores, _ = run_pass(cfg, session, chunks, None)
        else:
            old_seconds, old_scores, _ = run_pass(cfg, session, chunks, None)
            new_seconds, new_scores, stages = run_pass(cfg, session, chunks, store)
        seconds["old"].append(old_seconds)
        seconds["new"].append(new_seconds)
        seconds["new, all cached"].append(new_seconds - stages["targets"])
        round_worst, round_metric = worst_relative(old_scores, new_scores)
        worst, metric = max((worst, metric), (round_worst, round_metric))
        print(f"round {round_index + 1}/{args.rounds}: old {args.pairs / old_seconds:.3f} pairs/s, new "
              f"{args.pairs / new_seconds:.3f} pairs/s (targets {stages['targets']:.1f} s, stylise+score "
              f"{stages['stylize_score'] + stages['stylize'] + stages['score']:.1f} s; computed "
              f"{dict(store.computed)}, cache {store.cache.nbytes / 2 ** 20:.0f} MiB); worst relative score "
              f"difference {round_worst:.2e} ({round_metric})", flush=True)
    median = {path: args.pairs / statistics.median(times) for path, times in seconds.items()}
    best = {path: args.pairs / min(times) for path, times in seconds.items()}
    print(f"\n{'path':<16}{'median pairs/s':>16}{'best pairs/s':>14}{'/ old (median)':>16}{'/ old (best)':>14}")
    for path in seconds:
        print(f"{path:<16}{median[path]:>16.3f}{best[path]:>14.3f}{median[path] / median['old']:>16.2f}"
              f"{best[path] / best['old']:>14.2f}")
    print(f"new/old pairs/s ratio: median {median['new'] / median['old']:.2f}, best-of "
          f"{best['new'] / best['old']:.2f} ('new, all cached': the same without computing targets, as in a "
          "long run where every image recurs)")
    print(f"scores match to {RTOL:g} relative: {'yes' if worst <= RTOL else 'NO'} (worst over the rounds: "
          f"{worst:.2e}, {metric})")
    return 0 if worst <= RTOL else 1


if __name__ == "__main__":
    sys.exit(main())
