"""`StyleTransferStream`: a content and a style source paired into deterministic, resumable batches
``{"content": uint8[B, Sc, Sc, 3], "style": uint8[B, Ss, Ss, 3]}``.

Batch ``k`` is a pure function of ``(seed, k, process_index, process_count)`` and the data, so resuming is exact:
``state()`` is just the number of consumed batches (plus bookkeeping), and background prefetch cannot change what
comes out.

Sampling: every epoch of each source is a seeded permutation (content and style independently, so sources of
different sizes cycle independently). Process ``i`` of ``P`` takes ``perm[i::P]`` truncated to ``len // P`` images,
so the processes of a multi-host run see disjoint images within an epoch (the ``len % P`` left over images change
with every epoch's permutation, so all are used over time).
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
import warnings
from typing import Any

import numpy as np

from jax_ast.data.augmentation import CropSpec, augment
from jax_ast.data.images import DataError, SkippedImageWarning, Source, describe, to_rgb_uint8

_ROLE_IDS = {"content": 0, "style": 1}


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
      content_spec, style_spec: `CropSpec` of each role (see `jax_ast.archs.default_augment`).
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
