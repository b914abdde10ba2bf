"""End-to-end training: every arch x loss, pmap equivalence, overfitting, resume after SIGKILL, CLI errors."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import jax

from jax_ast import compilation_cache
from train.checkpointing import Checkpointer
from train.loop import train

# tests/ is on sys.path under pytest's default import mode.
import one_train_step
from tiny_runs import tiny_config

REPO = Path(__file__).resolve().parents[1]


# Every arch once and every loss once: the loss terms are shared by all networks (`train.step.objective`),
# so the full arch x loss product would repeat the same compiled code paths at 2x the test time.
ARCH_LOSS_RUNS = [("adain", "balanced"), ("sanet", "classic"), ("linear", "native"), ("magenta", "native")]


@pytest.mark.slow
@pytest.mark.parametrize("arch, loss", ARCH_LOSS_RUNS)
def test_three_steps_every_arch_and_loss(tmp_path, arch, loss):
    # "auto" (calibrated beta) costs one more compilation: exercise it once, elsewhere give beta.
    auto = arch == "adain" and loss == "balanced"
    overrides = {} if auto or loss == "native" else {"style_weight": "2"}
    if auto:  # the learning rate is a constant of the step: this one then compiles one_train_step's program
        overrides["learning_rate"] = one_train_step.config(arch).optim.learning_rate
    cfg = tiny_config(arch, loss, iterations=3, **overrides)
    metrics = train(cfg, tmp_path)
    assert np.isfinite(metrics["loss"]), metrics
    assert Checkpointer(tmp_path / "checkpoints").latest_step() == 3
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 3 and np.isfinite(lines[-1]["train/loss"])
    if auto:
        assert lines[0]["style_weight"] > 0  # the calibrated beta is recorded


EQUIVALENCE_ARCHS = ("adain", "linear")


@pytest.fixture(scope="module")
def one_device_steps(tmp_path_factory) -> Path:
    """The folder of `one_train_step`'s results on one device, from a subprocess (this process has 8)."""
    out = tmp_path_factory.mktemp("one_device")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, str(REPO / "tests" / "one_train_step.py"), str(out), *EQUIVALENCE_ARCHS],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.parametrize("arch", EQUIVALENCE_ARCHS)
def test_eight_devices_equal_one_device(arch, one_device_steps):
    """The same global batch through jax_ast.parallel (replicate, shard, pmap_step) and train_step on 8 fake
    devices here and on 1 device in a subprocess: the same metrics, gradients and parameters."""
    assert jax.local_device_count() == 8
    state_8, metrics_8 = one_train_step.one_step(arch)
    leaves_8 = one_train_step.compared(state_8)
    leaves_1, metrics_1 = one_train_step.load(one_device_steps / f"{arch}.npz")
    for key in ("loss", "content", "style"):
        np.testing.assert_allclose(metrics_8[key], metrics_1[key], rtol=1e-5)
    # A norm over ~5M float32 gradient entries summed in another order: 1e-4.
    np.testing.assert_allclose(metrics_8["grad_norm"], metrics_1["grad_norm"], rtol=1e-4)
    assert len(leaves_8["params"]) == len(leaves_1["params"]) > 0
    for a, b in zip(leaves_8["params"], leaves_1["params"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # The gradients, through Adam's first moment (mu = 0.1 * g after one step).
    assert len(leaves_8["mu"]) == len(leaves_1["mu"]) > 0
    scale = max(float(np.max(np.abs(x))) for x in leaves_1["mu"])
    for a, b in zip(leaves_8["mu"], leaves_1["mu"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * scale)  # float32 reduction order


# AdaIN's loss falls below 0.1x its start within ~10 steps even at 32 px: the last five of 12 steps average
# 0.015x the first three (measured, one device, the pair as the batch). LinearTransfer's transform first has
# to shrink its initial output (~1e3 times too large) at Adam's pace: at 64 px its loss drops after step 25
# (at 32 px it rebounds, and a larger learning rate diverges), so it keeps 64 px and runs 48 steps: 0.10x.
OVERFIT_RUNS = [pytest.param("adain", "balanced", 32, 12, id="adain-balanced"),
                pytest.param("linear", "native", 64, 48, id="linear-native")]


@pytest.fixture(scope="module")
def overfit_losses(tmp_path_factory) -> Path:
    """The folder of `overfit_one_pair`'s loss lists, from one subprocess with one device (batch: the pair)."""
    out = tmp_path_factory.mktemp("overfit")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "PYTHONPATH": str(REPO)}
    runs = [":".join(map(str, p.values)) for p in OVERFIT_RUNS]
    result = subprocess.run([sys.executable, str(REPO / "tests" / "overfit_one_pair.py"), str(out), *runs],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("arch, loss, crop, steps", OVERFIT_RUNS)
def test_overfitting_one_pair_lowers_the_loss(arch, loss, crop, steps, overfit_losses):
    losses = json.loads((overfit_losses / f"{arch}-{loss}.json").read_text())
    assert len(losses) == steps
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3]), (losses[:3], losses[-5:])


def _cli(workdir, *extra, env=None, **kwargs):
    cmd = [sys.executable, "-m", "train.run", "--arch", "adain", "--loss", "balanced", "--workdir", str(workdir),
           "--keep-checkpoints", "10",
           "--vgg-weights", "random", "--loss-vgg-weights", "random", "--batch-size", "8",
           "--log-every", "1", "--auto-style-batches", "1", *extra]
    # Two devices, not the session's eight: still a sharded batch and replicated state to save and restore, at
    # 7 s less CPU for the three runs of the SIGKILL test (fake devices on 2 cores; docs/performance.md). The
    # session's other XLA flags (a stuck collective aborts in seconds) stay.
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "--xla_force_host_platform_device_count=2",
                   os.environ["XLA_FLAGS"])
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "XLA_FLAGS": flags, **(env or {})}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)


