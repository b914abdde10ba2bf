"""Analytic FLOP counts of any JAX function from its jaxpr, for every network the benchmarks time.

`count_flops(fn, *args)` traces `fn` to a jaxpr and adds 2 x the multiply-accumulates of every
`conv_general_dilated` and `dot_general` it runs, computed from their shapes. It walks into every nested
jaxpr (jit/pjit, pmap, custom_jvp/custom_vjp, remat, cond, scan, while): a scan body counts `length`
times, a cond its most expensive branch, a while body once (its trip count is not known when tracing),
and a pmap or shard_map body once per device. Elementwise work (ReLU, norms, the optimizer) is left out: it is a
small share of these networks' arithmetic and no matrix unit runs it, so the count is the one to put
next to a device's matrix peak (docs/performance.md compares it with XLA's own cost analysis).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
from jax.extend import core as jex_core


def _conv_macs(eqn) -> int:
    """Multiply-accumulates of one conv: every output element is a dot over kernel window x input features."""
    rhs_shape = eqn.invars[1].aval.shape
    out_feature_dim = eqn.params["dimension_numbers"].rhs_spec[0]
    return math.prod(eqn.outvars[0].aval.shape) * math.prod(rhs_shape) // rhs_shape[out_feature_dim]


def _dot_macs(eqn) -> int:
    """Multiply-accumulates of one dot_general: output size x contracted size."""
    (lhs_contracting, _), _ = eqn.params["dimension_numbers"]
    lhs_shape = eqn.invars[0].aval.shape
    return math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs_shape[d] for d in lhs_contracting)


MAC_COUNTERS: dict[str, Callable] = {"conv_general_dilated": _conv_macs, "dot_general": _dot_macs}


def _sub_jaxprs(value: Any) -> list:
    """The jaxprs held by one equation parameter (a jaxpr, a closed jaxpr, or a tuple of them)."""
    if isinstance(value, jex_core.ClosedJaxpr):
        return [value.jaxpr]
    if isinstance(value, jex_core.Jaxpr):
        return [value]
    if isinstance(value, (tuple, list)):
        return [jaxpr for item in value for jaxpr in _sub_jaxprs(item)]
    return []


def jaxpr_flops(jaxpr) -> int:
    """2 x the multiply-accumulates of the convs and matmuls of `jaxpr` (a Jaxpr or ClosedJaxpr)."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name in MAC_COUNTERS:
            total += 2 * MAC_COUNTERS[name](eqn)
            continue
        if name == "cond":  # one branch runs
            total += max((jaxpr_flops(branch) for branch in eqn.params["branches"]), default=0)
            continue
        inner = sum(jaxpr_flops(sub) for value in eqn.params.values() for sub in _sub_jaxprs(value))
        if name == "scan":
            inner *= eqn.params["length"]
        elif name == "shard_map":  # the body runs on every device of the mesh (jax.pmap lowers to this)
            inner *= eqn.params["mesh"].size
        elif name == "xla_pmap":  # the body is per device (jax.pmap before it became jit + shard_map)
            inner *= eqn.params["axis_size"]
        total += inner
    return total


def count_flops(fn: Callable, *args: Any, **kwargs: Any) -> int:
    """FLOPs of the convolutions and matmuls of one call `fn(*args, **kwargs)` (traced, not run)."""
    return jaxpr_flops(jax.make_jaxpr(fn)(*args, **kwargs))


def xla_flops(jitted: Callable, *args: Any) -> float | None:
    """XLA's own count (`cost_analysis()["flops"]`, all ops) of a jitted function, or None where the
    backend gives none."""
    try:
        analysis = jitted.lower(*args).compile().cost_analysis()
    except Exception:  # noqa: BLE001 - some backends do not implement it
        return None
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    flops = (analysis or {}).get("flops")
    return float(flops) if flops is not None and flops >= 0 else None
