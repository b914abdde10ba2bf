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
| `F`                        | 32-bit float grey, accepted only when already in [0, 1]                |

(1) The networks have no alpha channel; white is how viewers show transparent pixels on a page, and a
black background would turn transparent margins into strong dark style features.

EXIF orientation is applied first (phone photos come out upright). Any problem (missing, unreadable, corrupt,
truncated, too small, too large, unsupported) raises ONE `ImageError` naming the file and the reason.

Resizing uses PIL's bilinear filter, which is antialiased when downscaling. 8-bit images are resized in uint8
like torchvision's `Resize` on a PIL image (the preprocessing of the AdaIN/SANet/LinearTransfer originals), so
the pixels match theirs exactly; high-bit-depth images are resized per channel in float32.
"""

from __future__ import annotations

import numbers
import os
import uuid
import warnings
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
from PIL import Image, ImageOps

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
    width, height = image.size
    if min(width, height) < min_side:
        raise ImageError(path, f"image is too small ({width}x{height}); each side must be at least {min_side} px")
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


def _open_and_decode(path: Path, max_pixels: int) -> Image.Image:
    """Opens, size-checks, fully decodes and EXIF-orients an image, mapping every failure to ImageError."""
    if not path.exists():
        raise ImageError(path, "file does not exist")
    if path.is_dir():
        raise ImageError(path, "is a directory, not an image file")
    try:
        with warnings.catch_warnings():
            # We apply our own pixel limit below; PIL's warning threshold would only add noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                width, height = opened.size
                if width * height > max_pixels:
                    raise ImageError(path, f"image is too large ({width}x{height} = {width * height} pixels, "
                                           f"limit {max_pixels}); possible decompression bomb")
                opened.load()  # decode now, so truncated/corrupt data fails here rather than later
                image = ImageOps.exif_transpose(opened)  # always a new image, independent of the file
    except ImageError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageError(path, f"image is too large: {error}") from error
    except Image.UnidentifiedImageError as error:
        raise ImageError(path, "not a recognised image format (unreadable or not an image)") from error
    except Exception as error:  # PIL decoders raise OSError, SyntaxError, struct.error, ... on bad data
        raise ImageError(path, f"corrupt or truncated image ({type(error).__name__}: {error})") from error
    return image


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
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        if not (np.isfinite(values).all() and lo >= 0.0 and hi <= 1.0):
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


def save_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Writes float [H, W, 3] (or [H, W] / [H, W, 1] grey) RGB, clamped to [0, 1], as PNG/JPEG/... atomically.

    The file is written to a temporary name in the same directory and renamed, so a reader never sees a
    half-written image; missing parent directories are created. NaN becomes 0. Values are quantised as
    torchvision's ``save_image`` does (``floor(x * 255 + 0.5)``).

    Returns:
      The path written.
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
    quantised = np.floor(np.clip(np.nan_to_num(pixels, nan=0.0), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    options = {"quality": JPEG_QUALITY} if file_format in ("JPEG", "WEBP") else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh hidden name in the same directory (so the rename is atomic); opened with "x" so the file gets
    # the ordinary umask permissions (tempfile.mkstemp would make it owner-only).
    temp_path = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        with open(temp_path, "xb") as stream:
            Image.fromarray(quantised).save(stream, format=file_format, **options)
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    return path


def list_images(path: str | os.PathLike, *, recursive: bool = True,
                extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """The image files under a directory (sorted, hidden files skipped), or ``[path]`` for a single file.

    A single file is returned whatever its extension, so `load_image` can report what is wrong with it.

    Raises:
      FileNotFoundError: the path does not exist.
      ImageError: a directory that holds no file with one of ``extensions``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_file():
        return [path]
    wanted = {ext.lower() for ext in extensions}
    candidates = path.rglob("*") if recursive else path.iterdir()
    found = sorted(p for p in candidates
                   if p.is_file() and p.suffix.lower() in wanted
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not found:
        where = "under" if recursive else "in"
        raise ImageError(path, f"no images found {where} this directory (looked for {', '.join(sorted(wanted))})")
    return found
