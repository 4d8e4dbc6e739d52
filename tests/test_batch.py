"""Batch use: -r over a tree, -T N worker processes, --output-dir, list, tar pipelines, dask."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import warnings
from pathlib import Path

import pytest
from conftest import REPO, SHARED_DATA, log_lines, png_bytes, prose, run_cli

from nncodec.cli import batch
from nncodec.cli.fileops import FileOptions
from nncodec.core import container, modelstore

MTIME = 1_500_000_000_987_654_321


def _make_tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """A tree of mixed files; returns relative path -> (content, mode) of the regular ones."""
    rng = random.Random(7)
    files = {
        "notes.txt": (prose(2_500), 0o644),
        "images/pic.ppm": (png_bytes(13, 7, fmt="PPM"), 0o604),
        "images/gray.pgm": (png_bytes(9, 5, mode="L", fmt="PPM"), 0o444),
        "logs/app.log": (log_lines(150), 0o640),
        "logs/deeper/old.log": (log_lines(40, seed=3), 0o600),
        "bin/blob.bin": (rng.randbytes(3_000), 0o755),
        "bin/zeros.bin": (bytes(5_000), 0o644),
        "empty": (b"", 0o644),
    }
    for relative, (data, mode) in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.chmod(path, mode)
        os.utime(path, ns=(MTIME, MTIME + 1000 * len(relative)))
    (root / "link.txt").symlink_to("notes.txt")
    (root / "linkdir").symlink_to("logs", target_is_directory=True)
    return files


def _same_file(a: Path, b: Path, mode: int) -> None:
    assert a.read_bytes() == b.read_bytes(), a
    assert os.stat(a).st_mtime_ns == os.stat(b).st_mtime_ns, a
    assert os.stat(a).st_mode & 0o7777 == mode, (a, oct(os.stat(a).st_mode))


def _outputs(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _unprivileged() -> list[str] | None:
    """A command prefix under which a chmod 000 file cannot be read: none for a normal user; for
    root, a new user namespace (``unshare --user``: same files, no capability to override their
    permissions); None when root has no way to drop that."""
    if os.geteuid() != 0:
        return []
    if shutil.which("unshare") is None:
        return None
    probe = subprocess.run(["unshare", "--user", "true"], capture_output=True)
    return ["unshare", "--user"] if probe.returncode == 0 else None


def test_recursive_tree_round_trip_with_failing_files(tmp_path):
    src = tmp_path / "src"
    files = _make_tree(src)
    # A file that fails whoever runs it: its output is in the way (not overwritten without -f).
    packed = tmp_path / "packed"
    packed.mkdir()
    (src / "clash.bin").write_bytes(b"clash")
    (packed / "clash.bin.nnc").write_bytes(b"not ours")
    # And an unreadable one (as root: run in a user namespace, where chmod 000 holds).
    prefix = _unprivileged()
    if prefix is None:
        warnings.warn("unreadable-file part not run: root, without unshare --user", stacklevel=1)
    else:
        (src / "logs" / "secret.log").write_bytes(b"secret")
        os.chmod(src / "logs" / "secret.log", 0)

    result = subprocess.run(
        [
            *(prefix or []),
            sys.executable,
            "-m",
            "nncodec",
            "-r",
            "-T2",
            str(src),
            "--output-dir",
            str(packed),
        ],
        capture_output=True,
        timeout=600,
    )
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert f"nncodec: {src / 'clash.bin'}: " in stderr and "already exists" in stderr
    assert f"{src / 'link.txt'}: is a symbolic link -- skipped" in stderr
    assert f"{src / 'linkdir'}: is a symbolic link -- skipped" in stderr
    failed = 1 if prefix is None else 2
    assert f"{len(files)} files compressed, {failed} failed" in stderr, stderr
    if prefix is not None:
        assert f"nncodec: {src / 'logs' / 'secret.log'}: Permission denied" in stderr
        assert not (packed / "logs" / "secret.log.nnc").exists()
    for relative in files:
        assert (packed / (relative + ".nnc")).is_file(), relative
    assert not (packed / "link.txt.nnc").exists() and not (packed / "linkdir").exists()
    assert (packed / "clash.bin.nnc").read_bytes() == b"not ours"
    (packed / "clash.bin.nnc").unlink()
    assert not [p for p in packed.rglob("*.tmp")]

    restored = tmp_path / "restored"
    result = run_cli("-d", "-r", "-T2", "-v", str(packed), "--output-dir", str(restored))
    assert result.returncode == 0, result.stderr.decode()
    assert f"{len(files)} files decompressed" in result.stderr.decode()
    assert sorted(str(p.relative_to(restored)) for p in restored.rglob("*") if p.is_file()) == sorted(files)
    for relative, (_, mode) in files.items():
        _same_file(restored / relative, src / relative, mode)


def test_outputs_beside_inputs_and_identical_for_any_thread_count(tmp_path):
    trees = {}
    for threads in ("1", "2"):
        root = tmp_path / f"t{threads}"
        _make_tree(root)
        result = run_cli("-r", "-q", f"-T{threads}", str(root))
        assert result.returncode == 0 and result.stderr == b"", result.stderr  # -q: no warnings
        trees[threads] = {k: v for k, v in _outputs(root).items() if k.endswith(".nnc")}
    assert len(trees["1"]) == 8 and trees["1"] == trees["2"]
    # list: a table with a total line; -l is list
    root = tmp_path / "t1"
    listed = run_cli("-l", "-r", str(root))
    lines = listed.stdout.decode().splitlines()
    assert listed.returncode == 0 and lines[0].split()[:4] == ["compressed", "original", "ratio", "bpb"]
    assert len(lines) == 1 + 8 + 1 and "(total, 8 files)" in lines[-1]
    row = next(line for line in lines if line.endswith("notes.txt.nnc"))
    assert "2,500" in row and any(codec in row for codec in ("text", "raw", "classical"))
    # decompressing in place, inputs kept: refuses to overwrite the originals without -f
    result = run_cli("-d", "-r", "-T2", str(root))
    assert result.returncode == 1 and result.stderr.decode().count("already exists") == 8


def test_worker_processes_load_each_model_once(tmp_path):
    for i in range(6):
        (tmp_path / f"img{i}.ppm").write_bytes(png_bytes(8 + i, 6, fmt="PPM"))
    jobs = batch.plan(sorted(str(p) for p in tmp_path.iterdir()), "compress").jobs
    before = modelstore.models_loaded()  # forked workers start with this process's caches
    outcomes = list(batch.run(jobs, FileOptions(codec="image"), processes=2))
    assert [o.error for o in outcomes] == [None] * 6
    pids = {o.pid for o in outcomes}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    for pid in pids:
        loads = max(o.models_loaded for o in outcomes if o.pid == pid) - before
        assert loads <= 1, f"worker {pid} loaded the image model {loads} times"


def test_decompress_name_options_and_summary(tmp_path):
    source = tmp_path / "data.log"
    source.write_bytes(log_lines(50))
    os.utime(source, ns=(MTIME, MTIME))
    assert run_cli(str(source)).returncode == 0
    packed = tmp_path / "data.log.nnc"
    os.utime(packed, ns=(MTIME + 10**9 * 3600, MTIME + 10**9 * 3600))
    out = tmp_path / "out"
    assert run_cli("-d", "-n", str(packed), "--output-dir", str(out)).returncode == 0
    assert os.stat(out / "data.log").st_mtime_ns == MTIME + 10**9 * 3600  # -n: from the .nnc file
    assert run_cli("-d", "-f", str(packed), "--output-dir", str(out)).returncode == 0
    assert os.stat(out / "data.log").st_mtime_ns == MTIME  # default: as stored


@pytest.mark.skipif(shutil.which("tar") is None, reason="tar is not installed")
def test_tar_round_trip_of_the_shared_data_tree(tmp_path):
    """``tar -I nncodec`` and ``--use-compress-program='nncodec -T0'`` over a sample of
    ../shared/data: every second file of at most 512 KB in each directory (all of it, 128 MB, with
    NNCODEC_TEST_FULL_TAR=1)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present (../shared/data is optional outside the dev machines)")
    full = os.environ.get("NNCODEC_TEST_FULL_TAR") == "1"
    tree = tmp_path / "data"
    for directory, _, names in sorted(os.walk(SHARED_DATA)):
        small = [n for n in sorted(names) if (Path(directory) / n).stat().st_size <= 512 << 10]
        for name in sorted(names) if full else small[::3]:
            target = tree / Path(directory).relative_to(SHARED_DATA) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(directory) / name, target)
    assert sum(1 for _ in tree.rglob("*")) > 20
    wrapper = tmp_path / "bin" / "nncodec"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m nncodec "$@"\n')
    wrapper.chmod(0o755)
    env = {**os.environ, "PATH": f"{wrapper.parent}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    archive = tmp_path / "data.tar.nnc"
    # images first: a stream's codec is chosen from its first block
    members = sorted(p.name for p in tree.iterdir())
    members.sort(key=lambda name: name != "images")
    subprocess.run(
        ["tar", "-I", "nncodec", "-cf", str(archive), "-C", str(tree), *members], check=True, env=env
    )
    assert archive.read_bytes().startswith(container.MAGIC)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        ["tar", "--use-compress-program=nncodec -T0", "-xf", str(archive), "-C", str(out)],
        check=True,
        env=env,
    )
    expected = _outputs(tree)
    assert _outputs(out) == expected and len(expected) > 20


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dask_executor_matches_one_process(tmp_path):
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    src = tmp_path / "src"
    _make_tree(src)
    reference = tmp_path / "reference"
    assert run_cli("-r", "-q", "-T1", str(src), "--output-dir", str(reference)).returncode == 0
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        scheduler_port=_free_port(),
        dashboard_address=None,
    ) as cluster:
        packed = tmp_path / "packed"
        result = run_cli("-r", "--dask", cluster.scheduler_address, str(src), "--output-dir", str(packed))
        assert result.returncode == 0, result.stderr.decode()
        assert _outputs(packed) == _outputs(reference) and len(_outputs(packed)) == 8
        restored = tmp_path / "restored"
        result = run_cli(
            "-d", "-r", "--dask", cluster.scheduler_address, str(packed), "--output-dir", str(restored)
        )
        assert result.returncode == 0, result.stderr.decode()
    for relative, (_, mode) in _make_tree(tmp_path / "again").items():
        _same_file(restored / relative, src / relative, mode)


