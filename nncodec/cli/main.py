"""The ``nncodec`` command line, shaped like zstd's.

``nncodec [FILES]`` compresses, ``nncodec -d`` decompresses, ``-t`` tests, ``-l`` lists; the same
operations are also subcommands (``nncodec compress|decompress|test|list|info``), plus ``bench``.
No file or ``-`` means stdin to stdout, so ``tar -I nncodec`` and pipelines work. ``-r`` walks
directories; ``-T N`` runs files in N worker processes (blocks in threads); ``--dask`` on a cluster.

Exit codes: 0 success, 1 an error with some input (reported, other inputs still processed),
2 a usage error. Output files are written to a temporary file in the target directory and renamed
only when complete; inputs are never modified, and removed only with ``--rm`` after the output was
written and verified. The file operations themselves live in nncodec/cli/fileops.py, the walking and
the worker processes in nncodec/cli/batch.py; this module parses arguments and talks to the user.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from nncodec import __version__
from nncodec.cli import batch, fileops
from nncodec.cli.fileops import STDIN_IS_TERMINAL, SUFFIX, FileOptions, UserError, not_a_terminal, open_input
from nncodec.codecs import CODEC_CHOICES, IMAGE_MODELS
from nncodec.core import engine, levels
from nncodec.core.container import MAX_BLOCK_SIZE
from nncodec.core.errors import NncodecError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# flags that select an operation when no subcommand is named (zstd style)
MODE_FLAGS = {
    "-d": "decompress", "--decompress": "decompress", "--uncompress": "decompress",
    "-t": "test", "--test": "test",
    "-l": "list", "--list": "list",
    "-z": "compress", "--compress": "compress",
}  # fmt: skip
# short boolean flags that may be bundled (``-dc``, ``-kf``, ``-rv``)
BUNDLABLE = set("dtlzckfqvnNr")
# short options that take a value: in a bundle the rest of it is the value (``-dT0``), or the next word
VALUED_SHORT = set("ToBSM")
VALUED_LONG = {
    "--output", "--threads", "--block-size", "--suffix", "--output-dir", "--dask", "--max-error",
    "--image-model", "--codec", "--memory", "--level",
}  # fmt: skip


class ByteSize(click.ParamType):
    """A block size: a byte count with an optional K/M/G suffix (powers of 1024)."""

    name = "size"
    _UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    example = "65536, 512K or 4M"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().removesuffix("IB").removesuffix("B")
        unit = text[-1:] if text[-1:] in self._UNITS else ""
        try:
            size = int(text[: len(text) - len(unit)]) * self._UNITS[unit]
        except ValueError:
            self.fail(f"{value!r} is not a size like {self.example}", param, ctx)
        problem = self.out_of_range(size, value)
        if problem:
            self.fail(problem, param, ctx)
        return size

    def out_of_range(self, size: int, value: object) -> str | None:
        return None if 1 <= size <= MAX_BLOCK_SIZE else f"block size must be between 1 and {MAX_BLOCK_SIZE}"


class MemorySize(ByteSize):
    """A memory limit: a byte count with an optional K/M/G suffix, at least 1 MiB."""

    name = "memory"
    example = "512M or 2G"

    def out_of_range(self, size: int, value: object) -> str | None:
        return f"{value!r} is below 1 MiB" if size < 1 << 20 else None


def _expand_short_options(args: list[str]) -> list[str]:
    """zstd's short-option grammar for click: ``-19`` is ``--level=19``, bundles split (``-dfo out``
    is ``-d -f -o out``, ``-dT0`` is ``-d -T 0``), ``--fast[=N]`` is level 1, ``--best`` 19,
    ``--ultra`` is accepted (levels above 19 are 19), and ``-o -`` means ``-c``. Values of options
    and everything after ``--`` pass through untouched; a word that is no bundle of known letters
    is left for click to name in its error."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            return _stdout_for_dash(out) + args[i - 1 :]
        if arg in VALUED_LONG or (len(arg) == 2 and arg[0] == "-" and arg[1] in VALUED_SHORT):
            value = args[i] if i < len(args) else None
            i += value is not None
            out += [arg] if value is None else [arg, value]
        elif arg == "--fast" or arg.startswith("--fast="):
            out.append("--level=1")
            if arg != "--fast" and not arg[7:].isdigit():
                raise click.UsageError(f"--fast takes a number (got {arg!r})")
        elif arg in ("--best", "--ultra"):
            out += ["--level=19"] if arg == "--best" else []
        elif len(arg) > 1 and arg[0] == "-" and arg[1] != "-":
            pieces, i = _bundle(arg, args, i)
            out += pieces
        else:
            out.append(arg)
    return _stdout_for_dash(out)


