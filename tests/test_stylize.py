"""Batched device-parallel inference (`eval.inference.batching`, `eval.inference.loading`) and the stylize CLI
(`eval.stylize`), 8 fake CPU devices."""

import jax
import numpy as np
import pytest
from PIL import Image

from eval.inference import loading
from eval.inference.batching import Stylizer
from eval.stylize import cli as stylize, images
from jax_ast import archs, color, imageio, parallel


@pytest.fixture(scope="module")
def adain():
    """Random AdaIN weights through the CLI's own loader (cached there, so the CLI test reuses them)."""
    return loading.load_model("adain", "random", seed=0)


@pytest.fixture(scope="module")
def one_at_a_time(adain):
    """Reference: the model applied to one (content, style) pair at a time, jitted once for all tests."""
    model, variables = adain
    apply = jax.jit(lambda c, s: model.apply(variables, c, s)[0])
    return lambda contents, styles: np.concatenate([np.asarray(apply(c[None], s[None]))
                                                    for c, s in zip(contents, styles)])


@pytest.fixture(scope="module")
def stylizer(adain):
    """One Stylizer shared by the tests below, so equal shapes are compiled once for all of them."""
    return Stylizer(*adain)


def _images(count, height, width, seed):
    return np.random.default_rng(seed).random((count, height, width, 3), dtype=np.float32)


def _assert_close(actual, expected):
    """Equal up to float32 rounding (batch size changes the conv summation order)."""
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


# ------------------------------------------------------------------------------------------------ helpers

def test_pad_to_multiple_repeats_the_last_row_and_masks_it():
    batch = {"a": np.arange(5.0)[:, None] * np.ones((5, 2)), "b": np.arange(5)}
    padded, mask = parallel.pad_to_multiple(batch, 8)
    assert padded["a"].shape == (8, 2) and padded["b"].shape == (8,)
    np.testing.assert_array_equal(mask, [True] * 5 + [False] * 3)
    np.testing.assert_array_equal(padded["b"], [0, 1, 2, 3, 4, 4, 4, 4])
    same, full_mask = parallel.pad_to_multiple(np.ones((8, 3)), 4)
    assert same.shape == (8, 3) and full_mask.all()
    with pytest.raises(ValueError, match="same non-zero leading size"):
        parallel.pad_to_multiple({"a": np.ones((2, 1)), "b": np.ones((3, 1))}, 2)


def test_split_and_merge_for_devices_round_trip():
    batch = np.arange(8 * 3 * 2).reshape(8, 3, 2)
    split = parallel.shard(batch, 4)
    assert split.shape == (4, 2, 3, 2)
    np.testing.assert_array_equal(parallel.unshard(split), batch)
    with pytest.raises(ValueError, match="pad it first"):
        parallel.shard(batch[:5], 4)


# ------------------------------------------------------------------------------------------------ Stylizer

def test_batches_not_divisible_by_devices_match_one_at_a_time(adain, one_at_a_time):
    assert jax.local_device_count() == 8
    contents, styles = _images(11, 24, 32, seed=1), _images(11, 32, 32, seed=2)
    expected = one_at_a_time(contents, styles)
    assert np.abs(expected).max() > 0  # not a vacuous comparison of zeros
    stylizer = Stylizer(*adain, batch_size=3)
    assert stylizer.step_size == 8  # rounded up to the device count
    for count in (11, 5, 1):  # two steps (8 + 3 padded), one padded step, a single image
        result = stylizer.stylize(contents[:count], styles[:count])
        assert result.shape == (count, 24, 32, 3)
        _assert_close(result, expected[:count])
    assert stylizer.trace_counts["stylize"] == 1  # one compilation for every call of this shape
    stylizer.stylize(_images(2, 16, 24, seed=3), _images(2, 32, 32, seed=4))
    assert stylizer.trace_counts["stylize"] == 2  # a new input shape compiles once more


def test_pairs_are_batched_by_shape_with_each_style_encoded_once(stylizer, one_at_a_time):
    contents = [*_images(2, 24, 32, seed=5), _images(1, 16, 24, seed=6)[0]]
    styles = list(_images(2, 32, 32, seed=7))
    encodes, codes_traced = stylizer.trace_counts["encode"], stylizer.trace_counts["code"]
    codes = stylizer.encode_many(styles)
    assert stylizer.trace_counts["encode"] - encodes <= 1  # both styles in one batch of one shape
    pairs = [(c, s) for c in range(3) for s in range(2)]
    results = {}
    for positions, stylized in stylizer.stylize_pairs(contents, codes, pairs):
        assert not isinstance(stylized, Exception)
        results.update({pairs[p]: image for p, image in zip(positions, stylized)})
    assert sorted(results) == pairs
    assert stylizer.trace_counts["code"] - codes_traced <= 2  # one per content shape
    for (c, s), image in results.items():
        _assert_close(image, one_at_a_time([contents[c]], [styles[s]])[0])


