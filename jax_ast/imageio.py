"""Reading, resizing, listing and writing images: the one pixel-file boundary of jax-ast.

Every image comes out of `load_image` as float32 [H, W, 3] RGB in [0, 1], whatever the file holds:

| PIL mode                   | conversion                                                             |
|----------------------------|------------------------------------------------------------------------|
| `1`, `L`                   | grey replicated to R, G, B (1-bit: 0 or 1)                             |
| `LA`, `RGBA`, `PA`, `P` with transparency | alpha-composited onto a **white** background (1)        |
| `P`                        | palette expanded to RGB                                                |
| `CMYK`, `YCbCr`, ...       | PIL's conversion to RGB (PIL's JPEG decoder undoes Adobe's CMYK inversion) |
| `I;16*`                    | 16-bit grey: value / 65535, full precision (not truncated to 8 bits)   |
| `I`                        | 32-bit integer grey (from 16-bit PNG/TIFF): value / 65535, rejected outside [0, 65535] |
| `F`                        | 32-bit float grey, accepted only when finite and already in [0, 1]     |

(1) The networks have no alpha channel; white is how viewers show transparent pixels on a page, and a
black background would turn transparent margins into strong dark style features.

EXIF orientation is applied first (phone photos come out upright). Any problem (missing, a directory, a symlink
loop, permission denied, corrupt, truncated, too small, too large, NaN/inf pixels, unsupported) raises ONE
`ImageError` naming the file and the reason.

`load_pixels` is the training loader's variant: no float copy of 8-bit images, and optionally decoded at a
reduced scale, so its memory follows the size the loader needs rather than the file's pixel count.

Resizing uses PIL's bilinear filter, which is antialiased when downscaling. 8-bit images are resized in uint8
like torchvision's `Resize` on a PIL image (the preprocessing of the AdaIN/SANet/LinearTransfer originals), so
the pixels match theirs exactly; high-bit-depth images are resized per channel in float32.
"""

from __future__ import annotations

import errno
import numbers
import os
import stat
import warnings
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
from PIL import ExifTags, Image

from jax_ast.files import atomic_writer

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                                     ".ppm", ".pgm", ".pbm", ".pnm")
SAVE_FORMATS: dict[str, str] = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP",
                                ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}
# 100 megapixels (10,000 x 10,000): far above any style-transfer input, far below what exhausts memory
# (the float32 copy of such an image is already 1.2 GB).
DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_MIN_SIDE = 16
JPEG_QUALITY = 95

ResizeMode = Literal["shorter", "exact"]
_BACKGROUND = (255, 255, 255)
_ALPHA_MODES = ("LA", "La", "RGBA", "RGBa", "PA")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
# Modes PIL's `reduce` averages correctly; others are converted first (averaging palette indices is wrong).
_REDUCIBLE_MODES = ("L", "LA", "RGB", "RGBA", "I", "F", "CMYK", "YCbCr")
# A reduced image keeps at least this many times the caller's size, so the caller's antialiased resize
# still does most of the filtering (PIL's `reducing_gap`; 2 is "indistinguishable in most cases").
REDUCING_GAP = 2
_ORIENTATIONS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                 4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
                 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


