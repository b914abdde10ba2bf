"""The training loop: resume, iterate, log, checkpoint, NaN guard, progress bar, clean shutdown.

    train(cfg, workdir)

Rerunning with the same workdir resumes automatically from the latest checkpoint (params, optimizer
state, step, data position and the calibrated style weight) and continues the same trajectory.

Faults never leave a workdir half-changed:

* Everything is checked before anything is written: the batch against the device count, the workdir
  path, its writability and lock, the saved config.json, the data, the weights and the checkpoint to
  resume. config.json is (re)written only then.
* One process at a time: the run holds an exclusive lock on `<workdir>/.lock` (`jax_ast.locking`).
* The workdir's layout is `train.run_folder.RunFolder`'s; the path becomes one once, here.
* SIGTERM/SIGINT finish the current step, save a checkpoint and raise `TrainingStopped`, in either
  stage of LinearTransfer's two-stage run; nothing is exported. A second signal stops at once.
* The NaN guard checks the loss and the norms of the gradients, the update and the new parameters
  after every step, before any checkpoint of that step is written, so checkpoints only hold finite
  parameters; its `FloatingPointError` says which checkpoint is left.
* A checkpoint that cannot be written raises `CheckpointSaveError`; the earlier ones are intact.
* A resumed run first drops the metrics.jsonl rows past the restored checkpoint, which it logs again.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import signal
import time
from pathlib import Path
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from jax_ast.configs import TrainConfig, parse_style_weight
from jax_ast.pretrained.params_file import save_params
from jax_ast import parallel
from jax_ast.xla_flags import FAST_COMPILE
from train.checkpointing import CheckpointError, Checkpointer, CheckpointSaveError
from train.data_setup import make_stream
from train.metrics import MetricsWriter, ProgressReporter, check_finite, sample_grid
from train.factory import create_run
from train.step import objective
from train.run_folder import EXPORT_NAME, RunFolder, WorkdirError, checkpoint_steps

log = logging.getLogger(__name__)
PREFETCH_BATCHES = 2  # batches on the devices ahead of the step: double buffering
# The only fields a resumed run may change: how long it runs and its bookkeeping. Every other field
# (arch, loss, encoder, weights, data, seed, learning rate, ...) defines the trajectory that resume continues.
RESUMABLE_FIELDS = ("iterations", "log_every", "checkpoint_every", "keep_checkpoints", "sample_every", "distributed")


class UsageError(ValueError):
    """A flag value this machine cannot run, e.g. a batch that does not split over its devices."""


class TrainingStopped(Exception):
    """A signal stopped the run before its last step; the state of `step` is saved, rerunning resumes."""

    def __init__(self, message: str, *, step: int, total: int, signum: int):
        super().__init__(message)
        self.step, self.total, self.signum = step, total, signum


def check_workdir(cfg: TrainConfig, folder: RunFolder | str | Path) -> None:
    """Refuse a run folder that is unwritable or holds another run; writes nothing but probe files.

    A run is identified by every field except `RESUMABLE_FIELDS`. A workdir with checkpoints but no
    config.json cannot be checked and is refused too.
    """
    folder = folder if isinstance(folder, RunFolder) else RunFolder.at(folder)
    folder.check_writable()
    previous = folder.read_config()
    if previous is None:
        steps = folder.checkpoint_steps()
        if steps:
            raise WorkdirError(f"workdir {folder} holds checkpoints (last step {steps[-1]}) but no config.json, so "
                               "they cannot be checked against this configuration; use another --workdir. "
                               "Nothing was changed or deleted.")
        return
    defaults = TrainConfig.from_flat(arch=cfg.model.arch).to_flat()  # keys an older config.json lacks
    saved_values = {k: previous.get(k, default) for k, default in defaults.items()}
    with contextlib.suppress(ValueError):  # a saved style weight as text ("0.02") is the number 0.02
        saved_values["style_weight"] = parse_style_weight(saved_values["style_weight"])
    changed = [f"--{k.replace('_', '-')} {saved_values[k]!r} -> {v!r}"
               for k, v in cfg.to_flat().items() if k not in RESUMABLE_FIELDS and saved_values[k] != v]
    if changed:
        raise WorkdirError(f"workdir {folder} holds a run with another configuration ({'; '.join(changed)}); "
                           "rerun with the original values to resume, or use a new --workdir. Nothing was "
                           "changed or deleted.")


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

    def extremes(p, s, b, c):
        as_style = objective(p, s, b, c, spec=spec, output_as="style")[1][0]["content"]
        as_content = objective(p, s, b, c, spec=spec, output_as="content")[1][0]["style"]
        return jnp.mean(as_style), jnp.mean(as_content)

    # The loss networks' weights are an argument, not constants folded into the program (seconds of compile
    # time and a ~100 MB cache entry for VGG).
    fn = jax.jit(extremes)
    start = stream.state()
    content_sum = style_sum = 0.0
    for index in range(n_batches):
        batch = next(stream)
        if index == 0:
            fn = fn.lower(trainable, batch_stats, batch, eval_constants).compile(compiler_options=FAST_COMPILE)
        content_term, style_term = fn(trainable, batch_stats, batch, eval_constants)
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


def _stopped(stop: _StopRequested, step: int, total: int, folder: RunFolder, what: str) -> TrainingStopped:
    if step in folder.checkpoint_steps():
        where = f"its checkpoint is saved in {folder.checkpoints}"
    elif step == 0:
        where = "before its first step, nothing to save"
    else:
        where = f"no checkpoint of it exists in {folder.checkpoints}"
    return TrainingStopped(f"{signal.Signals(stop.signum).name} received: {what} stopped at step {step} of {total} "
                           f"({where}); no {EXPORT_NAME} was exported; rerun the same command to resume",
                           step=step, total=total, signum=stop.signum)


def _stages(cfg: TrainConfig, folder: RunFolder) -> list[tuple[TrainConfig, RunFolder, str]]:
    """[(config, run folder, name)] of the stages of this run: one, or LinearTransfer's decoder
    pre-training followed by its transfer training."""
    if cfg.plugin.pretrains_decoder and cfg.model.stage == "transfer" and not cfg.weights.pretrained:
        decoder = folder.stage()
        decoder_cfg = cfg.replace(stage="decoder", loss="native", style_weight=0.0,
                                  iterations=cfg.options.decoder_iterations,
                                  learning_rate=cfg.options.decoder_learning_rate or cfg.optim.learning_rate)
        return [(decoder_cfg, decoder, "the decoder pre-training (stage 1 of 2)"),
                (cfg.replace(pretrained=str(decoder.export)), folder, "the transfer training (stage 2 of 2)")]
    return [(cfg, folder, "training")]


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
    folder = RunFolder.at(workdir)
    stages = _stages(cfg, folder)
    folder.check_writable()
    # Only process 0 writes the workdir's own files; the others would find the lock taken.
    lock = folder.lock() if jax.process_index() == 0 else contextlib.nullcontext()
    metrics: dict[str, float] = {}
    with lock, _StopRequested() as stop:
        for stage_cfg, stage_folder, _ in stages:
            check_workdir(stage_cfg, stage_folder)
        for stage_cfg, stage_folder, what in stages:
            if stop.requested:  # the signal came after the previous stage's last step
                step = max(stage_folder.checkpoint_steps(), default=0)
                raise _stopped(stop, step, stage_cfg.optim.iterations, stage_folder, what)
            if stage_cfg.model.stage == "decoder" and stage_folder.is_complete(stage_cfg.optim.iterations):
                log.info("decoder pre-training already complete in %s", stage_folder)
                continue
            if stage_cfg.model.stage == "decoder":
                log.warning("no --pretrained decoder for %s: pre-training one as an auto-encoder first "
                            "(%d steps, --decoder-iterations) in %s", cfg.plugin.display_name,
                            stage_cfg.optim.iterations, stage_folder)
            metrics = _train_stage(stage_cfg, stage_folder, stop, what)
    return metrics


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


def _train_stage(cfg: TrainConfig, folder: RunFolder, stop: _StopRequested, what: str) -> dict[str, float]:
    is_main = jax.process_index() == 0
    stream = make_stream(cfg)
    run = create_run(cfg)
    state, constants, spec = run.state, run.constants, run.spec
    trainable, batch_stats = run.state.params, run.state.batch_stats

    checkpointer = Checkpointer(folder.checkpoints, keep=cfg.run.keep_checkpoints)
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
            folder.start(cfg.to_json(), first_step=0 if start_step is None else start_step + 1)

        step_fn = run.step_fn
        sample_fn = parallel.pmap(functools.partial(_stylize_for_sample, spec=spec))
        replicated_state, replicated_constants = parallel.replicate(state), parallel.replicate(constants)
        step = int(state.step)
        writer = MetricsWriter(folder.root, enabled=is_main)
        progress = ProgressReporter(cfg.optim.iterations, initial_step=step, images_per_step=cfg.data.batch_size,
                                    enabled=is_main)
        if is_main and step == 0:
            writer.write_scalars(0, {"style_weight": style_weight})

        # The data position saved with a checkpoint is the one after the last batch trained on, not the
        # stream's own, which runs ahead by the batches prefetched to the devices.
        data_state = stream.state()

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
            checkpointer.check()  # a failed asynchronous save stops the run now, not at the next save
            if save_now:
                checkpointer.save(step, parallel.unreplicate(replicated_state),
                                  {"data": data_state, "style_weight": style_weight, "config": json.loads(cfg.to_json())})
        checkpointer.wait()
    except FloatingPointError as error:
        raise FloatingPointError(f"{error}; {_last_checkpoint_note(checkpointer)}") from None
    finally:
        with contextlib.suppress(Exception):  # a failed save was raised by wait() above
            checkpointer.close()
        for closable in (progress, writer):
            if closable is not None:
                closable.close()
    if step < cfg.optim.iterations:
        raise _stopped(stop, step, cfg.optim.iterations, folder, what)
    if is_main:
        _export(cfg, folder.export, run.frozen, replicated_state)
    return metrics


def _export(cfg: TrainConfig, path: Path, frozen: dict, replicated_state) -> None:
    """All parameters of the finished run as `<workdir>/params.npz` (written atomically)."""
    final = parallel.unreplicate(replicated_state)
    variables = {"params": {**frozen, **final.params}}
    if final.batch_stats:
        variables["batch_stats"] = final.batch_stats
    meta = {"arch": cfg.model.arch, "stage": cfg.model.stage, "loss": cfg.objective.loss, "step": step_of(replicated_state),
            **cfg.model_kwargs()}
    save_params(path, variables, meta=meta)


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
