"""Several styles in one image (interpolation, masks), `--list-archs` and the bare `eval.stylize` command.

Random weights (`eval.loading.random_model`): the checks are identities of the plumbing, which hold for any
weights. Images are 32-40 px. The runs without --weights use the installed Magenta mobile model, at 32-128 px.
"""

import dataclasses
import re
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from eval.inference import loading
from eval.stylize import presets
from eval.stylize import mixing as style_mixing
from eval.stylize import cli as stylize
from jax_ast import archs
from jax_ast.archs import ARCHS
from jax_ast.archs import build
from jax_ast.models.magenta import Magenta
from jax_ast.models.mixing import blend_regions, mix_codes, normalise_weights

REPO = Path(__file__).resolve().parents[1]
CONTENT = np.random.default_rng(0).random((1, 32, 40, 3), dtype=np.float32)
STYLES = [np.random.default_rng(seed).random((1, 32, 32, 3), dtype=np.float32) for seed in (1, 2)]
LEFT = np.zeros((1, 32, 40), np.float32)
LEFT[:, :, :16] = 1.0


def _bound(arch):
    """(model method name, *args, alpha) -> float numpy image for CONTENT, and the codes of STYLES.

    Magenta's codes are random 100-d vectors and its variables hold only the parts a code passes through:
    its style encoder (Inception-v3) would take most of this file's time to initialise and compile.
    """
    if arch == "magenta":
        model = build("magenta")
        codes = list(jax.random.normal(jax.random.key(3), (2, 1, model.bottleneck)))
        variables = model.init(jax.random.key(0), CONTENT, codes[0], method=Magenta.stylize_with_code)
    else:
        model, variables = loading.random_model(arch)
        codes = [model.apply(variables, style, method=type(model).encode_style) for style in STYLES]

    def apply(method, *args, alpha):
        return np.asarray(model.apply(variables, CONTENT, *args, alpha, method=getattr(type(model), method)))

    return apply, codes


def _close(actual, expected, tolerance=1e-5):
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance * np.abs(expected).max())


@pytest.mark.parametrize("arch", ARCHS)
def test_mixing_and_masks_reduce_to_the_single_style(arch):
    """One-hot weights and a mask with one style everywhere both give the single-style image; a real mix
    differs from it, and weights mean the same up to scale. (Codes are encoded once: the `*_mixed` and
    `*_regions` methods are what `stylize_interpolated` and `stylize_masked` call after encoding.)"""
    apply, codes = _bound(arch)
    alpha = 1.0 if arch == "magenta" else 0.8  # Magenta's alpha < 1 needs Inception (the content's own code)
    single = apply("stylize_with_code", codes[1], alpha=alpha)
    _close(apply("stylize_mixed", codes, np.asarray([0.0, 1.0]), alpha=alpha), single)
    ones = np.ones_like(LEFT)  # an all-white foreground mask: style 1 everywhere, style 0 nowhere
    _close(apply("stylize_regions", codes[::-1], [ones, 1.0 - ones], alpha=alpha), single)
    if arch != "adain":  # (AdaIN normalises each region by its own content statistics, as the original)
        _close(apply("stylize_regions", [codes[1]] * 2, [LEFT, 1.0 - LEFT], alpha=alpha), single)
    if arch == "magenta":  # whole renders blended per pixel: each region is exactly its style's image
        masked = apply("stylize_regions", codes, [LEFT, 1.0 - LEFT], alpha=alpha)
        _close(masked[:, :, :16], apply("stylize_with_code", codes[0], alpha=alpha)[:, :, :16])
        _close(masked[:, :, 16:], single[:, :, 16:])
    mixed = apply("stylize_mixed", codes, np.asarray([1.0, 3.0]), alpha=alpha)
    _close(apply("stylize_mixed", codes, np.asarray([10.0, 30.0]), alpha=alpha), mixed)
    assert np.abs(mixed - single).max() > 1e-3 * np.abs(single).max()


