"""Mixed precision (`--dtype bfloat16`): convolutions in bfloat16, losses, statistics and parameters in float32.

On real weights (the ImageNet VGG-16 installed with jax-ast as encoder and loss networks, the bundled sample
images at 64 px) the bfloat16 objective's terms stay within 1% of float32's; a bfloat16 training run works
end to end and keeps float32 parameters and optimizer state (tests/test_step_pipeline.py's training run,
which runs in bfloat16).
"""

import csv
import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ast.configs import default_config
from train.data_setup import make_stream
from train.factory import create_run
from train.step import objective

REAL = dict(encoder="vgg16_normalised", crop_size=64, batch_size=8, style_weight=1.0, stage="transfer")


def _objective_terms(cfg, batch):
    """{term: mean over the batch} of `train.step.objective` at the run's initial parameters."""
    run = create_run(cfg)
    constants = run.with_style_weight(1.0)
    fn = jax.jit(lambda p, s, b, c: objective(p, s, b, c, spec=run.spec)[1][0])
    return {k: float(jnp.mean(v)) for k, v in fn(run.state.params, run.state.batch_stats, batch, constants).items()}


@pytest.mark.parametrize("arch, loss", [("adain", "balanced"), ("linear", "classic")])
def test_bfloat16_loss_terms_within_one_percent_of_float32_on_real_weights(arch, loss):
    cfg = default_config(arch, loss, **REAL)
    batch = {k: v[:2] for k, v in make_stream(cfg).batch_at(0).items()}  # two real sample pairs, 64 px
    float32 = _objective_terms(cfg, batch)
    bfloat16 = _objective_terms(cfg.replace(dtype="bfloat16"), batch)
    assert set(bfloat16) == set(float32)
    for term in ("content", "style", "loss"):
        assert float32[term] > 0
        assert abs(bfloat16[term] - float32[term]) <= 0.01 * abs(float32[term]), (term, bfloat16[term], float32[term])
    # bfloat16 really computes differently (the comparison above is not float32 against itself).
    assert any(bfloat16[k] != float32[k] for k in float32)


def test_bfloat16_step_convolves_in_bfloat16_and_keeps_float32_state():
    """Every 3x3 convolution of the bfloat16 step (model, loss networks, backward) has bfloat16 operands;
    gradients arrive in float32 for the float32 parameters."""
    cfg = default_config("adain", "balanced", vgg_weights="random", loss_vgg_weights="random", crop_size=32,
                         batch_size=8, dtype="bfloat16")
    run = create_run(cfg)
    batch = {k: np.zeros((1, 32, 32, 3), np.uint8) for k in ("content", "style")}
    constants = run.with_style_weight(1.0)

    def loss(params):
        return jnp.mean(objective(params, run.state.batch_stats, batch, constants, spec=run.spec)[0])

    text = jax.jit(jax.grad(loss)).lower(run.state.params).as_text()
    convolutions = [line for line in text.splitlines() if "stablehlo.convolution" in line]
    wide = [line for line in convolutions if re.search(r"tensor<3x3x\d+x\d+xf32>", line)]
    assert len(convolutions) > 20 and not wide, wide[:3]
    grads = jax.eval_shape(jax.grad(loss), run.state.params)
    assert {leaf.dtype for leaf in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}


def test_unknown_dtype_is_one_usage_error(capsys):
    from train.run import main
    with pytest.raises(SystemExit) as exit_info:
        main(["--arch", "adain", "--dtype", "float16"])
    assert exit_info.value.code == 2
    assert "--dtype" in capsys.readouterr().err


def test_eval_in_bfloat16_scores_within_one_percent_of_float32(tmp_path):
    """`eval.run --dtype bfloat16`: the model (random weights) and the real ImageNet VGG-16 loss network convolve
    in bfloat16; every per-pair loss stays within 1% of the float32 run's, and run.json records the dtype."""
    from eval.common import layout
    from eval.score import run as eval_run
    from jax_ast.data import bundled_dir

    base = ["--arch", "adain", "--checkpoint", "random", "--content-dir", str(bundled_dir("content")),
            "--style-dir", str(bundled_dir("style")), "--pairs", "4", "--size", "32", "--batch-size", "8",
            "--no-progress", "--no-figures"]
    rows = {}
    for dtype in ("float32", "bfloat16"):
        out = tmp_path / dtype
        assert eval_run.main([*base, "--out", str(out), "--dtype", dtype]) == 0
        assert json.loads((out / layout.RUN_JSON).read_text())["dtype"] == dtype
        with open(out / layout.PAIRS_CSV, newline="") as stream:
            rows[dtype] = list(csv.DictReader(stream))
    for name in ("content/total", "classic/total", "balanced/total", "mean_std/total"):
        full = np.array([float(r[name]) for r in rows["float32"]])
        half = np.array([float(r[name]) for r in rows["bfloat16"]])
        np.testing.assert_allclose(half, full, rtol=0.01, err_msg=name)
        assert not np.array_equal(half, full), name
