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
from eval.reproduce import report
from eval.score.analysis import format_number

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
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    text = (tmp_path / "docs" / "reproduction.md").read_text()
    for name in ("runs.csv", "per_style.csv", "pearson.csv", "paper.csv", "split.csv", "run_info.csv",
                 "pairs/identity.csv", "pairs/balanced-test.csv"):
        assert (out / name).is_file(), name
    runs = _runs(out)
    identity = _row(text, "identity", "(a) Spread")
    assert identity[1] == format_number(float(runs["identity"]["classic_style_max_over_min"]))
    assert identity[2] == format_number(float(runs["identity"]["classic_pair_max_over_min"]))
    balanced = _row(text, "balanced", "held-out photos x held-out paintings")
    assert balanced[1] == format_number(float(runs["balanced (test)"]["balanced_mean"]))
    # runs.csv itself is the per-pair CSV's mean
    pairs = report.read_pairs(out / "pairs" / "balanced-test.csv")
    assert float(runs["balanced (test)"]["balanced_mean"]) == pytest.approx(pairs["balanced/total"].mean(), rel=1e-6)
    assert int(runs["identity"]["pairs"]) == 16  # every pair of 4 photos x 4 paintings


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
    rows, per_style, pearson = [], [], []
    for run, model, pairs_set, scale in (("identity", "identity", "all pairs", 1.0),
                                         ("native (test)", "native", "held-out", 0.9),
                                         ("classic (test)", "classic", "held-out", 1.0),
                                         ("balanced (test)", "balanced", "held-out", 0.5)):
        row, style_rows, r = report.summarize_run(run, model, pairs_set, 64, _fake_pairs(rng, styles, scale), LAYERS)
        rows.append(row), per_style.extend(style_rows), pearson.append(r)
    records.write_table(tmp_path / "runs.csv", rows, report.RUN_COLUMNS)
    records.write_table(tmp_path / "per_style.csv", per_style)
    records.write_table(tmp_path / "pearson.csv", pearson)
    records.write_table(tmp_path / "split.csv", [{"role": "content", "set": "test", "name": "a.jpg"}])
    info = {k: "x" for k in ("command", "scale", "wall_time", "machine", "cores", "jax", "backend", "load_average",
                             "finished", "analysis_pairs", "analysis_size", "training")}
    text = report.markdown(tmp_path, "reproduction", info, "Hand-written notes.")
    runs = _runs(tmp_path)
    classic = _row(text, "classic", "held-out")
    assert classic[1] == format_number(float(runs["classic (test)"]["balanced_mean"]))
    assert classic[6] == format_number(float(runs["classic (test)"]["balanced_style_cv"]))
    chw = float(runs["identity"]["classic_chw_mean"])
    assert _row(text, "identity", "(d) Magnitude")[5] == format_number(chw)
    assert _row(text, "lower mean balanced loss")[1] == "yes"  # balanced's losses were scaled by 0.5
    assert "Hand-written notes." in text
    # chw is hw / C^2 per layer
    pairs = _fake_pairs(np.random.default_rng(1), styles, 1.0)
    expected = sum(pairs[f"classic_hw/{layer}"] / c ** 2 for layer, c in zip(LAYERS, (64, 128, 256, 512)))
    np.testing.assert_allclose(report.classic_chw(pairs, LAYERS), expected)
