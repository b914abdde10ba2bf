"""The training loop: resume, iterate, log, checkpoint, NaN guard, progress bar, clean shutdown.

    train(cfg, workdir)

Rerunning with the same workdir resumes automatically from the latest checkpoint (params, optimizer
state, step, RNG, data position and the calibrated style weight) and continues the same trajectory.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import signal
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jax_ast import models
from jax_ast.configs import TrainConfig
from jax_ast.pretrained.native import save_params
from train import parallel
from train.checkpointing import Checkpointer
from train.data_setup import make_stream
from train.metrics import MetricsWriter, ProgressReporter, check_finite, sample_grid
from train.state import create_train_state, make_optimizer
from train.step import make_step_spec, objective, train_step
from train.weights import FAST_COMPILE, initial_variables, loss_network_params

log = logging.getLogger(__name__)
EXPORT_NAME = "params.npz"  # final params (all parts) in the native format, for eval and later stages
# Fields that define what is being trained: a workdir cannot be resumed with different values.
IDENTITY_FIELDS = ("arch", "loss", "variant", "stage", "batch_size", "crop_size", "encoder", "loss_network")


class WorkdirError(ValueError):
    """The workdir cannot be used (unwritable, or holds a run with another configuration)."""


def prepare_workdir(cfg: TrainConfig, workdir: str | Path) -> Path:
    """Create `workdir`, check it is writable and that an existing run there matches `cfg`."""
    path = Path(workdir).absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise WorkdirError(f"workdir {path} is not writable: {error.strerror or error}") from error
    saved = path / "config.json"
    if saved.exists():
        previous = json.loads(saved.read_text())
        changed = [f"{k}: {previous.get(k)!r} -> {getattr(cfg, k)!r}" for k in IDENTITY_FIELDS
                   if previous.get(k) != getattr(cfg, k)]
        if changed:
            raise WorkdirError(f"workdir {path} holds a run with another configuration ({'; '.join(changed)}); "
                               "use a new --workdir. Nothing was changed or deleted.")
    if jax.process_index() == 0:
        saved.write_text(cfg.to_json())
    return path


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
    """SIGTERM/SIGINT set a flag; the loop saves a checkpoint and exits cleanly at the next step."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        log.warning("signal %d received: saving a checkpoint and stopping", signum)
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def train(cfg: TrainConfig, workdir: str | Path) -> dict[str, float]:
    """Train `cfg.arch` with `cfg.loss` in `workdir`; returns the last logged metrics.

    LinearTransfer trains only its transform on a frozen, pretrained auto-encoder. Without
    `--pretrained`, the decoder is first pre-trained as an image auto-encoder on the content stream
    (`--stage decoder`, `--decoder-iterations` steps, in `<workdir>/decoder_stage`), as the original
    repository's predecessor (WCT) did, and the transfer stage starts from its export.
    """
    if cfg.arch == "linear" and cfg.stage == "transfer" and not cfg.pretrained:
        decoder_dir = Path(workdir) / "decoder_stage"
        log.warning("no --pretrained decoder for LinearTransfer: pre-training one as an auto-encoder first "
                    "(%d steps, --decoder-iterations) in %s", cfg.decoder_iterations, decoder_dir)
        decoder_cfg = dataclasses.replace(cfg, stage="decoder", loss="native", style_weight="0",
                                          iterations=cfg.decoder_iterations,
                                          learning_rate=cfg.decoder_learning_rate or cfg.learning_rate)
        _train_stage(decoder_cfg, decoder_dir)
        cfg = dataclasses.replace(cfg, pretrained=str(decoder_dir / EXPORT_NAME))
    return _train_stage(cfg, workdir)


