"""Typed training configuration, composed of parts, with per-architecture defaults from the original recipes.

`TrainConfig` = `ModelConfig` + `LossConfig` + `OptimConfig` + `DataConfig` + `WeightsConfig` +
`RunConfig`, shared by every network, + `options`: the network's own options, an instance of its plug-in's
`options` dataclass (SANet's identity weights, LinearTransfer's decoder stage, Magenta's TV weight and
Inception init; `jax_ast.archs.Architecture.options`). Every leaf field has a unique name, which is also
its command-line flag (`train/run.py` generates the flags from the fields of the shared parts and of every
registered plug-in's options, so a flag and a field can never drift) and its key in a run's flat
`config.json` (`TrainConfig.to_flat` / `from_flat`: the shared fields and the run's network's options). `default_config(arch, loss)` gives the original
setting of each network (the `recipe` of its `jax_ast.archs` plug-in; docs/architectures.md, each
network's training recipe; docs/losses.md, The objective and beta).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Literal, Union

from jax_ast import archs
from jax_ast.precision import DTYPES

LOSSES = ("native", "classic", "balanced")
STAGES = ("transfer", "decoder")
# Frozen encoder of AdaIN, SANet and LinearTransfer: each original's own VGG-19 file, or the real ImageNet
# VGG-16 that installs from PyPI with jax-ast, normalised like theirs (train from scratch on it when the
# originals' files are absent).
ENCODERS = ("original", "vgg16_normalised")
# The paper's VGG-16 loss network for classic/balanced: Magenta's avg-pool VGG-16 (default; the paper's layers
# are its conv1..conv4 end-points), the same weights with max pooling, or torchvision's VGG-16 (a download).
LOSS_NETWORKS = ("vgg16_slim", "vgg16_caffe", "vgg16")


StyleWeight = Union[float, Literal["auto"]]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which network, built how."""

    arch: str = "linear"
    variant: str = "r41"  # architecture variant (LinearTransfer: r41 | r31); ignored by networks without one
    encoder: str = "original"  # original | vgg16_normalised (the ImageNet VGG-16 installed with jax-ast)
    stage: str = "transfer"  # transfer | decoder (LinearTransfer: pre-train the decoder as an auto-encoder)
    dtype: str = "float32"  # float32 | bfloat16: compute dtype of the convolutions (jax_ast/precision.py)


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """The objective: the native loss, or its non-style terms plus beta * the classic/balanced style loss."""

    loss: str = "balanced"  # native | classic | balanced (the latter two replace only the style term)
    loss_network: str = "vgg16_slim"  # VGG-16 of the classic/balanced style term (see LOSS_NETWORKS)
    content_weight: float = 1.0
    style_weight: StyleWeight = 0.02  # the paper's beta for classic/balanced: a number or "auto"
    auto_style_batches: int = 4  # batches used to calibrate style_weight="auto"
    detach_denominator: bool = False  # balanced-loss ablation

    @property
    def auto_style_weight(self) -> bool:
        return self.style_weight == "auto"


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Adam (as in every original) with inverse-time decay lr_k = learning_rate / (1 + lr_decay * k)."""

    learning_rate: float = 1e-4
    lr_decay: float = 1e-5
    iterations: int = 100_000


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Training images. No folder and no tfds name: the sample images bundled with the package."""

    batch_size: int = 8  # global, over all devices and hosts
    crop_size: int = 256  # pixels
    content_dir: str | None = None
    style_dir: str | None = None
    content_tfds: str | None = None
    style_tfds: str | None = None
    data_dir: str | None = None


@dataclasses.dataclass(frozen=True)
class WeightsConfig:
    """Weight files. None: the default file from the cache (the installed ImageNet VGG-16 or an original's
    release file); "random": smoke tests only."""

    vgg_weights: str | None = None  # the network's own encoder
    loss_vgg_weights: str | None = None  # weights of `loss_network` (default: the installed ImageNet VGG-16)
    native_loss_weights: str | None = None  # native loss network: LST vgg_r51.pth / Magenta slim vgg_16
    pretrained: str | None = None  # directory of the original release files, or a params file (params.npz)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Seed and bookkeeping."""

    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    sample_every: int = 500
    distributed: bool = False  # call jax.distributed.initialize() (multi-host)


PARTS: dict[str, type] = {"model": ModelConfig, "objective": LossConfig, "optim": OptimConfig, "data": DataConfig,
                          "weights": WeightsConfig, "run": RunConfig}
OPTIONS = "options"  # the part name of a plug-in's options in `flat_fields`


