"""Deception rate (Sanakoyeu et al. 2018): the share of stylised images an artist classifier attributes to the
artist of their style image, per artist and overall, with bootstrap confidence intervals (docs/deception.md).

    python -m eval.deception --classifier runs/artists --pairs-from eval/lst-bal [--artist-from stem|subfolder|csv]

`--pairs-from` is an `eval.run` output folder: its ``run.json`` fixes the model, its weights, the seeded
pairing and the image size, and its ``pairs.csv`` lists the evaluated pairs. `eval.run` keeps no stylised
images, so they are made again, identically (same pairs, size, alpha and clipping), and classified after
resizing to the classifier's input (CompVis's classifier: 224, via shorter side 256 as in its evaluation).
Next to each artist's rate is the classifier's top-1 on real held-out paintings of that artist (from its
``classifier.npz``), the ceiling a perfect stylisation could reach. The overall rate is the mean over artists.

Writes ``deception.json`` and ``deception.md`` into the eval folder (or ``--out``); `eval.compare` shows the
overall rate as a column. An existing result is kept unless ``--overwrite``. Exit status (`eval.common.guards`): 0 done;
1 no pair could be classified; 2 usage or input error (nothing written); 3 an output could not be written.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import sys
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from eval.common import guards, layout, records
from eval.deception import classifier as artist_classifier
from eval.score import analysis, report
from eval.score import pairs as pairing_lib
from jax_ast.data import DataError, FolderSource, open_source

ARTIST_FROM = ("stem", "subfolder", "csv")


def bootstrap_ci(hits_by_group: Sequence[np.ndarray], *, samples: int = 1000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """(estimate, low, high): the mean over groups of each group's hit rate, with a percentile bootstrap CI.

    Each bootstrap sample resamples every group's items with replacement (stratified by group, so every
    group keeps its size); one group gives the plain per-artist interval.

    Args:
      hits_by_group: per group, a bool/0-1 array of at least one item.
      samples: bootstrap replicates. level: coverage in (0, 1). seed: of the resampling.
    """
    groups = [np.asarray(h, np.float64) for h in hits_by_group]
    if not groups or any(g.size == 0 for g in groups):
        raise ValueError("every group needs at least one item")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    replicates = np.zeros(samples)
    for g in groups:
        replicates += g[rng.integers(0, g.size, size=(samples, g.size))].mean(axis=1)
    replicates /= len(groups)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return float(np.mean([g.mean() for g in groups])), float(low), float(high)


def deception_report(predicted: np.ndarray, artists: Sequence[str], classes: Sequence[str], *,
                     real_top1: dict[str, float] | None = None, samples: int = 1000, seed: int = 0) -> dict:
    """Per-artist and overall deception rate (with CIs) of predicted class indices vs each pair's artist."""
    target = np.asarray([classes.index(a) for a in artists])
    hits = np.asarray(predicted) == target
    names = sorted(set(artists))
    per_artist = {}
    for index, name in enumerate(names):
        mask = np.asarray([a == name for a in artists])
        rate, low, high = bootstrap_ci([hits[mask]], samples=samples, seed=seed + index + 1)
        per_artist[name] = {"rate": rate, "ci": [low, high], "n": int(mask.sum()),
                            "real_top1": (real_top1 or {}).get(name)}
    rate, low, high = bootstrap_ci([hits[np.asarray([a == n for a in artists])] for n in names],
                                   samples=samples, seed=seed)
    real = [v["real_top1"] for v in per_artist.values() if v["real_top1"] is not None]
    return {"rate": rate, "ci": [low, high], "level": 0.95, "n": int(hits.size), "artists": len(names),
            "chance": 1.0 / len(classes), "real_top1_mean": float(np.mean(real)) if real else None,
            "per_artist": per_artist}


