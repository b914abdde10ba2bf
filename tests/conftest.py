"""Test setup: 8 fake CPU devices, set before JAX initialises its backend."""

import os
import tempfile

_FLAGS = ("--xla_force_host_platform_device_count=8",
          # A stuck collective aborts in ~10 s instead of 40 s (docs/parallelism.md).
          "--xla_cpu_collective_call_warn_stuck_timeout_seconds=3",
          "--xla_cpu_collective_call_terminate_timeout_seconds=8")
_existing = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = " ".join([_existing, *[f for f in _FLAGS if f.split("=")[0] not in _existing]]).strip()
# The tests never download; the ImageNet VGG-16 from the installed wheel is converted once into this cache.
os.environ.setdefault("JAX_AST_CACHE", os.path.join(tempfile.gettempdir(), "jax_ast_test_cache"))
# The entry points keep compiled programs in $JAX_AST_CACHE/xla; the tests compile fresh (test_compilation_cache.py
# turns it on in a folder of its own).
os.environ["JAX_AST_NO_COMPILATION_CACHE"] = "1"

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")


import gc  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Each module compiles many programs (new closures per test): drop them afterwards so the
    suite's memory stays bounded on a 24 GiB CI machine."""
    yield
    jax.clear_caches()
    gc.collect()
