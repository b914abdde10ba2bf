"""`TfdsSource`: images from a prepared tensorflow-datasets dataset through ``tfds.data_source`` (random access).

``tfds.data_source`` reads array_record files with numpy and PIL, so a dataset that is already prepared in the
array_record format works **without TensorFlow**. What needs TensorFlow is *building* some datasets: e.g.
``coco/2017``'s feature description uses TF dtypes, so even constructing its builder imports TF. For those:

* install TensorFlow next to jax-ast (``pip install tensorflow-cpu``; it coexists with JAX) and, on a machine with
  internet, prepare once: ``tfds.data_source("coco/2017", split="train", data_dir=DIR, download=True)`` (tfds
  writes array_record for data sources); later runs read ``DIR`` offline; or
* skip tfds: unzip the images (e.g. COCO ``train2014.zip``) into a folder and pass ``--content-dir``.

Painter by Numbers / WikiArt (the style set of AdaIN, SANet, LinearTransfer and Magenta) has no tfds builder and
needs a manual download: sign in to Kaggle, accept the rules of the ``painter-by-numbers`` competition, download
``train.zip`` (about 79k paintings), unzip it into a folder, and pass that folder as ``--style-dir``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from jax_ast.data.images import DataError, to_rgb_uint8

_NO_TENSORFLOW_HINT = ("Building this dataset needs TensorFlow, which tensorflow-datasets does not install: "
                       "`pip install tensorflow-cpu`, or use a folder of images instead (--content-dir / "
                       "--style-dir).")
_NOT_PREPARED_HINT = ("prepare it once in the array_record format on a machine with internet "
                      "(tfds.data_source(name, split=..., data_dir=DIR, download=True)) and pass that data_dir, "
                      "or use a folder of images instead (--content-dir / --style-dir).")


class TfdsSource:
    """One split of a tfds dataset, image feature `image_key`, as uint8 [H, W, 3] RGB.

    Args:
      name: tfds name, e.g. "coco/2017" or "tf_flowers".
      split: split (slicing allowed, e.g. "train[:10%]").
      data_dir: tfds data folder (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).
      image_key: the image feature of each example.
      download: let tfds download and prepare the data if it is missing (needs internet).

    Raises:
      DataError: one message for an unknown dataset, a dataset that needs TensorFlow, one that is not prepared,
        or a missing image feature (listing the features there are).
    """

    def __init__(self, name: str, split: str = "train", data_dir: str | os.PathLike | None = None,
                 image_key: str = "image", *, download: bool = False):
        self.name, self.split, self.image_key = name, split, image_key
        self.data_dir = None if data_dir is None else os.fspath(data_dir)
        self._records = _open_data_source(name, split, self.data_dir, download)
        features = _feature_names(self._records)
        if features is not None and image_key not in features:
            raise DataError(f"tfds dataset {name!r} has no feature {image_key!r}; its features are "
                            f"{', '.join(sorted(features))} (pass image_key=...)")
        if len(self._records) == 0:
            raise DataError(f"tfds dataset {name!r} split {split!r} is empty")

    def __len__(self) -> int:
        return len(self._records)

    def load(self, index: int) -> np.ndarray:
        """uint8 [H, W, 3] RGB of example `index` (grey and RGBA images are converted)."""
        example = self._records[int(index)]
        if self.image_key not in example:
            raise DataError(f"tfds dataset {self.name!r} example {index} has no feature {self.image_key!r}; "
                            f"it has {', '.join(sorted(example))}")
        return to_rgb_uint8(example[self.image_key])

    def describe(self, index: int) -> str:
        return f"tfds {self.name}[{self.split}] example {index}"

    def __repr__(self) -> str:
        return f"TfdsSource({self.name!r}, split={self.split!r}, {len(self)} images)"


def _open_data_source(name: str, split: str, data_dir: str | None, download: bool) -> Any:
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise DataError(f"tfds dataset {name!r} needs tensorflow-datasets ({error})") from None
    try:
        return tfds.data_source(name, split=split, data_dir=data_dir, download=download)
    except ImportError as error:  # ModuleNotFoundError included
        if "tensorflow" not in str(error):
            raise
        raise DataError(f"tfds dataset {name!r}: {_NO_TENSORFLOW_HINT} (tfds said: {error})") from None
    except tfds.core.registered.DatasetNotFoundError:
        raise DataError(f"unknown tfds dataset {name!r} (see `tfds.list_builders()`); for a folder of images "
                        "use --content-dir / --style-dir") from None
    except Exception as error:  # noqa: BLE001 - tfds raises many types for missing/unprepared data
        where = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
        first_line = str(error).strip().splitlines()[0].rstrip(" :.") if str(error).strip() else "no details"
        raise DataError(f"tfds dataset {name!r} split {split!r} cannot be read from {where} "
                        f"({type(error).__name__}: {first_line}). If it is not prepared there: "
                        f"{_NOT_PREPARED_HINT}") from error


def _feature_names(records: Any) -> set[str] | None:
    info = getattr(records, "dataset_info", None)
    features = getattr(info, "features", None)
    try:
        return set(features.keys()) if features is not None else None
    except AttributeError:
        return None
