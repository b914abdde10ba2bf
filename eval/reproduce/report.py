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
EVAL_SET_TITLES = {"test": "held-out photos x held-out paintings",  # tag (in file and run names): title
                   "trainstyles": "held-out photos x training paintings",
                   "stress": "held-out photos x stress styles"}
CURVE_COLUMNS = ("run", "step", "loss", "content", "style")
DECEPTION_COLUMNS = ("model", "pairs_set", "rate", "ci_low", "ci_high", "pairs", "artists", "chance", "real_top1_mean")
IMBALANCE_COLUMNS = ("run", "model", "pairs_set", "seed", "style", "magnitude", "left", "balanced_mean")
RUN_COLUMNS = ("run", "model", "pairs_set", "size", "pairs", "styles", "content_mean", "balanced_mean",
               "balanced_min", "balanced_max", "balanced_layer_min", "balanced_layer_max", "classic_mean",
               "classic_hw_mean", "classic_chw_mean", "classic_pair_min", "classic_pair_max",
               "classic_pair_max_over_min", "classic_style_max_over_min", "classic_style_cv",
               "classic_hw_style_max_over_min", "balanced_style_max_over_min", "balanced_style_cv",
               "most_under_stylised", "most_over_stylised", "classic_hw_style_cv", "seed")


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
    row["classic_hw_style_max_over_min"], row["classic_hw_style_cv"] = _spread(list(hw_style.values()))
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


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN for fewer than 3 points."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size < 3:
        return math.nan

    def ranks(values: np.ndarray) -> np.ndarray:
        order = np.argsort(values, kind="stable")
        result = np.empty(values.size)
        result[order] = np.arange(values.size, dtype=np.float64)
        for value in np.unique(values):  # ties share their mean rank
            result[values == value] = result[values == value].mean()
        return result

    return pearson_r(ranks(x), ranks(y))


def run_file_stem(run: str) -> str:
    """File name (no suffix) of a run's copied pairs.csv: "balanced (test)" -> "balanced-test"."""
    return run.replace(" + ", "-").replace(" (", "-").replace(")", "").replace(" ", "_")


def imbalance_rows(per_style: Sequence[Mapping], runs: Sequence[Mapping]) -> list[dict]:
    """imbalance.csv: per model run and style, the style's classic (hw) loss for the unstylised photo
    (`identity` on the same pairs) and the share of it the model leaves (its own classic (hw) / identity's)."""
    by_run = {r["run"]: r for r in runs}
    value = {(s["run"], s["style"]): s for s in per_style}
    references = {r["pairs_set"]: r["run"] for r in runs if r["model"] == "identity"}
    rows = []
    for run in runs:
        reference = references.get(run["pairs_set"])
        if run["model"] in ("identity", "copy-style") or reference is None:
            continue
        for (name, style), entry in value.items():
            if name != run["run"] or (reference, style) not in value:
                continue
            magnitude = float(value[(reference, style)]["classic_hw_mean"])
            rows.append({"run": run["run"], "model": run["model"], "pairs_set": run["pairs_set"],
                         "seed": by_run[run["run"]].get("seed", ""), "style": style, "magnitude": magnitude,
                         "left": float(entry["classic_hw_mean"]) / magnitude if magnitude > 0 else math.nan,
                         "balanced_mean": float(entry["balanced_mean"])})
    return rows


def deception_row(model: str, pairs_set: str, result: Mapping) -> dict:
    """deception.csv row from an `eval.deception` result (its deception.json)."""
    return {"model": model, "pairs_set": pairs_set, "rate": result["rate"], "ci_low": result["ci"][0],
            "ci_high": result["ci"][1], "pairs": result["n"], "artists": result["artists"],
            "chance": result["chance"], "real_top1_mean": result.get("real_top1_mean")}


