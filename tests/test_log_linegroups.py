"""JSON lines regrouped by a key's value (nncodec/log/rewrites/linegroups.py, log rewrite 5): exact
round trips on generated and hypothesis-made blocks, the writer's choice of key (and of none),
damaged ops, and the codec using the rewrite (and decoding it) on flow-like records."""

from __future__ import annotations

import json
import random

import pytest
from conftest import damaged_payload_trials, shared_file
from hypothesis import given, settings
from hypothesis import strategies as st

from nncodec.codecs.log import FORMAT_REWRITES, REWRITE_GROUPS, LogCodec, _columns_estimate
from nncodec.entropy.backends import zstd_compress
from nncodec.log.rewrites import linegroups


def flow_records(count: int, seed: int, *, kinds: int = 12, clock_per_kind: bool = True) -> bytes:
    """Suricata-like JSON lines: records of interleaved kinds (dns, http, ...), each kind with fields
    and values of its own, a few numbers changing from record to record; the timestamps rise within
    each kind (as a flow's records) or, without ``clock_per_kind``, line by line."""
    rng = random.Random(seed)

    def word() -> str:
        return "".join(rng.choice("abcdefghijklmnop_") for _ in range(rng.randrange(4, 12)))

    shapes = [
        {"event_type": f"kind{k}", "dest_port": rng.randrange(1, 9000)}
        | {word(): rng.choice([word() + "." + word(), rng.randrange(10**4), word()]) for _ in range(8)}
        for k in range(kinds)
    ]
    clocks = [rng.randrange(10**9) for _ in shapes]
    lines = []
    for i in range(count):
        k = rng.randrange(kinds)
        clocks[k] += rng.randrange(1, 5000)
        clock = clocks[k] if clock_per_kind else i * 10**6 + i * 7919 % 10**6
        record = {"timestamp": f"2022-03-21T21:{clock // 10**6 % 60:02d}.{clock % 10**6:06d}"}
        record |= shapes[k] | {"pkts": rng.randrange(20), "src_port": rng.randrange(1024, 1100)}
        lines.append(json.dumps(record, separators=(",", ":")).encode())
    return b"\n".join(lines) + b"\n"


def zstd_estimate(block: bytes) -> int:
    return len(zstd_compress(block, 3))


def test_flow_records_are_regrouped_and_put_back():
    data = flow_records(1500, seed=1)
    result = linegroups.extract(data, _columns_estimate)
    assert result is not None
    grouped, ops = result
    assert grouped != data and sorted(grouped.split(b"\n")) == sorted(data.split(b"\n"))
    assert len(ops) == data.count(b"\n") and ops[0] == 0
    assert linegroups.restore(grouped, ops) == data


def test_lines_without_a_key_worth_grouping_stay_in_order():
    rng = random.Random(2)
    unique = b"".join(b'{"id":%d,"v":"%x"}\n' % (i, rng.getrandbits(64)) for i in range(500))
    assert linegroups.choose_key(unique) is None  # every key has a value per line (or one value)
    assert linegroups.extract(b"plain text line %d\n" * 200, zstd_estimate) is None  # not JSON lines
    assert linegroups.extract(flow_records(20, seed=3), zstd_estimate) is None  # too few lines to judge


def test_the_columns_check_refuses_groups_that_break_a_rising_column(monkeypatch):
    """Timestamps rising line by line: zstd of the lines likes the groups, the columns do not, and
    the codec's output would indeed grow with them."""
    data = flow_records(1500, seed=8, clock_per_kind=False)
    forced = linegroups.extract(data, zstd_estimate)
    assert forced is not None and linegroups.extract(data, _columns_estimate) is None
    codec = LogCodec()
    as_is = codec.encode_block(data)
    monkeypatch.setattr(linegroups, "extract", lambda block, estimate: forced)
    assert len(codec.encode_block(data)) > len(as_is)


@pytest.mark.parametrize("tail", [b"", b'{"partial":', b"\r"])
def test_the_bytes_after_the_last_newline_stay_last(tail):
    data = flow_records(300, seed=4).replace(b"\n", b"\r\n", 7) + tail
    grouped, ops = linegroups.regroup_by(data, lambda line: line[-6:])
    assert grouped.endswith(b"\n" + tail) and linegroups.restore(grouped, ops) == data


LINE = st.binary(max_size=8).filter(lambda b: b"\n" not in b)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(LINE, st.integers(0, 6)), max_size=60), LINE)
def test_any_grouping_round_trips(lines, tail):
    data = b"".join(text + b"\n" for text, _ in lines) + tail
    labels = iter([group for _, group in lines])
    grouped, ops = linegroups.regroup_by(data, lambda line: next(labels))
    assert len(grouped) == len(data) and len(ops) == len(lines)
    assert linegroups.restore(grouped, ops) == data


def test_many_groups_are_refused_both_ways(monkeypatch):
    monkeypatch.setattr(linegroups, "MAX_GROUPS", 8)
    data = b"".join(b"%d\n" % i for i in range(9))
    assert linegroups.regroup_by(data, lambda line: line) is None
    with pytest.raises(ValueError, match="exceed"):
        linegroups.restore(data, bytes(9))


def test_groupings_that_cost_too_much_work_are_given_up():
    """Many groups in random order: each line's rank search would scan hundreds of groups."""
    rng = random.Random(9)
    labels = [rng.randrange(1000) for _ in range(20000)]
    data = b"".join(b"%d\n" % i for i in range(20000))
    many, few = iter(labels), iter(label % 16 for label in labels)
    assert linegroups.regroup_by(data, lambda line: next(many)) is None
    grouped, ops = linegroups.regroup_by(data, lambda line: next(few))
    assert linegroups.restore(grouped, ops) == data


def test_damaged_group_ops_raise_value_error():
    grouped, ops = linegroups.extract(flow_records(600, seed=5), zstd_estimate)
    for bad in (
        ops[:-1],  # one line short
        ops + b"\x00",
        b"\x01" + ops[1:],  # the first line names no earlier group
        ops[:10] + bytes([120]) + ops[11:],  # a group past those seen
        b"\xff" * len(ops),  # varints that never end
    ):
        with pytest.raises(ValueError):
            linegroups.restore(grouped, bad)


def test_log_codec_regroups_flow_records_and_decodes_them(monkeypatch):
    data = flow_records(2000, seed=6)
    codec = LogCodec()
    payload = codec.encode_block(data)
    assert payload[0] == FORMAT_REWRITES and payload[3] == REWRITE_GROUPS  # listed first: applied first
    assert codec.decode_block(payload, len(data)) == data
    monkeypatch.setattr(linegroups, "extract", lambda block, estimate: None)
    assert len(payload) < 0.97 * len(codec.encode_block(data))
    failures = damaged_payload_trials(
        codec.decode_block, payload, len(data), trials=60, seed=7, skip=3, truncate_every=5
    )
    assert failures > 10  # the rest decoded to the right size (the block CRC tells them)


def test_suricata_log_gains_from_the_rewrite(monkeypatch):
    """The shared Suricata EVE sample (2,855 records of 916 flows): >= 5% smaller regrouped (~10%)."""
    data = shared_file("logs/json_lines/mssis_suricata_out.jsonl").read_bytes()
    codec = LogCodec()
    regrouped = codec.encode_block(data)
    assert regrouped[3] == REWRITE_GROUPS and codec.decode_block(regrouped, len(data)) == data
    monkeypatch.setattr(linegroups, "extract", lambda block, estimate: None)
    assert len(regrouped) < 0.95 * len(codec.encode_block(data))
