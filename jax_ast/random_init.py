"""Seeded random variables of a network: one init program per network, shared by training and evaluation.

`train.weights.initial_variables` (a run's start) and `eval.inference.loading.random_model` (``--weights
random``) both call `random_variables`, so they start from the same numbers and, with the persistent
compilation cache on (`jax_ast.compilation_cache`), compile a network's init once between them.

A run whose every parameter comes from files (Magenta mobile from its release, ...) needs no random numbers:
`RandomInit.shapes` gives the tree's shapes without compiling anything, and `RandomInit.fill` runs the init
program only when some leaf is still a shape, taking the same numbers `random_variables` gives. Both use one
traced program, so a run's start traces its network's init once.
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


class RandomInit:
    """One network's init program (`init_program`), traced once for everything a run's start asks of it: the
    variables' shapes (`shapes`), their numbers for a seed (`variables`) and a partly loaded tree completed
    with them (`fill`)."""

    def __init__(self, model: Any, side: int):
        self.program = init_program(model, side)

    def shapes(self) -> dict:
        """`model.init`'s variables as `jax.ShapeDtypeStruct` leaves: traced, never compiled or run."""
        return jax.eval_shape(self.program, jax.random.key(0))

    def variables(self, seed: int) -> dict:
        """`model.init`'s variables (params, batch_stats, ...) for ``jax.random.key(seed)``.

        The program runs once, so it is compiled without XLA's slow optimisations (`FAST_COMPILE`): about 3x
        less compile time on CPU for the same threefry numbers.
        """
        key = jax.random.key(seed)
        return self.program.lower(key).compile(compiler_options=FAST_COMPILE)(key)

    def fill(self, variables: Any, seed: int) -> Any:
        """`variables` with each `jax.ShapeDtypeStruct` leaf replaced by `self.variables(seed)`'s leaf at the
        same path (`variables` as `shapes` gave it, with some parts swapped for loaded arrays). When no leaf is
        abstract, nothing is compiled: the init program would only make numbers that are thrown away."""
        def abstract(leaf):
            return isinstance(leaf, jax.ShapeDtypeStruct)

        if not any(abstract(leaf) for leaf in jax.tree.leaves(variables)):
            return variables
        random = self.variables(seed)

        def fill(path, leaf):
            if not abstract(leaf):
                return leaf
            value = random
            for entry in path:
                value = value[getattr(entry, "key", getattr(entry, "idx", entry))]
            if (value.shape, value.dtype) != (leaf.shape, leaf.dtype):
                raise ValueError(f"{jax.tree_util.keystr(path)}: init gives {value.shape} {value.dtype}, the "
                                 f"tree expects {leaf.shape} {leaf.dtype}")
            return value

        return jax.tree_util.tree_map_with_path(fill, variables)


def random_variables(model: Any, seed: int, side: int) -> dict:
    """`model.init`'s variables for ``jax.random.key(seed)`` (`RandomInit.variables`)."""
    return RandomInit(model, side).variables(seed)