def _train_stage(cfg: TrainConfig, workdir: str | Path) -> dict[str, float]:
    workdir = prepare_workdir(cfg, workdir)
    is_main = jax.process_index() == 0
    model = models.build(cfg.arch, **cfg.model_kwargs())
    stream = make_stream(cfg)
    params, batch_stats = initial_variables(model, cfg)
    trainable, frozen = models.split_trainable(model, params)
    if cfg.stage == "decoder":  # LinearTransfer auto-encoder pre-training trains the decoder only
        trainable, frozen = {"decoder": params["decoder"]}, {k: v for k, v in params.items() if k != "decoder"}
    optimizer = make_optimizer(cfg)
    state = create_train_state(trainable, batch_stats, optimizer, cfg.seed)
    constants = {"frozen": frozen, **loss_network_params(cfg), "style_weight": jnp.float32(0.0)}
    spec = make_step_spec(model, cfg)

    checkpointer = Checkpointer(workdir / "checkpoints", keep=cfg.keep_checkpoints)
    style_weight = None if cfg.auto_style_weight else float(cfg.style_weight)
    start_step = checkpointer.latest_step()
    if start_step is not None:
        state, meta = checkpointer.restore(start_step, state)
        stream.restore(meta["data"])
        style_weight = meta["style_weight"]
        log.info("resumed from step %d in %s", start_step, checkpointer.directory)
    if style_weight is None:
        style_weight = calibrate_style_weight(spec, trainable, batch_stats, constants, stream, cfg.auto_style_batches)
        log.info("style weight (beta) calibrated on %d batches: %.6g", cfg.auto_style_batches, style_weight)
    constants["style_weight"] = jnp.float32(style_weight)

    step_fn = parallel.pmap_step(lambda s, b, c: train_step(s, b, c, spec=spec, optimizer=optimizer))
    replicated_state, replicated_constants = parallel.replicate(state), parallel.replicate(constants)
    first_step = int(state.step)
    writer = MetricsWriter(workdir, enabled=is_main)
    progress = ProgressReporter(cfg.iterations, initial_step=first_step, images_per_step=cfg.batch_size,
                                enabled=is_main)
    if is_main and first_step == 0:
        writer.write_scalars(0, {"style_weight": style_weight})

    def save(step: int) -> None:
        checkpointer.save(step, parallel.unreplicate(replicated_state),
                          {"data": stream.state(), "style_weight": style_weight, "config": json.loads(cfg.to_json())})

    metrics: dict[str, float] = {}
    try:
        with _StopRequested() as stop:
            for step in range(first_step + 1, cfg.iterations + 1):
                batch = next(stream)
                replicated_state, device_metrics = step_fn(replicated_state, parallel.shard(batch),
                                                           replicated_constants)
                # Fetching the metrics syncs every step: async dispatch of collectives can deadlock
                # XLA:CPU with fake devices (shared/docs/stack.md, trap 2), and the NaN guard needs them.
                metrics = {k: float(v[0]) for k, v in jax.device_get(device_metrics).items()}
                check_finite(step, metrics)
                progress.update(step, {k: v for k, v in metrics.items() if "/" not in k})
                if step % cfg.log_every == 0 or step == cfg.iterations:
                    writer.write_scalars(step, {**{f"train/{k}": v for k, v in metrics.items()},
                                                "data/skipped_images": float(stream.skipped),
                                                "perf/images_per_second": progress.images_per_second})
                if step % cfg.sample_every == 0:
                    writer.write_images(step, {"content_style_output": _sample(spec, replicated_state,
                                                                              replicated_constants, batch)})
                if step % cfg.checkpoint_every == 0 or step == cfg.iterations or stop.requested:
                    save(step)
                if stop.requested:
                    break
    finally:
        progress.close()
        writer.close()
        checkpointer.close()
    if is_main:
        final = parallel.unreplicate(replicated_state)
        variables = {"params": {**frozen, **final.params}}
        if final.batch_stats:
            variables["batch_stats"] = final.batch_stats
        meta = {"arch": cfg.arch, "stage": cfg.stage, "loss": cfg.loss, "step": step_of(replicated_state),
                **cfg.model_kwargs()}
        save_params(workdir / EXPORT_NAME, variables, meta=meta)
    return metrics


def step_of(replicated_state) -> int:
    return int(jax.device_get(replicated_state.step)[0])


@functools.partial(jax.jit, static_argnames="spec")
def _stylize_for_sample(params, batch_stats, batch, constants, *, spec):
    return objective(params, batch_stats, batch, constants, spec=spec)[1][1]


def _sample(spec, replicated_state, replicated_constants, batch) -> np.ndarray:
    """content | style | output grid of the first samples of `batch`, at the current parameters."""
    state = parallel.unreplicate(replicated_state)
    constants = parallel.unreplicate(replicated_constants)
    small = {k: v[:4] for k, v in batch.items()}
    stylized = _stylize_for_sample(state.params, state.batch_stats, small, constants, spec=spec)
    return sample_grid(small["content"] / 255.0, small["style"] / 255.0, np.asarray(stylized))
