"""Mirror-VGG decoders (reflection-padded 3x3 convs, ReLU, nearest x2 upsampling).

AdaIN's `decoder.pth`, SANet's decoder and LinearTransfer's `decoder4` share one topology
(relu4_1 -> RGB); LinearTransfer's `decoder3` starts at relu3_1. A decoder is a tuple of
`DecoderLayer`s so each original is a table, and parameter names match the conversion tables in
`jax_ast.pretrained`.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_ast.models.layers import padded_conv, upsample_nearest


class DecoderLayer(NamedTuple):
    """One reflection-padded 3x3 conv; `upsample_before` doubles H and W first."""

    name: str
    features: int
    upsample_before: bool = False


# relu4_1 (512 ch, H/8) -> RGB (H). Names follow the VGG layer each conv mirrors.
DECODER_R41: tuple[DecoderLayer, ...] = (
    DecoderLayer("conv4_1", 256),
    DecoderLayer("conv3_4", 256, upsample_before=True),
    DecoderLayer("conv3_3", 256),
    DecoderLayer("conv3_2", 256),
    DecoderLayer("conv3_1", 128),
    DecoderLayer("conv2_2", 128, upsample_before=True),
    DecoderLayer("conv2_1", 64),
    DecoderLayer("conv1_2", 64, upsample_before=True),
    DecoderLayer("conv1_1", 3),
)

# relu3_1 (256 ch, H/4) -> RGB (LinearTransfer decoder3).
DECODER_R31: tuple[DecoderLayer, ...] = (
    DecoderLayer("conv3_1", 128),
    DecoderLayer("conv2_2", 128, upsample_before=True),
    DecoderLayer("conv2_1", 64),
    DecoderLayer("conv1_2", 64, upsample_before=True),
    DecoderLayer("conv1_1", 3),
)


class Decoder(nn.Module):
    """Feature map -> image. ReLU after every conv but the last, whose output is unbounded.

    Attributes:
      layers: the decoder table (e.g. `DECODER_R41`).
      dtype: computation dtype; the output is returned as float32.

    Call:
      feats: [B, h, w, C_in] -> float32 [B, h * 2**n_up, w * 2**n_up, 3].
    """

    layers: Sequence[DecoderLayer] = DECODER_R41
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, feats: jax.Array) -> jax.Array:
        x = feats.astype(self.dtype)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if layer.upsample_before:
                x = upsample_nearest(x, 2)
            x = padded_conv(x, layer.features, 3, name=layer.name, padding="reflect", dtype=self.dtype)
            if i != last:
                x = nn.relu(x)
        return x.astype(jnp.float32)
