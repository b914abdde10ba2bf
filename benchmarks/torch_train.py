"""PyTorch training steps equivalent to `train.step` (native, classic and balanced objectives), for
`benchmarks.train_step`.

The networks and VGG loss networks are `benchmarks.torch_nets`'s twins (same layouts, Flax-like parameter
names), built on the variants the `TrainConfig` names and loaded with the jax-ast run's initial weights.
Each objective follows the original PyTorch training code: target-side features (content, style) are
computed once, without a graph (frozen weights, inputs without gradient); the output side is
differentiated. With loss="classic"/"balanced" the native style term has weight 0 and is skipped; the
paper's VGG-16 style term replaces it (as `train.step.objective`). Tensors are NCHW, images RGB in [0, 1].
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import numpy as np
import torch

import jax_ast.losses as L
from jax_ast.archs.magenta import MAGENTA_STYLE_WEIGHTS
from benchmarks.torch_nets import Feats, load_flax_variables, network, vgg
from jax_ast.configs import TrainConfig

LST_LOSS_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")  # as jax_ast.archs.linear.LOSS_LAYERS
# The networks with a separate native loss network, and its taps; those whose BatchNorms train on batch statistics.
NATIVE_LOSS_TAPS = {"linear": LST_LOSS_LAYERS, "magenta": L.PAPER_STYLE_LAYERS}
TRAIN_MODE = ("magenta",)


# --- loss terms, [B] per sample, as in jax_ast.losses -------------------------------------------------

def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).square().flatten(1).mean(1)


def _mean_std(feats: torch.Tensor, unbiased: bool = True, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    flat = feats.flatten(2)
    return flat.mean(-1), (flat.var(-1, unbiased=unbiased) + eps).sqrt()


def _mvn(feats: torch.Tensor) -> torch.Tensor:
    mean, std = _mean_std(feats)
    return (feats - mean[..., None, None]) / std[..., None, None]


def gram(feats: torch.Tensor, normalize: str = "none") -> torch.Tensor:
    """[B, C, H, W] -> [B, C, C], divided by 1, H*W or C*H*W like `jax_ast.ops.gram`."""
    batch, channels, height, width = feats.shape
    flat = feats.reshape(batch, channels, height * width)
    out = torch.bmm(flat, flat.transpose(1, 2))
    return out / {"none": 1, "hw": height * width, "chw": channels * height * width}[normalize]


def mean_std_style_loss(style_feats: Feats, output_feats: Feats, layers) -> torch.Tensor:
    total = 0.0
    for layer in layers:
        style_mean, style_std = _mean_std(style_feats[layer])
        output_mean, output_std = _mean_std(output_feats[layer])
        total = total + _mse(output_mean, style_mean) + _mse(output_std, style_std)
    return total


def paper_style_loss(style_feats: Feats, output_feats: Feats, kind: str, detach_denominator: bool) -> torch.Tensor:
    """The classic (MSE of raw Grams) or balanced style loss on the paper's VGG-16 layers."""
    total = 0.0
    for layer in L.PAPER_STYLE_LAYERS:
        style_gram, output_gram = gram(style_feats[layer]), gram(output_feats[layer])
        if kind == "classic":
            total = total + (style_gram - output_gram).square().mean((1, 2))
            continue
        scale = torch.maximum(style_gram.abs().amax((1, 2)), output_gram.abs().amax((1, 2))).detach()
        scale = scale.clamp_min(torch.finfo(scale.dtype).tiny)[:, None, None]
        style_gram, output_gram = style_gram / scale, output_gram / scale
        denominator = style_gram.square().sum((1, 2)) + output_gram.square().sum((1, 2))
        denominator = denominator.detach() if detach_denominator else denominator
        total = total + (style_gram - output_gram).square().sum((1, 2)) / (denominator + 1e-12)
    return total


# --- native objectives: (model, loss nets, content, style, weights) -> (total [B], stylized) -----------

