"""Classical coding of 8-bit pixels: a reversible transform, then the best byte-stream backend.

Screens, charts and other graphics repeat long runs of exactly equal pixels, which PPMd's and LZMA's
long contexts and matches code better than the next-pixel model's wide distributions (and hundreds of
times faster). The image codec uses this as payload method 2 where it codes smaller than the model
would (nncodec/codecs/image.py decides).

Body::

    u8 transform | one backend stream (nncodec/entropy/backends.py: tag byte + coded bytes) that
    decodes to exactly H x W x C bytes

transform bits 0-1, the predictor, applied per channel along each row (mod 256): 0 none, 1 the left
neighbour's value subtracted, 2 the green channel subtracted from red and blue first (3 or more
channels; alpha untouched), then the left neighbour; bit 2: the bytes are channel planes one after
another (else pixels interleaved). Transform 8, **palette** (an image of at most 65,536 distinct
pixel values): each pixel becomes its index in a palette, colours ordered by how often they occur
(most first). Body::

    u8 8 or 12 | varint n colours | varint P | P bytes: backend stream of the palette (n x C
    bytes) | backend stream of the indices: one byte each when n <= 256, else two (high byte,
    low byte) per pixel, or (12) the plane of high bytes then the plane of low bytes

Other values are reserved (a decoder refuses them).

Measured on the 12 screen captures of ``../shared/data/images/more`` (gb82_sc_screen, charls_screen):
the best transform per image coded with the best of PPMd H order 32, PPMd I order 16 and xz totals
2,044,963 bytes (as RGB), against 2,053,630 for ``cwebp -lossless -z 9``; no one transform is best
everywhere (interleaved raw bytes on 7, green-left on 2, planar on 3), so the encoder ranks all six
by PPMd order 32 and by zstd -3 over the whole image (~0.1 s each per 5 MB of screen pixels) and
codes the two best by PPMd with PPMd variant I and xz too, and the best by zstd with xz: 2,049,919
bytes on those 12 (the best of every transform and backend: 2,044,963). The palette (2026-12-05):
11 of the 12 captures hold at most 65,536 colours (anti-aliased text: 872-27,835; windows95 14); as
16-bit indices, most frequent colour first, ranked with the palette's own coded bytes counted and
coded in full beside the two finalists when a ranking puts it within 10% of them: 2,037,583 bytes
(-0.6%; windows95 14,419 -> 11,765, graph -3.4%, terminal -3.3%, codec_wiki -3.2%, gmessages -2.2%).
Colour order by first appearance was not tried; frequency order keeps the common colours' high
index byte 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nncodec.core.errors import CorruptError
from nncodec.core.framing import encode_varint, payload_varint
from nncodec.entropy.backends import (
    ZSTD_QUICK_LEVEL,
    Coder,
    coded_size,
    decode_stream,
    encode_with_best,
    zstd_compress,
)

NONE, LEFT, GREEN_LEFT = 0, 1, 2
PLANAR = 4
PALETTE = 8
TRANSFORMS = tuple(p | layout for p in (NONE, LEFT, GREEN_LEFT) for layout in (0, PLANAR))
PALETTE_TRANSFORMS = (PALETTE, PALETTE | PLANAR)
MAX_COLOURS = 1 << 16
RANKING_CODER: Coder = ("ppmd", 32)
PPMD_CODERS: tuple[Coder, ...] = (("ppmd", 32), ("ppmd8", 16))
FINALISTS = 2
#: the best palette layout is coded in full too when a ranking puts it within this of the best other
PALETTE_CLOSE = 1.1


def forward(pixels: np.ndarray, transform: int) -> bytes:
    """(H, W, C) uint8 pixels -> the transformed bytes."""
    predictor = transform & 3
    planes = pixels.astype(np.uint8)  # a copy: changed below
    if predictor == GREEN_LEFT and planes.shape[2] >= 3:
        planes[..., 0] -= planes[..., 1]  # uint8 arithmetic wraps mod 256
        planes[..., 2] -= planes[..., 1]
    if predictor in (LEFT, GREEN_LEFT):
        planes[:, 1:] -= planes[:, :-1].copy()
    if transform & PLANAR:
        planes = planes.transpose(2, 0, 1)
    return np.ascontiguousarray(planes).tobytes()


def inverse(data: bytes, shape: tuple[int, int, int], transform: int) -> np.ndarray:
    """The transformed bytes -> (H, W, C) uint8 pixels (``forward``'s inverse)."""
    height, width, channels = shape
    predictor = transform & 3
    flat = np.frombuffer(data, np.uint8)
    if transform & PLANAR:
        pixels = flat.reshape(channels, height, width).transpose(1, 2, 0).copy()
    else:
        pixels = flat.reshape(height, width, channels).copy()
    if predictor in (LEFT, GREEN_LEFT):
        pixels = np.cumsum(pixels, axis=1, dtype=np.uint8)  # wraps mod 256
    if predictor == GREEN_LEFT and channels >= 3:
        pixels[..., 0] += pixels[..., 1]
        pixels[..., 2] += pixels[..., 1]
    return pixels


def palette_of(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(palette (n, C) uint8, most frequent first; indices (H, W) int64), or None for more than
    MAX_COLOURS distinct pixel values. Ties keep the colours' numeric order (deterministic)."""
    height, width, channels = pixels.shape
    keys = np.zeros(height * width, np.uint64)
    for c in range(channels):  # one integer per pixel value
        keys = (keys << np.uint64(8)) | pixels[..., c].reshape(-1).astype(np.uint64)
    colours, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    if len(colours) > MAX_COLOURS:
        return None
    order = np.argsort(-counts, kind="stable")
    rank = np.empty(len(colours), np.int64)
    rank[order] = np.arange(len(colours))
    shifts = np.arange(channels - 1, -1, -1, dtype=np.uint64) * np.uint64(8)
    palette = ((colours[order][:, None] >> shifts) & np.uint64(0xFF)).astype(np.uint8)
    return palette, rank[inverse.reshape(-1)].reshape(height, width)


def _index_bytes(indices: np.ndarray, colours: int, transform: int) -> bytes:
    if colours <= 256:
        return indices.astype(np.uint8).tobytes()
    high, low = (indices >> 8).astype(np.uint8), (indices & 0xFF).astype(np.uint8)
    if transform & PLANAR:
        return high.tobytes() + low.tobytes()
    return np.stack([high, low], axis=-1).tobytes()


def _palette_head(palette: np.ndarray, transform: int) -> bytes:
    """A palette body up to its index stream: the transform, n, and the coded palette."""
    colours = encode_with_best(palette.tobytes(), [("ppmd", 8), ("xz", 0)])
    return bytes([transform]) + encode_varint(len(palette)) + encode_varint(len(colours)) + colours


def encode(pixels: np.ndarray, run: Callable = map) -> bytes:
    """The body for (H, W, C) uint8 pixels; ``run`` (like ``map``) may spread trials over threads.
    Every transform is ranked by PPMd (RANKING_CODER) and by a quick zstd pass (the LZ coders'
    view); the FINALISTS best by PPMd are coded with the PPMd variants and xz, and the best by zstd
    with xz too (xz is 5-15x slower than PPMd on screens but best on 5 of the 12 captures, not
    always on the transform PPMd ranks first: imessage 262 KB against 270 KB without that pick)."""
    transforms = [t for t in TRANSFORMS if t & 3 != GREEN_LEFT or pixels.shape[2] >= 3]
    indexed = palette_of(pixels)
    head = b""  # a palette body's bytes before its index stream (what ranking it must count too)
    if indexed is not None:  # one index layout when a byte holds every index
        transforms += list(PALETTE_TRANSFORMS if len(indexed[0]) > 256 else PALETTE_TRANSFORMS[:1])
        head = _palette_head(indexed[0], PALETTE)

    def stream_of(t: int) -> bytes:
        if t & PALETTE:
            assert indexed is not None
            return _index_bytes(indexed[1], len(indexed[0]), t)
        return forward(pixels, t)

    def rank(t: int) -> tuple[int, int]:  # each transform's bytes made where used: one copy per thread
        stream = stream_of(t)
        extra = len(head) if t & PALETTE else 0
        return coded_size(stream, RANKING_CODER) + extra, len(zstd_compress(stream, ZSTD_QUICK_LEVEL)) + extra

    sizes = dict(zip(transforms, run(rank, transforms), strict=True))
    pixel_transforms = [t for t in transforms if not t & PALETTE]
    finalists = sorted(pixel_transforms, key=lambda t: sizes[t][0])[:FINALISTS]
    lz_pick = min(pixel_transforms, key=lambda t: sizes[t][1])
    if indexed is not None:  # the best palette layout too, where a ranking says it may win
        best_palette = min((t for t in transforms if t & PALETTE), key=lambda t: min(sizes[t]))
        if min(sizes[best_palette]) <= PALETTE_CLOSE * min(min(sizes[t]) for t in pixel_transforms):
            finalists.append(best_palette)
    jobs = [(t, coder) for t in finalists for coder in (*PPMD_CODERS, ("xz", 0))]
    if lz_pick not in finalists:
        jobs.append((lz_pick, ("xz", 0)))
    streams = {t: forward(pixels, t) for t in {t for t, _ in jobs} if not t & PALETTE}

    def body(job: tuple[int, Coder]) -> bytes:
        transform, coder = job
        if transform & PALETTE:
            assert indexed is not None
            index_bytes = _index_bytes(indexed[1], len(indexed[0]), transform)
            return bytes([transform]) + head[1:] + encode_with_best(index_bytes, [coder])
        return bytes([transform]) + encode_with_best(streams[transform], [coder])

    return min(run(body, jobs), key=len)


def decode(body: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """(H, W, C) uint8 pixels from a body."""
    if not body:
        raise CorruptError("image pixel stream truncated")
    transform = body[0]
    if transform in PALETTE_TRANSFORMS:
        return _decode_palette(body, shape, transform)
    if transform not in TRANSFORMS:
        raise CorruptError(f"image pixel transform {transform} not understood (newer nncodec?)")
    size = shape[0] * shape[1] * shape[2]
    data = decode_stream(body[1:], size, "image pixels")
    if len(data) != size:
        raise CorruptError("image pixel stream has the wrong size")
    return inverse(data, shape, transform)


def _decode_palette(body: bytes, shape: tuple[int, int, int], transform: int) -> np.ndarray:
    height, width, channels = shape
    colours, pos = payload_varint(body, 1, "image palette size")
    palette_size, pos = payload_varint(body, pos, "image palette stream size")
    if not 1 <= colours <= MAX_COLOURS or pos + palette_size > len(body):
        raise CorruptError("image palette does not fit")
    palette = decode_stream(body[pos : pos + palette_size], colours * channels, "image palette")
    wide = colours > 256
    count = height * width * (2 if wide else 1)
    data = decode_stream(body[pos + palette_size :], count, "image palette indices")
    if len(palette) != colours * channels or len(data) != count:
        raise CorruptError("image palette stream has the wrong size")
    raw = np.frombuffer(data, np.uint8).astype(np.int64)
    if not wide:
        indices = raw
    elif transform & PLANAR:
        indices = raw[: height * width] << 8 | raw[height * width :]
    else:
        indices = raw[0::2] << 8 | raw[1::2]
    if len(indices) and int(indices.max()) >= colours:
        raise CorruptError("image palette index out of range")
    table = np.frombuffer(palette, np.uint8).reshape(colours, channels)
    return table[indices].reshape(height, width, channels)
