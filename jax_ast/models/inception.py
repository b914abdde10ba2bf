"""TF-slim Inception-v3 base up to Mixed_6e: the style predictor trunk of Magenta (docs/architectures.md, Magenta).

Conventions of the original (`inception_v3_base` under Magenta's `_inception_v3_arg_scope`):

* every conv is conv (no bias) -> BatchNorm with beta only (no gamma), eps 1e-3, decay 0.9997 -> ReLU6;
* the stem uses VALID padding (except Conv2d_2b_3x3), the Mixed blocks SAME, with TF's SAME rule
  (`tf_same_padding`: total padding split total//2 before, the rest after);
* SAME average pools exclude the padding from the divisor (TF semantics, `count_include_pad=False`);
* branches are concatenated B0, B1, B2, B3 on the channel axis.

Known deviation, training only: TF's fused batch norm (what slim uses here) updates the moving variance
with the Bessel-corrected batch variance (x N/(N-1), N = B*H*W); Flax's `BatchNorm` uses the biased one.
Normalisation itself (biased batch variance in training, moving averages at inference) is identical.

Parameters mirror the TF-slim scopes: ``InceptionV3/Mixed_5b/Branch_1/Conv2d_0b_5x5/weights`` is
``params["Mixed_5b"]["Branch_1"]["Conv2d_0b_5x5"]["kernel"]`` (HWIO), its ``BatchNorm/beta`` is
``[...]["BatchNorm"]["bias"]`` and its moving mean/variance are ``batch_stats[...]["BatchNorm"]["mean"/"var"]``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_ast.checks import check_images

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.9997  # slim `decay` in Magenta's `_inception_v3_arg_scope`
KERNEL_STDDEV = 0.1  # truncated normal, as in `_inception_v3_arg_scope`


@dataclasses.dataclass(frozen=True)
class ConvUnit:
    """conv (no bias) -> BN(beta) -> ReLU6, named like its TF-slim scope."""

    name: str
    features: int
    kernel: tuple[int, int]
    stride: int = 1
    padding: str = "SAME"


@dataclasses.dataclass(frozen=True)
class PoolUnit:
    """3x3 max or average pool (no parameters)."""

    name: str
    kind: str  # "max" | "avg"
    stride: int = 1
    padding: str = "SAME"
    window: tuple[int, int] = (3, 3)


Unit = Union[ConvUnit, PoolUnit]
Branch = tuple[Unit, ...]  # applied in sequence; the block's branches are named Branch_0, Branch_1, ...


def _c(name: str, features: int, kernel: tuple[int, int], stride: int = 1, padding: str = "SAME") -> ConvUnit:
    return ConvUnit(name, features, kernel, stride, padding)


STEM: tuple[Unit, ...] = (
    _c("Conv2d_1a_3x3", 32, (3, 3), 2, "VALID"),
    _c("Conv2d_2a_3x3", 32, (3, 3), 1, "VALID"),
    _c("Conv2d_2b_3x3", 64, (3, 3), 1, "SAME"),
    PoolUnit("MaxPool_3a_3x3", "max", 2, "VALID"),
    _c("Conv2d_3b_1x1", 80, (1, 1), 1, "VALID"),
    _c("Conv2d_4a_3x3", 192, (3, 3), 1, "VALID"),
    PoolUnit("MaxPool_5a_3x3", "max", 2, "VALID"),
)


def _mixed_5(branch1_names: tuple[str, str], pool_features: int) -> tuple[Branch, ...]:
    return (
        (_c("Conv2d_0a_1x1", 64, (1, 1)),),
        (_c(branch1_names[0], 48, (1, 1)), _c(branch1_names[1], 64, (5, 5))),
        (_c("Conv2d_0a_1x1", 64, (1, 1)), _c("Conv2d_0b_3x3", 96, (3, 3)), _c("Conv2d_0c_3x3", 96, (3, 3))),
        (PoolUnit("AvgPool_0a_3x3", "avg"), _c("Conv2d_0b_1x1", pool_features, (1, 1))),
    )


def _mixed_6(inner: int) -> tuple[Branch, ...]:
    return (
        (_c("Conv2d_0a_1x1", 192, (1, 1)),),
        (_c("Conv2d_0a_1x1", inner, (1, 1)), _c("Conv2d_0b_1x7", inner, (1, 7)),
         _c("Conv2d_0c_7x1", 192, (7, 1))),
        (_c("Conv2d_0a_1x1", inner, (1, 1)), _c("Conv2d_0b_7x1", inner, (7, 1)),
         _c("Conv2d_0c_1x7", inner, (1, 7)), _c("Conv2d_0d_7x1", inner, (7, 1)),
         _c("Conv2d_0e_1x7", 192, (1, 7))),
        (PoolUnit("AvgPool_0a_3x3", "avg"), _c("Conv2d_0b_1x1", 192, (1, 1))),
    )


MIXED_6A: tuple[Branch, ...] = (
    (_c("Conv2d_1a_1x1", 384, (3, 3), 2, "VALID"),),  # named 1x1 in slim, but a 3x3/2 conv
    (_c("Conv2d_0a_1x1", 64, (1, 1)), _c("Conv2d_0b_3x3", 96, (3, 3)), _c("Conv2d_1a_1x1", 96, (3, 3), 2, "VALID")),
    (PoolUnit("MaxPool_1a_3x3", "max", 2, "VALID"),),
)

MIXED_BLOCKS: tuple[tuple[str, tuple[Branch, ...]], ...] = (
    ("Mixed_5b", _mixed_5(("Conv2d_0a_1x1", "Conv2d_0b_5x5"), 32)),
    ("Mixed_5c", _mixed_5(("Conv2d_0b_1x1", "Conv_1_0c_5x5"), 64)),  # the scope-name quirk of slim
    ("Mixed_5d", _mixed_5(("Conv2d_0a_1x1", "Conv2d_0b_5x5"), 64)),
    ("Mixed_6a", MIXED_6A),
    ("Mixed_6b", _mixed_6(128)),
    ("Mixed_6c", _mixed_6(160)),
    ("Mixed_6d", _mixed_6(160)),
    ("Mixed_6e", _mixed_6(192)),
)

ENDPOINTS: tuple[str, ...] = tuple(u.name for u in STEM) + tuple(name for name, _ in MIXED_BLOCKS)


def conv_unit_paths() -> tuple[tuple[str, ...], ...]:
    """Module path of every conv unit in forward order, e.g. ("Mixed_5b", "Branch_1", "Conv2d_0b_5x5")."""
    paths: list[tuple[str, ...]] = [(u.name,) for u in STEM if isinstance(u, ConvUnit)]
    for block_name, branches in MIXED_BLOCKS:
        for b, branch in enumerate(branches):
            paths += [(block_name, f"Branch_{b}", u.name) for u in branch if isinstance(u, ConvUnit)]
    return tuple(paths)


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF's SAME padding of one spatial axis: output ceil(size/stride), total//2 before, the rest after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _padding(shape: Sequence[int], window: tuple[int, int], stride: int, padding: str) -> list[tuple[int, int]]:
    if padding == "VALID":
        return [(0, 0), (0, 0)]
    if padding == "SAME":
        return [tf_same_padding(shape[1], window[0], stride), tf_same_padding(shape[2], window[1], stride)]
    raise ValueError(f"unknown padding {padding!r}; use 'SAME' or 'VALID'")


def _output_size(size: int, window: int, stride: int, padding: str) -> int:
    if padding == "SAME":
        return -(-size // stride)
    return (size - window) // stride + 1


def feature_size(size: int) -> int:
    """Spatial size of Mixed_6e for an input side of `size` (<= 0: the input is too small)."""
    for unit in STEM + (MIXED_6A[0][0],):  # Mixed blocks are SAME, stride 1, except Mixed_6a's /2
        window = unit.kernel[0] if isinstance(unit, ConvUnit) else unit.window[0]
        size = _output_size(size, window, unit.stride, unit.padding)
        if size <= 0:
            return size
    return size


# Smallest input side that still reaches Mixed_6e (43: 43 -> 21 -> 19 -> 19 -> 9 -> 9 -> 7 -> 3 -> 1).
MIN_INPUT_SIZE: int = next(s for s in range(1, 512) if feature_size(s) >= 1)


def conv_hwio(x: jax.Array, kernel: jax.Array, stride: int, pads: Sequence[tuple[int, int]],
              dtype: Any = jnp.float32) -> jax.Array:
    """NHWC x HWIO convolution with explicit (before, after) padding per spatial axis."""
    return jax.lax.conv_general_dilated(
        x.astype(dtype), kernel.astype(dtype), (stride, stride), list(pads),
        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def avg_pool_same(x: jax.Array, window: tuple[int, int] = (3, 3), stride: int = 1) -> jax.Array:
    """TF SAME average pool: the padded positions are excluded from the divisor."""
    pads = _padding(x.shape, window, stride, "SAME")
    return nn.avg_pool(x, window, strides=(stride, stride), padding=pads, count_include_pad=False)


def _pool(x: jax.Array, unit: PoolUnit) -> jax.Array:
    if unit.kind == "avg":
        if unit.padding != "SAME":
            raise ValueError(f"{unit.name}: only SAME average pools are used in Inception-v3")
        return avg_pool_same(x, unit.window, unit.stride)
    pads = _padding(x.shape, unit.window, unit.stride, unit.padding)
    return nn.max_pool(x, unit.window, strides=(unit.stride, unit.stride), padding=pads)


class ConvBN(nn.Module):
    """conv without bias -> center-only BatchNorm (eps 1e-3) -> ReLU6; params `kernel` + `BatchNorm`."""

    features: int
    kernel_size: tuple[int, int]
    stride: int = 1
    padding: str = "SAME"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.truncated_normal(KERNEL_STDDEV),
                            (*self.kernel_size, x.shape[-1], self.features))
        y = conv_hwio(x, kernel, self.stride, _padding(x.shape, self.kernel_size, self.stride, self.padding),
                      self.dtype)
        y = nn.BatchNorm(use_running_average=not train, use_scale=False, epsilon=BN_EPSILON,
                         momentum=BN_MOMENTUM, use_fast_variance=False, dtype=self.dtype,
                         name="BatchNorm")(y)
        return nn.relu6(y)


def _apply_unit(x: jax.Array, unit: Unit, train: bool, dtype: Any) -> jax.Array:
    """Apply one unit; call inside a parent's compact method (the ConvBN registers there)."""
    if isinstance(unit, PoolUnit):
        return _pool(x, unit)
    return ConvBN(unit.features, unit.kernel, unit.stride, unit.padding, dtype, name=unit.name)(x, train)


