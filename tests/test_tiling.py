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


def _untiled_bridge(model_and_variables, size):
    """(stylizer, content [1, h, w, 3], style code, untiled output) for the bundled bridge at `size` with Starry
    Night at 64 px."""
    content = imageio.load_image(bundled_dir("content") / "golden_gate_bridge_fog.jpg", size=size, mode="exact")
    style = imageio.load_image(bundled_dir("style") / "van_gogh_starry_night.jpg", size=(64, 64), mode="exact")
    stylizer = Stylizer(*model_and_variables)
    code = stylizer.encode_styles(style[None])
    return stylizer, content[None], code, stylizer.stylize_with_codes(content[None], code)


def test_tiled_adain_stays_within_tolerance_of_untiled(visible_adain):
    stylizer, content, code, untiled = _untiled_bridge(visible_adain, (96, 96))
    assert untiled.std() > 0.02  # a visible image, so the tolerance means something
    tiled_stylizer = TiledStylizer(stylizer, TileConfig(64, 16, statistics="per-tile"))
    tiled = tiled_stylizer.stylize_with_codes(content, code)
    assert tiled.shape == untiled.shape
    difference = np.abs(tiled - untiled)
    assert difference.mean() < MEAN_TOLERANCE and difference.max() < MAX_TOLERANCE
    assert difference.mean() > 1e-4  # tiles really see local statistics (not a silent untiled run)
    # The pair interface the CLI uses gives the same image, and encodes the style once on the whole image.
    (positions, result), = tiled_stylizer.stylize_pairs([content[0]], [jax.tree.map(lambda x: x[0], code)], [(0, 0)])
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


# Shared statistics (eval.inference.tile_statistics, jax_ast.shared_stats).

def test_gathered_window_sums_equal_the_whole_maps_moments():
    """Cores of overlapping tiles cover every position once: combined, they give the whole map's moments."""
    from eval.inference.tile_statistics import core_windows
    from jax_ast.ops import channel_mean_std, gram
    from jax_ast.shared_stats import _window_sums, combine
    feats = np.random.default_rng(0).normal(2.0, 3.0, (1, 70, 100, 5)).astype(np.float32)
    config = TileConfig(32, 12)
    layout = tiles(70, 100, config)
    windows = core_windows(tile_starts(70, 32, 12), tile_starts(100, 32, 12), 32, 32, 70, 100)
    batch = np.concatenate([feats[:, top:top + 32, left:left + 32] for top, left, _ in layout])
    sums = jax.tree.map(np.asarray, _window_sums(batch, windows, gram=False))
    assert sums["count"].sum() == 70 * 100
    mean, std = combine(sums, "moments", 1, 1e-5)
    whole_mean, whole_std = channel_mean_std(feats, ddof=1, eps=1e-5)
    np.testing.assert_allclose(mean, whole_mean, atol=1e-5)
    np.testing.assert_allclose(std, whole_std, atol=1e-5)
    outer = combine(jax.tree.map(np.asarray, _window_sums(batch, windows, gram=True)), "gram", 0, 0.0)
    np.testing.assert_allclose(outer, gram(feats, "hw"), rtol=1e-5)


def test_injecting_the_images_own_statistics_changes_nothing(visible_adain):
    """The site plumbing: the whole image's own relu4_1 moments injected give the default output."""
    from jax_ast.ops import channel_mean_std
    from jax_ast.shared_stats import SiteHook, collecting
    model, variables = visible_adain
    rng = np.random.default_rng(1)
    content, style = rng.random((1, 64, 64, 3), dtype=np.float32), rng.random((1, 64, 64, 3), dtype=np.float32)
    code = model.apply(variables, style, method=type(model).encode_style)
    own = channel_mean_std(model.apply(variables, content, method=type(model).encode_content), ddof=1, eps=1e-5)
    default = model.apply(variables, content, code, method=type(model).stylize_with_code)
    with collecting(SiteHook(injected=(own,))):
        injected = model.apply(variables, content, code, method=type(model).stylize_with_code)
    np.testing.assert_allclose(injected, default, atol=1e-6)


# AdaIN at 64 x 96 px, two 64 px tiles overlapping by 32: measured against untiled, per-tile 0.0024 mean / 0.013 max,
# shared (exact) statistics 0.0012 / 0.013 (pixel values in [0, 1], weights of `visible_adain`, output std 0.025). The
# rest is where the VGG encoder's and decoder's receptive fields reach a tile's border (zero/reflect padding).
SHARED_MEAN_TOLERANCE, SHARED_MAX_TOLERANCE = 0.0015, 0.02
# Mobile Magenta, one whole-image tile at 48 x 64 px: measured 7.7e-7 max from untiled (output std 0.13); swapping
# two sites' gathered statistics (residual2_conv2 and residual3_conv1) moves it by 0.82.
MAGENTA_TOLERANCE = 1e-5


def test_tiles_with_shared_statistics_approach_the_untiled_image(visible_adain):
    stylizer, content, code, untiled = _untiled_bridge(visible_adain, (64, 96))
    errors = {}
    for mode in ("per-tile", "exact"):
        tiled = TiledStylizer(stylizer, TileConfig(64, 16, statistics=mode)).stylize_with_codes(content, code)
        errors[mode] = np.abs(tiled - untiled)
    assert errors["exact"].mean() < SHARED_MEAN_TOLERANCE and errors["exact"].max() < SHARED_MAX_TOLERANCE
    assert errors["exact"].mean() < 0.6 * errors["per-tile"].mean()


def test_config_rejects_an_unknown_statistics_mode():
    with pytest.raises(ValueError, match="statistics must be one of"):
        TileConfig(64, 16, statistics="global")


def test_cli_tile_statistics_flag(tmp_path):
    rng = np.random.default_rng(0)
    imageio.save_image(tmp_path / "content.png", rng.random((80, 120, 3), dtype=np.float32))
    imageio.save_image(tmp_path / "style.png", rng.random((32, 32, 3), dtype=np.float32))
    assert _run(tmp_path, "--tile", "64", "--tile-overlap", "16", "--tile-statistics", "downscaled") == 0
    assert imageio.load_image(tmp_path / "out" / "content__style.png").shape == (80, 120, 3)


def test_magenta_gathers_its_thirteen_sites_in_order():
    """Mobile Magenta's 13 conditional-norm sites, gathered in 13 passes that each inject the sites before, over one
    tile that is the whole image: every gathered statistic is the image's own, so the output is the untiled one
    (an injection at the wrong site or out of order would change it by far more than the tolerance)."""
    from eval.inference.tile_statistics import SharedStatistics
    from jax_ast.pretrained import magenta_mobile
    magenta_mobile.wheel_files() or pytest.skip(f"{magenta_mobile.WHEEL} is not installed")
    stylizer, content, code, untiled = _untiled_bridge(magenta_mobile.load_magenta_mobile(), (48, 64))
    shared = SharedStatistics(stylizer, "exact")
    whole_tile = [(0, 0, np.ones((48, 64), np.float32))]
    injected = shared.gather(content[0], jax.tree.map(lambda leaf: np.asarray(leaf)[0], code), whole_tile,
                             np.array([[0, 1, 0, 1]], np.float32), alpha=1.0)
    assert len(injected) == 13
    np.testing.assert_allclose(shared.stylize(content, code, injected, alpha=1.0), untiled, atol=MAGENTA_TOLERANCE)
