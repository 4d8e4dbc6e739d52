"""The ``classical`` codec: a block coded by the best of zstd -19, xz -9e and PPMd (variant H, orders
16 and 32; variant I, orders 6, 10 and 16).

It is the fallback for text blocks the language model does not win (issue 19: never worse than
the best classical coder): a text frame's blocks may be ``classical`` besides the frame codec,
``raw`` and ``stored``, and a small text input that the model wins nowhere is written as a
``classical`` frame. The payload is one stream of nncodec/entropy/backends.py (a tag byte naming the
backend, then its coded bytes; FORMAT.md §7.3), which decodes to exactly the block's original size.

Which backends run is the encoder's choice (any payload decodes). Measured on 40 text dev files
(sources, headers, JSON, HTML, markdown, prose; neither training nor validation data) and 5 logs,
the best of all is always PPMd variant H order 16 or 32 or variant I order 6, 10 or 16; lower PPMd
orders never won. A block up to ``FULL_LIMIT`` is coded in full by those five and by xz -9e: a sample
does not tell how much LZ77 gains over a whole block (Linux_2k.log: 4% behind PPMd on a 32 KB sample,
8% ahead in full). zstd -19 is coded in full only if a 32 KB sample says it beats xz (``ZSTD_KEEP``):
on all 45 files it was behind xz in full but once (umath.csv, where PPMd won), and the two LZ coders'
sample ratio tracks their full ratio. This halves the classical time of such blocks against sampling
ten backends first (jquery.js 290 KB: 0.36 -> 0.15 s at ``-T2``). A longer block is first coded in
a 128 KB sample by all seven: in full then run the PPMd variants within ``PPMD_CLOSE`` of the best
PPMd, order 32 of variant H (whose long contexts a sample underrates), and xz and zstd only where
their sample is within ``LZ_KEEP`` of the best (zstd also only where it beats xz): a 1 MiB block
would otherwise cost ~0.8 s of coding.
"""

from __future__ import annotations

from nncodec.codecs.base import Codec
from nncodec.core.errors import CorruptError
from nncodec.entropy.backends import Coder, coded_size, decode_stream, encode_with_best, sample_of

#: every block is coded in full by these (backend, PPMd order), and by zstd -19 unless screened out
PPMD_CODERS: tuple[Coder, ...] = (("ppmd8", 6), ("ppmd8", 16), ("ppmd8", 10), ("ppmd", 32), ("ppmd", 16))
ZSTD_SAMPLE = 32 << 10  # the screen's sample: 4 pieces from across the block
ZSTD_KEEP = 1.0  # zstd -19 runs in full only if it codes the sample in fewer bytes than xz
FULL_LIMIT = 256 << 10  # longer blocks choose their backends on a sample first
LONG_SAMPLE = 128 << 10
PPMD_CLOSE = 1.03  # a PPMd variant this close to the best PPMd on the sample also runs in full
LZ_KEEP = 1.10  # xz (and zstd) run in full when their sample is this close to the best one


class ClassicalCodec(Codec):
    codec_id = 7
    name = "classical"
    block_size = 8 << 20
    memory_base = 64 << 20  # PPMd's model and xz's dictionary at their caps
    memory_per_byte = (12.0, 3.0)

    def encode_block(self, data: bytes) -> bytes:
        return encode_with_best(data, self.coders(data), self.map_parallel)

    def coders(self, data: bytes) -> list[Coder]:
        """The backends that code ``data`` in full, the slowest first (see the module docstring)."""
        if len(data) <= FULL_LIMIT:
            sample = sample_of(data, ZSTD_SAMPLE)
            zstd, xz = self.map_parallel(lambda coder: coded_size(sample, coder), [("zstd", 0), ("xz", 0)])
            lz: list[Coder] = [("xz", 0), ("zstd", 0)] if zstd <= ZSTD_KEEP * xz else [("xz", 0)]
            return lz + list(PPMD_CODERS)
        sample = sample_of(data, LONG_SAMPLE)
        tried = [("xz", 0), ("zstd", 0), *PPMD_CODERS]
        sizes = self.map_parallel(lambda coder: coded_size(sample, coder), tried)
        size = dict(zip(tried, sizes, strict=True))
        best, best_ppmd = min(size.values()), min(size[coder] for coder in PPMD_CODERS)
        chosen: list[Coder] = []
        if size[("xz", 0)] <= LZ_KEEP * best:
            chosen.append(("xz", 0))
        if size[("zstd", 0)] <= min(ZSTD_KEEP * size[("xz", 0)], LZ_KEEP * best):
            chosen.append(("zstd", 0))
        close = [coder for coder in PPMD_CODERS if size[coder] <= PPMD_CLOSE * best_ppmd]
        return chosen + close + [("ppmd", 32)] * (("ppmd", 32) not in close)

    def needs_fallback_trial(self, data: bytes, payload: bytes) -> bool:
        """No: zstd -19 is among this codec's own candidates, with a window as long as the block (the
        engine's raw trial would only add long-distance matching; levels 10+ still try it)."""
        return False

    def decode_block(self, payload: bytes, original_size: int) -> bytes:
        data = decode_stream(payload, original_size, "classical block")
        if len(data) != original_size:
            raise CorruptError("classical block decodes to the wrong size")
        return data
