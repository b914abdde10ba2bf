"""Parity: torch.nn models laid out exactly like the original VGG checkpoints vs `load_vgg` + Flax `VGG`.

Each test writes a random-weight model's state_dict in the original layout (torchvision `features`,
the 53-module `vgg_normalised` Sequential, LinearTransfer `convN`, TF-slim names in an npz), loads it
through the real importer and compares every tap on an odd-sized image.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from jax_ast.models.vgg import CAFFE_MEAN_RGB, IMAGENET_MEAN, IMAGENET_STD, tap_names  # noqa: E402
from jax_ast.pretrained import load_vgg  # noqa: E402
from jax_ast.pretrained.vgg import preprocess_params  # noqa: E402

BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
CHANNELS = (64, 128, 256, 512, 512)
RTOL = 1e-4
UP_TO_RELU5_1 = tap_names("vgg19")[: tap_names("vgg19").index("relu5_1") + 1]


def _conv_stack(depth: str, *, pad: str, pool: str, last_block: int = 5, convs_in_last: int | None = None):
    """Modules of a VGG `features` stack; pad "zero" | "reflect", pool "max" | "max_ceil" | "avg"."""
    modules, in_channels = [], 3
    for block, n_convs in enumerate(BLOCKS[depth][:last_block]):
        if block > 0:
            modules.append(nn.AvgPool2d(2, 2) if pool == "avg" else nn.MaxPool2d(2, 2, ceil_mode=pool == "max_ceil"))
        count = convs_in_last if (convs_in_last is not None and block == last_block - 1) else n_convs
        for _ in range(count):
            if pad == "reflect":
                modules.append(nn.ReflectionPad2d(1))
            modules += [nn.Conv2d(in_channels, CHANNELS[block], 3, padding=1 if pad == "zero" else 0),
                        nn.ReLU(inplace=True)]
            in_channels = CHANNELS[block]
    return modules


def _he_init(model: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d) and module.kernel_size != (1, 1):
                fan_in = module.in_channels * 9
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)


def _set_caffe_preprocess(conv: nn.Conv2d) -> None:
    """The 1x1 RGB[0,1] -> BGR*255 - mean conv, written in torch layout from the Flax version."""
    flax = preprocess_params()
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(flax["kernel"].transpose(3, 2, 0, 1)))
        conv.bias.copy_(torch.from_numpy(flax["bias"]))


def _relu_outputs(modules, x, names):
    """Run modules in order, collecting the output of the k-th ReLU as names[k] (NHWC numpy)."""
    taps, relu_count = {}, 0
    with torch.no_grad():
        for module in modules:
            x = module(x)
            if isinstance(module, nn.ReLU):
                if relu_count < len(names):
                    taps[names[relu_count]] = x.permute(0, 2, 3, 1).numpy().copy()
                relu_count += 1
    return taps


def _image(height=67, width=93, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 1.0, (1, height, width, 3)).astype(np.float32)


def _compare(variant, weights_path, reference, images, taps):
    module, params = load_vgg(variant, weights_path, taps=taps)
    assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(params))
    feats = jax.jit(module.apply)({"params": params}, images)
    assert sorted(feats) == sorted(taps)
    worst = 0.0
    for tap in taps:
        got, want = np.asarray(feats[tap]), reference[tap]
        assert got.shape == want.shape, (tap, got.shape, want.shape)
        rel = float(np.max(np.abs(got - want)) / (np.max(np.abs(want)) + 1e-12))
        worst = max(worst, rel)
        assert rel < RTOL, f"{variant} {tap}: relative error {rel:.2e}"
    print(f"{variant}: worst relative error over {len(taps)} taps = {worst:.2e}")


@pytest.mark.parametrize("depth", ["vgg16", "vgg19"])
def test_torchvision_features(tmp_path, depth):
    features = nn.Sequential(*_conv_stack(depth, pad="zero", pool="max"))
    _he_init(features, seed=1)
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)  # the real files carry the classifier; it is ignored
    torch.save(state, tmp_path / f"{depth}.pth")
    images = _image()
    normalised = (images - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    taps = tap_names(depth) if depth == "vgg16" else UP_TO_RELU5_1
    reference = _relu_outputs(features, torch.from_numpy(normalised).permute(0, 3, 1, 2), taps)
    _compare(depth, tmp_path / f"{depth}.pth", reference, images, taps)


@pytest.mark.parametrize("legacy", [False, True])
def test_vgg_normalised_sequential(tmp_path, legacy):
    preprocess = nn.Conv2d(3, 3, 1)
    _set_caffe_preprocess(preprocess)
    vgg = nn.Sequential(preprocess, *_conv_stack("vgg19", pad="reflect", pool="max_ceil"))
    assert len(vgg) == 53
    _he_init(vgg, seed=2)
    path = tmp_path / "vgg_normalised.pth"
    torch.save(vgg.state_dict(), path, _use_new_zipfile_serialization=not legacy)
    images = _image(67, 93, seed=3)  # odd sizes: ceil-mode pooling pads bottom/right
    reference = _relu_outputs(vgg, torch.from_numpy(images).permute(0, 3, 1, 2), UP_TO_RELU5_1)
    _compare("vgg19_normalised", path, reference, images, UP_TO_RELU5_1)


class _LSTEncoder5(nn.Module):
    """LinearTransfer encoder5 layout: named convN attributes, reflection pad, floor max-pool."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 3, 1)
        channels = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256), (256, 256),
                    (256, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
        for index, (cin, cout) in enumerate(channels, start=2):
            setattr(self, f"conv{index}", nn.Conv2d(cin, cout, 3))
        self.reflecPad = nn.ReflectionPad2d(1)
        self.relu = nn.ReLU()
        self.maxPool = nn.MaxPool2d(2, 2)

    def forward(self, x):
        taps, pool_after = {}, {3, 5, 9, 13}  # r12, r22, r34, r44
        x = self.conv1(x)
        for index, name in zip(range(2, 15), UP_TO_RELU5_1):
            x = self.relu(getattr(self, f"conv{index}")(self.reflecPad(x)))
            taps[name] = x.permute(0, 2, 3, 1).numpy().copy()
            if index in pool_after:
                x = self.maxPool(x)
        return taps


def test_lst_encoder(tmp_path):
    encoder = _LSTEncoder5()
    _set_caffe_preprocess(encoder.conv1)
    _he_init(encoder, seed=4)
    torch.save(encoder.state_dict(), tmp_path / "vgg_r51.pth")
    images = _image(67, 93, seed=5)
    with torch.no_grad():
        reference = encoder(torch.from_numpy(images).permute(0, 3, 1, 2))
    _compare("vgg19_lst", tmp_path / "vgg_r51.pth", reference, images, UP_TO_RELU5_1)


def test_slim_vgg16_npz(tmp_path):
    features = nn.Sequential(*_conv_stack("vgg16", pad="zero", pool="avg"))
    _he_init(features, seed=6)
    convs = [m for m in features if isinstance(m, nn.Conv2d)]
    names = [t.replace("relu", "conv") for t in tap_names("vgg16")]
    arrays = {}
    for name, conv in zip(names, convs):
        scope = f"vgg_16/conv{name[4]}/{name}"
        arrays[f"{scope}/weights"] = conv.weight.detach().numpy().transpose(2, 3, 1, 0)  # TF HWIO
        arrays[f"{scope}/biases"] = conv.bias.detach().numpy()
    arrays["vgg_16/fc8/weights"] = np.zeros((1, 1, 4, 4), np.float32)  # slim files carry the fc layers
    np.savez(tmp_path / "vgg_16.npz", **arrays)
    images = _image(67, 93, seed=7)
    caffe = images * 255.0 - np.asarray(CAFFE_MEAN_RGB, np.float32)
    reference = _relu_outputs(features, torch.from_numpy(caffe).permute(0, 3, 1, 2), tap_names("vgg16"))
    _compare("vgg16_slim", tmp_path / "vgg_16.npz", reference, images, tap_names("vgg16"))