def _stdout_for_dash(args: list[str]) -> list[str]:
    """``-o -``, ``--output -`` and ``--output=-`` (options already split) mean ``-c``."""
    out: list[str] = []
    i = 0
    while i < len(args):
        if args[i] in ("-o", "--output") and i + 1 < len(args) and args[i + 1] == "-":
            out.append("-c")
            i += 2
        else:
            out.append("-c" if args[i] == "--output=-" else args[i])
            i += 1
    return out


def _bundle(arg: str, args: list[str], i: int) -> tuple[list[str], int]:
    """One short-option word as separate options (and the position of the next unread word)."""
    letters, pieces, j = arg[1:], [], 0
    while j < len(letters):
        letter = letters[j]
        if letter.isdigit():
            end = j
            while end < len(letters) and letters[end].isdigit():
                end += 1
            pieces.append(f"--level={letters[j:end]}")
            j = end
        elif letter in BUNDLABLE:
            pieces.append(f"-{letter}")
            j += 1
        elif letter in VALUED_SHORT:
            pieces.append(f"-{letter}")
            if j + 1 < len(letters):
                pieces.append(letters[j + 1 :])
            elif i < len(args):
                pieces.append(args[i])
                i += 1
            break
        else:
            return [arg], i  # not a bundle we know: click names it
    return pieces, i


def _last_output_wins(args: list[str]) -> list[str]:
    """``-c`` and ``-o FILE`` both given: the later one wins, as in zstd (``-c -o x`` writes x)."""
    end = args.index("--") if "--" in args else len(args)
    to_stdout = [i for i in range(end) if args[i] in ("-c", "--stdout")]
    to_file = [i for i in range(end) if args[i] in ("-o", "--output") or args[i].startswith("--output=")]
    if not to_stdout or not to_file:
        return args
    if max(to_stdout) > max(to_file):  # drop every -o and its value
        drop = {j for i in to_file for j in ((i,) if "=" in args[i] else (i, i + 1))}
    else:
        drop = set(to_stdout)
    return [a for i, a in enumerate(args) if i not in drop]


def _without_level(args: list[str]) -> list[str]:
    """Levels mean nothing when not compressing (zstd accepts ``-d -19``): drop them."""
    end = args.index("--") if "--" in args else len(args)
    return [a for i, a in enumerate(args) if i >= end or not a.startswith("--level=")]


class ZstdStyleGroup(click.Group):
    """A group whose default command is chosen by mode flags, so zstd/gzip habits work. A first word
    that names a subcommand (``info``, ``test``, ...) is that subcommand unless a file of that name
    exists: then it is a file to compress, like every later word."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = _last_output_wins(_expand_short_options(list(args)))
        if args and args[0] in ("-h", "--help", "-V", "--version"):
            return super().parse_args(ctx, args)
        if args and args[0] in self.commands and not os.path.lexists(args[0]):
            return super().parse_args(ctx, args if args[0] == "compress" else _without_level(args))
        if ctx.resilient_parsing and not args:  # shell completion of the first word: the commands
            return super().parse_args(ctx, args)
        end = args.index("--") if "--" in args else len(args)
        modes = {MODE_FLAGS[a] for a in args[:end] if a in MODE_FLAGS}
        if len(modes) > 1:
            raise click.UsageError(f"conflicting operations: {', '.join(sorted(modes))}", ctx)
        mode = modes.pop() if modes else "compress"
        rest = [a for i, a in enumerate(args) if i >= end or a not in MODE_FLAGS]
        return super().parse_args(ctx, [mode, *(rest if mode == "compress" else _without_level(rest))])


@dataclass
class Options:
    """The command line's settings: where outputs go, how loud, how parallel, and the file options."""

    files: FileOptions = field(default_factory=FileOptions)
    output: str | None = None
    stdout: bool = False
    verbosity: int = 0
    threads: int = 1
    recursive: bool = False
    output_dir: str | None = None
    dask: str | None = None
    #: --progress (True: shown even when stderr is no terminal) / --no-progress (False); None: default
    progress: bool | None = None

    def say(self, level: int, message: str) -> None:
        if self.verbosity >= level:
            _echo(message)


