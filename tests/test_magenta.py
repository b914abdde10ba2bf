"""Magenta (Ghiasi et al. 2017): parity with a torch reference written from the TF originals, properties.

The reference below is written from magenta's `nza_model.transform`, `image_stylization/model.py`
(`conv2d`, `residual_block`, `upsampling`), `ops.conditional_style_norm`, `build_model.style_prediction`
and tf-slim's `inception_v3_base`, block by block, in torch (float64, NCHW). Like TF's `get_variable`,
it creates each variable under its ORIGINAL TF name the first time the forward pass asks for it; the
resulting dict is saved as an `.npz` and read back through the real importer (`load_magenta`). The npz
path is used, not a TF checkpoint, because tensorflow (a ~2 GB install) is not a test dependency.
"""

from __future__ import annotations

import itertools
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jax_ast.archs import build
from jax_ast.models import split_trainable
from jax_ast.models.inception import MIN_INPUT_SIZE, InceptionV3, avg_pool_same, feature_size, tf_same_padding
from jax_ast.models.magenta import Magenta, conditional_style_norm
from jax_ast.pretrained.convert import WeightsError
from jax_ast.pretrained.magenta import (checkpoint_to_npz, inception_from_torchvision, load_inception_v3,
                                        load_magenta, magenta_table, torchvision_inception_modules, with_inception)

RTOL = 1e-4


