"""Training metrics: process-0 JSONL + TensorBoard writer, sample grids, progress bar and the NaN guard.

`MetricsWriter` appends one JSON object per logging step to `<workdir>/metrics.jsonl` (the primary record,
readable with any JSON tool) and mirrors the scalars and sample images into a TensorBoard event file under
`<workdir>/tb/` (encoded by `train.tensorboard`, without TensorFlow). Only process 0 should write: the other
processes construct it with `enabled=False`, which turns every method into a no-op.
"""

from __future__ import annotations

import io
import json
import math
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO, TextIO

import numpy as np
from PIL import Image

from jax_ast import files
from jax_ast.progress import Progress
from train import tensorboard as tb
from train.run_folder import METRICS_NAME, SAMPLES_NAME, TENSORBOARD_NAME

_RESERVED_KEYS = ("step", "time")


def _scalar(key: str, value) -> float | int:
    """Python float (or int, kept exact for JSON) from a Python/NumPy/JAX scalar; TypeError names the key."""
    try:
        array = np.asarray(value)
        if array.size != 1:
            raise TypeError(f"shape {array.shape}")
        if np.issubdtype(array.dtype, np.integer):
            return int(array.reshape(()))
        return float(array.reshape(()))
    except (TypeError, ValueError) as err:
        raise TypeError(f"scalar {key!r} must be a single number, got {type(value).__name__}: {err}") from None


def _to_uint8(name: str, image: np.ndarray) -> np.ndarray:
    """uint8 as is; float in [0, 1] clamped (NaN -> 0) and rounded to uint8. Other dtypes are rejected."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"{name}: expected uint8 or float in [0, 1], got dtype {image.dtype}")
    clamped = np.clip(np.nan_to_num(image.astype(np.float32), nan=0.0), 0.0, 1.0)
    return np.rint(clamped * 255.0).astype(np.uint8)


def _check_rgb(name: str, image: np.ndarray, batched: bool) -> None:
    ndim, layout = (4, "[B, H, W, 3]") if batched else (3, "[H, W, 3]")
    if image.ndim != ndim or image.shape[-1] != 3 or 0 in image.shape:
        raise ValueError(f"{name}: expected an RGB image {layout}, got shape {image.shape}")


def _encode_png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _file_stem(name: str) -> str:
    """Image name -> safe file-name stem ("train/samples" -> "train_samples")."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image"