def _adain(model, nets, content, style, w) -> tuple[torch.Tensor, torch.Tensor]:
    style_feats = model.encoder(style)
    content_feats = model.encoder(content)["relu4_1"]
    style_mean, style_std = _mean_std(style_feats["relu4_1"])
    content_mean, content_std = _mean_std(content_feats)
    target = ((content_feats - content_mean[..., None, None]) / content_std[..., None, None]
              * style_std[..., None, None] + style_mean[..., None, None])
    stylized = model.decoder(target)
    output_feats = model.encoder(stylized)
    total = w["content"] * _mse(output_feats["relu4_1"], target)
    if w["style"]:
        total = total + w["style"] * mean_std_style_loss(style_feats, output_feats, L.ADAIN_STYLE_LAYERS)
    return total, stylized


def _sanet(model, nets, content, style, w) -> tuple[torch.Tensor, torch.Tensor]:
    content_feats, style_feats = model.encoder(content), model.encoder(style)
    stylized = model.decoder(model.transform(content_feats, style_feats))
    identity_content = model.decoder(model.transform(content_feats, content_feats))
    identity_style = model.decoder(model.transform(style_feats, style_feats))
    output_feats = model.encoder(stylized)
    identity_content_feats, identity_style_feats = model.encoder(identity_content), model.encoder(identity_style)
    content_term = sum(_mse(_mvn(output_feats[k]), _mvn(content_feats[k])) for k in ("relu4_1", "relu5_1"))
    identity_pixel = _mse(identity_content, content) + _mse(identity_style, style)
    identity_feature = sum(_mse(identity_content_feats[k], content_feats[k])
                           + _mse(identity_style_feats[k], style_feats[k]) for k in L.SANET_STYLE_LAYERS)
    total = (w["content"] * content_term + w["identity_pixel"] * identity_pixel
             + w["identity_feature"] * identity_feature)
    if w["style"]:
        total = total + w["style"] * mean_std_style_loss(style_feats, output_feats, L.SANET_STYLE_LAYERS)
    return total, stylized


def _linear(model, nets, content, style, w) -> tuple[torch.Tensor, torch.Tensor]:
    stylized = model.decoder(model.transform(model.encoder(content)["relu4_1"], model.encoder(style)["relu4_1"]))
    loss_net = nets["native"]
    content_feats, style_feats, output_feats = loss_net(content), loss_net(style), loss_net(stylized)
    total = w["content"] * _mse(output_feats["relu4_1"], content_feats["relu4_1"])
    if w["style"]:
        style_term = 0.0
        for layer in LST_LOSS_LAYERS:
            output_layer, style_layer = output_feats[layer], style_feats[layer]
            mean_diff = output_layer.mean((2, 3)) - style_layer.mean((2, 3))
            gram_diff = gram(output_layer, "chw") - gram(style_layer, "chw")
            style_term = style_term + mean_diff.square().sum(1) + gram_diff.square().sum((1, 2))
        total = total + w["style"] * style_term
    return total, stylized


def _magenta(model, nets, content, style, w) -> tuple[torch.Tensor, torch.Tensor]:
    stylized = model(content, style)  # train mode: BatchNorms on batch statistics
    loss_net = nets["native"]
    content_feats, style_feats, output_feats = loss_net(content), loss_net(style), loss_net(stylized)
    vertical = (stylized[:, :, 1:] - stylized[:, :, :-1]).square().flatten(1).mean(1)
    horizontal = (stylized[:, :, :, 1:] - stylized[:, :, :, :-1]).square().flatten(1).mean(1)
    total = (w["content"] * _mse(output_feats["relu3_3"], content_feats["relu3_3"])
             + w["tv"] * 0.5 * (vertical + horizontal))
    if w["style"]:
        style_term = sum(weight * (gram(style_feats[k], "hw") - gram(output_feats[k], "hw")).square().mean((1, 2))
                         for k, weight in MAGENTA_STYLE_WEIGHTS.items())
        total = total + w["style"] * style_term
    return total, stylized


NATIVE_OBJECTIVES: dict[str, Callable] = {"adain": _adain, "sanet": _sanet, "linear": _linear, "magenta": _magenta}


