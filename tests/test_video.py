"""Video stylisation (`eval.stylize.video`, `eval.stylize.video_cli`): streaming, frame order and rate, blending,
errors."""

import fractions

import jax
import numpy as np
import pytest

from eval.inference import loading
from eval.stylize import cli as stylize
from eval.stylize import video
from jax_ast import imageio
from jax_ast.pretrained import params_file

FPS = 12
FRAMES = 6
SIDE = 32


def _clip(count: int = FRAMES) -> np.ndarray:
    """float32 [count, 32, 32, 3]: a background whose colour changes per frame and a moving white square."""
    frames = np.zeros((count, SIDE, SIDE, 3), np.float32)
    for t in range(count):
        frames[t] = (0.15 * t, 0.4, 0.8 - 0.12 * t)
        frames[t, 8:16, 4 * t:4 * t + 8] = 1.0
    return frames


def _write(path, frames, fps=FPS):
    with video.VideoWriter(path, fractions.Fraction(fps)) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def _nearest(frames, references):
    """Index of the closest reference (mean absolute difference) for each frame."""
    return [int(np.argmin([np.mean(np.abs(frame - ref)) for ref in references])) for frame in frames]


def test_writer_round_trip_keeps_count_order_and_rate(tmp_path):
    frames = _clip()
    path = _write(tmp_path / "clip.mp4", frames)
    decoded, fps = video.read_video(path)
    assert decoded.shape == frames.shape and fps == FPS
    assert _nearest(decoded, frames) == list(range(FRAMES))
    assert np.mean(np.abs(decoded - frames)) < 0.03  # H.264 at CRF 18 (colour at half resolution)
    assert not list(tmp_path.glob(".*partial*"))  # renamed into place


def test_writer_aborted_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with video.VideoWriter(tmp_path / "clip.mp4", fractions.Fraction(FPS)) as writer:
            writer.write(_clip(1)[0])
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


class _GainStylizer:
    """Fake stylizer: frame * code gain, 4 frames per step; records the batch sizes it saw."""

    step_size = 4

    def __init__(self):
        self.batches = []

    def stylize_with_codes(self, contents, codes, *, alpha=1.0):
        self.batches.append(len(contents))
        return contents * codes["gain"][:, None, None, None]


class _ListWriter:
    def __init__(self):
        self.frames = []

    def write(self, frame):
        self.frames.append(frame)


def test_stylize_frames_streams_in_steps_in_order_with_one_code():
    frames, stylizer, writer = _clip(), _GainStylizer(), _ListWriter()
    flicker = video.stylize_frames(stylizer, iter(frames), {"gain": np.float32(0.5)}, writer)
    assert stylizer.batches == [4, 2]  # streamed, the last step partial
    np.testing.assert_allclose(np.stack(writer.frames), frames * 0.5, rtol=1e-6)
    diffs = [np.mean(np.abs(frames[t] - frames[t - 1])) for t in range(1, FRAMES)]
    assert flicker.pairs == FRAMES - 1
    np.testing.assert_allclose(flicker.means()["source"], np.mean(diffs), rtol=1e-5)
    np.testing.assert_allclose(flicker.means()["stylized"], 0.5 * np.mean(diffs), rtol=1e-5)
    assert flicker.means()["output"] == flicker.means()["stylized"]  # no blending


def test_temporal_blend_mixes_still_pixels_only():
    still = np.full((SIDE, SIDE, 3), 0.5, np.float32)
    moved = still.copy()
    moved[:8] = 1.0  # the top rows move, the rest is still
    previous_output, stylized = np.zeros_like(still), np.ones_like(still)
    blended = video.blend_with_previous(stylized, previous_output, moved, still, 0.75)
    np.testing.assert_allclose(blended[8:], 0.25)  # 0.75 * previous + 0.25 * new
    np.testing.assert_allclose(blended[:8], 1.0)  # source changed by 0.5 > MOTION_THRESHOLD: no blend
    # On a still clip whose stylisation flickers, blending lowers the output's flicker.
    frames = np.repeat(still[None], FRAMES, axis=0)

    class Flickering(_GainStylizer):
        def stylize_with_codes(self, contents, codes, *, alpha=1.0):
            return np.stack([np.full_like(c, 0.2 + 0.6 * (i % 2)) for i, c in enumerate(contents)])

    flicker = video.stylize_frames(Flickering(), frames, {"gain": np.float32(1)}, _ListWriter(), blend=0.5)
    assert flicker.means()["source"] == 0 and flicker.means()["output"] < 0.5 * flicker.means()["stylized"]


# ------------------------------------------------------------------------------------------------ the CLI

@pytest.fixture(scope="module")
def visible_adain(tmp_path_factory):
    """Random AdaIN whose last conv is rescaled (bias 0.5) so its output spans the visible range; the video
    test needs frames that differ after 8-bit quantisation. A params file, loaded by the CLI."""
    _, variables = loading.load_model("adain", "random", seed=0)
    params = jax.tree.map(np.asarray, variables["params"])
    last = params["decoder"]["conv1_1"]
    last["kernel"] = last["kernel"] * 100.0
    last["bias"] = np.full_like(last["bias"], 0.5)
    return params_file.save_params(tmp_path_factory.mktemp("weights") / "adain.npz", {"params": params},
                              meta={"arch": "adain"})


