"""Every result file of eval: append-only CSVs that survive interruption, whole CSV tables, strict JSON,
atomic writes.

A `CsvLog` is a CSV file with a fixed header whose first column is the integer pair number. Rows are
written whole and flushed after every batch, so an interrupted run leaves at most one partially written
last line; reopening the file drops that line (it is recomputed) and reports which pairs are already
there, so a rerun appends only the missing ones and no pair is ever written twice. A batch whose write
fails (disk full) is cut off again at once and raises `WriteError`, so the file keeps only whole rows.
Text that cannot be encoded (undecodable file-name bytes) is written backslash-escaped. An exclusive lock
(`fcntl.flock`) stops two runs from appending to the same file at once.
"""

from __future__ import annotations

import array
import csv
import fcntl
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from jax_ast import files


class RecordsError(RuntimeError):
    """A result file that cannot be resumed (other columns, malformed rows, locked by another run)."""


class WriteError(OSError):
    """A result file could not be written (disk full, I/O error); what it held before is intact."""


def format_value(value: Any) -> str:
    """A CSV cell: floats with 9 significant digits (exact float32 round trip), 'nan'/'inf' as such."""
    if isinstance(value, (float, np.floating)):
        return format(float(value), ".9g")
    return str(value)


class CsvLog:
    """An append-only CSV of rows keyed by pair number (first column), resumable after any interruption.

    Args:
      path: the file (created with `columns` as header if missing).
      columns: the header; an existing file must have exactly this header.

    Attributes:
      done: set of pair numbers already in the file (the partial last line, if any, is removed first).
      truncated: bytes removed from an interrupted last line.
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str]):
        self.path, self.columns = Path(path), list(columns)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+b")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise RecordsError(f"{self.path} is being written by another run; wait for it or use another --out")
        try:
            self.truncated = self._drop_partial_line()
            self.done = self._read_done()
            if self._file.tell() == 0:
                self._write([self.columns])
        except BaseException:
            self._file.close()  # also releases the lock
            raise
        self._text = io.TextIOWrapper(self._file, encoding="utf-8", newline="", write_through=True)

    def _drop_partial_line(self) -> int:
        size = self._file.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        self._file.seek(max(0, size - 65536))
        tail = self._file.read()
        if tail.endswith(b"\n"):
            return 0
        cut = tail.rfind(b"\n")
        if cut < 0 and size > len(tail):
            raise RecordsError(f"{self.path}: last line longer than 64 KiB; the file is not a results CSV")
        keep = size - len(tail) + cut + 1
        self._file.truncate(keep)
        self._file.seek(0, os.SEEK_END)
        return size - keep

    def _read_done(self) -> set[int]:
        self._file.seek(0)
        text = io.TextIOWrapper(self._file, encoding="utf-8", newline="")
        reader = csv.reader(text)
        done: set[int] = set()
        try:
            header = next(reader, None)
            if header is not None and header != self.columns:
                raise RecordsError(f"{self.path} has other columns than this run writes (different layers or "
                                   f"metrics?); use another --out. Missing: {sorted(set(self.columns) - set(header))}, "
                                   f"extra: {sorted(set(header) - set(self.columns))}")
            for line, row in enumerate(reader, start=2):
                if len(row) != len(self.columns) or not row[0].isdigit():
                    raise RecordsError(f"{self.path} line {line}: malformed row ({len(row)} fields, "
                                       f"expected {len(self.columns)})")
                pair = int(row[0])
                if pair in done:
                    raise RecordsError(f"{self.path} line {line}: pair {pair} appears twice")
                done.add(pair)
        finally:
            text.detach()  # keep self._file open
        self._file.seek(0, os.SEEK_END)
        return done

    def append(self, rows: Iterable[Sequence[Any]]) -> None:
        """Writes whole rows (first value: a pair number not yet in the file) and flushes them to the OS.

        Raises:
          WriteError: the write failed; none of these rows is in the file (or in `done`).
        """
        cells, pairs = [], []
        for row in rows:
            if len(row) != len(self.columns):
                raise ValueError(f"row of {len(row)} values for {len(self.columns)} columns")
            pair = int(row[0])
            if pair in self.done or pair in pairs:
                raise RecordsError(f"{self.path}: pair {pair} is already recorded")
            cells.append([format_value(value) for value in row])
            pairs.append(pair)
        self._write(cells)
        self.done.update(pairs)

    def _write(self, rows: list[list[str]]) -> None:
        """Appends `rows` with unbuffered writes; after a failure the file is cut back to its previous end."""
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        data = memoryview(text.getvalue().encode("utf-8", "backslashreplace"))
        descriptor = self._file.fileno()
        end = os.lseek(descriptor, 0, os.SEEK_END)
        try:
            while data:
                data = data[os.write(descriptor, data):]
        except OSError as error:
            try:
                os.ftruncate(descriptor, end)
            except OSError:
                pass  # the partial last line is dropped when the file is next opened
            raise WriteError(f"cannot write to {self.path}: {error.strerror or error}; its {len(self.done)} rows "
                             "are intact, rerun to resume") from error

    def close(self) -> None:
        if not self._file.closed:
            self._text.flush()
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._text.close()

    def __enter__(self) -> "CsvLog":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def read_columns(path: str | os.PathLike, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Selected numeric columns of a results CSV as float64 arrays, streamed row by row.

    Memory is 8 bytes per row and selected column (typed `array.array` buffers); nothing else is kept. An
    interrupted last line (which the next run truncates) is ignored.
    """
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.reader(stream)
        header = next(reader)
        missing = [n for n in names if n not in header]
        if missing:
            raise RecordsError(f"{path} has no columns {missing}; it has {header}")
        positions = [header.index(n) for n in names]
        values = [array.array("d") for _ in names]
        for row in reader:
            if len(row) != len(header):
                continue
            for column, position in zip(values, positions):
                column.append(float(row[position]))
    return {n: np.frombuffer(v, np.float64) if len(v) else np.zeros(0) for n, v in zip(names, values)}


def count_rows(path: str | os.PathLike) -> int:
    """Complete data rows (header excluded) of a CSV written by `CsvLog`."""
    if not Path(path).exists():
        return 0
    newlines = 0
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            newlines += block.count(b"\n")
    return max(0, newlines - 1)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, np.ndarray):
        return _finite_or_none(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Strict JSON (NaN and inf become null; numpy scalars and arrays become numbers and lists), atomically."""
    return write_text(path, json.dumps(_finite_or_none(data), indent=2, allow_nan=False) + "\n")


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes `text` to a temporary file in the same folder and renames it over `path`."""
    return write_bytes(path, text.encode("utf-8", "backslashreplace"))


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes `data` to a temporary file in the same folder and renames it over `path` (never half-written)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return files.write_bytes(path, data)


def write_table(path: str | os.PathLike, rows: Sequence[Mapping], columns: Sequence[str] | None = None) -> Path:
    """Rows of dicts as a whole CSV (header `columns`, default the first row's keys; a missing value is empty),
    floats with 9 significant digits (`format_value`); written atomically like `write_text`."""
    columns = list(columns or rows[0].keys())
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([format_value(row.get(name, "")) for name in columns] for row in rows)
    return write_text(path, stream.getvalue())


def read_table(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a CSV written by `write_table`, as dicts of strings."""
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)


def json_roundtrip(value: Any) -> Any:
    """`value` as it reads back from `write_json` (tuples become lists, NaN becomes None, ...)."""
    return json.loads(json.dumps(_finite_or_none(value), allow_nan=False))
