"""The ``nncodec`` command line, shaped like zstd's.

``nncodec [FILES]`` compresses, ``nncodec -d`` decompresses, ``-t`` tests, ``-l`` lists; the same
operations are also subcommands (``nncodec compress|decompress|test|info``). No file or ``-`` means
stdin to stdout, so ``tar -I nncodec`` and pipelines work.

Exit codes: 0 success, 1 an error with some input (reported, other inputs still processed),
2 a usage error. Output files are written to a temporary file in the target directory and renamed
only when complete; inputs are never modified, and removed only with ``--rm`` after the output was
written and verified.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import click

from nncodec import __version__, engine
from nncodec.codecs import CODEC_CHOICES, IMAGE_MODELS
from nncodec.container import MAX_BLOCK_SIZE, FileMetadata
from nncodec.errors import NncodecError

SUFFIX = ".nnc"
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
CONTEXT = {"help_option_names": ["-h", "--help"]}

# flags that select an operation when no subcommand is named (zstd style)
MODE_FLAGS = {
    "-d": "decompress", "--decompress": "decompress", "--uncompress": "decompress",
    "-t": "test", "--test": "test",
    "-l": "info", "--list": "info",
    "-z": "compress", "--compress": "compress",
}  # fmt: skip
# short boolean flags that may be bundled (``-dc``, ``-kf``)
BUNDLABLE = set("dtlzckfqvn")


class ByteSize(click.ParamType):
    """A byte count with an optional K/M/G suffix (powers of 1024)."""

    name = "size"
    _UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().removesuffix("IB").removesuffix("B")
        unit = text[-1:] if text[-1:] in self._UNITS else ""
        try:
            size = int(text[: len(text) - len(unit)]) * self._UNITS[unit]
        except ValueError:
            self.fail(f"{value!r} is not a size like 65536, 512K or 4M", param, ctx)
        if not 1 <= size <= MAX_BLOCK_SIZE:
            self.fail(f"block size must be between 1 and {MAX_BLOCK_SIZE}", param, ctx)
        return size


class UserError(Exception):
    """A problem with one input or output, reported as ``nncodec: NAME: message``."""


# ---------------------------------------------------------------------------------------------
# argument handling: ``nncodec -d FILE`` means ``nncodec decompress FILE``


def _split_bundles(args: list[str]) -> list[str]:
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        if len(arg) > 2 and arg[0] == "-" and arg[1] != "-" and set(arg[1:]) <= BUNDLABLE:
            out.extend(f"-{letter}" for letter in arg[1:])
        else:
            out.append(arg)
    return out


class ZstdStyleGroup(click.Group):
    """A group whose default command is chosen by mode flags, so zstd/gzip habits work."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = _split_bundles(list(args))
        if args and (args[0] in self.commands or args[0] in ("-h", "--help", "-V", "--version")):
            return super().parse_args(ctx, args)
        end = args.index("--") if "--" in args else len(args)
        modes = {MODE_FLAGS[a] for a in args[:end] if a in MODE_FLAGS}
        if len(modes) > 1:
            raise click.UsageError(f"conflicting operations: {', '.join(sorted(modes))}", ctx)
        mode = modes.pop() if modes else "compress"
        rest = [a for i, a in enumerate(args) if i >= end or a not in MODE_FLAGS]
        return super().parse_args(ctx, [mode, *rest])


@dataclass
class Options:
    output: str | None = None
    stdout: bool = False
    remove_source: bool = False
    force: bool = False
    verbosity: int = 0
    threads: int = 1
    suffix: str = SUFFIX
    codec: str = "auto"
    store_name: bool = True
    restore_name: bool = False
    block_size: int | None = None
    max_error: int = 0
    image_model: str = "nextpixel"

    @property
    def codec_options(self) -> dict[str, object]:
        options: dict[str, object] = {"max_error": self.max_error} if self.max_error else {}
        if self.image_model != "nextpixel":
            options["image_model"] = self.image_model
        return options

    def say(self, level: int, message: str) -> None:
        if self.verbosity >= level:
            click.echo(message, err=True)


# ---------------------------------------------------------------------------------------------
# safe output: temporary file in the target directory, renamed when complete


