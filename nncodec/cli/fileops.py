"""Every job on one input: compress, decompress or test a named file, stdin, or to stdout / -o.

These functions print nothing; they return a ``FileResult`` (sizes, notes for the user) or raise
``UserError`` / ``NncodecError`` / ``OSError``, so they run the same in the CLI's own process, in a
worker process of a batch, or on a dask worker. Outputs are written to a temporary file in the
target directory and renamed only when complete (mode and mtime set first); inputs are removed only
with ``remove_source``, after the output was written and verified.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from nncodec.core import engine
from nncodec.core.container import MAGIC, FileMetadata, read_frame_header

SUFFIX = ".nnc"


class UserError(Exception):
    """A problem with one input or output, reported as ``nncodec: NAME: message``."""


@dataclass
class FileOptions:
    """What a file operation needs to know: plain data, so it can be sent to worker processes."""

    force: bool = False
    remove_source: bool = False
    threads: int = 1
    suffix: str = SUFFIX
    codec: str = "auto"
    block_size: int | None = None
    codec_options: dict[str, object] = field(default_factory=dict)
    #: compress: store the name, mode and mtime; decompress: restore mode and mtime from the frame
    store_name: bool = True
    #: decompress: name the output after the stored original name
    restore_name: bool = False
    #: -M: the most coding memory (bytes) a block may need; None: no limit
    memory_limit: int | None = None


@dataclass
class FileResult:
    original_size: int = 0
    compressed_size: int = 0
    output: str | None = None
    #: messages for the user (always shown unless -q): e.g. why --rm kept a source
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# safe output: temporary file in the target directory, renamed when complete


KEPT_FOR_SPECIAL_OUTPUT = "kept: the output is not a regular file, so --rm does not remove the source"


def is_special(path: Path) -> bool:
    """Whether ``path`` (links followed) is a device, FIFO or socket: a place to write into, never a
    file to replace (``-o /dev/null``, ``-o /dev/stdout``, a named pipe)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


class PendingOutput:
    """An output file being written: a temporary file in the target's directory that becomes the
    target only on ``commit`` (mode and mtime set, then renamed); otherwise it is removed. A target
    that ``is_special`` is written into directly, as zstd does, and never replaced or chmod-ed."""

    def __init__(self, target: Path, force: bool) -> None:
        self.target = target
        self.force = force
        self.committed = False
        self.special = is_special(target)
        if self.special:
            try:
                self.stream: BinaryIO = open(target, "wb")  # closed by commit or __exit__
            except OSError as exc:
                raise UserError(f"cannot write to {target}: {exc.strerror or exc}") from exc
            return
        if target.exists() and not force:
            raise UserError(f"{target} already exists; not overwritten (use -f to overwrite)")
        directory = target.parent
        try:
            fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise UserError(f"cannot write to {directory}: {exc.strerror or exc}") from exc
        self.path = Path(temp_name)
        self.stream = os.fdopen(fd, "wb")

    def commit(self, source_stat: os.stat_result | None, metadata: FileMetadata | None) -> None:
        self.stream.flush()
        if self.special:
            self.stream.close()
            self.committed = True
            return
        os.fsync(self.stream.fileno())
        self.stream.close()
        mode = metadata.mode if metadata and metadata.mode is not None else None
        if mode is None and source_stat is not None:
            mode = stat.S_IMODE(source_stat.st_mode)
        if mode is not None:
            os.chmod(self.path, mode)
        mtime = metadata.mtime_ns if metadata and metadata.mtime_ns is not None else None
        if mtime is None and source_stat is not None:
            mtime = source_stat.st_mtime_ns
        if mtime is not None:
            os.utime(self.path, ns=(mtime, mtime))
        if self.force:
            os.replace(self.path, self.target)
        else:
            try:
                os.link(self.path, self.target)  # atomic: fails if the target appeared meanwhile
            except FileExistsError:
                raise UserError(f"{self.target} already exists; not overwritten") from None
            except OSError:  # no hard links on this filesystem
                if self.target.exists():
                    raise UserError(f"{self.target} already exists; not overwritten") from None
                os.replace(self.path, self.target)
            else:
                os.unlink(self.path)
        self.committed = True

    def __enter__(self) -> PendingOutput:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self.committed:
            self.stream.close()
            if not self.special:
                with contextlib.suppress(OSError):
                    self.path.unlink()


