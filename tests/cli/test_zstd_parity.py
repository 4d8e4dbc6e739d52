"""nncodec does what zstd 1.5 does, behaviour by behaviour, checked side by side.

Each case prepares the same files in two temporary folders, runs zstd in one and nncodec in the
other with the same arguments (``.zst`` and ``.nnc`` swapped), and compares the outcome: success or
failure, and the files left in the folder. Where zstd is not installed, nncodec is checked against
the outcome recorded here from zstd 1.5.4. (Issue 18 grows this suite to every everyday behaviour.)
"""

from __future__ import annotations

import os
import pty
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import nncodec

DATA = b"hello, parity\n" * 200


@dataclass(frozen=True)
class Case:
    #: arguments, with {z} standing for the compressed suffix (zst or nnc)
    args: tuple[str, ...]
    #: prepares the folder (the compressed suffix is given)
    setup: Callable[[Path, str], None]
    #: zstd 1.5.4's outcome: exit status 0 or not, and the files left in the folder
    succeeds: bool
    files: frozenset[str]
    #: a FIFO the tool reads: written by a thread while the tool runs
    fifo: str | None = None


def _plain(folder: Path, suffix: str) -> None:
    (folder / "a").write_bytes(DATA)


def _link(folder: Path, suffix: str) -> None:
    _plain(folder, suffix)
    (folder / "link").symlink_to("a")


def _compressed_link(folder: Path, suffix: str) -> None:
    _plain(folder, suffix)
    _tool(suffix, ["-q", "a"], folder)
    (folder / "a").unlink()
    (folder / "link").symlink_to(f"a.{suffix}")


def _fifo(folder: Path, suffix: str) -> None:
    os.mkfifo(folder / "pipe")


CASES = {
    "symlink argument is ignored": Case(("link",), _link, False, frozenset({"a", "link"})),
    "symlink argument with -f is followed": Case(
        ("-f", "link"), _link, True, frozenset({"a", "link", "link.{z}"})
    ),
    "symlink argument is ignored with -c too": Case(("-c", "link"), _link, False, frozenset({"a", "link"})),
    "symlink to a compressed file is not tested": Case(
        ("-t", "link"), _compressed_link, False, frozenset({"a.{z}", "link"})
    ),
    "symlink to a compressed file is not decompressed": Case(
        ("-d", "link"), _compressed_link, False, frozenset({"a.{z}", "link"})
    ),
    "a FIFO argument is read and compressed beside it": Case(
        ("pipe",), _fifo, True, frozenset({"pipe", "pipe.{z}"}), fifo="pipe"
    ),
}


def _command(suffix: str) -> list[str]:
    return ["zstd"] if suffix == "zst" else [sys.executable, "-m", "nncodec"]


def _tool(suffix: str, args: list[str], folder: Path) -> subprocess.CompletedProcess:
    command = [*_command(suffix), *args]
    return subprocess.run(command, cwd=folder, capture_output=True, timeout=300, check=False)


def _outcome(case: Case, suffix: str, folder: Path) -> tuple[bool, set[str]]:
    folder.mkdir()
    case.setup(folder, suffix)
    writer = None
    if case.fifo:
        def feed() -> None:
            with open(folder / case.fifo, "wb") as pipe:
                pipe.write(DATA)

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
    args = [a.replace("{z}", suffix) for a in case.args]
    done = _tool(suffix, ["-q", *args], folder)
    if writer:
        writer.join(timeout=60)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        assert "Traceback" not in message and len(message.splitlines()) <= 1, message
    return done.returncode == 0, {p.name for p in folder.iterdir()}


def _expected(case: Case, suffix: str) -> tuple[bool, set[str]]:
    return case.succeeds, {name.replace("{z}", suffix) for name in case.files}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_outcome_as_zstd(name, tmp_path):
    case = CASES[name]
    assert _outcome(case, "nnc", tmp_path / "nncodec") == _expected(case, "nnc")
    if shutil.which("zstd"):  # the record above is zstd's own behaviour: keep it honest
        assert _outcome(case, "zst", tmp_path / "zstd") == _expected(case, "zst")


def test_a_device_is_not_compressed_beside_itself(tmp_path):
    """``nncodec /dev/null`` must not create ``/dev/null.nnc`` (zstd: "is not a regular file --
    ignored"). The outputs are sent to a folder of the test's, so a failure writes nothing in /dev."""
    out = tmp_path / "out"
    out.mkdir()
    done = _tool("nnc", ["--output-dir", str(out), "/dev/null"], tmp_path)
    assert done.returncode == 1 and b"not a regular file" in done.stderr
    assert not list(out.iterdir())
    if shutil.which("zstd"):
        assert _tool("zst", ["-q", "--output-dir-flat", str(out), "/dev/null"], tmp_path).returncode == 1
    # reading a device is fine when the output is a stream
    assert _tool("nnc", ["-c", "/dev/null"], tmp_path).returncode == 0


