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

**Learned weights** (``learned=True``, text format 3). The formula's l (call it l0) is a fixed guess
of how far an order's counts should be trusted. A learned mixer refines it per class of context
(order k, n bucket ``bit_length(n) - 1`` capped at ``N_BUCKETS - 1``, d bucket ``bit_length(d) - 1``
capped at ``D_BUCKETS - 1``) in the logistic domain, with integer weights (w0, w1) per class, in
fixed point with 16 fractional bits::

    s = STRETCH[clamp(floor(l0 * 4096), 1, 4095)]          (stretch units: 1/256 nat, |s| <= 2047)
    a = clamp((w0 * s + w1) >> 16, -2047, 2047)
    l = SQUASH[a + 2047] / 4096                             (paq's integer squash, 12 bits)

starting from w0 = 1, w1 = 0 (l = l0 to 12 bits). After each step, for every stream in order, the
coded token x's probability is followed through the same chain (p_0 = row[x] / total, p_k = p_(k-1)
* (1 - l) + count(x) * (l / n), as the rows are computed), and each used class gets the gradient of
log p_final with respect to its a::

    err_k = (1 / p_final) * prod_(j > k) (1 - l_j) * (count(x) / n - p_(k-1)) * l (1 - l)
    e = trunc(clamp(err_k, -64, 64) * 1024),  w0 += (e * s * 13) >> 10,  w1 += e * 1638

summed over the step's streams and added once after the step (then clamped), before the step's
counts are added: every stream of a step sees the same weights and counts, so the rows of a step
may still be computed in any order or on any thread. The tables are integers built here and handed
to the compiled mixer; the float operations are IEEE operations on the same values in the same
order in both (-ffp-contract=off), so the two agree bit for bit. Measured with model text-v3 on dev
files that are neither training nor validation data (zlib.h, Xlib.h, curses.h, underscore.js, and
100 KB of two Gutenberg books by training authors), text format 3 against format 2: 99,083 -> 98,186
bytes (-0.9%; curses.h -1.4%, Xlib.h -1.1%, the books -1.1% and -1.3%, zlib.h 0.0%).

**Product form** (``product=True``, image format 4). The same blend with the keeps multiplied out:
for the orders b = 0..n-1 that have a context (lowest first), keep_b = 1 - l_b and per_count_b =
l_b / n_b, the products are taken from the top down (suffix = 1; for b = n-1 .. 0: coef_b =
per_count_b * suffix, suffix = suffix * keep_b; K = the final suffix), then::

    p = (row / total) * K,  then for b = 0..n-1: p[t] += count_b(t) * coef_b for the tokens t listed

and floor(p * 2^24) + 1. It costs one pass over the vocabulary plus one add per listed token
instead of one pass per order, which makes fine contexts (few tokens each) cheap. Its values equal
the sequential form's except for rare roundings, so it is a format of its own.
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

N_BUCKETS = 11  # classes of a context's count n: bit_length(n) - 1, capped
D_BUCKETS = 6  # classes of its number of distinct tokens d
W_ONE = 1 << 16  # 1.0 in the weights' fixed point
W0_LIMIT = 1 << 22
W1_LIMIT = 2047 << 16
ERR_LIMIT = 64.0
ERR_SCALE = 1024.0
# learning rates, chosen on the dev files below among 0.5x-4x of these (a flat optimum: +-0.1%)
RATE_W0 = 13  # w0 += (e * s * RATE_W0) >> RATE_SHIFT
RATE_SHIFT = 10
RATE_W1 = 1638  # w1 += e * RATE_W1
_SQUASH_POINTS = (
    1, 2, 3, 6, 10, 16, 27, 45, 73, 120, 194, 310, 488, 747, 1101, 1546, 2047,
    2549, 2994, 3348, 3607, 3785, 3901, 3975, 4024, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094,
)  # fmt: skip


def _squash(d: int) -> int:
    """paq's squash: 4096 / (1 + exp(-d / 256)) by integer interpolation, d in [-2047, 2047]."""
    w = d & 127
    i = (d >> 7) + 16
    return (_SQUASH_POINTS[i] * (128 - w) + _SQUASH_POINTS[i + 1] * w + 64) >> 7


