"""The ``classical`` codec: a block coded by the best of zstd -19, xz -9e and PPMd (variant H, orders
3-32; variant I, orders 6-16).

It is the fallback for text blocks the language model does not win (issue 19: never worse than
the best classical coder): a text frame's blocks may be ``classical`` besides the frame codec,
``raw`` and ``stored``, and a small text input that the model wins nowhere is written as a
``classical`` frame. The payload is one stream of nncodec/entropy/backends.py (a tag byte naming the
backend, then its coded bytes; FORMAT.md §7.3), which decodes to exactly the block's original size.
"""

from __future__ import annotations

from nncodec.codecs.base import Codec
from nncodec.core.errors import CorruptError
from nncodec.entropy.backends import decode_stream, encode_stream


class ClassicalCodec(Codec):
    codec_id = 7
    name = "classical"
    block_size = 8 << 20
    memory_base = 64 << 20  # PPMd's model and xz's dictionary at their caps
    memory_per_byte = (12.0, 3.0)

    def encode_block(self, data: bytes) -> bytes:
        return encode_stream(data, ("ppmd", "ppmd8", "xz", "zstd"), self.map_parallel)

    def needs_fallback_trial(self, data: bytes, payload: bytes) -> bool:
        """No: zstd -19 is among this codec's own candidates, with a window as long as the block (the
        engine's raw trial would only add long-distance matching; levels 10+ still try it)."""
        return False

    def decode_block(self, payload: bytes, original_size: int) -> bytes:
        data = decode_stream(payload, original_size, "classical block")
        if len(data) != original_size:
            raise CorruptError("classical block decodes to the wrong size")
        return data
