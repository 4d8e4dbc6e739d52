"""nncodec: a file compressor that uses learned predictors where they win and zstd where they don't.

Python API::

    import nncodec
    packed = nncodec.compress(b"some bytes")          # codec="auto" | "raw" | "stored" | ...
    assert nncodec.decompress(packed) == b"some bytes"
"""

from nncodec.core.engine import compress, decompress
from nncodec.core.errors import NncodecError

__version__ = "0.1.0"
__all__ = ["compress", "decompress", "NncodecError", "__version__"]
