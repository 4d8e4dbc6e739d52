"""The Python API (nncodec.open, NncodecFile, Compressor, Decompressor, compress_stream): README's
examples run as doctests, plus the properties they do not show."""

from __future__ import annotations

import doctest
import io
from pathlib import Path

import pytest

import nncodec
from nncodec.core.errors import CorruptError, TruncatedError

README = Path(__file__).resolve().parents[1] / "README.md"
DATA = (Path(__file__).resolve().parents[1] / "testdata" / "README.md").read_bytes()


def test_readme_examples_run(tmp_path):
    result = doctest.testfile(str(README), module_relative=False, globs={"tmp": tmp_path},
                              optionflags=doctest.ELLIPSIS)  # fmt: skip
    assert result.attempted >= 10 and result.failed == 0


def test_file_object_writes_what_compress_writes(tmp_path):
    path = tmp_path / "a.nnc"
    with nncodec.open(path, "wb", level=2) as f:
        for start in range(0, len(DATA), 333):
            f.write(DATA[start : start + 333])
    assert path.read_bytes() == nncodec.compress(DATA, level=2)
    with nncodec.open(path) as f:
        assert f.read(10) == DATA[:10]
        assert f.read1(5) == DATA[10:15]
        assert f.read() == DATA[15:]
    with open(path, "rb") as raw, nncodec.NncodecFile(raw) as f:  # a file object, not a path
        assert f.readable() and not f.writable()
        assert f.read() == DATA
        with pytest.raises(io.UnsupportedOperation):
            f.write(b"x")
    with pytest.raises(ValueError):
        nncodec.open(path, "rw")


def test_append_mode_adds_a_frame(tmp_path):
    path = tmp_path / "a.nnc"
    with nncodec.open(path, "wb") as f:
        f.write(b"one\n")
    with nncodec.open(path, "ab") as f:
        f.write(b"two\n")
    assert nncodec.decompress(path.read_bytes()) == b"one\ntwo\n"
    with pytest.raises(FileExistsError):
        nncodec.open(path, "xb")


@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_decompressor_any_split(piece):
    packed = nncodec.compress(DATA[:3000], level=1, block_size=500) + nncodec.compress(b"tail", level=1)
    d = nncodec.Decompressor()
    out = b"".join(d.decompress(packed[i : i + piece]) for i in range(0, len(packed), piece))
    assert out == DATA[:3000] + b"tail" and d.eof and d.frames == 2
    d.finish()


def test_decompressor_reports_damage_and_truncation():
    packed = bytearray(nncodec.compress(DATA, level=1))
    d = nncodec.Decompressor()
    d.decompress(bytes(packed[:-5]))
    assert not d.eof
    with pytest.raises(TruncatedError):
        d.finish()
    packed[len(packed) // 2] ^= 0x40
    with pytest.raises(CorruptError):
        nncodec.Decompressor().decompress(bytes(packed))


def test_compressor_emits_frames_when_its_buffer_fills():
    c = nncodec.Compressor(level=1, frame_bytes=1000)
    first = c.compress(DATA[:1500])
    assert first and nncodec.decompress(first) == DATA[:1500]
    assert c.compress(b"") == b"" and c.flush() == b""


def test_streams_round_trip_with_a_learned_codec():
    src, dst, back = io.BytesIO(DATA), io.BytesIO(), io.BytesIO()
    assert nncodec.compress_stream(src, dst) == len(dst.getvalue())
    assert nncodec.decompress_stream(io.BytesIO(dst.getvalue()), back) == len(DATA)
    assert back.getvalue() == DATA


def test_progress_moves_inside_a_text_block():
    """A text block under 1 MiB is one block; the bar still moves while it is coded (issue 18), and
    the units add up to the input (compress) and to the blocks' bytes (decompress)."""
    from nncodec.core import engine

    data = (README.parent / "testdata" / "text" / "dickens_head.txt").read_bytes()[:30000]
    calls: list[int] = []
    packed = io.BytesIO()
    engine.compress_stream(io.BytesIO(data), packed, progress=calls.append)
    assert dict(engine.scan_frames(io.BytesIO(packed.getvalue()))[0].block_codecs) == {"text": 1}
    assert len(calls) > 3 and sum(calls) == len(data)
    calls.clear()
    engine.decompress_stream(io.BytesIO(packed.getvalue()), io.BytesIO(), progress=calls.append)
    per_block: list[int] = []  # with -T2 blocks report whole, as before
    engine.decompress_stream(
        io.BytesIO(packed.getvalue()), io.BytesIO(), threads=2, progress=per_block.append
    )
    assert len(calls) > 3 and sum(calls) == sum(per_block)
