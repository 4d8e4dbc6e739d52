"""The log codec: exact round trips on edge cases, real logs, odd inputs, damaged payloads."""

from __future__ import annotations

import io
import random
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nncodec
from nncodec.codecs.base import BlockDeclined
from nncodec.codecs.log import COLUMNS, FORMAT_REWRITES, REWRITE_SIZES, REWRITE_UIDS, LogCodec
from nncodec.core import engine
from nncodec.core.errors import NncodecError
from nncodec.entropy import backends
from nncodec.log import templates
from tests.conftest import damaged_payload_trials, log_lines

SHARED_LOGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "logs"


def log_roundtrip(data: bytes) -> bytes:
    """Code ``data`` with the log codec itself (no zstd fallback) and decode it."""
    codec = LogCodec()
    payload = codec.encode_block(data)
    assert codec.decode_block(payload, len(data)) == data
    return payload


def test_transform_round_trip_keeps_every_byte():
    cases = [
        b"",
        b"x",
        b"\n",
        b"\n\n\n",
        b"no final newline",
        b"a 1\r\nb 2\r\n",
        b"mixed 1\r\nendings 2\nhere 3\r\n",
        b"\xff\xfe invalid utf-8 \x80 42\n\x00\x00 nul 7\n",
        b"007 leading zeros 0 00 1\n12 x\n0 y\n",
        b"99999999999999999999 too long for int64\n1 short\n",
        b"-5 negative 3 -0\n",
        b"10.47.1.100 v1.9.4 1.2.3.4.5 0.000870 1521911720.865716 00.5 1.50 300.1.1.1\n2.25 1.2.3.4\n",
        b"x" * 200_000 + b" 1\n" + b"9" * 50 + b"\n",
        log_lines(300),
    ]
    for data in cases:
        table = templates.build_table(data)
        streams = templates.table_streams(table)
        back = templates.table_from_streams(streams, len(data))
        assert templates.render_table(back) == data
        log_roundtrip(data)


TOKENS = [b"a", b"1", b"07", b" ", b"\n", b"\r", b"x9", b"_", b"\xff", b":", b"00"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=60))
def test_round_trip_of_token_soup(pieces):
    data = b"".join(pieces)
    log_roundtrip(data)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=3000))
def test_round_trip_of_arbitrary_bytes(data):
    log_roundtrip(data)


def test_varints_round_trip():
    values = np.array([0, 1, 127, 128, 300, 2**63 - 1, 2**64 - 1], dtype=np.uint64)
    packed = templates.pack_varints(values)
    back, used = templates.unpack_varints(packed, len(values))
    assert used == len(packed) and back.tolist() == values.tolist()
    signed = np.array([0, -1, 1, -(2**62), 2**62], dtype=np.int64)
    assert templates.unzigzag(templates.zigzag(signed)).tolist() == signed.tolist()


