"""JSON lines regrouped by the value of one key, and put back in order (log rewrite 5, FORMAT.md §7.3).

Producers interleave records of many flows, ports or event kinds: Suricata writes a flow's ``dns``,
``alert``, ``http``, ``fileinfo`` and ``flow`` records among those of other flows, and most of a
record's fields repeat those of the last record of its flow. Moving the records of one group
together puts each record next to the one it resembles most, where the columns and the backends'
contexts find the repeats (Suricata's EVE sample grouped by ``dest_port``: ~10% smaller).

The rewrite is a permutation of the block's complete lines (those ending in ``\\n``; bytes after the
last ``\\n`` stay at the end). The writer gives every line a *group* (any function of the line: the
decoder never recomputes it) and writes the groups' lines one group after the other, groups in the
order of their first line, each in its lines' order. The *ops* stream says, per line of the original
block in order, ``0`` (the first line of a new group) or ``k`` (a line of the group that is k-th
most recently used, 1 being the group of the line before), as varints. The decoder replays the ops
to learn each line's group and every group's size, then takes each group's lines in turn.

The writer's choice: on a sample of the block's first lines, when most start with ``{``, every key
that most lines hold and whose first scalar value per line takes between 2 and half as many values
as lines is tried; grouping by it is scored by zstd -3 of the regrouped sample plus its ops, and the
best key is used when it beats the sample as it is by ``MIN_GAIN`` and the caller's own estimate
(the log codec's columns under zstd -3) of the first lines regrouped beats theirs as they are by
``MIN_CHECKED_GAIN``. A decoder refuses more than ``MAX_GROUPS`` groups (each line's move to the
front costs up to the group count), and a writer gives up on a grouping whose ranks average more
than ``MAX_MEAN_RANK`` (its rank search costs the rank).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable

from nncodec.core.framing import encode_varint
from nncodec.entropy.backends import zstd_compress
from nncodec.log.rewrites.zeekuid import read_ops

SAMPLE_SIZE = 1 << 20  # the lines that choose the key (256 KiB chose worse keys: fewer repeats per group)
MIN_LINES = 64  # fewer complete lines in the sample: not tried
JSON_SHARE = 0.9  # of the sample's lines must start with "{"
KEY_SHARE = 0.5  # a candidate key is in at least this share of the sample's lines
MAX_CANDIDATES = 16  # keys scored, the most common first
MIN_GAIN = 0.03  # the regrouped sample (plus ops) must be this much smaller under zstd -3
#: what the caller's estimate must gain on the first lines: zstd alone is fooled where the groups break
#: the order of a column (tests/test_log_linegroups.py: timestamps rising line by line, the lines
#: regrouped 3% smaller under zstd, the log codec's output 2.5% larger)
CHECK_SIZE = 256 << 10
MIN_CHECKED_GAIN = 0.01
#: bounds on the work of a permutation: the rank search and the move to the front cost up to the
#: group count per line (a decoder refuses more groups; a writer also gives up past a mean rank)
MAX_GROUPS = 1024
MAX_MEAN_RANK = 64
PROXY_LEVEL = 3

#: a scalar value after a key (a string as written, or a number, true, false or null)
VALUE = rb'\s*("(?:[^"\\]|\\.)*"|[-+0-9.eEa-z]+)'
KEY_VALUE = re.compile(rb'"([^"\\]{1,64})":' + VALUE)


def _sample_lines(data: bytes) -> list[bytes]:
    end = data.rfind(b"\n", 0, SAMPLE_SIZE)
    return data[:end].split(b"\n") if end > 0 else []


def _first_values(line: bytes) -> dict[bytes, bytes]:
    """Each key's first scalar value on the line (nested keys too: only a grouping hint)."""
    return dict(reversed(KEY_VALUE.findall(line)))  # reversed: the first value of a key wins


def _regroup(lines: list[bytes], groups: list[Hashable]) -> tuple[list[bytes], bytes] | None:
    """(lines in group order, ops), or None past MAX_GROUPS groups or a mean rank of MAX_MEAN_RANK."""
    members: dict[Hashable, list[bytes]] = {}
    recent: list[Hashable] = []  # most recently used group first
    ops = bytearray()
    work_left = MAX_MEAN_RANK * len(lines)
    for line, group in zip(lines, groups, strict=True):
        found = members.get(group)
        if found is None:
            if len(members) == MAX_GROUPS:
                return None
            members[group] = found = []
            recent.insert(0, group)
            ops.append(0)
        else:
            rank = recent.index(group)
            work_left -= rank
            if work_left < 0:
                return None
            if rank:
                recent.insert(0, recent.pop(rank))
            if rank < 127:
                ops.append(rank + 1)
            else:
                ops.extend(encode_varint(rank + 1))
        found.append(line)
    return [line for group_lines in members.values() for line in group_lines], bytes(ops)


