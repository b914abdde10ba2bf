"""Magenta arbitrary-stylization and Inception-v3 checkpoints -> Flax variables (docs/architectures.md, Magenta).

Sources:

* the released ``arbitrary_style_transfer`` TF checkpoint: pass the prefix ``.../model.ckpt`` (read with
  ``tf.train.load_checkpoint``, which needs the optional ``tensorflow`` package), or an ``.npz`` holding
  the same variable names (``checkpoint_to_npz`` writes one once where TF is installed). Its 359 model
  variables map one-to-one onto `Magenta`'s ``params`` and ``batch_stats``; ``vgg_16/*`` (the loss
  network), optimizer slots and ``global_step`` are ignored.
* an ImageNet Inception-v3 for initialising the style predictor (`load_inception_v3`): the TF-slim
  layout (``InceptionV3/...``, e.g. ``inception_v3_2016_08_28``; TF prefix or ``.npz``) or a
  torchvision ``state_dict`` (``Conv2d_1a_3x3.conv.weight``, ``Mixed_5b.branch5x5_1.bn.*``, ...).

TF conv weights are already HWIO, so the Magenta table is pure renaming:
``<scope>/weights`` -> ``kernel``, ``<scope>/biases`` -> ``bias``, ``BatchNorm/beta`` -> ``BatchNorm/bias``,
``BatchNorm/moving_mean|moving_variance`` -> ``batch_stats .../BatchNorm/mean|var``.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jax_ast.models.inception import MIN_INPUT_SIZE, InceptionV3, conv_unit_paths
from jax_ast.models.magenta import CONTRACT_CONVS, STYLE_NORM_SITES, Magenta
from jax_ast.pretrained.convert import WeightsError, check_finite, torch_to_flax
from jax_ast.pretrained.params_file import read_npz

Table = dict[tuple[str, ...], tuple[str, str]]
PathLike = str | os.PathLike

IGNORED_PREFIXES = ("vgg_16/", "global_step", "beta1_power", "beta2_power")
INCEPTION_IGNORED_PREFIXES = ("InceptionV3/Mixed_7", "InceptionV3/AuxLogits", "InceptionV3/Logits", "global_step")
# Optimizer / EMA slot variables saved next to the model variables in training checkpoints.
_SLOT_SUFFIXES = ("/Adam", "/Adam_1", "/RMSProp", "/RMSProp_1", "/Momentum", "/ExponentialMovingAverage")


def _conv_bn_entries(tf_scope: str, flax_path: tuple[str, ...]) -> Table:
    return {
        ("params", *flax_path, "kernel"): (f"{tf_scope}/weights", "hwio"),
        ("params", *flax_path, "BatchNorm", "bias"): (f"{tf_scope}/BatchNorm/beta", "vector"),
        ("batch_stats", *flax_path, "BatchNorm", "mean"): (f"{tf_scope}/BatchNorm/moving_mean", "vector"),
        ("batch_stats", *flax_path, "BatchNorm", "var"): (f"{tf_scope}/BatchNorm/moving_variance", "vector"),
    }


def _conv_bias_entries(tf_scope: str, flax_path: tuple[str, ...]) -> Table:
    return {("params", *flax_path, "kernel"): (f"{tf_scope}/weights", "hwio"),
            ("params", *flax_path, "bias"): (f"{tf_scope}/biases", "vector")}


def inception_table(flax_prefix: tuple[str, ...] = ()) -> Table:
    """``InceptionV3/<Block>/<Branch_k>/<Conv>/...`` -> `InceptionV3` variables (70 convs, 280 entries)."""
    table: Table = {}
    for path in conv_unit_paths():
        table.update(_conv_bn_entries("InceptionV3/" + "/".join(path), (*flax_prefix, *path)))
    return table


def magenta_table() -> Table:
    """Flax variable path (``("params" | "batch_stats", ...)``) -> (TF variable name, kind); 359 entries."""
    table = inception_table(("style_predictor", "InceptionV3"))
    table.update(_conv_bias_entries("Conv", ("style_predictor", "Conv")))  # the bottleneck, at the root scope
    for site, scope, _ in STYLE_NORM_SITES:
        tf_scope = f"style_params/transformer/{scope}/StyleNorm"
        table.update(_conv_bias_entries(f"{tf_scope}/Conv", ("style_params", site, "Conv")))  # beta
        table.update(_conv_bias_entries(f"{tf_scope}/Conv_1", ("style_params", site, "Conv_1")))  # gamma
    for name, scope, *_ in CONTRACT_CONVS:
        table.update(_conv_bn_entries(f"transformer/{scope}", ("transformer", name)))
    for site, scope, _ in STYLE_NORM_SITES:  # the CSN convs: residual and expand, kernel only
        table[("params", "transformer", site, "kernel")] = (f"transformer/{scope}/weights", "hwio")
    return table


def read_tf_checkpoint(prefix: PathLike, *, skip_prefixes: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """All variables of a TF checkpoint (prefix like ``model.ckpt``, or its directory) as NumPy arrays.

    Needs the optional ``tensorflow`` package; variables whose names start with `skip_prefixes` or that
    are optimizer slots are not read.
    """
    try:
        import tensorflow as tf  # noqa: PLC0415 (optional, ~2 GB: imported only when a TF checkpoint is read)
    except ImportError as err:
        raise ImportError(
            f"reading the TensorFlow checkpoint {os.fspath(prefix)!r} needs tensorflow "
            "(pip install tensorflow-cpu, or the jax-ast[tensorflow] extra); "
            "alternatively convert it once to .npz with jax_ast.pretrained.magenta.checkpoint_to_npz on a "
            "machine that has tensorflow") from err
    prefix = os.fspath(prefix)
    if os.path.isdir(prefix):
        prefix = tf.train.latest_checkpoint(prefix) or prefix
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as err:  # TF raises several error types for unreadable checkpoints
        raise WeightsError(f"cannot read the TensorFlow checkpoint {prefix!r}: {err}") from err
    names = [n for n in reader.get_variable_to_shape_map()
             if not n.startswith(skip_prefixes) and not n.endswith(_SLOT_SUFFIXES)]
    return {name: np.asarray(reader.get_tensor(name)) for name in names}


def read_checkpoint(path: PathLike, *, skip_prefixes: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Variables of an ``.npz`` (keys = TF variable names) or of a TF checkpoint prefix/directory."""
    path = os.fspath(path)
    if path.endswith(".npz"):
        return read_npz(path, select=lambda name: not name.startswith(skip_prefixes)
                        and not name.endswith(_SLOT_SUFFIXES))
    if os.path.isdir(path) or os.path.isfile(path + ".index"):
        return read_tf_checkpoint(path, skip_prefixes=skip_prefixes)
    raise WeightsError(f"{path!r} is neither an .npz file nor a TensorFlow checkpoint prefix "
                       f"(expected {path}.index next to it, e.g. pass .../model.ckpt)")