def test_numbers_become_columns_and_header_columns_are_shared():
    lines = [b"2024 %d %s job %d\n" % (10 + i, [b"start", b"stop"][i % 2], i // 3) for i in range(30)]
    table = templates.build_table(b"".join(lines))
    assert len(table.templates) == 2  # too frequent to be merged
    kinds = [(c.kind, c.width, len(c.numbers) if c.numbers is not None else 0) for c in table.columns]
    # year and day are shared by both templates (same literal prefix), and so is the job number:
    # the pieces before it differ in words only (same shape with letters masked)
    assert kinds == [(templates.FIXED_WIDTH, 4, 30), (templates.FIXED_WIDTH, 2, 30), (2, 1, 30)]
    other = templates.build_table(b"".join(lines) + b"2024 40 stop, job 7\n" * 10)
    assert len(other.columns) == 4  # "stop, job" has another shape: a column of its own


def test_addresses_and_decimals_become_one_variable_each():
    data = b"from 10.0.0.1 at 17.250 v1.9.4\nfrom 10.0.0.2 at 18.125 v1.9.4\nfrom 10.0.0.1 at 19.000 v1.9.4\n"
    table = templates.build_table(data)
    assert len(table.templates) == 1 and table.templates[0][0] == b"from "
    kinds = [column.kind for column in table.columns]
    assert templates.DECIMAL in kinds
    assert len(table.columns) == 2 + 3  # address, decimal, and the version's three numbers


def test_big_number_columns_get_streams_of_their_own():
    data = log_lines(templates.BIG_COLUMN + 100)
    payload = log_roundtrip(data)
    assert payload[:3] == bytes([FORMAT_REWRITES, COLUMNS, 0])  # format 4, no rewrites
    count = payload[3]  # the stream count (a one-byte varint here)
    assert count > len(templates.STREAM_NAMES)
    for wrong in (count - 1, count + 1):
        with pytest.raises(NncodecError):
            LogCodec().decode_block(payload[:3] + bytes([wrong]) + payload[4:], len(data))


def test_blocks_of_very_many_lines_go_to_zstd():
    data = b"1\n" * templates.MAX_LINES
    with pytest.raises(BlockDeclined):
        LogCodec().encode_block(data)
    packed = nncodec.compress(data, codec="log")
    assert nncodec.decompress(packed) == data


def test_rare_templates_that_differ_in_words_are_merged():
    names = [b"alice", b"bob", b"carol", b"dave", b"erin"]
    data = b"".join(b"user %s logged in from 10.0.0.%d\n" % (name, i) for i, name in enumerate(names))
    data += b"disk full\n" * 20 + b"disk empty\n" * 20  # frequent templates stay as they are
    table = templates.build_table(data)
    assert (b"user ", b" logged in from ", b"") in table.templates
    assert (b"disk full",) in table.templates and (b"disk empty",) in table.templates
    assert len(table.templates) == 3
    assert templates.render_table(table) == data


def test_log_codec_beats_zstd_on_a_structured_log():
    data = log_lines(3000)
    payload = log_roundtrip(data)
    assert len(payload) < 0.8 * len(engine.RawCodec().encode_block(data))


@pytest.mark.parametrize("name", ["mixed", "unmatched", "binary"])
def test_odd_inputs_round_trip_and_stay_near_zstd(name):
    rng = random.Random(5)
    if name == "mixed":  # two systems interleaved
        a = log_lines(1500, seed=1).splitlines(keepends=True)
        b = [f'{{"ts": {1.7e9 + i:.0f}, "id": {rng.randrange(10**6)}}}\r\n'.encode() for i in range(1500)]
        data = b"".join(x for pair in zip(a, b, strict=True) for x in pair)
    elif name == "unmatched":  # 99% of lines have their own template
        words = [bytes(rng.choices(b"abcdefghij", k=rng.randint(2, 9))) for _ in range(5000)]
        lines = [b" ".join(rng.choices(words, k=8)) for _ in range(3000)]
        data = b"\n".join(lines) + b"\n"
    else:
        data = rng.randbytes(200_000)
    packed = nncodec.compress(data, codec="log")
    assert nncodec.decompress(packed) == data
    zstd_size = len(nncodec.compress(data, codec="raw"))
    assert len(packed) <= zstd_size + 64


def test_threads_do_not_change_the_output(monkeypatch):
    """At -T2 a log input of several blocks is coded by worker processes (the parent codes no
    block: its ``_encode_block`` is broken here, the workers import their own); the bytes are those
    of -T1."""
    data = log_lines(4000)
    one = nncodec.compress(data, codec="log", threads=1, block_size=50_000)

    def not_here(*args, **kwargs):
        raise AssertionError("a block was coded in the parent process")

    monkeypatch.setattr(engine, "_encode_block", not_here)
    two = nncodec.compress(data, codec="log", threads=2, block_size=50_000)
    assert one == two
    assert nncodec.decompress(one, threads=2) == data


def test_block_processes_only_where_they_can_help():
    from nncodec.codecs.raw import RawCodec

    for content_size in (200_000, None):  # None: a stream, which may be long
        pool = engine._block_processes(LogCodec(), 2, 50_000, content_size)
        assert pool is not None
        pool.shutdown()
    assert engine._block_processes(LogCodec(), 2, 50_000, 50_000) is None  # one block
    assert engine._block_processes(LogCodec(), 1, 50_000, 200_000) is None
    assert engine._block_processes(RawCodec(), 2, 50_000, 200_000) is None  # zstd drops the GIL


def test_a_stream_of_one_block_is_coded_without_worker_processes(monkeypatch):
    """A stream of unknown size (stdin) whose first block is all of it stays in this process; a
    longer one gets the workers."""
    data = log_lines(3000)
    asked = []
    real = engine._block_processes

    def recording(codec, threads, block_size, content_size):
        asked.append(content_size)
        return real(codec, threads, block_size, content_size)

    class Pipe(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:  # as sys.stdin.buffer: no other negative size
            if size is not None and size < -1:
                raise ValueError("read length must be non-negative or -1")
            return super().read(size)

    monkeypatch.setattr(engine, "_block_processes", recording)
    engine.compress(data, codec="log", threads=2)
    for block_size in (len(data), len(data) // 2, 16 << 10):  # the last below the sniffed sample
        out = io.BytesIO()
        engine.compress_stream(Pipe(data), out, codec="log", threads=2, block_size=block_size)
        assert nncodec.decompress(out.getvalue()) == data
    assert asked == [len(data), len(data), None, None]  # the file, the one-block stream, the longer ones


def test_damaged_log_payloads_fail_cleanly():
    data = log_lines(500)
    payload = LogCodec().encode_block(data)
    decode = LogCodec().decode_block
    options = dict(trials=400, seed=3, changes=(1, 4), truncate_every=3)
    failures = damaged_payload_trials(decode, payload, len(data), **options)
    assert failures > 300


def test_backends_reject_damage_and_oversize():
    data = log_lines(200)
    for name in ("ppmd", "xz", "zstd"):
        coded = backends.encode_stream(data, (name,))
        assert backends.decode_stream(coded, len(data), "t") == data
        with pytest.raises(NncodecError):
            backends.decode_stream(coded, len(data) - 1, "t")
        try:  # PPMd cannot always tell a cut stream; it then decodes to other bytes (the CRC says so)
            assert backends.decode_stream(coded[: len(coded) // 2], len(data), "t") != data
        except NncodecError:
            pass
    with pytest.raises(NncodecError):
        backends.decode_stream(b"\x09abc", 10, "t")


def test_quick_xz_searches_less_deep_on_long_streams_and_decodes_as_xz():
    data = log_lines(4000) * 8  # repeats far apart: the deep search finds them, the quick one most
    assert len(data) > backends.XZ_QUICK_MIN
    quick = backends.encode_stream(data, ("xz-quick",))
    full = backends.encode_stream(data, ("xz",))
    assert quick[0] == full[0] == backends.XZ and quick != full  # another search, the same format
    assert backends.decode_stream(quick, len(data), "t") == data
    short = data[: backends.XZ_QUICK_MIN]
    assert backends.encode_stream(short, ("xz-quick",)) == backends.encode_stream(short, ("xz",))


def test_a_log_frame_is_chosen_for_logs_and_reports_its_codec():
    data = log_lines(2000)
    out = io.BytesIO()
    stats = engine.compress_stream(io.BytesIO(data), out, content_size=len(data))
    assert stats.codec_name == "log" and stats.block_codecs["log"] == 1
    assert nncodec.decompress(out.getvalue()) == data
    assert zlib.crc32(nncodec.decompress(out.getvalue())) == zlib.crc32(data)


def _shared_logs() -> list[Path]:
    if not SHARED_LOGS.is_dir():
        return []
    return sorted(p for p in SHARED_LOGS.rglob("*") if p.is_file() and not p.name.startswith("LICENSE"))


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_LOGS.is_dir(), reason="../shared/data/logs not present")
def test_every_shared_log_round_trips():
    """Every file (the first 1.5 MB of larger ones, for CI time; NNCODEC_TEST_FULL_LOGS=1 for all)."""
    import os

    limit = None if os.environ.get("NNCODEC_TEST_FULL_LOGS") else 1_500_000
    for path in _shared_logs():
        data = path.read_bytes()[:limit]
        packed = nncodec.compress(data, codec="log", threads=2)
        assert nncodec.decompress(packed, threads=1) == data, path.name
        assert len(packed) <= len(nncodec.compress(data, codec="raw")) + 64, path.name


# ---------------------------------------------------------------------------------------------
# derived text: human-readable sizes (nncodec/log/rewrites/sizes.py)


def test_truncated_sizes_match_what_proxifier_prints():
    from nncodec.log.rewrites.sizes import truncated_3_digits

    # (bytes, unit power, as printed in loghub's Proxifier.log)
    for count, power, printed in [
        (1187, 1, b"1.15"), (4199, 1, b"4.10"), (34151, 1, b"33.3"), (15872, 1, b"15.5"),
        (50768, 1, b"49.5"), (1044099, 1, b"1019"), (2820740, 2, b"2.68"), (21600955, 2, b"20.5"),
    ]:  # fmt: skip
        assert truncated_3_digits(count, power) == printed


def _proxifier_like(lines: int, seed: int) -> bytes:
    from nncodec.log.rewrites.sizes import truncated_3_digits

    rng = random.Random(seed)
    out = []
    for i in range(lines):
        sent, received = rng.randrange(1 << rng.randrange(8, 28)), rng.randrange(1 << rng.randrange(8, 24))
        parts = []
        for count in (sent, received):
            if count < 1024:
                parts.append(b"%d bytes" % count)
            else:
                power = 1 if count < 1 << 20 else 2
                size = truncated_3_digits(count, power)
                if rng.random() < 0.05:  # another program's rounding: must survive as it is
                    size = b"%.2f" % (count / 1024**power)
                parts.append(b"%d bytes (%s %sB)" % (count, size, b"KM"[power - 1 : power]))
        out.append(b"[10.30 16:%02d:%02d] chrome.exe - host%d:80 close, %s sent, %s received" % (
            i // 60 % 60, i % 60, rng.randrange(9), parts[0], parts[1]))  # fmt: skip
    return b"\n".join(out) + b"\n"


def test_derived_sizes_are_dropped_and_recomputed():
    from nncodec.log.rewrites.sizes import expand_sizes, reduce_sizes

    data = _proxifier_like(3000, seed=1)
    reduced, formula = reduce_sizes(data)
    assert formula == 1 and len(reduced) < len(data) - 3000
    assert expand_sizes(reduced, formula) == data
    payload = log_roundtrip(data)
    assert payload[0] == FORMAT_REWRITES and payload[2:5] == bytes([1, REWRITE_SIZES, 1])  # formula 1
    plain = LogCodec()._columns_payload(data)  # without the rewrite
    assert len(payload) < len(plain)


def test_no_rewrite_where_the_reduced_form_occurs_by_itself():
    from nncodec.log.rewrites.sizes import reduce_sizes

    data = _proxifier_like(200, seed=2) + b"then 5000 bytes (KB) literally\n"
    assert reduce_sizes(data) == (data, 0)
    payload = log_roundtrip(data)
    assert payload[0] == FORMAT_REWRITES and payload[2] == 0  # no rewrite listed


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"1187 bytes (1.15 KB)",
                b"1187 bytes (KB)",
                b" bytes (",
                b"9",
                b"KB)",
                b"x",
                b"\n",
                b".",
                b"1187 bytes (1.16 KB)",
                b"2820740 bytes (2.68 MB)",
            ]
        ),
        max_size=40,
    )
)
def test_size_rewrite_round_trips_any_mixture(pieces):
    from nncodec.log.rewrites.sizes import expand_sizes, reduce_sizes

    data = b"".join(pieces)
    reduced, formula = reduce_sizes(data)
    assert expand_sizes(reduced, formula) == data
    log_roundtrip(data)


SIZE_PIECES = [b"1187 bytes (1.15 KB)", b"1187 bytes (KB)", b"7", b"a", b".", b"\n", b" "]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(SIZE_PIECES), max_size=30))
def test_size_patterns_run_line_by_line_as_on_the_whole_block(pieces):
    from nncodec.log.rewrites.sizes import HUMAN_SIZE, REDUCED_SIZE, _sub_lines

    data = b"".join(pieces)
    for pattern in (HUMAN_SIZE, REDUCED_SIZE):
        assert _sub_lines(pattern, lambda m: b"<" + m.group(1) + b">", data.split(b"\n")) == pattern.sub(
            lambda m: b"<" + m.group(1) + b">", data
        )


def test_damaged_rewrite_byte_is_a_clean_error():
    data = _proxifier_like(300, seed=3)
    original = LogCodec().encode_block(data)
    # the rewrite count, the rewrite's id, its formula
    for index, values in ((2, (0, 2, 9, 255)), (3, (0, 3, 255)), (4, (0, 7, 255))):
        for value in values:
            payload = bytearray(original)
            payload[index] = value
            with pytest.raises(NncodecError):
                LogCodec().decode_block(bytes(payload), len(data))


def test_rewrites_are_undone_in_reverse_order_and_old_formats_read_alike():
    import random

    from nncodec.log.rewrites import zeekuid

    rng = random.Random(5)
    uids = [zeekuid.render_uid(b"C", rng.getrandbits(96)) for _ in range(60)]
    data = b"".join(b"conn %s sent %d bytes (%s KB)\n" % (rng.choice(uids), n, b"%d.00" % (n // 1024))
                    for n in (1024 * rng.randrange(1, 99) for _ in range(300)))  # fmt: skip
    payload = LogCodec().encode_block(data)
    assert payload[0] == FORMAT_REWRITES and payload[2] == 2  # both rewrites listed, in the order used
    assert payload[3:5] == bytes([REWRITE_SIZES, 1]) and payload[5] == REWRITE_UIDS
    assert LogCodec().decode_block(payload, len(data)) == data
    # a format-1 payload is format 4 with no rewrites
    plain = LogCodec()._columns_payload(b"a 1\nb 2\n")
    assert LogCodec().decode_block(bytes([1]) + plain, 8) == b"a 1\nb 2\n"
    assert LogCodec().decode_block(bytes([FORMAT_REWRITES, plain[0], 0]) + plain[1:], 8) == b"a 1\nb 2\n"
    with pytest.raises(NncodecError):  # more rewrites listed than a writer ever uses
        LogCodec().decode_block(bytes([FORMAT_REWRITES, plain[0], 200]) + plain[1:], 8)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 3), max_size=12), st.booleans()), max_size=8))
