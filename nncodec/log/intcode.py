"""Signed integers as a byte of magnitude class per number plus their low bits, so that a byte
coder (PPMd) models what is predictable and the near-random low bits cost what they are
(FORMAT.md §7.3, log mode 3).

For a number ``v`` with ``n`` the bit length of ``|v|``, the *symbol* byte is
``128 * (v < 0) + 4 * min(n, 31) + t``, where ``t`` is the two bits after the leading one (the one
bit after it when ``n = 2``, 0 when ``n <= 1``); when ``n >= 31`` a second byte ``n - 31``
follows. The remaining ``max(n - 3, 0)`` low bits of ``|v|`` go, most significant first, to the
*raw* bits, packed per chunk of ``CHUNK`` numbers and padded with zero bits to a whole byte.
Numbers must satisfy ``|v| < 2**62``.
"""

from __future__ import annotations

import numpy as np

CHUNK = 1 << 16
TOP_BITS = 2
SATURATED = 31  # magnitude classes from here on take a second byte
MAX_BITS = 62


def bit_lengths(magnitudes: np.ndarray) -> np.ndarray:
    """Bit length of each uint64."""
    lengths = np.zeros(len(magnitudes), dtype=np.int64)
    rest = magnitudes.astype(np.uint64, copy=True)
    for shift in (32, 16, 8, 4, 2, 1):
        big = rest >= np.uint64(1 << shift)
        lengths += big * shift
        rest = np.where(big, rest >> np.uint64(shift), rest)
    return lengths + (rest > 0)


def split_integers(values: np.ndarray) -> tuple[bytes, bytes]:
    """``(symbols, raw bits)`` of int64 values with ``|v| < 2**62``."""
    values = np.asarray(values, dtype=np.int64)
    negative = values < 0
    magnitudes = np.abs(values).astype(np.uint64)
    lengths = bit_lengths(magnitudes)
    if len(lengths) and lengths.max() > MAX_BITS:
        raise ValueError("integer too large")
    low = np.maximum(lengths - 1 - TOP_BITS, 0)
    top = np.where(
        lengths > TOP_BITS,
        (magnitudes >> low.astype(np.uint64)) & np.uint64(3),
        np.where(lengths == 2, magnitudes & np.uint64(1), 0),
    ).astype(np.int64)
    symbols = (128 * negative + 4 * np.minimum(lengths, SATURATED) + top).astype(np.uint8)
    long = np.flatnonzero(lengths >= SATURATED)
    if len(long):
        symbols = np.insert(symbols, long + 1, (lengths[long] - SATURATED).astype(np.uint8))
    raw = b"".join(
        _pack_low_bits(magnitudes[start : start + CHUNK], low[start : start + CHUNK])
        for start in range(0, len(values), CHUNK)
    )
    return symbols.tobytes(), raw


def _pack_low_bits(magnitudes: np.ndarray, widths: np.ndarray) -> bytes:
    total = int(widths.sum())
    if not total:
        return b""
    starts = np.cumsum(widths) - widths
    position = np.arange(total) - np.repeat(starts, widths)
    shift = (np.repeat(widths, widths) - 1 - position).astype(np.uint64)
    bits = (np.repeat(magnitudes, widths) >> shift) & np.uint64(1)
    return np.packbits(bits.astype(np.uint8)).tobytes()


def join_integers(symbols: bytes, raw: bytes, count: int) -> np.ndarray:
    """Inverse of ``split_integers`` for ``count`` numbers. ValueError when the streams do not
    hold exactly that many."""
    codes = np.frombuffer(symbols, dtype=np.uint8).astype(np.int64)
    classes = (codes & 127) >> 2
    long = np.flatnonzero(classes == SATURATED)
    extra = np.zeros(len(codes), dtype=bool)
    if len(long):
        if long[-1] + 1 >= len(codes):
            raise ValueError("number symbols end early")
        extra[long + 1] = True
    lengths = classes.copy()
    if len(long):
        lengths[long] = SATURATED + codes[long + 1]
    keep = ~extra
    codes, lengths = codes[keep], lengths[keep]
    if len(codes) != count:
        raise ValueError("number symbols hold the wrong count")
    negative = codes >= 128
    top = codes & 3
    if (
        (lengths > MAX_BITS).any()
        or ((lengths == 2) & (top > 1)).any()
        or ((lengths < 2) & (top > 0)).any()
        or (negative & (lengths == 0)).any()
    ):
        raise ValueError("number symbols are damaged")
    low = np.maximum(lengths - 1 - TOP_BITS, 0)
    magnitudes = np.zeros(count, dtype=np.uint64)
    pos = 0
    for start in range(0, count, CHUNK):
        widths = low[start : start + CHUNK]
        total = int(widths.sum())
        size = (total + 7) // 8
        chunk = raw[pos : pos + size]
        if len(chunk) != size:
            raise ValueError("number raw bits end early")
        pos += size
        magnitudes[start : start + CHUNK] = _unpack_low_bits(chunk, widths, total)
    if pos != len(raw):
        raise ValueError("number raw bits are too long")
    head = np.where(
        lengths > TOP_BITS,
        (np.uint64(4) | top.astype(np.uint64)) << low.astype(np.uint64),
        np.where(lengths == 2, np.uint64(2) | top.astype(np.uint64), lengths.astype(np.uint64)),
    )
    values = (head | magnitudes).astype(np.int64)
    return np.where(negative, -values, values)


def _unpack_low_bits(chunk: bytes, widths: np.ndarray, total: int) -> np.ndarray:
    if not total:
        return np.zeros(len(widths), dtype=np.uint64)
    bits = np.unpackbits(np.frombuffer(chunk, dtype=np.uint8))[:total].astype(np.uint64)
    starts = np.cumsum(widths) - widths
    position = np.arange(total) - np.repeat(starts, widths)
    shift = (np.repeat(widths, widths) - 1 - position).astype(np.uint64)
    sums = np.concatenate([[np.uint64(0)], np.cumsum(bits << shift, dtype=np.uint64)])
    ends = starts + widths
    return sums[ends] - sums[starts]
