"""Builds the host-side data stream of a training run from its config (the bridge to `jax_ast.data`)."""

from __future__ import annotations

import jax

from jax_ast.archs import default_augment
from jax_ast.configs import TrainConfig
from jax_ast.data import StyleTransferStream, open_source
from jax_ast.parallel import local_batch_size


def make_stream(cfg: TrainConfig) -> StyleTransferStream:
    """This host's shard of the content x style stream: folders, tfds datasets or the bundled samples."""
    content = open_source("content", folder=cfg.data.content_dir, tfds_name=cfg.data.content_tfds, data_dir=cfg.data.data_dir)
    style = open_source("style", folder=cfg.data.style_dir, tfds_name=cfg.data.style_tfds, data_dir=cfg.data.data_dir)
    content_spec, style_spec = default_augment(cfg.model.arch, cfg.data.crop_size)
    return StyleTransferStream(content, style, batch_size=local_batch_size(cfg.data.batch_size), content_spec=content_spec,
                               style_spec=style_spec, seed=cfg.run.seed, process_index=jax.process_index(),
                               process_count=jax.process_count())
