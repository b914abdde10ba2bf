"""The training loop: resume, iterate, log, checkpoint, NaN guard, progress bar, clean shutdown.

    train(cfg, workdir)

Rerunning with the same workdir resumes automatically from the latest checkpoint (params, optimizer
state, step, data position and the calibrated style weight) and continues the same trajectory.

Faults never leave a workdir half-changed:

* Everything is checked before anything is written: the batch against the device count, the workdir
  path, its writability and lock, the saved config.json, the data, the weights and the checkpoint to
  resume. config.json is (re)written only then.
* One process at a time: the run holds an exclusive lock on `<workdir>/.lock` (`jax_ast.locking`).
* SIGTERM/SIGINT finish the current step, save a checkpoint and raise `TrainingStopped`, in either
  stage of LinearTransfer's two-stage run; nothing is exported. A second signal stops at once.
* The NaN guard checks the loss and the norms of the gradients, the update and the new parameters
  after every step, before any checkpoint of that step is written, so checkpoints only hold finite
  parameters; its `FloatingPointError` says which checkpoint is left.
* A checkpoint that cannot be written raises `CheckpointSaveError`; the earlier ones are intact.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from jax_ast import files
from jax_ast.configs import TrainConfig, parse_style_weight
from jax_ast.locking import exclusive_lock
from jax_ast.pretrained.params_file import PARAMS_FILE, save_params
from jax_ast import parallel
from train.checkpointing import CheckpointError, Checkpointer, CheckpointSaveError, checkpoint_steps
from train.data_setup import make_stream
from train.metrics import MetricsWriter, ProgressReporter, check_finite, sample_grid
from train.factory import create_run
from train.step import objective
from train.weights import FAST_COMPILE

log = logging.getLogger(__name__)
EXPORT_NAME = PARAMS_FILE  # final params (all parts), for eval and later stages
LOCK_NAME = ".lock"
PREFETCH_BATCHES = 2  # batches on the devices ahead of the step: double buffering
# The only fields a resumed run may change: how long it runs and its bookkeeping. Every other field
# (arch, loss, encoder, weights, data, seed, learning rate, ...) defines the trajectory that resume continues.
RESUMABLE_FIELDS = ("iterations", "log_every", "checkpoint_every", "keep_checkpoints", "sample_every", "distributed")


class WorkdirError(ValueError):
    """The workdir cannot be used (unwritable, or holds a run with another configuration)."""


class UsageError(ValueError):
    """A flag value this machine cannot run, e.g. a batch that does not split over its devices."""


class TrainingStopped(Exception):
    """A signal stopped the run before its last step; the state of `step` is saved, rerunning resumes."""

    def __init__(self, message: str, *, step: int, total: int, signum: int):
        super().__init__(message)
        self.step, self.total, self.signum = step, total, signum


def _printable(path: Path | str) -> str:
    """`path` as text that any stream can print: undecodable bytes of the file name as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _workdir_path(workdir: str | Path) -> Path:
    path = Path(workdir).absolute()
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise WorkdirError(f"workdir {_printable(path)} is not valid UTF-8, which checkpoints (orbax/tensorstore) "
                           "need; use another --workdir. Nothing was written.") from None
    return path


def _check_writable(path: Path, what: str) -> None:
    """Create `path` and write a probe file there: a real write, which also catches read-only mounts,
    full disks and root on a read-only file system, where permission bits say nothing."""
    probe = path / f".write-test-{uuid.uuid4().hex}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        raise WorkdirError(f"{what} {path} is not writable: {error.strerror or error}") from None


