"""Reversible pixel transforms of (H, W, C) uint8 arrays, all mod 256, and patch tiling.

The probabilistic-circuit models are trained on, and code, pixels after one of these transforms
(named in the model file): vertical or 2-D differences, optionally after subtracting green. Each
``forward_transform`` has an exact ``inverse_transform``; the trainers and the codec share this code.
"""

from __future__ import annotations

import numpy as np


def diff2d(pixels: np.ndarray) -> np.ndarray:
    """2-D differences (x - W - N + NW) mod 256 per channel of (H, W, C) pixels, with 128 outside."""
    y = pixels.astype(np.int16) - 128
    d = y.copy()
    d[:, 1:] -= y[:, :-1]
    d[1:, :] -= y[:-1, :]
    d[1:, 1:] += y[:-1, :-1]
    return (d % 256).astype(np.uint8)


def undo_diff2d(values: np.ndarray) -> np.ndarray:
    out = np.cumsum(values.astype(np.uint8), axis=0, dtype=np.uint8)
    return np.cumsum(out, axis=1, dtype=np.uint8) + np.uint8(128)


def subtract_green(pixels: np.ndarray) -> np.ndarray:
    """(R - G, G, B - G) mod 256 of (H, W, 3) pixels."""
    out = pixels.astype(np.uint8).copy()
    out[..., 0] -= pixels[..., 1]
    out[..., 2] -= pixels[..., 1]
    return out


def add_green(values: np.ndarray) -> np.ndarray:
    out = values.astype(np.uint8).copy()
    out[..., 0] += values[..., 1]
    out[..., 2] += values[..., 1]
    return out


def vdiff(pixels: np.ndarray) -> np.ndarray:
    """Vertical differences (x - N) mod 256 per channel of (H, W, C) pixels, with 128 above."""
    y = pixels.astype(np.int16)
    d = y.copy()
    d[1:] -= y[:-1]
    d[:1] -= 128
    return (d % 256).astype(np.uint8)


def undo_vdiff(values: np.ndarray) -> np.ndarray:
    return np.cumsum(values.astype(np.uint8), axis=0, dtype=np.uint8) + np.uint8(128)


def forward_transform(pixels: np.ndarray, transform: str) -> np.ndarray:
    """The model's transform of (H, W, C) uint8 pixels: "vdiff" or "diff2d", optionally after
    subtracting green ("sg-vdiff", "sg-diff2d"; RGB only)."""
    if transform.startswith("sg-"):
        pixels, transform = subtract_green(pixels), transform[3:]
    return vdiff(pixels) if transform == "vdiff" else diff2d(pixels)


def inverse_transform(values: np.ndarray, transform: str) -> np.ndarray:
    pixels = undo_vdiff(values) if transform.endswith("vdiff") else undo_diff2d(values)
    return add_green(pixels) if transform.startswith("sg-") else pixels


def to_patches(values: np.ndarray, size: int) -> np.ndarray:
    """(H, W, C) with H, W multiples of ``size`` -> (N, size * size * C), patches in raster order."""
    h, w, c = values.shape
    blocks = values.reshape(h // size, size, w // size, size, c).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(blocks.reshape(-1, size * size * c))


def from_patches(patches: np.ndarray, h: int, w: int, c: int, size: int) -> np.ndarray:
    blocks = patches.reshape(h // size, w // size, size, size, c).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(blocks.reshape(h, w, c))
