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


def compile_seconds(fn: Callable, *args: Any, **kwargs: Any) -> tuple[Callable, float]:
    """(`fn` lowered and compiled ahead of time for these arguments, the seconds that took).

    `fn` is a `jax.jit` or `jax.pmap` function; call the returned program instead of `fn`, so the compilation
    is not repeated by the first call and step times never include it. With the persistent compilation cache
    on, a cache hit shows here as a much smaller number (tracing and lowering only).
    """
    start = time.perf_counter()
    compiled = fn.lower(*args, **kwargs).compile()
    return compiled, time.perf_counter() - start


def ratios(jax_times: list[float], torch_times: list[float]) -> dict[str, float]:
    """JAX/torch time ratios of the medians and of the minima (< 1: JAX is faster)."""
    return {"jax_over_torch_median": statistics.median(jax_times) / statistics.median(torch_times),
            "jax_over_torch_min": min(jax_times) / min(torch_times)}

