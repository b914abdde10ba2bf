"""The suite's own setup (tests/conftest.py): the allocator its workers and subprocesses run on."""

import ctypes.util
import os
import subprocess
import sys

import pytest

TCMALLOC = ctypes.util.find_library("tcmalloc_minimal")


def _maps_tcmalloc(maps: str) -> bool:
    return any("libtcmalloc_minimal" in line for line in maps.splitlines())


def test_workers_and_subprocesses_run_on_tcmalloc(request):
    """Debian's tcmalloc cuts the suite's time by about a tenth (README, "Install and run the whole test
    suite"): with it installed, the xdist workers and every subprocess the tests start load it."""
    if TCMALLOC is None:
        if os.environ.get("CI"):
            pytest.fail("libtcmalloc-minimal4 is missing; CI must install it (.ci/run)")
        pytest.skip("Debian's libtcmalloc-minimal4 is not installed")
    if os.environ.get("LD_PRELOAD", TCMALLOC) != TCMALLOC:  # unset here would mean conftest did not set it
        pytest.skip(f"LD_PRELOAD was set before pytest started ({os.environ.get('LD_PRELOAD')!r}), conftest kept it")
    child = subprocess.run([sys.executable, "-c", "print(open('/proc/self/maps').read())"], capture_output=True,
                           text=True, timeout=60)
    assert child.returncode == 0 and child.stderr == "", child.stderr  # nothing printed by the allocator
    assert _maps_tcmalloc(child.stdout)
    if hasattr(request.config, "workerinput"):  # an xdist worker: started after conftest set LD_PRELOAD
        with open("/proc/self/maps") as maps:
            assert _maps_tcmalloc(maps.read())
