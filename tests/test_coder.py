import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nncodec import coder
from nncodec.errors import CorruptError


def _sample(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    u = rng.random(len(probs))[:, None]
    return np.minimum((cdf < u).sum(axis=1), probs.shape[1] - 1).astype(np.int32)


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 8), st.integers(2, 300)),
        elements=st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
    ),
    st.sampled_from([16, 20, 24]),
)
def test_quantized_rows_have_fixed_total_and_floor_one(probs, total_bits):
    if probs.shape[1] * 2 > 1 << total_bits:
        return
    freqs = coder.quantize_probabilities(probs, total_bits)
    assert freqs.dtype == np.int64
    assert freqs.min() >= 1
    assert np.all(freqs.sum(axis=1) == 1 << total_bits)


def test_quantizer_is_row_wise_so_batch_shape_does_not_matter():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(256, 0.2), size=64)
    batch = coder.quantize_probabilities(probs)
    one_by_one = np.stack([coder.quantize_probabilities(row) for row in probs])
    reversed_batch = coder.quantize_probabilities(probs[::-1].copy())[::-1]
    assert np.array_equal(batch, one_by_one)
    assert np.array_equal(batch, reversed_batch)


def test_quantizer_rejects_bad_input():
    with pytest.raises(ValueError):
        coder.quantize_probabilities(np.array([[0.5, np.nan]]))
    with pytest.raises(ValueError):
        coder.quantize_probabilities(np.array([[0.5, -0.1]]))
    with pytest.raises(ValueError):
        coder.quantize_probabilities(np.ones((1, 1)))
    with pytest.raises(ValueError):
        coder.quantize_probabilities(np.ones((1, 40000)), total_bits=16)


def test_all_zero_row_becomes_uniform():
    freqs = coder.quantize_probabilities(np.zeros((1, 4)), total_bits=16)
    assert freqs.tolist() == [[16384] * 4]


@pytest.mark.parametrize("alphabet", [2, 3, 256, 4096, 65536])
def test_round_trip_across_alphabet_sizes(alphabet):
    rng = np.random.default_rng(alphabet)
    count = 300 if alphabet == 65536 else 3000
    probs = rng.dirichlet(np.full(alphabet, 0.5), size=count)
    symbols = _sample(probs, rng)
    freqs = coder.quantize_probabilities(probs)
    data = coder.encode_symbols(symbols, freqs)
    assert np.array_equal(coder.decode_symbols(data, freqs), symbols)


def test_step_by_step_decoding_matches_whole_array_encoding():
    rng = np.random.default_rng(7)
    probs = rng.dirichlet(np.full(16, 0.3), size=500)
    symbols = _sample(probs, rng)
    freqs = coder.quantize_probabilities(probs)
    data = coder.encode_symbols(symbols, freqs)
    decoder = coder.SymbolDecoder(data)
    decoded = np.concatenate([decoder.decode(freqs[i : i + 7]) for i in range(0, 500, 7)])
    assert np.array_equal(decoded, symbols)


def test_overhead_versus_ideal_is_below_a_tenth_of_a_percent():
    """Known probabilities (skewed, 256-way, like a byte or pixel model) -> cost vs -sum log2 p."""
    rng = np.random.default_rng(2024)
    probs = rng.dirichlet(np.full(256, 0.05), size=200_000)
    symbols = _sample(probs, rng)
    ideal = coder.ideal_bits(symbols, probs)
    actual = 8 * len(coder.encode_symbols(symbols, coder.quantize_probabilities(probs)))
    overhead = actual / ideal - 1
    print(f"ideal {ideal:.0f} bits, coded {actual} bits, overhead {overhead:.5%}")
    assert overhead < 0.001


def test_encoder_validates_symbols_and_rows():
    freqs = np.ones((2, 4))
    with pytest.raises(ValueError):
        coder.encode_symbols(np.array([0, 4]), freqs)
    with pytest.raises(ValueError):
        coder.encode_symbols(np.array([0]), freqs)
    with pytest.raises(ValueError):
        coder.encode_symbols(np.array([0, 1]), np.zeros((2, 4)))


def test_empty_symbol_array():
    data = coder.encode_symbols(np.zeros(0, dtype=np.int32), np.ones((0, 4)))
    assert coder.decode_symbols(data, np.ones((0, 4))).size == 0


def test_stream_of_odd_length_is_corrupt():
    with pytest.raises(CorruptError):
        coder.SymbolDecoder(b"abc")
