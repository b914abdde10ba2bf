"""SANet checkpoints (GlebSBrykin/SANET) -> Flax params of `jax_ast.models.sanet.SANet`.

| file                          | torch keys                                               | Flax subtree |
|-------------------------------|----------------------------------------------------------|--------------|
| `vgg_normalised.pth`          | `{i}.weight/bias` up to i = 42 (relu5_1); later ignored   | `encoder`    |
| `decoder_iter_*.pth`          | `{i}.weight/bias`, i in 1, 5, 8, ..., 28 (as AdaIN)       | `decoder`    |
| `transformer_iter_*.pth`      | `sanet{4,5}_1.{f,g,h,out_conv}.weight/bias` (512,512,1,1), | `transform`  |
|                               | `merge_conv.weight` (512,512,3,3), `merge_conv.bias`     |              |
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jax_ast.models.sanet import SANet
from jax_ast.pretrained.adain import PathLike, Table, decoder_table, encoder_table, expected_params
from jax_ast.pretrained.torch_format import load_torch_params

ATTENTION_CONVS = ("f", "g", "h", "out_conv")
ATTENTION_MODULES = ("sanet4_1", "sanet5_1")


def transform_table() -> Table:
    """`transformer_iter_*.pth` keys -> `Transform` params (same names on both sides)."""
    table: Table = {}
    for module in ATTENTION_MODULES:
        for conv in ATTENTION_CONVS:
            table[(module, conv, "kernel")] = (f"{module}.{conv}.weight", "conv")
            table[(module, conv, "bias")] = (f"{module}.{conv}.bias", "vector")
    table[("merge_conv", "kernel")] = ("merge_conv.weight", "conv")
    table[("merge_conv", "bias")] = ("merge_conv.bias", "vector")
    return table


def load_sanet(vgg_weights: PathLike, decoder_weights: PathLike, transform_weights: PathLike, *,
               dtype: Any = jnp.float32, chunk_size: int | None = None):
    """Load a released SANet model.

    Args:
      vgg_weights: `vgg_normalised.pth`, full or truncated after relu5_1 (44 modules).
      decoder_weights: `decoder_iter_500000.pth`.
      transform_weights: `transformer_iter_500000.pth`.
      dtype, chunk_size: passed to `SANet`.

    Returns:
      (model, variables): `SANet` and {"params": {"encoder", "transform", "decoder"}} (float32 jax arrays).

    Raises:
      convert.WeightsError: missing, unexpected or mis-shaped keys, all listed in one message naming the file.
    """
    model = SANet(chunk_size=chunk_size, dtype=jnp.dtype(dtype))
    probe = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    expected = expected_params(model, probe, probe)
    table, deeper = encoder_table("conv5_1")
    params = {
        "encoder": load_torch_params(vgg_weights, table, expected["encoder"], ignore_prefixes=deeper),
        "transform": load_torch_params(transform_weights, transform_table(), expected["transform"]),
        "decoder": load_torch_params(decoder_weights, decoder_table(), expected["decoder"]),
    }
    return model, {"params": jax.tree.map(jnp.asarray, params)}
