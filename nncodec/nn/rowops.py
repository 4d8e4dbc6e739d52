"""The elementwise and row-wise work around a quantized network's matmuls, in two implementations
that give bit-identical results:

* ``NumpyOps``: the reference, written with numpy, following nncodec/nn/exact.py's rules;
* ``CompiledOps``: the same operations in C (nncodec/nn/_kernels.c, built by ``pip install``), fused so
  that a decoder step makes a few calls instead of hundreds.

Conventions: ``acc`` is a float32 matmul result holding exact integers; a linear layer's value is
``acc * (row_scale * col_scale)`` in float64, computed in that order. Quantized rows are int8 values
(float32 for the next matmul, int8 for attention keys and values) with one float64 scale per row.
Tests compare the two implementations on real model runs (tests/test_text.py).
"""

from __future__ import annotations

import os

import numpy as np

from nncodec.nn.exact import INT8_MAX, int_matmul, lut_weights, quantize_rows

#: ``NNCODEC_KERNELS``: ``numpy`` runs the numpy reference instead of the C extension, ``avx2`` the C
#: extension without its AVX-512 VNNI loops, ``portable`` without AVX2 either; all give the same values
#: as the default (the determinism tests decode under each; docs/DETERMINISM.md)
KERNELS = os.environ.get("NNCODEC_KERNELS", "auto")
LEVELS = {"auto": 0, "avx2": 1, "portable": 2}  # _kernels.set_level

try:
    from nncodec.nn import _kernels
except ImportError:  # pragma: no cover - built by `pip install`; NumpyOps computes the same values
    _kernels = None
if KERNELS == "numpy":
    _kernels = None
elif _kernels is not None:
    _kernels.set_level(LEVELS.get(KERNELS, 0))


FEW_ROWS = 16  # CompiledOps.matmul: up to this many rows, the int8 kernel beats float32 BLAS


class ResidualOverflow(ValueError):
    """The residual stream left the range where the arithmetic is exact (the block is then coded
    with another codec; the decoder never meets this, as it sees the encoder's values)."""


def _rows(x: np.ndarray, dtype: type) -> np.ndarray:
    return np.ascontiguousarray(x, dtype).reshape(-1, x.shape[-1]) if x.ndim else x


