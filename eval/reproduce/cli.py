"""The paper's claims measured with real weights:  python -m eval.reproduce --out docs/reproduction [--scale cpu]

One command that (1) scores every content x style pair of the image folders with the identity and copy-style
baselines on the ImageNet VGG-16 loss network (spread, Pearson r, balanced range, Gram normalisations), (2)
trains AdaIN on the ImageNet VGG-16 encoder with the native, classic and balanced losses (same data, seed and
schedule) on a seeded train split, evaluates each on the held-out photos x held-out paintings (and held-out
photos x training paintings), and (3) writes ``<out>.md`` with the CSVs and figures under ``<out>/``.

Training runs in-process through `train.loop.train`, evaluation through `eval.run.main`; work files
(checkpoints, split folders of symlinks, the full `eval.run` outputs) go to ``--workdir``. Rerunning with the
same workdir resumes. A hand-written ``<out>/discussion.md``, if present, is included in the report.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Iterable

import numpy as np

from eval.inference.baselines import BASELINES
from eval.common import guards, layout, records
from eval.reproduce import report
from jax_ast.configs import LOSSES
FIGURE_ROWS = 6  # held-out styles shown in the outputs figure
MAX_PAIRS = 2000  # default cap on pairs per evaluation (COCO x WikiArt has billions; eval.run samples them)


@dataclasses.dataclass(frozen=True)
class Scale:
    """How big the experiment is. Images: at most max_* of each folder are used (None: all)."""

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


SCALES = {
    # End-to-end test of the command (tests/test_reproduce.py): seconds, numbers meaningless.
    "tiny": Scale(crop_size=32, batch_size=2, iterations=2, learning_rate=5e-4, lr_decay=0.0, eval_size=32,
                  analysis_size=32, test_contents=2, test_styles=2, max_contents=4, max_styles=4, figures=False),
    # A contended 2-core CPU in <= 25 minutes (like train's --preset cpu: lr 5e-4 without decay).
    "cpu": Scale(crop_size=64, batch_size=4, iterations=300, learning_rate=5e-4, lr_decay=0.0, eval_size=128,
                 analysis_size=128, test_contents=4, test_styles=4),
    # One GPU, about 10 minutes in all (estimated, not measured): AdaIN's original crop, batch, lr and decay.
    "gpu": Scale(crop_size=256, batch_size=8, iterations=5000, learning_rate=1e-4, lr_decay=5e-5, eval_size=256,
                 analysis_size=256, test_contents=4, test_styles=4),
}


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
                 "test_styles"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, help="override the scale's value")
    parser.add_argument("--learning-rate", type=float, help="override the scale's value")
    parser.add_argument("--lr-decay", type=float, help="override the scale's value (lr / (1 + decay * step))")
    parser.add_argument("--losses", default=",".join(LOSSES), help="comma-separated losses to train AdaIN with")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, training and pairing")
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
    """Folders all/train/test x content/style under `work`, and the split.csv rows (role, set, name)."""
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
    return folders, rows


def run_eval(arch: str, out: Path, content: Path, style: Path, size: int, pairs: int, *, weights: Path | None,
             seed: int, figures: bool) -> Path:
    """`eval.run` in-process (its stdout summary goes to <out>.log); returns its pairs.csv."""
    from eval.score import run as eval_run  # noqa: PLC0415
    argv = ["--arch", arch, "--content-dir", str(content), "--style-dir", str(style), "--pairs", str(pairs),
            "--size", str(size), "--out", str(out), "--seed", str(seed), "--no-progress"]
    argv += ["--weights", str(weights)] if weights else []
    argv += [] if figures else ["--no-figures"]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".log"), "w") as log, contextlib.redirect_stdout(log):
        status = eval_run.main(argv)
    if status != 0:
        raise SystemExit(f"error: eval.run {' '.join(argv)} failed with status {status}")
    return out / layout.PAIRS_CSV


def train_model(loss: str, scale: Scale, folders: dict[str, Path], workdir: Path, seed: int) -> Path:
    """AdaIN on the ImageNet VGG-16 encoder with `loss`; returns its params.npz."""
    from jax_ast.configs import default_config  # noqa: PLC0415
    from jax_ast.pretrained.params_file import PARAMS_FILE  # noqa: PLC0415
    from train.loop import train  # noqa: PLC0415
    every = max(1, scale.iterations // 10)
    cfg = default_config("adain", loss, encoder="vgg16_normalised", crop_size=scale.crop_size,
                         batch_size=scale.batch_size, iterations=scale.iterations,
                         learning_rate=scale.learning_rate, lr_decay=scale.lr_decay,
                         content_dir=str(folders["train_content"]), style_dir=str(folders["train_style"]),
                         seed=seed, log_every=every, sample_every=scale.iterations, checkpoint_every=scale.iterations)
    train(cfg, workdir)
    return workdir / PARAMS_FILE


def outputs_figure(path: Path, checkpoints: dict[str, Path], content: Path, styles: list[Path], size: int) -> Path:
    """Rows: styles; columns: content | style | one output per trained model, all at `size` px."""
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from eval.inference.batching import Stylizer  # noqa: PLC0415
    from eval.inference.loading import load_model  # noqa: PLC0415
    from eval.score.pairs import center_square  # noqa: PLC0415
    from jax_ast.data import FolderSource  # noqa: PLC0415

    def load(path: Path) -> np.ndarray:  # as eval.run loads pairs: uint8, shorter side resized, centre crop
        return center_square(FolderSource(path).load(0), size)

    photo = load(content).astype(np.float32) / 255.0
    paintings = np.stack([load(s) for s in styles]).astype(np.float32) / 255.0
    columns = {"content": np.repeat(photo[None], len(styles), 0), "style": paintings}
    for loss, checkpoint in checkpoints.items():
        model, variables = load_model("adain", str(checkpoint))
        stylizer = Stylizer(model, variables, batch_size=len(styles))
        columns[loss] = np.clip(np.asarray(stylizer.stylize(columns["content"], paintings)), 0.0, 1.0)
    fig, axes = plt.subplots(len(styles), len(columns), figsize=(1.6 * len(columns), 1.6 * len(styles)),
                             squeeze=False)
    for row, style in enumerate(styles):
        for col, (name, images) in enumerate(columns.items()):
            axes[row, col].imshow(images[row])
            axes[row, col].set_xticks([]), axes[row, col].set_yticks([])
            if row == 0:
                axes[row, col].set_title(name, fontsize=9)
        axes[row, 0].set_ylabel(style.stem[:20], fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


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


def run(args: argparse.Namespace, scale: Scale, argv: list[str]) -> Path:
    start = time.perf_counter()
    info = {"command": " ".join(["python -m eval.reproduce", *argv]), "scale": args.scale, **machine_info()}
    out, work = args.out, args.workdir or Path("workdir") / f"reproduce-{args.scale}"
    figures = scale.figures and not args.no_figures
    out.mkdir(parents=True, exist_ok=True)
    folders, split_rows = make_split(args, scale, work)
    records.write_table(out / layout.SPLIT_CSV, split_rows)
    n_all = {r: len(list(folders[f"all_{r}"].iterdir())) for r in ("content", "style")}
    analysis_pairs = args.analysis_pairs or min(n_all["content"] * n_all["style"], MAX_PAIRS)
    info.update(analysis_pairs=str(analysis_pairs), analysis_size=str(scale.analysis_size))
    layers = None
    rows, styles, pearson, seconds = [], [], [], {}

    def record(run_name: str, model: str, pairs_set: str, size: int, csv_path: Path) -> None:
        nonlocal layers
        pairs = report.read_pairs(csv_path)
        layers = layers or [c.split("/")[1] for c in pairs if c.startswith("balanced/") and c != "balanced/total"]
        row, style_rows, r = report.summarize_run(run_name, model, pairs_set, size, pairs, layers)
        rows.append(row), styles.extend(style_rows), pearson.append(r)
        target = out / layout.REPRODUCE_PAIRS_DIR / f"{run_name.replace(' (', '-').rstrip(')')}.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(csv_path, target)

    for baseline in BASELINES:  # the figures of the analysis come from the identity run
        tic = time.perf_counter()
        csv_path = run_eval(baseline, work / layout.WORK_EVAL_DIR / baseline, folders["all_content"],
                            folders["all_style"], scale.analysis_size, analysis_pairs, weights=None, seed=args.seed,
                            figures=figures and baseline == BASELINES[0])
        record(baseline, baseline, "all pairs", scale.analysis_size, csv_path)
        seconds[f"eval {baseline}"] = time.perf_counter() - tic
    identity_scatter = work / layout.WORK_EVAL_DIR / "identity" / layout.FIGURES_DIR / layout.SCATTER_BOUND_PNG
    if figures and identity_scatter.exists():
        (out / layout.FIGURES_DIR).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(identity_scatter, out / layout.FIGURES_DIR / layout.IDENTITY_SCATTER_PNG)
    checkpoints = {}
    for loss in args.losses:
        tic = time.perf_counter()
        checkpoints[loss] = train_model(loss, scale, folders, work / layout.WORK_TRAIN_DIR / loss, args.seed)
        seconds[f"train {loss}"] = time.perf_counter() - tic
    sets = {"held-out photos x held-out paintings": ("test_content", "test_style", "test"),
            "held-out photos x training paintings": ("test_content", "train_style", "trainstyles")}
    for pairs_set, (content_key, style_key, tag) in sets.items():
        n_pairs = len(list(folders[content_key].iterdir())) * len(list(folders[style_key].iterdir()))
        n_pairs = args.eval_pairs or min(n_pairs, MAX_PAIRS)
        for loss, checkpoint in checkpoints.items():
            tic = time.perf_counter()
            csv_path = run_eval("adain", work / layout.WORK_EVAL_DIR / f"{loss}-{tag}", folders[content_key],
                                folders[style_key], scale.eval_size, n_pairs, weights=checkpoint, seed=args.seed,
                                figures=False)
            record(f"{loss} ({tag})", loss, pairs_set, scale.eval_size, csv_path)
            seconds[f"eval {loss} {tag}"] = time.perf_counter() - tic
    if figures:
        tic = time.perf_counter()
        test_styles = sorted(folders["test_style"].iterdir())[:FIGURE_ROWS]
        outputs_figure(out / layout.FIGURES_DIR / layout.OUTPUTS_PNG, checkpoints,
                       sorted(folders["test_content"].iterdir())[0], test_styles, scale.eval_size)
        seconds["figure"] = time.perf_counter() - tic
    records.write_table(out / layout.RUNS_CSV, rows, report.RUN_COLUMNS)
    records.write_table(out / layout.PER_STYLE_CSV, styles)
    records.write_table(out / layout.PEARSON_CSV, pearson)
    report.write_paper_csv(out)
    wall = time.perf_counter() - start
    info.update(training=f"{scale.iterations} steps, batch {scale.batch_size}, {scale.crop_size} px crops, Adam lr "
                         f"{scale.learning_rate:g}, decay {scale.lr_decay:g}; evaluated at {scale.eval_size} px",
                wall_time=f"{wall / 60:.1f} min", wall_seconds=f"{wall:.0f}",
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
    if args.report_only:
        info = {row["key"]: row["value"] for row in records.read_table(args.out / layout.RUN_INFO_CSV)}
        print(f"wrote {write_markdown(args.out, info)}")
        return 0
    scale = SCALES[args.scale]
    overrides = {k: getattr(args, k) for k in ("iterations", "crop_size", "batch_size", "eval_size", "analysis_size",
                                               "test_contents", "test_styles", "learning_rate", "lr_decay")
                 if getattr(args, k) is not None}
    scale = dataclasses.replace(scale, **overrides)
    from jax_ast.xla_flags import prefer_fast_cpu_convolutions  # noqa: PLC0415
    prefer_fast_cpu_convolutions()  # before JAX starts
    import logging  # noqa: PLC0415
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)
    path = run(args, scale, argv)
    print(f"wrote {path}")
    return 0