def open_input(
    path: str, *, follow_links: bool = True, files_only: bool = False
) -> tuple[BinaryIO, os.stat_result]:
    """Open a named input, refusing (UserError, nothing opened) a directory; a symbolic link
    unless ``follow_links`` (jobs follow one only with -f, like zstd); and with ``files_only`` (jobs
    that write an output beside their input) anything but a regular file or a FIFO, such as a
    device: ``nncodec /dev/null`` must not create ``/dev/null.nnc``."""
    try:
        info = os.stat(path) if follow_links else os.lstat(path)
    except OSError as exc:
        raise UserError(exc.strerror or str(exc)) from exc
    if stat.S_ISLNK(info.st_mode):
        raise UserError("is a symbolic link -- ignored (use -f to follow it)")
    if stat.S_ISDIR(info.st_mode):
        raise UserError("is a directory -- ignored")
    if files_only and not (stat.S_ISREG(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
        raise UserError("is not a regular file -- ignored (use -c to read it)")
    try:  # O_NOFOLLOW: a link put in the file's place after the check is not followed either
        fd = os.open(path, os.O_RDONLY | (0 if follow_links else os.O_NOFOLLOW))
    except OSError as exc:
        raise UserError(exc.strerror or str(exc)) from exc
    return os.fdopen(fd, "rb"), os.fstat(fd)


def same_file(a: str, b: Path) -> bool:
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return False


def _prepare_directory(directory: str | None) -> None:
    if directory is not None:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create {directory}: {exc.strerror or exc}") from exc


# ---------------------------------------------------------------------------------------------
# the operations


def _check_suffix(path: str, opts: FileOptions) -> None:
    if path.endswith(opts.suffix) and not opts.force:
        raise UserError(f"already has {opts.suffix} suffix -- ignored (use -f to compress anyway)")


def compress_into(
    src: BinaryIO,
    dst: BinaryIO,
    opts: FileOptions,
    *,
    path: str | None = None,
    info: os.stat_result | None = None,
    progress: Callable[[int], None] | None = None,
) -> engine.FrameStats:
    """The compression every job runs, whatever its input and output: a named input (``path``,
    ``info``) has its name, mode and mtime stored unless ``store_name`` is off, and a regular file
    its size."""
    metadata = None
    if path is not None and info is not None and opts.store_name:
        metadata = FileMetadata(os.path.basename(path), stat.S_IMODE(info.st_mode), info.st_mtime_ns)
    regular = info is not None and stat.S_ISREG(info.st_mode) and info.st_size
    return engine.compress_stream(
        src,
        dst,
        codec=opts.codec,
        threads=opts.threads,
        block_size=opts.block_size,
        content_size=info.st_size if regular else None,  # type: ignore[union-attr]
        metadata=metadata,
        options=opts.codec_options,
        progress=progress,
        memory_limit=opts.memory_limit,
    )


def _frames_result(frames: list[engine.FrameStats], output: str | None = None) -> FileResult:
    return FileResult(
        original_size=sum(f.original_size for f in frames),
        compressed_size=sum(f.compressed_size for f in frames),
        output=output,
    )


def compress_file(
    path: str, opts: FileOptions, *, output: str | None = None, directory: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> FileResult:  # fmt: skip
    """Compress ``path`` to ``output``, or to NAME+suffix in ``directory`` (default: beside it)."""
    _check_suffix(path, opts)
    src, info = open_input(path, follow_links=opts.force, files_only=True)
    result = FileResult()
    with src:
        if output is None:
            name = os.path.basename(path) + opts.suffix
            output = os.path.join(directory, name) if directory is not None else path + opts.suffix
        target = Path(output)
        if same_file(path, target):
            raise UserError("input and output are the same file")
        _prepare_directory(directory)
        with PendingOutput(target, opts.force) as pending:
            stats = compress_into(src, pending.stream, opts, path=path, info=info, progress=progress)
            if opts.remove_source and not pending.special:  # verify the output before the source goes
                pending.stream.flush()
                with open(pending.path, "rb") as check:
                    frames = engine.decompress_stream(
                        check, None, threads=opts.threads, memory_limit=opts.memory_limit
                    )
                if [f.content_checksum for f in frames] != [stats.content_checksum]:
                    raise UserError("verification of the written output failed; source kept")
            pending.commit(info, None)
        if opts.remove_source and pending.special:
            result.notes.append(KEPT_FOR_SPECIAL_OUTPUT)
        elif opts.remove_source and not stats.identical:
            result.notes.append(
                "kept: decompressing gives a different file (re-encoded PNG or near-lossless pixels), "
                "so --rm does not remove it"
            )
        elif opts.remove_source:
            os.unlink(path)
    result.original_size, result.compressed_size = stats.original_size, stats.compressed_size
    result.output = str(target)
    return result


def decompressed_target(
    path: str, opts: FileOptions, metadata_name: str | None, output: str | None, directory: str | None
) -> Path:
    if output is not None:
        return Path(output)
    parent = Path(directory) if directory is not None else Path(path).parent
    if opts.restore_name and metadata_name:
        safe = os.path.basename(metadata_name.replace("\\", "/"))
        if safe and safe not in (".", ".."):
            return parent / safe
    name = os.path.basename(path)
    if not name.endswith(opts.suffix) or len(name) == len(opts.suffix):
        raise UserError(f"unknown suffix (expected {opts.suffix}) -- use -o FILE or -c")
    return parent / name[: -len(opts.suffix)]


def peek_metadata(src: BinaryIO) -> tuple[FileMetadata | None, BinaryIO]:
    """The first frame's metadata, and a stream that starts where ``src`` did: ``src`` rewound, or
    for a pipe or FIFO (no seeking) the header bytes replayed before the rest."""
    if src.seekable():
        position = src.tell()
        header = read_frame_header(src)
        src.seek(position)
        return (header.metadata if header else None), src
    recorder = _Recorder(src)
    header = read_frame_header(recorder)  # type: ignore[arg-type]
    return (header.metadata if header else None), io.BufferedReader(_Replay(bytes(recorder.seen), src))


class _Recorder:
    """Reads from ``stream`` and keeps what was read."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream, self.seen = stream, bytearray()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.seen += data
        return data


def _decompress_to_file(
    src: BinaryIO, target: Path, opts: FileOptions, source_stat: os.stat_result | None,
    progress: Callable[[int], None] | None,
) -> tuple[list[engine.FrameStats], bool]:  # fmt: skip
    """Decode ``src`` into ``target`` safely; its mode and mtime come from the frame (``store_name``),
    else from ``source_stat``. Also says whether ``target`` was a device or FIFO written into."""
    with PendingOutput(target, opts.force) as pending:
        frames = engine.decompress_stream(src, pending.stream, threads=opts.threads, progress=progress,
                                           memory_limit=opts.memory_limit)
        pending.commit(source_stat, frames[0].header.metadata if opts.store_name else None)
    return frames, pending.special


def decompress_file(
    path: str, opts: FileOptions, *, output: str | None = None, directory: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> FileResult:  # fmt: skip
    """Decompress ``path`` to ``output``, or to NAME less the suffix in ``directory`` (default:
    beside it). Mode and mtime come from the frame (``store_name``), else from ``path``."""
    src, info = open_input(path, follow_links=opts.force, files_only=True)
    with src:
        metadata, stream = peek_metadata(src)
        target = decompressed_target(path, opts, metadata.name if metadata else None, output, directory)
        if same_file(path, target):
            raise UserError("input and output are the same file")
        _prepare_directory(directory)
        frames, special = _decompress_to_file(stream, target, opts, info, progress)
        if opts.remove_source and not special:
            os.unlink(path)
    result = _frames_result(frames, str(target))
    if opts.remove_source and special:
        result.notes.append(KEPT_FOR_SPECIAL_OUTPUT)
    return result


def test_file(path: str, opts: FileOptions, progress: Callable[[int], None] | None = None) -> FileResult:
    """Decode ``path`` fully and verify every checksum; write nothing."""
    src, _ = open_input(path, follow_links=opts.force)
    with src:
        frames = engine.decompress_stream(src, None, threads=opts.threads, progress=progress,
                                           memory_limit=opts.memory_limit)
    return _frames_result(frames)


class _Replay(io.RawIOBase):
    """The bytes already read from ``stream`` to look at them (``head``), then the rest of it."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head, self._stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self._head[: len(buffer)] if self._head else self._stream.read(len(buffer))
        self._head = self._head[len(data) :]
        buffer[: len(data)] = data
        return len(data)


def _copy(src: BinaryIO, dst: BinaryIO) -> int:
    copied = 0
    while chunk := src.read(1 << 20):
        dst.write(chunk)
        copied += len(chunk)
    return copied


STDIN_IS_TERMINAL = "stdin is a terminal; refusing to read compressed data from it"
STDOUT_IS_TERMINAL = "stdout is a terminal; refusing to write compressed data"
STDIN_TYPED = "stdin is a terminal; refusing to compress what is typed (pipe data in)"


def not_a_terminal(stream: BinaryIO, opts: FileOptions, message: str) -> BinaryIO:
    """``stream``, unless it is a terminal and ``force`` is off (then UserError(message))."""
    if not opts.force and stream.isatty():
        raise UserError(f"{message} (use -f to force)")
    return stream


def stream_job(
    op: str, path: str, opts: FileOptions, *, output: str | None, stdin: BinaryIO, stdout: BinaryIO,
    progress: Callable[[int], None] | None = None,
) -> FileResult:  # fmt: skip
    """A job on stdin (``path`` "-") or to stdout: ``op`` is compress, decompress or test; the
    output goes to the file ``output`` (``-o``) when given, else to ``stdout``. Without ``force``,
    a terminal is never read (zstd: "stdin is a console") nor sent compressed data."""
    if path == "-":
        src, info = not_a_terminal(stdin, opts, STDIN_IS_TERMINAL if op != "compress" else STDIN_TYPED), None
    else:
        if op == "compress":
            _check_suffix(path, opts)
        src, info = open_input(path, follow_links=opts.force)
    opened = src  # closed at the end (what wraps it below does not close it)
    try:
        if op == "compress":
            if output is not None:
                with PendingOutput(Path(output), opts.force) as pending:
                    stats = compress_into(src, pending.stream, opts, path=path, info=info, progress=progress)
                    pending.commit(None, None)
            else:
                dst = not_a_terminal(stdout, opts, STDOUT_IS_TERMINAL)
                stats = compress_into(src, dst, opts, path=path, info=info, progress=progress)
            return FileResult(stats.original_size, stats.compressed_size)
        if op == "decompress" and output is None and opts.force:  # zcat -f: other data passes through
            head = engine.read_up_to(src, len(MAGIC))
            if head and head != MAGIC:  # (empty input is an error, as in zstd)
                stdout.write(head)
                copied = len(head) + _copy(src, stdout)
                return FileResult(copied, copied)
            src = io.BufferedReader(_Replay(head, src))
        if op == "test":
            frames = engine.decompress_stream(src, None, threads=opts.threads, progress=progress,
                                           memory_limit=opts.memory_limit)
        elif output is not None:
            frames = _decompress_to_file(src, Path(output), opts, None, progress)[0]
        else:
            frames = engine.decompress_stream(src, stdout, threads=opts.threads, progress=progress,
                                           memory_limit=opts.memory_limit)
        return _frames_result(frames)
    finally:
        if path != "-":
            opened.close()
