"""Host-side training input: image sources, the originals' crop augmentation, and a resumable batch stream.

Everything here is numpy on the host; nothing touches a device. A *source* is any object with ``__len__`` and
``load(index) -> uint8[H, W, 3]`` RGB (optionally ``describe(index) -> str`` for messages, and
``load_reduced(index, shorter_side)``, which may decode a much larger image at a reduced scale because the crop
recipe resizes it to `shorter_side` anyway): `FolderSource`, `BundledSource`, `ArraySource` and `TfdsSource`
(`jax_ast.data_tfds`, imported lazily).

`StyleTransferStream` pairs a content and a style source into batches
``{"content": uint8[B, Sc, Sc, 3], "style": uint8[B, Ss, Ss, 3]}``. Batch ``k`` is a pure function of
``(seed, k, process_index, process_count)`` and the data, so resuming is exact: ``state()`` is just the number of
consumed batches (plus bookkeeping), and background prefetch cannot change what comes out.

Sampling: every epoch of each source is a seeded permutation (content and style independently, so sources of
different sizes cycle independently). Process ``i`` of ``P`` takes ``perm[i::P]`` truncated to ``len // P`` images,
so the processes of a multi-host run see disjoint images within an epoch (the ``len % P`` left over images change
with every epoch's permutation, so all are used over time).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Literal, Protocol, Sequence

import numpy as np
from PIL import Image

from jax_ast.imageio import ImageError, list_images, load_pixels

ResizeMode = Literal["shorter", "square"]
ARCHS = ("adain", "sanet", "linear", "magenta")
BUNDLED_KINDS = ("content", "style")
_ROLE_IDS = {"content": 0, "style": 1}


class DataError(RuntimeError):
    """A data source that cannot be used at all (empty folder, unprepared dataset, every image unreadable)."""


class SkippedImageWarning(UserWarning):
    """An unreadable image was skipped (issued once per image)."""


class Source(Protocol):
    def __len__(self) -> int: ...

    def load(self, index: int) -> np.ndarray: ...


# ----------------------------------------------------------------------------------------------- conversion

def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Any decoded image array to uint8 [H, W, 3] RGB.

    Accepts [H, W], [H, W, 1] (grey), [H, W, 2] (grey + alpha), [H, W, 3], [H, W, 4] (RGBA) of dtype uint8,
    uint16 (scaled by 255/65535, rounded), bool, or float in [0, 1]. Alpha is composited onto white, as
    `jax_ast.imageio.load_image` does.
    """
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4) or 0 in array.shape[:2]:
        raise ValueError(f"expected an image of shape [H, W] or [H, W, 1|2|3|4], got {array.shape}")
    if array.dtype == np.uint8:
        values = array
    elif array.dtype == np.uint16:
        values = ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif array.dtype == np.bool_:
        values = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("float image holds NaN/inf values; float images must hold finite values in [0, 1]")
        if not (array.min() >= 0.0 and array.max() <= 1.0):
            raise ValueError(f"float image with values in [{float(array.min()):g}, {float(array.max()):g}]; "
                             "float images must hold finite values in [0, 1]")
        values = np.floor(array.astype(np.float32) * 255.0 + 0.5).astype(np.uint8)
    else:
        raise ValueError(f"unsupported image dtype {array.dtype}; valid: uint8, uint16, bool, float in [0, 1]")
    channels = values.shape[2]
    if channels in (2, 4):
        alpha = values[:, :, -1:].astype(np.float32) / 255.0
        colour = values[:, :, :-1].astype(np.float32)
        values = np.floor(colour * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    if values.shape[2] == 1:
        values = np.repeat(values, 3, axis=2)
    return np.ascontiguousarray(values)


# -------------------------------------------------------------------------------------------------- sources

class FolderSource:
    """The images in a folder (recursively by default; sorted, hidden files skipped), or a single image file.

    Raises:
      FileNotFoundError: `root` does not exist (the message names it).
      DataError: `root` holds no image file, or cannot be used (a symlink loop, permission denied).
    """

    def __init__(self, root: str | os.PathLike, recursive: bool = True):
        self.root = Path(root)
        try:
            self.paths: list[Path] = list_images(self.root, recursive=recursive)
        except FileNotFoundError:
            raise FileNotFoundError(f"image folder {self.root} does not exist") from None
        except ImageError as error:
            raise DataError(str(error)) from None

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> np.ndarray:
        """uint8 [H, W, 3] RGB; raises `ImageError` naming the file for a corrupt or unusable one."""
        # min_side=1: small images are upscaled by the crop augmentation instead of being rejected.
        return to_rgb_uint8(load_pixels(self.paths[index], min_side=1))

    def load_reduced(self, index: int, shorter_side: int) -> np.ndarray:
        """`load`, but an image far larger than `shorter_side` is decoded at a reduced scale
        (`jax_ast.imageio.load_pixels`), so decoding memory follows the crop recipe, not the file."""
        return to_rgb_uint8(load_pixels(self.paths[index], shorter_side=shorter_side, min_side=1))

    def describe(self, index: int) -> str:
        return str(self.paths[index])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, {len(self)} images)"


