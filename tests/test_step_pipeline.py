"""The host stays out of the training step: batches prefetched to the devices, the state donated, nothing
fetched from the devices except at log, sample and checkpoint steps, and the compile time reported apart."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ast import parallel
from jax_ast.configs import default_config
from train import loop
from train.checkpointing import Checkpointer


class _Counting:
    """An iterator of numbered batches that counts how many were drawn."""

    def __init__(self, count: int):
        self.drawn, self.count = 0, count

    def __iter__(self):
        return self

    def __next__(self):
        if self.drawn == self.count:
            raise StopIteration
        self.drawn += 1
        return {"x": np.full((8, 2), self.drawn, np.float32)}


def test_prefetch_keeps_two_batches_on_the_devices_in_order():
    source = _Counting(5)
    batches = parallel.prefetch_to_devices(source, size=2)
    first, on_devices = next(batches)
    assert source.drawn == 2  # the current batch and the next one, already transferred
    assert isinstance(on_devices["x"], jax.Array) and on_devices["x"].shape == (8, 1, 2)
    assert on_devices["x"].sharding.is_equivalent_to(parallel.device_axis_sharding(), 3)
    np.testing.assert_array_equal(np.asarray(on_devices["x"]), parallel.shard(first)["x"])
    rest = [int(item["x"][0, 0]) for item, _ in batches]
    assert int(first["x"][0, 0]) == 1 and rest == [2, 3, 4, 5]
    with pytest.raises(ValueError, match="prefetch size"):
        next(parallel.prefetch_to_devices(_Counting(1), size=0))


@pytest.fixture
def fetches_in_quiet_steps(monkeypatch):
    """Counts the device arrays read on the host inside `train.loop`'s quiet-step regions.

    JAX's transfer guard, which the loop sets there, only fires where device memory is not host memory
    (GPU, TPU); on CPU this counts what it would refuse: every host read of a `jax.Array` goes through
    its `_value` (np.asarray, float, jax.device_get)."""
    from jax._src.array import ArrayImpl

    state = {"quiet": False, "fetches": 0}
    read = ArrayImpl._value.fget

    def counting_read(array):
        state["fetches"] += state["quiet"]
        return read(array)

    class _Quiet:
        def __init__(self, allowed):
            self.allowed, self.guard = allowed, original(allowed)

        def __enter__(self):
            state["quiet"] = not self.allowed
            return self.guard.__enter__()

        def __exit__(self, *exc):
            state["quiet"] = False
            return self.guard.__exit__(*exc)

    original = loop._host_transfers_allowed
    monkeypatch.setattr(ArrayImpl, "_value", property(counting_read))
    monkeypatch.setattr(loop, "_host_transfers_allowed", _Quiet)
    return state


def test_the_fetch_counter_sees_a_fetch(fetches_in_quiet_steps):
    on_device = jnp.ones(3) + 1
    with loop._host_transfers_allowed(True):
        np.asarray(on_device)
    assert fetches_in_quiet_steps["fetches"] == 0
    with loop._host_transfers_allowed(False):
        jax.device_get(jnp.ones(3) + 2)
        float((jnp.ones(3) + 3)[0])
    assert fetches_in_quiet_steps["fetches"] == 2


def test_training_fetches_only_at_log_steps_donates_the_state_and_reports_compile_time(tmp_path, monkeypatch,
                                                                                       fetches_in_quiet_steps):
    """Steps 1-3 run under the device-to-host guard (logging every 4th step), step 4 logs and checkpoints."""
    compiled = []

    def recording_compile(step_fn, args):
        result = original_compile(step_fn, args)
        compiled.append((result[0], jax.tree.leaves(args[0])))
        return result

    original_compile = loop._compile_step
    monkeypatch.setattr(loop, "_compile_step", recording_compile)
    # In bfloat16 (random weights: plumbing only), so the same run checks that mixed precision trains end to
    # end and keeps float32 parameters and optimizer state.
    cfg = default_config("adain", "balanced", vgg_weights="random", loss_vgg_weights="random", batch_size=8,
                         crop_size=32, iterations=4, log_every=4, checkpoint_every=4, sample_every=1000,
                         style_weight=2.0, dtype="bfloat16")
    metrics = loop.train(cfg, tmp_path)
    assert np.isfinite(metrics["loss"])
    assert fetches_in_quiet_steps["fetches"] == 0
    (program, first_state), = compiled  # compiled once, ahead of the first step
    assert all(leaf.is_deleted() for leaf in first_state)  # the step updated the donated state in place
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "train/loss" in line] == [4]  # (step 0 records the style weight)
    assert [line["step"] for line in lines if "perf/compile_seconds" in line] == [4]
    assert lines[-1]["perf/compile_seconds"] > 0
    checkpointer = Checkpointer(tmp_path / "checkpoints")
    state, meta = checkpointer.read(4)
    checkpointer.close()
    # The saved data position is that of the batches trained on, not the prefetching stream's own.
    assert meta["data"]["step"] == 4
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] == "bfloat16"
    saved = {np.asarray(leaf).dtype for leaf in jax.tree.leaves((state["params"], state["opt_state"]))}
    assert {d for d in saved if d.kind == "f"} == {np.dtype(np.float32)}
    with np.load(tmp_path / "params.npz") as exported:
        assert {exported[name].dtype for name in exported.files if exported[name].dtype.kind == "f"} == {
            np.dtype(np.float32)}
