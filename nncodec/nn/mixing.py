"""Mixing the language model with statistics learned from the data being coded.

A small model cannot know a file's own names and repetitions; order-k token counts gathered while
coding can. ``ContextMixer`` keeps order-1, -2 and -3 token counts for a group of segments, shared
by them and updated in lockstep order (after each step, with every stream's new token in stream
order), so encoder and decoder see the same counts at every step. It blends them into the model's
distribution from the lowest order to the highest::

    p <- (1 - l) * p + l * counts / n,   l = n / (n + K_k * d)

where n is how often the order-k context was seen and d how many distinct tokens followed it (a
context that was always followed by the same token earns trust fastest, as in PPM's escape
estimates). Every operation is elementwise IEEE arithmetic on exact integers or an exact integer sum,
so the resulting integer frequencies are reproducible anywhere.

The priors K_k were tuned on text that is neither training nor validation data (unseen Python
standard library sources and /usr/share/common-licenses), with the ideal code length as the measure.
"""

from __future__ import annotations

import numpy as np

from nncodec.nn.rowops import KERNELS

try:  # compiled form of this class (nncodec/nn/_kernels.c): same tables, same values, faster
    from nncodec.nn._kernels import Mixer as CompiledMixer
except ImportError:  # pragma: no cover - built by `pip install`
    CompiledMixer = None
if KERNELS == "numpy":
    CompiledMixer = None

FREQ_SCALE = float(1 << 24)
ORDER_PRIORS = (12.0, 1.5, 1.0)  # K_1, K_2, K_3 (text format version 1)
ORDERS = len(ORDER_PRIORS)
# text format version 2 (orders 1..5); tuned with the whole block in one mix group, by ideal code
# length, on dev files no validation file comes from: 150 KB of Gutenberg books by training authors
# (Alger, Chekhov, Kipling, Lang), curl.1, valgrind's manual-core.html, sqlite3.h and ruff's SBOM
# JSON. Against (12, 1.5, 1) in one group: -3.0% on those files; 12, 1.5, 1 with groups of 8: -5 to -8%
ORDER_PRIORS_V2 = (8.0, 6.0, 4.0, 8.0, 16.0)


class ContextMixer:
    def __init__(
        self, vocab_size: int, priors: tuple[float, ...] = ORDER_PRIORS, compiled: bool | None = None
    ) -> None:
        """``compiled``: use the compiled mixer (default: when it is built); False: this reference."""
        self.vocab_size = vocab_size
        self.priors = priors
        self.tables: list[dict[int, dict[int, int]]] = [{} for _ in priors]
        use_compiled = CompiledMixer is not None if compiled is None else compiled
        self._compiled = CompiledMixer(vocab_size, priors) if use_compiled else None

    def _keys(self, history: np.ndarray) -> list[int | None]:
        """Context keys of orders 1..ORDERS for one stream; history holds the previous ORDERS
        tokens, oldest first, -1 where the stream has none."""
        keys: list[int | None] = []
        key = 0
        for order in range(1, len(self.priors) + 1):
            token = int(history[-order])
            if token < 0:
                keys.extend([None] * (len(self.priors) - order + 1))
                break
            key = key * self.vocab_size + token
            keys.append(key)
        return keys

    def frequencies(self, model_rows: np.ndarray, history: np.ndarray) -> np.ndarray:
        """model_rows (S, V) integer-valued float64, history (S, ORDERS) -> mixed integer
        frequency rows (S, V), every entry >= 1."""
        if self._compiled is not None:
            rows = np.ascontiguousarray(model_rows, np.float64)
            out = np.empty_like(rows)
            self._compiled.frequencies(rows, np.ascontiguousarray(history, np.int64), out, len(rows))
            return out
        totals = model_rows.sum(axis=1, keepdims=True)  # exact: integers < 2^53
        probs = model_rows / totals
        for s in range(len(probs)):
            for table, prior, key in zip(self.tables, self.priors, self._keys(history[s]), strict=True):
                counts_by_token = table.get(key) if key is not None else None
                if not counts_by_token:
                    continue
                tokens = np.fromiter(counts_by_token.keys(), dtype=np.int64, count=len(counts_by_token))
                counts = np.fromiter(counts_by_token.values(), dtype=np.float64, count=len(counts_by_token))
                seen = counts.sum()  # exact: integers
                weight = seen / (seen + prior * len(counts_by_token))
                row = probs[s]
                row *= 1.0 - weight
                row[tokens] += counts * (weight / seen)
        return np.floor(probs * FREQ_SCALE) + 1.0

    def update(self, history: np.ndarray, tokens: np.ndarray) -> None:
        """Count each stream's new token under its contexts, in stream order."""
        if self._compiled is not None:
            tokens = np.ascontiguousarray(tokens, np.int64)
            self._compiled.update(np.ascontiguousarray(history, np.int64), tokens, len(tokens))
            return
        for s in range(len(tokens)):
            token = int(tokens[s])
            for table, key in zip(self.tables, self._keys(history[s]), strict=True):
                if key is None:
                    break
                counts = table.setdefault(key, {})
                counts[token] = counts.get(token, 0) + 1
