"""Hostile inputs and faults: one clear exception naming the file, layer or argument; never a hang, a raw
traceback from deep inside numpy/pickle, a silent NaN, or an overwritten file.

Every hostile file is written here into tmp_path, mostly as hand-assembled pickle opcodes, so this file
needs neither torch nor network access. The cases that used to hang run under a deadline.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import pickle
import re
import signal
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import jax_ast.losses as L
from jax_ast import data, imageio
from jax_ast.imageio import ImageError
from jax_ast.pretrained import magenta, params_file
from jax_ast.pretrained.convert import WeightsError
from jax_ast.pretrained.torch_format import LEGACY_MAGIC, load_torch_params, read_state_dict
from jax_ast.pretrained.vgg import load_vgg

REPO = Path(__file__).resolve().parents[1]


class Hung(BaseException):
    """Raised by `_deadline`; a BaseException so that no `except OSError/Exception` in the code hides it."""


@contextlib.contextmanager
def _deadline(seconds: float):
    def expire(*_):
        raise Hung(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------------- hand-made .pth files

def _str(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE


def _int(value: int) -> bytes:
    if 0 <= value < 2**31:
        return b"J" + struct.pack("<i", value)  # BININT
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw  # LONG1


def _ints(values) -> bytes:
    return b"(" + b"".join(_int(v) for v in values) + b"t"


def _tensor(key: str, numel: int, size, stride, *, legacy: bool = False) -> bytes:
    """Opcodes of ``_rebuild_tensor_v2(FloatStorage <key>, 0, size, stride, False, OrderedDict())``."""
    pid = (b"(" + _str("storage") + b"ctorch\nFloatStorage\n" + _str(key) + _str("cpu") + _int(numel)
           + (b"N" if legacy else b"") + b"tQ")
    return (b"ctorch._utils\n_rebuild_tensor_v2\n(" + pid + _int(0) + _ints(size) + _ints(stride)
            + b"\x89ccollections\nOrderedDict\n)R" + b"tR")


def _state(entries: dict[str, bytes]) -> bytes:
    """A protocol-2 pickle of a dict whose values are the given opcode snippets."""
    return b"\x80\x02}" + b"".join(_str(key) + value + b"s" for key, value in entries.items()) + b"."


def _shared(levels: int, container: bytes = b"l") -> bytes:
    """Level i is a list (b"l") or tuple (b"t") holding level i - 1 twice, via the memo: 2**levels leaves."""
    ops = (b"]" if container == b"l" else b")") + b"q\x00"
    for i in range(1, levels + 1):
        ops += b"0(h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + container + b"q" + bytes([i])  # POP the last level
    return ops


def _write_zip(path: Path, object_pickle: bytes, storages: dict[str, bytes] | None = None, *,
               deflate: bool = False) -> Path:
    compression = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        archive.writestr("archive/data.pkl", object_pickle)
        archive.writestr("archive/byteorder", "little")
        for key, raw in (storages or {}).items():
            archive.writestr(f"archive/data/{key}", raw)
    return path


def _write_legacy(path: Path, object_pickle: bytes, storages: dict[str, bytes] | None = None, *,
                  counts: dict[str, int] | None = None) -> Path:
    storages = storages or {}
    with open(path, "wb") as f:
        for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                             "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            pickle.dump(header, f, protocol=2)
        f.write(object_pickle)
        pickle.dump(list(storages), f, protocol=2)
        for key, raw in storages.items():
            f.write(struct.pack("<q", (counts or {}).get(key, len(raw) // 4)))
            f.write(raw)
    return path


def _write(fmt: str, path: Path, object_pickle: bytes) -> Path:
    return (_write_zip if fmt == "zip" else _write_legacy)(path, object_pickle)


def _zip_zeros(archive: zipfile.ZipFile, name: str, nbytes: int, prefix: bytes = b"") -> None:
    """A deflated entry of `prefix` + `nbytes` zero bytes, streamed (never all in memory)."""
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    chunk = bytes(1 << 20)
    with archive.open(info, "w") as out:
        out.write(prefix)
        for _ in range(nbytes // len(chunk)):
            out.write(chunk)


# -------------------------------------------------------------- case 1: shared references (billion laughs)

@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_shared_references_are_rebuilt_once_not_expanded(tmp_path, fmt):
    path = _write(fmt, tmp_path / "laughs.pth", _state({"w": _shared(40)}))  # 2**40 leaves if expanded
    assert path.stat().st_size < 1000
    with _deadline(10), pytest.raises(WeightsError, match=r"laughs\.pth holds a dict with keys \['w'\] but no tensors"):
        read_state_dict(path)


def test_shared_tensor_references_load_once(tmp_path):
    tensor = _tensor("0", 2, (2,), (1,))
    ops = b"\x80\x02}" + _str("a") + tensor + b"q\x00s" + _str("b") + b"h\x00s."  # "b" is the same tensor as "a"
    loaded = read_state_dict(_write_zip(tmp_path / "tied.pth", ops, {"0": np.float32([1, 2]).tobytes()}))
    np.testing.assert_array_equal(loaded["a"], [1, 2])
    np.testing.assert_array_equal(loaded["b"], [1, 2])


@pytest.mark.parametrize("where", ["dict key", "set element"])
def test_nested_tuple_keys_are_refused_before_hashing(tmp_path, where):
    # Hashing (and printing) a tuple that shares its halves 40 levels deep would never finish.
    if where == "dict key":
        ops = b"\x80\x02}" + _shared(40, b"t") + b"K\x01s."
    else:
        ops = b"\x80\x02}" + _str("s") + b"\x8f(" + _shared(40, b"t") + b"\x90s."  # EMPTY_SET, ADDITEMS
    with _deadline(10), pytest.raises(WeightsError) as info:
        read_state_dict(_write_legacy(tmp_path / "keys.pth", ops))
    assert "keys.pth" in str(info.value) and "refusing to unpickle a tuple as a dict key or set element" in str(info.value)
    assert len(str(info.value)) < 500


def test_reference_cycle_is_refused(tmp_path):
    path = _write_zip(tmp_path / "cycle.pth", _state({"w": b"]q\x00h\x00a"}))  # w = [w]
    with _deadline(10), pytest.raises(WeightsError, match=r"cycle\.pth: the list at w contains itself \(at w\[0\], a reference cycle\)"):
        read_state_dict(path)


# ------------------------------------------------------------------------------ case 2: deep nesting

@pytest.mark.parametrize("kind", ["lists", "dicts"])
def test_deeply_nested_containers_are_one_error(tmp_path, kind):
    if kind == "lists":
        depth = 200_000
        nested = b"(" * depth + b"l" * depth  # 400 KB
    else:
        depth = 50_000
        nested = b"}" + (_str("a") + b"}") * depth + b"s" * depth
    path = _write_legacy(tmp_path / "deep.pth", _state({"w": nested}))
    with _deadline(20), pytest.raises(WeightsError, match=r"deep\.pth: containers are nested more than 100 levels"):
        read_state_dict(path)


# ------------------------------------------------------------------------- case 3: memory bounded by size

def test_expanded_view_of_a_tiny_storage_is_refused_before_allocating(tmp_path):
    # 900M float32 = 3.35 GiB from one 4-byte element (stride 0), in a file of about 500 bytes.
    ops = _state({"w": _tensor("0", 1, (900_000_000,), (0,))})
    path = _write_zip(tmp_path / "expanded.pth", ops, {"0": np.float32([1]).tobytes()})
    with pytest.raises(WeightsError, match=r"expanded\.pth: tensor 'w' of size \(900000000,\) needs 3,600,000,000 "
                                           r"bytes, more than the reader allows"):
        read_state_dict(path)


def test_many_views_of_one_storage_share_one_budget(tmp_path):
    numel = 1 << 18  # a 1 MiB storage, viewed whole by 100 tensors: 100 MiB of copies from a 1 MiB file
    ops = _state({f"w{i}": _tensor("0", numel, (numel,), (1,)) for i in range(100)})
    path = _write_zip(tmp_path / "views.pth", ops, {"0": np.zeros(numel, np.float32).tobytes()})
    with pytest.raises(WeightsError, match=r"views\.pth: tensor 'w\d+' .* more than the reader allows"):
        read_state_dict(path)


def test_legacy_storage_with_a_huge_element_count(tmp_path):
    ops = _state({"w": _tensor("0", 2, (2,), (1,), legacy=True)})
    path = _write_legacy(tmp_path / "count.pth", ops, {"0": np.float32([1, 2]).tobytes()},
                         counts={"0": 900_000_000})
    with pytest.raises(WeightsError, match=r"count\.pth: storage 0 is cut short: its header declares "
                                           r"900,000,000 elements \(3,600,000,000 bytes\)"):
        read_state_dict(path)


def test_deflate_bomb_storage_is_refused_before_inflating(tmp_path):
    numel = 32 << 20  # 128 MiB of zeros deflate to ~130 KB
    path = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", _state({"w": _tensor("0", numel, (numel,), (1,))}))
        _zip_zeros(archive, "archive/data/0", 4 * numel)
    with pytest.raises(WeightsError, match=r"bomb\.pth: storage 0 needs 134,217,728 bytes, more than the reader"):
        read_state_dict(path)


def test_deflate_bomb_pickle_is_refused_before_unpickling(tmp_path):
    path = tmp_path / "pkl_bomb.pth"
    with zipfile.ZipFile(path, "w") as archive:
        size = 8 << 20
        _zip_zeros(archive, "archive/data.pkl", size, prefix=b"\x80\x02}" + _str("w") + b"X" + struct.pack("<I", size))
    with pytest.raises(WeightsError, match=r"pkl_bomb\.pth: archive/data\.pkl inflates to"):
        read_state_dict(path)


# --------------------------------------------------------------------- case 4: what is wrong with the path

def _deny_reading(monkeypatch, target: Path) -> None:
    """Make `open(target)` fail as on a chmod-000 file (the tests run as root, who could read it)."""
    real_open = builtins.open

    def fake_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.fspath(file) == os.fspath(target):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(target))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)


def _bad_path(tmp_path: Path, monkeypatch, problem: str, name: str) -> Path:
    path = tmp_path / name
    if problem == "directory":
        path.mkdir()
    elif problem == "symlink loop":
        os.symlink(tmp_path / f"other_{name}", path)
        os.symlink(path, tmp_path / f"other_{name}")
    elif problem == "broken symlink":
        os.symlink(tmp_path / "gone", path)
    elif problem == "fifo":
        os.mkfifo(path)  # opening it would block until a writer appears
    elif problem == "permission denied":
        path.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip, never opened
        _deny_reading(monkeypatch, path)
    return path


PATH_PROBLEMS = {"missing": "does not exist", "directory": "is a directory", "symlink loop": "is a symlink loop",
                 "broken symlink": "is a broken symlink", "permission denied": "permission denied",
                 "fifo": "is not a regular file"}
WEIGHT_READERS = {
    "read_state_dict": (read_state_dict, "w.pth"),
    "load_params": (params_file.load_params, "w.npz"),
    "read_npz": (lambda p: params_file.read_npz(p), "w.npz"),
    "magenta.read_checkpoint": (magenta.read_checkpoint, "w.npz"),
}


@pytest.mark.parametrize("problem", PATH_PROBLEMS)
@pytest.mark.parametrize("reader", WEIGHT_READERS)
def test_weights_path_problems_are_named(tmp_path, monkeypatch, reader, problem):
    read, name = WEIGHT_READERS[reader]
    path = _bad_path(tmp_path, monkeypatch, problem, name)
    with _deadline(10), pytest.raises(WeightsError) as info:
        read(path)
    assert str(path) in str(info.value) and PATH_PROBLEMS[problem] in str(info.value), str(info.value)


# ----------------------------------------------------------------------------- case 5: pickled npz entries

def _object_npz(path: Path, *, native_meta: bool = False) -> Path:
    arrays = {"vgg_16/conv1/conv1_1/weights": np.zeros((3, 3, 3, 64), np.float32),
              "evil": np.array([{"x": 1}], dtype=object)}
    if native_meta:
        arrays = {"__meta__": np.frombuffer(b'{"format": "jax_ast.params", "version": 1}', np.uint8), **arrays}
    np.savez(path, **arrays)
    return path


NPZ_READERS = {
    "read_npz": lambda p: params_file.read_npz(p),
    "load_params": lambda p: params_file.load_params(p),
    "load_vgg": lambda p: load_vgg("vgg16_slim", p, taps=("relu1_1",)),
    "load_magenta": lambda p: magenta.load_magenta(p),
    "load_inception_v3": lambda p: magenta.load_inception_v3(p),
}


@pytest.mark.parametrize("reader", NPZ_READERS)
def test_pickled_object_in_npz_is_one_weights_error(tmp_path, reader):
    """The npz readers of the weights boundary all go through `params_file.read_npz`."""
    path = _object_npz(tmp_path / "objects.npz", native_meta=reader == "load_params")
    with pytest.raises(WeightsError, match=r"objects\.npz: entry 'evil' is an array of pickled Python objects"):
        NPZ_READERS[reader](path)


def test_npz_deflate_bomb_is_refused(tmp_path):
    path = tmp_path / "npz_bomb.npz"
    header = b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) + b"{'descr': '<f4', 'fortran_order': False, " \
        b"'shape': (33554432,), }".ljust(117) + b"\n"
    with zipfile.ZipFile(path, "w") as archive:
        _zip_zeros(archive, "vgg_16/conv1/conv1_1/weights.npy", 128 << 20, prefix=header)
    with pytest.raises(WeightsError, match=r"npz_bomb\.npz: its entries inflate to 134,217,\d+ bytes"):
        magenta.read_checkpoint(path)


# ------------------------------------------------------------------------------------ case 6: NaN weights

def test_nan_in_a_pth_is_one_error_naming_the_file(tmp_path):
    ops = _state({"layer.weight": _tensor("0", 2, (2,), (1,))})
    path = _write_zip(tmp_path / "nan.pth", ops, {"0": np.float32([1, np.nan]).tobytes()})
    expected = {"layer": {"bias": jax.ShapeDtypeStruct((2,), jnp.float32)}}
    with pytest.raises(WeightsError, match=r"nan\.pth holds non-finite weights \(NaN or inf\) in layer/bias \(1 of 2\)"):
        load_torch_params(path, {("layer", "bias"): ("layer.weight", "vector")}, expected)


def test_inf_in_a_native_params_file(tmp_path):
    path = params_file.save_params(tmp_path / "inf.npz", {"conv": {"kernel": np.float32([[np.inf, 0.0]])}})
    with pytest.raises(WeightsError, match=r"inf\.npz holds non-finite weights .* conv/kernel \(1 of 2\)"):
        params_file.load_params(path)


def test_nan_in_a_magenta_npz(tmp_path):
    from jax_ast.models.magenta import Magenta

    shapes = magenta.magenta_shapes(Magenta())
    arrays = {}
    for flax_path, (name, _) in magenta.magenta_table().items():
        node = shapes
        for key in flax_path:
            node = node[key]
        arrays[name] = np.zeros(node.shape, np.float32)
    arrays["transformer/contract/conv1/weights"][0, 0, 0, 0] = np.nan
    np.savez(tmp_path / "magenta.npz", **arrays)
    del arrays
    with pytest.raises(WeightsError, match=r"magenta\.npz holds non-finite weights \(NaN or inf\) in "
                                           r"params/transformer/contract_conv1/kernel \(1 of 7776\)"):
        magenta.load_magenta(tmp_path / "magenta.npz")


# ------------------------------------------------------------------------------------------ losses

def _feats(*shape, layer="relu1_2", value=1.0):
    return {layer: jnp.full(shape, value, jnp.float32)}


MISMATCHES = [  # (loss, reference shape, output shape, problem)
    ("content_loss", (2, 4, 4, 8), (2, 5, 4, 8), "spatial sizes differ"),
    ("classic_style_loss", (2, 4, 4, 8), (2, 4, 4, 6), "channel counts differ"),
    ("balanced_style_loss", (2, 4, 4, 8), (3, 4, 4, 8), "batch sizes differ"),
    ("mean_std_style_loss", (2, 4, 4, 8), (2, 4, 4, 5), "channel counts differ"),
    ("style_loss_bound", (2, 4, 4, 4), (2, 4, 4, 7), "channel counts differ"),
]


@pytest.mark.parametrize("loss, reference, output, problem", MISMATCHES, ids=[m[0] for m in MISMATCHES])
def test_mismatched_features_name_the_layer_and_both_shapes(loss, reference, output, problem):
    message = f"features {reference} and output features {output} do not match ({problem})"
    with pytest.raises(ValueError, match=r"layer 'relu1_2': \w+ " + re.escape(message)):
        getattr(L, loss)(_feats(*reference), _feats(*output), layers=("relu1_2",))


def test_different_spatial_sizes_and_a_single_style_still_work():
    total, _ = L.classic_style_loss(_feats(1, 6, 6, 4), _feats(3, 4, 4, 4), layers=("relu1_2",))
    assert total.shape == (3,)


@pytest.mark.parametrize("loss", ["content_loss", "classic_style_loss", "balanced_style_loss",
                                  "mean_std_style_loss", "style_loss_bound"])
@pytest.mark.parametrize("shape", [(2, 0, 4, 3), (2, 4, 4, 0)])
def test_empty_feature_maps_raise_instead_of_nan(loss, shape):
    with pytest.raises(ValueError, match=r"layer 'relu1_2': \w+ features have shape .*expected a non-empty"):
        getattr(L, loss)(_feats(*shape), _feats(*shape), layers=("relu1_2",))


def test_classic_loss_of_an_empty_map_with_hw_norm_is_not_silent_nan():
    with pytest.raises(ValueError, match="non-empty"):
        L.classic_style_loss(_feats(1, 0, 3, 2), _feats(1, 0, 3, 2), layers=("relu1_2",), gram_norm="hw")


def test_mean_std_on_a_single_position_names_the_layer():
    with pytest.raises(ValueError, match=r"layer 'relu5_1': .* 1 spatial position\(s\); .*ddof=1"):
        L.mean_std_style_loss(_feats(1, 1, 1, 4, layer="relu5_1"), _feats(1, 1, 1, 4, layer="relu5_1"),
                              layers=("relu5_1",))


def test_total_variation_of_one_pixel_axes_is_zero_and_empty_images_raise():
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(L.total_variation_loss(jnp.ones((2, 1, 1, 3))), [0.0, 0.0])
    row = jnp.asarray(rng.uniform(size=(1, 1, 5, 3)), jnp.float32)
    horizontal = np.mean(np.square(np.diff(np.asarray(row), axis=2)))
    np.testing.assert_allclose(L.total_variation_loss(row), [0.5 * horizontal], rtol=1e-6)
    grad = jax.grad(lambda x: L.total_variation_loss(x).sum())(row)
    assert np.all(np.isfinite(grad))
    with pytest.raises(ValueError, match=r"total_variation_loss: images have shape \(2, 0, 4, 3\)"):
        L.total_variation_loss(jnp.ones((2, 0, 4, 3)))


@pytest.mark.parametrize("loss", ["content_loss", "classic_style_loss", "balanced_style_loss",
                                  "mean_std_style_loss", "style_loss_bound"])
def test_empty_layer_list_is_a_configuration_error(loss):
    feats = _feats(2, 4, 4, 3)
    with pytest.raises(ValueError, match=rf"{loss}: layers is empty; give at least one layer"):
        getattr(L, loss)(feats, feats, layers=())
    with pytest.raises(ValueError, match=rf"{loss}: layers must be a sequence of layer names, got the string"):
        getattr(L, loss)(feats, feats, layers="relu1_2")


def test_validation_runs_under_jit():
    style = _feats(2, 4, 4, 8)
    with pytest.raises(ValueError, match="channel counts differ"):
        jax.jit(lambda s, o: L.balanced_style_loss(s, o, layers=("relu1_2",))[0])(style, _feats(2, 4, 4, 6))


# ------------------------------------------------------------------------------------------- images

def _png(path: Path, size: int = 32) -> Path:
    Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(path)
    return path


def test_unreadable_image_says_permission_denied(tmp_path, monkeypatch):
    path = _png(tmp_path / "locked.png")
    _deny_reading(monkeypatch, path)
    with pytest.raises(ImageError) as info:
        imageio.load_image(path)
    assert str(info.value) == f"{path}: permission denied (cannot read the file)"


def test_chmod_000_image_says_permission_denied(tmp_path):
    path = _png(tmp_path / "locked.png")
    path.chmod(0)
    if os.access(path, os.R_OK):
        pytest.skip("running as root: chmod 000 does not stop reading (covered by the monkeypatched test)")
    with pytest.raises(ImageError, match="permission denied"):
        imageio.load_image(path)


@pytest.mark.parametrize("problem", ["symlink loop", "broken symlink", "fifo"])
def test_symlink_and_special_file_problems_are_named(tmp_path, monkeypatch, problem):
    path = _bad_path(tmp_path, monkeypatch, problem, "link.png")
    reason = {"symlink loop": "symlink loop (too many levels of symbolic links)",
              "broken symlink": "broken symlink (its target does not exist)",
              "fifo": "not a regular file (a device, pipe or socket)"}[problem]
    with _deadline(10), pytest.raises(ImageError) as info:
        imageio.load_image(path)
    assert str(info.value) == f"{path}: {reason}"
    if problem != "broken symlink":
        with pytest.raises(ImageError, match=re.escape(reason)):
            imageio.list_images(path)
        with pytest.raises(data.DataError, match=re.escape(reason)):
            data.FolderSource(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_float_tiff_with_nan_or_inf_pixels(tmp_path, bad):
    values = np.linspace(0, 1, 24 * 40, dtype=np.float32).reshape(24, 40)
    values[3, 5] = bad
    path = tmp_path / "nan.tif"
    Image.fromarray(values, mode="F").save(path)
    with pytest.raises(ImageError, match=r"nan\.tif: 32-bit float image holds NaN/inf pixels \(1 of 960\)"):
        imageio.load_image(path)
    with pytest.raises(ValueError, match="float image holds NaN/inf values"):
        data.to_rgb_uint8(values)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_save_image_refuses_nan_and_inf_and_writes_nothing(tmp_path, bad):
    image = np.full((16, 16, 3), 0.5, np.float32)
    image[2, 3, 1] = bad
    existing = _png(tmp_path / "out.png")
    before = existing.read_bytes()
    with pytest.raises(ValueError, match=r"out\.png: not written, the image holds NaN/inf values \(1 of 768\)"):
        imageio.save_image(existing, image)
    assert existing.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


# ---------------------------------------------------------------- case 14: decoding memory in the loader

def _blank_png(path: Path, width: int, height: int) -> Path:
    """An all-black RGB PNG written row by row (the image itself is never in memory)."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    compressor, row, parts = zlib.compressobj(9), bytes(1 + 3 * width), []
    for _ in range(height):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    return path