def flat_fields(arch: str | None = None) -> dict[str, tuple[str, dataclasses.Field]]:
    """{leaf field name: (part name, field)} in declaration order: the shared parts, then the options of
    network `arch` (part "options"), or of every registered network when `arch` is None."""
    fields = {field.name: (part, field) for part, kind in PARTS.items() for field in dataclasses.fields(kind)}
    for name in (arch,) if arch is not None else archs.names():
        for option, field in archs.options_fields(archs.get(name)).items():
            if fields.get(option, (OPTIONS,))[0] != OPTIONS:
                raise ValueError(f"the option {option!r} of {name} has the name of a shared config field")
            fields.setdefault(option, (OPTIONS, field))
    return fields


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs, in parts. Units: steps, pixels, learning rates per step.

    Build one with `default_config` (the original recipe plus overrides) or `TrainConfig.from_flat`.
    `options` (None: the defaults) is an instance of the network's plug-in's `options` dataclass.
    """

    model: ModelConfig = ModelConfig()
    objective: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    data: DataConfig = DataConfig()
    weights: WeightsConfig = WeightsConfig()
    run: RunConfig = RunConfig()
    options: Any = None

    def __post_init__(self):
        model, objective, optim, data, run = self.model, self.objective, self.optim, self.data, self.run
        _check_choice("arch", model.arch, archs.names())
        _check_choice("loss", objective.loss, LOSSES)
        _check_choice("stage", model.stage, STAGES)
        _check_choice("dtype", model.dtype, tuple(DTYPES))
        plugin = self.plugin
        if self.options is None:
            object.__setattr__(self, "options", plugin.options())
        if type(self.options) is not plugin.options:
            raise ValueError(f"options of {model.arch} must be a {plugin.options.__name__}, got "
                             f"{type(self.options).__name__}")
        if plugin.variants and model.variant == ModelConfig.variant and model.variant not in plugin.variants:
            # The field's default is LinearTransfer's; another network with variants gets its own default.
            model = dataclasses.replace(model, variant=plugin.default_variant)
            object.__setattr__(self, "model", model)
        if plugin.variants:
            _check_choice("variant", model.variant, plugin.variants)
        _check_choice("encoder", model.encoder, ENCODERS)
        _check_choice("loss_network", objective.loss_network, LOSS_NETWORKS)
        if model.encoder != "original" and plugin.original_encoder is None:
            with_encoder = [name for name in archs.names() if archs.get(name).original_encoder is not None]
            raise ValueError(f"encoder={model.encoder!r} applies to {', '.join(with_encoder)}; {model.arch} "
                             "has no VGG encoder (its loss network is always the ImageNet VGG-16)")
        if model.stage == "decoder" and not plugin.pretrains_decoder:
            with_stage = [name for name in archs.names() if archs.get(name).pretrains_decoder]
            raise ValueError(f"stage='decoder' (auto-encoder pre-training) exists only for arch="
                             f"{' or '.join(repr(name) for name in with_stage)}")
        flat = self.to_flat()
        for name in ("iterations", "batch_size", "crop_size", "log_every", "checkpoint_every",
                     "keep_checkpoints", "sample_every", "auto_style_batches"):
            if flat[name] <= 0:
                raise ValueError(f"{name} must be positive, got {flat[name]}")
        _check_numbers(self)
        if data.crop_size < plugin.min_crop:
            raise ValueError(f"crop_size {data.crop_size} is too small for {model.arch}: its minimum is "
                             f"{plugin.min_crop} px ({plugin.min_crop_why})")
        if data.content_dir and data.content_tfds or data.style_dir and data.style_tfds:
            raise ValueError("give either a folder or a tfds dataset for content/style, not both")
        del run

    @classmethod
    def from_flat(cls, **values: Any) -> "TrainConfig":
        """A config from leaf field names, e.g. ``from_flat(arch="adain", learning_rate=1e-4)``; the rest default.

        Options of another registered network (``tv_weight`` with ``arch="adain"``) are checked as that
        network would check them, then ignored: one command line or base config serves every network.

        Raises:
          ValueError: an unknown field name, or an invalid value.
        """
        fields = flat_fields()
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"unknown config fields {unknown}")
        if "style_weight" in values:
            values = {**values, "style_weight": parse_style_weight(values["style_weight"])}
        arch = values.get("arch", ModelConfig.arch)
        _check_choice("arch", arch, archs.names())
        own = archs.options_fields(archs.get(arch))
        parts = {part: {} for part in (*PARTS, OPTIONS)}
        for name, value in values.items():
            part = fields[name][0]
            if part != OPTIONS or name in own:
                parts[part][name] = value
            else:
                _check_foreign_option(name, value)
        options = archs.get(arch).options(**parts.pop(OPTIONS))
        return cls(**{part: PARTS[part](**kwargs) for part, kwargs in parts.items()}, options=options)

    def to_flat(self) -> dict[str, Any]:
        """{leaf field name: value}: the flags of this run and its config.json (its network's options only)."""
        return {name: getattr(getattr(self, part), name) for name, (part, _) in flat_fields(self.model.arch).items()}

    def replace(self, **values: Any) -> "TrainConfig":
        """A copy with some leaf fields changed (validated again)."""
        return TrainConfig.from_flat(**{**self.to_flat(), **values})

    @property
    def plugin(self) -> archs.Architecture:
        """The `jax_ast.archs` plug-in of the network."""
        return archs.get(self.model.arch)

    @property
    def encoder_variant(self) -> str | None:
        """VGG variant of the frozen encoder (None for Magenta, which has none)."""
        return self.plugin.encoder_variant(self.model.encoder)

    @property
    def native_loss_network(self) -> tuple[str, str] | None:
        """(VGG variant, deepest tap) of a native loss network separate from the encoder, or None (the native
        loss runs on the encoder)."""
        return self.plugin.native_loss_network(self.encoder_variant)

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `jax_ast.archs.build(arch, ...)` for this run."""
        return self.plugin.model_kwargs(variant=self.model.variant, encoder=self.model.encoder)

    def to_json(self) -> str:
        """The flat config.json of a run (one key per flag)."""
        return json.dumps(self.to_flat(), indent=2, sort_keys=True)


def parse_style_weight(value: Any) -> StyleWeight:
    """A number (or its text) as float, or "auto"; ValueError otherwise."""
    if value == "auto":
        return "auto"
    if isinstance(value, bool):
        raise ValueError(f"style_weight must be a number or 'auto', got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"style_weight must be a number or 'auto', got {value!r}") from None


def _check_foreign_option(name: str, value: Any) -> None:
    """Check the option `name` of another network as its plug-in does (its dataclass and `_check_floats`)."""
    for arch in archs.names():
        plugin = archs.get(arch)
        if name in archs.options_fields(plugin):
            _check_floats(plugin.options(**{name: value}), archs.options_fields(plugin))
            return


def _check_floats(values: Any, fields: dict[str, dataclasses.Field]) -> None:
    """Every float field of `values` (a config part, or a plug-in's options) must be finite and >= 0."""
    for name, field in fields.items():
        value = getattr(values, name)
        if field.type in ("float", float) and (not isinstance(value, (int, float)) or not math.isfinite(value)
                                               or value < 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _check_numbers(cfg: TrainConfig) -> None:
    """Every float field (and a numeric style_weight) must be finite and >= 0: argparse's float()
    accepts "nan" and "inf", which would train silently to all-NaN parameters. The learning rate must
    also be in (0, 1]: Adam moves every parameter by about that much per step, so a typo such as 1e30
    would write diverged parameters into the first checkpoint."""
    for part, kind in PARTS.items():
        _check_floats(getattr(cfg, part), {field.name: field for field in dataclasses.fields(kind)})
    _check_floats(cfg.options, archs.options_fields(cfg.plugin))
    if not 0 < cfg.optim.learning_rate <= 1:
        raise ValueError(f"learning_rate must be a number in (0, 1], got {cfg.optim.learning_rate!r}")
    if not 0 <= cfg.run.seed < 2**32:  # JAX keeps the low 32 bits of a seed: larger seeds would collide
        raise ValueError(f"seed must be in [0, 2**32), got {cfg.run.seed}")
    weight = cfg.objective.style_weight
    if weight != "auto" and (isinstance(weight, bool) or not isinstance(weight, (int, float))
                             or not math.isfinite(weight) or weight < 0):
        raise ValueError(f"style_weight must be a finite number >= 0 or 'auto', got {weight!r}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid choices: {', '.join(choices)}")


# The original settings per network (native loss) are each plug-in's `recipe`. The style weight of
# classic/balanced is the paper's beta, which the paper tunes so that beta * style ~ content: "auto" calibrates
# that on the first batches, as the content term of outputting the style image over the style term of
# outputting the content image.


# Named schedules that replace parts of the original recipe; explicit overrides still win.
# "cpu": the README's first command. It trains on the ImageNet VGG-16 that installs with jax-ast at 128 px,
# sized to finish in well under an hour on a 2-core CPU (docs/weights.md has the measured time and results).
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": dict(encoder="vgg16_normalised", crop_size=128, batch_size=4, learning_rate=1e-4, lr_decay=0.0,
                iterations=400, decoder_iterations=300, decoder_learning_rate=5e-4, log_every=25, sample_every=100,
                checkpoint_every=100),
    # "finetune-cpu": fine-tuning a released network on a 2-core CPU (Magenta --variant mobile starts from its
    # release by default): small crops and batches, the original's small learning rate, 200 steps.
    "finetune-cpu": dict(crop_size=128, batch_size=4, learning_rate=1e-5, lr_decay=0.0, iterations=200,
                         log_every=10, sample_every=50, checkpoint_every=50),
}


def default_config(arch: str, loss: str = "native", *, preset: str | None = None, **overrides: Any) -> TrainConfig:
    """The original recipe of `arch`, trained with `loss`, then the named `preset`; keyword overrides win.

    For loss="classic"/"balanced" the style weight defaults to "auto" (beta calibrated so beta*style ~ content).
    """
    _check_choice("arch", arch, archs.names())
    _check_choice("loss", loss, LOSSES)
    values = dict(archs.get(arch).recipe)
    if loss != "native":
        values["style_weight"] = "auto"
    if preset is not None:
        _check_choice("preset", preset, tuple(PRESETS))
        has_encoder = archs.get(arch).original_encoder is not None
        values.update({k: v for k, v in PRESETS[preset].items() if k != "encoder" or has_encoder})
    values.update(overrides)
    return TrainConfig.from_flat(arch=arch, loss=loss, **values)
