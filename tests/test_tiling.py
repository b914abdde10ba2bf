"""Tiled high-resolution stylisation (`eval.inference.tiling`) and its CLI flags (`--tile`, `--attention-chunk`)."""

import jax
import numpy as np
import pytest

from eval.inference import loading
from eval.inference.batching import Stylizer
from eval.inference.tiling import TileConfig, TiledStylizer, ramp, stylize_tiled, tile_starts, tiles
from eval.stylize import cli as stylize
from jax_ast import imageio
from jax_ast.data import bundled_dir
from jax_ast.archs import build


@pytest.mark.parametrize("length, tile, overlap", [(96, 64, 16), (100, 32, 8), (64, 64, 16), (20, 64, 16),
                                                   (129, 64, 0)])
def test_tiles_cover_the_image_with_at_least_the_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    assert starts[0] == 0 and starts[-1] + size == length
    assert all(0 < b - a <= tile - overlap for a, b in zip(starts, starts[1:]))  # neighbours overlap enough


def test_ramps_of_an_exact_overlap_sum_to_one():
    left, right = ramp(64, 16, rise=False, fall=True), ramp(64, 16, rise=True, fall=False)
    np.testing.assert_allclose(left[-16:] + right[:16], 1.0, rtol=1e-6)
    assert left.min() > 0 and (left[:48] == 1).all()
    assert (ramp(64, 16, rise=False, fall=False) == 1).all()  # image borders are not feathered


@pytest.mark.parametrize("shape", [(96, 96), (70, 130), (40, 40)])
def test_pixelwise_functions_are_reproduced_exactly(shape):
    """The blending normalises by the summed weights, so a per-pixel map comes back unchanged."""
    content = np.random.default_rng(0).random((*shape, 3), dtype=np.float32)
    calls = []

    def square(batch):
        calls.append(batch.shape)
        return batch ** 2

    out = stylize_tiled(square, content, TileConfig(64, 16), tiles_per_call=3)
    np.testing.assert_allclose(out, content ** 2, rtol=1e-5, atol=1e-7)
    n_tiles = len(tiles(*shape, TileConfig(64, 16)))
    assert sum(batch[0] for batch in calls) == n_tiles and all(batch[0] <= 3 for batch in calls)
    assert len({batch[1:] for batch in calls}) == 1  # one tile shape: one compilation


def test_config_rejects_an_overlap_as_large_as_the_tile():
    with pytest.raises(ValueError, match="overlap must be in"):
        TileConfig(64, 64)


@pytest.fixture(scope="module")
def visible_adain():
    """Random AdaIN with its last conv rescaled (bias 0.5) so the output spans a visible range (std ~0.02):
    at random init it is ~1e-3, where any difference would look small."""
    model, variables = loading.load_model("adain", "random", seed=0)
    params = jax.tree.map(np.asarray, variables["params"])
    params["decoder"]["conv1_1"]["kernel"] = params["decoder"]["conv1_1"]["kernel"] * 100.0
    params["decoder"]["conv1_1"]["bias"] = np.full(3, 0.5, np.float32)
    return model, {"params": params}


# Tiled vs untiled AdaIN at 96 px, 64 px tiles overlapping by 16: each tile normalises its own content statistics,
# so the results differ; measured 0.0066 mean and 0.033 max (pixel values in [0, 1]) with the weights above.
# docs/high_resolution.md has the figures at 512 px with real weights.
MEAN_TOLERANCE, MAX_TOLERANCE = 0.01, 0.05


def test_tiled_adain_stays_within_tolerance_of_untiled(visible_adain):
    content = imageio.load_image(bundled_dir("content") / "golden_gate_bridge_fog.jpg", size=(96, 96), mode="exact")
    style = imageio.load_image(bundled_dir("style") / "van_gogh_starry_night.jpg", size=(64, 64), mode="exact")
    stylizer = Stylizer(*visible_adain)
    code = stylizer.encode_styles(style[None])
    untiled = stylizer.stylize_with_codes(content[None], code)
    assert untiled.std() > 0.02  # a visible image, so the tolerance means something
    tiled_stylizer = TiledStylizer(stylizer, TileConfig(64, 16))
    tiled = tiled_stylizer.stylize_with_codes(content[None], code)
    assert tiled.shape == untiled.shape
    difference = np.abs(tiled - untiled)
    assert difference.mean() < MEAN_TOLERANCE and difference.max() < MAX_TOLERANCE
    assert difference.mean() > 1e-4  # tiles really see local statistics (not a silent untiled run)
    # The pair interface the CLI uses gives the same image, and encodes the style once on the whole image.
    (positions, result), = tiled_stylizer.stylize_pairs([content], [jax.tree.map(lambda x: x[0], code)], [(0, 0)])
    assert positions == [0]
    np.testing.assert_allclose(result, tiled, rtol=1e-5, atol=1e-6)


def _run(tmp_path, *extra, arch="adain"):
    return stylize.main(["--arch", arch, "--checkpoint", "random", "--content", str(tmp_path / "content.png"),
                         "--style", str(tmp_path / "style.png"), "--out", str(tmp_path / "out"), "--size", "0",
                         "--no-progress", *extra])


def test_cli_tiles_a_large_content(tmp_path):
    rng = np.random.default_rng(0)
    imageio.save_image(tmp_path / "content.png", rng.random((80, 120, 3), dtype=np.float32))
    imageio.save_image(tmp_path / "style.png", rng.random((32, 32, 3), dtype=np.float32))
    assert _run(tmp_path, "--tile", "64", "--tile-overlap", "16") == 0
    assert imageio.load_image(tmp_path / "out" / "content__style.png").shape == (80, 120, 3)


@pytest.mark.parametrize("extra, message", [
    (["--tile", "64", "--tile-overlap", "64"], "--tile-overlap must be in [0, --tile)"),
    (["--tile", "-1"], "--tile must be 0 (off)"),
    (["--attention-chunk", "64"], "--attention-chunk is for the networks with attention (sanet), not adain"),
])
def test_cli_high_res_flag_errors(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as stop:
        _run(tmp_path, *extra)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_attention_chunk_reaches_sanet():
    model = build("sanet")
    assert model.chunk_size is None
    assert loading.with_attention_chunk(model, None).chunk_size == loading.DEFAULT_ATTENTION_CHUNK
    assert loading.with_attention_chunk(model, 256).chunk_size == 256
    assert loading.with_attention_chunk(model, 0).chunk_size is None
    adain = build("adain")
    assert loading.with_attention_chunk(adain, 256) is adain
