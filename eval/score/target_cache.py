"""Per-image work of `eval.run` done once per image: loss-network targets and style codes, in an LRU by bytes.

A content or style image recurs in many pairs (each of 5k contents and 1k styles in 20 to 100 of 100k pairs).
What the scores need of it does not depend on the pair: the content features of the content layers, the
style's Grams and channel statistics (`jax_ast.losses.content_targets` / `style_targets`), and the network's
codes: the content's (`encode_content`, its encoder features) and the style's (`encode_style`). `TargetStore` computes these once per image, keeps them (host numpy) in a
`ByteLRU` bounded by bytes (``--target-cache-mb``), and hands each chunk of pairs its rows, stacked.

Memory: the cache never holds more than its capacity; the stacked rows of one chunk are transient (one
chunk's pairs, as the images themselves). So peak memory does not grow with the number of pairs.
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Hashable, Mapping, Sequence

import jax
import numpy as np

Tree = Any
# role -> (images float32 [n, S, S, 3] in [0, 1], step size) -> tree of arrays with leading axis n.
ComputeFn = Callable[[np.ndarray, int], Tree]


def tree_nbytes(tree: Tree) -> int:
    """Bytes of the arrays of `tree`."""
    return sum(np.asarray(leaf).nbytes for leaf in jax.tree.leaves(tree))


class ByteLRU:
    """A least-recently-used map whose values (trees of numpy arrays) hold at most `capacity_bytes` in all.

    A value larger than the whole capacity is not kept. Attributes: hits, misses, evictions (counts).
    """

    def __init__(self, capacity_bytes: int):
        if capacity_bytes < 0:
            raise ValueError(f"capacity_bytes must be >= 0, got {capacity_bytes}")
        self.capacity_bytes = capacity_bytes
        self.nbytes = 0
        self.hits = self.misses = self.evictions = 0
        self._values: collections.OrderedDict[Hashable, tuple[Tree, int]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: Hashable) -> bool:  # does not count as a use
        return key in self._values

    def get(self, key: Hashable) -> Tree | None:
        """The value of `key` (now the most recently used), or None."""
        if key not in self._values:
            self.misses += 1
            return None
        self.hits += 1
        self._values.move_to_end(key)
        return self._values[key][0]

    def put(self, key: Hashable, value: Tree) -> None:
        """Keeps `value` as the most recently used, evicting the least recently used until it fits."""
        size = tree_nbytes(value)
        if key in self._values:
            self.nbytes -= self._values.pop(key)[1]
        if size > self.capacity_bytes:
            return
        while self.nbytes + size > self.capacity_bytes:
            self.nbytes -= self._values.popitem(last=False)[1][1]
            self.evictions += 1
        self._values[key] = (value, size)
        self.nbytes += size


def bucket(count: int, n_devices: int, limit: int) -> int:
    """The step size for `count` images: the next power of two times `n_devices`, at most `limit`.

    A handful of sizes keeps compilations few (one per size) while a chunk with 3 new images does not pay
    for a full padded batch.
    """
    size = n_devices
    while size < count and size < limit:
        size *= 2
    return min(size, limit)


class TargetStore:
    """Rows of per-image results for chunks of pairs, each image's computed once while it stays cached.

    Args:
      compute: role -> `ComputeFn` (e.g. "content", "style": the scorer's targets, "code": style codes,
        "content_code": content codes).
      cache: the `ByteLRU` shared by the roles. step_size: the largest step (a multiple of `n_devices`).
      identity: a hashable that names the images' preprocessing (e.g. the size), part of every key.
    """

    def __init__(self, compute: Mapping[str, ComputeFn], cache: ByteLRU, *, step_size: int, n_devices: int,
                 identity: Hashable):
        self.compute, self.cache, self.identity = dict(compute), cache, identity
        self.step_size, self.n_devices = step_size, n_devices
        self.computed = collections.Counter()  # images computed per role (misses that ran the network)

    def rows(self, role: str, indices: Sequence[int], images: np.ndarray) -> Tree:
        """The `role` results of images `indices` (row i is image `images[i]`), stacked: leading axis n.

        Images already cached are not computed again; the others are computed together (in steps of
        `bucket` size) and cached. Each image index must always come with the same image.
        """
        found: dict[int, Tree] = {}
        missing: dict[int, int] = {}  # image index -> its first row in this chunk
        for row, index in enumerate(indices):
            if index in found or index in missing:
                continue
            value = self.cache.get((role, self.identity, index))
            if value is None:
                missing[index] = row
            else:
                found[index] = value
        if missing:
            new_images = images[list(missing.values())]
            step = bucket(len(new_images), self.n_devices, self.step_size)
            results = self.compute[role](new_images, step)
            self.computed[role] += len(missing)
            for position, index in enumerate(missing):
                # A copy, so the cache holds this image's bytes only, not the whole batch array.
                found[index] = jax.tree.map(lambda leaf, p=position: np.array(leaf[p]), results)
                self.cache.put((role, self.identity, index), found[index])
        return jax.tree.map(lambda *leaves: np.stack(leaves), *[found[index] for index in indices])
