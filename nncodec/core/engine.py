"""Frames from streams and back: wires detection, codecs, models and the container together.

``compress_stream`` reads its input in blocks (memory stays bounded by a few blocks), picks a codec
from the first block (or the one asked for), codes blocks in parallel when ``threads > 1`` and writes
each block with whichever of {that codec, zstd, stored} is smallest (a text frame: the classical
codec in place of zstd). An input of one block the learned codec loses is rewritten as a model-free
frame, and a longer text input whose first block the probes decline is one classical frame from the
start. Output bytes never depend on the thread count. ``decompress_stream`` reads any number of
concatenated frames and verifies every block CRC, the content size and the whole-content checksum.
"""

from __future__ import annotations

import io
import os
import signal
import threading
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import BrokenExecutor, Executor, Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import BinaryIO

from nncodec.codecs import (
    CODEC_FOR_KIND,
    IMAGE_CODEC_FOR_MODEL,
    Codec,
    codec_by_id,
    codec_by_name,
    codec_name,
)
from nncodec.codecs.base import BlockDeclined
from nncodec.codecs.classical import ClassicalCodec
from nncodec.codecs.raw import RawCodec
from nncodec.codecs.stored import StoredCodec
from nncodec.core import container, levels
from nncodec.core.container import BlockHeader, FileMetadata, FrameHeader
from nncodec.core.detect import SNIFF_SIZE, is_idx, sniff
from nncodec.core.errors import (
    CodecUnavailableError,
    CorruptError,
    MemoryLimitError,
    ModelError,
    NncodecError,
    NotNncodecError,
    TruncatedError,
)
from nncodec.core.modelstore import LoadedModel, require_model
from nncodec.text import gate as text_gate

#: a text input below this size that the model wins nowhere is also tried as a ``log`` frame
SMALL_TEXT_LOG_TRIAL = 64 << 10


@dataclass
class FrameStats:
    """What one frame held: used by the CLI's verbose output, ``info`` and tests."""

    header: FrameHeader
    original_size: int = 0
    compressed_size: int = 0
    blocks: int = 0
    block_codecs: Counter[str] = field(default_factory=Counter)
    content_checksum: bytes = b""
    #: False when decoding gives other bytes than the input (a rebuilt PNG, near-lossless pixels)
    identical: bool = True

    @property
    def codec_name(self) -> str:
        return codec_name(self.header.codec_id)


# ---------------------------------------------------------------------------------------------
# helpers


def resolve_threads(threads: int) -> int:
    """-T semantics: 0 means all cores."""
    if threads < 0:
        raise ValueError("thread count must be >= 0")
    return threads or os.cpu_count() or 1


