"""XLA flags that jax-ast sets for speed before JAX starts (the user's own XLA_FLAGS always win).

On CPU, XLA's default YNNPACK fusion runs VGG's 3x3 convolutions 1.4-2.3x slower than XLA's own conv
emitter on AVX2 machines (measured by `benchmarks.losses` and `benchmarks.train_step`; docs/performance.md).
Turning it off has no effect on GPU or TPU backends, so entry points call `prefer_fast_cpu_convolutions()`
unconditionally.
"""

from __future__ import annotations

import os
import sys

YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"


def prefer_fast_cpu_convolutions() -> bool:
    """Add ``--xla_cpu_experimental_ynn_fusion_type=`` to XLA_FLAGS unless the user chose a value.

    Returns False (and changes nothing) when JAX's backend already started in this process, since XLA reads
    its flags only once.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if YNN_FLAG in flags:
        return True
    if "jax" in sys.modules and _backend_started():
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {YNN_FLAG}=".strip()
    return True


def _backend_started() -> bool:
    try:
        from jax._src import xla_bridge  # noqa: PLC0415
    except ImportError:
        return False
    return bool(getattr(xla_bridge, "_backends", None))


# Compiler options for one-off programs (model.init, a probe step): XLA's slow optimisation passes buy nothing
# for code that runs once, and skipping them cuts compile time (pass as `.compile(compiler_options=...)`).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
