"""The command line, as users and scripts drive it (subprocesses, like a shell)."""

import hashlib
import os
import pty
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, run_cli

import nncodec
from nncodec.core import container


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _no_leftovers(directory) -> bool:
    return not [p for p in directory.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]


@pytest.fixture
def text_file(tmp_path, samples):
    path = tmp_path / "notes.txt"
    path.write_bytes(samples["text"])
    os.chmod(path, 0o640)
    os.utime(path, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    return path


def test_compress_then_decompress_a_file_keeps_input_mode_and_mtime(text_file, tmp_path):
    original = text_file.read_bytes()
    result = run_cli(str(text_file))
    assert result.returncode == 0, result.stderr
    packed = tmp_path / "notes.txt.nnc"
    assert packed.exists() and text_file.read_bytes() == original  # input kept by default
    assert os.stat(packed).st_mtime_ns == 1_600_000_000_123_456_789
    text_file.unlink()
    result = run_cli("-d", str(packed))
    assert result.returncode == 0, result.stderr
    assert text_file.read_bytes() == original and packed.exists()
    info = os.stat(text_file)
    assert oct(info.st_mode & 0o7777) == oct(0o640)
    assert info.st_mtime_ns == 1_600_000_000_123_456_789


def test_subcommands_and_flags_are_equivalent(text_file, tmp_path):
    run_cli("compress", str(text_file))
    a = (tmp_path / "notes.txt.nnc").read_bytes()
    run_cli("-f", "-z", str(text_file))
    assert (tmp_path / "notes.txt.nnc").read_bytes() == a
    out = run_cli("decompress", "-c", str(tmp_path / "notes.txt.nnc"))
    assert out.returncode == 0 and out.stdout == text_file.read_bytes()
    bundled = run_cli("-dc", str(tmp_path / "notes.txt.nnc"))
    assert bundled.stdout == text_file.read_bytes()


def test_stdin_to_stdout_and_dash(samples):
    data = samples["log"]
    packed = run_cli(input=data)
    assert packed.returncode == 0 and packed.stdout.startswith(container.MAGIC)
    assert run_cli("-d", input=packed.stdout).stdout == data
    assert run_cli("-d", "-", input=packed.stdout).stdout == data
    assert run_cli("-", input=data).stdout == packed.stdout


def test_output_option_and_stdout_option(text_file, tmp_path):
    target = tmp_path / "elsewhere.bin"
    assert run_cli("-o", str(target), str(text_file)).returncode == 0
    assert run_cli("-dc", str(target)).stdout == text_file.read_bytes()
    restored = tmp_path / "restored.txt"
    assert run_cli("-d", "-o", str(restored), str(target)).returncode == 0
    assert restored.read_bytes() == text_file.read_bytes()
    to_stdout = run_cli("-c", str(text_file))
    assert to_stdout.returncode == 0 and nncodec.decompress(to_stdout.stdout) == text_file.read_bytes()
    assert not (tmp_path / "notes.txt.nnc").exists()
    several = run_cli("-o", str(target), str(text_file), str(text_file))  # an error, as in zstd
    assert several.returncode == 1 and b"-o FILE" in several.stderr


def test_existing_output_is_refused_without_force(text_file, tmp_path):
    target = tmp_path / "notes.txt.nnc"
    target.write_bytes(b"precious")
    result = run_cli(str(text_file))
    assert result.returncode == 1 and b"already exists" in result.stderr
    assert target.read_bytes() == b"precious"
    assert run_cli("-f", str(text_file)).returncode == 0
    assert nncodec.decompress(target.read_bytes()) == text_file.read_bytes()
    assert _no_leftovers(tmp_path)


def test_rm_removes_source_only_after_success(text_file, tmp_path):
    original = text_file.read_bytes()
    (tmp_path / "notes.txt.nnc").write_bytes(b"in the way")
    assert run_cli("--rm", str(text_file)).returncode == 1
    assert text_file.read_bytes() == original  # output could not be written: source kept
    (tmp_path / "notes.txt.nnc").unlink()
    assert run_cli("--rm", str(text_file)).returncode == 0
    assert not text_file.exists()
    assert run_cli("-d", "--rm", str(tmp_path / "notes.txt.nnc")).returncode == 0
    assert text_file.read_bytes() == original and not (tmp_path / "notes.txt.nnc").exists()
    assert run_cli("-c", "--rm", str(text_file)).returncode == 0
    assert text_file.exists()  # -c never removes inputs


def test_keep_flag_is_accepted(text_file, tmp_path):
    assert run_cli("-k", str(text_file)).returncode == 0
    assert text_file.exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"just some text\n", "not an nncodec file"),
        (b"", "empty input"),
        (b"truncated", None),
        (b"newer", "format v9; this build reads up to v1"),
        (b"model", "needs model 'text-none'"),
        (b"corrupt", "checksum mismatch"),
    ],
)
def test_bad_inputs_give_one_clear_line_exit_1_and_no_output(tmp_path, content, message):
    good = nncodec.compress(b"hello world " * 100)
    if content == b"truncated":
        content = good[:-3]
        message = "unexpected end of file"
    elif content == b"newer":
        body = container.MAGIC + bytes([9, 0, 2, 0, 0])
        content = body + __import__("zlib").crc32(body).to_bytes(4, "little")
    elif content == b"model":
        header = container.FrameHeader(codec_id=2, model_id="text-none", model_sha256=bytes(32))
        content = header.encode() + good[len(container.FrameHeader(codec_id=2, content_size=1200).encode()) :]
    elif content == b"corrupt":
        content = bytearray(good)
        content[-1] ^= 0x55
        content = bytes(content)
    bad = tmp_path / "bad.nnc"
    bad.write_bytes(content)
    before = _digest(bad)
    for args in (["-d", str(bad)], ["-t", str(bad)], ["-dc", str(bad)]):
        result = run_cli(*args, cwd=tmp_path)
        stderr = result.stderr.decode()
        assert result.returncode == 1, (args, stderr)
        assert "Traceback" not in stderr and stderr.count("\n") == 1
        assert stderr.startswith("nncodec: ") and "bad.nnc" in stderr and message in stderr, stderr
    assert not (tmp_path / "bad").exists() and _no_leftovers(tmp_path)
    assert _digest(bad) == before


