"""Inference throughput, jax-ast vs a PyTorch twin: ``python -m benchmarks.stylize [--archs ...] [--quick]``.

For each network and setting (512x512 batch 1, 256x256 batch 8, or ``--size``/``--batch``; content and
style the same size) it times the full stylisation ``(content, style) -> image`` of bundled photos on one
device, JAX's default one (CPU, GPU or TPU): JAX ``jax.jit`` of ``model.apply`` and the PyTorch module of
the same layout (`benchmarks.torch_nets`) under ``torch.inference_mode`` with ``channels_last`` (the
faster torch layout on CPU), on the CPU or on CUDA to match JAX (`benchmarks.devices.torch_device`; with
no matching torch device, jax-ast alone). ``--dtype bfloat16`` runs both in bf16: jax-ast with its
parameters and images cast (`jax_ast.precision`), torch under ``autocast(bfloat16)``. Both get the same weights: the real ImageNet VGG-16 (`vgg16_normalised`) as the encoder of
AdaIN, SANet and LinearTransfer and a seeded random init for the rest (`benchmarks.inputs`;
``--vgg-weights random`` randomises the encoder too). The first outputs are compared before any timing.
Rounds are interleaved (JAX, torch, JAX, ...) because this shared machine drifts by up to 2x between
minutes; medians and minima are reported with the JAX/torch time ratio (< 1: JAX is faster), and the
analytic FLOPs of one call (`benchmarks.flops`) as achieved TFLOP/s and % of the device's bf16 peak.
Compilation and the first call are timed separately. XLA's YNNPACK fusions are turned off before JAX
starts unless XLA_FLAGS sets that flag (`jax_ast.xla_flags`, docs/performance.md).

With ``magenta`` among the networks, Magenta's mobile model (`--variant mobile`, installed with jax-ast) is
also timed against onnxruntime running the wheel's int8 graph and its float copy at 256/512/1024 px
(`benchmarks.mobile_onnx`; at ``--size`` only when given; ``--no-mobile`` skips it).

With jax2onnx installed (docs/export.md), each batch-1 float32 setting of a network that exports also times
its `eval.export` graph in onnxruntime (same images and weights, ``intra_op_num_threads`` = the CPU count, the
threads XLA uses), interleaved with JAX; ``--no-onnx`` skips it.
"""

from __future__ import annotations

import os

from benchmarks.timing import OMP_WAIT_POLICY, ynn_note
from jax_ast.xla_flags import YNN_FLAG, prefer_fast_cpu_convolutions

USER_YNN_FLAG = YNN_FLAG in os.environ.get("XLA_FLAGS", "")
prefer_fast_cpu_convolutions()  # before JAX starts
os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)  # before torch starts its OpenMP threads

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import devices, mobile_onnx, report  # noqa: E402
from benchmarks.flops import count_flops  # noqa: E402
from benchmarks.inputs import RANDOM_WARNING, WEIGHTS, bench_config, has_twin, photos, variables_for  # noqa: E402
from benchmarks.timing import compile_seconds, ratios, time_calls  # noqa: E402
from jax_ast import archs, precision  # noqa: E402
from jax_ast.archs import ARCHS  # noqa: E402

FULL_SETTINGS = ((512, 1), (256, 8))  # (side, batch)
QUICK_SETTINGS = ((64, 1), (48, 2))
MIN_SIDE = 32  # SANet: >= 2x2 positions at relu5_1 for unbiased statistics


def _jax_runner(model: Any, variables: dict, content: np.ndarray, style: np.ndarray, dtype: str) -> dict:
    """The jitted stylisation in `dtype` (parameters and images cast), its FLOPs, compile and first-call times."""
    apply = jax.jit(lambda v, c, s: model.apply(v, c, s)[0])
    variables, content, style = precision.cast_floating((variables, content, style), precision.parse_dtype(dtype))
    compiled, compile_s = compile_seconds(apply, variables, content, style)
    start = time.perf_counter()
    first = np.asarray(compiled(variables, content, style), np.float32)
    return {"call": lambda: compiled(variables, content, style).block_until_ready(), "first": first,
            "compile_s": compile_s, "first_call_s": time.perf_counter() - start,
            "flops": count_flops(apply, variables, content, style)}


def _torch_runner(arch: str, variables: dict, content: np.ndarray, style: np.ndarray, *, channels_last: bool,
                  device: str, dtype: str):
    import contextlib

    import torch

    from benchmarks.torch_nets import load_flax_variables, network

    module = load_flax_variables(network(arch, bench_config(arch).encoder_variant), variables)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    module = module.to(device=device, memory_format=layout)
    to_torch = lambda x: torch.from_numpy(x).to(device).permute(0, 3, 1, 2).contiguous(memory_format=layout)  # noqa: E731
    content_t, style_t = to_torch(content), to_torch(style)
    autocast = (torch.autocast(device, dtype=torch.bfloat16) if dtype == "bfloat16" else contextlib.nullcontext())

    def call():
        with torch.inference_mode(), autocast:
            out = module(content_t, style_t)
        devices.sync_torch(device)
        return out

    start = time.perf_counter()
    first = call().float().permute(0, 2, 3, 1).cpu().numpy()
    return call, first, time.perf_counter() - start


