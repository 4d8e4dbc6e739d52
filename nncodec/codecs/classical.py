"""The ``classical`` codec: a block coded by the best of zstd -19, xz -9e and PPMd (variant H, orders
16 and 32; variant I, orders 6, 10 and 16).

It is the fallback for text blocks the language model does not win (issue 19: never worse than
the best classical coder): a text frame's blocks may be ``classical`` besides the frame codec,
``raw`` and ``stored``, and a small text input that the model wins nowhere is written as a
``classical`` frame. The payload is one stream of nncodec/entropy/backends.py (a tag byte naming the
backend, then its coded bytes; FORMAT.md §7.3), which decodes to exactly the block's original size.

Which backends run is the encoder's choice (any payload decodes). Measured on 40 text dev files
(sources, headers, JSON, HTML, markdown, prose; neither training nor validation data) and 5 logs,
the best of all is always PPMd variant H order 16 or 32 or variant I order 6, 10 or 16: these
five code every block in full (PPMd runs at ~10 MB/s). Lower PPMd orders never won. xz -9e also
codes every block in full: a sample does not tell how much LZ77 gains over a whole block (Linux_2k.log:
4% behind PPMd on a 32 KB sample, 8% ahead in full). zstd -19 is coded in full only if a 32 KB
sample says it beats xz (``ZSTD_KEEP``): on all 45 files it was behind xz in full
but once (umath.csv, where PPMd won), and the two LZ coders' sample ratio tracks their full ratio.
Compared with the sampled choice of the log codec's streams (nncodec/entropy/backends.py) this
halves the classical time on text blocks (jquery.js 290 KB: 0.36 -> 0.15 s at ``-T2``).
"""

from __future__ import annotations

from nncodec.codecs.base import Codec
from nncodec.core.errors import CorruptError
from nncodec.entropy.backends import Coder, coded_size, decode_stream, encode_with_best, sample_of

#: every block is coded in full by these (backend, PPMd order), and by zstd -19 unless screened out
PPMD_CODERS: tuple[Coder, ...] = (("ppmd8", 6), ("ppmd8", 16), ("ppmd8", 10), ("ppmd", 32), ("ppmd", 16))
ZSTD_SAMPLE = 32 << 10  # the screen's sample: 4 pieces from across the block
ZSTD_KEEP = 1.0  # zstd -19 runs in full only if it codes the sample in fewer bytes than xz


class ClassicalCodec(Codec):
    codec_id = 7
    name = "classical"
    block_size = 8 << 20
    memory_base = 64 << 20  # PPMd's model and xz's dictionary at their caps
    memory_per_byte = (12.0, 3.0)

    def encode_block(self, data: bytes) -> bytes:
        sample = sample_of(data, ZSTD_SAMPLE)
        zstd, xz = self.map_parallel(lambda coder: coded_size(sample, coder), [("zstd", 0), ("xz", 0)])
        lz: list[Coder] = [("xz", 0), ("zstd", 0)] if zstd <= ZSTD_KEEP * xz else [("xz", 0)]
        return encode_with_best(data, lz + list(PPMD_CODERS), self.map_parallel)  # the slowest first

    def needs_fallback_trial(self, data: bytes, payload: bytes) -> bool:
        """No: zstd -19 is among this codec's own candidates, with a window as long as the block (the
        engine's raw trial would only add long-distance matching; levels 10+ still try it)."""
        return False

    def decode_block(self, payload: bytes, original_size: int) -> bytes:
        data = decode_stream(payload, original_size, "classical block")
        if len(data) != original_size:
            raise CorruptError("classical block decodes to the wrong size")
        return data
