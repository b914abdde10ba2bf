"""SANet: parity with torch.nn modules laid out like the GlebSBrykin port, attention properties, identity outputs.

The torch reference: `vgg_normalised` (53-module Sequential; enc_4 = [:31], enc_5 = [31:44]), a
`Transform` with `sanet4_1`/`sanet5_1` (`f`, `g`, `h`, `out_conv` 1x1 convs), nearest x2 upsampling,
`merge_conv_pad` + `merge_conv`, and the 29-module decoder. The three state_dicts are saved with
torch.save and loaded through `jax_ast.pretrained.sanet.load_sanet`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch import nn as tnn

# The shared torch references (tests/ is on sys.path under pytest's default import mode).
from helpers import (assert_close, init_conv, random_images, to_numpy, to_torch, torch_decoder, torch_mean_std,
                     torch_pad, torch_vgg_normalised)

from jax_ast.archs import build
from jax_ast.models import split_trainable
from jax_ast.models.sanet import SANet, chunked_attend
from jax_ast.pretrained.convert import WeightsError
from jax_ast.pretrained.sanet import load_sanet

ENC4_MODULES, ENC5_MODULES = 31, 44  # vgg_normalised slices ending at relu4_1 / relu5_1
STYLE_SHAPE = (2, 40, 36, 3)  # odd multiple of 4: relu4_1 5x5, relu5_1 3x3 (ceil pooling); shared to reuse compiles


# ----------------------------------------------------------------------------- torch reference (port layout)
def torch_norm(feats: torch.Tensor) -> torch.Tensor:
    mean, std = torch_mean_std(feats)
    return (feats - mean) / std


class TorchSANet(tnn.Module):
    """SA(Fc, Fs) as in the port: softmax over style positions of f(norm Fc)^T g(norm Fs), values h(Fs)."""

    def __init__(self, channels: int):
        super().__init__()
        self.f = tnn.Conv2d(channels, channels, 1)
        self.g = tnn.Conv2d(channels, channels, 1)
        self.h = tnn.Conv2d(channels, channels, 1)
        self.softmax = tnn.Softmax(dim=-1)
        self.out_conv = tnn.Conv2d(channels, channels, 1)

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = content.shape
        queries = self.f(torch_norm(content)).view(batch, channels, -1).permute(0, 2, 1)
        keys = self.g(torch_norm(style)).view(batch, channels, -1)
        values = self.h(style).view(batch, channels, -1)
        attention = self.softmax(torch.bmm(queries, keys))
        attended = torch.bmm(values, attention.permute(0, 2, 1)).view(batch, channels, height, width)
        return self.out_conv(attended) + content


class TorchTransform(tnn.Module):
    def __init__(self, channels: int = 512):
        super().__init__()
        self.sanet4_1 = TorchSANet(channels)
        self.sanet5_1 = TorchSANet(channels)
        self.upsample5_1 = tnn.Upsample(scale_factor=2, mode="nearest")
        self.merge_conv_pad = tnn.ReflectionPad2d((1, 1, 1, 1))
        self.merge_conv = tnn.Conv2d(channels, channels, 3)

    def forward(self, content4, style4, content5, style5):
        merged = self.sanet4_1(content4, style4) + self.upsample5_1(self.sanet5_1(content5, style5))
        return self.merge_conv(self.merge_conv_pad(merged))


def torch_transform(seed: int = 2) -> TorchTransform:
    net = TorchTransform()
    generator = torch.Generator().manual_seed(seed)
    for name, module in net.named_modules():
        if isinstance(module, tnn.Conv2d):
            # small f/g keep the (un-tempered) attention logits at std ~2: a soft, non-degenerate softmax
            init_conv(module, generator, gain=0.1 if name.endswith((".f", ".g")) else 1.0)
    return net


def _torch_stylize(nets, content: np.ndarray, style: np.ndarray, alpha: float) -> np.ndarray:
    vgg, transform, decoder = nets
    enc4, enc5 = vgg[:ENC4_MODULES], vgg[ENC4_MODULES:ENC5_MODULES]
    with torch.no_grad():
        content4 = enc4(torch_pad(to_torch(content), 16))
        style4 = enc4(to_torch(style))
        transformed = transform(content4, style4, enc5(content4), enc5(style4))
        blended = alpha * transformed + (1 - alpha) * content4
        return to_numpy(decoder(blended)[:, :, :content.shape[1], :content.shape[2]])


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def torch_nets():
    return torch_vgg_normalised(), torch_transform(), torch_decoder()


@pytest.fixture(scope="module")
def sanet_files(torch_nets, tmp_path_factory):
    vgg, transform, decoder = torch_nets
    root = tmp_path_factory.mktemp("sanet_weights")
    paths = (root / "vgg_normalised.pth", root / "decoder_iter_500000.pth", root / "transformer_iter_500000.pth")
    torch.save(vgg[:ENC5_MODULES].state_dict(), paths[0])  # truncated after relu5_1; the full file is tested in AdaIN
    torch.save(decoder.state_dict(), paths[1])
    torch.save(transform.state_dict(), paths[2])
    return paths


@pytest.fixture(scope="module")
def sanet(sanet_files):
    return load_sanet(*sanet_files)


# ----------------------------------------------------------------------------- parity
@pytest.mark.parametrize("content_hw,alpha", [
    ((48, 64), 1.0),  # multiple of 16: the port's forward pass exactly
    ((37, 53), 0.6),  # odd: padded to 48x64, cropped back
])
def test_matches_torch_reference(sanet, torch_nets, content_hw, alpha):
    model, variables = sanet
    content, style = random_images(0, (2, *content_hw, 3)), random_images(1, STYLE_SHAPE)
    stylized, aux = model.apply(variables, content, style, alpha)
    expected = _torch_stylize(torch_nets, content, style, alpha)
    assert stylized.shape == (2, *content_hw, 3) and stylized.dtype == jnp.float32
    assert np.abs(expected).max() > 1.0
    assert_close(stylized, expected)
    assert aux["transformed"].shape == aux["content_feats"]["relu4_1"].shape == (2, 6, 8, 512)


# ----------------------------------------------------------------------------- properties
@pytest.mark.parametrize("level,num_queries,num_keys", [("relu4_1", 6 * 8, 5 * 5), ("relu5_1", 3 * 4, 3 * 3)])
def test_attention_rows_sum_to_one(sanet, level, num_queries, num_keys):
    model, variables = sanet
    content, style = random_images(2, (2, 48, 64, 3)), random_images(3, STYLE_SHAPE)
    weights = model.apply(variables, content, style, level, method=SANet.attention_weights)
    assert weights.shape == (2, num_queries, num_keys)
    assert float(weights.min()) >= 0.0
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert float(weights.max()) < 0.999  # a genuinely soft attention in this test, not a one-hot lookup


def test_chunked_model_equals_unchunked(sanet):
    model, variables = sanet
    content, style = random_images(4, (2, 37, 53, 3)), random_images(5, STYLE_SHAPE)
    chunked = SANet(chunk_size=5).apply(variables, content, style)[0]  # 48 queries: 10 chunks, the last padded
    assert_close(chunked, model.apply(variables, content, style)[0], rtol=1e-5)


def test_chunked_attention_values_and_gradients():
    keys_q, keys_k, keys_v = jax.random.split(jax.random.key(0), 3)
    queries = jax.random.normal(keys_q, (2, 23, 8))
    keys, values = jax.random.normal(keys_k, (2, 11, 8)), jax.random.normal(keys_v, (2, 11, 8))

    def loss(q, k, v, chunk_size):
        return jnp.sum(jnp.sin(chunked_attend(q, k, v, chunk_size)))

    for chunk_size in (4, 23, 100):
        assert_close(chunked_attend(queries, keys, values, chunk_size),
                     chunked_attend(queries, keys, values, None), rtol=1e-6)
    grads = jax.grad(loss, argnums=(0, 1, 2))(queries, keys, values, 4)
    reference = jax.grad(loss, argnums=(0, 1, 2))(queries, keys, values, None)
    for grad, ref in zip(grads, reference):
        assert_close(grad, ref, rtol=1e-5)


def test_identity_outputs(sanet):
    model, variables = sanet
    content, style = random_images(6, (2, 48, 64, 3)), random_images(7, STYLE_SHAPE)
    stylized, aux = model.apply(variables, content, style, with_identity=True)
    assert_close(stylized, model.apply(variables, content, style)[0], rtol=1e-6)
    assert aux["identity_content"].shape == content.shape and aux["identity_style"].shape == style.shape
    # D(T(c, c)) is the model applied with the content as its own style
    assert_close(aux["identity_content"], model.apply(variables, content, content)[0], rtol=1e-5)
    # D(T(s, s)) of an odd-sized style uses the style padded to a multiple of 16 on both sides of T
    padded_style = np.pad(style, ((0, 0), (0, 8), (0, 12), (0, 0)), mode="reflect")
    assert_close(aux["identity_style"], model.apply(variables, style, padded_style)[0], rtol=1e-5)


def test_style_code_round_trip(sanet):
    model, variables = sanet
    content, style = random_images(8, (2, 37, 53, 3)), random_images(9, STYLE_SHAPE)
    direct = model.apply(variables, content, style, 0.7)[0]
    code = model.apply(variables, style, method=SANet.encode_style)
    assert set(code) == {"relu4_1", "relu5_1"}
    via_code = model.apply(variables, content, code, 0.7, method=SANet.stylize_with_code)
    np.testing.assert_allclose(via_code, direct, rtol=0, atol=1e-6 * float(np.abs(direct).max()))


def test_alpha_zero_decodes_content_features(sanet):
    model, variables = sanet
    content, style = random_images(10, (2, 48, 64, 3)), random_images(11, STYLE_SHAPE)
    stylized, aux = model.apply(variables, content, style, 0.0)
    reconstruction = model.apply(variables, aux["content_feats"]["relu4_1"], method=lambda m, f: m.decoder(f))
    assert_close(stylized, reconstruction, rtol=1e-6)


# ----------------------------------------------------------------------------- interface
def test_registry_and_trainable_parameter_count():
    model = build("sanet", chunk_size=64)
    assert isinstance(model, SANet) and model.chunk_size == 64 and model.TRAINABLE == ("transform", "decoder")
    probe = jnp.zeros((1, 32, 32, 3))
    shapes = jax.eval_shape(model.init, jax.random.key(0), probe, probe)
    trainable, frozen = split_trainable(model, shapes["params"])
    assert set(trainable) == {"transform", "decoder"} and set(frozen) == {"encoder"}
    # transform: 2 SANet modules x 4 1x1 convs 512->512 (weights + biases) + merge_conv 3x3 512->512
    attention = 2 * 4 * (512 * 512 + 512)  # 2,101,248
    merge = 9 * 512 * 512 + 512  # 2,359,808
    # decoder (same table as AdaIN): 9 * cin * cout + cout per 3x3 conv
    convs = [(512, 256), (256, 256), (256, 256), (256, 256), (256, 128), (128, 128), (128, 64), (64, 64), (64, 3)]
    decoder = sum(9 * cin * cout + cout for cin, cout in convs)  # 3,505,219
    assert attention + merge + decoder == 7_966_275
    count = lambda tree: sum(x.size for x in jax.tree.leaves(tree))  # noqa: E731
    assert count(trainable["transform"]) == attention + merge
    assert count(trainable) == attention + merge + decoder


def test_swapped_files_raise_one_weights_error(sanet_files):
    vgg, decoder, transform = sanet_files
    with pytest.raises(WeightsError, match=r"decoder_iter_500000\.pth does not match the model: .*missing keys "
                                           r"\(18\): sanet4_1\.f\.weight.*unexpected keys \(18\)"):
        load_sanet(vgg, transform, decoder)


def test_bad_inputs_raise_clear_errors(sanet):
    model, variables = sanet
    images = jnp.zeros((1, 32, 32, 3))
    with pytest.raises(ValueError, match="unknown level 'relu3_1'"):
        model.apply(variables, images, images, "relu3_1", method=SANet.attention_weights)
    with pytest.raises(ValueError, match=r"style must be RGB images"):
        model.apply(variables, images, jnp.zeros((1, 32, 32, 4)))
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        SANet(chunk_size=0).apply(variables, images, images)