class PendingOutput:
    """An output file being written: a temporary file in the target's directory that becomes the
    target only on ``commit`` (mode and mtime set, then renamed); otherwise it is removed."""

    def __init__(self, target: Path, force: bool) -> None:
        if target.exists() and not force:
            raise UserError(f"{target} already exists; not overwritten (use -f to overwrite)")
        directory = target.parent
        try:
            fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise UserError(f"cannot write to {directory}: {exc.strerror or exc}") from exc
        self.target = target
        self.path = Path(temp_name)
        self.stream: BinaryIO = os.fdopen(fd, "wb")
        self.force = force
        self.committed = False

    def commit(self, source_stat: os.stat_result | None, metadata: FileMetadata | None) -> None:
        self.stream.flush()
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
            with contextlib.suppress(OSError):
                self.path.unlink()


def _stdout(opts: Options, compressed: bool) -> BinaryIO:
    out = sys.stdout.buffer
    if compressed and not opts.force and out.isatty():
        raise UserError("stdout is a terminal; refusing to write compressed data (use -f to force)")
    return out


def _stdin(opts: Options, compressed: bool) -> BinaryIO:
    src = sys.stdin.buffer
    if compressed and not opts.force and src.isatty():
        raise UserError("stdin is a terminal; refusing to read compressed data from it (use -f to force)")
    return src


def _open_input(path: str) -> tuple[BinaryIO, os.stat_result]:
    try:
        info = os.stat(path)
    except OSError as exc:
        raise UserError(exc.strerror or str(exc)) from exc
    if stat.S_ISDIR(info.st_mode):
        raise UserError("is a directory -- ignored")
    try:
        return open(path, "rb"), info
    except OSError as exc:
        raise UserError(exc.strerror or str(exc)) from exc


def _same_file(a: str, b: Path) -> bool:
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return False


def _remove_source(path: str, opts: Options) -> None:
    os.unlink(path)
    opts.say(2, f"{path}: removed")


def _ratio_line(name: str, original: int, compressed: int) -> str:
    ratio = original / compressed if compressed else 0.0
    bpb = 8 * compressed / original if original else 0.0
    return f"{name}: {original:,} -> {compressed:,} bytes (ratio {ratio:.3f}, {bpb:.3f} bpb)"


# ---------------------------------------------------------------------------------------------
# the operations, one input at a time


def compress_one(path: str, opts: Options) -> None:
    if path == "-":
        src = _stdin(opts, compressed=False)
        if opts.output and not opts.stdout:
            with PendingOutput(Path(opts.output), opts.force) as pending:
                stats = engine.compress_stream(
                    src, pending.stream, codec=opts.codec, threads=opts.threads, block_size=opts.block_size,
                    options=opts.codec_options,
                )  # fmt: skip
                pending.commit(None, None)
        else:
            stats = engine.compress_stream(
                src,
                _stdout(opts, compressed=True),
                codec=opts.codec,
                threads=opts.threads,
                block_size=opts.block_size,
                options=opts.codec_options,
            )
        opts.say(2, _ratio_line("stdin", stats.original_size, stats.compressed_size))
        return

    if path.endswith(opts.suffix) and not opts.force:
        raise UserError(f"already has {opts.suffix} suffix -- ignored (use -f to compress anyway)")
    src, info = _open_input(path)
    with src:
        metadata = None
        if opts.store_name:
            metadata = FileMetadata(os.path.basename(path), stat.S_IMODE(info.st_mode), info.st_mtime_ns)
        kwargs = dict(
            codec=opts.codec,
            threads=opts.threads,
            block_size=opts.block_size,
            content_size=info.st_size if stat.S_ISREG(info.st_mode) and info.st_size else None,
            metadata=metadata,
            options=opts.codec_options,
        )
        if opts.stdout:
            stats = engine.compress_stream(src, _stdout(opts, compressed=True), **kwargs)
        else:
            target = Path(opts.output or path + opts.suffix)
            if _same_file(path, target):
                raise UserError("input and output are the same file")
            with PendingOutput(target, opts.force) as pending:
                stats = engine.compress_stream(src, pending.stream, **kwargs)
                if opts.remove_source:  # verify the written output before the source may go
                    pending.stream.flush()
                    with open(pending.path, "rb") as check:
                        frames = engine.decompress_stream(check, None, threads=opts.threads)
                    if [f.content_checksum for f in frames] != [stats.content_checksum]:
                        raise UserError("verification of the written output failed; source kept")
                pending.commit(info, None)
            if opts.remove_source and not stats.identical:
                opts.say(0, f"nncodec: {path}: kept: decompressing gives a different file (re-encoded PNG "
                         "or near-lossless pixels), so --rm does not remove it")  # fmt: skip
            elif opts.remove_source:
                _remove_source(path, opts)
    opts.say(2, _ratio_line(path, stats.original_size, stats.compressed_size))


