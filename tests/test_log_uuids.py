"""UUIDs taken out of log blocks as 16 bytes each (nncodec/log/rewrites/uuids.py, log rewrite 4):
exact round trips on generated and hypothesis-made blocks, tokens that only look like UUIDs,
damaged streams, and the codec using the rewrite (and decoding it) on a JSON log."""

from __future__ import annotations

import json
import random
import uuid

import pytest
from conftest import SHARED_DATA, damaged_payload_trials
from hypothesis import given, settings
from hypothesis import strategies as st

from nncodec.codecs.log import FORMAT_REWRITES, REWRITE_UUIDS, LogCodec
from nncodec.log.rewrites import uuids


def cloudtrail_lines(count: int, seed: int) -> bytes:
    """JSON lines shaped like CloudTrail records: two new UUIDs a line, a few repeated ones."""
    rng = random.Random(seed)
    sessions = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(3)]
    lines = []
    for i in range(count):
        record = {
            "eventID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "requestID": str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper() if i % 7 == 0
            else str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "session": rng.choice(sessions),
            "eventName": rng.choice(["DescribeInstances", "GetObject", "ListBuckets"]),
            "n": i,
        }
        lines.append(json.dumps(record, separators=(",", ":")).encode())
    return b"\n".join(lines) + b"\n"


def test_uuids_come_out_as_sixteen_bytes_and_back():
    data = cloudtrail_lines(200, seed=1)
    result = uuids.extract(data)
    assert result is not None
    text, marker, ops, values = result
    assert bytes([marker]) not in data
    assert len(values) == 16 * (400 + 3)  # every distinct UUID once, repeats as references
    assert text.count(bytes([marker])) == 600 and len(text) == len(data) - 600 * 35
    assert uuids.restore(text, marker, ops, values) == data


def test_case_is_kept_and_repeats_refer_back():
    tokens = [str(uuid.UUID(int=i * 0x1234567 + 5)) for i in range(10)]
    mixed = [t.upper() if i % 2 else t for i, t in enumerate(tokens)]
    data = (" ".join(mixed + mixed[::-1] + [tokens[1]])).encode()  # tokens[1] also in lower case
    text, marker, ops, values = uuids.extract(data)
    assert len(values) == 16 * 11 and uuids.restore(text, marker, ops, values) == data


@pytest.mark.parametrize(
    "token",
    [
        b"2db6a7b5-876c-4995-8258-E6F09D9EF934",  # mixed case
        b"2db6a7b5-876c-4995-8258-e6f09d9ef93",  # one digit short
        b"x2db6a7b5-876c-4995-8258-e6f09d9ef934",  # inside a word
        b"2db6a7b5-876c-4995-8258-e6f09d9ef934a",
        b"2db6a7b5876c49958258e6f09d9ef934",  # no dashes
    ],
)
def test_tokens_that_are_not_canonical_uuids_stay(token):
    data = cloudtrail_lines(20, seed=2) + b"x " + token + b" y\n"
    text, marker, ops, values = uuids.extract(data)
    assert token in text
    assert uuids.restore(text, marker, ops, values) == data


def test_no_rewrite_with_few_uuids_or_without_a_free_marker():
    few = b" ".join(str(uuid.UUID(int=i)).encode() for i in range(uuids.MIN_UUIDS - 1)) * 5
    assert uuids.extract(few) is None
    assert uuids.extract(bytes(range(256)) + cloudtrail_lines(20, seed=3)) is None


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(0, 40).map(lambda i: str(uuid.UUID(int=i * 7919 + 1)).encode()),
            st.integers(0, 40).map(lambda i: str(uuid.UUID(int=i * 7919 + 1)).upper().encode()),
            st.binary(max_size=12),
        ),
        max_size=80,
    )
)
def test_any_block_round_trips(parts):
    data = b"".join(parts)
    result = uuids.extract(data)
    if result is not None:
        assert uuids.restore(*result) == data


def test_damaged_uuid_streams_raise_value_error():
    text, marker, ops, values = uuids.extract(cloudtrail_lines(40, seed=4))
    for bad in (
        (text, marker, ops[:-1], values),
        (text, marker, ops, values[:-16]),
        (text, marker, ops, values[:-1]),
        (text, marker, ops, values + bytes(16)),
        (text, marker, ops + b"\x00", values),
        (text, marker, b"\x05" + ops[1:], values),  # refers to no earlier UUID
        (text, marker, b"\xff" * len(ops), values),
    ):
        with pytest.raises(ValueError):
            uuids.restore(*bad)


def test_log_codec_takes_uuids_out_and_decodes_them():
    data = cloudtrail_lines(300, seed=5)
    codec = LogCodec()
    payload = codec.encode_block(data)
    assert payload[0] == FORMAT_REWRITES and REWRITE_UUIDS in payload[3:6]
    assert codec.decode_block(payload, len(data)) == data
    failures = damaged_payload_trials(
        codec.decode_block, payload, len(data), trials=60, seed=6, skip=3, truncate_every=5
    )
    assert failures > 10  # the rest decoded to the right size (the block CRC tells them)


def test_cloudtrail_log_gains_from_the_rewrite(monkeypatch):
    """The shared CloudTrail sample (200 UUIDs in 106 KB): smaller with the rewrite than without."""
    path = SHARED_DATA / "logs" / "json_lines" / "ec2_proxy_s3_exfiltration_2020-09-14011940.jsonl"
    if not path.exists():
        pytest.skip(f"shared data not present ({path})")
    data = path.read_bytes()
    codec = LogCodec()
    with_uuids = codec.encode_block(data)
    assert codec.decode_block(with_uuids, len(data)) == data
    monkeypatch.setattr(uuids, "extract", lambda block: None)
    without = codec.encode_block(data)
    assert len(with_uuids) < 0.95 * len(without)


def test_uuids_anywhere_in_a_long_block_are_found():
    tail = cloudtrail_lines(100, seed=7)
    for data in (b"x" * 100 + tail, b"x-" * (1 << 20) + tail):
        result = uuids.extract(data)
        assert result is not None and uuids.restore(*result) == data
