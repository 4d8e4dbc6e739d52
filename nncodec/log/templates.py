"""Log lines to templates and columns, and back (the log codec's transform; FORMAT.md §7.3).

Each line is cut at its *variable* tokens: runs of letters, digits and ``_`` that hold a digit
(``2015``, ``10``, ``blk_3886``, ``CqKst53mF3``). What is left, the literal text between them, is
the line's *template*; lines with the same literal pieces share a template (as in CLP). A template
with ``k`` variables has ``k + 1`` literal pieces.

Then one clustering pass in the manner of logzip: rare templates (at most ``MERGE_MAX_LINES``
lines) that differ only in words (a host, a user, a file name) merge into one template whose
differing words are variables too. That is the encoder's choice; a decoder only ever sees pieces
and variables.

Variables become columns. The column of variable ``j`` of a template is the node reached in a trie
by following the template's first ``j + 1`` literal pieces, so templates that start alike (the
same header: ``"", " ", " "`` for ``081109 203615 148 INFO ...``) share the columns of that header
and a timestamp column runs through every line in order, while variables after the point where two
templates differ get columns of their own. A column whose values are all decimal numbers of at most
18 digits is stored as integers (deltas from the previous value when that is cheaper); one whose
numbers all have the same width keeps its leading zeros that way. Other columns are text.

Everything here is exact for any bytes: lines are cut at ``\\n`` only, ``\\r`` and any other byte
sit in the literal pieces, and whether the block ends with a newline is recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from nncodec.nn.rowops import KERNELS

#: a variable token: a decimal number (``1521911720.865716``) or a dotted quad (``10.47.1.100``,
#: one token so that a column of addresses can become a dictionary) that is not part of a longer
#: dotted run (a version), or a whole run of letters/digits/underscore (ASCII ``\w`` on bytes)
#: holding a digit. Anchored at run starts so that a long run without digits costs linear time.
VARIABLE = re.compile(rb"((?<![\w.])(?:\d+\.\d+|\d{1,3}(?:\.\d{1,3}){3})(?![\w.])|(?<!\w)(?=\w*\d)\w+)")

try:  # the same cut in C (nncodec/log/_linesplit.c), ~5x faster; the tests compare the two
    from nncodec.log._linesplit import split as split_line
except ImportError:  # pragma: no cover - built by `pip install`
    split_line = VARIABLE.split
if KERNELS == "numpy":
    split_line = VARIABLE.split

_WORDS = re.compile(rb"[A-Za-z]+")
MAX_NUMBER_DIGITS = 18
#: most lines in one table: memory grows with the line count (Python objects per line), so blocks
#: of very short lines are left to other codecs and a reader refuses more
MAX_LINES = 1 << 20  # fits int64, and so do differences of two such numbers

# column kinds
TEXT, INTEGER, FIXED_WIDTH, DICTIONARY, DECIMAL = 0, 1, 2, 3, 4
NUMERIC_KINDS = (INTEGER, FIXED_WIDTH, DECIMAL)
_DECIMAL = re.compile(rb"(?:0|[1-9][0-9]*)\.([0-9]+)\Z")


@dataclass
class Column:
    kind: int
    width: int = 0  # digits of a FIXED_WIDTH column
    delta: bool = False  # integers stored as differences from the previous value in the column
    values: list[bytes] = field(default_factory=list)  # TEXT values
    numbers: np.ndarray | None = None  # INTEGER / FIXED_WIDTH values
    entry_ids: np.ndarray | None = None  # DICTIONARY: ``dictionary_ids(numbers)``, once known


@dataclass
class LogTable:
    """A block of lines as templates, one template id per line, and columns of variables."""

    templates: list[tuple[bytes, ...]]  # literal pieces of each template
    template_ids: np.ndarray  # int64, one per line
    columns: list[Column]
    final_newline: bool
    layout: list[list[int]] | None = None  # ``column_layout(templates)``, once known


# ---------------------------------------------------------------------------------------------
# lines <-> templates


def split_lines(data: bytes) -> tuple[list[bytes], bool]:
    """Lines without their ``\\n``, and whether ``data`` ends with one. ``b""`` has no lines."""
    if not data:
        return [], False
    lines = data.split(b"\n")
    final_newline = not lines[-1]
    if final_newline:
        lines.pop()
    return lines, final_newline


def column_layout(templates: list[tuple[bytes, ...]]) -> list[list[int]]:
    """For each template, the column id of each of its variables (trie of literal prefixes).
    Column ids are numbered in order of first appearance, templates taken in id order."""
    trie: dict[tuple[int, bytes], int] = {}
    shapes: dict[bytes, bytes] = {}  # piece -> its word shape (pieces repeat across templates)
    layout = []
    for literals in templates:
        node = -1
        columns = []
        for piece in literals[:-1]:
            shape = shapes.get(piece)
            if shape is None:
                shape = shapes[piece] = _WORDS.sub(b"a", piece)
            node = trie.setdefault((node, shape), len(trie))
            columns.append(node)
        layout.append(columns)
    return layout


def _objects(items: list[bytes]) -> np.ndarray:
    """A 1-D object array of these bytes (``np.array`` would make a fixed-width bytes array and
    strip trailing NULs)."""
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _group_positions(template_ids: np.ndarray, count: int) -> list[np.ndarray]:
    """Line numbers of each template's lines, in order."""
    order = np.argsort(template_ids, kind="stable")
    bounds = np.cumsum(np.bincount(template_ids, minlength=count))
    return np.split(order, bounds[:-1])


