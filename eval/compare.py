"""Set several `eval.run` outputs side by side: ``python -m eval.compare DIR [DIR ...] [--out FILE.md]``.

Prints (or writes) a markdown table with one row per run: the paper-style columns (mean, median, std of the
classic and balanced style losses; paper.md section 3.3) followed by the means of `--extra` metrics
(default: content loss, SSIM, PSNR, Lab colour distance), and a second table of the per-layer Pearson r of
the classic loss against its bound. Runs are labelled by arch and checkpoint name, or by ``--labels``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable, Sequence

from eval import analysis, records, report

DEFAULT_EXTRA = ("content/total", "ssim", "psnr", "color_lab")


def load_summary(run_dir: Path) -> dict:
    """The summary.json of one run folder; `records.RecordsError` names the folder if it has none."""
    path = Path(run_dir) / report.SUMMARY_NAME
    if not path.is_file():
        raise records.RecordsError(f"{run_dir}: no {report.SUMMARY_NAME} (not an eval.run output folder, or the "
                                   "run has not finished; rerun it to write the summary)")
    return records.read_json(path)


def comparison_markdown(summaries: Sequence[dict], labels: Sequence[str] | None = None,
                        extra: Sequence[str] = DEFAULT_EXTRA) -> str:
    """Markdown: the paper-style table (+ means of `extra` metrics) and the Pearson-r table, one row per run."""
    if labels is not None and len(labels) != len(summaries):
        raise ValueError(f"{len(labels)} labels for {len(summaries)} runs")
    labels = list(labels) if labels is not None else [s.get("label", f"run {i}") for i, s in enumerate(summaries)]
    header = [*analysis.PAPER_TABLE_HEADER, *(f"{name} mean" for name in extra)]
    rows = []
    for label, summary in zip(labels, summaries):
        stats = summary["stats"]
        cells = analysis.paper_table_row(label, stats)
        cells += [analysis.format_number(stats[name]["mean"]) if name in stats else "n/a" for name in extra]
        rows.append(cells)
    layers = list(dict.fromkeys(layer for s in summaries for layer in s.get("pearson_classic_vs_bound", {})))
    r_rows = [[label, *(analysis.format_number(s.get("pearson_classic_vs_bound", {}).get(layer)) for layer in layers)]
              for label, s in zip(labels, summaries)]
    return "\n".join(["## Style losses", "", analysis.markdown_table(header, rows), "",
                      "## Pearson r, classic layer loss vs its bound", "",
                      analysis.markdown_table(["run", *layers], r_rows)]) + "\n"


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="eval.run output folders")
    parser.add_argument("--labels", help="comma-separated row labels, one per folder")
    parser.add_argument("--extra", default=",".join(DEFAULT_EXTRA), help="comma-separated metrics whose mean is "
                                                                         "added as columns ('' for none)")
    parser.add_argument("--out", type=Path, help="write the markdown here instead of printing it")
    args = parser.parse_args(None if argv is None else list(argv))
    labels = [label.strip() for label in args.labels.split(",")] if args.labels else None
    if labels is not None and len(labels) != len(args.runs):
        parser.error(f"--labels has {len(labels)} names for {len(args.runs)} folders")
    try:
        summaries = [load_summary(run) for run in args.runs]
    except records.RecordsError as error:
        parser.error(str(error))
    extra = [name.strip() for name in args.extra.split(",") if name.strip()]
    text = comparison_markdown(summaries, labels, extra)
    if args.out:
        records.write_text(args.out, text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
