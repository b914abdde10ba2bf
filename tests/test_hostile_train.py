"""Hostile inputs and faults for `python -m train.run`: one message, a documented exit code, nothing
on disk changed.

Exit codes (train/run.py): 0 finished, 1 diverged, 2 usage/input error, 3 I/O failure while training,
128+N stopped by signal N. Each case runs the CLI (in this process through `run.main`, or in a
subprocess where signals, mounts or the environment must be real) and checks the exit code, that the
last stderr line is one `python -m train.run: ...` message naming the culprit, that there is no
traceback, and that the files already in the workdir are byte-for-byte unchanged.
"""

import errno
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp
import pytest
from PIL import Image

import jax

from jax_ast import archs
from jax_ast.configs import TrainConfig, default_config, flat_fields
from jax_ast.locking import LockedError, exclusive_lock
from jax_ast.pretrained import WeightsError
from jax_ast.pretrained.params_file import save_params
from train import run
from train.checkpointing import Checkpointer, CheckpointSaveError
from train.run_folder import checkpoint_steps
from train.loop import RESUMABLE_FIELDS, WorkdirError, check_workdir, train

REPO = Path(__file__).resolve().parents[1]
PROG = "python -m train.run: "
RANDOM = ["--vgg-weights", "random", "--loss-vgg-weights", "random", "--native-loss-weights", "random"]
# In this process conftest gives 8 fake devices, so the batch is 8; subprocesses get 1 device and batch 2.
BASE = ["--arch", "adain", "--loss", "native", *RANDOM, "--crop-size", "32", "--log-every", "1",
        "--sample-every", "1000", "--iterations", "2", "--decoder-iterations", "2"]  # bounded if a check is missing


def _snapshot(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under `folder` (the lock file's PID line excepted)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def _main(capsys, *argv) -> tuple[int, str]:
    """`python -m train.run *argv` in this process: (exit code, stderr)."""
    with pytest.raises(SystemExit) as exited:
        run.main([*BASE, "--batch-size", "8", *argv])
    return exited.value.code, capsys.readouterr().err


def _cli(*argv, env=None, **kwargs) -> subprocess.CompletedProcess:
    """`python -m train.run *argv` in a subprocess on 1 device, from the repository root."""
    return subprocess.run([sys.executable, "-m", "train.run", *BASE, "--batch-size", "2", *argv], cwd=REPO,
                          env=env or _env(), capture_output=True, text=True, timeout=300, **kwargs)


def _env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COORDINATOR") and k not in (
        "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")}
    return {**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "PYTHONUNBUFFERED": "1", **extra}


