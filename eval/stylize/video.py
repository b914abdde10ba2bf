"""Video stylisation: frames streamed from a video file (PyAV) or a folder of frames into an H.264 video.

Frames are decoded, stylised and encoded a step at a time (`Stylizer.step_size` frames), so memory does not
grow with the length of the clip. Every frame uses the same style code, encoded once. The output keeps the
source's frame rate (a folder of frames gets ``fps``); a clip with a variable frame rate keeps each frame's
presentation time (read from its packets before decoding), so the output lasts as long as the source.

Temporal blending (``blend > 0``) mixes each stylised frame with the previous *output* frame,
``out_t = w * out_{t-1} + (1 - w) * stylized_t`` per pixel, where ``w = blend`` on pixels whose source is
unchanged and falls linearly to 0 as the source pixel's change (mean over RGB, in [0, 1]) reaches
`MOTION_THRESHOLD`, so moving objects do not leave trails.

Flicker is the mean absolute difference between consecutive frames (RGB in [0, 1]), reported for the
source, the stylised frames and (with blending) the blended output; the ratio stylised / source tells how
much the stylisation adds to the change the source already has.

PyAV is an optional dependency (``pip install 'jax-ast[video]'``); it is imported on first use.
"""

from __future__ import annotations

import dataclasses
import fractions
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import jax
import numpy as np
from PIL import Image

from jax_ast import imageio

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm")
DEFAULT_FRAMES_FPS = 25  # frame rate of a video made from a folder of frames, unless given
MOTION_THRESHOLD = 0.1  # source change (mean |RGB difference|) at which blending with the past stops
OUTPUT_SUFFIX = ".mp4"
CRF = 18  # H.264 constant rate factor: visually near-lossless, the x264 documentation's usual choice

Tree = Any


class VideoError(ValueError):
    """A video that cannot be read or written; the message names the file and the reason."""


def is_video(path: str | os.PathLike) -> bool:
    """True for an existing file with a video suffix (`VIDEO_SUFFIXES`)."""
    path = Path(path)
    return path.suffix.lower() in VIDEO_SUFFIXES and path.is_file()


def _av():
    try:
        import av
    except ImportError as error:
        raise VideoError("video needs PyAV: pip install 'jax-ast[video]' (or pip install av)") from error
    return av


def frame_size(height: int, width: int, size: int | None) -> tuple[int, int]:
    """(height, width) of stylised frames: shorter side `size` (None: no resize), both rounded down to even.

    H.264 in yuv420p stores colour at half resolution and needs even sides.
    """
    if size:
        height, width = (size, int(size * width / height)) if height <= width else (int(size * height / width), size)
    if min(height, width) < 2:
        raise VideoError(f"frames of {width}x{height} are too small to encode")
    return height - height % 2, width - width % 2


# ------------------------------------------------------------------------------------------------ sources


@dataclasses.dataclass(frozen=True)
class VideoSource:
    """Frames of a video file, decoded one at a time.

    Attributes:
      path: the video file. fps: its frame rate (the average one for a variable rate). frames: the container's
        frame count (0 if unknown). height, width: the frame size of the source.
      timestamps: each frame's presentation time in seconds from the first, in order, when the frame rate varies;
        None for a constant rate.
    """

    path: Path
    fps: fractions.Fraction
    frames: int
    height: int
    width: int
    timestamps: tuple[float, ...] | None = None

    @classmethod
    def open(cls, path: str | os.PathLike) -> "VideoSource":
        """Probes `path` (container, video stream, first frame); raises `VideoError` if it is unusable."""
        av = _av()
        path = Path(path)
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise VideoError(f"{path}: no video stream")
                stream = container.streams.video[0]
                first = next(container.decode(stream), None)
                if first is None:
                    raise VideoError(f"{path}: the video stream holds no frames")
                rate = stream.average_rate or stream.guessed_rate
                if not rate:
                    raise VideoError(f"{path}: the video has no frame rate")
                return cls(path, fractions.Fraction(rate), int(stream.frames or 0), first.height, first.width,
                           _variable_timestamps(path, fractions.Fraction(rate)))
        except av.error.FFmpegError as error:
            raise VideoError(f"{path}: cannot read video: {error.strerror or error}") from None

    def read(self, size: int | None) -> Iterator[np.ndarray]:
        """Yields the frames in order as float32 [h, w, 3] in [0, 1], h x w = `frame_size`."""
        av = _av()
        target = frame_size(self.height, self.width, size)
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    image = frame.to_image()
                    if (image.height, image.width) != target:
                        image = image.resize((target[1], target[0]), Image.Resampling.BILINEAR)
                    yield np.asarray(image, dtype=np.float32) / 255.0
        except av.error.FFmpegError as error:
            raise VideoError(f"{self.path}: decoding failed: {error.strerror or error}") from None


