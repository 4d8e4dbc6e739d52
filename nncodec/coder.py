"""Entropy coding: deterministic probability -> integer frequency quantization and range coding.

Two jobs, nothing about files:

* ``quantize_probabilities`` turns rows of float probabilities into rows of integer frequencies with a
  fixed total and every symbol >= 1. It is a pure elementwise/integer computation (no float sums), so
  the same input floats give the same table on any machine. (Whether the *input floats* are
  reproducible is the model's business; see docs/DETERMINISM.md once the learned codecs land.)
* ``SymbolEncoder``/``SymbolDecoder`` range-code arrays of symbols against arrays of integer frequency
  rows with constriction's range coder. Integer tables are handed to constriction as float64, which
  represents them exactly; constriction's ``perfect=False`` quantizer is then a deterministic function
  of those integers (its sums of integer-valued float64 below 2^53 are exact in any order).

Works for alphabets from 2 to 65,536 symbols.
"""

from __future__ import annotations

import constriction
import numpy as np

from nncodec.errors import CorruptError

DEFAULT_TOTAL_BITS = 24
MAX_TOTAL_BITS = 24
MIN_ALPHABET = 2
MAX_ALPHABET = 1 << 16
_WEIGHT_BITS = 30  # probabilities become integers in [0, 2^30] before any summation

_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)


def quantize_probabilities(probs: np.ndarray, total_bits: int = DEFAULT_TOTAL_BITS) -> np.ndarray:
    """Map rows of non-negative probabilities to int64 frequencies summing to ``2**total_bits``.

    Every symbol gets at least 1. Rows need not be normalized. The computation is exact integer
    arithmetic after one elementwise IEEE step (divide by the row maximum, scale, floor), so it is
    independent of summation order, threads and CPU.
    """
    p = np.asarray(probs, dtype=np.float64)
    squeeze = p.ndim == 1
    p = np.atleast_2d(p)
    if p.ndim != 2:
        raise ValueError("probabilities must be a 1-D or 2-D array")
    alphabet = p.shape[1]
    if not MIN_ALPHABET <= alphabet <= MAX_ALPHABET:
        raise ValueError(f"alphabet size {alphabet} outside {MIN_ALPHABET}..{MAX_ALPHABET}")
    total = 1 << total_bits
    if total_bits > MAX_TOTAL_BITS or total < 2 * alphabet:
        raise ValueError(f"total 2^{total_bits} does not fit an alphabet of {alphabet}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("probabilities must be finite and non-negative")

    row_max = p.max(axis=1, keepdims=True)
    safe_max = np.where(row_max > 0, row_max, 1.0)
    weights = np.floor(p / safe_max * float(1 << _WEIGHT_BITS)).astype(np.int64)
    weights[row_max[:, 0] == 0] = 1  # an all-zero row becomes uniform
    weight_sum = weights.sum(axis=1, keepdims=True)  # exact: < 2^(30+16)

    spare = total - alphabet  # mass left after the floor of 1 per symbol
    freqs = 1 + (weights * spare) // weight_sum  # exact: < 2^(30+24)
    shortfall = total - freqs.sum(axis=1)
    freqs[np.arange(len(freqs)), np.argmax(weights, axis=1)] += shortfall
    return freqs[0] if squeeze else freqs


def _as_rows(freqs: np.ndarray, count: int) -> np.ndarray:
    rows = np.ascontiguousarray(freqs, dtype=np.float64)  # C order: constriction reads memory order
    if rows.ndim != 2 or rows.shape[0] != count:
        raise ValueError(f"need one frequency row per symbol ({count}), got shape {rows.shape}")
    if not MIN_ALPHABET <= rows.shape[1] <= MAX_ALPHABET:
        raise ValueError(f"alphabet size {rows.shape[1]} outside {MIN_ALPHABET}..{MAX_ALPHABET}")
    return rows


class SymbolEncoder:
    """Range-encodes symbols, each against its own integer frequency row."""

    def __init__(self) -> None:
        self._encoder = constriction.stream.queue.RangeEncoder()

    def encode(self, symbols: np.ndarray, freqs: np.ndarray) -> None:
        symbols = np.ascontiguousarray(symbols, dtype=np.int32).reshape(-1)
        rows = _as_rows(freqs, len(symbols))
        if not len(symbols):
            return
        if rows.min() < 1:  # (the decoder needs no check: it meets only rows the encoder accepted)
            raise ValueError("every frequency must be >= 1")
        if symbols.min() < 0 or symbols.max() >= rows.shape[1]:
            raise ValueError("symbol outside the alphabet")
        self._encoder.encode(symbols, _CATEGORICAL, rows)

    def finish(self) -> bytes:
        return self._encoder.get_compressed().astype("<u4").tobytes()


class SymbolDecoder:
    """Decodes what ``SymbolEncoder`` wrote, given the same frequency rows in the same order."""

    def __init__(self, data: bytes) -> None:
        if len(data) % 4:
            raise CorruptError("range-coded stream has a length that is not a multiple of 4")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        self._decoder = constriction.stream.queue.RangeDecoder(words)

    def decode(self, freqs: np.ndarray) -> np.ndarray:
        """Decode one symbol per row of ``freqs``."""
        rows = _as_rows(freqs, np.shape(freqs)[0])
        if not len(rows):
            return np.zeros(0, dtype=np.int32)
        try:
            symbols = self._decoder.decode(_CATEGORICAL, rows)
        except (AssertionError, ValueError, RuntimeError) as exc:  # constriction on invalid data
            raise CorruptError(f"range-coded data invalid ({exc})") from exc
        return np.asarray(symbols, dtype=np.int32)

    def decode_row(self, row: np.ndarray) -> int:
        """Decode one symbol against ``row``, a (1, alphabet) C-contiguous float64 array of integer
        frequencies >= 1 (the per-token fast path of the text decoder; ``decode`` checks its input)."""
        try:
            return int(self._decoder.decode(_CATEGORICAL, row)[0])
        except (AssertionError, ValueError, RuntimeError) as exc:
            raise CorruptError(f"range-coded data invalid ({exc})") from exc


def encode_symbols(symbols: np.ndarray, freqs: np.ndarray) -> bytes:
    """Range-code a whole array of symbols against an array of frequency rows."""
    encoder = SymbolEncoder()
    encoder.encode(symbols, freqs)
    return encoder.finish()


def decode_symbols(data: bytes, freqs: np.ndarray) -> np.ndarray:
    """Inverse of ``encode_symbols``."""
    return SymbolDecoder(data).decode(freqs)


def ideal_bits(symbols: np.ndarray, probs: np.ndarray) -> float:
    """-sum(log2 p[symbol]) of normalized rows: the cost an ideal entropy coder would pay."""
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.log2(p[np.arange(len(symbols)), symbols]).sum())
