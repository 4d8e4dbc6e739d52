"""Exact, machine-independent neural-network arithmetic in numpy.

The decoder must compute the same probabilities as the encoder on any machine, with any thread count
and any batch shape. Floating point gives that only for operations whose result is fully specified by
IEEE 754: elementwise +, -, *, /, sqrt, floor, round, max — never for sums whose order may change
(BLAS, SIMD reductions) nor for transcendental functions (exp, tanh, ...) whose last bit differs
between math libraries. So every computation here is one of:

* an **integer matmul**: int8-valued operands multiplied in float32 BLAS. Every partial sum is an
  integer below 2^24 (guaranteed for an inner dimension K <= 1040, as 127*127*1040 < 2^24), hence
  exact in any order, so the result is identical on every BLAS, CPU and thread count;
* a **float64 matmul of integers** whose partial sums stay below 2^53 (also exact in any order);
* an **integer sum** (int64);
* an **elementwise IEEE operation** in a fixed order;
* a **lookup table** shipped inside the model file (never recomputed with ``np.exp`` at load time).
"""

from __future__ import annotations

import numpy as np

INT8_MAX = 127
MAX_EXACT_K = 1040  # 127 * 127 * 1040 < 2**24


def quantize_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 quantization with one scale per row (last axis).

    Returns (q, scale) with q int8-valued float32 in [-127, 127] and x ~= q * scale[..., None].
    Exact and deterministic: max is exact, the rest is elementwise IEEE arithmetic.
    """
    x = np.asarray(x, dtype=np.float64)
    peak = np.max(np.abs(x), axis=-1, keepdims=True)
    safe = np.where(peak > 0, peak, 1.0)
    q = np.round(x * (INT8_MAX / safe)).astype(np.float32)
    return q, (safe / INT8_MAX)[..., 0]


def int_matmul(q: np.ndarray, weight_t: np.ndarray) -> np.ndarray:
    """(..., K) int8-valued x (K, N) int8-valued -> (..., N) exact integer products (float32, which
    holds every integer below 2^24 exactly; multiplying by a float64 scale widens it exactly).
    Weights are stored transposed (input dimension first): BLAS runs about 10% faster that way."""
    if q.shape[-1] > MAX_EXACT_K:
        raise ValueError(f"inner dimension {q.shape[-1]} too large for exact float32 accumulation")
    return q @ weight_t


def lut_weights(gap: np.ndarray, table: np.ndarray, steps_per_unit: float) -> np.ndarray:
    """exp(-gap) as integers from a shipped lookup table, for gap >= 0 (softmax numerators).

    ``table[i]`` holds round(exp(-i / steps_per_unit) * scale); gaps past the table map to its last
    entry (normally 0).
    """
    # for gap >= 0, truncation is floor; clamping first keeps the cast in range
    index = np.minimum(gap * steps_per_unit, len(table) - 1).astype(np.int64)
    return table[index]


def make_exp_table(steps_per_unit: int, length: int, scale: int) -> np.ndarray:
    """Build an exp lookup table (at export time; the table is then stored in the model file)."""
    values = np.round(np.exp(-np.arange(length, dtype=np.float64) / steps_per_unit) * scale)
    return values.astype(np.int64)
