"""The shared helpers: atomic writes (jax_ast.files), the progress display (jax_ast.progress), the image check."""

import io

import numpy as np
import pytest

from jax_ast import files
from jax_ast.checks import check_images
from jax_ast.progress import Progress


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    assert files.write_text(target, "new ✓") == target
    assert target.read_text(encoding="utf-8") == "new ✓" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_failed_atomic_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"precious")
    with pytest.raises(RuntimeError, match="disk full"), files.atomic_writer(target) as stream:
        stream.write(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"precious" and [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_plain_progress_prints_every_tenth_and_the_end():
    stream = io.StringIO()  # not a terminal: plain lines
    with Progress(25, file=stream) as progress:  # a tenth is 2 units
        for _ in range(25):
            progress.update(1)
    assert stream.getvalue().splitlines() == [f"[{done}/25]" for done in (*range(2, 25, 2), 25)]


def test_progress_by_time_and_final_line_on_close():
    stream, clock = io.StringIO(), iter([0.0, 1.0, 5.0, 6.0, 7.0]).__next__
    progress = Progress(10, file=stream, every_fraction=None, every_seconds=4.0, clock=clock,
                        line=lambda done, total: f"{done} of {total}")
    progress.update(1)  # t=1: too soon
    progress.update(1)  # t=5: printed
    progress.update(1)  # t=6: too soon
    progress.close()  # t=7: the last state was not printed yet
    progress.close()
    assert stream.getvalue().splitlines() == ["2 of 10", "3 of 10"]


def test_disabled_progress_prints_nothing_but_messages():
    stream = io.StringIO()
    progress = Progress(2, file=stream, enabled=False)
    progress.update(2)
    progress.write("warning: x")
    progress.close()
    assert stream.getvalue() == "warning: x\n"


@pytest.mark.parametrize("shape, message", [((2, 8, 8), r"content must be RGB images of shape \[B, H, W, 3\], "
                                                        r"got shape \(2, 8, 8\)"),
                                            ((1, 8, 8, 4), r"got shape \(1, 8, 8, 4\)"),
                                            ((1, 8, 3, 3), r"Net: content images of at least 4x4 pixels are "
                                                           r"needed, got 8x3")])
def test_check_images_names_the_problem(shape, message):
    with pytest.raises(ValueError, match=message):
        check_images(np.zeros(shape), "content", min_size=4, model="Net" if shape[2] == 3 else None)
    check_images(np.zeros((1, 4, 4, 3)), "content", min_size=4)
