"""The nncodec container: frames, blocks and checksums (specified in docs/FORMAT.md).

This layer knows bytes only: it writes and parses frame headers, block headers and footers and checks
their CRCs and caps. It knows nothing about codecs or models beyond the ids and hashes it stores.

A file is one or more frames; each frame is::

    header | block* | end-of-blocks byte (0x00) | 8-byte blake2b of the frame's content
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

from nncodec.core.errors import CorruptError, NotNncodecError, TruncatedError, UnsupportedFormatError
from nncodec.core.framing import decode_varint, encode_varint, unzigzag, zigzag

MAGIC = b"\x89NNC"
FORMAT_VERSION = 1

FLAG_CONTENT_SIZE = 0x01
FLAG_METADATA = 0x02
KNOWN_FLAGS = FLAG_CONTENT_SIZE | FLAG_METADATA

END_OF_BLOCKS = 0x00
MODEL_HASH_SIZE = 32  # sha256 of the model's weight file
CONTENT_CHECKSUM_SIZE = 8  # blake2b-64 of the frame's original content

# Caps on what a header may declare, so that a hostile or corrupt header cannot make a reader
# allocate memory in proportion to a declared size.
MAX_PARAMS_SIZE = 1 << 16
MAX_METADATA_SIZE = 1 << 16
MAX_MODEL_ID_SIZE = 255
MAX_BLOCK_SIZE = 1 << 30  # original bytes in one block
READ_CHUNK = 1 << 20

META_NAME = 1
META_MODE = 2
META_MTIME_NS = 3


# ---------------------------------------------------------------------------------------------
# primitive encodings


def read_exact(stream: BinaryIO, size: int, what: str) -> bytes:
    """Read exactly ``size`` bytes, in bounded chunks (a declared size never sizes an allocation)."""
    parts = []
    remaining = size
    while remaining:
        chunk = stream.read(min(remaining, READ_CHUNK))
        if not chunk:
            raise TruncatedError(f"unexpected end of file in {what}")
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def read_varint(stream: BinaryIO, raw: bytearray, what: str) -> int:
    """Read a varint byte by byte from a stream, appending its bytes to ``raw`` (for a CRC)."""
    start = len(raw)
    for _ in range(10):
        raw += read_exact(stream, 1, what)
        if not raw[-1] & 0x80:
            return decode_varint(bytes(raw), start)[0]
    raise CorruptError(f"integer too long in {what}")


def content_hasher() -> hashlib.blake2b:
    """The whole-content checksum: 64-bit blake2b of the original bytes."""
    return hashlib.blake2b(digest_size=CONTENT_CHECKSUM_SIZE)


# ---------------------------------------------------------------------------------------------
# metadata


@dataclass(frozen=True)
class FileMetadata:
    """Optional facts about the original file, restored on decompress (like gzip's name and mtime)."""

    name: str | None = None
    mode: int | None = None
    mtime_ns: int | None = None

    def encode(self) -> bytes:
        out = bytearray()
        if self.name is not None:
            raw_name = os.fsencode(self.name)
            out += bytes([META_NAME]) + encode_varint(len(raw_name)) + raw_name
        if self.mode is not None:
            value = encode_varint(self.mode & 0o7777)
            out += bytes([META_MODE]) + encode_varint(len(value)) + value
        if self.mtime_ns is not None:
            value = encode_varint(zigzag(self.mtime_ns))
            out += bytes([META_MTIME_NS]) + encode_varint(len(value)) + value
        return bytes(out)

    @classmethod
    def decode(cls, buf: bytes) -> FileMetadata:
        """Parse tag-length-value entries; unknown tags are skipped (they are optional by design)."""
        try:
            return cls._decode(buf)
        except TruncatedError as exc:  # the section passed its CRC, so a short entry is corruption
            raise CorruptError(f"metadata corrupt ({exc})") from exc

    @classmethod
    def _decode(cls, buf: bytes) -> FileMetadata:
        fields: dict[str, object] = {}
        pos = 0
        while pos < len(buf):
            tag = buf[pos]
            length, pos = decode_varint(buf, pos + 1)
            if pos + length > len(buf):
                raise CorruptError("metadata entry overruns the metadata section")
            value = buf[pos : pos + length]
            pos += length
            if tag == META_NAME:
                fields["name"] = os.fsdecode(value)
            elif tag == META_MODE:
                fields["mode"] = decode_varint(value, 0)[0] & 0o7777
            elif tag == META_MTIME_NS:
                fields["mtime_ns"] = unzigzag(decode_varint(value, 0)[0])
        return cls(**fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# frame header


@dataclass(frozen=True)
class FrameHeader:
    """Everything a decoder must know before the first block."""

    codec_id: int
    codec_params: bytes = b""
    model_id: str = ""
    model_sha256: bytes = b""
    content_size: int | None = None
    metadata: FileMetadata | None = None
    version: int = FORMAT_VERSION
    #: bytes the header occupied in the file it was read from (0 when built in memory)
    size: int = field(default=0, compare=False)

    def encode(self) -> bytes:
        if not 1 <= self.codec_id <= 255:
            raise ValueError(f"codec id out of range: {self.codec_id}")
        if len(self.codec_params) > MAX_PARAMS_SIZE:
            raise ValueError("codec parameters too large")
        model_id = self.model_id.encode("utf-8")
        if len(model_id) > MAX_MODEL_ID_SIZE:
            raise ValueError("model id too long")
        if model_id and len(self.model_sha256) != MODEL_HASH_SIZE:
            raise ValueError("a model id needs a 32-byte sha256")
        flags = 0
        if self.content_size is not None:
            flags |= FLAG_CONTENT_SIZE
        metadata = self.metadata.encode() if self.metadata is not None else b""
        if self.metadata is not None:
            flags |= FLAG_METADATA
        out = bytearray(MAGIC)
        out += bytes([self.version, flags, self.codec_id])
        out += encode_varint(len(self.codec_params)) + self.codec_params
        out += bytes([len(model_id)]) + model_id
        if model_id:
            out += self.model_sha256
        if self.content_size is not None:
            out += encode_varint(self.content_size)
        if self.metadata is not None:
            out += encode_varint(len(metadata)) + metadata
        out += struct.pack("<I", zlib.crc32(out))
        return bytes(out)


def read_frame_header(stream: BinaryIO) -> FrameHeader | None:
    """Read a frame header; return None at a clean end of input (no byte left before the magic)."""
    first = stream.read(1)
    if not first:
        return None
    raw = bytearray(first)
    raw += stream.read(len(MAGIC) - 1)
    if bytes(raw) != MAGIC:
        if MAGIC.startswith(bytes(raw)):
            raise TruncatedError("unexpected end of file in the frame header")
        raise NotNncodecError("not an nncodec file")
    raw += read_exact(stream, 3, "the frame header")
    version, flags, codec_id = raw[4], raw[5], raw[6]
    if version > FORMAT_VERSION:
        raise UnsupportedFormatError(
            f"made by format v{version}; this build reads up to v{FORMAT_VERSION} (upgrade nncodec)"
        )
    if version == 0:
        raise CorruptError("frame header corrupt (format version 0)")
    if flags & ~KNOWN_FLAGS:
        raise UnsupportedFormatError(
            f"frame uses unknown feature flags 0x{flags:02x} (made by a newer nncodec, or corrupt)"
        )
    if codec_id == 0:
        raise CorruptError("frame header corrupt (codec id 0)")
    params_size = read_varint(stream, raw, "the frame header")
    if params_size > MAX_PARAMS_SIZE:
        raise CorruptError("frame header corrupt (codec parameters too large)")
    params = read_exact(stream, params_size, "the frame header")
    raw += params
    raw += read_exact(stream, 1, "the frame header")
    model_id_raw = read_exact(stream, raw[-1], "the frame header")
    raw += model_id_raw
    model_sha256 = b""
    if model_id_raw:
        model_sha256 = read_exact(stream, MODEL_HASH_SIZE, "the frame header")
        raw += model_sha256
    content_size = None
    if flags & FLAG_CONTENT_SIZE:
        content_size = read_varint(stream, raw, "the frame header")
    metadata_raw = None
    if flags & FLAG_METADATA:
        metadata_size = read_varint(stream, raw, "the frame header")
        if metadata_size > MAX_METADATA_SIZE:
            raise CorruptError("frame header corrupt (metadata too large)")
        metadata_raw = read_exact(stream, metadata_size, "the frame header")
        raw += metadata_raw
    (stored_crc,) = struct.unpack("<I", read_exact(stream, 4, "the frame header"))
    if zlib.crc32(raw) != stored_crc:
        raise CorruptError("frame header corrupt (header checksum mismatch)")
    try:
        model_id = model_id_raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptError("frame header corrupt (model id is not UTF-8)") from exc
    metadata = FileMetadata.decode(metadata_raw) if metadata_raw is not None else None
    return FrameHeader(
        codec_id=codec_id,
        codec_params=params,
        model_id=model_id,
        model_sha256=model_sha256,
        content_size=content_size,
        metadata=metadata,
        version=version,
        size=len(raw) + 4,
    )


# ---------------------------------------------------------------------------------------------
# blocks and footer


@dataclass(frozen=True)
class BlockHeader:
    """One independent block: which codec coded it, its sizes, and the CRC32 of its original bytes."""

    codec_id: int
    original_size: int
    payload_size: int
    crc32: int
    #: bytes the header occupied in the file it was read from (0 when built in memory)
    size: int = field(default=0, compare=False)

    def encode(self) -> bytes:
        if not 1 <= self.codec_id <= 255:
            raise ValueError(f"codec id out of range: {self.codec_id}")
        out = bytearray([self.codec_id])
        out += encode_varint(self.original_size) + encode_varint(self.payload_size)
        out += struct.pack("<I", self.crc32)
        out += struct.pack("<H", zlib.crc32(out) & 0xFFFF)
        return bytes(out)


def read_block_header(stream: BinaryIO) -> BlockHeader | None:
    """Read the next block header; return None at the end-of-blocks marker."""
    raw = bytearray(read_exact(stream, 1, "a block header"))
    codec_id = raw[0]
    if codec_id == END_OF_BLOCKS:
        return None
    original_size = read_varint(stream, raw, "a block header")
    payload_size = read_varint(stream, raw, "a block header")
    raw += read_exact(stream, 4, "a block header")
    (crc,) = struct.unpack("<I", raw[-4:])
    (stored_check,) = struct.unpack("<H", read_exact(stream, 2, "a block header"))
    if zlib.crc32(raw) & 0xFFFF != stored_check:
        raise CorruptError("block header corrupt (header checksum mismatch)")
    if original_size > MAX_BLOCK_SIZE:
        raise CorruptError("block header corrupt (declared size too large)")
    return BlockHeader(codec_id, original_size, payload_size, crc, size=len(raw) + 2)


def encode_footer(content_digest: bytes) -> bytes:
    """End-of-blocks marker followed by the content checksum."""
    if len(content_digest) != CONTENT_CHECKSUM_SIZE:
        raise ValueError("content checksum has the wrong size")
    return bytes([END_OF_BLOCKS]) + content_digest


def read_content_checksum(stream: BinaryIO) -> bytes:
    """Read the content checksum that follows the end-of-blocks marker."""
    return read_exact(stream, CONTENT_CHECKSUM_SIZE, "the frame footer")