def _assert_message(code: int, stderr: str, expected_code: int, *fragments: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == expected_code, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert lines and lines[-1].startswith(PROG), stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[-1], (fragment, lines[-1])
    return lines[-1]


def _fake_run(workdir: Path, cfg: TrainConfig, steps=(2,)) -> dict[str, str]:
    """A workdir as a run of `cfg` leaves it (config.json, metrics, checkpoint folders), for the checks
    that must refuse it before reading any checkpoint."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(cfg.to_json())
    (workdir / "metrics.jsonl").write_text('{"step": 1, "train/loss": 1.0}\n')
    for step in steps:
        (workdir / "checkpoints" / str(step)).mkdir(parents=True)
        (workdir / "checkpoints" / str(step) / "data").write_bytes(b"\0" * 64)
    return _snapshot(workdir)


def _cli_config(arch="adain", **overrides) -> TrainConfig:
    """The config `_main(capsys)` builds from BASE (batch 8)."""
    values = dict(vgg_weights="random", loss_vgg_weights="random", native_loss_weights="random", crop_size=32,
                  log_every=1, sample_every=1000, batch_size=8, iterations=2, decoder_iterations=2)
    values.update(overrides)
    return default_config(arch, "native", **values)


# ------------------------------------------------------------------ case 3 and 8: config validation


@pytest.mark.parametrize("argv, flag", [
    (["--learning-rate", "nan"], "--learning-rate"),
    (["--learning-rate", "inf"], "--learning-rate"),
    (["--learning-rate", "1e30"], "--learning-rate"),
    (["--learning-rate", "0"], "--learning-rate"),
    (["--lr-decay", "inf"], "--lr-decay"),
    (["--content-weight", "-1"], "--content-weight"),
    (["--style-weight", "nan"], "--style-weight"),
    (["--style-weight=-inf"], "--style-weight"),  # "=": argparse reads a bare "-inf" as an option
    (["--tv-weight", "inf"], "--tv-weight"),
    (["--identity-pixel-weight", "nan"], "--identity-pixel-weight"),
    (["--identity-feature-weight", "inf"], "--identity-feature-weight"),
    (["--seed", "-1"], "--seed must be in [0, 2**32)"),
    (["--seed", str(2**32)], "--seed must be in [0, 2**32)"),
    (["--crop-size", "8"], "--crop-size 8 is too small for adain: its minimum is 16"),
    (["--arch", "sanet", "--crop-size", "16"], "too small for sanet: its minimum is 32"),
    (["--arch", "linear", "--crop-size", "8"], "too small for linear: its minimum is 16"),
    (["--arch", "magenta", "--crop-size", "32"], "too small for magenta: its minimum is 43"),
])
def test_bad_numbers_exit_2_naming_the_flag_before_anything_is_written(capsys, tmp_path, argv, flag):
    code, err = _main(capsys, "--workdir", str(tmp_path / "run"), *argv)
    _assert_message(code, err, 2, flag)
    assert not (tmp_path / "run").exists()


def test_every_float_field_must_be_finite():
    """Also guards fields added later: every float field rejects NaN and inf."""
    floats = [name for name, (_, field) in flat_fields().items() if field.type in ("float", float)]
    assert {"learning_rate", "lr_decay", "content_weight", "tv_weight"} <= set(floats)
    for name in floats:
        for value in (float("nan"), float("inf")):
            with pytest.raises(ValueError, match=name):
                default_config("adain", **{name: value})


def test_magenta_minimum_crop_is_the_inception_minimum():
    from jax_ast.models.inception import MIN_INPUT_SIZE

    assert archs.get("magenta").min_crop == MIN_INPUT_SIZE


def test_nan_learning_rate_in_a_subprocess_exits_2_without_traceback(tmp_path):
    result = _cli("--workdir", str(tmp_path / "run"), "--learning-rate", "nan")
    _assert_message(result.returncode, result.stderr, 2, "--learning-rate", "nan")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ cases 1 and 2: signals


def _sigterm_when(args, ready: Path, tmp_path) -> tuple[int, str]:
    process = subprocess.Popen([sys.executable, "-m", "train.run", *BASE, "--batch-size", "2", *args], cwd=REPO,
                               env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not ready.exists():
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert time.time() < deadline, "the run never reached its first checkpoint"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=240)
    return process.returncode, err


def test_sigterm_stops_with_143_a_resume_hint_and_no_export(tmp_path):
    workdir = tmp_path / "run"
    code, err = _sigterm_when(["--workdir", str(workdir), "--iterations", "1000", "--checkpoint-every", "1"],
                              workdir / "checkpoints" / "1", tmp_path)
    line = _assert_message(code, err, 128 + signal.SIGTERM, "SIGTERM", "stopped at step",
                           "of 1000", "rerun the same command to resume")
    step = int(line.split("stopped at step ")[1].split()[0])
    assert 1 <= step < 1000
    assert (workdir / "checkpoints" / str(step)).is_dir()
    assert not (workdir / "params.npz").exists()


def test_sigterm_in_linear_decoder_pretraining_stops_the_whole_run(tmp_path):
    workdir = tmp_path / "run"
    args = ["--arch", "linear", "--workdir", str(workdir), "--iterations", "2", "--decoder-iterations", "1000",
            "--checkpoint-every", "1"]
    code, err = _sigterm_when(args, workdir / "decoder_stage" / "checkpoints" / "1", tmp_path)
    _assert_message(code, err, 128 + signal.SIGTERM, "decoder pre-training (stage 1 of 2) stopped at step",
                    "of 1000", "rerun the same command to resume")
    assert not (workdir / "decoder_stage" / "params.npz").exists()
    # The transfer stage never started: no config, checkpoint or export of it.
    assert not (workdir / "checkpoints").exists() and not (workdir / "config.json").exists()
    assert not (workdir / "params.npz").exists()


# ------------------------------------------------------------------ cases 3 and 4: NaN guard


def _blow_up_optimizer_at(monkeypatch, step: int) -> None:
    """The training optimizer, plus an inf added to every update of `step` (1-based), as --learning-rate 1e30 did."""
    import optax

    import train.factory as factory

    real_make_optimizer = factory.make_optimizer

    def blow_up():
        def update(updates, count, params=None):
            boost = jax.numpy.where(count == step - 1, jax.numpy.inf, 0.0)
            return jax.tree.map(lambda u: u + boost, updates), count + 1

        return optax.GradientTransformation(lambda params: jax.numpy.zeros((), jax.numpy.int32), update)

    monkeypatch.setattr(factory, "make_optimizer", lambda cfg: optax.chain(real_make_optimizer(cfg), blow_up()))


def test_non_finite_parameters_stop_before_they_are_checkpointed(tmp_path, monkeypatch):
    """An optimizer that blows up at step 2: the loss of step 2 is still finite, its updates and
    parameters are not, and they must never reach a checkpoint."""
    _blow_up_optimizer_at(monkeypatch, 2)
    cfg = _cli_config(iterations=4, checkpoint_every=1)
    with pytest.raises(FloatingPointError) as raised:
        train(cfg, tmp_path)
    message = str(raised.value)
    assert message.startswith("non-finite loss at step 2: ") and "param_norm=inf" in message, message
    assert "loss=" not in message.split(";")[0], message  # the loss itself was finite
    assert f"the last checkpoint, step 1 in {tmp_path / 'checkpoints'}, is kept" in message, message
    checkpointer = Checkpointer(tmp_path / "checkpoints")
    assert checkpoint_steps(tmp_path / "checkpoints") == [1]
    state, _ = checkpointer.read(1)
    checkpointer.close()
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(state["params"]))
    assert not (tmp_path / "params.npz").exists()
    with exclusive_lock(tmp_path / ".lock", what="workdir"):  # released although the run failed
        pass


def test_nan_guard_says_when_no_checkpoint_exists(tmp_path, monkeypatch):
    # Step 2 with no checkpoint before it: the same compiled step as the test above (the step is a constant).
    _blow_up_optimizer_at(monkeypatch, 2)
    with pytest.raises(FloatingPointError) as raised:
        train(_cli_config(iterations=2, checkpoint_every=2), tmp_path)
    message = str(raised.value)
    assert message.startswith("non-finite loss at step 2: "), message
    assert message.endswith(f"; no checkpoint exists in {tmp_path / 'checkpoints'}, so there is nothing to resume "
                            "from"), message
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


# ------------------------------------------------------------------ case 5: resuming another run


@pytest.mark.parametrize("argv, expected", [
    (["--seed", "5"], "--seed 0 -> 5"),
    (["--content-dir", "{tmp}"], "--content-dir None -> "),
    (["--learning-rate", "0.001"], "--learning-rate 0.0001 -> 0.001"),
])
def test_resuming_with_another_identity_field_exits_2_and_changes_nothing(capsys, tmp_path, argv, expected):
    workdir = tmp_path / "run"
    before = _fake_run(workdir, _cli_config())
    code, err = _main(capsys, "--workdir", str(workdir), *[a.format(tmp=tmp_path) for a in argv])
    _assert_message(code, err, 2, f"workdir {workdir} holds a run with another configuration", expected)
    assert _snapshot(workdir) == before


def test_checkpoints_without_config_json_are_refused(capsys, tmp_path):
    workdir = tmp_path / "run"
    before = _fake_run(workdir, _cli_config(arch="sanet"))
    (workdir / "config.json").unlink()
    before.pop("config.json")
    code, err = _main(capsys, "--workdir", str(workdir))
    _assert_message(code, err, 2, f"workdir {workdir} holds checkpoints (last step 2) but no config.json")
    assert _snapshot(workdir) == before


def test_resumable_fields_pass_the_identity_check_and_a_broken_config_json_is_refused(tmp_path):
    cfg = _cli_config()
    _fake_run(tmp_path, cfg)
    check_workdir(cfg.replace(iterations=7, log_every=3, checkpoint_every=2, keep_checkpoints=1, sample_every=5),
                  tmp_path)
    assert set(RESUMABLE_FIELDS) == {"iterations", "log_every", "checkpoint_every", "keep_checkpoints",
                                     "sample_every", "distributed"}
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(WorkdirError, match="config.json is unreadable"):
        check_workdir(cfg, tmp_path)


# ------------------------------------------------------------------ case 6: one process per workdir


def test_second_process_on_a_workdir_exits_2_naming_the_holder(tmp_path):
    workdir = tmp_path / "run"
    before = _fake_run(workdir, _cli_config(batch_size=2))
    with exclusive_lock(workdir / ".lock", what=f"workdir {workdir}"):
        result = _cli("--workdir", str(workdir))
    _assert_message(result.returncode, result.stderr, 2, f"workdir {workdir} is in use by another run",
                    f"PID {os.getpid()}")
    assert _snapshot(workdir) == before


def test_lock_is_exclusive_within_one_process_too(tmp_path):
    with exclusive_lock(tmp_path / ".lock", what="workdir x"):
        with pytest.raises(LockedError, match=f"workdir x is in use by another run \\(PID {os.getpid()}"):
            with exclusive_lock(tmp_path / ".lock", what="workdir x"):
                pass


# ------------------------------------------------------------------ case 7: unwritable or full disk


def _read_only(path: Path) -> list[str]:
    """A command prefix that runs the CLI with `path` read-only, even for root (a private read-only
    bind mount); skips the test where that is impossible."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        return []
    if not shutil.which("unshare"):
        pytest.skip("root without unshare: cannot make a folder read-only")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind -o ro '{path}' '{path}'"],
                           capture_output=True)
    if probe.returncode:
        pytest.skip(f"cannot make a read-only mount here: {probe.stderr.decode()[-200:]}")
    return ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(path)]


