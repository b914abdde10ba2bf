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
# Compiled programs are kept as the entry points keep them by default (jax_ast/compilation_cache.py), but in a
# folder made empty for this session and shared by its xdist workers and every subprocess the tests start: a
# program compiled twice in one session (same network, shapes and devices in another test or process) is read
# back instead. Nothing carries over between sessions, and the user's cache is never touched.
_SESSION_XLA_CACHE = None
if "JAX_AST_XLA_CACHE" not in os.environ:  # the controller (or the only process); the workers inherit it
    _SESSION_XLA_CACHE = tempfile.mkdtemp(prefix="jax_ast_test_xla_")
    os.environ["JAX_AST_XLA_CACHE"] = _SESSION_XLA_CACHE


def _preload_tcmalloc() -> None:
    """Run the xdist workers and every subprocess the tests start on tcmalloc when Debian's
    libtcmalloc-minimal4 is installed (`.ci/run` installs it): XLA's compiler spends about a tenth of its time
    in glibc's malloc, and the suite is mostly compilation (docs/performance.md, "Sixth pass"). The allocator
    changes no number. This process is not switched (the loader reads LD_PRELOAD only at start; with xdist it
    runs no test). An LD_PRELOAD already set, even to nothing, is kept."""
    if "LD_PRELOAD" in os.environ:
        return
    import ctypes.util  # noqa: PLC0415

    library = ctypes.util.find_library("tcmalloc_minimal")
    if library:
        os.environ["LD_PRELOAD"] = library
        # tcmalloc reports every allocation over 1 GiB on stderr; the tests read subprocesses' stderr.
        os.environ.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 40))


_preload_tcmalloc()

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

from jax_ast import compilation_cache  # noqa: E402

compilation_cache.enable()


import collections  # noqa: E402
import gc  # noqa: E402
import shutil  # noqa: E402

import pytest  # noqa: E402

# The plain `python -m pytest` runs the suite on this many pytest-xdist workers, one test file per worker at a
# time (module fixtures and each file's subprocesses stay in one process); `-n N` chooses, `-n 0` or
# `-p no:xdist` runs everything in this process.
WORKERS = 2


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """`-n 2 --dist loadfile` unless the command line says otherwise (runs before xdist reads them)."""
    option = config.option
    if not config.pluginmanager.has_plugin("xdist") or hasattr(config, "workerinput") or option.usepdb:
        return
    if option.numprocesses is None and not option.tx:
        option.numprocesses = WORKERS
    if option.numprocesses and option.dist == "no":  # -n without --dist: whole files too
        option.dist = "loadfile"
        option.loadscopereorder = False  # the order below instead of xdist's (most tests first)


def pytest_unconfigure(config):
    """The session's compiled programs go with it (only the process that made the folder removes it)."""
    if _SESSION_XLA_CACHE is not None:
        shutil.rmtree(_SESSION_XLA_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """On xdist workers: files with the most `slow` tests first, then files with the most tests, so that the
    longest file (tests/test_train.py) starts first, not 13th of 42, and the workers finish together."""
    if not hasattr(config, "workerinput"):
        return
    slow = collections.Counter(item.path for item in items if item.get_closest_marker("slow"))
    count = collections.Counter(item.path for item in items)
    items.sort(key=lambda item: (-slow[item.path], -count[item.path], str(item.path)))  # stable within a file


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Each module compiles many programs (new closures per test): drop them afterwards so the
    suite's memory stays bounded on a 24 GiB CI machine."""
    yield
    jax.clear_caches()
    gc.collect()
