"""Exclusive advisory locks on run folders, so two processes never write the same files at once.

    with exclusive_lock(workdir / ".lock", what=f"workdir {workdir}"):
        ...  # only this process writes in workdir

The lock is `fcntl.flock` on a small lock file that records the holder ("PID 1234 on host"). The
kernel releases it when the process exits, however it exits (SIGKILL included), so a stale lock file
never blocks a rerun. flock is per host: processes on different machines sharing a network file
system are not excluded from each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path
from typing import Iterator


class LockedError(RuntimeError):
    """The folder is locked by another process (the message names it and the holder)."""


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, *, what: str) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the duration of the block.

    Args:
      path: the lock file.
      what: how to name the locked thing in messages, e.g. "workdir /runs/a".

    Raises:
      LockedError: another process holds the lock (names `what` and the holder's PID), or the file
        system does not support locks.
    """
    path = Path(path)
    handle = open(path, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "PID unknown"
        handle.close()
        raise LockedError(f"{what} is in use by another run ({holder}); wait for it to finish or use "
                          "another folder") from None
    except OSError as error:  # e.g. ENOLCK on file systems without locks
        handle.close()
        raise LockedError(f"cannot lock {what} ({error.strerror or error})") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"PID {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
