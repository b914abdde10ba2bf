"""Benchmark: the VGG-16 loss network and the full balanced loss with its gradient, jax-ast vs PyTorch.

    python -m benchmarks.losses [--batch 8] [--size 256] [--rounds 3] [--runs 5] [--vgg-weights random]

Prints images/s for (a) the VGG-16 forward up to relu4_3 and (b) the jitted loss (content + classic +
balanced on relu1_2/2_2/3_3/4_3, content on relu3_3) with its gradient w.r.t. the output image, for
jax-ast and for the same computation written in PyTorch on `benchmarks.torch_nets`'s VGG twin (same
weights: the real ImageNet VGG-16 installed with jax-ast, as `vgg16_caffe`, unless ``--vgg-weights``
names a file or ``random``), interleaved in the same run,
with the JAX/torch time ratio (< 1 means jax-ast is faster). Absolute numbers on a shared VM are noisy:
read the ratios, and the min next to the median.
"""

from __future__ import annotations

import argparse
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
from benchmarks.inputs import RANDOM_WARNING  # noqa: E402
from jax_ast.models.vgg import VGG  # noqa: E402
from jax_ast.pretrained import load_vgg  # noqa: E402

TAPS = L.PAPER_STYLE_LAYERS
VARIANT = "vgg16_caffe"  # max pooling, as torchvision's VGG-16


def make_jax(params, batch: int, size: int):
    net = VGG(VARIANT, taps=TAPS)
    rng = np.random.default_rng(0)
    content, style, output = (jnp.asarray(rng.uniform(size=(batch, size, size, 3)), jnp.float32) for _ in range(3))
    forward = jax.jit(lambda p, x: net.apply(p, x))

    def loss(out, p):
        terms = L.loss_terms(net, p, content, style, out)
        return jnp.mean(terms["content"] + 1e-3 * terms["balanced"] + 1e-12 * terms["classic"])

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    run_forward = lambda: jax.block_until_ready(forward(params, output))  # noqa: E731
    run_loss = lambda: jax.block_until_ready(value_and_grad(output, params))  # noqa: E731
    return run_forward, run_loss


def make_torch(params, batch: int, size: int):
    import torch

    from benchmarks.torch_nets import vgg

    torch.set_num_threads(os.cpu_count() or 1)
    encode = vgg(VARIANT, TAPS, params["params"])

    def gram(f):
        flat = f.flatten(2)
        return flat @ flat.transpose(1, 2)

    rng = np.random.default_rng(0)
    content, style, output = (torch.from_numpy(rng.uniform(size=(batch, 3, size, size)).astype(np.float32))
                              for _ in range(3))
    def loss_and_grad():
        with torch.no_grad():  # targets are recomputed every step, as in training (new batch each step)
            content_feats, style_feats = encode(content), encode(style)
        out = output.clone().requires_grad_(True)
        out_feats = encode(out)
        content_term = ((out_feats["relu3_3"] - content_feats["relu3_3"]) ** 2).mean(dim=(1, 2, 3))
        classic = balanced = 0.0
        for name in TAPS:
            a, b = gram(style_feats[name]), gram(out_feats[name])
            classic = classic + ((a - b) ** 2).mean(dim=(1, 2))
            balanced = balanced + ((a - b) ** 2).sum(dim=(1, 2)) / ((a ** 2).sum(dim=(1, 2)) + (b ** 2).sum(dim=(1, 2)))
        total = (content_term + 1e-3 * balanced + 1e-12 * classic).mean()
        (grad,) = torch.autograd.grad(total, out)
        return grad

    def run_forward():
        with torch.inference_mode():
            encode(output)

    return run_forward, loss_and_grad


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved jax/torch rounds")
    parser.add_argument("--runs", type=int, default=3, help="timed calls per round")
    parser.add_argument("--vgg-weights", default=None, help="VGG-16 weights (default: the installed ImageNet "
                                                                "VGG-16; 'random' for a seeded init)")
    args = parser.parse_args(argv)

    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, XLA_FLAGS={os.environ.get('XLA_FLAGS')!r}")
    if args.vgg_weights == "random":
        print(RANDOM_WARNING, flush=True)
    params = {"params": load_vgg(VARIANT, args.vgg_weights, taps=TAPS)[1]}
    benches = {"jax": make_jax(params, args.batch, args.size)}
    try:
        benches["torch"] = make_torch(params, args.batch, args.size)
    except ImportError:
        print("torch is not installed: printing jax-ast figures only (pip install 'jax-ast[torch]')")

    times: dict[tuple[str, str], list[float]] = {}
    for name, (forward, loss) in benches.items():  # warm-up: compile (jax) / first-call overheads (torch)
        start = time.perf_counter()
        forward(), loss()
        print(f"{name}: warm-up (compile) {time.perf_counter() - start:.1f} s")
    for round_index in range(args.rounds):
        for name, (forward, loss) in benches.items():
            times.setdefault((name, "forward"), []).extend(time_calls(forward, args.runs))
            times.setdefault((name, "loss+grad"), []).extend(time_calls(loss, args.runs))
        print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)

    print(f"\nbatch {args.batch} x {args.size}x{args.size}, {args.rounds} rounds x {args.runs} runs")
    print(f"{'what':<12}{'impl':<8}{'median s':>10}{'min s':>9}{'img/s':>9}")
    for what in ("forward", "loss+grad"):
        for name in benches:
            t = times[(name, what)]
            print(f"{what:<12}{name:<8}{np.median(t):>10.3f}{min(t):>9.3f}{args.batch / np.median(t):>9.2f}")
        if "torch" in benches:
            ratio = np.median(times[("jax", what)]) / np.median(times[("torch", what)])
            best = min(times[("jax", what)]) / min(times[("torch", what)])
            print(f"{what:<12}jax/torch time ratio: median {ratio:.2f}, best-of {best:.2f}")
    if args.vgg_weights == "random":
        print(RANDOM_WARNING)
    return 0


if __name__ == "__main__":
    sys.exit(main())
