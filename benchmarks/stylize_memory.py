"""Peak memory of stylisation against image size, whole vs tiled: ``python -m benchmarks.stylize_memory``.

Each (size, mode) runs in its own subprocess (`--child`), so each peak is that run's alone: the parent reads
the child's peak resident set size (``ru_maxrss`` from ``os.wait4``) when it exits. A watchdog reads the
child's current RSS from ``/proc`` and stops it above ``--max-gib`` (the machine is shared) or after
``--timeout`` seconds; the table says which. The child stylises one bundled photo resized to the given long
side (aspect 4096:2160, DCI 4K) with ``--arch`` (default AdaIN) on the real ImageNet VGG-16 encoder
(`benchmarks.inputs`) and a seeded random rest (random weights cost the same memory and time as trained ones;
SANet with the CLI's default attention chunk), on one device, the style (512 px shorter side) encoded once;
"tiled" is `eval.inference.tiling` with ``--tile``/``--overlap``. Seconds include compilation.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from jax_ast.archs import ARCHS

ASPECT = 2160 / 4096  # height / width of the content: DCI 4K
SIDES = (512, 1024, 2048, 4096)
GIB = 1024 ** 3


def _child(arch: str, side: int, tile: int, overlap: int) -> None:
    """Stylises one photo of long side `side` (tile 0: whole) and prints a JSON line."""
    import numpy as np

    from benchmarks.inputs import variables_for
    from eval.inference import loading
    from eval.inference.batching import Stylizer
    from eval.inference.tiling import TileConfig, TiledStylizer
    from jax_ast import imageio
    from jax_ast.data import bundled_dir

    model, variables = variables_for(arch)
    model = loading.with_attention_chunk(model, None)  # SANet: the CLI's default attention chunk
    content_path = imageio.list_images(bundled_dir("content"))[0]
    content = imageio.load_image(content_path, size=(round(side * ASPECT), side), mode="exact")
    style = imageio.load_image(imageio.list_images(bundled_dir("style"))[0], size=512)
    stylizer = Stylizer(model, variables, batch_size=1)
    if tile:
        stylizer = TiledStylizer(stylizer, TileConfig(tile, overlap))
    start = time.perf_counter()
    code = stylizer.encode_styles(style[None])
    result = stylizer.stylize_with_codes(content[None], code)
    seconds = time.perf_counter() - start
    print(json.dumps({"shape": list(result.shape[1:3]), "seconds": seconds,
                      "finite": bool(np.isfinite(result).all())}), flush=True)


def _rss_bytes(pid: int) -> int:
    """Current resident set size of `pid` (0 where /proc is unavailable)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(arch: str, side: int, tile: int, overlap: int, *, timeout: float, max_bytes: int) -> dict:
    """Runs one child; returns {"side", "tile", "peak_gib", "seconds", "status"}."""
    command = [sys.executable, "-m", "benchmarks.stylize_memory", "--child", "--arch", arch, "--sides", str(side),
               "--tile", str(tile), "--overlap", str(overlap)]
    # Files, not pipes: a child blocked on a full pipe would look like a slow run.
    out_file, err_file = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    child = subprocess.Popen(command, stdout=out_file, stderr=err_file, text=True)
    start, status = time.monotonic(), None
    try:
        while True:
            pid, wait_status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if status is None and _rss_bytes(child.pid) > max_bytes:
                status = f"stopped above {max_bytes / GIB:.0f} GiB"
                child.send_signal(signal.SIGKILL)
            elif status is None and time.monotonic() - start > timeout:
                status = f"stopped after {timeout:.0f} s"
                child.send_signal(signal.SIGKILL)
            time.sleep(0.1)
    except BaseException:  # Ctrl-C or an error here: do not leave the child running
        child.kill()
        child.wait()
        raise
    child.returncode = os.waitstatus_to_exitcode(wait_status)
    out, err = (_read_and_close(stream) for stream in (out_file, err_file))
    row = {"side": side, "tile": tile, "peak_gib": usage.ru_maxrss * 1024 / GIB, "seconds": None}
    if status is None and child.returncode == 0:
        result = json.loads(out.strip().splitlines()[-1])
        row["seconds"] = result["seconds"]
        status = "ok" if result["finite"] else "non-finite output"
    elif status is None:
        tail = (err.strip().splitlines() or ["no message"])[-1]
        status = f"failed (exit {child.returncode}): {tail[:80]}"
    row["status"] = status
    return row


def _read_and_close(stream) -> str:
    stream.seek(0)
    text = stream.read()
    stream.close()
    return text


def table(rows: list[dict]) -> str:
    lines = ["| content (W x H) | mode | peak RSS (GiB) | seconds | status |", "| --- | --- | --- | --- | --- |"]
    for row in rows:
        mode = f"tiled {row['tile']}" if row["tile"] else "whole"
        seconds = f"{row['seconds']:.1f}" if row["seconds"] is not None else "-"
        lines.append(f"| {row['side']} x {round(row['side'] * ASPECT)} | {mode} | {row['peak_gib']:.2f} | {seconds} "
                     f"| {row['status']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stylize_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=ARCHS, default="adain")
    parser.add_argument("--sides", type=int, nargs="+", default=list(SIDES), help=f"content long sides ({SIDES})")
    parser.add_argument("--tile", type=int, default=512, help="tile side of the tiled runs (default 512)")
    parser.add_argument("--overlap", type=int, default=64, help="tile overlap (default 64)")
    parser.add_argument("--modes", nargs="+", choices=("whole", "tiled"), default=["whole", "tiled"])
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per run before it is stopped")
    parser.add_argument("--max-gib", type=float, default=12.0, help="RSS at which a run is stopped (default 12)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.arch, args.sides[0], args.tile, args.overlap)
        return 0
    if not 0 <= args.overlap < args.tile:
        parser.error(f"--overlap must be in [0, --tile), got {args.overlap}")
    rows = []
    for side in args.sides:
        for mode in args.modes:
            rows.append(measure(args.arch, side, args.tile if mode == "tiled" else 0, args.overlap, timeout=args.timeout,
                                max_bytes=int(args.max_gib * GIB)))
            print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