def read_up_to(stream: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes, or fewer only at end of input (pipes return short reads)."""
    parts = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def choose_codec(codec: str, sample: bytes, options: dict | None = None) -> Codec:
    """A codec ready to encode, for a ``--codec`` choice. ``auto`` sniffs the sample and takes the
    codec the level gives that kind (nncodec/core/levels.py), or raw when this build lacks the codec
    (or its model). ``options``: codec settings, plus ``level`` and ``image_model``."""
    options = dict(options or {})
    level_plan = levels.plan(options.pop("level", None))
    image_model = options.pop("image_model", None)
    image_codec = IMAGE_CODEC_FOR_MODEL[str(image_model or "nextpixel")]
    if codec != "auto":
        name = image_codec if codec == "image" else codec
        return _at_level(codec_by_name(name).for_encoding(sample, **options), level_plan)
    kind = sniff(sample)
    asked = image_codec if kind == "image" else CODEC_FOR_KIND[kind]
    name = "image-pc" if kind == "image" and is_idx(sample) else asked  # only image-pc reads idx sets
    if not (kind == "image" and image_model):  # an image model asked for by name wins over the level
        name = levels.codec_for(kind, name, level_plan)
    if name == "text" and text_gate.hopeless(sample) is not None:
        name = "classical"  # text the model clearly cannot win: decided without loading it
    try:
        return _at_level(codec_by_name(name).for_encoding(sample, **options), level_plan)
    except (CodecUnavailableError, ModelError):
        if asked != CODEC_FOR_KIND[kind]:
            raise  # a model the user asked for by name: say it is missing, do not quietly use raw
        return _at_level(RawCodec(), level_plan)


def _at_level(codec: Codec, level_plan: levels.LevelPlan) -> Codec:
    if isinstance(codec, RawCodec):
        codec.zstd_level = level_plan.zstd_level
    codec.always_trial = level_plan.always_trial
    return codec


def _ordered_map(
    func: Callable[..., object], items: Iterator[tuple], executor: Executor | None, window: int
) -> Iterator[object]:
    """``map(func, items)`` in order, with at most ``window`` calls in flight on ``executor``."""
    if executor is None:
        for args in items:
            yield func(*args)
        return
    pending: deque[Future] = deque()
    for args in items:
        pending.append(executor.submit(func, *args))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _executor(threads: int) -> ThreadPoolExecutor | None:
    return ThreadPoolExecutor(max_workers=threads) if threads > 1 else None


def _block_processes(
    codec: Codec, threads: int, block_size: int, content_size: int | None
) -> Executor | None:
    """Worker processes for whole blocks, where the codec asks for them (``Codec.process_blocks``)
    and the input may hold more than one block; else None (blocks go to threads). A worker imports
    nncodec once (~0.2 s), so one-block inputs stay in this process."""
    if threads < 2 or not codec.process_blocks or codec.model is not None or codec.params():
        return None
    if content_size is not None and content_size <= block_size:
        return None
    import multiprocessing  # here, not at the top: ~15 ms of every start-up (decoding a small file)
    from concurrent.futures import ProcessPoolExecutor

    if "forkserver" not in multiprocessing.get_all_start_methods():  # not on Windows: threads then
        return None
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["nncodec.core.engine"])
    return ProcessPoolExecutor(max_workers=threads, mp_context=context, initializer=_quiet_worker)


def _quiet_worker() -> None:
    """Ctrl-C is the parent's to handle (it stops the pool): a worker prints no traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _encode_in_process(
    codec_id: int, always_trial: bool, data: bytes
) -> tuple[int, BlockHeader, bytes, bytes, bool]:
    """``_write_frame``'s ``encode`` in a worker process, for a codec built there from its id."""
    codec = codec_by_id(codec_id)()
    codec.always_trial = always_trial
    block_header, payload, output = _encode_block(codec, data)
    return len(data), block_header, payload, output, output is data or output == data


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _one_blas_thread() -> AbstractContextManager:
    """BLAS on one thread inside the block (threadpoolctl), unless the environment already says so
    (the CLI sets OPENBLAS_NUM_THREADS=1 before numpy is loaded: then threadpoolctl, ~5 ms of every
    start-up, is not needed)."""
    if all(os.environ.get(name) == "1" for name in BLAS_THREAD_VARIABLES):
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


@contextmanager
def _workers(codec: Codec, threads: int, inside: _BlockProgress | None = None) -> Iterator[None]:
    """Give the codec ``threads`` worker threads for work inside blocks (shared by the blocks in
    flight), with BLAS kept to one thread each: -T N means N busy cores."""
    pool = _executor(threads)
    codec.progress_hook = inside
    codec.pool, codec.workers = pool, threads
    try:
        with _one_blas_thread():
            yield
    finally:
        codec.pool, codec.workers, codec.progress_hook = None, 1, None
        if pool is not None:
            pool.shutdown(cancel_futures=True)


# ---------------------------------------------------------------------------------------------
# compression


class _BlockProgress:
    """Progress inside a block: the codec reports shares of the block as it codes it (Codec.
    report_progress), turned into units of the bar here; the rest is reported when the block is
    done. Used when blocks are coded one at a time (-T1), so a share always belongs to one block."""

    def __init__(self, progress: Callable[[int], None]) -> None:
        self.progress, self.units, self.reported = progress, 0, 0
        self.lock = threading.Lock()

    def start(self, units: int) -> None:
        self.units, self.reported = units, 0

    def __call__(self, share: float) -> None:
        with self.lock:
            step = min(self.units - self.reported, int(share * self.units))
            if step > 0:
                self.reported += step
                self.progress(step)

    def rest(self) -> int:
        return self.units - self.reported


