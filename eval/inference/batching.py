"""Device-parallel batched inference: one pmapped program per model entry point, and shape groups.

Host arrays [B, ...] run in steps through `jax_ast.parallel.run_in_steps` (pad, shard, run, unpad). Every
step of one `Stylizer` has the same global batch (`step_size` = batch_size rounded up to a multiple of the
local device count), so each input shape is compiled exactly once. The model's variables are placed on the
devices once (`jax_ast.parallel.replicate_variables`) and passed with ``in_axes=None``.
"""

from __future__ import annotations

import collections
import functools
from typing import Any, Callable, Iterator, Sequence

import jax
import numpy as np

from jax_ast import parallel

Tree = Any


def shape_signature(tree: Tree) -> tuple:
    """Hashable (structure, leaf shapes without the batch axis) key used to group compatible inputs."""
    leaves, treedef = jax.tree.flatten(tree)
    return (str(treedef),) + tuple(np.shape(leaf)[1:] for leaf in leaves)


class Stylizer:
    """Batched, device-parallel stylisation with a model that follows the `jax_ast.models` interface.

    Args:
      model: a linen module with ``__call__(content, style, alpha)``, ``encode_style``, ``stylize_with_code``
        and ``encode_content`` (the `jax_ast.models` interface).
      variables: its variables, e.g. ``{"params": ...}`` (host or device arrays).
      batch_size: images per step over all devices (default: one per device); rounded up to a multiple
        of the device count.

    Attributes:
      trace_counts: how many times each entry point was traced (compiled), keyed "stylize"/"encode"/"code"/
        "content"/"codes".
    """

    def __init__(self, model: Any, variables: Tree, *, batch_size: int | None = None):
        self.n_devices = jax.local_device_count()
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.step_size = -(-(batch_size or self.n_devices) // self.n_devices) * self.n_devices
        self.trace_counts: collections.Counter[str] = collections.Counter()
        self.model = model
        self.variables = parallel.replicate_variables(variables)  # placed on the devices once
        model_type = type(model)

        def stylize(variables, content, style, alpha):
            self.trace_counts["stylize"] += 1  # runs once per trace, i.e. per compilation
            return model.apply(variables, content, style, alpha=alpha)[0]

        def encode(variables, style):
            self.trace_counts["encode"] += 1
            return model.apply(variables, style, method=model_type.encode_style)

        def encode_content(variables, content):
            self.trace_counts["content"] += 1
            return model.apply(variables, content, method=model_type.encode_content)

        def stylize_with_code(variables, content, code, alpha):
            self.trace_counts["code"] += 1
            return model.apply(variables, content, code, alpha=alpha, method=model_type.stylize_with_code)

        self._stylize = _parallel(stylize, num_batched=2, alpha_static=True)
        self._encode = _parallel(encode, num_batched=1, alpha_static=False)
        self._encode_content = _parallel(encode_content, num_batched=1, alpha_static=False)
        self._stylize_with_code = _parallel(stylize_with_code, num_batched=2, alpha_static=True)

        def stylize_codes(variables, content_code, code, alpha, height, width):
            self.trace_counts["codes"] += 1
            return model.apply(variables, content_code, code, alpha, height, width, method=model_type.stylize_codes)

        mapped_codes = parallel.pmap(stylize_codes, in_axes=(None, 0, 0), static_broadcasted_argnums=(3, 4, 5))
        self._stylize_codes = lambda variables, content_code, code, *, alpha, height, width: mapped_codes(
            variables, content_code, code, alpha, height, width)

    def stylize(self, contents: np.ndarray, styles: np.ndarray, *, alpha: float = 1.0) -> np.ndarray:
        """contents float[B, H, W, 3], styles float[B, Hs, Ws, 3] in [0, 1] -> float32[B, H, W, 3] (unclamped)."""
        return self._run(self._stylize, (contents, styles), alpha=float(alpha))

    def encode_styles(self, styles: np.ndarray, *, step_size: int | None = None) -> Tree:
        """styles float[B, Hs, Ws, 3] -> the model's style codes, host numpy with leading axis B.

        `step_size`: images per step (a multiple of the device count; default `self.step_size`).
        """
        return self._run(self._encode, (styles,), step_size=step_size)

    def encode_contents(self, contents: np.ndarray, *, step_size: int | None = None) -> Tree:
        """contents float[B, H, W, 3] -> the model's content codes (`encode_content`), host numpy with leading
        axis B. `step_size` as in `encode_styles`."""
        return self._run(self._encode_content, (contents,), step_size=step_size)

    def stylize_with_codes(self, contents: np.ndarray, codes: Tree, *, alpha: float = 1.0) -> np.ndarray:
        """contents float[B, H, W, 3] with per-row codes (leading axis B) -> float32[B, H, W, 3]."""
        return self._run(self._stylize_with_code, (contents, codes), alpha=float(alpha))

    def stylize_codes(self, content_codes: Tree, codes: Tree, *, height: int, width: int,
                      alpha: float = 1.0) -> np.ndarray:
        """Per-row content codes (`encode_contents`) and style codes, leading axis B -> float32[B, height, width, 3]
        (height, width: the contents' size). Equals `stylize_with_codes` of the contents."""
        return self._run(self._stylize_codes, (content_codes, codes), alpha=float(alpha), height=int(height),
                         width=int(width))

    def encode_many(self, styles: Sequence[np.ndarray]) -> list[Tree]:
        """Encodes differently sized styles [Hs_i, Ws_i, 3], batching equal sizes; one code per style."""
        codes: list[Tree] = [None] * len(styles)
        for indices in group_by_shape(styles).values():
            batch_codes = self.encode_styles(np.stack([styles[i] for i in indices]))
            for row, index in enumerate(indices):
                codes[index] = jax.tree.map(lambda leaf, row=row: leaf[row], batch_codes)
        return codes

    def stylize_pairs(self, contents: Sequence[np.ndarray], codes: Sequence[Tree],
                      pairs: Sequence[tuple[int, int]], *, alpha: float = 1.0
                      ) -> Iterator[tuple[list[int], np.ndarray | Exception]]:
        """Stylises many (content index, code index) pairs, batching pairs of equal content and code shapes.

        Each style is encoded once (by `encode_many`) however many contents it is applied to.

        Args:
          contents: float [H_i, W_i, 3] images. codes: unbatched codes from `encode_many`.
          pairs: (content index, code index) tuples.

        Yields:
          (pair positions, float32 [n, H, W, 3] stylised images) per step, or (pair positions, the
          exception) when that step failed, so one failing batch does not end a long run.
        """
        groups = collections.defaultdict(list)
        for position, (content_index, code_index) in enumerate(pairs):
            key = (np.shape(contents[content_index]), shape_signature(_add_batch_axis(codes[code_index])))
            groups[key].append(position)
        for positions in groups.values():
            for start in range(0, len(positions), self.step_size):
                chunk = positions[start:start + self.step_size]
                batch_contents = np.stack([contents[pairs[p][0]] for p in chunk])
                batch_codes = jax.tree.map(lambda *leaves: np.stack(leaves), *[codes[pairs[p][1]] for p in chunk])
                try:
                    yield chunk, self.stylize_with_codes(batch_contents, batch_codes, alpha=alpha)
                except Exception as error:  # reported per step by the caller, naming the files
                    yield chunk, error

    def _run(self, parallel_fn: Callable, batched: tuple, step_size: int | None = None, **static: Any) -> Tree:
        """Runs `parallel_fn` over `batched` (leading axis B) in steps of `step_size` (default: the stylizer's);
        host numpy out."""
        return parallel.run_in_steps(parallel_fn, self.variables, batched, step_size or self.step_size, **static)


def _parallel(fn: Callable, *, num_batched: int, alpha_static: bool) -> Callable:
    """`fn(variables, *batched, alpha)` pmapped: variables broadcast, batched args split on axis 0.

    ``alpha`` is static (a Python float) so model code may branch on it; a run uses one alpha, so this
    costs no extra compilations.
    """
    in_axes = (None,) + (0,) * num_batched
    if not alpha_static:
        return parallel.pmap(fn, in_axes=in_axes)
    mapped = parallel.pmap(fn, in_axes=in_axes, static_broadcasted_argnums=(num_batched + 1,))

    @functools.wraps(fn)
    def call(variables, *batched, alpha):
        return mapped(variables, *batched, alpha)

    return call


def _add_batch_axis(tree: Tree) -> Tree:
    return jax.tree.map(lambda leaf: np.asarray(leaf)[None], tree)


def group_by_shape(images: Sequence[np.ndarray]) -> dict[tuple[int, ...], list[int]]:
    """Indices of equally shaped arrays, in first-seen order of their shapes."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault(tuple(np.shape(image)), []).append(index)
    return groups
