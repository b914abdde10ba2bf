"""What the benchmarks run on: the bundled photos and the real ImageNet VGG-16 (or, on request, random VGGs).

Both frameworks get the same images and the same weights. By default the VGG parts are the real ImageNet
VGG-16 installed with jax-ast, as ``--preset cpu`` training uses it: `vgg16_normalised` as the encoder of
AdaIN, SANet and LinearTransfer (and LinearTransfer's native loss network) and `vgg16_slim` as Magenta's
and the paper's loss network. The rest (decoders, transforms, Magenta) starts from a seeded random init, as
training does without ``--pretrained``. ``weights="random"`` keeps the layouts and randomises the VGGs too.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from jax_ast import imageio
from jax_ast import archs
from jax_ast.configs import TrainConfig, default_config
from jax_ast.data import bundled_dir

WEIGHTS = ("imagenet", "random")
ENCODER = "vgg16_normalised"
LOSS_NETWORK = "vgg16_slim"
RANDOM_WARNING = ("!" * 78 + "\nWARNING: --vgg-weights random: every VGG has RANDOM weights. These figures are "
                  "from random\nweights, not from the real ImageNet VGG-16 the benchmark uses by default.\n" + "!" * 78)


def has_twin(arch: str) -> bool:
    """Whether `benchmarks.torch_nets` has a PyTorch twin of `arch` (needs torch). The benchmarks skip a
    network without one (e.g. one registered from outside jax-ast) whenever they compare against torch."""
    from benchmarks.torch_nets import NETWORKS  # noqa: PLC0415 - torch is optional

    return arch in NETWORKS


def bench_config(arch: str, loss: str = "native", *, weights: str = "imagenet", **overrides: Any) -> TrainConfig:
    """The `TrainConfig` both frameworks are built from: the VGG-16 encoder and loss networks, `weights` VGGs."""
    if weights not in WEIGHTS:
        raise ValueError(f"unknown VGG weights {weights!r}; valid: {', '.join(WEIGHTS)}")
    vgg = {"encoder": ENCODER} if archs.get(arch).original_encoder is not None else {}
    if weights == "random":
        vgg.update(vgg_weights="random", loss_vgg_weights="random", native_loss_weights="random")
    return default_config(arch, loss, loss_network=LOSS_NETWORK, **vgg, **overrides)


@functools.lru_cache(maxsize=4)
def variables_for(arch: str, weights: str = "imagenet") -> tuple[Any, dict]:
    """(model, variables) as a training run starts: `weights` VGG encoder, seeded random init elsewhere
    (cached: the same weights for every setting of a network)."""
    from train.weights import initial_variables

    cfg = bench_config(arch, weights=weights)
    model = cfg.plugin.build(**cfg.model_kwargs())
    params, batch_stats = initial_variables(model, cfg)
    return model, {"params": params, **({"batch_stats": batch_stats} if batch_stats else {})}


def photos(kind: str, count: int, size: int, offset: int = 0) -> np.ndarray:
    """`count` bundled `kind` ("content" | "style") photos from index `offset` on (cycling), float32
    [count, size, size, 3] RGB in [0, 1]."""
    paths = imageio.list_images(bundled_dir(kind))
    return np.stack([imageio.load_image(paths[(offset + i) % len(paths)], size=size, mode="exact")
                     for i in range(count)])


def photo_batches(batch: int, size: int, count: int = 2) -> list[dict[str, np.ndarray]]:
    """`count` different batches {"content", "style"}: uint8 [batch, size, size, 3], as the data stream yields."""
    return [{kind: np.round(photos(kind, batch, size, offset=i * batch) * 255).astype(np.uint8)
             for kind in ("content", "style")} for i in range(count)]
