"""`python -m eval.reproduce`: the report's numbers are the CSVs' numbers (end to end at --scale tiny, and on
hand-made per-pair CSVs for the tables that compare models)."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eval.common import records
from eval.reproduce import report, stress_styles
from eval.score.analysis import format_number
from train.checkpointing import Checkpointer

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def _row(text, first_cell, after=""):
    """Cells of the first markdown table row whose first cell is `first_cell` (after the heading `after`)."""
    text = text[text.index(after):]
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row {first_cell!r} after {after!r}")


def _runs(folder):
    with open(folder / "runs.csv", newline="") as stream:
        return {row["run"]: row for row in csv.DictReader(stream)}


@pytest.mark.slow
def test_tiny_run_end_to_end(tmp_path):
    out = tmp_path / "docs" / "reproduction"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")  # batch 2 on one device
    result = subprocess.run([sys.executable, "-m", "eval.reproduce", "--scale", "tiny", "--losses", "balanced",
                             "--out", str(out), "--workdir", str(tmp_path / "work")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    text = (tmp_path / "docs" / "reproduction.md").read_text()
    for name in ("runs.csv", "per_style.csv", "pearson.csv", "paper.csv", "split.csv", "run_info.csv", "curves.csv",
                 "deception.csv", "imbalance.csv", "pairs/identity.csv", "pairs/identity-stress.csv",
                 "pairs/balanced-test.csv", "pairs/released-test.csv"):
        assert (out / name).is_file(), name
    runs = _runs(out)
    identity = _row(text, "identity", "(a) Spread")
    assert identity[2] == format_number(float(runs["identity"]["classic_hw_style_max_over_min"]))
    assert identity[5] == format_number(float(runs["identity"]["classic_pair_max_over_min"]))
    assert int(runs["identity"]["pairs"]) == 16  # every pair of 4 photos x 4 paintings, stress styles apart
    n_stress = len(stress_styles.STYLES)
    assert int(runs["identity + stress"]["pairs"]) == 4 * (4 + n_stress)
    assert int(runs["identity + stress"]["styles"]) == 4 + n_stress
    balanced = _row(text, "balanced", "### held-out photos x held-out paintings")
    assert balanced[1] == format_number(float(runs["balanced (test)"]["balanced_mean"]))
    # runs.csv itself is the per-pair CSV's mean
    pairs = report.read_pairs(out / "pairs" / "balanced-test.csv")
    assert float(runs["balanced (test)"]["balanced_mean"]) == pytest.approx(pairs["balanced/total"].mean(), rel=1e-6)
    # the loss curve is the training run's own log, and the deception rate is quoted with its interval
    curves = records.read_table(out / "curves.csv")
    assert [int(c["step"]) for c in curves] == [1, 2] and {c["run"] for c in curves} == {"balanced"}
    # that run is two steps of the mobile Magenta from its release (test_magenta_mobile checks the start)
    assert all(np.isfinite(float(c["loss"])) for c in curves)
    run = tmp_path / "work" / "train" / "balanced"
    assert Checkpointer(run / "checkpoints").latest_step() == 2
    config = records.read_json(run / "config.json")
    assert (config["arch"], config["variant"], config["loss"]) == ("magenta", "mobile", "balanced")
    assert config["mobile_weights"] is None and config["pretrained"] is None and not config["reinitialise"]
    deception = {(d["model"], d["pairs_set"]): d for d in records.read_table(out / "deception.csv")}
    assert set(deception) == {(m, s) for m in ("identity", "released", "balanced")
                              for s in ("held-out photos x held-out paintings", "held-out photos x training paintings")}
    released = deception[("released", "held-out photos x held-out paintings")]
    assert float(released["ci_low"]) <= float(released["rate"]) <= float(released["ci_high"])
    assert _row(text, "released", "## 3. Deception rate")[2] == format_number(float(released["rate"]))
    # the stress styles are the generator's files, and they never reach the training folder
    split = records.read_table(out / "split.csv")
    assert sorted(r["name"] for r in split if r["set"] == "stress") == sorted(
        f"stress_{name}.png" for name in stress_styles.STYLES)
    assert not any(p.name.startswith("stress_") for p in (tmp_path / "work" / "split" / "train" / "style").iterdir())


def test_stress_styles_are_deterministic_and_span_the_extremes():
    images = {name: stress_styles.make(name, 48, seed=0) for name in stress_styles.STYLES}
    for name, image in images.items():
        assert image.shape == (48, 48, 3) and image.dtype == np.uint8, name
        np.testing.assert_array_equal(image, stress_styles.make(name, 48, seed=0))
    assert not np.array_equal(stress_styles.make("saturated_noise", 48, seed=1), images["saturated_noise"])
    assert images["very_dark_painting"].max() < 40 and images["near_blank_canvas"].std(axis=(0, 1)).max() < 3  # per channel
    assert images["high_contrast_checker"].std() > 100  # black and white cells
    with pytest.raises(ValueError, match="unknown stress style"):
        stress_styles.make("mona_lisa")


def test_spearman_ranks_with_ties():
    assert report._spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert report._spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert report._spearman([1, 10, 100, 1000], [1, 2, 2, 3]) == pytest.approx(0.9486832980505138)  # ties: 2.5
    assert np.isnan(report._spearman([1, 2], [2, 1]))


def _fake_pairs(rng, styles, scale):
    """A hand-made eval.run pairs.csv as columns: 2 contents x len(styles), per-layer losses."""
    columns = {"style": np.repeat(np.asarray(styles), 2), "content": np.tile(np.asarray(["a.jpg", "b.jpg"]),
                                                                              len(styles))}
    size = len(columns["style"])
    columns["content/total"] = rng.uniform(1, 2, size)
    for term, low, high in (("classic", 1e8, 1e10), ("classic_hw", 1e4, 1e6), ("bound", 1e10, 1e11),
                            ("balanced", 0.1, 0.9)):
        for layer in LAYERS:
            columns[f"{term}/{layer}"] = rng.uniform(low, high, size) * (scale if term == "balanced" else 1)
        columns[f"{term}/total"] = sum(columns[f"{term}/{layer}"] for layer in LAYERS)
    return columns


def test_report_tables_quote_the_csvs(tmp_path):
    rng = np.random.default_rng(0)
    styles = ["s1.jpg", "s2.jpg", "s3.jpg"]
    held_out = "held-out photos x held-out paintings"
    rows, per_style, pearson = [], [], []
    for run, model, pairs_set, scale in (("identity", "identity", "all pairs", 1.0),
                                         ("identity (test)", "identity", held_out, 1.2),
                                         ("released (test)", "released", held_out, 0.8),
                                         ("native (test)", "native", held_out, 0.9),
                                         ("classic (test)", "classic", held_out, 1.0),
                                         ("balanced (test)", "balanced", held_out, 0.5)):
        row, style_rows, r = report.summarize_run(run, model, pairs_set, 64, _fake_pairs(rng, styles, scale), LAYERS)
        row["seed"] = "" if model == "identity" else 0
        rows.append(row), per_style.extend(style_rows), pearson.append(r)
    records.write_table(tmp_path / "runs.csv", rows, report.RUN_COLUMNS)
    records.write_table(tmp_path / "per_style.csv", per_style)
    records.write_table(tmp_path / "pearson.csv", pearson)
    records.write_table(tmp_path / "imbalance.csv", report.imbalance_rows(per_style, rows), report.IMBALANCE_COLUMNS)
    records.write_table(tmp_path / "split.csv", [{"role": "content", "set": "test", "name": "a.jpg"}])
    info = {k: "x" for k in ("command", "scale", "wall_time", "machine", "cores", "jax", "backend", "load_average",
                             "finished", "analysis_pairs", "analysis_size", "training")}
    info["seed"] = "0"
    text = report.markdown(tmp_path, "reproduction", info, "Hand-written notes.")
    runs = _runs(tmp_path)
    classic = _row(text, "classic", "### " + held_out)
    assert classic[1] == format_number(float(runs["classic (test)"]["balanced_mean"]))
    assert classic[6] == format_number(float(runs["classic (test)"]["balanced_style_cv"]))
    chw = float(runs["identity"]["classic_chw_mean"])
    assert _row(text, "identity", "(d) Magnitude")[5] == format_number(chw)
    assert _row(text, "balanced-trained has a lower mean balanced loss than classic-trained")[1] == "yes"
    assert "Hand-written notes." in text
    # the imbalance table: per style, the model's classic (hw) over identity's on the same pairs, ranked
    value = {(s["run"], s["style"]): float(s["classic_hw_mean"]) for s in per_style}
    left = [value[("classic (test)", s)] / value[("identity (test)", s)] for s in styles]
    magnitude = [value[("identity (test)", s)] for s in styles]
    assert _row(text, "classic", "Spearman rho")[2] == format_number(report._spearman(magnitude, left))
    # chw is hw / C^2 per layer
    pairs = _fake_pairs(np.random.default_rng(1), styles, 1.0)
    expected = sum(pairs[f"classic_hw/{layer}"] / c ** 2 for layer, c in zip(LAYERS, (64, 128, 256, 512)))
    np.testing.assert_allclose(report.classic_chw(pairs, LAYERS), expected)