#: trials of model-free codecs on blocks, kept while one input is coded (see ``_trial``)
Trials = dict[tuple[str, bytes, int], tuple[bytes, bytes, bytes]]


def _trial(candidate: Codec, data: bytes, trials: Trials | None) -> tuple[bytes, bytes]:
    """``candidate.encode_block_with_output(data)``, remembered in ``trials`` for a codec without a
    model: a text input the model loses is coded again as a classical frame, and its blocks'
    classical trials are the same work (the bytes are compared, not only a key)."""
    if trials is None or candidate.model is not None:
        return candidate.encode_block_with_output(data)
    key = (candidate.name, candidate.params(), len(data))
    known = trials.get(key)
    if known is not None and known[0] == data:
        return known[1], known[2]
    payload, output = candidate.encode_block_with_output(data)
    trials[key] = (data, payload, output)
    return payload, output


def _encode_block(
    codec: Codec, data: bytes, trials: Trials | None = None
) -> tuple[BlockHeader, bytes, bytes]:
    """Code one block with the frame codec, zstd and stored (a text frame: the best classical coder
    instead of zstd, as it includes zstd -19); keep the smallest. Returns the block header, the
    payload and what decoding gives (``data`` unless the frame codec rebuilds files)."""
    candidates: list[Codec] = [] if isinstance(codec, StoredCodec) else [codec]
    if codec.name == "text":
        classical = ClassicalCodec()  # its backends' trials on the frame codec's workers
        classical.pool, classical.workers = codec.pool, codec.workers
        candidates.append(classical)
    elif not isinstance(codec, (RawCodec, StoredCodec)):
        candidates.append(RawCodec())
    best_codec: Codec = StoredCodec()
    best_payload, best_output = bytes(data), data
    for candidate in candidates:
        trial = codec.always_trial or codec.needs_fallback_trial(data, best_payload)
        skip_trial = best_codec is codec and not trial
        if candidate is not codec and skip_trial:
            continue
        try:
            payload, output = _trial(candidate, data, trials)
        except BlockDeclined:
            continue
        if len(payload) < len(best_payload):
            best_codec, best_payload, best_output = candidate, payload, output
    header = BlockHeader(best_codec.codec_id, len(best_output), len(best_payload), zlib.crc32(best_output))
    return header, best_payload, best_output


def _blocks(first: bytes, rest: BinaryIO, block_size: int) -> Iterator[tuple[bytes]]:
    """Cut ``first`` + the rest of the stream into blocks of ``block_size`` bytes."""
    buffer = first
    while True:
        while len(buffer) >= block_size:
            yield (buffer[:block_size],)
            buffer = buffer[block_size:]
        more = read_up_to(rest, block_size - len(buffer))
        if not more:
            break
        buffer += more
    if buffer:
        yield (buffer,)


