"""The ``raw`` codec: zstd at a high level with a long window, for anything no learned codec wins on.

Each block is one standard zstd frame (content size recorded, no zstd checksum: the container has
its own CRC32 per block). Output does not depend on thread count: zstd itself runs single-threaded
per block; parallelism comes from coding blocks concurrently.
"""

from __future__ import annotations

import io
import math

import zstandard

from nncodec.codecs.base import Codec
from nncodec.core.errors import CorruptError
from nncodec.entropy.backends import ZSTD_LEVEL

MAX_WINDOW_LOG = 27  # like `zstd --long`: a 128 MiB window, capped at the block size
_READ_CHUNK = 1 << 20


class RawCodec(Codec):
    codec_id = 2
    name = "raw"
    block_size = 32 << 20

    def __init__(self, zstd_level: int = ZSTD_LEVEL) -> None:
        self.zstd_level = zstd_level  # the encoder's choice only (compression levels -1 .. -3)

    def memory_need(self, size: int, decoding: bool) -> int:
        """The window (the block size, up to 128 MiB), input and output, and when encoding zstd's
        match-finder tables (a few MiB at low levels, ~100 MiB at 19)."""
        window = 1 << min(MAX_WINDOW_LOG, max(10, math.ceil(math.log2(max(size, 1)))))
        level = self.zstd_level
        tables = 0 if decoding else (2 if level <= 1 else 8 if level <= 3 else 32 if level <= 9 else 96) << 20
        return window + 2 * size + tables

    def encode_block(self, data: bytes) -> bytes:
        window_log = min(MAX_WINDOW_LOG, max(10, math.ceil(math.log2(max(len(data), 1)))))
        params = zstandard.ZstdCompressionParameters.from_level(
            self.zstd_level,
            source_size=len(data),
            window_log=window_log,
            enable_ldm=True,
            write_checksum=0,
            write_content_size=1,
        )
        return zstandard.ZstdCompressor(compression_params=params).compress(data)

    def decode_block(self, payload: bytes, original_size: int) -> bytes:
        """Decompress in bounded chunks, never producing more than ``original_size`` + 1 bytes."""
        decompressor = zstandard.ZstdDecompressor(max_window_size=1 << MAX_WINDOW_LOG)
        out = bytearray()
        try:
            if zstandard.get_frame_parameters(payload).content_size != original_size:
                raise CorruptError("zstd frame declares a different size than its block")
            with decompressor.stream_reader(io.BytesIO(payload), read_across_frames=False) as reader:
                while len(out) <= original_size:
                    chunk = reader.read(min(_READ_CHUNK, original_size + 1 - len(out)))
                    if not chunk:
                        break
                    out += chunk
        except zstandard.ZstdError as exc:
            raise CorruptError(f"zstd data corrupt ({exc})") from exc
        if len(out) != original_size:
            raise CorruptError("zstd block decodes to the wrong size")
        return bytes(out)
