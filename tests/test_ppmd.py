"""The compiled PPMd coder (nncodec/entropy/_ppmd.c over the LZMA SDK's PPMd7): the same bytes as pyppmd,
which wrote the PPMd streams of earlier versions; exact round trips; damage is a clean error; and no
memory kept per call, so coding many log blocks does not grow the heap."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

import pyppmd
import pytest
from conftest import access_lines, log_lines
from hypothesis import given, settings
from hypothesis import strategies as st

from nncodec.core import engine
from nncodec.core.errors import CorruptError, TruncatedError
from nncodec.entropy import backends

compiled = backends.compiled_ppmd
pytestmark = pytest.mark.skipif(
    compiled is None, reason="nncodec.entropy._ppmd was not built (no C compiler)"
)

ORDERS = (2, *backends.PPMD_ORDERS, 64)
text_like = st.one_of(
    st.binary(max_size=3000),
    st.lists(st.sampled_from([b"GET /", b"200 ", b"user=", b"\n", b"\r\n", b"\x00", b"\xff", b"0", b"42"]))
    .map(b"".join),
)


def pyppmd_encode(data: bytes, order: int, memory: int) -> bytes:
    encoder = pyppmd.Ppmd7Encoder(order, memory)
    return encoder.encode(data) + encoder.flush(endmark=False)


@settings(max_examples=300, deadline=None)
@given(data=text_like, order=st.sampled_from(ORDERS), small_memory=st.booleans())
def test_same_bytes_as_pyppmd_and_round_trip(data: bytes, order: int, small_memory: bool) -> None:
    memory = 1 << 11 if small_memory else backends.ppmd_memory(len(data))
    coded = compiled.encode(data, order, memory)
    assert coded == pyppmd_encode(data, order, memory)
    assert compiled.decode(coded, order, memory, len(data)) == data


def test_long_inputs_match_pyppmd() -> None:
    data = log_lines(3000) + access_lines(2000) + bytes(5000) + bytes(range(256)) * 40
    for order in backends.PPMD_ORDERS:
        memory = backends.ppmd_memory(len(data))
        coded = compiled.encode(data, order, memory)
        assert coded == pyppmd_encode(data, order, memory), order
        assert compiled.decode(coded, order, memory, len(data)) == data


def test_streams_are_the_same_with_pyppmd_as_fallback(monkeypatch) -> None:
    """``encode_stream``/``decode_stream`` give the same result through either PPMd build."""
    streams = [log_lines(400, seed=s) for s in range(3)] + [b"x", b"ab" * 40, access_lines(300)]
    compiled_streams = [backends.encode_stream(s) for s in streams]
    monkeypatch.setattr(backends, "compiled_ppmd", None)
    assert [backends.encode_stream(s) for s in streams] == compiled_streams
    for stream, coded in zip(streams, compiled_streams, strict=True):
        assert backends.decode_stream(coded, len(stream), "test") == stream


@settings(max_examples=200, deadline=None)
@given(garbage=st.binary(max_size=64), order=st.sampled_from(ORDERS), size=st.integers(0, 5000))
def test_damaged_streams_give_a_clean_error_or_garbage_of_the_asked_size(
    garbage: bytes, order: int, size: int
) -> None:
    try:
        out = compiled.decode(garbage, order, backends.ppmd_memory(size), size)
    except ValueError:
        return
    assert len(out) == size


def test_a_cut_stream_reads_zeros_and_stays_in_bounds() -> None:
    data = log_lines(500)
    coded = backends.encode_stream(data, ("ppmd-5",))
    for cut in (3, 5, len(coded) // 2, len(coded) - 1):
        try:
            out = backends.decode_stream(coded[:cut], len(data), "test")
        except (CorruptError, TruncatedError):
            continue
        assert len(out) == len(data)  # the last flushed bytes may not matter: out == data is fine
        assert cut != len(coded) // 2 or out != data


@pytest.mark.parametrize(
    "args",
    [(b"x", 1, 1 << 20), (b"x", 65, 1 << 20), (b"x", 5, 1000)],
    ids=["order too low", "order too high", "memory too small"],
)
def test_bad_parameters_are_value_errors(args) -> None:
    with pytest.raises(ValueError):
        compiled.encode(*args)
    with pytest.raises(ValueError):
        compiled.decode(args[0], args[1], args[2], 1)


def _heap_in_use() -> int | None:
    """Bytes malloc has handed out and not had back (glibc's mallinfo2), or None elsewhere."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None

    fields = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()

    class MallInfo2(ctypes.Structure):
        _fields_ = [(field, ctypes.c_size_t) for field in fields]

    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


def test_coding_many_log_blocks_does_not_grow_the_heap() -> None:
    """pyppmd 1.3.1 kept ~19 KiB per encoder and every buffer it encoded: this grew by about 1.3 MB
    per block here, and by 2.7 MB per 16 MiB block on long streams."""
    if _heap_in_use() is None:
        pytest.skip("needs glibc's mallinfo2 to read the heap in use")
    block = (log_lines(6000) + access_lines(4000)) * 2
    codec = engine.choose_codec("log", block)
    for _ in range(3):  # warm-up: caches, pools and lazily built tables settle
        engine._encode_block(codec, block)
    gc.collect()
    before = _heap_in_use()
    for _ in range(8):
        engine._encode_block(codec, block)
    gc.collect()
    growth = _heap_in_use() - before
    assert growth < 256 << 10, f"heap grew by {growth:,} bytes over 8 blocks"


@pytest.mark.parametrize("order", backends.PPMD8_ORDERS)
def test_ppmd_variant_i_streams_round_trip(order: int) -> None:
    """Tag 4 (PPMd variant I, pyppmd's Ppmd8 with the restart method) decodes to what it coded, and
    the classical codec uses it where it is smallest (code: the jquery.js/elf.h case of issue 19)."""
    lines = (b"function f%d(a, b) { return a.x%d + b.y%d; }\n" % (i, i % 17, i % 5) for i in range(3000))
    data = b"".join(lines)
    coded = backends._encode_with(data, ("ppmd8", order))
    assert coded[0] == backends.PPMD8 and coded[1] == order
    assert backends.decode_stream(coded, len(data), "test") == data
    assert backends.decode_stream(backends.encode_stream(data, ("ppmd8",)), len(data), "test") == data


@settings(max_examples=200, deadline=None)
@given(
    garbage=st.binary(max_size=64), order=st.sampled_from(backends.PPMD8_ORDERS), size=st.integers(0, 5000)
)
def test_damaged_variant_i_streams_give_a_clean_error_or_bytes_of_the_asked_size(
    garbage: bytes, order: int, size: int
) -> None:
    coded = bytes([backends.PPMD8, order]) + backends.encode_varint(size) + garbage
    try:
        out = backends.decode_stream(coded, 5000, "test")
    except (CorruptError, TruncatedError):
        return
    assert len(out) == size


compiled8 = backends.compiled_ppmd8
needs_compiled8 = pytest.mark.skipif(compiled8 is None, reason="nncodec.entropy._ppmd8 was not built")
ORDERS8 = (2, *backends.PPMD8_ORDERS)


def pyppmd8_encode(data: bytes, order: int, memory: int) -> bytes:
    encoder = pyppmd.Ppmd8Encoder(order, memory, pyppmd.PPMD8_RESTORE_METHOD_RESTART)
    return encoder.encode(data) + encoder.flush(endmark=False)


def pyppmd8_decode(coded: bytes, order: int, memory: int, size: int) -> bytes:
    decoder = pyppmd.Ppmd8Decoder(order, memory, pyppmd.PPMD8_RESTORE_METHOD_RESTART)
    return backends._pyppmd_decode(decoder, coded, size)


@needs_compiled8
@settings(max_examples=300, deadline=None)
@given(data=text_like, order=st.sampled_from(ORDERS8), small_memory=st.booleans())
def test_variant_i_same_bytes_as_pyppmd_and_round_trip(data: bytes, order: int, small_memory: bool) -> None:
    """The compiled variant I writes pyppmd's bytes (which wrote tag-4 streams before), decodes them,
    and pyppmd decodes what it writes."""
    memory = 1 << 11 if small_memory else backends.ppmd_memory(len(data))
    coded = compiled8.encode(data, order, memory)
    assert coded == pyppmd8_encode(data, order, memory)
    assert compiled8.decode(coded, order, memory, len(data)) == data
    assert pyppmd8_decode(coded, order, memory, len(data)) == data


@needs_compiled8
def test_variant_i_long_inputs_and_model_restarts() -> None:
    """Long inputs, with memory small enough that the model restarts many times. Where pyppmd's own
    stream does not decode (its output buffer loses bytes at a 32 KB boundary now and then: the
    encoder's decode check caught that), the compiled stream still decodes with pyppmd's decoder."""
    data = log_lines(3000) + access_lines(2000) + bytes(5000) + bytes(range(256)) * 40
    for order in backends.PPMD8_ORDERS:
        for memory in (1 << 11, 1 << 16, backends.ppmd_memory(len(data))):
            coded = compiled8.encode(data, order, memory)
            assert compiled8.decode(coded, order, memory, len(data)) == data
            assert pyppmd8_decode(coded, order, memory, len(data)) == data
            theirs = pyppmd8_encode(data, order, memory)
            try:
                theirs_decode = pyppmd8_decode(theirs, order, memory, len(data)) == data
            except backends._PpmdFailure:
                theirs_decode = False
            assert coded == theirs or not theirs_decode, (order, memory)


@needs_compiled8
def test_variant_i_streams_are_the_same_with_pyppmd_as_fallback(monkeypatch) -> None:
    streams = [log_lines(400, seed=s) for s in range(3)] + [b"x" * 100, b"ab" * 40, access_lines(300)]
    compiled_streams = [backends.encode_stream(s, ("ppmd8",)) for s in streams]
    monkeypatch.setattr(backends, "compiled_ppmd8", None)
    assert [backends.encode_stream(s, ("ppmd8",)) for s in streams] == compiled_streams
    for stream, coded in zip(streams, compiled_streams, strict=True):
        assert backends.decode_stream(coded, len(stream), "test") == stream


@needs_compiled8
@settings(max_examples=200, deadline=None)
@given(garbage=st.binary(max_size=64), order=st.sampled_from(ORDERS8), size=st.integers(0, 5000))
def test_variant_i_compiled_damage_is_a_clean_error_or_garbage_of_the_asked_size(
    garbage: bytes, order: int, size: int
) -> None:
    try:
        out = compiled8.decode(garbage, order, backends.ppmd_memory(size), size)
    except ValueError:
        return
    assert len(out) == size


@needs_compiled8
@pytest.mark.parametrize(
    "args",
    [(b"x", 1, 1 << 20), (b"x", 17, 1 << 20), (b"x", 5, 1000)],
    ids=["order too low", "order too high", "memory too small"],
)
def test_variant_i_bad_parameters_are_value_errors(args) -> None:
    with pytest.raises(ValueError):
        compiled8.encode(*args)
    with pytest.raises(ValueError):
        compiled8.decode(args[0], args[1], args[2], 1)