@pytest.mark.parametrize("read_only, what", [("checkpoints", "checkpoint folder"), ("", "workdir")])
def test_read_only_folders_are_refused_up_front(tmp_path, read_only, what):
    workdir = tmp_path / "run"
    before = _fake_run(workdir, _cli_config(batch_size=2))
    target = workdir / read_only if read_only else workdir
    prefix = _read_only(target)
    cmd = [*prefix, sys.executable, "-m", "train.run", *BASE, "--batch-size", "2", "--workdir", str(workdir)]
    started = time.time()
    result = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    _assert_message(result.returncode, result.stderr, 2, f"{what} {target} is not writable")
    assert time.time() - started < 120
    assert _snapshot(workdir) == before


def test_failed_save_stops_with_exit_3_and_keeps_the_previous_checkpoint(capsys, tmp_path, monkeypatch):
    """A file-size limit (as a full disk) from step 2 on: orbax's background write fails; the run stops
    with one message and checkpoint 1 stays restorable."""
    real_save = Checkpointer.save
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def save_under_limit(self, step, state, meta):
        if step >= 2:
            self.wait()  # step 1's background write must finish before the limit, or step 1 is the one failing
            resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, limits[1]))
        real_save(self, step, state, meta)

    monkeypatch.setattr(Checkpointer, "save", save_under_limit)
    try:
        started = time.time()
        code, err = _main(capsys, "--workdir", str(tmp_path), "--iterations", "4", "--checkpoint-every", "1")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, previous_handler)
    _assert_message(code, err, 3, f"cannot save checkpoint step 2 in {tmp_path / 'checkpoints'}",
                    "File too large", "checkpoint step 1 is intact")
    assert time.time() - started < 120
    monkeypatch.undo()
    checkpointer = Checkpointer(tmp_path / "checkpoints")
    assert checkpointer.latest_step() == 1
    assert checkpointer.read(1)[0]["step"] == 1
    checkpointer.close()
    assert not (tmp_path / "params.npz").exists()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["1"]  # no orbax temporary folder


