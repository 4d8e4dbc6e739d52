"""Batches of files: walking directories (``-r``) and running file operations in parallel.

``plan`` turns the command line's inputs into jobs (one per file, each with its output place) and
warnings (symbolic links and special files met under ``-r`` are skipped, like gzip). ``run`` executes
the jobs in this process, in worker processes (``-T N``), or on a dask.distributed cluster
(``--dask``), and hands each outcome to a callback as it completes. Each worker process keeps the
models it loaded (the model store's per-process cache), so a model is loaded once per worker, not
once per file. Outputs never depend on where a job ran: a job's bytes depend only on its input and options.
"""

from __future__ import annotations

import os
import signal
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from nncodec.cli import fileops
from nncodec.cli.fileops import FileOptions, UserError
from nncodec.core import modelstore
from nncodec.core.errors import NncodecError


@dataclass(frozen=True)
class Job:
    op: str
    #: the path the worker opens (absolute for dask workers)
    path: str
    #: the input as the user named it, for messages
    name: str
    output: str | None = None
    #: where the output goes (``--output-dir``, mirroring the tree under ``-r``); None: beside the input
    directory: str | None = None


@dataclass
class Outcome:
    job: Job
    error: str | None = None
    original_size: int = 0
    compressed_size: int = 0
    output: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: the process that ran the job, and how many models that process had loaded after it
    pid: int = 0
    models_loaded: int = 0


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    #: shown unless -q: skipped symbolic links and special files
    warnings: list[str] = field(default_factory=list)
    #: shown with -v: files left alone because of their suffix
    skipped: list[str] = field(default_factory=list)
    #: directories that could not be read: reported, and the exit code says so
    errors: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# planning


def plan(
    inputs: Iterable[str],
    op: str,
    *,
    recursive: bool = False,
    suffix: str = fileops.SUFFIX,
    output_dir: str | None = None,
    absolute: bool = False,
) -> Plan:
    """Jobs for ``inputs``. Under ``recursive`` a directory's regular files are walked in sorted
    order; with ``output_dir`` their outputs mirror the tree below that directory."""
    result = Plan()
    place = os.path.abspath if absolute else (lambda p: p)
    out_dir = place(output_dir) if output_dir is not None else None
    for name in inputs:
        if recursive and os.path.isdir(name):
            _walk(name, op, suffix, out_dir, place, result)
        else:
            result.jobs.append(Job(op, place(name), name, directory=out_dir))
    return result


def _walk(root: str, op: str, suffix: str, out_dir: str | None, place: Callable, result: Plan) -> None:
    def failed(exc: OSError) -> None:
        result.errors.append(f"{exc.filename}: {exc.strerror or exc}")

    for dirpath, dirnames, filenames in os.walk(root, onerror=failed):
        dirnames.sort()
        for dirname in list(dirnames):
            if os.path.islink(os.path.join(dirpath, dirname)):
                result.warnings.append(f"{os.path.join(dirpath, dirname)}: is a symbolic link -- skipped")
                dirnames.remove(dirname)
        directory = None
        if out_dir is not None:
            directory = os.path.normpath(os.path.join(out_dir, os.path.relpath(dirpath, root)))
        for filename in sorted(filenames):
            path = os.path.join(dirpath, filename)
            try:
                mode = os.lstat(path).st_mode
            except OSError as exc:
                result.errors.append(f"{path}: {exc.strerror or exc}")
                continue
            if stat.S_ISLNK(mode):
                result.warnings.append(f"{path}: is a symbolic link -- skipped")
            elif not stat.S_ISREG(mode):
                result.warnings.append(f"{path}: is not a regular file -- skipped")
            elif op == "compress" and filename.endswith(suffix):
                result.skipped.append(f"{path}: already has {suffix} suffix -- skipped")
            elif op != "compress" and not filename.endswith(suffix):
                result.skipped.append(f"{path}: no {suffix} suffix -- skipped")
            else:
                result.jobs.append(Job(op, place(path), path, directory=directory))


# ---------------------------------------------------------------------------------------------
# running one job (in any process)


def run_job(job: Job, opts: FileOptions, progress: Callable[[int], None] | None = None) -> Outcome:
    """Run one job on a named file; a problem with its input is ``Outcome.error``, never raised."""

    def work() -> fileops.FileResult:
        if job.op == "compress":
            return fileops.compress_file(
                job.path, opts, output=job.output, directory=job.directory, progress=progress
            )
        if job.op == "decompress":
            return fileops.decompress_file(
                job.path, opts, output=job.output, directory=job.directory, progress=progress
            )
        if job.op == "test":
            return fileops.test_file(job.path, opts, progress=progress)
        raise ValueError(f"unknown operation {job.op!r}")

    return outcome_of(job, work)


