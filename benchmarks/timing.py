"""Timing helpers shared by the benchmarks: wall-clock seconds of repeated calls, ratios, run conditions."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

from jax_ast.xla_flags import YNN_FLAG

# torch's OpenMP threads spin-wait by default; on a busy 2-core VM that made a torch step 15-20x slower
# (3.3 s instead of 0.19 s at 32 px); sleeping waiters avoid it. An OMP_WAIT_POLICY set by the caller wins.
OMP_WAIT_POLICY = "PASSIVE"


def ynn_note(user_set: bool) -> str:
    """The report line on XLA's YNNPACK flag: whether the caller's XLA_FLAGS set it or the benchmark did."""
    if user_set:
        return f"XLA_FLAGS already sets {YNN_FLAG}; left as is"
    return f"added {YNN_FLAG}= (YNNPACK fusions off, docs/performance.md) to XLA_FLAGS"


def time_calls(call: Callable[[], Any], runs: int) -> list[float]:
    """Seconds of each of `runs` calls of `call` (the call must block until its result is ready)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def ratios(jax_times: list[float], torch_times: list[float]) -> dict[str, float]:
    """JAX/torch time ratios of the medians and of the minima (< 1: JAX is faster)."""
    return {"jax_over_torch_median": statistics.median(jax_times) / statistics.median(torch_times),
            "jax_over_torch_min": min(jax_times) / min(torch_times)}


def compile_seconds(jitted: Callable, *args: Any) -> float:
    """Seconds to lower and compile `jitted` (a `jax.jit` or `jax.pmap` function) for `args`. The calls
    that follow reuse the compiled program, so their first call times the run alone."""
    start = time.perf_counter()
    jitted.lower(*args).compile()
    return time.perf_counter() - start
