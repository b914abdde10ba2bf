"""Tables, CSVs and the markdown report of `eval.reproduce` (numbers only from the CSVs it writes).

Every number in the report is computed here from the per-pair CSVs of `eval.run`, written to a summary
CSV (`runs.csv`, `per_style.csv`, `pearson.csv`, `paper.csv`, `run_info.csv`, `split.csv`) with 9 significant
digits, and printed in the report with `eval.score.analysis.format_number` of that same value, so
``format_number(float(csv cell)) == report cell`` (tests/test_reproduce.py checks it).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from eval.common import layout, records
from eval.score.analysis import format_number as fmt
from eval.score.analysis import markdown_table, pearson_r

# The paper's mean test-set losses (balanced, classic), as copied by the CENG501 reproduction (their README, section 3.3 of our notes on the paper).
PAPER_TABLE = (("AdaIN original", 0.33, 7.05e8), ("AdaIN retrained (classic)", 0.43, 6.62e8),
               ("AdaIN balanced", 0.31, 6.58e8), ("SANet original", 0.28, 5.0e8),
               ("SANet classic", 0.41, 5.25e8), ("SANet balanced", 0.21, 4.03e8),
               ("LinearTransfer original", 0.33, 6.11e8), ("LinearTransfer classic", 0.47, 6.78e8),
               ("LinearTransfer balanced", 0.25, 4.27e8))
PAPER_SPREAD = 1000.0  # "style losses for different style images can differ by more than 1,000 times"
NORMS = ("none", "hw", "chw")
RUN_COLUMNS = ("run", "model", "pairs_set", "size", "pairs", "styles", "content_mean", "balanced_mean",
               "balanced_min", "balanced_max", "balanced_layer_min", "balanced_layer_max", "classic_mean",
               "classic_hw_mean", "classic_chw_mean", "classic_pair_min", "classic_pair_max",
               "classic_pair_max_over_min", "classic_style_max_over_min", "classic_style_cv",
               "classic_hw_style_max_over_min", "balanced_style_max_over_min", "balanced_style_cv",
               "most_under_stylised", "most_over_stylised")


def vgg16_channels(layer: str) -> int:
    """Channels of a VGG-16 tap such as relu3_3: 64, 128, 256, 512, 512 for blocks 1-5."""
    return min(64 * 2 ** (int(layer[4]) - 1), 512)


def read_pairs(path: Path) -> dict[str, np.ndarray]:
    """All columns of an `eval.run` pairs.csv: numbers as float64 arrays, content/style names as str arrays."""
    rows = records.read_table(path)
    return {name: np.asarray([row[name] for row in rows], None if name in ("content", "style") else np.float64)
            for name in (rows[0] if rows else ())}


def _spread(values: Sequence[float]) -> tuple[float, float]:
    """(max/min, coefficient of variation std/mean) of positive values; NaN where undefined."""
    values = np.asarray(values, np.float64)
    low, mean = float(values.min()), float(values.mean())
    ratio = float(values.max()) / low if low > 0 else math.nan
    return ratio, (float(values.std()) / mean if mean > 0 else math.nan)


def per_style_means(pairs: Mapping[str, np.ndarray], column: str) -> dict[str, float]:
    """{style name: mean of `column` over that style's pairs}, styles in first-seen order."""
    names = list(dict.fromkeys(pairs["style"].tolist()))
    return {name: float(np.mean(pairs[column][pairs["style"] == name])) for name in names}


def classic_chw(pairs: Mapping[str, np.ndarray], layers: Sequence[str]) -> np.ndarray:
    """Classic loss with Grams / (C*H*W), from the Gram / (H*W) columns: per layer exactly classic_hw / C^2."""
    return sum(pairs[f"classic_hw/{layer}"] / vgg16_channels(layer) ** 2 for layer in layers)


def summarize_run(run: str, model: str, pairs_set: str, size: int, pairs: Mapping[str, np.ndarray],
                  layers: Sequence[str]) -> tuple[dict, list[dict], dict]:
    """(runs.csv row, per_style.csv rows, pearson.csv row) of one `eval.run` output."""
    chw = classic_chw(pairs, layers)
    classic_style = per_style_means(pairs, "classic/total")
    balanced_style = per_style_means(pairs, "balanced/total")
    hw_style = per_style_means(pairs, "classic_hw/total")
    ranked = sorted(balanced_style, key=balanced_style.get)
    classic = pairs["classic/total"]
    layer_values = np.stack([pairs[f"balanced/{layer}"] for layer in layers])
    row = {"run": run, "model": model, "pairs_set": pairs_set, "size": size, "pairs": int(classic.size),
           "styles": len(balanced_style), "content_mean": float(np.mean(pairs["content/total"])),
           "balanced_mean": float(np.mean(pairs["balanced/total"])),
           "balanced_min": float(np.min(pairs["balanced/total"])),
           "balanced_max": float(np.max(pairs["balanced/total"])),
           "balanced_layer_min": float(layer_values.min()), "balanced_layer_max": float(layer_values.max()),
           "classic_mean": float(np.mean(classic)), "classic_hw_mean": float(np.mean(pairs["classic_hw/total"])),
           "classic_chw_mean": float(np.mean(chw)), "classic_pair_min": float(classic.min()),
           "classic_pair_max": float(classic.max()),
           "classic_pair_max_over_min": float(classic.max() / classic.min()) if classic.min() > 0 else math.nan}
    row["classic_style_max_over_min"], row["classic_style_cv"] = _spread(list(classic_style.values()))
    row["classic_hw_style_max_over_min"] = _spread(list(hw_style.values()))[0]
    row["balanced_style_max_over_min"], row["balanced_style_cv"] = _spread(list(balanced_style.values()))
    row["most_under_stylised"], row["most_over_stylised"] = ranked[-1], ranked[0]
    styles = [{"run": run, "style": name, "pairs": int(np.sum(pairs["style"] == name)),
               "classic_mean": classic_style[name], "classic_hw_mean": hw_style[name],
               "balanced_mean": balanced_style[name], "balanced_rank": len(ranked) - ranked.index(name)}
              for name in balanced_style]
    pearson = {"run": run, **{layer: pearson_r(pairs[f"classic/{layer}"], pairs[f"bound/{layer}"])
                              for layer in layers}}
    return row, styles, pearson


def _num(value: str) -> float:
    return float(value) if value not in ("", "nan") else math.nan


def _closest_norm(row: Mapping[str, str]) -> tuple[str, float]:
    """The Gram normalisation whose mean classic loss is nearest (in log10) to the paper's 4e8-7e8."""
    centre = math.log10(math.sqrt(min(r[2] for r in PAPER_TABLE) * max(r[2] for r in PAPER_TABLE)))
    gaps = {norm: abs(math.log10(_num(row[_norm_column(norm)])) - centre) for norm in NORMS
            if _num(row[_norm_column(norm)]) > 0}
    best = min(gaps, key=gaps.get)
    return best, gaps[best]


def _norm_column(norm: str) -> str:
    return "classic_mean" if norm == "none" else f"classic_{norm}_mean"


def _yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def markdown(out_dir: Path, rel: str, info: Mapping[str, str], discussion: str | None) -> str:
    """The report, from the CSVs in `out_dir` (`rel`: that folder relative to the report)."""
    runs = {r["run"]: r for r in records.read_table(out_dir / layout.RUNS_CSV)}
    pearson = records.read_table(out_dir / layout.PEARSON_CSV)
    per_style = records.read_table(out_dir / layout.PER_STYLE_CSV)
    split = records.read_table(out_dir / layout.SPLIT_CSV)
    layers = [k for k in pearson[0] if k != "run"]
    baselines = [r for r in runs.values() if r["model"] in ("identity", "copy-style")]
    models = [r for r in runs.values() if r not in baselines]
    lines = [
        "# The paper's claims, measured with real weights", "",
        "Generated by `" + info["command"] + "` (`eval/reproduce/cli.py`). Every number below is in a CSV under "
        f"[`{rel}/`]({rel}/): `runs.csv` (one row per evaluated model and pair set), `per_style.csv`, "
        "`pearson.csv`, `paper.csv` (the paper's numbers), `split.csv`, `run_info.csv`; the per-pair rows of "
        f"every evaluation are in `{rel}/pairs/`. Loss network: the real ImageNet VGG-16 (`vgg16_slim`), style "
        f"layers {', '.join(layers)}, content relu3_3; `jax_ast/losses.py` has the definitions.", "",
        f"**Scale `{info['scale']}`**, wall time **{info['wall_time']}** on {info['machine']} "
        f"({info['cores']} cores, JAX {info['jax']} on {info['backend']}; load average at the start "
        f"{info['load_average']}), finished {info['finished']}.", "",
        "## 1. Loss analyses without training", "",
        f"Baselines on every bundled content x style pair ({info['analysis_pairs']} pairs at "
        f"{info['analysis_size']} px): `identity` (output = content photo: nothing stylised) and `copy-style` "
        "(output = the painting: perfectly stylised, content lost).", "",
        "**(a) Spread of the classic loss across styles** (paper: > 1000x).", "",
        markdown_table(["run", "per-style mean: max/min", "over all pairs: max/min", "min pair", "max pair",
                        "paper"],
                       [[r["run"], fmt(_num(r["classic_style_max_over_min"])),
                         fmt(_num(r["classic_pair_max_over_min"])), fmt(_num(r["classic_pair_min"])),
                         fmt(_num(r["classic_pair_max"])), "> 1000"] for r in baselines]), "",
        "**(b) Pearson r between the classic layer loss and its bound** (paper: nearly 1, values not "
        "retrieved).", "",
        markdown_table(["run", *layers], [[p["run"], *(fmt(_num(p[layer])) for layer in layers)]
                                          for p in pearson]), "",
        *([f"![classic loss vs bound, identity baseline]({rel}/figures/identity_scatter_bound.png)", ""]
          if (out_dir / layout.FIGURES_DIR / layout.IDENTITY_SCATTER_PNG).exists() else []),
        "**(c) Range of the balanced loss** (paper: each layer in [0, 1], so the 4-layer sum in [0, 4]).", "",
        markdown_table(["run", "mean", "min", "max", "min over layers", "max over layers"],
                       [[r["run"], *(fmt(_num(r[k])) for k in ("balanced_mean", "balanced_min", "balanced_max",
                                                                "balanced_layer_min", "balanced_layer_max"))]
                        for r in runs.values()]), "",
        "**(d) Magnitude of the classic loss under each Gram normalisation**, mean over pairs (the paper's "
        "classic column is 4.03e8-7.05e8; its Gram normalisation is not stated). `none` = F F^T, `hw` = "
        "/ (H W), `chw` = / (C H W), which is classic_hw / C_l^2 per layer (derived from the `classic_hw` "
        "columns).", "",
        markdown_table(["model", "pairs, size", "balanced", "classic (none)", "classic (hw)", "classic (chw)",
                        "closest to the paper"],
                       [[name, "paper", fmt(bal), fmt(classic), "", "", ""] for name, bal, classic in PAPER_TABLE]
                       + [[r["run"], f"{r['pairs']}, {r['size']} px", fmt(_num(r["balanced_mean"])),
                           *(fmt(_num(r[_norm_column(n)])) for n in NORMS),
                           "{} ({:.1f} decades off)".format(*_closest_norm(r)) if _num(r["classic_mean"]) > 0
                           else "n/a"] for r in runs.values()]),
        "",
        "## 2. Training AdaIN with each loss (scaled down)", "",
        f"AdaIN trained from scratch on the ImageNet VGG-16 encoder (`--encoder vgg16_normalised`), three times "
        f"with the same data, seed and schedule: {info['training']}. Native = AdaIN's own mean/std loss "
        "(style weight 10); classic and balanced replace the style term on the VGG-16 loss network, with beta "
        "calibrated (`--style-weight auto`). Held-out split (seeded, `split.csv`):", "",
        markdown_table(["role", "train", "test"],
                       [[role, ", ".join(s["name"] for s in split if s["role"] == role and s["set"] == "train"),
                         ", ".join(s["name"] for s in split if s["role"] == role and s["set"] == "test")]
                        for role in ("content", "style")]), "",
    ]
    for pairs_set in dict.fromkeys(r["pairs_set"] for r in models):
        rows = [r for r in models if r["pairs_set"] == pairs_set]
        lines += [f"**{pairs_set}** ({rows[0]['pairs']} pairs at {rows[0]['size']} px): mean losses (the paper's "
                  "columns) and the per-style spread (max/min and coefficient of variation of the per-style "
                  "means). High mean balanced loss = under-stylised, low = over-stylised.", "",
                  markdown_table(["model", "balanced mean", "classic mean", "classic (hw) mean", "content mean",
                                  "balanced: max/min", "balanced: CV", "classic: max/min", "classic: CV",
                                  "most under-stylised", "most over-stylised"],
                                 [[r["model"], *(fmt(_num(r[k])) for k in (
                                     "balanced_mean", "classic_mean", "classic_hw_mean", "content_mean",
                                     "balanced_style_max_over_min", "balanced_style_cv",
                                     "classic_style_max_over_min", "classic_style_cv")),
                                   r["most_under_stylised"], r["most_over_stylised"]] for r in rows]), ""]
        by_model = {r["model"]: r for r in rows}
        if {"classic", "balanced"} <= set(by_model):
            bal, cla = by_model["balanced"], by_model["classic"]
            lines += [markdown_table(["claim (balanced vs classic training)", "holds here?"], [
                ["lower mean balanced loss", _yes(_num(bal["balanced_mean"]) < _num(cla["balanced_mean"]))],
                ["lower mean classic loss", _yes(_num(bal["classic_mean"]) < _num(cla["classic_mean"]))],
                ["smaller per-style spread of the balanced loss (CV)",
                 _yes(_num(bal["balanced_style_cv"]) < _num(cla["balanced_style_cv"]))],
                ["smaller per-style spread of the balanced loss (max/min)",
                 _yes(_num(bal["balanced_style_max_over_min"]) < _num(cla["balanced_style_max_over_min"]))],
                ["lowest mean balanced loss of the three models",
                 _yes(min(rows, key=lambda r: _num(r["balanced_mean"]))["model"] == "balanced")]]), ""]
        styles = list(dict.fromkeys(s["style"] for s in per_style
                                    if s["run"] in {r["run"] for r in rows}))
        value = {(s["run"], s["style"]): s for s in per_style}
        lines += [f"Mean balanced loss per style ({pairs_set}; rank 1 = most under-stylised):", "",
                  markdown_table(["style", *(r["model"] for r in rows)],
                                 [[style, *(f"{fmt(_num(value[(r['run'], style)]['balanced_mean']))} "
                                            f"(#{value[(r['run'], style)]['balanced_rank']})"
                                            if (r["run"], style) in value else "" for r in rows)]
                                  for style in styles]), ""]
    figure = out_dir / layout.FIGURES_DIR / layout.OUTPUTS_PNG
    if figure.exists():
        lines += ["Outputs for one held-out photo (rows: held-out styles; columns: content, style, native, classic, "
                  "balanced):", "", f"![outputs]({rel}/figures/outputs.png)", ""]
    if discussion:
        lines += ["## What holds at this scale, and why it may differ", "", discussion.strip(), ""]
    return "\n".join(lines)


def write_info(out_dir: Path, info: Mapping[str, str]) -> None:
    records.write_table(out_dir / layout.RUN_INFO_CSV, [{"key": k, "value": v} for k, v in info.items()])


def write_paper_csv(out_dir: Path) -> None:
    rows = [{"model": m, "balanced_mean": b, "classic_mean": c} for m, b, c in PAPER_TABLE]
    rows.append({"model": "spread of the classic loss across styles (more than)", "classic_mean": PAPER_SPREAD})
    records.write_table(out_dir / layout.PAPER_CSV, rows)