def test_interpolation_encodes_the_styles():
    """`stylize_interpolated` (styles in) equals `stylize_mixed` with their codes; SANet mixes its attended
    features, which differs from attending to a mixed code."""
    apply, codes = _bound("sanet")
    weights = np.asarray([0.25, 0.75])
    mixed = apply("stylize_mixed", codes, weights, alpha=1.0)
    _close(apply("stylize_interpolated", STYLES, weights, alpha=1.0), mixed)
    attended_to_mixed_code = apply("stylize_with_code", mix_codes(codes, weights), alpha=1.0)
    assert np.abs(attended_to_mixed_code - mixed).max() > 1e-3 * np.abs(mixed).max()


def test_blend_regions():
    """Each region's values where its mask is on, overlaps renormalised, the uncovered rest from the base."""
    base, first, second = (np.full((1, 2, 3, 1), value, np.float32) for value in (1.0, 10.0, 100.0))
    mask_first = np.asarray([[[1, 1, 0], [0.5, 1, 0]]], np.float32)
    mask_second = np.asarray([[[0, 1, 0], [0.5, 0, 0.25]]], np.float32)
    blended = np.asarray(blend_regions(base, [first, second], [mask_first, mask_second]))[0, :, :, 0]
    np.testing.assert_allclose(blended, [[10, 55, 1], [55, 10, 25.75]], rtol=1e-6)


def test_weights_are_normalised_and_checked():
    np.testing.assert_allclose(normalise_weights([7.0, 3.0], 2), [0.7, 0.3], rtol=1e-6)
    np.testing.assert_allclose(normalise_weights([0.0, 5.0, 0.0], 3), [0.0, 1.0, 0.0])
    for bad in ([1.0, -0.5], [0.0, 0.0], [np.nan, 1.0]):
        with pytest.raises(ValueError, match="non-negative with a positive sum"):
            normalise_weights(bad, 2)
    with pytest.raises(ValueError, match="one weight per style"):
        normalise_weights([1.0], 2)


# ---------------------------------------------------------------------------------------------------- CLI

def _save(path, array):
    Image.fromarray((np.clip(array, 0, 1) * 255).astype(np.uint8)).save(path)
    return str(path)


@pytest.fixture()
def images(tmp_path):
    names = {"content": CONTENT[0], "a": STYLES[0][0], "b": STYLES[1][0]}
    paths = {name: _save(tmp_path / f"{name}.png", array) for name, array in names.items()}
    paths["white"] = _save(tmp_path / "white.png", np.ones((8, 8)))
    paths["broken"] = str(tmp_path / "broken.png")
    Path(paths["broken"]).write_bytes(b"not an image")
    return paths


def test_cli_mix_and_mask(images, tmp_path, capsys):
    common = ["--arch", "adain", "--checkpoint", "random", "--content", images["content"], "--size", "0",
              "--no-progress", "--format", "png"]
    styles = ["--style", images["a"], images["b"]]
    assert stylize.main([*common, *styles, "--style-weights", "7", "3", "--out", str(tmp_path / "mix")]) == 0
    assert [p.name for p in (tmp_path / "mix").iterdir()] == ["content__a@0.7+b@0.3.png"]
    written = (tmp_path / "mix" / "content__a@0.7+b@0.3.png").stat().st_mtime_ns
    capsys.readouterr()  # a rerun resumes: the complete output is kept, not overwritten
    assert stylize.main([*common, *styles, "--style-weights", "7", "3", "--out", str(tmp_path / "mix")]) == 0
    assert "resuming: 1 of the 1 outputs" in capsys.readouterr().err
    assert (tmp_path / "mix" / "content__a@0.7+b@0.3.png").stat().st_mtime_ns == written
    # an all-white mask puts the first style everywhere: the plain single-style output
    assert stylize.main([*common, *styles, "--mask", images["white"], "--out", str(tmp_path / "mask")]) == 0
    assert stylize.main([*common, "--style", images["a"], "--out", str(tmp_path / "single")]) == 0
    masked = np.asarray(Image.open(tmp_path / "mask" / "content__a+b__mask-white.png"), np.int16)
    single = np.asarray(Image.open(tmp_path / "single" / "content__a.png"), np.int16)
    assert np.abs(masked - single).max() <= 1  # equal up to 8-bit rounding


