"""UUIDs (``2db6a7b5-876c-4995-8258-e6f09d9ef934``) taken out of a log block as the 16 bytes they
are, and put back (FORMAT.md §7.3, log payload format 4, rewrite 4).

JSON logs name requests and events by random UUIDs (CloudTrail's ``requestID`` and ``eventID``,
Kubernetes' ``auditID``, OpenStack's request and instance ids, Windows GUIDs): 122 random bits
written as 36 characters, which no text coder takes below ~19 bytes. Every token of the canonical
form (8-4-4-4-12 hex digits, all lower-case or all upper-case, not inside a longer word) is
replaced by a *marker byte* (one the block does not hold); its 16 bytes go to the *values*
stream, and an *ops* stream says per token ``0`` (new, lower-case), ``1`` (new, upper-case) or
``k + 1`` (the same text as the k-th newest distinct UUID before it, a varint). The decoder
replaces the markers, in order. The rewrite is exact whatever it takes; a block with fewer than
``MIN_UUIDS`` distinct UUIDs is left as it is.
"""

from __future__ import annotations

import re

from nncodec.core.framing import encode_varint
from nncodec.log.rewrites.zeekuid import MARKERS, read_ops

CANDIDATE = re.compile(
    rb"(?<![0-9A-Za-z])(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    rb"|[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12})(?![0-9A-Za-z])"
)
MIDDLE = re.compile(rb"-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-")  # in every CANDIDATE match
MIN_UUIDS = 8  # fewer distinct UUIDs in a block are not worth the rewrite's few bytes
VALUE_SIZE = 16
NEW_LOWER, NEW_UPPER = 0, 1
_GROUPS = (slice(0, 8), slice(8, 12), slice(12, 16), slice(16, 20), slice(20, 32))


def _is_upper(token: bytes) -> bool:
    """Whether a canonical token is the upper-case form (a token of only digits counts as lower)."""
    return token != token.lower()


def render(value: bytes, upper: bool) -> bytes:
    """The canonical text of 16 bytes (inverse of ``bytes.fromhex`` on the token without dashes)."""
    digits = value.hex().encode()
    if upper:
        digits = digits.upper()
    return b"-".join(digits[group] for group in _GROUPS)


def extract(data: bytes) -> tuple[bytes, int, bytes, bytes] | None:
    """``(rewritten block, marker byte, ops, values)``, or None when the block holds too few
    distinct UUIDs or every marker byte."""
    if len(MIDDLE.findall(data)) < MIN_UUIDS:
        return None  # a scan led by a literal '-': 4 ms on 10 MB, against 0.2 s for CANDIDATE's
    marker = next((m for m in MARKERS if m not in data), None)  # bytes.__contains__ of an int
    if marker is None:
        return None
    ops, values = bytearray(), bytearray()
    index: dict[bytes, int] = {}  # token -> its number among distinct UUIDs
    tag = bytes([marker])

    def replace(match: re.Match[bytes]) -> bytes:
        token = match.group(0)
        seen = index.get(token)
        if seen is None:
            index[token] = len(index)
            ops.append(NEW_UPPER if _is_upper(token) else NEW_LOWER)
            values.extend(bytes.fromhex(token.replace(b"-", b"").decode()))
        else:
            ops.extend(encode_varint(len(index) - seen + 1))
        return tag

    rewritten = CANDIDATE.sub(replace, data)
    if len(index) < MIN_UUIDS:
        return None
    return rewritten, marker, bytes(ops), bytes(values)


def restore(data: bytes, marker: int, ops: bytes, values: bytes) -> bytes:
    """Inverse of ``extract``. ValueError when the streams do not fit the block."""
    pieces = data.split(bytes([marker]))
    if len(values) % VALUE_SIZE:
        raise ValueError("UUID values stream has a partial value")
    codes = read_ops(ops, len(pieces) - 1, "UUID")
    distinct: list[bytes] = []
    out = [pieces[0]]
    for piece, code in zip(pieces[1:], codes, strict=True):
        if code <= NEW_UPPER:
            start = len(distinct) * VALUE_SIZE
            if start + VALUE_SIZE > len(values):
                raise ValueError("UUID values stream ends early")
            distinct.append(render(values[start : start + VALUE_SIZE], code == NEW_UPPER))
            out.append(distinct[-1])
        elif code - 1 > len(distinct):
            raise ValueError("UUID refers to no earlier UUID")
        else:
            out.append(distinct[len(distinct) - (code - 1)])
        out.append(piece)
    if len(distinct) * VALUE_SIZE != len(values):
        raise ValueError("UUID values stream holds values no marker uses")
    return b"".join(out)
