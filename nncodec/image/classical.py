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
another (else pixels interleaved). Other bits are reserved (a decoder refuses them).

Measured on the 12 screen captures of ``../shared/data/images/more`` (gb82_sc_screen, charls_screen):
the best transform per image coded with the best of PPMd H order 32, PPMd I order 16 and xz totals
2,044,963 bytes (as RGB), against 2,053,630 for ``cwebp -lossless -z 9``; no one transform is best
everywhere (interleaved raw bytes on 7, green-left on 2, planar on 3), so the encoder ranks all six
by PPMd order 32 and by zstd -3 over the whole image (~0.1 s each per 5 MB of screen pixels) and
codes the two best by PPMd with PPMd variant I and xz too, and the best by zstd with xz: 2,049,919
bytes on those 12 (the best of every transform and backend: 2,044,963).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nncodec.core.errors import CorruptError
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
TRANSFORMS = tuple(p | layout for p in (NONE, LEFT, GREEN_LEFT) for layout in (0, PLANAR))
RANKING_CODER: Coder = ("ppmd", 32)
PPMD_CODERS: tuple[Coder, ...] = (("ppmd", 32), ("ppmd8", 16))
FINALISTS = 2


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


def encode(pixels: np.ndarray, run: Callable = map) -> bytes:
    """The body for (H, W, C) uint8 pixels; ``run`` (like ``map``) may spread trials over threads.
    Every transform is ranked by PPMd (RANKING_CODER) and by a quick zstd pass (the LZ coders'
    view); the FINALISTS best by PPMd are coded with the PPMd variants and xz, and the best by zstd
    with xz too (xz is 5-15x slower than PPMd on screens but best on 5 of the 12 captures, not
    always on the transform PPMd ranks first: imessage 262 KB against 270 KB without that pick)."""
    transforms = [t for t in TRANSFORMS if t & 3 != GREEN_LEFT or pixels.shape[2] >= 3]

    def rank(t: int) -> tuple[int, int]:  # each transform's bytes made where used: one copy per thread
        stream = forward(pixels, t)
        return coded_size(stream, RANKING_CODER), len(zstd_compress(stream, ZSTD_QUICK_LEVEL))

    sizes = dict(zip(transforms, run(rank, transforms), strict=True))
    finalists = sorted(transforms, key=lambda t: sizes[t][0])[:FINALISTS]
    jobs = [(t, coder) for t in finalists for coder in (*PPMD_CODERS, ("xz", 0))]
    lz_pick = min(transforms, key=lambda t: sizes[t][1])
    if lz_pick not in finalists:
        jobs.append((lz_pick, ("xz", 0)))
    streams = {t: forward(pixels, t) for t in {t for t, _ in jobs}}
    bodies = run(lambda job: bytes([job[0]]) + encode_with_best(streams[job[0]], [job[1]]), jobs)
    return min(bodies, key=len)


def decode(body: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """(H, W, C) uint8 pixels from a body."""
    if not body:
        raise CorruptError("image pixel stream truncated")
    transform = body[0]
    if transform not in TRANSFORMS:
        raise CorruptError(f"image pixel transform {transform} not understood (newer nncodec?)")
    size = shape[0] * shape[1] * shape[2]
    data = decode_stream(body[1:], size, "image pixels")
    if len(data) != size:
        raise CorruptError("image pixel stream has the wrong size")
    return inverse(data, shape, transform)
