"""A fifth network is one module: `tests/plugins/tinynet.py`, registered from outside the package with
``JAX_AST_PLUGINS``, is trained, used to stylise and scored through the documented CLIs, and nothing else
in the repository names it (docs/architecture.md, Adding a fifth network)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from jax_ast import archs

REPO = Path(__file__).resolve().parents[1]
PLUGIN = "tests.plugins.tinynet"


def _cli(module: str, *args: str) -> str:
    """Run ``python -m module args`` with the plug-in registered; its combined output (asserts exit 0)."""
    env = {**os.environ, archs.PLUGINS_ENV: PLUGIN, "JAX_AST_NO_COMPILATION_CACHE": "1"}
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"{module} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _images(folder: Path, count: int, seed: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (36, 44, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    return folder


def test_the_options_of_the_built_in_plug_ins_are_flags():
    from train.run import build_parser

    help_text = " ".join(build_parser().format_help().split())
    for flag in ("--tv-weight", "--identity-pixel-weight", "--decoder-iterations", "--inception-weights"):
        assert flag in help_text
    assert "Magenta's total variation loss" in help_text


def test_the_network_exists_only_through_its_plug_in():
    """This process did not register it: the built-in registry knows nothing about it, and no code outside
    the test files names it (the docs may)."""
    assert "tinynet" not in archs.names()
    grep = subprocess.run(["git", "grep", "-il", "tinynet", "--", "*.py", "*.toml", "*.cfg", ":!tests/plugins",
                           ":!tests/test_fifth_network.py"], cwd=REPO, capture_output=True, text=True)
    assert grep.returncode in (0, 1) and grep.stdout.strip() == "", f"code outside the plug-in names it: {grep.stdout}"


def test_a_plug_in_registered_after_the_clis_are_imported_is_a_choice_of_each(monkeypatch):
    """`archs.register` in a program that imported the CLIs first: each reads the names when it builds its
    parser or checks --arch, so the network is accepted everywhere (this process forgets it afterwards)."""
    import importlib

    from eval.export import cli as export_cli
    from eval.inference import loading
    from eval.score import config as score_config
    from eval.stylize import cli as stylize_cli
    from train import run

    archs.names()  # the built-in plug-ins found first, then a copy of the registry that the test may change
    monkeypatch.setattr(archs, "_REGISTRY", dict(archs._REGISTRY))
    archs.register(importlib.import_module(PLUGIN).PLUGIN)
    args = run.build_parser().parse_args(["--arch", "tinynet", "--tiny-tv-weight", "0.25"])
    assert (args.arch, args.tiny_tv_weight) == ("tinynet", 0.25)
    assert "tinynet" in score_config.all_archs() and "tinynet" in loading.default_sizes()
    for parser in (stylize_cli.build_parser(), export_cli.build_parser()):
        assert "tinynet" in parser.format_help()


def test_train_stylize_and_score_a_registered_fifth_network(tmp_path):
    content, style = _images(tmp_path / "content", 2, 0), _images(tmp_path / "style", 2, 1)

    workdir = tmp_path / "run"
    _cli("train.run", "--arch", "tinynet", "--loss", "native", "--iterations", "2", "--batch-size", "8",
         "--crop-size", "16", "--native-loss-weights", "random", "--tiny-tv-weight", "2.5", "--log-every", "1",
         "--sample-every", "1000", "--content-dir", str(content), "--style-dir", str(style),
         "--workdir", str(workdir))
    # --tiny-tv-weight: the plug-in's option became a flag and a config.json key (of this network only)
    config = json.loads((workdir / "config.json").read_text())
    assert config["arch"] == "tinynet" and config["tiny_tv_weight"] == 2.5 and "tv_weight" not in config
    metrics = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    last = [m for m in metrics if "train/loss" in m][-1]
    assert last["step"] == 2 and np.isfinite(last["train/loss"])
    assert {"train/content", "train/style", "train/tiny_tv", "train/mean_std/relu2_2"} <= set(last)

    stylized = tmp_path / "stylized"
    _cli("eval.stylize", "--arch", "tinynet", "--checkpoint", str(workdir / "params.npz"), "--content", str(content),
         "--style", str(style / "0.png"), "--out", str(stylized), "--size", "32", "--no-progress")
    outputs = sorted(stylized.glob("*.png"))
    assert len(outputs) == 2 and Image.open(outputs[0]).size == (39, 32)  # shorter side 32, aspect kept

    scores = tmp_path / "scores"
    _cli("eval.run", "--arch", "tinynet", "--checkpoint", str(workdir / "params.npz"), "--content-dir", str(content),
         "--style-dir", str(style), "--pairs", "2", "--out", str(scores), "--size", "32", "--batch-size", "8",
         "--loss-vgg-weights", "random", "--style-layers", "relu1_2,relu2_2", "--content-layers", "relu2_2",
         "--no-figures", "--no-progress")
    with open(scores / "pairs.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 2 and all(np.isfinite(float(row["balanced/total"])) for row in rows)
