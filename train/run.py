"""Train a style-transfer network:  python -m train.run --arch linear --loss balanced [--workdir DIR] [...]

Every flag is generated from a field of `jax_ast.configs.TrainConfig` (`--style-weight` for
`style_weight`, ...); flags left out take the architecture's original defaults
(`jax_ast.configs.default_config`). With no data flags the sample images bundled with the package are
used. Rerunning with the same --workdir resumes.

Exit status (every failure prints one line, `python -m train.run: error|stopped: ...`, no traceback):
  0    finished: all --iterations done, <workdir>/params.npz exported.
  1    diverged: a non-finite loss, gradient, update or parameter; the message names the last
       checkpoint left (they only hold finite values) or says that there is none.
  2    usage or input error: a bad flag value, a batch that does not split over the devices, an
       unusable, locked or mismatched workdir, missing or corrupt data, weights or checkpoints, a
       checkpoint saved over other data, --distributed without its environment. Found before the
       workdir is written (except data that turns bad mid-run).
  3    I/O failure while training (disk full, file-size limit, read-only files): the checkpoints
       saved before it are intact, the failed one leaves no temporary folder, and a rerun resumes from
       the last one (orbax's own records of the failure: --verbose).
  128+N  stopped by signal N (143 for SIGTERM, 130 for SIGINT): the current step finished and was
       checkpointed, nothing was exported; rerun the same command to resume. A second signal stops
       at once (130), keeping the checkpoints already complete.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
import signal
import sys
import types
import typing
from typing import Any

from jax_ast import archs
from jax_ast import compilation_cache
from jax_ast.configs import (ENCODERS, LOSS_NETWORKS, LOSSES, PARTS, PRESETS, STAGES, StyleWeight, TrainConfig,
                             default_config, flat_fields)
from jax_ast.precision import DTYPES

DEFAULT_WORKDIR = "workdir"
EXIT_DIVERGED, EXIT_USAGE, EXIT_IO = 1, 2, 3


def _choices() -> dict[str, tuple[str, ...]]:
    """The allowed values of the flags that have a fixed set, read when the parser is built (a plug-in
    registered after this module was imported is an --arch choice too)."""
    return {"arch": archs.names(), "loss": LOSSES, "stage": STAGES, "encoder": ENCODERS,
            "variant": tuple(dict.fromkeys(v for arch in archs.names() for v in archs.get(arch).variants)),
            "loss_network": LOSS_NETWORKS, "dtype": tuple(DTYPES)}


HELP = {
    "style_weight": "style weight (the paper's beta): a number or 'auto' (calibrated so beta*style ~ content)",
    "encoder": "frozen encoder: the original's VGG-19 file, or vgg16_normalised = the ImageNet VGG-16 installed "
               "with jax-ast, channels normalised like the originals' (train from scratch on it; no download)",
    "loss_network": "VGG-16 of the classic/balanced style term: vgg16_slim (Magenta's, avg pooling), "
                    "vgg16_caffe (max pooling; both the installed ImageNet weights) or vgg16 (torchvision, download)",
    "vgg_weights": "encoder VGG weights: a file, or 'random' (smoke tests only); default: the original's file "
                   "(cached/downloaded), or the installed ImageNet VGG-16 with --encoder vgg16_normalised",
    "loss_vgg_weights": "weights of --loss-network: a file or 'random'; default: the installed ImageNet VGG-16",
    "native_loss_weights": "native loss network (LinearTransfer vgg_r51.pth; Magenta and --encoder vgg16_normalised: "
                           "the installed ImageNet VGG-16)",
    "pretrained": "original release files (directory) or a params file (params.npz) to start from",
    "content_dir": "folder of content images (recursive); default: bundled samples",
    "style_dir": "folder of style images (recursive), e.g. Painter by Numbers train/; default: bundled samples",
    "content_tfds": "tfds dataset for content images, e.g. coco/2017 (needs tensorflow for coco)",
    "dtype": "compute dtype of the convolutions: bfloat16 for accelerators (params, optimizer state, Grams, "
             "norms, statistics and losses stay float32)",
    "distributed": "multi-host: call jax.distributed.initialize() first",
}  # a plug-in's options bring their own help (`metadata={"help": ...}`)


def _owner(part: str, name: str) -> type:
    """The dataclass that declares field `name`: a shared config part or a plug-in's options."""
    if part in PARTS:
        return PARTS[part]
    return next(archs.get(arch).options for arch in archs.names()
                if name in archs.options_fields(archs.get(arch)))


def _flag_type(part: str, field: dataclasses.Field) -> Any:
    hint = typing.get_type_hints(_owner(part, field.name))[field.name]
    if hint == StyleWeight:  # a number or "auto": parsed (with its own message) by the config
        return str
    if isinstance(hint, types.UnionType):  # "str | None" -> str
        hint = next(t for t in typing.get_args(hint) if t is not type(None))
    return hint


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line instead of the usage of ~50 flags."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {_one_line(message)} (see --help)\n")


