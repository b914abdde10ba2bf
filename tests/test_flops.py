"""The analytic FLOP counter of the benchmarks (`benchmarks.flops`) against hand counts and XLA's own count."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import flops
from benchmarks.devices import peak_bf16_tflops, percent_of_peak, torch_device
from jax_ast.models.vgg import VGG


def _conv(x, kernel, stride=1):
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def test_single_conv_is_two_macs_per_output_and_tap():
    x, kernel = jnp.ones((2, 16, 16, 3)), jnp.ones((3, 3, 3, 8))
    # 2 images x 16 x 16 outputs x 8 channels, each a 3x3x3 dot: 2 flops per multiply-accumulate.
    assert flops.count_flops(_conv, x, kernel) == 2 * (2 * 16 * 16 * 8) * (3 * 3 * 3)
    assert flops.count_flops(lambda a, k: _conv(a, k, 2), x, kernel) == 2 * (2 * 8 * 8 * 8) * 27


def test_grouped_conv_and_dot_general():
    x, kernel = jnp.ones((1, 8, 8, 4)), jnp.ones((3, 3, 2, 6))  # 2 groups: each output sees 2 input channels
    grouped = lambda a, k: jax.lax.conv_general_dilated(  # noqa: E731
        a, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=2)
    assert flops.count_flops(grouped, x, kernel) == 2 * (8 * 8 * 6) * (3 * 3 * 2)
    a, b = jnp.ones((5, 7, 11)), jnp.ones((5, 11, 13))
    assert flops.count_flops(lambda p, q: jnp.einsum("bij,bjk->bik", p, q), a, b) == 2 * 5 * 7 * 13 * 11


def test_nested_jaxprs_scan_cond_jit_and_pmap():
    a = jnp.ones((4, 4))
    one = 2 * 4 * 4 * 4
    assert flops.count_flops(jax.jit(lambda x: x @ x), a) == one
    scanned = lambda x: jax.lax.scan(lambda c, _: (c @ c, None), x, None, length=5)[0]  # noqa: E731
    assert flops.count_flops(scanned, a) == 5 * one
    branchy = lambda x, p: jax.lax.cond(p, lambda y: y @ y @ y, lambda y: y, x)  # noqa: E731
    assert flops.count_flops(branchy, a, True) == 2 * one  # the dearer branch
    assert flops.count_flops(jax.grad(lambda x: jnp.sum(jax.checkpoint(lambda y: y @ y)(x))), a) == 3 * one
    assert flops.count_flops(jax.pmap(lambda x: x @ x), a[None]) == one  # once per device, one device


def _vgg_block():
    """VGG-16's first block (conv1_1, conv1_2 at 64 channels), its params and one 32x32 image batch."""
    net = VGG("vgg16_slim", taps=("relu1_2",))
    images = jnp.asarray(np.random.default_rng(0).uniform(size=(2, 32, 32, 3)), jnp.float32)
    return net, net.init(jax.random.key(0), images), images


def test_vgg_block_forward_and_gradient_match_a_hand_count():
    net, params, images = _vgg_block()
    forward = lambda p, x: net.apply(p, x)["relu1_2"]  # noqa: E731
    hand = 2 * 2 * 32 * 32 * (64 * 3 * 9 + 64 * 64 * 9)  # conv1_1 (3 -> 64) and conv1_2 (64 -> 64), 3x3
    assert flops.count_flops(forward, params, images) == hand
    # Backward: a weight-gradient conv per layer, and an input-gradient conv for every layer but the first
    # (its input is a constant image), each as dear as its forward conv.
    grad = jax.grad(lambda p: jnp.sum(forward(p, images)))
    assert flops.count_flops(grad, params) == hand + hand + 2 * 2 * 32 * 32 * 64 * 64 * 9


def test_close_to_xla_cost_analysis():
    x, kernel = jnp.ones((2, 16, 16, 3)), jnp.ones((3, 3, 3, 8))
    valid = jax.jit(lambda a, k: jax.lax.conv_general_dilated(a, k, (1, 1), "VALID",
                                                              dimension_numbers=("NHWC", "HWIO", "NHWC")))
    xla = flops.xla_flops(valid, x, kernel)
    if xla is None:
        pytest.skip("this backend has no cost analysis")
    assert xla == flops.count_flops(valid, x, kernel)
    # With zero "SAME" padding XLA leaves out the taps that fall on the padding ((14 + 2 * 16) / 48 per
    # axis here); the analytic count keeps them, as a matrix unit computes them.
    padded_taps = (46 / 48) ** 2
    assert flops.xla_flops(jax.jit(_conv), x, kernel) == pytest.approx(flops.count_flops(_conv, x, kernel) * padded_taps)
    # A VGG block at 32 px: XLA's padding discount (-4 %) and its elementwise ops (bias, ReLU) nearly cancel.
    net, params, images = _vgg_block()
    forward = jax.jit(lambda p, x: net.apply(p, x)["relu1_2"])
    assert 0.95 < flops.xla_flops(forward, params, images) / flops.count_flops(forward, params, images) < 1.05


def test_peak_table():
    assert peak_bf16_tflops("NVIDIA H200") == peak_bf16_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert peak_bf16_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_bf16_tflops("TPU v5 lite") == 197.0 and peak_bf16_tflops("TPU v5") == 459.0
    assert peak_bf16_tflops("cpu") is None and percent_of_peak(1.0, "cpu") is None
    assert percent_of_peak(98.94, "NVIDIA H200") == pytest.approx(10.0)
    assert percent_of_peak(98.94, "NVIDIA H200", devices=2) == pytest.approx(5.0)


def test_torch_device_follows_jax_backend():
    assert torch_device("cpu")[0] == "cpu"
    device, why = torch_device("tpu")
    assert device is None and "jax-ast alone" in why
    torch = pytest.importorskip("torch")
    device, why = torch_device("gpu")  # CUDA when this torch has it, else jax-ast alone and the reason
    assert (device == "cuda") == torch.cuda.is_available() and why
    if device is None:
        assert "has no CUDA" in why
