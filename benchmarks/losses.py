"""Benchmark: the VGG-16 loss network and the full balanced loss with its gradient, jax-ast vs PyTorch.

    python -m benchmarks.losses [--batch 8] [--size 256] [--rounds 3] [--runs 3] [--vgg-weights random]
        [--dtype float32|bfloat16] [--quick] [--no-torch] [--json PATH]

Prints images/s for (a) the VGG-16 forward up to relu4_3 and (b) the jitted loss (content + classic +
balanced on relu1_2/2_2/3_3/4_3, content on relu3_3) with its gradient w.r.t. the output image, for
jax-ast and for the same computation written in PyTorch on `benchmarks.torch_nets`'s VGG twin (same
weights: the real ImageNet VGG-16 installed with jax-ast, as `vgg16_caffe`, unless ``--vgg-weights``
names a file or ``random``), interleaved in the same run,
with the JAX/torch time ratio (< 1 means jax-ast is faster), the analytic FLOPs of one call
(`benchmarks.flops`) as achieved TFLOP/s and % of the device's bf16 peak, and the compile time. JAX runs on
its default device; torch on the CPU or on CUDA to match it (`benchmarks.devices.torch_device`; none: jax-ast
alone). ``--dtype bfloat16`` runs the VGG in bf16 in both (jax-ast: parameters and images cast; torch:
autocast). Absolute numbers on a shared VM are noisy: read the ratios, and the min next to the median.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

from benchmarks.timing import OMP_WAIT_POLICY, time_calls
from jax_ast.xla_flags import prefer_fast_cpu_convolutions

prefer_fast_cpu_convolutions()  # before JAX starts; docs/performance.md
os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)  # before torch starts its OpenMP threads

import numpy as np  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import jax_ast.losses as L  # noqa: E402
from benchmarks import devices, report  # noqa: E402
from benchmarks.flops import count_flops  # noqa: E402
from benchmarks.inputs import RANDOM_WARNING  # noqa: E402
from benchmarks.timing import compile_seconds  # noqa: E402
from jax_ast import precision  # noqa: E402
from jax_ast.models.vgg import VGG  # noqa: E402
from jax_ast.pretrained import load_vgg  # noqa: E402

TAPS = L.PAPER_STYLE_LAYERS
VARIANT = "vgg16_caffe"  # max pooling, as torchvision's VGG-16
WHAT = ("forward", "loss+grad")
QUICK = {"batch": 2, "size": 64, "rounds": 1, "runs": 2}
FULL = {"batch": 8, "size": 256, "rounds": 3, "runs": 3}


def make_jax(params, batch: int, size: int, dtype: str = "float32") -> dict[str, dict]:
    """{what: {"call", "flops", "compile_s"}} for the VGG forward and the loss with its gradient, in `dtype`
    (the parameters and images cast; the loss network's features are what the losses get)."""
    net = VGG(VARIANT, taps=TAPS)
    rng = np.random.default_rng(0)
    images = [jnp.asarray(rng.uniform(size=(batch, size, size, 3)), jnp.float32) for _ in range(3)]
    params, (content, style, output) = precision.cast_floating((params, images), precision.parse_dtype(dtype))
    forward = jax.jit(lambda p, x: net.apply(p, x))

    def loss(out, p):
        terms = L.loss_terms(net, p, content, style, out)
        return jnp.mean(terms["content"] + 1e-3 * terms["balanced"] + 1e-12 * terms["classic"])

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    runs = {}
    for what, fn, args in (("forward", forward, (params, output)), ("loss+grad", value_and_grad, (output, params))):
        compiled, compile_s = compile_seconds(fn, *args)
        runs[what] = {"call": lambda fn=compiled, args=args: jax.block_until_ready(fn(*args)),
                      "flops": count_flops(fn, *args), "compile_s": compile_s}
    return runs


def make_torch(params, batch: int, size: int, device: str = "cpu", dtype: str = "float32"):
    import torch

    from benchmarks.torch_nets import vgg

    torch.set_num_threads(os.cpu_count() or 1)
    encode = vgg(VARIANT, TAPS, params["params"]).to(device)
    autocast = torch.autocast(device, dtype=torch.bfloat16) if dtype == "bfloat16" else contextlib.nullcontext()

    def gram(f):
        flat = f.flatten(2)
        return flat @ flat.transpose(1, 2)

    rng = np.random.default_rng(0)
    content, style, output = (torch.from_numpy(rng.uniform(size=(batch, 3, size, size)).astype(np.float32)).to(device)
                              for _ in range(3))

    def loss_and_grad():
        with torch.no_grad(), autocast:  # targets are recomputed every step, as in training (new batch each step)
            content_feats, style_feats = encode(content), encode(style)
        out = output.clone().requires_grad_(True)
        with autocast:
            out_feats = encode(out)
        content_feats, style_feats, out_feats = ({k: v.float() for k, v in feats.items()}
                                                 for feats in (content_feats, style_feats, out_feats))
        content_term = ((out_feats["relu3_3"] - content_feats["relu3_3"]) ** 2).mean(dim=(1, 2, 3))
        classic = balanced = 0.0
        for name in TAPS:
            a, b = gram(style_feats[name]), gram(out_feats[name])
            classic = classic + ((a - b) ** 2).mean(dim=(1, 2))
            balanced = balanced + ((a - b) ** 2).sum(dim=(1, 2)) / ((a ** 2).sum(dim=(1, 2)) + (b ** 2).sum(dim=(1, 2)))
        total = (content_term + 1e-3 * balanced + 1e-12 * classic).mean()
        (grad,) = torch.autograd.grad(total, out)
        devices.sync_torch(device)
        return grad

    def run_forward():
        with torch.inference_mode(), autocast:
            encode(output)
        devices.sync_torch(device)

    return {"forward": run_forward, "loss+grad": loss_and_grad}


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.losses", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, help=f"images per call (default {FULL['batch']}; --quick {QUICK['batch']})")
    parser.add_argument("--size", type=int, help=f"side in px (default {FULL['size']}; --quick {QUICK['size']})")
    parser.add_argument("--rounds", type=int, help=f"interleaved jax/torch rounds (default {FULL['rounds']})")
    parser.add_argument("--runs", type=int, help=f"timed calls per round (default {FULL['runs']})")
    parser.add_argument("--quick", action="store_true", help="small size, one round: checks that it runs")
    parser.add_argument("--dtype", default="float32", choices=tuple(precision.DTYPES),
                        help="compute dtype of the VGG in both frameworks")
    parser.add_argument("--no-torch", action="store_true", help="time jax-ast only")
    parser.add_argument("--json", help="also write the settings, machine and result rows to this JSON file")
    parser.add_argument("--vgg-weights", default=None, help="VGG-16 weights (default: the installed ImageNet "
                                                                "VGG-16; 'random' for a seeded init)")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if min(args.batch, args.rounds, args.runs) < 1 or args.size < 16:
        parser.error("--batch, --rounds and --runs must be positive and --size at least 16")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    kind = jax.devices()[0].device_kind
    torch_device, torch_note = (None, "torch disabled (--no-torch): jax-ast only") if args.no_torch else \
        devices.torch_device(jax.default_backend())
    print(f"jax {jax.__version__} on {kind} ({jax.default_backend()}), XLA_FLAGS={os.environ.get('XLA_FLAGS')!r}; "
          f"{args.dtype}\n{torch_note}")
    if args.vgg_weights == "random":
        print(RANDOM_WARNING, flush=True)
    params = {"params": load_vgg(VARIANT, args.vgg_weights, taps=TAPS)[1]}
    jax_runs = make_jax(params, args.batch, args.size, args.dtype)
    benches = {"jax": {what: run["call"] for what, run in jax_runs.items()}}
    if torch_device is not None:
        try:
            benches["torch"] = make_torch(params, args.batch, args.size, torch_device, args.dtype)
        except ImportError:
            torch_device = None
            print("torch is not installed: printing jax-ast figures only (pip install 'jax-ast[torch]')")

    times: dict[tuple[str, str], list[float]] = {}
    for name, calls in benches.items():  # warm-up: first call after compiling (jax) / first-call overheads (torch)
        start = time.perf_counter()
        for call in calls.values():
            call()
        print(f"{name}: first calls {time.perf_counter() - start:.1f} s")
    for round_index in range(args.rounds):
        for name, calls in benches.items():
            for what in WHAT:
                times.setdefault((name, what), []).extend(time_calls(calls[what], args.runs))
        print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)

    print(f"\nVGG-16 ({VARIANT}) batch {args.batch} x {args.size}x{args.size}, {args.rounds} rounds x {args.runs} runs")
    summary = [report.summary_row(
        "losses", f"vgg16 {what}", size=args.size, batch=args.batch, dtype=args.dtype, flops=jax_runs[what]["flops"],
        jax_times=times[("jax", what)], compile_s=jax_runs[what]["compile_s"], device_kind=kind,
        torch_times=times.get(("torch", what)), torch_device=torch_device) for what in WHAT]
    print(report.text_table(summary))
    if args.vgg_weights == "random":
        print(RANDOM_WARNING)
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        with open(args.json, "w") as stream:
            json.dump({"settings": settings, "torch": torch_note, "machine": devices.machine_info(),
                       "times_s": {f"{name} {what}": t for (name, what), t in times.items()},
                       "summary": summary}, stream, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
