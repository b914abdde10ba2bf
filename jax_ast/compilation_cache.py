"""JAX's persistent compilation cache for the entry points: a second run of a command does not compile again.

On by default in `train.run`, `eval.run` and `eval.stylize`: compiled XLA programs are kept in
``$JAX_AST_XLA_CACHE`` (default ``$JAX_AST_CACHE/xla``, i.e. ``~/.cache/jax_ast/xla``), keyed by JAX on the
program, the devices, the compiler flags and the jax/jaxlib versions, so a stale entry is never used. Turn it
off with ``--no-compilation-cache`` or by setting ``JAX_AST_NO_COMPILATION_CACHE=1``. The folder holds at most
``MAX_BYTES`` (least recently used entries go first), and every read and write holds its file lock, so processes
running at once (two hosts' processes on one machine, two runs, the test suite's workers) never read an entry
another one is still writing. Entries are plain files; deleting the folder is always safe.

JAX's bounded cache writes an entry, then a last-use stamp next to it, and before every write it reads all the
stamps: one entry without its stamp (a process killed between the two writes, or a folder an older, unbounded
jax-ast filled) would make every later write fail. `enable` deletes such unfinished entries first.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import filelock
import jax

from jax_ast.pretrained.cache import cache_dir

DISABLE_ENV = "JAX_AST_NO_COMPILATION_CACHE"
FOLDER_ENV = "JAX_AST_XLA_CACHE"
FLAG = "--no-compilation-cache"
FLAG_HELP = (f"do not keep compiled programs in ${FOLDER_ENV} or $JAX_AST_CACHE/xla (default: kept, so a second "
             f"run does not compile again; {DISABLE_ENV}=1 turns it off too)")
# Programs that compile faster than this are not worth a file (model.init, small helpers); the train step
# and the stylise/score programs take seconds to minutes.
MIN_COMPILE_SECONDS = 0.5
# A VGG train step is 10-60 MB: room for a few hundred. Setting a bound is also what makes JAX lock the folder.
MAX_BYTES = 4 << 30
# JAX's names in the folder: an entry, its last-use stamp, the lock every read and write holds.
ENTRY_SUFFIX, STAMP_SUFFIX, LOCK_FILE = "-cache", "-atime", ".lockfile"
LOCK_SECONDS = 10.0  # as long as JAX itself waits for the lock


def disabled_by_env() -> bool:
    """True when JAX_AST_NO_COMPILATION_CACHE is set to anything but '', '0' or 'false'."""
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false")


def folder() -> Path:
    """``$JAX_AST_XLA_CACHE``, else ``$JAX_AST_CACHE/xla`` (not created here)."""
    given = os.environ.get(FOLDER_ENV, "").strip()
    return Path(given).expanduser() if given else cache_dir() / "xla"


def enable(enabled: bool = True) -> Path | None:
    """Point JAX's persistent compilation cache at `folder()`; returns it, or None when `enabled` is False or
    the environment turns the cache off. Call it before the first compilation."""
    if not enabled or disabled_by_env():
        return None
    path = folder()
    drop_unfinished_entries(path)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return path


def drop_unfinished_entries(path: Path) -> list[str]:
    """Deletes the entries of the cache folder `path` that have no last-use stamp, and stamps without an entry,
    holding the folder's lock; returns the names deleted. Stops (the run goes on, JAX then only warns on
    writes) if another process holds the lock for `LOCK_SECONDS` or the folder cannot be locked or changed."""
    removed: list[str] = []
    if not path.is_dir():
        return removed
    with contextlib.suppress(OSError):  # filelock.Timeout is one too
        with filelock.FileLock(path / LOCK_FILE, timeout=LOCK_SECONDS):
            names = [p.name for p in path.iterdir()]
            entries = {n.removesuffix(ENTRY_SUFFIX) for n in names if n.endswith(ENTRY_SUFFIX)}
            stamps = {n.removesuffix(STAMP_SUFFIX) for n in names if n.endswith(STAMP_SUFFIX)}
            unfinished = [*(key + ENTRY_SUFFIX for key in entries - stamps),
                          *(key + STAMP_SUFFIX for key in stamps - entries)]
            for name in sorted(unfinished):
                (path / name).unlink(missing_ok=True)
                removed.append(name)
    return removed
