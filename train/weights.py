"""Initial parameters of a training run: random init, then the pretrained parts the originals start from.

* The VGG encoder (frozen) always comes from `jax_ast.pretrained.load_vgg` (`--vgg-weights`: a path,
  the cached default, or `random` for smoke runs, which warns loudly). `--encoder vgg16_normalised` swaps the
  original's VGG-19 for the ImageNet VGG-16 installed with jax-ast.
* Loss networks: the VGG-16 of classic/balanced (`--loss-network`, default the installed ImageNet weights)
  and the native one of LinearTransfer and Magenta (`TrainConfig.native_loss_network`).
* `--pretrained` starts from released weights: a directory holding the original files by their
  canonical names, or a params file (`jax_ast.pretrained.save_params`, e.g. the export of a
  `--stage decoder` run). LinearTransfer needs a decoder this way; `train.loop` pre-trains one first
  when none is given.
* Magenta's style predictor starts from ImageNet Inception-v3 when `--inception-weights` is given.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jax_ast.archs import find_file
from jax_ast.configs import TrainConfig
from jax_ast.pretrained.convert import WeightsError, check_finite
from jax_ast.pretrained.params_file import is_params_file, load_params
from jax_ast.pretrained.torch_format import load_torch_params
from jax_ast.pretrained.vgg import load_vgg
from jax_ast.random_init import RandomInit

log = logging.getLogger(__name__)
PAPER_DEEPEST = "relu4_3"
IMAGENET_HINT = ("To train on the real ImageNet VGG-16 that installs with jax-ast instead (no download), add "
                 "--encoder vgg16_normalised; for a run sized for a CPU add --preset cpu as well.")


def _vgg_params(variant: str, weights: str | None, deepest: str, *, original_file: bool = False) -> dict:
    """VGG params up to `deepest`. `original_file`: the default is an original's release file, which may be
    absent; its error then says how to train on the installed ImageNet VGG-16 instead."""
    try:
        _, params = load_vgg(variant, weights, taps=(deepest,))
    except WeightsError as error:
        if original_file and weights is None:
            raise WeightsError(f"{error}\n{IMAGENET_HINT}") from None
        raise
    return dict(params.get("params", params))


def initial_variables(model: Any, cfg: TrainConfig) -> tuple[dict, dict]:
    """(params, batch_stats) of `model` for the start of training (before any checkpoint restore)."""
    plugin = cfg.plugin
    # Shapes first: the parts loaded below replace them, and only what is left gets random numbers (none for
    # a release that holds every parameter, so its run compiles no init program).
    init = RandomInit(model, plugin.init_size)
    variables = init.shapes()
    params = dict(variables["params"])
    batch_stats = dict(variables.get("batch_stats", {}))
    if cfg.encoder_variant is not None:
        # The deepest tap decides which default file is fetched (e.g. LinearTransfer's vgg_r41.pth vs vgg_r51.pth).
        deepest = plugin.encoder_deepest(cfg.model.variant if plugin.variants else None)
        vgg = _vgg_params(cfg.encoder_variant, cfg.weights.vgg_weights, deepest, original_file=cfg.model.encoder == "original")
        missing = sorted(set(params["encoder"]) - set(vgg))
        if missing:
            raise WeightsError(f"VGG weights {cfg.weights.vgg_weights or '(default)'} lack layers {missing}")
        params["encoder"] = {name: vgg[name] for name in params["encoder"]}
    if cfg.weights.pretrained:
        params, batch_stats = _load_pretrained(cfg, params, batch_stats)
    if plugin.initialise is not None:
        variables = plugin.initialise({"params": params, "batch_stats": batch_stats}, cfg)
        params, batch_stats = dict(variables["params"]), dict(variables.get("batch_stats", {}))
    variables = init.fill({"params": params, "batch_stats": batch_stats}, cfg.run.seed)
    params, batch_stats = variables["params"], variables["batch_stats"]
    given = {name: getattr(cfg.weights, name) for name in ("vgg_weights", "pretrained")}
    given.update({name: value for name, value in dataclasses.asdict(cfg.options).items()
                  if name.endswith("_weights") and isinstance(value, str)})  # a plug-in's weight files
    files = [f"--{name.replace('_', '-')} {value}" for name, value in given.items() if value]
    check_finite({"params": params, "batch_stats": batch_stats},
                 "the initial weights" + (f" ({', '.join(files)})" if files else ""))
    return params, batch_stats


def loss_network_params(cfg: TrainConfig) -> dict[str, Any]:
    """{"native_loss_net": params or None, "paper_loss_net": params or None} for `train.step`."""
    native = None
    if cfg.native_loss_network is not None:
        variant, deepest = cfg.native_loss_network
        native = _vgg_params(variant, cfg.weights.native_loss_weights, deepest, original_file=variant == "vgg19_lst")
    paper = None
    if cfg.objective.loss != "native" and cfg.model.stage == "transfer":
        paper = _vgg_params(cfg.objective.loss_network, cfg.weights.loss_vgg_weights, PAPER_DEEPEST)
    return {"native_loss_net": native, "paper_loss_net": paper}


def _load_pretrained(cfg: TrainConfig, params: dict, batch_stats: dict) -> tuple[dict, dict]:
    path = Path(cfg.weights.pretrained)
    if not path.exists():
        raise FileNotFoundError(f"--pretrained {path} does not exist")
    plugin = cfg.plugin
    if path.is_file() and (is_params_file(path) or plugin.release_patterns is not None):
        loaded, meta = load_params(path)  # WeightsError naming the file if it is not one of ours
        if meta.get("arch") not in (None, cfg.model.arch):
            raise WeightsError(f"{path} holds {meta.get('arch')!r} weights, not {cfg.model.arch!r}")
        loaded_stats = loaded.pop("batch_stats", None)
        loaded = loaded.get("params", loaded)
        # A decoder pre-training export also holds the untrained transform of that stage: take its decoder only.
        wanted = {"decoder"} if meta.get("stage") == "decoder" else set(params)
        parts = {k: v for k, v in loaded.items() if k in wanted}
        _check_tree(path, parts, {k: params[k] for k in params if k in wanted and (k in parts or k != "encoder")})
        log.info("pretrained parts %s from %s", sorted(parts), path)
        params = {**params, **jax.tree.map(jnp.asarray, parts)}
        return params, (loaded_stats if loaded_stats is not None else batch_stats)
    if plugin.release_patterns is None:  # one file or TF checkpoint holding every part (Magenta)
        _, variables = plugin.load_release(path)
        return dict(variables["params"]), dict(variables.get("batch_stats", batch_stats))
    if not path.is_dir():
        raise WeightsError(f"--pretrained must be a directory of original files or a params .npz, got {path}")
    return {**params, **_load_original_parts(cfg, path, params)}, batch_stats


def _check_tree(path: Path, loaded: dict, expected: dict) -> None:
    """One WeightsError listing every layer of `expected` (the model's parts, the encoder optional)
    that `loaded` lacks, has extra or has with another shape, so a partial file never reaches the model."""
    def leaves(tree):
        return {"/".join(str(getattr(k, "key", k)) for k in path): np.shape(v)
                for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]}

    want, have = leaves(expected), leaves(loaded)
    problems = [f"missing {k}" for k in want if k not in have]
    problems += [f"unexpected {k}" for k in have if k not in want]
    problems += [f"{k} has shape {have[k]}, the model needs {want[k]}"
                 for k in want if k in have and have[k] != want[k]]
    if problems:
        shown = "; ".join(problems[:8]) + (f"; ... and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise WeightsError(f"--pretrained {path} does not match the {len(want)} parameters of this model: {shown}")


def _convert(file: Path, table, expected) -> Any:
    return jax.tree.map(jnp.asarray, load_torch_params(file, table, expected))


def _load_original_parts(cfg: TrainConfig, directory: Path, params: dict) -> dict:
    """The trained parts (decoder, transform) from the original release files in `directory`.

    The encoder comes from `--vgg-weights`; a part in `plugin.optional_parts` may be absent (a decoder-only
    directory), and a decoder pre-training stage takes the decoder only.
    """
    plugin = cfg.plugin
    variant = cfg.model.variant if plugin.variants else None
    patterns = plugin.release_patterns(variant)
    parts = {}
    for part, table in plugin.release_tables(variant).items():
        if part != "decoder" and cfg.model.stage == "decoder":
            continue
        try:
            file = find_file(directory, patterns[part], part)
        except FileNotFoundError as error:
            if part in plugin.optional_parts:
                continue
            raise FileNotFoundError(f"--pretrained {error}") from None
        parts[part] = _convert(file, table, params[part])
    return parts
