"""Properties and reference parity of jax_ast.losses (docs/losses.md, The bound and Balanced loss)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jax
import jax.numpy as jnp

import jax_ast.losses as L
from jax_ast.models.vgg import VGG

LAYERS = ("relu1_2", "relu2_2")


def random_feats(seed, *, signed=False, batch=2, shapes=((6, 5, 4), (3, 3, 7)), scale=1.0):
    """Feature dicts for LAYERS with the given (H, W, C) shapes; non-negative unless `signed`."""
    rng = np.random.default_rng(seed)
    feats = {}
    for layer, (h, w, c) in zip(LAYERS, shapes):
        x = rng.normal(size=(batch, h, w, c)) * scale
        feats[layer] = jnp.asarray(x if signed else np.maximum(x, 0.0), jnp.float32)
    return feats


def np_gram(x):
    b, h, w, c = x.shape
    f = np.asarray(x, np.float64).reshape(b, h * w, c)
    return np.einsum("bnc,bnd->bcd", f, f)


def np_reference(style, output, layer, gram_div=1.0):
    """Independent float64 NumPy implementation of classic, bound and balanced for one layer."""
    a, b = np_gram(style[layer]) / gram_div, np_gram(output[layer]) / gram_div
    c = a.shape[-1]
    classic = ((a - b) ** 2).mean(axis=(1, 2))
    bound = ((a ** 2).sum(axis=(1, 2)) + (b ** 2).sum(axis=(1, 2))) / (c * c)
    balanced = ((a - b) ** 2).sum(axis=(1, 2)) / ((a ** 2).sum(axis=(1, 2)) + (b ** 2).sum(axis=(1, 2)))
    return classic, bound, balanced


seeds = st.integers(0, 2**31 - 1)


@settings(max_examples=25, deadline=None)
@given(seed=seeds, signed=st.booleans())
def test_balanced_in_unit_interval_and_bounded_classic(seed, signed):
    style, output = random_feats(seed, signed=signed), random_feats(seed + 1, signed=signed)
    _, balanced = L.balanced_style_loss(style, output, layers=LAYERS)
    _, classic = L.classic_style_loss(style, output, layers=LAYERS)
    _, bound = L.style_loss_bound(style, output, layers=LAYERS)
    for layer in LAYERS:
        value = np.asarray(balanced[f"balanced/{layer}"])
        assert np.all(value >= 0.0) and np.all(value <= 1.0 + 1e-6), value
        assert np.all(np.asarray(classic[f"classic/{layer}"]) <= np.asarray(bound[f"bound/{layer}"]) * (1 + 1e-5))


@settings(max_examples=15, deadline=None)
@given(seed=seeds, signed=st.booleans(), log_scale=st.floats(-3, 3))
def test_scale_invariance_of_balanced_and_k4_scaling_of_classic(seed, signed, log_scale):
    k = float(10.0 ** log_scale)
    style, output = random_feats(seed, signed=signed), random_feats(seed + 7, signed=signed)
    scaled_style = {n: v * k for n, v in style.items()}
    scaled_output = {n: v * k for n, v in output.items()}
    base, _ = L.balanced_style_loss(style, output, layers=LAYERS)
    scaled, _ = L.balanced_style_loss(scaled_style, scaled_output, layers=LAYERS)
    np.testing.assert_allclose(scaled, base, rtol=1e-5)
    classic, _ = L.classic_style_loss(style, output, layers=LAYERS)
    classic_scaled, _ = L.classic_style_loss(scaled_style, scaled_output, layers=LAYERS)
    np.testing.assert_allclose(classic_scaled, classic * k ** 4, rtol=1e-4)


@pytest.mark.parametrize("gram_norm", ["none", "hw", "chw"])
def test_balanced_is_classic_over_bound_for_every_gram_norm(gram_norm):
    style, output = random_feats(3), random_feats(4)
    _, classic = L.classic_style_loss(style, output, layers=LAYERS, gram_norm=gram_norm)
    _, bound = L.style_loss_bound(style, output, layers=LAYERS, gram_norm=gram_norm)
    _, balanced = L.balanced_style_loss(style, output, layers=LAYERS)
    for layer in LAYERS:
        ratio = np.asarray(classic[f"classic/{layer}"]) / np.asarray(bound[f"bound/{layer}"])
        np.testing.assert_allclose(ratio, balanced[f"balanced/{layer}"], rtol=1e-5)


def test_zero_when_grams_equal_and_one_when_channel_disjoint():
    style = random_feats(5)
    # A spatial permutation leaves the Gram matrix unchanged.
    permuted = {n: v[:, ::-1, ::-1, :] for n, v in style.items()}
    total, _ = L.balanced_style_loss(style, permuted, layers=LAYERS)
    np.testing.assert_allclose(total, 0.0, atol=1e-6)
    # Channels active in S are never active in P: F_S^T F_P = 0 -> balanced = 1 per layer.
    disjoint_style, disjoint_output = {}, {}
    for n, v in style.items():
        half = v.shape[-1] // 2
        disjoint_style[n] = v.at[..., half:].set(0.0)
        disjoint_output[n] = jnp.abs(v[..., ::-1]).at[..., : v.shape[-1] - half].set(0.0) + 0.0
    _, parts = L.balanced_style_loss(disjoint_style, disjoint_output, layers=LAYERS)
    for layer in LAYERS:
        np.testing.assert_allclose(parts[f"balanced/{layer}"], 1.0, rtol=1e-6)


@pytest.mark.parametrize("signed", [False, True])
def test_parity_with_float64_numpy(signed):
    style, output = random_feats(11, signed=signed), random_feats(12, signed=signed)
    for gram_norm, divisor in (("none", None), ("hw", "hw"), ("chw", "chw")):
        classic_total, classic = L.classic_style_loss(style, output, layers=LAYERS, gram_norm=gram_norm)
        _, bound = L.style_loss_bound(style, output, layers=LAYERS, gram_norm=gram_norm)
        balanced_total, balanced = L.balanced_style_loss(style, output, layers=LAYERS)
        expected_classic_total = 0.0
        for layer in LAYERS:
            _, h, w, c = style[layer].shape
            div = {None: 1.0, "hw": h * w, "chw": c * h * w}[divisor]
            ref_classic, ref_bound, ref_balanced = np_reference(style, output, layer, div)
            np.testing.assert_allclose(classic[f"classic/{layer}"], ref_classic, rtol=1e-5)
            np.testing.assert_allclose(bound[f"bound/{layer}"], ref_bound, rtol=1e-5)
            np.testing.assert_allclose(balanced[f"balanced/{layer}"], ref_balanced, rtol=1e-5)
            expected_classic_total = expected_classic_total + ref_classic
        np.testing.assert_allclose(classic_total, expected_classic_total, rtol=1e-5)


def test_weights_and_breakdown_keys():
    style, output = random_feats(1), random_feats(2)
    total, parts = L.balanced_style_loss(style, output, layers=LAYERS, weights={"relu1_2": 2.0, "relu2_2": 0.5})
    assert set(parts) == {"balanced/relu1_2", "balanced/relu2_2"}
    assert total.shape == (2,)
    np.testing.assert_allclose(total, 2.0 * parts["balanced/relu1_2"] + 0.5 * parts["balanced/relu2_2"], rtol=1e-6)
    with pytest.raises(ValueError, match="no weight given"):
        L.balanced_style_loss(style, output, layers=LAYERS, weights={"relu1_2": 1.0})
    with pytest.raises(KeyError, match="available"):
        L.classic_style_loss(style, output, layers=("relu9_9",))


def test_all_zero_features_are_finite_including_gradients():
    zeros = {n: jnp.zeros_like(v) for n, v in random_feats(0).items()}
    for fn in (L.balanced_style_loss, L.classic_style_loss, L.style_loss_bound, L.mean_std_style_loss):
        layers = LAYERS
        total, _ = fn(zeros, zeros, layers=layers)
        assert np.all(np.isfinite(total))
        grad = jax.grad(lambda out: fn(zeros, out, layers=layers)[0].sum())(zeros)
        assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grad))


def test_large_unnormalised_grams_do_not_overflow_in_bf16():
    # relu1_2-like magnitudes of a 128x128 image: raw Gram entries ~1e10-1e11.
    style = {"relu1_2": jnp.full((1, 128, 128, 8), 300.0, jnp.bfloat16)}
    output = {"relu1_2": jnp.full((1, 128, 128, 8), 200.0, jnp.bfloat16)}
    total, _ = L.balanced_style_loss(style, output, layers=("relu1_2",))
    a, b = 300.0 ** 2 * 128 * 128, 200.0 ** 2 * 128 * 128
    np.testing.assert_allclose(total, (a - b) ** 2 / (a * a + b * b), rtol=1e-2)
    classic, _ = L.classic_style_loss(style, output, layers=("relu1_2",))
    np.testing.assert_allclose(classic, (a - b) ** 2, rtol=1e-2)  # every Gram entry differs by a - b


def test_gradients_match_central_finite_differences_in_float64():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        style = {"relu1_2": jnp.asarray(np.abs(rng.normal(size=(1, 3, 3, 2))), jnp.float64)}
        output = jnp.asarray(np.abs(rng.normal(size=(1, 3, 3, 2))), jnp.float64)
        for fn in (lambda o: L.balanced_style_loss(style, {"relu1_2": o}, layers=("relu1_2",), eps=0.0)[0].sum(),
                   lambda o: L.classic_style_loss(style, {"relu1_2": o}, layers=("relu1_2",))[0].sum()):
            analytic = np.asarray(jax.grad(fn)(output))
            numeric = np.zeros_like(analytic)
            step = 1e-6
            for index in np.ndindex(output.shape):
                bump = np.zeros(output.shape)
                bump[index] = step
                numeric[index] = (fn(output + bump) - fn(output - bump)) / (2 * step)
            np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_detach_denominator_changes_gradient_not_value():
    style, output = random_feats(21), random_feats(22)

    def loss(out, detach):
        return L.balanced_style_loss(style, out, layers=LAYERS, detach_denominator=detach)[0].sum()

    np.testing.assert_allclose(loss(output, True), loss(output, False), rtol=1e-7)
    g_full, g_detached = jax.grad(loss)(output, False), jax.grad(loss)(output, True)
    diff = max(float(jnp.max(jnp.abs(g_full[n] - g_detached[n]))) for n in LAYERS)
    assert diff > 1e-4 * max(float(jnp.max(jnp.abs(g_full[n]))) for n in LAYERS)


def test_mean_std_loss_matches_torch_port_convention():
    style, output = random_feats(31, signed=True), random_feats(32, signed=True)
    total, parts = L.mean_std_style_loss(style, output, layers=LAYERS)
    expected = 0.0
    for layer in LAYERS:
        s, o = np.asarray(style[layer], np.float64), np.asarray(output[layer], np.float64)
        ms, mo = s.mean(axis=(1, 2)), o.mean(axis=(1, 2))
        ss = np.sqrt(s.var(axis=(1, 2), ddof=1) + 1e-5)
        so = np.sqrt(o.var(axis=(1, 2), ddof=1) + 1e-5)
        layer_ref = ((mo - ms) ** 2).mean(axis=1) + ((so - ss) ** 2).mean(axis=1)
        np.testing.assert_allclose(parts[f"mean_std/{layer}"], layer_ref, rtol=1e-5)
        expected = expected + layer_ref
    np.testing.assert_allclose(total, expected, rtol=1e-5)


def test_total_variation_matches_magenta_formula():
    images = np.random.default_rng(0).uniform(size=(2, 5, 7, 3))
    dy = ((images[:, 1:] - images[:, :-1]) ** 2).sum(axis=(1, 2, 3)) / (4 * 7 * 3)
    dx = ((images[:, :, 1:] - images[:, :, :-1]) ** 2).sum(axis=(1, 2, 3)) / (5 * 6 * 3)
    np.testing.assert_allclose(L.total_variation_loss(jnp.asarray(images, jnp.float32)), 0.5 * (dy + dx), rtol=1e-5)


@pytest.fixture(scope="module")
def tiny_vgg16():
    net = VGG("vgg16")
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
    return net, params


def test_loss_terms_entry_point(tiny_vgg16):
    net, params = tiny_vgg16
    rng = np.random.default_rng(0)
    content, style = (jnp.asarray(rng.uniform(size=(2, 32, 32, 3)), jnp.float32) for _ in range(2))
    output = content * 0.5 + style * 0.5
    jitted = L.compute_loss_terms(net, params, content, style, output)
    eager = L.loss_terms(net, params, content, style, output)
    for key in ("content", "classic", "bound", "balanced", "mean_std", "balanced/relu4_3", "classic/relu1_2"):
        assert jitted[key].shape == (2,)
        np.testing.assert_allclose(jitted[key], eager[key], rtol=2e-4)
    # Direct calls of the plain functions give the same numbers.
    feats = net.clone(taps=L.PAPER_STYLE_LAYERS).apply(params, style)
    out_feats = net.clone(taps=L.PAPER_STYLE_LAYERS).apply(params, output)
    direct, _ = L.balanced_style_loss(feats, out_feats)
    np.testing.assert_allclose(jitted["balanced"], direct, rtol=1e-4)
    # output == style: balanced and classic are exactly zero; different-size inputs take the unstacked path.
    same = L.compute_loss_terms(net, params, content, style, style)
    np.testing.assert_allclose(same["balanced"], 0.0, atol=1e-6)
    small_style = style[:, :24, :24]
    other = L.compute_loss_terms(net, params, content, small_style, output)
    assert np.all(np.isfinite(other["classic"]))
