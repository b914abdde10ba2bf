"""What the page computes, without any Gradio: load a network once, encode each style once, stylise.

The work goes through the same inference layer as `eval.stylize` (`eval.inference.loading`,
`eval.inference.batching.Stylizer`, `eval.stylize.mixing.Mixer`, `jax_ast.imageio`, `jax_ast.color`), so a
picture from the page equals the CLI's for the same flags. Style codes are cached per (network, style pixels,
style size, colour target): moving the alpha slider or changing the weights of a mix re-runs only the
stylisation. Every user error comes back as a `PageError` with a one-line message; nothing here ends the server.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from eval.common import guards
from eval.inference import loading
from eval.inference.batching import Stylizer
from eval.stylize import mixing
from jax_ast import color, imageio
from jax_ast.errors import CheckpointError
from jax_ast.models.mixing import normalise_weights

MAX_SIZE = 1024  # the page's largest output shorter side (a CPU run at 1024 px already takes a while)


class PageError(ValueError):
    """A problem with what the user gave (file, weights, options); the message is shown on the page."""


@dataclasses.dataclass(frozen=True)
class Request:
    """One press of the button: images by path, weights per style, and the options of `eval.stylize`."""

    content: Path
    styles: tuple[Path, ...]
    style_weights: tuple[float, ...] | None = None  # None: equal weights
    arch: str = "magenta"
    variant: str | None = "mobile"
    weights: str = ""  # "": the installed weights of arch/variant; else a params file or release folder
    alpha: float = 1.0
    preserve_color: str = "none"
    size: int = 256


@dataclasses.dataclass
class Result:
    """The stylised image float32 [H, W, 3] in [0, 1], the inputs as loaded, and what happened, in words."""

    image: np.ndarray
    content: np.ndarray
    styles: list[np.ndarray]
    message: str


def _digest(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()[:16] + str(image.shape)


def load_input(path: Path | str | None, role: str, size: int) -> np.ndarray:
    """An uploaded or bundled image at `size` shorter side, with the CLI's pixel limits; PageError otherwise."""
    if path is None or str(path) == "":
        raise PageError(f"no {role} image: upload one or pick a bundled one")
    try:
        return imageio.load_image(Path(path), size=size)
    except (FileNotFoundError, imageio.ImageError) as error:
        reason = error.reason if isinstance(error, imageio.ImageError) else str(error)
        raise PageError(guards.printable(f"{role} {Path(path).name}: {reason}")) from None


