"""The weights boundary: reading original checkpoints, name tables, cache/download with checksums.

The per-network importers share one convention: ``load_<arch>(*release_files, **model_config) ->
(model, variables)`` with ``variables = {"params": ..., ["batch_stats": ...]}`` of float32 jax arrays.
They are re-exported here lazily (PEP 562), so ``import jax_ast.pretrained`` does not import the models:
``load_adain``, ``load_sanet``, ``load_linear``, ``load_magenta``, ``load_magenta_mobile``.
"""

import importlib
from typing import Any

from jax_ast.pretrained.cache import DownloadError, cache_dir, fetch
from jax_ast.pretrained.convert import WeightsError, torch_to_flax, vgg_table
from jax_ast.pretrained.params_file import load_params, save_params
from jax_ast.pretrained.torch_format import read_state_dict
from jax_ast.pretrained.vgg import load_vgg

# importer name -> sibling module defining it; imported on first access.
_IMPORTERS = {"load_adain": "adain", "load_sanet": "sanet", "load_linear": "linear", "load_magenta": "magenta",
              "load_magenta_mobile": "magenta_mobile"}

__all__ = ["DownloadError", "WeightsError", "cache_dir", "fetch", "load_adain", "load_linear", "load_magenta",
           "load_magenta_mobile", "load_params", "load_sanet", "load_vgg", "read_state_dict", "save_params", "torch_to_flax", "vgg_table"]


def __getattr__(name: str) -> Any:
    if name in _IMPORTERS:
        return getattr(importlib.import_module(f"{__name__}.{_IMPORTERS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_IMPORTERS))