class ImageError(ValueError):
    """An image file that cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{os.fspath(path)}: {reason}")
        self.path = Path(path)
        self.reason = reason


def load_image(path: str | os.PathLike, *, size: int | tuple[int, int] | None = None,
               mode: ResizeMode = "shorter", max_pixels: int = DEFAULT_MAX_PIXELS,
               min_side: int = DEFAULT_MIN_SIDE) -> np.ndarray:
    """Reads an image file as RGB.

    Args:
      path: the image file.
      size: None or 0 keeps the native size. With ``mode="shorter"`` an int is the new shorter side and the
        longer side keeps the aspect ratio (truncated, like torchvision ``Resize(int)``). With ``mode="exact"``
        an int gives a square and a tuple is (height, width) (aspect ratio distorted, like ``Resize((h, w))``).
      mode: "shorter" or "exact".
      max_pixels: larger images (decompression bombs) are rejected before they are decoded.
      min_side: images whose height or width (before resizing) is smaller are rejected.

    Returns:
      float32 [H, W, 3], RGB in [0, 1].

    Raises:
      ImageError: for any file that cannot be read or used, naming the file and the reason.
    """
    if mode not in ("shorter", "exact"):
        raise ValueError(f"unknown resize mode {mode!r}; valid modes: 'shorter', 'exact'")
    path = Path(path)
    image = _open_and_decode(path, max_pixels)
    width, height = _check_min_side(image, path, min_side)
    target = _target_size(height, width, size, mode)
    if target is not None and target[0] * target[1] > max_pixels:
        raise ImageError(path, f"resizing {width}x{height} to {target[1]}x{target[0]} would exceed the "
                               f"{max_pixels}-pixel limit (extreme aspect ratio?)")
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        pixels = _high_depth_to_float(image, path)
        return pixels if target is None else _resize_float(pixels, target)
    image = _to_rgb(image, path)
    if target is not None:
        image = image.resize((target[1], target[0]), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.float32) / 255.0


def load_pixels(path: str | os.PathLike, *, shorter_side: int | None = None,
                max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int = DEFAULT_MIN_SIDE) -> np.ndarray:
    """Reads an image file as RGB for a caller that resizes and crops it itself (the training loader).

    The conversions are `load_image`'s, without its float copy of 8-bit data (4x the memory).

    Args:
      path: the image file.
      shorter_side: the shorter side the caller will resize to, or None. An image whose shorter side is at
        least ``2 * REDUCING_GAP * shorter_side`` is decoded at a reduced scale (JPEG DCT scaling, then an
        integer box reduction) that keeps its shorter side at least ``REDUCING_GAP * shorter_side``, so the
        caller's antialiased resize gives nearly the pixels it would from the full image while memory follows
        the needed size instead of the file's pixel count.
      max_pixels, min_side: as in `load_image` (`min_side` applies to the decoded image).

    Returns:
      uint8 [H, W, 3] for 8-bit files; float32 [H, W, 3] in [0, 1] for 16/32-bit files.

    Raises:
      ImageError: for any file that cannot be read or used, naming the file and the reason.
    """
    path = Path(path)
    image = _open_and_decode(path, max_pixels, shorter_side=shorter_side)
    _check_min_side(image, path, min_side)
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        return _high_depth_to_float(image, path)
    return np.asarray(_to_rgb(image, path))


def _check_min_side(image: Image.Image, path: Path, min_side: int) -> tuple[int, int]:
    width, height = image.size
    if min(width, height) < min_side:
        raise ImageError(path, f"image is too small ({width}x{height}); each side must be at least {min_side} px")
    return width, height


def _os_error_reason(error: OSError, path: str | os.PathLike) -> str:
    """Why opening `path` failed, in words: a missing file, a directory, a symlink loop, no permission, ..."""
    if error.errno == errno.ELOOP:
        return "symlink loop (too many levels of symbolic links)"
    if isinstance(error, FileNotFoundError):
        return "broken symlink (its target does not exist)" if os.path.islink(path) else "file does not exist"
    if isinstance(error, IsADirectoryError):
        return "is a directory, not an image file"
    if isinstance(error, PermissionError):
        return "permission denied (cannot read the file)"
    return f"cannot read the file ({error.strerror or error})"


def _open_and_decode(path: Path, max_pixels: int, *, shorter_side: int | None = None) -> Image.Image:
    """Opens, size-checks, fully decodes (reduced for `shorter_side`, see `load_pixels`) and EXIF-orients an
    image, mapping every failure to ImageError."""
    try:  # opened here so that OS errors are told apart from corrupt data
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):  # a FIFO would block forever
            raise ImageError(path, "not a regular file (a device, pipe or socket)")
        stream = open(path, "rb")
    except OSError as error:
        raise ImageError(path, _os_error_reason(error, path)) from None
    try:
        with stream, warnings.catch_warnings():
            # We apply our own pixel limit below; PIL's warning threshold would only add noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(stream)
            width, height = opened.size
            if width * height > max_pixels:
                raise ImageError(path, f"image is too large ({width}x{height} = {width * height} pixels, "
                                       f"limit {max_pixels}); possible decompression bomb")
            if shorter_side:
                _draft(opened, REDUCING_GAP * shorter_side)
            opened.load()  # decode now, so truncated/corrupt data fails here rather than later
            method = _ORIENTATIONS.get(opened.getexif().get(ExifTags.Base.Orientation, 1))
            image = opened
            if shorter_side and min(opened.size) >= 2 * REDUCING_GAP * shorter_side:
                image = _reduce(opened, min(opened.size) // (REDUCING_GAP * shorter_side))
            # Loaded pixels stay valid after the file is closed, so an upright image is not copied.
            image = image if method is None else image.transpose(method)
    except ImageError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageError(path, f"image is too large: {error}") from error
    except Image.UnidentifiedImageError as error:
        raise ImageError(path, "not a recognised image format (unreadable or not an image)") from error
    except Exception as error:  # PIL decoders raise OSError, SyntaxError, struct.error, ... on bad data
        raise ImageError(path, f"corrupt or truncated image ({type(error).__name__}: {error})") from error
    return image


def _draft(image: Image.Image, shorter_side: int) -> None:
    """Ask the decoder (JPEG only; others ignore it) for the smallest DCT scale whose shorter side is still
    at least `shorter_side`."""
    width, height = image.size
    scale = shorter_side / min(width, height)
    if scale < 1:
        image.draft(None, (max(1, int(width * scale + 0.999)), max(1, int(height * scale + 0.999))))


def _reduce(image: Image.Image, factor: int) -> Image.Image:
    """`image` shrunk by an integer `factor` (box average), converted first where PIL cannot average the mode."""
    if image.mode in _SIXTEEN_BIT_MODES:
        image = image.convert("I")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode not in _REDUCIBLE_MODES:
        image = _to_rgb_or_rgba(image)
    return image.reduce(factor)


def _to_rgb_or_rgba(image: Image.Image) -> Image.Image:
    """Palette and other modes to RGB, or RGBA where they carry transparency (composited later by `_to_rgb`)."""
    transparent = image.mode in _ALPHA_MODES or "transparency" in image.info
    return image.convert("RGBA" if transparent else "RGB")


def _to_rgb(image: Image.Image, path: Path) -> Image.Image:
    """Any 8-bit-per-channel PIL mode to RGB; alpha is composited onto white."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode == "RGB":
        return image
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise ImageError(path, f"unsupported image mode {image.mode!r} ({error})") from error


