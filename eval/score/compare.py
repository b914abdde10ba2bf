"""Set several `eval.run` outputs side by side: ``python -m eval.compare DIR [DIR ...] [--out FILE.md]``.

Prints (or writes) a markdown table with one row per run: the paper-style columns (mean, median, std of the
classic and balanced style losses; docs/losses.md, What the paper reports) followed by the means of `--extra` metrics
(default: content loss, SSIM, PSNR, Lab colour distance), the deception rate where `eval.deception` wrote one
into the folder, and a second table of the per-layer Pearson r of
the classic loss against its bound. Runs are labelled by arch and weights file name, or by ``--labels``.

Exit status (`eval.common.guards`): 0 done; 2 for a usage or input error (a folder without a readable, well-formed
``summary.json``; ``--out`` naming a folder, or an existing file without ``--overwrite``; an ``--extra`` metric
that no summary holds), with one message naming the file or the known metrics; 3 when ``--out`` could not be
written (it is replaced atomically, so it is never half-written).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, Sequence

from eval.common import guards, layout, records
from eval.score import analysis

DEFAULT_EXTRA = ("content/total", "ssim", "psnr", "color_lab")
TABLE_STATS = ("count", "mean", "median", "std")  # what the paper-style table reads of each total


def load_summary(run_dir: Path) -> dict:
    """The summary.json of one run folder; `records.RecordsError` names the folder if it has none."""
    path = Path(run_dir) / layout.SUMMARY_JSON
    if not path.is_file():
        raise records.RecordsError(f"{run_dir}: no {layout.SUMMARY_JSON} (not an eval.run output folder, or the "
                                   "run has not finished; rerun it to write the summary)")
    try:
        summary = records.read_json(path)
    except (OSError, ValueError) as error:  # truncated or not JSON, not UTF-8, unreadable
        raise records.RecordsError(f"{path} is unreadable ({type(error).__name__}: {error}); rerun eval.run on "
                                   f"{run_dir} to rewrite it") from None
    problem = _summary_problem(summary)
    if problem:
        raise records.RecordsError(f"{path} is not an eval.run summary: {problem}; rerun eval.run on {run_dir} "
                                   "to rewrite it")
    deception = Path(run_dir) / layout.DECEPTION_JSON
    if deception.is_file():  # written by eval.deception into the same folder
        try:
            result = records.read_json(deception)
            summary["deception"] = {key: result[key] for key in ("rate", "ci")}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise records.RecordsError(f"{deception} is unreadable ({type(error).__name__}: {error}); rerun "
                                       "eval.deception with --overwrite") from None
    return summary


def _is_number(value: object) -> bool:
    """A statistic as `records.write_json` stores it: a number, or null for NaN."""
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _summary_problem(summary: object) -> str | None:
    """What in a parsed summary.json the tables cannot use (wrong shape, missing keys), or None."""
    if not isinstance(summary, dict):
        return f"it holds a JSON {type(summary).__name__}, not an object"
    stats = summary.get("stats")
    if not isinstance(stats, dict):
        return "no 'stats' object"
    for name, entry in stats.items():
        if not isinstance(entry, dict) or "mean" not in entry or not _is_number(entry["mean"]):
            return f"stats[{name!r}] has no numeric 'mean'"
    for name in ("classic/total", "balanced/total"):
        entry = stats.get(name, {})
        missing = [key for key in TABLE_STATS if key not in entry or not _is_number(entry[key])]
        if missing:
            return f"stats[{name!r}] lacks numeric {', '.join(missing)}"
    correlations = summary.get("pearson_classic_vs_bound", {})
    if not isinstance(correlations, dict) or not all(_is_number(r) for r in correlations.values()):
        return "'pearson_classic_vs_bound' is not an object of numbers"
    return None


def _deception_cell(result: dict | None) -> str:
    if result is None:
        return "n/a"
    low, high = result["ci"]
    return f"{analysis.format_number(result['rate'])} [{analysis.format_number(low)}, {analysis.format_number(high)}]"


def comparison_markdown(summaries: Sequence[dict], labels: Sequence[str] | None = None,
                        extra: Sequence[str] = DEFAULT_EXTRA) -> str:
    """Markdown: the paper-style table (+ means of `extra` metrics) and the Pearson-r table, one row per run."""
    if labels is not None and len(labels) != len(summaries):
        raise ValueError(f"{len(labels)} labels for {len(summaries)} runs")
    labels = list(labels) if labels is not None else [s.get("label", f"run {i}") for i, s in enumerate(summaries)]
    with_deception = any("deception" in s for s in summaries)
    header = [*analysis.PAPER_TABLE_HEADER, *(f"{name} mean" for name in extra)]
    header += ["deception rate [95 % CI]"] if with_deception else []
    rows = []
    for label, summary in zip(labels, summaries):
        stats = summary["stats"]
        cells = analysis.paper_table_row(label, stats)
        cells += [analysis.format_number(stats[name]["mean"]) if name in stats else "n/a" for name in extra]
        if with_deception:
            cells.append(_deception_cell(summary.get("deception")))
        rows.append(cells)
    layers = list(dict.fromkeys(layer for s in summaries for layer in s.get("pearson_classic_vs_bound", {})))
    r_rows = [[label, *(analysis.format_number(s.get("pearson_classic_vs_bound", {}).get(layer)) for layer in layers)]
              for label, s in zip(labels, summaries)]
    return "\n".join(["## Style losses", "", analysis.markdown_table(header, rows), "",
                      "## Pearson r, classic layer loss vs its bound", "",
                      analysis.markdown_table(["run", *layers], r_rows)]) + "\n"


def main(argv: Iterable[str] | None = None) -> int:
    parser = guards.Parser(prog="python -m eval.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="eval.run output folders")
    parser.add_argument("--labels", help="comma-separated row labels, one per folder")
    parser.add_argument("--extra", default=None, help="comma-separated metrics whose mean is added as columns "
                                                      f"('' for none; default {','.join(DEFAULT_EXTRA)}); each must "
                                                      "be in some run's summary")
    parser.add_argument("--out", type=Path, help="write the markdown here instead of printing it")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(None if argv is None else list(argv))
    labels = [label.strip() for label in args.labels.split(",")] if args.labels else None
    if labels is not None and len(labels) != len(args.runs):
        parser.error(f"--labels has {len(labels)} names for {len(args.runs)} folders")
    problem = args.out and guards.output_file_problem(args.out, overwrite=args.overwrite)
    if problem:
        parser.error(f"--out {problem}")
    try:
        summaries = [load_summary(run) for run in args.runs]
    except records.RecordsError as error:
        parser.error(guards.printable(str(error)))
    given = args.extra is not None  # the defaults may be absent from a summary (a column of n/a); a typo may not
    extra = [name.strip() for name in (args.extra if given else ",".join(DEFAULT_EXTRA)).split(",") if name.strip()]
    known = list(dict.fromkeys(name for summary in summaries for name in summary["stats"]))
    unknown = [name for name in extra if given and name not in known]
    if unknown:  # a typo would otherwise be a silent column of n/a
        parser.error(guards.printable(f"--extra names unknown metrics: {', '.join(unknown)}; known metrics: "
                                      f"{', '.join(known)}"))
    text = comparison_markdown(summaries, labels, extra)
    if not args.out:
        sys.stdout.write(guards.printable(text))
        return guards.EXIT_OK
    try:
        records.write_text(args.out, text)
    except OSError as error:
        print(guards.printable(f"error: cannot write --out {args.out}: {error}"), file=sys.stderr)
        return guards.EXIT_WRITE_FAILED
    return guards.EXIT_OK