class MetricsWriter:
    """Process-0-only metric sink: JSONL + TensorBoard event file in `workdir`.

    Files: `workdir/metrics.jsonl` (appended, so a resumed run continues it), `workdir/tb/events.out.tfevents.*`
    (one new file per writer; TensorBoard merges a folder's files; every record is flushed so it shows
    live), `workdir/samples/<name>_<step:08d>.png`.

    Args:
      workdir: run folder; created on construction when enabled.
      enabled: False on non-zero processes: nothing is created and every method is a no-op.
      tensorboard: also write the TensorBoard event file (default True).
    """

    def __init__(self, workdir: str | Path, *, enabled: bool = True, tensorboard: bool = True):
        self.workdir = Path(workdir)
        self.enabled = enabled
        self._jsonl = None
        self._events = None
        if enabled:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._jsonl = open(self.workdir / METRICS_NAME, "a", encoding="utf-8")
            if tensorboard:
                self._events = _new_event_file(self.workdir / TENSORBOARD_NAME)
                self._write_event(tb.event(wall_time=time.time(), step=0, file_version=tb.FILE_VERSION))
        self._closed = False

    def _write_event(self, payload: bytes) -> None:
        if self._events is not None:
            self._events.write(tb.tfrecord(payload))
            self._events.flush()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"MetricsWriter for {self.workdir} is closed")

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Append `{"step", "time", **scalars}` as one flushed JSON line and the scalars to TensorBoard.

        Non-finite values (NaN, +-inf) are written as JSON `null` (strict JSON has no NaN); the TensorBoard
        file keeps the float value itself. Values may be Python, NumPy or JAX scalars.
        """
        self._check_open()
        if not self.enabled:
            return
        clash = [key for key in scalars if key in _RESERVED_KEYS]
        if clash:
            raise ValueError(f"scalar names {clash} are reserved in metrics.jsonl; rename them")
        values = {key: _scalar(key, value) for key, value in scalars.items()}
        now = time.time()
        record = {"step": int(step), "time": now}
        record.update({key: value if math.isfinite(value) else None for key, value in values.items()})
        self._jsonl.write(json.dumps(record, allow_nan=False) + "\n")
        self._jsonl.flush()
        if values:
            self._write_event(tb.event(wall_time=now, step=int(step),
                                       summary_values=[tb.scalar_value(key, value) for key, value in values.items()]))

    def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        """Save each uint8 (or float in [0, 1]) [H, W, 3] image as PNG and as a TensorBoard image summary.

        The PNG goes to `workdir/samples/<name>_<step:08d>.png` ("/" and other unsafe characters in `name`
        become "_"); the TensorBoard tag is `name` itself.
        """
        self._check_open()
        if not self.enabled:
            return
        samples_dir = self.workdir / SAMPLES_NAME
        samples_dir.mkdir(exist_ok=True)
        for name, image in images.items():
            pixels = _to_uint8(f"image {name!r}", image)
            _check_rgb(f"image {name!r}", pixels, batched=False)
            png = _encode_png(np.ascontiguousarray(pixels))
            height, width = pixels.shape[:2]
            self._write_event(tb.event(wall_time=time.time(), step=int(step),
                                       summary_values=[tb.image_value(name, png, height=height, width=width)]))
            files.write_bytes(samples_dir / f"{_file_stem(name)}_{int(step):08d}.png", png)

    def close(self) -> None:
        """Close the files (idempotent); later writes raise ValueError."""
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._events is not None:
            self._events.close()
            self._events = None
        self._closed = True

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _new_event_file(folder: Path) -> BinaryIO:
    """A new `events.out.tfevents.<unix time>.<host>[.N]` file in `folder` (created if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for attempt in range(1000):
        try:
            return open(folder / tb.event_file_name(now, attempt), "xb")
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a new event file named {tb.event_file_name(now)}[.N] in {folder}")


def sample_grid(content: np.ndarray, style: np.ndarray, stylized: np.ndarray, *, max_rows: int = 4) -> np.ndarray:
    """Image grid with one row per example: content | style | stylized.

    Args:
      content: float [B, H, W, 3] in [0, 1] (uint8 also accepted).
      style: float [B, Hs, Ws, 3] in [0, 1] (or uint8; B may be 1 for a shared style); resized to H, W
        with PIL's antialiased bilinear filter.
      stylized: float [B, H, W, 3], clamped to [0, 1] (the models return it unclamped).
      max_rows: at most this many examples (the first ones) are shown.

    Returns:
      uint8 [rows * H, 3 * W, 3] with rows = min(B, max_rows).
    """
    content, style, stylized = (np.asarray(x) for x in (content, style, stylized))
    for name, batch in (("content", content), ("style", style), ("stylized", stylized)):
        _check_rgb(name, batch, batched=True)
    if stylized.shape != content.shape:
        raise ValueError(f"stylized shape {stylized.shape} differs from content shape {content.shape}")
    batch, height, width, _ = content.shape
    if style.shape[0] not in (1, batch):
        raise ValueError(f"style batch {style.shape[0]} must be 1 or the content batch {batch}")
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    rows = min(batch, max_rows)
    content_u8 = _to_uint8("content", content[:rows])
    stylized_u8 = _to_uint8("stylized", stylized[:rows])
    style_u8 = _to_uint8("style", style[:rows])
    grid_rows = []
    for row in range(rows):
        style_tile = style_u8[row if style_u8.shape[0] > 1 else 0]
        if style_tile.shape[:2] != (height, width):
            resized = Image.fromarray(style_tile).resize((width, height), Image.Resampling.BILINEAR)
            style_tile = np.asarray(resized)
        grid_rows.append(np.concatenate([content_u8[row], style_tile, stylized_u8[row]], axis=1))
    return np.concatenate(grid_rows, axis=0)


def check_finite(step: int, scalars: Mapping[str, float], *, window_start: int | None = None) -> None:
    """Raise FloatingPointError('non-finite loss at step N: key=value, ...') naming every non-finite scalar.

    Args:
      step: the step the scalars were logged at.
      scalars: name -> Python/NumPy/JAX scalar.
      window_start: first step the scalars average over, if they cover a window; added to the message.
    """
    bad = [(key, value) for key, value in ((k, _scalar(k, v)) for k, v in scalars.items())
           if not math.isfinite(value)]
    if bad:
        message = f"non-finite loss at step {step}: " + ", ".join(f"{key}={value}" for key, value in bad)
        if window_start is not None:
            message += f" (averaged over steps {window_start}..{step})"
        raise FloatingPointError(message)


def _format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _format_scalars(scalars: Mapping[str, float]) -> str:
    return " ".join(f"{key}={_scalar(key, value):.4g}" for key, value in scalars.items())


class ProgressReporter:
    """Progress bar (tqdm on a terminal, else periodic plain lines) with img/s, ETA and the loss terms.

    Throughput is measured over the last `window` updates. The time before the first update (compilation)
    counts only until a second update exists, so it does not inflate the ETA for long.

    Args:
      total_steps: the step count at which training ends.
      initial_step: step the run starts (or resumes) at.
      images_per_step: global batch size, to turn steps/s into img/s.
      enabled: False on non-zero processes: nothing is printed (the rates are still computed).
      file: output stream (default: sys.stderr at the time of each write).
      print_every_seconds: plain-line mode prints at most this often (and always at the last step).
      window: number of recent updates the throughput is averaged over.
      use_tqdm: None (default): a tqdm bar when the stream is a terminal, plain lines otherwise (a bar
        redrawn 10 times a second would flood a log file); True: always tqdm; False: always plain lines.
      clock: monotonic time source (injectable for tests).

    Attributes:
      images_per_second: recent throughput; 0.0 before the first update.
      eta_seconds: estimated seconds to `total_steps`; inf before the first update.
    """

    def __init__(self, total_steps: int, *, initial_step: int = 0, images_per_step: int, enabled: bool = True,
                 file: TextIO | None = None, print_every_seconds: float = 30.0, window: int = 20,
                 use_tqdm: bool | None = None, clock: Callable[[], float] = time.monotonic):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.total_steps = total_steps
        self.images_per_step = images_per_step
        self.enabled = enabled
        self.images_per_second = 0.0
        self.eta_seconds = math.inf
        self._clock = clock
        self._points = deque([(clock(), initial_step)], maxlen=window + 1)
        self._has_start_point = True
        self._last_scalars: Mapping[str, float] = {}
        self._display = Progress(total_steps, initial=initial_step, unit="step", enabled=enabled, file=file,
                                 use_tqdm=use_tqdm, line=self._line, every_fraction=None,
                                 every_seconds=print_every_seconds, clock=clock, dynamic_ncols=True)

    def _update_rates(self, now: float, step: int) -> None:
        self._points.append((now, step))
        if self._has_start_point and len(self._points) >= 3:
            self._points.popleft()  # drop the construction point: it includes compile time.
            self._has_start_point = False
        (t0, s0), (t1, s1) = self._points[0], self._points[-1]
        if t1 > t0 and s1 > s0:
            steps_per_second = (s1 - s0) / (t1 - t0)
            self.images_per_second = steps_per_second * self.images_per_step
            self.eta_seconds = max(self.total_steps - step, 0) / steps_per_second

    def update(self, step: int, scalars: Mapping[str, float]) -> None:
        """Record that `step` steps are complete, with the latest scalars to display."""
        self._update_rates(self._clock(), step)
        self._last_scalars = dict(scalars)
        self._display.goto(step, postfix=f"{self.images_per_second:.1f} img/s {_format_scalars(scalars)}")

    def _line(self, step: int, total_steps: int) -> str:
        percent = 100.0 * step / total_steps if total_steps else 100.0
        parts = [f"step {step}/{total_steps} ({percent:.1f}%)", f"{self.images_per_second:.1f} img/s",
                 f"ETA {_format_duration(self.eta_seconds)}"]
        if self._last_scalars:
            parts.append(_format_scalars(self._last_scalars))
        return " | ".join(parts)

    def close(self) -> None:
        """Finish the bar, or print the last state if it was not printed yet (idempotent)."""
        self._display.close()

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
