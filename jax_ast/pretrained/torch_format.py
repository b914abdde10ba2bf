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
"""

from __future__ import annotations

import io
import logging
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

from jax_ast.pretrained.convert import WeightsError, torch_to_flax

logger = logging.getLogger(__name__)

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "state", "net", "params", "weights")

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


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored) -> _PendingTensor:
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError(f"tensor rebuilt from {type(storage).__name__}, not a storage")
    return _PendingTensor(storage, int(storage_offset), tuple(int(s) for s in size),
                          tuple(int(s) for s in stride))


def _rebuild_parameter(data, *_ignored):
    return data


def _rebuild_from_type_v2(func, _new_type, args, _state):
    if func not in (_rebuild_tensor, _rebuild_parameter):
        raise pickle.UnpicklingError("unexpected rebuild function")
    return func(*args)


_ALLOWED_FUNCTIONS: dict[tuple[str, str], Callable[..., Any]] = {
    ("collections", "OrderedDict"): OrderedDict,
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

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {str(pid)[:80]}")
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}")
        view = pid[5] if self._legacy and len(pid) > 5 else None
        if view is not None:  # legacy storage view: (view_key, element offset, view size)
            return _StorageRef(key, storage_type.dtype, int(view[2]), int(view[1]))
        return _StorageRef(key, storage_type.dtype, numel)


def _unpickle(data: io.BufferedIOBase, *, source: str, legacy: bool) -> Any:
    return _RestrictedUnpickler(data, source=source, legacy=legacy).load()


def _view(storage: np.ndarray, tensor: _PendingTensor) -> np.ndarray:
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
    strided = np.lib.stride_tricks.as_strided(
        base[tensor.offset:], shape=tensor.size, strides=[s * base.itemsize for s in tensor.stride],
        writeable=False)
    return np.array(strided, dtype=base.dtype.newbyteorder("="), order="C")


def _materialise(obj: Any, load_storage: Callable[[_StorageRef], np.ndarray]) -> Any:
    if isinstance(obj, _PendingTensor):
        return _view(load_storage(obj.storage), obj)
    if isinstance(obj, _StorageRef):  # a bare storage: return its elements
        elements = load_storage(obj)[obj.start: obj.start + obj.numel]
        return np.array(elements, dtype=elements.dtype.newbyteorder("="))
    if isinstance(obj, dict):
        return {key: _materialise(value, load_storage) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(value, load_storage) for value in obj)
    return obj


def _read_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") <= 1]
        if not pickles:
            raise WeightsError(f"{path} is a zip file without data.pkl: not a PyTorch checkpoint")
        root = pickles[0][: -len("data.pkl")]
        names = set(archive.namelist())
        byteorder = archive.read(root + "byteorder").decode().strip() if root + "byteorder" in names else "little"
        if byteorder not in ("little", "big"):
            raise WeightsError(f"{path}: unknown byteorder record {byteorder!r}")
        obj = _unpickle(io.BytesIO(archive.read(pickles[0])), source=str(path), legacy=False)
        cache: dict[str, np.ndarray] = {}

        def load_storage(ref: _StorageRef) -> np.ndarray:
            if ref.key not in cache:
                raw = archive.read(f"{root}data/{ref.key}")
                dtype = np.dtype(ref.dtype).newbyteorder("<" if byteorder == "little" else ">")
                if len(raw) % dtype.itemsize:
                    raise WeightsError(f"storage {ref.key} has {len(raw)} bytes, not a multiple of {dtype}")
                cache[ref.key] = np.frombuffer(raw, dtype=dtype)
            return cache[ref.key]

        return _materialise(obj, load_storage)


def _collect_refs(obj: Any, found: dict[str, _StorageRef]) -> None:
    if isinstance(obj, _PendingTensor):
        found.setdefault(obj.storage.key, obj.storage)
    elif isinstance(obj, _StorageRef):
        found.setdefault(obj.key, obj)
    elif isinstance(obj, dict):
        for value in obj.values():
            _collect_refs(value, found)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _collect_refs(value, found)


def _read_legacy(path: Path) -> Any:
    with open(path, "rb") as f:
        magic = _unpickle(f, source=str(path), legacy=True)
        if magic != LEGACY_MAGIC:
            raise WeightsError(f"{path} is not a PyTorch checkpoint (no zip archive, no legacy magic number)")
        _unpickle(f, source=str(path), legacy=True)  # protocol version
        sys_info = _unpickle(f, source=str(path), legacy=True)
        order = "<" if not isinstance(sys_info, dict) or sys_info.get("little_endian", True) else ">"
        obj = _unpickle(f, source=str(path), legacy=True)
        keys = _unpickle(f, source=str(path), legacy=True)
        refs: dict[str, _StorageRef] = {}
        _collect_refs(obj, refs)
        storages: dict[str, np.ndarray] = {}
        for key in keys:
            header = f.read(8)
            if len(header) != 8:
                raise WeightsError(f"storage {key} header is cut short")
            count = struct.unpack(order + "q", header)[0]
            if str(key) not in refs:
                raise WeightsError(f"storage {key} is listed but never referenced")
            dtype = np.dtype(refs[str(key)].dtype).newbyteorder(order)
            raw = f.read(count * dtype.itemsize)
            if len(raw) != count * dtype.itemsize:
                raise WeightsError(f"storage {key} is cut short ({len(raw)} of {count * dtype.itemsize} bytes)")
            storages[str(key)] = np.frombuffer(raw, dtype=dtype)
    return _materialise(obj, lambda ref: storages[ref.key])


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
        others = sorted(str(k) for k in obj if k not in tensors)
        logger.warning("%s: ignoring %d non-tensor entries: %s", path, len(others), others[:10])
        return tensors
    raise WeightsError(f"{path} holds a dict with keys {sorted(map(str, obj))[:20]} but no tensors and "
                       f"no state_dict under any of {WRAPPER_KEYS}")


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Read a PyTorch checkpoint (zip or legacy format) as ``{key: numpy array}``.

    Tensors come back with their own dtype (float32, float16, bfloat16 via ml_dtypes, ints, bool) in
    native byte order; views (offsets/strides) are resolved into contiguous copies. A dict wrapping a
    state_dict under one of `WRAPPER_KEYS` (e.g. ``{"epoch": 3, "state_dict": {...}}``) is unwrapped
    and the key used is logged.

    Raises:
      WeightsError: missing, truncated or corrupt file; a pickle that needs anything other than plain
        tensors in dicts (refused, never executed); or no state_dict inside. The message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    with open(path, "rb") as f:
        head = f.read(4)
    try:
        if zipfile.is_zipfile(path):
            obj = _read_zip(path)
        elif head == b"PK\x03\x04":
            raise WeightsError(f"{path} is a truncated or corrupt zip archive (no central directory)")
        elif tarfile.is_tarfile(path):
            raise WeightsError(f"{path} is a tar archive (torch < 0.1.10 format), which is not supported")
        else:
            obj = _read_legacy(path)
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
    """Read one `.pth` state_dict and convert it with `table` (see `convert.torch_to_flax`); errors name the file."""
    return torch_to_flax(read_state_dict(path), table, expected, source=str(path), ignore_prefixes=ignore_prefixes)
