"""Mixed precision: which dtype convolutions and matmuls compute in.

The policy is the usual one for accelerators: parameters, optimizer state, Grams, norms, statistics and losses
stay float32; a ``bfloat16`` run builds the networks and loss networks with ``dtype=bfloat16``, so every layer
casts its float32 parameters and its input to bfloat16 where it is applied (inside the differentiated function,
so gradients arrive in float32 for the float32 master weights). Statistics code upcasts its inputs to float32
itself (`to_float32`, `jax_ast.ops.accumulation_dtype`); docs/performance.md has the measured differences.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def parse_dtype(name: str) -> Any:
    """'float32' or 'bfloat16' -> the jnp dtype; ValueError naming the choices otherwise."""
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; choose one of: {', '.join(DTYPES)}")
    return DTYPES[name]


def cast_floating(tree: Any, dtype: Any) -> Any:
    """Every floating leaf of `tree` cast to `dtype`; integer and boolean leaves unchanged."""
    def cast(leaf):
        leaf = jnp.asarray(leaf)
        return leaf.astype(dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf
    return jax.tree.map(cast, tree)


def to_float32(tree: Any) -> Any:
    """`cast_floating(tree, float32)`: for statistics, Grams and losses of low-precision features."""
    return cast_floating(tree, jnp.float32)
