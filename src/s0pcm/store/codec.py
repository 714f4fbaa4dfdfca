"""The slot codec: one UTC hour of 10-second pulse counts as a small blob.

An hour is 360 non-negative counts. Household meters give small, regular counts with long runs
of zeros (gas and water are idle most of the time), so the counts are written as unsigned LEB128
varints (one byte each below 128), trailing zeros dropped, then compressed with raw deflate (no
zlib header or checksum: the database guards the bytes). Measured on simulated household hours
(bench/bench_store.py) that is 20 to 60 bytes an hour, about 0.1 byte per slot; delta coding,
nibble packing, bz2, lzma and a preset deflate dictionary were all tried and none gained enough
to be worth a format to maintain forever.

Layout: the empty blob is an hour of zeros; otherwise the first byte says how the rest is coded
(:data:`RAW` varints, or :data:`DEFLATE` varints), so a later version can add a format and still
read every blob written before.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Final

from ..calendar import SLOTS_PER_HOUR
from ..errors import CodecError

__all__ = ["DEFLATE", "RAW", "CodecError", "decode", "encode"]


#: Format tags (the blob's first byte).
RAW: Final = 0
DEFLATE: Final = 1

_LEVEL: Final = 9
_WBITS: Final = -15  # raw deflate


def encode(counts: Sequence[int]) -> bytes:
    """Encode up to :data:`SLOTS_PER_HOUR` non-negative counts (missing ones are zeros)."""
    if len(counts) > SLOTS_PER_HOUR:
        raise ValueError(f"an hour has {SLOTS_PER_HOUR} slots, got {len(counts)} counts")
    end = len(counts)
    while end and not counts[end - 1]:
        end -= 1
    if not end:
        return b""
    payload = _varints(counts[:end])
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WBITS)
    packed = compressor.compress(payload) + compressor.flush()
    if len(packed) < len(payload):
        return bytes((DEFLATE,)) + packed
    return bytes((RAW,)) + payload


def decode(blob: bytes) -> list[int]:
    """The hour's :data:`SLOTS_PER_HOUR` counts; :class:`CodecError` when the blob is damaged."""
    if not blob:
        return [0] * SLOTS_PER_HOUR
    tag, body = blob[0], bytes(blob[1:])
    if tag == DEFLATE:
        try:
            body = zlib.decompress(body, _WBITS)
        except zlib.error as exc:
            raise CodecError(f"slot blob does not inflate: {exc}") from None
    elif tag != RAW:
        raise CodecError(f"unknown slot blob format {tag}")
    counts = list(body) if body.isascii() else _unvarints(body)
    if len(counts) > SLOTS_PER_HOUR:
        raise CodecError(f"slot blob holds {len(counts)} counts, more than an hour")
    counts.extend([0] * (SLOTS_PER_HOUR - len(counts)))
    return counts


def _varints(counts: Sequence[int]) -> bytes:
    try:
        # The common case, every count below 128: one byte each, done in C.
        data = bytes(counts)
    except ValueError:
        pass
    else:
        if data.isascii():
            return data
    out = bytearray()
    for value in counts:
        if value < 0:
            raise ValueError(f"pulse counts cannot be negative: {value}")
        while value >= 0x80:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out)


def _unvarints(data: bytes) -> list[int]:
    counts: list[int] = []
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
        else:
            counts.append(value)
            value = shift = 0
    if shift:
        raise CodecError("slot blob ends inside a varint")
    return counts
