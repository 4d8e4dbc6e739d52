"""The ``stored`` codec: the block's bytes as they are (the floor every block falls back to)."""

from __future__ import annotations

from nncodec.codecs.base import Codec
from nncodec.core.errors import CorruptError


class StoredCodec(Codec):
    codec_id = 1
    name = "stored"

    def encode_block(self, data: bytes) -> bytes:
        return bytes(data)

    def decode_block(self, payload: bytes, original_size: int) -> bytes:
        if len(payload) != original_size:
            raise CorruptError("stored block has the wrong size")
        return payload
