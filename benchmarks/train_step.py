"""Benchmark of the training step: jax-ast vs PyTorch, and jax-ast's pmap scaling over CPU devices.

    python -m benchmarks.train_step [--archs adain sanet linear magenta] [--loss native|classic|balanced]
        [--batch 8] [--size 256] [--rounds 2] [--runs 3] [--devices 1 2 4 8] [--vgg-weights imagenet|random]
        [--dtype float32|bfloat16] [--quick] [--no-torch] [--torch-threads N] [--no-channels-last] [--json PATH]

For each network it times (a) the real pmapped `train.step.train_step`, built as `train.loop` builds it
(constant style weight) on the real ImageNet VGG-16 as ``--preset cpu`` trains (`benchmarks.inputs`), on 1
device next to an equivalent PyTorch step (`benchmarks.torch_train`: same layout, same weights, same loss
terms, Adam on the same trainable part, frozen encoder) and (b) the jax-ast step on 1, 2, 4 and 8 CPU
devices at the same global batch. The batches are the bundled photos. A device count
is fixed when XLA starts, so every count runs in its own worker process; the workers stay alive for the
whole network and the rounds are interleaved over all of them (and torch), so machine drift hits every
column alike. Every step is synced (its metrics fetched), as in `train.loop`. Compilation and the first
step are timed separately and excluded from the step times. Read the ratios and the min next to the
median: this VM's speed moves by up to 2x within minutes.

JAX runs on its default backend. On a GPU or TPU there is one worker, whose step runs on every visible
device (restrict them with e.g. CUDA_VISIBLE_DEVICES), and torch runs on CUDA when JAX runs on a GPU and
this torch has CUDA; otherwise jax-ast is timed alone and the output says why (`benchmarks.devices`). The
analytic FLOPs of one step (`benchmarks.flops`) give the achieved TFLOP/s and the % of the bf16 peak.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from benchmarks import report
from benchmarks.inputs import ENCODER, LOSS_NETWORK, RANDOM_WARNING, WEIGHTS, bench_config, has_twin, photo_batches
from benchmarks.timing import OMP_WAIT_POLICY, ratios, ynn_note
from jax_ast import archs
from jax_ast.archs import ARCHS
from jax_ast.configs import flat_fields
from jax_ast.precision import DTYPES
from jax_ast.xla_flags import YNN_FLAG

LOSSES = ("native", "classic", "balanced")
DEVICE_FLAG = "--xla_force_host_platform_device_count"
# With 8 devices on 2 cores, one device can reach the gradient all-reduce long before the last one at 256 px;
# XLA's default 40 s rendezvous termination would abort such a step (every step is synced, so a real
# deadlock cannot happen). A timeout set by the caller wins.
TERMINATE_FLAG, TERMINATE_S = "--xla_cpu_collective_call_terminate_timeout_seconds", 600
FULL = {"size": 256, "rounds": 2, "runs": 3, "archs": list(ARCHS)}
QUICK = {"size": 32, "rounds": 1, "runs": 2, "archs": ["adain", "linear"]}
SIZE_MULTIPLE, MIN_SIZE = 16, 32  # SANet's relu5_1 grid; >= 2x2 positions at relu5_1 for unbiased statistics
REPLY = "@@benchmarks.train_step@@ "  # marks the worker's protocol lines on stdout
REPO_ROOT = Path(__file__).resolve().parents[1]


def xla_flags(devices: int, environment: str) -> tuple[str, str]:
    """(XLA_FLAGS for a worker with `devices` CPU devices, note): YNN fusions off unless the caller chose."""
    flags = [f for f in environment.split() if not f.startswith(DEVICE_FLAG)]
    user_set = any(f.startswith(YNN_FLAG) for f in flags)
    if not user_set:
        flags.append(f"{YNN_FLAG}=")
    note = ynn_note(user_set)
    if not any(f.startswith(TERMINATE_FLAG) for f in flags):
        flags.append(f"{TERMINATE_FLAG}={TERMINATE_S}")
    return " ".join([*flags, f"{DEVICE_FLAG}={devices}"]), note


# --- worker process: one device count, one network ----------------------------------------------------

# TrainConfig's mixed-precision field; without it (before train/step.py casts), the step runs float32 only.
HAS_DTYPE_FIELD = "dtype" in flat_fields()


def _bench_config(job: dict):
    from jax_ast.configs import default_config

    style_weight = default_config(job["arch"]).objective.style_weight  # the native default, also used as a constant beta
    dtype = {"dtype": job["dtype"]} if HAS_DTYPE_FIELD else {}
    return bench_config(job["arch"], job["loss"], weights=job["weights"], batch_size=job["batch"],
                        crop_size=job["size"], style_weight=style_weight, **dtype)


def build_jax_step(cfg, first_batch: dict, count: bool = True) -> tuple:
    """The replicated train step as `train.loop` builds it: (step(batch) -> loss, initial parts for torch,
    {"flops": of one step over all devices (None unless `count`), "compile_s"})."""
    import jax

    from benchmarks.flops import count_flops
    from benchmarks.timing import compile_seconds
    from jax_ast import parallel
    from train.factory import create_run

    run = create_run(cfg)  # exactly what train.loop runs
    constants = run.with_style_weight(float(cfg.objective.style_weight))
    replicated = {"state": parallel.replicate(run.state), "constants": parallel.replicate(constants)}
    example = (replicated["state"], jax.device_put(parallel.shard(first_batch), parallel.device_axis_sharding()),
               replicated["constants"])
    # Compiled ahead of time, timed on its own (as train.loop does); the steps then call the compiled program.
    compiled, compile_s = compile_seconds(run.step_fn, *example)
    cost = {"flops": count_flops(run.step_fn, *example) if count else None, "compile_s": compile_s}

    def step(batch) -> float:
        args = (replicated["state"], jax.device_put(parallel.shard(batch), parallel.device_axis_sharding()),
                replicated["constants"])
        replicated["state"], metrics = compiled(*args)
        return float(parallel.unreplicate(metrics)["loss"])  # the host waits for every step here

    to_numpy = lambda tree: jax.tree.map(np.asarray, tree)  # noqa: E731
    loss_nets = {name: run.constants[name] for name in ("native_loss_net", "paper_loss_net")}
    initial = {"variables": to_numpy({"params": {**run.frozen, **run.state.params},
                                      "batch_stats": run.state.batch_stats}),
               "trainable": tuple(run.model.TRAINABLE), "loss_nets": to_numpy(loss_nets)}
    return step, initial, cost


def _build_torch_step(cfg, initial: dict, job: dict, device: str):
    import torch

    from benchmarks.torch_train import TorchTrainStep

    torch.set_num_threads(job["torch_threads"])
    return TorchTrainStep(cfg, initial["variables"], initial["trainable"], initial["loss_nets"],
                          float(cfg.objective.style_weight), channels_last=job["channels_last"], device=device,
                          dtype=job["dtype"])


def _timed(fn, batch) -> tuple[float, float]:
    start = time.perf_counter()
    loss = fn(batch)
    return time.perf_counter() - start, loss


def _backend() -> dict:
    """This worker's JAX backend and devices, and the torch device that matches them."""
    import jax

    from benchmarks.devices import machine_info, torch_device

    device, why = torch_device(jax.default_backend())
    return {"machine": machine_info(), "torch_device": device, "torch_note": why}


