"""The TensorBoard event-file format, dependency-free: TFRecord framing plus hand-encoded Event protos.

Pure functions from values to bytes; `train.metrics.MetricsWriter` writes them to the run's event file.

TensorFlow is not a dependency of jax-ast, and tensorboardX was measured against this module and not taken
(docs/libraries.md: it imports torch when torch is installed, +3.9 s and +179 MiB at every training start,
and flushes from a thread every 120 s), so this module encodes the two summary kinds the training loop needs
(scalars and PNG images) itself, in the format TensorBoard reads:

* TFRecord framing, little-endian: uint64 payload length, masked CRC-32C of those 8 bytes, the payload,
  masked CRC-32C of the payload. CRC-32C (Castagnoli) is computed in pure Python from a 256-entry table,
  because no package installed with the project's dependencies provides it (zlib's crc32 uses another
  polynomial). That costs ~0.1 us per byte, i.e. a fraction of a second for a megabyte-sized PNG, which is fine
  for sample images written every few hundred steps.
* `tensorflow.Event` / `tensorflow.Summary` messages (tensorflow/core/util/event.proto,
  tensorflow/core/framework/summary.proto) encoded field by field in the protobuf wire format.
"""

from __future__ import annotations

import math
import socket
import struct

FILE_VERSION = "brain.Event:2"
COLORSPACE_RGB = 3  # Summary.Image.colorspace: 1 grayscale, 2 grayscale+alpha, 3 RGB, 4 RGBA.

_CRC32C_POLY_REVERSED = 0x82F63B78  # Castagnoli polynomial 0x1EDC6F41, bit-reversed.
_CRC_MASK_DELTA = 0xA282EAD8  # TFRecord's masking constant.
_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1

# Protobuf wire types.
_WIRE_VARINT, _WIRE_FIXED64, _WIRE_LEN, _WIRE_FIXED32 = 0, 1, 2, 5

# Field numbers. Event: wall_time=1 (double), step=2 (int64), file_version=3 (string), summary=5 (Summary).
_EVENT_WALL_TIME, _EVENT_STEP, _EVENT_FILE_VERSION, _EVENT_SUMMARY = 1, 2, 3, 5
# Summary: value=1 (repeated Value). Value: tag=1, simple_value=2 (float), image=4 (Image).
_SUMMARY_VALUE = 1
_VALUE_TAG, _VALUE_SIMPLE_VALUE, _VALUE_IMAGE = 1, 2, 4
# Summary.Image: height=1, width=2, colorspace=3 (int32), encoded_image_string=4 (bytes).
_IMAGE_HEIGHT, _IMAGE_WIDTH, _IMAGE_COLORSPACE, _IMAGE_ENCODED = 1, 2, 3, 4


def _make_crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (_CRC32C_POLY_REVERSED if crc & 1 else 0)
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _make_crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of `data` as an unsigned 32-bit int; crc32c(b"123456789") == 0xE3069283."""
    table = _CRC32C_TABLE
    crc = _U32
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _U32


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C: rotate right by 15 bits, then add 0xA282EAD8 (mod 2**32)."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & _U32


def tfrecord(payload: bytes) -> bytes:
    """Frame one record: length (uint64), masked crc of length, payload, masked crc of payload."""
    length = struct.pack("<Q", len(payload))
    return (length + struct.pack("<I", masked_crc32c(length))
            + payload + struct.pack("<I", masked_crc32c(payload)))


def _varint(value: int) -> bytes:
    value &= _U64  # negative int64 values are encoded as their 64-bit two's complement (10 bytes).
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint((field << 3) | wire_type)


def _int_field(field: int, value: int) -> bytes:
    return _key(field, _WIRE_VARINT) + _varint(int(value))


def _double_field(field: int, value: float) -> bytes:
    return _key(field, _WIRE_FIXED64) + struct.pack("<d", value)


def _float_field(field: int, value: float) -> bytes:
    try:
        packed = struct.pack("<f", value)
    except OverflowError:  # finite but beyond float32 range: saturate like a float32 cast does.
        packed = struct.pack("<f", math.copysign(math.inf, value))
    return _key(field, _WIRE_FIXED32) + packed


def _bytes_field(field: int, data: bytes) -> bytes:
    return _key(field, _WIRE_LEN) + _varint(len(data)) + data


def scalar_value(tag: str, value: float) -> bytes:
    """Encoded `Summary.Value` with `simple_value` (float32; NaN/inf are kept, TensorBoard shows them)."""
    return _bytes_field(_VALUE_TAG, tag.encode("utf-8")) + _float_field(_VALUE_SIMPLE_VALUE, float(value))


def image_value(tag: str, encoded_png: bytes, *, height: int, width: int) -> bytes:
    """Encoded `Summary.Value` holding a `Summary.Image` (RGB PNG bytes and its size)."""
    image = (_int_field(_IMAGE_HEIGHT, height) + _int_field(_IMAGE_WIDTH, width)
             + _int_field(_IMAGE_COLORSPACE, COLORSPACE_RGB) + _bytes_field(_IMAGE_ENCODED, encoded_png))
    return _bytes_field(_VALUE_TAG, tag.encode("utf-8")) + _bytes_field(_VALUE_IMAGE, image)


def event_file_name(wall_time: float, attempt: int = 0) -> str:
    """`events.out.tfevents.<unix time>.<host>[.N]`: TensorBoard reads every file so named in a folder."""
    base = f"events.out.tfevents.{int(wall_time):010d}.{socket.gethostname()}"
    return base if attempt == 0 else f"{base}.{attempt}"


def event(*, wall_time: float, step: int, file_version: str | None = None,
          summary_values: list[bytes] | None = None) -> bytes:
    """Encoded `Event` with an optional file_version string and Summary made of encoded `Summary.Value`s."""
    out = _double_field(_EVENT_WALL_TIME, wall_time) + _int_field(_EVENT_STEP, step)
    if file_version is not None:
        out += _bytes_field(_EVENT_FILE_VERSION, file_version.encode("utf-8"))
    if summary_values:
        summary = b"".join(_bytes_field(_SUMMARY_VALUE, value) for value in summary_values)
        out += _bytes_field(_EVENT_SUMMARY, summary)
    return out
