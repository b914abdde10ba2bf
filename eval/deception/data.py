"""Paintings with artist labels for the artist classifier: discovery, held-out split, random and fixed crops.

Labels come from one of (`LABEL_SOURCES`):

* ``subfolder``: ``<root>/<artist>/<painting>`` (any depth below the artist folder);
* ``csv``: Painter by Numbers' ``train_info.csv`` (columns ``filename``, ``artist``), paintings in ``<root>``;
* ``file``: every image is its own "artist" (the demonstration on the bundled paintings).

The held-out split (`SPLITS`) is by image (``image``: a seeded fraction of each artist's works, the protocol of
Sanakoyeu et al.) or, when an artist has one work, by region (``region``: the right-most columns of every
painting are held out, the rest trains), so no held-out pixel is ever seen in training.
Everything is numpy on the host.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import functools
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from jax_ast.data import CropSpec, DataError, augment, to_rgb_uint8
from jax_ast.imageio import ImageError, list_images, load_pixels

LABEL_SOURCES = ("subfolder", "csv", "file")
SPLITS = ("image", "region")
INFO_COLUMNS = ("filename", "artist")


@dataclasses.dataclass(frozen=True)
class Work:
    """One painting (or one region of it) with its artist's class index.

    `columns` is the fraction range [start, stop) of the image's width this item may crop from.
    """

    path: Path
    label: int
    columns: tuple[float, float] = (0.0, 1.0)


def _works_by_artist(root: Path, labels: str, info_csv: str | os.PathLike | None) -> dict[str, list[Path]]:
    try:
        paths = list_images(root, recursive=True)
    except FileNotFoundError:
        raise DataError(f"painting folder {root} does not exist") from None
    except ImageError as error:
        raise DataError(str(error)) from None
    by_artist: dict[str, list[Path]] = collections.defaultdict(list)
    if labels == "file":
        for path in paths:
            by_artist[path.stem].append(path)
    elif labels == "subfolder":
        for path in paths:
            parts = path.relative_to(root).parts
            if len(parts) < 2:
                raise DataError(f"{path} is not inside an artist sub-folder of {root} (labels 'subfolder' "
                                "expects <root>/<artist>/<painting>)")
            by_artist[parts[0]].append(path)
    else:
        by_artist = _works_from_csv(root, paths, info_csv)
    return by_artist


def _works_from_csv(root: Path, paths: Sequence[Path], info_csv) -> dict[str, list[Path]]:
    if info_csv is None:
        raise DataError("labels 'csv' needs info_csv (Painter by Numbers' train_info.csv)")
    try:
        with open(info_csv, newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            missing = [c for c in INFO_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{info_csv} has no columns {missing}; it has {reader.fieldnames}")
            artist_of = {row["filename"]: row["artist"] for row in reader if row["artist"]}
    except (OSError, UnicodeDecodeError, csv.Error) as error:  # missing, not UTF-8 text, malformed
        reason = getattr(error, "strerror", None) or f"{type(error).__name__}: {error}"
        raise DataError(f"cannot read {info_csv}: {reason}") from None
    by_artist: dict[str, list[Path]] = collections.defaultdict(list)
    for path in paths:
        artist = artist_of.get(path.name)
        if artist is not None:
            by_artist[artist].append(path)
    if not by_artist:
        raise DataError(f"no image in {root} is listed in {info_csv}")
    return by_artist


def discover(root: str | os.PathLike, *, labels: str = "subfolder", info_csv: str | os.PathLike | None = None,
             min_works: int = 1) -> tuple[list[str], dict[str, list[Path]]]:
    """(sorted artist names = class list, {artist: sorted works}) of the artists with >= `min_works` works.

    Raises:
      DataError: a missing or empty folder, a bad CSV, or fewer than two artists left (naming the counts).
    """
    if labels not in LABEL_SOURCES:
        raise ValueError(f"unknown labels {labels!r}; valid: {', '.join(LABEL_SOURCES)}")
    by_artist = _works_by_artist(Path(root), labels, info_csv)
    kept = {artist: sorted(works) for artist, works in by_artist.items() if len(works) >= min_works}
    if len(kept) < 2:
        counts = sorted((len(w) for w in by_artist.values()), reverse=True)[:5]
        raise DataError(f"{root}: {len(kept)} artist(s) have at least {min_works} works (largest counts: {counts}); "
                        "a classifier needs at least two: lower --min-works or add paintings")
    classes = sorted(kept)
    return classes, {artist: kept[artist] for artist in classes}


def split_works(classes: Sequence[str], works: dict[str, list[Path]], *, mode: str, holdout: float,
                seed: int) -> tuple[list[Work], list[Work]]:
    """(train, held-out) items. ``image``: per artist, round(holdout * n) >= 1 seeded works are held out
    (every artist needs two works); ``region``: each painting's right-most `holdout` of columns is held out."""
    if mode not in SPLITS:
        raise ValueError(f"unknown split {mode!r}; valid: {', '.join(SPLITS)}")
    train, heldout = [], []
    for label, artist in enumerate(classes):
        paths = works[artist]
        if mode == "region":
            train += [Work(p, label, (0.0, 1.0 - holdout)) for p in paths]
            heldout += [Work(p, label, (1.0 - holdout, 1.0)) for p in paths]
            continue
        if len(paths) < 2:
            raise DataError(f"artist {artist!r} has {len(paths)} work; the image split needs two per artist "
                            "(use --split region, or --min-works 2)")
        order = np.random.default_rng([seed, label]).permutation(len(paths))
        count = min(len(paths) - 1, max(1, round(holdout * len(paths))))
        heldout += [Work(paths[i], label) for i in sorted(order[:count])]
        train += [Work(paths[i], label) for i in sorted(order[count:])]
    return train, heldout