def checkpoint_to_npz(prefix: PathLike, npz_path: PathLike) -> None:
    """Convert a TF checkpoint to an ``.npz`` keyed by variable name (skipping vgg_16 and optimizer slots)."""
    np.savez(npz_path, **read_tf_checkpoint(prefix, skip_prefixes=IGNORED_PREFIXES))


def magenta_shapes(model: Magenta) -> Any:
    """The variables of `model` as `jax.ShapeDtypeStruct`s (shapes only, nothing computed)."""
    content = jax.ShapeDtypeStruct((1, 8, 8, 3), jnp.float32)
    style = jax.ShapeDtypeStruct((1, MIN_INPUT_SIZE, MIN_INPUT_SIZE, 3), jnp.float32)
    return jax.eval_shape(model.init, jax.random.key(0), content, style)


def load_magenta(checkpoint: PathLike, *, bottleneck: int = 100,
                 dtype: Any = jnp.float32) -> tuple[Magenta, dict[str, Any]]:
    """Load a Magenta arbitrary-stylization checkpoint.

    Args:
      checkpoint: TF checkpoint prefix (``.../model.ckpt``) or directory, or an ``.npz`` with the TF names.
      bottleneck: style code size of the model (100 in the released checkpoint); checked against the file.
      dtype: computation dtype of the returned model.

    Returns:
      (model, variables): ``Magenta(bottleneck, dtype)`` and ``{"params": {"style_predictor",
      "style_params", "transformer"}, "batch_stats": {"style_predictor", "transformer"}}`` (float32 jax
      arrays).

    Raises:
      WeightsError: every missing, unexpected or mis-shaped variable in one message naming the checkpoint,
        NaN/inf values, an unreadable ``.npz``, or a path that is neither an ``.npz`` nor a TF checkpoint.
      ImportError: a TF checkpoint without the optional ``tensorflow`` package.
    """
    model = Magenta(bottleneck=bottleneck, dtype=jnp.dtype(dtype))
    variables = read_checkpoint(checkpoint, skip_prefixes=IGNORED_PREFIXES)
    converted = torch_to_flax(variables, magenta_table(), magenta_shapes(model),
                              source=os.fspath(checkpoint), ignore_prefixes=IGNORED_PREFIXES)
    check_finite(converted, os.fspath(checkpoint))
    return model, jax.tree_util.tree_map(jnp.asarray, converted)


def _inception_shapes() -> Any:
    images = jax.ShapeDtypeStruct((1, MIN_INPUT_SIZE, MIN_INPUT_SIZE, 3), jnp.float32)
    return jax.eval_shape(InceptionV3().init, jax.random.key(0), images)


# torchvision `Inception3` module names of the convs of each branch, in order (InceptionA/B/C blocks).
_TORCHVISION_BRANCHES = {
    "Mixed_5": (("branch1x1",), ("branch5x5_1", "branch5x5_2"),
                ("branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"), ("branch_pool",)),
    "Mixed_6a": (("branch3x3",), ("branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"), ()),
    "Mixed_6": (("branch1x1",), ("branch7x7_1", "branch7x7_2", "branch7x7_3"),
                tuple(f"branch7x7dbl_{i}" for i in range(1, 6)), ("branch_pool",)),
}
TORCHVISION_IGNORED_PREFIXES = ("Mixed_7", "AuxLogits", "fc.")


