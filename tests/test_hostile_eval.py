"""Hostile inputs and faults for the eval CLIs: one clear message, a documented exit code (`eval.common.guards`),
nothing already on disk changed, and never a NaN written as a number or a black image.

Each test writes its own hostile files. Usage and input errors are expected to stop during validation,
before any model is compiled; the few cases that must run a model use 32 px images, random weights and
the relu1_1-only random loss network.
"""

import csv
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from eval.common import guards, layout, records
from eval.inference import loading
from eval.score import compare
from eval.score import run as eval_run
from eval.stylize import cli as stylize

# Shared random PNG writers (tests/ is on sys.path under pytest's default import mode).
from image_files import content_and_style_folders, random_png

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore:load_vgg.*RANDOMLY INITIALISED:UserWarning")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """content/ and style/ with two 32 px images each."""
    return content_and_style_folders(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def adain_variables():
    """Seeded random AdaIN variables as numpy (the init is cached in eval.stylize)."""
    _, variables = loading.random_model("adain", seed=0)
    return jax.tree.map(np.array, jax.device_get(variables))


def _native(path, variables, edit=None):
    """A `save_params` file of (a copy of) `variables`, changed in place by `edit`."""
    from jax_ast.pretrained import save_params
    variables = jax.tree.map(np.array, variables)
    if edit is not None:
        edit(variables)
    return save_params(path, variables, meta={"arch": "adain"})


def _snapshot(folder):
    """{relative path: bytes} of every file under `folder` (to prove that nothing changed)."""
    folder = Path(folder)
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _exit_code(main, argv):
    """(exit code, whether it came through SystemExit) of an in-process CLI call."""
    try:
        return main(argv), False
    except SystemExit as exit_info:
        return exit_info.code, True


def _one_error_line(err):
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _no_model(*args, **kwargs):
    raise AssertionError("the model was loaded before the arguments were checked")


# ------------------------------------------------------------------------------------------- eval.stylize

def _stylize_argv(folders, out, checkpoint="random", *extra):
    return ["--arch", "adain", "--checkpoint", str(checkpoint), "--content", str(folders[0]), "--style",
            str(folders[1]), "--out", str(out), "--size", "32", "--no-progress", *extra]


def test_stylize_refuses_nonfinite_weights(folders, adain_variables, tmp_path, capsys):
    def poison(variables):
        variables["params"]["decoder"]["conv1_1"]["kernel"][0, 0, 0, 0] = np.nan
    checkpoint = _native(tmp_path / "nan.npz", adain_variables, poison)
    code, _ = _exit_code(stylize.main, _stylize_argv(folders, tmp_path / "out", checkpoint))
    line = _one_error_line(capsys.readouterr().err)
    assert code == guards.EXIT_USAGE and "nan.npz holds non-finite weights" in line
    assert "decoder/conv1_1/kernel" in line and not (tmp_path / "out").exists()


def test_stylize_does_not_write_nonfinite_outputs(folders, adain_variables, tmp_path, capsys):
    """Finite weights so large that the decoder overflows: no black images, exit 1, each pair reported."""
    def inflate(variables):
        for layer in variables["params"]["decoder"].values():
            layer["kernel"] *= np.float32(1e30)
    checkpoint = _native(tmp_path / "huge.npz", adain_variables, inflate)
    code, _ = _exit_code(stylize.main, _stylize_argv(folders, tmp_path / "out", checkpoint))
    captured = capsys.readouterr()
    assert code == guards.EXIT_NOTHING_DONE
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert captured.out.count("non-finite output (NaN or inf); not written") == 4 and "written: 0" in captured.out


def test_stylize_out_file_is_refused_before_the_model_loads(folders, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(loading, "load_model", _no_model)
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    for target in (out, out / "sub"):
        code, _ = _exit_code(stylize.main, _stylize_argv(folders, target))
        line = _one_error_line(capsys.readouterr().err)
        assert code == guards.EXIT_USAGE and f"--out {target} is not a folder" in line
    assert out.read_bytes() == b"precious"


def test_stylize_existing_outputs_need_overwrite(folders, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "c0__s1.png").write_bytes(b"an earlier result")
    (out / "notes.txt").write_text("unrelated")
    monkeypatch.setattr(loading, "load_model", _no_model)
    code, _ = _exit_code(stylize.main, _stylize_argv(folders, out))
    line = _one_error_line(capsys.readouterr().err)
    assert code == guards.EXIT_USAGE and "already holds 1 of the 4 output files (c0__s1.png)" in line
    assert "--overwrite" in line and _snapshot(out) == {Path("c0__s1.png"): b"an earlier result",
                                                        Path("notes.txt"): b"unrelated"}
    with pytest.raises(AssertionError, match="model was loaded"):  # --overwrite gets past the checks
        stylize.main(_stylize_argv(folders, out, "random", "--overwrite"))


def test_stylize_output_names_shared_by_two_pairs_are_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(loading, "load_model", _no_model)
    for name in ("content/a__b.png", "content/a.png", "style/c.png", "style/b__c.png"):
        random_png(tmp_path / name, seed=len(name))
    code, _ = _exit_code(stylize.main, _stylize_argv((tmp_path / "content", tmp_path / "style"), tmp_path / "o"))
    line = _one_error_line(capsys.readouterr().err)
    assert code == guards.EXIT_USAGE and "a__b__c.png" in line and not (tmp_path / "o").exists()


def test_native_file_with_missing_extra_and_misshaped_layers(folders, adain_variables, tmp_path, capsys):
    def damage(variables):
        decoder = variables["params"]["decoder"]
        del decoder["conv1_1"]
        decoder["conv9_9"] = {"kernel": np.zeros((3, 3, 4, 4), np.float32)}
        decoder["conv2_1"]["bias"] = np.zeros(7, np.float32)
    checkpoint = _native(tmp_path / "damaged.npz", adain_variables, damage)
    code, _ = _exit_code(stylize.main, _stylize_argv(folders, tmp_path / "out", checkpoint))
    line = _one_error_line(capsys.readouterr().err)
    assert code == guards.EXIT_USAGE and "damaged.npz does not match --arch adain" in line
    for name in ("missing (2): params/decoder/conv1_1/bias, params/decoder/conv1_1/kernel",
                 "unexpected (1): params/decoder/conv9_9/kernel", "params/decoder/conv2_1/bias (7,)"):
        assert name in line
    argv = ["--arch", "adain", "--checkpoint", str(checkpoint), "--content-dir", str(folders[0]), "--style-dir",
            str(folders[1]), *RUN_ARGS, "--pairs", "2", "--out", str(tmp_path / "run")]
    assert eval_run.main(argv) == guards.EXIT_USAGE  # the same check through eval.run
    assert "conv9_9" in _one_error_line(capsys.readouterr().err) and not (tmp_path / "run").exists()


def _subprocess_env(**extra):
    return dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", PYTHONPATH=str(REPO), **extra)


def test_stylize_prints_undecodable_file_names_to_a_strict_utf8_stdout(folders, tmp_path):
    content = os.fsencode(tmp_path / "content")
    random_png(content + b"/\xff.png", seed=1)
    Path(os.fsdecode(content + b"/\xfe.png")).write_bytes(b"not an image")
    argv = [sys.executable, "-m", "eval.stylize", *_stylize_argv((os.fsdecode(content), folders[1]), tmp_path / "o")]
    result = subprocess.run(argv, cwd=REPO, capture_output=True,
                            env=_subprocess_env(PYTHONIOENCODING="utf-8:strict", LC_ALL="C.UTF-8"))
    out, err = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == guards.EXIT_OK, err[-2000:]
    assert "\\xfe.png: content skipped" in out and "Traceback" not in err
    assert sorted(os.listdir(os.fsencode(tmp_path / "o"))) == [b"\xff__s0.png", b"\xff__s1.png"]


# Runs a CLI module whose files may grow to LIMIT bytes: past that write() fails with EFBIG, as on a full
# disk (SIGXFSZ ignored). Set in the child itself: forking this multithreaded (JAX) process with a
# preexec_fn could deadlock. Its stdout and stderr are pipes, which the limit does not affect.
_FULL_DISK = ("import resource, runpy, signal, sys; limit, module = int(sys.argv.pop(1)), sys.argv.pop(1); "
              "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)); "
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
              "runpy.run_module(module, run_name='__main__', alter_sys=True)")


def _run_on_a_full_disk(module, argv, limit):
    command = [sys.executable, "-c", _FULL_DISK, str(limit), module, *argv]
    return subprocess.run(command, cwd=REPO, capture_output=True, env=_subprocess_env())


def test_stylize_stops_when_the_disk_is_full(folders, tmp_path):
    result = _run_on_a_full_disk("eval.stylize", _stylize_argv(folders, tmp_path / "o"), limit=40)
    line = _one_error_line(result.stderr.decode())
    assert result.returncode == guards.EXIT_WRITE_FAILED
    assert "cannot write c" in line and "File too large; stopped after 0 images" in line
    assert os.listdir(tmp_path / "o") == []  # no half-written image, no temporary file left


# ----------------------------------------------------------------------------------------------- eval.run

RUN_ARGS = ["--size", "32", "--loss-vgg-weights", "random", "--style-layers", "relu1_1", "--content-layers",
            "relu1_1", "--no-progress", "--no-figures"]


def _run_argv(folders, out, pairs=4, arch=("--arch", "identity"), *extra):
    return [*arch, "--content-dir", str(folders[0]), "--style-dir", str(folders[1]), *RUN_ARGS,
            "--pairs", str(pairs), "--out", str(out), *extra]


def _csv(path):
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.reader(stream))


def test_run_refuses_nonfinite_model_weights(folders, adain_variables, tmp_path, capsys):
    def poison(variables):
        variables["params"]["encoder"]["conv1_1"]["bias"][:] = np.inf
    checkpoint = _native(tmp_path / "inf.npz", adain_variables, poison)
    code, _ = _exit_code(eval_run.main, _run_argv(folders, tmp_path / "out", 4, ("--arch", "adain", "--checkpoint",
                                                                                 str(checkpoint))))
    line = _one_error_line(capsys.readouterr().err)
    assert code == guards.EXIT_USAGE and "inf.npz holds non-finite weights" in line
    assert not (tmp_path / "out").exists()


def test_run_refuses_a_nonfinite_loss_network(folders, tmp_path, capsys):
    from jax_ast.pretrained import load_vgg, save_params
    _, params = load_vgg("vgg16", "random", taps=("relu1_1",))
    params = jax.tree.map(np.array, params)
    params["conv1_1"]["kernel"][1] = np.nan
    weights = save_params(tmp_path / "vgg.npz", params, meta={"variant": "vgg16"})
    argv = _run_argv(folders, tmp_path / "out")
    argv[argv.index("random")] = str(weights)
    code, _ = _exit_code(eval_run.main, argv)
    line = _one_error_line(capsys.readouterr().err)
    assert code == guards.EXIT_USAGE and "non-finite" in line and "vgg.npz" in line
    assert not (tmp_path / "out").exists()


def test_run_skips_nonfinite_outputs_and_never_writes_nan(folders, adain_variables, tmp_path, capsys):
    def inflate(variables):
        for layer in variables["params"]["decoder"].values():
            layer["kernel"] *= np.float32(1e30)
    checkpoint = _native(tmp_path / "huge.npz", adain_variables, inflate)
    out = tmp_path / "out"
    code, _ = _exit_code(eval_run.main, _run_argv(folders, out, 3, ("--arch", "adain", "--checkpoint",
                                                                     str(checkpoint))))
    err = capsys.readouterr().err
    assert code == guards.EXIT_NOTHING_DONE  # a whole run of NaN ends non-zero
    assert len(_csv(out / layout.PAIRS_CSV)) == 1 and "nan" not in (out / layout.PAIRS_CSV).read_text()
    skipped = _csv(out / layout.SKIPPED_CSV)[1:]
    assert len(skipped) == 3 and all(row[-1] == "non-finite model output (NaN or inf)" for row in skipped)
    assert "3 pairs had a NaN or inf output or score and were skipped" in err
    assert json.loads((out / layout.SUMMARY_JSON).read_text())["pairs"]["skipped"] == 3


def test_nonfinite_scores_are_dropped_with_their_names():
    from eval.score.pairs import Chunk
    images = np.zeros((3, 2, 2, 3), np.uint8)
    chunk = Chunk([5, 6, 7], [0, 1, 0], [1, 0, 0], images, images, [])
    outputs = np.zeros((3, 2, 2, 3), np.float32)
    outputs[0, 1, 1, 2] = np.inf
    metrics = {"ssim": np.array([1.0, 1.0, np.nan]), "psnr": np.array([1.0, 2.0, np.inf])}
    kept, kept_outputs, kept_metrics, dropped = eval_run.drop_nonfinite(chunk, outputs, metrics, ["ssim", "psnr"])
    assert kept.pairs == [6] and kept_outputs.shape == (1, 2, 2, 3) and kept_metrics["psnr"].tolist() == [2.0]
    assert dropped == [(5, 0, 1, "non-finite model output (NaN or inf)"), (7, 0, 0, "non-finite scores: ssim, psnr")]


@pytest.mark.parametrize("kind", ["file", "file-parent", "foreign-folder"])
def test_run_out_that_is_not_a_result_folder_is_refused(folders, tmp_path, capsys, kind):
    (tmp_path / "taken").write_text("keep me")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "summary.md").write_text("my own notes")
    out = {"file": tmp_path / "taken", "file-parent": tmp_path / "taken" / "run",
           "foreign-folder": tmp_path / "notes"}[kind]
    before = _snapshot(tmp_path)
    code, via_exit = _exit_code(eval_run.main, _run_argv(folders, out))
    line = _one_error_line(capsys.readouterr().err)
    assert code == guards.EXIT_USAGE and via_exit and f"--out {out}" in line
    assert _snapshot(tmp_path) == before


def test_run_disk_full_keeps_whole_rows_and_resumes(folders, tmp_path):
    out = tmp_path / "out"
    argv = _run_argv(folders, out, 30, ("--arch", "identity"), "--batch-size", "2")
    result = _run_on_a_full_disk("eval.run", argv, limit=2500)
    line = _one_error_line(result.stderr.decode())
    assert result.returncode == guards.EXIT_WRITE_FAILED and f"{out / layout.PAIRS_CSV}" in line
    data = (out / layout.PAIRS_CSV).read_bytes()
    rows = _csv(out / layout.PAIRS_CSV)
    assert data.endswith(b"\n") and 2 < len(rows) < 31 and len({len(row) for row in rows}) == 1
    assert f"its {len(rows) - 1} rows are intact" in line
    assert eval_run.main(argv) == guards.EXIT_OK  # a rerun without the limit resumes
    assert [int(row[0]) for row in _csv(out / layout.PAIRS_CSV)[1:]] == list(range(30))


def test_csv_log_undoes_a_failed_write(tmp_path, monkeypatch):
    """A disk that fills up mid-batch: the partial row is cut off at once, and the pairs are not recorded."""
    path, real_write, calls = tmp_path / "log.csv", os.write, []

    def write_part_then_fail(descriptor, data):
        if not os.path.samestat(os.fstat(descriptor), log_file):  # only the log's writes fail
            return real_write(descriptor, data)
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(descriptor, bytes(data[:5]))

    with records.CsvLog(path, ["pair", "value"]) as log:
        log.append([(0, 1.0)])
        log_file = path.stat()
        monkeypatch.setattr(os, "write", write_part_then_fail)
        with pytest.raises(records.WriteError, match="No space left on device; its 1 rows are intact"):
            log.append([(1, 2.0), (2, 3.0)])
        monkeypatch.undo()
        assert path.read_text() == "pair,value\n0,1\n" and log.done == {0}
        log.append([(1, 2.5)])
    assert path.read_text() == "pair,value\n0,1\n1,2.5\n"


@pytest.mark.parametrize("content", [b'{"arch": "identity", "che', b"[1, 2]", b"\xff\xfe"])
def test_run_unreadable_run_json_is_refused(folders, tmp_path, capsys, content):
    out = tmp_path / "out"
    out.mkdir()
    (out / layout.RUN_JSON).write_bytes(content)
    before = _snapshot(out)
    code, _ = _exit_code(eval_run.main, _run_argv(folders, out))
    line = _one_error_line(capsys.readouterr().err)
    assert code == guards.EXIT_USAGE and f"{out / layout.RUN_JSON}" in line and "cannot be resumed" in line
    assert _snapshot(out) == before


def test_run_resumes_a_folder_whose_run_json_says_checkpoint_for_weights(folders, tmp_path, capsys):
    """run.json named --weights "checkpoint" before the rename: such a folder still resumes, and a mismatch
    is reported under today's name."""
    out = tmp_path / "out"
    assert eval_run.main(_run_argv(folders, out, 2)) == guards.EXIT_OK
    settings = json.loads((out / layout.RUN_JSON).read_text())
    settings["checkpoint"] = settings.pop("weights")
    (out / layout.RUN_JSON).write_text(json.dumps(settings))
    assert eval_run.main(_run_argv(folders, out, 3)) == guards.EXIT_OK
    assert [int(row[0]) for row in _csv(out / layout.PAIRS_CSV)[1:]] == [0, 1, 2]
    settings["checkpoint"] = "/elsewhere/params.npz"
    (out / layout.RUN_JSON).write_text(json.dumps(settings))
    capsys.readouterr()
    code, _ = _exit_code(eval_run.main, _run_argv(folders, out, 4))
    line = _one_error_line(capsys.readouterr().err)
    assert code == guards.EXIT_USAGE and "weights: '/elsewhere/params.npz' there, None now" in line, line


