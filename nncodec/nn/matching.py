"""A match model over the tokens a mix group has coded so far, refined by an adaptive table (APM).

Long repeats (markup, JSON keys, code, refrains) are where a small model and short contexts are
weakest: after the first occurrence, the continuation is nearly certain. ``MatchModel`` keeps, for a
group of streams coded in lockstep, a table from the last ``MATCH_MIN`` tokens of any stream to the
position that followed them most recently (in any stream of the group). When a stream's last
``MATCH_MIN`` tokens were seen before, it predicts that the token after the earlier occurrence comes
next, and follows the match while the prediction keeps coming true.

The prediction y changes one entry of the mixed integer frequency row: with x = row[y] / total the
row's own probability of y, the new probability is learned from hit counts at three levels, each the
prior of the next (a new length bucket starts from what all matches taught, not from x)::

    q_all = (hits_all + A * x) / (tries_all + A)
    q_len = (hits[length] + A * q_all) / (tries[length] + A)
    p = (hits[length, bucket of x] + A * q_len) / (tries[length, bucket of x] + A)
    row[y] <- floor(p / (1 - p) * rest) + 1

where rest = total - row[y] (the other entries are unchanged, so y gets probability ~ p). After each
step, every row with a prediction counts a try, and a hit when its token was y. All of it is integer
counts, an exact integer sum and elementwise IEEE operations in a fixed order, so the encoder and
the decoder compute the same rows on any machine. The arithmetic and the order of updates (streams
in order, after the whole step) are part of text format 2 (docs/FORMAT.md §7.1); the compiled decode
loop (nncodec/nn/_kernels.c, TextDecoder) repeats them in C, and tests/test_text.py decodes the same
streams both ways.
"""

from __future__ import annotations

import numpy as np

MATCH_MIN = 5  # tokens that must repeat before the model predicts
MAX_VERIFY = 32  # a new match's length is counted back up to this many tokens
LENGTH_BUCKETS = np.array([0, 5, 6, 7, 8, 10, 12, 16, 20, 24, 32, 48, 64, 1 << 30])  # lower bounds
PROB_EDGES = np.array(
    [1 / 1024, 1 / 256, 1 / 64, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 3 / 4, 7 / 8, 15 / 16, 63 / 64]
)  # noqa: E501
APM_PRIOR = 2.0
P_MIN, P_MAX = 1.0 / 4096, 1.0 - 1.0 / 65536


class MatchModel:
    def __init__(self, streams: int, length: int, vocab_size: int) -> None:
        """``streams`` coded in lockstep, each at most ``length`` tokens."""
        self.history = np.full((streams, length), -1, dtype=np.int64)
        self.vocab_size = vocab_size
        # the last MATCH_MIN tokens as one integer -> stream << 32 | position of the token after them
        self.table: dict[int, int] = {}
        self.source = np.zeros((streams, 2), dtype=np.int64)  # (stream, position) of the predicted token
        self.length = np.zeros(streams, dtype=np.int64)  # current match length (0: none)
        self.hits = np.zeros((len(LENGTH_BUCKETS) - 1, len(PROB_EDGES) + 1), dtype=np.int64)
        self.tries = np.zeros_like(self.hits)
        # predictions made since the last update: (streams, predicted, length bucket, prob bucket)
        self._used: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def adjust(self, rows: np.ndarray, active: int, first: int = 0) -> None:
        """Apply the predictions of streams first..active-1 to their rows (integer-valued float64,
        (active - first, V): row i is stream first + i), in place. Only reads the model's state,
        so threads may adjust disjoint stream ranges at once (the update then counts them all)."""
        streams = first + np.flatnonzero(self.length[first:active] > 0)
        if not len(streams):
            return
        predicted = self.history[self.source[streams, 0], self.source[streams, 1]]
        keep = predicted >= 0  # the source position may lie past a stream's end
        streams, predicted = streams[keep], predicted[keep]
        if not len(streams):
            return
        local = streams - first
        sub = rows[local]
        total = sub.sum(axis=1)  # exact: integers below 2^53
        own = sub[np.arange(len(streams)), predicted]
        x = own / total
        length_bucket = np.searchsorted(LENGTH_BUCKETS, self.length[streams], side="right") - 1
        prob_bucket = np.searchsorted(PROB_EDGES, x, side="right")
        hits_len, tries_len = self.hits.sum(axis=1), self.tries.sum(axis=1)  # exact: integers
        q = (hits_len.sum() + APM_PRIOR * x) / (tries_len.sum() + APM_PRIOR)
        q = (hits_len[length_bucket] + APM_PRIOR * q) / (tries_len[length_bucket] + APM_PRIOR)
        p = (self.hits[length_bucket, prob_bucket] + APM_PRIOR * q) / (
            self.tries[length_bucket, prob_bucket] + APM_PRIOR
        )
        p = np.minimum(np.maximum(p, P_MIN), P_MAX)
        rows[local, predicted] = np.floor(p / (1.0 - p) * (total - own)) + 1.0
        self._used.append((streams, predicted, length_bucket, prob_bucket))

    def update(self, tokens: np.ndarray, t: int) -> None:
        """Record each active stream's token at position t (tokens: (active,), stream order)."""
        active = len(tokens)
        for streams, predicted, length_bucket, prob_bucket in self._used:  # integer counts: any order
            hit = (tokens[streams] == predicted).astype(np.int64)
            np.add.at(self.tries, (length_bucket, prob_bucket), 1)
            np.add.at(self.hits, (length_bucket, prob_bucket), hit)
        self._used = []
        history = self.history
        history[:active, t] = tokens
        # matches that go on grow by one, the others end (each stream on its own: vectorized)
        going = np.flatnonzero(self.length[:active])
        if len(going):
            source = self.source[going]
            on = (history[source[:, 0], source[:, 1]] == tokens[going]) & (source[:, 1] + 1 <= t)
            self.source[going[on], 1] += 1
            self.length[going[on]] += 1
            self.length[going[~on]] = 0
        if t + 1 < MATCH_MIN:
            return
        # then, in stream order (a stream finds what the streams before it stored at this step),
        # streams without a match look up their last MATCH_MIN tokens, and every stream stores them
        last = history[:active, t + 1 - MATCH_MIN : t + 1]
        if self.vocab_size**MATCH_MIN < 1 << 63:  # the keys fit in int64
            keys = last[:, 0].copy()
            for column in range(1, MATCH_MIN):
                keys = keys * self.vocab_size + last[:, column]
            key_list = keys.tolist()
        else:
            key_list = [_key(row, self.vocab_size) for row in last.tolist()]
        without = (self.length[:active] == 0).tolist()
        table = self.table
        for s in range(active):
            key = key_list[s]
            if without[s]:
                found = table.get(key)
                if found is not None:
                    source = (found >> 32, found & 0xFFFFFFFF)
                    self.source[s] = source
                    self.length[s] = self._verified_length(s, t, source)
            table[key] = s << 32 | (t + 1)

    def _verified_length(self, s: int, t: int, found: tuple[int, int]) -> int:
        """How many tokens before ``found`` equal those ending at (s, t), up to MAX_VERIFY."""
        source_stream, position = found
        length = 0
        while (
            length < MAX_VERIFY
            and position - 1 - length >= 0
            and t - length >= 0
            and self.history[source_stream, position - 1 - length] == self.history[s, t - length]
        ):
            length += 1
        return length


def _key(tokens: list[int], vocab_size: int) -> int:
    key = 0
    for token in tokens:
        key = key * vocab_size + token
    return key