def _onnx_runner(arch: str, model: Any, variables: dict, content: np.ndarray, style: np.ndarray) -> dict | None:
    """The exported whole-stylisation graph in onnxruntime on the CPU, or None where it cannot run."""
    from eval.export import graphs
    if not graphs.converter_installed() or content.shape[0] != 1:
        return None
    import onnxruntime as ort
    whole = graphs.export_graphs(model, variables, size=content.shape[1:3], style_size=style.shape[1:3],
                                 meta={"arch": arch}, split=False)[0]
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(whole.proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"content_image": content, "style_image": style}
    return {"call": lambda: session.run(None, feed), "first": session.run(None, feed)[0]}


def bench_setting(arch: str, side: int, batch: int, *, rounds: int, runs: int, torch_device: str | None,
                  channels_last: bool, weights: str = "imagenet", dtype: str = "float32", onnx: bool = True) -> dict:
    """Times one (network, size, batch) setting with `weights` VGGs in `dtype`, against torch on
    `torch_device` (None: jax-ast alone); returns a result row with its `report.summary_row` as "summary"."""
    style_side = max(side, archs.get(arch).min_crop)  # e.g. Magenta's Inception needs >= 43 px
    content, style = photos("content", batch, side), photos("style", batch, style_side)
    model, variables = variables_for(arch, weights)
    jax_run = _jax_runner(model, variables, content, style, dtype)
    row = {"arch": arch, "size": side, "batch": batch, "vgg_weights": weights, "dtype": dtype,
           "jax_compile_s": jax_run["compile_s"], "jax_first_call_s": jax_run["first_call_s"], "flops": jax_run["flops"]}
    torch_call = None
    if torch_device is not None:
        torch_call, torch_first, row["torch_first_call_s"] = _torch_runner(
            arch, variables, content, style, channels_last=channels_last, device=torch_device, dtype=dtype)
        row["max_abs_diff"] = float(np.abs(jax_run["first"] - torch_first).max())
        row["max_abs_output"] = float(np.abs(jax_run["first"]).max())
    onnx_run = _onnx_runner(arch, model, variables, content, style) if onnx and dtype == "float32" else None
    if onnx_run is not None:
        row["onnx_max_abs_diff"] = float(np.abs(jax_run["first"] - onnx_run["first"]).max())
    times = {"jax": [], "torch": [], "onnx": []}
    for _ in range(rounds):  # interleaved, so machine drift hits both frameworks alike
        times["jax"] += time_calls(jax_run["call"], runs)
        if torch_call is not None:
            times["torch"] += time_calls(torch_call, runs)
        if onnx_run is not None:
            times["onnx"] += time_calls(onnx_run["call"], runs)
    for name, values in times.items():
        if values:
            row[f"{name}_median_s"], row[f"{name}_min_s"] = statistics.median(values), min(values)
            row[f"{name}_img_per_s"] = batch / row[f"{name}_median_s"]
    if torch_call is not None:
        row.update(ratios(times["jax"], times["torch"]))
    row["summary"] = report.summary_row(
        "stylize", arch, size=side, batch=batch, dtype=dtype, flops=jax_run["flops"], jax_times=times["jax"],
        compile_s=jax_run["compile_s"], device_kind=jax.devices()[0].device_kind, torch_times=times["torch"],
        torch_device=torch_device)
    return row


def format_row(row: dict) -> str:
    text = (f"{row['arch']:8s} {row['size']:4d}x{row['size']:<4d} b{row['batch']:<2d} "
            f"JAX {row['jax_img_per_s']:7.2f} img/s (median {row['jax_median_s']:.3f} s, min {row['jax_min_s']:.3f} s,"
            f" compile {row['jax_compile_s']:.1f} s, first call {row['jax_first_call_s']:.2f} s)")
    if "torch_median_s" in row:
        text += (f" | torch {row['torch_img_per_s']:7.2f} img/s (median {row['torch_median_s']:.3f} s, "
                 f"min {row['torch_min_s']:.3f} s) | JAX/torch median {row['jax_over_torch_median']:.2f}, "
                 f"min {row['jax_over_torch_min']:.2f} | max |diff| {row['max_abs_diff']:.1e} "
                 f"(of {row['max_abs_output']:.1e})")
    if "onnx_median_s" in row:
        text += (f" | onnxruntime {row['onnx_img_per_s']:7.2f} img/s (median {row['onnx_median_s']:.3f} s, "
                 f"min {row['onnx_min_s']:.3f} s, max |diff| {row['onnx_max_abs_diff']:.1e})")
    return text


