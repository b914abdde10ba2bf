"""orbax-checkpoint wrapper: keep-last-N, async saves, JSON metadata beside the state, clear errors.

A checkpoint holds the train state (trainable params, optimizer state, step, RNG, batch stats) as a
pytree of host arrays plus a JSON item with the config, the data-stream position and the calibrated
style weight. orbax writes each step to a temporary folder and renames it when complete, so a run
killed mid-save leaves the previous checkpoint intact. Nothing here ever deletes a checkpoint except
orbax's keep-last-N policy after a successful save.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not match the run (one message, files untouched)."""


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
            create=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        """Save host copies of `state` (a pytree) and the JSON-able `meta` at `step` (no-op if it exists)."""
        if step in self._manager.all_steps():
            return
        host_state = jax.tree.map(np.asarray, jax.device_get(state))
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(host_state), meta=ocp.args.JsonSave(meta)))

    def restore(self, step: int, like: Any) -> tuple[Any, dict[str, Any]]:
        """Restore the state at `step` with the structure, shapes and dtypes of `like`.

        Raises:
          CheckpointError: unreadable files, or a tree/shape mismatch with `like` (e.g. another arch).
        """
        abstract = jax.tree.map(lambda x: ocp.utils.to_shape_dtype_struct(np.asarray(x)), jax.device_get(like))
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        except Exception as error:  # orbax raises many types (ValueError, KeyError, FileNotFoundError, ...)
            raise CheckpointError(
                f"cannot restore checkpoint step {step} from {self.directory}: {type(error).__name__}: {error}. "
                "It is corrupt or was written by a different configuration (arch/variant/loss). Nothing was "
                "deleted: use another --workdir, or move this checkpoint away to start fresh.") from error
        _check_shapes(like, restored["state"], step, self.directory)
        return restored["state"], dict(restored["meta"])

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def _check_shapes(like: Any, restored: Any, step: int, directory: Path) -> None:
    expected = jax.tree_util.tree_flatten_with_path(like)[0]
    found = jax.tree_util.tree_flatten_with_path(restored)[0]
    problems = [f"{jax.tree_util.keystr(path)}: expected {np.shape(a)}, found {np.shape(b)}"
                for (path, a), (_, b) in zip(expected, found) if np.shape(a) != np.shape(b)]
    if len(expected) != len(found) or problems:
        raise CheckpointError(f"checkpoint step {step} in {directory} does not match this run: "
                              + ("; ".join(problems[:10]) or f"{len(found)} leaves, expected {len(expected)}"))
