"""PyTorch twins of jax-ast's VGG variants and four networks, for the benchmarks and the parity tests.

Same layouts as the Flax modules (built from the same layer tables), NCHW, and parameter names that mirror
the Flax paths (``encoder.conv1_1.kernel``), so `load_flax_variables` gives both frameworks the same
weights (e.g. the real ImageNet VGG-16 that `jax_ast.pretrained.load_vgg` reads) and the benchmarks can
check that both compute the same thing before timing them. Needs ``torch``; nothing in `jax_ast` imports this.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from flax.traverse_util import flatten_dict
from torch import nn

import jax_ast.losses as L
from jax_ast import archs
from jax_ast.models.decoders import DECODER_R41
from jax_ast.models.inception import MIXED_BLOCKS, STEM, ConvUnit, tf_same_padding
from jax_ast.models.magenta import CONTRACT_CONVS, EXPAND_CONVS, NUM_RESIDUAL_BLOCKS, SITE_DEPTHS, STYLE_NORM_SITES
from jax_ast.models.vgg import CAFFE_MEAN_RGB, CHANNELS_PER_BLOCK, IMAGENET_MEAN, IMAGENET_STD, VGG_SPECS, tap_names

Feats = dict[str, torch.Tensor]


def _conv(x: torch.Tensor, kernel: torch.Tensor, bias, stride: int, padding: str) -> torch.Tensor:
    """2-D conv with padding "reflect" (k//2), "zero" (k//2), "valid" or "tf_same" (TensorFlow's SAME rule)."""
    kh, kw = kernel.shape[2:]
    if padding == "reflect":
        x = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode="reflect")
    elif padding == "zero":
        return F.conv2d(x, kernel, bias, stride, (kh // 2, kw // 2))
    elif padding == "tf_same":
        top, bottom = tf_same_padding(x.shape[2], kh, stride)
        left, right = tf_same_padding(x.shape[3], kw, stride)
        x = F.pad(x, (left, right, top, bottom))
    return F.conv2d(x, kernel, bias, stride)


def _kernel(in_ch: int, out_ch: int, kernel) -> nn.Parameter:
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return nn.Parameter(torch.randn(out_ch, in_ch, kh, kw) * (2.0 / (in_ch * kh * kw)) ** 0.5)


class Conv(nn.Module):
    """Conv with Flax-like parameter names (`kernel` OIHW, `bias`)."""

    def __init__(self, in_ch: int, out_ch: int, kernel, *, stride: int = 1, padding: str = "reflect",
                 bias: bool = True):
        super().__init__()
        self.stride, self.padding = stride, padding
        self.kernel = _kernel(in_ch, out_ch, kernel)
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _conv(x, self.kernel, self.bias, self.stride, self.padding)


class Dense(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.kernel = nn.Parameter(torch.randn(out_features, in_features) / in_features**0.5)
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.kernel, self.bias)


def _mean_std(feats: torch.Tensor, unbiased: bool, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    flat = feats.flatten(2)
    return flat.mean(-1)[..., None, None], (flat.var(-1, unbiased=unbiased) + eps).sqrt()[..., None, None]


def _pad_bottom_right(images: torch.Tensor, multiple: int) -> torch.Tensor:
    pad_h, pad_w = -images.shape[2] % multiple, -images.shape[3] % multiple
    return F.pad(images, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else images


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class VGG(nn.Module):
    """A `jax_ast.models.vgg.VGG` variant up to the deepest of `taps`: RGB [B, 3, H, W] in [0, 1] -> {tap: NCHW}."""

    def __init__(self, variant: str, taps: tuple[str, ...]):
        super().__init__()
        if variant not in VGG_SPECS:
            raise ValueError(f"unknown VGG variant {variant!r}; choose one of {sorted(VGG_SPECS)}")
        all_taps = tap_names(variant)
        unknown = [t for t in taps if t not in all_taps]
        if unknown or not taps:
            raise ValueError(f"unknown taps {unknown or list(taps)} for {variant}; valid taps: {all_taps}")
        self.spec, self.taps = VGG_SPECS[variant], tuple(taps)
        self.names = [t.replace("relu", "conv") for t in all_taps[: max(all_taps.index(t) for t in taps) + 1]]
        if self.spec.preprocess == "learned_1x1":
            self.preprocess = Conv(3, 3, 1, padding="valid")
        in_ch = 3
        for name in self.names:
            out_ch = CHANNELS_PER_BLOCK[int(name[4]) - 1]
            self.add_module(name, Conv(in_ch, out_ch, 3, padding=self.spec.padding))
            in_ch = out_ch

    def _preprocess(self, images: torch.Tensor) -> torch.Tensor:
        def channels(values):
            return torch.tensor(values, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)

        if self.spec.preprocess == "imagenet":
            return (images - channels(IMAGENET_MEAN)) / channels(IMAGENET_STD)
        if self.spec.preprocess == "caffe_rgb":
            return images * 255.0 - channels(CAFFE_MEAN_RGB)
        if self.spec.preprocess == "caffe_bgr":
            return images.flip(1) * 255.0 - channels(CAFFE_MEAN_RGB[::-1])
        return self.preprocess(images)

    def forward(self, images: torch.Tensor) -> Feats:
        x, feats = self._preprocess(images), {}
        for name in self.names:
            if name.endswith("_1") and name != "conv1_1":
                if self.spec.pooling == "avg":
                    x = F.avg_pool2d(x, 2, 2)
                else:
                    x = F.max_pool2d(x, 2, 2, ceil_mode=self.spec.pooling == "max_ceil")
            x = F.relu(getattr(self, name)(x))
            if "relu" + name[4:] in self.taps:
                feats["relu" + name[4:]] = x
        return feats


class Decoder(nn.Module):
    def __init__(self, layers=DECODER_R41, in_ch: int = 512):
        super().__init__()
        self.layers = layers
        for layer in layers:
            self.add_module(layer.name, Conv(in_ch, layer.features, 3))
            in_ch = layer.features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = getattr(self, layer.name)(_up2(x) if layer.upsample_before else x)
            x = F.relu(x) if i < len(self.layers) - 1 else x
        return x


class AdaIN(nn.Module):
    """`jax_ast.models.adain.AdaIN` on the VGG `encoder` variant (alpha 1)."""

    def __init__(self, encoder: str = "vgg19_normalised"):
        super().__init__()
        self.encoder, self.decoder = VGG(encoder, L.ADAIN_STYLE_LAYERS), Decoder()

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        content_feats = self.encoder(_pad_bottom_right(content, 8))["relu4_1"]
        style_mean, style_std = _mean_std(self.encoder(style)["relu4_1"], unbiased=True)
        content_mean, content_std = _mean_std(content_feats, unbiased=True)
        target = (content_feats - content_mean) / content_std * style_std + style_mean
        return self.decoder(target)[:, :, : content.shape[2], : content.shape[3]]


class SANetAttention(nn.Module):
    def __init__(self, channels: int = 512):
        super().__init__()
        for name in ("f", "g", "h", "out_conv"):
            self.add_module(name, Conv(channels, channels, 1, padding="valid"))

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        def norm(x):
            mean, std = _mean_std(x, unbiased=True)
            return (x - mean) / std

        queries = self.f(norm(content)).flatten(2)  # [B, C, Nc]
        keys, values = self.g(norm(style)).flatten(2), self.h(style).flatten(2)
        weights = torch.softmax(torch.bmm(queries.transpose(1, 2), keys), dim=-1)  # [B, Nc, Ns]
        attended = torch.bmm(values, weights.transpose(1, 2)).view_as(content)
        return self.out_conv(attended) + content


class SANetTransform(nn.Module):
    def __init__(self):
        super().__init__()
        self.sanet4_1, self.sanet5_1 = SANetAttention(), SANetAttention()
        self.merge_conv = Conv(512, 512, 3)

    def forward(self, content: dict, style: dict) -> torch.Tensor:
        merged = self.sanet4_1(content["relu4_1"], style["relu4_1"]) + _up2(
            self.sanet5_1(content["relu5_1"], style["relu5_1"]))
        return self.merge_conv(merged)


class SANet(nn.Module):
    """`jax_ast.models.sanet.SANet` on the VGG `encoder` variant (alpha 1)."""

    def __init__(self, encoder: str = "vgg19_normalised"):
        super().__init__()
        self.encoder, self.transform, self.decoder = VGG(encoder, L.SANET_STYLE_LAYERS), SANetTransform(), Decoder()

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        transformed = self.transform(self.encoder(_pad_bottom_right(content, 16)), self.encoder(style))
        return self.decoder(transformed)[:, :, : content.shape[2], : content.shape[3]]


class CovarianceNet(nn.Module):
    def __init__(self, channels: int = 512, widths=(256, 128), matrix_size: int = 32):
        super().__init__()
        sizes = (channels, *widths, matrix_size)
        for i in range(3):
            self.add_module(f"conv{i + 1}", Conv(sizes[i], sizes[i + 1], 3, padding="zero"))
        self.fc, self.matrix_size = Dense(matrix_size**2, matrix_size**2), matrix_size

    def forward(self, centred: torch.Tensor) -> torch.Tensor:
        y = self.conv3(F.relu(self.conv2(F.relu(self.conv1(centred))))).flatten(2)  # [B, m, hw]
        covariance = torch.bmm(y, y.transpose(1, 2)) / y.shape[2]
        return self.fc(covariance.flatten(1)).view(-1, self.matrix_size, self.matrix_size)


class MulLayer(nn.Module):
    def __init__(self, channels: int = 512, matrix_size: int = 32):
        super().__init__()
        self.cnet, self.snet = CovarianceNet(channels), CovarianceNet(channels)
        self.compress = Conv(channels, matrix_size, 1, padding="valid")
        self.unzip = Conv(matrix_size, channels, 1, padding="valid")

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        content_mean, style_mean = content.mean((2, 3), keepdim=True), style.mean((2, 3), keepdim=True)
        centred = content - content_mean
        transform = torch.bmm(self.snet(style - style_mean), self.cnet(centred))
        compressed = self.compress(centred)
        mixed = torch.bmm(transform, compressed.flatten(2)).view_as(compressed)
        return self.unzip(mixed) + style_mean


class LinearTransfer(nn.Module):
    """`jax_ast.models.linear.LinearTransfer` (r41) on the VGG `encoder` variant (alpha 1)."""

    def __init__(self, encoder: str = "vgg19_lst"):
        super().__init__()
        self.encoder, self.transform, self.decoder = VGG(encoder, ("relu4_1",)), MulLayer(), Decoder()

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        content_feats = self.encoder(_pad_bottom_right(content, 8))["relu4_1"]
        transformed = self.transform(content_feats, self.encoder(style)["relu4_1"])
        return self.decoder(transformed)[:, :, : content.shape[2], : content.shape[3]]


class ConvBN(nn.Module):
    """conv without bias (`kernel`) -> optional center-only `BatchNorm`; Magenta's transformer and Inception."""

    def __init__(self, in_ch: int, out_ch: int, kernel, *, stride=1, padding="tf_same", norm=True):
        super().__init__()
        self.stride, self.padding = stride, padding
        self.kernel = _kernel(in_ch, out_ch, kernel)
        self.BatchNorm = nn.BatchNorm2d(out_ch, eps=1e-3) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _conv(x, self.kernel, None, self.stride, self.padding)
        return self.BatchNorm(x) if self.BatchNorm is not None else x


def _add_units(container: nn.Module, units, in_ch: int) -> int:
    """Registers the conv units of an Inception unit list on `container`; returns the output channels."""
    for unit in units:
        if isinstance(unit, ConvUnit):
            padding = "tf_same" if unit.padding == "SAME" else "valid"
            container.add_module(unit.name, ConvBN(in_ch, unit.features, unit.kernel, stride=unit.stride,
                                                   padding=padding))
            in_ch = unit.features
    return in_ch


def _run_units(container: nn.Module, units, x: torch.Tensor) -> torch.Tensor:
    for unit in units:
        if isinstance(unit, ConvUnit):
            x = F.relu6(getattr(container, unit.name)(x))
        elif unit.kind == "max":
            x = F.max_pool2d(x, 3, unit.stride)
        else:  # stride-1 SAME average pool without the padding in the divisor (TF semantics)
            x = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    return x


class InceptionV3(nn.Module):
    """TF-slim Inception-v3 base to Mixed_6e (ReLU6), from the Flax module's own unit tables."""

    def __init__(self):
        super().__init__()
        in_ch = _add_units(self, STEM, 3)
        for block_name, branches in MIXED_BLOCKS:
            block, outputs = nn.Module(), []
            for b, units in enumerate(branches):
                branch = nn.Module()
                outputs.append(_add_units(branch, units, in_ch))
                block.add_module(f"Branch_{b}", branch)
            self.add_module(block_name, block)
            in_ch = sum(outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _run_units(self, STEM, x)
        for block_name, branches in MIXED_BLOCKS:
            block = getattr(self, block_name)
            x = torch.cat([_run_units(getattr(block, f"Branch_{b}"), units, x) for b, units in enumerate(branches)],
                          dim=1)
        return x


class Magenta(nn.Module):
    def __init__(self, bottleneck: int = 100):
        super().__init__()
        self.style_predictor = nn.Module()
        self.style_predictor.InceptionV3 = InceptionV3()
        self.style_predictor.Conv = Conv(768, bottleneck, 1, padding="valid")
        self.style_params = nn.Module()
        for site, _, depth in STYLE_NORM_SITES:
            params = nn.Module()
            params.Conv, params.Conv_1 = (Conv(bottleneck, depth, 1, padding="valid") for _ in range(2))
            self.style_params.add_module(site, params)
        self.transformer, in_ch = nn.Module(), 3
        for name, _, features, kernel, stride in CONTRACT_CONVS:
            self.transformer.add_module(name, ConvBN(in_ch, features, kernel, stride=stride, padding="reflect"))
            in_ch = features
        for r in range(1, NUM_RESIDUAL_BLOCKS + 1):
            for j in (1, 2):
                self.transformer.add_module(f"residual{r}_conv{j}", ConvBN(in_ch, in_ch, 3, padding="reflect",
                                                                           norm=False))
        for name, _, kernel in EXPAND_CONVS:
            self.transformer.add_module(name, ConvBN(in_ch, SITE_DEPTHS[name], kernel, padding="reflect", norm=False))
            in_ch = SITE_DEPTHS[name]

    def _csn(self, x: torch.Tensor, code: torch.Tensor, site: str) -> torch.Tensor:
        params = getattr(self.style_params, site)
        beta, gamma = params.Conv(code), params.Conv_1(code)  # [B, C, 1, 1]
        mean, std = _mean_std(x, unbiased=False)
        return (x - mean) / std * gamma + beta

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        pooled = self.style_predictor.InceptionV3(style).mean((2, 3), keepdim=True)
        code, t, h = self.style_predictor.Conv(pooled), self.transformer, content
        for name, *_ in CONTRACT_CONVS:
            h = F.relu(getattr(t, name)(h))
        for r in range(1, NUM_RESIDUAL_BLOCKS + 1):
            inner = F.relu(self._csn(getattr(t, f"residual{r}_conv1")(h), code, f"residual{r}_conv1"))
            h = h + self._csn(getattr(t, f"residual{r}_conv2")(inner), code, f"residual{r}_conv2")
        for name, factor, _ in EXPAND_CONVS:
            h = self._csn(getattr(t, name)(_up2(h) if factor == 2 else h), code, name)
            h = torch.sigmoid(h) if name == "expand_conv3" else F.relu(h)
        return h[:, :, : content.shape[2], : content.shape[3]]


NETWORKS = {"adain": AdaIN, "sanet": SANet, "linear": LinearTransfer, "magenta": Magenta}


def network(arch: str, encoder: str | None = None) -> nn.Module:
    """The torch twin of `arch` with random weights; `encoder`: its VGG variant (None: the original's)."""
    if arch not in NETWORKS:
        raise ValueError(f"unknown network {arch!r}; choose one of {', '.join(NETWORKS)}")
    if encoder is None:
        return NETWORKS[arch]()
    if archs.get(arch).original_encoder is None:
        raise ValueError(f"{arch} has no VGG encoder, got encoder={encoder!r}")
    return NETWORKS[arch](encoder)


def load_flax_variables(module: nn.Module, variables) -> nn.Module:
    """Copies Flax variables into `module` by path (HWIO -> OIHW, Dense (in, out) -> (out, in)).

    Raises:
      ValueError: when any Flax variable has no torch counterpart, or a torch weight is left unset.
    """
    state = {}
    for path, value in flatten_dict(dict(variables)).items():
        collection, *rest = path
        if collection == "batch_stats":
            rest[-1] = {"mean": "running_mean", "var": "running_var"}[rest[-1]]
        value = np.asarray(value)
        if rest[-1] == "kernel":
            value = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T
        state[".".join(rest)] = torch.from_numpy(np.array(value, dtype=np.float32, order="C"))  # writable copy
    missing, unexpected = module.load_state_dict(state, strict=False)
    unset = [k for k in missing if not k.endswith(("BatchNorm.weight", "num_batches_tracked"))]
    if unexpected or unset:
        raise ValueError(f"weights do not match the torch layout: unexpected {unexpected[:8]}, unset {unset[:8]}")
    return module.eval()


def vgg(variant: str, taps: tuple[str, ...], params: dict) -> VGG:
    """A frozen `VGG` twin loaded with the Flax `params` ({"conv1_1": {"kernel", "bias"}, ...}) up to its taps."""
    net = VGG(variant, taps)
    wanted = {name for name, _ in net.named_children()}
    net = load_flax_variables(net, {"params": {k: v for k, v in params.items() if k in wanted}})
    return net.requires_grad_(False)
