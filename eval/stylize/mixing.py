"""Several styles in one image from the command line: `--style-weights` (interpolation) and `--mask`.

``--style a.jpg b.jpg --style-weights 0.7 0.3`` writes one image per content, ``<content>__a@0.7+b@0.3.png``
(the weights as normalised). ``--mask fg.png`` with exactly two styles puts the first on the mask's
foreground (white) and the second on its background (black): ``<content>__a+b__mask-fg.png``. The mask is
read as soft weights (grey level / 255, so grey edges blend), resized bilinearly to each content. The rules
behind the weights and masks, per network, are in docs/stylize.md (`jax_ast.models.mixing`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import jax
import numpy as np

from jax_ast import color, imageio
from jax_ast.models.mixing import normalise_weights

# ITU-R 601 luma, as PIL's "L" conversion: a colour mask counts by its brightness
LUMA = np.asarray([0.299, 0.587, 0.114], np.float32)


@dataclasses.dataclass(frozen=True)
class MixSpec:
    """What to mix: the style files and either their normalised weights or a foreground mask."""

    style_paths: tuple[Path, ...]
    weights: tuple[float, ...] | None = None
    mask_path: Path | None = None


def make_spec(style_paths: Sequence[Path], weights: Sequence[float] | None, mask_path: Path | None) -> MixSpec:
    """Checks the flags of one mixing run; the message of the ValueError is meant for `parser.error`.

    Raises:
      ValueError: --style-weights together with --mask, a style that is not a file, a weight count
        different from the style count, negative/non-finite/all-zero weights, or --mask without
        exactly two styles or with an unreadable file.
    """
    if weights is not None and mask_path is not None:
        raise ValueError("give either --style-weights or --mask, not both")
    flag = "--mask" if mask_path is not None else "--style-weights"
    directories = [str(p) for p in style_paths if not p.is_file()]
    if directories:
        raise ValueError(f"{flag} needs --style image files, got {', '.join(directories)}")
    if weights is not None:
        if len(weights) != len(style_paths):
            raise ValueError(f"--style-weights needs one weight per --style image: {len(style_paths)} styles, "
                             f"{len(weights)} weights")
        try:
            normalised = normalise_weights(np.asarray(weights, np.float32), len(style_paths))
        except ValueError as error:
            raise ValueError(f"--style-weights: {error}") from None
        return MixSpec(tuple(style_paths), weights=tuple(float(w) for w in normalised))
    if len(style_paths) != 2:
        raise ValueError(f"--mask needs exactly two --style images (foreground, background), got {len(style_paths)}")
    try:
        imageio.load_image(mask_path, min_side=1)
    except (FileNotFoundError, imageio.ImageError) as error:
        raise ValueError(f"--mask: {error}") from None
    return MixSpec(tuple(style_paths), mask_path=mask_path)


def output_label(content_name: str, spec: MixSpec, style_names: Sequence[str]) -> str:
    """File name (without extension) of one content's output, e.g. ``cat__wave@0.7+night@0.3``."""
    if spec.weights is not None:
        return f"{content_name}__" + "+".join(f"{name}@{weight:.3g}" for name, weight in zip(style_names, spec.weights))
    return f"{content_name}__{'+'.join(style_names)}__mask-{spec.mask_path.stem}"


def load_mask(path: Path, height: int, width: int) -> np.ndarray:
    """The mask file as float32 [height, width] weights in [0, 1] (grey level / 255, bilinear resize)."""
    rgb = imageio.load_image(path, size=(height, width), mode="exact", min_side=1)
    return np.clip(rgb @ LUMA, 0.0, 1.0)


class Mixer:
    """One model applied to a content with several styles at once (jit-compiled per input shapes).

    Args:
      model, variables: a network of `jax_ast.models` and its variables.
      spec: the mix (`make_spec`).
      alpha: the content-style trade-off, after the mix.
      preserve_color: "coral" recolours every style to each content before encoding it.
    """

    def __init__(self, model: Any, variables: Any, spec: MixSpec, *, alpha: float = 1.0,
                 preserve_color: str = "none"):
        self.spec = spec
        self.preserve_color = preserve_color
        self.variables = variables  # passed as an argument, not captured: jit would embed them as constants
        model_type = type(model)
        self._encode = jax.jit(lambda variables, style: model.apply(variables, style, method=model_type.encode_style))
        if spec.weights is not None:
            weights = np.asarray(spec.weights, np.float32)
            self._stylize = jax.jit(lambda variables, content, codes: model.apply(
                variables, content, codes, weights, alpha, method=model_type.stylize_mixed))
        else:
            self._stylize = jax.jit(lambda variables, content, codes, masks: model.apply(
                variables, content, codes, masks, alpha, method=model_type.stylize_regions))

    def encode(self, styles: Sequence[np.ndarray]) -> list[Any]:
        """Styles float32 [Hs_k, Ws_k, 3] -> one code per style (batch 1)."""
        return [self._encode(self.variables, style[None]) for style in styles]

    def __call__(self, content: np.ndarray, styles: Sequence[np.ndarray], codes: list[Any] | None) -> np.ndarray:
        """content float32 [H, W, 3] -> the mixed image float32 [H, W, 3] (unclamped).

        `codes` are the styles' codes, or None to encode `styles` here (after recolouring them with coral).
        """
        if codes is None:
            recoloured = [color.coral(style, content) if self.preserve_color == "coral" else style
                          for style in styles]
            codes = self.encode(recoloured)
        if self.spec.weights is not None:
            return np.asarray(self._stylize(self.variables, content[None], codes))[0]
        mask = load_mask(self.spec.mask_path, *content.shape[:2])[None]
        return np.asarray(self._stylize(self.variables, content[None], codes, [mask, 1.0 - mask]))[0]
