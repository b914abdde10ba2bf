"""Side by side: jax-ast's img/s (and % of bf16 peak) of several `benchmarks.all` runs, e.g. one per XLA flag set.

    python -m benchmarks.compare bench/gpu/default-bf16 bench/gpu/autotune0-bf16 ...

Prints a markdown table with one row per timed setting (benchmark, network, size, batch, dtype) and one
column per run directory (its name), and each run's XLA_FLAGS below it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

KEY = ("benchmark", "network", "size", "batch", "dtype")


def _cell(row: dict | None) -> str:
    if row is None:
        return "-"
    peak = "" if row.get("pct_peak") is None else f" ({row['pct_peak']:.1f}%)"
    return f"{row['jax_img_s']:.2f}{peak}"


def compare_table(runs: dict[str, dict]) -> str:
    """Markdown: img/s (% of bf16 peak) of each setting in each run of `runs` ({name: results.json content})."""
    rows: dict[tuple, dict[str, dict]] = {}
    for name, results in runs.items():
        for bench in results["benchmarks"]:
            for row in bench["rows"]:
                rows.setdefault(tuple(row[k] for k in KEY), {})[name] = row
    lines = ["| " + " | ".join([*KEY, *(f"{name} img/s" for name in runs)]) + " |",
             "|" + "---|" * len(KEY) + "---:|" * len(runs)]
    lines += ["| " + " | ".join([*map(str, key), *(_cell(by_run.get(name)) for name in runs)]) + " |"
              for key, by_run in rows.items()]
    lines += [""] + [f"- {name}: XLA_FLAGS=`{(results.get('machine') or {}).get('XLA_FLAGS', '')}`"
                     for name, results in runs.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="directories written by python -m benchmarks.all --out")
    args = parser.parse_args(argv)
    missing = [run for run in args.runs if not (Path(run) / "results.json").is_file()]
    if missing:
        parser.error(f"no results.json in {', '.join(missing)}")
    print(compare_table({Path(run).name: json.loads((Path(run) / "results.json").read_text()) for run in args.runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