_bar: object = None  # the progress bar being shown, if any: messages are written around it
_bar_redrawn = False


def _echo(message: str) -> None:
    global _bar_redrawn
    if _bar is not None:
        _bar.write(message, file=sys.stderr)  # type: ignore[attr-defined]
        _bar_redrawn = True  # tqdm redrew the bar, which its close() may not know
    else:
        click.echo(message, err=True)


def _close_bar() -> None:
    """Remove the bar from the screen: nothing of it stays above what is printed next."""
    global _bar, _bar_redrawn
    if _bar is not None:
        if _bar_redrawn:
            _bar.clear()  # type: ignore[attr-defined]
        _bar.close()  # type: ignore[attr-defined]
    _bar, _bar_redrawn = None, False


# ---------------------------------------------------------------------------------------------
# streams: stdin, stdout (-c) and -o for stdin; one at a time in this process


def _stream_job(
    job: batch.Job, opts: Options, files: FileOptions, progress: Callable[[int], None] | None
) -> batch.Outcome:
    """A job whose input is stdin or whose output is stdout (or -o for stdin); ``files`` carries
    the job's thread count (all of ``-T``: streams run one at a time in this process)."""
    output = opts.output if not opts.stdout else None
    try:
        return batch.outcome_of(
            job,
            lambda: fileops.stream_job(
                job.op, job.path, files, output=output, stdin=sys.stdin.buffer, stdout=sys.stdout.buffer,
                progress=progress,
            ),  # fmt: skip
        )
    except Exception as exc:  # a bug: one line and exit status 1, as for files (batch.run)
        return batch.internal_error(job, exc)


# ---------------------------------------------------------------------------------------------
# running a batch: errors are reported per input, the batch continues, the exit code says so


def _ratio_line(name: str, original: int, compressed: int, op: str = "compress") -> str:
    ratio = f"{original / compressed:.3f}" if compressed and original else "-"
    bpb = 8 * compressed / original if original else 0.0
    sizes = f"{compressed:,} -> {original:,}" if op == "decompress" else f"{original:,} -> {compressed:,}"
    return f"{name}: {sizes} bytes (ratio {ratio}, {bpb:.3f} bpb)"


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size if path != "-" else 0
    except OSError:
        return 0


def _progress_bar(opts: Options, total: int | None, label: str) -> object:
    """A tqdm bar on stderr once the work has lasted a second (short runs print nothing): by default
    only when stderr is a terminal and not with -q; always with --progress, never with --no-progress."""
    wanted = opts.verbosity >= 0 and sys.stderr.isatty() if opts.progress is None else opts.progress
    if not wanted:
        return None
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: worker processes are forked after this
    try:
        sized = os.get_terminal_size(sys.stderr.fileno()).columns > 0
    except OSError:
        sized = False
    return tqdm(
        total=total or None, unit="B", unit_scale=True, unit_divisor=1024, delay=1.0, desc=label,
        file=sys.stderr, leave=False, dynamic_ncols=sized, ncols=None if sized else 80,
        nrows=None if sized else 24,
    )  # fmt: skip


