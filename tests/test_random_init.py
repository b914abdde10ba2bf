"""Seeded random init: one program per network, the same numbers for training and evaluation."""

import jax
import numpy as np

from eval.inference.loading import random_model
from jax_ast import archs
from jax_ast.configs import default_config
from jax_ast.random_init import RandomInit, init_program, random_variables
from train.weights import initial_variables


def _equal(a, b):
    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_training_starts_from_evals_random_weights():
    """`--weights random` in eval and a training run's start (same seed) share their numbers, apart from the
    VGG encoder a run loads (here its random VGG, another init)."""
    model, variables = random_model("adain", seed=3)
    cfg = default_config("adain", "native", vgg_weights="random", seed=3)
    params, _ = initial_variables(archs.build("adain", **cfg.model_kwargs()), cfg)
    assert set(params) == set(variables["params"]) and "encoder" in params
    for part in set(params) - {"encoder"}:
        assert _equal(params[part], variables["params"][part]), part
    assert not _equal(random_model("adain", seed=4)[1]["params"]["decoder"], variables["params"]["decoder"])


def test_one_program_for_any_probe_side():
    """The init program holds no forward pass, so every probe side lowers to the same program (one cache
    entry per network) and gives the same numbers."""
    model, key = archs.build("adain"), jax.random.key(0)
    texts = [init_program(model, side).lower(key).as_text() for side in (32, 48)]
    assert texts[0] == texts[1] and "convolution" not in texts[0]
    assert _equal(random_variables(model, 0, 32), random_variables(model, 0, 48))


def test_only_leaves_left_abstract_get_random_numbers(monkeypatch):
    """A run's start takes shapes first (`RandomInit.shapes`), swaps in what it loads, and `RandomInit.fill`
    gives the rest `random_variables`' numbers; with nothing left abstract it compiles no init program."""
    model = archs.build("adain")
    init = RandomInit(model, 32)
    abstract, random = init.shapes(), random_variables(model, 5, 32)
    assert jax.tree.structure(abstract) == jax.tree.structure(random)
    loaded = jax.tree.map(lambda leaf: np.ones(leaf.shape, leaf.dtype), abstract["params"]["decoder"])
    filled = init.fill({"params": {**abstract["params"], "decoder": loaded}}, 5)
    assert _equal(filled["params"]["encoder"], random["params"]["encoder"])
    assert _equal(filled["params"]["decoder"], loaded)

    def no_init(*args):
        raise AssertionError("the init program ran although every leaf was loaded")

    monkeypatch.setattr(RandomInit, "variables", no_init)
    whole = {"params": {**filled["params"]}}
    assert init.fill(whole, 5) is whole
