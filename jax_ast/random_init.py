"""Seeded random variables of a network: one init program per network, shared by training and evaluation.

`train.weights.initial_variables` (a run's start) and `eval.inference.loading.random_model` (``--weights
random``) both call `random_variables`, so they start from the same numbers and, with the persistent
compilation cache on (`jax_ast.compilation_cache`), compile a network's init once between them.

A run whose every parameter comes from files (Magenta mobile from its release, ...) needs no random numbers:
`abstract_variables` gives the tree's shapes without compiling anything, and `fill_random` runs the init
program only when some leaf is still a shape, taking the same numbers `random_variables` gives.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jax_ast.xla_flags import FAST_COMPILE


def init_program(model: Any, side: int) -> Any:
    """``jax.jit`` of key -> `model.init`'s variables, traced on all-zero [1, side, side, 3] content and style.

    The probe images are constants of the traced function, not its arguments: init returns only variables, so
    JAX drops the forward pass before lowering, and the program (the random number generation alone) is the
    same for every `side`.
    """
    probe = np.zeros((1, side, side, 3), np.float32)

    def init(rng: jax.Array) -> dict:
        return model.init(rng, probe, probe)

    return jax.jit(init)


def random_variables(model: Any, seed: int, side: int) -> dict:
    """`model.init`'s variables (params, batch_stats, ...) for ``jax.random.key(seed)`` (`init_program`).

    The program runs once, so it is compiled without XLA's slow optimisations (`FAST_COMPILE`): about 3x less
    compile time on CPU for the same threefry numbers.
    """
    key = jax.random.key(seed)
    return init_program(model, side).lower(key).compile(compiler_options=FAST_COMPILE)(key)


def abstract_variables(model: Any, side: int) -> dict:
    """`model.init`'s variables as `jax.ShapeDtypeStruct` leaves: traced, never compiled or run."""
    return jax.eval_shape(init_program(model, side), jax.random.key(0))


def fill_random(variables: Any, model: Any, seed: int, side: int) -> Any:
    """`variables` with each `jax.ShapeDtypeStruct` leaf replaced by `random_variables`' leaf at the same path
    (`variables` as `abstract_variables` gave it, with some parts swapped for loaded arrays). When no leaf is
    abstract, nothing is compiled: the init program would only make numbers that are thrown away."""
    def abstract(leaf):
        return isinstance(leaf, jax.ShapeDtypeStruct)

    if not any(abstract(leaf) for leaf in jax.tree.leaves(variables)):
        return variables
    random = random_variables(model, seed, side)

    def fill(path, leaf):
        if not abstract(leaf):
            return leaf
        value = random
        for entry in path:
            value = value[getattr(entry, "key", getattr(entry, "idx", entry))]
        if (value.shape, value.dtype) != (leaf.shape, leaf.dtype):
            raise ValueError(f"{jax.tree_util.keystr(path)}: init gives {value.shape} {value.dtype}, the tree "
                             f"expects {leaf.shape} {leaf.dtype}")
        return value

    return jax.tree_util.tree_map_with_path(fill, variables)
