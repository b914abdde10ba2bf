"""What jax-ast knows about one style-transfer network, in one object: `Architecture`.

A plug-in module defines `PLUGIN = Architecture(...)`; `jax_ast.archs.get(name)` finds it (a module of
`jax_ast.archs`, an entry point or `$JAX_AST_PLUGINS`; see `jax_ast.archs`). Training, evaluation,
stylisation and the benchmarks read everything network-specific from it: the model factory, the frozen
encoder and its deepest tap, the native objective, its style terms and the loss network it runs on, the
network's own options (a typed dataclass: one config field and one flag each), the inference options, the
data augmentation, the original training recipe, the release files with their importer, and the trained
weights installed with jax-ast (`InstalledRelease`), which eval uses when no weights are given.
docs/architecture.md shows where a new network plugs in.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Protocol

import jax

Feats = Mapping[str, jax.Array]


class FeatureFn(Protocol):
    def __call__(self, images: jax.Array, layers: tuple[str, ...], *, constant: bool = False) -> Feats:
        """Loss-network features of float[B, H, W, 3] RGB images in [0, 1] at `layers`; `constant`: no gradient."""


@dataclasses.dataclass(frozen=True)
class ObjectiveInputs:
    """Everything a native objective reads, for one local batch.

    Attributes:
      apply: `model.apply` with the variables bound: ``apply(content, style, **kwargs) -> (stylized, aux)``;
        with ``mutable=[...]`` it returns ``((stylized, aux), updates)`` as flax does.
      content, style: float32[B, H, W, 3] RGB in [0, 1].
      features: the native loss network (see `FeatureFn`).
      weights: the run's shared loss weights (`jax_ast.configs.LossConfig`: content_weight, ...).
      options: the run's instance of the plug-in's `options` dataclass (its own loss weights, ...).
      style_weight: the native style term's weight (0 when classic/balanced replace that term).
      native_style: False when classic/balanced replace the style term: skip the native style features.
      stage: "transfer", or "decoder" for an auto-encoder pre-training stage.
    """

    apply: Callable[..., Any]
    content: jax.Array
    style: jax.Array
    features: FeatureFn
    weights: Any
    style_weight: Any
    native_style: bool
    stage: str = "transfer"
    options: Any = None


class ObjectiveResult(NamedTuple):
    total: jax.Array  # float32[B] per-sample loss
    terms: dict[str, jax.Array]  # unweighted terms, each float32[B]
    stylized: jax.Array  # float32[B, H, W, 3]
    batch_stats: Any  # new BatchNorm statistics ({} when the network has none)


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """The options of a network without options of its own."""


def options_fields(plugin: "Architecture") -> dict[str, dataclasses.Field]:
    """{field name: field} of the plug-in's `options` dataclass, in declaration order."""
    return {field.name: field for field in dataclasses.fields(plugin.options)}


