"""Text a JSON line repeats from its own fields, taken out of its string values and put back
(log rewrite 3, FORMAT.md §7.3).

Windows events shipped as JSON lines carry a rendered ``Message`` that repeats the event's other
fields (``ProcessId: 6196\\r\\nImage: C:\\\\Windows\\\\...``); other producers copy a path or a name
into a description. A line is read as JSON tokens (``value_spans``: where each string's contents,
as written, escapes included, and each number lie). On a line of at most ``MAX_VALUES`` values, a
string value of at least ``MIN_TARGET`` bytes in which another value of at least
``MIN_LENGTH`` bytes occurs is a *target*; every other value of at least ``MIN_LENGTH`` bytes is a
*source*. In each target, the occurrences of each source (longest first, then in line order) are
replaced by a marker byte M (a control byte the block does not hold, so never inside a JSON line)
and the source's index k among the line's values (one byte: k below 10, else k + 1, so never a
newline). Decoding reads the rewritten line with
the same tokens, ``M`` and the byte after it counting as one character of a string, and replaces
each pair by that value's bytes. A line the decoder would not give back exactly stays as it is;
the rewrite is used only when it removes at least ``MIN_SAVED_SHARE`` of the block.
"""

from __future__ import annotations

import re
import sys
from bisect import bisect_right
from functools import cache

from nncodec.nn.rowops import KERNELS

try:  # compiled value spans (nncodec/log/_jsonlex.c): the same spans as value_spans_reference
    from nncodec.log import _jsonlex
except ImportError:  # pragma: no cover - built by `pip install`
    _jsonlex = None
if KERNELS == "numpy":
    _jsonlex = None

#: control bytes JSON text never holds raw (a tab, a newline and a carriage return may occur)
MARKERS = bytes([*range(1, 9), 11, 12, *range(14, 32)])
MIN_LENGTH = 4
MIN_TARGET = 32  # shorter strings are rarely built from other fields, and testing them is slow
MAX_VALUES = 255  # a value's index is one byte, never a newline: k < 10 as k, others as k + 1
MAX_DEPTH = 4096
#: ec2_proxy (CloudTrail): 3.8% of the bytes removed, coded 1.5% larger; msf (Sysmon): 11.8%, 15% smaller
MIN_SAVED_SHARE = 0.05
#: a block of more than 2 x SAMPLE_LINES lines is first rewritten in SAMPLE_LINES lines spread over it,
#: and left alone if they lose under SAMPLE_SAVED_SHARE of their bytes (suricata: 0%, nginxplus: 0%,
#: msf: 11.8%): the rewrite costs ~0.6 s per 10 MB of JSON lines even where it takes nothing out
SAMPLE_LINES = 1000
SAMPLE_SAVED_SHARE = 0.02
_NUMBER = rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"


@cache
def _token_pattern(marker: int | None) -> re.Pattern[bytes]:
    """JSON tokens (whitespace, strings, numbers, literals, punctuation); with ``marker``, strings
    may hold that byte followed by any byte."""
    pair = re.escape(bytes([marker])) + rb"[\x00-\xff]|" if marker is not None else b""
    string = rb'"(?:' + pair + rb'[^"\\\x00-\x1f]|\\[\x00-\xff])*"'
    return re.compile(rb"[ \t\r]+|" + string + rb"|" + _NUMBER + rb"|true|false|null|[{}\[\]:,]")


def value_spans(line: bytes, marker: int | None = None) -> list[tuple[int, int]] | None:
    """(start, end) of every value of a line holding one JSON object or array (string contents
    without the quotes, numbers as written; keys and true/false/null are not values), in order;
    None when the line is not that (or nests deeper than ``MAX_DEPTH``). Computed by
    nncodec/log/_jsonlex.c when it is built, else by ``value_spans_reference``: the same spans."""
    if _jsonlex is None:
        return value_spans_reference(line, marker)
    return _jsonlex.value_spans(line, -1 if marker is None else marker)