def outcome_of(job: Job, work: Callable[[], fileops.FileResult]) -> Outcome:
    """Run ``work`` (``job``'s file operation) and say how it went: a problem with the input is
    returned as ``Outcome.error``, never raised. Every job, in any process, ends here."""
    outcome = Outcome(job, pid=os.getpid())
    started = time.perf_counter()
    try:
        result = work()
    except (UserError, NncodecError) as exc:
        outcome.error = str(exc)
    except OSError as exc:
        outcome.error = exc.strerror or str(exc)
    else:
        outcome.original_size, outcome.compressed_size = result.original_size, result.compressed_size
        outcome.output, outcome.notes = result.output, result.notes
    outcome.seconds = time.perf_counter() - started
    outcome.models_loaded = modelstore.models_loaded()
    return outcome


def largest_first(jobs: list[Job], codec: str = "auto") -> list[Job]:
    """Jobs by estimated work (size over the speed of the codec asked for, or of the kind the
    first 4 KiB sniff as), largest first: workers taking jobs as they finish then end close
    together (longest-processing-time-first scheduling). Outputs do not depend on the order."""
    from nncodec.codecs import CODEC_FOR_KIND, SPEED
    from nncodec.core.detect import sniff

    def cost(job: Job) -> float:
        try:
            size = os.stat(job.path).st_size
            if job.op != "compress":
                return size
            if codec != "auto":
                return size / SPEED.get(codec, 1e6)
            with open(job.path, "rb") as handle:
                return size / SPEED[CODEC_FOR_KIND[sniff(handle.read(4096))]]
        except OSError:
            return 0.0

    return sorted(jobs, key=cost, reverse=True)


def _init_worker() -> None:
    """A worker process: SIGTERM unwinds (so its temporary output is removed), as in the CLI."""

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)


# ---------------------------------------------------------------------------------------------
# running a batch


def run(
    jobs: list[Job],
    opts: FileOptions,
    *,
    processes: int = 1,
    dask_address: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Outcome]:
    """Run ``jobs``, yielding outcomes as they complete (in order when ``processes`` is 1).
    ``progress`` gets the input bytes of each block as it is coded (in this process only). A job
    that fails in an unexpected way (a bug) is reported as failed; a worker process that is killed
    fails the jobs it and the others had not finished (the pool is broken), each reported."""
    if dask_address is not None:
        yield from _run_dask(jobs, opts, dask_address)
    elif processes > 1 and len(jobs) > 1:
        yield from _run_processes(jobs, opts, min(processes, len(jobs)))
    else:
        for job in jobs:
            try:
                yield run_job(job, opts, progress)
            except Exception as exc:
                yield internal_error(job, exc)


def internal_error(job: Job, exc: BaseException) -> Outcome:
    from concurrent.futures.process import BrokenProcessPool  # (imported here: start-up time)

    if isinstance(exc, BrokenProcessPool):
        return Outcome(job, error="not done: a worker process died (killed, or out of memory?)")
    return Outcome(job, error=f"internal error (please report it): {type(exc).__name__}: {exc}")


def _run_processes(jobs: list[Job], opts: FileOptions, workers: int) -> Iterator[Outcome]:
    # imported here: multiprocessing and the process pool cost a single-file run ~15 ms of start-up
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker)
    clean = False
    try:
        futures = {executor.submit(run_job, job, opts): job for job in largest_first(jobs, opts.codec)}
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as exc:  # BrokenProcessPool when a worker was killed, or a bug
                yield internal_error(futures[future], exc)
        clean = True
    finally:
        if not clean:  # interrupted: stop the workers now, so they remove their temporary outputs
            for process in list(getattr(executor, "_processes", {}).values()):
                process.terminate()
        executor.shutdown(wait=True, cancel_futures=True)


class DaskUnavailable(NncodecError):
    """``--dask`` was given but dask.distributed is missing or the scheduler cannot be reached."""


def _run_dask(jobs: list[Job], opts: FileOptions, address: str) -> Iterator[Outcome]:
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:
        raise DaskUnavailable("--dask needs dask.distributed: pip install 'nncodec[dask]'") from None
    from distributed.comm.addressing import get_address_host_port

    try:
        get_address_host_port(address)  # before Client(): a half-made Client hangs when collected
    except ValueError as exc:
        raise DaskUnavailable(f"--dask {address}: {exc} (e.g. tcp://host:8786)") from None
    try:
        timeout = float(os.environ.get("NNCODEC_DASK_TIMEOUT", "10"))
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise DaskUnavailable(f"cannot reach the dask scheduler at {address}: {exc}") from None
    try:
        jobs = largest_first(jobs, opts.codec)
        futures = client.map(run_job, jobs, opts=opts, pure=False)
        job_of = {future.key: job for future, job in zip(futures, jobs, strict=True)}
        for future in dask_completed(futures, loop=client.loop, raise_errors=False):
            try:
                yield future.result()
            except Exception as exc:  # a worker died or the cluster went away: this job failed
                yield Outcome(job_of[future.key], error=f"failed on the cluster: {type(exc).__name__}: {exc}")
    finally:
        client.close()
