"""The reproduction's figures (PNG, matplotlib Agg): outputs grid, per-style bars, loss curves, magnitude scatter.

Every plotted number comes from the CSVs the report quotes (`per_style.csv`, `curves.csv`), except the
outputs grid, which stylises the images again with each model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


def _pyplot():
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    return plt


def _save(fig, path: Path, dpi: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    _pyplot().close(fig)
    return path


def outputs_grid(path: Path, models: Mapping[str, tuple[str, str | None, str | None]], content: Path,
                 styles: Sequence[Path], size: int) -> Path:
    """Rows: `styles`; columns: content | style | one output per model, all `size` x `size` (as eval.run crops).

    Args:
      models: {column title: (arch, weights for `load_model`, variant)}.
    """
    from eval.inference.batching import Stylizer  # noqa: PLC0415
    from eval.inference.loading import load_model  # noqa: PLC0415
    from eval.score.pairs import center_square  # noqa: PLC0415
    from jax_ast.data import FolderSource  # noqa: PLC0415

    def load(file: Path) -> np.ndarray:  # as eval.run loads pairs: shorter side resized, centre crop
        return center_square(FolderSource(file).load(0), size).astype(np.float32) / 255.0

    photo = load(content)
    paintings = np.stack([load(s) for s in styles])
    columns = {"content": np.repeat(photo[None], len(styles), 0), "style": paintings}
    for title, (arch, weights, variant) in models.items():
        model, variables = load_model(arch, weights, variant=variant)
        stylizer = Stylizer(model, variables, batch_size=len(styles))
        columns[title] = np.clip(np.asarray(stylizer.stylize(columns["content"], paintings)), 0.0, 1.0)
    plt = _pyplot()
    fig, axes = plt.subplots(len(styles), len(columns), figsize=(1.9 * len(columns), 1.9 * len(styles)),
                             squeeze=False)
    for row, style in enumerate(styles):
        for col, (title, images) in enumerate(columns.items()):
            axes[row, col].imshow(images[row])
            axes[row, col].set_xticks([]), axes[row, col].set_yticks([])
            if row == 0:
                axes[row, col].set_title(title, fontsize=10)
        axes[row, 0].set_ylabel(style.stem.removeprefix("stress_")[:22], fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def per_style_bars(path: Path, values: Mapping[str, Mapping[str, float]], title: str, ylabel: str) -> Path:
    """Grouped bars: one group per style, one bar per model. `values`: {model: {style: value}}."""
    plt = _pyplot()
    models = list(values)
    styles = list(dict.fromkeys(s for per_model in values.values() for s in per_model))
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(styles) + 2), 3.6))
    x = np.arange(len(styles))
    for i, model in enumerate(models):
        ax.bar(x + (i - (len(models) - 1) / 2) * width, [values[model].get(s, np.nan) for s in styles], width,
               label=model)
    ax.set_xticks(x, [s.rsplit(".", 1)[0].removeprefix("stress_")[:18] for s in styles], rotation=35, ha="right",
                  fontsize=8)
    ax.set_ylabel(ylabel), ax.set_title(title, fontsize=10), ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def loss_curves(path: Path, curves: Sequence[Mapping[str, str]]) -> Path:
    """Content and style terms of each fine-tuning run over its steps, each divided by its first logged value
    (the three losses' terms have different units; the ratio shows how far each moved)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4))
    for run in dict.fromkeys(row["run"] for row in curves):
        rows = [row for row in curves if row["run"] == run]
        steps = np.asarray([float(row["step"]) for row in rows])
        for ax, term in zip(axes, ("content", "style")):
            values = np.asarray([float(row[term]) for row in rows])
            ax.plot(steps, values / values[0], marker=".", label=run)
    for ax, term in zip(axes, ("content term", "style term")):
        ax.set_xlabel("fine-tuning step"), ax.set_ylabel(f"{term} / its first value")
        ax.axhline(1.0, color="grey", lw=0.5), ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def magnitude_scatter(path: Path, magnitude: Mapping[str, float], balanced: Mapping[str, Mapping[str, float]],
                      left: Mapping[str, Mapping[str, float]], title: str) -> Path:
    """Per style, against its classic-loss magnitude (x, log): each model's balanced loss (left panel) and the
    share of the classic loss it leaves (right panel, log). `balanced`, `left`: {model: {style: value}}."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 3.8))
    for ax, values, ylabel in ((axes[0], balanced, "mean balanced loss"),
                               (axes[1], left, "share of the classic loss left")):
        for model, per_style in values.items():
            styles = [s for s in per_style if s in magnitude]
            ax.scatter([magnitude[s] for s in styles], [per_style[s] for s in styles], label=model, s=18)
        ax.set_xscale("log"), ax.set_ylabel(ylabel), ax.legend(fontsize=8)
        ax.set_xlabel("style's classic loss (hw) for the unstylised photo")
    axes[1].set_yscale("log")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