def choose_key(data: bytes) -> bytes | None:
    """The key whose values group the block's lines best on a sample, or None."""
    lines = _sample_lines(data)
    if len(lines) < MIN_LINES or sum(line[:1] == b"{" for line in lines) < JSON_SHARE * len(lines):
        return None
    values = [_first_values(line) for line in lines]
    counts: dict[bytes, int] = {}
    for line_values in values:
        for key in line_values:
            counts[key] = counts.get(key, 0) + 1
    common = [key for key, count in counts.items() if count >= KEY_SHARE * len(lines)]
    common.sort(key=counts.__getitem__, reverse=True)
    sample = b"\n".join(lines)
    best_size, best_key = (1.0 - MIN_GAIN) * len(zstd_compress(sample, PROXY_LEVEL)), None
    for key in common[:MAX_CANDIDATES]:
        groups = [line_values.get(key) for line_values in values]
        if not 2 <= len(set(groups)) <= len(lines) // 2:
            continue
        regrouped = _regroup(lines, groups)
        if regrouped is None:
            continue
        grouped, ops = regrouped
        size = len(zstd_compress(b"\n".join(grouped), PROXY_LEVEL)) + len(zstd_compress(ops, PROXY_LEVEL))
        if size < best_size:
            best_size, best_key = size, key
    return best_key


def extract(data: bytes, estimate: Callable[[bytes], int]) -> tuple[bytes, bytes] | None:
    """``(regrouped block, ops)``, or None when no key's grouping pays on the sample, by zstd and
    then by ``estimate`` (the caller's measure of what a block costs, plus the ops by zstd) on the
    first ``CHECK_SIZE`` bytes of lines."""
    key = choose_key(data)
    if key is None:
        return None
    pattern = re.compile(rb'"' + re.escape(key) + rb'":' + VALUE)

    def value_of(line: bytes) -> bytes | None:
        match = pattern.search(line)
        return match.group(1) if match else None

    check = data[: data.rfind(b"\n", 0, CHECK_SIZE) + 1]
    checked = regroup_by(check, value_of)
    if checked is None:
        return None
    grouped, ops = checked
    if estimate(grouped) + len(zstd_compress(ops, PROXY_LEVEL)) > (1.0 - MIN_CHECKED_GAIN) * estimate(check):
        return None
    return regroup_by(data, value_of)


def regroup_by(data: bytes, group_of: Callable[[bytes], Hashable]) -> tuple[bytes, bytes] | None:
    """``(regrouped block, ops)`` for the groups ``group_of`` gives the complete lines, or None past
    ``MAX_GROUPS`` groups or ``MAX_MEAN_RANK``."""
    end = data.rfind(b"\n") + 1
    lines = data[: end - 1].split(b"\n") if end else []
    regrouped = _regroup(lines, [group_of(line) for line in lines])
    if regrouped is None:
        return None
    grouped, ops = regrouped
    return b"".join(line + b"\n" for line in grouped) + data[end:], ops


def restore(data: bytes, ops: bytes) -> bytes:
    """Inverse of ``extract``. ValueError when the ops do not fit the block."""
    end = data.rfind(b"\n") + 1
    codes = read_ops(ops, data.count(b"\n"), "line group")
    if not codes:
        return data
    recent: list[int] = []  # group numbers, most recently used first
    line_groups = []
    for code in codes:
        if code == 0:
            if len(recent) == MAX_GROUPS:
                raise ValueError(f"line groups exceed {MAX_GROUPS}")
            recent.insert(0, len(recent))
        elif code > len(recent):
            raise ValueError("line group refers to no earlier group")
        elif code > 1:
            recent.insert(0, recent.pop(code - 1))
        line_groups.append(recent[0])
    sizes = [0] * len(recent)
    for group in line_groups:
        sizes[group] += 1
    next_line, start = [0] * len(recent), 0
    for group, size in enumerate(sizes):
        next_line[group], start = start, start + size
    grouped = data[: end - 1].split(b"\n")
    out = []
    for group in line_groups:
        out.append(grouped[next_line[group]] + b"\n")
        next_line[group] += 1
    return b"".join(out) + data[end:]
