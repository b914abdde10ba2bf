"""The end-of-run report of `eval.run`: summary JSON/markdown, IST report, extreme-pair grids and figures.

Reads the results CSV a few columns at a time (8 bytes per pair and column held: the statistics need
every value for the median), and re-reads images only for the few extreme pairs whose thumbnails a resumed
run lacks, so it scales to 100,000+ pairs (about 100 bytes per pair at the peak: the 12 columns the
figures and the IST report use).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from eval.common import layout, records
from eval.score import analysis, extremes, figures

KEY_COLUMNS = ("pair", "content_index", "style_index", "content", "style")
GRID_LOSSES = ("classic/total", "balanced/total")
STATS_COLUMNS_PER_PASS = 8


# run.json keys that were renamed: the old name -> today's ("checkpoint" named --weights until 2026-12-07).
RENAMED_SETTINGS = {"checkpoint": "weights"}


def upgrade_settings(settings: dict) -> dict:
    """An eval.run folder's run.json settings with older key names given today's (`RENAMED_SETTINGS`), so a
    folder written before a rename still resumes and feeds eval.deception."""
    upgraded = dict(settings)
    for old, new in RENAMED_SETTINGS.items():
        if old in upgraded and new not in upgraded:
            upgraded[new] = upgraded.pop(old)
    return upgraded


def read_settings(run_dir: Path) -> dict:
    """An eval.run folder's run.json settings, with today's key names (`upgrade_settings`)."""
    return upgrade_settings(records.read_json(run_dir / layout.RUN_JSON))


def run_label(settings: Mapping) -> str:
    """Short name of a run for tables: arch, and the weights' file or folder name."""
    weights = settings.get("weights")
    if not weights:
        return str(settings["arch"])
    return f"{settings['arch']} ({Path(str(weights)).name or weights})"


def summarize(out_dir: Path, settings: Mapping, metric_names: Sequence[str], style_layers: Sequence[str], *,
              style_name: Callable[[int], str], ist_top: int, ist_min_pairs: int) -> tuple[dict, dict, dict]:
    """(summary dict, IST report, numeric columns) from the results CSV of `out_dir`."""
    stats = {}
    for start in range(0, len(metric_names), STATS_COLUMNS_PER_PASS):  # bounded memory: a few columns a pass
        group = records.read_columns(out_dir / layout.PAIRS_CSV, metric_names[start:start + STATS_COLUMNS_PER_PASS])
        stats.update({name: analysis.describe(values) for name, values in group.items()})
        del group
    wanted = ["pair", "style_index", *GRID_LOSSES, *(f"{t}/{layer}" for t in ("classic", "bound")
                                                    for layer in style_layers)]
    columns = records.read_columns(out_dir / layout.PAIRS_CSV, list(dict.fromkeys(wanted)))
    correlations = analysis.bound_correlations(columns, style_layers)
    style_ids = columns["style_index"].astype(np.int64)
    names = {int(s): style_name(int(s)) for s in np.unique(style_ids)}
    ist = analysis.style_report(style_ids, names, columns["classic/total"], columns["balanced/total"],
                                top=ist_top, min_count=ist_min_pairs)
    done = int(columns["pair"].size)
    skipped = records.count_rows(out_dir / layout.SKIPPED_CSV)
    label = run_label(settings)
    summary = {
        "run": dict(settings), "label": label,
        "pairs": {"requested": settings["pairs"], "done": done, "skipped": skipped,
                  "complete": done + skipped >= settings["pairs"]},
        "stats": stats, "pearson_classic_vs_bound": correlations,
        "table": {"header": list(analysis.PAPER_TABLE_HEADER), "row": analysis.paper_table_row(label, stats)},
        "ist": {k: ist[k] for k in ("under_stylised", "over_stylised", "classic_spread", "balanced_spread")},
    }
    return summary, ist, columns


def summary_markdown(summary: Mapping) -> str:
    """The paper-style table, Pearson r per layer and the statistics of every metric."""
    stats, correlations = summary["stats"], summary["pearson_classic_vs_bound"]
    lines = [f"# Evaluation: {summary['label']}", "",
             f"{summary['pairs']['done']} pairs evaluated, {summary['pairs']['skipped']} skipped, "
             f"{summary['pairs']['requested']} requested.", "",
             analysis.markdown_table(summary["table"]["header"], [summary["table"]["row"]]), "",
             "## Pearson r, classic layer loss vs its bound", "",
             analysis.markdown_table(list(correlations), [[analysis.format_number(r) for r in correlations.values()]]),
             "", "## All metrics", ""]
    rows = [[name, s["count"], *(analysis.format_number(s[k]) for k in ("mean", "median", "std", "min", "max"))]
            for name, s in stats.items()]
    lines.append(analysis.markdown_table(["metric", "count", "mean", "median", "std", "min", "max"], rows))
    if "benchmark" in summary:
        bench = summary["benchmark"]
        lines += ["", f"Benchmark: {analysis.format_number(bench.get('pairs_per_second'))} pairs/s "
                      f"(steady state, {bench.get('devices')} {bench.get('backend')} device(s))."]
    return "\n".join(lines) + "\n"