def _variable_timestamps(path: Path, fps: fractions.Fraction) -> tuple[float, ...] | None:
    """Each frame's presentation time (s, from the first) read from the packets without decoding, or None when
    every gap is one frame at `fps` (within 1 ms)."""
    av = _av()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = sorted(float(packet.pts * stream.time_base) for packet in container.demux(stream)
                       if packet.pts is not None and packet.size)
    if len(times) < 2:
        return None
    step = 1 / float(fps)
    if all(abs(later - earlier - step) < 1e-3 for earlier, later in zip(times, times[1:])):
        return None
    return tuple(t - times[0] for t in times)


def _natural_key(path: Path) -> list:
    """Sort key that orders frame_2 before frame_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


@dataclasses.dataclass(frozen=True)
class FrameFolderSource:
    """A folder of frame images, in natural file-name order (frame_2 before frame_10), at `fps`."""

    paths: tuple[Path, ...]
    fps: fractions.Fraction
    height: int
    width: int
    timestamps: None = None  # frames are evenly spaced at `fps`

    @classmethod
    def open(cls, folder: str | os.PathLike, fps: float = DEFAULT_FRAMES_FPS) -> "FrameFolderSource":
        """Lists the images directly in `folder`; raises `VideoError` if there are none or the first is bad."""
        try:
            paths = sorted(imageio.list_images(folder, recursive=False), key=_natural_key)
            first = imageio.load_image(paths[0])
        except (FileNotFoundError, imageio.ImageError) as error:
            raise VideoError(str(error)) from None
        return cls(tuple(paths), fractions.Fraction(fps).limit_denominator(1001), *first.shape[:2])

    @property
    def frames(self) -> int:
        return len(self.paths)

    def read(self, size: int | None) -> Iterator[np.ndarray]:
        """Yields the frames as float32 [h, w, 3]; every frame is resized to the first frame's `frame_size`."""
        target = frame_size(self.height, self.width, size)
        for path in self.paths:
            try:
                yield imageio.load_image(path, size=target, mode="exact")
            except imageio.ImageError as error:
                raise VideoError(f"frame {error}") from None


# ------------------------------------------------------------------------------------------------ writing


class VideoWriter:
    """Writes float [h, w, 3] frames as H.264 (yuv420p) to `path`, atomically.

    Frames go to a hidden temporary file beside `path`, renamed to `path` by `close()`; `abort()` (or an
    exception inside ``with``) removes it, so a failed run never leaves a half-written video or replaces
    an existing one.
    """

    def __init__(self, path: str | os.PathLike, fps: fractions.Fraction, *, crf: int = CRF,
                 timestamps: tuple[float, ...] | None = None):
        """`timestamps`: each frame's presentation time (s) for a variable frame rate; None: one frame per 1/fps.
        Frames past the last timestamp (none for a source read whole) follow it at 1/fps."""
        av = _av()
        self.path = Path(path)
        self.partial = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.partial), "w")
        self._stream = self._container.add_stream("libx264", rate=fps)
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf)}
        self._timestamps = timestamps
        if timestamps is not None:  # presentation times in ms
            self._stream.codec_context.time_base = fractions.Fraction(1, 1000)
        self._fps = fps
        self._av = av
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if self.frames == 0:
            self._stream.height, self._stream.width = frame.shape[:2]
        encoded = self._av.VideoFrame.from_ndarray(imageio.to_uint8(frame), format="rgb24")
        if self._timestamps is not None:
            times = self._timestamps
            seconds = (times[self.frames] if self.frames < len(times)
                       else times[-1] + (self.frames - len(times) + 1) / float(self._fps))
            encoded.pts, encoded.time_base = round(seconds * 1000), fractions.Fraction(1, 1000)
        for packet in self._stream.encode(encoded):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path:
        for packet in self._stream.encode():  # flush the encoder's delayed frames
            self._container.mux(packet)
        self._container.close()
        os.replace(self.partial, self.path)
        return self.path

    def abort(self) -> None:
        self._container.close()
        self.partial.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def read_video(path: str | os.PathLike) -> tuple[np.ndarray, fractions.Fraction]:
    """Every frame of a (short) video as float32 [T, H, W, 3] and its frame rate; for checks and tests."""
    source = VideoSource.open(path)
    return np.stack(list(source.read(None))), source.fps