@pytest.mark.parametrize("flags, message", [
    (["--style-weights", "1"], "one weight per --style image: 2 styles, 1 weights"),
    (["--style-weights", "1", "-1"], "non-negative with a positive sum"),
    (["--style-weights", "0", "0"], "non-negative with a positive sum"),
    (["--mask", "{white}", "--style-weights", "1", "1"], "either --style-weights or --mask"),
    (["--mask", "{broken}"], r"--mask: .*broken\.png"),
    (["--mask", "{white}", "--style", "{a}", "{a}", "{b}"], "exactly two --style images"),
    (["--mask", "{white}", "--style", "{dir}"], "needs --style image files"),
    (["--out", "{dir}/x"], None),
])
def test_cli_errors_exit_2_before_loading(flags, message, images, tmp_path, capsys):
    fill = {**images, "dir": str(tmp_path)}
    flags = [flag.format(**fill) for flag in flags]
    argv = ["--arch", "adain", "--checkpoint", "random", "--content", images["content"],
            "--style", images["a"], images["b"], "--out", str(tmp_path / "out"), *flags]
    if message is None:  # --weights with only some run flags: the error names the missing ones
        argv, message = argv[:4] + flags, "missing --content, --style: give all of"
    with pytest.raises(SystemExit) as exit_info:
        stylize.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_list_archs(capsys):
    assert stylize.main(["--list-archs"]) == 0
    out = capsys.readouterr().out
    for name in ARCHS:
        plugin = archs.get(name)
        assert f"{name}: {plugin.title}" in out
        assert plugin.release_files in out and plugin.release_source in out
    assert f"--weights W/{presets.PARAMS_FILE}" in out


