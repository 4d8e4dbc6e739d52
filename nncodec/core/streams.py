"""Incremental compression and file objects: the Python API of gzip, lzma and zstandard, for nncodec.

* ``Compressor`` — ``compress(data)`` buffers, ``flush()`` returns the buffered data as one complete
  frame (b"" when nothing is buffered). A frame is also emitted on its own once ``frame_bytes`` are
  buffered, so memory stays bounded. Frames concatenate: the output of any sequence of calls decodes
  to everything given, in order.
* ``Decompressor`` — ``decompress(data)`` returns what the complete blocks received so far decode to;
  ``eof`` is True between frames. Every block is checked as in ``nncodec -d`` (damaged input raises
  ``NncodecError``); a frame's content checksum is checked when its end arrives.
* ``NncodecFile`` — a binary file object over a path or another file object, modes "rb", "wb",
  "ab" and "xb"; ``open`` adds the text modes ("rt", "wt", ...) through ``io.TextIOWrapper``.

The bytes written are those ``nncodec.compress`` writes for the same data cut into the same frames.
"""

from __future__ import annotations

import builtins
import io
import os
from typing import IO, Any, BinaryIO

from nncodec.core import container, engine
from nncodec.core.errors import CorruptError, TruncatedError

FRAME_BYTES = 64 << 20  # a Compressor emits a frame once this much is buffered
READ_CHUNK = 1 << 16


class Compressor:
    """Incremental compression: ``compress(data)`` then ``flush()`` (see the module docstring)."""

    def __init__(
        self,
        level: int | None = None,
        *,
        codec: str = "auto",
        threads: int = 1,
        options: dict | None = None,
        frame_bytes: int = FRAME_BYTES,
    ) -> None:
        self.level, self.codec, self.threads = level, codec, threads
        self.options = dict(options or {})
        self.frame_bytes = frame_bytes
        self._buffer = bytearray()

    def compress(self, data: bytes) -> bytes:
        self._buffer += data
        return self.flush() if len(self._buffer) >= self.frame_bytes else b""

    def flush(self) -> bytes:
        if not self._buffer:
            return b""
        data, self._buffer = bytes(self._buffer), bytearray()
        return engine.compress(data, self.codec, level=self.level, threads=self.threads, options=self.options)


