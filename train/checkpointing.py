"""orbax-checkpoint wrapper: keep-last-N, async saves, JSON metadata beside the state, clear errors.

A checkpoint holds the train state (trainable params, optimizer state, step, batch stats) as a
pytree of host arrays plus a JSON item with the config, the data-stream position and the calibrated
style weight. orbax writes each step to a temporary folder and renames it when complete, so a run
killed mid-save leaves the previous checkpoint intact. Nothing here ever deletes a checkpoint except
orbax's keep-last-N policy after a successful save.

Failures: an unreadable checkpoint raises `CheckpointError`; a save that cannot be written (read-only
folder, disk full, file-size limit) raises `CheckpointSaveError` at the save that failed or, for an
asynchronous save, at the next save, `check()`, `wait()` or `close()`; the temporary folder of the
failed step is removed. Step folders are created synchronously, so a folder that cannot be created fails
at once instead of leaving orbax's background threads waiting for a signal that never comes.

A failed save also makes orbax log it through absl (with the full OCDBT path) and makes its background
threads report "Event loop is closed" once per pending write; `quiet_background_errors` turns both into
debug records, since the `CheckpointSaveError` already says what failed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jax_ast.errors import CheckpointError

log = logging.getLogger(__name__)
TMP_SUFFIX = ".orbax-checkpoint-tmp"  # orbax's temporary step folder: "<step>.orbax-checkpoint-tmp[...]"
SETTLE_SECONDS = 0.5  # after a failed save, how long its temporary folder must stay gone at close()

class CheckpointSaveError(RuntimeError):
    """A checkpoint could not be written; the checkpoints saved before it are intact."""


class Checkpointer:
    """Save/restore the train state under `directory` (e.g. `<workdir>/checkpoints`).

    Args:
      directory: checkpoint root; created if missing.
      keep: number of most recent checkpoints to keep.
      async_save: write in a background thread (orbax) while training continues.
    """

    def __init__(self, directory: str | Path, *, keep: int = 3, async_save: bool = True):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            preservation_policy=ocp.checkpoint_managers.LatestN(n=keep),
            enable_async_checkpointing=async_save,
            async_options=ocp.AsyncOptions(create_directories_asynchronously=False),
            create=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)
        self._pending: int | None = None  # step of the asynchronous save that may still fail
        self._failed: set[int] = set()  # steps whose temporary folders are removed once orbax lets go of them

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        """Save host copies of `state` (a pytree) and the JSON-able `meta` at `step` (no-op if it exists).

        Raises:
          CheckpointSaveError: this save, or the previous asynchronous one, failed.
        """
        if step in self._manager.all_steps():
            return
        self.wait()  # orbax waits for the previous save anyway; this way its failure names its own step
        host_state = jax.tree.map(np.asarray, jax.device_get(state))
        with self._saving(step):
            self._manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(host_state), meta=ocp.args.JsonSave(meta)))
        self._pending = step

    def restore(self, step: int, like: Any) -> tuple[Any, dict[str, Any]]:
        """Restore the state at `step` with the structure, shapes and dtypes of `like`.

        Raises:
          CheckpointError: unreadable files, or a tree/shape mismatch with `like` (e.g. another arch).
        """
        abstract = jax.tree.map(lambda x: ocp.utils.to_shape_dtype_struct(np.asarray(x)), jax.device_get(like))
        restored = self._restore(step, state=ocp.args.StandardRestore(abstract))
        _check_shapes(like, restored["state"], step, self.directory)
        return restored["state"], dict(restored["meta"])

    def read(self, step: int) -> tuple[Any, dict[str, Any]]:
        """The state at `step` as saved (nested dicts of host arrays; no template needed) and its metadata,
        for inspecting a checkpoint (`restore` gives the typed train state).

        Raises:
          CheckpointError: unreadable files.
        """
        restored = self._restore(step, state=ocp.args.StandardRestore())
        return restored["state"], dict(restored["meta"])

    def _restore(self, step: int, *, state: Any) -> Any:
        try:
            return self._manager.restore(step, args=ocp.args.Composite(state=state, meta=ocp.args.JsonRestore()))
        except Exception as error:  # orbax raises many types (ValueError, KeyError, FileNotFoundError, ...)
            raise CheckpointError(
                f"cannot restore checkpoint step {step} from {self.directory}: {type(error).__name__}: {error}. "
                "It is corrupt or was written by a different configuration (arch/variant/loss). Nothing was "
                "deleted: use another --workdir, or move this checkpoint away to start fresh.") from error

    def check(self) -> None:
        """Raise `CheckpointSaveError` if an asynchronous save has already failed (cheap; no waiting)."""
        if self._pending is not None:
            with self._saving(self._pending):
                self._manager.check_for_errors()

    def wait(self) -> None:
        """Block until the pending save is written; `CheckpointSaveError` if it failed."""
        if self._pending is not None:
            with self._saving(self._pending):
                self._manager.wait_until_finished()
            self._pending = None

    def close(self) -> None:
        """Wait for the pending save, then release orbax's threads; `CheckpointSaveError` if the save failed."""
        try:
            self.wait()
        finally:
            try:
                self._manager.close()
            except Exception:  # noqa: BLE001 - the failed save was already reported by wait()
                pass
            self._remove_failed(settle_seconds=SETTLE_SECONDS)

    def _remove_failed(self, settle_seconds: float = 0.0) -> None:
        """Delete the temporary folders of the saves that failed (never a complete checkpoint).

        tensorstore's writes still in flight when orbax gives up re-create their folders as they fail, so
        with `settle_seconds` the folders are removed until none has come back for that long (at most
        20 times that long)."""
        deadline, quiet_since = time.monotonic() + 20 * settle_seconds, time.monotonic()
        while self._failed:
            leftovers = [p for step in self._failed for p in self.directory.glob(f"{step}{TMP_SUFFIX}*")]
            for temporary in leftovers:
                shutil.rmtree(temporary, ignore_errors=True)
            now = time.monotonic()
            quiet_since = now if leftovers else quiet_since
            if now - quiet_since >= settle_seconds or now >= deadline:
                return
            time.sleep(0.05)

    @contextlib.contextmanager
    def _saving(self, step: int):
        """Turns any orbax/OS error of the save of `step` into one `CheckpointSaveError` naming what is left."""
        try:
            yield
        except Exception as error:  # orbax raises OSError, ValueError or its own types from its threads
            self._pending = None
            self._failed.add(step)
            self._remove_failed()  # orbax's threads may still write there: close() removes it again
            kept = [s for s in self._manager.all_steps() if s < step]  # orbax's listing, without this save
            left = f"checkpoint step {max(kept)} is intact" if kept else "no earlier checkpoint exists"
            raise CheckpointSaveError(f"cannot save checkpoint step {step} in {self.directory}: "
                                      f"{_reason(error)}; {left}") from error