class TorchTrainStep:
    """One Adam step of `arch` in PyTorch, equivalent to `train.step.train_step` on one device.

    Args:
      cfg: the jax-ast `TrainConfig` (arch, loss, weights, learning rate and decay).
      variables: the initial Flax variables {"params": all parts, "batch_stats": ...} of the jax-ast model.
      trainable: the top-level parameter names the method trains (the model's `TRAINABLE`).
      loss_nets: {"native_loss_net": params or None, "paper_loss_net": params or None} (`loss_network_params`).
      style_weight: the constant style weight (beta for classic/balanced).
      channels_last: run the convolutions in torch's channels_last layout (faster on CPU).
      device: "cpu" or "cuda".
      dtype: "float32", or "bfloat16" for the objective under autocast (convolutions and matmuls in bf16;
        parameters, optimizer state and the reductions autocast keeps in float32 stay float32).
    """

    def __init__(self, cfg: TrainConfig, variables: dict, trainable: tuple[str, ...], loss_nets: dict[str, Any],
                 style_weight: float, channels_last: bool = True, device: str = "cpu", dtype: str = "float32"):
        self.cfg, self.replaced, self.device = cfg, cfg.objective.loss != "native", device
        self.autocast = (torch.autocast(device, dtype=torch.bfloat16) if dtype == "bfloat16"
                         else contextlib.nullcontext())
        self.layout = torch.channels_last if channels_last else torch.contiguous_format
        self.model = load_flax_variables(network(cfg.model.arch, cfg.encoder_variant), variables)
        self.model = self.model.to(device=device, memory_format=self.layout)
        if cfg.model.arch in TRAIN_MODE:
            self.model.train()
        for name, param in self.model.named_parameters():  # Magenta's BatchNorms are centre-only: no scale
            param.requires_grad_(name.split(".")[0] in trainable and not name.endswith("BatchNorm.weight"))
        self.nets = {}
        if cfg.native_loss_network is not None:
            taps = NATIVE_LOSS_TAPS[cfg.model.arch]
            self.nets["native"] = vgg(cfg.native_loss_network[0], taps, loss_nets["native_loss_net"])
        if self.replaced:
            self.nets["paper"] = vgg(cfg.objective.loss_network, L.PAPER_STYLE_LAYERS, loss_nets["paper_loss_net"])
        for net in self.nets.values():
            net.to(device=device, memory_format=self.layout)
        self.weights = {"content": cfg.objective.content_weight, "style": 0.0 if self.replaced else style_weight,
                        **{name: getattr(cfg.options, f"{name}_weight", 0.0)  # the network's own options
                           for name in ("tv", "identity_pixel", "identity_feature")}}
        self.style_weight = style_weight
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=cfg.optim.learning_rate)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda k: 1.0 / (1.0 + cfg.optim.lr_decay * k))

    def _images(self, images: np.ndarray) -> torch.Tensor:
        """uint8 [B, H, W, 3] -> float32 [B, 3, H, W] in [0, 1]."""
        tensor = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).to(torch.float32) / 255.0
        return tensor.contiguous(memory_format=self.layout)

    def objective(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Per-sample total loss [B] at the current parameters."""
        total, stylized = NATIVE_OBJECTIVES[self.cfg.model.arch](self.model, self.nets, content, style, self.weights)
        if self.replaced:
            paper = self.nets["paper"]
            with torch.no_grad():
                style_feats = paper(style)
            total = total + self.style_weight * paper_style_loss(style_feats, paper(stylized), self.cfg.objective.loss,
                                                                 self.cfg.objective.detach_denominator)
        return total

    def __call__(self, batch: dict[str, np.ndarray]) -> float:
        """One optimizer step on {"content", "style"}: uint8 [B, H, W, 3]; returns the batch-mean loss."""
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast:
            loss = self.objective(self._images(batch["content"]), self._images(batch["style"])).float().mean()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach())  # waits for the step, also on CUDA
