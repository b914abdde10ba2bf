"""Tests for train/metrics.py and train/tensorboard.py: files are read back with independent readers."""

import io
import json
import math

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator, event_file_loader
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub import pywrap_tensorflow

from train import tensorboard as tb
from train.metrics import MetricsWriter, ProgressReporter, check_finite, sample_grid


def _strict_json(line):
    def reject(token):
        raise AssertionError(f"non-standard JSON token {token}")
    return json.loads(line, parse_constant=reject)


def _raw_events(path):
    """Events exactly as stored (EventFileLoader would migrate simple_value to tensors)."""
    loader = event_file_loader.RawEventFileLoader(str(path))
    return [event_pb2.Event.FromString(record) for record in loader.Load()]


def _load_tb(tb_dir):
    acc = event_accumulator.EventAccumulator(
        str(tb_dir), size_guidance={event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0})
    acc.Reload()
    return acc


# --- CRC-32C and TFRecord framing -------------------------------------------------------------------------

@pytest.mark.parametrize("data, expected", [
    (b"123456789", 0xE3069283),            # the standard CRC check value
    (b"", 0x00000000),
    (bytes(32), 0x8A9136AA),               # RFC 3720 (iSCSI) B.4 test vectors
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
])
def test_crc32c_known_vectors(data, expected):
    assert tb.crc32c(data) == expected


def test_masked_crc32c_matches_tensorboards_own_implementation():
    rng = np.random.default_rng(0)
    for size in (0, 1, 7, 8, 300):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert tb.masked_crc32c(data) == pywrap_tensorflow.masked_crc32c(data)


def test_event_file_starts_with_file_version(tmp_path):
    with MetricsWriter(tmp_path) as writer:
        writer.write_scalars(7, {"a": 1.5})
    (path,) = (tmp_path / "tb").iterdir()
    assert path.name.startswith("events.out.tfevents.")
    events = _raw_events(path)
    assert events[0].file_version == "brain.Event:2"
    assert events[1].step == 7
    assert events[1].summary.value[0].tag == "a"
    assert events[1].summary.value[0].simple_value == 1.5


def test_event_encodes_negative_and_large_values(tmp_path):
    with MetricsWriter(tmp_path) as writer:
        writer.write_scalars(2**40, {"huge": 1e300, "neg": -3.25})  # 1e300 saturates to float32 inf
    (path,) = (tmp_path / "tb").iterdir()
    event = _raw_events(path)[1]
    assert event.step == 2**40
    values = {v.tag: v.simple_value for v in event.summary.value}
    assert values == {"huge": math.inf, "neg": -3.25}


def test_reader_rejects_corrupted_crc(tmp_path):
    """The reader used below really checks our CRCs: a flipped checksum byte drops the record."""
    with MetricsWriter(tmp_path) as writer:
        writer.write_scalars(1, {"loss": 1.0})
        writer.write_scalars(2, {"loss": 2.0})
    (event_path,) = (tmp_path / "tb").iterdir()
    data = bytearray(event_path.read_bytes())
    data[-1] ^= 0xFF  # last byte = masked crc of the last record's payload
    event_path.write_bytes(bytes(data))
    assert [e.step for e in _load_tb(tmp_path / "tb").Scalars("loss")] == [1]


# --- MetricsWriter ---------------------------------------------------------------------------------------

def test_jsonl_lines_parse_and_values_match(tmp_path):
    scalars = [
        (10, {"train/loss": 1.25, "train/style/relu1_1": np.float32(0.5), "lr": jnp.float32(1e-4), "epoch": 3}),
        (20, {"train/loss": float("nan"), "train/content": -math.inf, "lr": 2e-4}),
    ]
    with MetricsWriter(tmp_path) as writer:
        for step, values in scalars:
            writer.write_scalars(step, values)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    records = [_strict_json(line) for line in lines]
    assert [r["step"] for r in records] == [10, 20]
    assert all(abs(r["time"] - records[0]["time"]) < 60 for r in records)
    first, second = records
    assert first["train/loss"] == 1.25 and first["train/style/relu1_1"] == 0.5
    assert first["lr"] == float(jnp.float32(1e-4)) and first["epoch"] == 3
    assert second == {"step": 20, "time": second["time"], "train/loss": None, "train/content": None, "lr": 2e-4}


