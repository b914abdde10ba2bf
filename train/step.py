"""The per-device train step: a pure function of (state, batch, constants).

`objective` wires a network's outputs to `jax_ast.losses`: the method's native loss, or its native
non-style terms plus beta * the classic/balanced style loss on the paper's VGG-16 loss network
(docs/losses.md, The objective and beta: classic and balanced replace only the style term). `train_step` differentiates
it w.r.t. the trainable parameters and averages gradients and metrics over `parallel.AXIS`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax import lax

import jax_ast.losses as L
from jax_ast.archs import ObjectiveInputs, ObjectiveResult
from jax_ast.configs import TrainConfig
from jax_ast.models.vgg import VGG
from jax_ast.parallel import AXIS
from jax_ast.precision import parse_dtype, to_float32
from train.state import TrainState


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """Static (hashable) configuration of the step: the model, its loss networks and the config."""

    model: Any
    cfg: TrainConfig
    native_net: VGG  # loss network of the native objective
    paper_net: VGG | None  # VGG-16 of the classic/balanced style term, None for native


def make_step_spec(model: Any, cfg: TrainConfig) -> StepSpec:
    """The step's static parts; the loss networks' convolutions compute in `cfg.model.dtype`, like the model's."""
    dtype = parse_dtype(cfg.model.dtype)
    native_variant = cfg.native_loss_network[0] if cfg.native_loss_network else cfg.encoder_variant
    paper_net = (VGG(cfg.objective.loss_network, taps=L.PAPER_STYLE_LAYERS, dtype=dtype)
                 if cfg.objective.loss != "native" and cfg.model.stage == "transfer" else None)
    return StepSpec(model=model, cfg=cfg, native_net=VGG(native_variant, dtype=dtype), paper_net=paper_net)


def _feats(net: VGG, params: Any, images: jax.Array, layers, *, constant: bool = False) -> dict[str, jax.Array]:
    """Loss-network features, float32 whatever the network's compute dtype (the native losses are float32)."""
    feats = to_float32(net.clone(taps=tuple(layers)).apply({"params": params}, images))
    return lax.stop_gradient(feats) if constant else feats


def _native(spec: StepSpec, variables: dict, content, style, constants, style_weight,
            output_override=None) -> ObjectiveResult:
    """The native objective of `spec.cfg.model.arch` (its `jax_ast.archs` plug-in).

    When classic/balanced replace the style term (`spec.paper_net` set), the native style features are
    not computed at all (SANet still needs them for its identity losses). `output_override` replaces the
    network's output in every loss term (the style-weight calibration scores fixed images).
    """
    cfg = spec.cfg
    model_apply = functools.partial(spec.model.apply, variables)

    def apply(*args, **kwargs):
        result = model_apply(*args, **kwargs)
        if output_override is None:
            return result
        if kwargs.get("mutable"):
            (_, aux), updates = result
            return (output_override, aux), updates
        return output_override, result[1]

    # The native loss runs on a separate loss network (LinearTransfer, Magenta) or on the frozen encoder.
    loss_params = (constants["native_loss_net"] if cfg.native_loss_network is not None
                   else constants["frozen"].get("encoder"))

    def features(images, layers, *, constant=False):
        return _feats(spec.native_net, loss_params, images, layers, constant=constant)

    return cfg.plugin.objective(ObjectiveInputs(apply=apply, content=content, style=style, features=features,
                                                weights=cfg.objective, options=cfg.options, style_weight=style_weight,
                                                native_style=spec.paper_net is None, stage=cfg.model.stage))


def objective(trainable: Any, batch_stats: Any, batch: dict, constants: dict, *, spec: StepSpec,
              output_as: str | None = None):
    """Per-sample loss of one local batch.

    Args:
      trainable: the trainable params. batch_stats: BatchNorm statistics ({} if none).
      batch: {"content", "style"}: uint8[B, H, W, 3].
      constants: {"frozen": frozen params, "native_loss_net": params or None, "paper_loss_net": params
        or None, "style_weight": float32 scalar (the calibrated beta for classic/balanced)}.
      output_as: None (score the network's output), "content" or "style": score that input image as if
        the network had produced it (used to calibrate the style weight).

    Returns:
      (total [B], (metrics {name: [B]}, stylized [B, H, W, 3], new batch_stats)).
    """
    content = batch["content"].astype(jnp.float32) / 255.0
    style = batch["style"].astype(jnp.float32) / 255.0
    override = None
    if output_as is not None:
        override = {"content": content, "style": style}[output_as]
        if override.shape != content.shape:
            override = jax.image.resize(override, content.shape, "bilinear")
    variables = {"params": {**constants["frozen"], **trainable}}
    if batch_stats:
        variables["batch_stats"] = batch_stats
    replaced = spec.paper_net is not None
    native_style_weight = 0.0 if replaced else constants["style_weight"]
    total, terms, stylized, new_stats = _native(spec, variables, content, style, constants, native_style_weight,
                                                override)
    # The native terms that classic/balanced replace are still logged, as "native/<term>".
    native_style = spec.cfg.plugin.native_style_terms
    metrics = {f"native/{k}" if replaced and k.startswith(native_style) else k: v for k, v in terms.items()}
    if replaced:  # the same entry point as eval's per-pair scores
        paper = L.loss_terms(spec.paper_net, {"params": constants["paper_loss_net"]}, None, style, stylized,
                             terms=(spec.cfg.objective.loss,), style_layers=L.PAPER_STYLE_LAYERS,
                             detach_denominator=spec.cfg.objective.detach_denominator)
        style_term = paper.pop(spec.cfg.objective.loss)
        total = total + constants["style_weight"] * style_term
        metrics.update({"style": style_term, **paper})
    metrics["loss"] = total
    return total, (metrics, stylized, new_stats)


def train_step(state: TrainState, batch: dict, constants: dict, *, spec: StepSpec, optimizer):
    """One optimizer step on this device's shard; gradients and metrics are averaged over `AXIS`.

    The four networks are deterministic in training (no dropout or noise), so the step takes no RNG; the
    randomness of a run is in its data stream (crops, flips, order), which is seeded and checkpointed.
    """

    def mean_loss(trainable):
        total, aux = objective(trainable, state.batch_stats, batch, constants, spec=spec)
        return jnp.mean(total), aux

    (_, (metrics, _, new_stats)), grads = jax.value_and_grad(mean_loss, has_aux=True)(state.params)
    grads = lax.pmean(grads, AXIS)
    new_stats = lax.pmean(new_stats, AXIS)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = lax.pmean({k: jnp.mean(v) for k, v in metrics.items()}, AXIS)
    metrics["grad_norm"] = _global_norm(grads)
    # The NaN guard checks these before a checkpoint is written, so no checkpoint stores non-finite
    # parameters. The squares overflow float32 for entries above ~1e19, which flags a run that is
    # diverging while its loss is still finite.
    metrics["update_norm"] = _global_norm(updates)
    metrics["param_norm"] = _global_norm((params, new_stats))  # BatchNorm statistics are saved too
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state, batch_stats=new_stats), metrics


def _global_norm(tree: Any) -> jax.Array:
    """sqrt(sum of squares) over every leaf: NaN if any entry is NaN, inf if any is inf."""
    return jnp.sqrt(sum((jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)), jnp.float32(0.0)))
