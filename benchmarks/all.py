"""Every benchmark in one command, on any machine: ``python -m benchmarks.all [--quick] [--out bench]``.

Runs each benchmark of `REGISTRY` in its own process (a TPU admits one process at a time, and a crash or
a time-out stops one benchmark, not the run), with ``--json``, and collects the result rows they all
report (`benchmarks.report`: img/s, step ms, compile s, TFLOP/s, % of bf16 peak, PyTorch and the ratio)
into ``<out>/results.json`` and ``<out>/results.md`` with the machine (device kind, versions, XLA_FLAGS).
Each benchmark's own output goes to ``<out>/logs/<name>.log``. ``--quick`` uses small sizes (minutes on a
CPU, seconds on a GPU); without it, the settings the issue's targets name (256 px, batch 32 training).
To add a benchmark, append a `Benchmark` to `REGISTRY`: its module must take ``--json PATH`` and write
{"summary": [report rows], "machine": ...} there.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from jax_ast.archs import ARCHS
from jax_ast.precision import DTYPES

REPO_ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ("archs", "size", "batch", "rounds", "runs", "dtype")  # what a command line may override


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """One benchmark module and its settings per profile ({flag name: value, True for a bare flag}; a
    setting it lacks is never passed, so an override of it does not apply). `extra`: arguments in both."""

    name: str
    module: str
    quick: dict[str, Any]
    full: dict[str, Any]
    extra: tuple[str, ...] = ()

    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def argv(self, quick: bool, overrides: dict[str, Any]) -> list[str]:
        settings = self.quick if quick else self.full
        argv = list(self.extra)
        for key, default in settings.items():
            value = overrides.get(key) if overrides.get(key) is not None else default
            if value is True:
                argv.append(f"--{key}")
            else:
                argv += [f"--{key}", *map(str, value)] if isinstance(value, (list, tuple)) else [f"--{key}", str(value)]
        return argv


REGISTRY: tuple[Benchmark, ...] = (
    Benchmark("train_step", "benchmarks.train_step", extra=("--devices", "1"),
              quick={"archs": ARCHS, "size": 32, "batch": 4, "rounds": 1, "runs": 2, "dtype": "float32"},
              full={"archs": ARCHS, "size": 256, "batch": 32, "rounds": 2, "runs": 5, "dtype": "float32"}),
    Benchmark("stylize", "benchmarks.stylize",
              quick={"archs": ARCHS, "size": 64, "batch": 2, "rounds": 1, "runs": 2, "dtype": "float32"},
              full={"archs": ARCHS, "size": 256, "batch": 32, "rounds": 3, "runs": 5, "dtype": "float32"}),
    Benchmark("losses", "benchmarks.losses",
              quick={"size": 64, "batch": 2, "rounds": 1, "runs": 2, "dtype": "float32"},
              full={"size": 256, "batch": 32, "rounds": 3, "runs": 5, "dtype": "float32"}),
    Benchmark("eval_cache", "benchmarks.eval_cache", quick={"quick": True}, full={}),
)
NAMES = tuple(b.name for b in REGISTRY)


def run_benchmark(bench: Benchmark, argv: list[str], out: Path, timeout_s: float) -> dict[str, Any]:
    """Runs one benchmark process; returns {"name", "argv", "status", "seconds", "rows", "machine", "log"}."""
    json_path, log_path = out / "raw" / f"{bench.name}.json", out / "logs" / f"{bench.name}.log"
    command = [sys.executable, "-m", bench.module, *argv, "--json", str(json_path)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # torch shares a GPU with XLA in these processes
    result = {"name": bench.name, "argv": argv, "log": str(log_path.relative_to(out)), "rows": [], "machine": None}
    start = time.perf_counter()
    with open(log_path, "w") as log:
        try:
            code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT,
                                  timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            code = None
    result["seconds"] = time.perf_counter() - start
    if code is None:
        result["status"] = f"timed out after {timeout_s:.0f} s"
    elif code != 0:
        result["status"] = f"failed (exit {code}): {_last_line(log_path)}"
    else:
        written = json.loads(json_path.read_text())
        result.update(status="ok", rows=written.get("summary", []), machine=written.get("machine"))
        if not result["rows"]:
            result["status"] = "ok, but it wrote no summary rows"
    return result


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][-300:] if lines else "(no output)"


def markdown(results: dict[str, Any]) -> str:
    """results.md: the machine, the command, one table of every row, and each benchmark's status."""
    machine = results["machine"] or {}
    lines = [f"# jax-ast benchmarks, {results['started']}", "",
             f"`{results['command']}` ({results['seconds']:.0f} s)", ""]
    lines += [f"- {key}: `{machine.get(key)}`" for key in
              ("device_kind", "backend", "device_count", "peak_bf16_tflops", "jax", "jaxlib", "torch", "torch_cuda",
               "python", "platform", "cpu_count", "XLA_FLAGS")]
    lines += ["", report.markdown_table([row for bench in results["benchmarks"] for row in bench["rows"]]), "",
              "jax/torch: median step time ratio (< 1: jax-ast is faster); min: the same for the fastest calls. "
              "GFLOP/call: convolutions and matmuls only (`benchmarks.flops`), over all devices.", ""]
    lines += [f"- {b['name']}: {b['status']} ({b['seconds']:.0f} s; `{' '.join(b['argv'])}`; log {b['log']})"
              for b in results["benchmarks"]]
    return "\n".join(lines) + "\n"


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.all", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few rounds (minutes on a CPU)")
    parser.add_argument("--out", default="bench", help="directory for results.json, results.md, logs/ (default bench)")
    parser.add_argument("--benchmarks", nargs="+", choices=NAMES, default=list(NAMES), metavar="NAME",
                        help=f"which to run (default all: {', '.join(NAMES)}; missing modules are skipped)")
    parser.add_argument("--archs", nargs="+", choices=ARCHS, metavar="ARCH", help="networks, for every benchmark")
    parser.add_argument("--size", type=int, help="side in px, for every benchmark")
    parser.add_argument("--batch", type=int, help="batch, for every benchmark")
    parser.add_argument("--rounds", type=int, help="interleaved rounds, for every benchmark")
    parser.add_argument("--runs", type=int, help="timed calls per round, for every benchmark")
    parser.add_argument("--dtype", choices=tuple(DTYPES), help="compute dtype, for every benchmark (default float32)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark (default 1800)")
    args = parser.parse_args(argv)
    if min(v for v in (args.size, args.batch, args.rounds, args.runs, args.timeout, 1) if v is not None) < 1:
        parser.error("--size, --batch, --rounds, --runs and --timeout must be positive")
    out = Path(args.out)
    taken = [name for name in ("results.json", "results.md", "logs", "raw") if (out / name).exists()]
    if taken:
        parser.error(f"{out} already holds {', '.join(taken)}; choose another --out (nothing is overwritten)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "raw").mkdir(exist_ok=True)
    overrides = {key: getattr(args, key) for key in SETTINGS}
    started = datetime.datetime.now(datetime.timezone.utc)
    command = "python -m benchmarks.all " + " ".join(sys.argv[1:] if argv is None else argv)
    results = {"command": command, "started": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": None,
               "benchmarks": []}
    for bench in REGISTRY:
        if bench.name not in args.benchmarks:
            continue
        if not bench.available():
            print(f"{bench.name}: skipped ({bench.module} is not in this checkout)", flush=True)
            continue
        bench_argv = bench.argv(args.quick, overrides)
        print(f"{bench.name}: python -m {bench.module} {' '.join(bench_argv)}", flush=True)
        result = run_benchmark(bench, bench_argv, out, args.timeout)
        machine = result.pop("machine")
        results["machine"] = results["machine"] or machine
        results["benchmarks"].append(result)
        print(f"{bench.name}: {result['status']} in {result['seconds']:.0f} s", flush=True)
    results["seconds"] = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "results.md").write_text(markdown(results))
    print("\n" + report.text_table([row for bench in results["benchmarks"] for row in bench["rows"]]))
    print(f"\nwrote {out / 'results.json'} and {out / 'results.md'}")
    return 0 if all(b["status"].startswith("ok") for b in results["benchmarks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
