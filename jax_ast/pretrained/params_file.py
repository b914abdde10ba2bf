"""jax-ast's params file: an ``.npz`` of '/'-joined parameter paths plus one JSON meta entry.

No pickle anywhere (written and read with ``allow_pickle=False``); written to a temporary file and
renamed, so a crash never leaves a half-written file under the final name. `read_npz` is the one
``.npz`` reader of the weights boundary (also for TF-slim / Magenta variable dumps).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping

import jax
import ml_dtypes
import numpy as np

from jax_ast.files import atomic_writer
from jax_ast.pretrained.convert import WeightsError, check_finite, check_readable, read_budget

FORMAT = "jax_ast.params"
PARAMS_FILE = "params.npz"  # the name a training run exports its final params under (`train.loop`)
VERSION = 1
META_KEY = "__meta__"
_PORTABLE_KINDS = "biufc"  # numpy kinds every numpy reads without extra packages


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in params.items():
        if not isinstance(key, str) or not key or "/" in key or key == META_KEY:
            raise ValueError(f"cannot save param name {key!r} under {prefix or '/'}: names must be "
                             f"non-empty strings without '/' and not {META_KEY!r}")
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, path + "/"))
        else:
            flat[path] = value
    return flat


def save_params(path: str | Path, params: Mapping[str, Any], *, meta: Mapping[str, Any] | None = None) -> Path:
    """Save a nested dict of arrays (e.g. VGG params) with JSON-serialisable `meta`.

    Non-portable dtypes (bfloat16) are stored as float32 and restored on load.
    Returns the path written.
    """
    path = Path(path)
    flat = {key: np.asarray(jax.device_get(value)) for key, value in _flatten(params).items()}
    dtypes = {}
    for key, array in flat.items():
        if array.dtype.kind not in _PORTABLE_KINDS:
            dtypes[key] = array.dtype.name
            flat[key] = array.astype(np.float32)
    header = {"format": FORMAT, "version": VERSION, "meta": dict(meta or {}), "stored_dtypes": dtypes}
    flat[META_KEY] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as stream:
        np.savez(stream, **flat)
    return path


def is_params_file(path: str | Path) -> bool:
    """True if `path` is a file written by `save_params`."""
    if not os.path.isfile(path):  # a FIFO would block the zip reader forever
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return f"{META_KEY}.npy" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _npz_entry(data: Any, key: str, path: Path) -> np.ndarray:
    try:
        return data[key]
    except ValueError as err:
        if "allow_pickle" not in str(err):
            raise
        raise WeightsError(f"{path}: entry {key!r} is an array of pickled Python objects, which is never "
                           "loaded (unpickling can run arbitrary code); store plain numeric arrays") from None


def read_npz(path: str | Path, *, select: Callable[[str], bool] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` (those whose name passes `select`, default all), never unpickling.

    Raises:
      WeightsError: naming the file (and the entry where there is one): missing or unreadable, not an
        .npz, truncated or corrupt, an entry of pickled objects, or entries that inflate to far more
        than the file's size (`convert.read_budget`).
    """
    path = Path(path)
    size = check_readable(path, "weights file")
    try:
        with zipfile.ZipFile(path) as archive:
            inflated = {info.filename.removesuffix(".npy"): info.file_size for info in archive.infolist()}
        wanted = [key for key in inflated if select is None or select(key)]
        if sum(inflated[key] for key in wanted) > read_budget(size):
            raise WeightsError(f"{path}: its entries inflate to {sum(inflated[k] for k in wanted):,} bytes, far more "
                               f"than the {size:,}-byte file may hold ({read_budget(size):,} bytes allowed; a "
                               "decompression bomb)")
        with np.load(path, allow_pickle=False) as data:
            return {key: _npz_entry(data, key, path) for key in wanted if key in data.files}
    except WeightsError:
        raise
    except zipfile.BadZipFile:
        raise WeightsError(f"{path} is not an .npz archive (not a zip file), or it is truncated") from None
    except (ValueError, OSError, EOFError, KeyError, MemoryError) as err:
        raise WeightsError(f"{path} is truncated or corrupt ({type(err).__name__}: {err})") from None


def load_params(path: str | Path) -> tuple[dict, dict]:
    """Load ``(params, meta)`` saved by `save_params`; params are nested dicts of numpy arrays.

    Raises:
      WeightsError: missing or unreadable, not a file written by `save_params`, truncated, or holding
        NaN/inf parameters (`convert.check_finite`); the message names the file.
    """
    path = Path(path)
    check_readable(path, "params file")
    if not is_params_file(path):
        raise WeightsError(f"{path} is not a jax_ast params file (.npz with a {META_KEY} entry)")
    flat = read_npz(path)
    try:
        header = json.loads(bytes(flat.pop(META_KEY)).decode())
    except (KeyError, ValueError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise WeightsError(f"{path} is truncated or corrupt ({type(err).__name__}: {err})") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: its {META_KEY} entry is not a JSON object")
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise WeightsError(f"{path}: unsupported format {header.get('format')!r} version {header.get('version')!r}")
    stored_dtypes = header.get("stored_dtypes", {})
    if not isinstance(stored_dtypes, dict):
        raise WeightsError(f"{path}: its {META_KEY} entry has a malformed 'stored_dtypes'")
    params: dict = {}
    for key, array in flat.items():
        stored = stored_dtypes.get(key)
        if stored:
            try:
                array = array.astype(np.dtype(getattr(ml_dtypes, stored, stored)))
            except (TypeError, ValueError) as err:
                raise WeightsError(f"{path}: entry {key!r} has an unknown stored dtype ({err})") from None
        node = params
        *parents, leaf = key.split("/")
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = array
    check_finite(params, str(path))
    return params, header.get("meta", {})