def test_one_bad_file_does_not_stop_the_batch(tmp_path, samples):
    good = tmp_path / "good.txt"
    good.write_bytes(samples["text"])
    result = run_cli(str(tmp_path / "missing.txt"), str(good))
    assert result.returncode == 1 and b"missing.txt" in result.stderr
    assert (tmp_path / "good.txt.nnc").exists()


def test_unknown_suffix_and_directories(tmp_path, samples):
    (tmp_path / "data.bin").write_bytes(nncodec.compress(b"x"))
    result = run_cli("-d", str(tmp_path / "data.bin"))
    assert result.returncode == 1 and b"unknown suffix" in result.stderr
    result = run_cli(str(tmp_path))
    assert result.returncode == 1 and b"directory" in result.stderr


def test_usage_errors_exit_2():
    assert run_cli("--no-such-option").returncode == 2
    assert run_cli("-d", "-z").returncode == 2
    assert run_cli("--codec", "nope").returncode == 2


def test_version_and_help():
    assert run_cli("--version").stdout.startswith(b"nncodec, version")
    help_text = run_cli("--help").stdout.decode()
    assert "Exit codes" in help_text and "tar -I nncodec" in help_text


def test_info_and_test_commands(text_file, tmp_path):
    run_cli("--codec", "raw", "-B", "8K", str(text_file))
    packed = tmp_path / "notes.txt.nnc"
    shown = run_cli("info", str(packed)).stdout.decode()
    for field in ("codec", "raw", "original", f"{len(text_file.read_bytes()):,}", "blocks", "checksum"):
        assert field in shown, shown
    listed = run_cli("-l", "--json", str(packed))
    record = __import__("json").loads(listed.stdout)["frames"][0]
    assert record["blocks"] == 4 and record["name"] == "notes.txt" and record["mode"] == "0o640"
    tested = run_cli("-t", "-v", str(packed))
    assert tested.returncode == 0 and b"OK" in tested.stderr
    assert not (tmp_path / "notes.txt").stat().st_size == 0  # test wrote nothing over the input


def test_name_restoration_is_opt_in_and_sanitized(tmp_path, samples):
    source = tmp_path / "original-name.txt"
    source.write_bytes(samples["text"][:1000])
    run_cli("-o", str(tmp_path / "renamed.nnc"), str(source))
    source.unlink()
    assert run_cli("-d", str(tmp_path / "renamed.nnc")).returncode == 0
    assert (tmp_path / "renamed").exists() and not source.exists()
    assert run_cli("-d", "-N", str(tmp_path / "renamed.nnc")).returncode == 0
    assert source.read_bytes() == samples["text"][:1000]
    hostile = container.FileMetadata(name="../../escape.txt")
    header = container.FrameHeader(codec_id=1, metadata=hostile)
    digest = container.content_hasher().digest()
    (tmp_path / "hostile.nnc").write_bytes(header.encode() + container.encode_footer(digest))
    assert run_cli("-d", "-N", str(tmp_path / "hostile.nnc")).returncode == 0
    assert (tmp_path / "escape.txt").exists() and not (tmp_path.parent.parent / "escape.txt").exists()