class VarStore:
    """TF-style variable creation: a name is created (random) on first use, with the shape asked for."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.values: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        if name not in self.values:
            leaf = name.rsplit("/", 1)[-1]
            if leaf == "weights":
                value = self.rng.normal(0.0, 1.0 / np.sqrt(np.prod(shape[:-1])), shape)
            elif leaf == "moving_variance":
                value = self.rng.uniform(0.5, 2.0, shape)
            elif leaf == "gamma":
                value = self.rng.uniform(-1.5, 1.5, shape)
            else:  # beta, moving_mean, biases
                value = self.rng.normal(0.0, 0.1, shape)
            self.values[name] = value.astype(np.float32)
        assert self.values[name].shape == shape, name
        return torch.from_numpy(self.values[name]).double()


class Reference:
    """The TF graph in torch; `train` selects batch statistics in every BatchNorm."""

    def __init__(self, store: VarStore, train: bool = False, with_gamma: bool = False):
        self.store, self.train, self.with_gamma, self.batch_means = store, train, with_gamma, {}

    def batch_norm(self, x, scope, eps):
        channels = x.shape[1]
        if self.train:
            mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
            self.batch_means[scope] = mean
        else:
            mean = self.store.get(f"{scope}/BatchNorm/moving_mean", (channels,))
            var = self.store.get(f"{scope}/BatchNorm/moving_variance", (channels,))
        gamma = self.store.get(f"{scope}/BatchNorm/gamma", (channels,)) if self.with_gamma else 1.0
        inv = gamma / torch.sqrt(var + eps)
        beta = self.store.get(f"{scope}/BatchNorm/beta", (channels,))
        return x * inv[:, None, None] + (beta - mean * inv)[:, None, None]

    def conv(self, x, scope, depth, kernel, stride=1):
        weights = self.store.get(f"{scope}/weights", (*kernel, x.shape[1], depth))  # HWIO
        return F.conv2d(x, weights.permute(3, 2, 0, 1), stride=stride)

    # --- Inception-v3 base (slim), ReLU6, eps 1e-3; SAME only ever with stride 1 and odd kernels here
    def unit(self, x, scope, depth, kernel, stride=1, padding="SAME"):
        if padding == "SAME":
            assert stride == 1
            x = F.pad(x, (kernel[1] // 2, kernel[1] // 2, kernel[0] // 2, kernel[0] // 2))
        return torch.clamp(self.batch_norm(self.conv(x, scope, depth, kernel, stride), scope, 1e-3), 0.0, 6.0)

    def avg_pool(self, x):
        return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)

    def chain(self, x, prefix, units):
        for name, depth, kernel in units:
            x = self.unit(x, f"{prefix}/{name}", depth, kernel)
        return x

    def mixed_5(self, x, block, branch1, pool_depth):
        p = f"InceptionV3/{block}"
        b0 = self.unit(x, f"{p}/Branch_0/Conv2d_0a_1x1", 64, (1, 1))
        b1 = self.chain(x, f"{p}/Branch_1", [(branch1[0], 48, (1, 1)), (branch1[1], 64, (5, 5))])
        b2 = self.chain(x, f"{p}/Branch_2", [("Conv2d_0a_1x1", 64, (1, 1)), ("Conv2d_0b_3x3", 96, (3, 3)),
                                             ("Conv2d_0c_3x3", 96, (3, 3))])
        b3 = self.unit(self.avg_pool(x), f"{p}/Branch_3/Conv2d_0b_1x1", pool_depth, (1, 1))
        return torch.cat([b0, b1, b2, b3], 1)

    def mixed_6(self, x, block, c):
        p = f"InceptionV3/{block}"
        b0 = self.unit(x, f"{p}/Branch_0/Conv2d_0a_1x1", 192, (1, 1))
        b1 = self.chain(x, f"{p}/Branch_1", [("Conv2d_0a_1x1", c, (1, 1)), ("Conv2d_0b_1x7", c, (1, 7)),
                                             ("Conv2d_0c_7x1", 192, (7, 1))])
        b2 = self.chain(x, f"{p}/Branch_2", [("Conv2d_0a_1x1", c, (1, 1)), ("Conv2d_0b_7x1", c, (7, 1)),
                                             ("Conv2d_0c_1x7", c, (1, 7)), ("Conv2d_0d_7x1", c, (7, 1)),
                                             ("Conv2d_0e_1x7", 192, (1, 7))])
        b3 = self.unit(self.avg_pool(x), f"{p}/Branch_3/Conv2d_0b_1x1", 192, (1, 1))
        return torch.cat([b0, b1, b2, b3], 1)

    def inception(self, x):
        x = self.unit(x, "InceptionV3/Conv2d_1a_3x3", 32, (3, 3), 2, "VALID")
        x = self.unit(x, "InceptionV3/Conv2d_2a_3x3", 32, (3, 3), 1, "VALID")
        x = F.max_pool2d(self.unit(x, "InceptionV3/Conv2d_2b_3x3", 64, (3, 3)), 3, 2)
        x = self.unit(x, "InceptionV3/Conv2d_3b_1x1", 80, (1, 1), 1, "VALID")
        x = F.max_pool2d(self.unit(x, "InceptionV3/Conv2d_4a_3x3", 192, (3, 3), 1, "VALID"), 3, 2)
        x = self.mixed_5(x, "Mixed_5b", ("Conv2d_0a_1x1", "Conv2d_0b_5x5"), 32)
        x = self.mixed_5(x, "Mixed_5c", ("Conv2d_0b_1x1", "Conv_1_0c_5x5"), 64)
        x = self.mixed_5(x, "Mixed_5d", ("Conv2d_0a_1x1", "Conv2d_0b_5x5"), 64)
        p = "InceptionV3/Mixed_6a"
        b0 = self.unit(x, f"{p}/Branch_0/Conv2d_1a_1x1", 384, (3, 3), 2, "VALID")
        b1 = self.chain(x, f"{p}/Branch_1", [("Conv2d_0a_1x1", 64, (1, 1)), ("Conv2d_0b_3x3", 96, (3, 3))])
        b1 = self.unit(b1, f"{p}/Branch_1/Conv2d_1a_1x1", 96, (3, 3), 2, "VALID")
        x = torch.cat([b0, b1, F.max_pool2d(x, 3, 2)], 1)
        for block, c in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
            x = self.mixed_6(x, block, c)
        return x

    # --- style prediction: spatial mean, bottleneck `Conv`, per-site `Conv` (beta) / `Conv_1` (gamma)
    def dense(self, x, scope, depth):
        weights = self.store.get(f"{scope}/weights", (1, 1, x.shape[1], depth))[0, 0]
        return x @ weights + self.store.get(f"{scope}/biases", (depth,))

    def style_code(self, style):
        return self.dense(self.inception(style).mean((2, 3)), "Conv", 100)

    # --- transformer: reflect pad k//2 + VALID conv; contract BN (eps 1e-3); CSN (biased var, eps 1e-5)
    def reflect_conv(self, x, scope, depth, k, stride=1):
        return self.conv(F.pad(x, (k // 2,) * 4, mode="reflect"), scope, depth, (k, k), stride)

    def csn(self, x, scope, code):
        site = f"style_params/{scope}/StyleNorm"
        beta, gamma = self.dense(code, f"{site}/Conv", x.shape[1]), self.dense(code, f"{site}/Conv_1", x.shape[1])
        mean, var = x.mean((2, 3), keepdim=True), x.var((2, 3), unbiased=False, keepdim=True)
        return gamma[:, :, None, None] * (x - mean) / torch.sqrt(var + 1e-5) + beta[:, :, None, None]

    def transform(self, content, code):
        h = content
        for i, (depth, k, stride) in enumerate(((32, 9, 1), (64, 3, 2), (128, 3, 2)), 1):
            scope = f"transformer/contract/conv{i}"
            h = torch.relu(self.batch_norm(self.reflect_conv(h, scope, depth, k, stride), scope, 1e-3))
        for r in range(1, 6):
            scope = f"transformer/residual/residual{r}"
            h1 = torch.relu(self.csn(self.reflect_conv(h, f"{scope}/conv1", 128, 3), f"{scope}/conv1", code))
            h = h + self.csn(self.reflect_conv(h1, f"{scope}/conv2", 128, 3), f"{scope}/conv2", code)
        for e, (depth, k, factor) in enumerate(((64, 3, 2), (32, 3, 2), (3, 9, 1)), 1):
            scope = f"transformer/expand/conv{e}/conv"
            h = F.interpolate(h, scale_factor=factor, mode="nearest") if factor > 1 else h
            h = self.csn(self.reflect_conv(h, scope, depth, k), scope, code)
            h = torch.sigmoid(h) if e == 3 else torch.relu(h)
        return h


def to_torch(images):
    return torch.from_numpy(np.asarray(images, np.float64)).permute(0, 3, 1, 2)


def to_nhwc(tensor):
    return tensor.permute(0, 2, 3, 1).numpy()


def assert_close(actual, expected, what):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = np.max(np.abs(expected))
    err = np.max(np.abs(actual - expected))
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    assert err <= RTOL * scale, f"{what}: max abs err {err:.3g} > {RTOL} * {scale:.3g}"
    return err / scale


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return {"content": rng.uniform(0, 1, (2, 37, 45, 3)).astype(np.float32),
            "style": rng.uniform(0, 1, (2, 75, 91, 3)).astype(np.float32),  # Mixed_6e: 3x4, Mixed_5*: 7x9
            "square": rng.uniform(0, 1, (1, 45, 47, 3)).astype(np.float32)}


@pytest.fixture(scope="module")
def released(tmp_path_factory, images):
    """Reference outputs and the npz the reference's variables were saved to (plus ignorable extras)."""
    store = VarStore(seed=1)
    reference = Reference(store)
    code = reference.style_code(to_torch(images["style"]))
    stylized = reference.transform(to_torch(images["content"]), code)
    extras = {"vgg_16/conv1/conv1_1/weights": np.zeros((3, 3, 3, 64), np.float32), "global_step": np.int64(7),
              "transformer/contract/conv1/weights/Adam": np.zeros((9, 9, 3, 32), np.float32),
              "beta1_power": np.float32(0.9)}
    path = tmp_path_factory.mktemp("magenta") / "model.npz"
    np.savez(path, **store.values, **extras)
    model, variables = load_magenta(path)
    return {"store": store, "path": path, "code": code.numpy(), "stylized": to_nhwc(stylized),
            "model": model, "variables": variables}


