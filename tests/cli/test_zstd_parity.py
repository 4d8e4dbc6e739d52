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
    #: what the thread writes into the FIFO: the data compressed by the same tool (else the data)
    fifo_packed: bool = False


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


def _packed(folder: Path, suffix: str) -> None:
    """a.{z} only (the original removed)."""
    _plain(folder, suffix)
    _tool(suffix, ["-q", "--rm", "a"], folder)


def _both(folder: Path, suffix: str) -> None:
    """a and a.{z}."""
    _plain(folder, suffix)
    _tool(suffix, ["-q", "a"], folder)


def _two(folder: Path, suffix: str) -> None:
    _plain(folder, suffix)
    (folder / "b").write_bytes(DATA[::-1])


def _damaged(folder: Path, suffix: str) -> None:
    _packed(folder, suffix)
    packed = folder / f"a.{suffix}"
    data = bytearray(packed.read_bytes())
    data[len(data) // 2] ^= 0x55
    packed.write_bytes(bytes(data))


def _truncated(folder: Path, suffix: str) -> None:
    _packed(folder, suffix)
    packed = folder / f"a.{suffix}"
    packed.write_bytes(packed.read_bytes()[:-7])


def _tree(folder: Path, suffix: str) -> None:
    _plain(folder, suffix)
    (folder / "d" / "e").mkdir(parents=True)
    (folder / "d" / "x").write_bytes(DATA)
    (folder / "d" / "e" / "y").write_bytes(DATA[::-1])


def _packed_tree(folder: Path, suffix: str) -> None:
    _tree(folder, suffix)
    _tool(suffix, ["-q", "-r", "--rm", "d"], folder)


def _named(name: str) -> Callable[[Path, str], None]:
    def setup(folder: Path, suffix: str) -> None:
        _plain(folder, suffix)
        (folder / name).write_bytes(DATA)

    return setup


def _empty(folder: Path, suffix: str) -> None:
    (folder / "e").write_bytes(b"")


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
    "a compressed FIFO argument is decompressed": Case(
        ("-d", "-o", "out", "pipe"), _fifo, True, frozenset({"pipe", "out"}), fifo="pipe", fifo_packed=True
    ),
    # everyday compression and decompression
    "a file is compressed beside itself and kept": Case(("a",), _plain, True, frozenset({"a", "a.{z}"})),
    "-k is accepted": Case(("-k", "a"), _plain, True, frozenset({"a", "a.{z}"})),
    "--rm removes the input": Case(("--rm", "a"), _plain, True, frozenset({"a.{z}"})),
    "--rm with -c keeps the input": Case(("--rm", "-c", "a"), _plain, True, frozenset({"a"})),
    "-c writes nothing beside the input": Case(("-c", "a"), _plain, True, frozenset({"a"})),
    "an existing output is not overwritten": Case(("a",), _both, False, frozenset({"a", "a.{z}"})),
    "-f overwrites an existing output": Case(("-f", "a"), _both, True, frozenset({"a", "a.{z}"})),
    "an empty file is compressed": Case(("e",), _empty, True, frozenset({"e", "e.{z}"})),
    "a missing file is an error": Case(("nothing",), _plain, False, frozenset({"a"})),
    "a missing file does not stop the others": Case(("nothing", "a"), _plain, False, frozenset({"a", "a.{z}"})),
    "a directory without -r is skipped": Case(("d",), _tree, False, frozenset({"a", "d", "d/x", "d/e", "d/e/y"})),
    "-r compresses a tree": Case(
        ("-r", "d"), _tree, True, frozenset({"a", "d", "d/x", "d/x.{z}", "d/e", "d/e/y", "d/e/y.{z}"})
    ),
    "-dr restores a tree": Case(
        ("-dr", "--rm", "d"), _packed_tree, True, frozenset({"a", "d", "d/x", "d/e", "d/e/y"})
    ),
    "several files": Case(("a", "b"), _two, True, frozenset({"a", "b", "a.{z}", "b.{z}"})),
    "several files and one -o is an error": Case(("-o", "out", "a", "b"), _two, False, frozenset({"a", "b"})),
    "-d restores the file and keeps the input": Case(("-d", "a.{z}"), _packed, True, frozenset({"a", "a.{z}"})),
    "-d --rm removes the compressed input": Case(("-d", "--rm", "a.{z}"), _packed, True, frozenset({"a"})),
    "-d does not overwrite an existing file": Case(("-d", "a.{z}"), _both, False, frozenset({"a", "a.{z}"})),
    "-df overwrites an existing file": Case(("-df", "a.{z}"), _both, True, frozenset({"a", "a.{z}"})),
    "-d of a file without the suffix is an error": Case(("-d", "a"), _plain, False, frozenset({"a"})),
    "-d of damaged data fails and writes nothing": Case(("-d", "a.{z}"), _damaged, False, frozenset({"a.{z}"})),
    "-d of truncated data fails and writes nothing": Case(
        ("-d", "a.{z}"), _truncated, False, frozenset({"a.{z}"})
    ),
    "-t accepts good data": Case(("-t", "a.{z}"), _packed, True, frozenset({"a.{z}"})),
    "-t rejects damaged data": Case(("-t", "a.{z}"), _damaged, False, frozenset({"a.{z}"})),
    "-l lists a compressed file": Case(("-l", "a.{z}"), _packed, True, frozenset({"a.{z}"})),
    "an unknown option is an error": Case(("--no-such-option", "a"), _plain, False, frozenset({"a"})),
    # parsing: bundles, values, levels
    "-o names the output": Case(("-o", "out", "a"), _plain, True, frozenset({"a", "out"})),
    "-dfo bundles a value": Case(("-dfo", "out", "a.{z}"), _both, True, frozenset({"a", "a.{z}", "out"})),
    "-dT0 bundles a value": Case(("-dT0", "a.{z}"), _packed, True, frozenset({"a", "a.{z}"})),
    "-T2 then -dc": Case(("-T2", "-dc", "a.{z}"), _packed, True, frozenset({"a.{z}"})),
    "-19 is a level": Case(("-19", "a"), _plain, True, frozenset({"a", "a.{z}"})),
    "-1 is a level": Case(("-1", "a"), _plain, True, frozenset({"a", "a.{z}"})),
    "-3 bundled with -c": Case(("-3c", "a"), _plain, True, frozenset({"a"})),
    "-0 is the default level": Case(("-0", "a"), _plain, True, frozenset({"a", "a.{z}"})),
    "--fast is a level": Case(("--fast", "a"), _plain, True, frozenset({"a", "a.{z}"})),
    "--fast=3 is a level": Case(("--fast=3", "a"), _plain, True, frozenset({"a", "a.{z}"})),
    "--ultra -22 is a level": Case(("--ultra", "-22", "a"), _plain, True, frozenset({"a", "a.{z}"})),
    "a level is accepted when decompressing": Case(
        ("-d", "-19", "a.{z}"), _packed, True, frozenset({"a", "a.{z}"})
    ),
    "-- ends the options": Case(("--", "-x"), _named("-x"), True, frozenset({"a", "-x", "-x.{z}"})),
    "a file named like a subcommand is a file": Case(
        ("test",), _named("test"), True, frozenset({"a", "test", "test.{z}"})
    ),
    "a file named like a subcommand, not first": Case(
        ("a", "list"), _named("list"), True, frozenset({"a", "a.{z}", "list", "list.{z}"})
    ),
}


