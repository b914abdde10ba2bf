"""The shared building blocks of `jax_ast.models.layers` against their plain JAX definitions."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ast.models.layers import max_pool_2x2, reflect_pad


def _reference_pool(x: jax.Array, ceil_mode: bool) -> jax.Array:
    """Flax's reduce-window max pool, -inf padded on the bottom/right for ceil_mode (torch's ceil_mode=True)."""
    if ceil_mode:
        x = jnp.pad(x, ((0, 0), (0, x.shape[1] % 2), (0, x.shape[2] % 2), (0, 0)), constant_values=-jnp.inf)
    return nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")


@pytest.mark.parametrize("shape", [(2, 8, 6, 3), (1, 7, 9, 4)])
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("values", ["ties", "normal"])
def test_max_pool_matches_reduce_window_values_and_gradients(shape, ceil_mode, values):
    rng = np.random.default_rng(0)
    # Small integers make most windows hold tied maxima: the gradient must go to the first one, row-major.
    x = rng.integers(0, 3, shape) if values == "ties" else rng.standard_normal(shape)
    x = jnp.asarray(x, jnp.float32)
    out, pull = jax.vjp(lambda v: max_pool_2x2(v, ceil_mode=ceil_mode), x)
    expected, expected_pull = jax.vjp(lambda v: _reference_pool(v, ceil_mode), x)
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)
    grad = jnp.asarray(rng.standard_normal(out.shape), jnp.float32)
    np.testing.assert_array_equal(pull(grad)[0], expected_pull(grad)[0])


def test_max_pool_gradient_goes_to_one_position_per_window():
    x = jnp.zeros((1, 2, 2, 1))  # one window, four tied maxima
    grad = jax.grad(lambda v: max_pool_2x2(v).sum())(x)
    np.testing.assert_array_equal(grad[0, :, :, 0], [[1.0, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize("shape,pad", [((2, 6, 7, 3), 1), ((1, 9, 8, 2), 4), ((1, 5, 5, 1), 2)])
def test_reflect_pad_matches_jnp_pad_values_and_gradients(shape, pad):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    reference = lambda v: jnp.pad(v, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")  # noqa: E731
    out, pull = jax.vjp(lambda v: reflect_pad(v, pad), x)
    expected, expected_pull = jax.vjp(reference, x)
    np.testing.assert_array_equal(out, expected)
    grad = jnp.asarray(rng.standard_normal(out.shape), jnp.float32)
    np.testing.assert_allclose(pull(grad)[0], expected_pull(grad)[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("argv", [["--arch", "vgg"], ["--size", "40"], ["--rounds", "0"]])
def test_profile_step_rejects_bad_arguments_with_one_message(argv, capsys):
    from benchmarks import profile_step

    with pytest.raises(SystemExit) as exit_info:
        profile_step.main(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err