@pytest.mark.parametrize("argv, message", [
    (["--arch", "adain"], r"no --weights, and --arch adain has no weights installed with jax-ast \(installed: "
                          r"--arch magenta --variant mobile\)"),
    (["--arch", "magenta"], "--arch magenta has no weights installed"),  # the default variant is inception
    (["--content", "{content}"], "missing --style: give --content and --style together"),
    (["--arch", "wct"], "unknown --arch 'wct'; valid choices: adain, sanet, linear, magenta"),
])
def test_runs_without_weights_need_installed_weights_and_both_inputs(argv, message, images, tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        stylize.main([flag.format(**images) for flag in argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_bare_command_uses_the_installed_model(images, tmp_path, monkeypatch, capsys):
    """A bare run stylises the preset's images with the installed weights (Magenta mobile) into the preset's
    folder, and says so in one line; README shows that command and its picture."""
    monkeypatch.chdir(tmp_path)
    content_dir, style_dir = tmp_path / "c", tmp_path / "s"
    for folder, image in ((content_dir, "content"), (style_dir, "a")):
        folder.mkdir()
        Path(images[image]).rename(folder / Path(images[image]).name)
    preset = dataclasses.replace(presets.BARE_RUN, content=content_dir, style=style_dir)
    assert (preset.arch, preset.variant, preset.out) == ("magenta", "mobile", Path("out/magenta-mobile"))
    monkeypatch.setattr(presets, "BARE_RUN", preset)
    assert stylize.main(["--no-progress", "--size", "32", "--style-size", "32"]) == 0
    assert [p.name for p in (tmp_path / "out" / "magenta-mobile").iterdir()] == ["content__a.png"]
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("no --weights")]
    description = archs.get("magenta").installed["mobile"].description
    assert said == [f"no --weights: stylising the bundled samples with {description}, as: {preset.command()}"]
    readme = (REPO / "README.md").read_text()
    assert "\npython -m eval.stylize\n" in readme.replace(".venv/bin/", "")
    assert "docs/images/mobile_magenta_grid.jpg" in readme and (REPO / "docs/images/mobile_magenta_grid.jpg").is_file()
    jax.clear_caches()


def test_no_weights_gives_real_stylised_images(tmp_path, capsys):
    """Given --content and --style only, the run uses the installed Magenta mobile model: the output is neither
    the content nor blank."""
    content = REPO / "jax_ast/samples/content/chelsea_cat.jpg"
    style = REPO / "jax_ast/samples/style/van_gogh_starry_night.jpg"
    out = tmp_path / "out"
    assert stylize.main(["--content", str(content), "--style", str(style), "--out", str(out), "--size", "64",
                         "--style-size", "128", "--no-progress"]) == 0
    assert "no --weights: stylising your images with Magenta's mobile model" in capsys.readouterr().err
    stylised = np.asarray(Image.open(out / "chelsea_cat__van_gogh_starry_night.png"), np.float32) / 255
    original = np.asarray(Image.open(content).convert("RGB").resize(stylised.shape[1::-1], Image.Resampling.BILINEAR),
                          np.float32) / 255
    assert np.abs(stylised - original).mean() > 0.05 and stylised.std() > 0.02
    jax.clear_caches()


def test_output_label_names_the_mix():
    spec = style_mixing.MixSpec((Path("a.jpg"), Path("b.jpg")), weights=(0.25, 0.75))
    assert style_mixing.output_label("cat", spec, ["a", "b"]) == "cat__a@0.25+b@0.75"
    spec = style_mixing.MixSpec((Path("a.jpg"), Path("b.jpg")), mask_path=Path("masks/fg.png"))
    assert style_mixing.output_label("cat", spec, ["a", "b"]) == "cat__a+b__mask-fg"


def test_weights_flag_keeps_checkpoint_as_its_older_name():
    """`--weights` of eval.stylize and eval.run; README commands written with `--checkpoint` still parse the same."""
    from eval.score.config import build_parser as run_parser

    run_flags = ["--arch", "adain", "--style-dir", "s", "--content-dir", "c", "--pairs", "1", "--out", "o"]
    for parser, rest in ((stylize.build_parser(), []), (run_parser(), run_flags)):
        new, old = (vars(parser.parse_args([flag, "w/params.npz", *rest])) for flag in ("--weights", "--checkpoint"))
        assert new == old and new["weights"] == "w/params.npz"


def test_eval_run_takes_no_weights_for_installed_ones(tmp_path, capsys):
    """`eval.run --arch magenta --variant mobile` needs no weight flag (the installed weights); other networks do."""
    from eval.score.config import parse_config

    rest = ["--style-dir", "s", "--content-dir", "c", "--pairs", "1", "--out", str(tmp_path / "o")]
    assert parse_config(["--arch", "magenta", "--variant", "mobile", *rest]).weights is None
    for arch in (["--arch", "magenta"], ["--arch", "linear"]):
        with pytest.raises(SystemExit) as exit_info:
            parse_config([*arch, *rest])
        assert exit_info.value.code == 2
        assert "needs --weights" in capsys.readouterr().err


def test_contact_sheet_puts_styles_on_top_and_contents_on_the_left(tmp_path):
    from eval.stylize import contact_sheet

    colours = {"c1": 0.1, "c2": 0.3, "s1": 0.5, "s2": 0.7}
    for folder, names in (("c", ("c1", "c2")), ("s", ("s1", "s2"))):
        (tmp_path / folder).mkdir()
        for name in names:
            _save(tmp_path / folder / f"{name}.png", np.full((20, 30, 3), colours[name]))
    (tmp_path / "r").mkdir()
    for c in ("c1", "c2"):
        for s in ("s1", "s2"):
            _save(tmp_path / "r" / f"{c}__{s}.png", np.full((20, 30, 3), 0.9))
    out = tmp_path / "sheet.png"
    assert contact_sheet.main(["--results", str(tmp_path / "r"), "--content", str(tmp_path / "c"), "--style",
                               str(tmp_path / "s"), "--contents", "c1", "c2", "--styles", "s1", "s2", "--thumb", "16",
                               "--out", str(out)]) == 0
    sheet, gap = np.asarray(Image.open(out)), contact_sheet.GAP
    side = 3 * 16 + 3 * gap  # header, double gap, thumb, gap, thumb
    assert sheet.shape == (side, side, 3)
    second = 16 + 2 * gap + 16 + gap  # the start of the second row/column
    assert (sheet[:16, :16] == 255).all()  # blank corner
    assert sheet[8, second + 8, 0] == int(0.7 * 255) and sheet[second + 8, 8, 0] == int(0.3 * 255)
    assert sheet[second + 8, second + 8, 0] == int(0.9 * 255)