def _command(suffix: str) -> list[str]:
    return ["zstd"] if suffix == "zst" else [sys.executable, "-m", "nncodec"]


def _tool(
    suffix: str, args: list[str], folder: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    command = [*_command(suffix), *args]
    return subprocess.run(command, cwd=folder, capture_output=True, timeout=300, check=False, env=env)


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root`` with its type, size and mtime (symbolic links not followed)."""
    found = {}
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        found[str(path.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


def _outcome(case: Case, suffix: str, folder: Path) -> tuple[bool, set[str]]:
    """Run the case in ``folder`` and return (success, the paths left in it). The filesystem is
    watched: nothing outside ``folder`` may change (its parent holds only the test's folders, and
    the tool's temporary directory points into the parent), and the tool leaves no temporary file."""
    folder.mkdir()
    case.setup(folder, suffix)
    scratch = folder.parent / f"tmp-{suffix}"
    scratch.mkdir(exist_ok=True)
    packed = nncodec.compress(DATA) if suffix == "nnc" else subprocess.run(
        ["zstd", "-q", "-c"], input=DATA, capture_output=True, check=True).stdout if case.fifo_packed else b""
    outside = {k: v for k, v in _snapshot(folder.parent).items() if not k.startswith(folder.name)}
    writer = None
    if case.fifo:
        def feed() -> None:
            with open(folder / case.fifo, "wb") as pipe:
                pipe.write(packed if case.fifo_packed else DATA)

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
    args = [a.replace("{z}", suffix) for a in case.args]
    done = _tool(suffix, ["-q", *args], folder, env={**os.environ, "TMPDIR": str(scratch)})
    if writer:
        writer.join(timeout=60)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        assert "Traceback" not in message, message
        if suffix == "nnc" and done.returncode == 1:  # an error is one line (usage errors show usage)
            assert len(message.splitlines()) <= 1, message
    after = {k: v for k, v in _snapshot(folder.parent).items() if not k.startswith(folder.name)}
    assert after == outside, "something outside the case's folder changed"
    assert not list(scratch.iterdir()), "a temporary file was left behind"
    return done.returncode == 0, {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _expected(case: Case, suffix: str) -> tuple[bool, set[str]]:
    return case.succeeds, {name.replace("{z}", suffix) for name in case.files}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_outcome_as_zstd(name, tmp_path):
    case = CASES[name]
    assert _outcome(case, "nnc", tmp_path / "nncodec") == _expected(case, "nnc")
    if shutil.which("zstd"):  # the record above is zstd's own behaviour: keep it honest
        assert _outcome(case, "zst", tmp_path / "zstd") == _expected(case, "zst")


@pytest.mark.parametrize("suffix", ["nnc", "zst"])
def test_unknown_option_is_a_usage_error_naming_it(suffix, tmp_path):
    if suffix == "zst" and not shutil.which("zstd"):
        pytest.skip("zstd is not installed")
    done = _tool(suffix, ["--no-such-option", "a"], _ready(tmp_path / suffix))
    assert done.returncode != 0
    if suffix == "nnc":  # zstd says "Incorrect parameters" and its help; nncodec names the option
        assert done.returncode == 2 and b"no-such-option" in done.stderr


def test_where_nncodec_differs_from_zstd(tmp_path):
    """Chosen differences, each like gzip or xz: a file that already ends in .nnc is not compressed
    again without -f (zstd 1.5.4 compresses a.zst to a.zst.zst); ``--best`` is level 19 (zstd 1.5.4
    has no --best); ``-o -`` is stdout (zstd 1.5.4 rejects it)."""
    folder = _ready(tmp_path / "nnc")
    _tool("nnc", ["-q", "a"], folder)
    again = _tool("nnc", ["-q", "a.nnc"], folder)
    assert again.returncode == 1 and not (folder / "a.nnc.nnc").exists()
    assert _tool("nnc", ["-q", "-f", "a.nnc"], folder).returncode == 0 and (folder / "a.nnc.nnc").exists()
    best = _tool("nnc", ["-q", "--best", "-c", "a"], folder)
    assert best.returncode == 0 and nncodec.decompress(best.stdout) == DATA
    dash = _tool("nnc", ["-q", "-o", "-", "a"], folder)
    assert dash.returncode == 0 and nncodec.decompress(dash.stdout) == DATA
    assert {p.name for p in folder.iterdir()} == {"a", "a.nnc", "a.nnc.nnc"}


def test_levels_reach_the_codecs(tmp_path):
    """-1 is zstd -1 (the raw codec), the default the learned text codec, and -19 never larger than
    the default; NNCODEC_CLEVEL sets the level when none is typed, a bad value is named and ignored."""
    text = (Path(__file__).resolve().parents[2] / "testdata" / "text" / "dickens_head.txt").read_bytes()[:20000]
    (tmp_path / "t").write_bytes(text)
    sizes, outputs = {}, {}
    for level in ("-1", "-4", "-6", "-19"):
        done = _tool("nnc", ["-q", level, "-c", "t"], tmp_path)
        assert done.returncode == 0 and nncodec.decompress(done.stdout) == text
        sizes[level], outputs[level] = len(done.stdout), done.stdout
    assert sizes["-1"] >= sizes["-4"] > sizes["-6"] >= sizes["-19"]
    assert _tool("nnc", ["-q", "-c", "t"], tmp_path).stdout == outputs["-6"]  # 6 is the default
    env = {**os.environ, "NNCODEC_CLEVEL": "1"}
    assert len(_tool("nnc", ["-q", "-c", "t"], tmp_path, env=env).stdout) == sizes["-1"]
    bad = _tool("nnc", ["-c", "t"], tmp_path, env={**os.environ, "NNCODEC_CLEVEL": "fast"})
    assert bad.returncode == 0 and b"NNCODEC_CLEVEL" in bad.stderr


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


def test_no_stale_bar_above_an_error_or_the_summary(tmp_path):
    """With a bar on screen (--progress), a failing file's line and the summary line start on a
    cleared line: no piece of the bar stays in front of them."""
    folder = _ready(tmp_path / "nnc")
    (folder / "t").write_bytes(os.urandom(2 << 20))  # quick to decode: the bar is drawn by the error line
    (folder / "bad.nnc").write_bytes(b"not compressed data")
    packed = _tool("nnc", ["-q", "t"], folder)
    assert packed.returncode == 0
    done = _tool("nnc", ["-d", "-f", "--progress", "t.nnc", "bad.nnc", "--output-dir", "out"], folder)
    assert done.returncode == 1
    lines = [line for line in done.stderr.decode().split("\n") if "nncodec:" in line]
    assert len(lines) == 2, done.stderr  # the error and the summary
    for line in lines:
        pieces = line.split("\r")
        shown = pieces[-1]  # what the terminal shows last on this line
        assert shown.startswith("nncodec:"), repr(line)
        if len(pieces) > 1:  # a bar was drawn on this line: it was wiped before the message
            assert not pieces[-2].strip(), repr(line)


@pytest.mark.parametrize("suffix", ["nnc", "zst"])
def test_dash_among_files_sends_only_stdin_to_stdout(suffix, tmp_path):
    """``cmd | zstd a - b``: a.zst and b.zst beside the files, stdin compressed to stdout."""
    if suffix == "zst" and not shutil.which("zstd"):
        pytest.skip("zstd is not installed")
    folder = _ready(tmp_path / suffix)
    (folder / "b").write_bytes(DATA[::-1])
    done = subprocess.run([*_command(suffix), "-q", "a", "-", "b"], cwd=folder, input=b"from stdin\n",
                          capture_output=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0
    assert {p.name for p in folder.iterdir()} == {"a", "b", f"a.{suffix}", f"b.{suffix}"}
    if suffix == "nnc":
        assert nncodec.decompress(done.stdout) == b"from stdin\n"
        assert nncodec.decompress((folder / "b.nnc").read_bytes()) == DATA[::-1]
