"""The registry of style-transfer networks: one plug-in module per network, each defining `PLUGIN`.

    from jax_ast import archs
    plugin = archs.get("linear")          # an `Architecture`
    model = archs.build("linear", variant="r31")

Everything else derives from the plug-ins: `names()` (and `ARCHS`, the names found when first asked), the
config's per-network options and their flags, the native style terms that classic/balanced replace, the
release files known to `jax_ast.pretrained.fetch`. A plug-in is found in three ways, in this order:

* a module of this package that defines `PLUGIN` (the built-in networks);
* an entry point of group ``jax_ast.archs`` (an installed package: ``name = "pkg.module"``);
* a module path in ``$JAX_AST_PLUGINS`` (comma-separated module paths, e.g. ``mypackage.mynet``);

or added at run time with `register(plugin)`, before a CLI builds its parser (its `main`): the CLIs read
the names when they parse, not when they are imported.
docs/architecture.md, Adding a fifth network.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import os
import pkgutil
from typing import Any

from jax_ast.archs.base import (Architecture, InstalledRelease, NoOptions, ObjectiveInputs, ObjectiveResult,
                                find_file, options_fields)
from jax_ast.pretrained.cache import register_files

PLUGINS_ENV = "JAX_AST_PLUGINS"
ENTRY_POINT_GROUP = "jax_ast.archs"

__all__ = ["ARCHS", "Architecture", "InstalledRelease", "NoOptions", "ObjectiveInputs", "ObjectiveResult", "build",
           "default_augment", "find_file", "get", "installed", "names", "options_fields", "register"]

_REGISTRY: dict[str, Architecture] = {}
_discovered = False


def register(plugin: Architecture) -> Architecture:
    """Add a network; registering the same plug-in again is a no-op.

    Raises:
      ValueError: another plug-in already has that name, or an option of the same name but another type.
    """
    current = _REGISTRY.get(plugin.name)
    if current is plugin:
        return plugin
    if current is not None:
        raise ValueError(f"architecture {plugin.name!r} is already registered (by {current.title})")
    if not isinstance(plugin, Architecture):
        raise ValueError(f"a plug-in must be a jax_ast.archs.Architecture, got {type(plugin).__name__}")
    if not (dataclasses.is_dataclass(plugin.options) and plugin.options.__dataclass_params__.frozen):
        raise ValueError(f"{plugin.name}: options must be a frozen dataclass (configs are hashable)")
    theirs = {name: field.type for other in _REGISTRY.values() for name, field in options_fields(other).items()}
    clashes = [name for name, field in options_fields(plugin).items() if theirs.get(name, field.type) != field.type]
    if clashes:
        raise ValueError(f"{plugin.name}: options {clashes} exist in another plug-in with another type")
    register_files(plugin.downloads)
    _REGISTRY[plugin.name] = plugin
    return plugin


def _register_module(path: str) -> None:
    plugin = getattr(importlib.import_module(path), "PLUGIN", None)
    if plugin is None:
        raise ValueError(f"plug-in module {path} defines no PLUGIN")
    register(plugin)


def _discover() -> None:
    """Register the built-in plug-ins, the entry points and $JAX_AST_PLUGINS, once."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    builtins = []
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            plugin = getattr(importlib.import_module(f"{__name__}.{info.name}"), "PLUGIN", None)
            if plugin is not None:
                builtins.append(plugin)
    for plugin in sorted(builtins, key=lambda p: (p.order, p.name)):
        register(plugin)
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        loaded = entry.load()
        register(loaded if isinstance(loaded, Architecture) else loaded.PLUGIN)
    for path in filter(None, (p.strip() for p in os.environ.get(PLUGINS_ENV, "").split(","))):
        _register_module(path)


def names() -> tuple[str, ...]:
    """The --arch names of every registered network, the built-in ones first."""
    _discover()
    return tuple(_REGISTRY)


def get(name: str) -> Architecture:
    """The plug-in of network `name`.

    Raises:
      ValueError: for an unknown name, listing the valid ones.
    """
    _discover()
    if name not in _REGISTRY:
        raise ValueError(f"unknown architecture {name!r}; valid names: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def installed() -> tuple[tuple[str, str | None], ...]:
    """(name, variant) of every network variant whose trained weights are installed with jax-ast
    (`Architecture.installed`), in listing order; the first is what eval runs when given no weights."""
    return tuple((name, variant) for name in names() for variant in get(name).installed)


def build(arch: str, **config: Any):
    """Build a network by name, e.g. ``build("linear", variant="r41")`` (the factory of its plug-in).

    Raises:
      ValueError: for an unknown name, listing the valid ones.
    """
    return get(arch).build(**config)


def default_augment(arch: str, crop: int = 256) -> tuple[Any, Any]:
    """(content, style) `jax_ast.data.CropSpec` of the original training recipe of `arch`, scaled to `crop`.

    Raises:
      ValueError: for an unknown arch, listing the valid ones.
    """
    return get(arch).augment(crop)


def __getattr__(name: str) -> Any:  # PEP 562: ARCHS is read after the plug-ins are found
    if name == "ARCHS":
        return names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