def _decompressed_target(path: str, opts: Options, metadata_name: str | None) -> Path:
    if opts.output:
        return Path(opts.output)
    if opts.restore_name and metadata_name:
        safe = os.path.basename(metadata_name.replace("\\", "/"))
        if safe and safe not in (".", ".."):
            return Path(path).parent / safe
    if not path.endswith(opts.suffix) or len(path) == len(opts.suffix):
        raise UserError(f"unknown suffix (expected {opts.suffix}) -- use -o FILE or -c")
    return Path(path[: -len(opts.suffix)])


def _peek_metadata(src: BinaryIO) -> FileMetadata | None:
    """The first frame's metadata, leaving the stream at its start (regular files only)."""
    from nncodec.container import read_frame_header

    position = src.tell()
    header = read_frame_header(src)
    src.seek(position)
    return header.metadata if header else None


def decompress_one(path: str, opts: Options) -> None:
    if path == "-":
        src = _stdin(opts, compressed=True)
        if opts.output and not opts.stdout:
            with PendingOutput(Path(opts.output), opts.force) as pending:
                frames = engine.decompress_stream(src, pending.stream, threads=opts.threads)
                pending.commit(None, frames[0].header.metadata)
        else:
            frames = engine.decompress_stream(src, sys.stdout.buffer, threads=opts.threads)
        opts.say(
            2,
            _ratio_line(
                "stdin", sum(f.original_size for f in frames), sum(f.compressed_size for f in frames)
            ),
        )
        return

    src, info = _open_input(path)
    with src:
        if opts.stdout:
            frames = engine.decompress_stream(src, sys.stdout.buffer, threads=opts.threads)
        else:
            metadata = _peek_metadata(src)
            target = _decompressed_target(path, opts, metadata.name if metadata else None)
            if _same_file(path, target):
                raise UserError("input and output are the same file")
            with PendingOutput(target, opts.force) as pending:
                frames = engine.decompress_stream(src, pending.stream, threads=opts.threads)
                pending.commit(info, frames[0].header.metadata)
            if opts.remove_source:
                _remove_source(path, opts)
    opts.say(
        2, _ratio_line(path, sum(f.original_size for f in frames), sum(f.compressed_size for f in frames))
    )


def test_one(path: str, opts: Options) -> None:
    if path == "-":
        frames = engine.decompress_stream(_stdin(opts, compressed=True), None, threads=opts.threads)
    else:
        src, _ = _open_input(path)
        with src:
            frames = engine.decompress_stream(src, None, threads=opts.threads)
    opts.say(1, f"{path}: OK ({sum(f.original_size for f in frames):,} bytes, {len(frames)} frame(s))")


def _codec_details(frame: engine.FrameStats) -> list[tuple[str, str]]:
    try:
        return engine.codec_by_id(frame.header.codec_id).describe_params(frame.header.codec_params)
    except NncodecError:
        return []


def _frame_record(frame: engine.FrameStats) -> dict[str, object]:
    header = frame.header
    meta = header.metadata
    return {
        "format_version": header.version,
        "codec": frame.codec_name,
        "model": header.model_id or None,
        "model_sha256": header.model_sha256.hex() or None,
        "original_size": frame.original_size,
        "compressed_size": frame.compressed_size,
        "ratio": round(frame.original_size / frame.compressed_size, 4) if frame.compressed_size else None,
        "blocks": frame.blocks,
        "block_codecs": dict(frame.block_codecs),
        "details": dict(_codec_details(frame)),
        "checksum": "blake2b-64:" + frame.content_checksum.hex(),
        "name": meta.name if meta else None,
        "mode": oct(meta.mode) if meta and meta.mode is not None else None,
        "mtime_ns": meta.mtime_ns if meta else None,
    }


