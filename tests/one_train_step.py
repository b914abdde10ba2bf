"""One training step through the real data-parallel path, as `train.loop` runs it: `train.factory.create_run`
builds the pmapped step, `parallel.replicate` copies the state and constants, `parallel.shard` splits the batch.

test_train.py runs it in its own process (8 fake CPU devices) and, as a script, in a subprocess with one
device:  XLA_FLAGS=--xla_force_host_platform_device_count=1 python tests/one_train_step.py OUT_DIR ARCH...
which writes OUT_DIR/ARCH.npz (see `save`) for each architecture.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np

from jax_ast import parallel
from jax_ast.configs import TrainConfig, default_config
from train.factory import create_run

STYLE_WEIGHT = 3.0


def config(arch: str) -> TrainConfig:
    """Global batch 8 of 32 x 32 images, random weights; a small learning rate keeps Adam's first update
    ~lr * sign(g) from amplifying gradient entries that are zero up to summation order."""
    return default_config(arch, "balanced", vgg_weights="random", loss_vgg_weights="random",
                          native_loss_weights="random", batch_size=8, crop_size=32, learning_rate=1e-7,
                          pretrained=None, stage="transfer")


def batch(seed: int = 0) -> dict[str, np.ndarray]:
    """The global batch: {"content", "style"}: uint8 [8, 32, 32, 3]."""
    rng = np.random.default_rng(seed)
    return {k: rng.integers(0, 256, size=(8, 32, 32, 3), dtype=np.uint8) for k in ("content", "style")}


def one_step(arch: str) -> tuple[object, dict[str, float]]:
    """(state after one step on `batch()`, as host arrays; its metrics) on all local devices."""
    run = create_run(config(arch))
    constants = parallel.replicate(run.with_style_weight(STYLE_WEIGHT))
    new_state, metrics = run.step_fn(parallel.replicate(run.state), parallel.shard(batch()), constants)
    parallel.sync_on_cpu((new_state, metrics))  # fake CPU devices: an unsynchronised collective can deadlock
    return parallel.unreplicate(new_state), {k: float(v) for k, v in parallel.unreplicate(metrics).items()}


def compared(state) -> dict[str, list[np.ndarray]]:
    """What the equivalence test compares: the parameters and Adam's first moment (0.1 * gradient)."""
    return {"params": jax.tree.leaves(state.params), "mu": jax.tree.leaves(state.opt_state[0].mu)}


def save(path: Path, state, metrics: dict[str, float]) -> None:
    arrays = {f"{kind}_{i}": leaf for kind, leaves in compared(state).items() for i, leaf in enumerate(leaves)}
    np.savez(path, **arrays, **{f"metric_{k}": np.float64(v) for k, v in metrics.items()})


def load(path: Path) -> tuple[dict[str, list[np.ndarray]], dict[str, float]]:
    """`save`'s file -> (compared(state), metrics)."""
    with np.load(path) as data:
        leaves = {kind: [data[f"{kind}_{i}"] for i in range(sum(k.startswith(kind + "_") for k in data.files))]
                  for kind in ("params", "mu")}
        metrics = {k[len("metric_"):]: float(data[k]) for k in data.files if k.startswith("metric_")}
    return leaves, metrics


if __name__ == "__main__":
    jax.config.update("jax_default_matmul_precision", "highest")  # as tests/conftest.py sets it
    out = Path(sys.argv[1])
    for name in sys.argv[2:]:
        save(out / f"{name}.npz", *one_step(name))