def _high_depth_to_float(image: Image.Image, path: Path) -> np.ndarray:
    """16-bit and 32-bit single-channel modes to float32 [H, W, 3] in [0, 1] without losing precision."""
    values = np.asarray(image)
    if image.mode == "F":
        finite = np.isfinite(values)
        if not finite.all():
            raise ImageError(path, f"32-bit float image holds NaN/inf pixels ({values.size - np.count_nonzero(finite)} "
                                   f"of {values.size}); only finite values in [0, 1] are supported")
        lo, hi = float(values.min()), float(values.max())
        if not (lo >= 0.0 and hi <= 1.0):
            raise ImageError(path, f"32-bit float image with values in [{lo:g}, {hi:g}]; only [0, 1] is supported")
        grey = values.astype(np.float32)
    else:
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or hi > 65535:
            raise ImageError(path, f"32-bit integer image with values in [{lo}, {hi}]; only 16-bit data "
                                   "(0..65535) is supported")
        grey = values.astype(np.float32) / 65535.0
    return np.repeat(grey[:, :, None], 3, axis=2)


def _target_size(height: int, width: int, size: int | tuple[int, int] | None,
                 mode: ResizeMode) -> tuple[int, int] | None:
    """(new_height, new_width), or None when no resize is needed."""
    if size is None or size == 0:
        return None
    if mode == "exact":
        target = (int(size), int(size)) if isinstance(size, numbers.Integral) else (int(size[0]), int(size[1]))
    else:
        if not isinstance(size, numbers.Integral):
            raise ValueError(f"mode='shorter' needs an int size, got {size!r}")
        size = int(size)
        if height <= width:
            target = (size, int(size * width / height))
        else:
            target = (int(size * height / width), size)
    if min(target) < 1:
        raise ValueError(f"resize target {target} is empty (size={size!r})")
    return None if target == (height, width) else target


