"""Mixing the language model with statistics learned from the data being coded.

A small model cannot know a file's own names and repetitions; order-k token counts gathered while
coding can. ``ContextMixer`` keeps order-1 and order-2 token counts for a block, shared by all of its
segments and updated in lockstep order (after each step, with every stream's token in stream order),
so encoder and decoder see the same counts at every step. It blends them into the model's
distribution with weights that grow with how often the context has been seen::

    p = (1 - l2) * ((1 - l1) * p_model + l1 * p_order1) + l2 * p_order2,   l_k = n_k / (n_k + K_k)

where n_k is the count of the order-k context. Every operation is elementwise IEEE arithmetic on exact
integers or an exact integer sum, so the resulting integer frequencies are reproducible anywhere.
"""

from __future__ import annotations

import numpy as np

FREQ_SCALE = float(1 << 24)
ORDER1_PRIOR = 64.0  # K_1: sightings of a context before its order-1 counts carry half the weight
ORDER2_PRIOR = 6.0  # K_2 (tuned on training text, never on validation tails)


class ContextMixer:
    def __init__(
        self, vocab_size: int, order1_prior: float = ORDER1_PRIOR, order2_prior: float = ORDER2_PRIOR
    ):
        self.vocab_size = vocab_size
        self.order1_prior = order1_prior
        self.order2_prior = order2_prior
        self.order1: dict[int, dict[int, int]] = {}
        self.order2: dict[int, dict[int, int]] = {}

    @staticmethod
    def _blend(probs: np.ndarray, table: dict[int, int] | None, prior: float) -> np.ndarray:
        """probs (V,) float64 -> (1 - l) * probs + l * counts / n, in place, l = n / (n + prior)."""
        if not table:
            return probs
        tokens = np.fromiter(table.keys(), dtype=np.int64, count=len(table))
        counts = np.fromiter(table.values(), dtype=np.float64, count=len(table))
        seen = counts.sum()  # exact: integers
        weight = seen / (seen + prior)
        probs *= 1.0 - weight
        probs[tokens] += counts * (weight / seen)
        return probs

    def frequencies(self, model_rows: np.ndarray, prev2: np.ndarray, prev1: np.ndarray) -> np.ndarray:
        """model_rows (S, V) integer-valued float64 -> mixed integer frequency rows (S, V), each >= 1.

        prev2/prev1: the two previous tokens of each stream (-1 where there is none)."""
        totals = model_rows.sum(axis=1, keepdims=True)  # exact: integers < 2^53
        probs = model_rows / totals
        for s in range(len(probs)):
            if prev1[s] >= 0:
                self._blend(probs[s], self.order1.get(int(prev1[s])), self.order1_prior)
                if prev2[s] >= 0:
                    key = int(prev2[s]) * self.vocab_size + int(prev1[s])
                    self._blend(probs[s], self.order2.get(key), self.order2_prior)
        return np.floor(probs * FREQ_SCALE) + 1.0

    def update(self, prev2: np.ndarray, prev1: np.ndarray, tokens: np.ndarray) -> None:
        """Count each stream's new token under its contexts, in stream order."""
        for s in range(len(tokens)):
            if prev1[s] < 0:
                continue
            token = int(tokens[s])
            table = self.order1.setdefault(int(prev1[s]), {})
            table[token] = table.get(token, 0) + 1
            if prev2[s] >= 0:
                table = self.order2.setdefault(int(prev2[s]) * self.vocab_size + int(prev1[s]), {})
                table[token] = table.get(token, 0) + 1
