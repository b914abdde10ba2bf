"""Weights boundary: .pth reader (zip + legacy), name tables/conversion, cache/download, native format."""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from collections import OrderedDict

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jax_ast.pretrained import convert  # noqa: E402
from jax_ast.pretrained.convert import WeightsError, torch_to_flax  # noqa: E402
from jax_ast.pretrained.torch_format import read_state_dict  # noqa: E402

FORMATS = {"zip": True, "legacy": False}


def _save(obj, path, fmt):
    torch.save(obj, path, _use_new_zipfile_serialization=FORMATS[fmt])
    return path


def _assert_same(loaded, reference):
    assert sorted(loaded) == sorted(reference)
    for key, tensor in reference.items():
        expected = tensor.detach().float().numpy() if tensor.is_floating_point() else tensor.numpy()
        got = loaded[key].astype(np.float32) if tensor.is_floating_point() else loaded[key]
        assert got.shape == tuple(tensor.shape), key
        np.testing.assert_array_equal(got, expected, err_msg=key)


# ------------------------------------------------------------------ torch_format: reading


@pytest.mark.parametrize("fmt", FORMATS)
def test_reads_dtypes_views_and_shared_storage(tmp_path, fmt):
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=gen)
    state = {
        "f32": torch.randn(4, 3, 3, 3, generator=gen),
        "f64": torch.randn(3, generator=gen, dtype=torch.float64),
        "f16": torch.randn(2, 3, generator=gen).half(),
        "bf16": torch.randn(5, generator=gen).bfloat16(),
        "i64": torch.arange(7),
        "i32": torch.arange(-3, 3, dtype=torch.int32),
        "i16": torch.arange(4, dtype=torch.int16),
        "i8": torch.arange(-2, 2, dtype=torch.int8),
        "u8": torch.arange(250, 256, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "transposed": base.t(),  # non-contiguous, shares `base`'s storage
        "offset_slice": base[2:, 1::2],  # storage offset + strides
        "base": base,
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
    }
    loaded = read_state_dict(_save(state, tmp_path / f"w_{fmt}.pth", fmt))
    _assert_same(loaded, state)
    assert loaded["bf16"].dtype.name == "bfloat16" and loaded["i8"].dtype == np.int8
    assert loaded["transposed"].flags.c_contiguous


@pytest.mark.parametrize("fmt", FORMATS)
def test_reads_module_state_dict_and_parameters(tmp_path, fmt):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.BatchNorm2d(8))
    loaded = read_state_dict(_save(model.state_dict(), tmp_path / "m.pth", fmt))
    _assert_same(loaded, model.state_dict())
    params = {"w": torch.nn.Parameter(torch.ones(2, 2))}
    np.testing.assert_array_equal(read_state_dict(_save(params, tmp_path / "p.pth", fmt))["w"], np.ones((2, 2)))


@pytest.mark.parametrize("wrapper", ["state_dict", "model"])
def test_unwraps_and_names_the_wrapper_key(tmp_path, wrapper, caplog):
    state = {"a.weight": torch.ones(2, 3)}
    path = _save({"epoch": 3, wrapper: state, "optimizer": {"lr": 0.1}, "ema": torch.ones(1)},
                 tmp_path / "ckpt.pth", "zip")
    with caplog.at_level(logging.INFO, logger="jax_ast.pretrained.torch_format"):
        loaded = read_state_dict(path)
    _assert_same(loaded, state)
    assert repr(wrapper) in caplog.text


def test_big_endian_zip_archive(tmp_path):
    state = {"w": torch.arange(12, dtype=torch.float32).reshape(3, 4).t(), "i": torch.arange(3)}
    little = _save(state, tmp_path / "little.pth", "zip")
    big = tmp_path / "big.pth"
    with zipfile.ZipFile(little) as src, zipfile.ZipFile(big, "w") as dst:
        dtypes = {"0": np.float32, "1": np.int64}
        for name in src.namelist():
            data = src.read(name)
            if name.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in name:
                data = np.frombuffer(data, dtype=dtypes[name.rsplit("/", 1)[1]]).byteswap().tobytes()
            dst.writestr(name, data)
    _assert_same(read_state_dict(big), state)