# ------------------------------------------------------------------------------------------- stylisation


@dataclasses.dataclass
class Flicker:
    """Running mean absolute frame-to-frame differences of the source, stylised and output frames."""

    source: float = 0.0
    stylized: float = 0.0
    output: float = 0.0
    pairs: int = 0

    def add(self, source: tuple[np.ndarray, np.ndarray], stylized: tuple[np.ndarray, np.ndarray],
            output: tuple[np.ndarray, np.ndarray]) -> None:
        """Adds one (previous, current) pair of each kind of frame."""
        self.source += float(np.mean(np.abs(source[1] - source[0])))
        self.stylized += float(np.mean(np.abs(stylized[1] - stylized[0])))
        self.output += float(np.mean(np.abs(output[1] - output[0])))
        self.pairs += 1

    def means(self) -> dict[str, float]:
        count = max(self.pairs, 1)
        return {"source": self.source / count, "stylized": self.stylized / count, "output": self.output / count}

    def report(self, blend: float) -> str:
        if self.pairs == 0:
            return "flicker: not measured (fewer than two frames)"
        means = self.means()
        ratio = {k: v / means["source"] if means["source"] > 0 else float("nan") for k, v in means.items()}
        line = (f"flicker (mean |frame t - frame t-1|, RGB in [0, 1], {self.pairs} pairs): source "
                f"{means['source']:.4f}; stylised {means['stylized']:.4f} ({ratio['stylized']:.2f}x source)")
        if blend > 0:
            line += f"; blended (--temporal-blend {blend:g}) {means['output']:.4f} ({ratio['output']:.2f}x source)"
        return line


def blend_with_previous(stylized: np.ndarray, previous_output: np.ndarray, source: np.ndarray,
                        previous_source: np.ndarray, weight: float) -> np.ndarray:
    """Motion-gated blend of float [h, w, 3] frames (module docstring): weight `weight` where the source is
    still, 0 where its mean RGB change reaches `MOTION_THRESHOLD`."""
    motion = np.mean(np.abs(source - previous_source), axis=-1, keepdims=True)
    gate = weight * np.clip(1.0 - motion / MOTION_THRESHOLD, 0.0, 1.0)
    return gate * previous_output + (1.0 - gate) * stylized


def _batches(frames: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    batch = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def stylize_frames(stylizer: Any, frames: Iterable[np.ndarray], code: Tree, writer: VideoWriter, *,
                   alpha: float = 1.0, blend: float = 0.0,
                   postprocess: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                   on_frames: Callable[[int], None] | None = None) -> Flicker:
    """Stylises a stream of float [h, w, 3] frames with one style code and writes them in order.

    Args:
      stylizer: an `eval.inference.batching.Stylizer` (or `eval.inference.tiling.TiledStylizer`); `step_size`
        frames per call.
      frames: the source frames, all the same size.
      code: the style's code, unbatched (one row of `Stylizer.encode_styles`).
      writer: where the output frames go.
      alpha: content-style trade-off. blend: temporal blend weight in [0, 1) (0: off).
      postprocess: applied to each (stylised, source) frame pair first, e.g. `jax_ast.color.preserve_luminance`.
      on_frames: called with the number of frames done after each step (progress).

    Returns:
      the `Flicker` of the clip.
    """
    flicker = Flicker()
    previous = None  # (source, stylised, output) of the last frame
    for batch in _batches(frames, stylizer.step_size):
        codes = jax.tree.map(lambda leaf: np.broadcast_to(leaf, (len(batch),) + np.shape(leaf)), code)
        stylized = stylizer.stylize_with_codes(batch, codes, alpha=alpha)
        if not np.all(np.isfinite(stylized)):
            raise VideoError("the network output NaN or inf; the video was not written")
        for source, frame in zip(batch, stylized):
            frame = np.clip(frame if postprocess is None else postprocess(frame, source), 0.0, 1.0)
            output = frame
            if previous is not None:
                if blend > 0:
                    output = blend_with_previous(frame, previous[2], source, previous[0], blend)
                flicker.add((previous[0], source), (previous[1], frame), (previous[2], output))
            writer.write(output)
            previous = (source, frame, output)
        if on_frames is not None:
            on_frames(len(batch))
    return flicker