def _tag(pairs_set: str) -> str:
    """The short name of a pairs set in file names ("test" for held-out photos x held-out paintings)."""
    return {title: tag for tag, title in EVAL_SET_TITLES.items()}.get(pairs_set, run_file_stem(pairs_set))


def write_figures(out_dir: Path, main_seed: int) -> None:
    """Per-style bars, imbalance scatter and loss curves from the CSVs in `out_dir`."""
    from eval.reproduce import figures  # noqa: PLC0415
    runs = records.read_table(out_dir / layout.RUNS_CSV)
    per_style = records.read_table(out_dir / layout.PER_STYLE_CSV)
    imbalance = records.read_table(out_dir / layout.IMBALANCE_CSV)
    fig_dir = out_dir / layout.FIGURES_DIR
    for pairs_set in dict.fromkeys(r["pairs_set"] for r in runs if r["model"] not in ("identity", "copy-style")):
        main = [r for r in runs if r["pairs_set"] == pairs_set and r["seed"] in ("", str(main_seed))]
        bars = {r["model"]: {s["style"]: _num(s["balanced_mean"]) for s in per_style if s["run"] == r["run"]}
                for r in main}
        if not pairs_set.startswith("all pairs"):  # the analysis has its per-style tables
            figures.per_style_bars(fig_dir / layout.PER_STYLE_PNG.format(tag=_tag(pairs_set)), bars,
                                   f"mean balanced loss per style: {pairs_set}", "balanced loss (0 to 4)")
        models = [r for r in main if r["model"] != "identity"]
        left = {r["model"]: {i["style"]: _num(i["left"]) for i in imbalance if i["run"] == r["run"]} for r in models}
        balanced = {r["model"]: {i["style"]: _num(i["balanced_mean"]) for i in imbalance if i["run"] == r["run"]}
                    for r in models}
        magnitude = {i["style"]: _num(i["magnitude"]) for i in imbalance if i["pairs_set"] == pairs_set}
        if left and magnitude and pairs_set != "all pairs":  # section 1 shows the released network with the stress styles
            figures.magnitude_scatter(fig_dir / layout.IMBALANCE_PNG.format(tag=_tag(pairs_set)), magnitude,
                                      balanced, left, pairs_set)
    curves = [c for c in records.read_table(out_dir / layout.CURVES_CSV) if "seed" not in c["run"]]
    if curves:
        figures.loss_curves(fig_dir / layout.LOSS_CURVES_PNG, curves)


def _figure(out_dir: Path, rel: str, name: str, alt: str) -> list[str]:
    return [f"![{alt}]({rel}/{layout.FIGURES_DIR}/{name})", ""] if (out_dir / layout.FIGURES_DIR / name).exists() else []


def _paper_columns(rows: Sequence[Mapping]) -> str:
    return markdown_table(
        ["model", "balanced mean", "classic (hw) mean", "classic (none) mean", "content mean", "balanced: max/min",
         "balanced: CV", "classic (hw): max/min", "classic (hw): CV", "most under-stylised", "most over-stylised"],
        [[r["model"], *(fmt(_num(r[k])) for k in (
            "balanced_mean", "classic_hw_mean", "classic_mean", "content_mean", "balanced_style_max_over_min",
            "balanced_style_cv", "classic_hw_style_max_over_min", "classic_hw_style_cv")),
          r["most_under_stylised"], r["most_over_stylised"]] for r in rows])