def test_checkpoint_table_matches_section_10():
    names = [key for key, _ in magenta_table().values()]
    assert len(names) == len(set(names)) == 359
    counts = {prefix: sum(n.startswith(prefix) for n in names) for prefix in
              ("InceptionV3/", "Conv/", "style_params/", "transformer/contract/", "transformer/residual/",
               "transformer/expand/")}
    assert counts == {"InceptionV3/": 280, "Conv/": 2, "style_params/": 52, "transformer/contract/": 12,
                      "transformer/residual/": 10, "transformer/expand/": 3}
    for name in ("Conv/weights", "InceptionV3/Mixed_5c/Branch_1/Conv_1_0c_5x5/BatchNorm/moving_variance",
                 "style_params/transformer/expand/conv3/conv/StyleNorm/Conv_1/biases",
                 "transformer/expand/conv3/conv/weights", "transformer/residual/residual5/conv2/weights"):
        assert name in names


def test_parity_inference(released, images):
    model, variables = released["model"], released["variables"]
    assert isinstance(model, Magenta) and model.bottleneck == 100
    assert {"params": {"style_predictor", "style_params", "transformer"},
            "batch_stats": {"style_predictor", "transformer"}} == {k: set(v) for k, v in variables.items()}
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(variables)} == {jnp.dtype(jnp.float32)}
    stylized, aux = model.apply(variables, jnp.asarray(images["content"]), jnp.asarray(images["style"]))
    rel_code = assert_close(aux["style_embedding"], released["code"], "style code")
    rel_out = assert_close(stylized, released["stylized"][:, :37, :45], "stylized")
    print(f"magenta inference parity: rel err code {rel_code:.2e}, stylized {rel_out:.2e}")