def compress_stream(
    src: BinaryIO,
    dst: BinaryIO,
    *,
    codec: str = "auto",
    threads: int = 1,
    block_size: int | None = None,
    content_size: int | None = None,
    metadata: FileMetadata | None = None,
    options: dict | None = None,
    progress: Callable[[int], None] | None = None,
    memory_limit: int | None = None,
) -> FrameStats:
    """Compress all of ``src`` into one frame written to ``dst``. ``options``: codec settings
    (e.g. ``{"max_error": 2}`` for near-lossless images). ``progress`` is called with the input bytes
    of each block as it is coded (for a progress bar). ``memory_limit`` (bytes, ``-M``): when the
    chosen codec's estimated need is above it, zstd with smaller blocks (and a lower level if need
    be) is used instead; MemoryLimitError when even that does not fit."""
    threads = resolve_threads(threads)
    sample = read_up_to(src, SNIFF_SIZE)
    frame_codec = choose_codec(codec, sample, options)
    if memory_limit is not None:
        size = len(sample) if len(sample) < SNIFF_SIZE else content_size
        frame_codec, block_size = _within_memory(frame_codec, block_size, size, memory_limit)
    options = dict(threads=threads, block_size=block_size, content_size=content_size, metadata=metadata)
    whole = len(sample) < SNIFF_SIZE
    if not whole and frame_codec.model is not None and not frame_codec.needs_whole_input:
        # an input of one block is read whole, so that the choice below can be made for it too
        limit = min(block_size or frame_codec.block_size, frame_codec.max_block_size)
        sample += read_up_to(src, max(0, limit - len(sample)) + 1)  # one byte more: does more follow?
        whole = len(sample) <= limit
        if not whole and frame_codec.name == "text":
            with _workers(frame_codec, threads):
                declined = frame_codec.declines(sample[:limit])
            if declined:
                # text the model loses from its first block on (JSON, data, minified code): one
                # classical frame, whose 8 MiB blocks find repeats that 1 MiB blocks cannot
                frame_codec = ClassicalCodec()
    if whole and frame_codec.model is not None:
        # The whole input is in hand and at most one block. If the learned codec wins no block, a
        # classical or raw frame is smaller by the model id and hash it would record: write that.
        buffer = io.BytesIO()
        trials: Trials = {}
        options["trials"] = trials
        stats = _write_frame(sample, io.BytesIO(), buffer, frame_codec, **options, progress=progress)
        if not stats.block_codecs[frame_codec.name] and stats.blocks:
            fallback = ClassicalCodec() if stats.block_codecs["classical"] else RawCodec()
            buffer = io.BytesIO()
            stats = _write_frame(sample, io.BytesIO(), buffer, fallback, **options)
            if frame_codec.name == "text":
                buffer, stats = _log_trial(sample, buffer, stats, options)
        dst.write(buffer.getvalue())
        return stats
    if whole and frame_codec.name == "classical" and codec == "auto":  # text the gate declined
        buffer = io.BytesIO()
        stats = _write_frame(sample, io.BytesIO(), buffer, frame_codec, **options, progress=progress)
        buffer, stats = _log_trial(sample, buffer, stats, options)
        dst.write(buffer.getvalue())
        return stats
    return _write_frame(sample, src, dst, frame_codec, **options, progress=progress)


def _log_trial(
    sample: bytes, buffer: io.BytesIO, stats: FrameStats, options: dict
) -> tuple[io.BytesIO, FrameStats]:
    """Small line-structured text (a CSV, a log taken for text) coded classically in ``buffer``: the
    log codec's columns may beat every classical coder, for little time beside the model's. The
    smaller of the two frames, with its stats."""
    if len(sample) >= SMALL_TEXT_LOG_TRIAL:
        return buffer, stats
    log_buffer = io.BytesIO()
    log_codec = codec_by_name("log").for_encoding(sample)
    log_stats = _write_frame(sample, io.BytesIO(), log_buffer, log_codec, **options)
    if len(log_buffer.getvalue()) < len(buffer.getvalue()):
        return log_buffer, log_stats
    return buffer, stats


