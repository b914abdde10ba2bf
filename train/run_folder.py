"""A training run's folder (`--workdir`): the one owner of its layout.

    <workdir>/
      config.json          the run's TrainConfig; a rerun must match it (train.loop.RESUMABLE_FIELDS aside)
      checkpoints/<step>/  orbax checkpoints, keep-last-N (train.checkpointing)
      metrics.jsonl        one JSON object per logged step (train.metrics)
      tb/                  TensorBoard event files
      samples/             content | style | output grids, PNG
      params.npz           every parameter of the finished run (written last, only by a finished run)
      .lock                held by the process that trains here
      decoder_stage/       LinearTransfer's decoder pre-training: a run folder of its own

`train.loop.train` turns the `--workdir` path into a `RunFolder` once and hands that object on; the
modules that write one file of it (checkpoints, metrics) are given that file's path by the folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import uuid
from pathlib import Path

from jax_ast import files
from jax_ast.locking import exclusive_lock
from jax_ast.pretrained.params_file import PARAMS_FILE

CONFIG_NAME = "config.json"
CHECKPOINTS_NAME = "checkpoints"
METRICS_NAME = "metrics.jsonl"
TENSORBOARD_NAME = "tb"
SAMPLES_NAME = "samples"
EXPORT_NAME = PARAMS_FILE  # final params (all parts), for eval and later stages
LOCK_NAME = ".lock"
DECODER_STAGE_NAME = "decoder_stage"


class WorkdirError(ValueError):
    """The workdir cannot be used (unwritable, or holds a run with another configuration)."""


def printable(path: Path | str) -> str:
    """`path` as text that any stream can print: undecodable bytes of the file name as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclasses.dataclass(frozen=True)
class RunFolder:
    """The files of one training run under `root` (an absolute path); creating it touches nothing."""

    root: Path

    @classmethod
    def at(cls, workdir: str | os.PathLike) -> RunFolder:
        """The run folder at `workdir`.

        Raises:
          WorkdirError: the path is not valid UTF-8, which orbax/tensorstore need.
        """
        path = Path(workdir).absolute()
        try:
            str(path).encode("utf-8")
        except UnicodeEncodeError:
            raise WorkdirError(f"workdir {printable(path)} is not valid UTF-8, which checkpoints (orbax/tensorstore) "
                               "need; use another --workdir. Nothing was written.") from None
        return cls(path)

    def __str__(self) -> str:
        return str(self.root)

    config = property(lambda self: self.root / CONFIG_NAME)
    checkpoints = property(lambda self: self.root / CHECKPOINTS_NAME)
    metrics = property(lambda self: self.root / METRICS_NAME)
    export = property(lambda self: self.root / EXPORT_NAME)

    def stage(self, name: str = DECODER_STAGE_NAME) -> RunFolder:
        """The run folder of an earlier stage of this run, inside this one."""
        return RunFolder(self.root / name)

    def checkpoint_steps(self) -> list[int]:
        """Steps of the complete checkpoints, ascending ([] if none)."""
        return checkpoint_steps(self.checkpoints)

    def is_complete(self, iterations: int) -> bool:
        """The run ran all `iterations` steps and exported its params (only finished runs export)."""
        return self.export.exists() and max(self.checkpoint_steps(), default=0) >= iterations

    def check_writable(self) -> None:
        """Create the folder and write a probe file in it and in its checkpoint folder (if any): a real
        write, which also catches read-only mounts, full disks and root on a read-only file system.

        Raises:
          WorkdirError: naming the folder that is not writable.
        """
        _check_writable(self.root, "workdir")
        if self.checkpoints.exists():
            _check_writable(self.checkpoints, "checkpoint folder")

    def lock(self) -> contextlib.AbstractContextManager:
        """Held while training here; `LockedError` naming the holder if another process trains here."""
        return exclusive_lock(self.root / LOCK_NAME, what=f"workdir {self.root}")

    def read_config(self) -> dict | None:
        """The saved config.json as a dict, or None if there is none.

        Raises:
          WorkdirError: config.json is unreadable or not a JSON object.
        """
        if not self.config.exists():
            return None
        try:
            saved = json.loads(self.config.read_text(encoding="utf-8"))
            if not isinstance(saved, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as error:
            raise WorkdirError(f"{self.config} is unreadable ({error}), so the run in workdir {self.root} cannot be "
                               "checked; use another --workdir. Nothing was changed or deleted.") from None
        return saved

    def start(self, config_json: str, *, first_step: int) -> None:
        """The run is valid and starts (or resumes) at `first_step`: from here on the folder is written.

        config.json is (re)written if it changed (e.g. a resumed run with more iterations), and the
        metrics.jsonl rows of `first_step` and later ones, which the run logs again, are dropped with a
        last line cut short by a crash. Both writes are atomic and skipped when nothing changes.
        """
        if not self.config.exists() or self.config.read_text(encoding="utf-8") != config_json:
            files.write_text(self.config, config_json)
        try:
            lines = self.metrics.read_text(encoding="utf-8").splitlines(keepends=True)
        except FileNotFoundError:
            return
        kept = [line for line in lines if line.endswith("\n") and _row_step(line) < first_step]
        if len(kept) < len(lines):
            files.write_text(self.metrics, "".join(kept))


def checkpoint_steps(directory: str | os.PathLike) -> list[int]:
    """Steps of the complete checkpoints under `directory` ([] if none), read from the file system
    without starting orbax: integer-named folders (orbax's temporary folders carry a suffix)."""
    try:
        return sorted(int(p.name) for p in Path(directory).iterdir() if p.name.isdigit() and p.is_dir())
    except OSError:
        return []


def _row_step(line: str) -> float:
    """The step of a metrics.jsonl row; -inf for a line that is not a row (kept as it is)."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, TypeError, KeyError):
        return float("-inf")


def _check_writable(path: Path, what: str) -> None:
    probe = path / f".write-test-{uuid.uuid4().hex}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        raise WorkdirError(f"{what} {path} is not writable: {error.strerror or error}") from None