def value_spans_reference(line: bytes, marker: int | None = None) -> list[tuple[int, int]] | None:
    """``value_spans`` in Python (the reference)."""
    pattern = _token_pattern(marker)
    spans: list[tuple[int, int]] = []
    stack: list[int] = []  # b"{" or b"["
    expect_key = False
    pos, end = 0, len(line)
    while pos < end:
        match = pattern.match(line, pos)
        if match is None:
            return None
        start, pos = pos, match.end()
        first = line[start]
        if first in b" \t\r:":
            continue
        if first in b"{[":
            if len(stack) == MAX_DEPTH:
                return None
            stack.append(first)
            expect_key = first == ord("{")
        elif first in b"}]":
            if not stack or stack.pop() != (ord("{") if first == ord("}") else ord("[")):
                return None
            expect_key = False
            if not stack and pos != end and line[pos:].strip(b" \t\r"):
                return None
        elif first == ord(","):
            if not stack:
                return None
            expect_key = stack[-1] == ord("{")
        elif not stack:
            return None
        elif expect_key:
            expect_key = False  # a key
        elif first == ord('"'):
            spans.append((start + 1, pos - 1))
        elif first not in b"tfn":
            spans.append((start, pos))
    return spans if not stack and line[:1] in (b"{", b"[") else None


def _rewrite_line(line: bytes, marker: int) -> bytes:
    spans = value_spans(line)
    if not spans or len(spans) > MAX_VALUES:
        return line
    values = [line[a:b] for a, b in spans]
    long = [i for i, value in enumerate(values) if len(value) >= MIN_LENGTH]
    long.sort(key=lambda i: (-len(values[i]), i))
    if not long or len(values[long[0]]) < MIN_TARGET:
        return line  # no value long enough to be built from others
    negative_lengths = [-len(values[i]) for i in long]  # ascending
    long_values = [values[i] for i in long]
    targets = set()
    for i in long:
        value = values[i]
        if len(value) < MIN_TARGET:
            break  # (longest first)
        start = spans[i][0]
        if line[start - 1 : start] != b'"':  # not a string
            continue
        shorter = long_values[bisect_right(negative_lengths, -len(value)) :]  # the strictly shorter values
        if any(map(value.__contains__, shorter)):
            targets.add(i)
    if not targets:
        return line
    sources = [j for j in long if j not in targets]
    out, previous = bytearray(), 0
    for i, (a, b) in enumerate(spans):
        value = values[i]
        if i in targets:
            for j in sources:
                if values[j] in value:
                    value = value.replace(values[j], bytes([marker, j if j < 10 else j + 1]))
        out += line[previous:a] + value
        previous = b
    out += line[previous:]
    rewritten = bytes(out)
    try:
        return rewritten if _restore_line(rewritten, marker) == line else line
    except ValueError:  # a source that ran into a reference before it, say: the line stays
        return line


def _restore_line(line: bytes, marker: int) -> bytes:
    """One rewritten line back; ValueError when its references do not resolve. Only the values
    that hold a marker are read (found by bisecting the value starts): the same result as going
    through every value, at a fraction of the cost on lines of many values."""
    spans = value_spans(line, marker)
    if spans is None:
        raise ValueError("a line with field references is not JSON")
    starts = [a for a, _ in spans]
    holding: list[int] = []  # indexes of the values that hold a marker, in order
    at = line.find(marker)
    while at >= 0:
        index = bisect_right(starts, at) - 1
        if index >= 0 and at < spans[index][1]:
            holding.append(index)
            at = line.find(marker, spans[index][1])
        else:  # outside every value (in a key): copied as it is
            at = line.find(marker, at + 1)
    out, previous = bytearray(), 0
    for index in holding:
        a, b = spans[index]
        value = line[a:b]
        out += line[previous:a]
        previous = b
        at = value.find(marker)
        done = 0
        while at >= 0:  # the lexer read every marker with the byte after it
            if at + 1 == len(value):  # read by the lexer as an escape: ``\`` and the marker
                raise ValueError("a field reference with no index")
            k = value[at + 1] - (value[at + 1] > 10)
            if k >= len(spans):
                raise ValueError("a field reference to no plain value")
            source = line[spans[k][0] : spans[k][1]]
            if marker in source:
                raise ValueError("a field reference to no plain value")
            out += value[done:at] + source
            done = at + 2
            at = value.find(marker, done)
        out += value[done:]
    out += line[previous:]
    return bytes(out)