class NumpyOps:
    """Reference implementation."""

    compiled = False

    def matmul(self, q: np.ndarray, linear) -> np.ndarray:
        """q (..., K) int8-valued times a linear layer's int8 weights -> (..., N) exact integer
        sums (float32): ``linear`` has ``weight_t`` (K, N) float32 and ``weight`` (N, K) int8."""
        return int_matmul(q, linear.weight_t)

    def quantize(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return quantize_rows(x)

    def norm_quantize(self, residual: np.ndarray, eps: float, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """RMSNorm (gain folded into the next weights) + int8 row quantization."""
        if residual.size and np.abs(residual).max() >= limit:
            raise ResidualOverflow("residual stream out of range")
        sum_sq = np.einsum("...i,...i->...", residual, residual)  # int64: exact
        rms = np.sqrt(sum_sq / residual.shape[-1] + eps)
        q, peak_scale = quantize_rows(residual)
        return q, peak_scale / rms

    def residual_add(self, residual, acc, row_scale, col_scale, unit: float) -> np.ndarray:
        return residual + np.round(acc * (row_scale[..., None] * col_scale) / unit).astype(np.int64)

    def relu_quantize(self, acc, row_scale, col_scale) -> tuple[np.ndarray, np.ndarray]:
        return quantize_rows(np.maximum(acc * (row_scale[..., None] * col_scale), 0.0))

    def qkv_split(self, acc, row_scale, col_scale, q_factor: float, v_scale: np.ndarray, heads: int):
        """-> q (..., H, hd) int8, q scale (..., H) times q_factor, k, k scale, v (int8 in v_scale units)."""
        value = acc * (row_scale[..., None] * col_scale)
        q, k, v = (x.reshape(*x.shape[:-1], heads, -1) for x in np.split(value, 3, axis=-1))
        q_q, q_s = quantize_rows(q)
        k_q, k_s = quantize_rows(k)
        v_i = np.clip(np.round(v / v_scale[:, None]), -INT8_MAX, INT8_MAX)
        int8 = np.int8
        return q_q.astype(int8), q_s * q_factor, k_q.astype(int8), k_s, v_i.astype(int8)

    def attend(self, q_q, q_s, k_q, k_s, v_i, distance, alibi, table, steps: float, v_scale) -> np.ndarray:
        """q: (B, H, Tq, hd) int8, k/v: (B, H, Tk, hd) int8, distance: (Tq, Tk) query-minus-key
        positions -> (B, H, Tq, hd) float64. Keys outside [0, window) are masked: score -inf, a gap
        of +inf, weight table[-1] = 0."""
        window = alibi.shape[1]
        inside = (distance >= 0) & (distance < window)
        bias = np.where(inside, alibi[:, np.clip(distance, 0, window - 1)], np.inf)
        q_q, k_q, v_i = (a.astype(np.float32) for a in (q_q, k_q, v_i))
        dots = q_q @ np.swapaxes(k_q, -1, -2)  # exact integers: hd * 127^2 < 2^24
        scores = dots * (q_s[..., :, None] * k_s[..., None, :]) - bias
        gap = np.max(scores, axis=-1, keepdims=True) - scores
        weights = lut_weights(gap, table, steps)  # integers in [0, 2^15]
        total = weights.sum(axis=-1, keepdims=True)  # exact: integers < 2^53
        # weights = 256 * high + low with both bytes <= 255 (weights <= 2^15): each float32 product
        # sum stays below 255 * 127 * window < 2^24 (window <= 512), so both matmuls are exact
        high = np.floor(weights * (1.0 / 256.0))
        low = weights - 256.0 * high
        rows = weights.shape[-2]  # both byte planes in one matmul: the values are read once
        both = np.concatenate([high, low], axis=-2).astype(np.float32) @ v_i
        mixed = both[..., :rows, :].astype(np.float64) * 256.0 + both[..., rows:, :]  # exact in f64
        return (mixed / total) * v_scale[:, None, None]

    def lut_rows(self, logits: np.ndarray, table: np.ndarray, steps: float) -> np.ndarray:
        """Softmax numerators exp(logit - max) from the table, plus 1 (every symbol codable)."""
        gap = np.max(logits, axis=-1, keepdims=True) - logits
        return lut_weights(gap, table, steps) + 1

    def head_lut(self, acc, row_scale, col_scale, table: np.ndarray, steps: float) -> np.ndarray:
        """``lut_rows`` of a linear layer's value (the output head)."""
        return self.lut_rows(acc * (row_scale[..., None] * col_scale), table, steps)


class CompiledOps:
    """The same operations through nncodec/nn/_kernels.c."""

    compiled = True

    @staticmethod
    def available() -> bool:
        return _kernels is not None

    @staticmethod
    def pack_vnni(weight: np.ndarray, packed: np.ndarray, sums: np.ndarray) -> None:
        """nncodec/nn/linear.py's pack_vnni, compiled (weight (N, K) int8 C-contiguous)."""
        _kernels.pack_vnni(weight, packed, sums, *weight.shape)

    @staticmethod
    def decoder_step(*args) -> bool:
        """A whole decoder step of the text model (nncodec/text/model.py's Decoder.step)."""
        return _kernels.decoder_step(*args)

    def matmul(self, q: np.ndarray, linear) -> np.ndarray:
        """The compiled int8 product (``linear.packed``: its AVX-512 VNNI layout), except for more
        than FEW_ROWS rows on a CPU without VNNI, where float32 BLAS is faster. All give the same
        exact integers."""
        rows = _rows(q, np.int8 if q.dtype == np.int8 else np.float32)
        if len(rows) > FEW_ROWS and _kernels.matmul_kind() != "avx512-vnni":
            return int_matmul(q.astype(np.float32, copy=False), linear.weight_t)
        count, width = linear.weight.shape
        out = np.empty((len(rows), count), np.float32)
        _kernels.matmul_i8(rows, linear.weight, *linear.packed, out, len(rows), width, count)
        return out.reshape(*q.shape[:-1], count)

    # the quantizers return int8 arrays (the reference's float32 q holds the same integers), which
    # ``matmul`` takes as they are

    def quantize(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = _rows(x, np.float64)
        q = np.empty(rows.shape, np.int8)
        scale = np.empty(len(rows), np.float64)
        _kernels.quantize(rows, q, scale, *rows.shape)
        return q.reshape(x.shape), scale.reshape(x.shape[:-1])

    def norm_quantize(self, residual: np.ndarray, eps: float, limit: int) -> tuple[np.ndarray, np.ndarray]:
        rows = _rows(residual, np.int64)
        q = np.empty(rows.shape, np.int8)
        scale = np.empty(len(rows), np.float64)
        if not _kernels.norm_quantize(rows, eps, limit, q, scale, *rows.shape):
            raise ResidualOverflow("residual stream out of range")
        return q.reshape(residual.shape), scale.reshape(residual.shape[:-1])

    def residual_add(self, residual, acc, row_scale, col_scale, unit: float) -> np.ndarray:
        out = np.array(residual, dtype=np.int64, order="C", copy=True)
        rows = out.reshape(-1, out.shape[-1])
        _kernels.residual_add(
            rows, _rows(acc, np.float32), _rows(row_scale[..., None], np.float64),
            np.ascontiguousarray(col_scale, np.float64), unit, *rows.shape,
        )  # fmt: skip
        return out

    def relu_quantize(self, acc, row_scale, col_scale) -> tuple[np.ndarray, np.ndarray]:
        acc_rows = _rows(acc, np.float32)
        q = np.empty(acc_rows.shape, np.int8)
        scale = np.empty(len(acc_rows), np.float64)
        _kernels.relu_quantize(
            acc_rows, _rows(row_scale[..., None], np.float64), np.ascontiguousarray(col_scale, np.float64),
            q, scale, *acc_rows.shape,
        )  # fmt: skip
        return q.reshape(acc.shape), scale.reshape(acc.shape[:-1])

    def qkv_split(self, acc, row_scale, col_scale, q_factor: float, v_scale: np.ndarray, heads: int):
        acc_rows = _rows(acc, np.float32)
        count, width = acc_rows.shape
        head_dim = width // 3 // heads
        lead = acc.shape[:-1]
        q, k, v = (np.empty((count, heads, head_dim), np.int8) for _ in range(3))
        q_s, k_s = (np.empty((count, heads), np.float64) for _ in range(2))
        _kernels.qkv_split(
            acc_rows, _rows(row_scale[..., None], np.float64), np.ascontiguousarray(col_scale, np.float64),
            q_factor, np.ascontiguousarray(v_scale, np.float64), q, q_s, k, k_s, v, count, heads, head_dim,
        )  # fmt: skip
        shape, scale_shape = (*lead, heads, head_dim), (*lead, heads)
        q, k, v = (x.reshape(shape) for x in (q, k, v))
        return q, q_s.reshape(scale_shape), k, k_s.reshape(scale_shape), v

    def attend(self, q_q, q_s, k_q, k_s, v_i, distance, alibi, table, steps: float, v_scale) -> np.ndarray:
        B, H, Tq, D = q_q.shape
        Tk = k_q.shape[2]
        out = np.empty((B, H, Tq, D), np.float64)
        c = np.ascontiguousarray
        _kernels.attend(
            c(q_q, np.int8), c(q_s, np.float64), c(k_q, np.int8), c(k_s, np.float64), c(v_i, np.int8),
            c(distance, np.int32), c(alibi, np.float64), c(table, np.float64), steps,
            c(v_scale, np.float64), out, B * H, H, Tq, Tk, D, alibi.shape[1], len(table),
        )  # fmt: skip
        return out

    def head_lut(self, acc, row_scale, col_scale, table: np.ndarray, steps: float) -> np.ndarray:
        acc_rows = _rows(acc, np.float32)
        out = np.empty(acc_rows.shape, np.float64)
        _kernels.head_lut(
            acc_rows, _rows(row_scale[..., None], np.float64), np.ascontiguousarray(col_scale, np.float64),
            np.ascontiguousarray(table, np.float64), steps, out, *acc_rows.shape, len(table),
        )  # fmt: skip
        return out.reshape(acc.shape)

    def lut_rows(self, logits: np.ndarray, table: np.ndarray, steps: float) -> np.ndarray:
        rows = _rows(logits, np.float64)
        out = np.empty_like(rows)
        _kernels.lut_rows(rows, np.ascontiguousarray(table, np.float64), steps, out, *rows.shape, len(table))
        return out.reshape(logits.shape)


def best_ops() -> NumpyOps | CompiledOps:
    """The compiled operations when they are built, else the numpy reference."""
    return CompiledOps() if _kernels is not None else NumpyOps()