def build_table(data: bytes) -> LogTable:
    lines, final_newline = split_lines(data)
    index: dict[tuple[bytes, ...], int] = {}
    template_values: list[list[bytes]] = []  # per template, its lines' variables one after another
    ids = []
    for line in lines:
        parts = split_line(line)
        key = tuple(parts[0::2])
        tid = index.get(key)
        if tid is None:
            tid = index[key] = len(index)
            template_values.append([])
        ids.append(tid)
        template_values[tid] += parts[1::2]
    del lines
    template_ids = np.array(ids, dtype=np.int64)
    del ids
    templates = list(index)
    if MERGE_MAX_LINES:
        templates, template_values, template_ids = merge_templates(templates, template_values, template_ids)
    layout = column_layout(templates)
    positions = _group_positions(template_ids, len(templates))

    feeds: dict[int, list[tuple[int, list[bytes]]]] = {}
    for tid, flat in enumerate(template_values):
        slots = len(layout[tid])
        for slot in range(slots):
            feeds.setdefault(layout[tid][slot], []).append((tid, flat[slot::slots]))
    columns = []
    for column_id in range(len(feeds)):
        feed = feeds[column_id]
        if len(feed) == 1:
            values = feed[0][1]
        else:  # several templates feed this column: their values, put in line order
            lines = np.concatenate([positions[tid] for tid, _ in feed])
            flat = _objects([value for _, vals in feed for value in vals])
            values = flat[np.argsort(lines, kind="stable")].tolist()
        columns.append(make_column(values))
    return LogTable(templates, template_ids, columns, final_newline, layout)


MERGE_MAX_LINES = 8
_LETTERS = re.compile(rb"([A-Za-z]+)")


