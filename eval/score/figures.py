"""PNG figures of an evaluation run (matplotlib, Agg backend; no display needed).

docs/losses.md, What the paper reports: histograms of the classic (log-x) and balanced style losses,
per-layer scatter of the classic loss against its supremum with Pearson r, grids of the lowest/highest-loss
pairs, and the per-style (imbalanced style transferability) figure. Every function writes one file and
returns its path.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from eval.common import records  # noqa: E402
from eval.score.analysis import format_number, linear_fit  # noqa: E402

DPI = 100


def _save(fig, path: str | Path) -> Path:
    """Renders in memory and replaces `path` atomically: a full disk never leaves a truncated figure."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, dpi=DPI, format="png")
    finally:
        plt.close(fig)
    return records.write_bytes(path, buffer.getvalue())


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.float64).ravel()
    return values[np.isfinite(values)]


def loss_histogram(values: np.ndarray, path: str | Path, *, title: str, xlabel: str, log_x: bool,
                   bins: int = 50) -> Path:
    """Histogram of one loss; with `log_x`, logarithmic bins over the positive values (others are counted)."""
    values = _finite(values)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    note = ""
    if log_x:
        positive = values[values > 0]
        note = f" ({values.size - positive.size} non-positive not shown)" if positive.size < values.size else ""
        values = positive
    if values.size == 0:
        ax.text(0.5, 0.5, "no values to plot", ha="center", va="center", transform=ax.transAxes)
    else:
        low, high = values.min(), values.max()
        if log_x:
            high = high * 1.001 if high > low else low * 10.0
            edges = np.geomspace(low, high, bins + 1)
            ax.set_xscale("log")
        else:
            edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
        ax.hist(values, bins=edges, color="tab:blue", alpha=0.85)
        median = np.median(values)
        ax.axvline(median, color="tab:red", linestyle="--", label=f"median {format_number(median)}")
        ax.legend()
    ax.set_title(f"{title}, {values.size} pairs{note}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("pairs")
    fig.tight_layout()
    return _save(fig, path)


def bound_scatter(columns: Mapping[str, np.ndarray], layers: Sequence[str], correlations: Mapping[str, float],
                  path: str | Path, *, max_points: int = 20000, seed: int = 0) -> Path:
    """One panel per style layer: classic loss (y) against its supremum (x), log-log, least-squares line, r.

    Args:
      columns: holds "classic/<layer>" and "bound/<layer>" arrays. correlations: Pearson r per layer (computed
        on all pairs). max_points: at most this many (seeded random) points are drawn per panel.
    """
    fig, axes = plt.subplots(1, len(layers), figsize=(4.0 * len(layers), 4.0), squeeze=False)
    rng = np.random.default_rng(seed)
    for ax, layer in zip(axes[0], layers):
        bound, classic = (np.asarray(columns[f"{t}/{layer}"], np.float64) for t in ("bound", "classic"))
        keep = np.isfinite(bound) & np.isfinite(classic) & (bound > 0) & (classic > 0)
        x, y = bound[keep], classic[keep]
        if x.size > max_points:
            chosen = rng.choice(x.size, max_points, replace=False)
            x, y = x[chosen], y[chosen]
        ax.scatter(x, y, s=6, alpha=0.5, color="tab:blue", edgecolors="none")
        if x.size:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            slope, intercept = linear_fit(bound, classic)
            line_x = np.geomspace(x.min(), x.max(), 50)
            line_y = slope * line_x + intercept
            shown = line_y > 0
            ax.plot(line_x[shown], line_y[shown], color="tab:red", label="least squares")
            ax.plot(line_x, line_x, color="grey", linestyle=":", label="classic = bound")
            ax.legend(fontsize=7)
        ax.set_title(f"{layer}: r = {format_number(correlations.get(layer, float('nan')))}")
        ax.set_xlabel("bound (supremum)")
        ax.set_ylabel("classic loss")
    fig.tight_layout()
    return _save(fig, path)


def _mosaic(entries: Sequence[tuple[int, float, np.ndarray]], thumb: int, gap: int) -> np.ndarray:
    """uint8 image with one row of (content, style, output) thumbnails per entry, white gaps."""
    rows = max(len(entries), 1)
    mosaic = np.full((rows * thumb + (rows - 1) * gap, 3 * thumb + 2 * gap, 3), 255, np.uint8)
    for row, (_, _, thumbs) in enumerate(entries):
        for column, image in enumerate(thumbs):
            top, left = row * (thumb + gap), column * (thumb + gap)
            mosaic[top:top + thumb, left:left + thumb] = image
    return mosaic


def extremes_grid(loss: str, lowest: Sequence[tuple[int, float, np.ndarray]],
                  highest: Sequence[tuple[int, float, np.ndarray]], names: Mapping[int, str],
                  path: str | Path) -> Path:
    """Two panels of rows (content | style | output): the K lowest-loss pairs and the K highest.

    Args:
      lowest, highest: (pair, value, uint8 [3, t, t, 3] thumbnails), most extreme first.
      names: pair -> "content / style" caption, shown with the pair number and the loss value.
    """
    entries = [*lowest, *highest]
    thumb = entries[0][2].shape[1] if entries else 8
    gap = max(2, thumb // 16)
    rows = max(len(lowest), len(highest), 1)
    fig, axes = plt.subplots(1, 2, figsize=(13.0, 0.3 + 1.25 * rows), squeeze=False)
    for ax, (side, chosen) in zip(axes[0], (("lowest", lowest), ("highest", highest))):
        ax.imshow(_mosaic(chosen, thumb, gap), interpolation="nearest")
        centres = [row * (thumb + gap) + thumb / 2 for row in range(len(chosen))]
        labels = [f"#{pair}  {format_number(value)}\n{names.get(pair, '')[:48]}" for pair, value, _ in chosen]
        ax.set_yticks(centres, labels, fontsize=7)
        ax.set_xticks([column * (thumb + gap) + thumb / 2 for column in range(3)], ["content", "style", "output"],
                      fontsize=8)
        ax.xaxis.tick_top()
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(f"{len(chosen)} {side} {loss}", fontsize=9, pad=18)
    fig.tight_layout()
    return _save(fig, path)


def ist_figure(report: Mapping, style_ids: np.ndarray, classic: np.ndarray, balanced: np.ndarray,
               path: str | Path) -> Path:
    """Per-style balanced-loss box plots (most over-stylised to most under-stylised) and per-style mean classic.

    Shows the styles of the report's two rankings (each style once), ordered by mean balanced loss.
    """
    chosen, seen = [], set()
    for entry in [*report["over_stylised"], *reversed(report["under_stylised"])]:
        if entry["style"] not in seen:
            seen.add(entry["style"])
            chosen.append(entry)
    chosen.sort(key=lambda e: (e["balanced_mean"], e["style"]))
    style_ids = np.asarray(style_ids)
    data = [_finite(np.asarray(balanced)[style_ids == e["style"]]) for e in chosen]
    labels = [str(e["name"])[-28:] for e in chosen]
    height = max(4.0, 0.28 * len(chosen) + 1.5)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.0, height), sharey=True)
    positions = np.arange(len(chosen))
    if not chosen:
        left.text(0.5, 0.5, f"no style has {report.get('min_count', 1)}+ pairs", ha="center", va="center",
                  transform=left.transAxes)
    else:
        left.boxplot(data, positions=positions, orientation="horizontal", widths=0.6)
        means = np.asarray([e["classic_mean"] for e in chosen], np.float64)
        right.barh(positions, np.where(means > 0, means, np.nan), color="tab:orange")
        if np.any(means > 0):
            right.set_xscale("log")
    left.set_yticks(positions, labels, fontsize=7)
    left.set_xlabel("balanced loss over contents (low: over-stylised, high: under-stylised)")
    left.set_title("most under-stylised at the top", fontsize=9)
    right.set_xlabel("mean classic loss (log)")
    spread = report["classic_spread"]["max_over_min"]
    fig.suptitle(f"Per-style transferability; per-style mean classic loss max/min = {format_number(spread)}",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