def _run(files: tuple[str, ...], opts: Options, op: str) -> None:
    global _bar
    inputs = list(files) or ["-"]
    if opts.output and len(inputs) > 1:  # zstd: an error (exit 1), not a usage error
        opts.say(-1, f"nncodec: {len(inputs)} inputs and one -o FILE: writing them into one file would "
                     "lose their names; use -c > FILE, or --output-dir DIR")  # fmt: skip
        sys.exit(EXIT_ERROR)
    if opts.output and (opts.recursive or opts.output_dir):
        raise click.UsageError("-o/--output cannot be combined with -r or --output-dir")
    if opts.dask and (opts.stdout or "-" in inputs):
        raise click.UsageError("--dask works on named files, not on stdin or -c")
    if opts.output_dir and (opts.stdout or "-" in inputs):
        raise click.UsageError("--output-dir works on named files, not on stdin or -c")
    started = time.perf_counter()
    plan = batch.plan(
        inputs,
        op,
        recursive=opts.recursive,
        suffix=opts.files.suffix,
        output_dir=opts.output_dir,
        absolute=opts.dask is not None,
    )
    if opts.output:
        plan.jobs = [batch.Job(op, j.path, j.name, output=opts.output) for j in plan.jobs]
    for message in plan.warnings:
        opts.say(0, f"nncodec: {message}")
    for message in plan.skipped:
        opts.say(1, f"nncodec: {message}")
    failed = bool(plan.errors)
    for message in plan.errors:
        opts.say(-1, f"nncodec: {message}")

    all_streamed = opts.stdout or (opts.output is not None and inputs == ["-"])
    # "-" among named files (zstd): stdin goes to stdout, each file beside itself, in the order given
    mixed = not all_streamed and "-" in inputs
    streamed = all_streamed or mixed
    cores = engine.resolve_threads(opts.threads)
    processes = 1 if streamed or opts.dask else min(cores, len(plan.jobs))
    per_job = 1 if opts.dask else max(1, cores // max(processes, 1))
    file_opts = FileOptions(**{**opts.files.__dict__, "threads": per_job})
    sizes = {job: _size(job.path) for job in plan.jobs}
    label = {"compress": "compressing", "decompress": "decompressing", "test": "testing"}[op]
    _bar = _progress_bar(opts, sum(sizes.values()), label)
    in_process = processes <= 1 and not opts.dask
    progress = _bar.update if (_bar is not None and in_process) else None  # type: ignore[attr-defined]
    done = total_in = total_out = 0
    try:
        if all_streamed:
            outcomes = (_stream_job(job, opts, file_opts, progress) for job in plan.jobs)
        elif mixed:
            outcomes = (
                outcome
                for job in plan.jobs
                for outcome in (
                    [_stream_job(job, opts, file_opts, progress)] if job.name == "-"
                    else batch.run([job], file_opts, processes=1, progress=progress)
                )
            )  # fmt: skip
        else:
            outcomes = batch.run(
                plan.jobs, file_opts, processes=processes, dask_address=opts.dask, progress=progress
            )
        for outcome in outcomes:
            if _bar is not None and not in_process:
                _bar.update(sizes.get(outcome.job, 0))  # type: ignore[attr-defined]
            failed = _report(outcome, opts, op) or failed
            if outcome.error is None:
                done += 1
                total_in += outcome.original_size
                total_out += outcome.compressed_size
    except batch.DaskUnavailable as exc:
        opts.say(-1, f"nncodec: {exc}")
        failed = True
    finally:
        _close_bar()
    if (len(plan.jobs) > 1 or opts.recursive) and not opts.stdout:  # zstd: no summary with -c
        opts.say(
            0, _summary(op, done, len(plan.jobs) - done, total_in, total_out, time.perf_counter() - started)
        )
    sys.exit(EXIT_ERROR if failed else EXIT_OK)


def _report(outcome: batch.Outcome, opts: Options, op: str) -> bool:
    """Print what happened to one input; True if it failed."""
    name = "stdin" if outcome.job.name == "-" else outcome.job.name
    if outcome.error is not None:
        opts.say(-1, f"nncodec: {name}: {outcome.error}")
        return True
    for note in outcome.notes:
        opts.say(0, f"nncodec: {name}: {note}")
    if op == "test":
        opts.say(1, f"{name}: OK ({outcome.original_size:,} bytes)")
    else:
        line = _ratio_line(name, outcome.original_size, outcome.compressed_size, op)
        target = f" -> {outcome.output}" if outcome.output else ""
        opts.say(1, f"{line}{target} [{outcome.seconds:.2f} s]")
    return False


def _summary(op: str, done: int, failed: int, original: int, compressed: int, seconds: float) -> str:
    verb = {"compress": "compressed", "decompress": "decompressed", "test": "tested OK"}[op]
    files = f"{done} file{'s' if done != 1 else ''} {verb}"
    if failed:
        files += f", {failed} failed"
    ratio = f"ratio {original / compressed:.3f}" if compressed and original else "ratio -"
    sizes = f"{compressed:,} -> {original:,}" if op == "decompress" else f"{original:,} -> {compressed:,}"
    return f"nncodec: {files}: {sizes} bytes ({ratio}) in {seconds:.2f} s"


# ---------------------------------------------------------------------------------------------
# list and info: read headers only


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


def _scan(path: str, opts: Options) -> list[engine.FrameStats]:
    if path == "-":
        return engine.scan_frames(not_a_terminal(sys.stdin.buffer, opts.files, STDIN_IS_TERMINAL))
    src, _ = open_input(path)
    with src:
        return engine.scan_frames(src)


def _info_lines(path: str, frames: list[engine.FrameStats]) -> list[str]:
    out = [path]
    records = [_frame_record(f) for f in frames]
    for number, (frame, record) in enumerate(zip(frames, records, strict=True), 1):
        if len(records) > 1:
            out.append(f"  frame {number}")
        model = record["model"] or "-"
        if record["model"]:
            model += f" (sha256 {str(record['model_sha256'])[:16]}…)"
        blocks = ", ".join(f"{k} {v}" for k, v in record["block_codecs"].items())  # type: ignore[union-attr]
        ratio = record["ratio"]
        bpb = 8 * frame.compressed_size / frame.original_size if frame.original_size else 0
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
        out += [f"  {key:<11}{value}" for key, value in lines]
    return out


LIST_HEADER = f"{'compressed':>14} {'original':>14} {'ratio':>7} {'bpb':>6}  {'codec':<10} {'model':<12} file"


def _list_row(compressed: int, original: int, codec: str, model: str, name: str) -> str:
    ratio = f"{original / compressed:.3f}" if compressed and original else "-"
    bpb = f"{8 * compressed / original:.3f}" if original else "-"
    return f"{compressed:>14,} {original:>14,} {ratio:>7} {bpb:>6}  {codec:<10} {model:<12} {name}"


def _inspect(files: tuple[str, ...], opts: Options, style: str) -> None:
    """``list`` (a table; ``style`` "table"), ``info`` ("details") or either with --json."""
    inputs = list(files) or ["-"]
    plan = batch.plan(inputs, "list", recursive=opts.recursive, suffix=opts.files.suffix)
    failed = bool(plan.errors)
    for message in plan.warnings + plan.errors:
        opts.say(-1 if message in plan.errors else 0, f"nncodec: {message}")
    rows: list[tuple[int, int]] = []
    if style == "table":
        click.echo(LIST_HEADER)
    for job in plan.jobs:
        name = "stdin" if job.path == "-" else job.name
        try:
            frames = _scan(job.path, opts)
        except (UserError, NncodecError) as exc:
            opts.say(-1, f"nncodec: {name}: {exc}")
            failed = True
            continue
        except OSError as exc:
            opts.say(-1, f"nncodec: {name}: {exc.strerror or exc}")
            failed = True
            continue
        if style == "json":
            click.echo(json.dumps({"file": job.name, "frames": [_frame_record(f) for f in frames]}))
        elif style == "details":
            for line in _info_lines(job.name, frames):
                click.echo(line)
        else:
            original = sum(f.original_size for f in frames)
            compressed = sum(f.compressed_size for f in frames)
            codecs = "+".join(dict.fromkeys(f.codec_name for f in frames))
            models = "+".join(dict.fromkeys(f.header.model_id for f in frames if f.header.model_id)) or "-"
            click.echo(_list_row(compressed, original, codecs, models, name))
            rows.append((compressed, original))
    if style == "table" and len(rows) > 1:
        compressed, original = sum(r[0] for r in rows), sum(r[1] for r in rows)
        click.echo(_list_row(compressed, original, "", "", f"(total, {len(rows)} files)"))
    sys.exit(EXIT_ERROR if failed else EXIT_OK)


# ---------------------------------------------------------------------------------------------
# the commands


def _common_options(func: Callable) -> Callable:
    decorators = [
        click.argument("files", nargs=-1, type=click.Path()),
        click.option("-q", "--quiet", count=True, help="Fewer messages (twice: no error messages)."),
        click.option("-v", "--verbose", count=True, help="More messages: a line per file (repeatable)."),
        click.option("-T", "--threads", type=click.IntRange(min=0), default=1, show_default=True,
                     help="Workers: files in parallel processes, a file's blocks in threads; 0 = all "
                          "cores. Output does not depend on it."),
        click.option("-f", "--force", is_flag=True,
                     help="Overwrite outputs; allow terminals; compress files already ending in .nnc."),
        click.option("-r", "--recursive", is_flag=True,
                     help="Walk directories (symbolic links in them are skipped with a warning)."),
        click.option("-M", "--memory", type=MemorySize(), default=None, metavar="LIMIT",
                     help="Most memory to code a block with, e.g. 256M: compression picks work that "
                          "fits (zstd, smaller blocks), decompression refuses a block that needs more."),
        click.option("--progress/--no-progress", "progress", default=None,
                     help="Show a progress bar even when stderr is not a terminal / never show one."),
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
        click.option("--output-dir", type=click.Path(file_okay=False),
                     help="Write outputs under DIR (mirroring the tree below each -r directory)."),
        click.option("--dask", "dask_address", metavar="ADDRESS",
                     help="Run the files on a dask.distributed cluster (scheduler address, e.g. "
                          "tcp://host:8786); paths must be visible to the workers."),
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
      nncodec -r -T0 DIR           compress every file under DIR, all cores
      nncodec -dr DIR --output-dir OUT   decompress a tree into OUT
      cmd | nncodec > out.nnc      compress a stream
      nncodec -dc out.nnc | less   decompress to stdout
      tar -I nncodec -cf x.tar.nnc DIR
      nncodec -l *.nnc             a table: sizes, ratio, codec, model
      nncodec bench FILE...        nncodec against gzip, xz, zstd, PPMd, ...

    \b
    Everyday flags (`nncodec compress -h` and `nncodec decompress -h` list them all):
      -d, -t, -l         decompress / test / list instead of compress
      -c                 write to stdout             -o FILE   write to FILE
      -k, --rm           keep inputs (default) / remove them after a verified output
      -f                 overwrite, follow symbolic links, allow terminals
      -r, -T N           walk directories / use N cores (0: all)
      -1 ... -19         faster ... smaller (default 6: the learned codecs; -1..-4 zstd only)
      -q, -v             fewer / more messages       --no-progress   no progress bar
      -M LIMIT           most memory per block (e.g. 256M)
      --max-error N      images: near-lossless, every subpixel within N

    Shell completion: eval "$(_NNCODEC_COMPLETE=bash_source nncodec)" (zsh_source, fish_source).

    Exit codes: 0 ok, 1 error (reported; other files still processed), 2 usage error.
    """
    signal.signal(signal.SIGTERM, _terminate)
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds, so temporary outputs are removed


def _options(
    quiet: int, verbose: int, threads: int, force: bool, recursive: bool, files: FileOptions | None = None,
    memory: int | None = None, **extra: object,
) -> Options:  # fmt: skip
    files = files or FileOptions()
    files.force = force
    files.memory_limit = memory
    return Options(
        files=files,
        verbosity=verbose - quiet,
        threads=threads,
        recursive=recursive,
        **extra,  # type: ignore[arg-type]
    )


def _io_options_from(common: dict[str, Any], files: FileOptions) -> Options:
    """Options of the commands that write outputs (compress, decompress), from the values of
    ``_common_options`` and ``_io_options`` (-k, and -z and -N on compress, are accepted and change
    nothing: keeping inputs and storing names are the defaults)."""
    files.remove_source = common["remove_source"] and not common["to_stdout"]  # like zstd: -c keeps inputs
    files.suffix = common["suffix"]
    return _options(
        common["quiet"], common["verbose"], common["threads"], common["force"], common["recursive"], files,
        memory=common["memory"], output=common["output"], stdout=common["to_stdout"],
        output_dir=common["output_dir"], dask=common["dask_address"], progress=common["progress"],
    )  # fmt: skip


@main.command(
    epilog="""\b
Examples:
  nncodec a.txt b.png          a.txt.nnc, b.png.nnc beside the inputs
  nncodec -r -T0 -v logs/      every file under logs/, all cores, a line per file
  nncodec -r src --output-dir packed      packed/ mirrors src/
  nncodec --codec raw -c big.bin > big.nnc
  nncodec --dask tcp://scheduler:8786 -r /shared/archive"""
)
@_common_options
@_io_options
@click.option("--codec", type=click.Choice(CODEC_CHOICES), default="auto", show_default=True,
              help="Codec to use; auto sniffs the content.")
@click.option("-n", "--no-name", is_flag=True, help="Do not store the file name, mode and mtime.")
@click.option("-N", "--name", "store_name_flag", is_flag=True, help="Store name, mode and mtime (default).")
@click.option("-B", "--block-size", type=ByteSize(), default=None,
              help="Bytes per independent block, e.g. 4M (default: the codec's choice).")
@click.option("--max-error", type=click.IntRange(0, 32), default=0, show_default=True,
              help="Images: near-lossless, every subpixel within N of the original (0 = lossless).")
@click.option("--image-model", type=click.Choice(IMAGE_MODELS), default="nextpixel", show_default=True,
              help="Images: next-pixel network (smallest) or probabilistic circuit (pc, faster).")
@click.option("--level", type=click.IntRange(0, 22), default=None, metavar="N",
              help="Speed/size, as -1 (fastest) ... -19 (smallest); also --fast, --best. Default: "
                   f"{levels.DEFAULT_LEVEL}, or NNCODEC_CLEVEL. README: what each level does.")
@click.option("--png-pixels", is_flag=True,
              help="PNG: keep the pixels and chunks, not the file's exact bytes (smaller; also for PNGs "
                   "whose deflate stream cannot be rebuilt). `info` says so.")
@click.option("-z", "--compress", "compress_flag", is_flag=True, hidden=True)
def compress(
    files: tuple[str, ...],
    codec: str,
    no_name: bool,
    block_size: int | None,
    max_error: int,
    image_model: str,
    png_pixels: bool,
    level: int | None,
    **common: Any,
) -> None:
    """Compress FILES (default: stdin to stdout) to FILE.nnc."""
    codec_options: dict[str, object] = {"max_error": max_error} if max_error else {}
    level = _level_from_environment() if level is None else level
    if level is not None and levels.nearest(level) != levels.DEFAULT_LEVEL:
        codec_options["level"] = levels.nearest(level)
    if image_model != "nextpixel":
        codec_options["image_model"] = image_model
    if png_pixels:
        codec_options["png_pixels"] = True
    file_options = FileOptions(
        codec=codec, block_size=block_size, codec_options=codec_options, store_name=not no_name
    )
    _run(files, _io_options_from(common, file_options), "compress")


def _level_from_environment() -> int | None:
    """NNCODEC_CLEVEL, like ZSTD_CLEVEL: the level when none is given; a bad value is named and ignored."""
    text = os.environ.get("NNCODEC_CLEVEL", "").strip()
    if not text:
        return None
    if text.lstrip("-").isdigit() and 0 <= abs(int(text)) <= 22:
        return abs(int(text))  # "-19" like "19"
    click.echo(f"nncodec: ignoring NNCODEC_CLEVEL={text!r}: not a level from 1 to 19", err=True)
    return None


@main.command(
    epilog="""\b
Examples:
  nncodec -d a.txt.nnc         a.txt (mode and mtime as stored)
  nncodec -dc a.txt.nnc | wc -l
  nncodec -dr -T0 packed --output-dir restored
  nncodec -dN renamed.nnc      restore the stored original name"""
)
@_common_options
@_io_options
@click.option("-N", "--name", "restore_name", is_flag=True, help="Restore the original file name if stored.")
@click.option(
    "-n", "--no-name", is_flag=True, help="Ignore the stored mode and mtime (take them from FILE.nnc)."
)
def decompress(files: tuple[str, ...], restore_name: bool, no_name: bool, **common: Any) -> None:
    """Decompress FILES (default: stdin to stdout); FILE.nnc becomes FILE."""
    file_options = FileOptions(restore_name=restore_name, store_name=not no_name)
    _run(files, _io_options_from(common, file_options), "decompress")


@main.command(name="test", epilog="\b\nExamples:\n  nncodec -t *.nnc\n  nncodec -t -r -T0 -v archive/")
@_common_options
@click.option("-S", "--suffix", default=SUFFIX, show_default=True, help="Suffix of compressed files (-r).")
def test_command(files: tuple[str, ...], suffix: str, **common: Any) -> None:
    """Decode FILES fully and verify every checksum; write nothing."""
    _run(files, _options(files=FileOptions(suffix=suffix), **common), "test")


@main.command(
    name="list",
    epilog="\b\nExamples:\n  nncodec -l *.nnc\n  nncodec list -r archive/\n  nncodec -lv a.nnc     (= info)",
)
@_common_options
@click.option("-S", "--suffix", default=SUFFIX, show_default=True, help="Suffix of compressed files (-r).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
def list_command(files: tuple[str, ...], suffix: str, as_json: bool, **common: Any) -> None:
    """A table of FILES: compressed and original size, ratio, bits per byte, codec, model.

    Reads headers only (no decoding). With -v, the details of `nncodec info`.
    """
    opts = _options(files=FileOptions(suffix=suffix), **{**common, "verbose": 0})
    _inspect(files, opts, "json" if as_json else "details" if common["verbose"] else "table")


@main.command(epilog="\b\nExamples:\n  nncodec info a.nnc\n  nncodec info --json a.nnc | jq .frames[0].ratio")
@_common_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
def info(files: tuple[str, ...], as_json: bool, **common: Any) -> None:
    """Show codec, model, sizes, ratio, blocks and checksum of FILES without decoding."""
    _inspect(files, _options(**common), "json" if as_json else "details")


@main.command(
    name="bench",
    epilog="""\b
Examples:
  nncodec bench testdata/
  nncodec bench -v --plot bench.png notes.txt app.log photo.png
  nncodec bench --tools nncodec,xz,zstd -T2 DIR""",
)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "-T",
    "--threads",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="nncodec's -T (the classical tools run single-threaded).",
)
@click.option(
    "--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a PNG plot (needs matplotlib)."
)
@click.option("--tools", help="Comma-separated tool name prefixes to run (default: all available).")
@click.option("-v", "--verbose", count=True, help="A line per file and tool.")
def bench_command(
    paths: tuple[str, ...], threads: int, plot_path: str | None, tools: str | None, verbose: int
) -> None:  # fmt: skip
    """Compress PATHS (files or directories) with nncodec and the classical tools on this machine
    (gzip, xz, zstd, 7z and PPMd; cwebp and cjxl on images), verify every round trip, and print
    ratio, bits per byte, MB/s both ways and peak RSS per kind of file and tool."""
    from nncodec.cli import benchtool

    chosen = benchtool.available_tools(threads)
    if tools:
        wanted = [t.strip() for t in tools.split(",") if t.strip()]
        chosen = [t for t in chosen if any(t.name.startswith(w) for w in wanted)]
    files = benchtool.collect(paths)
    if not files:
        raise click.UsageError("no files to measure")
    log = (lambda line: click.echo(line, err=True)) if verbose else (lambda line: None)
    results = benchtool.bench(files, chosen, log)
    click.echo(f"nncodec bench: {len(files)} files on {benchtool.describe_machine()}")
    click.echo(benchtool.text_table(results))
    failed = [f for m in results for f in m.failures if m.kind != "all"]
    for failure in failed:
        click.echo(f"nncodec: bench: {failure}", err=True)
    if plot_path:
        try:
            benchtool.plot(results, Path(plot_path))
        except ImportError:
            click.echo(
                "nncodec: bench: no plot: matplotlib is not installed (pip install 'nncodec[bench]')",
                err=True,
            )
            failed.append("plot")
    sys.exit(EXIT_ERROR if failed else EXIT_OK)


def run(implied: tuple[str, ...] = (), prog_name: str = "nncodec") -> None:
    """Console entry point: usage errors exit 2, an interrupt exits 130, never with a traceback.
    ``implied`` flags come before the user's arguments (``unnc`` is ``nncodec -d``)."""
    # the engine runs BLAS on one thread per worker (-T N: N busy cores), so the CLI needs no BLAS
    # thread pool: without this, OpenBLAS starts one thread per core when numpy is imported, which
    # then competes with the workers (set before the codecs import numpy)
    for name in engine.BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    try:
        code = main.main([*implied, *sys.argv[1:]], standalone_mode=False, prog_name=prog_name)
    except click.exceptions.Abort:  # click turns KeyboardInterrupt into Abort
        click.echo("nncodec: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


def run_unnc() -> None:
    """``unnc``: ``nncodec -d`` (like unzstd, unxz, gunzip)."""
    run(("-d",), "unnc")


def run_nnccat() -> None:
    """``nnccat``: ``nncodec -dcf`` (like zstdcat, xzcat, zcat): input that is not nncodec data
    passes through unchanged."""
    run(("-dcf",), "nnccat")
