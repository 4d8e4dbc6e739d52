"""Round trips through the Python API: sizes, block splits, threads, concatenation, fallbacks."""

import io
import os
import random
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nncodec
from nncodec.codecs.raw import RawCodec
from nncodec.core import container, engine
from nncodec.core.container import BlockHeader, FrameHeader
from nncodec.core.errors import CodecUnavailableError, CorruptError, ModelError, NotNncodecError

# a frame's fixed cost: header (no metadata) + one block header + end marker + checksum
FIXED_OVERHEAD = 40


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=3000),
    codec=st.sampled_from(["auto", "raw", "stored"]),
    block_size=st.one_of(st.none(), st.integers(1, 700)),
)
def test_any_bytes_round_trip(data, codec, block_size):
    packed = nncodec.compress(data, codec=codec, block_size=block_size)
    assert nncodec.decompress(packed) == data


@pytest.mark.parametrize("size", [0, 1, 2, 255, 256, 65535, 65536, 65537, 1 << 20])
def test_sizes_round_trip(size):
    data = random.Random(size).randbytes(size // 2) + bytes(size - size // 2)
    assert nncodec.decompress(nncodec.compress(data)) == data


def test_empty_input_is_a_frame_with_no_blocks():
    packed = nncodec.compress(b"")
    (frame,) = engine.scan_frames(io.BytesIO(packed))
    assert frame.blocks == 0 and frame.original_size == 0
    assert nncodec.decompress(packed) == b""


@pytest.mark.parametrize("size", [1, 100, 10_000, 1 << 20])
def test_incompressible_input_grows_by_at_most_the_fixed_overhead(size):
    data = os.urandom(size)
    packed = nncodec.compress(data)
    assert len(packed) <= size + FIXED_OVERHEAD
    assert nncodec.decompress(packed) == data


def test_every_sniffed_kind_round_trips(samples):
    for kind, data in samples.items():
        assert nncodec.decompress(nncodec.compress(data)) == data, kind


def test_thread_count_never_changes_the_output(samples):
    data = b"".join(samples.values()) * 3
    single = nncodec.compress(data, threads=1, block_size=4096)
    assert nncodec.compress(data, threads=2, block_size=4096) == single
    assert nncodec.compress(data, threads=0, block_size=4096) == single
    assert nncodec.decompress(single, threads=2) == data
    assert nncodec.decompress(single, threads=1) == data


def test_concatenated_frames_decode_to_concatenated_content(samples):
    parts = list(samples.values())
    packed = b"".join(nncodec.compress(p, codec="raw", block_size=5000) for p in parts)
    assert nncodec.decompress(packed) == b"".join(parts)


def test_trailing_garbage_after_a_frame_is_an_error():
    with pytest.raises(CorruptError, match="trailing garbage"):
        nncodec.decompress(nncodec.compress(b"hello") + b"junk")


def test_foreign_and_empty_inputs():
    with pytest.raises(NotNncodecError):
        nncodec.decompress(b"\x28\xb5\x2f\xfd not ours")
    with pytest.raises(NotNncodecError):
        nncodec.decompress(b"")


def test_stream_without_known_size_round_trips():
    """Stdin-style input: no content size in the header, blocks cut while reading."""
    data = b"streamed data " * 50_000
    out = io.BytesIO()

    class Pipe(io.RawIOBase):  # returns short reads, like a pipe
        def __init__(self) -> None:
            self.inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            chunk = self.inner.read(min(len(buffer), 1000))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    stats = engine.compress_stream(Pipe(), out, codec="raw", block_size=100_000)
    assert stats.header.content_size is None and stats.blocks == 7
    assert nncodec.decompress(out.getvalue()) == data


def test_unknown_codec_name_is_a_clear_error():
    with pytest.raises(CodecUnavailableError, match="not available"):
        nncodec.compress(b"x", codec="video")


def _frame_with_model(model_id: str, sha256: bytes, data: bytes = b"payload") -> bytes:
    header = FrameHeader(codec_id=RawCodec.codec_id, model_id=model_id, model_sha256=sha256)
    block = BlockHeader(1, len(data), len(data), zlib.crc32(data))
    digest = container.content_hasher()
    digest.update(data)
    return header.encode() + block.encode() + data + container.encode_footer(digest.digest())


def test_missing_model_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCODEC_MODEL_PATH", str(tmp_path))
    with pytest.raises(ModelError, match="needs model 'text-missing'.*not installed"):
        nncodec.decompress(_frame_with_model("text-missing", bytes(32)))


def test_model_hash_mismatch_is_named(tmp_path, monkeypatch):
    import hashlib

    (tmp_path / "toy.safetensors").write_bytes(b"weights v2")
    monkeypatch.setenv("NNCODEC_MODEL_PATH", str(tmp_path))
    with pytest.raises(ModelError, match="needs model 'toy' with sha256"):
        nncodec.decompress(_frame_with_model("toy", hashlib.sha256(b"weights v1").digest()))
    right = _frame_with_model("toy", hashlib.sha256(b"weights v2").digest())
    assert nncodec.decompress(right) == b"payload"


def test_model_ids_cannot_name_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCODEC_MODEL_PATH", str(tmp_path))
    with pytest.raises(ModelError, match="invalid model id"):
        nncodec.decompress(_frame_with_model("../../etc/passwd", bytes(32)))


def test_block_of_a_codec_foreign_to_the_frame_is_corrupt():
    data = b"abc"
    header = FrameHeader(codec_id=RawCodec.codec_id)
    block = BlockHeader(9, len(data), len(data), zlib.crc32(data))
    digest = container.content_hasher()
    digest.update(data)
    packed = header.encode() + block.encode() + data + container.encode_footer(digest.digest())
    with pytest.raises(CorruptError, match="block 0"):
        nncodec.decompress(packed)


def test_frame_needing_a_codec_this_build_lacks():
    packed = FrameHeader(codec_id=8).encode() + container.encode_footer(container.content_hasher().digest())
    with pytest.raises(CodecUnavailableError, match="unknown codec id 8"):
        nncodec.decompress(packed)


def test_model_id_with_a_trailing_newline_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCODEC_MODEL_PATH", str(tmp_path))
    with pytest.raises(ModelError, match="invalid model id"):
        nncodec.decompress(_frame_with_model("abc\n", bytes(32)))


def test_blocks_declaring_more_than_the_frame_are_refused_before_decoding():
    data = b"x" * 1000
    header = FrameHeader(codec_id=RawCodec.codec_id, content_size=3)
    payload = RawCodec().encode_block(data)
    block = BlockHeader(RawCodec.codec_id, len(data), len(payload), zlib.crc32(data))
    packed = header.encode() + block.encode() + payload + container.encode_footer(bytes(8))
    with pytest.raises(CorruptError, match="declare more data"):
        nncodec.decompress(packed)


def test_zstd_payload_must_declare_its_block_size():
    payload = RawCodec().encode_block(b"y" * 100)
    with pytest.raises(CorruptError, match="different size"):
        RawCodec().decode_block(payload, 99)


def test_info_scan_reports_trailing_garbage_like_decompress():
    with pytest.raises(CorruptError, match="trailing garbage"):
        engine.scan_frames(io.BytesIO(nncodec.compress(b"abc") + b"zz"))


def test_scan_counts_the_bytes_actually_read():
    packed = nncodec.compress(b"hello " * 1000, block_size=1000)
    (frame,) = engine.scan_frames(io.BytesIO(packed))
    assert frame.compressed_size == len(packed) and frame.blocks == 6