class _OldStorage:
    def __init__(self, key, data, view=None):
        self.key, self.data, self.view = key, data, view


class _OldTensor:
    """Pickles like a torch <= 0.3 tensor: `_rebuild_tensor(storage, offset, size, stride)`, no hooks."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride)

    def __reduce__(self):
        return (torch._utils._rebuild_tensor, self.args)


def _write_old_legacy_file(path, obj, roots, *, little_endian=True):
    """A legacy-format file as old torch wrote it, incl. storage views (view_metadata) and byte order."""

    class Pickler(pickle.Pickler):
        def persistent_id(self, item):
            if not isinstance(item, _OldStorage):
                return None
            view = None if item.view is None else (item.view[0], item.view[1], item.view[2])
            return ("storage", torch.FloatStorage, item.key, "cuda:0", item.data.size, view)

    order = "<" if little_endian else ">"
    with open(path, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": little_endian,
                                                      "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            pickle.dump(header, f, protocol=2)
        Pickler(f, protocol=2).dump(obj)
        pickle.dump([root.key for root in roots], f, protocol=2)
        for root in roots:
            f.write(np.array(root.data.size, dtype=order + "i8").tobytes())
            f.write(root.data.astype(order + "f4").tobytes())


@pytest.mark.parametrize("little_endian", [True, False])
def test_reads_old_torch_legacy_files_with_views(tmp_path, little_endian):
    data = np.arange(24, dtype=np.float32)
    root = _OldStorage("140", data)
    view = _OldStorage("140", data[4:16], view=("141", 4, 12))  # a view of elements 4..15 of root storage
    state = OrderedDict([("a.weight", _OldTensor(root, 0, (2, 3, 4), (12, 4, 1))),
                         ("b.weight", _OldTensor(view, 2, (3, 2), (1, 3))),  # strided view into the view
                         ("c.bias", _OldTensor(root, 20, (4,), (1,)))])
    _write_old_legacy_file(tmp_path / "old.pth", state, [root], little_endian=little_endian)
    loaded = read_state_dict(tmp_path / "old.pth")
    np.testing.assert_array_equal(loaded["a.weight"], data.reshape(2, 3, 4))
    np.testing.assert_array_equal(loaded["b.weight"], np.lib.stride_tricks.as_strided(
        data[4 + 2:], shape=(3, 2), strides=(4, 12)))
    np.testing.assert_array_equal(loaded["c.bias"], data[20:])
    assert loaded["a.weight"].dtype == np.float32 and loaded["a.weight"].dtype.isnative


def test_view_outside_its_storage_is_an_error(tmp_path):
    root = _OldStorage("1", np.arange(6, dtype=np.float32))
    _write_old_legacy_file(tmp_path / "bad_view.pth", {"w": _OldTensor(root, 2, (3, 2), (2, 1))}, [root])
    with pytest.raises(WeightsError, match=r"bad_view\.pth: tensor view reaches element 7 of storage 1 with 6"):
        read_state_dict(tmp_path / "bad_view.pth")


# ------------------------------------------------------------------ torch_format: failures


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


@pytest.mark.parametrize("fmt", FORMATS)
def test_refuses_code_execution(tmp_path, fmt, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _save({"w": torch.ones(1), "x": _Evil()}, tmp_path / "evil.pth", fmt)
    with pytest.raises(WeightsError, match=r"refusing to unpickle (posix|nt)\.system from .*evil\.pth: not a plain"):
        read_state_dict(path)
    assert not (tmp_path / "pwned.txt").exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_refuses_whole_pickled_module(tmp_path, fmt):
    path = _save(torch.nn.Conv2d(3, 3, 1), tmp_path / "module.pth", fmt)
    with pytest.raises(WeightsError, match=r"refusing to unpickle torch\.nn\..*module\.pth"):
        read_state_dict(path)


def test_refuses_hand_written_malicious_pickle(tmp_path):
    path = tmp_path / "plain.pth"  # a raw (non-torch) pickle: first object must be the legacy magic
    path.write_bytes(pickle.dumps(_Evil(), protocol=2))
    with pytest.raises(WeightsError, match="refusing to unpickle"):
        read_state_dict(path)


def test_refuses_state_updates_of_the_allowed_stand_ins(tmp_path):
    # GLOBAL torch._utils._rebuild_tensor, then BUILD {"evil": 1} on it: would set an attribute on our function.
    path = tmp_path / "build.pth"
    path.write_bytes(b"\x80\x02ctorch._utils\n_rebuild_tensor\n}X\x04\x00\x00\x00evilK\x01sb.")
    with pytest.raises(WeightsError, match=r"refusing to unpickle a state update of function from .*build\.pth"):
        read_state_dict(path)
    from jax_ast.pretrained import torch_format
    assert not hasattr(torch_format._rebuild_tensor, "evil")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("fraction", [0.3, 0.8, 0.99])
def test_truncated_file_is_one_error_naming_it(tmp_path, fmt, fraction):
    path = _save({"w": torch.randn(64, 64), "b": torch.randn(64)}, tmp_path / "cut.pth", fmt)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(WeightsError, match=r"cut\.pth.*(truncated|corrupt|cut short)"):
        read_state_dict(path)


def test_not_a_state_dict(tmp_path):
    path = _save([torch.ones(1)], tmp_path / "list.pth", "zip")
    with pytest.raises(WeightsError, match=r"list\.pth holds a list, not a state_dict"):
        read_state_dict(path)
    path = _save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pth", "legacy")
    with pytest.raises(WeightsError, match=r"meta\.pth holds a dict with keys \['epoch', 'lr'\] but no tensors"):
        read_state_dict(path)


def test_missing_file_and_foreign_zip(tmp_path):
    with pytest.raises(WeightsError, match="nope.pth does not exist"):
        read_state_dict(tmp_path / "nope.pth")
    np.savez(tmp_path / "arrays.npz", a=np.ones(2))
    with pytest.raises(WeightsError, match="arrays.npz is a zip file without data.pkl"):
        read_state_dict(tmp_path / "arrays.npz")
    (tmp_path / "text.pth").write_text("hello world, definitely not a checkpoint")
    with pytest.raises(WeightsError, match="text.pth"):
        read_state_dict(tmp_path / "text.pth")


# ------------------------------------------------------------------ convert


def _expected(**shapes):
    return {name: {leaf: jax.ShapeDtypeStruct(shape, np.float32) for leaf, shape in leaves.items()}
            for name, leaves in shapes.items()}


def test_torch_to_flax_layouts():
    rng = np.random.default_rng(0)
    shapes = {"c.weight": (8, 3, 3, 5), "c.bias": (8,), "fc.weight": (4, 6), "tf/weights": (3, 3, 2, 7)}
    state = {key: rng.normal(size=shape).astype(np.float32) for key, shape in shapes.items()}
    table = {("conv", "kernel"): ("c.weight", "conv"), ("conv", "bias"): ("c.bias", "vector"),
             ("dense", "kernel"): ("fc.weight", "linear"), ("slim", "kernel"): ("tf/weights", "hwio")}
    expected = _expected(conv={"kernel": (3, 5, 3, 8), "bias": (8,)}, dense={"kernel": (6, 4)},
                         slim={"kernel": (3, 3, 2, 7)})
    params = torch_to_flax(state, table, expected, source="test.pth")
    np.testing.assert_array_equal(params["conv"]["kernel"], state["c.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(params["dense"]["kernel"], state["fc.weight"].T)
    np.testing.assert_array_equal(params["slim"]["kernel"], state["tf/weights"])
    assert params["conv"]["bias"].dtype == np.float32
    assert jax.tree.structure(params) == jax.tree.structure(expected)


def test_torch_to_flax_reports_all_problems_at_once():
    state = {"a.weight": np.zeros((4, 3, 3, 3)), "b.weight": np.zeros((5, 3, 3, 3)), "junk": np.zeros(1),
             "classifier.0.weight": np.zeros((2, 2))}
    table = {("a", "kernel"): ("a.weight", "conv"), ("b", "kernel"): ("b.weight", "conv"),
             ("c", "kernel"): ("c.weight", "conv")}
    expected = _expected(a={"kernel": (3, 3, 3, 4)}, b={"kernel": (3, 3, 3, 4)}, c={"kernel": (1, 1, 3, 3)})
    with pytest.raises(WeightsError) as info:
        torch_to_flax(state, table, expected, source="broken.pth", ignore_prefixes=("classifier.",))
    message = str(info.value)
    assert "broken.pth" in message and message.count("\n") == 0
    assert "missing keys (1): c.weight" in message
    assert "unexpected keys (1): junk" in message
    assert "wrong shapes (1): b.weight (5, 3, 3, 3) -> b/kernel needs (3, 3, 3, 4)" in message
    assert "classifier" not in message


def test_long_key_lists_are_capped():
    state = {f"extra{i}": np.zeros(1) for i in range(40)}
    with pytest.raises(WeightsError, match=r"unexpected keys \(40\): .*\.\.\. and 28 more"):
        torch_to_flax(state, {}, {}, source="many.pth")


def test_vgg_tables_match_documented_indices():
    tv19 = convert.vgg_table("vgg19", "torchvision")
    assert tv19[("conv4_1", "kernel")] == ("features.19.weight", "conv")
    assert tv19[("conv5_4", "bias")] == ("features.34.bias", "vector")
    assert convert.vgg_table("vgg16", "torchvision")[("conv5_1", "kernel")][0] == "features.24.weight"
    normalised = convert.vgg_table("vgg19_normalised", "vgg_normalised", ("encoder",))
    assert {normalised[("encoder", n, "kernel")][0] for n in ("preprocess", "conv1_1", "conv4_1", "conv5_4")} == \
        {"0.weight", "2.weight", "29.weight", "51.weight"}
    indices = sorted(int(key.split(".")[0]) for key, _ in normalised.values())
    assert sorted(set(indices)) == [0, 2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42, 45, 48, 51]
    lst = convert.vgg_table("vgg19_lst", "lst", convs=("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"))
    assert lst[("preprocess", "kernel")][0] == "conv1.weight" and lst[("conv3_1", "bias")][0] == "conv6.bias"
    assert len(lst) == 12
    slim = convert.vgg_table("vgg16_slim", "slim")
    assert slim[("conv3_3", "kernel")] == ("vgg_16/conv3/conv3_3/weights", "hwio")
    with pytest.raises(ValueError, match="unknown VGG layout 'caffe'; choose one of"):
        convert.vgg_table("vgg19", "caffe")


# ------------------------------------------------------------------ load_vgg

from jax_ast import archs  # noqa: E402
from jax_ast.pretrained import cache, load_params, load_vgg, save_params  # noqa: E402
from jax_ast.pretrained.cache import DownloadError, fetch  # noqa: E402
from jax_ast.pretrained.vgg import preprocess_params  # noqa: E402

_VGG19_CONVS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256), (256, 256),
                (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]


def _normalised_state(n_convs: int, *, exact_preprocess: bool = True, seed: int = 0) -> dict:
    """`vgg_normalised.pth` state_dict truncated after `n_convs` 3x3 convs (keys at the Sequential indices)."""
    gen = torch.Generator().manual_seed(seed)
    pre = preprocess_params()
    state = {"0.weight": torch.from_numpy(pre["kernel"].transpose(3, 2, 0, 1).copy()) if exact_preprocess
             else torch.randn(3, 3, 1, 1, generator=gen), "0.bias": torch.from_numpy(pre["bias"])}
    indices = (2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42, 45, 48, 51)  # docs/architectures.md, VGG encoders
    for index, (cin, cout) in zip(indices[:n_convs], _VGG19_CONVS):
        state[f"{index}.weight"] = torch.randn(cout, cin, 3, 3, generator=gen) * 0.05
        state[f"{index}.bias"] = torch.randn(cout, generator=gen) * 0.05
    return state


def test_truncated_vgg_normalised_file(tmp_path):
    path = _save(_normalised_state(9), tmp_path / "vgg_normalised.pth", "legacy")  # AdaIN's [:31] slice
    module, params = load_vgg("vgg19_normalised", path, taps=("relu1_1", "relu4_1"))
    assert sorted(params) == ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
                              "conv3_4", "conv4_1", "preprocess"]
    assert params["conv4_1"]["kernel"].shape == (3, 3, 256, 512) and params["conv4_1"]["kernel"].dtype == np.float32
    feats = module.apply({"params": params}, np.zeros((1, 16, 16, 3), np.float32))
    assert feats["relu4_1"].shape == (1, 2, 2, 512)
    with pytest.raises(WeightsError, match=r"vgg_normalised\.pth stops at conv4_1 but the requested taps need up "
                                           r"to conv5_1"):
        load_vgg("vgg19_normalised", path, taps=("relu5_1",))


def test_full_file_loads_into_a_shallow_model(tmp_path):
    path = _save(_normalised_state(16), tmp_path / "vgg_normalised.pth", "zip")
    _, params = load_vgg("vgg19_normalised", path, taps=("relu2_1",))
    assert sorted(params) == ["conv1_1", "conv1_2", "conv2_1", "preprocess"]


def test_load_vgg_reports_missing_extra_and_misshaped_keys_together(tmp_path):
    state = _normalised_state(3)
    del state["5.bias"]
    state["9.weight"] = torch.zeros(128, 64, 1, 1)
    state["extra.weight"] = torch.zeros(1)
    path = _save(state, tmp_path / "broken.pth", "zip")
    with pytest.raises(WeightsError) as info:
        load_vgg("vgg19_normalised", path, taps=("relu2_1",))
    message = str(info.value)
    assert "broken.pth" in message
    assert "missing keys (1): 5.bias" in message
    assert "unexpected keys (1): extra.weight" in message
    assert "wrong shapes (1): 9.weight (128, 64, 1, 1) -> conv2_1/kernel needs (3, 3, 64, 128)" in message


def test_wrong_variant_for_the_file_says_which_layout_it_looks_like(tmp_path):
    path = _save({"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64)},
                 tmp_path / "vgg19-dcbb9e9d.pth", "zip")
    with pytest.raises(WeightsError, match=r"no 'vgg_normalised'-layout VGG weights .*looks like the 'torchvision' "
                                           r"layout, i\.e\. variant vgg16 or vgg19"):
        load_vgg("vgg19_normalised", path, taps=("relu1_1",))


def test_unexpected_preprocess_conv_warns(tmp_path):
    path = _save(_normalised_state(1, exact_preprocess=False), tmp_path / "odd.pth", "zip")
    with pytest.warns(UserWarning, match=r"odd\.pth: the 1x1 preprocess conv is not the expected"):
        load_vgg("vgg19_normalised", path, taps=("relu1_1",))


def test_unknown_variant_and_taps():
    with pytest.raises(ValueError, match=r"unknown VGG variant 'vgg13'; choose one of \['vgg16', 'vgg16_caffe'"):
        load_vgg("vgg13", "random")
    with pytest.raises(ValueError, match=r"unknown taps \['relu5_4'\] for vgg16; valid taps"):
        load_vgg("vgg16", "random", taps=("relu5_4",))


def test_random_weights_are_loud_seeded_and_scaled(caplog):
    with pytest.warns(UserWarning, match="RANDOMLY INITIALISED VGG"), caplog.at_level(logging.WARNING):
        module, params = load_vgg("vgg19_lst", "random", taps=("relu1_2",), seed=3)
    assert "RANDOMLY INITIALISED" in caplog.text
    np.testing.assert_array_equal(params["preprocess"]["kernel"], preprocess_params()["kernel"])
    feats = module.apply({"params": params}, np.full((1, 8, 8, 3), 0.5, np.float32))
    assert feats["relu1_2"].shape == (1, 8, 8, 64) and float(feats["relu1_2"].max()) > 0
    with pytest.warns(UserWarning):
        _, again = load_vgg("vgg19_lst", "random", taps=("relu1_2",), seed=3)
        _, other = load_vgg("vgg19_lst", "random", taps=("relu1_2",), seed=4)
    np.testing.assert_array_equal(params["conv1_2"]["kernel"], again["conv1_2"]["kernel"])
    assert not np.array_equal(params["conv1_2"]["kernel"], other["conv1_2"]["kernel"])
    # RGB white (1, 1, 1) through the preprocess map gives BGR 255 - Caffe mean.
    pre = preprocess_params()
    bgr = np.ones(3) @ pre["kernel"][0, 0] + pre["bias"]
    np.testing.assert_allclose(bgr, [255 - 103.939, 255 - 116.779, 255 - 123.68], rtol=1e-6)


def test_default_weights_come_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("JAX_AST_CACHE", str(tmp_path))
    with pytest.raises(DownloadError, match=r"vgg_r31\.pth .*Google Drive.*" + str(tmp_path / "vgg_r31.pth")):
        load_vgg("vgg19_lst", taps=("relu3_1",))
    _save(_normalised_state(2), tmp_path / "vgg_normalised.pth", "zip")
    _, params = load_vgg("vgg19_normalised", taps=("relu1_2",))
    assert sorted(params) == ["conv1_1", "conv1_2", "preprocess"]
    with pytest.raises(WeightsError, match="LinearTransfer encoder files stop at relu5_1.*pass taps up to relu3_1"):
        load_vgg("vgg19_lst")
    # Magenta's loss network defaults to the ImageNet VGG-16 installed with jax-ast (RGB order), never a download.
    _, slim = load_vgg("vgg16_slim", taps=("relu1_1",))
    assert float(slim["conv1_1"]["kernel"][0, 0, 2, 0]) == pytest.approx(0.42947057, abs=1e-6)


# ------------------------------------------------------------------ native format


def test_native_round_trip_through_load_vgg(tmp_path):
    path = _save(_normalised_state(3), tmp_path / "vgg_normalised.pth", "zip")
    _, params = load_vgg("vgg19_normalised", path, taps=("relu2_1",))
    native_path = save_params(tmp_path / "vgg.npz", params, meta={"variant": "vgg19_normalised", "source": "test"})
    loaded, meta = load_params(native_path)
    assert meta == {"variant": "vgg19_normalised", "source": "test"}
    assert jax.tree.structure(loaded) == jax.tree.structure(jax.tree.map(np.asarray, params))
    _, reloaded = load_vgg("vgg19_normalised", native_path, taps=("relu1_1",))  # deeper params are dropped
    assert sorted(reloaded) == ["conv1_1", "preprocess"]
    np.testing.assert_array_equal(reloaded["conv1_1"]["kernel"], params["conv1_1"]["kernel"])
    with pytest.raises(WeightsError, match="holds 'vgg19_normalised' VGG params, not 'vgg19_lst'"):
        load_vgg("vgg19_lst", native_path, taps=("relu1_1",))
    assert not list(tmp_path.glob(".*part"))


def test_native_dtypes_no_pickle_and_errors(tmp_path):
    import ml_dtypes

    params = {"a": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": np.ones(2, ml_dtypes.bfloat16),
              "n": np.arange(3, dtype=np.int32)}
    path = save_params(tmp_path / "p.npz", params)
    loaded, meta = load_params(path)
    assert meta == {} and loaded["b"].dtype == ml_dtypes.bfloat16 and loaded["n"].dtype == np.int32
    np.testing.assert_array_equal(loaded["a"]["w"], params["a"]["w"])
    with np.load(path, allow_pickle=False) as data:  # readable by plain numpy without pickle
        assert sorted(data.files) == ["__meta__", "a/w", "b", "n"]
    with pytest.raises(ValueError, match="names must be non-empty strings without '/'"):
        save_params(tmp_path / "bad.npz", {"a/b": np.ones(1)})
    np.savez(tmp_path / "plain.npz", x=np.ones(1))
    with pytest.raises(WeightsError, match="plain.npz is not a jax_ast params file"):
        load_params(tmp_path / "plain.npz")
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(WeightsError, match="p.npz"):
        load_params(path)


# ------------------------------------------------------------------ cache / download


@pytest.fixture
def http_server(tmp_path):
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _only_final_files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_fetch_downloads_verifies_and_caches(tmp_path, monkeypatch, http_server):
    served, base = http_server
    payload = os.urandom(3 << 20)
    (served / "w.pth").write_bytes(payload)
    digest = __import__("hashlib").sha256(payload).hexdigest()
    monkeypatch.setenv("JAX_AST_CACHE", str(tmp_path / "cache"))
    path = fetch("w.pth", url=f"{base}/w.pth", sha256=digest)
    assert path == tmp_path / "cache" / "w.pth" and path.read_bytes() == payload
    (served / "w.pth").unlink()  # second call: served from the cache, no network
    assert fetch("w.pth", url=f"{base}/w.pth") == path
    assert _only_final_files(tmp_path / "cache") == ["w.pth"]


def test_fetch_prints_hash_when_none_is_published(tmp_path, monkeypatch, capsys):
    source = tmp_path / "src.bin"
    source.write_bytes(b"abc")
    monkeypatch.setenv("JAX_AST_CACHE", str(tmp_path / "cache"))
    fetch("abc.pth", url=source.as_uri())
    err = capsys.readouterr().err
    assert "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" in err and "sha256=" in err


def test_fetch_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch, http_server):
    served, base = http_server
    (served / "vgg16-397923af.pth").write_bytes(b"not the real file")
    monkeypatch.setenv("JAX_AST_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DownloadError, match=r"vgg16-397923af\.pth .*sha256 mismatch.*start with 397923af.*"
                                            r"Put a manually downloaded copy at .*cache/vgg16-397923af\.pth"):
        fetch("vgg16-397923af.pth", url=f"{base}/vgg16-397923af.pth")
    (served / "x.pth").write_bytes(b"data")
    with pytest.raises(DownloadError, match="sha256 mismatch: got .*, expected 00ff"):
        fetch("x.pth", url=f"{base}/x.pth", sha256="00ff")
    assert _only_final_files(tmp_path / "cache") == []


def test_fetch_offline_and_http_errors_leave_nothing(tmp_path, monkeypatch, http_server):
    _, base = http_server
    monkeypatch.setenv("JAX_AST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(cache.REGISTRY, "decoder.pth",
                        cache.RemoteFile("http://127.0.0.1:9/decoder.pth", note="unreachable for the test"))
    with pytest.raises(DownloadError, match=r"could not get weights file decoder\.pth from http://127\.0\.0\.1:9/"
                                            r"decoder\.pth: URLError.*Put a manually downloaded copy at "):
        fetch("decoder.pth")
    with pytest.raises(DownloadError, match="HTTPError.*404"):
        fetch("missing.pth", url=f"{base}/missing.pth")
    assert _only_final_files(tmp_path / "cache") == []


def test_fetch_unknown_name_and_manual_only_files(tmp_path, monkeypatch):
    monkeypatch.setenv("JAX_AST_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match=r"unknown weights file 'nope.pth'; known files: .*vgg19-dcbb9e9d\.pth"):
        fetch("nope.pth")
    archs.get("linear")  # its plug-in declares its release files (`Architecture.downloads`)
    with pytest.raises(DownloadError, match=r"dec_r41\.pth \(no direct download URL is known\).*drive\.google\.com"):
        fetch("dec_r41.pth")


# ------------------------------------------------------------------ lazy importer re-exports

def test_importers_are_reexported_lazily():
    """`import jax_ast.pretrained` imports no network model; `pretrained.load_<arch>` is the module's own."""
    import subprocess
    import sys

    arch_modules = [f"jax_ast.{package}.{arch}" for package in ("models", "pretrained")
                    for arch in ("adain", "sanet", "linear", "magenta")]
    probe = (f"import sys, jax_ast.pretrained as p; print(sorted(m for m in {arch_modules!r} if m in sys.modules)); "
             "p.load_sanet; print(sorted(m for m in ('jax_ast.models.sanet', 'jax_ast.models.linear') "
             "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.stdout.split("\n")[:2] == ["[]", "['jax_ast.models.sanet']"]

    import jax_ast.pretrained as pretrained
    from jax_ast.pretrained import load_linear  # the `from` form goes through __getattr__ too

    for arch in ("adain", "sanet", "linear", "magenta"):
        module = __import__(f"jax_ast.pretrained.{arch}", fromlist=["_"])
        assert getattr(pretrained, f"load_{arch}") is getattr(module, f"load_{arch}")
        assert f"load_{arch}" in pretrained.__all__ and f"load_{arch}" in dir(pretrained)
    assert load_linear is pretrained.linear.load_linear
    with pytest.raises(AttributeError, match="has no attribute 'load_vgg19'"):
        pretrained.load_vgg19
