"""nncodec: a file compressor that uses learned predictors where they win and zstd where they don't.

Python API (like gzip, lzma and zstandard; README "Python API" has more)::

    import nncodec
    packed = nncodec.compress(b"some bytes", level=3)   # level 1-19; codec="auto" | "raw" | ...
    assert nncodec.decompress(packed) == b"some bytes"
    with nncodec.open("notes.txt.nnc", "wt") as f:      # also "rb", "wb", "rt"; NncodecFile
        f.write("hello")
    c = nncodec.Compressor(); frame = c.compress(b"a") + c.flush()
    nncodec.Decompressor().decompress(frame)             # incremental, block by block
    nncodec.compress_stream(src, dst); nncodec.decompress_stream(src, dst)
"""

from nncodec.core.engine import compress, decompress
from nncodec.core.errors import NncodecError
from nncodec.core.streams import (
    Compressor,
    Decompressor,
    NncodecFile,
    compress_stream,
    decompress_stream,
    open,  # noqa: A004 - the gzip/lzma/bz2 name
)

__version__ = "0.1.0"
__all__ = [
    "compress", "decompress", "open", "NncodecFile", "Compressor", "Decompressor", "compress_stream",
    "decompress_stream", "NncodecError", "__version__",
]  # fmt: skip
