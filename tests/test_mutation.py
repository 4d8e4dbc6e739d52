"""Every single-byte change and every truncation of a container decodes to the exact original or
raises a clean NncodecError: never another exception, never silently wrong bytes."""

import random

import pytest
from conftest import run_cli

import nncodec
from nncodec.core.container import FileMetadata
from nncodec.core.engine import compress_stream
from nncodec.core.errors import NncodecError


def _with_metadata(data: bytes) -> bytes:
    import io

    out = io.BytesIO()
    compress_stream(
        io.BytesIO(data),
        out,
        codec="raw",
        content_size=len(data),
        metadata=FileMetadata("a.txt", 0o640, 1234567890),
    )
    return out.getvalue()


def _containers(samples) -> dict[str, tuple[bytes, bytes, dict[int, bytes]]]:
    """name -> (original, container, {cut: content}) where a cut at a frame boundary of concatenated
    frames legitimately decodes to the frames before it (as with gzip and zstd)."""
    text = samples["text"][:3000]
    binary = samples["binary"][:600]
    first = nncodec.compress(text[:200], codec="raw")
    return {
        "stored": (binary, nncodec.compress(binary, codec="stored"), {}),
        "raw-multiblock": (text, nncodec.compress(text, codec="raw", block_size=700), {}),
        "metadata": (text[:500], _with_metadata(text[:500]), {}),
        "concatenated": (
            text[:200] + binary[:100],
            first + nncodec.compress(binary[:100], codec="raw"),
            {len(first): text[:200]},
        ),
        "empty": (b"", nncodec.compress(b""), {}),
    }


def _outcome(packed: bytes, original: bytes) -> str:
    try:
        result = nncodec.decompress(packed)
    except NncodecError:
        return "error"
    assert result == original, "a damaged container decoded to different bytes without an error"
    return "exact"


@pytest.mark.parametrize("name", ["stored", "raw-multiblock", "metadata", "concatenated", "empty"])
def test_every_byte_flip_and_truncation(samples, name):
    original, packed, frame_boundaries = _containers(samples)[name]
    outcomes = {"error": 0, "exact": 0}
    for position in range(len(packed)):
        for mask in (0x01, 0x80, 0xFF):
            damaged = bytearray(packed)
            damaged[position] ^= mask
            outcomes[_outcome(bytes(damaged), original)] += 1
    for cut in range(len(packed)):
        outcomes[_outcome(packed[:cut], frame_boundaries.get(cut, original))] += 1
    print(name, len(packed), outcomes)
    assert outcomes["error"] > 0


def test_damaged_files_through_the_cli_give_one_line_and_exit_1(tmp_path, samples):
    packed = nncodec.compress(samples["text"][:2000], codec="raw", block_size=500)
    rng = random.Random(5)
    for i in range(12):
        damaged = bytearray(packed)
        if i % 3 == 0:
            damaged = damaged[: rng.randrange(len(damaged))]
        else:
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        path = tmp_path / f"bad{i}.nnc"
        path.write_bytes(bytes(damaged))
        result = run_cli("-d", str(path), cwd=tmp_path)
        stderr = result.stderr.decode()
        assert result.returncode == 1, stderr
        assert "Traceback" not in stderr
        assert stderr.count("\n") == 1 and f"bad{i}.nnc" in stderr
        assert not (tmp_path / f"bad{i}").exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
