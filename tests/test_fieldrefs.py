"""JSON-line field references (nncodec/log/rewrites/fieldrefs.py, log rewrite 3)."""

from __future__ import annotations

import json
import random

import pytest
from conftest import SHARED_DATA
from hypothesis import given, settings
from hypothesis import strategies as st

import nncodec
from nncodec.codecs.log import FORMAT_REWRITES, REWRITE_FIELDS, LogCodec
from nncodec.core.errors import NncodecError
from nncodec.log.rewrites import fieldrefs
from nncodec.log.rewrites.fieldrefs import expand_fields, reduce_fields, value_spans, value_spans_reference

needs_compiled = pytest.mark.skipif(fieldrefs._jsonlex is None, reason="nncodec.log._jsonlex is not built")


def sysmon_like(count: int, seed: int) -> bytes:
    """JSON lines whose Message repeats other fields, as Windows events shipped by Logstash do."""
    rng = random.Random(seed)
    images = [f"C:\\Windows\\System32\\{name}.exe" for name in ("svchost", "lsass", "explorer", "cmd")]
    lines = []
    for i in range(count):
        pid, image = rng.randrange(100, 9999), rng.choice(images)
        guid = f"{{{rng.getrandbits(32):08x}-498a-5ee0-c903-{rng.getrandbits(48):012x}}}"
        service = rng.choice(["Tcpip", "Dnscache", "W32Time"])
        target = f"HKLM\\System\\CurrentControlSet\\Services\\{service}\\Start"
        event = {
            "ProcessId": str(pid),
            "ProcessGuid": guid,
            "EventID": 13,
            "Image": image,
            "TargetObject": target,
            "Message": f"Registry value set:\r\nProcessGuid: {guid}\r\nProcessId: {pid}\r\nImage: {image}\r\n"
            f"TargetObject: {target}\r\nDetails: DWORD (0x0000000{i % 4})",
            "RecordNumber": 713650 + i,
            "tags": ["mordorDataset"],
        }
        lines.append(json.dumps(event, separators=(",", ":")).encode())
    return b"\n".join(lines) + b"\n"


def test_messages_that_repeat_fields_become_references():
    data = sysmon_like(300, seed=1)
    reduced, marker = reduce_fields(data)
    assert marker and bytes([marker]) not in data
    assert len(reduced) < 0.8 * len(data)
    assert expand_fields(reduced, marker) == data
    payload = LogCodec().encode_block(data)
    assert payload[0] == FORMAT_REWRITES and (REWRITE_FIELDS, marker) in LogCodec._read_head(payload)[1]
    assert LogCodec().decode_block(payload, len(data)) == data


def test_no_rewrite_where_it_removes_little_or_the_block_is_not_json():
    plain = b"".join(b"line %d of a text log\n" % i for i in range(200))
    assert reduce_fields(plain) == (plain, 0)
    few = b"".join(b'{"a":"value number %d","b":%d}\n' % (i, i) for i in range(200))
    assert reduce_fields(few) == (few, 0)


def test_long_blocks_are_judged_on_a_sample_first(monkeypatch):
    """Past 2 x SAMPLE_LINES lines the rewrite first looks at a spread sample: a block with repeats
    is rewritten in full (every line), one without is left after the sample alone."""
    from nncodec.log.rewrites import fieldrefs

    count = 2 * fieldrefs.SAMPLE_LINES + 500
    data = sysmon_like(count, seed=4)
    reduced, marker = reduce_fields(data)
    assert marker and reduced.count(bytes([marker])) >= count  # every line, not just the sample
    assert expand_fields(reduced, marker) == data
    few = b"".join(b'{"a":"value number %d","b":%d}\n' % (i, i) for i in range(count))
    calls = []
    original = fieldrefs._rewrite_line
    monkeypatch.setattr(fieldrefs, "_rewrite_line", lambda line, m: calls.append(1) or original(line, m))
    assert reduce_fields(few) == (few, 0)
    assert len(calls) == fieldrefs.SAMPLE_LINES


def test_every_marker_byte_taken_means_no_rewrite():
    data = sysmon_like(50, seed=2) + bytes(fieldrefs.MARKERS)
    assert reduce_fields(data) == (data, 0)


