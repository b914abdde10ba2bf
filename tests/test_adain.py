"""AdaIN: parity with a torch.nn model laid out like the originals, AdaIN properties, registry, sizes.

The torch reference follows the PyTorch port (naoto0804/pytorch-AdaIN): `vgg_normalised` as a 53-module
nn.Sequential truncated to its first 31 modules, `decoder` as the 29-module nn.Sequential, and
calc_mean_std with unbiased var + 1e-5. Weights are random (He-normal 3x3 convs and a Caffe-like 1x1
preprocessing conv, so feature magnitudes resemble the real ones), saved with torch.save(state_dict)
and loaded through `jax_ast.pretrained.adain.load_adain`; the torch builders are in helpers.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

# The shared torch references (tests/ is on sys.path under pytest's default import mode).
from helpers import (assert_close, random_images, to_numpy, to_torch, torch_adain, torch_decoder, torch_pad,
                     torch_vgg_normalised)

from jax_ast.archs import build
from jax_ast.models import split_trainable
from jax_ast.models.adain import AdaIN, masked_adain
from jax_ast.ops import adain as ops_adain
from jax_ast.ops import channel_mean_std
from jax_ast.pretrained.adain import load_adain
from jax_ast.pretrained.convert import WeightsError

ADAIN_VGG_MODULES = 31  # the port truncates vgg_normalised after relu4_1
# Most tests share these shapes: eager JAX compiles each op once per shape, so sharing keeps the file fast.
CONTENT_SHAPE, STYLE_SHAPE = (2, 37, 53, 3), (2, 40, 40, 3)


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def torch_nets():
    return torch_vgg_normalised(), torch_decoder()


@pytest.fixture(scope="module")
def weight_files(torch_nets, tmp_path_factory):
    vgg, decoder = torch_nets
    root = tmp_path_factory.mktemp("adain_weights")
    paths = {"vgg_full": root / "vgg_normalised.pth", "vgg_truncated": root / "vgg_r41.pth",
             "decoder": root / "decoder.pth"}
    torch.save(vgg.state_dict(), paths["vgg_full"])
    torch.save(vgg[:ADAIN_VGG_MODULES].state_dict(), paths["vgg_truncated"])
    torch.save(decoder.state_dict(), paths["decoder"])
    return paths


@pytest.fixture(scope="module")
def adain(weight_files):
    return load_adain(weight_files["vgg_full"], weight_files["decoder"])


def _torch_stylize(torch_nets, content: np.ndarray, style: np.ndarray, alpha: float) -> np.ndarray:
    vgg, decoder = torch_nets
    encoder = vgg[:ADAIN_VGG_MODULES]
    content_t, style_t = to_torch(content), to_torch(style)
    with torch.no_grad():
        content_feats = encoder(torch_pad(content_t, 8))
        target = alpha * torch_adain(content_feats, encoder(style_t)) + (1 - alpha) * content_feats
        return to_numpy(decoder(target)[:, :, :content.shape[1], :content.shape[2]])


# ----------------------------------------------------------------------------- parity
@pytest.mark.parametrize("vgg_file,content_hw,alpha", [
    ("vgg_truncated", (40, 56), 1.0),  # multiple of 8: exactly the port's forward pass
    ("vgg_full", (37, 53), 0.7),  # odd size: padded to 40x56, cropped back
])
def test_matches_torch_reference(torch_nets, weight_files, vgg_file, content_hw, alpha):
    model, variables = load_adain(weight_files[vgg_file], weight_files["decoder"])
    content = random_images(0, (2, *content_hw, 3))
    style = random_images(1, STYLE_SHAPE)
    stylized, aux = model.apply(variables, jnp.asarray(content), jnp.asarray(style), alpha)
    expected = _torch_stylize(torch_nets, content, style, alpha)
    assert stylized.shape == (2, *content_hw, 3) and stylized.dtype == jnp.float32
    assert np.abs(expected).max() > 1.0  # the random decoder is far from degenerate
    assert_close(stylized, expected)
    assert aux["target"].shape == aux["content_feats"].shape == (2, 5, 7, 512)


def test_multiple_of_eight_is_not_padded(adain, torch_nets):
    """At multiples of 8 the jax-ast output equals the unpadded original (the torch pad is a no-op)."""
    model, variables = adain
    content, style = random_images(2, (2, 40, 56, 3)), random_images(3, STYLE_SHAPE)
    vgg, decoder = torch_nets
    with torch.no_grad():
        encoder = vgg[:ADAIN_VGG_MODULES]
        expected = to_numpy(decoder(torch_adain(encoder(to_torch(content)), encoder(to_torch(style)))))
    assert_close(model.apply(variables, content, style)[0], expected)


# ----------------------------------------------------------------------------- properties
def _relu4_1(model, variables, images):
    return model.apply(variables, images, method=lambda m, x: m.encoder(x)["relu4_1"])


def test_target_has_style_statistics(adain):
    model, variables = adain
    content, style = random_images(4, CONTENT_SHAPE), random_images(5, STYLE_SHAPE)
    _, aux = model.apply(variables, content, style)
    style_mean, style_std = channel_mean_std(_relu4_1(model, variables, style))
    target_mean, target_std = channel_mean_std(aux["target"])
    # A content channel that is constant (a dead ReLU over the whole image) cannot take on the style's
    # spread: AdaIN maps it to the style mean with std sqrt(eps). Check the channels that vary.
    varying = np.asarray(channel_mean_std(aux["content_feats"])[1] > 0.1)
    assert varying.mean() > 0.5
    assert_close(target_mean, style_mean)
    assert_close(np.asarray(target_std)[varying], np.asarray(style_std)[varying])
    np.testing.assert_allclose(np.asarray(target_std)[~varying], 1e-5 ** 0.5, rtol=1e-3)
    # and the target is exactly the shared AdaIN op of jax_ast.ops (same convention)
    assert_close(aux["target"], ops_adain(aux["content_feats"], _relu4_1(model, variables, style)), rtol=1e-5)


def test_alpha_zero_decodes_content_features(adain):
    model, variables = adain
    content, style = random_images(6, CONTENT_SHAPE), random_images(7, STYLE_SHAPE)
    stylized, aux = model.apply(variables, content, style, 0.0)
    reconstruction = model.apply(variables, content, method=lambda m, c: m.decode(m.encode_content(c), 37, 53))
    assert_close(aux["target"], aux["content_feats"], rtol=1e-6)
    assert_close(stylized, reconstruction, rtol=1e-5)


def test_per_sample_alpha(adain):
    model, variables = adain
    content, style = random_images(8, CONTENT_SHAPE), random_images(9, STYLE_SHAPE)
    mixed = model.apply(variables, content, style, jnp.array([1.0, 0.0]))[0]
    assert_close(mixed[0], model.apply(variables, content, style, 1.0)[0][0], rtol=1e-5)
    assert_close(mixed[1], model.apply(variables, content, style, 0.0)[0][1], rtol=1e-5)


def test_style_code_round_trip(adain):
    model, variables = adain
    content, style = random_images(10, CONTENT_SHAPE), random_images(11, STYLE_SHAPE)
    direct = model.apply(variables, content, style, 0.8)[0]
    code = model.apply(variables, style, method=AdaIN.encode_style)
    assert code["mean"].shape == code["std"].shape == (2, 1, 1, 512)
    via_code = model.apply(variables, content, code, 0.8, method=AdaIN.stylize_with_code)
    np.testing.assert_allclose(via_code, direct, rtol=0, atol=1e-6 * float(np.abs(direct).max()))


def test_interpolation(adain):
    model, variables = adain
    content = random_images(12, CONTENT_SHAPE)
    styles = [random_images(13, STYLE_SHAPE), random_images(14, STYLE_SHAPE)]
    single = model.apply(variables, content, styles[1], 0.9)[0]
    one_hot = model.apply(variables, content, styles, jnp.array([0.0, 3.0]), 0.9, method=AdaIN.stylize_interpolated)
    assert_close(one_hot, single, rtol=1e-5)
    # general weights equal decoding sum_i w_i AdaIN(c4, s4_i) computed explicitly (weights normalised)
    mixed = model.apply(variables, content, styles, jnp.array([1.0, 3.0]), method=AdaIN.stylize_interpolated)
    content_feats = model.apply(variables, content, method=AdaIN.encode_content)
    target = sum(w * ops_adain(content_feats, _relu4_1(model, variables, s)) for w, s in zip((0.25, 0.75), styles))
    assert_close(mixed, model.apply(variables, target, 37, 53, method=AdaIN.decode), rtol=1e-5)


def test_all_ones_mask_equals_unmasked(adain):
    model, variables = adain
    content, style = random_images(15, CONTENT_SHAPE), random_images(16, STYLE_SHAPE)
    masked = model.apply(variables, content, [style], [jnp.ones((2, 37, 53))], 0.9, method=AdaIN.stylize_masked)
    assert_close(masked, model.apply(variables, content, style, 0.9)[0], rtol=1e-5)


def test_masked_regions_take_their_styles_statistics():
    """Binary masks: inside region k the target has style k's mean/std, and uses only region-k content stats."""
    key_c, key_s = jax.random.split(jax.random.key(0))
    content_feats = 3.0 * jax.random.normal(key_c, (1, 6, 8, 4)) + 1.0
    style_feats = jax.random.normal(key_s, (2, 1, 5, 5, 4)) * jnp.array([0.5, 4.0])[:, None, None, None, None]
    codes = [dict(zip(("mean", "std"), channel_mean_std(s))) for s in style_feats]
    left = jnp.zeros((1, 6, 8)).at[:, :, :3].set(1.0)
    target = jax.jit(masked_adain)(content_feats, codes, [left, 1.0 - left])
    for region, columns in ((0, slice(0, 3)), (1, slice(3, 8))):
        mean, std = channel_mean_std(target[:, :, columns])
        assert_close(mean, codes[region]["mean"])
        assert_close(std, codes[region]["std"])
        # a region's output depends only on that region's content features
        expected = ops_adain(content_feats[:, :, columns], style_feats[region])
        assert_close(target[:, :, columns], expected, rtol=1e-5)