def merge_templates(
    templates: list[tuple[bytes, ...]], template_values: list[list[bytes]], template_ids: np.ndarray
) -> tuple[list[tuple[bytes, ...]], list[list[bytes]], np.ndarray]:
    """logzip's clustering step, on the templates of at most MERGE_MAX_LINES lines: templates that
    differ only in words (runs of letters: a host, a user, a file name) become one template whose
    differing words are variables too, so they go to columns instead of making rare templates.
    Any cut of a line into pieces and variables decodes; this only picks better ones."""
    counts = np.bincount(template_ids, minlength=len(templates))
    groups: dict[tuple[bytes, ...], list[int]] = {}
    for tid, pieces in enumerate(templates):
        if counts[tid] <= MERGE_MAX_LINES:
            groups.setdefault(tuple(_WORDS.sub(b"a", p) for p in pieces), []).append(tid)
    groups = {shape: members for shape, members in groups.items() if len(members) > 1}
    if not groups:
        return templates, template_values, template_ids
    positions = _group_positions(template_ids, len(templates))
    new_id = np.arange(len(templates))
    merged_of: dict[int, tuple[tuple[bytes, ...], list[bytes]]] = {}
    for members in groups.values():
        splits = [[_LETTERS.split(piece) for piece in templates[tid]] for tid in members]
        reference = splits[0]
        pieces: list[bytes] = []
        words: list[list[bytes]] = [[] for _ in members]  # per member, its words in slot order
        word_slots: list[int] = []  # per original variable slot: the word slots before it
        current = b""
        for i, parts in enumerate(reference):
            before = 0
            for k, part in enumerate(parts):
                if k % 2 and len({split[i][k] for split in splits}) > 1:
                    pieces.append(current)
                    current = b""
                    before += 1
                    for m, split in enumerate(splits):
                        words[m].append(split[i][k])
                else:
                    current += part
            word_slots.append(before)
            if i < len(reference) - 1:
                pieces.append(current)
                current = b""
        pieces.append(current)
        rows: list[tuple[int, list[bytes]]] = []
        for m, tid in enumerate(members):
            k = len(templates[tid]) - 1
            flat = template_values[tid]
            for line_index, position in enumerate(positions[tid].tolist()):
                row: list[bytes] = []
                w = 0
                for slot in range(k + 1):
                    row += words[m][w : w + word_slots[slot]]
                    w += word_slots[slot]
                    if slot < k:
                        row.append(flat[line_index * k + slot])
                rows.append((position, row))
        rows.sort(key=lambda item: item[0])
        first = members[0]
        new_id[members] = first
        merged_of[first] = (tuple(pieces), [value for _, row in rows for value in row])
    keep = np.unique(new_id)  # ids that remain, in order
    compact = np.zeros(len(templates), dtype=np.int64)
    compact[keep] = np.arange(len(keep))
    new_templates = []
    new_values = []
    for tid in keep.tolist():
        pieces, values = merged_of.get(tid, (templates[tid], template_values[tid]))
        new_templates.append(pieces)
        new_values.append(values)
    return new_templates, new_values, compact[new_id[template_ids]]


def make_column(values: list[bytes]) -> Column:
    """The cheapest exact kind for a column's values."""
    if len(values) == 1:
        return _one_value_column(values[0])
    return column_of(values)


def column_of(values: list[bytes]) -> Column:
    """``make_column`` for any number of values (the reference of its one-value path)."""
    if not values or min(map(len, values)) == 0 or max(map(len, values)) > MAX_NUMBER_DIGITS + 1:
        return _text_column(values)
    widths = set(map(len, values))
    if b"".join(values).isdigit() and max(widths) <= MAX_NUMBER_DIGITS:
        numbers = np.array([int(v) for v in values], dtype=np.int64)
        if len(widths) == 1:
            kind, width = FIXED_WIDTH, widths.pop()
        elif all(v[0] != 0x30 or len(v) == 1 for v in values):
            kind, width = INTEGER, 0
        else:
            return _text_column(values)
    else:
        matches = [_DECIMAL.match(v) for v in values]
        if not all(matches):
            return _text_column(values)
        fractions = {len(m.group(1)) for m in matches if m}
        if len(fractions) != 1:
            return _text_column(values)
        kind, width = DECIMAL, fractions.pop()
        numbers = np.array([int(v.replace(b".", b"")) for v in values], dtype=np.int64)
    return Column(kind, width, _delta_pays(numbers), numbers=numbers)


def _one_value_column(value: bytes) -> Column:
    """``make_column([value])`` without its general machinery (JSON logs make tens of thousands of
    one-value columns): a number is FIXED_WIDTH or DECIMAL, never stored as a difference."""
    if 0 < len(value) <= MAX_NUMBER_DIGITS and value.isdigit():
        return Column(FIXED_WIDTH, len(value), False, numbers=np.array([int(value)], dtype=np.int64))
    match = _DECIMAL.match(value) if 0 < len(value) <= MAX_NUMBER_DIGITS + 1 else None
    if match:
        number = np.array([int(value.replace(b".", b""))], dtype=np.int64)
        return Column(DECIMAL, len(match.group(1)), False, numbers=number)
    return Column(TEXT, values=[value])


DICTIONARY_SHARE = 0.5


def _text_column(values: list[bytes]) -> Column:
    """A text column, or a DICTIONARY column if values repeat: each value then becomes a number,
    0 for a value not seen before in the column (stored as text), else how many distinct values
    were new since it first came (1 = the newest)."""
    seen: dict[bytes, int] = {}
    refs = []
    for value in values:
        first = seen.get(value)
        if first is None:
            seen[value] = len(seen)
            refs.append(0)
        else:
            refs.append(len(seen) - first)
    if len(seen) > DICTIONARY_SHARE * len(values):
        return Column(TEXT, values=values)
    return Column(DICTIONARY, values=list(seen), numbers=np.array(refs, dtype=np.int64))