def _within_memory(
    codec: Codec, block_size: int | None, size: int | None, limit: int
) -> tuple[Codec, int | None]:
    """The codec and block size to use so that coding one block needs at most ``limit`` bytes."""
    planned = container.MAX_BLOCK_SIZE if codec.needs_whole_input else block_size or codec.block_size
    planned = min(planned, codec.max_block_size, size if size is not None else planned)
    if codec.memory_need(max(planned, 1), decoding=False) <= limit:
        return codec, block_size
    for zstd_level in (19, 9, 3, 1):
        raw = RawCodec(zstd_level)
        candidate = max(1, min(planned, RawCodec.block_size))
        while True:
            if raw.memory_need(candidate, decoding=False) <= limit:
                return raw, candidate
            if candidate <= MIN_BLOCK_FOR_MEMORY:
                break
            candidate = max(MIN_BLOCK_FOR_MEMORY, candidate // 2)
    need = RawCodec(1).memory_need(MIN_BLOCK_FOR_MEMORY, decoding=False)
    raise MemoryLimitError(f"-M {limit >> 20} MiB is too little to compress (at least {-(-need >> 20)} MiB)")


MIN_BLOCK_FOR_MEMORY = 64 << 10


def _write_frame(
    sample: bytes,
    src: BinaryIO,
    dst: BinaryIO,
    frame_codec: Codec,
    *,
    threads: int,
    block_size: int | None,
    content_size: int | None,
    metadata: FileMetadata | None,
    progress: Callable[[int], None] | None = None,
    trials: Trials | None = None,
) -> FrameStats:
    """Write one frame holding ``sample`` followed by the rest of ``src``; ``trials``: model-free
    codecs' results on blocks, kept across frames written for the same input (``_trial``)."""
    if frame_codec.needs_whole_input:
        block_size = container.MAX_BLOCK_SIZE
    block_size = min(block_size or frame_codec.block_size, frame_codec.max_block_size)
    if not 1 <= block_size <= container.MAX_BLOCK_SIZE:
        raise ValueError(f"block size must be 1..{container.MAX_BLOCK_SIZE}")

    # A codec that sees the whole input writes its header after coding it: its parameters (e.g. an
    # image's PSNR) and the size of what decoding gives (a rebuilt PNG) are known only then.
    late_header = frame_codec.needs_whole_input
    body: BinaryIO = io.BytesIO() if late_header else dst

    def make_header(size: int | None) -> FrameHeader:
        model = frame_codec.model
        return FrameHeader(
            codec_id=frame_codec.codec_id,
            codec_params=frame_codec.params(),
            model_id=model.model_id if model else "",
            model_sha256=model.sha256 if model else b"",
            content_size=size,
            metadata=metadata,
        )

    stats = FrameStats(make_header(content_size))
    hasher = container.content_hasher()
    if not late_header:
        encoded_header = stats.header.encode()
        dst.write(encoded_header)
        stats.compressed_size += len(encoded_header)

    inside = _BlockProgress(progress) if progress is not None and threads == 1 else None

    def encode(data: bytes) -> tuple[int, BlockHeader, bytes, bytes, bool]:
        if inside is not None:
            inside.start(len(data))
        block_header, payload, output = _encode_block(frame_codec, data, trials)
        return len(data), block_header, payload, output, output is data or output == data

    input_size = 0
    known_size = content_size
    if known_size is None and threads > 1 and frame_codec.process_blocks and trials is None:
        # a stream (stdin) of unknown size: read its first block whole, so that an input of one
        # block stays in this process (starting workers costs ~0.3 s: msf's 13 MB took 2.8 s
        # through a pipe against 2.3 s from a file)
        sample += read_up_to(src, max(0, block_size + 1 - len(sample)))  # (the sniffed sample may be longer)
        known_size = len(sample) if len(sample) <= block_size else None
    processes = _block_processes(frame_codec, threads, block_size, known_size) if trials is None else None
    work = (
        encode
        if processes is None
        else partial(_encode_in_process, frame_codec.codec_id, frame_codec.always_trial)
    )
    executor = processes or _executor(threads)
    with _workers(frame_codec, threads, inside):
        try:
            for read, block_header, payload, output, same in _ordered_map(
                work, _blocks(sample, src, block_size), executor, threads + 1
            ):
                input_size += read
                hasher.update(output)
                raw_header = block_header.encode()
                body.write(raw_header)
                body.write(payload)
                stats.blocks += 1
                stats.block_codecs[codec_by_id(block_header.codec_id).name] += 1
                stats.original_size += len(output)
                stats.compressed_size += len(raw_header) + len(payload)
                stats.identical = stats.identical and same
                if progress is not None:
                    progress(inside.rest() if inside is not None else read)
        except BrokenExecutor as exc:  # (the process pool's BrokenProcessPool)
            raise NncodecError("a block worker process died (killed, or out of memory)") from exc
        finally:
            if executor is not None:
                executor.shutdown(cancel_futures=True)
    if content_size is not None and input_size != content_size:
        raise CorruptError(f"input changed while reading: expected {content_size} bytes, read {input_size}")
    if late_header:
        stats.header = make_header(stats.original_size if content_size is not None else None)
        encoded_header = stats.header.encode()
        dst.write(encoded_header)
        dst.write(body.getvalue())  # type: ignore[attr-defined]
        stats.compressed_size += len(encoded_header)
    stats.content_checksum = hasher.digest()
    footer = container.encode_footer(stats.content_checksum)
    dst.write(footer)
    stats.compressed_size += len(footer)
    return stats


# ---------------------------------------------------------------------------------------------
# decompression


def _frame_codec(header: FrameHeader) -> Codec:
    model: LoadedModel | None = None
    if header.model_id:
        model = require_model(header.model_id, header.model_sha256)
    return codec_by_id(header.codec_id).from_header(header.codec_params, model)


def _decode_block(
    frame_codec: Codec, index: int, block_header: BlockHeader, payload: bytes, memory_limit: int | None = None
) -> bytes:
    if block_header.codec_id == frame_codec.codec_id:
        codec: Codec = frame_codec
    elif block_header.codec_id == StoredCodec.codec_id:
        codec = StoredCodec()
    elif block_header.codec_id == RawCodec.codec_id:
        codec = RawCodec()
    elif block_header.codec_id == ClassicalCodec.codec_id and frame_codec.name == "text":
        codec = ClassicalCodec()
    else:
        raise CorruptError(f"block {index} corrupt (codec id {block_header.codec_id} not allowed here)")
    if block_header.original_size > codec.max_block_size:
        raise CorruptError(f"block {index} corrupt (larger than codec '{codec.name}' allows)")
    if memory_limit is not None:
        need = codec.memory_need(block_header.original_size, decoding=True)
        if need > memory_limit:
            raise MemoryLimitError(
                f"block {index} needs about {-(-need >> 20)} MiB to decode, more than -M "
                f"{memory_limit >> 20} MiB allows (raise -M)"
            )
    try:
        data = codec.decode_block(payload, block_header.original_size)
    except CorruptError as exc:
        raise CorruptError(f"block {index} corrupt ({exc})") from exc
    if len(data) != block_header.original_size or zlib.crc32(data) != block_header.crc32:
        raise CorruptError(f"block {index} corrupt (checksum mismatch)")
    return data


def _read_blocks(
    src: BinaryIO, stats: FrameStats, *, skip_payloads: bool = False
) -> Iterator[tuple[int, BlockHeader, bytes]]:
    """Yield (index, header, payload) for each block of a frame, checking declared sizes against the
    frame's content size before anything is decoded. With ``skip_payloads`` the payload is b""."""
    index = 0
    declared_total = 0
    content_size = stats.header.content_size
    while True:
        try:
            block_header = container.read_block_header(src)
        except CorruptError as exc:
            raise CorruptError(f"block {index}: {exc}") from exc
        if block_header is None:
            return
        declared_total += block_header.original_size
        if content_size is not None and declared_total > content_size:
            raise CorruptError(f"block {index} corrupt (blocks declare more data than the frame)")
        if skip_payloads:
            _skip(src, block_header.payload_size, f"block {index}")
            payload = b""
        else:
            payload = container.read_exact(src, block_header.payload_size, f"block {index}")
        stats.compressed_size += block_header.size + block_header.payload_size
        yield index, block_header, payload
        index += 1


def _skip(src: BinaryIO, size: int, what: str) -> None:
    if src.seekable():
        here = src.tell()
        if here + size > src.seek(0, io.SEEK_END):
            raise TruncatedError(f"unexpected end of file in {what}")
        src.seek(here + size)
    else:
        container.read_exact(src, size, what)


def _frame_headers(src: BinaryIO) -> Iterator[FrameHeader]:
    """Frame headers of concatenated frames; data after a frame that is not a frame is an error."""
    count = 0
    while True:
        try:
            header = container.read_frame_header(src)
        except NotNncodecError:
            if count:
                raise CorruptError(f"unexpected data after frame {count} (trailing garbage)") from None
            raise
        if header is None:
            if not count:
                raise NotNncodecError("empty input, not an nncodec file")
            return
        count += 1
        yield header


def decompress_frame(
    header: FrameHeader,
    src: BinaryIO,
    dst: BinaryIO | None,
    threads: int = 1,
    progress: Callable[[int], None] | None = None,
    memory_limit: int | None = None,
) -> FrameStats:
    """Decode the blocks and footer of a frame whose header was just read; verify everything."""
    stats = FrameStats(header, compressed_size=header.size)
    frame_codec = _frame_codec(header)
    hasher = container.content_hasher()
    threads = resolve_threads(threads)

    inside = _BlockProgress(progress) if progress is not None and threads == 1 else None

    def decode(index: int, block_header: BlockHeader, payload: bytes) -> tuple[BlockHeader, bytes]:
        if inside is not None:
            inside.start(block_header.size + block_header.payload_size)
        return block_header, _decode_block(frame_codec, index, block_header, payload, memory_limit)

    executor = _executor(threads)
    with _workers(frame_codec, threads, inside):
        try:
            for block_header, data in _ordered_map(decode, _read_blocks(src, stats), executor, threads + 1):
                hasher.update(data)
                if dst is not None:
                    dst.write(data)
                stats.blocks += 1
                stats.block_codecs[codec_by_id(block_header.codec_id).name] += 1
                stats.original_size += len(data)
                if progress is not None:
                    whole = block_header.size + block_header.payload_size
                    progress(inside.rest() if inside is not None else whole)
        finally:
            if executor is not None:
                executor.shutdown(cancel_futures=True)
    stats.content_checksum = container.read_content_checksum(src)
    stats.compressed_size += 1 + len(stats.content_checksum)
    if header.content_size is not None and stats.original_size != header.content_size:
        raise CorruptError("frame holds less data than its header declares")
    if hasher.digest() != stats.content_checksum:
        raise CorruptError("content checksum mismatch")
    return stats


def decompress_stream(
    src: BinaryIO,
    dst: BinaryIO | None,
    *,
    threads: int = 1,
    progress: Callable[[int], None] | None = None,
    memory_limit: int | None = None,
) -> list[FrameStats]:
    """Decode every concatenated frame in ``src`` (``dst=None`` only verifies). ``progress`` is called
    with the compressed bytes of each block as it is decoded. A block whose estimated decoding need
    is above ``memory_limit`` (bytes, ``-M``) raises MemoryLimitError before it is decoded."""
    return [
        decompress_frame(header, src, dst, threads, progress, memory_limit) for header in _frame_headers(src)
    ]


def scan_frames(src: BinaryIO) -> list[FrameStats]:
    """Walk frame and block headers without decoding payloads (for ``nncodec info``)."""
    frames: list[FrameStats] = []
    for header in _frame_headers(src):
        stats = FrameStats(header, compressed_size=header.size)
        for _, block_header, _ in _read_blocks(src, stats, skip_payloads=True):
            stats.blocks += 1
            stats.original_size += block_header.original_size
            stats.block_codecs[codec_name(block_header.codec_id)] += 1
        stats.content_checksum = container.read_content_checksum(src)
        stats.compressed_size += 1 + len(stats.content_checksum)
        frames.append(stats)
    return frames


# ---------------------------------------------------------------------------------------------
# in-memory API


def compress(
    data: bytes,
    codec: str = "auto",
    *,
    level: int | None = None,
    threads: int = 1,
    block_size: int | None = None,
    options: dict | None = None,
) -> bytes:
    """Compress bytes into one nncodec frame. ``level``: 1-19 (None: the default, see
    nncodec/core/levels.py); ``options``: codec settings such as ``{"max_error": 2}``."""
    out = io.BytesIO()
    options = dict(options or {})
    if level is not None:
        options["level"] = level
    compress_stream(
        io.BytesIO(data), out, codec=codec, threads=threads, block_size=block_size, content_size=len(data),
        options=options,
    )  # fmt: skip
    return out.getvalue()


def decompress(data: bytes, *, threads: int = 1) -> bytes:
    """Decompress one or more concatenated nncodec frames."""
    out = io.BytesIO()
    decompress_stream(io.BytesIO(data), out, threads=threads)
    return out.getvalue()
