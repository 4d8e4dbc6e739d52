"""What the CLI does when the world goes wrong: interrupted by SIGINT/SIGTERM mid-compress and
mid-decompress, a full disk, an unwritable output directory, and ``--rm`` in each case. The input is
always left intact, no partial or temporary output remains, and the error is one clean line."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, prose, run_cli

import nncodec
from nncodec.core import engine


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def _default_signals() -> None:
    # a test run started in the background by a non-interactive shell ignores SIGINT, and children
    # inherit that (as a background job should); give the CLI the disposition a terminal user has
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nncodec", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        preexec_fn=_default_signals,
    )


def _wait_for_temp_file(directory: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    """Until the CLI has created its temporary output (so it is mid-work), or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.name.endswith(".tmp") for p in directory.iterdir()):
            time.sleep(0.5)  # well into the work
            return
        if process.poll() is not None:
            break
        time.sleep(0.02)
    pytest.fail(f"no temporary output appeared (exit {process.poll()}, {process.stderr.read().decode()!r})")


@pytest.fixture(scope="module")
def slow_text(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """Text that takes the text codec several seconds each way, and its container."""
    data = (REPO / "testdata" / "text" / "dickens_head.txt").read_bytes()[:30_000]
    packed = nncodec.compress(data, codec="text")
    assert engine.scan_frames(io.BytesIO(packed))[0].block_codecs["text"] >= 1
    return data, packed


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("operation", ["compress", "decompress"])
def test_interrupt_leaves_no_output_and_the_input_intact(tmp_path, slow_text, operation, signum):
    data, packed = slow_text
    if operation == "compress":
        source, args = tmp_path / "book.txt", ["--codec", "text", "book.txt"]
        source.write_bytes(data)
    else:
        source, args = tmp_path / "book.txt.nnc", ["-d", "book.txt.nnc"]
        source.write_bytes(packed)
    before = _sha(source)
    process = _start([*args, "--rm"], tmp_path)
    _wait_for_temp_file(tmp_path, process)
    assert process.poll() is None, "finished before the signal: the test needs slower work"
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, stderr
    assert b"Traceback" not in stderr
    assert _leftovers(tmp_path, {source.name}) == []
    assert _sha(source) == before


def _limit_file_size(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def _run_limited(args: list[str], cwd: Path, limit: int) -> subprocess.CompletedProcess:
    """The CLI with files capped at ``limit`` bytes: writing more fails like a full disk (EFBIG;
    Python ignores SIGXFSZ)."""
    return subprocess.run(
        [sys.executable, "-m", "nncodec", *args],
        cwd=cwd,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        preexec_fn=lambda: _limit_file_size(limit),
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )


@pytest.mark.parametrize("remove", [False, True])
def test_full_disk_while_compressing_keeps_the_source(tmp_path, remove):
    source = tmp_path / "noise.bin"
    source.write_bytes(random.Random(4).randbytes(200_000))
    result = _run_limited(["noise.bin", *(["--rm"] if remove else [])], tmp_path, 50_000)
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert stderr.count("\n") == 1 and "noise.bin" in stderr and "Traceback" not in stderr
    assert _leftovers(tmp_path, {"noise.bin"}) == []
    assert source.read_bytes() == random.Random(4).randbytes(200_000)


@pytest.mark.parametrize("remove", [False, True])
def test_full_disk_while_decompressing_keeps_the_container(tmp_path, remove):
    data = random.Random(5).randbytes(200_000)
    packed = tmp_path / "noise.bin.nnc"
    packed.write_bytes(nncodec.compress(data))
    result = _run_limited(["-d", "noise.bin.nnc", *(["--rm"] if remove else [])], tmp_path, 50_000)
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert stderr.count("\n") == 1 and "noise.bin.nnc" in stderr and "Traceback" not in stderr
    assert _leftovers(tmp_path, {"noise.bin.nnc"}) == []
    assert nncodec.decompress(packed.read_bytes()) == data


def test_full_stdout_is_a_clean_error(tmp_path):
    (tmp_path / "noise.bin").write_bytes(random.Random(6).randbytes(300_000))
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [sys.executable, "-m", "nncodec", "-c", "noise.bin"], cwd=tmp_path, stdout=full,
            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120,
        )  # fmt: skip
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert "Traceback" not in stderr and stderr.count("\n") == 1 and "No space left" in stderr


@contextlib.contextmanager
def _read_only_directory(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable: chmod for ordinary users; root ignores permissions, so as root a
    read-only tmpfs is mounted there (skipped where mounting is not allowed)."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o500)
        try:
            yield
        finally:
            path.chmod(0o700)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"running as root and cannot mount a read-only tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(path)], check=False)


@pytest.mark.parametrize("remove", [False, True])
def test_unwritable_output_directory_is_a_clean_error(tmp_path, remove):
    source = tmp_path / "notes.txt"
    source.write_bytes(b"some notes\n" * 50)
    target_dir = tmp_path / "locked"
    with _read_only_directory(target_dir):
        args = ["-o", str(target_dir / "notes.txt.nnc"), "notes.txt", *(["--rm"] if remove else [])]
        result = run_cli(*args, cwd=tmp_path)
        stderr = result.stderr.decode()
        assert result.returncode == 1, stderr
        assert stderr.count("\n") == 1 and "Traceback" not in stderr and "notes.txt" in stderr
        assert list(target_dir.iterdir()) == []
    assert source.read_bytes() == b"some notes\n" * 50


def test_missing_output_directory_is_a_clean_error(tmp_path):
    (tmp_path / "notes.txt").write_bytes(b"x" * 100)
    result = run_cli("-o", str(tmp_path / "nowhere" / "notes.txt.nnc"), "--rm", "notes.txt", cwd=tmp_path)
    assert result.returncode == 1 and b"Traceback" not in result.stderr
    assert (tmp_path / "notes.txt").read_bytes() == b"x" * 100


def test_rm_removes_the_source_only_after_a_verified_output(tmp_path):
    data = prose(5000, seed=1)
    source = tmp_path / "story.txt"
    source.write_bytes(data)
    existing = tmp_path / "story.txt.nnc"
    existing.write_bytes(b"something else")
    refused = run_cli("--rm", "--codec", "raw", "story.txt", cwd=tmp_path)  # target exists, no -f
    assert refused.returncode == 1 and source.read_bytes() == data
    assert existing.read_bytes() == b"something else"
    existing.unlink()
    done = run_cli("--rm", "--codec", "raw", "story.txt", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not source.exists()
    assert nncodec.decompress(existing.read_bytes()) == data
    back = run_cli("-d", "--rm", "story.txt.nnc", cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert source.read_bytes() == data and not existing.exists()
