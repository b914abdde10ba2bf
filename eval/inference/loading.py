"""Model loading for every eval entry point: release files, a params file, seeded random weights, or (no
``--weights``) the trained weights installed with jax-ast.

`load_model` is the one way `eval.stylize`, `eval.run`, `eval.reproduce`, the benchmarks and the tests turn
``--arch`` and ``--weights`` into ``(model, variables)``; the inference options of a network
(`with_attention_chunk`) and its default stylisation sizes (`default_sizes`, `default_style_size`) live here too.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np

from eval.common import guards
from jax_ast import archs
from jax_ast.errors import CheckpointError
from jax_ast.pretrained import params_file
from jax_ast.pretrained.convert import check_finite
from jax_ast.random_init import random_variables


def default_sizes() -> dict[str, int]:
    """{arch: shorter-side resize} of every registered network (its plug-in's `stylize_size`: the network's own
    inference default, docs/architectures.md; SANet's original runs at the images' own size, which can exhaust
    memory with its quadratic attention, so 512 is used like AdaIN)."""
    return {arch: archs.get(arch).stylize_size for arch in archs.names()}


# SANet's default attention chunk: the relu4_1 positions of a 512x512 content (64*64), so the default size runs
# unchunked and larger ones hold at most [4096, style positions] attention weights at a time.
DEFAULT_ATTENTION_CHUNK = 4096

PROBE_SIZE = 64  # init probe: a multiple of 16 (SANet) and large enough for Magenta's Inception


def load_model(arch: str, weights: str | None, *, variant: str | None = None, seed: int = 0) -> tuple[Any, Any]:
    """(model, variables) for `arch` from release files, a params file, 'random', or None: the variant's
    weights installed with jax-ast (`installed_release`).

    Loaded weights are checked once here, so that a bad file gives one `CheckpointError` instead of black
    images or a flax error per batch: every value must be finite, and a params file must hold exactly the
    model's parameter tree.
    """
    config = {} if variant is None else {"variant": variant}
    try:
        if weights == "random":
            return _random_model(arch, config, seed)
        if weights is None:
            model, variables = _load_installed(arch, variant)
            check_finite(variables, installed_release(arch, variant).description)
            return model, variables
        path = Path(weights)
        if path.is_file() and params_file.is_params_file(path):
            model, variables = _load_params_file(arch, path, config)
        else:
            model, variables = _load_release(arch, path, config)
        check_finite(variables, weights)
        return model, variables
    except (ValueError, TypeError, OSError, KeyError, ImportError) as error:
        if isinstance(error, CheckpointError):
            raise
        given = f"--weights {weights}" if weights is not None else "(the weights installed with jax-ast)"
        raise CheckpointError(f"cannot load --arch {arch} {given}: {type(error).__name__}: {error}") from error


def installed_release(arch: str, variant: str | None = None) -> archs.InstalledRelease | None:
    """The trained weights of `arch` (`variant`, default the network's default) installed with jax-ast, or None."""
    plugin = archs.get(arch)
    return plugin.installed.get(variant or plugin.default_variant)


def installed_flags() -> str:
    """The ``--arch A [--variant V]`` flags of every network variant with installed weights, for messages."""
    return " or ".join(f"--arch {arch}" + (f" --variant {variant}" if variant else "")
                       for arch, variant in archs.installed()) or "none"


def _load_installed(arch: str, variant: str | None) -> tuple[Any, Any]:
    release = installed_release(arch, variant)
    if release is None:
        variant_flag = f" --variant {variant or archs.get(arch).default_variant}" if archs.get(arch).variants else ""
        raise CheckpointError(f"--arch {arch}{variant_flag} has no weights installed with jax-ast: give --weights "
                              f"(`--list-archs` shows the files each network takes); installed: {installed_flags()}")
    return release.load()


def default_style_size(arch: str, variant: str | None, size: int) -> int:
    """Default style shorter side of `eval.stylize`: the plug-in's own for the variant, else the content `size`."""
    plugin = archs.get(arch)
    return plugin.stylize_style_sizes.get(variant or plugin.default_variant, size)


def random_model(arch: str, *, seed: int = 0, **config: Any) -> tuple[Any, Any]:
    """(model, seeded random variables) for `arch`, without the warning banner (tests)."""
    return _random_init(arch, tuple(sorted(config.items())), seed)


def _random_model(arch: str, config: dict, seed: int) -> tuple[Any, Any]:
    model, variables = random_model(arch, seed=seed, **config)
    banner = "!" * 78
    print(f"{banner}\nWARNING: --weights random: {arch} has RANDOM weights (seed {seed}).\n"
          f"The output images are MEANINGLESS; use this only for smoke tests.\n{banner}", file=sys.stderr)
    return model, variables


@functools.lru_cache(maxsize=4)
def _random_init(arch: str, config: tuple, seed: int) -> tuple[Any, Any]:
    """Seeded random variables (the same as a training run's start with this seed), cached per process."""
    model = archs.build(arch, **dict(config))
    return model, random_variables(model, seed, archs.get(arch).init_size)


def _load_release(arch: str, path: Path, config: dict) -> tuple[Any, Any]:
    """Original release files through the plug-in's importer: ``load_release(*files, **config)``."""
    plugin = archs.get(arch)
    if plugin.release_patterns is not None and not path.is_dir():
        raise CheckpointError(f"--arch {arch} needs a directory with {plugin.release_files} or a params "
                              f"file, got {path}")
    try:
        files = plugin.find_release_files(path, config.get("variant"))
    except FileNotFoundError as error:
        raise CheckpointError(str(error)) from None
    return plugin.load_release(*files, **config)


def _load_params_file(arch: str, path: Path, config: dict) -> tuple[Any, Any]:
    """A file written by `jax_ast.pretrained.save_params` (variables or params); its meta must name `arch`."""
    variables, meta = params_file.load_params(path)
    if meta.get("arch") != arch:
        raise CheckpointError(f"{path} holds params for arch {meta.get('arch')!r}, not {arch!r}")
    for key in ("variant", "encoder"):  # how the network was trained, e.g. on the ImageNet VGG-16 encoder
        if key in meta and key not in config:
            config = {**config, key: meta[key]}
    variables = variables if "params" in variables else {"params": variables}
    model = archs.build(arch, **config)
    probe = jax.ShapeDtypeStruct((1, PROBE_SIZE, PROBE_SIZE, 3), np.float32)
    mismatch = guards.tree_mismatch(jax.eval_shape(model.init, jax.random.key(0), probe, probe), variables)
    if mismatch:
        variant = f" --variant {config['variant']}" if "variant" in config else ""
        raise CheckpointError(f"{path} does not match --arch {arch}{variant}: {mismatch}")
    return model, variables


def is_tf_prefix(weights: str) -> bool:
    """A TF checkpoint prefix such as ``.../model.ckpt`` names files that exist only with suffixes."""
    return Path(weights + ".index").exists()


# ------------------------------------------------------------------ inference options of a network
# A plug-in declares its inference options (`Architecture.inference_options`); "chunk_size" is SANet's.


def attention_archs() -> list[str]:
    """The networks that take an attention chunk (`with_attention_chunk`)."""
    return [arch for arch in archs.names() if "chunk_size" in archs.get(arch).inference_options]


def with_attention_chunk(model: Any, chunk: int | None) -> Any:
    """SANet with `chunk` content positions per attention chunk (None: the default, 0: unchunked)."""
    if not hasattr(model, "chunk_size"):
        return model
    chunk = DEFAULT_ATTENTION_CHUNK if chunk is None else chunk
    return model.clone(chunk_size=chunk or None)