def test_threads_do_not_change_output(samples):
    data = b"".join(samples.values()) * 4
    one = run_cli("-T1", "-B", "16K", input=data).stdout
    two = run_cli("-T", "2", "-B", "16K", input=data).stdout
    assert one == two and run_cli("-d", "-T2", input=one).stdout == data


def test_concatenated_files_decompress_to_concatenation(tmp_path, samples):
    a = run_cli(input=samples["text"]).stdout
    b = run_cli(input=samples["binary"]).stdout
    assert run_cli("-d", input=a + b).stdout == samples["text"] + samples["binary"]


def _run_with_tty_stdout(args: list[str], data: bytes) -> tuple[int, bytes]:
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "nncodec", *args],
            input=data,
            stdout=secondary,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(secondary)
        os.close(primary)
    return proc.returncode, proc.stderr


def test_refuses_to_write_compressed_data_to_a_terminal():
    code, stderr = _run_with_tty_stdout([], b"data")
    assert code == 1 and b"terminal" in stderr
    code, _ = _run_with_tty_stdout(["-f"], b"data")
    assert code == 0


@pytest.mark.skipif(shutil.which("tar") is None, reason="tar is not installed")
def test_tar_use_compress_program_round_trip(tmp_path, samples):
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    for name, data in samples.items():
        (tree / "sub" / name).write_bytes(data)
    (tree / "empty").write_bytes(b"")
    wrapper = tmp_path / "nncodec"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m nncodec "$@"\n')
    wrapper.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    archive = tmp_path / "x.tar.nnc"
    subprocess.run(
        ["tar", "-I", "nncodec", "-cf", str(archive), "-C", str(tmp_path), "tree"], check=True, env=env
    )
    assert archive.read_bytes().startswith(container.MAGIC)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-I", "nncodec", "-xf", str(archive), "-C", str(out)], check=True, env=env)
    for name, data in samples.items():
        assert (out / "tree" / "sub" / name).read_bytes() == data
    assert (out / "tree" / "empty").read_bytes() == b""


def test_a_bug_while_coding_a_stream_is_one_line_not_a_traceback(monkeypatch):
    """As for files (tests/test_batch.py): an unexpected exception (a bug) in a stream job is
    reported as one line and exit status 1."""
    from click.testing import CliRunner

    from nncodec.cli import fileops
    from nncodec.cli.main import main

    def broken(*args, **kwargs):
        raise ValueError("read length must be non-negative or -1")

    monkeypatch.setattr(fileops, "stream_job", broken)
    result = CliRunner().invoke(main, ["-c"], input=b"some text\n" * 50)
    assert result.exit_code == 1
    assert "internal error (please report it): ValueError" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args", [["-T2", "-c", "FILE"], ["-T2", "-d", "-c", "FILE.nnc"], ["-T2", "-", "-o", "OUT"]],
    ids=["compress-to-stdout", "decompress-to-stdout", "stdin-to-o"],
)
def test_streams_get_every_thread_of_dash_T(tmp_path, monkeypatch, args):
    """`cmd | nncodec -T2 -c` runs one stream in this process: it must get both threads (it got
    one until 2026-12-04, which made -T2 decoding to stdout as slow as -T1)."""
    from click.testing import CliRunner

    from nncodec.cli import fileops
    from nncodec.cli.main import main

    source = tmp_path / "a.txt"
    source.write_bytes(b"some text\n" * 50)
    (tmp_path / "a.txt.nnc").write_bytes(nncodec.compress(source.read_bytes()))
    seen = []
    real = fileops.stream_job

    def spy(op, path, files, **kwargs):
        seen.append(files.threads)
        return real(op, path, files, **kwargs)

    monkeypatch.setattr(fileops, "stream_job", spy)
    paths = {"FILE": str(source), "FILE.nnc": str(source) + ".nnc", "OUT": str(tmp_path / "out.nnc")}
    result = CliRunner().invoke(main, [paths.get(a, a) for a in args], input=source.read_bytes())
    assert result.exit_code == 0, result.output
    assert seen == [2]