def dictionary_ids(refs: np.ndarray) -> np.ndarray:
    """Which dictionary entry each reference of a DICTIONARY column names; ValueError if one
    points before the first entry."""
    new = refs == 0
    count_before = np.cumsum(new) - new  # entries that existed before each position
    ids = np.where(new, count_before, count_before - refs)
    if len(ids) and ids.min() < 0:
        raise ValueError("dictionary reference out of range")
    return ids


def _delta_pays(numbers: np.ndarray) -> bool:
    """Whether differences from the previous value are cheaper to code than the values, judged by
    ``_model_cost`` (short columns: by bit lengths)."""
    if len(numbers) < 64:  # numpy's per-call overhead dominates on short columns
        plain = numbers.tolist()
        deltas = [b - a for a, b in zip([0, *plain[:-1]], plain, strict=True)]
        return sum(abs(d).bit_length() for d in deltas) < sum(abs(v).bit_length() for v in plain)
    return _model_cost(np.diff(numbers, prepend=0)) < _model_cost(numbers)


def _model_cost(values: np.ndarray) -> float:
    """Rough bits to code these integers the way the backends can: each distinct value spelled
    once (its bit length), then every value as a symbol of the column's order-0 statistics. Random
    byte counts cost the same either way (so stay plain); a clock's small repeating steps are
    cheaper as differences."""
    distinct, counts = np.unique(values, return_counts=True)
    symbols = float(-(counts * np.log2(counts / len(values))).sum())
    return symbols + float(np.log2(zigzag(distinct).astype(np.float64) + 2).sum())


def column_values(column: Column) -> list[bytes]:
    if column.kind == TEXT:
        return column.values
    if column.kind == DICTIONARY:
        assert column.numbers is not None
        ids = column.entry_ids if column.entry_ids is not None else dictionary_ids(column.numbers)
        return _objects(column.values)[ids].tolist()
    assert column.numbers is not None
    if column.kind == FIXED_WIDTH:
        fmt = b"%0" + str(column.width).encode() + b"d"
        return [fmt % v for v in column.numbers.tolist()]
    if column.kind == DECIMAL:
        fmt = b"%d.%0" + str(column.width).encode() + b"d"
        scale = 10**column.width
        return [fmt % divmod(v, scale) for v in column.numbers.tolist()]
    return [b"%d" % v for v in column.numbers.tolist()]


def render_table(table: LogTable) -> bytes:
    """The bytes a table stands for. Every line is laid out as its template's pieces with the
    variables between them (and ``\n`` after the last piece), all lines' fragments in one array
    filled a template or a column at a time, then joined once."""
    count = len(table.templates)
    if not len(table.template_ids):
        return b""
    layout = table.layout if table.layout is not None else column_layout(table.templates)
    positions = _group_positions(table.template_ids, count)
    fragments_per_template = np.array([2 * len(columns) + 1 for columns in layout], dtype=np.int64)
    line_fragments = fragments_per_template[table.template_ids]
    line_start = np.cumsum(line_fragments) - line_fragments
    fragments = np.empty(int(line_start[-1] + fragments_per_template[table.template_ids[-1]]), dtype=object)

    for tid, literals in enumerate(table.templates):
        starts = line_start[positions[tid]]
        if not len(starts):
            continue
        pieces = _objects([*literals[:-1], literals[-1] + b"\n"])
        if len(starts) == 1:
            fragments[starts[0] : starts[0] + 2 * len(literals) - 1 : 2] = pieces
        else:
            offsets = np.arange(0, 2 * len(literals) - 1, 2)
            fragments[(starts[:, None] + offsets).ravel()] = np.tile(pieces, len(starts))

    # every variable of every line, in line order: its fragment and its column; a stable sort by
    # column then lists each column's variables in line order, which is how columns hold them
    slots = (fragments_per_template - 1) // 2
    line_slots = slots[table.template_ids]
    total = int(line_slots.sum())
    if total:
        column_of = np.array([c for columns in layout for c in columns], dtype=np.int64)
        first_column = np.cumsum(slots) - slots
        line = np.repeat(np.arange(len(line_slots)), line_slots)
        slot = np.arange(total) - np.repeat(np.cumsum(line_slots) - line_slots, line_slots)
        columns = column_of[first_column[table.template_ids[line]] + slot]
        where = line_start[line] + 2 * slot + 1
        values = _objects([value for column in table.columns for value in column_values(column)])
        fragments[where[np.argsort(columns, kind="stable")]] = values
    data = b"".join(fragments.tolist())
    return data if table.final_newline else data[:-1]


