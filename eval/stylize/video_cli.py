"""The video part of ``python -m eval.stylize``: flags, checks and the run (`eval.stylize.video` does the work).

``--content clip.mp4`` (any of `eval.stylize.video.VIDEO_SUFFIXES`), or ``--content frames/ --video-frames``, writes
``<out>/<clip-stem>__<style-stem>.mp4`` per style, at the source's frame rate (``--fps`` for frames), and
prints the flicker of each.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from eval.common import guards
from eval.stylize import video
from eval.stylize.naming import unique_stems
from jax_ast import color, imageio
from jax_ast import progress as progress_lib

Source = video.VideoSource | video.FrameFolderSource


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("video (--content clip.mp4, or a folder of frames with --video-frames)")
    group.add_argument("--video-frames", action="store_true",
                       help="--content is a folder of frames (one video, natural file-name order)")
    group.add_argument("--fps", type=float, default=None,
                       help=f"frame rate of --video-frames output (default {video.DEFAULT_FRAMES_FPS}); a "
                            "video file keeps its own")
    group.add_argument("--temporal-blend", type=float, default=0.0, metavar="W",
                       help="blend each output frame with the previous one, weight W in [0, 1) on still pixels, "
                            "less where the source moves (default 0: off)")


def open_source(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Source | None:
    """The video `--content` names, or None for images; a bad video or flag ends in `parser.error`."""
    is_file = video.is_video(args.content)
    if not (is_file or args.video_frames):
        for flag, value in (("--fps", args.fps), ("--temporal-blend", args.temporal_blend or None)):
            if value is not None:
                parser.error(f"{flag} needs a video: --content clip.mp4 or a folder of frames with --video-frames")
        return None
    if not 0.0 <= args.temporal_blend < 1.0:
        parser.error(f"--temporal-blend must be in [0, 1), got {args.temporal_blend}")
    if args.preserve_color == "coral":
        parser.error("--preserve-color coral recolours the style per frame; a video uses one style code "
                     "(use luminance)")
    try:
        if is_file:
            if args.fps is not None:
                parser.error("--fps is for --video-frames; a video file keeps its own frame rate")
            return video.VideoSource.open(args.content)
        if not args.content.is_dir():
            parser.error(f"--video-frames needs --content to be a folder of frames, got {args.content}")
        if args.fps is not None and not args.fps > 0:
            parser.error(f"--fps must be positive, got {args.fps}")
        return video.FrameFolderSource.open(args.content, args.fps or video.DEFAULT_FRAMES_FPS)
    except video.VideoError as error:
        parser.error(guards.printable(f"--content: {error}"))


def output_paths(args: argparse.Namespace, style_paths: Sequence[Path]) -> list[Path]:
    """One video per style, named as the image outputs (`eval.stylize.naming`)."""
    stem = Path(args.content).stem if Path(args.content).is_file() else Path(args.content).name
    return [args.out / f"{stem}__{style}{video.OUTPUT_SUFFIX}" for style in unique_stems(style_paths)]


def check_outputs(parser: argparse.ArgumentParser, args: argparse.Namespace, style_paths: Sequence[Path]) -> None:
    """Stops (exit 2) when an output video exists and --overwrite is not given."""
    existing = [p.name for p in output_paths(args, style_paths) if p.exists()]
    if existing and not args.overwrite:
        parser.error(guards.printable(f"--out {args.out} already holds {', '.join(existing[:3])}; pass "
                                      "--overwrite to replace, or choose another --out"))


def run(stylizer: Any, source: Source, style_paths: Sequence[Path], args: argparse.Namespace, *,
        size: int | None, style_size: int | None) -> int:
    """Stylises the clip with each style; returns the exit status (`eval.common.guards`)."""
    postprocess = color.preserve_luminance if args.preserve_color == "luminance" else None
    written = 0
    for style_path, out_path in zip(style_paths, output_paths(args, style_paths)):
        try:
            style = imageio.load_image(style_path, size=style_size)
        except imageio.ImageError as error:
            print(guards.printable(f"warning: skipping style {style_path}: {error.reason}"), file=sys.stderr)
            continue
        code = stylizer.encode_many([style])[0]
        progress = progress_lib.Progress(source.frames or None, unit="frame", enabled=not args.no_progress)
        start = time.perf_counter()
        try:
            with video.VideoWriter(out_path, source.fps, timestamps=source.timestamps) as writer:
                flicker = video.stylize_frames(stylizer, source.read(size), code, writer, alpha=args.alpha,
                                               blend=args.temporal_blend, postprocess=postprocess,
                                               on_frames=progress.update)
        except Exception as error:  # a bad frame, a full disk, the network failing: reported, next style
            progress.close()
            print(guards.printable(f"error: {out_path.name} not written: {type(error).__name__}: {error}"),
                  file=sys.stderr)
            if isinstance(error, OSError) and error.errno in guards.DISK_FULL_ERRNOS:
                return guards.EXIT_WRITE_FAILED
            continue
        progress.close()
        seconds = time.perf_counter() - start
        written += 1
        print(f"written: {out_path} ({writer.frames} frames at {float(source.fps):g} fps in {seconds:.1f} s, "
              f"{writer.frames / seconds:.2f} frames/s including compilation)")
        print(flicker.report(args.temporal_blend))
    return guards.EXIT_OK if written else guards.EXIT_NOTHING_DONE


def describe(source: Source) -> str:
    frames = f"{source.frames} frames" if source.frames else "frame count unknown"
    where = source.path if isinstance(source, video.VideoSource) else f"{os.path.commonpath(source.paths)}/"
    return f"video {where}: {source.width}x{source.height}, {frames}, {float(source.fps):g} fps"