def info_one(path: str, opts: Options, as_json: bool) -> None:
    if path == "-":
        frames = engine.scan_frames(_stdin(opts, compressed=True))
    else:
        src, _ = _open_input(path)
        with src:
            frames = engine.scan_frames(src)
    records = [_frame_record(f) for f in frames]
    if as_json:
        click.echo(json.dumps({"file": path, "frames": records}))
        return
    click.echo(path)
    for number, record in enumerate(records, 1):
        if len(records) > 1:
            click.echo(f"  frame {number}")
        model = record["model"] or "-"
        if record["model"]:
            model += f" (sha256 {str(record['model_sha256'])[:16]}…)"
        blocks = ", ".join(f"{k} {v}" for k, v in record["block_codecs"].items())  # type: ignore[union-attr]
        ratio = record["ratio"]
        bpb = (
            8 * frames[number - 1].compressed_size / frames[number - 1].original_size
            if frames[number - 1].original_size
            else 0
        )
        lines = [
            ("format", f"v{record['format_version']}"),
            ("codec", record["codec"]),
            ("model", model),
            ("original", f"{record['original_size']:,} bytes"),
            ("compressed", f"{record['compressed_size']:,} bytes"),
            ("ratio", f"{ratio:.3f} ({bpb:.3f} bpb)" if ratio else "-"),
            ("blocks", f"{record['blocks']}" + (f" ({blocks})" if blocks else "")),
            ("checksum", record["checksum"]),
        ]
        lines += list(record["details"].items())  # type: ignore[union-attr]
        if record["name"] is not None:
            lines.append(("name", record["name"]))
        if record["mode"] is not None:
            lines.append(("mode", record["mode"]))
        for key, value in lines:
            click.echo(f"  {key:<11}{value}")


# ---------------------------------------------------------------------------------------------
# running a batch: errors are reported per input, the batch continues, the exit code says so


def _run(files: tuple[str, ...], opts: Options, action: Callable[[str, Options], None]) -> None:
    inputs = list(files) or ["-"]
    if opts.output and len(inputs) > 1:
        raise click.UsageError("-o/--output takes a single input")
    failed = False
    for path in inputs:
        name = "stdin" if path == "-" else path
        try:
            action(path, opts)
        except (UserError, NncodecError) as exc:
            failed = True
            if opts.verbosity >= -1:
                click.echo(f"nncodec: {name}: {exc}", err=True)
        except OSError as exc:
            failed = True
            if opts.verbosity >= -1:
                click.echo(f"nncodec: {name}: {exc.strerror or exc}", err=True)
    sys.exit(EXIT_ERROR if failed else EXIT_OK)


def _common_options(func: Callable) -> Callable:
    decorators = [
        click.argument("files", nargs=-1, type=click.Path()),
        click.option("-q", "--quiet", count=True, help="Fewer messages (twice: no error messages)."),
        click.option("-v", "--verbose", count=True, help="More messages (repeatable)."),
        click.option("-T", "--threads", type=click.IntRange(min=0), default=1, show_default=True,
                     help="Worker threads; 0 = all cores. Output does not depend on it."),
        click.option("-f", "--force", is_flag=True,
                     help="Overwrite outputs; allow terminals; compress files already ending in .nnc."),
    ]  # fmt: skip
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _io_options(func: Callable) -> Callable:
    decorators = [
        click.option("-o", "--output", type=click.Path(), help="Write to FILE (single input only)."),
        click.option("-c", "--stdout", "to_stdout", is_flag=True, help="Write to stdout; keep inputs."),
        click.option("-k", "--keep", is_flag=True, help="Keep input files (the default)."),
        click.option("--rm", "remove_source", is_flag=True,
                     help="Remove input files after the output is written and verified."),
        click.option("-S", "--suffix", default=SUFFIX, show_default=True, help="Suffix of compressed files."),
    ]  # fmt: skip
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