def test_run_rebuilds_an_unreadable_extremes_cache(folders, tmp_path, capsys):
    out = tmp_path / "out"
    assert eval_run.main(_run_argv(folders, out, 2)) == guards.EXIT_OK
    (out / layout.EXTREMES_NPZ).write_bytes(b"PK\x03\x04 cut off")
    assert eval_run.main(_run_argv(folders, out, 3)) == guards.EXIT_OK
    assert "extremes.npz is unreadable (BadZipFile); the extreme pairs are recomputed" in capsys.readouterr().err
    assert [int(row[0]) for row in _csv(out / layout.PAIRS_CSV)[1:]] == [0, 1, 2]


def test_run_skipped_image_with_an_undecodable_name(folders, tmp_path, capsys):
    content = os.fsencode(tmp_path / "content")
    random_png(content + b"/\xff.png", seed=3)
    Path(os.fsdecode(content + b"/\xfe.png")).write_bytes(b"not an image")
    out = tmp_path / "out"
    assert eval_run.main(_run_argv((os.fsdecode(content), folders[1]), out, 4)) == guards.EXIT_OK
    skipped = _csv(out / layout.SKIPPED_CSV)[1:]
    assert skipped and all(row[3] == "\\xfe.png" and "\\xfe.png" in row[-1] for row in skipped)
    assert {row[3] for row in _csv(out / layout.PAIRS_CSV)[1:]} == {"\\xff.png"}