def test_parity_train_mode_batch_statistics(released, images):
    reference = Reference(released["store"], train=True)
    code = reference.style_code(to_torch(images["style"]))
    expected = to_nhwc(reference.transform(to_torch(images["content"]), code))
    model = Magenta()
    (stylized, aux), updates = model.apply(released["variables"], jnp.asarray(images["content"]),
                                           jnp.asarray(images["style"]), train=True, mutable=["batch_stats"])
    rel_code = assert_close(aux["style_embedding"], code.numpy(), "train-mode style code")
    rel_out = assert_close(stylized, expected[:, :37, :45], "train-mode stylized")
    print(f"magenta train-mode parity: rel err code {rel_code:.2e}, stylized {rel_out:.2e}")
    # Moving averages: m <- 0.999 m + 0.001 batch_mean (contract), 0.9997 / 0.0003 (Inception).
    old = released["store"].values
    for scope, path, decay in (("transformer/contract/conv2", ("transformer", "contract_conv2"), 0.999),
                               ("InceptionV3/Mixed_6e/Branch_3/Conv2d_0b_1x1",
                                ("style_predictor", "InceptionV3", "Mixed_6e", "Branch_3", "Conv2d_0b_1x1"), 0.9997)):
        new = updates["batch_stats"]
        for key in path:
            new = new[key]
        want = decay * old[f"{scope}/BatchNorm/moving_mean"] + (1 - decay) * reference.batch_means[scope].numpy()
        np.testing.assert_allclose(new["BatchNorm"]["mean"], want, rtol=1e-5, atol=1e-6)


def test_output_range_and_odd_sizes(released):
    content = jax.random.uniform(jax.random.key(3), (1, 21, 19, 3))
    style = jax.random.uniform(jax.random.key(4), (1, MIN_INPUT_SIZE, MIN_INPUT_SIZE + 2, 3))
    stylized, _ = Magenta().apply(released["variables"], content, style)
    assert stylized.shape == (1, 21, 19, 3) and stylized.dtype == jnp.float32
    assert float(stylized.min()) >= 0.0 and float(stylized.max()) <= 1.0


