"""Artist classifier on the ImageNet VGG-16: the judge of the deception rate (docs/deception.md).

Two heads on one `VGG` backbone (parameters ``{"backbone": {conv1_1, ...}, "head": {...}}``):

* ``"pooled"`` (jax-ast's default): the channel mean and standard deviation of each tap in `taps`, over all
  positions (the statistics AdaIN-style methods transfer), concatenated, layer-normalised and fed to one
  dense layer. It takes any input size, so it trains on small random crops of paintings.
* ``"fc"``: TF-slim's ``vgg_16`` classifier, fc6 (a 7x7 valid conv on pool5), fc7 (1x1), fc8 (1x1), as in
  Sanakoyeu et al.'s CompVis classifier (`jax_ast.pretrained.compvis` imports it); inputs must be 224 x 224.

Which backbone convs train is the trainer's business: `split_backbone` separates the frozen prefix, which the
trainer passes as a constant, so autodiff never traces through it (no gradient work for frozen convs).
Pure: no I/O.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_ast.models.layers import max_pool_2x2
from jax_ast.models.vgg import VGG, conv_names

HEADS = ("pooled", "fc")
DEFAULT_TAPS = ("relu2_2", "relu3_3", "relu4_3", "relu5_3")
FC_INPUT_SIZE = 224  # fc6 is a 7x7 valid conv on pool5: 224 / 32 = 7


def pooled_statistics(feats: dict[str, jax.Array], taps: Sequence[str]) -> jax.Array:
    """float32[B, 2 * sum(C)]: per-channel mean and std over H, W of each tap (float32 accumulation)."""
    parts = []
    for tap in taps:
        x = feats[tap].astype(jnp.float32)
        mean = jnp.mean(x, axis=(1, 2))
        std = jnp.sqrt(jnp.maximum(jnp.mean(jnp.square(x), axis=(1, 2)) - jnp.square(mean), 0.0) + 1e-6)
        parts += [mean, std]
    return jnp.concatenate(parts, axis=-1)


class ArtistClassifier(nn.Module):
    """VGG-16 backbone + artist head.

    Attributes:
      num_classes: number of artists.
      head: "pooled" or "fc" (see the module docstring).
      variant: VGG variant of the backbone ("vgg16_caffe": the Oxford weights as released, max pooling).
      taps: the taps whose statistics the pooled head reads.
      fc_width: width of fc6 and fc7 ("fc" head; 4096 in VGG-16).
      dropout: dropout rate before the last dense layer(s) (training only).
      dtype: computation dtype.

    Call:
      images: float[B, H, W, 3] RGB in [0, 1] (H = W = 224 for the "fc" head); train: enables dropout
      (needs a "dropout" rng).
      Returns logits float32[B, num_classes].
    """

    num_classes: int
    head: str = "pooled"
    variant: str = "vgg16_caffe"
    taps: Sequence[str] = DEFAULT_TAPS
    fc_width: int = 4096
    dropout: float = 0.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array, *, train: bool = False) -> jax.Array:
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; valid: {', '.join(HEADS)}")
        taps = ("relu5_3",) if self.head == "fc" else tuple(self.taps)
        feats = self._backbone(images, taps)
        if self.head == "pooled":
            x = nn.LayerNorm(name="norm")(pooled_statistics(feats, taps))
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
            return nn.Dense(self.num_classes, name="logits")(x).astype(jnp.float32)
        x = max_pool_2x2(feats["relu5_3"])
        if x.shape[1:3] != (7, 7):
            raise ValueError(f"the 'fc' head needs {FC_INPUT_SIZE} x {FC_INPUT_SIZE} inputs, got {images.shape[1:3]}")
        x = nn.relu(nn.Conv(self.fc_width, (7, 7), padding="VALID", name="fc6", dtype=self.dtype)(x))
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = nn.relu(nn.Conv(self.fc_width, (1, 1), name="fc7", dtype=self.dtype)(x))
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Conv(self.num_classes, (1, 1), name="fc8", dtype=self.dtype)(x)[:, 0, 0].astype(jnp.float32)

    def _backbone(self, images: jax.Array, taps: tuple[str, ...]) -> dict[str, jax.Array]:
        return VGG(self.variant, taps=taps, dtype=self.dtype, name="backbone")(images)


def split_backbone(params: dict, frozen_until: int, variant: str = "vgg16_caffe") -> tuple[dict, dict]:
    """(trainable, frozen) params: the first `frozen_until` backbone convs are frozen, the rest trains.

    The frozen part is ``{"backbone": {...}}``; the trainable part has a "backbone" entry only when some conv
    trains. `merge_params` puts them back together.
    """
    frozen_names = set(conv_names(variant)[:frozen_until])
    backbone = params["backbone"]
    trainable = {k: v for k, v in params.items() if k != "backbone"}
    tuned = {k: v for k, v in backbone.items() if k not in frozen_names}
    if tuned:  # no empty subtree: checkpoints and optimizers handle them unevenly
        trainable["backbone"] = tuned
    return trainable, {"backbone": {k: v for k, v in backbone.items() if k in frozen_names}}


def merge_params(trainable: dict, frozen: dict) -> dict:
    """Inverse of `split_backbone`."""
    merged = dict(trainable)
    merged["backbone"] = {**frozen.get("backbone", {}), **trainable.get("backbone", {})}
    return merged