def test_columns_are_rebuilt_in_one_pass_as_one_by_one(columns):
    sizes = np.array([len(values) for values, _ in columns], dtype=np.int64)
    flat = np.array([v for values, _ in columns for v in values], dtype=np.int64)
    delta = np.array([d for _, d in columns], dtype=bool)
    one_by_one = [np.cumsum(values) if d else np.array(values) for values, d in columns]
    together = templates._column_values_from_deltas(flat, sizes, delta)
    assert together.tolist() == [int(v) for values in one_by_one for v in values]
    expected_ids, expected_counts, failed = [], [], False
    for values, _ in columns:
        try:
            expected_ids += templates.dictionary_ids(np.array(values, dtype=np.int64)).tolist()
        except ValueError:
            failed = True
        expected_counts.append(values.count(0))
    if failed:
        with pytest.raises(ValueError):
            templates._dictionary_ids_of_columns(flat, sizes)
    else:
        ids, counts = templates._dictionary_ids_of_columns(flat, sizes)
        assert ids.tolist() == expected_ids and counts.tolist() == expected_counts


VALUE_PIECES = [b"0", b"1", b"9", b".", b"a", b"-", b"_", b"00", b"1234567890123456", b"5"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(VALUE_PIECES), max_size=6))
def test_one_value_columns_are_made_as_the_general_path_makes_them(pieces):
    value = b"".join(pieces)
    fast, general = templates._one_value_column(value), templates.column_of([value])
    assert (fast.kind, fast.width, fast.delta) == (general.kind, general.width, general.delta)
    assert fast.values == general.values
    if general.numbers is None:
        assert fast.numbers is None
    else:
        assert fast.numbers.dtype == general.numbers.dtype
        assert fast.numbers.tolist() == general.numbers.tolist()