def _script(name: str) -> str:
    """A console script installed beside this interpreter (pip writes them at install time)."""
    path = Path(sys.executable).parent / name
    assert path.exists(), f"{name} is not installed: reinstall nncodec (make venv)"
    return str(path)


@pytest.mark.parametrize("cat", [("nnccat",), ("-dcf",)])
def test_cat_passes_other_data_through_like_zstdcat(cat, tmp_path):
    """``zstdcat`` (``zstd -dcf``) writes compressed inputs decoded and any other non-empty input
    as it is, in the order given; so do ``nnccat`` and ``nncodec -dcf``."""
    (tmp_path / "plain").write_bytes(b"not compressed\n")
    (tmp_path / "empty").write_bytes(b"")
    ours = _tool("nnc", ["-q", "a"], _ready(tmp_path / "nnc"))
    assert ours.returncode == 0
    command = [_script("nnccat")] if cat == ("nnccat",) else [sys.executable, "-m", "nncodec", *cat]
    args = ["a.nnc", "../plain", "../empty"]
    done = subprocess.run([*command, *args], cwd=tmp_path / "nnc", capture_output=True, check=False)
    # the empty input is an error ("unexpected end of file" in zstd), the others are written
    assert (done.returncode, done.stdout) == (1, DATA + b"not compressed\n")
    if shutil.which("zstdcat"):
        _tool("zst", ["-q", "a"], _ready(tmp_path / "zst"))
        theirs = subprocess.run(["zstdcat", "a.zst", "../plain", "../empty"], cwd=tmp_path / "zst",
                                capture_output=True, check=False)  # fmt: skip
        assert (theirs.returncode, theirs.stdout) == (done.returncode, done.stdout)


def test_cat_without_force_refuses_other_data(tmp_path):
    (tmp_path / "plain").write_bytes(b"not compressed\n")
    done = _tool("nnc", ["-dc", "plain"], tmp_path)
    assert done.returncode == 1 and done.stdout == b""


def test_unnc_decompresses_like_unzstd(tmp_path):
    folder = _ready(tmp_path / "nnc")
    _tool("nnc", ["-q", "--rm", "a"], folder)
    done = subprocess.run([_script("unnc"), "-q", "a.nnc"], cwd=folder, capture_output=True, check=False)
    assert done.returncode == 0 and (folder / "a").read_bytes() == DATA and (folder / "a.nnc").exists()
    if shutil.which("unzstd"):
        theirs = _ready(tmp_path / "zst")
        _tool("zst", ["-q", "--rm", "a"], theirs)
        assert subprocess.run(["unzstd", "-q", "a.zst"], cwd=theirs, check=False).returncode == 0
        assert {p.name for p in theirs.iterdir()} == {"a", "a.zst"}


def _ready(folder: Path) -> Path:
    folder.mkdir()
    _plain(folder, "")
    return folder


