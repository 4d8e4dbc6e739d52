"""Container bytes are pinned: refactoring must not change what nncodec writes.

Every file in ``testdata/`` and a sample of ``../shared/data`` (cut small; skipped with a reason when
``../shared`` is absent) is compressed through the public API, and a few through the command line
(near-lossless, the probabilistic-circuit image model, a block size, a named file with its stored
name, mode and mtime). The sha256 of each container must equal the one recorded in
``tests/fixtures/output_hashes.json``, which was written by the code before the package was
reorganized into layers (issue 17).

A change that is *meant* to change output bytes (a new format, a retrained model) regenerates the
fixture on purpose and says so in its commit::

    .venv/bin/python tests/test_output_bytes.py --write
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

import nncodec

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "testdata"
SHARED = ROOT.parent / "shared" / "data"
FIXTURE = Path(__file__).parent / "fixtures" / "output_hashes.json"
FIXED_MTIME_NS = 1_700_000_000_123_456_789


def _head(path: str, size: int) -> Callable[[], bytes]:
    def read() -> bytes:
        with open(SHARED / path, "rb") as f:
            return f.read(size)

    return read


def _first_book(size: int) -> bytes:
    with tarfile.open(SHARED / "text/gutenberg/books.tar.xz", "r|xz") as tar:
        for member in tar:
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                return handle.read(size)
    raise FileNotFoundError("no book in the Gutenberg archive")


def _ppm_crop(path: str, box: tuple[int, int, int, int]) -> Callable[[], bytes]:
    def read() -> bytes:
        from PIL import Image

        out = io.BytesIO()
        Image.open(SHARED / path).convert("RGB").crop(box).save(out, format="PPM")
        return out.getvalue()

    return read


def _mnist(count: int) -> bytes:
    """The first ``count`` images of MNIST's test set as an idx3 file of its own."""
    with gzip.open(SHARED / "images/mnist/t10k-images-idx3-ubyte.gz", "rb") as f:
        header = f.read(16)
        pixels = f.read(count * 28 * 28)
    return header[:4] + count.to_bytes(4, "big") + header[8:] + pixels


#: name -> what to compress (shared samples: cut small, so the test stays quick)
SHARED_SAMPLES: dict[str, Callable[[], bytes]] = {
    "gutenberg-first-book-16K": lambda: _first_book(16 << 10),
    "enwik8-16K": _head("text/enwik8-bytes1M-4M", 16 << 10),
    "silesia-xml-16K": _head("text/silesia/xml", 16 << 10),
    "loghub2k-Apache-64K": _head("logs/loghub2k/Apache_2k.log", 64 << 10),
    "loghub2k-HDFS-64K": _head("logs/loghub2k/HDFS_2k.log", 64 << 10),
    "zeek-dns-64K": _head("logs/zeek_wrccdc/dns.log", 64 << 10),
    "elastic-apache-64K": _head("logs/elastic_examples/apache_logs", 64 << 10),
    "elastic-nginxplus-json-64K": _head("logs/elastic_examples/nginxplus_json_logs", 64 << 10),
    "suricata-jsonl-64K": _head("logs/json_lines/mssis_suricata_out.jsonl", 64 << 10),
    "set12-01.png": _head("images/set12_gray/01.png", 1 << 30),
    "screen-testcard.png": _head("images/screen_synthetic/testcard_synthetic.png", 1 << 30),
    "cbsd68-crop.ppm": _ppm_crop("images/cbsd68/101085.png", (100, 100, 196, 164)),
    "mcmaster-crop.ppm": _ppm_crop("images/mcmaster/mcm01.png", (0, 0, 80, 64)),
    "mnist-64.idx": lambda: _mnist(64),
}

#: name -> (input file under testdata, command-line options); coded by ``nncodec -c`` from stdin
CLI_CASES: dict[str, tuple[str, list[str]]] = {
    "cli-near-lossless-2": ("images/testcard_crop.ppm", ["--max-error", "2"]),
    "cli-image-model-pc": ("images/testcard_crop.ppm", ["--image-model", "pc"]),
    "cli-block-size-16K": ("text/dickens_head.txt", ["-B", "16K"]),
    "cli-codec-raw": ("logs/synthetic_app.log", ["--codec", "raw"]),
}


def files_in_testdata() -> list[str]:
    return sorted(str(p.relative_to(TESTDATA)) for p in TESTDATA.rglob("*") if p.is_file())


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cli(args: list[str], stdin: bytes | None, cwd: Path) -> bytes:
    done = subprocess.run(
        [sys.executable, "-m", "nncodec", *args], input=stdin, capture_output=True, cwd=cwd, check=False
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def _named_file_case(tmp: Path) -> bytes:
    """``nncodec -c FILE``: the frame records the file's name, mode and mtime."""
    path = tmp / "named.log"
    path.write_bytes((TESTDATA / "logs/synthetic_app.log").read_bytes())
    os.chmod(path, 0o640)
    os.utime(path, ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))
    return _cli(["-c", path.name], None, tmp)


def compute_all(tmp: Path, shared: bool) -> dict[str, str]:
    """Every case's container hash (the fixture's content); shared samples only when ``shared``."""
    hashes = {f"testdata/{name}": _digest(nncodec.compress((TESTDATA / name).read_bytes()))
              for name in files_in_testdata()}  # fmt: skip
    if shared:
        for name, read in SHARED_SAMPLES.items():
            hashes[f"shared/{name}"] = _digest(nncodec.compress(read()))
    for name, (source, options) in CLI_CASES.items():
        hashes[name] = _digest(_cli(["-c", *options], (TESTDATA / source).read_bytes(), tmp))
    hashes["cli-named-file"] = _digest(_named_file_case(tmp))
    return hashes


def _recorded() -> dict[str, str]:
    return json.loads(FIXTURE.read_text())


@pytest.mark.parametrize("name", files_in_testdata())
def test_testdata_bytes_unchanged(name):
    recorded = _recorded()
    key = f"testdata/{name}"
    assert key in recorded, f"{key} is new: record its hash on purpose (see the module docstring)"
    assert _digest(nncodec.compress((TESTDATA / name).read_bytes())) == recorded[key]


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not present on this machine")
@pytest.mark.parametrize("name", sorted(SHARED_SAMPLES))
def test_shared_sample_bytes_unchanged(name):
    assert _digest(nncodec.compress(SHARED_SAMPLES[name]())) == _recorded()[f"shared/{name}"]


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_cli_bytes_unchanged(name, tmp_path):
    source, options = CLI_CASES[name]
    packed = _cli(["-c", *options], (TESTDATA / source).read_bytes(), tmp_path)
    assert _digest(packed) == _recorded()[name]
    assert nncodec.decompress(packed) is not None  # and it still decodes


def test_named_file_bytes_unchanged(tmp_path):
    packed = _named_file_case(tmp_path)
    assert _digest(packed) == _recorded()["cli-named-file"]
    assert nncodec.decompress(packed) == (TESTDATA / "logs/synthetic_app.log").read_bytes()


def test_fixture_covers_every_case():
    """A hash recorded for a case that no longer exists, or a case without a hash, is a test gap."""
    expected = {f"testdata/{n}" for n in files_in_testdata()} | set(CLI_CASES) | {"cli-named-file"}
    expected |= {f"shared/{n}" for n in SHARED_SAMPLES}
    assert set(_recorded()) == expected


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_output_bytes.py --write   (records the current output hashes)")
    if not SHARED.is_dir():
        sys.exit("../shared/data is needed to record the shared samples' hashes")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = compute_all(Path(tmp), shared=True)
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(result)} hashes in {FIXTURE}")
