"""Stylise image files to image files: every content x style pair (`stylize_all`) or one mix per content
(`stylize_mixed_all`), with the skip-and-report rules of `eval.stylize` (a bad file never ends the run)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

import jax
import numpy as np

from eval.common import guards
from eval.inference.batching import group_by_shape
from eval.stylize import mixing as style_mixing
from eval.stylize.naming import unique_stems
from jax_ast import color, imageio
from jax_ast import progress as progress_lib

CONTENT_CHUNK = 16  # contents held in memory at once (their pairs with every style are run together)


@dataclasses.dataclass
class Summary:
    """What a run did: files written, (file, reason) skips and the stylisation wall time."""

    written: list[Path] = dataclasses.field(default_factory=list)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    kept: int = 0  # outputs already complete in the output folder (a resumed run), not redone

    def report(self) -> str:
        rate = len(self.written) / self.seconds if self.seconds > 0 else 0.0
        speed = f"{rate:.2f} img/s" if rate >= 0.1 or rate == 0 else f"{1 / rate:.1f} s/img"
        lines = [f"written: {len(self.written)} images in {self.seconds:.1f} s ({speed}, including compilation)",
                 f"skipped: {len(self.skipped)}"]
        if self.kept:
            lines.insert(1, f"kept: {self.kept} complete images already in the output folder")
        lines += [f"  {guards.printable(name)}: {guards.printable(reason)}" for name, reason in self.skipped]
        return "\n".join(lines)


class Progress(progress_lib.Progress):
    """Progress in images (`jax_ast.progress`: a bar or a line per ~10 %); `write` keeps messages readable."""

    def __init__(self, total: int, enabled: bool = True):
        super().__init__(total, unit="img", enabled=enabled)

    def write(self, message: str) -> None:
        super().write(guards.printable(message))


@dataclasses.dataclass(frozen=True)
class Options:
    """Per-run settings of `stylize_all`."""

    out_dir: Path
    alpha: float = 1.0
    preserve_color: str = "none"
    size: int | None = 512
    style_size: int | None = 512
    extension: str = ".png"
    progress: bool = True
    done: frozenset[str] = frozenset()  # output file names already complete in `out_dir`: kept, not redone


class DiskFullError(OSError):
    """An output could not be written because the disk (or the file-size limit) is full; the run stops."""


def _load_all(paths: Sequence[Path], size: int | None, summary: Summary, progress: Progress,
              role: str) -> dict[int, np.ndarray]:
    """Loads images by index; bad files are recorded in the summary and reported, never raised."""
    images = {}
    for index, path in enumerate(paths):
        try:
            images[index] = imageio.load_image(path, size=size)
        except imageio.ImageError as error:
            summary.skipped.append((str(path), f"{role} skipped: {error.reason}"))
            progress.write(f"warning: skipping {role} {path}: {error.reason}")
    return images


def _encode(stylizer: Any, styles: dict[Any, np.ndarray], names: dict[Any, str], summary: Summary,
            progress: Progress) -> dict[Any, Any]:
    """Encodes styles, batching equal sizes; a group that fails is reported and left out."""
    keys = list(styles)
    codes = {}
    for indices in group_by_shape([styles[k] for k in keys]).values():
        group = [keys[i] for i in indices]
        try:
            batch = stylizer.encode_styles(np.stack([styles[k] for k in group]))
        except Exception as error:  # e.g. a style too small for the network; reported, the run continues
            for key in group:
                summary.skipped.append((names[key], f"style encoding failed: {type(error).__name__}: {error}"))
            progress.write(f"warning: encoding failed for {', '.join(names[k] for k in group)}: {error}")
            continue
        for row, key in enumerate(group):
            codes[key] = jax.tree.map(lambda leaf, row=row: leaf[row], batch)
    return codes


def stylize_all(stylizer: Any, content_paths: Sequence[Path], style_paths: Sequence[Path],
                options: Options) -> Summary:
    """Runs every content x style pair through `stylizer` (an `eval.inference.batching.Stylizer`), writing images."""
    summary = Summary()
    progress = Progress(len(content_paths) * len(style_paths), enabled=options.progress)
    start = time.perf_counter()
    content_names, style_names = unique_stems(content_paths), unique_stems(style_paths)
    styles = _load_all(style_paths, options.style_size, summary, progress, "style")
    progress.update((len(style_paths) - len(styles)) * len(content_paths))
    shared_codes = {}
    if options.preserve_color != "coral":  # coral recolours each style per content: encode per pair instead
        shared_codes = _encode(stylizer, styles, {i: str(style_paths[i]) for i in styles}, summary, progress)
        progress.update((len(styles) - len(shared_codes)) * len(content_paths))
    todo = {c: [s for s in styles if f"{content_names[c]}__{style_names[s]}{options.extension}" not in options.done]
            for c in range(len(content_paths))}
    summary.kept = sum(len(styles) - len(todo[c]) for c in todo)
    progress.update(summary.kept)
    for chunk_start in range(0, len(content_paths), CONTENT_CHUNK):
        chunk = [c for c in range(chunk_start, min(chunk_start + CONTENT_CHUNK, len(content_paths))) if todo[c]]
        contents = _load_all([content_paths[i] for i in chunk], options.size, summary, progress, "content")
        contents = {chunk[i]: image for i, image in contents.items()}
        progress.update(sum(len(todo[c]) for c in chunk if c not in contents))
        if options.preserve_color == "coral":
            recoloured = {(c, s): color.coral(styles[s], contents[c]) for c in contents for s in todo[c]}
            names = {(c, s): f"{style_paths[s]} (coral to {content_paths[c]})" for c, s in recoloured}
            codes = _encode(stylizer, recoloured, names, summary, progress)
            progress.update(len(recoloured) - len(codes))
        else:
            codes = {(c, s): shared_codes[s] for c in contents for s in todo[c] if s in shared_codes}
        _stylize_chunk(stylizer, contents, codes, (content_names, style_names), options, summary, progress)
    summary.seconds = time.perf_counter() - start
    progress.close()
    return summary


def stylize_mixed_all(mixer: style_mixing.Mixer, content_paths: Sequence[Path], options: Options) -> Summary:
    """Writes one image per content with all the styles of `mixer.spec` (weights or a mask), as `stylize_all`."""
    summary = Summary()
    progress = Progress(len(content_paths), enabled=options.progress)
    start = time.perf_counter()
    style_paths = mixer.spec.style_paths
    styles = _load_all(style_paths, options.style_size, summary, progress, "style")
    if len(styles) < len(style_paths):  # a mix without one of its styles is not the requested image
        summary.skipped += [(str(path), "not stylised: a style of the mix could not be read") for path in content_paths]
        content_paths = []
    styles = [styles[i] for i in sorted(styles)]
    # coral recolours the styles to each content: `mixer` encodes them per content then
    codes = mixer.encode(styles) if content_paths and options.preserve_color != "coral" else None
    style_names = unique_stems(style_paths)
    for path, name in zip(content_paths, unique_stems(content_paths)):
        label = style_mixing.output_label(name, mixer.spec, style_names)
        if f"{label}{options.extension}" in options.done:
            summary.kept += 1
            progress.update(1)
            continue
        content = _load_all([path], options.size, summary, progress, "content").get(0)
        try:
            stylized = None if content is None else mixer(content, styles, codes)
        except Exception as error:  # e.g. a content too small for the network; reported, the run continues
            summary.skipped.append((label, f"stylisation failed: {type(error).__name__}: {error}"))
            progress.write(f"warning: stylisation failed for {label}: {error}")
        else:
            if stylized is not None:
                _save(stylized, content, label, options, summary, progress)
        progress.update(1)
    summary.seconds = time.perf_counter() - start
    progress.close()
    return summary


def _stylize_chunk(stylizer: Any, contents: dict[int, np.ndarray], codes: dict[tuple[int, int], Any],
                   names: tuple[list[str], list[str]], options: Options, summary: Summary,
                   progress: Progress) -> None:
    """Stylises the (content index, style index) keys of `codes`, post-processes and saves each result."""
    pair_keys = list(codes)
    content_keys = sorted(contents)
    content_list = [contents[c] for c in content_keys]
    position_of = {c: i for i, c in enumerate(content_keys)}
    pairs = [(position_of[c], i) for i, (c, _) in enumerate(pair_keys)]
    code_list = [codes[key] for key in pair_keys]
    for positions, result in stylizer.stylize_pairs(content_list, code_list, pairs, alpha=options.alpha):
        for row, position in enumerate(positions):
            content_index, style_index = pair_keys[position]
            label = f"{names[0][content_index]}__{names[1][style_index]}"
            if isinstance(result, Exception):
                summary.skipped.append((label, f"stylisation failed: {type(result).__name__}: {result}"))
                progress.write(f"warning: stylisation failed for {label}: {result}")
            else:
                _save(result[row], contents[content_index], label, options, summary, progress)
            progress.update(1)


def _save(stylized: np.ndarray, content: np.ndarray, label: str, options: Options, summary: Summary,
          progress: Progress) -> None:
    if options.preserve_color == "luminance":
        stylized = color.preserve_luminance(stylized, content)
    if not np.all(np.isfinite(stylized)):
        summary.skipped.append((label, "non-finite output (NaN or inf); not written"))
        progress.write(f"warning: {label}: the network output NaN or inf; not written")
        return
    try:
        summary.written.append(imageio.save_image(options.out_dir / f"{label}{options.extension}", stylized))
    except OSError as error:
        if error.errno in guards.DISK_FULL_ERRNOS:  # every further image would fail the same way
            raise DiskFullError(f"cannot write {label}{options.extension} in {options.out_dir}: "
                                f"{error.strerror}; stopped after {len(summary.written)} images (each written "
                                "whole); rerun the same command to resume") from error
        summary.skipped.append((label, f"could not write: {error}"))
        progress.write(f"warning: could not write {label}: {error}")