def test_uncovered_positions_keep_content_features():
    content_feats = jax.random.normal(jax.random.key(1), (1, 4, 4, 3))
    code = {"mean": jnp.full((1, 1, 1, 3), 5.0), "std": jnp.full((1, 1, 1, 3), 2.0)}
    top = jnp.zeros((1, 4, 4)).at[:, :2].set(1.0)
    target = jax.jit(masked_adain)(content_feats, [code], [top])
    np.testing.assert_array_equal(target[:, 2:], content_feats[:, 2:])


# ----------------------------------------------------------------------------- interface
def test_registry_and_trainable_parameter_count():
    model = build("adain")
    assert isinstance(model, AdaIN) and model.TRAINABLE == ("decoder",)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 16, 16, 3)), jnp.zeros((1, 16, 16, 3)))
    trainable, frozen = split_trainable(model, shapes["params"])
    assert set(trainable) == {"decoder"} and set(frozen) == {"encoder"}
    # decoder table (3x3 convs, weights 9*cin*cout + cout biases):
    #   conv4_1 512->256, conv3_4/3_3/3_2 256->256 (x3), conv3_1 256->128, conv2_2 128->128,
    #   conv2_1 128->64, conv1_2 64->64, conv1_1 64->3
    convs = [(512, 256), (256, 256), (256, 256), (256, 256), (256, 128), (128, 128), (128, 64), (64, 64), (64, 3)]
    expected = sum(9 * cin * cout + cout for cin, cout in convs)
    assert expected == 3_505_219  # 1,179,904 + 3 * 590,080 + 295,040 + 147,584 + 73,792 + 36,928 + 1,731
    assert sum(x.size for x in jax.tree.leaves(trainable)) == expected


