"""Training configs sized for the test suite: random weights, tiny crops, every check's interval short.

Shared by `test_train.py` and the scripts it runs in subprocesses (`overfit_one_pair.py`), so a script does not
import a test module (and pytest with it).
"""

from __future__ import annotations

from jax_ast.configs import TrainConfig, default_config

RANDOM = dict(vgg_weights="random", loss_vgg_weights="random", native_loss_weights="random")
TINY = dict(RANDOM, batch_size=8, crop_size=32, log_every=1, checkpoint_every=3, sample_every=1000,
            auto_style_batches=1, decoder_iterations=2)
# Each network at a multiple of 16 just above its minimum crop (magenta 43: Inception-v3 up to Mixed_6e).
SIZES = {"magenta": 48, "sanet": 32}


def tiny_config(arch: str, loss: str, **overrides) -> TrainConfig:
    """`default_config(arch, loss)` with `TINY` at the network's `SIZES` crop, then `overrides`."""
    values = dict(TINY, crop_size=SIZES.get(arch, 32))
    values.update(overrides)
    return default_config(arch, loss, **values)