def _drain(fifo: Path, sink: list[bytes]) -> threading.Thread:
    def read() -> None:
        with open(fifo, "rb") as pipe:
            sink.append(pipe.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("suffix", ["nnc", "zst"])
def test_output_into_a_fifo_is_written_not_replaced(suffix, tmp_path):
    """``-o PIPE`` writes into the named pipe (zstd does); the pipe stays a pipe, the temporary
    file and rename of regular outputs do not apply, and --rm keeps the source."""
    if suffix == "zst" and not shutil.which("zstd"):
        pytest.skip("zstd is not installed")
    folder = _ready(tmp_path / suffix)
    os.mkfifo(folder / "pipe")
    received: list[bytes] = []
    reader = _drain(folder / "pipe", received)
    done = _tool(suffix, ["-q", "-o", "pipe", "a"], folder)
    reader.join(timeout=60)
    assert done.returncode == 0
    assert stat.S_ISFIFO(os.lstat(folder / "pipe").st_mode)
    assert {p.name for p in folder.iterdir()} == {"a", "pipe"}
    if suffix == "nnc":
        assert nncodec.decompress(received[0]) == DATA
        reader = _drain(folder / "pipe", received)
        kept = _tool(suffix, ["-o", "pipe", "--rm", "a"], folder)
        reader.join(timeout=60)
        assert kept.returncode == 0 and b"--rm does not remove" in kept.stderr and (folder / "a").exists()


def test_output_into_a_device_leaves_the_device(tmp_path):
    """``-o /dev/null`` must write into the device, never replace the node: checked on a device
    node of the test's own (made with mknod where the user may), so a failure breaks nothing."""
    device = tmp_path / "null"
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs privileges this user lacks")
    try:
        open(device, "wb").close()
    except OSError:
        pytest.skip("device nodes cannot be opened on this file system (mounted nodev)")
    folder = _ready(tmp_path / "work")
    done = _tool("nnc", ["-q", "-o", str(device), "a"], folder)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    done = _tool("nnc", ["-q", "-f", "-o", str(device), "a"], folder)
    assert done.returncode == 0 and stat.S_ISCHR(os.lstat(device).st_mode)


@pytest.mark.parametrize("suffix", ["nnc", "zst"])
def test_compressing_a_terminal_is_refused(suffix, tmp_path):
    """With no file and a terminal on stdin, zstd says "stdin is a console, aborting"; nncodec
    refuses the same way instead of waiting for typed input."""
    if suffix == "zst" and not shutil.which("zstd"):
        pytest.skip("zstd is not installed")
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(_command(suffix), stdin=terminal, capture_output=True, timeout=60, check=False)
    finally:
        os.close(controller)
        os.close(terminal)
    assert done.returncode == 1 and done.stdout == b""


@pytest.mark.parametrize("suffix", ["nnc", "zst"])
def test_no_summary_line_when_writing_to_stdout(suffix, tmp_path):
    """Several files with -c or -dc: the data on stdout and nothing on stderr (zstd prints its
    "2 files decompressed" line only when it writes files)."""
    if suffix == "zst" and not shutil.which("zstd"):
        pytest.skip("zstd is not installed")
    folder = _ready(tmp_path / suffix)
    (folder / "b").write_bytes(DATA[::-1])
    packed = _tool(suffix, ["-c", "a", "b"], folder)
    assert packed.returncode == 0 and packed.stderr == b""
    (folder / f"ab.{suffix}").write_bytes(packed.stdout)
    unpacked = _tool(suffix, ["-dc", f"ab.{suffix}", f"ab.{suffix}"], folder)
    assert (unpacked.returncode, unpacked.stderr) == (0, b"")
    assert unpacked.stdout == 2 * (DATA + DATA[::-1])
    written = _tool(suffix, ["-f", "a", "b"], folder)
    assert written.returncode == 0 and b"2 files" in written.stderr  # but a summary when writing files


@pytest.mark.parametrize(("flag", "shown"), [("--progress", True), ("--no-progress", False), (None, False)])
def test_progress_flags(flag, shown, tmp_path):
    """--progress shows the bar even on a pipe (zstd's --progress), --no-progress never; by default
    a pipe sees none. The text codec on 60 KB takes seconds, past the bar's one-second delay."""
    text = Path(__file__).resolve().parents[2] / "testdata" / "text" / "dickens_head.txt"
    done = _tool("nnc", [*([flag] if flag else []), "-c", str(text)], tmp_path)
    assert done.returncode == 0
    assert (b"compressing" in done.stderr) == shown, done.stderr[-300:]


@pytest.mark.parametrize("order", [("-c", "-o", "out"), ("-o", "out", "-c")])
@pytest.mark.parametrize("suffix", ["nnc", "zst"])
def test_the_later_of_c_and_o_wins(order, suffix, tmp_path):
    """zstd: ``-c -o out`` writes out, ``-o out -c`` writes to stdout."""
    if suffix == "zst" and not shutil.which("zstd"):
        pytest.skip("zstd is not installed")
    folder = _ready(tmp_path / suffix)
    done = _tool(suffix, ["-q", *order, "a"], folder)
    assert done.returncode == 0
    to_file = order[0] == "-c"
    assert (folder / "out").exists() == to_file
    assert bool(done.stdout) != to_file


def test_help_lists_the_everyday_flags(tmp_path):
    """``nncodec -h``, like ``zstd -h``, shows the flags people type, not only the subcommands."""
    shown = _tool("nnc", ["-h"], tmp_path).stdout.decode()
    everyday = ["-d", "-t", "-l", "-c", "-o FILE", "-k", "--rm", "-f", "-r", "-T N", "-q", "-v"]
    everyday.append("--max-error")
    for flag in everyday:
        assert f" {flag}" in shown, flag