def _stretch_table() -> list[int]:
    """The inverse of ``_squash`` on 12-bit probabilities (paq's construction)."""
    table, first = [2047] * 4096, 0
    for d in range(-2047, 2048):
        value = _squash(d)
        for i in range(first, value + 1):
            table[i] = d
        first = max(first, value + 1)
    return table


SQUASH = tuple(_squash(d) for d in range(-2047, 2048))  # SQUASH[a + 2047], a in [-2047, 2047]
STRETCH = tuple(_stretch_table())  # STRETCH[p], p in [0, 4095]
#: the tables and constants above as the compiled mixer takes them (its only source of them)
LEARNED_SETTINGS = (
    np.asarray(SQUASH, np.int32).tobytes(),
    np.asarray(STRETCH, np.int32).tobytes(),
    W_ONE,
    W0_LIMIT,
    W1_LIMIT,
    ERR_LIMIT,
    ERR_SCALE,
    RATE_W0,
    RATE_SHIFT,
    RATE_W1,
)


def compiled_mixer(vocab_size: int, priors: tuple[float, ...], learned: bool = False, product: bool = False):
    """The compiled mixer (nncodec/nn/_kernels.c) with this module's settings."""
    return CompiledMixer(vocab_size, priors, LEARNED_SETTINGS if learned else None, product)


