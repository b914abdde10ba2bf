"""Train a style-transfer network:  python -m train.run --arch linear --loss balanced [--workdir DIR] [...]

Every flag is generated from a field of `jax_ast.configs.TrainConfig` (`--style-weight` for
`style_weight`, ...); flags left out take the architecture's original defaults
(`jax_ast.configs.default_config`). With no data flags the sample images bundled with the package are
used. Rerunning with the same --workdir resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import types
import typing
from typing import Any

from jax_ast.configs import ARCHS, ENCODERS, LOSS_NETWORKS, LOSSES, PRESETS, STAGES, TrainConfig, default_config

DEFAULT_WORKDIR = "workdir"
CHOICES = {"arch": ARCHS, "loss": LOSSES, "stage": STAGES, "variant": ("r41", "r31"), "encoder": ENCODERS,
           "loss_network": LOSS_NETWORKS}
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
    "pretrained": "original release files (directory) or a native params .npz to start from",
    "content_dir": "folder of content images (recursive); default: bundled samples",
    "style_dir": "folder of style images (recursive), e.g. Painter by Numbers train/; default: bundled samples",
    "content_tfds": "tfds dataset for content images, e.g. coco/2017 (needs tensorflow for coco)",
    "distributed": "multi-host: call jax.distributed.initialize() first",
    "decoder_learning_rate": "learning rate of LinearTransfer's decoder pre-training (default: --learning-rate)",
}


def _flag_type(field: dataclasses.Field) -> Any:
    hint = typing.get_type_hints(TrainConfig)[field.name]
    if isinstance(hint, types.UnionType):  # "str | None" -> str
        hint = next(t for t in typing.get_args(hint) if t is not type(None))
    return hint


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR, help="checkpoints, metrics, samples (resumes)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="a named schedule applied over the arch's original recipe (flags still win); "
                             + "; ".join(f"{name}: {', '.join(f'{k}={v}' for k, v in values.items())}"
                                         for name, values in PRESETS.items()))
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        kind = _flag_type(field)
        help_text = HELP.get(field.name, "") + f" (default: {field.default!r}, or the arch's original)"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=None, choices=CHOICES.get(field.name), help=help_text)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f.name) is not None and f.name not in ("arch", "loss")}
    return default_config(args.arch or TrainConfig.arch, args.loss or TrainConfig.loss, preset=args.preset,
                          **overrides)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # orbax logs every save step by step at INFO through absl
        logging.getLogger("absl").setLevel(logging.WARNING)
    try:
        cfg = config_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    from jax_ast.xla_flags import prefer_fast_cpu_convolutions  # noqa: PLC0415

    prefer_fast_cpu_convolutions()
    from train import parallel  # noqa: PLC0415 - JAX starts here, after the flags are known to be valid

    parallel.initialize_distributed(cfg.distributed)
    import jax  # noqa: PLC0415

    from jax_ast.data import DataError  # noqa: PLC0415
    from jax_ast.pretrained import WeightsError  # noqa: PLC0415
    from train.loop import WorkdirError, train  # noqa: PLC0415

    logging.info("devices: %d local, %d global, %d processes (%s)", jax.local_device_count(), jax.device_count(),
                 jax.process_count(), jax.devices()[0].platform)
    try:
        metrics = train(cfg, args.workdir)
    except (WorkdirError, DataError, WeightsError, FileNotFoundError, NotADirectoryError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")  # a runtime problem: no usage dump
    except FloatingPointError as error:
        parser.exit(1, f"{parser.prog}: stopped: {error}; the last good checkpoint is kept in {args.workdir}\n")
    logging.info("finished: %s", {k: round(v, 6) for k, v in metrics.items() if "/" not in k})
    return 0


if __name__ == "__main__":
    sys.exit(main())
