"""Output file names of `eval.stylize`: ``<content-stem>__<style-stem>.<ext>``, shared by images and videos."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """File stems for output names; stems shared by several files get their parent folders and suffix added."""
    stems = [p.stem for p in paths]
    counts = {stem: stems.count(stem) for stem in stems}
    names = []
    for path, stem in zip(paths, stems):
        if counts[stem] > 1:
            stem = "_".join([*path.parent.parts[-2:], path.stem, path.suffix.lstrip(".")])
        names.append(stem)
    return names


def output_names(content_paths: Sequence[Path], style_paths: Sequence[Path], extension: str) -> list[str]:
    """The output file name of every content x style pair, as `stylize_all` writes them."""
    return [f"{c}__{s}{extension}" for c in unique_stems(content_paths) for s in unique_stems(style_paths)]
