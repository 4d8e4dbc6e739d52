"""The ``log`` codec: lines split into templates and columns, each stream coded by its best backend.

A block is cut into lines; each line into its template (literal text) and variables, which go to
columns (nncodec/log/templates.py). The resulting streams (layout, literal text, one template id per
line, number columns, text columns) are each coded with whichever of PPMd, xz and zstd is smallest
(nncodec/entropy/backends.py), so the choice is made per stream and recorded in it.

Some logs (web access logs full of URLs and browser names) code better as they are: a block is
also coded whole with PPMd or xz when a 1 MiB sample says that may win, and the smaller is kept.

Web access logs (Common/Combined Log Format) are also tried as field streams, regrouped by client
(nncodec/log/formats/accesslog.py, mode 2), when at least half their lines parse as such; tab-separated logs
(Zeek) as whole rows with their number columns taken out (nncodec/log/formats/tsvlog.py, mode 3), when at
least half their lines have the same tab count. Zeek UIDs are taken out of any block first, as
the random bits they are (nncodec/log/rewrites/zeekuid.py, format 3), and UUIDs as their 16 bytes
(nncodec/log/rewrites/uuids.py).

Before any of these, JSON lines may be regrouped so that the records of one flow, port or event
kind follow each other (nncodec/log/rewrites/linegroups.py); then text derived from other text on
its line (``1187 bytes (1.15 KB)``) may be dropped and recomputed when decoding
(nncodec/log/rewrites/sizes.py); payload format 2 says which formula. In JSON lines, text a string
value repeats from the line's other fields (a Windows event's rendered ``Message``) becomes a
reference to that field (nncodec/log/rewrites/fieldrefs.py). Format 4 lists the rewrites used, in
order.

Blocks are independent (any block decodes alone, in parallel with the others); what an encoder
learns in one block is not needed to decode the next. Frame params: none. Payload::

    u8 format (1) | u8 mode 0 | varint S | S x varint coded-stream size | S coded streams
        (backends.py tags: layout, literals, template ids, numbers, text, references, then one
        per number column of at least BIG_COLUMN values, in column order)
    u8 format (1) | u8 mode 1 | the whole block as one coded stream
    u8 format (1) | u8 mode 2 | varint S (7) | S x varint coded-stream size | S coded streams
        (accesslog.STREAM_NAMES: kinds, verbatim, clients, addresses, users, times, requests)
    u8 format (1) | u8 mode 3 | varint S | S x varint coded-stream size | S coded streams
        (tsvlog: layout, rest, then symbols and low bits of each number column)
    u8 format (2) | u8 mode | u8 size formula (sizes.SIZE_FORMULAS) | as format 1 after its
        mode byte, for the rewritten block
    u8 format (3) | u8 mode | u8 size formula (0: none) | u8 UID marker | varint size | coded UID
        ops | varint size | coded UID values | as format 1 after its mode byte, for the block
        with its Zeek UIDs taken out (nncodec/log/rewrites/zeekuid.py) after the size rewrite
    u8 format (4) | u8 mode | u8 R | R rewrites | as format 1 after its mode byte, for the block
        rewritten by the R rewrites in the order listed (a reader undoes them in reverse order);
        rewrite = u8 id 1 (derived sizes) | u8 formula, or u8 id 2 (Zeek UIDs) | u8 marker |
        varint size | varint size | coded UID ops | coded UID values, or u8 id 3 (JSON field
        references, nncodec/log/rewrites/fieldrefs.py) | u8 marker, or u8 id 4 (UUIDs as 16 bytes,
        nncodec/log/rewrites/uuids.py) | u8 marker | varint size | varint size | coded UUID ops |
        coded UUID values, or u8 id 5 (JSON lines regrouped by a key's value,
        nncodec/log/rewrites/linegroups.py) | varint size | coded group ops. Formats 1-3 (still
        read) stand for the lists (), (sizes) and ([sizes,] UIDs).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from nncodec.codecs.base import BlockDeclined, Codec
from nncodec.core.errors import CorruptError, TruncatedError
from nncodec.core.framing import decode_varint, encode_varint, join_streams, read_streams, split_streams
from nncodec.entropy.backends import (
    STORED,
    ZSTD_QUICK_LEVEL,
    decode_stream,
    encode_stream,
    ppmd_size,
    zstd_compress,
)
from nncodec.log.formats import accesslog, tsvlog
from nncodec.log.rewrites import linegroups, uuids, zeekuid
from nncodec.log.rewrites.fieldrefs import expand_fields, reduce_fields
from nncodec.log.rewrites.sizes import expand_sizes, reduce_sizes
from nncodec.log.templates import (
    BIG_COLUMN,
    MAX_LINES,
    STREAM_NAMES,
    build_table,
    render_table,
    table_from_streams,
    table_streams,
)

FORMAT_VERSION = 1
FORMAT_REWRITTEN = 2  # format 1 plus a rewrite byte
FORMAT_UIDS = 3  # format 2 plus the UID streams
FORMAT_REWRITES = 4  # written: the rewrites listed explicitly, by id, in the order applied
# rewrite ids (format 4)
REWRITE_SIZES, REWRITE_UIDS, REWRITE_FIELDS, REWRITE_UUIDS, REWRITE_GROUPS = 1, 2, 3, 4, 5
MARKED_REWRITES = {REWRITE_UIDS: zeekuid, REWRITE_UUIDS: uuids}  # marked tokens: ops and values streams
MAX_REWRITES = 8
COLUMNS, WHOLE, ACCESS, TSV = 0, 1, 2, 3  # payload modes
#: when this share of a block's lines are access-log lines, the columns mode (slow, and built for
#: templated logs: 77% larger than mode 2 on apache_logs) is not tried
ACCESS_ONLY_SHARE = 0.9
#: the columns mode must be this much smaller than mode 2 to be kept: on a block that mixes an access
#: log with JSON lines (the shared-log concatenation's first 16 MiB) mode 2 decoded in 0.19 s and the
#: columns in 1.23 s, for 2.4% more bytes
ACCESS_KEPT_WITHIN = 1.03
PROBE_SIZE = 1 << 20  # sample that decides whether coding the lines as they are may win
WHOLE_PROBE_ORDER = 16
WHOLE_BLOCK_CODERS = ("ppmd-32",)  # 7z's PPMd at -mx9 is order 32
DEFAULT_CODERS = ("ppmd", "xz-quick", "zstd")
COLUMN_CODERS = ("ppmd-3", "ppmd-8", "xz-quick")  # what wins on number columns, and quick to try
#: a block's payload must be this much smaller than a quick zstd pass for the engine to skip its
#: slower zstd -19 trial (which rarely gains more than this over zstd -3 on logs)
QUICK_ZSTD_MARGIN = 0.6


class LogCodec(Codec):
    codec_id = 5
    name = "log"
    block_size = 16 << 20
    max_block_size = 64 << 20  # bounds a corrupt header's decoding work
    memory_base = 1 << 20
    memory_per_byte = (64.0, 16.0)
    process_blocks = True  # templates, columns and rewrites are Python: blocks go to processes at -T N

    def encode_block(self, data: bytes) -> bytes:
        if data.count(b"\n") >= MAX_LINES:
            raise BlockDeclined(f"more than {MAX_LINES} lines")  # zstd codes the block instead
        rewrites = []  # (id, its bytes), in the order applied
        grouped = linegroups.extract(data, _columns_estimate)  # first: it reads the lines as JSON
        if grouped is not None:
            data, ops = grouped
            rewrites.append(bytes([REWRITE_GROUPS]) + join_streams([encode_stream(ops)]))
        data, marker = reduce_fields(data)
        if marker:
            rewrites.append(bytes([REWRITE_FIELDS, marker]))
        data, formula = reduce_sizes(data)
        if formula:
            rewrites.append(bytes([REWRITE_SIZES, formula]))
        uids = zeekuid.extract(data)
        if uids is not None:
            data, marker, ops, values = uids
            uid_streams = [encode_stream(ops), bytes([STORED]) + values]
            rewrites.append(bytes([REWRITE_UIDS, marker]) + join_streams(uid_streams))
        found = uuids.extract(data)
        if found is not None:
            data, marker, ops, values = found
            uuid_streams = [encode_stream(ops), encode_stream(values)]
            rewrites.append(bytes([REWRITE_UUIDS, marker]) + join_streams(uuid_streams))
        access = accesslog.encode(data)
        candidates = []
        access_payload = b""
        if access is not None:
            coded, share = access
            access_payload = bytes([ACCESS]) + encode_varint(len(coded)) + join_streams(coded)
            candidates.append(access_payload)
        tsv = tsvlog.encode(data, self.map_parallel) if access is None else None
        if tsv is not None:
            candidates.append(bytes([TSV]) + encode_varint(len(tsv)) + join_streams(tsv))
        if access is None or share < ACCESS_ONLY_SHARE:
            candidates.append(self._columns_payload(data))
        if self._whole_block_may_win(data, min(map(len, candidates))):
            candidates.append(bytes([WHOLE]) + encode_stream(data, WHOLE_BLOCK_CODERS))
        payload = min(candidates, key=len)
        columns_barely_smaller = len(access_payload) <= ACCESS_KEPT_WITHIN * len(payload)
        if access_payload and payload[0] == COLUMNS and columns_barely_smaller:
            payload = access_payload  # mode 2 decodes several times faster than the columns
        return bytes([FORMAT_REWRITES, payload[0], len(rewrites)]) + b"".join(rewrites) + payload[1:]

    def _columns_payload(self, data: bytes) -> bytes:
        """The columns payload after the format byte."""
        streams = table_streams(build_table(data))
        coders = [DEFAULT_CODERS] * len(STREAM_NAMES) + [COLUMN_CODERS] * (len(streams) - len(STREAM_NAMES))
        coded = self.map_parallel(lambda job: encode_stream(*job), list(zip(streams, coders, strict=True)))
        return bytes([COLUMNS]) + encode_varint(len(coded)) + join_streams(coded)

    def _whole_block_may_win(self, data: bytes, columns_size: int) -> bool:
        """Whether PPMd of the lines as they are may beat the columns: it does within 10% on a
        1 MiB sample (whole lines) of the block, judged by ratio."""
        if len(data) <= PROBE_SIZE:
            return True
        probe = data[: data.rfind(b"\n", 0, PROBE_SIZE) + 1] or data[:PROBE_SIZE]
        plain = ppmd_size(probe, WHOLE_PROBE_ORDER)
        return plain / len(probe) < 1.1 * columns_size / len(data)

    def needs_fallback_trial(self, data: bytes, payload: bytes) -> bool:
        quick = zstd_compress(data, ZSTD_QUICK_LEVEL)
        return len(payload) > QUICK_ZSTD_MARGIN * len(quick)

    def decode_block(self, payload: bytes, original_size: int) -> bytes:
        mode, rewrites, start = self._read_head(payload)
        if mode == WHOLE:
            data = decode_stream(payload[start:], original_size, "log block")
        else:
            data = self._decode_streams(mode, payload, start, original_size)
        for rewrite, argument in reversed(rewrites):  # undone in the reverse order of their use
            if rewrite == REWRITE_GROUPS:
                data = self._restore_groups(data, argument, original_size)
            elif rewrite in MARKED_REWRITES:
                marker, streams = argument
                data = self._restore_marked(MARKED_REWRITES[rewrite], data, marker, streams, original_size)
            else:
                try:
                    if rewrite == REWRITE_FIELDS:
                        data = expand_fields(data, argument, original_size)
                    else:
                        data = expand_sizes(data, argument)
                except ValueError as exc:
                    raise CorruptError(f"log block: {exc}") from exc
            if len(data) > original_size:
                raise CorruptError("log block decodes to more than its size")
        if len(data) != original_size:
            raise CorruptError("log block decodes to the wrong size")
        return data

    @staticmethod
    def _read_head(payload: bytes) -> tuple[int, list[tuple[int, object]], int]:
        """(mode, rewrites as (id, argument) in the order the writer applied them, position of the
        mode's data). Formats 1-3 read as format 4 with the rewrites their format byte stands for."""
        if len(payload) < 2:
            raise TruncatedError("log block is too short")
        version, mode = payload[0], payload[1]
        if version not in (FORMAT_VERSION, FORMAT_REWRITTEN, FORMAT_UIDS, FORMAT_REWRITES):
            raise CorruptError(f"log block has unknown format {payload[:2].hex()}")
        if mode not in (COLUMNS, WHOLE, ACCESS, TSV):
            raise CorruptError(f"log block has unknown mode {payload[:2].hex()}")
        rewrites: list[tuple[int, object]] = []
        if version == FORMAT_VERSION:
            return mode, rewrites, 2
        if len(payload) < 3:
            raise TruncatedError("log block is too short")
        if version == FORMAT_REWRITTEN:
            if payload[2] == 0:
                raise CorruptError(f"log block has unknown format {payload[:3].hex()}")
            return mode, [(REWRITE_SIZES, payload[2])], 3
        if version == FORMAT_UIDS:
            if len(payload) < 4:
                raise TruncatedError("log block is too short")
            if payload[2]:
                rewrites.append((REWRITE_SIZES, payload[2]))
            uid_streams, pos = read_streams(payload, 4, 2, "log block", fill=False)
            rewrites.append((REWRITE_UIDS, (payload[3], uid_streams)))
            return mode, rewrites, pos
        count, pos = payload[2], 3
        if count > MAX_REWRITES:
            raise CorruptError(f"log block lists {count} rewrites (at most {MAX_REWRITES})")
        for _ in range(count):
            if pos + 2 > len(payload):
                raise TruncatedError("log block ends inside its rewrites")
            rewrite, argument = payload[pos], payload[pos + 1]
            if rewrite in (REWRITE_SIZES, REWRITE_FIELDS):
                rewrites.append((rewrite, argument))
                pos += 2
            elif rewrite == REWRITE_GROUPS:
                group_streams, pos = read_streams(payload, pos + 1, 1, "log block", fill=False)
                rewrites.append((rewrite, group_streams[0]))
            elif rewrite in MARKED_REWRITES:
                uid_streams, pos = read_streams(payload, pos + 2, 2, "log block", fill=False)
                rewrites.append((rewrite, (argument, uid_streams)))
            else:
                raise CorruptError(f"log block uses unknown rewrite {rewrite} (newer nncodec?)")
        return mode, rewrites, pos

    @staticmethod
    def _restore_groups(data: bytes, coded: bytes, original_size: int) -> bytes:
        """Undo the line-group rewrite from its coded ops stream."""
        ops = decode_stream(coded, original_size, "log line groups")
        try:
            return linegroups.restore(data, ops)
        except ValueError as exc:
            raise CorruptError(f"log line groups do not fit the block ({exc})") from exc

    @staticmethod
    def _restore_marked(
        rewrite: ModuleType, data: bytes, marker: int, coded: list[bytes], original_size: int
    ) -> bytes:
        """Undo a rewrite of marked tokens (``zeekuid`` or ``uuids``) from its two coded streams."""
        ops = decode_stream(coded[0], original_size, "log UID ops")
        values = decode_stream(coded[1], original_size, "log UID values")
        try:
            return rewrite.restore(data, marker, ops, values)
        except ValueError as exc:
            raise CorruptError(f"log UID streams do not fit the block ({exc})") from exc

    @staticmethod
    def _decode_streams(mode: int, payload: bytes, pos: int, original_size: int) -> bytes:
        """Modes COLUMNS, ACCESS and TSV: ``varint count | streams``, rebuilt by the mode's decoder."""
        count, pos = decode_varint(payload, pos)
        counts_ok, rebuild, what = STREAM_MODES[mode]
        if not counts_ok(count, original_size):
            raise CorruptError("log block has a wrong stream count")
        coded = split_streams(payload, pos, count, "log")
        try:
            return rebuild(coded, original_size)
        except ValueError as exc:
            raise CorruptError(f"{what} do not fit together ({exc})") from exc


def _columns_estimate(data: bytes) -> int:
    """The columns' streams under zstd -3: how the columns mode's size moves with a rewrite."""
    return sum(len(zstd_compress(stream, ZSTD_QUICK_LEVEL)) for stream in table_streams(build_table(data)))


def _rebuild_columns(coded: list[bytes], original_size: int) -> bytes:
    # the streams of a block never hold more than a few times its size (varints, separators)
    limit = 4 * original_size + 64
    names = [*STREAM_NAMES, *["number column"] * (len(coded) - len(STREAM_NAMES))]
    streams = [decode_stream(c, limit, name) for c, name in zip(coded, names, strict=True)]
    return render_table(table_from_streams(streams, original_size))


#: payload mode -> (whether a stream count is valid for a block's size, rebuild, what the streams are)
STREAM_MODES: dict[int, tuple[Callable[[int, int], bool], Callable[[list[bytes], int], bytes], str]] = {
    COLUMNS: (
        lambda count, size: len(STREAM_NAMES) <= count <= len(STREAM_NAMES) + size // BIG_COLUMN,
        _rebuild_columns,
        "log streams",
    ),
    ACCESS: (
        lambda count, size: count == len(accesslog.STREAM_NAMES),
        accesslog.decode,
        "access-log streams",
    ),
    TSV: (
        lambda count, size: 2 <= count <= 2 + 2 * tsvlog.MAX_FIELDS and count % 2 == 0,
        tsvlog.decode,
        "TSV log streams",
    ),
}
