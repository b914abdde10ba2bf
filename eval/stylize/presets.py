"""What `eval.stylize` can run without being told: `--list-archs` and the bare command's defaults.

A bare ``python -m eval.stylize`` stylises the bundled sample images with the model that README's main
command trains (`README_MODEL`); when that model is not there yet it prints the command that trains it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from eval.common import guards
from jax_ast import archs
from jax_ast.archs import ARCHS
from jax_ast.data.sources import bundled_dir
from jax_ast.pretrained.params_file import PARAMS_FILE


# README's main command (Quick start), without the interpreter; tests/test_stylize_controls.py checks that
# README.md still holds it.
README_TRAIN_COMMAND = ("python -m train.run --arch linear --loss balanced --preset cpu "
                        "--workdir workdir/linear-balanced")


@dataclasses.dataclass(frozen=True)
class Preset:
    """A complete set of the run flags `--arch --weights --content --style --out` plus `--size`."""

    arch: str
    weights: Path
    content: Path
    style: Path
    out: Path
    size: int
    train_command: str  # the command that writes `weights`

    def command(self) -> str:
        """The equivalent explicit command."""
        return (f"python -m eval.stylize --arch {self.arch} --weights {self.weights} --content {self.content} "
                f"--style {self.style} --size {self.size} --out {self.out}")


# The model README's main command exports, run on every bundled content x style at README's stylisation
# size (it was trained at 128 px; README stylises at 256). Paths are relative to the working directory,
# where README's commands run. The out folder differs from README's example so the two never collide.
README_MODEL = Preset(arch="linear", weights=Path("workdir/linear-balanced") / PARAMS_FILE,
                      content=bundled_dir("content"), style=bundled_dir("style"),
                      out=Path("out/linear-balanced-samples"), size=256, train_command=README_TRAIN_COMMAND)

RUN_FLAGS = ("arch", "weights", "content", "style", "out")


def missing_model_message(preset: Preset = README_MODEL) -> str:
    """What a bare run prints when the preset's model does not exist yet."""
    return (f"no weights given and no trained model at {preset.weights}; train it first (README, Quick start) "
            f"with:\n\n    {preset.train_command}\n\nthen rerun `python -m eval.stylize`, or give "
            "--arch, --weights, --content, --style and --out (`--list-archs` shows the weights each network "
            "takes; `--weights random` runs on random weights, for smoke tests only)")


def list_archs() -> str:
    """Every network, the weight files `--weights` takes for it and where they come from."""
    lines = []
    for name in ARCHS:
        plugin = archs.get(name)
        where = "DIR holding them" if plugin.release_patterns else "the checkpoint itself"
        lines += [f"{name}: {plugin.title}",
                  f"  release files   {plugin.release_files}",
                  f"                  (--weights {where})",
                  f"  from            {plugin.release_source}",
                  f"  params file     {PARAMS_FILE} written by `python -m train.run --arch {name} --workdir W` "
                  f"(--weights W/{PARAMS_FILE})"]
        if plugin.variants:
            variants = ", ".join(plugin.variants)
            lines.append(f"  variants        {variants} (--variant, default {plugin.default_variant})")
        lines += [f"  default size    {plugin.stylize_size} px shorter side", ""]
    lines += ["--weights random: seeded random weights, meaningless output, for smoke tests only.",
              "docs/weights.md lists every file with its licence."]
    return "\n".join(lines)


def apply(parser: argparse.ArgumentParser, args: argparse.Namespace, preset: Preset | None = None) -> None:
    """Fills the run flags from `preset` (default `README_MODEL`) when none was given; with only some, stops
    naming the others (`parser.error`, exit 2); without the preset's model, prints how to train it and exits 2."""
    given = [flag for flag in RUN_FLAGS if getattr(args, flag) is not None]
    if given and len(given) < len(RUN_FLAGS):
        missing = ", ".join(f"--{flag}" for flag in RUN_FLAGS if flag not in given)
        parser.error(f"missing {missing}: give all of --arch, --weights, --content, --style and --out, or none "
                     "of them to stylise the bundled samples with the model README's main command trains")
    if given:
        return
    preset = preset or README_MODEL
    if not preset.weights.is_file():
        print(f"{parser.prog}: {missing_model_message(preset)}", file=sys.stderr)
        sys.exit(guards.EXIT_USAGE)
    args.arch, args.weights, args.content, args.style, args.out = (
        preset.arch, str(preset.weights), preset.content, [preset.style], preset.out)
    args.size = preset.size if args.size is None else args.size
    print(f"no weights given: stylising the bundled samples with {preset.weights}, as\n    {preset.command()}",
          file=sys.stderr)