def test_dask_unreachable_scheduler_is_one_line_exit_1(tmp_path):
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    (tmp_path / "a.txt").write_bytes(b"hello")
    address = f"tcp://127.0.0.1:{_free_port()}"
    result = run_cli("--dask", address, str(tmp_path / "a.txt"), env={"NNCODEC_DASK_TIMEOUT": "2"})
    stderr = result.stderr.decode()
    assert result.returncode == 1 and "Traceback" not in stderr and "dask scheduler" in stderr, stderr


def test_bench_measures_tools_and_writes_a_plot(tmp_path):
    (tmp_path / "app.log").write_bytes(log_lines(60))
    (tmp_path / "blob.bin").write_bytes(random.Random(3).randbytes(2_000))
    plot = tmp_path / "bench.png"
    result = run_cli("bench", "--tools", "nncodec,gzip,zstd", "--plot", str(plot), str(tmp_path))
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[1].split()[:3] == ["kind", "tool", "files"]
    table = {(line.split()[0], line.split()[1]): line for line in lines[2:]}
    expected = {("log", "nncodec"), ("binary", "nncodec"), ("all", "nncodec")}
    expected |= {
        (kind, tool) for tool in ("gzip", "zstd") if shutil.which(tool) for kind in ("log", "binary")
    }
    assert expected <= set(table), table
    assert not any(kind == "log" and tool == "xz" for kind, tool in table)  # not asked for
    assert plot.read_bytes().startswith(b"\x89PNG") and plot.stat().st_size < 200_000


