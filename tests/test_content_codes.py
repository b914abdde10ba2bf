"""`encode_content` + `stylize_codes`: a content encoded once and stylised with many styles, for every network.

Random weights (plumbing only): the check is that the two halves compose to `stylize_with_code` exactly.
"""

import jax
import numpy as np
import pytest

from eval.inference.loading import random_model

CONTENT_SHAPE, STYLE_SHAPE = (2, 45, 51, 3), (2, 48, 48, 3)  # off every multiple (crops); >= 43 (Inception)
ARCHS = {"adain": {}, "sanet": {}, "linear": {"variant": "r31"}, "magenta": {}}
# Magenta at alpha < 1 also runs Inception on the content (slow here; tests/test_magenta.py covers it).
ALPHA = {"adain": 0.7, "sanet": 0.7, "linear": 0.7, "magenta": 1.0}


def _images(seed, shape):
    return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


@pytest.mark.parametrize("arch", ARCHS)
def test_stylize_codes_of_encode_content_is_stylize_with_code(arch):
    model, variables = random_model(arch, **ARCHS[arch])  # cached per process: other tests reuse the init
    content, style = _images(0, CONTENT_SHAPE), _images(1, STYLE_SHAPE)
    height, width = CONTENT_SHAPE[1:3]
    code = model.apply(variables, style, method=type(model).encode_style)

    def with_code(c, s):
        return model.apply(variables, c, s, ALPHA[arch], method=type(model).stylize_with_code)

    def from_codes(content_code, s):
        return model.apply(variables, content_code, s, ALPHA[arch], height, width, method=type(model).stylize_codes)

    def encode(c):
        return model.apply(variables, c, method=type(model).encode_content)

    expected = jax.jit(with_code)(content, code)
    assert expected.shape == CONTENT_SHAPE
    # one program: the same computation, bit for bit
    np.testing.assert_array_equal(jax.jit(lambda c, s: from_codes(encode(c), s))(content, code), expected)
    # a content code computed once, in its own program, then reused with another style: the cached path
    content_code = jax.jit(encode)(content)
    assert all(np.shape(leaf)[0] == 2 for leaf in jax.tree.leaves(content_code))
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(jax.jit(from_codes)(content_code, code), expected, rtol=0, atol=1e-6 * scale)
    other = model.apply(variables, _images(2, STYLE_SHAPE), method=type(model).encode_style)
    np.testing.assert_allclose(jax.jit(from_codes)(content_code, other), jax.jit(with_code)(content, other),
                               rtol=0, atol=1e-6 * scale)
