"""A PNG's IDAT stream as a recipe: rebuild the exact bytes from the pixels.

A PNG stores its pixels as scanlines (one filter-type byte, then the row filtered by it), deflated into
one zlib stream and cut into IDAT chunks. Given the pixels, three things decide those bytes:

* the filter type of each row (0 none, 1 sub, 2 up, 3 average, 4 paeth) — encoders choose them per
  row by a heuristic, so they are recorded, one byte per row;
* the deflate parameters: zlib's level, window bits, memLevel and strategy. ``find_recipe`` tries the
  combinations the stream's own zlib header allows (its FLEVEL field names the level class, CINFO the
  window), the common ones (libpng and Pillow: level 6, memLevel 8 or 9) first, and stops each try at
  the first differing byte;
* the IDAT chunk lengths, recorded as runs.

``rebuild_stream`` is the inverse. Deflate runs in the vendored zlib 1.2.13 (nncodec/image/zlib/, the
``_deflate`` extension) so that the rebuilt bytes do not depend on the machine's zlib; without the
extension Python's ``zlib`` module is used (same bytes where that is zlib 1.2.x; the container checksum
reports it otherwise). A stream no recipe reproduces (another deflate implementation: zopfli, libdeflate,
zlib-ng, ...) has no recipe, and the file is coded another way (see nncodec/image/imagefile.py).

Recipe (JSON in the image layout)::

    {"level": 0-9, "wbits": 8-15, "memlevel": 1-9, "strategy": 0-4, "idat": [[length, count], ...]}
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np

try:
    from nncodec.image import _deflate
except ImportError:  # pragma: no cover - exercised only where the extension was not built
    _deflate = None

#: deflate parameters: (level, wbits, memlevel, strategy)
Params = tuple[int, int, int, int]
STRATEGIES = (0, 1, 2, 3, 4)  # default, filtered, huffman-only, RLE, fixed
#: levels by the zlib header's FLEVEL (zlib 1.2.x: 0 for level < 2 or huffman/RLE, 1 for 2-5, 2 for 6,
#: 3 for 7-9), most likely first
LEVELS_BY_FLEVEL = {0: (1, 0), 1: (5, 4, 3, 2), 2: (6,), 3: (9, 7, 8)}
MEMLEVELS = (8, 9, 7, 6, 5, 4, 3, 2, 1)


def compress(data: bytes, params: Params) -> bytes:
    level, wbits, memlevel, strategy = params
    if _deflate is not None:
        return _deflate.compress(data, level, wbits, memlevel, strategy)
    z = zlib.compressobj(level, zlib.DEFLATED, wbits, memlevel, strategy)
    return z.compress(data) + z.flush()


def _matches(data: bytes, target: bytes, params: Params) -> bool:
    level, wbits, memlevel, strategy = params
    if _deflate is not None:
        return bool(_deflate.matches(data, target, level, wbits, memlevel, strategy))
    return compress(data, params) == target


def candidate_params(stream: bytes) -> Iterator[Params]:
    """Deflate parameters that could have written this zlib stream, the likeliest first."""
    if len(stream) < 2 or stream[0] & 0x0F != 8 or (stream[0] << 8 | stream[1]) % 31 or stream[1] & 0x20:
        return
    wbits = (stream[0] >> 4) + 8
    if wbits > 15:
        return
    flevel = stream[1] >> 6
    windows = (wbits, 8) if wbits == 9 else (wbits,)  # zlib writes window 8 as 9
    memlevels = MEMLEVELS
    first = first_block_symbols(stream[2:])
    if first is None:
        return
    final, symbols = first
    if not final:  # zlib ends a block when its buffer of 2^(memLevel + 6) - 1 symbols is full
        memlevel = (symbols + 1).bit_length() - 7
        if not (1 <= memlevel <= 9 and symbols + 1 == 1 << (memlevel + 6)):
            return  # not zlib's block size: another deflate implementation wrote this
        memlevels = (memlevel,)
    seen = set()
    for memlevel in memlevels:
        for window in windows:
            for level in LEVELS_BY_FLEVEL[flevel]:
                for strategy in (1, 0, 4) if level >= 4 else (0, 4):
                    seen.add((level, window, memlevel, strategy))
                    yield level, window, memlevel, strategy
            if flevel == 0:  # huffman-only and RLE write FLEVEL 0 at any level
                for strategy in (2, 3):
                    for level in range(1, 10):
                        if (level, window, memlevel, strategy) not in seen:
                            yield level, window, memlevel, strategy


class _Bits:
    """LSB-first bit reader over a deflate stream."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def peek(self, count: int) -> int:
        byte = self.pos >> 3
        return (int.from_bytes(self.data[byte : byte + 4], "little") >> (self.pos & 7)) & ((1 << count) - 1)

    def take(self, count: int) -> int:
        value = self.peek(count)
        self.pos += count
        if self.pos > 8 * len(self.data):
            raise ValueError("deflate stream ends inside a block")
        return value