class Decompressor:
    """Incremental decompression of concatenated frames (see the module docstring)."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._buffer = bytearray()
        self._frame: _OpenFrame | None = None
        self.frames = 0

    @property
    def eof(self) -> bool:
        """True when every frame received so far is complete (and at least one was)."""
        return self._frame is None and not self._buffer and self.frames > 0

    def decompress(self, data: bytes) -> bytes:
        self._buffer += data
        out: list[bytes] = []
        while self._buffer:
            src = io.BytesIO(self._buffer)
            try:
                if self._frame is None:
                    if len(self._buffer) < len(container.MAGIC) and container.MAGIC.startswith(self._buffer):
                        break
                    header = container.read_frame_header(src)
                    assert header is not None  # the buffer is not empty
                    self._frame = _OpenFrame(header, self.threads)
                elif self._frame.step(src, out):
                    self._frame = None
                    self.frames += 1
            except TruncatedError:
                break
            del self._buffer[: src.tell()]
        return b"".join(out)

    def finish(self) -> None:
        """Raise TruncatedError unless the input ended at the end of a frame."""
        if self._frame is not None or self._buffer or not self.frames:
            raise TruncatedError("unexpected end of input inside an nncodec frame")


class _OpenFrame:
    """A frame whose header has been read: decode its blocks one at a time."""

    def __init__(self, header: container.FrameHeader, threads: int) -> None:
        self.header = header
        self.codec = engine._frame_codec(header)
        self.codec.workers = 1
        self.hasher = container.content_hasher()
        self.index = self.size = 0

    def step(self, src: BinaryIO, out: list[bytes]) -> bool:
        """Decode the next block into ``out``, or check the footer; True when the frame is done."""
        block_header = container.read_block_header(src)
        if block_header is None:
            checksum = container.read_content_checksum(src)
            if self.header.content_size is not None and self.size != self.header.content_size:
                raise CorruptError("frame holds less data than its header declares")
            if self.hasher.digest() != checksum:
                raise CorruptError("content checksum mismatch")
            return True
        payload = container.read_exact(src, block_header.payload_size, f"block {self.index}")
        data = engine._decode_block(self.codec, self.index, block_header, payload)
        self.size += len(data)
        if self.header.content_size is not None and self.size > self.header.content_size:
            raise CorruptError(f"block {self.index} corrupt (blocks declare more data than the frame)")
        self.hasher.update(data)
        out.append(data)
        self.index += 1
        return False


class NncodecFile(io.BufferedIOBase):
    """A file object that compresses what is written to it, or decompresses what is read from it."""

    def __init__(
        self,
        file: str | os.PathLike | BinaryIO,
        mode: str = "rb",
        *,
        level: int | None = None,
        codec: str = "auto",
        threads: int = 1,
        options: dict | None = None,
    ) -> None:
        plain = mode.replace("b", "")
        if plain not in ("r", "w", "a", "x"):
            raise ValueError(f"invalid mode {mode!r} (use 'rb', 'wb', 'ab' or 'xb')")
        self._owned = isinstance(file, (str, bytes, os.PathLike))
        owned = builtins.open(file, plain + "b") if self._owned else file  # type: ignore[arg-type]
        self._file: BinaryIO = owned  # type: ignore[assignment]
        self._reading = plain == "r"
        self._compressor = (
            None if self._reading else Compressor(level, codec=codec, threads=threads, options=options)
        )
        self._decompressor = Decompressor(threads) if self._reading else None
        self._pending = b""
        self._at_end = False

    # -- reading --

    def readable(self) -> bool:
        return self._reading

    def read(self, size: int | None = -1) -> bytes:
        self._check("read")
        if size is None or size < 0:
            parts = [self._pending]
            self._pending = b""
            while not self._at_end:
                parts.append(self._more())
            return b"".join(parts)
        while len(self._pending) < size and not self._at_end:
            self._pending += self._more()
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def read1(self, size: int = -1) -> bytes:
        self._check("read")
        if not self._pending and not self._at_end:
            self._pending = self._more()
        size = len(self._pending) if size < 0 else size
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer)))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def _more(self) -> bytes:
        assert self._decompressor is not None
        chunk = self._file.read(READ_CHUNK)
        if not chunk:
            self._at_end = True
            self._decompressor.finish()
            return b""
        return self._decompressor.decompress(chunk)

    # -- writing --

    def writable(self) -> bool:
        return not self._reading

    def write(self, data: Any) -> int:
        self._check("write")
        assert self._compressor is not None
        view = memoryview(data).cast("B")
        self._file.write(self._compressor.compress(view.tobytes()))
        return len(view)

    def flush(self) -> None:
        """Write what is buffered as a complete frame (later writes start a new one)."""
        if not self.closed and self._compressor is not None:
            self._file.write(self._compressor.flush())
            self._file.flush()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.flush()
        finally:
            try:
                super().close()
            finally:
                if self._owned:
                    self._file.close()

    def _check(self, what: str) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        if (what == "read") != self._reading:
            raise io.UnsupportedOperation(f"file not open for {'reading' if what == 'read' else 'writing'}")


def open(  # noqa: A001 - the gzip/lzma/bz2 name
    file: str | os.PathLike | BinaryIO,
    mode: str = "rb",
    *,
    level: int | None = None,
    codec: str = "auto",
    threads: int = 1,
    options: dict | None = None,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
) -> NncodecFile | IO[str]:
    """Open an nncodec file in binary ("rb", "wb", "ab", "xb") or text ("rt", "wt", "at", "xt") mode,
    like ``gzip.open``."""
    if "t" in mode:
        if "b" in mode:
            raise ValueError(f"invalid mode {mode!r}")
        binary = NncodecFile(
            file, mode.replace("t", "b"), level=level, codec=codec, threads=threads, options=options
        )
        return io.TextIOWrapper(binary, encoding, errors, newline)
    if encoding is not None or errors is not None or newline is not None:
        raise ValueError("encoding, errors and newline are for text modes")
    return NncodecFile(file, mode if "b" in mode else mode + "b", level=level, codec=codec, threads=threads,
                       options=options)  # fmt: skip


def compress_stream(src: BinaryIO, dst: BinaryIO, *, level: int | None = None, codec: str = "auto",
                    threads: int = 1, options: dict | None = None) -> int:  # fmt: skip
    """Compress all of ``src`` into one frame on ``dst`` (in blocks: memory does not grow with the
    input). Returns the bytes written."""
    options = dict(options or {})
    if level is not None:
        options["level"] = level
    return engine.compress_stream(src, dst, codec=codec, threads=threads, options=options).compressed_size


def decompress_stream(src: BinaryIO, dst: BinaryIO, *, threads: int = 1) -> int:
    """Decompress every frame of ``src`` onto ``dst``. Returns the bytes written."""
    return sum(frame.original_size for frame in engine.decompress_stream(src, dst, threads=threads))
