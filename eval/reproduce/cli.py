"""The paper's claims measured on a real trained network:  python -m eval.reproduce --out docs/reproduction

One command, every number from CSVs it writes (`eval/reproduce/report.py`), on the ImageNet VGG-16 loss network:

1. **Analysis.** `identity` (output = photo), `copy-style` (output = painting) and the **released** network
   (the mobile Magenta installed with jax-ast: the paper's "original" row) on every content x style pair,
   with the generated stress styles (`eval/reproduce/stress_styles.py`) added to measure the spread of the
   classic loss at the extremes of Gram magnitude.
2. **Fine-tuning with each loss.** From the released weights, the network is fine-tuned with its native loss,
   the classic loss and the balanced loss (beta calibrated, `--style-weight auto`): same start, data (a seeded
   train split of photos and paintings), seed and schedule; the loss curves come from each run's metrics.
3. **Evaluation** of the released and the three fine-tuned models (and identity, as the unstylised reference)
   on held-out photos x held-out paintings, held-out photos x training paintings, held-out photos x stress
   styles: the paper's columns, the per-style spread, and per style the share of the classic loss a model
   leaves against the style's magnitude (Spearman).
4. **Deception rate** of every model with jax-ast's artist classifier (one "artist" per painting).
5. Figures (outputs grid, per-style bars, loss curves, magnitude scatter) and ``<out>.md``.

`--appendix-seeds 1` trains and evaluates the three fine-tunes again at other seeds, after the main stages
(their time is reported apart), for a seed-to-seed appendix. Work files (checkpoints, split folders of
symlinks, `eval.run` folders, the classifier) go to ``--workdir``; rerunning with it resumes every stage. A
hand-written ``<out>/discussion.md``, if present, is included in the report.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Iterable

import numpy as np

from eval.common import guards, layout, records
from eval.inference.baselines import BASELINES
from eval.reproduce import figures, report, stress_styles
from jax_ast.configs import LOSSES

FIGURE_ROWS = 4  # held-out paintings in the outputs grid (plus FIGURE_STRESS_ROWS stress styles)
FIGURE_STRESS_ROWS = 3
MAX_PAIRS = 2000  # default cap on pairs per evaluation (COCO x WikiArt has billions; eval.run samples them)
RELEASED = "released"  # the model name of the installed network, unchanged


@dataclasses.dataclass(frozen=True)
class Scale:
    """How big the experiment is. Images: at most max_* of each folder are used (None: all).

    arch/variant: the network fine-tuned (from its installed release when `from_release`, else from random
    initialisation); crop/batch/iterations/learning rate: its schedule, the same for every loss.
    """

    crop_size: int
    batch_size: int
    iterations: int
    learning_rate: float
    lr_decay: float
    eval_size: int
    analysis_size: int
    test_contents: int
    test_styles: int
    max_contents: int | None = None
    max_styles: int | None = None
    figures: bool = True
    arch: str = "magenta"
    variant: str | None = "mobile"
    from_release: bool = True
    scratch_losses: tuple[str, ...] = ()  # also trained from random init (released style predictor, frozen)
    scratch_iterations: int = 0
    scratch_learning_rate: float = 1e-3
    stress_size: int = 256  # side of the generated stress styles
    classifier_steps: int = 300  # artist classifier (eval.deception.classifier defaults otherwise)
    classifier_size: int = 64


SCALES = {
    # End-to-end test of the command (tests/test_reproduce.py): seconds, numbers meaningless.
    "tiny": Scale(crop_size=48, batch_size=2, iterations=2, learning_rate=1e-5, lr_decay=0.0, eval_size=32,
                  analysis_size=32, test_contents=2, test_styles=2, max_contents=4, max_styles=4, figures=False,
                  stress_size=32, classifier_steps=2, classifier_size=32),
    # A quiet 2-core CPU in about an hour: Magenta's own learning rate, 128 px crops, batch 4, 120 steps per loss;
    # the transformer from scratch with the balanced loss for as long, at a from-scratch learning rate.
    "cpu": Scale(crop_size=128, batch_size=4, iterations=120, learning_rate=1e-5, lr_decay=0.0, eval_size=256,
                 analysis_size=256, test_contents=4, test_styles=4, scratch_losses=("balanced",),
                 scratch_iterations=120),
    # One GPU (estimated, not measured): Magenta's recipe (256 px crops, batch 8, lr 1e-5), 5000 steps per loss;
    # from scratch with every loss for 20000 steps.
    "gpu": Scale(crop_size=256, batch_size=8, iterations=5000, learning_rate=1e-5, lr_decay=0.0, eval_size=256,
                 analysis_size=256, test_contents=4, test_styles=4, scratch_losses=LOSSES, scratch_iterations=20000),
}
EVAL_SETS = {  # tag: (title, content folder key, style folder key)
    "test": (report.EVAL_SET_TITLES["test"], "test_content", "test_style"),
    "trainstyles": (report.EVAL_SET_TITLES["trainstyles"], "test_content", "train_style"),
    "stress": (report.EVAL_SET_TITLES["stress"], "test_content", "stress_style"),
}
DECEPTION_SETS = ("test", "trainstyles")  # the stress styles have no artist


def build_parser() -> argparse.ArgumentParser:
    parser = guards.Parser(prog="python -m eval.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/reproduction"),
                        help="report <out>.md; CSVs and figures in <out>/")
    parser.add_argument("--scale", choices=sorted(SCALES), default="cpu", help="preset sizes (see SCALES)")
    parser.add_argument("--workdir", type=Path, help="checkpoints, split folders, eval.run outputs "
                                                     "(default: workdir/reproduce-<scale>)")
    parser.add_argument("--content-dir", type=Path, help="content photos, e.g. COCO (default: bundled samples)")
    parser.add_argument("--style-dir", type=Path, help="paintings, e.g. WikiArt (default: bundled samples)")
    parser.add_argument("--test-content-dir", type=Path, help="held-out photos; then --content-dir is all training")
    parser.add_argument("--test-style-dir", type=Path, help="held-out paintings; then --style-dir is all training")
    parser.add_argument("--analysis-pairs", type=int,
                        help=f"baseline pairs (default: every content x style pair, at most {MAX_PAIRS})")
    parser.add_argument("--eval-pairs", type=int,
                        help=f"held-out pairs per model and set (default: all, at most {MAX_PAIRS})")
    for name in ("iterations", "crop_size", "batch_size", "eval_size", "analysis_size", "test_contents",
                 "test_styles", "classifier_steps", "scratch_iterations"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, help="override the scale's value")
    parser.add_argument("--learning-rate", type=float, help="override the scale's value")
    parser.add_argument("--lr-decay", type=float, help="override the scale's value (lr / (1 + decay * step))")
    parser.add_argument("--arch", help="network to fine-tune (default: the scale's, magenta)")
    parser.add_argument("--variant", help="its variant (default: the scale's, mobile)")
    parser.add_argument("--from-scratch", action="store_true",
                        help="train from random initialisation instead of the installed release")
    parser.add_argument("--losses", default=",".join(LOSSES), help="comma-separated losses to fine-tune with")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, training and pairing")
    parser.add_argument("--appendix-seeds", default="",
                        help="comma-separated further training seeds (same split and pairs), reported apart")
    parser.add_argument("--no-stress", action="store_true", help="leave out the generated stress styles")
    parser.add_argument("--no-deception", action="store_true", help="skip the artist classifier and deception rate")
    parser.add_argument("--classifier", type=Path,
                        help="an artist classifier (eval.artist_classifier workdir or classifier.npz) for the "
                             "deception rate; default: one trained here with one class per bundled painting "
                             "(needed with --style-dir)")
    parser.add_argument("--artist-from", choices=("stem", "subfolder", "csv"), default="stem",
                        help="how eval.deception finds a style image's artist (with --classifier)")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    parser.add_argument("--report-only", action="store_true",
                        help="only rewrite <out>.md from the CSVs in <out>/ (e.g. after editing discussion.md)")
    return parser


def list_images(folder: Path, limit: int | None) -> list[Path]:
    from jax_ast.imageio import list_images as _list  # noqa: PLC0415
    return sorted(_list(folder), key=str)[:limit]


def link_folder(folder: Path, files: Iterable[Path]) -> Path:
    """A fresh folder of symlinks to `files` (a name seen twice gets its position as a prefix)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for index, path in enumerate(files):
        name = path.name if not (folder / path.name).exists() else f"{index:06d}_{path.name}"
        (folder / name).symlink_to(path.resolve())
    return folder