# ---------------------------------------------------------------------------------------------
# integers <-> bytes


def zigzag(values: np.ndarray) -> np.ndarray:
    return ((values << 1) ^ (values >> 63)).view(np.uint64)


def unzigzag(values: np.ndarray) -> np.ndarray:
    return ((values >> np.uint64(1)).view(np.int64)) ^ -((values & np.uint64(1)).view(np.int64))


def pack_varints(values: np.ndarray) -> bytes:
    """Unsigned LEB128 of each uint64, vectorised."""
    values = values.astype(np.uint64)
    if not len(values):
        return b""
    lengths = np.ones(len(values), dtype=np.int64)
    for k in range(1, 10):
        lengths += values >= np.uint64(1 << (7 * k))
    ends = np.cumsum(lengths)
    out = np.zeros(int(ends[-1]), dtype=np.uint8)
    starts = ends - lengths
    for k in range(int(lengths.max())):
        live = lengths > k
        byte = (values[live] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (lengths[live] > k + 1).astype(np.uint64) << np.uint64(7)
        out[starts[live] + k] = (byte | more).astype(np.uint8)
    return out.tobytes()


def unpack_varints(data: bytes, count: int) -> tuple[np.ndarray, int]:
    """The first ``count`` varints of ``data`` and how many bytes they took; ValueError if
    ``data`` holds fewer or one is longer than 10 bytes."""
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(raw < 0x80)
    if len(ends) < count:
        raise ValueError("too few numbers")
    if count == 0:
        return np.zeros(0, dtype=np.uint64), 0
    ends = ends[:count]
    used = int(ends[-1]) + 1
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 10:
        raise ValueError("number too long")
    raw = raw[:used].astype(np.uint64)
    shift = (np.arange(used) - np.repeat(starts, lengths)).astype(np.uint64) * np.uint64(7)
    parts = (raw & np.uint64(0x7F)) << shift
    return np.bitwise_or.reduceat(parts, starts), used


# ---------------------------------------------------------------------------------------------
# table <-> streams

STREAM_NAMES = ("layout", "literals", "template ids", "numbers", "text", "references")
#: a number column with at least this many values gets a stream of its own (after the six above)
BIG_COLUMN = 16384


def table_streams(table: LogTable) -> list[bytes]:
    """The table as byte streams (``STREAM_NAMES``, then one per big number column), each for a
    backend to code."""
    layout = [len(table.template_ids), int(table.final_newline), len(table.templates)]
    for literals in table.templates:
        layout.append(len(literals))
        layout.extend(len(piece) for piece in literals)
    layout.append(len(table.columns))
    numbers = []
    delta_columns = []
    big_columns = []
    text = []
    references = []
    for column in table.columns:
        layout.extend((column.kind, column.width, int(column.delta)))
        if column.kind in (TEXT, DICTIONARY):
            text.extend(value + b"\n" for value in column.values)
        if column.kind == DICTIONARY:
            assert column.numbers is not None
            references.append(column.numbers)
        elif column.kind in NUMERIC_KINDS:
            assert column.numbers is not None
            if len(column.numbers) >= BIG_COLUMN:
                big_columns.append(pack_varints(zigzag(_column_deltas([column.numbers], [column.delta]))))
            else:
                numbers.append(column.numbers)
                delta_columns.append(column.delta)
    return [
        pack_varints(np.array(layout, dtype=np.uint64)),
        b"".join(piece for literals in table.templates for piece in literals),
        pack_varints(table.template_ids.astype(np.uint64)),
        pack_varints(zigzag(_column_deltas(numbers, delta_columns))) if numbers else b"",
        b"".join(text),
        pack_varints(np.concatenate(references).astype(np.uint64)) if references else b"",
        *big_columns,
    ]


def _column_deltas(columns: list[np.ndarray], delta: list[bool]) -> np.ndarray:
    """The columns concatenated, each as its values or (``delta``) its differences from the
    previous value in the column, the first from 0 — in one vectorised pass."""
    values = np.concatenate(columns)
    sizes = np.array([len(c) for c in columns], dtype=np.int64)
    previous = np.concatenate(([0], values[:-1]))
    starts = np.cumsum(sizes) - sizes
    previous[starts[sizes > 0]] = 0
    previous[~np.repeat(np.array(delta, dtype=bool), sizes)] = 0
    return values - previous


class _Reader:
    """Reads varints from the layout stream, failing with ValueError on anything out of range."""

    def __init__(self, data: bytes) -> None:
        self.values, _ = unpack_varints(data, int(np.count_nonzero(np.frombuffer(data, np.uint8) < 0x80)))
        self.pos = 0

    def take(self, limit: int) -> int:
        if self.pos >= len(self.values):
            raise ValueError("layout ends early")
        value = int(self.values[self.pos])
        self.pos += 1
        if value > limit:
            raise ValueError("layout value out of range")
        return value


def _read_templates(reader: _Reader, count: int, literal_data: bytes) -> list[tuple[bytes, ...]]:
    """``count`` templates: per template a piece count then the piece lengths, from ``reader``;
    the pieces' bytes from ``literal_data``, which they must use up exactly."""
    values, pos = reader.values, reader.pos
    counts = []
    lengths = []
    for _ in range(count):
        if pos >= len(values):
            raise ValueError("layout ends early")
        pieces = int(values[pos])
        if not 1 <= pieces <= len(values) - pos - 1:
            raise ValueError("template piece count out of range")
        counts.append(pieces)
        lengths.append(values[pos + 1 : pos + 1 + pieces])
        pos += 1 + pieces
    reader.pos = pos
    sizes = np.concatenate(lengths).astype(np.int64) if lengths else np.zeros(0, dtype=np.int64)
    if len(sizes) and (int(sizes.max()) > len(literal_data) or int(sizes.sum()) != len(literal_data)):
        raise ValueError("template pieces do not fill the literal stream")
    if not len(sizes) and literal_data:
        raise ValueError("literal stream has bytes left over")
    ends = np.cumsum(sizes).tolist()
    pieces = [literal_data[end - size : end] for end, size in zip(ends, sizes.tolist(), strict=True)]
    templates = []
    first = 0
    for pieces_in_template in counts:
        templates.append(tuple(pieces[first : first + pieces_in_template]))
        first += pieces_in_template
    return templates


def _column_values_from_deltas(coded: np.ndarray, sizes: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """The values of number columns stored one after another (``sizes``), each as it is or
    (``delta``) as differences from the previous value in the column, the first from 0: one
    segmented cumulative sum for all (int64 arithmetic wraps alike either way). ValueError when a
    value is out of range."""
    if not len(coded):
        return coded.astype(np.int64)
    coded = coded.astype(np.int64)
    summed = np.repeat(delta, sizes)
    steps = np.where(summed, coded, 0)
    running = np.cumsum(steps)
    before = np.concatenate(([0], running))[np.cumsum(sizes) - sizes]  # the sum before each column
    values = np.where(summed, running - np.repeat(before, sizes), coded)
    if values.min() < 0 or values.max() >= 10**MAX_NUMBER_DIGITS:
        raise ValueError("number column out of range")
    return values


def _dictionary_ids_of_columns(refs: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``dictionary_ids`` of DICTIONARY columns stored one after another (``sizes``) in one pass,
    and each column's entry count (its new values). ValueError if a reference points before its
    column's first entry."""
    new = refs == 0
    running = np.concatenate(([0], np.cumsum(new)))  # entries before each reference, all columns
    ends = np.cumsum(sizes)
    before = running[ends - sizes]  # entries of the earlier columns
    count_before = running[:-1] - np.repeat(before, sizes)
    ids = np.where(new, count_before, count_before - refs)
    if len(ids) and ids.min() < 0:
        raise ValueError("dictionary reference out of range")
    return ids, running[ends] - before


def table_from_streams(streams: list[bytes], max_size: int) -> LogTable:
    """Inverse of ``table_streams`` for a block of at most ``max_size`` bytes; ValueError on
    streams that do not fit together (sizes are checked before anything large is allocated)."""
    layout_data, literal_data, id_data, number_data, text_data, reference_data = streams[:6]
    big_streams = streams[6:]
    reader = _Reader(layout_data)
    line_count = reader.take(min(max_size + 1, MAX_LINES))
    final_newline = bool(reader.take(1))
    template_count = reader.take(max_size + 1)
    templates = _read_templates(reader, template_count, literal_data)
    template_ids, used = unpack_varints(id_data, line_count)
    if used != len(id_data) or (line_count and int(template_ids.max()) >= template_count):
        raise ValueError("template ids do not fit")
    template_ids = template_ids.astype(np.int64)

    layout = column_layout(templates)
    column_count = reader.take(max_size + 1)
    uses = np.bincount(template_ids, minlength=template_count)
    column_sizes = np.zeros(column_count, dtype=np.int64)
    for tid, columns in enumerate(layout):
        for column_id in columns:
            if column_id >= column_count:
                raise ValueError("more columns than recorded")
            column_sizes[column_id] += uses[tid]
    kinds = [(reader.take(4), reader.take(MAX_NUMBER_DIGITS), reader.take(1)) for _ in range(column_count)]
    if reader.pos != len(reader.values):
        raise ValueError("layout has values left over")
    kind_of_column = np.array([kind[0] for kind in kinds], dtype=np.int64)
    sizes_by_kind = np.bincount(kind_of_column, weights=column_sizes, minlength=5).astype(np.int64)
    numeric = np.isin(kind_of_column, NUMERIC_KINDS)
    big = numeric & (column_sizes >= BIG_COLUMN)
    if int(big.sum()) != len(big_streams):
        raise ValueError("wrong number of column streams")
    numbers, used = unpack_varints(number_data, int(column_sizes[numeric & ~big].sum()))
    if used != len(number_data):
        raise ValueError("number stream has bytes left over")
    small = numeric & ~big
    numbers = _column_values_from_deltas(
        unzigzag(numbers), column_sizes[small], np.array([kind[2] for kind in kinds], dtype=bool)[small]
    )
    big_numbers = iter(big_streams)
    references, used = unpack_varints(reference_data, int(sizes_by_kind[DICTIONARY]))
    if used != len(reference_data):
        raise ValueError("reference stream has bytes left over")
    references = references.astype(np.int64)
    dictionary_sizes = column_sizes[kind_of_column == DICTIONARY]
    entry_ids, entry_counts = _dictionary_ids_of_columns(references, dictionary_sizes)
    entry_counts = iter(entry_counts.tolist())
    reference_pos = 0
    texts = text_data.split(b"\n")
    if texts.pop() != b"":
        raise ValueError("text stream does not end with a newline")
    columns = []
    number_pos = text_pos = 0
    for size, (kind, width, delta) in zip(column_sizes.tolist(), kinds, strict=True):
        if kind == TEXT:
            if text_pos + size > len(texts):
                raise ValueError("text stream too short")
            columns.append(Column(TEXT, values=texts[text_pos : text_pos + size]))
            text_pos += size
            continue
        if kind == DICTIONARY:
            refs = references[reference_pos : reference_pos + size]
            ids = entry_ids[reference_pos : reference_pos + size]
            reference_pos += size
            entries = next(entry_counts)
            if text_pos + entries > len(texts):
                raise ValueError("dictionary column does not fit")
            columns.append(
                Column(DICTIONARY, values=texts[text_pos : text_pos + entries], numbers=refs, entry_ids=ids)
            )
            text_pos += entries
            continue
        if size >= BIG_COLUMN:
            data = next(big_numbers)
            coded, used = unpack_varints(data, size)
            if used != len(data):
                raise ValueError("column stream has bytes left over")
            values = _column_values_from_deltas(unzigzag(coded), np.array([size]), np.array([bool(delta)]))
        else:
            values = numbers[number_pos : number_pos + size]
            number_pos += size
        if kind == DECIMAL and not 1 <= width < MAX_NUMBER_DIGITS:
            raise ValueError("decimal column with a bad width")
        if kind == FIXED_WIDTH and not 1 <= width <= MAX_NUMBER_DIGITS:
            raise ValueError("number column out of range")
        columns.append(Column(kind, width, bool(delta), numbers=values))
    if text_pos != len(texts):
        raise ValueError("text stream has values left over")
    return LogTable(templates, template_ids, columns, final_newline, layout)