# The CLI in a subprocess whose checkpoint saves from `from_step` on hit a file-size limit (as a full disk):
# the limit is set only after the previous save finished, so that one is complete. CPython ignores SIGXFSZ,
# so the write fails with EFBIG instead of killing the process.
_FSIZE_LIMITED_CLI = """
import resource, sys
from train import run
from train.checkpointing import Checkpointer

from_step, real_save = int(sys.argv[1]), Checkpointer.save

def save_under_limit(self, step, state, meta):
    if step >= from_step:
        self.wait()
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    real_save(self, step, state, meta)

Checkpointer.save = save_under_limit
sys.exit(run.main(sys.argv[2:]))
"""
# Lines a successful run prints too: log records below WARNING, the progress line and the random-VGG warning
# these tests ask for (logging's and warnings' copies).
_ROUTINE = re.compile(r"^(\S+ \S+ (INFO|DEBUG) |INFO:|DEBUG:|step \d+/\d+ |.*RANDOMLY INITIALISED VGG|  _, params = )")


def _failure_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not _ROUTINE.match(line)]


def test_failed_save_prints_one_message_leaves_no_temporary_folder_and_resumes_without_duplicate_metrics(tmp_path):
    """Issue 21: orbax's background threads printed ~50 'Event loop is closed' tracebacks and absl ERROR
    lines with the OCDBT path before the message; the failed step's temporary folder stayed; the resumed
    run logged the steps after the last checkpoint a second time."""
    workdir = tmp_path / "run"
    args = [*BASE, "--batch-size", "2", "--workdir", str(workdir), "--iterations", "4", "--checkpoint-every", "1"]
    result = subprocess.run([sys.executable, "-c", _FSIZE_LIMITED_CLI, "2", *args], cwd=REPO, env=_env(),
                            capture_output=True, text=True, timeout=300)
    _assert_message(result.returncode, result.stderr, 3, f"cannot save checkpoint step 2 in {workdir / 'checkpoints'}",
                    "File too large", "checkpoint step 1 is intact")
    failure = _failure_lines(result.stderr)
    assert len(failure) <= 3 and all("checkpoint step 2" in line for line in failure), result.stderr[-3000:]
    assert "Event loop is closed" not in result.stderr and "ocdbt" not in result.stderr.lower()
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["1"]  # no orbax temporary folder

    resumed = _cli("--workdir", str(workdir), "--iterations", "4", "--checkpoint-every", "1")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    steps = [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3, 4]