def test_index_bytes_that_are_newlines_quotes_or_the_marker_come_back():
    """Lines of many values: indexes 10 (a newline), 33/34 ('"' after the shift) and the marker."""
    fields = {f"k{i}": f"value-{i:03d}" for i in range(60)}
    lines = []
    for n in range(40):
        picked = [fields[f"k{i}"] for i in (1, 9, 10, 11, 33, 34, 35, n % 60)]
        row = dict(fields, msg="text " + " and ".join(picked * 3) + f" #{n}")
        lines.append(json.dumps(row, separators=(",", ":")).encode())
    data = b"\n".join(lines)
    reduced, marker = reduce_fields(data)
    assert marker and reduced.count(b"\n") == data.count(b"\n")
    assert expand_fields(reduced, marker) == data


json_text = st.lists(
    st.sampled_from(["a", "b", "\\", '"', "/", "\u00e9", "\u4e2d", " ", "\t", "\n", "x\\y", "long"]),
    max_size=12,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(json_text, json_text, st.integers(-(10**20), 10**20)), min_size=1, max_size=12),
       st.booleans(), st.sampled_from([b"\n", b"\r\n"]))  # fmt: skip
def test_any_json_lines_round_trip(rows, ascii_only, newline):
    lines = []
    for a, b, number in rows:
        message = f"{a}{b} -- {b}{a} {number} {a}"
        row = {"a": a, "b": b, "n": number, "msg": message, "f": [1.50, -0.0, 1e40], "t": True}
        lines.append(json.dumps(row, ensure_ascii=ascii_only).encode())
    data = newline.join(lines) + newline
    for marker_free in (data, data + b"\x01\x02"):
        reduced, marker = reduce_fields(marker_free)
        assert expand_fields(reduced, marker) == marker_free if marker else reduced == marker_free
        assert nncodec.decompress(nncodec.compress(marker_free, codec="log")) == marker_free


def test_damaged_references_are_clean_errors():
    data = sysmon_like(100, seed=3)
    reduced, marker = reduce_fields(data)
    tag = bytes([marker])
    at = reduced.index(tag)
    for damaged in (
        reduced[: at + 1] + bytes([250]) + reduced[at + 2 :],  # an index past the line's values
        reduced[:at] + reduced[at + 2 :].replace(b"}", b"", 1),  # a line that is no longer JSON
        reduced[: at + 1],  # a marker with no index
        b'{"k":"\\' + tag + b'","b":1}',  # a marker read as an escaped character, last in its value
    ):
        with pytest.raises(ValueError):
            expand_fields(damaged, marker)
    with pytest.raises(ValueError):
        expand_fields(reduced, 0)
    payload = bytearray(LogCodec().encode_block(data))
    rng = random.Random(4)
    for _ in range(30):
        broken = bytearray(payload)
        broken[rng.randrange(3, len(broken))] ^= 1 << rng.randrange(8)
        try:
            out = LogCodec().decode_block(bytes(broken), len(data))
        except NncodecError:
            continue
        assert len(out) == len(data)


LEX_ALPHABET = [b"{", b"}", b"[", b"]", b":", b",", b'"', b"\\", b" ", b"\r", b"\t", b"a", b"0", b"1", b"-",
                b".", b"e", b"+", b"true", b"null", b"fals", b"\x01", b"\x1f", b"\xc3\xa9"]  # fmt: skip


@needs_compiled
@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(LEX_ALPHABET), max_size=30), st.sampled_from([None, 1, 31]))
def test_compiled_spans_equal_the_reference(pieces, marker):
    line = b"".join(pieces)
    for text in (line, b'{"k":' + line + b"}", b'{"k":"' + line + b'"}', b"[" + line + b"]"):
        compiled = fieldrefs._jsonlex.value_spans(text, -1 if marker is None else marker)
        assert compiled == value_spans_reference(text, marker)


