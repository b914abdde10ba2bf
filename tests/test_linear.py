"""LinearTransfer: parity with torch modules laid out like sunshineatnoon/LinearStyleTransfer, properties.

The torch modules below follow the original's layout and key names (libs/models.py encoder/decoder
with named `convN` attributes, libs/Matrix.py `CNN` with a `convs` Sequential and `fc`, `MulLayer`
with `snet`, `cnet`, `compress`, `unzip`); they are written here from the description in
docs/architectures.md, LinearTransfer, with random weights saved by `torch.save(state_dict)` and read back
through the real importer.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn as tnn

from jax_ast.archs import build
from jax_ast.models import split_trainable
from jax_ast.models.linear import LOSS_NETWORK_TAPS, LinearTransfer, build_linear, loss_network
from jax_ast.pretrained import convert
from jax_ast.pretrained.linear import load_linear, load_linear_encoder5

# ------------------------------------------------------------------------------------------------
# torch reference (LST layout)

# (attribute, in, out) for the 3x3 convs of encoder5 after the 1x1 conv1; "pool" = floor max-pool.
_ENCODER_PLAN = (("conv2", 3, 64), ("conv3", 64, 64), "pool", ("conv4", 64, 128), ("conv5", 128, 128), "pool",
                 ("conv6", 128, 256), ("conv7", 256, 256), ("conv8", 256, 256), ("conv9", 256, 256), "pool",
                 ("conv10", 256, 512), ("conv11", 512, 512), ("conv12", 512, 512), ("conv13", 512, 512), "pool",
                 ("conv14", 512, 512))
_TORCH_TAPS = {"conv2": "relu1_1", "conv4": "relu2_1", "conv6": "relu3_1", "conv10": "relu4_1", "conv14": "relu5_1"}
_DECODER_PLAN = {
    "r41": (("conv11", 512, 256), "up", ("conv12", 256, 256), ("conv13", 256, 256), ("conv14", 256, 256),
            ("conv15", 256, 128), "up", ("conv16", 128, 128), ("conv17", 128, 64), "up", ("conv18", 64, 64),
            ("conv19", 64, 3)),
    "r31": (("conv7", 256, 128), "up", ("conv8", 128, 128), ("conv9", 128, 64), "up", ("conv10", 64, 64),
            ("conv11", 64, 3)),
}
_LAST_ENCODER_CONV = {"r31": "conv6", "r41": "conv10", "r51": "conv14"}


def _plan_until(last: str):
    plan = []
    for step in _ENCODER_PLAN:
        plan.append(step)
        if step != "pool" and step[0] == last:
            return plan
    raise AssertionError(last)


class TorchEncoder(tnn.Module):
    """encoder3/4/5: 1x1 conv1, then reflection pad 1 + 3x3 conv + ReLU, floor 2x2 max-pools."""

    def __init__(self, layer: str):
        super().__init__()
        self.plan = _plan_until(_LAST_ENCODER_CONV[layer])
        self.conv1 = tnn.Conv2d(3, 3, 1, 1, 0)
        for step in self.plan:
            if step != "pool":
                setattr(self, step[0], tnn.Conv2d(step[1], step[2], 3, 1, 0))
        self.pad = tnn.ReflectionPad2d((1, 1, 1, 1))
        self.pool = tnn.MaxPool2d(kernel_size=2, stride=2)

    def forward(self, x):
        taps = {}
        out = self.conv1(x)
        for step in self.plan:
            if step == "pool":
                out = self.pool(out)
                continue
            out = F.relu(getattr(self, step[0])(self.pad(out)))
            if step[0] in _TORCH_TAPS:
                taps[_TORCH_TAPS[step[0]]] = out
        return taps


class TorchDecoder(tnn.Module):
    """decoder3/4: reflection pad 1 + 3x3 conv, ReLU except after the last, nearest x2 `unpool`."""

    def __init__(self, variant: str):
        super().__init__()
        self.plan = _DECODER_PLAN[variant]
        for step in self.plan:
            if step != "up":
                setattr(self, step[0], tnn.Conv2d(step[1], step[2], 3, 1, 0))
        self.pad = tnn.ReflectionPad2d((1, 1, 1, 1))
        self.unpool = tnn.UpsamplingNearest2d(scale_factor=2)

    def forward(self, x):
        last = self.plan[-1][0]
        for step in self.plan:
            if step == "up":
                x = self.unpool(x)
                continue
            x = getattr(self, step[0])(self.pad(x))
            if step[0] != last:
                x = F.relu(x)
        return x


class TorchCNN(tnn.Module):
    """libs/Matrix.py `CNN`: zero-padded convs -> uncentred covariance / (h*w) -> fc."""

    def __init__(self, widths):
        super().__init__()
        c0, c1, c2 = widths
        self.convs = tnn.Sequential(tnn.Conv2d(c0, c1, 3, 1, 1), tnn.ReLU(), tnn.Conv2d(c1, c2, 3, 1, 1), tnn.ReLU(),
                                    tnn.Conv2d(c2, 32, 3, 1, 1))
        self.fc = tnn.Linear(32 * 32, 32 * 32)

    def forward(self, x):
        out = self.convs(x)
        b, c, h, w = out.shape
        out = out.view(b, c, -1)
        out = torch.bmm(out, out.transpose(1, 2)).div(h * w)
        return self.fc(out.view(b, -1))


class TorchMulLayer(tnn.Module):
    """libs/Matrix.py `MulLayer` (trans=True path)."""

    def __init__(self, variant: str):
        super().__init__()
        channels = {"r41": 512, "r31": 256}[variant]
        widths = (channels, channels // 2, channels // 4)
        self.snet, self.cnet = TorchCNN(widths), TorchCNN(widths)
        self.compress = tnn.Conv2d(channels, 32, 1, 1, 0)
        self.unzip = tnn.Conv2d(32, channels, 1, 1, 0)

    def forward(self, content_feats, style_feats):
        b, c, h, w = content_feats.shape
        centred = content_feats - content_feats.mean(dim=(2, 3), keepdim=True)
        style_mean = style_feats.mean(dim=(2, 3), keepdim=True)
        style_matrix = self.snet(style_feats - style_mean).view(b, 32, 32)
        content_matrix = self.cnet(centred).view(b, 32, 32)
        transform = torch.bmm(style_matrix, content_matrix)
        compressed = self.compress(centred).view(b, 32, -1)
        out = self.unzip(torch.bmm(transform, compressed).view(b, 32, h, w)) + style_mean
        return out, transform


def _randomise(module: tnn.Module, seed: int) -> tnn.Module:
    """He-normal weights and small biases, so every layer (incl. the covariance path) matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("weight"):
                fan_in = param[0].numel()
                param.copy_(torch.randn(param.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
            else:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    return module.eval()


def _to_torch(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def _to_nhwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().numpy().transpose(0, 2, 3, 1)


@pytest.fixture(scope="module", params=["r41", "r31"])
def torch_lst(request, tmp_path_factory):
    """Random torch LST modules for one variant, and their state dicts saved like the released files."""
    variant = request.param
    seed = {"r41": 1, "r31": 2}[variant]
    modules = {"encoder": _randomise(TorchEncoder(variant), seed),
               "decoder": _randomise(TorchDecoder(variant), seed + 10),
               "transform": _randomise(TorchMulLayer(variant), seed + 20)}
    folder = tmp_path_factory.mktemp(f"lst_{variant}")
    paths = {"encoder": folder / f"vgg_{variant}.pth", "decoder": folder / f"dec_{variant}.pth",
             "transform": folder / f"{variant}.pth"}
    for part, module in modules.items():
        torch.save(module.state_dict(), paths[part])
    return variant, modules, paths


def _torch_stylize(modules, content: np.ndarray, style: np.ndarray, multiple: int):
    """The original forward pass; the content is reflect-padded bottom/right and cropped only if needed."""
    height, width = content.shape[1:3]
    content_t = _to_torch(content)
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h or pad_w:
        content_t = F.pad(content_t, (0, pad_w, 0, pad_h), mode="reflect")
    tap = {8: "relu4_1", 4: "relu3_1"}[multiple]
    with torch.no_grad():
        content_feats = modules["encoder"](content_t)[tap]
        style_feats = modules["encoder"](_to_torch(style))[tap]
        transformed, transform = modules["transform"](content_feats, style_feats)
        stylized = modules["decoder"](transformed)[:, :, :height, :width]
    return {"stylized": _to_nhwc(stylized), "transform_matrix": transform.numpy(),
            "content_feats": _to_nhwc(content_feats), "transformed_feats": _to_nhwc(transformed)}


def _assert_close_relative(actual, expected, rtol=1e-4, name=""):
    """|actual - expected| <= rtol * max|expected| elementwise (relative to the tensor's scale)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (name, actual.shape, expected.shape)
    scale = float(np.max(np.abs(expected)))
    error = float(np.max(np.abs(actual - expected)))
    assert scale > 0 and error <= rtol * scale, f"{name}: max abs error {error:.3g} vs scale {scale:.3g}"


# Odd r41 content (padded 45x61 -> 48x64, cropped back); r31 at multiples of 4 and batch 2, where no
# padding happens, so it is exactly the original forward pass.
_PARITY_SHAPES = {"r41": ((1, 45, 61), (1, 40, 36)), "r31": ((2, 36, 52), (2, 45, 61))}


def test_parity_with_torch_reference(torch_lst):
    variant, modules, paths = torch_lst
    (content_shape, style_shape), multiple = _PARITY_SHAPES[variant], {"r41": 8, "r31": 4}[variant]
    rng = np.random.default_rng(0)
    content = rng.uniform(size=(*content_shape, 3)).astype(np.float32)
    style = rng.uniform(size=(*style_shape, 3)).astype(np.float32)
    expected = _torch_stylize(modules, content, style, multiple)

    model, variables = load_linear(paths["encoder"], paths["decoder"], paths["transform"], variant=variant)
    assert isinstance(model, LinearTransfer) and model.variant == variant and set(variables) == {"params"}
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    stylized, aux = jax.jit(model.apply)(variables, content, style)
    assert stylized.shape == content.shape and stylized.dtype == jnp.float32
    _assert_close_relative(stylized, expected["stylized"], name="stylized")
    for key in ("transform_matrix", "content_feats", "transformed_feats"):
        _assert_close_relative(aux[key], expected[key], name=key)
    # Sanity of the reference itself: the covariance path moves T well away from the fc bias alone.
    style_bias, content_bias = (getattr(modules["transform"], net).fc.bias.detach().numpy().reshape(32, 32)
                                for net in ("snet", "cnet"))
    bias_only = style_bias @ content_bias
    assert np.abs(expected["transform_matrix"][0] - bias_only).max() > 0.1 * np.abs(bias_only).max()


def test_importer_reports_wrong_file(torch_lst):
    variant, _, paths = torch_lst
    other = {"r41": "r31", "r31": "r41"}[variant]
    with pytest.raises(convert.WeightsError, match=str(paths["transform"].name)):
        load_linear(paths["encoder"], paths["decoder"], paths["transform"], variant=other)


def test_encoder5_loss_network_parity(tmp_path):
    encoder = _randomise(TorchEncoder("r51"), seed=5)
    path = tmp_path / "vgg_r51.pth"
    torch.save(encoder.state_dict(), path)
    image = np.random.default_rng(1).uniform(size=(1, 37, 42, 3)).astype(np.float32)
    with torch.no_grad():
        expected = {tap: _to_nhwc(feats) for tap, feats in encoder(_to_torch(image)).items()}
    feats = jax.jit(loss_network().apply)({"params": load_linear_encoder5(path)}, image)
    assert set(feats) == set(LOSS_NETWORK_TAPS) == set(expected)
    for tap in LOSS_NETWORK_TAPS:
        _assert_close_relative(feats[tap], expected[tap], name=tap)


# ------------------------------------------------------------------------------------------------
# properties (random Flax params; r31 keeps them cheap)


def _random_params(model: LinearTransfer, seed: int) -> dict:
    """He-normal kernels and small biases for every param of `model` (numpy, no init compile)."""
    probe = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    shapes = jax.eval_shape(model.init, jax.random.key(0), probe, probe)["params"]
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        if path[-1].key == "kernel":
            fan_in = int(np.prod(leaf.shape[:-1]))
            return jnp.asarray(rng.normal(size=leaf.shape) * (2.0 / fan_in) ** 0.5, jnp.float32)
        return jnp.asarray(rng.normal(size=leaf.shape) * 0.1, jnp.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def _images(seed: int, *shape: int) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).uniform(size=(*shape, 3)), jnp.float32)


@pytest.fixture(scope="module")
def r31_model():
    model = build_linear("r31")
    return model, {"params": _random_params(model, seed=3)}


def test_output_has_style_mean_when_compress_and_unzip_have_no_bias(r31_model):
    """feat = unzip(T compress(c - mean(c))) + mean(s): with zero 1x1 biases the linear part has zero
    spatial mean (the centred content has), so the transformed features carry exactly the style mean.
    Holds for any cnet/snet weights; fails if the content mean were added back or the content not centred."""
    model, variables = r31_model
    params = jax.tree.map(lambda x: x, variables["params"])
    for name in ("compress", "unzip"):
        params["transform"][name]["bias"] = jnp.zeros_like(params["transform"][name]["bias"])
    content, style = _images(10, 2, 38, 45), _images(11, 2, 44, 40)
    _, aux = model.apply({"params": params}, content, style)
    code = model.apply({"params": params}, style, method=LinearTransfer.encode_style)
    transformed_mean = jnp.mean(aux["transformed_feats"], axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(transformed_mean, code["style_mean"], rtol=0, atol=1e-5 * float(
        jnp.abs(code["style_mean"]).max()))
    content_mean = jnp.mean(aux["content_feats"], axis=(1, 2), keepdims=True)
    assert float(jnp.abs(content_mean - code["style_mean"]).max()) > 1e-2 * float(jnp.abs(code["style_mean"]).max())


def test_content_equals_style_is_identity_under_whitening_colouring_weights(r31_model):
    """LST learns M_content ~ whitening and M_style ~ colouring, so T = I when both share statistics.
    A linear fc cannot invert a covariance, so we emulate that ideal: cnet outputs a fixed invertible A
    and snet A^-1 (fc kernels 0, biases vec(A), vec(A^-1)), relu3_1 lives in 32 channels (the other
    conv3_1 filters are zero) and compress/unzip select/restore those 32 channels. Then
    feat = c - mean(c) + mean(s), which equals the content features exactly when content == style
    (up to float32 rounding in A^-1 A: tolerance 1e-5 of the feature scale), and decodes to the alpha=0
    reconstruction."""
    model, variables = r31_model
    params = jax.tree.map(lambda x: x, variables["params"])
    conv = params["encoder"]["conv3_1"]
    keep = jnp.arange(256) < 32
    params["encoder"]["conv3_1"] = {"kernel": conv["kernel"] * keep, "bias": jnp.abs(conv["bias"]) * keep}
    select = jnp.eye(256, 32)
    transform = params["transform"]
    transform["compress"] = {"kernel": select[None, None], "bias": jnp.zeros(32)}
    transform["unzip"] = {"kernel": select.T[None, None], "bias": jnp.zeros(256)}
    a = jnp.asarray(np.random.default_rng(4).normal(size=(32, 32)) + 4 * np.eye(32), jnp.float32)
    for net, matrix in (("cnet", a), ("snet", jnp.linalg.inv(a))):
        transform[net]["fc"] = {"kernel": jnp.zeros((1024, 1024)), "bias": matrix.reshape(-1)}
    image = _images(12, 1, 36, 44)  # a multiple of 4: content and style see the same features
    stylized, aux = model.apply({"params": params}, image, image)
    np.testing.assert_allclose(aux["transform_matrix"][0], np.eye(32), atol=1e-5)
    scale = float(jnp.abs(aux["content_feats"]).max())
    assert scale > 0
    np.testing.assert_allclose(aux["transformed_feats"], aux["content_feats"], rtol=0, atol=1e-5 * scale)
    reconstruction = model.apply({"params": params}, image, _images(13, 1, 40, 40), alpha=0.0)[0]
    np.testing.assert_allclose(stylized, reconstruction, rtol=0, atol=1e-5 * float(jnp.abs(reconstruction).max()))


def test_style_code_reuse_and_broadcast_equal_call(r31_model):
    model, variables = r31_model
    content, style = _images(20, 2, 33, 47), _images(21, 1, 40, 44)
    stylized, _ = model.apply(variables, content, jnp.concatenate([style, style]), alpha=0.7)
    code = model.apply(variables, style, method=LinearTransfer.encode_style)
    assert code["style_matrix"].shape == (1, 32, 32) and code["style_mean"].shape == (1, 1, 1, 256)
    reused = model.apply(variables, content, code, 0.7, method=LinearTransfer.stylize_with_code)
    assert reused.shape == content.shape
    np.testing.assert_allclose(reused, stylized, rtol=1e-6, atol=1e-6 * float(jnp.abs(stylized).max()))


def test_interpolation(r31_model):
    """One-hot weights give the single style; general weights equal transferring with the weighted
    style code (the transform is affine in (M_style, style mean) and the weights sum to 1)."""
    model, variables = r31_model
    content, styles = _images(30, 1, 32, 36), [_images(31, 1, 40, 32), _images(32, 1, 36, 48)]
    interpolate = jax.jit(lambda c, s, w: model.apply(variables, c, s, w,
                                                      method=LinearTransfer.stylize_interpolated))
    codes = [model.apply(variables, s, method=LinearTransfer.encode_style) for s in styles]
    with_code = jax.jit(lambda c, code: model.apply(variables, c, code, method=LinearTransfer.stylize_with_code))
    single = with_code(content, codes[1])
    one_hot = interpolate(content, styles, jnp.asarray([0.0, 1.0]))
    np.testing.assert_allclose(one_hot, single, rtol=0, atol=1e-5 * float(jnp.abs(single).max()))
    mixed = interpolate(content, styles, jnp.asarray([1.0, 3.0]))  # normalised to (0.25, 0.75)
    mixed_code = jax.tree.map(lambda a, b: 0.25 * a + 0.75 * b, *codes)
    expected = with_code(content, mixed_code)
    np.testing.assert_allclose(mixed, expected, rtol=0, atol=1e-5 * float(jnp.abs(expected).max()))
    assert float(jnp.abs(mixed - single).max()) > 1e-3 * float(jnp.abs(single).max())
    with pytest.raises(ValueError, match="non-negative"):
        model.apply(variables, content, styles, [0.0, 0.0], method=LinearTransfer.stylize_interpolated)


def test_registry_variants_and_errors():
    model = build("linear", variant="r31")
    assert isinstance(model, LinearTransfer) and model.variant == "r31"
    assert build("linear").variant == "r41"
    with pytest.raises(ValueError, match="r41, r31"):
        build("linear", variant="r51")
    with pytest.raises(ValueError, match="matrix_size"):
        build_linear("r41", decoder="wct")
    with pytest.raises(ValueError, match="at least 4x4"):
        model.init(jax.random.key(0), jnp.zeros((1, 3, 20, 3)), jnp.zeros((1, 20, 20, 3)))


# Trainable (`transform`) parameter counts, by hand:
#   r41 CNN: 3*3*512*256+256 = 1,179,904; 3*3*256*128+128 = 295,040; 3*3*128*32+32 = 36,896;
#            fc 1024*1024+1024 = 1,049,600  -> 2,561,440 each for cnet and snet = 5,122,880
#       compress 512*32+32 = 16,416; unzip 32*512+512 = 16,896          -> 5,156,192
#   r31 CNN: 3*3*256*128+128 = 295,040; 3*3*128*64+64 = 73,792; 3*3*64*32+32 = 18,464;
#            fc 1,049,600 -> 1,436,896 each = 2,873,792
#       compress 256*32+32 = 8,224; unzip 32*256+256 = 8,448            -> 2,890,464
@pytest.mark.parametrize("variant, expected", [("r41", 5_156_192), ("r31", 2_890_464)])
def test_trainable_parameter_count(variant, expected):
    model = build_linear(variant)
    probe = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    params = jax.eval_shape(model.init, jax.random.key(0), probe, probe)["params"]
    trainable, frozen = split_trainable(model, params)
    assert set(trainable) == {"transform"} and set(frozen) == {"encoder", "decoder"}
    assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(trainable)) == expected


def test_transform_starts_like_the_pytorch_original():
    """MulLayer is initialised as torch's nn.Conv2d/nn.Linear defaults (U(+-1/sqrt(fan_in))), so the
    transformed features of a fresh model have the scale of the original's (not ~1e3 times more)."""
    model = build_linear("r41")
    probe = jnp.zeros((1, 32, 32, 3))
    params = model.init(jax.random.PRNGKey(0), probe, probe)["params"]["transform"]
    torch_fc = tnn.Linear(32 * 32, 32 * 32)
    for name, ours, fan_in in (("cnet/fc", params["cnet"]["fc"]["kernel"], 32 * 32),
                               ("compress", params["compress"]["kernel"], 512),
                               ("snet/conv1", params["snet"]["conv1"]["kernel"], 512 * 9)):
        bound = 1.0 / np.sqrt(fan_in)
        assert float(jnp.max(jnp.abs(ours))) <= bound, name
        np.testing.assert_allclose(float(jnp.std(ours)), bound / np.sqrt(3.0), rtol=0.05, err_msg=name)
    np.testing.assert_allclose(float(jnp.std(params["cnet"]["fc"]["kernel"])),
                               float(torch_fc.weight.detach().std()), rtol=0.05)
    bias = params["unzip"]["bias"]
    assert float(jnp.max(jnp.abs(bias))) <= 1.0 / np.sqrt(32) and float(jnp.std(bias)) > 0
