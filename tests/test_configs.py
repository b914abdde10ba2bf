"""`TrainConfig`: composed parts, the flat view (flags and config.json), the typed style weight, plug-in recipes."""

import json

import pytest

from jax_ast import archs
from jax_ast.configs import PARTS, TrainConfig, default_config, flat_fields
from train.loop import check_workdir


def test_flat_round_trip_and_parts():
    cfg = default_config("linear", "balanced", preset="cpu", seed=3)
    flat = cfg.to_flat()
    assert TrainConfig.from_flat(**flat) == cfg
    options = archs.options_fields(cfg.plugin)  # LinearTransfer's own: decoder_iterations, decoder_learning_rate
    assert set(flat) == set(flat_fields("linear")) and len(flat_fields("linear")) == sum(
        len(p.__dataclass_fields__) for p in PARTS.values()) + len(options) and len(options) == 2
    assert set(flat_fields()) == set(flat_fields("linear")) | {name for arch in archs.names()
                                                               for name in archs.options_fields(archs.get(arch))}
    assert (cfg.model.encoder, cfg.data.crop_size, cfg.run.seed) == ("vgg16_normalised", 128, 3)
    assert cfg.replace(iterations=7).optim.iterations == 7 and cfg.optim.iterations == 400
    assert json.loads(cfg.to_json()) == flat
    with pytest.raises(ValueError, match=r"unknown config fields \['learnin_rate'\]"):
        TrainConfig.from_flat(learnin_rate=1e-3)


def test_style_weight_is_a_number_or_auto():
    assert default_config("adain").objective.style_weight == 10.0
    assert default_config("adain", "balanced").objective.auto_style_weight
    assert default_config("adain", style_weight="2.5").objective.style_weight == 2.5
    for bad in ("heavy", "nan", -1.0, True):
        with pytest.raises(ValueError, match="style_weight must be"):
            default_config("adain", style_weight=bad)


def test_recipes_come_from_the_plug_ins():
    for arch in archs.ARCHS:
        cfg = default_config(arch)
        assert cfg.optim.learning_rate == archs.get(arch).recipe["learning_rate"]
        assert cfg.plugin is archs.get(arch)


def test_a_saved_text_style_weight_resumes(tmp_path):
    """config.json of earlier versions stored the style weight as text ("10"): the same run resumes."""
    cfg = default_config("adain", vgg_weights="random")
    (tmp_path / "config.json").write_text(json.dumps({**cfg.to_flat(), "style_weight": "10"}))
    check_workdir(cfg, tmp_path)