@needs_compiled
def test_compiled_spans_equal_the_reference_on_real_lines():
    paths = sorted((SHARED_DATA / "logs" / "json_lines").glob("*.jsonl"))
    if not paths:
        pytest.skip("../shared/data/logs/json_lines not present (not part of the repository)")
    for path in paths:
        with path.open("rb") as lines:
            for number, line in enumerate(lines):
                if number >= 300:
                    break
                line = line.rstrip(b"\n")
                assert value_spans(line) == value_spans_reference(line)
                assert value_spans(line) is not None


def _restored(restore, line: bytes, marker: int) -> bytes | str:
    try:
        return restore(line, marker)
    except ValueError as exc:
        return str(exc)


REF_ALPHABET = [*LEX_ALPHABET, b"\x01\x00", b"\x01\x02", b"\x01\x0b", b"\x01\x01", b'"\x01\x03"']
REF_ALPHABET += [b'"k\x01\x00":']  # a marker in a key


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(REF_ALPHABET), max_size=30))
def test_restoring_a_line_reads_only_the_values_with_markers_and_gives_what_reading_all_gives(pieces):
    line = b"".join(pieces)
    wrapped = (b'{"a":"xyz","k":' + line + b"}", b'{"k":"' + line + b'","b":1}', b"[" + line + b"]")
    for text in (line, *wrapped):
        fast = _restored(fieldrefs._restore_line, text, 1)
        assert fast == _restored(fieldrefs.restore_line_reference, text, 1)


def test_restoring_real_rewritten_lines_matches_the_reference():
    data = sysmon_like(200, seed=5)
    reduced, marker = reduce_fields(data)
    assert marker
    lines = [line for line in reduced.split(b"\n") if bytes([marker]) in line]
    assert len(lines) > 100
    for line in lines:
        assert fieldrefs._restore_line(line, marker) == fieldrefs.restore_line_reference(line, marker)


def test_deep_nesting_is_left_alone():
    deep = b"[" * (fieldrefs.MAX_DEPTH + 1) + b"]" * (fieldrefs.MAX_DEPTH + 1)
    assert value_spans(deep) is None and value_spans_reference(deep) is None
    ok = b'{"a":' * 50 + b'"x"' + b"}" * 50
    assert value_spans(ok) == value_spans_reference(ok) == [(len(ok) - 52, len(ok) - 51)]


def _expanded(expand, data: bytes, marker: int, limit: int) -> bytes | str:
    try:
        return expand(data, marker, limit)
    except ValueError:
        return "ValueError"


@needs_compiled
@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*REF_ALPHABET, b"\n", b"\n{"]), max_size=40), st.integers(0, 400))
def test_compiled_block_expansion_equals_the_reference(pieces, limit):
    """The block in C (nncodec/log/_jsonlex.c ``expand_block``) against the Python reference: the
    same bytes, or ValueError in both (a reference that does not resolve, or past ``limit``)."""
    line = b"".join(pieces)
    for data in (line, b'{"a":"xyz","k":' + line + b"}", b'{"k":"' + line + b'","b":1}\n{"c":"\x01\x00"}'):
        for bound in (limit, 1 << 20):
            compiled = _expanded(fieldrefs._jsonlex.expand_block, data, 1, bound)
            assert compiled == _expanded(fieldrefs.expand_fields_reference, data, 1, bound)


@needs_compiled
def test_compiled_block_expansion_equals_the_reference_on_rewritten_and_damaged_blocks():
    data = sysmon_like(200, seed=5)
    reduced, marker = reduce_fields(data)
    assert fieldrefs._jsonlex.expand_block(reduced, marker, len(data)) == data
    with pytest.raises(ValueError, match="past the block"):
        fieldrefs._jsonlex.expand_block(reduced, marker, len(data) - 1)
    rng = random.Random(6)
    for _ in range(200):
        damaged = bytearray(reduced)
        for _ in range(rng.randint(1, 3)):
            damaged[rng.randrange(len(damaged))] = rng.choice([marker, 0x0A, 0x22, 0x5C, rng.randrange(256)])
        damaged = bytes(damaged)
        compiled = _expanded(fieldrefs._jsonlex.expand_block, damaged, marker, 2 * len(data))
        assert compiled == _expanded(fieldrefs.expand_fields_reference, damaged, marker, 2 * len(data))
