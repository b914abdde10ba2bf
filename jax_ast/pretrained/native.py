"""Our own fast params format: an ``.npz`` of '/'-joined parameter paths plus one JSON meta entry.

No pickle anywhere (written and read with ``allow_pickle=False``); written to a temporary file and
renamed, so a crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Mapping

import jax
import ml_dtypes
import numpy as np

from jax_ast.pretrained.convert import WeightsError

FORMAT = "jax_ast.params"
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
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez(f, **flat)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def is_native(path: str | Path) -> bool:
    """True if `path` is a file written by `save_params`."""
    try:
        with zipfile.ZipFile(path) as archive:
            return f"{META_KEY}.npy" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def load_params(path: str | Path) -> tuple[dict, dict]:
    """Load ``(params, meta)`` saved by `save_params`; params are nested dicts of numpy arrays.

    Raises:
      WeightsError: not a file written by `save_params`, or unreadable/truncated.
    """
    path = Path(path)
    if not is_native(path):
        raise WeightsError(f"{path} is not a jax_ast params file (.npz with a {META_KEY} entry)")
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(bytes(data[META_KEY]).decode())
            flat = {key: data[key] for key in data.files if key != META_KEY}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, json.JSONDecodeError, UnicodeDecodeError) as err:
        if "allow_pickle" in str(err):  # numpy's message for object arrays, which only pickle can hold
            raise WeightsError(f"{path} holds pickled Python objects, which are never loaded (they could run "
                               "code); a params file holds only numeric arrays") from None
        raise WeightsError(f"{path} is truncated or corrupt ({type(err).__name__}: {err})") from None
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise WeightsError(f"{path}: unsupported format {header.get('format')!r} version {header.get('version')!r}")
    params: dict = {}
    for key, array in flat.items():
        stored = header.get("stored_dtypes", {}).get(key)
        if stored:
            array = array.astype(np.dtype(getattr(ml_dtypes, stored, stored)))
        node = params
        *parents, leaf = key.split("/")
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = array
    return params, header.get("meta", {})