def test_full_disk_stops_with_one_message_and_no_temporary_folder(tmp_path):
    """The issue's case itself: the workdir on a 40 MiB tmpfs, where checkpoint 1 (26 MiB) fits and
    checkpoint 2 does not. Needs root and a private mount namespace; skips elsewhere."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=40m tmpfs '{workdir}'"],
                           capture_output=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode:
        pytest.skip("cannot mount a tmpfs here (needs root and unshare)")
    listing = tmp_path / "listing.txt"  # the tmpfs is gone with the namespace: list it from inside
    script = f'mount -t tmpfs -o size=40m tmpfs "$0" && "$@"; code=$?; ls "$0/checkpoints" > "{listing}"; exit $code'
    cmd = ["unshare", "-m", "sh", "-c", script, str(workdir), sys.executable, "-m", "train.run", *BASE,
           "--batch-size", "2", "--workdir", str(workdir), "--iterations", "4", "--checkpoint-every", "1"]
    result = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    line = _assert_message(result.returncode, result.stderr, 3, f"in {workdir / 'checkpoints'}",
                           "No space left on device (errno 28)", "is intact")
    step = line.split("cannot save checkpoint step ")[1].split()[0]
    failure = _failure_lines(result.stderr)
    assert len(failure) <= 3 and all(f"checkpoint step {step}" in f for f in failure), result.stderr[-3000:]
    assert "Event loop is closed" not in result.stderr and "ocdbt" not in result.stderr.lower()
    assert listing.read_text().split() == [str(int(step) - 1)]  # no orbax temporary folder


def test_save_errors_are_reported_once_by_the_checkpointer(tmp_path, monkeypatch):
    checkpointer = Checkpointer(tmp_path / "checkpoints")

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "checkpoints" / "3"))

    monkeypatch.setattr(ocp.CheckpointManager, "save", disk_full)
    with pytest.raises(CheckpointSaveError, match="cannot save checkpoint step 3 .*No space left on device.*"
                                                  "no earlier checkpoint exists"):
        checkpointer.save(3, {"x": np.zeros(3)}, {})
    checkpointer.close()


# ------------------------------------------------------------------ case 8: more one-message errors


def test_batch_that_does_not_split_over_the_devices(capsys, tmp_path):
    code, err = _main(capsys, "--workdir", str(tmp_path / "run"), "--batch-size", "3")
    _assert_message(code, err, 2, f"--batch-size 3 does not split over the {jax.device_count()} devices")
    assert not (tmp_path / "run").exists()


def test_batch_3_on_2_devices_in_a_subprocess(tmp_path):
    result = _cli("--workdir", str(tmp_path / "run"), "--batch-size", "3",
                  env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    _assert_message(result.returncode, result.stderr, 2, "--batch-size 3 does not split over the 2 devices")


def test_distributed_without_its_environment(tmp_path):
    result = _cli("--workdir", str(tmp_path / "run"), "--distributed")
    _assert_message(result.returncode, result.stderr, 2, "--distributed", "JAX_COORDINATOR_ADDRESS")
    assert not (tmp_path / "run").exists()


def test_non_utf8_workdir_is_refused_and_printed_safely(capsys, tmp_path):
    workdir = os.fsdecode(os.fsencode(tmp_path) + b"/bad\xff/run")
    code, err = _main(capsys, "--workdir", workdir)
    _assert_message(code, err, 2, "bad\\xff/run is not valid UTF-8")
    assert os.listdir(tmp_path) == []


def test_workdir_that_is_a_file(capsys, tmp_path):
    (tmp_path / "run").write_text("not a folder")
    code, err = _main(capsys, "--workdir", str(tmp_path / "run"))
    _assert_message(code, err, 2, f"workdir {tmp_path / 'run'} is not writable")
    assert (tmp_path / "run").read_text() == "not a folder"


def _adain_params() -> dict:
    model = archs.build("adain")
    probe = jax.ShapeDtypeStruct((1, 64, 64, 3), np.float32)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), probe, probe)["params"]
    return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), dict(shapes))


def test_pretrained_missing_a_layer_names_it(tmp_path):
    params = _adain_params()
    del params["decoder"]["conv4_1"]
    save_params(tmp_path / "partial.npz", {"params": params}, meta={"arch": "adain"})
    result = _cli("--workdir", str(tmp_path / "run"), "--pretrained", str(tmp_path / "partial.npz"))
    _assert_message(result.returncode, result.stderr, 2, f"--pretrained {tmp_path / 'partial.npz'} does not match",
                    "missing decoder/conv4_1/kernel")


@pytest.mark.parametrize("kind, message", [
    ("pickled", "pickled Python objects, which is never loaded"),
    ("pickled_no_meta", "is not a jax_ast params file"),
    ("nan", "non-finite weights (NaN or inf) in params/decoder/conv1_1/kernel"),
])
def test_unsafe_or_broken_pretrained_files_raise_one_weights_error(tmp_path, kind, message):
    from train.weights import initial_variables

    path = tmp_path / f"{kind}.npz"
    if kind == "nan":
        params = _adain_params()
        params["decoder"]["conv1_1"]["kernel"][0, 0, 0, 0] = np.nan
        save_params(path, {"params": params}, meta={"arch": "adain"})
    else:
        save_params(path, {"x": np.zeros(2)}, meta={"arch": "adain"})
        with np.load(path) as data:
            arrays = dict(data) if kind == "pickled" else {}
        arrays["evil"] = np.array([{"code": "anything"}], dtype=object)
        np.savez(path, **arrays)
    cfg = _cli_config(pretrained=str(path))
    with pytest.raises(WeightsError, match=re.escape(message)) as raised:
        initial_variables(archs.build("adain"), cfg)
    assert str(path) in str(raised.value)


# ------------------------------------------------------------------ case 9: checkpoint and OS errors


def test_corrupt_checkpoint_exits_2_with_one_message_and_keeps_every_file(tmp_path):
    workdir = tmp_path / "run"
    _fake_run(workdir, _cli_config(batch_size=2), steps=())
    checkpointer = Checkpointer(workdir / "checkpoints")
    checkpointer.save(2, {"x": np.zeros(3, np.float32)}, {"data": {}, "style_weight": 1.0})
    checkpointer.close()
    for path in (workdir / "checkpoints" / "2" / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")
    before = _snapshot(workdir)
    result = _cli("--workdir", str(workdir), "--iterations", "1")
    _assert_message(result.returncode, result.stderr, 2, f"cannot restore checkpoint step 2 from {workdir}",
                    "Nothing was deleted")
    assert _snapshot(workdir) == before


def test_checkpoint_that_cannot_resume_this_data_exits_2_and_keeps_every_file(capsys, tmp_path):
    """A checkpoint that restores but cannot resume the run: its data-stream position was taken over
    fewer content images (one was added since), or its metadata holds no stream position at all."""
    content, workdir = tmp_path / "content", tmp_path / "run"
    content.mkdir()
    for i in range(9):
        Image.fromarray(np.full((40, 40, 3), 20 * i, np.uint8)).save(content / f"{i}.png")
    (content / "8.png").rename(tmp_path / "8.png")  # the image added after the first run
    assert run.main([*BASE, "--batch-size", "8", "--workdir", str(workdir), "--content-dir", str(content),
                     "--iterations", "1"]) == 0
    (tmp_path / "8.png").rename(content / "8.png")
    before = _snapshot(workdir)
    code, err = _main(capsys, "--workdir", str(workdir), "--content-dir", str(content))
    _assert_message(code, err, 2, f"checkpoint step 1 in {workdir / 'checkpoints'} cannot "
                    "resume this run", "content_size: saved 8, now 9", "Nothing was deleted")
    assert _snapshot(workdir) == before

    (content / "8.png").unlink()
    meta_file = workdir / "checkpoints" / "1" / "meta" / "metadata"
    meta = json.loads(meta_file.read_text())
    del meta["data"]
    meta_file.write_text(json.dumps(meta))
    before = _snapshot(workdir)
    code, err = _main(capsys, "--workdir", str(workdir), "--content-dir", str(content))
    _assert_message(code, err, 2, "cannot resume this run: no 'data' entry in its metadata")
    assert _snapshot(workdir) == before
