import io
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nncodec.core import container, framing
from nncodec.core.container import BlockHeader, FileMetadata, FrameHeader
from nncodec.core.errors import CorruptError, NotNncodecError, TruncatedError, UnsupportedFormatError


@given(st.integers(min_value=0, max_value=framing.MAX_VARINT))
def test_varint_round_trip(value):
    encoded = framing.encode_varint(value)
    assert framing.decode_varint(encoded, 0) == (value, len(encoded))
    assert len(encoded) <= 9


def test_varint_rejects_overlong_and_truncated():
    with pytest.raises(CorruptError):
        framing.decode_varint(b"\x80" * 10 + b"\x01", 0)
    with pytest.raises(TruncatedError):
        framing.decode_varint(b"\x80\x80", 0)
    with pytest.raises(ValueError):
        framing.encode_varint(-1)


@given(st.integers(min_value=-(1 << 62), max_value=1 << 62))
def test_zigzag_round_trip(value):
    assert container.unzigzag(container.zigzag(value)) == value


metadata_strategy = st.one_of(
    st.none(),
    st.builds(
        FileMetadata,
        name=st.one_of(st.none(), st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s)),
        mode=st.one_of(st.none(), st.integers(0, 0o7777)),
        mtime_ns=st.one_of(st.none(), st.integers(-(1 << 60), 1 << 60)),
    ),
)


@given(
    codec_id=st.integers(1, 255),
    params=st.binary(max_size=50),
    model_id=st.sampled_from(["", "text-v1", "img.small_2"]),
    content_size=st.one_of(st.none(), st.integers(0, 1 << 40)),
    metadata=metadata_strategy,
)
def test_frame_header_round_trip(codec_id, params, model_id, content_size, metadata):
    header = FrameHeader(
        codec_id=codec_id,
        codec_params=params,
        model_id=model_id,
        model_sha256=bytes(range(32)) if model_id else b"",
        content_size=content_size,
        metadata=metadata,
    )
    stream = io.BytesIO(header.encode() + b"rest")
    assert container.read_frame_header(stream) == header
    assert stream.read() == b"rest"


def test_clean_eof_gives_none():
    assert container.read_frame_header(io.BytesIO(b"")) is None


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def test_newer_version_is_refused_with_versions_named():
    raw = _with_crc(container.MAGIC + bytes([2, 0, 2, 0, 0]))
    with pytest.raises(UnsupportedFormatError, match="format v2; this build reads up to v1"):
        container.read_frame_header(io.BytesIO(raw))


def test_reserved_flag_is_refused():
    raw = _with_crc(container.MAGIC + bytes([1, 0x80, 2, 0, 0]))
    with pytest.raises(UnsupportedFormatError, match="flags"):
        container.read_frame_header(io.BytesIO(raw))


def test_header_crc_mismatch_is_corrupt():
    raw = bytearray(FrameHeader(codec_id=2, content_size=5).encode())
    raw[-1] ^= 1
    with pytest.raises(CorruptError, match="header checksum"):
        container.read_frame_header(io.BytesIO(bytes(raw)))


def test_foreign_and_truncated_magic():
    with pytest.raises(NotNncodecError):
        container.read_frame_header(io.BytesIO(b"PK\x03\x04 a zip file"))
    with pytest.raises(TruncatedError):
        container.read_frame_header(io.BytesIO(container.MAGIC[:2]))


def test_declared_sizes_are_capped_before_reading():
    huge = framing.encode_varint(1 << 60)
    raw = container.MAGIC + bytes([1, 0, 2]) + huge
    with pytest.raises(CorruptError, match="too large"):
        container.read_frame_header(io.BytesIO(raw))
    block = bytearray([2]) + framing.encode_varint(1 << 40) + framing.encode_varint(3)
    block += struct.pack("<I", 0)
    block += struct.pack("<H", zlib.crc32(block) & 0xFFFF)
    with pytest.raises(CorruptError, match="too large"):
        container.read_block_header(io.BytesIO(bytes(block)))


def test_block_header_round_trip_and_end_marker():
    header = BlockHeader(codec_id=2, original_size=1 << 20, payload_size=12345, crc32=0xDEADBEEF)
    stream = io.BytesIO(header.encode() + container.encode_footer(bytes(8)))
    assert container.read_block_header(stream) == header
    assert container.read_block_header(stream) is None
    assert container.read_content_checksum(stream) == bytes(8)


def test_read_exact_reports_truncation():
    with pytest.raises(TruncatedError, match="block 3"):
        container.read_exact(io.BytesIO(b"abc"), 10, "block 3")


def test_unknown_metadata_tags_are_skipped():
    raw = bytes([99, 2, 0xAA, 0xBB]) + FileMetadata(name="x", mode=0o600).encode()
    assert FileMetadata.decode(raw) == FileMetadata(name="x", mode=0o600)


def test_short_metadata_entries_are_corrupt_not_truncated():
    with pytest.raises(CorruptError):
        FileMetadata.decode(bytes([9]))
    with pytest.raises(CorruptError):
        FileMetadata.decode(bytes([2, 0]))