def bundled_dir(kind: str) -> Path:
    """The folder of sample images shipped inside the package: ``jax_ast/samples/{content,style}``."""
    if kind not in BUNDLED_KINDS:
        raise ValueError(f"unknown bundled image set {kind!r}; valid: {', '.join(BUNDLED_KINDS)}")
    import jax_ast  # local: jax_ast/__init__ must stay import-light and never import this module

    return Path(jax_ast.__file__).resolve().parent / "samples" / kind


class BundledSource(FolderSource):
    """The sample content or style images bundled with jax-ast (the default of ``python -m train.run``)."""

    def __init__(self, kind: str):
        super().__init__(bundled_dir(kind))
        self.kind = kind

    def __repr__(self) -> str:
        return f"BundledSource({self.kind!r}, {len(self)} images)"


class ArraySource:
    """In-memory images (any layout `to_rgb_uint8` accepts), e.g. for tests or pre-decoded data."""

    def __init__(self, images: Sequence[np.ndarray], names: Sequence[str] | None = None):
        self.images = list(images)
        if not self.images:
            raise DataError("ArraySource needs at least one image")
        self.names = list(names) if names is not None else [f"array[{i}]" for i in range(len(self.images))]
        if len(self.names) != len(self.images):
            raise ValueError(f"got {len(self.names)} names for {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> np.ndarray:
        return to_rgb_uint8(self.images[index])

    def describe(self, index: int) -> str:
        return self.names[index]


def open_source(role: str, *, folder: str | os.PathLike | None = None, tfds_name: str | None = None,
                tfds_split: str = "train", data_dir: str | None = None) -> Source:
    """The source for `role` ("content"/"style"): a folder, a tfds dataset, or else the bundled samples."""
    if role not in BUNDLED_KINDS:
        raise ValueError(f"unknown role {role!r}; valid: {', '.join(BUNDLED_KINDS)}")
    if folder and tfds_name:
        raise ValueError(f"give either a folder or a tfds dataset for {role}, not both")
    if folder:
        return FolderSource(folder)
    if tfds_name:
        from jax_ast.data.tfds import TfdsSource

        return TfdsSource(tfds_name, split=tfds_split, data_dir=data_dir)
    return BundledSource(role)


def describe(source: Source, index: int) -> str:
    """A human-readable name of one image of `source` (file path, dataset record, ...)."""
    if hasattr(source, "describe"):
        return source.describe(index)
    return f"{type(source).__name__}[{index}]"


def __getattr__(name: str) -> Any:  # PEP 562: `from jax_ast.data import TfdsSource` without importing tfds early
    if name == "TfdsSource":
        from jax_ast.data.tfds import TfdsSource

        return TfdsSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------------------------- augmentation

@dataclasses.dataclass(frozen=True)
class CropSpec:
    """How one training image becomes a `crop` x `crop` patch.

    1. resize: "square" -> `resize_to` x `resize_to` (aspect distorted, torchvision ``Resize((s, s))``);
       "shorter" -> shorter side `resize_to`, longer side ``int(resize_to * long / short)`` (``Resize(s)``);
       None -> native size.
    2. An image still smaller than `crop` on a side is upscaled (aspect kept) so its shorter side is `crop`.
    3. crop: random position (``RandomCrop``) or centred (``CenterCrop``, offsets ``round((size - crop) / 2)``).
    4. hflip: mirror left-right with probability 1/2.
    Resizing is PIL bilinear (antialiased), as torchvision does on PIL images.
    """

    resize: ResizeMode | None = "shorter"
    resize_to: int | None = 256
    crop: int = 256
    hflip: bool = False
    random_crop: bool = True

    def __post_init__(self):
        if self.resize not in ("shorter", "square", None):
            raise ValueError(f"unknown resize {self.resize!r}; valid: 'shorter', 'square', None")
        if not isinstance(self.crop, int) or self.crop < 1:
            raise ValueError(f"crop must be a positive int, got {self.crop!r}")
        if self.resize is None:
            if self.resize_to:
                raise ValueError(f"resize_to={self.resize_to} needs resize='shorter' or 'square'")
        elif not isinstance(self.resize_to, int) or self.resize_to < self.crop:
            raise ValueError(f"resize_to must be an int >= crop ({self.crop}), got {self.resize_to!r}")


def default_augment(arch: str, crop: int = 256) -> tuple[CropSpec, CropSpec]:
    """(content_spec, style_spec) of the original training recipe of `arch`, scaled to `crop`.

    adain, sanet: ``Resize((512, 512))`` (aspect distorted), ``RandomCrop(256)`` (architectures.md 2.4, 3.4).
    linear: ``Resize(256)`` (shorter side), ``RandomCrop(256)``, ``RandomHorizontalFlip`` (4.4).
    magenta: content shorter side 258, centre crop 256 (5.5). Its style pipeline (colour jitter, flips, a random
    shorter side in [258, 456), a random batch rescale) is simplified to shorter side 258, random crop, random
    horizontal flip.
    """
    if arch in ("adain", "sanet"):
        spec = CropSpec(resize="square", resize_to=2 * crop, crop=crop)
        return spec, spec
    if arch == "linear":
        spec = CropSpec(resize="shorter", resize_to=crop, crop=crop, hflip=True)
        return spec, spec
    if arch == "magenta":
        return (CropSpec(resize="shorter", resize_to=crop + 2, crop=crop, random_crop=False),
                CropSpec(resize="shorter", resize_to=crop + 2, crop=crop, hflip=True))
    raise ValueError(f"unknown arch {arch!r}; valid: {', '.join(ARCHS)}")


DEFAULT_AUGMENT: dict[str, tuple[CropSpec, CropSpec]] = {arch: default_augment(arch) for arch in ARCHS}


def _shorter_side_shape(height: int, width: int, size: int) -> tuple[int, int]:
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def resized_shape(height: int, width: int, spec: CropSpec) -> tuple[int, int]:
    """(height, width) of the image after steps 1-2 of `spec` (the frame the crop is taken from)."""
    if spec.resize == "square":
        shape = (spec.resize_to, spec.resize_to)
    elif spec.resize == "shorter":
        shape = _shorter_side_shape(height, width, spec.resize_to)
    else:
        shape = (height, width)
    if min(shape) < spec.crop:
        shape = _shorter_side_shape(*shape, spec.crop)
    return shape


def augment(image: np.ndarray, spec: CropSpec, rng: np.random.Generator) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [crop, crop, 3] following `spec` (random choices drawn from `rng`).

    Only the cropped window is resampled (PIL ``resize(box=...)``), which gives the same pixels as resizing the
    whole image and then cropping, at a fraction of the cost for the 512 -> 256 recipes.
    """
    height, width = image.shape[:2]
    new_height, new_width = resized_shape(height, width, spec)
    crop = spec.crop
    if spec.random_crop:
        top = int(rng.integers(0, new_height - crop + 1))
        left = int(rng.integers(0, new_width - crop + 1))
    else:
        top = int(round((new_height - crop) / 2.0))
        left = int(round((new_width - crop) / 2.0))
    flip = spec.hflip and bool(rng.random() < 0.5)
    if (new_height, new_width) == (height, width):
        patch = image[top:top + crop, left:left + crop]
    else:
        scale_y, scale_x = height / new_height, width / new_width
        box = (left * scale_x, top * scale_y, min(width, (left + crop) * scale_x),
               min(height, (top + crop) * scale_y))
        patch = np.asarray(Image.fromarray(image).resize((crop, crop), Image.Resampling.BILINEAR, box=box))
    if flip:
        patch = patch[:, ::-1]
    return np.ascontiguousarray(patch)


# ---------------------------------------------------------------------------------------------------- stream

class _Sampler:
    """Maps this process's k-th draw of one role to a source index: seeded per-epoch permutations, sharded."""

    def __init__(self, size: int, *, seed: int, role: str, process_index: int, process_count: int):
        self.size, self.seed, self.role_id = size, seed, _ROLE_IDS[role]
        self.process_index, self.process_count = process_index, process_count
        self.per_process = size // process_count
        if self.per_process == 0:
            raise DataError(f"the {role} source has {size} images, fewer than the {process_count} processes")
        self._permutations: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._lock = threading.Lock()

    def _permutation(self, epoch: int) -> np.ndarray:
        with self._lock:
            if epoch not in self._permutations:
                rng = np.random.default_rng([self.seed, self.role_id, epoch])
                self._permutations[epoch] = rng.permutation(self.size)
                while len(self._permutations) > 4:
                    self._permutations.popitem(last=False)
            return self._permutations[epoch]

    def index(self, epoch: int, offset: int) -> int:
        """Source index of the `offset`-th image (0 <= offset < per_process) of this process in `epoch`."""
        return int(self._permutation(epoch)[self.process_index + offset * self.process_count])


class StyleTransferStream:
    """Infinite, deterministic, resumable batches ``{"content": uint8[B, Sc, Sc, 3], "style": uint8[B, Ss, Ss, 3]}``.

    Args:
      content_source, style_source: sources (``__len__``, ``load(index) -> uint8[H, W, 3]``).
      batch_size: images per batch on this process (the per-host batch).
      content_spec, style_spec: `CropSpec` of each role (see `default_augment`).
      seed: non-negative int; the same seed gives the same batches.
      process_index, process_count: this host's shard (``jax.process_index()``, ``jax.process_count()``).
      prefetch: batches prepared ahead in background threads (0: synchronously in ``next``).
      workers: threads decoding those batches (default ``max(1, prefetch)``); PIL decodes without the GIL.

    Unreadable images are skipped (one `SkippedImageWarning` per image, naming it) and replaced by the next image
    of the same epoch's shard; `skipped` counts the replacements in the batches consumed so far. If every image
    of this process's shard of a source is unreadable, `DataError` is raised.
    """

    def __init__(self, content_source: Source, style_source: Source, *, batch_size: int, content_spec: CropSpec,
                 style_spec: CropSpec, seed: int = 0, process_index: int = 0, process_count: int = 1,
                 prefetch: int = 2, workers: int | None = None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if not 0 <= process_index < process_count:
            raise ValueError(f"need 0 <= process_index < process_count, got {process_index}, {process_count}")
        if prefetch < 0:
            raise ValueError(f"prefetch must be >= 0, got {prefetch}")
        self.sources = {"content": content_source, "style": style_source}
        self.specs = {"content": content_spec, "style": style_spec}
        self.batch_size, self.seed = batch_size, int(seed)
        self.process_index, self.process_count = process_index, process_count
        self._samplers = {role: _Sampler(len(source), seed=self.seed, role=role, process_index=process_index,
                                         process_count=process_count) for role, source in self.sources.items()}
        self._bad: dict[str, set[int]] = {"content": set(), "style": set()}
        self._bad_lock = threading.Lock()
        self.step = 0  # batches consumed
        self.skipped = 0  # unreadable images replaced in the consumed batches
        self.prefetch = prefetch
        self.workers = workers or max(1, prefetch)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: collections.deque[tuple[int, concurrent.futures.Future]] = collections.deque()

    # -- pure batch production -------------------------------------------------------------------------------
    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        """The batch the stream yields as its `step`-th (0-based); does not move the stream."""
        return self._produce(step)[0]

    def _produce(self, step: int) -> tuple[dict[str, np.ndarray], int]:
        batch, skipped = {}, 0
        for role in ("content", "style"):
            images = []
            for slot in range(self.batch_size):
                image, misses = self._sample(role, step * self.batch_size + slot)
                images.append(image)
                skipped += misses
            batch[role] = np.stack(images)
        return batch, skipped

    def _sample(self, role: str, position: int) -> tuple[np.ndarray, int]:
        """The augmented image at this process's `position`-th draw of `role`, and how many bad images it skipped."""
        sampler, source = self._samplers[role], self.sources[role]
        epoch, offset = divmod(position, sampler.per_process)
        rng = np.random.default_rng([self.seed, _ROLE_IDS[role], self.process_index, position])
        for attempt in range(sampler.per_process):
            index = sampler.index(epoch, (offset + attempt) % sampler.per_process)
            image = self._load(role, index)
            if image is not None:
                return augment(image, self.specs[role], rng), attempt
        raise DataError(f"all {sampler.per_process} {role} images of process {self.process_index} are unreadable "
                        f"(source {source!r}); see the warnings above")

    def _load(self, role: str, index: int) -> np.ndarray | None:
        """The decoded image, or None (after one warning per image) if it cannot be read."""
        if index in self._bad[role]:
            return None
        source, spec = self.sources[role], self.specs[role]
        load_reduced = getattr(source, "load_reduced", None)
        try:
            if load_reduced is not None and spec.resize is not None:
                return to_rgb_uint8(load_reduced(index, spec.resize_to))
            return to_rgb_uint8(source.load(index))
        except DataError:
            raise  # a misconfigured source, not a bad image
        except Exception as error:  # noqa: BLE001 - decoders raise anything on bad data; we report and go on
            with self._bad_lock:
                first = index not in self._bad[role]
                self._bad[role].add(index)
            if first:
                name = describe(source, index)
                message = str(error) if name in str(error) else f"{name}: {error}"
                warnings.warn(f"skipping unreadable {role} image {message}", SkippedImageWarning, stacklevel=2)
            return None

    @property
    def bad_images(self) -> dict[str, list[str]]:
        """Names of the images found unreadable so far, per role."""
        with self._bad_lock:
            return {role: sorted(describe(self.sources[role], i) for i in bad) for role, bad in self._bad.items()}

    # -- iteration, prefetch -----------------------------------------------------------------------------------
    def __iter__(self) -> "StyleTransferStream":
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self.prefetch == 0:
            batch, skipped = self._produce(self.step)
        else:
            self._fill_queue()
            step, future = self._pending.popleft()
            assert step == self.step, (step, self.step)
            batch, skipped = future.result()
        self.step += 1
        self.skipped += skipped
        return batch

    def _fill_queue(self) -> None:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="jax_ast-data")
        next_step = self._pending[-1][0] + 1 if self._pending else self.step
        while len(self._pending) < self.prefetch + 1:
            self._pending.append((next_step, self._executor.submit(self._produce, next_step)))
            next_step += 1

    def _drop_pending(self) -> None:
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()

    def close(self) -> None:
        """Stops the prefetch threads (the stream can still be used synchronously afterwards)."""
        self._drop_pending()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> "StyleTransferStream":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- resume ------------------------------------------------------------------------------------------------
    def state(self) -> dict[str, int]:
        """JSON-able position: the number of consumed batches, the skip counter, and what fixes the order."""
        return {"step": self.step, "skipped": self.skipped, "seed": self.seed, "batch_size": self.batch_size,
                "process_count": self.process_count, "content_size": len(self.sources["content"]),
                "style_size": len(self.sources["style"])}

    def restore(self, state: dict[str, int], *, strict: bool = True) -> None:
        """Continue exactly where the stream that produced `state` was.

        Raises:
          ValueError: (strict) the seed, batch size, process count or source sizes differ, so the batches would
            not be those of the saved run; with ``strict=False`` this is only a warning.
        """
        if "step" not in state:
            raise ValueError(f"not a data stream state (no 'step'): {state!r}")
        mismatched = [f"{key}: saved {state[key]}, now {value}" for key, value in self.state().items()
                      if key not in ("step", "skipped") and key in state and state[key] != value]
        if mismatched:
            message = "data stream state does not match this stream (" + "; ".join(mismatched) + ")"
            if strict:
                raise ValueError(message)
            warnings.warn(message + "; continuing from the saved step with a different order", stacklevel=2)
        self._drop_pending()
        self.step = int(state["step"])
        self.skipped = int(state.get("skipped", 0))
