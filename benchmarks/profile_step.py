"""Where one training step spends its time on CPU: jax-ast vs PyTorch, per op and per piece.

    python -m benchmarks.profile_step [--arch adain] [--size 128] [--batch 4] [--steps 4] [--top 12]
        [--rounds 7] [--skip-step] [--skip-pieces]

(1) The step `benchmarks.train_step` times (real ImageNet VGG-16), profiled: torch with `torch.profiler`
(self CPU time per aten op) and jax-ast with `jax.profiler.trace` (the compiled step's thunk events, grouped by
what the optimized HLO says each thunk is). XLA:CPU runs most convolution work asynchronously on its Eigen pool,
where the trace does not see it, so the JAX table shares out the synchronous thunks only. (2) The pieces the
profile points at, interleaved JAX vs torch at the step's shapes: 2x2 max pool and reflect pad (forward and the
input gradient; jax-ast's layers and the plain JAX formulations they replaced), and 3x3 convolutions (forward,
input gradient, weight gradient). Run it with nothing else on the machine and read ratios, not times.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import statistics
import sys
import tempfile
import time

from benchmarks.timing import OMP_WAIT_POLICY
from jax_ast.xla_flags import YNN_FLAG

# (category, test on (thunk name, HLO op, result shape, ops of the fused computation)), first match wins.
CATEGORIES = (
    ("max-pool backward via index reduce-windows", lambda n, op, shape, ops: n.startswith("wrapped_iota")
     or (n.startswith("wrapped_reduce-window") and shape.startswith("("))),
    ("convolutions (synchronous part)", lambda n, op, shape, ops: "convolution" in ops | {op}),
    ("spatial reductions (reduce-window blocks)", lambda n, op, shape, ops: "reduce-window" in ops | {op}),
    ("slice/concatenate (reflect pad, upsampling)", lambda n, op, shape, ops: "concatenate" in ops),
    ("dots", lambda n, op, shape, ops: "dot" in ops | {op}),
    ("transposes and copies", lambda n, op, shape, ops: bool({"transpose", "copy"} & (ops | {op}))),
    ("other reductions", lambda n, op, shape, ops: "reduce" in ops | {op}),
    ("elementwise and other", lambda n, op, shape, ops: True),
)


def _hlo_info(dump_dir: str) -> dict[str, tuple[str, str, set[str]]]:
    """{instruction name: (result shape, op, ops of its fused computation)} of the dumped step module."""
    text = max((open(p).read() for p in glob.glob(f"{dump_dir}/*after_optimizations.txt")),
               key=lambda t: t.count(" convolution("))
    bodies = {m.group(1): m.group(2) for m in re.finditer(r"^%?([\w.\-]+) .*?\{\n(.*?)\n\}", text, re.M | re.S)}
    info = {}
    for m in re.finditer(r"^\s*(?:ROOT )?%([\w.\-]+) = (.*?) ([\w\-]+)\((.*)$", text, re.M):
        name, shape, op, rest = m.groups()
        called = re.search(r"calls=%([\w.\-]+)", rest)
        body = bodies.get(called.group(1), "") if called else ""
        info.setdefault(name, (shape, op, set(re.findall(r"= \S+ ([\w\-]+)\(", body))))
    return info


def _thunk_seconds(trace_dir: str) -> collections.Counter:
    """Summed seconds per thunk name over the traced XLA:CPU threads."""
    import jax

    totals = collections.Counter()
    profile = jax.profiler.ProfileData.from_file(glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)[0])
    for plane in profile.planes:
        for line in plane.lines:
            if plane.name != "/host:CPU" or line.name == "python":
                continue
            for event in line.events:
                if not event.name.startswith(("end:", "Threadpool", "ThunkExecutor")):
                    totals[event.name] += event.duration_ns * 1e-9
    return totals


def profile_steps(args: argparse.Namespace, dump_dir: str) -> None:
    import jax
    import torch

    from benchmarks.inputs import photo_batches
    from benchmarks.train_step import _bench_config, _build_torch_step, build_jax_step

    job = dict(arch=args.arch, loss="native", weights="imagenet", batch=args.batch, size=args.size,
               dtype="float32", torch_threads=torch.get_num_threads(), channels_last=True)
    cfg = _bench_config(job)
    batches = photo_batches(args.batch, args.size)
    jax_step, initial, _ = build_jax_step(cfg, batches[0], count=False)
    torch_step = _build_torch_step(cfg, initial, job, "cpu")
    for step in (jax_step, torch_step, jax_step, torch_step):
        step(batches[0])
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for i in range(args.steps):
            torch_step(batches[i % 2])
    print(f"\n## torch, {args.steps} steps, {torch.get_num_threads()} threads: self CPU time per op")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top, max_name_column_width=50))
    trace_dir = tempfile.mkdtemp(prefix="profile_step_")
    with jax.profiler.trace(trace_dir):
        for i in range(args.steps):
            jax_step(batches[i % 2])
    seconds, info = _thunk_seconds(trace_dir), _hlo_info(dump_dir)
    total = sum(seconds.values())
    shares = collections.Counter()
    for name, value in seconds.items():
        shape, op, ops = info.get(name, ("?", "?", set()))
        shares[next(label for label, test in CATEGORIES if test(name, op, shape, ops))] += value
    print(f"\n## jax-ast, {args.steps} steps: synchronous thunks, {total / args.steps * 1e3:.0f} ms per step summed")
    print("| piece | ms per step | share |\n|---|---|---|")
    for label, value in shares.most_common():
        print(f"| {label} | {value / args.steps * 1e3:.0f} | {value / total:.0%} |")
    print("\nlargest thunks:")
    for name, value in seconds.most_common(args.top):
        print(f"  {value / total:6.1%} {value / args.steps * 1e3:7.1f} ms  {name:36s} {info.get(name, ('?',))[0][:60]}")


def _pieces(size: int, batch: int) -> dict[str, dict]:
    """{piece: {implementation: blocking zero-argument call}} at the AdaIN/VGG shapes of a `size` px step."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch
    import torch.nn.functional as F

    from jax_ast.models.layers import max_pool_2x2, reflect_pad

    rng = np.random.default_rng(0)
    normal = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    to_torch = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)  # noqa: E731

    def jax_input_grad(fn, x, grad):
        pull = jax.jit(lambda x, g: jax.vjp(fn, x)[1](g)[0])
        x, grad = jnp.asarray(x), jnp.asarray(grad)
        return lambda: pull(x, grad).block_until_ready()

    def torch_input_grad(fn, x, grad):
        x, grad = to_torch(x).requires_grad_(), to_torch(grad)
        return lambda: torch.autograd.grad(fn(x), x, grad)

    plain_pad = lambda x: jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")  # noqa: E731
    pieces = {}
    for level in range(3):
        side, channels = size >> level, 64 << level
        x = np.maximum(normal(batch, side, side, channels), 0)
        pooled = normal(batch, side // 2, side // 2, channels)
        pieces[f"max pool fwd+bwd {batch}x{side}²x{channels}"] = {
            "jax-ast": jax_input_grad(max_pool_2x2, x, pooled),
            "nn.max_pool": jax_input_grad(lambda v: nn.max_pool(v, (2, 2), strides=(2, 2)), x, pooled),
            "torch": torch_input_grad(lambda v: F.max_pool2d(v, 2, 2), x, pooled)}
        padded = normal(batch, side + 2, side + 2, channels)
        pieces[f"reflect pad fwd+bwd {batch}x{side}²x{channels}"] = {
            "jax-ast": jax_input_grad(lambda v: reflect_pad(v, 1), x, padded),
            "jnp.pad": jax_input_grad(plain_pad, x, padded),
            "torch": torch_input_grad(lambda v: F.pad(v, (1, 1, 1, 1), mode="reflect"), x, padded)}
        x, kernel, out = normal(batch, side + 2, side + 2, channels), normal(3, 3, channels, channels) * 0.05, \
            normal(batch, side, side, channels)
        conv = lambda v, k: jax.lax.conv_general_dilated(v, k, (1, 1), "VALID",  # noqa: E731
                                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        jx, jk, jo = map(jnp.asarray, (x, kernel, out))
        forward = jax.jit(conv)
        weight_grad = jax.jit(lambda v, k, g: jax.vjp(lambda k: conv(v, k), k)[1](g)[0])
        tx, to = to_torch(x), to_torch(out)
        tk = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
        backward = lambda mask: torch.ops.aten.convolution_backward(  # noqa: E731
            to, tx, tk, None, (1, 1), (0, 0), (1, 1), False, (0, 0), 1, mask)
        tag = f"{batch}x{side}² {channels}->{channels}"
        pieces[f"conv forward {tag}"] = {"jax-ast": lambda: forward(jx, jk).block_until_ready(),
                                         "torch": lambda: F.conv2d(tx, tk)}
        pieces[f"conv input gradient {tag}"] = {"jax-ast": jax_input_grad(lambda v, k=jk: conv(v, k), x, out),
                                                "torch": lambda: backward((True, False, False))}
        pieces[f"conv weight gradient {tag}"] = {"jax-ast": lambda: weight_grad(jx, jk, jo).block_until_ready(),
                                                 "torch": lambda: backward((False, True, False))}
    return pieces


def time_pieces(args: argparse.Namespace) -> None:
    pieces = _pieces(args.size, args.batch)
    print(f"\n## pieces, median ms of {args.rounds} interleaved calls (order reversed every other round)")
    print("| piece | implementation | ms | / torch |\n|---|---|---|---|")
    for piece, calls in pieces.items():
        times = {name: [] for name in calls}
        for call in calls.values():
            call()  # compile / warm up
        for round_ in range(args.rounds):
            for name in (list(calls) if round_ % 2 == 0 else list(calls)[::-1]):
                start = time.perf_counter()
                calls[name]()
                times[name].append(time.perf_counter() - start)
        medians = {name: statistics.median(values) for name, values in times.items()}
        for name, value in medians.items():
            print(f"| {piece} | {name} | {value * 1e3:.2f} | {value / medians['torch']:.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="adain", help="network whose step is profiled (adain, sanet, linear, magenta)")
    parser.add_argument("--size", type=int, default=128, help="crop size in px (a multiple of 16, >= 32)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4, help="profiled steps per framework")
    parser.add_argument("--top", type=int, default=12, help="rows of the per-op tables")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved calls per piece and implementation")
    parser.add_argument("--skip-step", action="store_true", help="only time the pieces")
    parser.add_argument("--skip-pieces", action="store_true", help="only profile the steps")
    args = parser.parse_args(argv)
    from jax_ast.archs import ARCHS  # imports JAX without starting its backend

    if args.arch not in ARCHS:
        parser.error(f"--arch {args.arch!r}: choose one of {', '.join(ARCHS)}")
    if args.size < 32 or args.size % 16:
        parser.error(f"--size {args.size}: must be a multiple of 16, at least 32")
    if min(args.batch, args.steps, args.top, args.rounds) < 1:
        parser.error("--batch, --steps, --top and --rounds must be at least 1")
    # Before JAX's backend starts: XLA reads XLA_FLAGS then (YNNPACK fusions off as elsewhere; the HLO dump names
    # the thunks), and torch reads OMP_WAIT_POLICY when its thread pool starts.
    os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)
    dump_dir = tempfile.mkdtemp(prefix="profile_step_hlo_")
    flags = os.environ.get("XLA_FLAGS", "")
    flags += "" if YNN_FLAG in flags else f" {YNN_FLAG}="
    os.environ["XLA_FLAGS"] = f"{flags} --xla_dump_to={dump_dir}".strip()
    import jax

    jax.config.update("jax_enable_compilation_cache", False)  # a cache hit would compile (and dump) nothing
    if not args.skip_step:
        profile_steps(args, dump_dir)
    if not args.skip_pieces:
        time_pieces(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
