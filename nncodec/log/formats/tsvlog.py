"""Tab-separated logs (Zeek, Bro, any TSV with a fixed column count) as a text stream plus number
columns, exactly reversible (FORMAT.md §7.3, log mode 3).

Most columns of such logs (addresses, protocol names, flags, server names) are best predicted by
PPMd reading whole rows, where one column tells much about the next. A few hold numbers that are
nearly all different (timestamps ``1521911720.613421``, client ports, transaction ids): as digits
inside the rows they cost more than as numbers, and they spoil PPMd's contexts. Those columns are
taken out:

* **rest**: every line, rows with the numbers of number columns left out (an empty cell); a cell
  of a number column that does not hold a number of the column's form keeps its text after ``!``;
  lines that are not rows (``#`` headers, lines with another tab count) are there as they are;
* **layout**: the column count, then per column ``0`` (text) or ``1, f, transform``: a number
  column of decimals with ``f`` fraction digits (``f = 0``: integers), stored as differences
  from the column's previous number (``DELTA``), from the previous number in a row with the same
  text in the column before (``KEYED``: a client's previous port), or as they are (``PLAIN``);
* two streams per number column: its differences as magnitude-class symbols and their low bits
  (nncodec/log/intcode.py).

A line is a row when it does not start with ``#`` and has the block's most common tab count, so
the decoder tells rows from other lines the same way in the rest stream. Numbers are plain
decimal (no sign, no leading zeros, at most 18 digits, exactly ``f`` fraction digits); anything
else stays text, so any input round-trips.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from nncodec.core.errors import NncodecError
from nncodec.core.framing import decode_varint, encode_varint
from nncodec.entropy.backends import decode_stream, encode_stream
from nncodec.log import intcode
from nncodec.log.intcode import join_integers, split_integers

PLAIN, DELTA, KEYED = 0, 1, 2
TRANSFORMS = (PLAIN, DELTA, KEYED)
MIN_FIELDS = 3
MAX_FIELDS = 256
MAX_FRACTION = 9
PROBE_LINES = 200
SAMPLE_ROWS = 4096  # rows that decide which columns are number columns
MIN_ROW_SHARE = 0.5  # the mode is used when at least this share of lines are rows
MIN_NUMBER_SHARE = 0.5  # a column is a number column when this share of its cells are numbers
MIN_DISTINCT_SHARE = 0.125  # ... nearly all different (few values are cheap in the rows)
MAX_NUMBER = 1 << 62  # numbers and their differences fit int64, zigzag too
ESCAPE = b"!"
NUMBER = re.compile(rb"(0|[1-9][0-9]{0,17})(?:\.([0-9]{1,9}))?\Z")
SYMBOL_CODERS = ("ppmd", "xz-quick")
RAW_CODERS = ("ppmd-3", "zstd")  # low bits are near random: stored, unless these find something
REST_CODERS = ("ppmd", "xz-quick")


def _parse_number(cell: bytes, fraction: int) -> int | None:
    match = NUMBER.match(cell)
    if match is None:
        return None
    whole, digits = match.groups()
    if (len(digits) if digits else 0) != fraction:
        return None
    value = int(whole) * 10**fraction + (int(digits) if digits else 0)
    return value if value < MAX_NUMBER else None


def _render_number(value: int, fraction: int) -> bytes:
    if not fraction:
        return b"%d" % value
    whole, part = divmod(value, 10**fraction)
    return b"%d.%0*d" % (whole, fraction, part)


def _form(cell: bytes) -> int | None:
    """The fraction digits of a plain decimal cell, or None."""
    match = NUMBER.match(cell)
    if match is None:
        return None
    return len(match.group(2)) if match.group(2) else 0


def _differences(numbers: list[int], keys: list[bytes], transform: int) -> np.ndarray:
    values = np.array(numbers, dtype=np.int64)
    if transform == DELTA:
        return np.diff(values, prepend=0)
    if transform == KEYED:
        last: dict[bytes, int] = {}
        out = np.empty(len(numbers), dtype=np.int64)
        for i, (key, value) in enumerate(zip(keys, numbers, strict=True)):
            out[i] = value - last.get(key, 0)
            last[key] = value
        return out
    return values


def _field_count(lines: list[bytes]) -> int | None:
    counts = Counter(line.count(b"\t") for line in lines[:PROBE_LINES] if not line.startswith(b"#"))
    if not counts:
        return None
    tabs, seen = counts.most_common(1)[0]
    if not MIN_FIELDS <= tabs + 1 <= MAX_FIELDS or seen < MIN_ROW_SHARE * min(len(lines), PROBE_LINES):
        return None
    return tabs + 1


def _is_row(line: bytes, tabs: int) -> bool:
    return not line.startswith(b"#") and line.count(b"\t") == tabs


def encode(data: bytes, map_parallel=map) -> list[bytes] | None:  # noqa: ANN001 - a map function
    """The block's coded streams (layout, rest, number columns), or None when the mode does not
    apply. ``map_parallel`` may code the streams in parallel."""
    lines = data.split(b"\n")
    fields = _field_count(lines)
    if fields is None:
        return None
    tabs = fields - 1
    rows = [line.split(b"\t") for line in lines if _is_row(line, tabs)]
    if len(rows) < MIN_ROW_SHARE * len(lines):
        return None
    specs: list[int | None] = []  # per column: fraction digits of a number column, or None
    for column in zip(*rows[:SAMPLE_ROWS], strict=True):  # decided on the first rows
        forms = Counter(_form(cell) for cell in column)
        forms.pop(None, None)
        fraction, count = forms.most_common(1)[0] if forms else (None, 0)
        numeric = (
            fraction is not None and fraction <= MAX_FRACTION and count >= MIN_NUMBER_SHARE * len(column)
        )
        specs.append(fraction if numeric and len(set(column)) >= MIN_DISTINCT_SHARE * len(column) else None)
    number_columns = [j for j, spec in enumerate(specs) if spec is not None]
    numbers: dict[int, list[int]] = {j: [] for j in number_columns}
    keys: dict[int, list[bytes]] = {j: [] for j in number_columns}
    rest = []
    row_index = 0
    for line in lines:
        if not _is_row(line, tabs):
            rest.append(line)
            continue
        cells = rows[row_index]
        row_index += 1
        out = list(cells)
        for j in number_columns:
            value = _parse_number(cells[j], specs[j])
            if value is None:
                out[j] = ESCAPE + cells[j]
            else:
                out[j] = b""
                numbers[j].append(value)
                keys[j].append(cells[j - 1] if j else b"")
        rest.append(b"\t".join(out))

    jobs = [(b"\n".join(rest), REST_CODERS)]
    options = []  # (column, transform, differences): every transform of every column
    for j in number_columns:
        for transform in TRANSFORMS if j else (PLAIN, DELTA):
            values = _differences(numbers[j], keys[j], transform)
            symbols, raw = split_integers(values)
            options.append((j, transform, values))
            jobs += [(symbols, SYMBOL_CODERS), (raw, RAW_CODERS)]
    coded = list(map_parallel(lambda job: encode_stream(*job), jobs))  # in parallel if it can
    best: dict[int, tuple[int, np.ndarray, list[bytes]]] = {}
    for k, (j, transform, values) in enumerate(options):
        pair = coded[1 + 2 * k : 3 + 2 * k]
        if j not in best or sum(map(len, pair)) < sum(map(len, best[j][2])):
            best[j] = (transform, values, pair)
    layout = bytearray(encode_varint(fields))
    streams = [coded[0]]
    chosen: list[tuple[int, int] | None] = []
    differences = {}
    for j, spec in enumerate(specs):
        if spec is None:
            layout.append(0)
            chosen.append(None)
        else:
            transform, values, pair = best[j]
            layout += bytes([1, spec, transform])
            chosen.append((spec, transform))
            differences[j] = values.tolist()
            streams += pair
    row_cells = [line.split(b"\t") if _is_row(line, tabs) else None for line in rest]
    try:
        exact = rebuild(chosen, rest, row_cells, differences) == data
    except ValueError:
        exact = False
    if not exact:
        return None
    return [encode_stream(bytes(layout)), *streams]


def decode(coded: list[bytes], max_size: int) -> bytes:
    """Inverse of ``encode``. ValueError when the streams do not fit together."""
    if len(coded) < 2:
        raise ValueError("TSV block has too few streams")
    layout = decode_stream(coded[0], 4 * MAX_FIELDS + 16, "TSV layout")
    try:
        fields, pos = decode_varint(layout, 0)
    except NncodecError as exc:
        raise ValueError("TSV layout is damaged") from exc
    if not MIN_FIELDS <= fields <= MAX_FIELDS:
        raise ValueError("TSV layout has a bad column count")
    specs: list[tuple[int, int] | None] = []
    for _ in range(fields):
        if pos >= len(layout):
            raise ValueError("TSV layout ends early")
        if layout[pos] == 0:
            specs.append(None)
            pos += 1
            continue
        spec = tuple(layout[pos + 1 : pos + 3])
        if layout[pos] != 1 or len(spec) != 2 or spec[0] > MAX_FRACTION or spec[1] not in TRANSFORMS:
            raise ValueError("TSV layout is damaged")
        if spec[1] == KEYED and len(specs) == 0:
            raise ValueError("TSV layout keys the first column")
        specs.append(spec)
        pos += 3
    number_columns = [j for j, spec in enumerate(specs) if spec is not None]
    if pos != len(layout) or len(coded) != 2 + 2 * len(number_columns):
        raise ValueError("TSV layout does not match the streams")
    rest = decode_stream(coded[1], max_size, "TSV rest").split(b"\n")
    tabs = fields - 1
    row_cells = [line.split(b"\t") if _is_row(line, tabs) else None for line in rest]
    counts = dict.fromkeys(number_columns, 0)
    for cells in row_cells:
        if cells is not None:
            for j in number_columns:
                counts[j] += cells[j] == b""
    differences = {}
    for k, j in enumerate(number_columns):
        # a symbol is a byte or two per number; the low bits at most 60 bits
        symbols = decode_stream(coded[2 + 2 * k], 2 * counts[j], "TSV number symbols")
        raw = decode_stream(
            coded[3 + 2 * k], 8 * counts[j] + 8 * (counts[j] // intcode.CHUNK + 1), "TSV number bits"
        )
        differences[j] = join_integers(symbols, raw, counts[j]).tolist()
    return rebuild(specs, rest, row_cells, differences)


def rebuild(
    specs: list[tuple[int, int] | None],
    rest: list[bytes],
    row_cells: list[list[bytes] | None],
    differences: dict[int, list[int]],
) -> bytes:
    """The block from its rest lines (rows already cut into cells, which this fills in) and each
    number column's differences. ValueError when they do not fit together."""
    number_columns = list(differences)
    out = []
    taken = dict.fromkeys(number_columns, 0)
    last = dict.fromkeys(number_columns, 0)
    keyed_last: dict[int, dict[bytes, int]] = {j: {} for j in number_columns}
    for line, cells in zip(rest, row_cells, strict=True):
        if cells is None:
            out.append(line)
            continue
        for j in number_columns:
            cell = cells[j]
            if cell:
                if not cell.startswith(ESCAPE):
                    raise ValueError("TSV number cell is damaged")
                cells[j] = cell[1:]
                continue
            fraction, transform = specs[j]
            if taken[j] >= len(differences[j]):
                raise ValueError("TSV number stream ends early")
            difference = differences[j][taken[j]]
            taken[j] += 1
            if transform == PLAIN:
                value = difference
            elif transform == DELTA:
                value = last[j] + difference
            else:
                key = cells[j - 1]
                value = keyed_last[j].get(key, 0) + difference
                keyed_last[j][key] = value
            last[j] = value
            if not 0 <= value < MAX_NUMBER:
                raise ValueError("TSV number out of range")
            cells[j] = _render_number(value, fraction)
        out.append(b"\t".join(cells))
    if any(taken[j] != len(differences[j]) for j in number_columns):
        raise ValueError("TSV number stream is too long")
    return b"\n".join(out)