def restore_line_reference(line: bytes, marker: int) -> bytes:
    """``_restore_line`` going through every value (the reference the tests hold it to)."""
    spans = value_spans(line, marker)
    if spans is None:
        raise ValueError("a line with field references is not JSON")
    values = [line[a:b] for a, b in spans]
    out, previous = bytearray(), 0
    for (a, b), value in zip(spans, values, strict=True):
        out += line[previous:a]
        previous = b
        at = value.find(marker)
        if at < 0:
            out += value
            continue
        done = 0
        while at >= 0:  # the lexer read every marker with the byte after it
            if at + 1 == len(value):  # read by the lexer as an escape: ``\`` and the marker
                raise ValueError("a field reference with no index")
            k = value[at + 1] - (value[at + 1] > 10)
            if k >= len(values) or marker in values[k]:
                raise ValueError("a field reference to no plain value")
            out += value[done:at] + values[k]
            done = at + 2
            at = value.find(marker, done)
        out += value[done:]
    out += line[previous:]
    return bytes(out)


def reduce_fields(data: bytes) -> tuple[bytes, int]:
    """``(rewritten block, marker)``, or ``(data, 0)`` when the block is not JSON lines, holds every
    marker byte, or the rewrite removes too little."""
    objects = data.count(b"\n{") + data.startswith(b"{")  # lines that start an object
    if 2 * objects <= data.count(b"\n"):
        return data, 0
    marker = next((m for m in MARKERS if m not in data), None)
    if marker is None:
        return data, 0
    lines = data.split(b"\n")
    done: dict[int, bytes] = {}  # the sample's lines, rewritten once
    if len(lines) > 2 * SAMPLE_LINES:  # first a look at a sample: most JSON logs repeat nothing
        picks = range(0, len(lines), len(lines) // SAMPLE_LINES)[:SAMPLE_LINES]
        done = {i: _rewrite_line(lines[i], marker) for i in picks}
        size = sum(len(lines[i]) + 1 for i in picks)
        saved = sum(len(lines[i]) - len(line) for i, line in done.items())
        if saved < SAMPLE_SAVED_SHARE * size:
            return data, 0
    rewritten = b"\n".join(
        done[i] if i in done else _rewrite_line(line, marker) for i, line in enumerate(lines)
    )
    if len(data) - len(rewritten) < MIN_SAVED_SHARE * len(data):
        return data, 0
    return rewritten, marker


def expand_fields(data: bytes, marker: int, limit: int = sys.maxsize) -> bytes:
    """Undo ``reduce_fields``; ValueError when a reference does not resolve or the block would
    exceed ``limit`` bytes. Computed by nncodec/log/_jsonlex.c when it is built, else by
    ``expand_fields_reference``: the same bytes, ValueError in the same cases."""
    if not 0 < marker < 32:
        raise ValueError(f"field-reference marker {marker} out of range")
    if _jsonlex is None:
        return expand_fields_reference(data, marker, limit)
    return _jsonlex.expand_block(data, marker, limit)


def expand_fields_reference(data: bytes, marker: int, limit: int = sys.maxsize) -> bytes:
    """``expand_fields`` in Python (the reference), line by line."""
    tag = bytes([marker])
    if tag in data:
        data = b"\n".join(_restore_line(line, marker) if tag in line else line for line in data.split(b"\n"))
    if len(data) > limit:
        raise ValueError("field references expand past the block's size")
    return data