def _decoding_table(lengths: list[int]) -> list[tuple[int, int]]:
    """Canonical Huffman code for these code lengths, as a table over the next 15 input bits."""
    table = [(-1, 1)] * (1 << 15)
    code = 0
    for length in range(1, 16):
        for symbol, size in enumerate(lengths):
            if size == length:
                reverse = int(f"{code:0{length}b}"[::-1], 2)
                for fill in range(0, 1 << 15, 1 << length):
                    table[reverse | fill] = (symbol, length)
                code += 1
        code <<= 1
    return table


def _decode(bits: _Bits, table: list[tuple[int, int]]) -> int:
    symbol, length = table[bits.peek(15)]
    if symbol < 0:
        raise ValueError("invalid Huffman code")
    bits.take(length)
    return symbol


LENGTH_EXTRA = [0] * 8 + [n // 4 + 1 for n in range(20)] + [0]  # length codes 257..285
DISTANCE_EXTRA = [0, 0] + [n // 2 for n in range(28)]
CODE_LENGTH_ORDER = (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15)


def first_block_symbols(deflated: bytes) -> tuple[bool, int] | None:
    """(is it the final block, how many literals + matches it holds) for the first deflate block;
    None when it cannot be read. zlib's block boundaries give away its memLevel, and a boundary
    zlib would not have made rules it out at the cost of one block of Huffman decoding."""
    try:
        bits = _Bits(deflated)
        final, kind = bits.take(1), bits.take(2)
        if kind == 0:
            return None  # stored blocks: their sizes depend on the writer's buffers; not searched
        if kind == 1:
            literal = _decoding_table([8] * 144 + [9] * 112 + [7] * 24 + [8] * 8)
            distance = _decoding_table([5] * 30)
        elif kind == 2:
            nlit, ndist, nclen = bits.take(5) + 257, bits.take(5) + 1, bits.take(4) + 4
            clens = [0] * 19
            for index in CODE_LENGTH_ORDER[:nclen]:
                clens[index] = bits.take(3)
            cltable = _decoding_table(clens)
            lengths: list[int] = []
            while len(lengths) < nlit + ndist:
                symbol = _decode(bits, cltable)
                if symbol < 16:
                    lengths.append(symbol)
                elif symbol == 16:
                    lengths += [lengths[-1]] * (3 + bits.take(2))
                else:
                    lengths += [0] * ((3 + bits.take(3)) if symbol == 17 else (11 + bits.take(7)))
            literal, distance = _decoding_table(lengths[:nlit]), _decoding_table(lengths[nlit:])
        else:
            return None
        symbols = 0
        while (symbol := _decode(bits, literal)) != 256:
            symbols += 1
            if symbol > 256:
                bits.take(LENGTH_EXTRA[symbol - 257])
                bits.take(DISTANCE_EXTRA[_decode(bits, distance)])
        return bool(final), symbols
    except (ValueError, IndexError):
        return None


def find_params(raw: bytes, stream: bytes, max_tries: int = 400) -> Params | None:
    """The deflate parameters that turn ``raw`` into exactly ``stream``, or None."""
    for tries, params in enumerate(candidate_params(stream)):
        if tries >= max_tries:
            return None
        if _matches(raw, stream, params):
            return params
    return None


def runs(lengths: list[int]) -> list[list[int]]:
    """[8192, 8192, 100] -> [[8192, 2], [100, 1]]"""
    out: list[list[int]] = []
    for length in lengths:
        if out and out[-1][0] == length:
            out[-1][1] += 1
        else:
            out.append([length, 1])
    return out


def split_runs(stream: bytes, idat: list[list[int]]) -> list[bytes]:
    """Cut the stream into chunk bodies by the recorded runs (their total must be its length)."""
    lengths = [int(length) for length, count in idat for _ in range(int(count))]
    if sum(lengths) != len(stream) or any(n < 0 for n in lengths):
        raise ValueError("IDAT chunk lengths do not add up to the rebuilt stream")
    pieces, pos = [], 0
    for n in lengths:
        pieces.append(stream[pos : pos + n])
        pos += n
    return pieces


# -- filters --------------------------------------------------------------------------------------


def filter_rows(rows: np.ndarray, types: np.ndarray, bpp: int) -> np.ndarray:
    """PNG-filter each row of ``rows`` (H, N) uint8 with its type (H,), ``bpp`` bytes per pixel:
    the scanlines (H, 1 + N) with the type byte in front. Filtering reads unfiltered neighbours only,
    so every row is computed at once."""
    height, width = rows.shape
    x = rows.astype(np.int16)
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    up = np.zeros_like(x)
    up[1:] = x[:-1]
    upleft = np.zeros_like(x)
    upleft[1:, bpp:] = x[:-1, :-bpp]
    average = (left + up) >> 1
    p = left + up - upleft
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    predictions = np.stack([np.zeros_like(x), left, up, average, paeth])  # (5, H, N)
    row_type = types.astype(np.intp)[:, None]
    chosen = predictions[row_type, np.arange(height)[:, None], np.arange(width)[None, :]]
    out = np.empty((height, width + 1), np.uint8)
    out[:, 0] = types
    out[:, 1:] = ((x - chosen) & 0xFF).astype(np.uint8)
    return out
