"""One progress display for downloads, training and evaluation: a tqdm bar or periodic plain lines.

On a terminal this is a tqdm bar. Elsewhere (a log file, a pipe, CI) a plain line, written by the caller's
`line(done, total)`, is printed each `every_fraction` of the total, at most `every_seconds` apart, and once
at the end: tqdm redraws its bar in place with carriage returns, which a log file keeps as one ever-growing
line (measured in docs/libraries.md).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm


def is_terminal(stream: TextIO) -> bool:
    """True if `stream` is an interactive terminal (False for files, pipes, closed or odd streams)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """Progress of `total` units of work, as a tqdm bar or plain lines.

    Args:
      total: units at the end (None: unknown; no fractions, no final line).
      initial: units already done (a resumed run).
      unit: tqdm's unit name ("B", "step", "img").
      desc: tqdm's label.
      enabled: False prints nothing (e.g. on non-zero processes).
      file: output stream (default: sys.stderr at the time of each write).
      use_tqdm: None: tqdm on a terminal; True: tqdm always; False: plain lines.
      line: plain-line text of (done, total); default "[done/total]".
      every_fraction: plain line when this fraction of the total has passed since the last one (None: never).
      every_seconds: plain line when this many seconds have passed since the last one (None: never).
      clock: monotonic time source in seconds (injectable for tests).
      bar_options: extra tqdm keyword arguments (unit_scale, leave, dynamic_ncols, ...).
    """

    def __init__(self, total: int | None, *, initial: int = 0, unit: str = "it", desc: str | None = None,
                 enabled: bool = True, file: TextIO | None = None, use_tqdm: bool | None = None,
                 line: Callable[[int, int | None], str] | None = None, every_fraction: float | None = 0.1,
                 every_seconds: float | None = None, clock: Callable[[], float] = time.monotonic,
                 **bar_options):
        self.total, self.done, self.enabled = total, initial, enabled
        self._file, self._line, self._clock = file, line, clock
        self._every_seconds = every_seconds
        self._step = max(1, math.floor(total * every_fraction)) if total and every_fraction else None
        self._next = initial + self._step if self._step else None
        self._last_time, self._printed = clock(), initial
        self._closed = False
        self._bar = self._make_bar(unit, desc, use_tqdm, bar_options) if enabled else None

    def _stream(self) -> TextIO:
        return self._file if self._file is not None else sys.stderr

    def _make_bar(self, unit: str, desc: str | None, use_tqdm: bool | None, options: dict):
        if use_tqdm is False or (use_tqdm is None and not is_terminal(self._stream())):
            return None
        return tqdm(total=self.total, initial=self.done, unit=unit, desc=desc, file=self._stream(), **options)

    def update(self, count: int) -> None:
        """`count` more units are done."""
        self.goto(self.done + count)

    def goto(self, done: int, postfix: str | None = None) -> None:
        """`done` units are done in all; `postfix` (tqdm only) replaces the text after the bar."""
        self.done = done
        if not self.enabled or self._closed:
            return
        if self._bar is not None:
            if postfix is not None:
                self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(done - self._bar.n)
            return
        now = self._clock()
        due_fraction = self._next is not None and done >= self._next
        due_time = self._every_seconds is not None and now - self._last_time >= self._every_seconds
        if due_fraction or due_time or (self.total is not None and done >= self.total):
            self._print(now)

    def _print(self, now: float) -> None:
        text = self._line(self.done, self.total) if self._line else f"[{self.done}/{self.total}]"
        stream = self._stream()
        stream.write(text + "\n")
        stream.flush()
        self._last_time, self._printed = now, self.done
        if self._step:
            self._next = self.done + self._step

    def write(self, message: str) -> None:
        """Print a message without breaking the bar (always printed, even when disabled)."""
        if self._bar is not None:
            self._bar.write(message, file=self._stream())
        else:
            print(message, file=self._stream(), flush=True)

    def close(self) -> None:
        """Finish the bar, or print the last state if it was not printed yet (idempotent)."""
        if not self.enabled or self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.total is not None and self._printed != self.done:
            self._print(self._clock())

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