class ContextMixer:
    def __init__(
        self,
        vocab_size: int,
        priors: tuple[float, ...] = ORDER_PRIORS,
        compiled: bool | None = None,
        learned: bool = False,
        product: bool = False,
    ) -> None:
        """``compiled``: use the compiled mixer (default: when it is built); False: this reference.
        ``learned``: refine each order's weight with learned per-class weights (module docstring).
        ``product``: compute the rows in product form (module docstring)."""
        self.vocab_size = vocab_size
        self.priors = priors
        self.learned = learned
        self.product = product
        self.tables: list[dict[int, dict[int, int]]] = [{} for _ in priors]
        use_compiled = CompiledMixer is not None if compiled is None else compiled
        self._compiled = compiled_mixer(vocab_size, priors, learned, product) if use_compiled else None
        self.weights = None  # the reference's learned weights (the compiled mixer keeps its own)
        if learned and self._compiled is None:
            self.weights = np.zeros((len(priors), N_BUCKETS, D_BUCKETS, 2), np.int64)
            self.weights[..., 0] = W_ONE

    def _weight(self, order: int, seen: int, distinct: int) -> tuple[float, int, tuple[int, int, int]]:
        """An order's blending weight l for a context seen ``seen`` times with ``distinct`` tokens,
        with its stretch value and class (learned mixers; else the formula's l, 0, None)."""
        weight = seen / (seen + self.priors[order] * distinct)
        if not self.learned:
            return weight, 0, None
        stretched = STRETCH[min(4095, max(1, int(weight * 4096.0)))]
        n_bucket = min(seen.bit_length() - 1, N_BUCKETS - 1)
        cls = (order, n_bucket, min(distinct.bit_length() - 1, D_BUCKETS - 1))
        w0, w1 = (int(v) for v in self.weights[cls])
        a = min(2047, max(-2047, (w0 * stretched + w1) >> 16))
        return SQUASH[a + 2047] / 4096.0, stretched, cls

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
        if self.product:
            return self._product_rows(probs, history)
        for s in range(len(probs)):
            for tokens, counts, seen, weight in self._contexts_of(history[s]):
                row = probs[s]
                row *= 1.0 - weight
                row[tokens] += counts * (weight / seen)
        return np.floor(probs * FREQ_SCALE) + 1.0

    def _contexts_of(self, history_row: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float, float]]:
        """(tokens, counts, seen, weight) of each order whose context has counts, lowest first."""
        found = []
        for order, (table, key) in enumerate(zip(self.tables, self._keys(history_row), strict=True)):
            counts_by_token = table.get(key) if key is not None else None
            if not counts_by_token:
                continue
            tokens = np.fromiter(counts_by_token.keys(), dtype=np.int64, count=len(counts_by_token))
            counts = np.fromiter(counts_by_token.values(), dtype=np.float64, count=len(counts_by_token))
            seen = counts.sum()  # exact: integers
            found.append((tokens, counts, seen, self._weight(order, int(seen), len(counts_by_token))[0]))
        return found

    def forget(self) -> None:
        """Drop every count (the learned weights stay): the image codec's mixers, once a channel is
        coded, since no later channel's context can meet its counts."""
        if self._compiled is not None:
            self._compiled.forget()
        else:
            self.tables = [{} for _ in self.priors]

    def _product_rows(self, probs: np.ndarray, history: np.ndarray) -> np.ndarray:
        """``frequencies`` in product form from probs = rows / totals (module docstring)."""
        for s in range(len(probs)):
            # (tokens, counts, keep, per_count) of each order with a context, lowest first
            blends = [(t, c, 1.0 - w, w / seen) for t, c, seen, w in self._contexts_of(history[s])]
            suffix, coefs = 1.0, [0.0] * len(blends)
            for b in range(len(blends) - 1, -1, -1):
                coefs[b] = blends[b][3] * suffix
                suffix = suffix * blends[b][2]
            row = probs[s]
            row *= suffix
            for (tokens, counts, _, _), coef in zip(blends, coefs, strict=True):
                row[tokens] += counts * coef
        return np.floor(probs * FREQ_SCALE) + 1.0

    def update(self, history: np.ndarray, tokens: np.ndarray, model_rows: np.ndarray | None = None) -> None:
        """Count each stream's new token under its contexts, in stream order. A learned mixer also
        needs the model rows the step's ``frequencies`` were given, and learns from them first."""
        if self.learned and model_rows is None:
            raise ValueError("a learned mixer's update needs the step's model rows")
        if self._compiled is not None:
            tokens = np.ascontiguousarray(tokens, np.int64)
            history = np.ascontiguousarray(history, np.int64)
            if self.learned:
                rows = np.ascontiguousarray(model_rows, np.float64)
                self._compiled.update(history, tokens, len(tokens), rows)
            else:
                self._compiled.update(history, tokens, len(tokens))
            return
        if self.learned:
            self._learn(history, tokens, model_rows)
        for s in range(len(tokens)):
            token = int(tokens[s])
            for table, key in zip(self.tables, self._keys(history[s]), strict=True):
                if key is None:
                    break
                counts = table.setdefault(key, {})
                counts[token] = counts.get(token, 0) + 1

    def _learn(self, history: np.ndarray, tokens: np.ndarray, model_rows: np.ndarray) -> None:
        """The learned weights' step (module docstring): every stream's gradient from the weights
        and counts its row was computed with, summed, then added once."""
        delta = np.zeros_like(self.weights)
        for s in range(len(tokens)):
            token = int(tokens[s])
            row = model_rows[s]
            p = float(row[token]) / float(row.sum())  # the sum: exact (integers below 2^53)
            chain = []
            for order, (table, key) in enumerate(zip(self.tables, self._keys(history[s]), strict=True)):
                counts_by_token = table.get(key) if key is not None else None
                if not counts_by_token:
                    continue
                seen = sum(counts_by_token.values())
                weight, stretched, cls = self._weight(order, seen, len(counts_by_token))
                count = counts_by_token.get(token, 0)
                chain.append((weight, stretched, cls, p, count / seen))
                p = p * (1.0 - weight)
                if count:
                    p = p + float(count) * (weight / seen)
            gradient = 1.0 / p
            for weight, stretched, cls, before, share in reversed(chain):
                err = gradient * (share - before) * (weight * (1.0 - weight))
                e = int(min(ERR_LIMIT, max(-ERR_LIMIT, err)) * ERR_SCALE)
                delta[cls + (0,)] += (e * stretched * RATE_W0) >> RATE_SHIFT
                delta[cls + (1,)] += e * RATE_W1
                gradient = gradient * (1.0 - weight)
        self.weights[..., 0] = np.clip(self.weights[..., 0] + delta[..., 0], -W0_LIMIT, W0_LIMIT)
        self.weights[..., 1] = np.clip(self.weights[..., 1] + delta[..., 1], -W1_LIMIT, W1_LIMIT)
