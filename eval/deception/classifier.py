"""Train and serve the artist classifier of the deception rate (docs/deception.md).

    python -m eval.artist_classifier train --data-dir PAINTINGS --workdir runs/artists [--labels subfolder|csv|file]

Trains `jax_ast.models.artist.ArtistClassifier` (pooled head on the ImageNet VGG-16, frozen by default; ``--train-from
conv4_1`` fine-tunes from that conv on) on random crops, data-parallel over the local devices
(`jax_ast.parallel`), with orbax checkpoints (rerunning the same command resumes; other settings are refused),
``metrics.jsonl`` and a held-out report. Without ``--data-dir`` it trains the demonstration: every bundled
painting is an "artist", the right quarter of each is held out. The workdir ends with ``classifier.npz``
(params + class list + held-out accuracy), ``heldout.json``/``.md`` (top-1/top-5 overall and per artist).

Exit status (`eval.common.guards`): 0 done; 2 usage or input error before anything is written (bad flag, missing
folder, too few works, a workdir holding another run); 3 an output could not be written.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import typing
from pathlib import Path
from typing import Any, Iterable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from eval.common import guards, layout, records
from eval.deception import data as artist_data
from jax_ast import parallel
from jax_ast.data import DataError, bundled_dir
from jax_ast.locking import LockedError, exclusive_lock
from jax_ast.models.artist import ArtistClassifier, merge_params, split_backbone
from jax_ast.models.vgg import conv_names
from jax_ast.pretrained import load_params, load_vgg, save_params
from train.checkpointing import Checkpointer, CheckpointError, CheckpointSaveError
from train.metrics import MetricsWriter, ProgressReporter, check_finite

BACKBONE = "vgg16_caffe"  # the Oxford ImageNet VGG-16 as released (max pooling), as in Sanakoyeu et al.


@dataclasses.dataclass(frozen=True, slots=True)
class ClassifierConfig:
    """Everything that fixes a classifier run (checked on resume, except `steps` and the intervals)."""

    data_dir: str | None = None  # None: the bundled paintings, one "artist" each
    labels: str = "file"  # subfolder | csv | file (artist_data.LABEL_SOURCES)
    info_csv: str | None = None  # Painter by Numbers train_info.csv for labels=csv
    min_works: int = 1  # the protocol keeps artists with >= 50 works
    split: str = "region"  # image | region (artist_data.SPLITS)
    holdout: float = 0.25
    train_from: str = "none"  # "none": frozen VGG-16, head only; "conv4_1": fine-tune conv4_1 and later
    size: int = 64  # crop side; stylised images are resized to it
    scale_min: float = 1.0  # crops come from the painting resized to shorter side size * U(scale_min, scale_max)
    scale_max: float = 2.0
    batch_size: int = 16
    steps: int = 300
    learning_rate: float = 1e-3
    backbone_learning_rate: float = 1e-5
    weight_decay: float = 1e-4
    dropout: float = 0.2
    eval_crops: int = 8
    seed: int = 0
    vgg_weights: str | None = None  # None: the installed ImageNet VGG-16; "random" for plumbing tests only
    log_every: int = 50
    checkpoint_every: int = 100

    def __post_init__(self):
        problems = []
        if self.labels not in artist_data.LABEL_SOURCES:
            problems.append(f"labels must be one of {artist_data.LABEL_SOURCES}, got {self.labels!r}")
        if self.split not in artist_data.SPLITS:
            problems.append(f"split must be one of {artist_data.SPLITS}, got {self.split!r}")
        if self.labels == "file" and self.split != "region":
            problems.append("labels 'file' (one work per artist) needs split 'region'")
        if self.train_from != "none" and self.train_from not in conv_names(BACKBONE):
            problems.append(f"train_from must be 'none' or a conv of {', '.join(conv_names(BACKBONE))}")
        if not 0.0 < self.holdout < 1.0:
            problems.append(f"holdout must be in (0, 1), got {self.holdout}")
        if not 1.0 <= self.scale_min <= self.scale_max:
            problems.append(f"need 1 <= scale_min <= scale_max, got {self.scale_min}, {self.scale_max}")
        for name in ("size", "batch_size", "steps", "eval_crops", "min_works", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.size < 32:
            problems.append(f"size must be >= 32 (VGG-16 pools 4 times before relu5_3), got {self.size}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def frozen_convs(self) -> int:
        names = conv_names(BACKBONE)
        return len(names) if self.train_from == "none" else names.index(self.train_from)


RESUMABLE = ("steps", "log_every", "checkpoint_every")


@flax.struct.dataclass
class ClassifierState:
    step: jax.Array
    params: Any  # trainable: the head and the backbone convs from train_from on
    opt_state: Any
    rng: jax.Array  # uint32[2] key data


def make_optimizer(cfg: ClassifierConfig) -> optax.GradientTransformation:
    """AdamW: `learning_rate` for the head, `backbone_learning_rate` for fine-tuned convs."""
    head = optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay)
    backbone = optax.adamw(cfg.backbone_learning_rate, weight_decay=cfg.weight_decay)
    labels = lambda params: {k: jax.tree.map(lambda _: "backbone" if k == "backbone" else "head", v)
                             for k, v in params.items()}
    return optax.multi_transform({"head": head, "backbone": backbone}, labels)


def train_step(state: ClassifierState, batch: dict, frozen: dict, *, model: ArtistClassifier,
               optimizer: optax.GradientTransformation):
    """One step on this device's shard; gradients and metrics averaged over `parallel.AXIS`.
    RNG: fold_in(state.rng, step), then the device index (dropout)."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step),
                             lax.axis_index(parallel.AXIS))
    images = batch["images"].astype(jnp.float32) / 255.0

    def loss_fn(trainable):
        logits = model.apply({"params": merge_params(trainable, frozen)}, images, train=True, rngs={"dropout": key})
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"])
        return jnp.mean(loss), jnp.mean(jnp.argmax(logits, -1) == batch["labels"])

    (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    grads = lax.pmean(grads, parallel.AXIS)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = lax.pmean({"train/loss": loss, "train/top1": accuracy}, parallel.AXIS)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


@functools.lru_cache(maxsize=8)
def _parallel_logits(model: ArtistClassifier):
    return parallel.pmap(lambda variables, images: model.apply(variables, images.astype(jnp.float32) / 255.0),
                         in_axes=(None, 0))


def predict(model: ArtistClassifier, params: dict, images: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
    """float32 logits [N, classes] of uint8 images [N, S, S, 3], in device-sharded steps."""
    n_devices = jax.local_device_count()
    step = max(n_devices, -(-batch_size // n_devices) * n_devices)
    variables = parallel.replicate_variables({"params": params})
    return parallel.run_in_steps(_parallel_logits(model), variables, (np.asarray(images, np.uint8),), step)


def topk_report(logits: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """top-1/top-5 overall and top-1 per class (with counts) of logits against integer labels."""
    order = np.argsort(-logits, axis=1)
    top1 = order[:, 0] == labels
    top5 = (order[:, :5] == labels[:, None]).any(axis=1)
    per_class = {name: {"top1": float(top1[labels == i].mean()), "n": int((labels == i).sum())}
                 for i, name in enumerate(classes) if (labels == i).any()}
    return {"top1": float(top1.mean()), "top5": float(top5.mean()), "n": int(labels.size), "per_class": per_class}


def heldout_markdown(report: dict) -> str:
    rows = "\n".join(f"| {name} | {v['top1']:.3f} | {v['n']} |" for name, v in report["per_class"].items())
    return (f"# Artist classifier, held-out paintings\n\ntop-1 {report['top1']:.4f}, top-5 {report['top5']:.4f} "
            f"over {report['n']} crops\n\n| artist | top-1 | crops |\n| --- | --- | --- |\n{rows}\n")


def _data(cfg: ClassifierConfig):
    root = Path(cfg.data_dir) if cfg.data_dir else bundled_dir("style")
    classes, works = artist_data.discover(root, labels=cfg.labels, info_csv=cfg.info_csv, min_works=cfg.min_works)
    train, heldout = artist_data.split_works(classes, works, mode=cfg.split, holdout=cfg.holdout, seed=cfg.seed)
    return classes, train, heldout, artist_data.PaintingCache(int(cfg.size * cfg.scale_max))


def _initial(cfg: ClassifierConfig, n_classes: int):
    model = ArtistClassifier(num_classes=n_classes, dropout=cfg.dropout, variant=BACKBONE)
    _, vgg_params = load_vgg(BACKBONE, cfg.vgg_weights, taps=model.taps, seed=cfg.seed)
    params = _random_head(model, cfg.size, cfg.seed)
    params["backbone"] = dict(vgg_params)
    return model, split_backbone(params, cfg.frozen_convs, BACKBONE)


def _random_head(model: ArtistClassifier, size: int, seed: int) -> dict:
    """`model.init`'s params for ``PRNGKey(seed)`` without the backbone (`load_vgg` gives it), bit for bit, as
    one compiled program: XLA drops the backbone's random numbers and the forward pass. About 1 s here, against
    6.8 s for the eager init. XLA's default options keep the eager rounding (`FAST_COMPILE` would not), so a
    classifier trains from the same numbers as before."""
    probe = jnp.zeros((1, size, size, 3), jnp.float32)

    def head(key):
        params = dict(model.init(key, probe)["params"])
        del params["backbone"]
        return params

    return dict(jax.jit(head)(jax.random.PRNGKey(seed)))


def _check_workdir(workdir: Path, cfg: ClassifierConfig) -> None:
    path = workdir / layout.CLASSIFIER_CONFIG_JSON
    if not path.exists():
        if workdir.is_dir() and any(p.name != ".lock" for p in workdir.iterdir()):
            raise DataError(f"{workdir} holds other files but no {layout.CLASSIFIER_CONFIG_JSON}; use a new or "
                            "empty --workdir")
        return
    previous = records.read_json(path)
    now = records.json_roundtrip(dataclasses.asdict(cfg))
    differing = [k for k in now if k not in RESUMABLE and previous.get(k) != now[k]]
    if differing:
        raise DataError(f"{workdir} holds a classifier run with other settings ("
                        + "; ".join(f"{k}: {previous.get(k)!r} there, {now[k]!r} now" for k in differing)
                        + "); use another --workdir")


def train(cfg: ClassifierConfig, workdir: str | Path) -> dict:
    """Train (or resume) into `workdir`; returns the held-out report."""
    workdir = Path(workdir)
    _check_workdir(workdir, cfg)
    classes, train_works, heldout_works, cache = _data(cfg)
    if cfg.batch_size % jax.local_device_count():
        raise ValueError(f"batch_size {cfg.batch_size} must divide by the {jax.local_device_count()} devices")
    model, (trainable, frozen) = _initial(cfg, len(classes))
    optimizer = make_optimizer(cfg)
    state = ClassifierState(step=jnp.zeros((), jnp.int32), params=trainable, opt_state=optimizer.init(trainable),
                            rng=jax.random.key_data(jax.random.PRNGKey(cfg.seed)))
    workdir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(workdir / ".lock", what=f"workdir {workdir}"):
        records.write_json(workdir / layout.CLASSIFIER_CONFIG_JSON, {**dataclasses.asdict(cfg), "classes": classes})
        checkpointer = Checkpointer(workdir / "checkpoints")
        try:
            start = checkpointer.latest_step() or 0
            if start:
                state, _ = checkpointer.restore(start, state)
            state = _loop(cfg, model, optimizer, state, frozen, train_works, cache, checkpointer, workdir, start)
        finally:
            checkpointer.close()
        params = merge_params(jax.device_get(state.params), jax.device_get(frozen))
        images, labels = artist_data.eval_crops(heldout_works, cache, size=cfg.size, crops_per_work=cfg.eval_crops,
                                                scales=(cfg.scale_min, cfg.scale_max), seed=cfg.seed)
        report = topk_report(predict(model, params, images), labels, classes)
        records.write_json(workdir / layout.HELDOUT_JSON, report)
        records.write_text(workdir / layout.HELDOUT_MD, heldout_markdown(report))
        save_params(workdir / layout.CLASSIFIER_NPZ, params, meta={
            "kind": "artist_classifier", "classes": classes, "head": model.head, "variant": BACKBONE,
            "taps": list(model.taps), "size": cfg.size, "config": dataclasses.asdict(cfg), "heldout": report,
            "step": int(jax.device_get(state.step))})
    return report


def _loop(cfg, model, optimizer, state, frozen, works, cache, checkpointer, workdir, start):
    step_fn = parallel.pmap_step(functools.partial(train_step, model=model, optimizer=optimizer))
    replicated, replicated_frozen = parallel.replicate(state), parallel.replicate(frozen)
    scales = (cfg.scale_min, cfg.scale_max)
    with MetricsWriter(workdir, tensorboard=False) as writer, \
            ProgressReporter(cfg.steps, initial_step=start, images_per_step=cfg.batch_size) as progress:
        for step in range(start, cfg.steps):
            batch = artist_data.train_batch(works, cache, step=step, seed=cfg.seed, batch_size=cfg.batch_size,
                                            size=cfg.size, scales=scales)
            replicated, metrics = step_fn(replicated, parallel.shard(batch), replicated_frozen)
            parallel.sync_on_cpu(replicated)
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                scalars = parallel.unreplicate(metrics)
                check_finite(done, scalars)
                writer.write_scalars(done, scalars)
                progress.update(done, scalars)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                checkpointer.save(done, parallel.unreplicate(replicated), {"config": dataclasses.asdict(cfg)})
    return parallel.unreplicate(replicated)


def load_classifier(path: str | Path) -> tuple[ArtistClassifier, dict, dict]:
    """(model, params, meta) of a ``classifier.npz`` or a workdir holding one.

    Raises:
      FileNotFoundError: nothing there.  ValueError: a params file that is not an artist classifier.
    """
    path = Path(path)
    if path.is_dir():
        path = path / layout.CLASSIFIER_NPZ
    if not path.is_file():
        raise FileNotFoundError(f"no artist classifier at {path} (train one with python -m eval.artist_classifier "
                                "train, or pass a CompVis checkpoint with --class-list)")
    params, meta = load_params(path)
    if meta.get("kind") != "artist_classifier" or not meta.get("classes"):
        raise ValueError(f"{path} is a params file but not an artist classifier (no class list in its meta)")
    model = ArtistClassifier(num_classes=len(meta["classes"]), head=meta["head"], variant=meta["variant"],
                             taps=tuple(meta["taps"]), fc_width=meta.get("fc_width", 4096))
    return model, params, meta


def _flag_kind(name: str) -> Any:
    hint = typing.get_type_hints(ClassifierConfig)[name]
    return next((t for t in typing.get_args(hint) if t is not type(None)), hint)


def build_parser() -> argparse.ArgumentParser:
    parser = guards.Parser(prog="python -m eval.artist_classifier", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    trainer = commands.add_parser("train", help="train (or resume) an artist classifier")
    trainer.add_argument("--workdir", type=Path, required=True, help="checkpoints, metrics, classifier.npz")
    for field in dataclasses.fields(ClassifierConfig):
        trainer.add_argument("--" + field.name.replace("_", "-"), type=_flag_kind(field.name), default=field.default,
                             help=f"(default: {field.default!r})")
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        cfg = ClassifierConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ClassifierConfig)})
    except ValueError as error:
        parser.error(str(error))
    problem = guards.output_dir_problem(args.workdir)
    if problem:
        parser.error(f"--workdir {problem}")
    try:
        report = train(cfg, args.workdir)
    except (DataError, CheckpointError, LockedError, FileNotFoundError, ValueError) as error:
        print(guards.printable(f"error: {error}"), file=sys.stderr)
        return guards.EXIT_USAGE
    except (OSError, CheckpointSaveError) as error:
        print(guards.printable(f"error: {error}"), file=sys.stderr)
        return guards.EXIT_WRITE_FAILED
    print(json.dumps({k: report[k] for k in ("top1", "top5", "n")}))
    return guards.EXIT_OK