def test_bench_verification_catches_a_bad_round_trip():
    from nncodec.cli import benchtool

    assert benchtool._same(b"abc", b"abc", "binary") and not benchtool._same(b"abc", b"abd", "binary")
    ppm = png_bytes(5, 4, fmt="PPM")
    assert benchtool._same(ppm, png_bytes(5, 4, fmt="PNG"), "image")  # same pixels, other file
    assert not benchtool._same(ppm, png_bytes(5, 5, fmt="PNG"), "image")


def test_shell_completion_and_help_examples():
    env = {"_NNCODEC_COMPLETE": "bash_complete", "COMP_WORDS": "nncodec ", "COMP_CWORD": "1"}
    commands = run_cli(env=env).stdout.decode().split()
    assert {"plain,compress", "plain,decompress", "plain,list", "plain,bench"} <= set(commands)
    env = {**env, "COMP_WORDS": "nncodec -d --output-d", "COMP_CWORD": "2"}
    assert run_cli(env=env).stdout.decode().split() == ["plain,--output-dir"]
    for command in ("compress", "decompress", "list", "bench"):
        text = run_cli(command, "--help").stdout.decode()
        assert "Examples:" in text and "  nncodec " in text, command
    assert "_NNCODEC_COMPLETE" in run_cli("--help").stdout.decode()


