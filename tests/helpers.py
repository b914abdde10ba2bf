"""Torch references laid out like the original repositories, shared by the parity tests (test_adain.py,
test_sanet.py): random-weight `vgg_normalised` and AdaIN decoder Sequentials, calc_mean_std, NHWC <-> NCHW
conversion, reflect padding, and a tolerance check relative to the reference's scale.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as torch_f
from torch import nn as tnn

VGG_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
RTOL = 1e-4


def init_conv(conv: tnn.Conv2d, generator: torch.Generator, gain: float = 2.0) -> None:
    """In place: He-normal weights (variance gain / fan_in) and biases uniform in [-0.1, 0.1), from `generator`."""
    fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * (gain / fan_in) ** 0.5)
        conv.bias.copy_((torch.rand(conv.bias.shape, generator=generator) - 0.5) * 0.2)


def seeded_sequential(layers: list[tnn.Module], seed: int) -> tuple[tnn.Sequential, torch.Generator]:
    """nn.Sequential(*layers) with every Conv2d set by `init_conv` from a generator seeded with `seed`; the
    generator is returned for further draws."""
    net = tnn.Sequential(*layers)
    generator = torch.Generator().manual_seed(seed)
    for module in net:
        if isinstance(module, tnn.Conv2d):
            init_conv(module, generator)
    return net, generator


def torch_vgg_normalised(seed: int = 0) -> tnn.Sequential:
    """The 53-module `vgg_normalised` Sequential: 1x1 preprocess, (pad, conv, ReLU) x16, 4 ceil-mode pools."""
    layers: list[tnn.Module] = [tnn.Conv2d(3, 3, 1)]
    in_channels = 3
    for block, (channels, n_convs) in enumerate(VGG_BLOCKS):
        if block:
            layers.append(tnn.MaxPool2d(2, 2, 0, ceil_mode=True))
        for _ in range(n_convs):
            layers += [tnn.ReflectionPad2d(1), tnn.Conv2d(in_channels, channels, 3), tnn.ReLU()]
            in_channels = channels
    assert len(layers) == 53
    net, generator = seeded_sequential(layers, seed)
    with torch.no_grad():  # RGB [0,1] -> BGR * 255 - Caffe mean, plus noise so a transposition would show
        noise = torch.randn(3, 3, 1, 1, generator=generator)
        net[0].weight.copy_(255.0 * torch.eye(3).flip(1)[:, :, None, None] + noise)
        net[0].bias.copy_(-torch.tensor(CAFFE_MEAN_BGR))
    return net


def torch_decoder(seed: int = 1) -> tnn.Sequential:
    """The 29-module `decoder.pth` Sequential (relu4_1 -> RGB, last conv without ReLU)."""
    def conv(cin: int, cout: int, relu: bool = True) -> list[tnn.Module]:
        return [tnn.ReflectionPad2d(1), tnn.Conv2d(cin, cout, 3)] + ([tnn.ReLU()] if relu else [])

    def up() -> tnn.Module:
        return tnn.Upsample(scale_factor=2, mode="nearest")

    layers = [*conv(512, 256), up(), *conv(256, 256), *conv(256, 256), *conv(256, 256), *conv(256, 128), up(),
              *conv(128, 128), *conv(128, 64), up(), *conv(64, 64), *conv(64, 3, relu=False)]
    assert len(layers) == 29
    return seeded_sequential(layers, seed)[0]


def torch_mean_std(feats: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """The port's calc_mean_std: unbiased var + eps inside the sqrt, NCHW -> [N, C, 1, 1]."""
    n, c = feats.shape[:2]
    flat = feats.reshape(n, c, -1)
    return flat.mean(dim=2).view(n, c, 1, 1), (flat.var(dim=2) + eps).sqrt().view(n, c, 1, 1)


def torch_adain(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    style_mean, style_std = torch_mean_std(style)
    content_mean, content_std = torch_mean_std(content)
    return (content - content_mean) / content_std * style_std + style_mean


def to_torch(images: np.ndarray) -> torch.Tensor:
    """NHWC numpy -> NCHW torch."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(images).transpose(0, 3, 1, 2)))


def to_numpy(images: torch.Tensor) -> np.ndarray:
    """NCHW torch -> NHWC numpy."""
    return images.detach().numpy().transpose(0, 2, 3, 1)


def torch_pad(images: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad bottom/right to a multiple (the pad-then-crop wrapper jax-ast adds around the originals)."""
    pad_h, pad_w = -images.shape[2] % multiple, -images.shape[3] % multiple
    return torch_f.pad(images, (0, pad_w, 0, pad_h), mode="reflect") if (pad_h or pad_w) else images


def assert_close(actual, expected, rtol: float = RTOL) -> None:
    """max |actual - expected| <= rtol * max |expected| (relative to the reference's scale)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    scale = max(np.abs(expected).max(), 1e-12)
    err = np.abs(actual - expected).max()
    assert err <= rtol * scale, f"max abs err {err:.3e} > {rtol} * {scale:.3e} (rel {err / scale:.2e})"


def random_images(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)
