"""Read PyTorch ``.pth`` state_dicts into numpy without torch and without running pickled code.

Two on-disk formats exist:

* **zip** (``torch.save`` since torch 1.6): ``<name>/data.pkl`` is the object pickle; each storage it
  references by persistent id ``("storage", StorageType, key, location, numel)`` is the raw file
  ``<name>/data/<key>``; ``<name>/byteorder`` says "little" or "big" (absent in old files: little).
* **legacy** (older torch, or ``_use_new_zipfile_serialization=False``): five pickles/blocks in a row:
  magic number, protocol version, sys_info (with ``little_endian``), the object pickle whose persistent
  ids are ``("storage", StorageType, key, location, numel, view_metadata)``, the list of storage keys,
  then for each key an int64 element count followed by the raw storage bytes.

The object pickle is read by an unpickler whose ``find_class`` only resolves the handful of globals
a state_dict needs, each to a harmless local stand-in; anything else is refused.

A hostile file must cost at most work and memory in proportion to its size: array data is limited by
`convert.read_budget`, containers are rebuilt once per object (a pickle's shared references are never
expanded), nesting is limited to `MAX_NESTING` levels, dict keys and set elements must be plain values
(hashing a nested tuple is as costly as expanding it), and no read asks for more bytes than the file
has left.
"""

from __future__ import annotations

import io
import logging
import math
import pickle
import struct
import tarfile
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import ml_dtypes
import numpy as np

from jax_ast.pretrained.convert import (READ_EXPANSION, WeightsError, check_finite, check_readable, read_budget,
                                        torch_to_flax)

