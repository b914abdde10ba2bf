"""Train state and optimizer.

Only the parts a method trains (the model's `TRAINABLE` collections) live in the state and the
optimizer; frozen parts (VGG encoder, pretrained decoder, loss networks) are passed to the step as
constants, so they are neither updated, nor stored in every checkpoint, nor given Adam moments.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from jax_ast.configs import TrainConfig


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training."""

    step: jax.Array  # int32 scalar: completed optimizer steps
    params: Any  # trainable parameters only
    opt_state: Any
    batch_stats: Any  # BatchNorm statistics (Magenta), {} otherwise


def learning_rate_schedule(cfg: TrainConfig) -> optax.Schedule:
    """Inverse-time decay lr_k = lr / (1 + decay * k) of the AdaIN/SANet/LinearTransfer originals.

    AdaIN sets the rate before step i (i from 0) and LinearTransfer after step i (i from 1); both give
    step k (0-based) the rate lr / (1 + decay * k). Magenta uses decay 0 (a constant rate).
    """
    def schedule(count):
        return cfg.optim.learning_rate / (1.0 + cfg.optim.lr_decay * count)
    return schedule


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """Adam with the method's schedule (all four originals use Adam with default betas)."""
    return optax.adam(learning_rate_schedule(cfg))


def create_train_state(trainable: Any, batch_stats: Any, optimizer: optax.GradientTransformation) -> TrainState:
    """A fresh state at step 0 for the given trainable params."""
    return TrainState(step=jnp.zeros((), jnp.int32), params=trainable, opt_state=optimizer.init(trainable),
                      batch_stats=batch_stats)