def reconcile_extremes(keeper: extremes.ExtremeKeeper, columns: Mapping[str, np.ndarray],
                       recompute: Callable[[list[int]], dict[int, Sequence[np.ndarray]]]) -> list[int]:
    """Makes `keeper` hold exactly the K extreme pairs of the CSV, recomputing thumbnails it lacks.

    A run interrupted between writing rows and saving the heaps, or resumed, may miss some; `recompute`
    maps pair numbers to (content, style, output) images. Returns the pairs that were recomputed.
    """
    pairs = columns["pair"].astype(np.int64)
    wanted: dict[tuple[str, str], list[int]] = {}
    missing: set[int] = set()
    for loss in keeper.losses:
        for side, chosen in extremes.true_extremes(pairs, columns[loss], keeper.k).items():
            wanted[(loss, side)] = chosen
            missing.update(set(chosen) - keeper.pairs(loss, side))
    if not missing:
        return []
    images = recompute(sorted(missing))
    value_of = {loss: dict(zip(pairs.tolist(), columns[loss].tolist())) for loss in keeper.losses}
    for (loss, side), chosen in wanted.items():
        for pair in chosen:
            if pair in images and pair not in keeper.pairs(loss, side):
                keeper.offer(loss, side, value_of[loss][pair], pair, images[pair])
    return sorted(missing)


def write_figures(out_dir: Path, columns: Mapping[str, np.ndarray], summary: Mapping, ist: Mapping,
                  keeper: extremes.ExtremeKeeper, style_layers: Sequence[str],
                  pair_caption: Callable[[int], str]) -> dict[str, str]:
    """Every PNG of the run into ``<out>/figures``; returns {figure name: path}."""
    folder = out_dir / layout.FIGURES_DIR
    paths = {
        "hist_classic": figures.loss_histogram(columns["classic/total"], folder / layout.HIST_CLASSIC_PNG,
                                               title="Classic style loss", xlabel="classic loss (log)", log_x=True),
        "hist_balanced": figures.loss_histogram(columns["balanced/total"], folder / layout.HIST_BALANCED_PNG,
                                                title="Balanced style loss",
                                                xlabel=f"balanced loss (sum of {len(style_layers)} layers)",
                                                log_x=False),
        "scatter_bound": figures.bound_scatter(columns, style_layers, summary["pearson_classic_vs_bound"],
                                               folder / layout.SCATTER_BOUND_PNG),
        "ist": figures.ist_figure(ist, columns["style_index"], columns["classic/total"], columns["balanced/total"],
                                  folder / layout.IST_PNG),
    }
    for loss in keeper.losses:
        lowest, highest = keeper.entries(loss, "lowest"), keeper.entries(loss, "highest")
        captions = {pair: pair_caption(pair) for pair, _, _ in (*lowest, *highest)}
        file_name = layout.EXTREMES_PNG.format(loss=loss.split("/")[0])
        paths[Path(file_name).stem] = figures.extremes_grid(loss, lowest, highest, captions, folder / file_name)
    return {name: str(path) for name, path in paths.items()}


def write_report(out_dir: Path, settings: Mapping, metric_names: Sequence[str], style_layers: Sequence[str],
                 keeper: extremes.ExtremeKeeper, *, style_name: Callable[[int], str],
                 pair_caption: Callable[[int], str],
                 recompute: Callable[[list[int]], dict[int, Sequence[np.ndarray]]], make_figures: bool,
                 ist_top: int, ist_min_pairs: int, benchmark: Mapping | None = None) -> dict:
    """Writes summary.json/.md, ist.json/.md and (optionally) the figures; returns the summary."""
    summary, ist, columns = summarize(out_dir, settings, metric_names, style_layers, style_name=style_name,
                                      ist_top=ist_top, ist_min_pairs=ist_min_pairs)
    if benchmark is not None:
        summary["benchmark"] = dict(benchmark)
    if columns["pair"].size and make_figures:
        summary["recomputed_extremes"] = reconcile_extremes(keeper, columns, recompute)
        keeper.save(out_dir / layout.EXTREMES_NPZ)
        summary["figures"] = write_figures(out_dir, columns, summary, ist, keeper, style_layers, pair_caption)
    summary["extremes"] = {}
    for loss in keeper.losses:
        value_of = dict(zip(columns["pair"].astype(np.int64).tolist(), columns[loss].tolist()))
        chosen = extremes.true_extremes(columns["pair"], columns[loss], keeper.k)
        summary["extremes"][loss] = {side: [{"pair": p, "value": value_of[p], "caption": pair_caption(p)}
                                            for p in chosen[side]] for side in extremes.SIDES}
    records.write_json(out_dir / layout.IST_JSON, ist)
    records.write_text(out_dir / layout.IST_MD, analysis.ist_markdown(ist))
    records.write_json(out_dir / layout.SUMMARY_JSON, summary)
    records.write_text(out_dir / layout.SUMMARY_MD, summary_markdown(summary))
    return summary

