"""Pure numeric summaries of an evaluation run: statistics, Pearson r, the imbalanced-style-transferability report.

Everything takes numpy arrays (one value per pair) and returns plain dicts/lists/strings; no I/O, no plotting.
Conventions: statistics ignore non-finite values (counted in ``nonfinite``); ``std`` is the population
standard deviation (ddof = 0, NumPy's default); the median of an even count is the mean of the middle two.

IST (docs/losses.md, What the paper reports): with the balanced loss, a high value means under-stylised
(the output's Gram statistics are far from the style's, relative to their size) and a low value
over-stylised. Styles are therefore ranked by their mean balanced loss over the contents they were paired with.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

STAT_KEYS = ("count", "mean", "median", "std", "min", "max")


def describe(values: np.ndarray) -> dict[str, float | int]:
    """{"count", "mean", "median", "std", "min", "max", "nonfinite"} of the finite entries of `values`."""
    values = np.asarray(values, np.float64).ravel()
    finite = values[np.isfinite(values)]
    stats: dict[str, float | int] = {"count": int(finite.size), "nonfinite": int(values.size - finite.size)}
    if finite.size == 0:
        return {**stats, **{key: math.nan for key in STAT_KEYS[1:]}}
    return {**stats, "mean": float(np.mean(finite)), "median": float(np.median(finite)),
            "std": float(np.std(finite)), "min": float(np.min(finite)), "max": float(np.max(finite))}


def pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of the pairs where both are finite; NaN for < 2 pairs or a constant input."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {x.size} vs {y.size}")
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    if x.size < 2:
        return math.nan
    dx, dy = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float(np.dot(dx, dx)) * float(np.dot(dy, dy)))
    return float(np.dot(dx, dy)) / denominator if denominator > 0 else math.nan


def linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares (slope, intercept) of y on x over the finite pairs; NaNs when undetermined."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    if x.size < 2 or np.ptp(x) == 0:
        return math.nan, math.nan
    dx = x - x.mean()
    slope = float(np.dot(dx, y - y.mean()) / np.dot(dx, dx))
    return slope, float(y.mean() - slope * x.mean())


def bound_correlations(columns: Mapping[str, np.ndarray], layers: Sequence[str]) -> dict[str, float]:
    """Per style layer, Pearson r between the classic loss and its bound (docs/losses.md, The bound)."""
    return {layer: pearson_r(columns[f"bound/{layer}"], columns[f"classic/{layer}"]) for layer in layers}


def style_report(style_ids: np.ndarray, style_names: Sequence[str], classic: np.ndarray, balanced: np.ndarray, *,
                 top: int = 10, min_count: int = 1) -> dict:
    """Per-style spread of the classic and balanced losses and the styles most under-/over-stylised.

    Args:
      style_ids: int [N] style index of each pair; style_names: {index: name} or a sequence indexed by id.
      classic, balanced: float [N] total losses of each pair.
      top: how many styles each ranking lists. min_count: styles with fewer pairs are left out of rankings.

    Returns:
      {"styles": [per-style dict], "under_stylised": [...], "over_stylised": [...], "classic_spread": {...},
      "balanced_spread": {...}}; per-style dicts hold "style", "name", "pairs", "classic" and "balanced"
      `describe` stats and the coefficient of variation "classic_cv"/"balanced_cv" (std / mean).
    """
    style_ids = np.asarray(style_ids, np.int64)
    order = np.argsort(style_ids, kind="stable")
    unique, starts = np.unique(style_ids[order], return_index=True)
    styles = []
    for style, rows in zip(unique, np.split(order, starts[1:])):
        entry = {"style": int(style), "name": str(style_names[int(style)]), "pairs": int(rows.size),
                 "classic": describe(classic[rows]), "balanced": describe(balanced[rows])}
        for loss in ("classic", "balanced"):
            mean, std = entry[loss]["mean"], entry[loss]["std"]
            entry[f"{loss}_cv"] = std / mean if mean and math.isfinite(mean) and mean != 0 else math.nan
        styles.append(entry)
    ranked = [s for s in styles if s["pairs"] >= min_count and math.isfinite(s["balanced"]["mean"])]
    ranked.sort(key=lambda s: (s["balanced"]["mean"], s["style"]))
    return {"styles": styles, "under_stylised": [_ranking_entry(s) for s in reversed(ranked[-top:])],
            "over_stylised": [_ranking_entry(s) for s in ranked[:top]],
            "classic_spread": _spread([s["classic"]["mean"] for s in ranked]),
            "balanced_spread": _spread([s["balanced"]["mean"] for s in ranked]),
            "min_count": min_count}


def _ranking_entry(style: Mapping) -> dict:
    return {"style": style["style"], "name": style["name"], "pairs": style["pairs"],
            "balanced_mean": style["balanced"]["mean"], "classic_mean": style["classic"]["mean"]}


def _spread(means: Sequence[float]) -> dict[str, float]:
    """How much per-style mean losses differ: min, max, max/min ratio, std of the means."""
    values = np.asarray([m for m in means if math.isfinite(m)], np.float64)
    if values.size == 0:
        return {"styles": 0, "min": math.nan, "max": math.nan, "max_over_min": math.nan, "std": math.nan}
    low, high = float(values.min()), float(values.max())
    return {"styles": int(values.size), "min": low, "max": high,
            "max_over_min": high / low if low > 0 else math.nan, "std": float(values.std())}


def format_number(value: float | None) -> str:
    """Compact table cell: scientific for very large/small magnitudes, 4 significant digits otherwise."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude >= 1e5 or magnitude < 1e-3):
        return f"{value:.3e}"
    return f"{value:.4g}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table (cells are escaped for '|')."""
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