class Session:
    """The page's state between calls: the loaded network and its stylizer, and the style codes.

    One call runs at a time (a lock): the page is for one person on one machine.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._model_key: tuple | None = None
        self._model: Any = None
        self._variables: Any = None
        self._stylizer: Stylizer | None = None
        self._codes: dict[tuple, Any] = {}
        self._compiled: set[tuple] = set()
        self._mixers: dict[tuple, mixing.Mixer] = {}
        self.encodes = 0  # style encodings run (tests: the cache works)

    def needs_compile(self, request: Request, content_shape: tuple[int, ...]) -> bool:
        """Whether `request` at this content shape runs a program not compiled yet in this session."""
        return self._program_key(request, content_shape) not in self._compiled

    def will_compile(self, request: Request) -> bool:
        """`needs_compile` for the request's content at its size (read here; PageError for a bad file)."""
        return self.needs_compile(request, load_input(request.content, "content", request.size).shape)

    def _program_key(self, request: Request, content_shape: tuple[int, ...]) -> tuple:
        # alpha is static in the programs (and a mix's weights are constants of its program): each value compiles
        mix = request.style_weights if len(request.styles) > 1 else None
        return (request.arch, request.variant, request.weights, content_shape, len(request.styles), mix, request.alpha)

    def load(self, arch: str, variant: str | None, weights: str) -> None:
        """Loads (once) the network: the installed weights when `weights` is empty, else `load_model`'s."""
        key = (arch, variant, weights)
        if key == self._model_key:
            return
        try:
            if weights:
                if not Path(weights).exists():
                    raise PageError(f"weights {weights} do not exist; give a params file, a release folder, or "
                                    "leave it empty for the installed model")
            model, variables = loading.load_model(arch, weights or None, variant=variant)
        except CheckpointError as error:
            raise PageError(guards.printable(str(error))) from None
        self._model, self._variables = loading.with_attention_chunk(model, None), variables
        self._stylizer = Stylizer(self._model, variables, batch_size=1)
        self._model_key, self._codes, self._mixers = key, {}, {}

    def _code(self, style: np.ndarray, target: np.ndarray | None) -> Any:
        """The style's code (leading axis 1), from the cache or encoded once; `target`: coral's content."""
        key = (self._model_key, _digest(style), None if target is None else _digest(target))
        if key not in self._codes:
            source = style if target is None else color.coral(style, target)
            try:
                self._codes[key] = self._stylizer.encode_styles(source[None])
            except Exception as error:  # e.g. a style too small for the network: reported, the server goes on
                raise PageError(f"style encoding failed: {type(error).__name__}: {error}") from None
            self.encodes += 1
        return self._codes[key]

    def stylize(self, request: Request) -> Result:
        """Runs one request; raises PageError with a message for the page."""
        _check(request)
        with self._lock:
            content = load_input(request.content, "content", request.size)
            styles = [load_input(path, "style", request.size) for path in request.styles]
            self.load(request.arch, request.variant, request.weights)
            start = time.perf_counter()
            first = self.needs_compile(request, content.shape)
            target = content if request.preserve_color == "coral" else None
            codes = [self._code(style, target) for style in styles]
            try:
                image = self._run(request, content, styles, codes)
            except Exception as error:  # e.g. a content too small for the network
                raise PageError(f"stylisation failed: {type(error).__name__}: {error}") from None
            self._compiled.add(self._program_key(request, content.shape))
        if request.preserve_color == "luminance":
            image = color.preserve_luminance(image, content)
        if not np.all(np.isfinite(image)):
            raise PageError("the network output NaN or inf (wrong weights for this network?)")
        seconds = time.perf_counter() - start
        what = "compiled and stylised" if first else "stylised"
        return Result(np.clip(image, 0.0, 1.0), content, styles,
                      f"{what} {image.shape[1]}x{image.shape[0]} in {seconds:.1f} s with {request.arch}"
                      f"{' ' + request.variant if request.variant else ''}; {self.encodes} style encodings so far")

    def _run(self, request: Request, content: np.ndarray, styles: list[np.ndarray], codes: list[Any]) -> np.ndarray:
        if len(styles) == 1:
            return self._stylizer.stylize_with_codes(content[None], codes[0], alpha=request.alpha)[0]
        weights = normalise_weights(np.asarray(request.style_weights or [1.0] * len(styles), np.float32), len(styles))
        spec = mixing.MixSpec(request.styles, weights=tuple(float(w) for w in weights))
        key = (spec.weights, request.alpha)
        if key not in self._mixers:
            self._mixers[key] = mixing.Mixer(self._model, self._variables, spec, alpha=request.alpha)
        return self._mixers[key](content, styles, codes)


def _check(request: Request) -> None:
    if not request.styles:
        raise PageError("no style image: upload one or pick a bundled painting")
    if not 0.0 <= request.alpha <= 1.0:
        raise PageError(f"alpha must be in [0, 1], got {request.alpha}")
    if not 16 <= request.size <= MAX_SIZE:
        raise PageError(f"output size must be in [16, {MAX_SIZE}] px, got {request.size}")
    if request.preserve_color not in color.PRESERVE_COLOR_METHODS:
        raise PageError(f"colour preservation must be one of {', '.join(color.PRESERVE_COLOR_METHODS)}")
    if request.style_weights is not None:
        if len(request.style_weights) != len(request.styles):
            raise PageError(f"one weight per style: {len(request.styles)} styles, {len(request.style_weights)} "
                            "weights")
        try:
            normalise_weights(np.asarray(request.style_weights, np.float32), len(request.styles))
        except ValueError as error:
            raise PageError(f"style weights: {error}") from None


def parse_weights(text: str) -> tuple[float, ...] | None:
    """``"0.7, 0.3"`` -> (0.7, 0.3); empty -> None (equal weights); PageError for anything else."""
    parts = [part for part in text.replace(",", " ").split()]
    if not parts:
        return None
    try:
        return tuple(float(part) for part in parts)
    except ValueError:
        raise PageError(f"style weights must be numbers separated by commas, got {text!r}") from None


def style_list(uploads: Sequence[str] | None, bundled: Sequence[str] | None, folder: Path) -> tuple[Path, ...]:
    """Uploaded style files first, then the picked bundled paintings (file names in `folder`)."""
    return tuple(Path(path) for path in uploads or ()) + tuple(folder / name for name in bundled or ())
