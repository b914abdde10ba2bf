"""Smoke test of the train-step benchmark (`python -m benchmarks.train_step --quick`): tables, JSON, parity."""

import importlib.util
import json

import pytest

from benchmarks import train_step as bench


@pytest.mark.slow
def test_quick_benchmark_reports_every_column(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--archs", "adain", "--devices", "1", "2", "--runs", "1", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    has_torch = importlib.util.find_spec("torch") is not None
    assert "jax steps/s" in table and "JAX/torch med" in table and "2 devices" in table
    result = json.loads(out.read_text())
    assert result["settings"]["devices"] == [1, 2] and result["torch"] == has_torch
    (row,) = result["rows"]
    assert (row["arch"], row["size"], row["batch"]) == ("adain", 32, 8)
    for column in [row["jax"], row["devices"]["1"], row["devices"]["2"]] + ([row["torch"]] if has_torch else []):
        assert len(column["times_s"]) == 1  # one round x one run
        for key in ("median_s", "min_s", "steps_per_s", "img_per_s", "warmup_s"):
            assert column[key] > 0, (key, column)
    assert row["devices"]["2"]["over_1_device"] > 0
    for column in [row["jax"], row["devices"]["1"], row["devices"]["2"]]:
        # compiled ahead of time and timed on its own: the first step (warmup_s) no longer includes it
        assert column["compile_s"] > 0
    # Both device counts start from the same state and batch: the same first loss up to reduction order.
    assert abs(row["devices"]["2"]["first_loss"] / row["devices"]["1"]["first_loss"] - 1) < 1e-5
    if has_torch:
        assert row["jax_over_torch_median"] > 0 and row["jax_over_torch_min"] > 0
        # The torch step is the same computation: same first loss (measured 8e-8 relative).
        assert row["first_loss_rel_diff"] < 1e-4


def test_all_benchmarks_write_one_json_and_markdown_table(tmp_path):
    """`python -m benchmarks.all`, cut down to one tiny benchmark: its rows, machine and table; no overwrite."""
    from benchmarks import all as bench_all
    from benchmarks.report import COLUMNS

    out = tmp_path / "bench"
    argv = ["--quick", "--benchmarks", "stylize", "--archs", "adain", "--size", "32", "--batch", "1",
            "--rounds", "1", "--runs", "1", "--out", str(out)]
    assert bench_all.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["machine"]["backend"] == "cpu" and results["machine"]["device_kind"]
    (bench,) = results["benchmarks"]
    assert bench["status"] == "ok" and "--size 32" in " ".join(bench["argv"])
    (row,) = bench["rows"]
    assert (row["benchmark"], row["network"], row["size"], row["batch"], row["dtype"]) == (
        "stylize", "adain", 32, 1, "float32")
    assert row["gflop"] > 0 and row["jax_img_s"] > 0 and row["compile_s"] > 0 and row["tflops"] > 0
    assert row["pct_peak"] is None  # a CPU has no bf16 peak in the table
    if importlib.util.find_spec("torch") is not None:
        assert row["torch_device"] == "cpu" and row["jax_over_torch"] > 0
    table = (out / "results.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| benchmark"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == [h for _, h, _ in COLUMNS]
    assert "| stylize | adain | 32 | 1 | float32 | 1 |" in table and "% bf16 peak" in table
    assert (out / "logs" / "stylize.log").read_text()
    with pytest.raises(SystemExit) as exit_info:  # the same --out again: refused, nothing overwritten
        bench_all.main(argv)
    assert exit_info.value.code == 2
