"""The match model of text format 2: it finds repeats across the streams of a group, learns how far
to trust them, and is a pure function of the tokens coded before each step."""

import numpy as np

from nncodec.nn.matching import MATCH_MIN, MatchModel

VOCAB = 64


def run(tokens: np.ndarray) -> list[np.ndarray]:
    """Code ``tokens`` (streams, T) in lockstep from uniform rows; the adjusted rows of every step."""
    streams, length = tokens.shape
    model = MatchModel(streams, length, VOCAB)
    model.update(tokens[:, 0], 0)
    out = []
    for t in range(1, length):
        rows = np.full((streams, VOCAB), 1000.0)
        model.adjust(rows, streams)
        out.append(rows.copy())
        model.update(tokens[:, t], t)
    return out


def probability(row: np.ndarray, token: int) -> float:
    return row[token] / row.sum()


def test_a_repeat_becomes_nearly_certain_and_a_new_sequence_stays_uniform():
    rng = np.random.default_rng(1)
    phrase = rng.integers(0, VOCAB, 40)
    tokens = np.concatenate([phrase, phrase, phrase, rng.integers(0, VOCAB, 40)])[None, :]
    rows = run(tokens)
    third = [probability(rows[t - 1][0], tokens[0, t]) for t in range(80 + MATCH_MIN + 2, 120)]
    assert min(third) > 0.8  # the third copy: learned that matches come true
    fresh = [probability(rows[t - 1][0], tokens[0, t]) for t in range(125, 160)]
    assert max(fresh) < 2.0 / VOCAB  # random tokens after the copies: no confident prediction


def test_a_repeat_in_another_stream_of_the_group_is_found():
    rng = np.random.default_rng(2)
    phrase = rng.integers(0, VOCAB, 60)
    tokens = np.stack([np.concatenate([phrase, rng.integers(0, VOCAB, 60)]),
                       np.concatenate([rng.integers(0, VOCAB, 70), phrase[:50]])])  # fmt: skip
    rows = run(tokens)
    predicted = [rows[t - 1][1].argmax() == tokens[1, t] for t in range(70 + MATCH_MIN + 1, 120)]
    assert all(predicted)


def test_rows_depend_only_on_earlier_tokens():
    """Changing the tokens from step k on leaves every row of steps <= k unchanged."""
    rng = np.random.default_rng(3)
    tokens = rng.integers(0, 8, size=(3, 200))  # small alphabet: many matches
    changed = tokens.copy()
    changed[:, 120:] = rng.integers(0, 8, size=(3, 80))
    a, b = run(tokens), run(changed)
    assert all(np.array_equal(x, y) for x, y in zip(a[:120], b[:120], strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a[120:], b[120:], strict=True))