def _build(job: dict) -> tuple[dict, dict]:
    """Builds the steps of a worker (jax-ast, and torch if asked); returns (bench, reply)."""
    import jax

    cfg = _bench_config(job)
    batches = photo_batches(job["batch"], job["size"])
    start = time.perf_counter()
    jax_step, initial, cost = build_jax_step(cfg, batches[0], count=job["count_flops"])
    reply = {"devices": jax.device_count(), "jax_version": jax.__version__, "style_weight": float(cfg.objective.style_weight),
             "jax_build_s": time.perf_counter() - start, **cost}
    steps = {"jax": jax_step}
    if job["torch"]:
        import torch

        steps["torch"] = _build_torch_step(cfg, initial, job, job["torch"])
        reply.update(torch_version=torch.__version__, torch_threads=torch.get_num_threads())
    return {"steps": steps, "batches": batches, "position": 0}, reply


def _run(bench: dict, framework: str, runs: int) -> tuple[list[float], list[float]]:
    """(seconds, loss) of `runs` steps, cycling through the batches."""
    times, losses = [], []
    for _ in range(runs):
        seconds, loss = _timed(bench["steps"][framework], bench["batches"][bench["position"] % len(bench["batches"])])
        times.append(seconds)
        losses.append(loss)
        bench["position"] += 1
    return times, losses


