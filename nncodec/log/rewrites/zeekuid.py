"""Zeek UIDs (``CIOuwB3kJLIhO8re94``) taken out of a log block as the 96 random bits they are, and put
back (FORMAT.md §7.3, log payload format 3).

Zeek names each connection (and file, ...) with a prefix letter and 96 random bits, written as a
32-bit number then a 64-bit number in base 62, digits ``0-9a-zA-Z``, least significant digit
first, without padding (so 15 to 18 characters, the last digit of each number not ``0``). No text
model predicts those characters: written out they cost about 13 bytes each, as bits exactly 12.

So every such token (a capital letter, then 13 to 17 base-62 digits holding both a lower-case and
an upper-case letter, not part of a longer word) that reads as two numbers in range is replaced
by a *marker byte* (one the block does not hold) and its prefix letter; the numbers go to the
*values* stream (12 bytes each, big-endian: 4 then 8), and an *ops* stream says per token whether
it is new (``0``) or the same as the k-th newest distinct UID before it (``k``, a varint). A
token with no decimal digit that occurs more than once in the block is more likely a word
(``ConnectionManager``) than a UID and stays as it is; and when fewer than half the tokens of
that shape read as UIDs, the block is left as it is. The decoder replaces the markers, in order.
Any token may be taken this way: the rewrite is exact whatever it takes, it only costs bytes
when it takes a word.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from nncodec.core.errors import NncodecError
from nncodec.core.framing import decode_varint, encode_varint

DIGITS = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUE = {digit: value for value, digit in enumerate(DIGITS)}
CANDIDATE = re.compile(rb"(?<!\w)[A-Z](?=[0-9a-zA-Z]*[a-z])(?=[0-9a-zA-Z]*[A-Z])[0-9a-zA-Z]{13,17}(?!\w)")
_DECIMAL_DIGIT = re.compile(rb"[0-9]")
#: marker bytes, in order of preference: control characters logs rarely hold, then high bytes
MARKERS = bytes([*range(1, 9), *range(14, 32), 127, *range(128, 256)])
MIN_UIDS = 8  # fewer UIDs in a block are not worth the rewrite's few bytes
MIN_TAKEN_SHARE = 0.5  # ... nor when most tokens of their shape do not read as UIDs
VALUE_SIZE = 12
SAMPLE_SIZE = 1 << 20
_LOW_BITS, _HIGH_BITS = 64, 32


def _number(digits: bytes) -> int:
    value = 0
    for digit in reversed(digits):
        value = value * 62 + _VALUE[digit]
    return value


def _base62(value: int) -> bytes:
    out = bytearray()
    while True:
        value, digit = divmod(value, 62)
        out.append(DIGITS[digit])
        if not value:
            return bytes(out)


def parse_uid(token: bytes) -> int | None:
    """The 96 bits of a UID token (prefix letter included), or None when it is not one."""
    body = token[1:]
    for cut in range(min(6, len(body) - 1), 0, -1):
        high, low = body[:cut], body[cut:]
        if (cut > 1 and high[-1] == 48) or (len(low) > 1 and low[-1] == 48):  # a leading "0"
            continue
        high_value, low_value = _number(high), _number(low)
        if high_value >> _HIGH_BITS or low_value >> _LOW_BITS:
            continue
        return high_value << _LOW_BITS | low_value
    return None


def render_uid(prefix: bytes, bits: int) -> bytes:
    """The token for a prefix letter and 96 bits (inverse of ``parse_uid``)."""
    return prefix + _base62(bits >> _LOW_BITS) + _base62(bits & ((1 << _LOW_BITS) - 1))


def _uids_among(tokens: list[bytes]) -> tuple[dict[bytes, int], float]:
    """The candidate tokens that are taken as UIDs (token -> bits), and their share of ``tokens``."""
    counts = Counter(tokens)
    uids = {}
    for token, count in counts.items():
        if count == 1 or _DECIMAL_DIGIT.search(token):
            bits = parse_uid(token)
            if bits is not None:
                uids[token] = bits
    return uids, sum(counts[token] for token in uids) / max(len(tokens), 1)


def extract(data: bytes) -> tuple[bytes, int, bytes, bytes] | None:
    """``(rewritten block, marker byte, ops, values)``, or None when the block holds too few UIDs
    or every marker byte. A block over 4 x SAMPLE_SIZE is first judged on a sample: when under half
    of MIN_TAKEN_SHARE of the sample's candidates read as UIDs, the whole block is not scanned (the
    scan costs 0.2 s per 13 MB, and JSON logs hold many CamelCase keys of the UID shape)."""
    if len(data) > 4 * SAMPLE_SIZE:
        sample = b"".join(data[i : i + SAMPLE_SIZE // 16] for i in range(0, len(data), len(data) // 16))
        if _uids_among(CANDIDATE.findall(sample))[1] < MIN_TAKEN_SHARE / 2:
            return None
    tokens = CANDIDATE.findall(data)
    if len(tokens) < MIN_UIDS:
        return None
    marker = next((m for m in MARKERS if m not in data), None)  # bytes.__contains__ of an int
    if marker is None:
        return None
    uids, share = _uids_among(tokens)
    if len(uids) < MIN_UIDS or share < MIN_TAKEN_SHARE:
        return None  # few of the candidates read as UIDs: words (``CalDAVPrincipal``), not UIDs
    ops, values = bytearray(), bytearray()
    index: dict[bytes, int] = {}  # token -> its number among distinct UIDs
    tag = bytes([marker])

    def replace(match: re.Match[bytes]) -> bytes:
        token = match.group(0)
        bits = uids.get(token)
        if bits is None:
            return token
        seen = index.get(token)
        if seen is None:
            index[token] = len(index)
            ops.append(0)
            values.extend(bits.to_bytes(VALUE_SIZE, "big"))
        else:
            ops.extend(encode_varint(len(index) - seen))
        return tag + token[:1]

    return CANDIDATE.sub(replace, data), marker, bytes(ops), bytes(values)


_RECORD = np.dtype([("high", ">u4"), ("low", ">u8")])
_DIGIT_CHARS = np.frombuffer(DIGITS, dtype=np.uint8)


def _digits(values: np.ndarray, places: int) -> tuple[np.ndarray, np.ndarray]:
    """Base-62 digit characters of uint64 values, least significant first, as an array of
    ``places`` columns, and how many of them each value uses."""
    rest = values.astype(np.uint64, copy=True)
    chars = np.empty((len(values), places), dtype=np.uint8)
    lengths = np.ones(len(values), dtype=np.int64)
    for place in range(places):
        chars[:, place] = _DIGIT_CHARS[(rest % np.uint64(62)).astype(np.int64)]
        rest //= np.uint64(62)
        lengths += rest > 0
    return chars, lengths


def render_values(values: bytes) -> list[bytes]:
    """The base-62 text (without prefix) of each 12-byte value of a values stream."""
    records = np.frombuffer(values, dtype=_RECORD)
    high, high_lengths = _digits(records["high"].astype(np.uint64), 6)
    low, low_lengths = _digits(records["low"].astype(np.uint64), 11)
    chars = np.concatenate([high, low], axis=1)
    places = np.arange(chars.shape[1])
    used = np.where(places < 6, places < high_lengths[:, None], places - 6 < low_lengths[:, None])
    flat = chars[used].tobytes()
    ends = np.cumsum(high_lengths + low_lengths).tolist()
    return [flat[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]


def read_ops(ops: bytes, markers: int, what: str) -> list[int]:
    """The varints of an ops stream, one per marker (also for nncodec/log/rewrites/uuids.py).
    ValueError when the stream is damaged or holds another count."""
    if ops.isascii():  # one byte per token: the usual case, read at once
        codes = list(ops)
    else:
        codes, pos = [], 0
        while pos < len(ops):
            try:
                code, pos = decode_varint(ops, pos)
            except NncodecError as exc:
                raise ValueError(f"{what} ops stream is damaged") from exc
            codes.append(code)
    if len(codes) != markers:
        raise ValueError(f"{what} ops stream does not match the block's markers")
    return codes


def restore(data: bytes, marker: int, ops: bytes, values: bytes) -> bytes:
    """Inverse of ``extract``. ValueError when the streams do not fit the block."""
    pieces = data.split(bytes([marker]))
    if len(values) % VALUE_SIZE:
        raise ValueError("UID values stream has a partial value")
    distinct = render_values(values)
    backs = read_ops(ops, len(pieces) - 1, "UID")
    out = [pieces[0]]
    new = 0
    for piece, back in zip(pieces[1:], backs, strict=True):
        if back == 0:
            if new >= len(distinct):
                raise ValueError("UID values stream ends early")
            text = distinct[new]
            new += 1
        elif back > new:
            raise ValueError("UID refers to no earlier UID")
        else:
            text = distinct[new - back]
        prefix = piece[:1]
        if not (b"A" <= prefix <= b"Z"):
            raise ValueError("UID marker without its prefix letter")
        out += (prefix, text, piece[1:])
    if new != len(distinct):
        raise ValueError("UID streams are longer than the block's UIDs")
    return b"".join(out)