def _torchvision_module(path: tuple[str, ...], position: int) -> str:
    """torchvision module name of the conv unit at `path`, the `position`-th conv of its branch."""
    if len(path) == 1:
        return path[0]  # the stem keeps the TF names
    block, branch = path[0], int(path[1].removeprefix("Branch_"))
    family = block if block == "Mixed_6a" else block[:7]
    return f"{block}.{_TORCHVISION_BRANCHES[family][branch][position]}"


def torchvision_inception_modules() -> dict[tuple[str, ...], str]:
    """Our conv unit path -> torchvision ``BasicConv2d`` name (``Mixed_6b.branch7x7dbl_3``, ...)."""
    modules, position, previous = {}, 0, None
    for path in conv_unit_paths():
        position = position + 1 if path[:-1] == previous and len(path) > 1 else 0
        previous = path[:-1]
        modules[path] = _torchvision_module(path, position)
    return modules


def inception_from_torchvision(state_dict: Mapping[str, np.ndarray], *, source: str) -> dict:
    """torchvision ``inception_v3`` state_dict -> `InceptionV3` variables, folding gamma into the conv.

    The BN scale gamma has no slot in the center-only BatchNorm, so it is folded:
    kernel' = gamma * kernel and moving_mean' = gamma * moving_mean (per output channel), which is exact
    with moving statistics (inference). With batch statistics (train=True) the normalisation divides
    the scale out again, so gamma's magnitude is lost there, as in any center-only BN.
    Other differences of torchvision's network that this does not change: its average pools count
    the padding (ours follow TF and do not) and it expects ImageNet-normalised inputs.
    """
    table: Table = {}
    gammas: dict[tuple[str, ...], str] = {}
    for path, module in torchvision_inception_modules().items():
        table[("params", *path, "kernel")] = (f"{module}.conv.weight", "conv")
        table[("params", *path, "BatchNorm", "bias")] = (f"{module}.bn.bias", "vector")
        table[("batch_stats", *path, "BatchNorm", "mean")] = (f"{module}.bn.running_mean", "vector")
        table[("batch_stats", *path, "BatchNorm", "var")] = (f"{module}.bn.running_var", "vector")
        gammas[path] = f"{module}.bn.weight"
    tensors = {k: v for k, v in state_dict.items() if not k.endswith((".bn.weight", ".num_batches_tracked"))}
    problems = []
    try:
        converted = torch_to_flax(tensors, table, _inception_shapes(), source=source,
                                  ignore_prefixes=TORCHVISION_IGNORED_PREFIXES)
    except WeightsError as err:
        problems.append(str(err))
    missing = [key for key in gammas.values() if key not in state_dict]
    if missing:
        problems.append(f"{source}: missing BatchNorm scales ({len(missing)}): {', '.join(missing[:12])}")
    if problems:
        raise WeightsError("; ".join(problems))
    for path, key in gammas.items():
        gamma = np.asarray(state_dict[key], np.float32)
        unit = _subtree(converted["params"], path)
        unit["kernel"] = unit["kernel"] * gamma
        stats = _subtree(converted["batch_stats"], path)["BatchNorm"]
        stats["mean"] = stats["mean"] * gamma
    return converted


def _subtree(tree: dict, path: tuple[str, ...]) -> dict:
    for key in path:
        tree = tree[key]
    return tree


def load_inception_v3(path: PathLike) -> dict:
    """ImageNet Inception-v3 weights -> `InceptionV3` variables ``{"params", "batch_stats"}`` (to Mixed_6e).

    Args:
      path: a TF-slim checkpoint (prefix or directory, needs tensorflow) or ``.npz`` with the
        ``InceptionV3/...`` names (Mixed_7*, AuxLogits and Logits are ignored); or a torchvision
        ``inception_v3`` ``.pth`` state_dict (see `inception_from_torchvision` for how gamma is handled).

    Use `with_inception` to put the result into Magenta's style predictor.
    """
    name = os.fspath(path)
    if name.endswith((".pth", ".pt")):
        from jax_ast.pretrained.torch_format import read_state_dict  # noqa: PLC0415 (sibling module, optional)
        converted = inception_from_torchvision(read_state_dict(name), source=name)
    else:
        tensors = read_checkpoint(name, skip_prefixes=INCEPTION_IGNORED_PREFIXES)
        converted = torch_to_flax(tensors, inception_table(), _inception_shapes(), source=name,
                                  ignore_prefixes=INCEPTION_IGNORED_PREFIXES)
    check_finite(converted, name)
    return jax.tree_util.tree_map(jnp.asarray, converted)


def with_inception(variables: Mapping[str, Any], inception: Mapping[str, Any]) -> dict:
    """Copy of Magenta `variables` whose style predictor trunk is `inception` (from `load_inception_v3`)."""
    out = dict(variables)
    for collection in ("params", "batch_stats"):
        tree = dict(out[collection])
        tree["style_predictor"] = {**tree["style_predictor"], "InceptionV3": inception[collection]}
        out[collection] = tree
    return out
