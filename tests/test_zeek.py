"""Zeek logs: UIDs taken out as their 96 bits (nncodec/log/rewrites/zeekuid.py, log format 3), integers as
magnitude symbols plus low bits (nncodec/log/intcode.py) and tab-separated rows with number columns
(nncodec/log/formats/tsvlog.py, log mode 3). Exact round trips on generated Zeek logs and on everything that
only looks like them, damaged streams, and the modes being used where they should."""

from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import SHARED_DATA, damaged_payload_trials, make_uid, zeek_lines
from hypothesis import given, settings
from hypothesis import strategies as st

import nncodec
from nncodec.codecs.log import FORMAT_REWRITES, REWRITE_UIDS, TSV, LogCodec
from nncodec.log import intcode
from nncodec.log.formats import tsvlog
from nncodec.log.rewrites import zeekuid

# ---------------------------------------------------------------------------------------------
# UIDs


@given(st.integers(0, (1 << 96) - 1), st.sampled_from([b"C", b"F", b"Z"]))
def test_uid_tokens_parse_back_to_their_bits(bits, prefix):
    token = zeekuid.render_uid(prefix, bits)
    parsed = zeekuid.parse_uid(token)
    assert parsed is not None and zeekuid.render_uid(prefix, parsed) == token


def test_uid_layout_is_zeeks():
    """Zeek's own UID (low digit first, digits 0-9a-zA-Z): a 32-bit then a 64-bit number."""
    token = b"CIOuwB3kJLIhO8re94"
    bits = zeekuid.parse_uid(token)
    assert bits is not None and bits >> 64 < 1 << 32
    assert zeekuid.render_values(bits.to_bytes(12, "big")) == [token[1:]]


def test_uids_come_out_as_twelve_bytes_and_back():
    data = zeek_lines(300, seed=1)
    result = zeekuid.extract(data)
    assert result is not None
    text, marker, ops, values = result
    assert bytes([marker]) not in data and len(values) % zeekuid.VALUE_SIZE == 0
    assert len(values) // 12 >= 250 and len(text) < len(data) - 250 * 12
    assert zeekuid.restore(text, marker, ops, values) == data


@pytest.mark.parametrize(
    "token",
    [
        b"F1A2B3C4D5E6F7A8B9",  # hex: one letter case only
        b"ConnectionManager",  # a word, no digit (taken only when it occurs once)
        b"C" + b"z" * 17,  # no upper-case digit
        b"CzzzzzzZzzzzzzzzzzz",  # too long
    ],
)
def test_tokens_that_are_not_uids_stay(token):
    rng = random.Random(3)
    uids = [make_uid(rng) for _ in range(20)]
    data = b"\n".join(b"%s x %s" % (u, token) for u in uids)
    text, marker, ops, values = zeekuid.extract(data)
    assert text.count(token) == len(uids) and len(values) == 12 * len(uids)
    assert zeekuid.restore(text, marker, ops, values) == data


def test_no_rewrite_without_uids_or_without_a_free_marker():
    rng = random.Random(4)
    uids = b" ".join(make_uid(rng) for _ in range(20))
    assert zeekuid.extract(b"no uids here " * 50) is None
    word = b"Zzzzz1Zzzzzzzzzzz"  # the shape of a UID, but no two numbers in range
    assert zeekuid.CANDIDATE.fullmatch(word) and zeekuid.parse_uid(word) is None
    assert zeekuid.extract(uids + b" " + b" ".join([word] * 30)) is None  # mostly not UIDs
    assert zeekuid.extract(bytes(range(256)) + uids) is None  # every byte value used
    result = zeekuid.extract(bytes(range(1, 9)) + uids)  # the first markers taken: another one
    assert result is not None and result[1] not in range(1, 9)


def test_damaged_uid_streams_raise_value_error():
    text, marker, ops, values = zeekuid.extract(zeek_lines(50, seed=2))
    for bad in (
        (text, marker, ops[:-1], values),
        (text, marker, ops, values[:-12]),
        (text, marker, ops, values[:-1]),
        (text, marker, ops + b"\x00", values),
        (text, marker, b"\x05" + ops[1:], values),  # refers to no earlier UID
        (text + bytes([marker]) + b"1", marker, ops + b"\x01", values),  # marker without a letter
        (text, marker, b"\xff" * len(ops), values),
    ):
        with pytest.raises(ValueError):
            zeekuid.restore(*bad)


# ---------------------------------------------------------------------------------------------
# integers


@given(st.lists(st.integers(-(1 << 62) + 1, (1 << 62) - 1), max_size=300))
def test_integers_round_trip(values):
    symbols, raw = intcode.split_integers(np.array(values, dtype=np.int64))
    assert intcode.join_integers(symbols, raw, len(values)).tolist() == values


