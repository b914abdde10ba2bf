"""The registry of style-transfer networks: one plug-in module per network (`jax_ast.archs.<name>`).

    from jax_ast import archs
    plugin = archs.get("linear")          # an `Architecture`
    model = plugin.build(**plugin.model_kwargs(variant="r31"))

Adding a network means adding one module that defines `PLUGIN` and its name to `ARCHS`.
"""

from __future__ import annotations

import functools
import importlib

from jax_ast.archs.base import Architecture, ObjectiveInputs, ObjectiveResult, find_file

ARCHS: tuple[str, ...] = ("adain", "sanet", "linear", "magenta")

__all__ = ["ARCHS", "Architecture", "ObjectiveInputs", "ObjectiveResult", "find_file", "get"]


@functools.cache
def get(name: str) -> Architecture:
    """The plug-in of network `name`.

    Raises:
      ValueError: for an unknown name, listing the valid ones.
    """
    if name not in ARCHS:
        raise ValueError(f"unknown architecture {name!r}; valid names: {', '.join(ARCHS)}")
    plugin = importlib.import_module(f"jax_ast.archs.{name}").PLUGIN
    if plugin.name != name:
        raise ValueError(f"jax_ast.archs.{name} defines the plug-in of {plugin.name!r}")
    return plugin