def _claims(by_model: Mapping[str, Mapping]) -> list[str]:
    if not {"classic", "balanced"} <= set(by_model):
        return []
    bal, cla = by_model["balanced"], by_model["classic"]
    trained = [r for m, r in by_model.items() if m not in ("identity", "copy-style") and not m.startswith("scratch-")]
    claims = [
        ["balanced-trained has a lower mean balanced loss than classic-trained",
         _yes(_num(bal["balanced_mean"]) < _num(cla["balanced_mean"]))],
        ["balanced-trained has a lower mean classic (hw) loss than classic-trained",
         _yes(_num(bal["classic_hw_mean"]) < _num(cla["classic_hw_mean"]))],
        ["balanced-trained has a smaller per-style spread of the balanced loss (CV)",
         _yes(_num(bal["balanced_style_cv"]) < _num(cla["balanced_style_cv"]))],
        ["balanced-trained has the lowest mean balanced loss of all models",
         _yes(min(trained, key=lambda r: _num(r["balanced_mean"]))["model"] == "balanced")]]
    if "released" in by_model:
        claims.append(["balanced fine-tuning lowers the released network's mean balanced loss",
                       _yes(_num(bal["balanced_mean"]) < _num(by_model["released"]["balanced_mean"]))])
    return [markdown_table(["claim", "holds here?"], claims), ""]


def _spearman_table(imbalance: Sequence[Mapping], rows: Sequence[Mapping], label: str = "model") -> list[str]:
    table = []
    for r in rows:
        points = [i for i in imbalance if i["run"] == r["run"]]
        if len(points) >= 3:
            magnitude = [_num(i["magnitude"]) for i in points]
            table.append([r[label], str(len(points)), fmt(_spearman(magnitude, [_num(i["left"]) for i in points])),
                          fmt(_spearman(magnitude, [_num(i["balanced_mean"]) for i in points]))])
    if not table:
        return []
    return ["Per style: its magnitude (the classic (hw) loss of the unstylised photo, `identity`, on the same "
            "pairs) against the share of it the model leaves (model / identity) and against the model's balanced "
            "loss. The paper's imbalance predicts that under the classic loss low-magnitude styles keep a larger "
            "share (a negative rho in the first column) and that the balanced loss evens it out:", "",
            markdown_table([label, "styles", "Spearman rho (magnitude, share left)",
                            "Spearman rho (magnitude, balanced loss)"], table), ""]


