"""AdaIN checkpoints (naoto0804/pytorch-AdaIN release v0.0.0) -> Flax params of `jax_ast.models.adain.AdaIN`.

| file                  | torch keys (nn.Sequential indices)                      | Flax subtree |
|-----------------------|---------------------------------------------------------|--------------|
| `vgg_normalised.pth`  | `{i}.weight/bias`, i in 0 (1x1), 2, 5, 9, ..., 29 used;  | `encoder`    |
|                       | the full 53-module file's later convs (32 ... 51) are ignored |        |
| `decoder.pth`         | `{i}.weight/bias`, i in 1, 5, 8, 11, 14, 18, 21, 25, 28 | `decoder`    |

The decoder table is shared with SANet's `decoder_iter_*.pth` (same 29-module topology).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import jax
import jax.numpy as jnp

from jax_ast.models.adain import ENCODER_VARIANT, AdaIN
from jax_ast.models.decoders import DECODER_R41
from jax_ast.models.vgg import conv_names
from jax_ast.pretrained import convert
from jax_ast.pretrained.torch_format import load_torch_params

Table = dict[tuple[str, ...], tuple[str, str]]
PathLike = str | os.PathLike

# Sequential index of each conv in the 29-module decoder (pad, conv, ReLU blocks and 3 Upsample modules),
# in the order of DECODER_R41 (docs/architectures.md, AdaIN).
DECODER_TORCH_INDICES = (1, 5, 8, 11, 14, 18, 21, 25, 28)


def decoder_table(prefix: tuple[str, ...] = ()) -> Table:
    """`decoder.pth` / `decoder_iter_*.pth` keys -> `Decoder(DECODER_R41)` params."""
    table: Table = {}
    for layer, index in zip(DECODER_R41, DECODER_TORCH_INDICES, strict=True):
        table[prefix + (layer.name, "kernel")] = (f"{index}.weight", "conv")
        table[prefix + (layer.name, "bias")] = (f"{index}.bias", "vector")
    return table


def encoder_table(last_conv: str) -> tuple[Table, tuple[str, ...]]:
    """(table up to `last_conv`, keys of the deeper convs to ignore) for a truncated or full `vgg_normalised.pth`."""
    names = conv_names(ENCODER_VARIANT)
    used = convert.vgg_table(ENCODER_VARIANT, "vgg_normalised", convs=names[:names.index(last_conv) + 1])
    full = convert.vgg_table(ENCODER_VARIANT, "vgg_normalised")
    used_keys = {key for key, _ in used.values()}
    return used, tuple(sorted(key for key, _ in full.values() if key not in used_keys))


def expected_params(model: Any, *inputs: jax.Array, **kwargs: Any) -> Any:
    """Parameter shapes of `model` (no computation), the reference for the shape checks."""
    return jax.eval_shape(functools.partial(model.init, **kwargs), jax.random.key(0), *inputs)["params"]


def load_adain(vgg_weights: PathLike, decoder_weights: PathLike, *, dtype: Any = jnp.float32):
    """Load a released AdaIN model.

    Args:
      vgg_weights: `vgg_normalised.pth`, full (53 modules) or truncated after relu4_1 (31 modules).
      decoder_weights: `decoder.pth` (or a port-trained decoder with the same keys).
      dtype: computation dtype of the returned model.

    Returns:
      (model, variables): `AdaIN(dtype)` and {"params": {"encoder", "decoder"}} (float32 jax arrays).

    Raises:
      convert.WeightsError: missing, unexpected or mis-shaped keys, all listed in one message naming the file.
    """
    model = AdaIN(dtype=jnp.dtype(dtype))
    probe = jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32)
    expected = expected_params(model, probe, probe)
    table, deeper = encoder_table("conv4_1")
    params = {
        "encoder": load_torch_params(vgg_weights, table, expected["encoder"], ignore_prefixes=deeper),
        "decoder": load_torch_params(decoder_weights, decoder_table(), expected["decoder"]),
    }
    return model, {"params": jax.tree.map(jnp.asarray, params)}
