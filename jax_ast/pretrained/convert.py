"""Map PyTorch / TF checkpoint tensors onto Flax parameter trees through explicit name tables.

A *table* maps a Flax parameter path such as ``("decoder", "conv4_1", "kernel")`` to
``(source_key, kind)``:

* ``"conv"``: PyTorch conv weight (O, I, kH, kW) -> Flax kernel (kH, kW, I, O);
* ``"linear"``: PyTorch ``Linear.weight`` (out, in) -> Flax ``Dense.kernel`` (in, out);
* ``"vector"`` (biases, norms) and ``"hwio"`` (TF conv weights, already (kH, kW, I, O)): as is.

`torch_to_flax` checks the whole file against the table and the expected shapes and reports every
problem (missing, unexpected and mis-shaped keys) in one `WeightsError`.

The readers of the weights formats share `check_readable`, `check_finite` and the memory limit
`read_budget` defined here.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any, Iterable, Mapping

import jax
import numpy as np

from jax_ast.errors import LoadError

Table = dict[tuple[str, ...], tuple[str, str]]

KINDS = ("conv", "linear", "vector", "hwio")
_MAX_LISTED = 12  # keys listed per category in an error message before "... and N more"
# A weights reader may allocate at most READ_EXPANSION x the file's size for array data (storages,
# tensors, inflated zip entries), and at least MIN_READ_BUDGET. Real files need about 2x (the raw
# storages plus the contiguous copies; tied weights a little more); a stride-0 "expanded" view or a
# deflate bomb of a few KB would otherwise claim gigabytes. The floor keeps small files with
# legitimately expanded buffers readable.
READ_EXPANSION = 4
MIN_READ_BUDGET = 64 << 20


class WeightsError(LoadError):
    """A weights file cannot be used: unreadable, unsafe, or not matching the model."""


def read_budget(file_bytes: int) -> int:
    """Bytes of array data a reader may allocate for a file of `file_bytes` bytes (see READ_EXPANSION)."""
    return max(MIN_READ_BUDGET, READ_EXPANSION * file_bytes)


def check_readable(path: str | os.PathLike, what: str = "weights file") -> int:
    """Raise one `WeightsError` saying why `path` cannot be read, else return its size in bytes.

    The reasons are told apart (does not exist, a directory, a symlink loop, a broken symlink,
    permission denied) because "does not exist" for a directory or an unreadable file sends the
    user looking for the wrong problem. Only regular files are opened: a FIFO would block forever.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise WeightsError(f"{what} {path} is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise WeightsError(f"{what} {path} is not a regular file (a device, pipe or socket)")
        with open(path, "rb") as f:
            return os.fstat(f.fileno()).st_size
    except PermissionError:
        raise WeightsError(f"{what} {path}: permission denied (cannot read the file)") from None
    except FileNotFoundError:
        if path.is_symlink():
            raise WeightsError(f"{what} {path} is a broken symlink (its target does not exist)") from None
        raise WeightsError(f"{what} {path} does not exist") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise WeightsError(f"{what} {path} is a symlink loop (too many levels of symbolic links)") from None
        raise WeightsError(f"cannot read {what} {path}: {err.strerror or err}") from None


def check_finite(params: Any, source: str) -> None:
    """Raise one `WeightsError` naming `source` and the first parameters holding NaN or inf.

    Weights with non-finite values give black images or NaN losses with no other sign, so every loader
    calls this once on what it read.
    """
    bad = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        array = np.asarray(leaf)
        if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
            name = "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)
            bad.append(f"{name} ({int(np.size(array) - np.count_nonzero(np.isfinite(array)))} of {array.size})")
    if bad:
        raise WeightsError(f"{source} holds non-finite weights (NaN or inf) in {_short_list(bad)}; "
                           "the file is corrupt or comes from a diverged run")


def _to_flax_layout(array: np.ndarray, kind: str) -> np.ndarray:
    if kind == "conv":
        return np.transpose(array, (2, 3, 1, 0)) if array.ndim == 4 else array
    if kind == "linear":
        return np.transpose(array) if array.ndim == 2 else array
    return array


def _short_list(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown if len(items) <= _MAX_LISTED else f"{shown}, ... and {len(items) - _MAX_LISTED} more"


def _expected_leaves(expected: Any) -> dict[tuple[str, ...], tuple[int, ...]]:
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(expected)[0]:
        keys = tuple(str(getattr(k, "key", getattr(k, "name", k))) for k in path)
        flat[keys] = tuple(np.shape(leaf))
    return flat


def _unflatten(flat: Mapping[tuple[str, ...], np.ndarray]) -> dict:
    tree: dict = {}
    for path, value in flat.items():
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return tree


def torch_to_flax(
    state_dict: Mapping[str, np.ndarray],
    table: Mapping[tuple[str, ...], tuple[str, str]],
    expected: Any,
    *,
    source: str,
    ignore_prefixes: Iterable[str] = (),
) -> dict:
    """Convert a flat checkpoint dict to a nested Flax params dict following `table`.

    Args:
      state_dict: source key -> array (e.g. from `read_state_dict`).
      table: Flax path tuple -> (source key, kind), kind in `KINDS`.
      expected: Flax params pytree (arrays or `jax.ShapeDtypeStruct`s, e.g. from `jax.eval_shape`) whose
        leaves define the wanted paths and shapes. Every leaf must be covered by `table`.
      source: file name (or description) used in error messages.
      ignore_prefixes: source keys starting with any of these are allowed to be left unused
        (e.g. ``("classifier.",)`` for torchvision VGG).

    Returns:
      Nested dict of float32 numpy arrays with exactly the structure of `expected`.

    Raises:
      WeightsError: listing together every missing, unexpected and mis-shaped key, naming `source`.
    """
    bad_kinds = sorted({kind for _, kind in table.values() if kind not in KINDS})
    if bad_kinds:
        raise ValueError(f"unknown conversion kinds {bad_kinds}; valid kinds: {KINDS}")
    wanted = _expected_leaves(expected)
    ignore = tuple(ignore_prefixes)
    problems: list[str] = []
    uncovered = ["/".join(p) for p in wanted if p not in table]
    if uncovered:  # a programming error in the table, but report it with the rest
        problems.append(f"no table entry for model params: {_short_list(uncovered)}")
    missing, misshaped, converted = [], [], {}
    for path, (key, kind) in table.items():
        if path not in wanted:
            continue
        if key not in state_dict:
            missing.append(key)
            continue
        array = _to_flax_layout(np.asarray(state_dict[key]), kind)
        if tuple(array.shape) != wanted[path]:
            misshaped.append(f"{key} {tuple(np.shape(state_dict[key]))} -> {'/'.join(path)} "
                             f"needs {wanted[path]}")
            continue
        converted[path] = np.ascontiguousarray(array, dtype=np.float32)
    used = {table[p][0] for p in wanted if p in table}
    extra = sorted(k for k in state_dict if k not in used and not k.startswith(ignore))
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_short_list(missing)}")
    if extra:
        problems.append(f"unexpected keys ({len(extra)}): {_short_list(extra)}")
    if misshaped:
        problems.append(f"wrong shapes ({len(misshaped)}): {_short_list(misshaped)}")
    if problems:
        raise WeightsError(f"{source} does not match the model: " + "; ".join(problems))
    return _unflatten(converted)


# ----------------------------------------------------------------------------------------------
# VGG name tables
# ----------------------------------------------------------------------------------------------

_CONVS_PER_BLOCK = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
VGG_LAYOUTS = ("torchvision", "vgg_normalised", "lst", "slim")


def _vgg_conv_names(variant: str) -> list[str]:
    depth = "vgg16" if variant.startswith("vgg16") else "vgg19"
    return [f"conv{b + 1}_{i + 1}" for b, n in enumerate(_CONVS_PER_BLOCK[depth]) for i in range(n)]


def _torchvision_indices(variant: str) -> list[int]:
    """`features.{i}` index of every conv: conv, relu per conv, plus one pool after each block."""
    depth = "vgg16" if variant.startswith("vgg16") else "vgg19"
    indices, position = [], 0
    for n_convs in _CONVS_PER_BLOCK[depth]:
        for _ in range(n_convs):
            indices.append(position)
            position += 2
        position += 1
    return indices


def _vgg_normalised_indices() -> list[int]:
    """Sequential index of every 3x3 conv in the 53-module `vgg_normalised`: pad, conv, relu; pool."""
    indices, position = [], 1  # module 0 is the 1x1 preprocess conv
    for n_convs in _CONVS_PER_BLOCK["vgg19"]:
        for _ in range(n_convs):
            indices.append(position + 1)
            position += 3
        position += 1
    return indices


def vgg_table(variant: str, layout: str, prefix: tuple[str, ...] = (), *,
              convs: Iterable[str] | None = None) -> Table:
    """Name table for a VGG encoder checkpoint.

    Args:
      variant: "vgg16", "vgg19", "vgg19_normalised", "vgg19_lst" or "vgg16_slim" (depth from the name).
      layout: "torchvision" (``features.{i}.weight``), "vgg_normalised" (``{i}.weight`` of the
        53-module Sequential, 1x1 preprocess at 0), "lst" (``convN.weight``, conv1 = 1x1 preprocess) or
        "slim" (``vgg_16/conv{b}/conv{b}_{k}/weights|biases``, HWIO).
      prefix: prepended to every Flax path, e.g. ``("encoder",)``.
      convs: restrict to these conv names (e.g. up to relu4_1 for a truncated file); default all.
        The ``preprocess`` entry is included for the learned-1x1 layouts.

    Returns:
      Flax path -> (source key, kind).
    """
    if layout not in VGG_LAYOUTS:
        raise ValueError(f"unknown VGG layout {layout!r}; choose one of {VGG_LAYOUTS}")
    if not (variant.startswith("vgg16") or variant.startswith("vgg19")):
        raise ValueError(f"unknown VGG variant {variant!r}; it must start with vgg16 or vgg19")
    names = _vgg_conv_names(variant)
    keep = set(names if convs is None else convs)
    unknown = sorted(keep - set(names))
    if unknown:
        raise ValueError(f"unknown conv names {unknown} for {variant}; valid: {names}")
    prefix = tuple(prefix)
    table: Table = {}

    def add(flax_name: str, weight: str, bias: str, kind: str) -> None:
        table[prefix + (flax_name, "kernel")] = (weight, kind)
        table[prefix + (flax_name, "bias")] = (bias, "vector")

    if layout == "torchvision":
        sources = [f"features.{i}" for i in _torchvision_indices(variant)]
    elif layout == "vgg_normalised":
        if variant.startswith("vgg16"):
            raise ValueError("the vgg_normalised layout exists only for VGG-19")
        add("preprocess", "0.weight", "0.bias", "conv")
        sources = [str(i) for i in _vgg_normalised_indices()]
    elif layout == "lst":
        if variant.startswith("vgg16"):
            raise ValueError("the LinearTransfer (lst) layout exists only for VGG-19")
        add("preprocess", "conv1.weight", "conv1.bias", "conv")
        sources = [f"conv{i + 2}" for i in range(len(names))]
    else:  # slim: TF names, already HWIO
        sources = [f"vgg_16/conv{n[4]}/{n}" for n in names] if variant.startswith("vgg16") else \
            [f"vgg_19/conv{n[4]}/{n}" for n in names]
        for name, scope in zip(names, sources):
            if name in keep:
                add(name, f"{scope}/weights", f"{scope}/biases", "hwio")
        return table
    for name, source in zip(names, sources):
        if name in keep:
            add(name, f"{source}.weight", f"{source}.bias", "conv")
    return table