def ist_markdown(report: Mapping, title: str = "Imbalanced style transferability") -> str:
    """The IST report as markdown: spread of per-style means and the two rankings."""
    lines = [f"# {title}", ""]
    for loss in ("classic", "balanced"):
        spread = report[f"{loss}_spread"]
        lines.append(f"* per-style mean {loss} loss over {spread['styles']} styles: min "
                     f"{format_number(spread['min'])}, max {format_number(spread['max'])}, max/min "
                     f"{format_number(spread['max_over_min'])}")
    header = ["rank", "style", "pairs", "balanced mean", "classic mean"]
    for key, text in (("under_stylised", "Most under-stylised (highest mean balanced loss)"),
                      ("over_stylised", "Most over-stylised (lowest mean balanced loss)")):
        rows = [[i + 1, s["name"], s["pairs"], format_number(s["balanced_mean"]), format_number(s["classic_mean"])]
                for i, s in enumerate(report[key])]
        lines += ["", f"## {text}", "", markdown_table(header, rows)]
    spread_rows = [[s["name"], s["pairs"], *(format_number(s[loss][k]) for loss in ("balanced", "classic")
                                            for k in ("mean", "std", "min", "max"))]
                   for s in sorted(report["styles"], key=lambda s: -(s["balanced"]["mean"]
                                                                     if math.isfinite(s["balanced"]["mean"])
                                                                     else -math.inf))[:50]]
    lines += ["", "## Spread over contents per style (first 50 by mean balanced loss)", "",
              markdown_table(["style", "pairs", "bal. mean", "bal. std", "bal. min", "bal. max", "classic mean",
                              "classic std", "classic min", "classic max"], spread_rows)]
    return "\n".join(lines) + "\n"


PAPER_TABLE_HEADER = ("run", "pairs", "classic mean", "classic median", "classic std", "balanced mean",
                      "balanced median", "balanced std")


def paper_table_row(label: str, stats: Mapping[str, Mapping[str, float]]) -> list[str]:
    """One row of the paper-style table (section 3.3): mean, median, std of the classic and balanced totals."""
    classic, balanced = stats["classic/total"], stats["balanced/total"]
    return [label, str(classic["count"]), *(format_number(classic[k]) for k in ("mean", "median", "std")),
            *(format_number(balanced[k]) for k in ("mean", "median", "std"))]
