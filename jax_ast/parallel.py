"""Data parallelism for training and evaluation: the only module that calls `jax.pmap`.

One named axis, `AXIS`. Host batches [B, ...] are padded to whole steps (`pad_to_multiple`), split over the
local devices (`shard` -> [n_devices, B / n_devices, ...]) and merged back (`unshard`); parameters are
copied to every device once (`replicate`); training batches are copied ahead of the step that needs them
(`prefetch_to_devices`). The train step (train/step.py) uses `AXIS` with explicit
`lax.pmean`s, so it would also run unchanged inside `jax.shard_map(..., check_vma=False)`: moving off pmap
is a change to this file. Multi-host runs use JAX's own runtime (`jax.distributed.initialize`).

XLA:CPU with several (fake) devices can deadlock when many pmapped programs with collectives are
dispatched asynchronously (docs/parallelism.md), so on CPU every step is synchronised (`sync_on_cpu`);
on GPU and TPU the host never waits for a step it does not need the results of.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
from typing import Any, Callable, Iterator, TypeVar

import jax
import numpy as np

AXIS = "batch"
T = TypeVar("T")
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


def shard(batch: Any, n_devices: int | None = None) -> Any:
    """Host arrays [B, ...] -> [n_devices, B / n_devices, ...] (numpy, no copy); default: the local devices."""
    n = jax.local_device_count() if n_devices is None else n_devices

    def reshape(x):
        x = np.asarray(x)
        if x.shape[0] % n:
            raise ValueError(f"leading dimension {x.shape[0]} is not divisible by {n} local devices; pad it first "
                             "(pad_to_multiple)")
        return x.reshape(n, x.shape[0] // n, *x.shape[1:])

    return jax.tree.map(reshape, batch)


def unshard(batch: Any) -> Any:
    """[n_devices, per_device, ...] -> [n_devices * per_device, ...] host numpy, for every leaf."""
    return jax.tree.map(lambda leaf: np.asarray(leaf).reshape((-1,) + np.shape(leaf)[2:]), batch)


def pad_to_multiple(batch: Any, multiple: int) -> tuple[Any, np.ndarray]:
    """Pads the leading axis of every leaf to a multiple of `multiple` by repeating the last entry.

    Edge copies (rather than zeros) keep the padding numerically ordinary (no all-zero images whose
    statistics are degenerate).

    Args:
      batch: an array or pytree of arrays sharing the leading size B >= 1.
      multiple: >= 1.

    Returns:
      (padded tree with leading size ceil(B / multiple) * multiple, mask bool[padded B], True for real rows).
    """
    size = leading_size(batch)
    padded_size = -(-size // multiple) * multiple
    mask = np.arange(padded_size) < size
    if padded_size == size:
        return batch, mask
    take = np.minimum(np.arange(padded_size), size - 1)
    return jax.tree.map(lambda leaf: np.asarray(leaf)[take], batch), mask


def leading_size(batch: Any) -> int:
    """The common leading size B of every leaf (ValueError when they differ or B is 0)."""
    sizes = {np.shape(leaf)[0] for leaf in jax.tree.leaves(batch)}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"every leaf needs the same non-zero leading size, got sizes {sorted(sizes)}")
    return sizes.pop()


def replicate(tree: Any) -> Any:
    """Put one copy of `tree` on every local device (leading axis = device), once, before the loop."""
    devices = jax.local_devices()
    return jax.tree.map(lambda x: _stack_on_devices(x, devices), tree)


def _stack_on_devices(x: Any, devices: list) -> jax.Array:
    # jax.device_put_replicated is gone in JAX >= 0.10: build the [devices, ...] array from one copy per device.
    x = np.asarray(x)
    shards = [jax.device_put(x[None], d) for d in devices]
    return jax.make_array_from_single_device_arrays((len(devices), *x.shape), device_axis_sharding(devices), shards)


def device_axis_sharding(devices: list | None = None) -> jax.sharding.NamedSharding:
    """The sharding pmap gives its inputs and outputs: leading axis split over `devices` (default: local)."""
    mesh = jax.sharding.Mesh(np.array(jax.local_devices() if devices is None else devices), (AXIS,))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))


def prefetch_to_devices(items: Iterator[T], *, size: int = 2,
                        select: Callable[[T], Any] = lambda item: item) -> Iterator[tuple[T, Any]]:
    """Yields ``(item, on_devices)``: `select(item)` (host arrays [B, ...]) sharded over the local devices.

    `size` items are transferred ahead: `jax.device_put` is asynchronous, so while the step on one batch
    runs, the next ones are already being copied, and the step itself never waits for the host (size 2 is
    double buffering). The item is passed along, so the caller keeps what belongs to the batch (the host
    copy, the data position after it).
    """
    if size < 1:
        raise ValueError(f"prefetch size must be >= 1, got {size}")
    items, sharding = iter(items), device_axis_sharding()
    queue: collections.deque[tuple[T, Any]] = collections.deque()

    def put(item: T) -> None:
        queue.append((item, jax.device_put(shard(select(item)), sharding)))

    for item in itertools.islice(items, size):
        put(item)
    while queue:
        yield queue.popleft()
        for item in itertools.islice(items, 1):
            put(item)


def unreplicate(tree: Any) -> Any:
    """The first local device's copy of a replicated tree [n_devices, ...], as host numpy arrays; only that
    copy is transferred."""
    def first(x):
        if isinstance(x, jax.Array) and len(x.addressable_shards) > 1:
            return x.addressable_shards[0].data[0]
        return x[0]

    return jax.device_get(jax.tree.map(first, tree))


def pmap(fn: Callable, *, in_axes: Any = 0, static_broadcasted_argnums: tuple[int, ...] = (),
         donate_argnums: tuple[int, ...] = ()) -> Callable:
    """`jax.pmap(fn)` over the local devices along `AXIS`: the single place where jax-ast calls pmap."""
    return jax.pmap(fn, axis_name=AXIS, in_axes=in_axes, static_broadcasted_argnums=static_broadcasted_argnums,
                    donate_argnums=donate_argnums)


def pmap_step(step_fn: Callable, *, donate_state: bool = True) -> Callable:
    """pmap a per-device `step_fn(state, batch, constants) -> (state, metrics)` over `AXIS`.

    `state` and `constants` are replicated (see `replicate`), `batch` is sharded (see `shard`); the state's
    buffers are donated, so the step updates it in place.
    """
    return pmap(step_fn, donate_argnums=(0,) if donate_state else ())


def sync_on_cpu(tree: Any) -> Any:
    """Wait for `tree` on the CPU backend, return it at once elsewhere.

    XLA:CPU runs the collectives of asynchronously dispatched pmapped steps on a shared thread pool; with
    several (fake) CPU devices, many steps in flight can deadlock it (docs/parallelism.md). GPUs and TPUs
    keep their queue: the host then waits only where it needs values (log and checkpoint steps).
    """
    if jax.default_backend() == "cpu":
        jax.block_until_ready(tree)
    return tree


def replicate_variables(tree: Any) -> Any:
    """Model variables placed whole on every local device, for pmapped functions that take them with
    ``in_axes=None`` (inference: nothing is updated, so no per-device copy axis is needed)."""
    mesh = jax.sharding.Mesh(np.array(jax.local_devices()), ("replica",))
    return jax.device_put(tree, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))


def run_in_steps(parallel_fn: Callable, variables: Any, batched: tuple, step_size: int, **static: Any) -> Any:
    """``parallel_fn(variables, *batched_shards, **static)`` over `batched` (leading axis B), in steps.

    Each step of `step_size` rows (a multiple of the local device count) is padded (`pad_to_multiple`),
    sharded, run, synchronised (`sync_on_cpu`), merged and unpadded, so every step has one shape and the
    last, partial one reuses the compiled program. Returns host numpy with leading axis B.
    """
    n_devices = jax.local_device_count()
    if step_size % n_devices:
        raise ValueError(f"step_size {step_size} must be a multiple of the {n_devices} local devices")
    size = leading_size(batched)
    outputs = []
    for start in range(0, size, step_size):
        chunk = jax.tree.map(lambda leaf: np.asarray(leaf)[start:start + step_size], batched)
        padded, mask = pad_to_multiple(chunk, step_size)
        result = sync_on_cpu(parallel_fn(variables, *shard(padded, n_devices), **static))
        outputs.append(jax.tree.map(lambda leaf: leaf[mask], unshard(result)))
    return jax.tree.map(lambda *leaves: np.concatenate(leaves), *outputs)