def _one_line(text: str) -> str:
    """`text` on one line that any stream can print (undecodable file-name bytes shown as \\xNN)."""
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return " ".join(text.split())


def _flag_names(message: str) -> str:
    """Config field names in a validation message -> their flags ("learning_rate" -> "--learning-rate")."""
    names = "|".join(sorted(flat_fields(), key=len, reverse=True))
    return re.sub(rf"(?<![\w/.-])({names})(?![\w/])", lambda m: "--" + m.group(1).replace("_", "-"), message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m train.run", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR, help="checkpoints, metrics, samples (resumes)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    parser.add_argument(compilation_cache.FLAG, action="store_true", help=compilation_cache.FLAG_HELP)
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="a named schedule applied over the arch's original recipe (flags still win); "
                             + "; ".join(f"{name}: {', '.join(f'{k}={v}' for k, v in values.items())}"
                                         for name, values in PRESETS.items()))
    choices = _choices()
    for part, field in flat_fields().values():
        flag = "--" + field.name.replace("_", "-")
        kind = _flag_type(part, field)
        help_text = (field.metadata.get("help") or HELP.get(field.name, "")) + (
            f" (default: {field.default!r}, or the arch's original)")
        if part not in PARTS:  # a plug-in's option: the other networks check it, then ignore it
            owners = [arch for arch in archs.names() if field.name in archs.options_fields(archs.get(arch))]
            help_text += f"; --arch {' or '.join(owners)} only"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=None, choices=choices.get(field.name), help=help_text)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides = {name: getattr(args, name) for name in flat_fields()
                 if getattr(args, name) is not None and name not in ("arch", "loss")}
    defaults = TrainConfig()
    return default_config(args.arch or defaults.model.arch, args.loss or defaults.objective.loss, preset=args.preset,
                          **overrides)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # orbax logs every save step by step at INFO through absl
        logging.getLogger("absl").setLevel(logging.WARNING)
        # ... and other absl users (tfds) their warnings with tracebacks: one line each is enough.
        logging.getLogger("absl").addFilter(_drop_traceback)
    try:
        cfg = config_from_args(args)
    except ValueError as error:
        parser.error(_flag_names(str(error)))
    try:
        return _run(parser, cfg, args.workdir, use_compilation_cache=not args.no_compilation_cache)
    except KeyboardInterrupt:  # a second signal, or Ctrl-C before training started
        parser.exit(128 + signal.SIGINT, f"{parser.prog}: stopped at once; the checkpoints already complete "
                                         f"in {_one_line(str(args.workdir))} are kept\n")


def _drop_traceback(record: logging.LogRecord) -> bool:
    record.exc_info, record.exc_text, record.stack_info = None, None, None
    return True


def _run(parser: argparse.ArgumentParser, cfg: TrainConfig, workdir: str, *, use_compilation_cache: bool) -> int:
    from jax_ast.xla_flags import prefer_fast_cpu_convolutions  # noqa: PLC0415

    prefer_fast_cpu_convolutions()
    cache_folder = compilation_cache.enable(use_compilation_cache)
    if cache_folder is not None:
        logging.info("compiled programs are cached in %s (%s to turn that off)", cache_folder,
                     compilation_cache.FLAG)
    from jax_ast import parallel  # noqa: PLC0415 - JAX starts here, after the flags are known to be valid

    try:
        parallel.initialize_distributed(cfg.run.distributed)
    except RuntimeError as error:
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: --distributed: {_one_line(str(error))}\n")
    import jax  # noqa: PLC0415

    from jax_ast.data import DataError  # noqa: PLC0415
    from jax_ast.locking import LockedError  # noqa: PLC0415
    from jax_ast.errors import LoadError  # noqa: PLC0415 - WeightsError and CheckpointError
    from train.checkpointing import CheckpointSaveError, quiet_background_errors  # noqa: PLC0415
    from train.loop import TrainingStopped, UsageError, WorkdirError, train  # noqa: PLC0415

    quiet_background_errors()  # a failed save is reported once, by the CheckpointSaveError below
    logging.info("devices: %d local, %d global, %d processes (%s)", jax.local_device_count(), jax.device_count(),
                 jax.process_count(), jax.devices()[0].platform)
    try:
        metrics = train(cfg, workdir)
    except (UsageError, WorkdirError, LockedError, DataError, LoadError, FileNotFoundError,
            NotADirectoryError) as error:
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: {_one_line(str(error))}\n")  # no usage dump
    except FloatingPointError as error:
        parser.exit(EXIT_DIVERGED, f"{parser.prog}: stopped: {_one_line(str(error))}\n")
    except TrainingStopped as stopped:
        parser.exit(128 + stopped.signum, f"{parser.prog}: stopped: {_one_line(str(stopped))}\n")
    except (CheckpointSaveError, OSError) as error:
        parser.exit(EXIT_IO, f"{parser.prog}: error: {_one_line(str(error))}\n")
    logging.info("finished: %s", {k: round(v, 6) for k, v in metrics.items() if "/" not in k})
    return 0


if __name__ == "__main__":
    sys.exit(main())
