"""LinearTransfer checkpoints (sunshineatnoon/LinearStyleTransfer) -> Flax params.

The released files are plain `state_dict`s of modules with named attributes (docs/architectures.md,
VGG encoders and LinearTransfer):

| file                       | torch keys                                  | Flax subtree                     |
|----------------------------|---------------------------------------------|----------------------------------|
| `vgg_r41.pth`/`vgg_r31.pth`| `conv1` (1x1) .. `conv10`/`conv6`           | `encoder`: preprocess, conv1_1.. |
| `dec_r41.pth`/`dec_r31.pth`| `conv11..conv19` / `conv7..conv11`          | `decoder`: `DECODER_R41/_R31`    |
| `r41.pth`/`r31.pth`        | `{cnet,snet}.convs.{0,2,4}`, `{cnet,snet}.fc`, `compress`, `unzip` | `transform`  |
| `vgg_r51.pth` (loss net)   | `conv1` .. `conv14`                          | `VGG("vgg19_lst")` to relu5_1   |
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp

from jax_ast.models.linear import LinearTransfer, build_linear, loss_network, variant_spec
from jax_ast.models.vgg import conv_names
from jax_ast.pretrained import convert
from jax_ast.pretrained.torch_format import load_torch_params

Table = dict[tuple[str, ...], tuple[str, str]]
PathLike = str | os.PathLike

# encoderN in LST's libs/models.py ends with conv{N}; conv1 is the 1x1 "preprocess" conv.
ENCODER_LAST_CONV = {"r31": 6, "r41": 10, "r51": 14}
# decoderN starts with conv{N}; its convs map in order onto the DECODER_R* layer names.
DECODER_FIRST_CONV = {"r31": 7, "r41": 11}
# The CNN `convs` Sequential holds conv, ReLU, conv, ReLU, conv: the convs sit at indices 0, 2, 4.
CNN_CONV_INDICES = {"conv1": 0, "conv2": 2, "conv3": 4}


def _conv_entries(flax_name: str, torch_name: str) -> Table:
    return {(flax_name, "kernel"): (f"{torch_name}.weight", "conv"),
            (flax_name, "bias"): (f"{torch_name}.bias", "vector")}


def encoder_table(layer: str) -> Table:
    """`vgg_r31/r41/r51.pth` keys -> `VGG("vgg19_lst")` params (conv1 -> preprocess, conv2 -> conv1_1, ...)."""
    return convert.vgg_table("vgg19_lst", "lst", convs=conv_names("vgg19_lst")[:ENCODER_LAST_CONV[layer] - 1])


def decoder_table(variant: str) -> Table:
    """`dec_r41.pth` (conv11..conv19) / `dec_r31.pth` (conv7..conv11) keys -> `Decoder` params."""
    first = DECODER_FIRST_CONV[variant]
    table: Table = {}
    for offset, layer in enumerate(variant_spec(variant).decoder):
        table.update(_conv_entries(layer.name, f"conv{first + offset}"))
    return table


def transform_table() -> Table:
    """`r41.pth`/`r31.pth` (MulLayer) keys -> `MulLayer` params (same names for both variants)."""
    table: Table = {}
    for net in ("cnet", "snet"):
        for flax_name, index in CNN_CONV_INDICES.items():
            table.update({(net, *path): entry
                          for path, entry in _conv_entries(flax_name, f"{net}.convs.{index}").items()})
        table[(net, "fc", "kernel")] = (f"{net}.fc.weight", "linear")
        table[(net, "fc", "bias")] = (f"{net}.fc.bias", "vector")
    table.update(_conv_entries("compress", "compress"))
    table.update(_conv_entries("unzip", "unzip"))
    return table


def _expected_params(model: Any, *inputs: jax.Array) -> Any:
    """Parameter shapes of `model` (no computation), the reference for the shape checks."""
    return jax.eval_shape(model.init, jax.random.key(0), *inputs)["params"]


def load_linear(vgg_weights: PathLike, decoder_weights: PathLike, transform_weights: PathLike, *,
                variant: str = "r41", dtype: Any = jnp.float32) -> tuple[LinearTransfer, dict[str, Any]]:
    """Load a released LinearTransfer model.

    Args:
      vgg_weights: `vgg_r41.pth` / `vgg_r31.pth`.
      decoder_weights: `dec_r41.pth` / `dec_r31.pth`.
      transform_weights: `r41.pth` / `r31.pth`.
      variant: "r41" (default) or "r31"; must match the files.
      dtype: computation dtype of the returned model.

    Returns:
      (model, variables): `build_linear(variant, dtype=dtype)` and
      {"params": {"encoder", "transform", "decoder"}} (float32 jax arrays).

    Raises:
      ValueError: unknown variant (before any file is read).
      convert.WeightsError: missing, unexpected or mis-shaped keys, all listed in one message naming the file.
    """
    model = build_linear(variant, dtype=dtype)
    probe = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    expected = _expected_params(model, probe, probe)
    params = {
        "encoder": load_torch_params(vgg_weights, encoder_table(variant), expected["encoder"]),
        "transform": load_torch_params(transform_weights, transform_table(), expected["transform"]),
        "decoder": load_torch_params(decoder_weights, decoder_table(variant), expected["decoder"]),
    }
    return model, {"params": jax.tree.map(jnp.asarray, params)}


def load_linear_encoder5(path: PathLike) -> dict[str, Any]:
    """Load LST's loss network `vgg_r51.pth` as params of `jax_ast.models.linear.loss_network()`."""
    probe = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    return load_torch_params(path, encoder_table("r51"), _expected_params(loss_network(), probe))
