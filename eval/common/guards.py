"""Checks the eval CLIs make before any work, and the exit codes they share.

Exit codes of ``eval.stylize``, ``eval.run`` and ``eval.compare``:

* 0 (`EXIT_OK`): done.
* 1 (`EXIT_NOTHING_DONE`): it ran, but nothing usable came out (every image or pair was skipped: unreadable,
  failed, or with a non-finite output or score).
* 2 (`EXIT_USAGE`): a usage or input error (bad flag, missing or malformed file, unusable weights, an output
  that would overwrite something); reported before any model runs and before anything is written.
* 3 (`EXIT_WRITE_FAILED`): an output could not be written (disk full, file too large, I/O error); what was
  written before stays whole, so a rerun resumes or repeats cleanly.
"""

from __future__ import annotations

import argparse
import errno
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

EXIT_OK, EXIT_NOTHING_DONE, EXIT_USAGE, EXIT_WRITE_FAILED = 0, 1, 2, 3
# Errors after which every further write fails too, so a run stops instead of skipping file after file.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_MAX_LISTED = 8


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, ``prog: error: message (--help for usage)``, exit 2, instead of
    the whole usage block before the line that matters. Sub-command parsers inherit the class."""

    def error(self, message: str):
        line = " ".join(printable(str(message)).split())
        self.exit(EXIT_USAGE, f"{self.prog}: error: {line} (--help for usage)\n")


def check_arch(parser: argparse.ArgumentParser, arch: str, choices: tuple[str, ...]) -> None:
    """`parser.error` (exit 2) naming the valid choices when `arch` is not one of `choices`. The CLIs pass
    `jax_ast.archs.names()` (plus their baselines) when they check, so a plug-in registered after they were
    imported is a choice too."""
    if arch not in choices:
        parser.error(f"unknown --arch {arch!r}; valid choices: {', '.join(choices)}")


def printable(text: str) -> str:
    """`text` safe for a strict UTF-8 stream: undecodable file-name bytes (surrogate escapes) become ``\\xNN``."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # lone surrogates that are not escaped bytes
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def output_dir_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be (or become) an output folder, or None.

    It fails when it, or the nearest existing folder above it, is not a folder, or that folder is not
    writable; checked up front so that nothing is computed for outputs that cannot be written.
    """
    path = Path(path)
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            if not os.access(candidate, os.R_OK | os.W_OK | os.X_OK):
                return f"{printable(str(candidate))} is not a readable and writable folder"
            return None
        if candidate.exists() or candidate.is_symlink():
            where = "" if candidate == path else f" ({printable(str(candidate))} is in its path)"
            return f"{printable(str(path))} is not a folder{where}"
    return None


def output_file_problem(path: str | os.PathLike, *, overwrite: bool) -> str | None:
    """Why `path` cannot be written as an output file (a folder, or an existing file without `overwrite`)."""
    path = Path(path)
    if path.is_dir():
        return f"{printable(str(path))} is a folder; give a file name"
    if (path.exists() or path.is_symlink()) and not overwrite:
        return f"{printable(str(path))} already exists; pass --overwrite to replace it"
    problem = output_dir_problem(path.parent)
    return problem and f"{printable(str(path))} cannot be created: {problem}"


def write_failure(error: OSError, where: str | os.PathLike) -> str:
    """The one line of exit 3: the file (else the folder `where`) that could not be written, why, and that a rerun
    resumes."""
    target = error.filename or where
    return printable(f"cannot write {target}: {error.strerror or error}; what was written before is whole, "
                     "rerun the same command to resume")


def _leaves(tree: Any) -> dict[str, Any]:
    """{'a/b/c': leaf} of a nested mapping pytree."""
    return {"/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path): leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown if len(items) <= _MAX_LISTED else f"{shown}, ... and {len(items) - _MAX_LISTED} more"


def tree_mismatch(expected: Any, actual: Any) -> str | None:
    """One sentence naming every missing, unexpected, mis-shaped or non-float parameter of `actual`, or None.

    Args:
      expected: the model's variables, e.g. from ``jax.eval_shape(model.init, ...)`` (shapes and dtypes).
      actual: loaded variables (arrays).
    """
    want, have = _leaves(expected), _leaves(actual)
    missing = [name for name in want if name not in have]
    extra = [name for name in have if name not in want]
    wrong = [f"{name} {tuple(np.shape(have[name]))} (needs {tuple(np.shape(want[name]))})"
             for name in want if name in have and tuple(np.shape(have[name])) != tuple(np.shape(want[name]))]
    wrong += [f"{name} of dtype {np.asarray(have[name]).dtype} (needs float)" for name in want
              if name in have and not jnp.issubdtype(np.asarray(have[name]).dtype, jnp.floating)]
    problems = [f"{label} ({len(names)}): {_listed(names)}" for label, names in
                (("missing", missing), ("unexpected", extra), ("wrong shape or dtype", wrong)) if names]
    return "; ".join(problems) or None
