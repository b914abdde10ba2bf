"""Peak memory of stylisation against image size, whole vs tiled: ``python -m benchmarks.stylize_memory``.

Each (size, mode) runs in its own subprocess (`--child`), so each peak is that run's alone: the parent reads
the child's peak resident set size (``ru_maxrss`` from ``os.wait4``) when it exits. A watchdog reads the
child's current RSS from ``/proc`` and stops it above ``--max-gib`` (the machine is shared) or after
``--timeout`` seconds; the table says which. The child stylises one bundled photo resized to the given long
side (aspect 4096:2160, DCI 4K) with ``--arch`` (default AdaIN) on the real ImageNet VGG-16 encoder
(`benchmarks.inputs`) and a seeded random rest (random weights cost the same memory and time as trained ones;
SANet with the CLI's default attention chunk), on one device, the style (512 px shorter side) encoded once;
"tiled" is `eval.inference.tiling` with ``--tile``/``--overlap``, once per ``--statistics`` mode (the tiles'
normalisation statistics: ``exact`` shared whole-image ones, the CLI's default, or ``per-tile``), each in its
own process; the parent prints each mode's peak and seconds over the first mode's (the ratio). ``--weights
mobile`` runs the mobile Magenta with its released weights instead (the network installed with jax-ast, style
at 256 px); ``--aspect 0.5625 --sides 3840`` gives UHD 3840 x 2160. Each row also gives the seam ratio of the
output (`benchmarks.tiling_error.seam_ratio` at the tile borders; ~1 where no step shows) and the 1-minute
load average when the run ended (the seconds depend on it, the peaks do not). Seconds include compilation.
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

from eval.inference.tile_statistics import STATISTICS
from jax_ast.archs import ARCHS

ASPECT = 2160 / 4096  # height / width of the content: DCI 4K
SIDES = (512, 1024, 2048, 4096)
GIB = 1024 ** 3


def _child(args: argparse.Namespace) -> None:
    """Stylises one photo of long side ``args.sides[0]`` (``args.tile`` 0: whole) and prints a JSON line."""
    import numpy as np

    from benchmarks.tiling_error import seam_ratio
    from eval.inference.batching import Stylizer
    from eval.inference.tiling import TileConfig, TiledStylizer
    from jax_ast import imageio

    model, variables = _network(args.arch, args.weights)
    side = args.sides[0]
    content = imageio.load_image(_bundled("content", args.content), size=(round(side * args.aspect), side),
                                 mode="exact")
    style = imageio.load_image(_bundled("style", args.style), size=args.style_size or _style_size(args.weights))
    stylizer = Stylizer(model, variables, batch_size=1)
    if args.tile:
        stylizer = TiledStylizer(stylizer, TileConfig(args.tile, args.overlap, args.statistics[0]))
    start = time.perf_counter()
    code = stylizer.encode_styles(style[None])
    result = stylizer.stylize_with_codes(content[None], code)
    seconds = time.perf_counter() - start
    seams = seam_ratio(np.clip(result[0], 0, 1), args.seam_tile, args.overlap)  # whole: at the tiled run's lines
    print(json.dumps({"shape": list(result.shape[1:3]), "seconds": seconds, "seam_ratio": seams,
                      "finite": bool(np.isfinite(result).all())}), flush=True)


def _network(arch: str, weights: str):
    """(model, variables): the mobile Magenta's released weights, or `arch` on the ImageNet VGG-16 with a
    seeded random rest (SANet with the CLI's default attention chunk)."""
    if weights == "mobile":
        from jax_ast.pretrained.magenta_mobile import load_magenta_mobile
        return load_magenta_mobile()
    from benchmarks.inputs import variables_for
    from eval.inference import loading
    model, variables = variables_for(arch)
    return loading.with_attention_chunk(model, None), variables


def _bundled(kind: str, name: str | None):
    """The bundled `kind` photo called `name` (default: the first one)."""
    from jax_ast import imageio
    from jax_ast.data import bundled_dir
    return bundled_dir(kind) / name if name else imageio.list_images(bundled_dir(kind))[0]


def _style_size(weights: str) -> int:
    return 256 if weights == "mobile" else 512  # the mobile Magenta's own style size (as eval.stylize uses it)


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


def measure(args: argparse.Namespace, side: int, tile: int, statistics: str) -> dict:
    """Runs one child for `side`, `tile` (0: whole) and `statistics`; returns a row of `table`."""
    command = [sys.executable, "-m", "benchmarks.stylize_memory", "--child", "--arch", args.arch, "--sides", str(side),
               "--tile", str(tile), "--overlap", str(args.overlap), "--seam-tile", str(args.tile), "--weights",
               args.weights, "--aspect", str(args.aspect), "--style-size", str(args.style_size)]
    command += ["--statistics", statistics] * bool(tile)
    command += [f"--{kind}={name}" for kind, name in (("content", args.content), ("style", args.style)) if name]
    timeout, max_bytes = args.timeout, int(args.max_gib * GIB)
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
    row = {"side": side, "height": round(side * args.aspect), "tile": tile, "statistics": statistics if tile else "-",
           "peak_gib": usage.ru_maxrss * 1024 / GIB, "seconds": None, "seam_ratio": None,
           "load": os.getloadavg()[0]}
    if status is None and child.returncode == 0:
        result = json.loads(out.strip().splitlines()[-1])
        row["seconds"], row["seam_ratio"] = result["seconds"], result["seam_ratio"]
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
    lines = ["| content (W x H) | mode | statistics | peak RSS (GiB) | seconds | seam ratio | load | status |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        mode = f"tiled {row['tile']}" if row["tile"] else "whole"
        seconds = f"{row['seconds']:.1f}" if row["seconds"] is not None else "-"
        seams = f"{row['seam_ratio']:.3f}" if row["seam_ratio"] is not None else "-"
        lines.append(f"| {row['side']} x {row['height']} | {mode} | {row['statistics']} | {row['peak_gib']:.2f} "
                     f"| {seconds} | {seams} | {row['load']:.1f} | {row['status']} |")
    return "\n".join(lines)


def ratios(rows: list[dict]) -> list[str]:
    """Per size, each tiled statistics mode's peak and seconds over the first tiled mode's (same run)."""
    lines = []
    for side in dict.fromkeys(row["side"] for row in rows):
        tiled = [row for row in rows if row["side"] == side and row["tile"]]
        for row in tiled[1:]:
            base = tiled[0]
            seconds = (f"{row['seconds'] / base['seconds']:.2f}x the seconds"
                       if row["seconds"] and base["seconds"] else "seconds not comparable")
            lines.append(f"{side} x {row['height']}: {row['statistics']} / {base['statistics']}: "
                         f"{row['peak_gib'] / base['peak_gib']:.2f}x the peak RSS, {seconds}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stylize_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=ARCHS, default="adain")
    parser.add_argument("--sides", type=int, nargs="+", default=list(SIDES), help=f"content long sides ({SIDES})")
    parser.add_argument("--tile", type=int, default=512, help="tile side of the tiled runs (default 512)")
    parser.add_argument("--overlap", type=int, default=64, help="tile overlap (default 64)")
    parser.add_argument("--modes", nargs="+", choices=("whole", "tiled"), default=["whole", "tiled"])
    parser.add_argument("--statistics", nargs="+", choices=STATISTICS, default=["exact"],
                        help="tile statistics of the tiled runs, one run each (default: exact)")
    parser.add_argument("--weights", choices=("imagenet", "mobile"), default="imagenet",
                        help="imagenet: --arch on the ImageNet VGG-16, random rest; mobile: the released "
                        "mobile Magenta (--arch ignored)")
    parser.add_argument("--aspect", type=float, default=ASPECT, help="content height / width (default 2160/4096)")
    parser.add_argument("--content", help="bundled content photo (default: the first)")
    parser.add_argument("--style", help="bundled style photo (default: the first)")
    parser.add_argument("--style-size", type=int, default=0, help="style shorter side (default 512, mobile 256)")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per run before it is stopped")
    parser.add_argument("--max-gib", type=float, default=12.0, help="RSS at which a run is stopped (default 12)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seam-tile", type=int, default=512, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return 0
    if not 0 <= args.overlap < args.tile:
        parser.error(f"--overlap must be in [0, --tile), got {args.overlap}")
    runs = [(0, "-")] * ("whole" in args.modes)
    runs += [(args.tile, mode) for mode in args.statistics] * ("tiled" in args.modes)
    rows = []
    for side in args.sides:
        for tile, statistics in runs:
            rows.append(measure(args, side, tile, statistics))
            print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(rows))
    print("\n".join(ratios(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