def test_integers_round_trip_across_chunks():
    rng = np.random.default_rng(5)
    count = intcode.CHUNK * 2 + 7
    values = rng.integers(-(1 << 40), 1 << 40, count) >> rng.integers(0, 40, count)
    symbols, raw = intcode.split_integers(values)
    assert (intcode.join_integers(symbols, raw, len(values)) == values).all()


def test_damaged_integer_streams_raise_value_error():
    symbols, raw = intcode.split_integers(np.array([5, -300, 1 << 40, 0, 2], dtype=np.int64))
    for bad_symbols, bad_raw, count in (
        (symbols, raw, 6),
        (symbols, raw[:-1], 5),
        (symbols, raw + b"\x00", 5),
        (symbols[:-1] + bytes([4 * 31 + 3]), raw, 5),  # a long class without its second byte
        (bytes([128]) + symbols[1:], raw, 5),  # minus zero
        (bytes([4 * 1 + 2]) + symbols[1:], raw, 5),  # one-bit number with top bits
    ):
        with pytest.raises(ValueError):
            intcode.join_integers(bad_symbols, bad_raw, count)


# ---------------------------------------------------------------------------------------------
# tab-separated rows


def tsv_round_trip(data: bytes) -> list[bytes] | None:
    coded = tsvlog.encode(data)
    if coded is not None:
        assert tsvlog.decode(coded, len(data)) == data
    return coded


def test_zeek_rows_round_trip_with_number_columns():
    data = zeek_lines(2000, seed=6)
    coded = tsv_round_trip(data)
    assert coded is not None
    # layout: ts (decimal, 6 digits) and the client port are number columns
    layout = tsvlog.decode_stream(coded[0], 1000, "layout")
    assert len(coded) == 2 + 2 * 2 and layout[1:4] == bytes([1, 6, tsvlog.DELTA])


@pytest.mark.parametrize(
    "odd",
    [
        b"1.5\tx\ty",  # another fraction width: stays text after "!"
        b"01\tx\ty",  # a leading zero
        b"\tx\ty",  # empty number cell
        b"!3\tx\ty",  # a cell that starts with the escape
        b"99999999999999999999.000000\tx\ty",  # too large
        b"#comment\twith\ttabs",
        b"a\tb",  # another tab count
        b"1521911720.000001\tx\ty\r",  # CR in the last cell
        b"\xff\xfe\t\x80\t\x00",  # not UTF-8
        b"",
    ],
)
def test_odd_lines_among_rows_come_back(odd):
    rows = [b"%d.%06d\tv%d\t%d" % (1000 + i, i * 37 % 1000000, i % 3, 5000 + 7 * i) for i in range(300)]
    for position in (0, 150, 300):
        data = b"\n".join([*rows[:position], odd, *rows[position:]])
        assert tsv_round_trip(data) is not None
        assert tsv_round_trip(data + b"\n") is not None


cells = st.one_of(
    st.integers(0, 10**12).map(lambda n: b"%d" % n),
    st.integers(0, 10**9).map(lambda n: b"%d.%03d" % divmod(n, 1000)),
    st.sampled_from([b"-", b"(empty)", b"", b"!", b"0", b"00", b"1.5", b"#x", b"\r"]),
    st.binary(max_size=6).filter(lambda b: b"\t" not in b and b"\n" not in b),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(cells, min_size=4, max_size=4), min_size=1, max_size=60), st.booleans())
def test_any_table_round_trips(rows, final_newline):
    data = b"\n".join(b"\t".join(row) for row in rows) + (b"\n" if final_newline else b"")
    tsv_round_trip(data)
    assert nncodec.decompress(nncodec.compress(data, codec="log")) == data


def test_log_codec_uses_uids_and_rows_on_zeek_logs():
    data = zeek_lines(3000, seed=7)
    payload = LogCodec().encode_block(data)
    assert payload[:4] == bytes([FORMAT_REWRITES, TSV, 1, REWRITE_UIDS])
    assert LogCodec().decode_block(payload, len(data)) == data
    assert len(nncodec.compress(data, codec="log")) < 0.8 * len(nncodec.compress(data, codec="raw"))


def test_damaged_tsv_payloads_are_corrupt_errors():
    data = zeek_lines(500, seed=8)
    payload = LogCodec().encode_block(data)
    damaged_payload_trials(LogCodec().decode_block, payload, len(data), trials=40, seed=9, skip=2)


@pytest.mark.parametrize("name", ["ssl.log", "analyzer.log"])
def test_real_zeek_logs_round_trip(name):
    path = SHARED_DATA / "logs" / "zeek_wrccdc" / name
    if not path.is_file():
        pytest.skip(f"{path} not present (../shared/data is not part of the repository)")
    data = b"".join(path.open("rb").readlines()[:3000])
    payload = LogCodec().encode_block(data)
    assert payload[:4] == bytes([FORMAT_REWRITES, TSV, 1, REWRITE_UIDS])
    assert LogCodec().decode_block(payload, len(data)) == data