def test_alpha_identity_and_code_api(released, images):
    variables, model = released["variables"], Magenta()
    content, style = jnp.asarray(images["square"]), jnp.asarray(images["style"][:1])
    as_itself, aux_self = model.apply(variables, content, content, alpha=1.0)
    identity, aux_zero = model.apply(variables, content, style, alpha=0.0)
    np.testing.assert_allclose(identity, as_itself, atol=1e-6)
    np.testing.assert_allclose(aux_zero["style_embedding"], aux_self["style_embedding"], atol=1e-6)
    half, aux_half = model.apply(variables, content, style, alpha=0.5)
    code = model.apply(variables, style, method=Magenta.encode_style)
    np.testing.assert_allclose(aux_half["style_embedding"], 0.5 * code + 0.5 * aux_self["style_embedding"], atol=1e-6)
    via_code = model.apply(variables, content, code, 0.5, method=Magenta.stylize_with_code)
    with_identity = model.apply(variables, content, code, 0.5, identity_code=aux_self["style_embedding"],
                                method=Magenta.stylize_with_code)
    np.testing.assert_allclose(via_code, half, atol=1e-6)
    np.testing.assert_allclose(with_identity, half, atol=1e-6)
    one_hot = model.apply(variables, content, [content, style], [0.0, 1.0], method=Magenta.stylize_interpolated)
    single, _ = model.apply(variables, content, style)
    np.testing.assert_allclose(one_hot, single, atol=1e-6)
    assert float(jnp.max(jnp.abs(single - identity))) > 1e-3  # the style actually changes the output


def test_conditional_style_norm_statistics():
    feats = jax.random.normal(jax.random.key(5), (2, 6, 7, 4)) * 3.0 + 1.0
    beta = jnp.asarray([[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, -3.0, 0.25]])
    gamma = jnp.asarray([[2.0, 0.5, -1.5, 1.0], [0.1, 3.0, 1.0, -0.7]])
    out = np.asarray(conditional_style_norm(feats, beta, gamma), np.float64)
    var = np.var(np.asarray(feats, np.float64), axis=(1, 2))  # biased, like tf.nn.moments
    np.testing.assert_allclose(out.mean((1, 2)), beta, atol=1e-5)
    np.testing.assert_allclose(out.std((1, 2)), np.abs(gamma) * np.sqrt(var / (var + 1e-5)), rtol=1e-5)


def test_tf_same_padding_and_avg_pool_divisor():
    # TF: output ceil(n/s), total = max((out-1)*s + k - n, 0), total//2 before, the rest after.
    assert tf_same_padding(5, 2, 2) == (0, 1)  # even kernel: the extra pixel goes after
    assert tf_same_padding(6, 3, 2) == (0, 1)  # out 3, total 1
    assert tf_same_padding(7, 7, 1) == (3, 3) and tf_same_padding(4, 1, 1) == (0, 0)
    for size, kernel, stride in itertools.product(range(1, 12), range(1, 8), range(1, 4)):  # = XLA's SAME
        xla_pads = jax.lax.padtype_to_pads((size,), (kernel,), (stride,), "SAME")[0]
        assert tf_same_padding(size, kernel, stride) == tuple(xla_pads)
    x = jnp.arange(20.0).reshape(1, 4, 5, 1)  # rows 0..3, cols 0..4, value = 5 * row + col
    pooled = np.asarray(avg_pool_same(x))[0, :, :, 0]
    assert pooled[0, 0] == pytest.approx((0 + 1 + 5 + 6) / 4)  # corner: 4 real pixels, not 9
    assert pooled[0, 2] == pytest.approx((1 + 2 + 3 + 6 + 7 + 8) / 6)  # top edge: 6
    assert pooled[3, 4] == pytest.approx((13 + 14 + 18 + 19) / 4)
    assert pooled[1, 1] == pytest.approx((0 + 1 + 2 + 5 + 6 + 7 + 10 + 11 + 12) / 9)