def _run(checkpoint, content, style, out, *extra):
    return stylize.main(["--arch", "adain", "--checkpoint", str(checkpoint), "--content", str(content), "--style",
                         str(style), "--out", str(out), "--size", str(SIDE), "--no-progress", *extra])


def _style(tmp_path):
    style = np.random.default_rng(0).random((SIDE, SIDE, 3), dtype=np.float32)
    return imageio.save_image(tmp_path / "style.png", style)


def test_cli_video_matches_frames_stylised_as_images(tmp_path, visible_adain, capsys):
    clip = _write(tmp_path / "clip.mp4", _clip())
    style = _style(tmp_path)
    assert _run(visible_adain, clip, style, tmp_path / "out") == 0
    out, fps = video.read_video(tmp_path / "out" / "clip__style.mp4")
    assert out.shape == (FRAMES, SIDE, SIDE, 3) and fps == FPS
    assert "flicker" in capsys.readouterr().out
    # Reference: the decoded source frames stylised one by one as images.
    source, _ = video.read_video(clip)
    for t, frame in enumerate(source):
        imageio.save_image(tmp_path / "frames" / f"frame_{t}.png", frame)
    assert _run(visible_adain, tmp_path / "frames", style, tmp_path / "images") == 0
    images = np.stack([imageio.load_image(tmp_path / "images" / f"frame_{t}__style.png") for t in range(FRAMES)])
    assert images.std() > 0.02  # frames that differ visibly, so the order check means something
    assert _nearest(out, images) == list(range(FRAMES))
    assert np.mean(np.abs(out - images)) < 0.03  # H.264 loss only
    # The folder of frames as one video (natural order: frame_10 would follow frame_9) at --fps, blended.
    assert _run(visible_adain, tmp_path / "frames", style, tmp_path / "folder", "--video-frames", "--fps", "5",
                "--temporal-blend", "0.3") == 0
    assert "blended (--temporal-blend 0.3)" in capsys.readouterr().out
    folder_frames, folder_fps = video.read_video(tmp_path / "folder" / "frames__style.mp4")
    assert folder_fps == 5 and len(folder_frames) == FRAMES
    assert _nearest(folder_frames, images) == list(range(FRAMES))


@pytest.mark.parametrize("case, message", [
    ("garbage", "cannot read video"),
    ("fps", "--fps is for --video-frames"),
    ("blend", "--temporal-blend must be in [0, 1)"),
    ("coral", "one style code"),
    ("no-video", "--temporal-blend needs a video"),
    ("exists", "already holds clip__style.mp4"),
])
def test_cli_video_errors_are_one_message(tmp_path, capsys, case, message):
    clip = _write(tmp_path / "clip.mp4", _clip(2))
    style = _style(tmp_path)
    extra = {"fps": ["--fps", "10"], "blend": ["--temporal-blend", "1.5"], "coral": ["--preserve-color", "coral"],
             "no-video": ["--temporal-blend", "0.5"]}.get(case, [])
    if case == "garbage":
        clip.write_bytes(b"not a video" * 10)
    if case == "no-video":
        clip = style
    if case == "exists":
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "clip__style.mp4").write_bytes(b"keep")
    with pytest.raises(SystemExit) as stop:
        _run("random", clip, style, tmp_path / "out", *extra)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
    if case == "exists":
        assert (tmp_path / "out" / "clip__style.mp4").read_bytes() == b"keep"


def test_make_clip_pans_one_pixel_per_frame():
    from benchmarks.make_clip import pan_frames

    photo = np.tile(np.linspace(0, 1, 80, dtype=np.float32)[None, :, None], (40, 1, 3))  # a horizontal ramp
    frames = pan_frames(photo, 5, 20)  # a 40 px window shown at 20 px: 2 photo pixels per frame
    assert frames.shape == (5, 20, 20, 3)
    np.testing.assert_allclose(frames[1:, :, :-1], frames[:-1, :, 1:], atol=1.5 / 255)  # shifted by one pixel
    with pytest.raises(ValueError, match="too narrow"):
        pan_frames(photo, 50, 20)
    still = pan_frames(photo, 3, 20, pan=0)
    assert (still == still[0]).all()


def test_cli_bad_frame_midway_writes_nothing(tmp_path, capsys):
    frames = tmp_path / "frames"
    for t, frame in enumerate(_clip(3)):
        imageio.save_image(frames / f"frame_{t}.png", frame)
    (frames / "frame_1.png").write_bytes(b"not a png")  # the first frame is fine, the second is not
    status = _run("random", frames, _style(tmp_path), tmp_path / "out", "--video-frames")
    assert status == 1  # EXIT_NOTHING_DONE
    assert "frame_1.png" in capsys.readouterr().err
    assert list((tmp_path / "out").iterdir()) == []  # no video, no partial file