def worker_main() -> int:
    """Serves JSON commands on stdin, one JSON reply line each: {"cmd": "backend"}, {"cmd": "build", "job": ...},
    {"cmd": "warmup"} (first step of each framework on batch 0), {"cmd": "run", "framework", "runs"} and
    {"cmd": "quit"}."""
    def send(message: dict) -> None:
        print(REPLY + json.dumps(message), flush=True)

    bench = None
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["cmd"] == "quit":
                return 0
            if command["cmd"] == "backend":
                send(_backend())
            elif command["cmd"] == "build":
                bench, reply = _build(command["job"])
                send(reply)
            elif command["cmd"] == "warmup":
                reply = {}
                for framework in bench["steps"]:
                    bench["position"] = 0  # every framework's first step: same state, same batch
                    (reply[f"{framework}_warmup_s"],), (reply[f"{framework}_first_loss"],) = _run(bench, framework, 1)
                send(reply)
            else:
                times, losses = _run(bench, command["framework"], command["runs"])
                send({"times": times, "last_loss": losses[-1]})
        except Exception:  # noqa: BLE001 - reported to the parent, which raises
            send({"error": traceback.format_exc()})
            return 1
    return 0


# --- parent: workers, interleaved rounds, tables ------------------------------------------------------

class Worker:
    """A worker process with `devices` CPU devices; stderr goes to a temporary file shown on failure."""

    def __init__(self, devices: int):
        self.devices = devices
        env = dict(os.environ)
        env.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)
        # On a GPU, torch shares the device with XLA in the same worker: XLA takes memory as it needs it
        # instead of 75% of the device up front. A value set by the caller wins.
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        env["XLA_FLAGS"] = xla_flags(devices, os.environ.get("XLA_FLAGS", ""))[0]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen([sys.executable, "-m", "benchmarks.train_step", "--worker"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env,
                                        cwd=REPO_ROOT)

    def request(self, command: dict) -> dict:
        self.send(command)
        return self.receive()

    def send(self, command: dict) -> None:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict:
        for line in self.process.stdout:
            if line.startswith(REPLY):
                reply = json.loads(line[len(REPLY):])
                if "error" in reply:
                    raise RuntimeError(f"benchmark worker ({self.devices} devices) failed:\n{reply['error']}")
                return reply
        self.stderr.seek(0)
        tail = self.stderr.read()[-3000:]
        raise RuntimeError(f"benchmark worker ({self.devices} devices) exited with {self.process.wait()}:\n{tail}")

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.process.stdin.close()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self.stderr.close()


def _stats(times: list[float], batch: int) -> dict:
    median = statistics.median(times)
    return {"median_s": median, "min_s": min(times), "steps_per_s": 1.0 / median, "img_per_s": batch / median,
            "times_s": times}


def probe_backend() -> tuple[Worker, dict]:
    """(a 1-device worker, {"machine", "torch_device", "torch_note"} of its JAX); `bench_arch` reuses it."""
    worker = Worker(1)
    try:
        return worker, worker.request({"cmd": "backend"})
    except BaseException:
        worker.close()
        raise


def bench_arch(arch: str, args: argparse.Namespace, torch_device: str | None, device_kind: str,
               one_device: Worker | None = None) -> dict:
    """Times one network on every device count (and torch on 1 device, on `torch_device`), in new workers
    (or, for 1 device, `one_device`); closes them; returns the network's row."""
    size = max(args.size, archs.get(arch).min_crop)  # e.g. Magenta's Inception needs >= 43 px
    counts = sorted(set(args.devices) | {1})
    job = {"arch": arch, "loss": args.loss, "batch": args.batch, "size": size, "weights": args.vgg_weights,
           "dtype": args.dtype, "torch": None,
           "torch_threads": args.torch_threads, "channels_last": not args.no_channels_last}
    use_torch = torch_device is not None
    # The 1-device worker counts the FLOPs: the same global batch costs the same on every device count.
    jobs = {n: dict(job, torch=torch_device if n == 1 else None, count_flops=n == 1) for n in counts}
    workers = {1: one_device} if one_device is not None else {}
    try:
        workers.update({n: Worker(n) for n in counts if n not in workers})
        for worker in workers.values():  # parameter init overlaps; the step compiles run one at a time
            worker.send({"cmd": "build", "job": jobs[worker.devices]})
        setup = {n: w.receive() for n, w in workers.items()}
        setup = {n: {**setup[n], **w.request({"cmd": "warmup"})} for n, w in workers.items()}
        times = {n: [] for n in counts} | ({"torch": []} if use_torch else {})
        for _ in range(args.rounds):  # interleaved: every device count, then torch, each round
            for n in counts:
                times[n] += workers[n].request({"cmd": "run", "framework": "jax", "runs": args.runs})["times"]
            if use_torch:
                times["torch"] += workers[1].request({"cmd": "run", "framework": "torch", "runs": args.runs})["times"]
    finally:
        for worker in workers.values():
            worker.close()
    one = setup[1]
    row = {"arch": arch, "loss": args.loss, "size": size, "batch": args.batch, "dtype": args.dtype,
           "style_weight": one["style_weight"],
           "jax": {**_stats(times[1], args.batch), "warmup_s": one["jax_warmup_s"], "build_s": one["jax_build_s"],
                   "compile_s": one["compile_s"], "flops": one["flops"], "first_loss": one["jax_first_loss"]},
           "devices": {}}
    summary = []
    for n in counts:
        if n in args.devices:
            row["devices"][str(n)] = {**_stats(times[n], args.batch), "warmup_s": setup[n]["jax_warmup_s"],
                                      "compile_s": setup[n]["compile_s"], "first_loss": setup[n]["jax_first_loss"],
                                      "over_1_device": statistics.median(times[1]) / statistics.median(times[n])}
        if n in args.devices or n == 1:
            with_torch = use_torch and n == 1
            summary.append(report.summary_row(
                "train_step", arch, size=size, batch=args.batch, dtype=args.dtype, flops=one["flops"],
                jax_times=times[n], compile_s=setup[n]["compile_s"], device_kind=device_kind,
                devices=setup[n]["devices"], torch_times=times["torch"] if with_torch else None,
                torch_device=torch_device if with_torch else None))
    row["summary"] = summary
    if use_torch:
        row["torch"] = {**_stats(times["torch"], args.batch), "warmup_s": one["torch_warmup_s"],
                        "first_loss": one["torch_first_loss"]}
        row.update(ratios(times[1], times["torch"]))
        row["first_loss_rel_diff"] = abs(one["jax_first_loss"] - one["torch_first_loss"]) / max(
            abs(one["torch_first_loss"]), 1e-30)
    row["versions"] = {k: v for k, v in one.items() if k.endswith(("_version", "_threads"))}
    return row


def format_tables(rows: list[dict], devices: list[int]) -> str:
    """The two result tables: 1 device jax-ast (vs torch), and jax-ast img/s per device count."""
    with_torch = any("torch" in row for row in rows)
    lines = ["1 worker" + (", jax-ast vs PyTorch" if with_torch else ", jax-ast") + ": step time median [min] s; "
             "warm-up = first step after compiling (excluded)",
             f"{'arch':8s} {'jax steps/s':>11s} {'img/s':>7s} {'median [min] s':>16s} {'warm-up':>8s}"]
    if with_torch:
        lines[-1] += (f" | {'torch steps/s':>13s} {'img/s':>7s} {'median [min] s':>16s} {'warm-up':>8s} | "
                      f"{'JAX/torch med':>13s} {'min':>5s} | first-step loss rel diff")
    for row in rows:
        j = row["jax"]
        text = (f"{row['arch']:8s} {j['steps_per_s']:11.3f} {j['img_per_s']:7.2f} "
                f"{j['median_s']:7.3f} [{j['min_s']:6.3f}] {j['warmup_s']:7.1f}s")
        if with_torch:
            t = row["torch"]
            text += (f" | {t['steps_per_s']:13.3f} {t['img_per_s']:7.2f} {t['median_s']:7.3f} [{t['min_s']:6.3f}] "
                     f"{t['warmup_s']:7.1f}s | {row['jax_over_torch_median']:13.2f} {row['jax_over_torch_min']:5.2f} | "
                     f"{row['first_loss_rel_diff']:.1e}")
        lines.append(text)
    lines += ["", "jax-ast data parallel (pmap over CPU devices), same global batch: img/s (x vs 1 device)",
              f"{'arch':8s} " + " ".join(f"{f'{n} device' + 's' * (n > 1):>17s}" for n in devices)]
    for row in rows:
        cells = [row["devices"][str(n)] for n in devices]
        lines.append(f"{row['arch']:8s} " + " ".join(f"{c['img_per_s']:9.2f} ({c['over_1_device']:4.2f}x)"
                                                      for c in cells))
    return "\n".join(lines)


def _torch_importable() -> bool:
    return importlib.util.find_spec("torch") is not None


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_step", description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", choices=ARCHS, metavar="ARCH",
                        help=f"networks (default: all of {', '.join(ARCHS)}; --quick: {' '.join(QUICK['archs'])})")
    parser.add_argument("--loss", default="native", choices=LOSSES, help="training objective (default native)")
    parser.add_argument("--batch", type=int, default=8, help="global batch, split over the devices (default 8)")
    parser.add_argument("--size", type=int, help=f"crop side in px (default {FULL['size']}; --quick {QUICK['size']}; "
                        "at least each network's smallest crop, e.g. Magenta's 43)")
    parser.add_argument("--rounds", type=int, help=f"interleaved rounds (default {FULL['rounds']}; --quick 1)")
    parser.add_argument("--runs", type=int, help=f"timed steps per column per round (default {FULL['runs']}; "
                        f"--quick {QUICK['runs']})")
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8],
                        help="CPU device counts for pmap (on a GPU or TPU: one worker on every visible device)")
    parser.add_argument("--dtype", default="float32", choices=tuple(DTYPES),
                        help="compute dtype of both steps (bfloat16: convolutions in bf16, master weights, "
                             "optimizer state and losses in float32)")
    parser.add_argument("--vgg-weights", default="imagenet", choices=WEIGHTS,
                        help="VGG encoder and loss networks: the installed ImageNet VGG-16 (default) or random")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round: checks that it runs")
    parser.add_argument("--no-torch", action="store_true", help="time jax-ast only")
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count() or 1, help="torch intra-op threads")
    parser.add_argument("--no-channels-last", action="store_true", help="torch in its default NCHW layout")
    parser.add_argument("--json", help="also write the settings and result rows to this JSON file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.size < MIN_SIZE or args.size % SIZE_MULTIPLE:
        parser.error(f"--size must be a multiple of {SIZE_MULTIPLE} and at least {MIN_SIZE}, got {args.size}")
    if min(args.batch, args.rounds, args.runs, *args.devices) < 1:
        parser.error("--batch, --rounds, --runs and --devices must be positive")
    if args.dtype != "float32" and not HAS_DTYPE_FIELD:
        parser.error(f"--dtype {args.dtype}: this jax-ast's TrainConfig has no dtype field (train.step runs float32 only)")
    uneven = [n for n in args.devices if args.batch % n]
    if uneven:
        parser.error(f"--batch {args.batch} does not split evenly over {uneven} devices")
    args.devices = sorted(set(args.devices))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main()
    spare, probe = probe_backend()
    machine = probe["machine"]
    if args.no_torch or not _torch_importable():
        torch_device = None
        torch_note = "torch " + ("disabled (--no-torch)" if args.no_torch else "is not importable") + ": jax-ast only"
    else:
        torch_device, torch_note = probe["torch_device"], probe["torch_note"]
    if machine["backend"] != "cpu" and args.devices != [1]:
        print(f"on {machine['backend']}, one worker runs the step on all {machine['device_count']} visible "
              f"device(s); --devices {' '.join(map(str, args.devices))} applies to CPU devices only")
        args.devices = [1]
    note = xla_flags(1, os.environ.get("XLA_FLAGS", ""))[1]
    note += f"; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', OMP_WAIT_POLICY)} in the workers"
    print(f"train-step benchmark: loss={args.loss}, {args.size}x{args.size}, global batch {args.batch}, {args.dtype}, "
          f"{args.rounds} round(s) x {args.runs} step(s) per column; {args.vgg_weights} VGG weights "
          f"(encoder {ENCODER}, loss network {LOSS_NETWORK}), constant style weight\n"
          f"jax {machine['jax']} on {machine['device_kind']} ({machine['backend']}); {torch_note}\n"
          f"{note}; os.cpu_count() = {os.cpu_count()}", flush=True)
    if args.vgg_weights == "random":
        print(RANDOM_WARNING, flush=True)
    rows = []
    for arch in args.archs:
        if torch_device is not None and not has_twin(arch):
            print(f"{arch}: skipped (no PyTorch twin in benchmarks.torch_nets)", file=sys.stderr, flush=True)
            continue
        rows.append(bench_arch(arch, args, torch_device, machine["device_kind"], one_device=spare))
        spare = None  # bench_arch closed it
        versions = ", ".join(f"{k} {v}" for k, v in rows[-1]["versions"].items())
        print(f"{arch}: done ({versions})", file=sys.stderr, flush=True)
    print(format_tables(rows, args.devices))
    summary = [line for row in rows for line in row["summary"]]
    print("\n" + report.text_table(summary))
    if args.vgg_weights == "random":
        print(RANDOM_WARNING)
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k not in ("json", "worker")}
        with open(args.json, "w") as stream:
            json.dump({"settings": settings, "torch": torch_device is not None, "torch_device": torch_device,
                       "torch_note": torch_note, "note": note, "machine": machine, "rows": rows,
                       "summary": summary}, stream, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
