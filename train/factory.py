"""One factory for a training run's pieces: `create_run(cfg)`.

The training loop, the benchmarks and the tests all build a run here, so the model, its initial variables,
the trainable/frozen split, the optimizer, the state, the constants and the pmapped step are set up once.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax.numpy as jnp
import optax

from jax_ast import archs, models, parallel
from jax_ast.configs import TrainConfig
from jax_ast.precision import parse_dtype
from train.state import TrainState, create_train_state, make_optimizer
from train.step import StepSpec, make_step_spec, train_step
from train.weights import initial_variables, loss_network_params


@dataclasses.dataclass
class Run:
    """A training run at step 0, on the host (see `create_run`).

    Attributes:
      state: the step, trainable params, optimizer state and BatchNorm statistics.
      frozen: the params that are not trained (encoder, pretrained parts).
      constants: {"frozen", "native_loss_net", "paper_loss_net", "style_weight"} for `train.step`;
        style_weight starts at 0 until the run sets (or calibrates) it.
      step_fn: the pmapped `train.step.train_step`: (replicated state, sharded batch, replicated constants)
        -> (state, metrics); it donates the state.
    """

    cfg: TrainConfig
    model: Any
    spec: StepSpec
    optimizer: optax.GradientTransformation
    state: TrainState
    frozen: dict
    constants: dict
    step_fn: Callable

    def with_style_weight(self, style_weight: float) -> dict:
        """The constants with beta set."""
        return {**self.constants, "style_weight": jnp.float32(style_weight)}


def create_run(cfg: TrainConfig) -> Run:
    """Model, initial variables (with the pretrained parts), optimizer, state, constants and step of `cfg`."""
    # Convolutions compute in cfg.model.dtype; the params (and so the optimizer state) stay float32.
    model = archs.build(cfg.model.arch, dtype=parse_dtype(cfg.model.dtype), **cfg.model_kwargs())
    params, batch_stats = initial_variables(model, cfg)
    trainable, frozen = models.split_trainable(model, params)
    if cfg.model.stage == "decoder":  # auto-encoder pre-training trains the decoder only
        trainable, frozen = {"decoder": params["decoder"]}, {k: v for k, v in params.items() if k != "decoder"}
    for part in cfg.plugin.frozen_parts(cfg) if cfg.plugin.frozen_parts else ():  # e.g. Magenta's --freeze
        frozen[part] = trainable.pop(part)
    optimizer = make_optimizer(cfg)
    state = create_train_state(trainable, batch_stats, optimizer)
    constants = {"frozen": frozen, **loss_network_params(cfg), "style_weight": jnp.float32(0.0)}
    spec = make_step_spec(model, cfg)
    step_fn = parallel.pmap_step(lambda s, b, c: train_step(s, b, c, spec=spec, optimizer=optimizer))
    return Run(cfg=cfg, model=model, spec=spec, optimizer=optimizer, state=state, frozen=frozen,
               constants=constants, step_fn=step_fn)