def markdown(out_dir: Path, rel: str, info: Mapping[str, str], discussion: str | None) -> str:
    """The report, from the CSVs in `out_dir` (`rel`: that folder relative to the report)."""
    runs = {r["run"]: r for r in records.read_table(out_dir / layout.RUNS_CSV)}
    pearson = records.read_table(out_dir / layout.PEARSON_CSV)
    per_style = records.read_table(out_dir / layout.PER_STYLE_CSV)
    split = records.read_table(out_dir / layout.SPLIT_CSV)
    optional = {name: records.read_table(out_dir / name) if (out_dir / name).exists() else []
                for name in (layout.IMBALANCE_CSV, layout.DECEPTION_CSV, layout.CURVES_CSV)}
    imbalance, deception = optional[layout.IMBALANCE_CSV], optional[layout.DECEPTION_CSV]
    layers = [k for k in pearson[0] if k != "run"]
    analysis = [r for r in runs.values() if r["pairs_set"].startswith("all pairs")]
    main_seed = info.get("seed", "")
    evaluated = [r for r in runs.values() if r not in analysis]
    main = [r for r in evaluated if r.get("seed", "") in ("", main_seed) or not main_seed]
    appendix = [r for r in evaluated if r not in main]
    stress_names = [s["name"] for s in split if s["set"] == "stress"]
    lines = [
        "# The paper's claims, measured on a real trained network", "",
        "Generated by `" + info["command"] + "` (`eval/reproduce/cli.py`). Every number below is in a CSV under "
        f"[`{rel}/`]({rel}/): `runs.csv` (one row per evaluated model and pair set), `per_style.csv`, "
        "`imbalance.csv`, `deception.csv`, `curves.csv`, `pearson.csv`, `paper.csv` (the paper's numbers), "
        f"`split.csv`, `run_info.csv`; the per-pair rows of every evaluation are in `{rel}/pairs/`. Loss network: "
        f"the real ImageNet VGG-16 (`vgg16_slim`), style layers {', '.join(layers)}, content relu3_3 "
        "(docs/losses.md). `classic (hw)` is the classic loss with Gram / (H W), the normalisation that matches the "
        "paper's magnitudes (section 1d); `classic (none)` is the un-normalised Gram.", "",
        f"**Scale `{info['scale']}`**: network `{info.get('network', '?')}`; wall time **{info['wall_time']}** for "
        f"every stage below but the seed appendix on {info['machine']} ({info['cores']} cores, JAX {info['jax']} "
        f"on {info['backend']}; load average at the start {info['load_average']}), finished {info['finished']}. "
        "Per-stage seconds are in `run_info.csv`.", "",
        "## 1. Loss analyses without training", "",
        f"Every content x style pair ({info['analysis_pairs']} pairs at {info['analysis_size']} px): `identity` "
        "(output = content photo: nothing stylised), `copy-style` (output = the painting: perfectly stylised, "
        "content lost), and `released`, the trained network installed with jax-ast, unchanged (the paper's "
        "\"original\" row). Rows named `+ stress` add the generated stress styles "
        + (f"({', '.join(n.removeprefix('stress_').rsplit('.', 1)[0] for n in stress_names)}; "
           "`python -m eval.reproduce.stress_styles`)" if stress_names else "(none in this run)") + ".", "",
        "**(a) Spread of the classic loss across styles** (paper: > 1000x).", "",
        markdown_table(["run", "styles", "classic (hw), per-style mean: max/min", "classic (hw): CV",
                        "classic (none), per-style mean: max/min", "classic (none), over all pairs: max/min",
                        "paper"],
                       [[r["run"], r["styles"], fmt(_num(r["classic_hw_style_max_over_min"])),
                         fmt(_num(r["classic_hw_style_cv"])), fmt(_num(r["classic_style_max_over_min"])),
                         fmt(_num(r["classic_pair_max_over_min"])), "> 1000"]
                        for r in analysis if r["model"] != "copy-style"]), "",
    ]
    stress_rows = [s for s in per_style if s["style"] in stress_names and runs.get(s["run"], {}).get("pairs_set")
                   == "all pairs + stress styles"]
    if stress_rows:
        by_style = {}
        for s in stress_rows:
            by_style.setdefault(s["style"], {})[runs[s["run"]]["model"]] = s
        models = list(dict.fromkeys(runs[s["run"]]["model"] for s in stress_rows))
        lines += ["Per stress style (mean over the photos; the paintings' range is in the first table):", "",
                  markdown_table(["stress style", *(f"classic (hw): {m}" for m in models),
                                  *(f"balanced: {m}" for m in models)],
                                 [[style.removeprefix("stress_").rsplit(".", 1)[0],
                                   *(fmt(_num(v[m]["classic_hw_mean"])) if m in v else "" for m in models),
                                   *(fmt(_num(v[m]["balanced_mean"])) if m in v else "" for m in models)]
                                  for style, v in by_style.items()]), ""]
    lines += _spearman_table(imbalance, [r for r in analysis if r["model"] == "released"], label="run")
    lines += _figure(out_dir, rel, layout.IMBALANCE_PNG.format(tag=_tag("all pairs + stress styles")),
                     "released network: balanced loss and share left against magnitude, paintings and stress styles")
    lines += [
        "**(b) Pearson r between the classic layer loss and its bound** (paper: nearly 1, values not retrieved).", "",
        markdown_table(["run", *layers], [[p["run"], *(fmt(_num(p[layer])) for layer in layers)] for p in pearson
                                          if p["run"] in {r["run"] for r in (*analysis, *main)}]), "",
        *_figure(out_dir, rel, layout.IDENTITY_SCATTER_PNG, "classic loss vs bound, identity baseline"),
        "**(c) Range of the balanced loss** (paper: each layer in [0, 1], so the 4-layer sum in [0, 4]).", "",
        markdown_table(["run", "mean", "min", "max", "min over layers", "max over layers"],
                       [[r["run"], *(fmt(_num(r[k])) for k in ("balanced_mean", "balanced_min", "balanced_max",
                                                                "balanced_layer_min", "balanced_layer_max"))]
                        for r in (*analysis, *main)]), "",
        "**(d) Magnitude of the classic loss under each Gram normalisation**, mean over pairs (the paper's classic "
        "column is 4.03e8-7.05e8; its Gram normalisation is not stated). `none` = F F^T, `hw` = / (H W), `chw` = "
        "/ (C H W), which is classic_hw / C_l^2 per layer (derived from the `classic_hw` columns).", "",
        markdown_table(["model", "pairs, size", "balanced", "classic (none)", "classic (hw)", "classic (chw)",
                        "closest to the paper"],
                       [[name, "paper", fmt(bal), fmt(classic), "", "", ""] for name, bal, classic in PAPER_TABLE]
                       + [[r["run"], f"{r['pairs']}, {r['size']} px", fmt(_num(r["balanced_mean"])),
                           *(fmt(_num(r[_norm_column(n)])) for n in NORMS),
                           "{} ({:.1f} decades off)".format(*_closest_norm(r)) if _num(r["classic_mean"]) > 0
                           else "n/a"] for r in (*analysis, *main)]), "",
        "## 2. Fine-tuning the released network with each loss", "",
        f"Same start (the released weights), data, seed and schedule for every loss: {info['training']}. Native = "
        "the network's own objective; classic and balanced replace its style term on the VGG-16 loss network, "
        "with beta calibrated so that beta x style ~ content on the first batches (`--style-weight auto`): "
        + ", ".join(f"{k.removeprefix('style weight ')} {fmt(_num(v)) if v != 'fixed' else 'fixed'}"
                    for k, v in info.items() if k.startswith("style weight ") and "seed" not in k)
        + ". Held-out split (seeded, `split.csv`):", "",
        markdown_table(["role", "train", "test"],
                       [[role, ", ".join(s["name"] for s in split if s["role"] == role and s["set"] == "train"),
                         ", ".join(s["name"] for s in split if s["role"] == role and s["set"] == "test")]
                        for role in ("content", "style")]), "",
        *([f"**From scratch** (`scratch-` rows): {info['scratch']}. Same data, crops and batch as the fine-tunes.",
           ""] if info.get("scratch") else []),
        *(["Loss curves (each term divided by its first logged value; `curves.csv`):", ""]
          if (out_dir / layout.FIGURES_DIR / layout.LOSS_CURVES_PNG).exists() else []),
        *_figure(out_dir, rel, layout.LOSS_CURVES_PNG, "loss curves"),
    ]
    for pairs_set in dict.fromkeys(r["pairs_set"] for r in main):
        rows = [r for r in main if r["pairs_set"] == pairs_set]
        tag = _tag(pairs_set)
        lines += [f"### {pairs_set}", "",
                  f"{rows[0]['pairs']} pairs at {rows[0]['size']} px. Mean losses (the paper's columns) and the "
                  "per-style spread (max/min and coefficient of variation of the per-style means). High mean "
                  "balanced loss = under-stylised, low = over-stylised; `identity` is the unstylised photo.", "",
                  _paper_columns(rows), "",
                  *_claims({r["model"]: r for r in rows}),
                  *_spearman_table(imbalance, rows),
                  *_figure(out_dir, rel, layout.PER_STYLE_PNG.format(tag=tag), f"balanced loss per style, {tag}"),
                  *_figure(out_dir, rel, layout.IMBALANCE_PNG.format(tag=tag), f"share left vs magnitude, {tag}")]
        styles = list(dict.fromkeys(s["style"] for s in per_style if s["run"] in {r["run"] for r in rows}))
        value = {(s["run"], s["style"]): s for s in per_style}
        lines += ["Mean balanced loss per style (rank 1 = most under-stylised):", "",
                  markdown_table(["style", *(r["model"] for r in rows)],
                                 [[style, *(f"{fmt(_num(value[(r['run'], style)]['balanced_mean']))} "
                                            f"(#{value[(r['run'], style)]['balanced_rank']})"
                                            if (r["run"], style) in value else "" for r in rows)]
                                  for style in styles]), ""]
    if deception:
        lines += ["## 3. Deception rate", "",
                  "The share of stylised images jax-ast's artist classifier (frozen ImageNet VGG-16 with a pooled "
                  "head, docs/deception.md; one class per painting, trained on the left three quarters of each) "
                  "attributes to the painting of the style image; 95 % bootstrap intervals over pairs. `identity` "
                  "is the floor, the classifier's top-1 on real held-out crops the ceiling.", "",
                  markdown_table(["model", "pairs set", "deception rate", "95 % CI", "pairs", "chance",
                                  "classifier top-1 on real crops"],
                                 [[d["model"], d["pairs_set"], fmt(_num(d["rate"])),
                                   f"[{_num(d['ci_low']):.3f}, {_num(d['ci_high']):.3f}]", d["pairs"],
                                   fmt(_num(d["chance"])), fmt(_num(d["real_top1_mean"]))] for d in deception]), ""]
    if (out_dir / layout.FIGURES_DIR / layout.OUTPUTS_PNG).exists():
        lines += ["## 4. Outputs", "",
                  "One held-out photo (rows: held-out paintings, then stress styles; columns: content, style, the "
                  "released network, the fine-tuned ones and, where trained, the ones from scratch):", "",
                  *_figure(out_dir, rel, layout.OUTPUTS_PNG, "outputs")]
    if appendix:
        lines += ["## Appendix: seed to seed", "",
                  f"The fine-tunes again at seeds {info.get('appendix_seeds', '')} (same split, pairs and schedule; "
                  f"{info.get('appendix_time', '?')}, not counted in the wall time above), beside the main seed. "
                  "The spread across seeds is the size of an effect that noise alone could produce.", ""]
        appendix_models = {r["model"] for r in appendix}
        for pairs_set in dict.fromkeys(r["pairs_set"] for r in appendix):
            rows = [r for r in evaluated if r["pairs_set"] == pairs_set and r["model"] in appendix_models]
            seeds = sorted({r["seed"] for r in rows}, key=lambda seed: int(seed) if seed.lstrip("-").isdigit() else 0)
            value = {(r["model"], r["seed"]): r for r in rows}
            table = []
            for model in dict.fromkeys(r["model"] for r in rows):
                for key in ("balanced_mean", "classic_hw_mean", "content_mean", "balanced_style_cv"):
                    per_seed = [_num(value[(model, seed)][key]) if (model, seed) in value else None for seed in seeds]
                    present = [v for v in per_seed if v is not None]
                    table.append([model, key, *("" if v is None else fmt(v) for v in per_seed),
                                  fmt(max(present) - min(present)) if present else ""])
            lines += [f"**{pairs_set}**", "",
                      markdown_table(["model", "value", *(f"seed {seed}" for seed in seeds), "max - min"], table), ""]
    if discussion:
        lines += ["## What holds here, and why it may differ", "", discussion.strip(), ""]
    return "\n".join(lines)


def write_info(out_dir: Path, info: Mapping[str, str]) -> None:
    records.write_table(out_dir / layout.RUN_INFO_CSV, [{"key": k, "value": v} for k, v in info.items()])


def write_paper_csv(out_dir: Path) -> None:
    rows = [{"model": m, "balanced_mean": b, "classic_mean": c} for m, b, c in PAPER_TABLE]
    rows.append({"model": "spread of the classic loss across styles (more than)", "classic_mean": PAPER_SPREAD})
    records.write_table(out_dir / layout.PAPER_CSV, rows)