@dataclasses.dataclass(frozen=True)
class InstalledRelease:
    """Trained weights of one variant that come installed with jax-ast (no download, no training): what
    `eval.stylize` and `eval.run` use when no ``--weights`` is given.

    Attributes:
      load: ``() -> (model, variables)``; raises `jax_ast.errors.LoadError` (a ValueError) when the files are
        missing or damaged, with a message that says how to reinstall them.
      description: what they are, in messages ("Magenta's mobile model from the PyPI wheel ...").
    """

    load: Callable[[], tuple[Any, Any]]
    description: str


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One network's plug-in. Sizes in pixels; `recipe` uses `TrainConfig` field names.

    Attributes:
      name: the --arch name. display_name: the network's name in messages ("LinearTransfer").
      title: its display name and paper.
      build: ``build(**model_kwargs) -> flax module`` following the `jax_ast.models` interface.
      original_encoder: VGG variant of the original's frozen encoder; None when the network has none.
      encoders: the encoder variants it can be built on (the original first).
      variants: architecture variants (`--variant`), the default first; () when there are none.
      encoder_deepest: ``(variant) -> deepest VGG tap`` the encoder needs (picks the default weights file).
      native_loss_network: ``(encoder variant) -> (VGG variant, deepest tap)`` of a native loss network
        separate from the encoder, or None: the native loss runs on the encoder.
      objective: ``(ObjectiveInputs) -> ObjectiveResult``: the native loss of the original.
      native_style_terms: prefixes of the objective's terms that classic/balanced replace (logged as
        "native/<term>" then); "style" at least.
      options: a frozen dataclass of the network's own training options (loss weights, stages, extra
        weight files): each field is a `TrainConfig.options` field, one flag of `train.run` and one key of
        config.json; `metadata={"help": ...}` gives its help text. Names must not clash with the shared
        config's fields; two plug-ins may share an option of the same type.
      inference_options: fields of the built model that inference may change without retraining
        (SANet: "chunk_size", its attention chunk).
      min_crop, min_crop_why: the smallest training crop and the reason.
      init_size: side of the probe image used to initialise the parameters.
      stylize_size: default content shorter side of `eval.stylize`.
      stylize_style_sizes: ``{variant: px}``, the default style shorter side of `eval.stylize` for variants
        whose style encoder was trained at one size (Magenta mobile: 256); absent variants use the content size.
      recipe: the original training settings (`TrainConfig` fields).
      augment: ``(crop) -> (content CropSpec, style CropSpec)`` of the original data pipeline.
      pretrains_decoder: True when training without a pretrained decoder first trains one as an
        auto-encoder (LinearTransfer); its `options` then have `decoder_iterations` and
        `decoder_learning_rate` (None: the run's learning rate), which `train.loop` reads for that stage.
      release_files: the original release files, in words (help texts and error messages).
      release_source: where those files come from, with their licence (`eval.stylize --list-archs`).
      release_patterns: ``(variant) -> {part: file-name patterns}`` of the release files in a directory, in
        the order `load_release` takes them ("encoder" first); None when the release is one file or TF
        checkpoint that `load_release` takes as it is (Magenta).
      release_tables: ``(variant) -> {part: conversion table}`` of the trained parts, for starting a training
        run from a directory of release files (`--pretrained DIR`).
      optional_parts: parts a training run may start without (LinearTransfer's transform).
      load_release: ``(*files, **model_kwargs) -> (model, variables)``.
      initialise: ``(variables, cfg) -> variables``: network-specific changes to the initial variables
        (Magenta's Inception-v3 weights); None when there are none. It replaces parts with loaded arrays: the
        leaves it receives are `jax.ShapeDtypeStruct`s where nothing was loaded yet, and those it returns as
        such get the seeded random init afterwards (`jax_ast.random_init.RandomInit.fill`).
      frozen_parts: ``(cfg) -> top-level parameter parts`` kept fixed in this run on top of the model's
        non-TRAINABLE ones (Magenta's `--freeze`); None when a run cannot freeze more.
      installed: ``{variant: InstalledRelease}`` of the trained weights installed with jax-ast (the key is
        None for a network without variants); empty when every run needs ``--weights``.
      downloads: {file name: `jax_ast.pretrained.cache.RemoteFile`} of its release files, known to
        `jax_ast.pretrained.fetch` once the plug-in is registered.
      order: position in listings (help texts, benchmarks), then the name.
    """

    name: str
    title: str
    build: Callable[..., Any]
    original_encoder: str | None
    encoders: tuple[str, ...]
    encoder_deepest: Callable[[str | None], str] | None
    native_loss_network: Callable[[str | None], tuple[str, str] | None]
    objective: Callable[[ObjectiveInputs], ObjectiveResult]
    min_crop: int
    min_crop_why: str
    recipe: Mapping[str, Any]
    augment: Callable[[int], tuple[Any, Any]]
    release_files: str
    release_source: str
    release_patterns: Callable[[str | None], dict[str, tuple[str, ...]]] | None
    release_tables: Callable[[str | None], dict[str, Any]]
    load_release: Callable[..., tuple[Any, Any]]
    display_name: str = ""
    native_style_terms: tuple[str, ...] = ("style",)
    options: type = NoOptions
    inference_options: tuple[str, ...] = ()
    downloads: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    order: int = 100
    optional_parts: tuple[str, ...] = ()
    initialise: Callable[[dict, Any], dict] | None = None
    frozen_parts: Callable[[Any], tuple[str, ...]] | None = None
    variants: tuple[str, ...] = ()
    init_size: int = 64
    stylize_size: int = 512
    stylize_style_sizes: Mapping[str | None, int] = dataclasses.field(default_factory=dict)
    installed: Mapping[str | None, InstalledRelease] = dataclasses.field(default_factory=dict)
    pretrains_decoder: bool = False

    def __post_init__(self):
        if not self.display_name:
            object.__setattr__(self, "display_name", self.name)

    @property
    def default_variant(self) -> str | None:
        return self.variants[0] if self.variants else None

    def encoder_variant(self, encoder: str) -> str | None:
        """VGG variant of the frozen encoder for `--encoder` ("original" or a variant name); None without one."""
        if self.original_encoder is None:
            return None
        return self.original_encoder if encoder == "original" else encoder

    def find_release_files(self, directory: Path, variant: str | None = None) -> list[Path]:
        """The release files of this network in `directory`, in the order `load_release` takes them."""
        if self.release_patterns is None:
            return [directory]
        return [find_file(directory, patterns, part)
                for part, patterns in self.release_patterns(variant or self.default_variant).items()]

    def model_kwargs(self, *, variant: str | None = None, encoder: str = "original") -> dict[str, Any]:
        """Keyword arguments of `build` for a variant and an `--encoder` choice."""
        kwargs: dict[str, Any] = {"variant": variant or self.default_variant} if self.variants else {}
        if self.original_encoder is not None:
            kwargs["encoder"] = self.encoder_variant(encoder)
        return kwargs


def find_file(directory: Path, patterns: tuple[str, ...], what: str) -> Path:
    """The first of `patterns` with a match in `directory`; among several, the highest trailing number.

    Raises:
      FileNotFoundError: naming the patterns and what the directory holds.
    """
    for pattern in patterns:
        matches = list(directory.glob(pattern))
        if matches:
            return max(matches, key=lambda p: (int("".join(filter(str.isdigit, p.stem)) or 0), p.name))
    present = ", ".join(sorted(p.name for p in directory.iterdir())) or "nothing"
    raise FileNotFoundError(f"{directory}: no {what} file (looked for {' or '.join(patterns)}); found: {present}")
