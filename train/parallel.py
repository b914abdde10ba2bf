"""Data parallelism: the only module that knows about pmap, devices and hosts.

The step body (train/step.py) uses one named axis, `AXIS`, and explicit `lax.pmean`s, so it would also
run unchanged inside `jax.shard_map(..., check_vma=False)`; moving off pmap is a change to this file.
Multi-host runs use JAX's own runtime (`jax.distributed.initialize`), never a home-made one.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

import jax
import numpy as np

AXIS = "batch"
log = logging.getLogger(__name__)


def initialize_distributed(enabled: bool) -> None:
    """Join a multi-host job via `jax.distributed.initialize()`; must run before any other JAX call.

    On SLURM, Open MPI, Kubernetes JobSets and Cloud TPU, JAX detects the coordinator, the process count
    and this process's id by itself. Elsewhere set JAX_COORDINATOR_ADDRESS (read by JAX) plus
    JAX_NUM_PROCESSES and JAX_PROCESS_ID (passed on here). A no-op unless `enabled`.
    """
    if not enabled:
        return
    overrides = {name: int(os.environ[var]) for name, var in (("num_processes", "JAX_NUM_PROCESSES"),
                                                               ("process_id", "JAX_PROCESS_ID"))
                 if os.environ.get(var)}
    try:
        jax.distributed.initialize(**overrides)
    except Exception as error:  # noqa: BLE001 - re-raised with a hint
        raise RuntimeError(
            "jax.distributed.initialize() failed. For a manual two-host run set JAX_COORDINATOR_ADDRESS=host0:1234, "
            "JAX_NUM_PROCESSES=2 and JAX_PROCESS_ID=0/1 on each host (see README, 'Multi-host'). "
            f"Cause: {error}") from error
    log.info("distributed: process %d of %d, %d local / %d global devices", jax.process_index(),
             jax.process_count(), jax.local_device_count(), jax.device_count())


def local_batch_size(global_batch: int) -> int:
    """This host's share of the global batch; it must split evenly over all devices."""
    devices = jax.device_count()
    if global_batch % devices:
        raise ValueError(f"batch size {global_batch} is not divisible by the {devices} devices; use a multiple "
                         f"of {devices}")
    return global_batch // jax.process_count()


def shard(batch: Any) -> Any:
    """Host arrays [B_local, ...] -> [local_devices, B_local / local_devices, ...] (numpy, no copy)."""
    n = jax.local_device_count()

    def reshape(x):
        x = np.asarray(x)
        if x.shape[0] % n:
            raise ValueError(f"leading dimension {x.shape[0]} is not divisible by {n} local devices")
        return x.reshape(n, x.shape[0] // n, *x.shape[1:])

    return jax.tree.map(reshape, batch)


def replicate(tree: Any) -> Any:
    """Put one copy of `tree` on every local device (leading axis = device), once, before the loop."""
    devices = jax.local_devices()
    return jax.tree.map(lambda x: _stack_on_devices(x, devices), tree)


def _stack_on_devices(x: Any, devices: list) -> jax.Array:
    # jax.device_put_replicated is gone in JAX >= 0.10: build the [devices, ...] array from one copy per device.
    x = np.asarray(x)
    shards = [jax.device_put(x[None], d) for d in devices]
    mesh = jax.sharding.Mesh(np.array(devices), (AXIS,))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))
    return jax.make_array_from_single_device_arrays((len(devices), *x.shape), sharding, shards)


def unreplicate(tree: Any) -> Any:
    """The first device's copy of a replicated tree, as host numpy arrays."""
    return jax.tree.map(lambda x: np.asarray(x[0]), jax.device_get(tree))


def pmap_step(step_fn: Callable, *, donate_state: bool = True) -> Callable:
    """pmap a per-device `step_fn(state, batch, constants) -> (state, metrics)` over `AXIS`.

    `state` and `constants` are replicated (see `replicate`), `batch` is sharded (see `shard`).
    """
    return jax.pmap(step_fn, axis_name=AXIS, donate_argnums=(0,) if donate_state else ())
