"""An int8 linear layer as the exact kernels take it: the weights as the model file stores them, their
per-output scales, and the compiled kernels' AVX-512 VNNI layout (nncodec/nn/rowops.py's
``matmul``; every path gives the same exact integer sums, nncodec/nn/exact.py)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from nncodec.nn.rowops import CompiledOps


def pack_vnni(weight: np.ndarray, compiled: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) int8 -> the (N/16, K/4, 16, 4) layout of ``_kernels.matmul_i8`` and the row sums; empty
    arrays when N is not a multiple of 64 or K of 4 (the kernels then use another loop). ``compiled``:
    packed by the C kernels when built (the numpy lines below are their reference)."""
    n, k = weight.shape
    if n % 64 or k % 4:
        return np.zeros(0, np.int8), np.zeros(0, np.int32)
    if compiled and CompiledOps.available():
        packed, sums = np.empty((n // 16, k // 4, 16, 4), np.int8), np.empty(n, np.int32)
        CompiledOps.pack_vnni(np.ascontiguousarray(weight, np.int8), packed, sums)
        return packed, sums
    packed = weight.reshape(n // 16, 16, k // 4, 4).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(packed), weight.sum(axis=1, dtype=np.int32)


@dataclass(frozen=True)
class IntLinear:
    """q: (..., in) int8-valued -> ``ops.matmul``: (..., out) exact integer sums (float32); the
    layer's value is that times (row scale * self.scale)."""

    weight: np.ndarray  # (out, in) int8, as the file stores it, for the compiled few-row product
    scale: np.ndarray  # (out,) float64

    @cached_property
    def packed(self) -> tuple[np.ndarray, np.ndarray]:
        """The weights in the compiled kernels' AVX-512 VNNI layout, (out/16, in/4, 16, 4) int8, and
        each output's weight sum (int32); both empty when the shape does not fit that layout."""
        return pack_vnni(self.weight)

    @cached_property
    def weight_t(self) -> np.ndarray:
        """(in, out) int8-valued float32, C order, for BLAS (built on first use: a decoder whose
        steps are compiled never needs it)."""
        return np.ascontiguousarray(self.weight.astype(np.float32).T)