def _resize_float(pixels: np.ndarray, target: tuple[int, int]) -> np.ndarray:
    """Bilinear (antialiased) resize of float32 [H, W, C] in PIL's 32-bit float mode, channel by channel."""
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(pixels[:, :, c]), mode="F")
                           .resize((target[1], target[0]), Image.Resampling.BILINEAR))
                for c in range(pixels.shape[2])]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0).astype(np.float32)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """float pixels in [0, 1] (clamped) -> uint8, rounded as torchvision's ``save_image`` (``floor(x * 255 + 0.5)``)."""
    return np.floor(np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Writes float [H, W, 3] (or [H, W] / [H, W, 1] grey) RGB, clamped to [0, 1], as PNG/JPEG/... atomically.

    The file is written to a temporary name in the same directory and renamed, so a reader never sees a
    half-written image; missing parent directories are created. Values are quantised as torchvision's
    ``save_image`` does (``floor(x * 255 + 0.5)``).

    Returns:
      The path written.

    Raises:
      ValueError: an unsupported extension or shape, or NaN/inf pixels (from a diverged model or broken
        weights: clamping would write a plausible-looking image that hides the fault). Nothing is written.
    """
    path = Path(path)
    file_format = SAVE_FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise ValueError(f"{path}: unsupported output extension {path.suffix!r}; valid: {', '.join(SAVE_FORMATS)}")
    pixels = np.asarray(image, dtype=np.float32)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ValueError(f"{path}: expected an image of shape [H, W, 3] or [H, W], got {pixels.shape}")
    finite = np.isfinite(pixels)
    if not finite.all():
        raise ValueError(f"{path}: not written, the image holds NaN/inf values ({pixels.size - np.count_nonzero(finite)} "
                         f"of {pixels.size})")
    quantised = to_uint8(pixels)
    options = {"quality": JPEG_QUALITY} if file_format in ("JPEG", "WEBP") else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as stream:
        Image.fromarray(quantised).save(stream, format=file_format, **options)
    return path


def list_images(path: str | os.PathLike, *, recursive: bool = True,
                extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """The image files under a directory (sorted, hidden files skipped), or ``[path]`` for a single file.

    A single file is returned whatever its extension, so `load_image` can report what is wrong with it.

    Raises:
      FileNotFoundError: the path does not exist.
      ImageError: a path that cannot be used (a symlink loop, permission denied, ...), or a directory that
        holds no file with one of ``extensions``.
    """
    path = Path(path)
    try:
        os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file or directory") from None
    except OSError as error:
        raise ImageError(path, _os_error_reason(error, path)) from None
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ImageError(path, "not a regular file (a device, pipe or socket)")
    wanted = {ext.lower() for ext in extensions}
    candidates = path.rglob("*") if recursive else path.iterdir()
    found = sorted(p for p in candidates
                   if p.is_file() and p.suffix.lower() in wanted
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not found:
        where = "under" if recursive else "in"
        raise ImageError(path, f"no images found {where} this directory (looked for {', '.join(sorted(wanted))})")
    return found