@pytest.mark.parametrize("flag,value,message", [
    ("--content-dir", "FILE", "is a file, not a folder of images"),
    ("--style-dir", "EMPTY", "no images found"),
    ("--pairs", "0", "--pairs must be >= 1"),
    ("--pairs", "-3", "--pairs must be >= 1"),
])
def test_run_bad_data_flags(folders, tmp_path, capsys, flag, value, message):
    (tmp_path / "FILE").write_bytes(b"not a folder")
    (tmp_path / "EMPTY").mkdir()
    argv = _run_argv(folders, tmp_path / "out")
    argv[argv.index(flag) + 1] = str(tmp_path / value) if value.isupper() else value
    code, _ = _exit_code(eval_run.main, argv)
    assert code == guards.EXIT_USAGE and message in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_run_size_too_small_for_the_network(folders, tmp_path, monkeypatch, capsys):
    """SANet needs relu5_1 maps larger than 1x1: found by tracing shapes only, before anything is written."""
    from jax_ast.archs import build

    def abstract_sanet(arch, checkpoint, **kwargs):
        model = build(arch)
        probe = jax.ShapeDtypeStruct((1, loading.PROBE_SIZE, loading.PROBE_SIZE, 3), np.float32)
        return model, jax.eval_shape(model.init, jax.random.key(0), probe, probe)
    monkeypatch.setattr(loading, "load_model", abstract_sanet)
    argv = _run_argv(folders, tmp_path / "out", 2, ("--arch", "sanet", "--checkpoint", "random"))
    argv[argv.index("--size") + 1] = "16"
    code, _ = _exit_code(eval_run.main, argv)
    line = _one_error_line(capsys.readouterr().err)
    assert code == guards.EXIT_USAGE and "--size 16 does not suit --arch sanet" in line
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------- eval.compare

