"""MobileNetV2 style predictor of Magenta's mobile model (docs/architectures.md, Magenta, mobile variant).

style image [B, H, W, 3] in [0, 1] -> TF-slim MobileNetV2 (depth multiplier 1) up to ``Conv_1`` (endpoint
``layer_19``, 1280 channels, stride 32) -> spatial mean -> 1x1 conv with bias ("Conv") -> code [B, 100].

The released model is an inference graph: every BatchNorm is folded into its conv, so each conv here
carries a bias and there is no ``batch_stats`` collection. Parameter names follow the graph's scopes:
``MobilenetV2/{Conv, expanded_conv, expanded_conv_1..16, Conv_1}/{expand, depthwise, project}`` with
``kernel`` (HWIO; depthwise [3, 3, 1, C]) and ``bias``. Padding is TF "SAME" (stride 2 on an even side
pads 0 before and 1 after), so any input size works.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

MIN_INPUT_SIZE = 1  # SAME padding everywhere: any size gives at least one position at Conv_1
STEM = ("Conv", 32, 2)  # (name, channels, stride) of the first 3x3 conv
HEAD = ("Conv_1", 1280)  # the last 1x1 conv (layer_19)
# Inverted residual blocks: (name, expansion, output channels, depthwise stride); slim's V2_DEF.
BLOCKS: tuple[tuple[str, int, int, int], ...] = (
    ("expanded_conv", 1, 16, 1),
    *((f"expanded_conv_{i}", 6, c, s) for i, (c, s) in enumerate(
        [(24, 2), (24, 1), (32, 2), (32, 1), (32, 1), (64, 2), (64, 1), (64, 1), (64, 1), (96, 1), (96, 1), (96, 1),
         (160, 2), (160, 1), (160, 1), (320, 1)], start=1)),
)
KERNEL_INIT = nn.initializers.truncated_normal(0.09)  # slim mobilenet's `training_scope` stddev


def _conv(features: int, kernel: int, stride: int, groups: int, dtype: Any, name: str) -> nn.Conv:
    """A conv with its BatchNorm folded in: kernel + bias, TF SAME padding."""
    return nn.Conv(features, (kernel, kernel), (stride, stride), padding="SAME", feature_group_count=groups,
                   kernel_init=KERNEL_INIT, dtype=dtype, name=name)


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6; absent at expansion 1), 3x3 depthwise (ReLU6), 1x1 linear project, skip when shapes match."""

    expansion: int
    features: int
    stride: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h, channels = x, x.shape[-1]
        if self.expansion != 1:
            h = nn.relu6(_conv(channels * self.expansion, 1, 1, 1, self.dtype, "expand")(h))
        width = h.shape[-1]
        h = nn.relu6(_conv(width, 3, self.stride, width, self.dtype, "depthwise")(h))
        h = _conv(self.features, 1, 1, 1, self.dtype, "project")(h)
        return x + h if self.stride == 1 and channels == self.features else h


class MobileNetV2(nn.Module):
    """TF-slim MobileNetV2 to ``Conv_1``: images [B, H, W, 3] -> [B, ceil(H/32), ceil(W/32), 1280] (ReLU6)."""

    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        name, features, stride = STEM
        h = nn.relu6(_conv(features, 3, stride, 1, self.dtype, name)(images.astype(self.dtype)))
        for name, expansion, features, stride in BLOCKS:
            h = InvertedResidual(expansion, features, stride, self.dtype, name=name)(h)
        name, features = HEAD
        return nn.relu6(_conv(features, 1, 1, 1, self.dtype, name)(h))


class MobileStylePredictor(nn.Module):
    """MobileNetV2 -> spatial mean (1280) -> 1x1 conv with bias (``Conv``) -> code [B, bottleneck].

    ``train`` is accepted for the interface of `jax_ast.models.magenta.StylePredictor`; with the batch
    norms folded there is nothing that behaves differently in training.
    """

    bottleneck: int = 100
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, style: jax.Array, train: bool = False) -> jax.Array:
        del train
        feats = MobileNetV2(self.dtype, name="MobilenetV2")(style)
        pooled = jnp.mean(feats.astype(jnp.float32), axis=(1, 2), keepdims=True)
        code = nn.Conv(self.bottleneck, (1, 1), kernel_init=nn.initializers.xavier_uniform(), name="Conv")(pooled)
        return code[:, 0, 0, :]
