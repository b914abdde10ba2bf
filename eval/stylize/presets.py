"""What `eval.stylize` runs when not told: `--list-archs`, and the defaults of a run without ``--weights``.

Without ``--weights`` the run uses trained weights installed with jax-ast (`Architecture.installed`): those of
``--arch``/``--variant`` when given, else the first network variant that has them (`BARE_RUN`: Magenta's mobile
model), with no training and no download. Without ``--content`` and ``--style`` it stylises every bundled
content x style (jax_ast/samples), and without ``--out`` it writes into `BARE_RUN.out`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from eval.common import guards
from eval.inference import loading
from jax_ast import archs
from jax_ast.data.sources import bundled_dir
from jax_ast.pretrained.params_file import PARAMS_FILE


@dataclasses.dataclass(frozen=True)
class Preset:
    """The run flags `--arch --variant --content --style --out` of a run without `--weights`."""

    arch: str
    variant: str | None
    content: Path
    style: Path
    out: Path

    def command(self) -> str:
        """The equivalent explicit command (still without --weights: the installed weights are the default)."""
        return command(self.arch, self.variant, self.content, [self.style], self.out)


def command(arch: str, variant: str | None, content: Path, styles: list[Path], out: Path) -> str:
    """The `eval.stylize` command line of a run without --weights."""
    variant_flag = f" --variant {variant}" if variant else ""
    return (f"python -m eval.stylize --arch {arch}{variant_flag} --content {content} "
            f"--style {' '.join(map(str, styles))} --out {out}")


def default_out(arch: str, variant: str | None) -> Path:
    """The out folder of a run without --weights and --out, relative to the working directory."""
    return Path("out") / "-".join(filter(None, (arch, variant)))


def _bare_run() -> Preset | None:
    """The first network variant with installed weights, on every bundled content x style; None without one.
    Paths are relative to the working directory, where README's commands run."""
    if not archs.installed():
        return None
    arch, variant = archs.installed()[0]
    return Preset(arch=arch, variant=variant, content=bundled_dir("content"), style=bundled_dir("style"),
                  out=default_out(arch, variant))


BARE_RUN = _bare_run()

WEIGHTS_RUN_FLAGS = ("arch", "content", "style", "out")  # what a run with --weights needs besides it


def list_archs() -> str:
    """Every network, the weight files `--weights` takes for it and where they come from."""
    lines = []
    for name in archs.names():
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
        for variant, release in plugin.installed.items():
            flag = f" --variant {variant}" if variant else ""
            lines.append(f"  installed       {release.description}: used by --arch {name}{flag} without --weights")
        lines += [f"  default size    {plugin.stylize_size} px shorter side", ""]
    lines += ["--weights random: seeded random weights, meaningless output, for smoke tests only.",
              "docs/weights.md lists every file with its licence."]
    return "\n".join(lines)


def apply(parser: argparse.ArgumentParser, args: argparse.Namespace, preset: Preset | None = None) -> None:
    """Fills the flags a run without ``--weights`` may leave out (see the module docstring); stops with
    `parser.error` (exit 2) naming what is missing: with --weights, any of --arch, --content, --style, --out;
    without it, one of --content/--style, or installed weights for the --arch/--variant asked for."""
    if args.weights is not None:
        missing = [f"--{flag}" for flag in WEIGHTS_RUN_FLAGS if getattr(args, flag) is None]
        if missing:
            parser.error(f"missing {', '.join(missing)}: give all of --arch, --weights, --content, --style and "
                         "--out, or leave out --weights to run the weights installed with jax-ast")
        return
    preset = preset or BARE_RUN
    if args.arch is None and preset is not None:
        args.arch, args.variant = preset.arch, args.variant or preset.variant
    if args.arch is not None:
        guards.check_arch(parser, args.arch, archs.names())
    release = loading.installed_release(args.arch, args.variant) if args.arch else None
    if release is None:
        asked = f"--arch {args.arch}" + (f" --variant {args.variant}" if args.variant else "") if args.arch else "none"
        parser.error(f"no --weights, and {asked} has no weights installed with jax-ast (installed: "
                     f"{loading.installed_flags()}); give --weights (`--list-archs` shows the files it takes)")
    if (args.content is None) != (args.style is None):
        parser.error(f"missing {'--style' if args.style is None else '--content'}: give --content and --style "
                     "together, or neither to stylise the bundled samples")
    bundled = args.content is None
    if bundled:
        args.content, args.style = preset.content, [preset.style]
    args.variant = args.variant or archs.get(args.arch).default_variant
    if args.out is None:
        args.out = preset.out if (args.arch, args.variant) == (preset.arch, preset.variant) else default_out(
            args.arch, args.variant)
    samples = "the bundled samples" if bundled else "your images"
    print(f"no --weights: stylising {samples} with {release.description}, as: "
          f"{command(args.arch, args.variant, args.content, args.style, args.out)}", file=sys.stderr)