class PaintingCache:
    """Decoded paintings (uint8 [H, W, 3], decoded at reduced scale for `shorter_side`), bounded LRU:
    ``cache.get(path)``."""

    def __init__(self, shorter_side: int, capacity: int = 512):
        self.shorter_side = shorter_side
        self.get = functools.lru_cache(maxsize=capacity)(self._load)

    def _load(self, path: Path) -> np.ndarray:
        return to_rgb_uint8(load_pixels(path, shorter_side=self.shorter_side, min_side=1))


def crop(image: np.ndarray, work: Work, size: int, scale: float, rng: np.random.Generator | None) -> np.ndarray:
    """uint8 [size, size, 3]: the work's columns, shorter side resized to ``size * scale``, then a random
    (flipped with p 1/2) or, without `rng`, centred crop."""
    width = image.shape[1]
    start, stop = int(round(work.columns[0] * width)), max(int(round(work.columns[1] * width)), 1)
    region = image[:, start:max(stop, start + 1)]
    spec = CropSpec(resize="shorter", resize_to=max(size, int(round(size * scale))), crop=size,
                    hflip=rng is not None, random_crop=rng is not None)
    return augment(region, spec, rng)


def train_batch(works: Sequence[Work], cache: PaintingCache, *, step: int, seed: int,
                batch_size: int, size: int, scales: tuple[float, float]) -> dict[str, np.ndarray]:
    """{"images": uint8[B, size, size, 3], "labels": int32[B]} of step `step`: a pure function of (seed, step),
    so a resumed run sees the same batches. Classes are drawn uniformly, then a work of the class, so rare
    artists are not drowned out; each crop is taken at a random scale in `scales`."""
    rng = np.random.default_rng([seed, step])
    by_class = collections.defaultdict(list)
    for work in works:
        by_class[work.label].append(work)
    labels = rng.choice(sorted(by_class), size=batch_size)
    images = []
    for label in labels:
        work = by_class[int(label)][int(rng.integers(len(by_class[int(label)])))]
        images.append(crop(cache.get(work.path), work, size, float(rng.uniform(*scales)), rng))
    return {"images": np.stack(images), "labels": labels.astype(np.int32)}


def eval_crops(works: Sequence[Work], cache: PaintingCache, *, size: int, scales: tuple[float, float],
               crops_per_work: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8[N, size, size, 3], int32[N]): `crops_per_work` seeded crops of every work (the first one
    centred at the smallest scale), the same for every call with the same arguments."""
    images, labels = [], []
    for index, work in enumerate(works):
        image = cache.get(work.path)
        rng = np.random.default_rng([seed, 1_000_003, index])
        for position in range(crops_per_work):
            if position == 0:
                images.append(crop(image, work, size, scales[0], None))
            else:
                images.append(crop(image, work, size, float(rng.uniform(*scales)), rng))
            labels.append(work.label)
    return np.stack(images), np.asarray(labels, np.int32)