def test_minimum_style_size():
    # VALID stem: 43 -> 21 (3x3/2) -> 19 (3x3) -> 19 (SAME) -> 9 (pool 3/2) -> 9 (1x1) -> 7 (3x3) -> 3 (pool)
    # -> Mixed_5*: 3 -> Mixed_6a (3x3/2 VALID): 1. With 42: ... -> 2 (pool) -> Mixed_6a: 0.
    assert MIN_INPUT_SIZE == 43 and feature_size(43) == 1 and feature_size(42) <= 0
    assert feature_size(75) == 3 and feature_size(256) == 14  # 14x14 at the 256 training size (5.4)
    with pytest.raises(ValueError, match="at least 43x43"):
        Magenta().init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 42, 60, 3)))
    with pytest.raises(ValueError, match="content images of at least 5x5"):
        Magenta().init(jax.random.key(0), jnp.zeros((1, 4, 8, 3)), jnp.zeros((1, 43, 43, 3)))


def test_registry_trainable_and_exact_parameter_counts():
    model = build("magenta")
    assert isinstance(model, Magenta)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 43, 43, 3)))
    trainable, frozen = split_trainable(model, shapes["params"])
    assert set(trainable) == {"style_predictor", "style_params", "transformer"} and not frozen
    size = lambda tree: sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(tree))  # noqa: E731
    predictor = shapes["params"]["style_predictor"]
    # Inception to Mixed_6e, kernels + betas (by hand, k*k*Cin*Cout + Cout per conv):
    #   stem 864+9216+18432+5120+138240 + 400 betas = 172,272
    #   Mixed_5b 254,976 + 464 = 255,440; 5c 276,480 + 496 = 276,976; 5d 284,160 + 496 = 284,656
    #   Mixed_6a 995,328+18,432+55,296+82,944 + 640 = 1,152,640
    #   Mixed_6b..6e, inner width c: 294,912 + 4,224c + 28c^2 kernels + 768 + 6c betas:
    #     c=128: 1,295,872; c=160: 1,689,280 (x2); c=192: 2,140,032
    #   total 8,956,448 (kernels 8,947,040 + betas 9,408)
    assert size(predictor["InceptionV3"]) == 8_956_448
    assert size(predictor["Conv"]) == 768 * 100 + 100 == 76_900
    # 13 sites x (beta, gamma) 1x1 convs with bias: 2 * (100 C + C) summed over C = 10*128 + 64 + 32 + 3.
    assert size(shapes["params"]["style_params"]) == 202 * 1379 == 278_558
    # contract 9*9*3*32 + 9*32*64 + 9*64*128 + 224 betas = 100,160; residual 10 * 9*128*128 = 1,474,560;
    # expand 9*128*64 + 9*64*32 + 81*32*3 = 99,936.
    assert size(shapes["params"]["transformer"]) == 100_160 + 1_474_560 + 99_936 == 1_674_656
    # Moving mean + variance of every BN: 2 * (9,408 + 224).
    assert size(shapes["batch_stats"]) == 19_264
    # 10,986,562 trainable + 19,264 statistics = 11,005,826 values, the ~11.0M of section 10.
    assert size(shapes["params"]) + size(shapes["batch_stats"]) == 11_005_826


def test_importer_reports_all_problems(released, tmp_path):
    values = dict(released["store"].values)
    del values["transformer/expand/conv2/conv/weights"]
    values["Conv/biases"] = np.zeros(99, np.float32)
    values["transformer/contract/conv4/weights"] = np.zeros((3, 3, 128, 128), np.float32)
    path = tmp_path / "broken.npz"
    np.savez(path, **values)
    with pytest.raises(WeightsError) as err:
        load_magenta(path)
    message = str(err.value)
    for fragment in ("broken.npz", "transformer/expand/conv2/conv/weights", "Conv/biases",
                     "transformer/contract/conv4/weights"):
        assert fragment in message
    with pytest.raises(WeightsError, match="neither an .npz"):
        load_magenta(tmp_path / "model.ckpt")


