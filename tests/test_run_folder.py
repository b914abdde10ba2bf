"""train/run_folder.py: the workdir's layout, its checks and what a (re)started run rewrites."""

import json

import pytest

from train.run_folder import RunFolder, WorkdirError, checkpoint_steps


def _rows(*steps) -> str:
    return "".join(json.dumps({"step": step, "train/loss": 1.0 / (step + 1)}) + "\n" for step in steps)


def test_layout_and_stage_folder(tmp_path):
    folder = RunFolder.at(tmp_path / "run")
    assert folder.root == tmp_path / "run" and str(folder) == str(tmp_path / "run")
    assert (folder.config.name, folder.checkpoints.name, folder.metrics.name, folder.export.name) == (
        "config.json", "checkpoints", "metrics.jsonl", "params.npz")
    assert folder.stage().root == tmp_path / "run" / "decoder_stage"
    assert not (tmp_path / "run").exists()  # making one touches nothing


def test_checkpoint_steps_are_the_complete_step_folders(tmp_path):
    folder = RunFolder.at(tmp_path)
    assert folder.checkpoint_steps() == []
    for name in ("10", "2", "3.orbax-checkpoint-tmp", "notes"):
        (folder.checkpoints / name).mkdir(parents=True)
    assert folder.checkpoint_steps() == checkpoint_steps(folder.checkpoints) == [2, 10]
    assert not folder.is_complete(10)  # no export
    folder.export.write_bytes(b"x")
    assert folder.is_complete(10) and not folder.is_complete(11)


def test_resume_drops_the_metrics_rows_it_logs_again_and_a_torn_last_line(tmp_path):
    folder = RunFolder.at(tmp_path)
    folder.metrics.write_text(_rows(0, 1, 2, 3, 4) + '{"step": 5, "train/lo')
    folder.start('{"a": 1}', first_step=3)  # resumed from checkpoint 2
    assert [json.loads(line)["step"] for line in folder.metrics.read_text().splitlines()] == [0, 1, 2]
    assert folder.config.read_text() == '{"a": 1}'
    folder.start('{"a": 1}', first_step=0)  # no checkpoint: the run starts over
    assert folder.metrics.read_text() == ""


def test_start_leaves_unchanged_files_alone(tmp_path):
    folder = RunFolder.at(tmp_path)
    folder.metrics.write_text(_rows(0, 1))
    folder.config.write_text('{"a": 1}')
    before = {p: p.stat().st_mtime_ns for p in (folder.metrics, folder.config)}
    folder.start('{"a": 1}', first_step=2)
    assert {p: p.stat().st_mtime_ns for p in (folder.metrics, folder.config)} == before


def test_unreadable_config_is_refused(tmp_path):
    folder = RunFolder.at(tmp_path)
    assert folder.read_config() is None
    folder.config.write_text("[1, 2]")
    with pytest.raises(WorkdirError, match="config.json is unreadable .*not a JSON object"):
        folder.read_config()