def make_split(args: argparse.Namespace, scale: Scale, work: Path) -> tuple[dict[str, Path], list[dict]]:
    """Folders all/train/test x content/style (and stress_style, all_style_stress) under `work`, and the
    split.csv rows (role, set, name)."""
    from jax_ast.data import bundled_dir  # noqa: PLC0415
    rng = np.random.default_rng(args.seed)
    folders, rows = {}, []
    for role, limit, n_test in (("content", scale.max_contents, scale.test_contents),
                                ("style", scale.max_styles, scale.test_styles)):
        given, test_dir = getattr(args, f"{role}_dir"), getattr(args, f"test_{role}_dir")
        files = list_images(given or bundled_dir(role), limit)
        if test_dir is not None:
            train, test = files, list_images(test_dir, None)
        else:
            if not 0 < n_test < len(files):
                raise SystemExit(f"error: cannot hold out {n_test} of {len(files)} {role} images")
            order = rng.permutation(len(files))
            test = sorted((files[i] for i in order[:n_test]), key=str)
            train = sorted((files[i] for i in order[n_test:]), key=str)
        for name, chosen in (("all", sorted(set(train) | set(test), key=str)), ("train", train), ("test", test)):
            folders[f"{name}_{role}"] = link_folder(work / "split" / name / role, chosen)
        rows += [{"role": role, "set": s, "name": p.name} for s, chosen in (("train", train), ("test", test))
                 for p in chosen[:50]]
    if not args.no_stress:
        generated = stress_styles.write_all(work / "stress", scale.stress_size, args.seed)
        folders["stress_style"] = link_folder(work / "split" / "stress" / "style", generated)
        paintings = sorted(folders["all_style"].iterdir())
        folders["all_style_stress"] = link_folder(work / "split" / "all_stress" / "style",
                                                  [*paintings, *generated])
        rows += [{"role": "style", "set": "stress", "name": p.name} for p in generated]
    return folders, rows


