"""Sanakoyeu et al.'s (CompVis) WikiArt artist classifier -> `ArtistClassifier(head="fc")` (docs/deception.md).

The release (``evaluation_data.zip`` of CompVis/adaptive-style-transfer, on Yandex.Disk) holds a TF-slim
``vgg_16`` checkpoint (``model.ckpt-790000``: ``vgg_16/conv{b}/conv{b}_{k}``, ``vgg_16/fc6|fc7|fc8``, each
``weights``/``biases``, 624 classes) and ``split.hdf5``, the pandas frame whose index is
``<artist-slug>_<image>`` and whose ``label`` column is the class index. Like Magenta's importer
(`jax_ast.pretrained.magenta.read_checkpoint`) this reads the TF checkpoint with TensorFlow, or an ``.npz`` of
the same variable names written once where TF is installed (``magenta.checkpoint_to_npz``).

The checkpoint's network takes RGB x 255 - ImageNet mean with max pooling; ours (``vgg16_caffe``) takes BGR,
so conv1_1's input channels are reversed on import, which gives the same function. Its evaluation resizes
each image to 224 x 224, then to shorter side 256 and centre-crops 224 (`COMPVIS_RESIZE`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jax_ast.models.artist import FC_INPUT_SIZE, ArtistClassifier
from jax_ast.pretrained.convert import WeightsError, check_finite, torch_to_flax, vgg_table
from jax_ast.pretrained.magenta import read_checkpoint

IGNORED_PREFIXES = ("global_step", "vgg_16/mean_rgb")
COMPVIS_RESIZE = 256  # preprocess_for_eval's resize side before the 224 centre crop
CLASS_LIST_SUFFIXES = (".hdf5", ".h5", ".json", ".txt")


def compvis_table() -> dict[tuple[str, ...], tuple[str, str]]:
    """Flax path -> (TF variable, kind) of the 16 layers (32 entries)."""
    table = vgg_table("vgg16", "slim", prefix=("backbone",))
    for name in ("fc6", "fc7", "fc8"):
        table[(name, "kernel")] = (f"vgg_16/{name}/weights", "hwio")
        table[(name, "bias")] = (f"vgg_16/{name}/biases", "vector")
    return table


def _pandas_frame_labels(path: Path) -> dict[str, int]:
    """{index entry: label} from a pandas ``to_hdf`` fixed-format frame, read with h5py (no pandas needed)."""
    import h5py  # noqa: PLC0415 - a dependency of jax-ast, but only this reader needs it here

    with h5py.File(path, "r") as handle:
        for group in (g for g in handle.values() if isinstance(g, h5py.Group) and "axis1" in g):
            for key in (k for k in group if k.startswith("block") and k.endswith("_items")):
                items = [x.decode() if isinstance(x, bytes) else str(x) for x in group[key][()]]
                if "label" in items:
                    values = group[key.replace("_items", "_values")][()]
                    labels = np.asarray(values)[:, items.index("label")]
                    index = [x.decode() if isinstance(x, bytes) else str(x) for x in group["axis1"][()]]
                    return dict(zip(index, labels.astype(np.int64).tolist()))
    raise WeightsError(f"{path} is not a class list: no pandas frame with a 'label' column (expected CompVis's "
                       "split.hdf5)")


def read_class_list(path: str | os.PathLike) -> list[str]:
    """Class names in label order from CompVis's ``split.hdf5`` (artist = index up to the first '_'), a JSON
    list, or a text file with one name a line.

    Raises:
      WeightsError: an unknown format, or a split whose labels are not one artist each / not 0..K-1.
    """
    path = Path(path)
    if path.suffix not in CLASS_LIST_SUFFIXES:
        raise WeightsError(f"unknown class list {path}: expected one of {', '.join(CLASS_LIST_SUFFIXES)} "
                           "(CompVis's split.hdf5, a JSON list or one name a line)")
    if path.suffix == ".json":
        return [str(name) for name in json.loads(path.read_text(encoding="utf-8"))]
    if path.suffix == ".txt":
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    artist_of_label: dict[int, str] = {}
    for image_id, label in _pandas_frame_labels(path).items():
        artist = image_id.split("_", 1)[0]
        if artist_of_label.setdefault(label, artist) != artist:
            raise WeightsError(f"{path}: label {label} belongs to {artist_of_label[label]!r} and {artist!r}")
    if sorted(artist_of_label) != list(range(len(artist_of_label))):
        raise WeightsError(f"{path}: labels are not 0..{len(artist_of_label) - 1}")
    return [artist_of_label[i] for i in range(len(artist_of_label))]


def load_compvis(checkpoint: str | os.PathLike, class_list: str | os.PathLike) -> tuple[ArtistClassifier, dict, dict]:
    """(model, params, meta) of the CompVis artist classifier; meta as `eval.artist_classifier` writes it.

    Args:
      checkpoint: the TF checkpoint prefix (``.../model.ckpt-790000``; needs tensorflow) or an ``.npz`` of its
        variables.
      class_list: ``split.hdf5`` (or JSON / text), whose class count must match fc8.

    Raises:
      WeightsError: missing/unexpected/mis-shaped variables, non-finite values, a class count mismatch.
    """
    variables = read_checkpoint(checkpoint, skip_prefixes=IGNORED_PREFIXES)
    classes = read_class_list(class_list)
    fc8 = variables.get("vgg_16/fc8/weights")
    if fc8 is not None and fc8.shape[-1] != len(classes):
        raise WeightsError(f"{checkpoint} has {fc8.shape[-1]} classes but {class_list} lists {len(classes)}")
    fc6 = variables.get("vgg_16/fc6/weights")
    fc_width = 4096 if fc6 is None else int(fc6.shape[-1])
    model = ArtistClassifier(num_classes=len(classes), head="fc", variant="vgg16_caffe", fc_width=fc_width)
    expected = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                              jax.ShapeDtypeStruct((1, FC_INPUT_SIZE, FC_INPUT_SIZE, 3), jnp.float32))["params"]
    params = torch_to_flax(variables, compvis_table(), expected, source=os.fspath(checkpoint),
                           ignore_prefixes=IGNORED_PREFIXES)
    conv1 = params["backbone"]["conv1_1"]
    conv1["kernel"] = np.ascontiguousarray(conv1["kernel"][:, :, ::-1])  # RGB-input kernel -> BGR input
    check_finite(params, os.fspath(checkpoint))
    meta: dict[str, Any] = {"kind": "artist_classifier", "classes": classes, "head": "fc", "variant": "vgg16_caffe",
                            "taps": ["relu5_3"], "fc_width": fc_width, "size": FC_INPUT_SIZE, "resize": COMPVIS_RESIZE,
                            "source": os.fspath(checkpoint)}
    return model, jax.tree.map(jnp.asarray, params), meta
