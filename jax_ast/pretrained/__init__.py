"""The weights boundary: reading original checkpoints, name tables, cache/download with checksums.

Per-network importers live in sibling modules (``jax_ast.pretrained.adain`` etc.) and are not imported here.
"""

from jax_ast.pretrained.cache import DownloadError, cache_dir, fetch
from jax_ast.pretrained.convert import WeightsError, torch_to_flax, vgg_table
from jax_ast.pretrained.native import load_params, save_params
from jax_ast.pretrained.torch_format import read_state_dict
from jax_ast.pretrained.vgg import load_vgg

__all__ = ["DownloadError", "WeightsError", "cache_dir", "fetch", "load_params", "load_vgg", "read_state_dict",
           "save_params", "torch_to_flax", "vgg_table"]