def quiet_background_errors() -> None:
    """Process-wide, for the CLIs: orbax's absl log records and the "Event loop is closed" errors its
    background threads raise after a failed save become debug records of this module (shown with
    --verbose); the failure itself reaches the user as one `CheckpointSaveError`."""
    logging.getLogger("absl").addFilter(_orbax_to_debug)  # once: addFilter ignores a filter already added
    previous = sys.unraisablehook
    if getattr(previous, "quiets_orbax", False):
        return

    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed":
            log.debug("orbax background thread after a failed save: %s", unraisable.exc_value)
        else:
            previous(unraisable)

    hook.quiets_orbax = True
    sys.unraisablehook = hook


def _orbax_to_debug(record: logging.LogRecord) -> bool:
    if f"{os.sep}orbax{os.sep}" not in record.pathname:
        return True
    if log.isEnabledFor(logging.DEBUG):
        log.debug("orbax: %s", record.getMessage())
    return False


def _reason(error: BaseException) -> str:
    """One line: `strerror (file)` for OS errors (also those tensorstore reports as `os_error_code='N'`
    inside a ValueError), else the first line of the error text."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror + (f" ({error.filename})" if error.filename else "")
    text = str(error).strip()
    code = re.search(r"os_error_code='(\d+)'", text)
    if code:
        return f"{os.strerror(int(code.group(1)))} (errno {code.group(1)})"
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def _check_shapes(like: Any, restored: Any, step: int, directory: Path) -> None:
    expected = jax.tree_util.tree_flatten_with_path(like)[0]
    found = jax.tree_util.tree_flatten_with_path(restored)[0]
    problems = [f"{jax.tree_util.keystr(path)}: expected {np.shape(a)}, found {np.shape(b)}"
                for (path, a), (_, b) in zip(expected, found) if np.shape(a) != np.shape(b)]
    if len(expected) != len(found) or problems:
        raise CheckpointError(f"checkpoint step {step} in {directory} does not match this run: "
                              + ("; ".join(problems[:10]) or f"{len(found)} leaves, expected {len(expected)}"))