# ---------------------------------------------------------------------------------------------------- CLI

def _save(path, height, width, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((_images(1, height, width, seed)[0] * 255).astype(np.uint8)).save(path)
    return path


def test_cli_end_to_end_with_a_bad_file(tmp_path, capsys):
    _save(tmp_path / "content" / "city.png", 32, 40, seed=10)
    _save(tmp_path / "content" / "cat.jpg", 24, 48, seed=11)
    (tmp_path / "content" / "broken.jpg").write_text("not really a jpeg")
    _save(tmp_path / "style" / "wave.png", 32, 32, seed=12)
    _save(tmp_path / "style" / "scream.png", 32, 32, seed=13)
    out = tmp_path / "out"
    status = stylize.main(["--arch", "adain", "--checkpoint", "random", "--content", str(tmp_path / "content"),
                           "--style", str(tmp_path / "style"), "--out", str(out), "--size", "0",
                           "--batch-size", "3", "--no-progress"])
    captured = capsys.readouterr()
    assert status == 0
    assert sorted(p.name for p in out.iterdir()) == ["cat__scream.png", "cat__wave.png", "city__scream.png",
                                                     "city__wave.png"]
    for name, size in (("cat", (48, 24)), ("city", (40, 32))):
        for style in ("wave", "scream"):
            assert Image.open(out / f"{name}__{style}.png").size == size
    assert "written: 4" in captured.out and "broken.jpg" in captured.out and "not a recognised" in captured.out
    assert "RANDOM weights" in captured.err and "broken.jpg" in captured.err


def test_cli_unknown_arch_lists_valid_names(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        stylize.main(["--arch", "wct", "--checkpoint", "random", "--content", str(tmp_path), "--style",
                      str(tmp_path), "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert "unknown --arch 'wct'; valid choices: adain, sanet, linear, magenta" in capsys.readouterr().err


def test_cli_missing_paths_exit_2(tmp_path, capsys):
    style = _save(tmp_path / "s.png", 24, 24, seed=14)
    with pytest.raises(SystemExit) as exit_info:
        stylize.main(["--arch", "adain", "--checkpoint", "random", "--content", str(tmp_path / "nope"),
                      "--style", str(style), "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2 and "--content" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        stylize.main(["--arch", "adain", "--checkpoint", str(tmp_path / "weights"), "--content", str(style),
                      "--style", str(style), "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2 and "vgg_normalised.pth + decoder.pth" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["coral", "luminance"])
def test_preserve_color_and_style_encoded_once(stylizer, one_at_a_time, tmp_path, monkeypatch, method):
    encoded = []  # every style batch the run encodes
    encode = stylizer.encode_styles
    monkeypatch.setattr(stylizer, "encode_styles", lambda styles: encoded.append(styles) or encode(styles))
    content_paths = [_save(tmp_path / f"c{i}.png", 24, 32, seed=20 + i) for i in range(3)]
    style_path = _save(tmp_path / "s.png", 32, 32, seed=30)
    options = images.Options(out_dir=tmp_path / "out", preserve_color=method, size=None, style_size=None,
                              progress=False)
    summary = images.stylize_all(stylizer, content_paths, [style_path], options)
    assert [p.name for p in summary.written] == [f"c{i}__s.png" for i in range(3)] and not summary.skipped
    encoded = np.concatenate(encoded)
    style = imageio.load_image(style_path)
    contents = [imageio.load_image(p) for p in content_paths]
    if method == "coral":  # the style is recoloured to each content before it is encoded
        assert encoded.shape == (3, 32, 32, 3)
        for content in contents:
            assert min(np.abs(row - color.coral(style, content)).max() for row in encoded) < 1e-6
    else:  # the plain style is encoded once for all contents; the output keeps the content's chroma
        np.testing.assert_array_equal(encoded, style[None])
        expected = color.preserve_luminance(one_at_a_time([contents[1]], [style])[0], contents[1])
        written = imageio.load_image(summary.written[1])
        assert written.max() > 0.1
        np.testing.assert_allclose(written, np.clip(expected, 0, 1), atol=1.01 / 255)


def test_release_directory_picks_the_latest_iteration(tmp_path):
    for name in ("decoder_iter_5000.pth", "decoder_iter_500000.pth", "decoder_iter_60000.pth"):
        (tmp_path / name).write_bytes(b"")
    assert archs.find_file(tmp_path, ("decoder_iter_*.pth",), "decoder").name == "decoder_iter_500000.pth"
    with pytest.raises(FileNotFoundError, match="no transform file.*found: decoder_iter_5000.pth"):
        archs.find_file(tmp_path, ("transformer_iter_*.pth",), "transform")


def _flat(tree, prefix=()):
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flat(sub, prefix + (key,)).items()}
    return {prefix: np.asarray(tree)}


def test_native_params_file_round_trip(adain, tmp_path):
    from jax_ast.pretrained import save_params
    _, variables = adain
    path = save_params(tmp_path / "adain.npz", jax.device_get(variables), meta={"arch": "adain"})
    _, loaded = loading.load_model("adain", str(path))
    expected, actual = _flat(jax.device_get(variables)), _flat(loaded)
    assert expected.keys() == actual.keys()
    assert all(np.array_equal(expected[k], actual[k]) for k in expected)
    with pytest.raises(loading.CheckpointError, match="holds params for arch 'adain', not 'sanet'"):
        loading.load_model("sanet", str(path))


def test_release_directory_in_the_original_format(adain, tmp_path):
    """vgg_normalised.pth + decoder.pth written with torch from the random variables, read back exactly."""
    torch = pytest.importorskip("torch")
    from jax_ast.pretrained.adain import decoder_table, encoder_table
    _, variables = adain
    params = jax.device_get(variables["params"])
    for file_name, subtree, table in (("vgg_normalised.pth", "encoder", encoder_table("conv4_1")[0]),
                                      ("decoder.pth", "decoder", decoder_table())):
        state = {}
        for flax_path, (torch_key, kind) in table.items():
            value = np.asarray(_flat(params[subtree])[flax_path])
            state[torch_key] = torch.from_numpy((value.transpose(3, 2, 0, 1) if kind == "conv" else value).copy())
        torch.save(state, tmp_path / file_name)
    _, loaded = loading.load_model("adain", str(tmp_path))
    expected, actual = _flat(params), _flat(jax.device_get(loaded["params"]))
    assert expected.keys() == actual.keys()
    assert all(np.array_equal(expected[k], actual[k]) for k in expected)
    (tmp_path / "decoder.pth").unlink()
    with pytest.raises(loading.CheckpointError, match="no decoder file"):
        loading.load_model("adain", str(tmp_path))


def _release_tables(arch):
    """{release file name: (table, collection prefix)} as the importers read them (paths relative to variables)."""
    from jax_ast.pretrained import adain as adain_files, linear as linear_files, magenta as magenta_files
    from jax_ast.pretrained import sanet as sanet_files

    def under(subtree, table):
        return {("params", subtree, *path): entry for path, entry in table.items()}

    if arch == "sanet":
        return {"vgg_normalised.pth": under("encoder", adain_files.encoder_table("conv5_1")[0]),
                "decoder_iter_100.pth": under("decoder", adain_files.decoder_table()),
                "transformer_iter_100.pth": under("transform", sanet_files.transform_table())}
    if arch == "linear":
        return {"vgg_r31.pth": under("encoder", linear_files.encoder_table("r31")),
                "dec_r31.pth": under("decoder", linear_files.decoder_table("r31")),
                "r31.pth": under("transform", linear_files.transform_table())}
    return {"model.npz": magenta_files.magenta_table()}


def _write_release(torch, directory, tables, values):
    """Release files holding `values` (flat {variables path: array}) in the originals' layouts."""
    layouts = {"conv": lambda v: v.transpose(3, 2, 0, 1), "linear": lambda v: v.T,
               "vector": lambda v: v, "hwio": lambda v: v}
    for file_name, table in tables.items():
        state = {key: np.ascontiguousarray(layouts[kind](values[path])) for path, (key, kind) in table.items()}
        if file_name.endswith(".npz"):
            np.savez(directory / file_name, **state)
        else:
            torch.save({key: torch.from_numpy(value) for key, value in state.items()}, directory / file_name)


@pytest.mark.parametrize("arch,config,checkpoint", [
    ("sanet", {}, ""), ("linear", {"variant": "r31"}, ""), ("magenta", {}, "model.npz")])
def test_every_release_importer_gives_model_and_variables(arch, config, checkpoint, tmp_path):
    """All archs load through one path: load_<arch>(*files, **config) -> (model, float32 variables)."""
    torch = pytest.importorskip("torch")
    from jax_ast.archs import build
    reference = build(arch, **config)
    probe = jax.ShapeDtypeStruct((1, loading.PROBE_SIZE, loading.PROBE_SIZE, 3), np.float32)
    shapes = jax.eval_shape(reference.init, jax.random.key(0), probe, probe)
    rng = np.random.default_rng(0)
    values = {tuple(key.key for key in path): rng.standard_normal(leaf.shape).astype(np.float32)
              for path, leaf in jax.tree_util.tree_leaves_with_path(shapes)}
    _write_release(torch, tmp_path, _release_tables(arch), values)
    model, variables = loading.load_model(arch, str(tmp_path / checkpoint), **config)
    assert model == reference
    loaded = _flat(variables)
    assert loaded.keys() == values.keys()
    assert all(loaded[k].dtype == np.float32 and np.array_equal(loaded[k], values[k]) for k in values)