def report_markdown(result: dict) -> str:
    rows = [[name, analysis.format_number(v["rate"]), f"[{v['ci'][0]:.3f}, {v['ci'][1]:.3f}]", str(v["n"]),
             analysis.format_number(v["real_top1"])] for name, v in result["per_artist"].items()]
    rows.append(["**overall (mean over artists)**", analysis.format_number(result["rate"]),
                 f"[{result['ci'][0]:.3f}, {result['ci'][1]:.3f}]", str(result["n"]),
                 analysis.format_number(result["real_top1_mean"])])
    return (f"# Deception rate: {result.get('label', '')}\n\nClassifier: {result.get('classifier', '')} "
            f"({result.get('classes', '?')} classes, chance {result['chance']:.3f}). 95 % percentile bootstrap "
            f"intervals.\n\n" + analysis.markdown_table(["artist", "deception rate", "95 % CI", "pairs",
                                                         "classifier top-1 on real paintings"], rows) + "\n")


def artist_of(style_names: Sequence[str], how: str, info_csv: Path | None = None) -> list[str]:
    """The artist of each style image name (relative to the style folder): its file stem, its first folder,
    or its ``artist`` in Painter by Numbers' train_info.csv."""
    if how == "stem":
        return [Path(name).stem for name in style_names]
    if how == "subfolder":
        flat = [name for name in style_names if len(Path(name).parts) < 2]
        if flat:
            raise DataError(f"style images {flat[:3]} are not in artist sub-folders (--artist-from subfolder)")
        return [Path(name).parts[0] for name in style_names]
    if info_csv is None:
        raise DataError("--artist-from csv needs --info-csv")
    with open(info_csv, newline="", encoding="utf-8") as stream:
        artists = {row["filename"]: row["artist"] for row in csv.DictReader(stream)}
    missing = sorted({Path(n).name for n in style_names} - set(artists))
    if missing:
        raise DataError(f"{info_csv} does not list the style images {missing[:5]}")
    return [artists[Path(name).name] for name in style_names]


def prepare(images: np.ndarray, meta: dict) -> np.ndarray:
    """uint8 [N, S, S, 3] -> the classifier's input: resized to meta["size"] (CompVis: 224, then shorter side
    meta["resize"] and a centred 224 crop, as its evaluation does)."""
    size, resize = meta["size"], meta.get("resize")
    out = []
    for image in images:
        picture = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR)
        if resize:
            offset = (resize - size) // 2
            picture = picture.resize((resize, resize), Image.Resampling.BILINEAR).crop(
                (offset, offset, offset + size, offset + size))
        out.append(np.asarray(picture))
    return np.stack(out)


def load_any_classifier(path: str, class_list: str | None):
    """(model, params, meta) of a jax-ast classifier, or of CompVis's checkpoint when `class_list` is given."""
    if class_list:
        from jax_ast.pretrained.compvis import load_compvis  # noqa: PLC0415

        return load_compvis(path, class_list)
    return artist_classifier.load_classifier(path)


def stylized_pairs(eval_dir: Path, *, batch: int = 32):
    """Yields (pair numbers, style names, uint8 stylised images [n, S, S, 3]) of the pairs in eval_dir's
    pairs.csv, remade from its run.json."""
    from eval.score import run as eval_run  # noqa: PLC0415 - the stylizer of eval.run, with its cache

    settings = report.read_settings(eval_dir)
    content_src = settings["content_source"]
    content = (FolderSource(content_src["folder"]) if "folder" in content_src else
               open_source("content", tfds_name=content_src["tfds"], tfds_split=content_src["split"],
                           data_dir=content_src["data_dir"]))
    style = FolderSource(settings["style_source"]["folder"])
    if (len(content), len(style)) != (settings["n_contents"], settings["n_styles"]):
        raise DataError(f"the images of {eval_dir} changed since eval.run ({len(content)} contents, {len(style)} "
                        f"styles now, {settings['n_contents']} and {settings['n_styles']} then); rerun eval.run")
    weights = settings["weights"]
    if weights not in (None, "random") and not Path(weights).exists():
        raise DataError(f"the model of {eval_dir} is gone: its run.json names weights {weights}, which do not "
                        "exist; restore them, or rerun eval.run with the weights you have")
    pairing = pairing_lib.Pairing(len(content), len(style), settings["seed"])
    caches = (pairing_lib.ImageCache(content, settings["size"], 64), pairing_lib.ImageCache(style, settings["size"], 64))
    args = argparse.Namespace(arch=settings["arch"], weights=weights, variant=settings["variant"],
                              model_seed=settings["model_seed"], size=settings["size"], alpha=settings["alpha"],
                              dtype=settings.get("dtype", eval_run.RESUME_DEFAULTS["dtype"]))
    stylizer = eval_run.make_stylizer(args, batch)
    done = records.read_columns(eval_dir / layout.PAIRS_CSV, ["pair"])["pair"].astype(np.int64).tolist()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for start in range(0, len(done), batch):
            chunk = pairing_lib.load_chunk(done[start:start + batch], pairing, *caches, pool)
            contents, styles = (x.astype(np.float32) / 255.0 for x in (chunk.contents, chunk.styles))
            outputs = stylizer.stylize(contents, styles, alpha=settings["alpha"])
            images = np.rint(np.clip(np.nan_to_num(np.asarray(outputs, np.float32)), 0.0, 1.0) * 255.0)
            yield chunk.pairs, [caches[1].name(s) for s in chunk.style_indices], images.astype(np.uint8)