@click.group(cls=ZstdStyleGroup, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="nncodec")
def main() -> None:
    """nncodec: learned compression where it wins, zstd where it doesn't.

    \b
    Examples:
      nncodec FILE                 compress FILE to FILE.nnc (FILE is kept)
      nncodec -d FILE.nnc          decompress to FILE
      cmd | nncodec > out.nnc      compress a stream
      nncodec -dc out.nnc | less   decompress to stdout
      tar -I nncodec -cf x.tar.nnc DIR
      nncodec info FILE.nnc        codec, model, sizes, ratio, blocks, checksum

    Exit codes: 0 ok, 1 error (reported; other files still processed), 2 usage error.
    """
    signal.signal(signal.SIGTERM, _terminate)
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds, so temporary outputs are removed


def _options(quiet: int, verbose: int, threads: int, force: bool, **extra: object) -> Options:
    return Options(verbosity=verbose - quiet, threads=threads, force=force, **extra)  # type: ignore[arg-type]


@main.command()
@_common_options
@_io_options
@click.option(
    "--codec",
    type=click.Choice(CODEC_CHOICES),
    default="auto",
    show_default=True,
    help="Codec to use; auto sniffs the content.",
)
@click.option("-n", "--no-name", is_flag=True, help="Do not store the file name, mode and mtime.")
@click.option(
    "-B",
    "--block-size",
    type=ByteSize(),
    default=None,
    help="Bytes per independent block, e.g. 4M (default: the codec's choice).",
)
@click.option(
    "--max-error",
    type=click.IntRange(0, 32),
    default=0,
    show_default=True,
    help="Images: near-lossless, every subpixel within N of the original (0 = lossless).",
)
@click.option(
    "--image-model",
    type=click.Choice(IMAGE_MODELS),
    default="nextpixel",
    show_default=True,
    help="Images: next-pixel network (smallest) or probabilistic circuit (pc, faster).",
)
@click.option("-z", "--compress", "compress_flag", is_flag=True, hidden=True)
def compress(
    files: tuple[str, ...],
    quiet: int,
    verbose: int,
    threads: int,
    force: bool,
    output: str | None,
    to_stdout: bool,
    keep: bool,
    remove_source: bool,
    suffix: str,
    codec: str,
    no_name: bool,
    block_size: int | None,
    max_error: int,
    image_model: str,
    compress_flag: bool,
) -> None:
    """Compress FILES (default: stdin to stdout) to FILE.nnc."""
    if remove_source and to_stdout:
        remove_source = False  # like zstd: -c never removes inputs
    opts = _options(
        quiet,
        verbose,
        threads,
        force,
        output=output,
        stdout=to_stdout,
        remove_source=remove_source,
        suffix=suffix,
        codec=codec,
        store_name=not no_name,
        block_size=block_size,
        max_error=max_error,
        image_model=image_model,
    )
    _run(files, opts, compress_one)


@main.command()
@_common_options
@_io_options
@click.option("-N", "--name", "restore_name", is_flag=True, help="Restore the original file name if stored.")
def decompress(
    files: tuple[str, ...],
    quiet: int,
    verbose: int,
    threads: int,
    force: bool,
    output: str | None,
    to_stdout: bool,
    keep: bool,
    remove_source: bool,
    suffix: str,
    restore_name: bool,
) -> None:
    """Decompress FILES (default: stdin to stdout); FILE.nnc becomes FILE."""
    if remove_source and to_stdout:
        remove_source = False
    opts = _options(
        quiet,
        verbose,
        threads,
        force,
        output=output,
        stdout=to_stdout,
        remove_source=remove_source,
        suffix=suffix,
        restore_name=restore_name,
    )
    _run(files, opts, decompress_one)


@main.command(name="test")
@_common_options
def test_command(files: tuple[str, ...], quiet: int, verbose: int, threads: int, force: bool) -> None:
    """Decode FILES fully and verify every checksum; write nothing."""
    _run(files, _options(quiet, verbose, threads, force), test_one)


@main.command()
@_common_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
def info(files: tuple[str, ...], quiet: int, verbose: int, threads: int, force: bool, as_json: bool) -> None:
    """Show codec, model, sizes, ratio, blocks and checksum of FILES without decoding."""
    _run(files, _options(quiet, verbose, threads, force), lambda path, opts: info_one(path, opts, as_json))


def run() -> None:
    """Console entry point: usage errors exit 2, an interrupt exits 130, never with a traceback."""
    try:
        code = main.main(standalone_mode=False)
    except click.exceptions.Abort:  # click turns KeyboardInterrupt into Abort
        click.echo("nncodec: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
