"""Inference throughput, jax-ast vs a PyTorch equivalent: ``python -m eval.bench_stylize [--archs ...] [--quick]``.

For each network and setting (512x512 batch 1, 256x256 batch 8; content and style the same size) it times
the full stylisation ``(content, style) -> image`` on one device: JAX ``jax.jit`` of ``model.apply`` and the
PyTorch module of the same layout (`eval._torch_reference`) under ``torch.inference_mode`` with
``channels_last`` (the faster torch layout on this CPU). Both get the same random
weights, and the first outputs are compared before any timing. Rounds are interleaved (JAX, torch, JAX,
...) because this shared machine drifts by up to 2x between minutes; medians and minima are reported with
the JAX/torch time ratio (< 1: JAX is faster). Compilation / first-call time is reported separately.

XLA flag: ``--xla_cpu_experimental_ynn_fusion_type=`` (empty: no YNNPACK fusions) is added to XLA_FLAGS in
this process only, unless XLA_FLAGS already sets it: on this AVX2 CPU, XLA's own convolution thunks are
~1.4x faster than YNNPACK fusions for VGG-style 3x3 convs (docs/performance.md). It must be set before JAX
creates its CPU backend, hence `jax` is imported only inside `main`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

from jax_ast.xla_flags import YNN_FLAG

ARCHS = ("adain", "sanet", "linear", "magenta")
FULL_SETTINGS = ((512, 1), (256, 8))  # (side, batch)
QUICK_SETTINGS = ((64, 1), (48, 2))
MAGENTA_MIN_STYLE = 64  # Inception to Mixed_6e needs >= 43 px; quick mode keeps Magenta's style above that


def _apply_xla_flag() -> str:
    """Adds the YNN-off flag to XLA_FLAGS unless the caller set it; returns a note for the report."""
    flags = os.environ.get("XLA_FLAGS", "")
    if YNN_FLAG in flags:
        return f"XLA_FLAGS already sets {YNN_FLAG}; left as is"
    os.environ["XLA_FLAGS"] = f"{flags} {YNN_FLAG}=".strip()
    note = f"added {YNN_FLAG}= (YNNPACK fusions off) to XLA_FLAGS for this process"
    if "jax" in sys.modules:  # XLA reads its flags when the backend starts, on the first computation
        note += " (jax was imported earlier: it applies only if nothing has run on JAX yet)"
    return note


def _time_calls(call: Callable[[], Any], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def _jax_runner(arch: str, content: np.ndarray, style: np.ndarray):
    import jax

    from eval.stylize import random_model
    model, variables = random_model(arch, seed=0)
    apply = jax.jit(lambda v, c, s: model.apply(v, c, s)[0])
    content, style = jax.device_put(content), jax.device_put(style)
    start = time.perf_counter()
    first = np.asarray(apply(variables, content, style))
    compile_s = time.perf_counter() - start
    return (lambda: apply(variables, content, style).block_until_ready()), first, compile_s, variables


def _torch_runner(arch: str, variables: Any, content: np.ndarray, style: np.ndarray, channels_last: bool):
    import torch

    from eval._torch_reference import NETWORKS, load_flax_variables
    module = load_flax_variables(NETWORKS[arch](), variables)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    module = module.to(memory_format=layout)
    to_torch = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=layout)  # noqa: E731
    content_t, style_t = to_torch(content), to_torch(style)

    def call():
        with torch.inference_mode():
            return module(content_t, style_t)

    start = time.perf_counter()
    first = call().permute(0, 2, 3, 1).numpy()
    return call, first, time.perf_counter() - start


def bench_setting(arch: str, side: int, batch: int, *, rounds: int, runs: int, use_torch: bool,
                  channels_last: bool) -> dict:
    """Times one (network, size, batch) setting; returns a result row."""
    rng = np.random.default_rng(0)
    style_side = max(side, MAGENTA_MIN_STYLE) if arch == "magenta" else side
    content = rng.random((batch, side, side, 3), dtype=np.float32)
    style = rng.random((batch, style_side, style_side, 3), dtype=np.float32)
    jax_call, jax_first, jax_compile, variables = _jax_runner(arch, content, style)
    row = {"arch": arch, "size": side, "batch": batch, "jax_first_call_s": jax_compile}
    torch_call = None
    if use_torch:
        torch_call, torch_first, row["torch_first_call_s"] = _torch_runner(arch, variables, content, style,
                                                                          channels_last)
        row["max_abs_diff"] = float(np.abs(jax_first - torch_first).max())
        row["max_abs_output"] = float(np.abs(jax_first).max())
    times = {"jax": [], "torch": []}
    for _ in range(rounds):  # interleaved, so machine drift hits both frameworks alike
        times["jax"] += _time_calls(jax_call, runs)
        if torch_call is not None:
            times["torch"] += _time_calls(torch_call, runs)
    for name, values in times.items():
        if values:
            row[f"{name}_median_s"], row[f"{name}_min_s"] = statistics.median(values), min(values)
            row[f"{name}_img_per_s"] = batch / row[f"{name}_median_s"]
    if use_torch:
        row["jax_over_torch_median"] = row["jax_median_s"] / row["torch_median_s"]
        row["jax_over_torch_min"] = row["jax_min_s"] / row["torch_min_s"]
    return row


def format_row(row: dict) -> str:
    text = (f"{row['arch']:8s} {row['size']:4d}x{row['size']:<4d} b{row['batch']:<2d} "
            f"JAX {row['jax_img_per_s']:7.2f} img/s (median {row['jax_median_s']:.3f} s, min {row['jax_min_s']:.3f} s,"
            f" first call {row['jax_first_call_s']:.1f} s)")
    if "torch_median_s" in row:
        text += (f" | torch {row['torch_img_per_s']:7.2f} img/s (median {row['torch_median_s']:.3f} s, "
                 f"min {row['torch_min_s']:.3f} s) | JAX/torch median {row['jax_over_torch_median']:.2f}, "
                 f"min {row['jax_over_torch_min']:.2f} | max |diff| {row['max_abs_diff']:.1e} "
                 f"(of {row['max_abs_output']:.1e})")
    return text


def _torch_available(threads: int) -> bool:
    try:
        import torch
    except ImportError:
        return False
    torch.set_num_threads(threads)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.bench_stylize", description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS, metavar="ARCH",
                        help=f"networks to time (default: all of {', '.join(ARCHS)})")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one round: checks that it runs")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (JAX then torch)")
    parser.add_argument("--runs", type=int, default=3, help="timed calls per framework per round")
    parser.add_argument("--no-torch", action="store_true", help="time JAX only")
    parser.add_argument("--no-channels-last", action="store_true", help="torch in its default NCHW layout")
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count() or 1,
                        help="torch intra-op threads; on an oversubscribed machine fewer threads than cores "
                             "avoid OpenMP spin-wait stalls (seen: 30x slower with 2 threads on 2 busy cores)")
    parser.add_argument("--json", help="also write the result rows to this JSON file")
    args = parser.parse_args(argv)
    note = _apply_xla_flag()
    import jax

    use_torch = not args.no_torch and _torch_available(args.torch_threads)
    rounds, runs = (1, 1) if args.quick else (args.rounds, args.runs)
    settings = QUICK_SETTINGS if args.quick else FULL_SETTINGS
    print(f"{note}\njax {jax.__version__} on {jax.devices()[0].device_kind}; os.cpu_count() = {os.cpu_count()}; "
          f"{rounds} round(s) x {runs} run(s) per framework")
    if not use_torch:
        print("torch " + ("disabled (--no-torch)" if args.no_torch else "is not importable") + ": JAX figures only")
    else:
        import torch
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"{'NCHW' if args.no_channels_last else 'channels_last'}; same random weights in both")
    rows = []
    for arch in args.archs:
        for side, batch in settings:
            row = bench_setting(arch, side, batch, rounds=rounds, runs=runs, use_torch=use_torch,
                                channels_last=not args.no_channels_last)
            print(format_row(row), flush=True)
            rows.append(row)
    if args.json:
        with open(args.json, "w") as stream:
            json.dump({"note": note, "rows": rows}, stream, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