def test_decoder_file_checked_against_the_model(weight_files):
    # the VGG file read as a decoder: 9 decoder keys missing, 29 VGG keys unused, and the 4 indices the
    # two Sequentials share hold tensors of the wrong shape (5, ...) -- all reported at once
    with pytest.raises(WeightsError, match=r"vgg_normalised\.pth does not match the model: missing keys .*"
                                           r"unexpected keys .*wrong shapes \(\d+\): 5\.weight"):
        load_adain(weight_files["vgg_full"], weight_files["vgg_full"])


def test_bad_inputs_raise_clear_errors(adain):
    model, variables = adain
    with pytest.raises(ValueError, match=r"content must be RGB images of shape \[B, H, W, 3\]"):
        model.apply(variables, jnp.zeros((16, 16, 3)), jnp.zeros((1, 16, 16, 3)))
    with pytest.raises(ValueError, match="one mask per style"):
        model.apply(variables, jnp.zeros((1, 16, 16, 3)), [jnp.zeros((1, 16, 16, 3))] * 2, [jnp.ones((1, 16, 16))],
                    method=AdaIN.stylize_masked)
    with pytest.raises(ValueError, match="one weight per style"):
        model.apply(variables, jnp.zeros((1, 16, 16, 3)), [jnp.zeros((1, 16, 16, 3))], jnp.ones(2),
                    method=AdaIN.stylize_interpolated)


def test_bfloat16_runs_and_returns_float32(adain):
    _, variables = adain
    model = build("adain", dtype="bfloat16")
    content, style = random_images(17, (1, 24, 24, 3)), random_images(18, (1, 24, 24, 3))
    stylized = jax.jit(model.apply)(variables, content, style)[0]
    reference = jax.jit(AdaIN().apply)(variables, content, style)[0]
    assert stylized.dtype == jnp.float32 and stylized.shape == (1, 24, 24, 3)
    assert_close(stylized, reference, rtol=0.1)
