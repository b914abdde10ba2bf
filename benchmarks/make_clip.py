"""A test clip from a bundled photo: ``python -m benchmarks.make_clip --out clip.mp4 [--frames 48 --size 256]``.

The camera pans slowly across the photo (``--pan`` pixels of the output per frame, left to right; 0: a still
shot), optionally with fresh Gaussian noise in every frame (``--noise``, in 8-bit levels, like sensor noise),
so consecutive source frames differ a little, as in real footage; stylising it shows how much flicker a
network adds (`eval.stylize.video`). A still, noisy clip isolates flicker from motion. Written as H.264 at ``--fps``.
"""

from __future__ import annotations

import argparse
import fractions
import sys
from pathlib import Path

import numpy as np

from eval.stylize.video import VideoWriter
from jax_ast import imageio
from jax_ast.data import bundled_dir


def pan_frames(photo: np.ndarray, frames: int, size: int, pan: int = 1) -> np.ndarray:
    """float32 [frames, size, size, 3]: a square window of `photo` moving right by `pan` output pixels per frame."""
    height, width = photo.shape[:2]
    window = min(height, width - 1)
    scale = window / size
    if (frames - 1) * pan * scale > width - window:
        raise ValueError(f"the photo is too narrow for {frames} frames of a {pan}-pixel pan at {size} px")
    out = []
    for t in range(frames):
        left = round(t * pan * scale)
        crop = photo[:window, left:left + window]
        out.append(_resize(crop, size))
    return np.stack(out)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    quantised = Image.fromarray(np.round(image * 255).astype(np.uint8))
    return np.asarray(quantised.resize((size, size), Image.Resampling.BILINEAR), np.float32) / 255.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.make_clip", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output .mp4 (not overwritten)")
    parser.add_argument("--photo", default="golden_gate_bridge_fog.jpg", help="bundled content photo")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=256, help="frame side in pixels (even)")
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--pan", type=int, default=1, help="output pixels the camera moves per frame (0: still)")
    parser.add_argument("--noise", type=float, default=0.0, help="per-frame Gaussian noise, std in 8-bit levels")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise")
    args = parser.parse_args(argv)
    if args.out.exists():
        parser.error(f"--out {args.out} exists; choose another name")
    if args.size < 2 or args.size % 2 or args.frames < 1 or args.fps < 1 or args.pan < 0 or args.noise < 0:
        parser.error("--size must be even and >= 2; --frames and --fps positive; --pan and --noise >= 0")
    photo = imageio.load_image(bundled_dir("content") / args.photo)
    try:
        frames = pan_frames(photo, args.frames, args.size, args.pan)
    except ValueError as error:
        parser.error(str(error))
    if args.noise:
        noise = np.random.default_rng(args.seed).normal(0.0, args.noise / 255.0, frames.shape)
        frames = np.clip(frames + noise, 0.0, 1.0).astype(np.float32)
    with VideoWriter(args.out, fractions.Fraction(args.fps)) as writer:
        for frame in frames:
            writer.write(frame)
    print(f"written: {args.out} ({args.frames} frames, {args.size}x{args.size}, {args.fps} fps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