def check_workdir(cfg: TrainConfig, path: Path) -> None:
    """Refuse a workdir that is unwritable or holds another run; writes nothing but probe files.

    A run is identified by every field except `RESUMABLE_FIELDS`. A workdir with checkpoints but no
    config.json cannot be checked and is refused too.
    """
    _check_writable(path, "workdir")
    if (path / "checkpoints").exists():
        _check_writable(path / "checkpoints", "checkpoint folder")
    saved = path / "config.json"
    if not saved.exists():
        steps = checkpoint_steps(path / "checkpoints")
        if steps:
            raise WorkdirError(f"workdir {path} holds checkpoints (last step {steps[-1]}) but no config.json, so "
                               "they cannot be checked against this configuration; use another --workdir. "
                               "Nothing was changed or deleted.")
        return
    try:
        previous = json.loads(saved.read_text(encoding="utf-8"))
        if not isinstance(previous, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as error:
        raise WorkdirError(f"{saved} is unreadable ({error}), so the run in workdir {path} cannot be checked; "
                           "use another --workdir. Nothing was changed or deleted.") from None
    defaults = TrainConfig().to_flat()
    saved_values = {k: previous.get(k, default) for k, default in defaults.items()}
    with contextlib.suppress(ValueError):  # a saved style weight as text ("0.02") is the number 0.02
        saved_values["style_weight"] = parse_style_weight(saved_values["style_weight"])
    changed = [f"--{k.replace('_', '-')} {saved_values[k]!r} -> {v!r}"
               for k, v in cfg.to_flat().items() if k not in RESUMABLE_FIELDS and saved_values[k] != v]
    if changed:
        raise WorkdirError(f"workdir {path} holds a run with another configuration ({'; '.join(changed)}); "
                           "rerun with the original values to resume, or use a new --workdir. Nothing was "
                           "changed or deleted.")


def _write_config(path: Path, cfg: TrainConfig) -> None:
    """(Re)write config.json atomically, only if it changed (e.g. a resumed run with more iterations)."""
    saved, text = path / "config.json", cfg.to_json()
    if saved.exists() and saved.read_text(encoding="utf-8") == text:
        return
    files.write_text(saved, text)


def _check_devices(cfg: TrainConfig) -> None:
    devices = jax.device_count()
    if cfg.data.batch_size % devices:
        raise UsageError(f"--batch-size {cfg.data.batch_size} does not split over the {devices} devices; use a multiple "
                         f"of {devices}")


def calibrate_style_weight(spec, trainable, batch_stats, constants, stream, n_batches: int) -> float:
    """The paper's beta for classic/balanced, chosen so that beta * style ~ content over a training run.

    beta = mean content term when the output is the style image / mean style term when the output is the
    content image, over the first batches: the two terms then span the same range between the two
    extremes of stylisation. It does not depend on the network's initial output, which for a freshly
    initialised transform is far from any image (LinearTransfer's is ~1e3 times too large), so the same
    rule holds for every architecture. The batches are drawn from a copy of the stream position, so
    training still starts from batch 0.
    """
    eval_constants = {**constants, "style_weight": jnp.float32(1.0)}

    def extremes(p, s, b):
        as_style = objective(p, s, b, eval_constants, spec=spec, output_as="style")[1][0]["content"]
        as_content = objective(p, s, b, eval_constants, spec=spec, output_as="content")[1][0]["style"]
        return jnp.mean(as_style), jnp.mean(as_content)

    fn = jax.jit(extremes)
    start = stream.state()
    content_sum = style_sum = 0.0
    for index in range(n_batches):
        batch = next(stream)
        if index == 0:
            fn = fn.lower(trainable, batch_stats, batch).compile(compiler_options=FAST_COMPILE)
        content_term, style_term = fn(trainable, batch_stats, batch)
        content_sum += float(content_term)
        style_sum += float(style_term)
    stream.restore(start)
    if not np.isfinite(content_sum / max(style_sum, 1e-30)) or style_sum <= 0 or content_sum <= 0:
        raise FloatingPointError(f"cannot calibrate the style weight: content={content_sum}, style={style_sum}")
    return content_sum / style_sum


class _StopRequested:
    """SIGTERM/SIGINT set a flag; the loop saves a checkpoint and stops after the current step.

    A second signal stops at once (KeyboardInterrupt), keeping the checkpoints already complete.
    """

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt(f"second signal {signal.Signals(signum).name}")
        log.warning("%s received: finishing this step, saving a checkpoint and stopping (send it again to "
                    "stop at once)", signal.Signals(signum).name)
        self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _stopped(stop: _StopRequested, step: int, total: int, workdir: Path, what: str) -> TrainingStopped:
    if step in checkpoint_steps(workdir / "checkpoints"):
        where = f"its checkpoint is saved in {workdir / 'checkpoints'}"
    elif step == 0:
        where = "before its first step, nothing to save"
    else:
        where = f"no checkpoint of it exists in {workdir / 'checkpoints'}"
    return TrainingStopped(f"{signal.Signals(stop.signum).name} received: {what} stopped at step {step} of {total} "
                           f"({where}); no {EXPORT_NAME} was exported; rerun the same command to resume",
                           step=step, total=total, signum=stop.signum)


def _stages(cfg: TrainConfig, workdir: Path) -> list[tuple[TrainConfig, Path, str]]:
    """[(config, workdir, name)] of the stages of this run: one, or LinearTransfer's decoder
    pre-training followed by its transfer training."""
    if cfg.plugin.pretrains_decoder and cfg.model.stage == "transfer" and not cfg.weights.pretrained:
        decoder_dir = workdir / "decoder_stage"
        decoder_cfg = cfg.replace(stage="decoder", loss="native", style_weight=0.0,
                                  iterations=cfg.optim.decoder_iterations,
                                  learning_rate=cfg.optim.decoder_learning_rate or cfg.optim.learning_rate)
        return [(decoder_cfg, decoder_dir, "the decoder pre-training (stage 1 of 2)"),
                (cfg.replace(pretrained=str(decoder_dir / EXPORT_NAME)), workdir,
                 "the transfer training (stage 2 of 2)")]
    return [(cfg, workdir, "training")]


def train(cfg: TrainConfig, workdir: str | Path) -> dict[str, float]:
    """Train `cfg.model.arch` with `cfg.objective.loss` in `workdir`; returns the last logged metrics.

    LinearTransfer trains only its transform on a frozen, pretrained auto-encoder. Without
    `--pretrained`, the decoder is first pre-trained as an image auto-encoder on the content stream
    (`--stage decoder`, `--decoder-iterations` steps, in `<workdir>/decoder_stage`), as the original
    repository's predecessor (WCT) did, and the transfer stage starts from its export.

    Raises:
      UsageError, WorkdirError, LockedError, DataError, WeightsError, CheckpointError: before anything
        is written. FloatingPointError: non-finite values (the message names the checkpoint left).
      TrainingStopped: SIGTERM/SIGINT. CheckpointSaveError, OSError: writing failed.
    """
    _check_devices(cfg)
    workdir = _workdir_path(workdir)
    stages = _stages(cfg, workdir)
    _check_writable(workdir, "workdir")
    # Only process 0 writes the workdir's own files; the others would find the lock taken.
    lock = (exclusive_lock(workdir / LOCK_NAME, what=f"workdir {workdir}") if jax.process_index() == 0
            else contextlib.nullcontext())
    metrics: dict[str, float] = {}
    with lock, _StopRequested() as stop:
        for stage_cfg, stage_dir, _ in stages:
            check_workdir(stage_cfg, stage_dir)
        for stage_cfg, stage_dir, what in stages:
            if stop.requested:  # the signal came after the previous stage's last step
                step = max(checkpoint_steps(stage_dir / "checkpoints"), default=0)
                raise _stopped(stop, step, stage_cfg.optim.iterations, stage_dir, what)
            if stage_cfg.model.stage == "decoder" and _complete(stage_cfg, stage_dir):
                log.info("decoder pre-training already complete in %s", stage_dir)
                continue
            if stage_cfg.model.stage == "decoder":
                log.warning("no --pretrained decoder for LinearTransfer: pre-training one as an auto-encoder first "
                            "(%d steps, --decoder-iterations) in %s", stage_cfg.optim.iterations, stage_dir)
            metrics = _train_stage(stage_cfg, stage_dir, stop, what)
    return metrics


def _complete(cfg: TrainConfig, workdir: Path) -> bool:
    """The stage in `workdir` ran all its steps and exported its params (only finished runs export)."""
    last = max(checkpoint_steps(workdir / "checkpoints"), default=0)
    return (workdir / EXPORT_NAME).exists() and last >= cfg.optim.iterations


def _last_checkpoint_note(checkpointer: Checkpointer) -> str:
    """What a diverged run leaves behind, for the NaN guard's message."""
    try:
        checkpointer.wait()
    except CheckpointSaveError as error:
        return str(error)
    steps = checkpoint_steps(checkpointer.directory)
    if steps:
        return f"the last checkpoint, step {steps[-1]} in {checkpointer.directory}, is kept (its values are finite)"
    return f"no checkpoint exists in {checkpointer.directory}, so there is nothing to resume from"


def _train_stage(cfg: TrainConfig, workdir: Path, stop: _StopRequested, what: str) -> dict[str, float]:
    is_main = jax.process_index() == 0
    stream = make_stream(cfg)
    run = create_run(cfg)
    state, constants, spec = run.state, run.constants, run.spec
    trainable, batch_stats = run.state.params, run.state.batch_stats

    checkpointer = Checkpointer(workdir / "checkpoints", keep=cfg.run.keep_checkpoints)
    writer = progress = None
    try:
        style_weight = None if cfg.objective.auto_style_weight else float(cfg.objective.style_weight)
        start_step = checkpointer.latest_step()
        if start_step is not None:
            state, meta = checkpointer.restore(start_step, state)
            try:
                stream.restore(meta["data"])
                style_weight = float(meta["style_weight"])
            except (KeyError, TypeError, ValueError) as error:  # no stream position, or one of other data
                reason = f"no {error} entry in its metadata" if isinstance(error, KeyError) else str(error)
                raise CheckpointError(f"checkpoint step {start_step} in {checkpointer.directory} cannot resume this "
                                      f"run: {reason}. Nothing was deleted: use the data it was saved with, another "
                                      "--workdir, or move this checkpoint away to start fresh.") from None
            log.info("resumed from step %d in %s", start_step, checkpointer.directory)
        if style_weight is None:
            style_weight = calibrate_style_weight(spec, trainable, batch_stats, constants, stream,
                                                  cfg.objective.auto_style_batches)
            log.info("style weight (beta) calibrated on %d batches: %.6g", cfg.objective.auto_style_batches, style_weight)
        constants["style_weight"] = jnp.float32(style_weight)
        if is_main:  # everything is valid: from here on the workdir is written
            _write_config(workdir, cfg)

        step_fn = run.step_fn
        sample_fn = parallel.pmap(functools.partial(_stylize_for_sample, spec=spec))
        replicated_state, replicated_constants = parallel.replicate(state), parallel.replicate(constants)
        step = int(state.step)
        writer = MetricsWriter(workdir, enabled=is_main)
        progress = ProgressReporter(cfg.optim.iterations, initial_step=step, images_per_step=cfg.data.batch_size,
                                    enabled=is_main)
        if is_main and step == 0:
            writer.write_scalars(0, {"style_weight": style_weight})

        # The data position saved with a checkpoint is the one after the last batch trained on, not the
        # stream's own, which runs ahead by the batches prefetched to the devices.
        data_state = stream.state()

        def save(step: int) -> None:
            checkpointer.save(step, parallel.unreplicate(replicated_state),
                              {"data": data_state, "style_weight": style_weight,
                               "config": json.loads(cfg.to_json())})

        metrics: dict[str, float] = {}
        window: list[tuple[int, dict]] = []  # (step, device metrics) not yet fetched to the host
        once: dict[str, float] = {}  # scalars for the next log line only
        batches = parallel.prefetch_to_devices(_with_position(stream), size=PREFETCH_BATCHES, select=lambda x: x[0])
        while step < cfg.optim.iterations and not stop.requested:
            step += 1
            (batch, data_state), device_batch = next(batches)
            # The first step: compile it on its own, so its time is reported apart. Multi-process pmap lowers
            # for the global device axis while each process passes its local shards, so there the first call
            # compiles as usual.
            if step_fn is run.step_fn and jax.process_count() == 1:
                step_fn, seconds = _compile_step(step_fn, (replicated_state, device_batch, replicated_constants))
                once = {"perf/compile_seconds": seconds}  # written with the next log line
            log_now = step % cfg.run.log_every == 0 or step == cfg.optim.iterations
            save_now = step % cfg.run.checkpoint_every == 0 or step == cfg.optim.iterations or stop.requested
            sample_now = step % cfg.run.sample_every == 0
            # Between log, sample and checkpoint steps nothing leaves the devices: an implicit or explicit
            # transfer to the host there is a bug (it would stall the device queue), so it raises.
            with _host_transfers_allowed(log_now or save_now or sample_now):
                replicated_state, device_metrics = step_fn(replicated_state, device_batch, replicated_constants)
                parallel.sync_on_cpu(replicated_state)
                window.append((step, device_metrics))
                checkpointer.check()  # a failed asynchronous save stops the run now, not at the next save
            save_now = save_now or stop.requested  # a signal during the step
            if log_now or save_now or sample_now:
                # The host waits for the device only here. The NaN guard checks every step of the window
                # before this step's checkpoint is written, so no checkpoint holds non-finite parameters.
                metrics = _fetch_window(window)
                window.clear()
            progress.update(step, {k: v for k, v in metrics.items() if "/" not in k})
            if log_now:
                writer.write_scalars(step, {**{f"train/{k}": v for k, v in metrics.items()},
                                            "data/skipped_images": float(data_state["skipped"]),
                                            "perf/images_per_second": progress.images_per_second, **once})
                once = {}
            if sample_now:
                writer.write_images(step, {"content_style_output": _sample(sample_fn, replicated_state,
                                                                          replicated_constants, batch)})
            if save_now:
                save(step)
        checkpointer.wait()
    except FloatingPointError as error:
        raise FloatingPointError(f"{error}; {_last_checkpoint_note(checkpointer)}") from None
    finally:
        for closable in (progress, writer):
            if closable is not None:
                closable.close()
        with contextlib.suppress(Exception):  # a failed save was raised by wait() above
            checkpointer.close()
    if step < cfg.optim.iterations:
        raise _stopped(stop, step, cfg.optim.iterations, workdir, what)
    if is_main:
        _export(cfg, workdir, run.frozen, replicated_state)
    return metrics


def _export(cfg: TrainConfig, workdir: Path, frozen: dict, replicated_state) -> None:
    """All parameters of the finished run as `<workdir>/params.npz` (written atomically)."""
    final = parallel.unreplicate(replicated_state)
    variables = {"params": {**frozen, **final.params}}
    if final.batch_stats:
        variables["batch_stats"] = final.batch_stats
    meta = {"arch": cfg.model.arch, "stage": cfg.model.stage, "loss": cfg.objective.loss, "step": step_of(replicated_state),
            **cfg.model_kwargs()}
    save_params(workdir / EXPORT_NAME, variables, meta=meta)


def _with_position(stream) -> Iterator[tuple[dict, dict]]:
    """(batch, the stream's position after it), forever."""
    while True:
        batch = next(stream)
        yield batch, stream.state()


def _host_transfers_allowed(allowed: bool) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext() if allowed else jax.transfer_guard_device_to_host("disallow_explicit")


def _compile_step(step_fn, args: tuple):
    """(`step_fn` compiled ahead of time for `args`, the seconds that took, logged); the first log line
    of the run records them as perf/compile_seconds, and steps/s never include them."""
    start = time.perf_counter()
    compiled = step_fn.lower(*args).compile()
    seconds = time.perf_counter() - start
    log.info("train step compiled in %.1f s (not counted in steps/s)", seconds)
    return compiled, seconds


def step_of(replicated_state) -> int:
    return int(jax.device_get(replicated_state.step)[0])


def _fetch_window(window: list[tuple[int, dict]]) -> dict[str, float]:
    """The metrics of every step in `window` on the host (first device's copy, all equal after the
    step's pmean), checked by the NaN guard step by step; returns the last step's."""
    fetched = parallel.unreplicate([device_metrics for _, device_metrics in window])
    metrics: dict[str, float] = {}
    for (step, _), values in zip(window, fetched):
        metrics = {k: float(v) for k, v in values.items()}
        check_finite(step, metrics)
    return metrics


def _stylize_for_sample(state, batch, constants, *, spec):
    return objective(state.params, state.batch_stats, batch, constants, spec=spec)[1][1]


def _sample(sample_fn, replicated_state, replicated_constants, batch, count: int = 4) -> np.ndarray:
    """content | style | output grid of the first `count` samples of `batch`, at the current parameters.

    The outputs are computed where the state lives; only they come to the host, never the state."""
    stylized = parallel.unshard(sample_fn(replicated_state, parallel.shard(batch), replicated_constants))[:count]
    small = {k: v[:count] for k, v in batch.items()}
    return sample_grid(small["content"] / 255.0, small["style"] / 255.0, stylized)
