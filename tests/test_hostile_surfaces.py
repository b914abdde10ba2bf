"""Hostile cases of issue 21: write failures of the eval tools, their resume, one-line usage errors, and the
input surfaces added since the first hostile corpus (masks, tiles, imported ONNX weights).

Each case: one clear message, a documented exit code (`eval.common.guards`), nothing already written lost,
no hang. Tiny images, `--weights random`; a subprocess only where an exit code or a file-size limit matters.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eval.common import guards, layout
from eval.score import compare
from eval.score import run as eval_run
from eval.stylize import cli as stylize

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore:load_vgg.*RANDOMLY INITIALISED:UserWarning")

# Runs a CLI module whose files may grow to LIMIT bytes: past that write() fails with EFBIG, as on a full
# disk (SIGXFSZ ignored); set in the child itself, as in test_hostile_eval.
_FULL_DISK = ("import resource, runpy, signal, sys; limit, module = int(sys.argv.pop(1)), sys.argv.pop(1); "
              "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)); "
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
              "runpy.run_module(module, run_name='__main__', alter_sys=True)")


def _image(path, seed, size=(32, 32), mode="RGB"):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, channels), dtype=np.uint8)
    Image.fromarray(pixels if channels > 1 else pixels[..., 0], mode).save(path, format="PNG")
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """content/ and style/ with two 32 px images each."""
    root = tmp_path_factory.mktemp("images")
    for role, offset in (("content", 0), ("style", 10)):
        for index in range(2):
            _image(root / role / f"{role[0]}{index}.png", offset + index)
    return root / "content", root / "style"


def _exit_code(main, argv):
    try:
        return main(argv)
    except SystemExit as exit_info:
        return exit_info.code


def _one_error_line(err):
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _env():
    return dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", PYTHONPATH=str(REPO))


def _run_module(module, argv, limit=None):
    command = [sys.executable, "-m", module, *argv] if limit is None else \
        [sys.executable, "-c", _FULL_DISK, str(limit), module, *argv]
    result = subprocess.run(command, cwd=REPO, capture_output=True, env=_env(), timeout=300)
    return result.returncode, result.stderr.decode(), result.stdout.decode()


def _stylize_argv(folders, out, *extra):
    return ["--arch", "adain", "--weights", "random", "--content", str(folders[0]), "--style", str(folders[1]),
            "--out", str(out), "--size", "32", "--no-progress", "--no-compilation-cache", *extra]


RUN_ARGS = ["--size", "32", "--loss-vgg-weights", "random", "--style-layers", "relu1_1", "--content-layers",
            "relu1_1", "--no-progress", "--no-figures", "--no-compilation-cache"]


def _run_argv(folders, out, pairs=2, *extra):
    return ["--arch", "identity", "--content-dir", str(folders[0]), "--style-dir", str(folders[1]), *RUN_ARGS,
            "--pairs", str(pairs), "--out", str(out), *extra]


# ------------------------------------------------------------------ item 2: eval.run when a result file fails

def test_run_full_disk_names_the_file_and_says_a_rerun_resumes(folders, tmp_path):
    """Two pairs keep pairs.csv under the limit; the extreme-pair thumbnails (extremes.npz) exceed it."""
    out = tmp_path / "out"
    code, err, _ = _run_module("eval.run", _run_argv(folders, out), limit=2500)
    line = _one_error_line(err)
    assert code == guards.EXIT_WRITE_FAILED
    assert f"cannot write {out / layout.EXTREMES_NPZ}" in line and "File too large" in line, line
    assert "rerun the same command to resume" in line, line
    assert not [name for name in os.listdir(out) if name.endswith(".tmp")]  # no temporary file left
    assert eval_run.main(_run_argv(folders, out)) == guards.EXIT_OK


# ------------------------------------------------------------ item 3: eval.stylize resumes after a failed write

def test_stylize_rerun_resumes_keeping_complete_outputs(folders, tmp_path, capsys):
    out = tmp_path / "o"
    assert stylize.main(_stylize_argv(folders, out)) == guards.EXIT_OK
    names = sorted(os.listdir(out))
    assert len(names) == 4
    kept = {name: (out / name).stat().st_mtime_ns for name in names[:2]}
    partial = (out / names[2]).read_bytes()[:50]
    (out / names[2]).write_bytes(partial)  # not ours (outputs are written whole): refused, left as it is
    (out / names[3]).unlink()  # never written (the run stopped before it)
    (out / f".{names[3]}.0123abcd.tmp").write_bytes(b"left by a killed run")
    capsys.readouterr()
    assert _exit_code(stylize.main, _stylize_argv(folders, out)) == guards.EXIT_USAGE
    line = _one_error_line(capsys.readouterr().err)
    assert f"already holds 1 of the 4 output files ({names[2]}) as unreadable images" in line and "--overwrite" in line
    assert (out / names[2]).read_bytes() == partial
    (out / names[2]).unlink()
    assert stylize.main(_stylize_argv(folders, out)) == guards.EXIT_OK
    err = capsys.readouterr().err
    assert "resuming: 2 of the 4 outputs are already in" in err, err
    assert sorted(os.listdir(out)) == names  # the missing ones written, the stale temporary file gone
    assert {name: (out / name).stat().st_mtime_ns for name in names[:2]} == kept  # complete ones untouched
    assert stylize.main(_stylize_argv(folders, out)) == guards.EXIT_OK  # all done: nothing to do, still 0
    assert "resuming: 4 of the 4" in capsys.readouterr().err


def test_stylize_full_disk_then_rerun_finishes(folders, tmp_path):
    out = tmp_path / "o"
    code, err, _ = _run_module("eval.stylize", _stylize_argv(folders, out), limit=40)
    assert code == guards.EXIT_WRITE_FAILED and "rerun the same command to resume" in _one_error_line(err)
    assert stylize.main(_stylize_argv(folders, out)) == guards.EXIT_OK
    assert len(os.listdir(out)) == 4


# ---------------------------------------------------------------------------------- item 4: loose ends

@pytest.mark.parametrize("value", ["0", "2", "-1e-4", "nan"])
def test_decoder_learning_rate_is_held_to_the_learning_rate_range(value):
    from jax_ast.archs.linear import LinearOptions
    with pytest.raises(ValueError, match=r"decoder_learning_rate must be a number in \(0, 1\]"):
        LinearOptions(decoder_learning_rate=float(value))
    assert LinearOptions(decoder_learning_rate=1.0).decoder_learning_rate == 1.0


def _summary_folder(tmp_path):
    import json
    summary = {"label": "x", "stats": {name: {"count": 2, "mean": 1.0, "median": 1.0, "std": 0.0}
                                       for name in ("classic/total", "balanced/total", "ssim", "psnr")},
               "pearson_classic_vs_bound": {"relu1_1": None}}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / layout.SUMMARY_JSON).write_text(json.dumps(summary))
    return tmp_path / "run"


def test_compare_unknown_extra_metric_is_a_usage_error(tmp_path, capsys):
    run = _summary_folder(tmp_path)
    code = _exit_code(compare.main, [str(run), "--extra", "ssim,no_such_metric"])
    line = _one_error_line(capsys.readouterr().err)
    assert code == guards.EXIT_USAGE
    assert "no_such_metric" in line and "known metrics" in line and "psnr" in line and "ssim" in line, line
    assert compare.main([str(run), "--extra", "ssim,psnr"]) == guards.EXIT_OK


@pytest.mark.parametrize("module,argv", [
    ("eval.run", ["--arch", "identity", "--pairs", "-3"]),
    ("eval.stylize", ["--arch", "nope"]),
    ("eval.compare", ["--labels"]),
    ("eval.deception", ["--bogus-flag"]),
    ("eval.artist_classifier", ["--bogus-flag"]),
])
def test_eval_usage_errors_print_one_line_and_a_help_hint(module, argv, capsys):
    from eval.deception import classifier, rate
    main = {"eval.run": eval_run.main, "eval.stylize": stylize.main, "eval.compare": compare.main,
            "eval.deception": rate.main, "eval.artist_classifier": classifier.main}[module]
    code = _exit_code(main, argv)
    err = capsys.readouterr().err
    assert code == guards.EXIT_USAGE
    assert err.count("\n") == 1 and "usage:" not in err, err
    assert err.startswith(f"python -m {module}: error: ") and "--help for usage" in err, err
