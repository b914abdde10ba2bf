"""The one result row every benchmark reports, and its text and markdown tables.

A row is flat: what was timed (benchmark, network, size, batch, dtype, devices), the analytic FLOPs of
one call (`benchmarks.flops`), jax-ast's img/s, median step ms, compile seconds, achieved TFLOP/s and %
of the devices' bf16 peak, and, where PyTorch ran, its img/s, step ms and the JAX/torch time ratios.
`benchmarks.all` collects these rows from every benchmark into one JSON and one markdown table.
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.devices import percent_of_peak

# (key, header, format); None values print as "n/a" (no peak known, or no torch side).
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("benchmark", "benchmark", "s"), ("network", "network", "s"), ("size", "px", "d"), ("batch", "batch", "d"),
    ("dtype", "dtype", "s"), ("devices", "dev", "d"), ("gflop", "GFLOP/call", ".2f"),
    ("jax_img_s", "jax img/s", ".2f"), ("jax_ms", "jax ms", ".1f"), ("compile_s", "compile s", ".1f"),
    ("tflops", "TFLOP/s", ".3f"), ("pct_peak", "% bf16 peak", ".1f"),
    ("torch_device", "torch on", "s"), ("torch_img_s", "torch img/s", ".2f"), ("torch_ms", "torch ms", ".1f"),
    ("jax_over_torch", "jax/torch", ".2f"), ("jax_over_torch_min", "min", ".2f"),
)


def summary_row(benchmark: str, network: str, *, size: int, batch: int, dtype: str, flops: float | None,
                jax_times: list[float], compile_s: float | None, device_kind: str, devices: int = 1,
                torch_times: list[float] | None = None, torch_device: str | None = None) -> dict[str, Any]:
    """One table row from the timed seconds per call of each framework (`batch` images per call, `flops`
    per call over all `devices`)."""
    median = statistics.median(jax_times)
    tflops = None if flops is None else flops / median / 1e12
    row = {"benchmark": benchmark, "network": network, "size": size, "batch": batch, "dtype": dtype,
           "devices": devices, "gflop": None if flops is None else flops / 1e9, "jax_img_s": batch / median,
           "jax_ms": 1e3 * median, "jax_min_ms": 1e3 * min(jax_times), "compile_s": compile_s, "tflops": tflops,
           "pct_peak": percent_of_peak(tflops, device_kind, devices), "device_kind": device_kind,
           "torch_device": torch_device, "torch_img_s": None, "torch_ms": None, "jax_over_torch": None,
           "jax_over_torch_min": None}
    if torch_times:
        torch_median = statistics.median(torch_times)
        row.update(torch_img_s=batch / torch_median, torch_ms=1e3 * torch_median,
                   jax_over_torch=median / torch_median, jax_over_torch_min=min(jax_times) / min(torch_times))
    return row


def _cell(value: Any, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def text_table(rows: list[dict[str, Any]]) -> str:
    """Rows as an aligned plain-text table (jax/torch < 1: jax-ast is faster; min: ratio of the fastest calls)."""
    cells = [[header for _, header, _ in COLUMNS]]
    cells += [[_cell(row.get(key), fmt) for key, _, fmt in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths)))
                     for line in cells)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows as a markdown table with the same columns as `text_table`."""
    lines = ["| " + " | ".join(header for _, header, _ in COLUMNS) + " |",
             "|" + "|".join("---" if i < 2 or key in ("dtype", "torch_device") else "---:"
                            for i, (key, _, _) in enumerate(COLUMNS)) + "|"]
    lines += ["| " + " | ".join(_cell(row.get(key), fmt) for key, _, fmt in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)