def test_tf_checkpoint_reading(released, tmp_path, monkeypatch):
    """The TF-prefix path, with a stand-in for `tensorflow` (not a test dependency) serving the variables."""
    (tmp_path / "model.ckpt.index").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import fails, as without tensorflow
    with pytest.raises(ImportError, match="needs tensorflow"):
        load_magenta(tmp_path / "model.ckpt")
    stored = {**released["store"].values, "vgg_16/conv1/conv1_1/biases": np.zeros(64, np.float32),
              "Conv/weights/Adam_1": np.zeros((1, 1, 768, 100), np.float32)}
    requested = []

    class Reader:
        def get_variable_to_shape_map(self):
            return {name: value.shape for name, value in stored.items()}

        def get_tensor(self, name):
            requested.append(name)
            return stored[name]

    fake_tf = types.SimpleNamespace(train=types.SimpleNamespace(
        load_checkpoint=lambda prefix: Reader() if prefix == str(tmp_path / "model.ckpt") else None))
    monkeypatch.setitem(sys.modules, "tensorflow", fake_tf)
    _, loaded = load_magenta(tmp_path / "model.ckpt")
    jax.tree_util.tree_map(np.testing.assert_array_equal, loaded, released["variables"])
    assert len(requested) == 359  # the loss network and optimizer slots are never read
    checkpoint_to_npz(tmp_path / "model.ckpt", tmp_path / "converted.npz")
    assert sorted(np.load(tmp_path / "converted.npz").files) == sorted(released["store"].values)


def test_inception_checkpoints_slim_and_torchvision(released, images, tmp_path):
    store = released["store"]
    style = jnp.asarray(images["style"][:1])
    # TF-slim ImageNet layout: InceptionV3/... plus the parts after Mixed_6e, which are ignored.
    slim = {k: v for k, v in store.values.items() if k.startswith("InceptionV3/")}
    slim["InceptionV3/Logits/Conv2d_1c_1x1/weights"] = np.zeros((1, 1, 2048, 1001), np.float32)
    np.savez(tmp_path / "inception_v3.npz", **slim)
    inception = load_inception_v3(tmp_path / "inception_v3.npz")
    reference = released["variables"]["params"]["style_predictor"]["InceptionV3"]
    jax.tree_util.tree_map(np.testing.assert_array_equal, inception["params"], reference)
    rebuilt = with_inception(released["variables"], inception)
    np.testing.assert_array_equal(rebuilt["params"]["transformer"]["expand_conv3"]["kernel"],
                                  released["variables"]["params"]["transformer"]["expand_conv3"]["kernel"])
    # torchvision layout with a non-trivial BN gamma, folded into the kernel and the moving mean.
    modules = torchvision_inception_modules()
    assert len(set(modules.values())) == 70
    assert modules[("Mixed_5c", "Branch_1", "Conv2d_0b_1x1")] == "Mixed_5c.branch5x5_1"
    assert modules[("Mixed_6a", "Branch_0", "Conv2d_1a_1x1")] == "Mixed_6a.branch3x3"
    assert modules[("Mixed_6b", "Branch_2", "Conv2d_0c_1x7")] == "Mixed_6b.branch7x7dbl_3"
    reference = Reference(store, with_gamma=True)
    expected = to_nhwc(reference.inception(to_torch(images["style"][:1])))
    state = {"fc.weight": np.zeros((1000, 2048), np.float32), "AuxLogits.conv0.conv.weight": np.zeros((128, 768, 1, 1))}
    for path, module in modules.items():
        scope = "InceptionV3/" + "/".join(path)
        state[f"{module}.conv.weight"] = np.transpose(store.values[f"{scope}/weights"], (3, 2, 0, 1))
        for tf_name, torch_name in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                                    ("moving_variance", "running_var")):
            state[f"{module}.bn.{torch_name}"] = store.values[f"{scope}/BatchNorm/{tf_name}"]
        state[f"{module}.bn.num_batches_tracked"] = np.int64(0)
    torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}, tmp_path / "inception_v3.pth")
    folded = load_inception_v3(tmp_path / "inception_v3.pth")
    rel = assert_close(InceptionV3().apply(folded, style), expected, "torchvision-layout Inception")
    print(f"torchvision Inception (gamma folded) parity: rel err {rel:.2e}")
    del state["Mixed_6e.branch_pool.bn.weight"]
    with pytest.raises(WeightsError, match="Mixed_6e.branch_pool.bn.weight"):
        inception_from_torchvision(state, source="test.pth")
