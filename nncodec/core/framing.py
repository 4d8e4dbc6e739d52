"""Framing helpers shared by the container and every codec's payload (one copy of each).

Grammar of the pieces they read and write::

    varint   := unsigned LEB128: 7 bits per byte, low bits first, high bit set on all but the last
                byte; at most 10 bytes, value below 2^63
    streams  := varint size_1 ... varint size_n | stream_1 ... stream_n     (n known to the reader)

``zigzag`` maps signed integers to unsigned ones (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...).
"""

from __future__ import annotations

from nncodec.core.errors import CorruptError, TruncatedError

MAX_VARINT = (1 << 63) - 1


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits per byte, low bits first, high bit set on all but the last byte."""
    if value < 0 or value > MAX_VARINT:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a varint at ``buf[pos:]``; return (value, new position). Raises TruncatedError when
    it runs off the end, CorruptError when it is too long or too large."""
    value = 0
    for i in range(10):
        if pos + i >= len(buf):
            raise TruncatedError("unexpected end of data in a header")
        byte = buf[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if value > MAX_VARINT:
                raise CorruptError("header integer out of range")
            return value, pos + i + 1
    raise CorruptError("header integer too long")


def payload_varint(payload: bytes, pos: int, what: str) -> tuple[int, int]:
    """``decode_varint`` inside a block payload that passed its CRC: running off the end there is
    corruption (``CorruptError("WHAT payload truncated (...)")``), not a short file."""
    try:
        return decode_varint(payload, pos)
    except TruncatedError as exc:
        raise CorruptError(f"{what} payload truncated ({exc})") from exc


def zigzag(value: int) -> int:
    return value * 2 if value >= 0 else -value * 2 - 1


def unzigzag(value: int) -> int:
    return value // 2 if value % 2 == 0 else -(value + 1) // 2


def join_streams(streams: list[bytes]) -> bytes:
    """Several coded streams in one payload: their sizes as varints, then the streams."""
    return b"".join(encode_varint(len(s)) for s in streams) + b"".join(streams)


def read_streams(payload: bytes, pos: int, count: int, what: str, *, fill: bool) -> tuple[list[bytes], int]:
    """``count`` streams written by ``join_streams`` at ``pos`` and the position after them. With
    ``fill`` they must fill the rest of the payload exactly (CorruptError otherwise); without it
    the caller's own data may follow them (TruncatedError when they run past the end). A varint
    running off the end raises TruncatedError."""
    sizes = []
    for _ in range(count):
        size, pos = decode_varint(payload, pos)
        sizes.append(size)
    end = pos + sum(sizes)
    if fill and end != len(payload):
        raise CorruptError(f"{what} streams do not fill the payload")
    if end > len(payload):
        raise TruncatedError(f"{what} ends inside its streams")
    streams = []
    for size in sizes:
        streams.append(payload[pos : pos + size])
        pos += size
    return streams, pos


def split_streams(payload: bytes, pos: int, count: int, what: str) -> list[bytes]:
    """Inverse of ``join_streams`` for ``count`` streams starting at ``pos`` that fill the rest of
    the payload exactly."""
    return read_streams(payload, pos, count, what, fill=True)[0]