def _final_params(workdir):
    checkpointer = Checkpointer(Path(workdir) / "checkpoints")
    step = checkpointer.latest_step()
    state, _ = checkpointer.read(step)  # raw tree, enough to compare leaves
    checkpointer.close()
    return step, jax.tree.leaves(state["params"])


@pytest.mark.slow
def test_resume_after_sigkill_continues_the_same_trajectory(tmp_path):
    # 48 px steps (with a checkpoint each) take ~0.2-0.4 s here, so polling every 20 ms catches run B between
    # steps 3 and 6. The three runs share one persistent compilation cache of their own (not the session's,
    # so run B compiles the step itself): the resumed run and run A load the step run B compiled.
    args = ("--iterations", "6", "--checkpoint-every", "1", "--crop-size", "48")
    cache = {compilation_cache.FOLDER_ENV: str(tmp_path / "cache" / "xla")}
    run_b = _cli(tmp_path / "b", *args, env=cache)
    deadline = time.time() + 600
    while time.time() < deadline and not (tmp_path / "b/checkpoints/3").exists():
        assert run_b.poll() is None, run_b.stdout.read()
        time.sleep(0.02)
    run_b.send_signal(signal.SIGKILL)
    run_b.wait()
    killed_at = Checkpointer(tmp_path / "b/checkpoints").latest_step()
    assert 3 <= killed_at < 6, f"run B was not killed mid-run (latest checkpoint {killed_at})"
    rerun = _cli(tmp_path / "b", *args, env=cache)
    out_b, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out_b
    assert f"resumed from step {killed_at}" in out_b
    assert any((tmp_path / "cache" / "xla").iterdir())  # the compiled programs the later runs load
    run_a = _cli(tmp_path / "a", *args, env=cache)
    out_a, _ = run_a.communicate(timeout=600)
    assert run_a.returncode == 0, out_a
    step_a, params_a = _final_params(tmp_path / "a")
    step_b, params_b = _final_params(tmp_path / "b")
    assert step_a == step_b == 6
    for a, b in zip(params_a, params_b):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("args, message", [
    (["--arch", "vgg"], "invalid choice: 'vgg'"),
    (["--loss", "gram"], "invalid choice: 'gram'"),
    (["--content-dir", "/does/not/exist", "--vgg-weights", "random", "--loss-vgg-weights", "random"],
     "/does/not/exist"),
    (["--workdir", "/proc/forbidden", "--vgg-weights", "random"], "not writable"),
])
def test_cli_errors_exit_2_with_one_clear_message(args, message):
    result = subprocess.run([sys.executable, "-m", "train.run", *args], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_folder_and_tfds_mock_data_feed_training(tmp_path):
    import tensorflow_datasets as tfds
    from PIL import Image

    content_dir = tmp_path / "photos" / "nested"
    content_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(3):
        Image.fromarray(rng.integers(0, 256, size=(40 + index, 50, 3), dtype=np.uint8)).save(content_dir / f"{index}.png")
    cfg = tiny_config("adain", "native", iterations=2, content_dir=str(tmp_path / "photos"), style_tfds="tf_flowers")
    with tfds.testing.mock_data(num_examples=5):  # mocked tf_flowers needs no TensorFlow
        metrics = train(cfg, tmp_path / "run")
    assert np.isfinite(metrics["loss"])
    assert Checkpointer(tmp_path / "run" / "checkpoints").latest_step() == 2


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    import train.loop as loop

    real_check = loop.check_finite

    def poisoned(step, scalars):
        return real_check(step, {**scalars, "loss": float("nan")} if step == 3 else scalars)

    monkeypatch.setattr(loop, "check_finite", poisoned)
    cfg = tiny_config("adain", "native", iterations=5, checkpoint_every=2)
    with pytest.raises(FloatingPointError, match="step 3"):
        train(cfg, tmp_path)
    assert Checkpointer(tmp_path / "checkpoints").latest_step() == 2
    assert not (tmp_path / "params.npz").exists()


@pytest.mark.slow
def test_two_process_run_on_jax_distributed(tmp_path):
    """Two processes x 2 CPU devices joined by jax.distributed (gloo collectives on CPU) train one model."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runs = []
    for process_id in range(2):
        env = {**os.environ, "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo",
               "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
               "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(process_id), "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "train.run", "--distributed", "--arch", "adain", "--loss", "native",
               "--workdir", str(tmp_path), "--vgg-weights", "random", "--batch-size", "4", "--crop-size", "32",
               "--iterations", "2", "--log-every", "1"]
        runs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True))
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert all("4 global, 2 processes" in out for out in outputs), outputs
    finished = [line.split("finished: ")[1] for out in outputs for line in out.splitlines() if "finished: " in line]
    assert len(finished) == 2 and finished[0] == finished[1]  # both processes hold the same replicated state
    assert Checkpointer(tmp_path / "checkpoints").latest_step() == 2