def _torch_device(threads: int) -> tuple[str | None, str]:
    """(torch device matching JAX's backend or None, the line that says which)."""
    device, why = devices.torch_device(jax.default_backend())
    if device is not None:
        try:
            import torch
        except ImportError:
            return None, "torch is not importable: JAX figures only"
        torch.set_num_threads(threads)
    return device, why


def _settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[tuple[int, int], ...]:
    if (args.size is None) != (args.batch is None):
        parser.error("give --size and --batch together")
    if args.size is not None:
        if args.size < MIN_SIDE or args.batch < 1:
            parser.error(f"--size must be at least {MIN_SIDE} and --batch positive, got {args.size}, {args.batch}")
        return ((args.size, args.batch),)
    return QUICK_SETTINGS if args.quick else FULL_SETTINGS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stylize", description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS, metavar="ARCH",
                        help=f"networks to time (default: all of {', '.join(ARCHS)})")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one round: checks that it runs")
    parser.add_argument("--size", type=int, help="one setting instead of the defaults: side in px (with --batch)")
    parser.add_argument("--batch", type=int, help="one setting instead of the defaults: batch (with --size)")
    parser.add_argument("--vgg-weights", default="imagenet", choices=WEIGHTS,
                        help="the encoder's VGG: the installed ImageNet VGG-16 (default) or random")
    parser.add_argument("--dtype", default="float32", choices=tuple(precision.DTYPES),
                        help="compute dtype of both frameworks (bfloat16: jax-ast casts, torch autocasts)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (JAX then torch; default 3, --quick 1)")
    parser.add_argument("--runs", type=int, help="timed calls per framework per round (default 3, --quick 1)")
    parser.add_argument("--no-torch", action="store_true", help="time JAX only")
    parser.add_argument("--no-channels-last", action="store_true", help="torch in its default NCHW layout")
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count() or 1,
                        help="torch intra-op threads; on an oversubscribed machine fewer threads than cores "
                             "avoid OpenMP spin-wait stalls (seen: 30x slower with 2 threads on 2 busy cores)")
    parser.add_argument("--no-mobile", action="store_true",
                        help="skip Magenta mobile vs onnxruntime (timed when magenta is among --archs)")
    parser.add_argument("--no-onnx", action="store_true", help="skip the exported graph in onnxruntime")
    parser.add_argument("--json", help="also write the result rows to this JSON file")
    args = parser.parse_args(argv)
    settings = _settings(args, parser)
    if min(value for value in (args.rounds, args.runs, 1) if value is not None) < 1:
        parser.error("--rounds and --runs must be positive")
    note = ynn_note(USER_YNN_FLAG)
    torch_device, torch_note = (None, "torch disabled (--no-torch): JAX figures only") if args.no_torch else \
        _torch_device(args.torch_threads)
    rounds = args.rounds or (1 if args.quick else 3)
    runs = args.runs or (1 if args.quick else 3)
    print(f"{note}\njax {jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()}); "
          f"os.cpu_count() = {os.cpu_count()}; {rounds} round(s) x {runs} run(s) per framework; "
          f"{args.vgg_weights} VGG weights; {args.dtype}\n{torch_note}")
    if args.vgg_weights == "random":
        print(RANDOM_WARNING, flush=True)
    if torch_device is not None:
        import torch
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"{'NCHW' if args.no_channels_last else 'channels_last'}; same weights in both; "
              f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    rows = []
    for arch in args.archs:
        if torch_device is not None and not has_twin(arch):
            print(f"{arch}: skipped (no PyTorch twin in benchmarks.torch_nets)", flush=True)
            continue
        for side, batch in settings:
            row = bench_setting(arch, side, batch, rounds=rounds, runs=runs, torch_device=torch_device,
                                channels_last=not args.no_channels_last, weights=args.vgg_weights, dtype=args.dtype,
                                onnx=not args.no_onnx)
            print(format_row(row), flush=True)
            rows.append(row)
    mobile_sides = (args.size,) if args.size else mobile_onnx.QUICK_SIDES if args.quick else mobile_onnx.SIDES
    mobile_rows = [] if args.no_mobile or "magenta" not in args.archs else mobile_onnx.main_rows(
        mobile_sides, rounds=rounds, runs=runs)
    summary = [row["summary"] for row in rows] + [line for row in mobile_rows for line in row["summary"]]
    print("\n" + report.text_table(summary))
    if args.vgg_weights == "random":
        print(RANDOM_WARNING)
    if args.json:
        with open(args.json, "w") as stream:
            json.dump({"note": note, "torch": torch_note, "vgg_weights": args.vgg_weights,
                       "machine": devices.machine_info(), "rows": rows, "mobile_rows": mobile_rows,
                       "summary": summary}, stream, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