def run_eval(arch: str, out: Path, content: Path, style: Path, size: int, pairs: int, *, weights: Path | None,
             variant: str | None, seed: int, figures: bool) -> Path:
    """`eval.run` in-process (its stdout summary goes to <out>.log); returns its pairs.csv (resumes)."""
    from eval.score import run as eval_run  # noqa: PLC0415
    argv = ["--arch", arch, "--content-dir", str(content), "--style-dir", str(style), "--pairs", str(pairs),
            "--size", str(size), "--out", str(out), "--seed", str(seed), "--no-progress"]
    argv += ["--weights", str(weights)] if weights else []
    argv += ["--variant", variant] if variant else []
    argv += [] if figures else ["--no-figures"]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".log"), "w") as log, contextlib.redirect_stdout(log):
        status = eval_run.main(argv)
    if status != 0:
        raise SystemExit(f"error: eval.run {' '.join(argv)} failed with status {status}")
    return out / layout.PAIRS_CSV


SCRATCH = "scratch-"  # model name prefix of the from-scratch runs


def train_model(loss: str, scale: Scale, folders: dict[str, Path], workdir: Path, seed: int, *,
                scratch: bool = False) -> Path:
    """`scale.arch` trained with `loss` (from its release unless `from_release` is off); returns its params.npz.

    scratch: the mobile Magenta's transformer and style parameters from random init with the released style
    predictor frozen, for `scale.scratch_iterations` steps at `scale.scratch_learning_rate`.
    """
    from jax_ast import archs  # noqa: PLC0415
    from jax_ast.configs import default_config  # noqa: PLC0415
    from jax_ast.pretrained.params_file import PARAMS_FILE  # noqa: PLC0415
    from train.loop import train  # noqa: PLC0415
    options = {}
    if scratch:
        options = dict(reinitialise="style_params,transformer", freeze="style_predictor",
                       iterations=scale.scratch_iterations, learning_rate=scale.scratch_learning_rate)
    elif not scale.from_release:
        options = {name: "random" for name in ("mobile_weights",) if scale.variant == "mobile"}
    elif scale.arch != "magenta" or scale.variant != "mobile":
        raise SystemExit(f"error: only the mobile Magenta is installed with released weights; train "
                         f"{archs.get(scale.arch).display_name} with --from-scratch")
    schedule = dict(iterations=scale.iterations, learning_rate=scale.learning_rate)
    schedule.update((k, options.pop(k)) for k in list(schedule) if k in options)
    every = schedule["iterations"]
    cfg = default_config(scale.arch, loss, variant=scale.variant, crop_size=scale.crop_size,
                         batch_size=scale.batch_size, lr_decay=scale.lr_decay,
                         content_dir=str(folders["train_content"]), style_dir=str(folders["train_style"]),
                         seed=seed, log_every=max(1, every // 24), sample_every=every, checkpoint_every=every,
                         **schedule, **options)
    train(cfg, workdir)
    return workdir / PARAMS_FILE


def metric_rows(metrics: Path) -> list[dict]:
    """The rows of a training run's metrics.jsonl (a line that is not JSON is skipped)."""
    rows = []
    for line in metrics.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            rows.append(json.loads(line))
    return rows


def read_curves(run: str, metrics: Path) -> list[dict]:
    """curves.csv rows (run, step, loss, content, style) from a training run's metrics.jsonl."""
    return [{"run": run, "step": row["step"], "loss": row["train/loss"], "content": row["train/content"],
             "style": row["train/style"]} for row in metric_rows(metrics) if "train/loss" in row]


def style_weight_of(metrics: Path) -> float | None:
    """The style weight logged at step 0 (beta as calibrated for classic/balanced; None if not logged)."""
    return next((float(row["style_weight"]) for row in metric_rows(metrics) if "style_weight" in row), None)


def deception(classifier: Path, eval_dir: Path, artist_from: str) -> dict:
    """`eval.deception` on one eval.run folder (kept from an earlier run of the same workdir)."""
    from eval.deception import rate  # noqa: PLC0415
    result_path = eval_dir / layout.DECEPTION_JSON
    if not result_path.exists():
        with open(eval_dir.with_suffix(".deception.log"), "w") as log, contextlib.redirect_stdout(log):
            status = rate.main(["--classifier", str(classifier), "--pairs-from", str(eval_dir),
                                "--artist-from", artist_from])
        if status != 0:
            raise SystemExit(f"error: eval.deception on {eval_dir} failed with status {status}")
    return records.read_json(result_path)


def train_classifier(scale: Scale, style_dir: Path, workdir: Path, seed: int) -> Path:
    """The artist classifier (frozen ImageNet VGG-16, pooled head), one class per painting of `style_dir`."""
    from eval.deception.classifier import ClassifierConfig, train  # noqa: PLC0415
    if not (workdir / layout.CLASSIFIER_NPZ).exists():
        with open(workdir.with_suffix(".log"), "w") as log, contextlib.redirect_stdout(log):
            train(ClassifierConfig(data_dir=str(style_dir), steps=scale.classifier_steps, size=scale.classifier_size,
                                   seed=seed, checkpoint_every=scale.classifier_steps,
                                   log_every=max(1, scale.classifier_steps // 6)), workdir)
    return workdir / layout.CLASSIFIER_NPZ


def machine_info() -> dict[str, str]:
    import jax  # noqa: PLC0415
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), model)
    return {"machine": f"{platform.system()} {platform.machine()}, {model}",
            "cores": str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()),
            "jax": jax.__version__, "backend": f"{jax.device_count()} {jax.default_backend()} device(s)",
            "load_average": " / ".join(f"{x:.1f}" for x in os.getloadavg())}


class Results:
    """The rows of the summary CSVs, gathered as the stages run."""

    def __init__(self, out: Path):
        self.out, self.layers = out, None
        self.runs, self.styles, self.pearson, self.curves, self.deception = [], [], [], [], []

    def record(self, run: str, model: str, pairs_set: str, size: int, csv_path: Path, *, seed: int | str = "",
               keep=None) -> dict:
        """Summarises one eval.run pairs.csv (only the styles `keep` accepts, if given); copies it to pairs/."""
        pairs = report.read_pairs(csv_path)
        if keep is not None:
            mask = np.asarray([keep(name) for name in pairs["style"]])
            pairs = {name: column[mask] for name, column in pairs.items()}
        self.layers = self.layers or [c.split("/")[1] for c in pairs if c.startswith("balanced/")
                                      and c != "balanced/total"]
        row, style_rows, r = report.summarize_run(run, model, pairs_set, size, pairs, self.layers)
        row["seed"] = seed
        self.runs.append(row), self.styles.extend(style_rows), self.pearson.append(r)
        target = self.out / layout.REPRODUCE_PAIRS_DIR / f"{report.run_file_stem(run)}.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        if keep is None:
            shutil.copyfile(csv_path, target)
        else:
            records.write_table(target, [r for r in records.read_table(csv_path) if keep(r["style"])])
        return row

    def write(self) -> None:
        records.write_table(self.out / layout.RUNS_CSV, self.runs, report.RUN_COLUMNS)
        records.write_table(self.out / layout.PER_STYLE_CSV, self.styles)
        records.write_table(self.out / layout.PEARSON_CSV, self.pearson)
        records.write_table(self.out / layout.CURVES_CSV, self.curves, report.CURVE_COLUMNS)
        records.write_table(self.out / layout.DECEPTION_CSV, self.deception, report.DECEPTION_COLUMNS)
        records.write_table(self.out / layout.IMBALANCE_CSV, report.imbalance_rows(self.styles, self.runs),
                            report.IMBALANCE_COLUMNS)
        report.write_paper_csv(self.out)


def _n_pairs(folders: dict[str, Path], content_key: str, style_key: str, requested: int | None) -> int:
    total = len(list(folders[content_key].iterdir())) * len(list(folders[style_key].iterdir()))
    return requested or min(total, MAX_PAIRS)


def run(args: argparse.Namespace, scale: Scale, argv: list[str]) -> Path:
    start = time.perf_counter()
    info = {"command": " ".join(["python -m eval.reproduce", *argv]), "scale": args.scale, "seed": str(args.seed),
            **machine_info()}
    out, work = args.out, args.workdir or Path("workdir") / f"reproduce-{args.scale}"
    figures_on = scale.figures and not args.no_figures
    out.mkdir(parents=True, exist_ok=True)
    folders, split_rows = make_split(args, scale, work)
    records.write_table(out / layout.SPLIT_CSV, split_rows)
    results, seconds = Results(out), {}
    paintings = {p.name for p in folders["all_style"].iterdir()}
    stress = "stress_style" in folders

    def timed(stage: str):
        tic = time.perf_counter()
        return lambda: seconds.__setitem__(stage, seconds.get(stage, 0.0) + time.perf_counter() - tic)

    # 1. analysis: baselines and the released network on every pair (paintings and, apart, with stress styles)
    analysis_styles = folders["all_style_stress" if stress else "all_style"]
    analysis_pairs = _n_pairs(folders, "all_content", "all_style_stress" if stress else "all_style",
                              args.analysis_pairs)
    info.update(analysis_pairs=str(analysis_pairs), analysis_size=str(scale.analysis_size))
    for name in (*BASELINES, RELEASED):
        done = timed(f"analysis {name}")
        arch, weights, variant = ((scale.arch, None, scale.variant) if name == RELEASED else (name, None, None))
        csv_path = run_eval(arch, work / layout.WORK_EVAL_DIR / f"analysis-{name}", folders["all_content"],
                            analysis_styles, scale.analysis_size, analysis_pairs, weights=weights, variant=variant,
                            seed=args.seed, figures=figures_on and name == BASELINES[0])
        results.record(name, name, "all pairs", scale.analysis_size, csv_path, keep=lambda s: s in paintings)
        if stress and name != "copy-style":
            results.record(f"{name} + stress", name, "all pairs + stress styles", scale.analysis_size, csv_path)
        done()
    identity_scatter = work / layout.WORK_EVAL_DIR / "analysis-identity" / layout.FIGURES_DIR / layout.SCATTER_BOUND_PNG
    if figures_on and identity_scatter.exists():
        (out / layout.FIGURES_DIR).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(identity_scatter, out / layout.FIGURES_DIR / layout.IDENTITY_SCATTER_PNG)

    # 2-4. fine-tune with each loss, evaluate, deception rate; appendix seeds afterwards, timed apart
    classifier = args.classifier
    if args.style_dir and classifier is None and not args.no_deception:
        print("note: no deception rate: with --style-dir, give --classifier (one trained on those artists)")
    elif classifier is None and not args.no_deception:
        done = timed("artist classifier")
        classifier = train_classifier(scale, folders["all_style"], work / "classifier", args.seed)
        done()
    weights = {}
    for seed in (args.seed, *args.appendix_seeds):
        main_seed = seed == args.seed
        suffix = "" if main_seed else f"-seed{seed}"
        models = {RELEASED: None} if main_seed else {}
        for loss in args.losses:
            done = timed(f"train {loss}" if main_seed else "appendix seeds")
            run_dir = work / layout.WORK_TRAIN_DIR / f"{loss}{suffix}"
            models[loss] = train_model(loss, scale, folders, run_dir, seed)
            results.curves += read_curves(f"{loss}{suffix}", run_dir / "metrics.jsonl")
            info[f"style weight {loss}{suffix}"] = f"{style_weight_of(run_dir / 'metrics.jsonl') or 'fixed'}"
            done()
        scratch_ok = main_seed and scale.scratch_iterations > 0 and scale.arch == "magenta" and scale.variant == "mobile"
        for loss in scale.scratch_losses if scratch_ok else ():
            done = timed(f"train {SCRATCH}{loss}")
            run_dir = work / layout.WORK_TRAIN_DIR / f"{SCRATCH}{loss}"
            models[SCRATCH + loss] = train_model(loss, scale, folders, run_dir, seed, scratch=True)
            results.curves += read_curves(SCRATCH + loss, run_dir / "metrics.jsonl")
            done()
        if main_seed:
            weights = dict(models)
            models = {"identity": None, **models}
        for tag, (title, content_key, style_key) in EVAL_SETS.items():
            if style_key not in folders or (not main_seed and tag == "stress"):
                continue
            n_pairs = _n_pairs(folders, content_key, style_key, args.eval_pairs)
            for model, checkpoint in models.items():
                done = timed(f"eval {model}" if main_seed else "appendix seeds")
                arch, variant = (model, None) if model in BASELINES else (scale.arch, scale.variant)
                eval_dir = work / layout.WORK_EVAL_DIR / f"{model}{suffix}-{tag}"
                csv_path = run_eval(arch, eval_dir, folders[content_key], folders[style_key], scale.eval_size,
                                    n_pairs, weights=checkpoint, variant=variant, seed=args.seed, figures=False)
                results.record(f"{model}{suffix} ({tag})", model, title, scale.eval_size, csv_path,
                               seed=seed if model != "identity" else "")
                done()
                if classifier is not None and not args.no_deception and tag in DECEPTION_SETS and main_seed:
                    done = timed("deception")
                    result = deception(classifier, eval_dir, args.artist_from)
                    results.deception.append(report.deception_row(model, title, result))
                    done()
        if main_seed:
            info["main_stages_seconds"] = f"{time.perf_counter() - start:.0f}"

    # 5. figures
    if figures_on:
        done = timed("figures")
        grid_styles = sorted(folders["test_style"].iterdir())[:FIGURE_ROWS]
        grid_styles += sorted(folders["stress_style"].iterdir())[:FIGURE_STRESS_ROWS] if stress else []
        grid_models = {name: (scale.arch, str(path) if path else None, scale.variant) for name, path in weights.items()}
        figures.outputs_grid(out / layout.FIGURES_DIR / layout.OUTPUTS_PNG, grid_models,
                             sorted(folders["test_content"].iterdir())[0], grid_styles, scale.eval_size)
        done()
    results.write()
    if figures_on:
        report.write_figures(out, main_seed=args.seed)
    wall = time.perf_counter() - start
    appendix = seconds.get("appendix seeds", 0.0)
    info.update(training=f"{scale.iterations} steps per loss, batch {scale.batch_size}, {scale.crop_size} px crops, "
                         f"Adam lr {scale.learning_rate:g}, decay {scale.lr_decay:g}, "
                         f"{'from the released weights' if scale.from_release else 'from random initialisation'}; "
                         f"evaluated at {scale.eval_size} px",
                network=f"{scale.arch}" + (f" --variant {scale.variant}" if scale.variant else ""),
                scratch=(f"{', '.join(scale.scratch_losses)}: {scale.scratch_iterations} steps at Adam lr "
                         f"{scale.scratch_learning_rate:g}, transformer and style parameters from random init, the "
                         "released style predictor frozen" if any(m.startswith(SCRATCH) for m in weights) else ""),
                wall_time=f"{(wall - appendix) / 60:.1f} min", wall_seconds=f"{wall - appendix:.0f}",
                appendix_seeds=",".join(str(s) for s in args.appendix_seeds),
                appendix_time=f"{appendix / 60:.1f} min",
                finished=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                **{f"seconds {k}": f"{v:.0f}" for k, v in seconds.items()})
    report.write_info(out, info)
    return write_markdown(out, info)


def write_markdown(out: Path, info: dict[str, str]) -> Path:
    """<out>.md from the CSVs in <out>/, with <out>/discussion.md (hand-written) appended if present."""
    discussion = out / layout.DISCUSSION_MD
    text = report.markdown(out, out.name, info, discussion.read_text() if discussion.exists() else None)
    path = out.parent / f"{out.name}.md"
    path.write_text(text)
    return path


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.losses = [loss.strip() for loss in args.losses.split(",") if loss.strip()]
    if not args.losses or set(args.losses) - set(LOSSES):
        parser.error(f"--losses must name some of {', '.join(LOSSES)}, got {args.losses}")
    try:
        args.appendix_seeds = [int(s) for s in args.appendix_seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--appendix-seeds must be comma-separated integers, got {args.appendix_seeds!r}")
    if args.seed in args.appendix_seeds:
        parser.error(f"--appendix-seeds must differ from --seed {args.seed}")
    if args.report_only:
        info = {row["key"]: row["value"] for row in records.read_table(args.out / layout.RUN_INFO_CSV)}
        if (args.out / layout.FIGURES_DIR).is_dir() and not args.no_figures:
            report.write_figures(args.out, main_seed=args.seed)
        print(f"wrote {write_markdown(args.out, info)}")
        return 0
    scale = SCALES[args.scale]
    overrides = {k: getattr(args, k) for k in ("iterations", "crop_size", "batch_size", "eval_size", "analysis_size",
                                               "test_contents", "test_styles", "learning_rate", "lr_decay",
                                               "classifier_steps", "scratch_iterations", "arch", "variant")
                 if getattr(args, k) is not None}
    if args.from_scratch:
        overrides["from_release"] = False
    if "arch" in overrides and "variant" not in overrides:
        overrides["variant"] = None
    scale = dataclasses.replace(scale, **overrides)
    from jax_ast import archs  # noqa: PLC0415
    if scale.arch not in archs.names():
        parser.error(f"--arch must be one of {', '.join(archs.names())}, got {scale.arch!r}")
    from jax_ast.xla_flags import prefer_fast_cpu_convolutions  # noqa: PLC0415
    prefer_fast_cpu_convolutions()  # before JAX starts
    import logging  # noqa: PLC0415
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)
    path = run(args, scale, argv)
    print(f"wrote {path}")
    return 0