class InceptionBranch(nn.Module):
    """One branch of a Mixed block: its units in sequence."""

    units: Branch
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        for unit in self.units:
            x = _apply_unit(x, unit, train, self.dtype)
        return x


class MixedBlock(nn.Module):
    """An Inception Mixed block: branches Branch_0.. concatenated in order on the channel axis."""

    branches: tuple[Branch, ...]
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        outs = [InceptionBranch(units, self.dtype, name=f"Branch_{b}")(x, train)
                for b, units in enumerate(self.branches)]
        return jnp.concatenate(outs, axis=-1)


class InceptionV3(nn.Module):
    """TF-slim `inception_v3_base` up to `final_endpoint` (Mixed_6e by default), ReLU6 variant.

    Attributes:
      final_endpoint: one of `ENDPOINTS`.
      dtype: computation dtype; parameters stay float32.

    Call:
      images: float[B, H, W, 3] (Magenta feeds RGB in [0, 1] as is), H, W >= `MIN_INPUT_SIZE` for Mixed_6e.
      train: BatchNorm uses batch statistics (and updates `batch_stats`, pass `mutable=["batch_stats"]`)
        when True, the moving averages when False.

    Returns:
      the endpoint's features, [B, h, w, C]; Mixed_6e: C = 768, h = `feature_size(H)`.
    """

    final_endpoint: str = "Mixed_6e"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        if self.final_endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {self.final_endpoint!r}; choose one of {ENDPOINTS}")
        check_images(images, "images", min_size=MIN_INPUT_SIZE if self.final_endpoint == "Mixed_6e" else 0,
                     model=f"InceptionV3 up to {self.final_endpoint}")
        x = images
        for unit in STEM:
            x = _apply_unit(x, unit, train, self.dtype)
            if unit.name == self.final_endpoint:
                return x
        for block_name, branches in MIXED_BLOCKS:
            x = MixedBlock(branches, self.dtype, name=block_name)(x, train)
            if block_name == self.final_endpoint:
                return x
        raise AssertionError("unreachable: endpoint validated above")

