import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nncodec.core.errors import CorruptError
from nncodec.entropy import rangecoder


def _sample(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    u = rng.random(len(probs))[:, None]
    return np.minimum((cdf < u).sum(axis=1), probs.shape[1] - 1).astype(np.int32)


def _frequencies(probs: np.ndarray) -> np.ndarray:
    """Integer frequency rows (each entry >= 1, no common total: the coder normalizes integer rows
    exactly), the way the models build theirs."""
    return np.floor(probs / probs.max(axis=1, keepdims=True) * (1 << 20)).astype(np.int64) + 1


def _encode(symbols: np.ndarray, freqs: np.ndarray) -> bytes:
    encoder = rangecoder.SymbolEncoder()
    encoder.encode(symbols, freqs)
    return encoder.finish()


def _decode(data: bytes, freqs: np.ndarray) -> np.ndarray:
    return rangecoder.SymbolDecoder(data).decode(freqs)


def _ideal_bits(symbols: np.ndarray, freqs: np.ndarray) -> float:
    """-sum(log2 p[symbol]) of the normalized rows: what an ideal entropy coder would pay."""
    p = freqs / freqs.sum(axis=1, keepdims=True)
    return float(-np.log2(p[np.arange(len(symbols)), symbols]).sum())


def _coded_sample(seed: int, alphabet: int, count: int, alpha: float) -> tuple[np.ndarray, np.ndarray, bytes]:
    """(symbols, frequency rows, coded bytes) of symbols drawn from Dirichlet(alpha) rows."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(alphabet, alpha), size=count)
    symbols = _sample(probs, rng)
    freqs = _frequencies(probs)
    return symbols, freqs, _encode(symbols, freqs)


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.int64, st.tuples(st.integers(1, 40), st.integers(2, 300)), elements=st.integers(1, 1 << 24)),
    st.integers(0, 2**32 - 1),
)
def test_round_trip_with_any_integer_rows(freqs, seed):
    rng = np.random.default_rng(seed)
    symbols = _sample(freqs.astype(np.float64), rng)
    assert np.array_equal(_decode(_encode(symbols, freqs), freqs), symbols)


@pytest.mark.parametrize("alphabet", [2, 3, 256, 4096, 65536])
def test_round_trip_across_alphabet_sizes(alphabet):
    symbols, freqs, data = _coded_sample(alphabet, alphabet, 300 if alphabet == 65536 else 3000, 0.5)
    assert np.array_equal(_decode(data, freqs), symbols)


def test_step_by_step_decoding_matches_whole_array_encoding():
    symbols, freqs, data = _coded_sample(7, 16, 500, 0.3)
    decoder = rangecoder.SymbolDecoder(data)
    decoded = np.concatenate([decoder.decode(freqs[i : i + 7]) for i in range(0, 500, 7)])
    assert np.array_equal(decoded, symbols)


def test_overhead_versus_ideal_is_below_a_tenth_of_a_percent():
    """Known probabilities (skewed, 256-way, like a byte or pixel model) -> cost vs -sum log2 p."""
    symbols, freqs, data = _coded_sample(2024, 256, 200_000, 0.05)
    ideal = _ideal_bits(symbols, freqs)
    actual = 8 * len(data)
    overhead = actual / ideal - 1
    print(f"ideal {ideal:.0f} bits, coded {actual} bits, overhead {overhead:.5%}")
    assert overhead < 0.001


def test_encoder_validates_symbols_and_rows():
    freqs = np.ones((2, 4))
    with pytest.raises(ValueError):
        _encode(np.array([0, 4]), freqs)
    with pytest.raises(ValueError):
        _encode(np.array([0]), freqs)
    with pytest.raises(ValueError):
        _encode(np.array([0, 1]), np.zeros((2, 4)))


def test_empty_symbol_array():
    data = _encode(np.zeros(0, dtype=np.int32), np.ones((0, 4)))
    assert _decode(data, np.ones((0, 4))).size == 0


def test_stream_of_odd_length_is_corrupt():
    with pytest.raises(CorruptError):
        rangecoder.SymbolDecoder(b"abc")
