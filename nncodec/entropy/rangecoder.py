"""Range coding of symbols against integer frequency tables, nothing about files.

``SymbolEncoder``/``SymbolDecoder`` range-code arrays of symbols against arrays of integer frequency
rows (every entry >= 1, no common total needed) with constriction's range coder. The models build
those rows in exact arithmetic, so they are the same on any machine (docs/DETERMINISM.md). Integer
tables are handed to constriction as float64, which represents them exactly; constriction's
``perfect=False`` quantizer is then a deterministic function of those integers (its sums of
integer-valued float64 below 2^53 are exact in any order).

Works for alphabets from 2 to 65,536 symbols.
"""

from __future__ import annotations

import constriction
import numpy as np

from nncodec.core.errors import CorruptError

MIN_ALPHABET = 2
MAX_ALPHABET = 1 << 16

_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)


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