logger = logging.getLogger(__name__)

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "state", "net", "params", "weights")
# A state_dict nests a handful of levels (wrapper -> optimizer -> state -> index -> tensor); 100 is far
# above any real checkpoint and keeps the rebuilding recursion far below Python's limit.
MAX_NESTING = 100
# The object pickle of a real checkpoint is a few KB per thousand tensors, never more than the file
# (torch stores zip entries uncompressed); an inflating entry gets this much plus READ_EXPANSION x.
_MIN_PICKLE_BUDGET = 1 << 20
_MAX_DIMS = 64  # numpy's limit on array dimensions
_PLAIN_KEY_TYPES = (str, bytes, int, float, bool, type(None))

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    "ComplexFloatStorage": np.complex64, "ComplexDoubleStorage": np.complex128, "UntypedStorage": np.uint8,
}
_TORCH_DTYPES = {
    "float32": np.float32, "float": np.float32, "float64": np.float64, "double": np.float64,
    "float16": np.float16, "half": np.float16, "bfloat16": ml_dtypes.bfloat16, "int64": np.int64,
    "long": np.int64, "int32": np.int32, "int": np.int32, "int16": np.int16, "short": np.int16,
    "int8": np.int8, "uint8": np.uint8, "bool": np.bool_, "complex64": np.complex64,
    "complex128": np.complex128,
}


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for ``torch.FloatStorage`` etc.; deliberately not callable."""

    dtype: Any


@dataclass(frozen=True)
class _StorageRef:
    """A storage (or legacy view of one): `numel` elements of `dtype` from element `start` of `key`."""

    key: str
    dtype: Any
    numel: int
    start: int = 0


@dataclass(frozen=True)
class _PendingTensor:
    """A tensor view whose bytes are read once all storages are known."""

    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


class _TorchMarker:
    """Stand-in for ``torch.Tensor`` / ``Parameter`` types passed to the rebuild helpers."""


def _label(value: Any) -> str:
    """A short description of an unpickled value for messages; never a full repr, which for a hostile
    value (huge, deeply nested, or sharing references exponentially) would itself be the attack."""
    if isinstance(value, str):
        return value if len(value) <= 60 else value[:57] + "..."
    if type(value) in (int, float, bool):
        try:
            text = repr(value)
        except ValueError:  # an int beyond the 4300-digit conversion limit
            text = ""
        if 0 < len(text) <= 60:
            return text
    return f"<{type(value).__name__}>"


def _plain_key(key: Any) -> bool:
    """True for dict keys / set elements whose hash costs O(their length): plain values or flat tuples."""
    return type(key) in _PLAIN_KEY_TYPES or (type(key) is tuple and all(type(k) in _PLAIN_KEY_TYPES for k in key))


def _bounded_ints(values: Any, what: str) -> tuple[int, ...]:
    if not isinstance(values, (tuple, list)) or len(values) > _MAX_DIMS:
        raise pickle.UnpicklingError(f"{what} is a {type(values).__name__}, not up to {_MAX_DIMS} ints")
    ints = tuple(int(v) for v in values)
    if any(abs(v) >= 1 << 63 for v in ints):
        raise pickle.UnpicklingError(f"{what} has a value beyond 64 bits")
    return ints


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored) -> _PendingTensor:
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError(f"tensor rebuilt from {type(storage).__name__}, not a storage")
    offset, = _bounded_ints((storage_offset,), "tensor offset")
    return _PendingTensor(storage, offset, _bounded_ints(size, "tensor size"), _bounded_ints(stride, "tensor stride"))


def _rebuild_parameter(data, *_ignored):
    return data


def _rebuild_from_type_v2(func, _new_type, args, _state):
    if func not in (_rebuild_tensor, _rebuild_parameter):
        raise pickle.UnpicklingError("unexpected rebuild function")
    return func(*args)


def _ordered_dict(items=()) -> OrderedDict:
    """``OrderedDict(items)`` (how Python 2 pickled one) with the same key check as SETITEMS."""
    if isinstance(items, (list, tuple)):
        for pair in items:
            if isinstance(pair, (list, tuple)) and pair and not _plain_key(pair[0]):
                raise WeightsError(f"refusing to unpickle an OrderedDict with a {type(pair[0]).__name__} key: "
                                   "not a plain state_dict")
    elif not isinstance(items, dict):
        raise pickle.UnpicklingError(f"OrderedDict built from a {type(items).__name__}")
    return OrderedDict(items)


_ALLOWED_FUNCTIONS: dict[tuple[str, str], Callable[..., Any]] = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
}
_MARKERS = {("torch", "Tensor"), ("torch._tensor", "Tensor"), ("torch.nn.parameter", "Parameter")}


def _resolve_global(module: str, name: str) -> Any | None:
    if (module, name) in _ALLOWED_FUNCTIONS:
        return _ALLOWED_FUNCTIONS[(module, name)]
    if (module, name) in _MARKERS:
        return _TorchMarker
    if module in ("torch", "torch.storage") and name in _STORAGE_DTYPES:
        return _StorageType(_STORAGE_DTYPES[name])
    if module == "torch" and name in _TORCH_DTYPES:  # a fresh stand-in, never numpy's shared dtype object
        return _StorageType(_TORCH_DTYPES[name])
    return None


class _RestrictedUnpickler(pickle._Unpickler):  # noqa: SLF001 (the pure-Python unpickler, to vet BUILD)
    """Unpickler that resolves only state_dict globals and turns storages into `_StorageRef`s.

    Besides `find_class`, it vets BUILD (``__setstate__``/attribute setting): only an OrderedDict may get
    plain attributes (a state_dict's ``_metadata``), so a pickle cannot modify the allowed stand-ins.
    """

    dispatch = dict(pickle._Unpickler.dispatch)  # noqa: SLF001

    def __init__(self, file, *, source: str, legacy: bool):
        super().__init__(file)
        self._source = source
        self._legacy = legacy

    def _refuse(self, what: str) -> WeightsError:
        return WeightsError(f"refusing to unpickle {what} from {self._source}: not a plain state_dict "
                            "(only tensors in (Ordered)dicts are read)")

    def find_class(self, module: str, name: str) -> Any:
        resolved = _resolve_global(module, name)
        if resolved is None:
            raise self._refuse(f"{module}.{name}")
        return resolved

    def _load_build(self) -> None:
        state, target = self.stack[-1], self.stack[-2] if len(self.stack) > 1 else None
        if type(target) is not OrderedDict or not isinstance(state, dict):
            raise self._refuse(f"a state update of {type(target).__name__}")
        pickle._Unpickler.load_build(self)  # noqa: SLF001

    dispatch[pickle.BUILD[0]] = _load_build

    # The opcodes that hash keys (dict and set building) first check that the keys are plain values.
    # After a MARK, the pure-Python unpickler's `stack` holds just the items pushed since the mark.
    def _plain_keys(self, keys: list) -> None:
        for key in keys:
            if not _plain_key(key):
                raise self._refuse(f"a {type(key).__name__} as a dict key or set element")

    def _load_setitem(self) -> None:
        self._plain_keys(self.stack[-2:-1])
        pickle._Unpickler.load_setitem(self)  # noqa: SLF001

    def _load_setitems(self) -> None:
        self._plain_keys(self.stack[::2])
        pickle._Unpickler.load_setitems(self)  # noqa: SLF001

    def _load_dict(self) -> None:
        self._plain_keys(self.stack[::2])
        pickle._Unpickler.load_dict(self)  # noqa: SLF001

    def _load_additems(self) -> None:
        self._plain_keys(self.stack)
        pickle._Unpickler.load_additems(self)  # noqa: SLF001

    def _load_frozenset(self) -> None:
        self._plain_keys(self.stack)
        pickle._Unpickler.load_frozenset(self)  # noqa: SLF001

    dispatch[pickle.SETITEM[0]] = _load_setitem
    dispatch[pickle.SETITEMS[0]] = _load_setitems
    dispatch[pickle.DICT[0]] = _load_dict
    dispatch[pickle.ADDITEMS[0]] = _load_additems
    dispatch[pickle.FROZENSET[0]] = _load_frozenset

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            what = pid[0] if isinstance(pid, tuple) and pid else pid
            raise pickle.UnpicklingError(f"unsupported persistent id {_label(what)}")
        storage_type, key = pid[1], pid[2]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {_label(storage_type)}")
        if type(key) not in (str, int):
            raise pickle.UnpicklingError(f"storage key is a {type(key).__name__}, not a string")
        key, (numel,) = str(key), _bounded_ints((pid[4],), "storage size")
        view = pid[5] if self._legacy and len(pid) > 5 else None
        if view is not None:  # legacy storage view: (view_key, element offset, view size)
            if not isinstance(view, (tuple, list)) or len(view) != 3:
                raise pickle.UnpicklingError(f"storage view is a {type(view).__name__}, not (key, offset, size)")
            start, count = _bounded_ints(view[1:], "storage view")
            return _StorageRef(key, storage_type.dtype, count, start)
        return _StorageRef(key, storage_type.dtype, numel)


def _unpickle(data: io.BufferedIOBase, *, source: str, legacy: bool) -> Any:
    return _RestrictedUnpickler(data, source=source, legacy=legacy).load()


class _Budget:
    """The bytes of array data a reader may still allocate for one file (`convert.read_budget`)."""

    def __init__(self, file_bytes: int):
        self.file_bytes = file_bytes
        self.limit = self.left = read_budget(file_bytes)

    def take(self, nbytes: int, what: str) -> None:
        if nbytes > self.left:
            raise WeightsError(
                f"{what} needs {nbytes:,} bytes, more than the reader allows for this {self.file_bytes:,}-byte file "
                f"({self.limit:,} bytes of array data in all: {READ_EXPANSION}x its size, at least "
                f"{read_budget(0) >> 20} MiB); the file declares far more data than it holds")
        self.left -= nbytes


class _BoundedReader:
    """`read`/`readline` of a file that never ask for more than the bytes left in it.

    A length field of a hostile pickle (BINBYTES8, FRAME) or storage header would otherwise make
    ``read(n)`` reserve n bytes before finding out that the file is shorter.
    """

    def __init__(self, file: io.BufferedIOBase, size: int):
        self._file, self.left = file, size

    def read(self, n: int | None = -1) -> bytes:
        data = self._file.read(self.left if n is None or n < 0 else min(n, self.left))
        self.left -= len(data)
        return data

    def readline(self, limit: int | None = -1) -> bytes:
        data = self._file.readline(self.left if limit is None or limit < 0 else min(limit, self.left))
        self.left -= len(data)
        return data


def _view(storage: np.ndarray, tensor: _PendingTensor, where: str, budget: _Budget) -> np.ndarray:
    """Apply offset/size/stride (in elements) to a 1-D storage, with bounds checks, and copy."""
    ref = tensor.storage
    base = storage[ref.start: ref.start + ref.numel]
    if len(base) != ref.numel:
        raise WeightsError(f"storage {ref.key} has {len(storage)} elements, tensor needs {ref.start + ref.numel}")
    if len(tensor.size) != len(tensor.stride) or any(s < 0 for s in (*tensor.size, *tensor.stride)):
        raise WeightsError(f"bad size/stride {tensor.size}/{tensor.stride} for storage {ref.key}")
    if 0 in tensor.size:
        return np.zeros(tensor.size, dtype=base.dtype.newbyteorder("="))
    last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.size, tensor.stride))
    if tensor.offset < 0 or last >= ref.numel:
        raise WeightsError(f"tensor view reaches element {last} of storage {ref.key} with {ref.numel}")
    # A view may repeat elements (stride 0, overlapping strides): its copy is limited, not its storage.
    budget.take(math.prod(tensor.size) * base.itemsize, f"tensor {where or '<top>'!r} of size {tensor.size}")
    strided = np.lib.stride_tricks.as_strided(
        base[tensor.offset:], shape=tensor.size, strides=[s * base.itemsize for s in tensor.stride],
        writeable=False)
    return np.array(strided, dtype=base.dtype.newbyteorder("="), order="C")


def _walk(obj: Any, leaf: Callable[[Any, str], Any]) -> Any:
    """Rebuild the dicts, lists and tuples of an unpickled object with each tensor or storage stand-in
    replaced by ``leaf(stand_in, where)`` (`where`: its key path, for messages).

    Every object is rebuilt once (remembered by id; all stay alive inside `obj`), so references that
    the pickle shares stay shared: a file of lists that each hold the previous one twice costs time
    linear in its size here, where a plain recursive copy would expand it exponentially. Reference
    cycles and nesting deeper than `MAX_NESTING` are refused: a state_dict has neither.
    """
    done: dict[int, Any] = {}
    active: dict[int, str] = {}  # containers being rebuilt -> where they were entered

    def visit(node: Any, where: str, depth: int) -> Any:
        if not isinstance(node, (dict, list, tuple, _PendingTensor, _StorageRef)):
            return node
        if id(node) in done:
            return done[id(node)]
        if isinstance(node, (_PendingTensor, _StorageRef)):
            done[id(node)] = leaf(node, where)
            return done[id(node)]
        if id(node) in active:
            raise WeightsError(f"the {type(node).__name__} at {active[id(node)] or '<top>'} contains itself (at "
                               f"{where}, a reference cycle): not a state_dict")
        if depth >= MAX_NESTING:
            raise WeightsError(f"containers are nested more than {MAX_NESTING} levels deep (at "
                               f"{where if len(where) <= 120 else where[:120] + '...'}): not a state_dict")
        active[id(node)] = where
        if isinstance(node, dict):
            rebuilt = {key: visit(value, f"{where}/{_label(key)}" if where else _label(key), depth + 1)
                       for key, value in node.items()}
        else:
            rebuilt = type(node)(visit(value, f"{where}[{i}]", depth + 1) for i, value in enumerate(node))
        del active[id(node)]
        done[id(node)] = rebuilt
        return rebuilt

    return visit(obj, "", 0)


def _materialise(obj: Any, load_storage: Callable[[_StorageRef], np.ndarray], budget: _Budget) -> Any:
    def leaf(ref: Any, where: str) -> np.ndarray:
        if isinstance(ref, _PendingTensor):
            return _view(load_storage(ref.storage), ref, where, budget)
        elements = load_storage(ref)[ref.start: ref.start + ref.numel]  # a bare storage: its elements
        budget.take(elements.nbytes, f"storage {ref.key} at {where or '<top>'}")
        return np.array(elements, dtype=elements.dtype.newbyteorder("="))

    return _walk(obj, leaf)


def _read_zip(path: Path, budget: _Budget) -> Any:
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") <= 1]
        if not pickles:
            raise WeightsError(f"{path} is a zip file without data.pkl: not a PyTorch checkpoint")
        root = pickles[0][: -len("data.pkl")]
        names = set(archive.namelist())

        def read_entry(name: str, what: str) -> bytes:  # the declared (inflated) size is checked first
            budget.take(archive.getinfo(name).file_size, what)
            return archive.read(name)

        byteorder = read_entry(root + "byteorder", "the byteorder record").decode().strip() \
            if root + "byteorder" in names else "little"
        if byteorder not in ("little", "big"):
            raise WeightsError(f"{path}: unknown byteorder record {byteorder!r}")
        pickle_size = archive.getinfo(pickles[0]).file_size
        if pickle_size > max(_MIN_PICKLE_BUDGET, READ_EXPANSION * budget.file_bytes):
            raise WeightsError(f"{pickles[0]} inflates to {pickle_size:,} bytes, far more than the "
                               f"{budget.file_bytes:,}-byte file (a decompression bomb)")
        obj = _unpickle(io.BytesIO(archive.read(pickles[0])), source=str(path), legacy=False)
        cache: dict[str, np.ndarray] = {}

        def load_storage(ref: _StorageRef) -> np.ndarray:
            if ref.key not in cache:
                raw = read_entry(f"{root}data/{ref.key}", f"storage {ref.key}")
                dtype = np.dtype(ref.dtype).newbyteorder("<" if byteorder == "little" else ">")
                if len(raw) % dtype.itemsize:
                    raise WeightsError(f"storage {ref.key} has {len(raw)} bytes, not a multiple of {dtype}")
                cache[ref.key] = np.frombuffer(raw, dtype=dtype)
            return cache[ref.key]

        return _materialise(obj, load_storage, budget)


def _read_legacy(path: Path, budget: _Budget) -> Any:
    with open(path, "rb") as raw_file:
        f = _BoundedReader(raw_file, budget.file_bytes)
        magic = _unpickle(f, source=str(path), legacy=True)
        if magic != LEGACY_MAGIC:
            raise WeightsError(f"{path} is not a PyTorch checkpoint (no zip archive, no legacy magic number)")
        _unpickle(f, source=str(path), legacy=True)  # protocol version
        sys_info = _unpickle(f, source=str(path), legacy=True)
        order = "<" if not isinstance(sys_info, dict) or sys_info.get("little_endian", True) else ">"
        obj = _unpickle(f, source=str(path), legacy=True)
        keys = _unpickle(f, source=str(path), legacy=True)
        refs: dict[str, _StorageRef] = {}

        def collect(ref: Any, _where: str) -> None:
            storage = ref.storage if isinstance(ref, _PendingTensor) else ref
            refs.setdefault(storage.key, storage)

        _walk(obj, collect)
        if not isinstance(keys, (list, tuple)):
            raise WeightsError(f"the storage key list is a {type(keys).__name__}, not a list")
        storages: dict[str, np.ndarray] = {}
        for key in keys:
            if type(key) not in (str, int):
                raise WeightsError(f"a storage key is a {type(key).__name__}, not a string")
            key = str(key)
            header = f.read(8)
            if len(header) != 8:
                raise WeightsError(f"storage {key} header is cut short")
            count = struct.unpack(order + "q", header)[0]
            if key not in refs:
                raise WeightsError(f"storage {key} is listed but never referenced")
            dtype = np.dtype(refs[key].dtype).newbyteorder(order)
            if not 0 <= count * dtype.itemsize <= f.left:
                raise WeightsError(f"storage {key} is cut short: its header declares {count:,} elements "
                                   f"({count * dtype.itemsize:,} bytes) but {f.left:,} bytes are left in the file")
            budget.take(count * dtype.itemsize, f"storage {key}")
            storages[key] = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype)
    return _materialise(obj, lambda ref: storages[ref.key], budget)


def _pick_state_dict(obj: Any, path: Path) -> dict[str, np.ndarray]:
    if not isinstance(obj, dict):
        raise WeightsError(f"{path} holds a {type(obj).__name__}, not a state_dict (a dict of tensors)")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, np.ndarray)}
    if tensors and len(tensors) == len(obj):
        return tensors
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, dict) and any(isinstance(v, np.ndarray) for v in inner.values()):
            logger.info("%s: using the state_dict stored under key %r", path, key)
            return _pick_state_dict(inner, path)
    if tensors:
        others = sorted(_label(k) for k in obj if k not in tensors)
        logger.warning("%s: ignoring %d non-tensor entries: %s", path, len(others), others[:10])
        return tensors
    raise WeightsError(f"{path} holds a dict with keys {sorted(map(_label, obj))[:20]} but no tensors and "
                       f"no state_dict under any of {WRAPPER_KEYS}")


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Read a PyTorch checkpoint (zip or legacy format) as ``{key: numpy array}``.

    Tensors come back with their own dtype (float32, float16, bfloat16 via ml_dtypes, ints, bool) in
    native byte order; views (offsets/strides) are resolved into contiguous copies. A dict wrapping a
    state_dict under one of `WRAPPER_KEYS` (e.g. ``{"epoch": 3, "state_dict": {...}}``) is unwrapped
    and the key used is logged.

    Reading is bounded by the file's size (see the module docstring), so a hostile file fails fast
    with a `WeightsError` instead of hanging or exhausting memory.

    Raises:
      WeightsError: missing, unreadable, truncated or corrupt file; a pickle that needs anything other
        than plain tensors in dicts (refused, never executed); data far beyond what the file holds; or
        no state_dict inside. The message names the file.
    """
    path = Path(path)
    budget = _Budget(check_readable(path))
    with open(path, "rb") as f:
        head = f.read(4)
    try:
        if zipfile.is_zipfile(path):
            obj = _read_zip(path, budget)
        elif head == b"PK\x03\x04":
            raise WeightsError(f"{path} is a truncated or corrupt zip archive (no central directory)")
        elif tarfile.is_tarfile(path):
            raise WeightsError(f"{path} is a tar archive (torch < 0.1.10 format), which is not supported")
        else:
            obj = _read_legacy(path, budget)
    except WeightsError as err:
        message = str(err)
        raise WeightsError(message if str(path) in message else f"{path}: {message}") from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, KeyError, IndexError, TypeError,
            ValueError, AttributeError, struct.error, OSError, UnicodeDecodeError, MemoryError) as err:
        raise WeightsError(f"{path} is truncated or corrupt, cannot read it as a PyTorch checkpoint "
                           f"({type(err).__name__}: {err})") from None
    return _pick_state_dict(obj, path)


def load_torch_params(path: str | Path, table: Mapping[tuple[str, ...], tuple[str, str]], expected: Any, *,
                      ignore_prefixes: tuple[str, ...] = ()) -> dict:
    """Read one `.pth` state_dict and convert it with `table` (see `convert.torch_to_flax`); errors name the file.

    Weights holding NaN or inf are refused here (`convert.check_finite`), for every importer built on this.
    """
    params = torch_to_flax(read_state_dict(path), table, expected, source=str(path), ignore_prefixes=ignore_prefixes)
    check_finite(params, str(path))
    return params