def test_jsonl_is_appended_on_resume(tmp_path):
    with MetricsWriter(tmp_path) as writer:
        writer.write_scalars(1, {"loss": 1.0})
    with MetricsWriter(tmp_path) as writer:
        writer.write_scalars(2, {"loss": 0.5})
    steps = [_strict_json(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
    assert len(list((tmp_path / "tb").iterdir())) == 2
    assert [(e.step, e.value) for e in _load_tb(tmp_path / "tb").Scalars("loss")] == [(1, 1.0), (2, 0.5)]


def test_tensorboard_scalars_read_back(tmp_path):
    with MetricsWriter(tmp_path) as writer:
        for step in (1, 5, 9):
            writer.write_scalars(step, {"train/loss": 0.1 * step, "train/style/relu2_1": 10.0 + step})
    acc = _load_tb(tmp_path / "tb")
    assert sorted(acc.Tags()["scalars"]) == ["train/loss", "train/style/relu2_1"]
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [1, 5, 9]
    np.testing.assert_allclose([e.value for e in loss], np.float32([0.1, 0.5, 0.9]), rtol=1e-7)
    assert [e.value for e in acc.Scalars("train/style/relu2_1")] == [11.0, 15.0, 19.0]


def test_images_written_as_png_and_tensorboard_summary(tmp_path):
    rng = np.random.default_rng(1)
    grid = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    float_image = rng.uniform(-0.5, 1.5, (6, 4, 3))
    with MetricsWriter(tmp_path) as writer:
        writer.write_images(300, {"train/samples": grid, "eval": float_image})
    expected_float = np.rint(np.clip(float_image, 0, 1) * 255).astype(np.uint8)

    samples = tmp_path / "samples"
    assert sorted(p.name for p in samples.iterdir()) == ["eval_00000300.png", "train_samples_00000300.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(samples / "train_samples_00000300.png")), grid)
    np.testing.assert_array_equal(np.asarray(Image.open(samples / "eval_00000300.png")), expected_float)

    acc = _load_tb(tmp_path / "tb")
    assert sorted(acc.Tags()["images"]) == ["eval", "train/samples"]
    for tag, expected in (("train/samples", grid), ("eval", expected_float)):
        (image_event,) = acc.Images(tag)
        assert image_event.step == 300
        assert (image_event.height, image_event.width) == expected.shape[:2]
        decoded = np.asarray(Image.open(io.BytesIO(image_event.encoded_image_string)))
        np.testing.assert_array_equal(decoded, expected)
    (event_path,) = (tmp_path / "tb").iterdir()
    raw_images = [v.image for e in _raw_events(event_path) for v in e.summary.value if v.HasField("image")]
    assert [(i.height, i.width, i.colorspace) for i in raw_images] == [(12, 20, 3), (6, 4, 3)]


def test_writer_rejects_bad_input(tmp_path):
    with MetricsWriter(tmp_path) as writer:
        with pytest.raises(ValueError, match="reserved"):
            writer.write_scalars(1, {"step": 1.0})
        with pytest.raises(TypeError, match="'loss'"):
            writer.write_scalars(1, {"loss": np.ones(3)})
        with pytest.raises(ValueError, match=r"image 'gray'.*\[H, W, 3\]"):
            writer.write_images(1, {"gray": np.zeros((4, 4), np.uint8)})
        with pytest.raises(TypeError, match="dtype int32"):
            writer.write_images(1, {"ints": np.zeros((4, 4, 3), np.int32)})
    with pytest.raises(ValueError, match="closed"):
        writer.write_scalars(2, {"loss": 1.0})


def test_disabled_writer_creates_no_files(tmp_path):
    workdir = tmp_path / "run"
    with MetricsWriter(workdir, enabled=False) as writer:
        writer.write_scalars(1, {"loss": 1.0})
        writer.write_images(1, {"grid": np.zeros((4, 4, 3), np.uint8)})
    assert not workdir.exists()
    assert list(tmp_path.iterdir()) == []


# --- sample_grid -----------------------------------------------------------------------------------------

def test_sample_grid_layout_resize_and_clamp():
    batch, height, width = 3, 8, 10
    levels = np.array([0.1, 0.5, 0.9])
    content = np.broadcast_to(levels[:, None, None, None], (batch, height, width, 3)).astype(np.float32)
    style = np.broadcast_to(1 - levels[:, None, None, None], (batch, 5, 7, 3)).astype(np.float32)
    stylized = np.broadcast_to(np.array([-1.0, 0.25, 2.0])[:, None, None, None], (batch, height, width, 3))
    grid = sample_grid(content, style, stylized, max_rows=2)
    assert grid.dtype == np.uint8 and grid.shape == (2 * height, 3 * width, 3)
    for row in range(2):
        block = lambda col: grid[row * height:(row + 1) * height, col * width:(col + 1) * width]  # noqa: E731
        np.testing.assert_array_equal(block(0), np.rint(levels[row] * 255))
        np.testing.assert_array_equal(block(1), np.rint((1 - levels[row]) * 255))
        np.testing.assert_array_equal(block(2), np.rint(np.clip(stylized[row, 0, 0, 0], 0, 1) * 255))


def test_sample_grid_shared_style_and_uint8_input():
    content = np.zeros((2, 4, 4, 3), np.uint8)
    style = np.full((1, 6, 6, 3), 200, np.uint8)
    grid = sample_grid(content, style, np.ones((2, 4, 4, 3), np.float32))
    assert grid.shape == (8, 12, 3)
    np.testing.assert_array_equal(grid[:, 4:8], 200)
    np.testing.assert_array_equal(grid[:, 8:], 255)


def test_sample_grid_rejects_mismatched_shapes():
    content = np.zeros((2, 4, 4, 3), np.float32)
    with pytest.raises(ValueError, match="stylized shape"):
        sample_grid(content, content, np.zeros((2, 4, 5, 3), np.float32))
    with pytest.raises(ValueError, match="style batch 3"):
        sample_grid(content, np.zeros((3, 4, 4, 3), np.float32), content)
    with pytest.raises(ValueError, match=r"content: expected an RGB image \[B, H, W, 3\]"):
        sample_grid(content[..., :1], content, content)


# --- check_finite ----------------------------------------------------------------------------------------

def test_check_finite_passes_on_finite_values():
    check_finite(3, {"loss": 1.0, "lr": jnp.float32(1e-3), "count": 2})


def test_check_finite_names_step_and_every_bad_key():
    with pytest.raises(FloatingPointError) as info:
        check_finite(42, {"train/loss": jnp.float32(jnp.nan), "ok": 1.0, "train/style": -math.inf})
    message = str(info.value)
    assert message.startswith("non-finite loss at step 42: ")
    assert "train/loss=nan" in message and "train/style=-inf" in message and "ok" not in message
    with pytest.raises(FloatingPointError, match=r"steps 40\.\.50"):
        check_finite(50, {"loss": np.inf}, window_start=40)


# --- ProgressReporter ------------------------------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_rates_exclude_compile_time():
    clock = FakeClock()
    progress = ProgressReporter(10, images_per_step=8, enabled=False, clock=clock)
    assert progress.images_per_second == 0.0 and progress.eta_seconds == math.inf
    clock.now = 5.0  # first step includes compilation: 1 step in 5 s
    progress.update(1, {"loss": 1.0})
    assert progress.images_per_second == pytest.approx(8 / 5) and progress.eta_seconds == pytest.approx(9 * 5)
    clock.now = 6.0  # 2 steps in 1 s once the construction point is dropped
    progress.update(3, {"loss": 1.0})
    assert progress.images_per_second == pytest.approx(16.0) and progress.eta_seconds == pytest.approx(3.5)


@pytest.mark.parametrize("use_tqdm", [True, False])
def test_progress_disabled_prints_nothing(capsys, use_tqdm):
    progress = ProgressReporter(4, images_per_step=2, enabled=False, print_every_seconds=0, use_tqdm=use_tqdm)
    for step in range(1, 5):
        progress.update(step, {"loss": 0.5})
    progress.close()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_progress_prints_plain_lines_when_asked(capsys):
    """Plain lines (what a log file gets; tqdm is a dependency, so there is no import fallback any more)."""
    clock = FakeClock()
    progress = ProgressReporter(10, initial_step=2, images_per_step=4, print_every_seconds=10, use_tqdm=False,
                                clock=clock)
    for step in range(3, 11):
        clock.now += 4.0
        progress.update(step, {"loss": 0.25, "style": 3.0})
    progress.close()
    lines = capsys.readouterr().err.splitlines()
    # printed at t=12 (step 5), t=24 (step 8) and at the last step, t=32 (step 10)
    assert [line.split(" |")[0] for line in lines] == ["step 5/10 (50.0%)", "step 8/10 (80.0%)",
                                                       "step 10/10 (100.0%)"]
    assert lines[0] == "step 5/10 (50.0%) | 1.0 img/s | ETA 0:00:20 | loss=0.25 style=3"


def test_progress_uses_tqdm_when_available():
    stream = io.StringIO()
    progress = ProgressReporter(5, images_per_step=2, file=stream, use_tqdm=True)
    for step in range(1, 6):
        progress.update(step, {"loss": 0.125})
    progress.close()
    output = stream.getvalue()
    assert "5/5" in output and "loss=0.125" in output and "img/s" in output


def test_progress_prints_plain_lines_to_a_log_file_by_default():
    stream = io.StringIO()  # not a terminal
    progress = ProgressReporter(2, images_per_step=1, file=stream, print_every_seconds=0)
    progress.update(1, {"loss": 1.0})
    progress.update(2, {"loss": 0.5})
    progress.close()
    assert [line.split(" |")[0] for line in stream.getvalue().splitlines()] == ["step 1/2 (50.0%)", "step 2/2 (100.0%)"]