_RSS_SCRIPT = """
import sys
from jax_ast.archs import default_augment
from jax_ast.data import FolderSource, StyleTransferStream

def peak_kb():  # this process's peak RSS (VmHWM; ru_maxrss would include the parent's from before exec)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

source = FolderSource(sys.argv[1])
content_spec, style_spec = default_augment("adain", 256)
stream = StyleTransferStream(source, source, batch_size=1, content_spec=content_spec, style_spec=style_spec,
                             prefetch=0)
before = peak_kb()
batch = stream.batch_at(0)
print(before, peak_kb(), batch["content"].shape)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS is read from /proc")
def test_huge_png_costs_the_loader_memory_of_its_target_size(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    assert _blank_png(folder / "huge.png", 8000, 8000).stat().st_size < 300_000
    result = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(folder)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    assert result.returncode == 0, result.stderr
    before_kb, after_kb, shape = result.stdout.split(maxsplit=2)
    assert shape.strip() == "(1, 256, 256, 3)"
    # The uint8 decode alone is 192 MB; before the fix the float copies made the peak grow by ~2.2 GB.
    assert (int(after_kb) - int(before_kb)) / 1024 < 600, result.stdout


def test_reduced_decoding_matches_full_decoding(tmp_path):
    y, x = np.mgrid[0:1200, 0:1600]
    pixels = np.stack([x * 255 // 1600, y * 255 // 1200, (x + y) * 255 // 2800], axis=2).astype(np.uint8)
    for name, image in (("big.jpg", Image.fromarray(pixels)), ("big.png", Image.fromarray(pixels).convert("P")),
                        ("big16.png", Image.fromarray(pixels[:, :, 0].astype(np.uint16) * 257))):
        image.save(tmp_path / name)
        reduced = imageio.load_pixels(tmp_path / name, shorter_side=128)
        assert 256 <= min(reduced.shape[:2]) < 600, (name, reduced.shape)
        spec = data.CropSpec(resize="square", resize_to=128, crop=128, random_crop=False)
        full = data.augment(data.to_rgb_uint8(imageio.load_pixels(tmp_path / name)), spec, np.random.default_rng(0))
        small = data.augment(data.to_rgb_uint8(reduced), spec, np.random.default_rng(0))
        assert np.abs(full.astype(int) - small).mean() < 2.0, name


def test_reduced_decoding_keeps_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(np.zeros((1200, 1600, 3), np.uint8)).save(tmp_path / "rotated.jpg", exif=exif)
    assert imageio.load_pixels(tmp_path / "rotated.jpg").shape == (1600, 1200, 3)
    reduced = imageio.load_pixels(tmp_path / "rotated.jpg", shorter_side=100)
    assert reduced.shape[0] > reduced.shape[1] and min(reduced.shape[:2]) < 1200
