"""Atomic file writes: readers see the old file or the complete new one, never a half-written file.

Everything is written to a hidden temporary sibling (same folder, so the final rename is atomic) and
renamed over the target with `os.replace` once complete; on any failure the temporary file is removed and
the target is left as it was. The temporary file is opened with mode "x", so it gets the ordinary umask
permissions (`tempfile.mkstemp` would make it owner-only). The target's folder must exist.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a binary stream; on a clean exit of the block its bytes replace `path`, on an error nothing does."""
    path = Path(path)
    temp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        with open(temp, "xb") as stream:
            yield stream
        os.replace(temp, path)
    except BaseException as error:
        temp.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename in (None, str(temp)):
            error.filename = str(path)  # a full disk's bare "[Errno 28]" then names the file it was writing
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically replace `path` with `data`; returns the path."""
    with atomic_writer(path) as stream:
        stream.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, *, errors: str = "strict") -> Path:
    """Atomically replace `path` with `text` encoded as UTF-8 (`errors` as in `str.encode`); returns the path."""
    return write_bytes(path, text.encode("utf-8", errors))