def build_parser() -> argparse.ArgumentParser:
    parser = guards.Parser(prog="python -m eval.deception", description=__doc__.split("\n\n")[0])
    parser.add_argument("--classifier", required=True, help="classifier workdir or classifier.npz; or CompVis's "
                                                            "model.ckpt-790000 (or .npz) with --class-list")
    parser.add_argument("--class-list", help="CompVis's split.hdf5 (or a JSON/text list) for a CompVis checkpoint")
    parser.add_argument("--pairs-from", type=Path, required=True, help="an eval.run output folder")
    parser.add_argument("--artist-from", choices=ARTIST_FROM, default="stem",
                        help="artist of a style image: file stem (one painting = one artist, as the classifier "
                             "trained with --labels file), first sub-folder, or --info-csv")
    parser.add_argument("--info-csv", type=Path, help="Painter by Numbers train_info.csv for --artist-from csv")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--out", type=Path, help="folder for deception.json/.md (default: --pairs-from)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing deception.json/.md")
    return parser


def evaluate(args: argparse.Namespace) -> dict:
    model, params, meta = load_any_classifier(args.classifier, args.class_list)
    classes = list(meta["classes"])
    predicted, artists = [], []
    for _, style_names, images in stylized_pairs(args.pairs_from):
        names = artist_of(style_names, args.artist_from, args.info_csv)
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise DataError(f"artists {unknown[:5]} of {args.pairs_from} are not among the classifier's "
                            f"{len(classes)} classes (check --artist-from)")
        logits = artist_classifier.predict(model, params, prepare(images, meta))
        predicted += np.argmax(logits, axis=1).tolist()
        artists += names
    if not artists:
        raise DataError(f"{args.pairs_from} holds no evaluated pairs")
    real = {name: v["top1"] for name, v in (meta.get("heldout") or {}).get("per_class", {}).items()}
    result = deception_report(np.asarray(predicted), artists, classes, real_top1=real, samples=args.bootstrap,
                              seed=args.seed)
    settings = report.read_settings(args.pairs_from)
    result.update(label=report.run_label(settings), classifier=str(args.classifier), classes=len(classes))
    return result


def main(argv: Iterable[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    out = args.out or args.pairs_from
    for path in (args.pairs_from / layout.RUN_JSON, args.pairs_from / layout.PAIRS_CSV):
        if not path.is_file():
            parser.error(guards.printable(f"--pairs-from: no {path} (not an eval.run output folder)"))
    for name in (layout.DECEPTION_JSON, layout.DECEPTION_MD):
        problem = guards.output_file_problem(out / name, overwrite=args.overwrite)
        if problem:
            parser.error(problem)
    if args.bootstrap < 1:
        parser.error("--bootstrap must be >= 1")
    try:
        result = evaluate(args)
    except (DataError, FileNotFoundError, ValueError, KeyError, records.RecordsError) as error:
        print(guards.printable(f"error: {type(error).__name__}: {error}"), file=sys.stderr)
        return guards.EXIT_USAGE
    try:
        records.write_json(out / layout.DECEPTION_JSON, result)
        records.write_text(out / layout.DECEPTION_MD, report_markdown(result))
    except OSError as error:
        print(guards.printable(f"error: {error}"), file=sys.stderr)
        return guards.EXIT_WRITE_FAILED
    print(report_markdown(result))
    return guards.EXIT_OK