VALID_SUMMARY = {"label": "x", "stats": {name: {"count": 2, "mean": 1.0, "median": 1.0, "std": 0.0}
                                        for name in ("classic/total", "balanced/total", "ssim")},
                 "pearson_classic_vs_bound": {"relu1_1": None}}


@pytest.mark.parametrize("content,message", [
    (json.dumps(VALID_SUMMARY)[:40].encode(), "is unreadable (JSONDecodeError"),
    (b"\xff\xfe{}", "is unreadable (UnicodeDecodeError"),
    (b"[1, 2]", "holds a JSON list, not an object"),
    (b'{"label": "x"}', "no 'stats' object"),
    (json.dumps({"stats": {"classic/total": {"mean": 1.0}}}).encode(), "lacks numeric count, median, std"),
    (json.dumps({**VALID_SUMMARY, "stats": {**VALID_SUMMARY["stats"], "ssim": [1]}}).encode(),
     "stats['ssim'] has no numeric 'mean'"),
    (json.dumps({**VALID_SUMMARY, "pearson_classic_vs_bound": {"relu1_1": "high"}}).encode(),
     "'pearson_classic_vs_bound' is not an object of numbers"),
])
def test_compare_malformed_summary(tmp_path, capsys, content, message):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / layout.SUMMARY_JSON).write_bytes(content)
    code, _ = _exit_code(compare.main, [str(tmp_path / "run")])
    line = _one_error_line(capsys.readouterr().err)
    assert code == guards.EXIT_USAGE and f"{tmp_path / 'run' / layout.SUMMARY_JSON}" in line and message in line


@pytest.mark.parametrize("kind", ["folder", "existing-file", "file-parent"])
def test_compare_out_that_cannot_be_written(tmp_path, capsys, kind):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / layout.SUMMARY_JSON).write_text(json.dumps(VALID_SUMMARY))
    (tmp_path / "table.md").write_text("an earlier table")
    out = {"folder": tmp_path / "run", "existing-file": tmp_path / "table.md",
           "file-parent": tmp_path / "table.md" / "new.md"}[kind]
    before = _snapshot(tmp_path)
    code, _ = _exit_code(compare.main, [str(tmp_path / "run"), "--out", str(out)])
    line = _one_error_line(capsys.readouterr().err)
    assert code == guards.EXIT_USAGE and f"--out {out}" in line
    assert _snapshot(tmp_path) == before
    if kind == "existing-file":
        assert compare.main([str(tmp_path / "run"), "--out", str(out), "--overwrite"]) == guards.EXIT_OK
        assert "| x |" in out.read_text()
