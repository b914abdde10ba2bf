"""Training and evaluation reach the classic/balanced loss through one function, `jax_ast.losses.loss_terms`:
the training objective's style term and `eval`'s per-pair scores agree exactly on the same images."""

import numpy as np
import pytest

import jax_ast.losses as L
from eval.score.metrics import PairScorer
from jax_ast.configs import default_config
from train.factory import create_run
from train.step import objective


@pytest.mark.parametrize("loss", ["balanced", "classic"])
def test_training_objective_and_eval_scores_are_identical(loss):
    cfg = default_config("adain", loss, vgg_weights="random", loss_vgg_weights="random", crop_size=32,
                         batch_size=2, style_weight="1")
    run = create_run(cfg)
    rng = np.random.default_rng(0)
    batch = {k: rng.integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8) for k in ("content", "style")}
    # Score the content image as if the network had output it: the style term of that output.
    metrics = objective(run.state.params, run.state.batch_stats, batch, run.with_style_weight(1.0), spec=run.spec,
                        output_as="content")[1][0]
    scorer = PairScorer(run.spec.paper_net, run.constants["paper_loss_net"], style_layers=L.PAPER_STYLE_LAYERS,
                        content_layers=L.PAPER_CONTENT_LAYERS)
    content, style = (batch[k].astype(np.float32) / 255.0 for k in ("content", "style"))
    scores = scorer.score(content, style, content)
    # The same function on the same images; what differs is float32 rounding (eager vs compiled, and the
    # eval batch runs content and style through the network together): ~1e-6 relative.
    np.testing.assert_allclose(np.asarray(metrics["style"]), scores[f"{loss}/total"], rtol=1e-5)
    for layer in L.PAPER_STYLE_LAYERS:
        np.testing.assert_allclose(np.asarray(metrics[f"{loss}/{layer}"]), scores[f"{loss}/{layer}"], rtol=1e-5)
    assert np.all(scores[f"{loss}/total"] > 0)
