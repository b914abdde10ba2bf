"""Training on one content/style pair, repeated, for test_train.py's overfitting check.

On the test process's 8 fake devices the global batch would be 8 copies of the pair: the same gradient as the
pair alone at 8 times the cost. test_train.py runs this script in a subprocess with one device instead:
    XLA_FLAGS=--xla_force_host_platform_device_count=1 python tests/overfit_one_pair.py OUT_DIR ARCH:LOSS:CROP:STEPS...
which trains each run (batch 1, Adam lr 1e-3, no decay, random weights) and writes OUT_DIR/ARCH-LOSS.json, the
list of logged training losses.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from jax_ast import compilation_cache
from train import data_setup, loop

from tiny_runs import tiny_config  # noqa: E402  (this folder is the script's)


class FixedStream:
    """The same batch forever, with the stream's state interface."""

    def __init__(self, batch):
        self.batch, self.step, self.skipped = batch, 0, 0

    def __next__(self):
        self.step += 1
        return self.batch

    def state(self):
        return {"step": self.step, "skipped": self.skipped}

    def restore(self, state):
        self.step = state["step"]


def one_pair_stream(config):
    """The first pair of the configured stream, as a batch of `config.data.batch_size` copies."""
    pair = data_setup.make_stream(config).batch_at(0)
    return FixedStream({k: np.repeat(v[:1], config.data.batch_size, axis=0) for k, v in pair.items()})


def losses(arch: str, loss: str, crop: int, steps: int) -> list[float]:
    """The training loss at every step of `steps` on one pair."""
    cfg = tiny_config(arch, loss, iterations=steps, crop_size=crop, learning_rate=1e-3, lr_decay=0.0,
                      batch_size=1, checkpoint_every=steps)
    loop.make_stream = one_pair_stream
    with tempfile.TemporaryDirectory() as workdir:
        loop.train(cfg, Path(workdir))
        lines = (Path(workdir) / "metrics.jsonl").read_text().splitlines()
    return [row["train/loss"] for row in map(json.loads, lines) if "train/loss" in row]


def main(out: Path, runs: list[str]) -> None:
    compilation_cache.enable()  # the test session's folder
    for run in runs:
        arch, loss, crop, steps = run.split(":")
        (out / f"{arch}-{loss}.json").write_text(json.dumps(losses(arch, loss, int(crop), int(steps))))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