def test_progress_bar_only_on_a_terminal_and_not_with_q(tmp_path):
    source = tmp_path / "notes.txt"
    source.write_bytes(prose(100_000))  # seconds of work: the bar shows after 1 s (25 KB: too little)

    def stderr_on_a_terminal(*args: str) -> bytes:
        primary, secondary = pty.openpty()
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        try:
            subprocess.run(
                [sys.executable, "-m", "nncodec", "-f", "--codec", "text", "-B", "4K", *args, str(source)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=secondary,
                timeout=300,
                check=True,
            )
            os.close(secondary)
            chunks = []
            while True:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            with contextlib.suppress(OSError):
                os.close(secondary)
            os.close(primary)

    assert b"compressing" in stderr_on_a_terminal()
    assert stderr_on_a_terminal("-q") == b""
    piped = run_cli("-f", "--codec", "text", "-B", "4K", str(source))
    assert piped.returncode == 0 and piped.stderr == b""


def test_sigterm_stops_a_parallel_batch_cleanly(tmp_path):
    files = 8  # ~10 s of work at -T2 (4 files of 25 KB took 2.0 s: finished before the signal)
    dickens = (REPO / "testdata" / "text" / "dickens_head.txt").read_bytes()
    for i in range(files):  # real prose: the model's probes decline generated prose at once
        (tmp_path / f"t{i}.txt").write_bytes(dickens[i * 2500 : i * 2500 + 40_000])
    proc = subprocess.Popen(
        [sys.executable, "-m", "nncodec", "-r", "-T2", "--codec", "text", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(2.5)
    proc.terminate()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and b"Traceback" not in stderr, stderr
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    finished = sorted(tmp_path.glob("*.nnc"))
    assert len(finished) < files  # it was stopped mid-way
    for packed in finished:  # whatever was committed is complete
        assert run_cli("-dc", str(packed)).stdout == (tmp_path / packed.stem).read_bytes()


def test_dask_malformed_address_is_one_line_exit_1(tmp_path):
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    (tmp_path / "a.txt").write_bytes(b"hello")
    result = run_cli("--dask", "no-port-here", str(tmp_path / "a.txt"))
    stderr = result.stderr.decode()
    assert result.returncode == 1 and stderr.count("\n") == 1 and "tcp://host:8786" in stderr, stderr


def test_a_bug_or_a_killed_worker_is_reported_not_raised(tmp_path, monkeypatch):
    for name in ("a.bin", "b.bin", "die.bin"):
        (tmp_path / name).write_bytes(b"x" * 1000)
    jobs = batch.plan(sorted(str(p) for p in tmp_path.iterdir()), "compress").jobs
    bogus = [batch.Job("bogus", job.path, job.name) for job in jobs[:2]]
    for processes in (1, 2):  # in this process, and in worker processes
        outcomes = list(batch.run(bogus, FileOptions(), processes=processes))
        assert len(outcomes) == 2 and all("internal error" in (o.error or "") for o in outcomes)
    compress_file = batch.fileops.compress_file

    def dying(path, *args, **kwargs):
        if path.endswith("die.bin"):
            os.kill(os.getpid(), signal.SIGKILL)
        return compress_file(path, *args, **kwargs)

    monkeypatch.setattr(batch.fileops, "compress_file", dying)  # forked workers inherit it
    outcomes = {Path(o.job.path).name: o for o in batch.run(jobs, FileOptions(codec="raw"), processes=2)}
    assert set(outcomes) == {"a.bin", "b.bin", "die.bin"}
    assert "worker process died" in outcomes["die.bin"].error


def test_bench_runner_reports_the_commands_own_peak_memory():
    """``nncodec bench`` measures each tool's peak RSS: a tool started by a large process must not be
    charged that process's memory (Linux hands it to a forked child's ``ru_maxrss``)."""
    from nncodec.cli import benchtool

    if not benchtool.GNU_TIME.is_file():
        pytest.skip("GNU time not installed: the runner falls back to wait4's upper bound")
    ballast = bytearray(300 << 20)
    ballast[:: 1 << 12] = b"\1" * len(ballast[:: 1 << 12])  # touch every page: 300 MiB resident
    out, _, peak_kib = benchtool._run([sys.executable, "-c", "print('ok')"], None)
    assert out.strip() == b"ok" and peak_kib < 100 << 10
    _, _, peak_kib = benchtool._run(
        [sys.executable, "-c", "x = bytearray(150 << 20); x[:: 1 << 12] = b'1' * len(x[:: 1 << 12])"], None
    )
    assert 150 << 10 < peak_kib < 250 << 10
    del ballast
