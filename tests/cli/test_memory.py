"""-M/--memory LIMIT: compression picks work that fits, decompression refuses a block that needs more,
and the estimates the limit is compared with hold (tracemalloc peaks stay below them)."""

from __future__ import annotations

import io
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

import nncodec
from nncodec.core import engine
from nncodec.core.errors import MemoryLimitError

TESTDATA = Path(__file__).resolve().parents[2] / "testdata"
TEXT = (TESTDATA / "text" / "dickens_head.txt").read_bytes()[:12000]


def _nncodec(args: list[str], folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nncodec", *args], cwd=folder, capture_output=True,
                          timeout=300, check=False)  # fmt: skip


def test_compression_within_a_limit_picks_zstd_and_decodes(tmp_path):
    (tmp_path / "t").write_bytes(TEXT)
    done = _nncodec(["-q", "-M", "40M", "-c", "t"], tmp_path)
    assert done.returncode == 0
    frames = engine.scan_frames(io.BytesIO(done.stdout))
    assert dict(frames[0].block_codecs) == {"raw": 1}  # the text model needs ~50 MiB
    assert nncodec.decompress(done.stdout) == TEXT
    roomy = _nncodec(["-q", "-M", "1G", "-c", "t"], tmp_path)
    assert dict(engine.scan_frames(io.BytesIO(roomy.stdout))[0].block_codecs) == {"text": 1}


def test_decompression_refuses_a_block_that_needs_more(tmp_path):
    (tmp_path / "t.nnc").write_bytes(nncodec.compress(TEXT))
    refused = _nncodec(["-d", "-M", "8M", "t.nnc"], tmp_path)
    assert refused.returncode == 1 and b"raise -M" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "t").exists()
    assert _nncodec(["-dq", "-M", "512M", "t.nnc"], tmp_path).returncode == 0
    assert (tmp_path / "t").read_bytes() == TEXT
    assert _nncodec(["-t", "-M8M", "t.nnc"], tmp_path).returncode == 1


def test_limits_too_small(tmp_path):
    (tmp_path / "t").write_bytes(TEXT)
    assert _nncodec(["-M", "100K", "t"], tmp_path).returncode == 2  # below 1 MiB: a usage error
    too_little = _nncodec(["-M", "2M", "t"], tmp_path)
    assert too_little.returncode == 1 and b"too little" in too_little.stderr
    with pytest.raises(MemoryLimitError):
        engine.decompress_stream(io.BytesIO(nncodec.compress(TEXT)), None, memory_limit=1 << 20)


@pytest.mark.parametrize(
    "name",
    ["text/dickens_head.txt", "logs/apache_access.log", "binary/inventory.sqlite",
     "images/testcard_crop.ppm"],
)
def test_estimates_cover_what_coding_allocates(name):
    """The estimate of each codec is above the peak traced allocation of coding that input (models
    loaded beforehand: they are not coding memory)."""
    data = (TESTDATA / name).read_bytes()
    packed = nncodec.compress(data)
    nncodec.decompress(packed)  # load the model
    frame = engine.scan_frames(io.BytesIO(packed))[0]
    codec = engine._frame_codec(frame.header)
    tracemalloc.start()
    nncodec.compress(data)
    _, encoding = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    tracemalloc.start()
    nncodec.decompress(packed)
    _, decoding = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert encoding <= codec.memory_need(len(data), decoding=False), (encoding, codec.name)
    assert decoding <= codec.memory_need(len(data), decoding=True), (decoding, codec.name)
