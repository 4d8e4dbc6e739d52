"""The codec interface: what every codec (stored, raw, text, image, log, ...) provides.

A codec turns one block of original bytes into a payload and back. It is created either for encoding
(``for_encoding``: it may inspect a sample of the input to pick its parameters) or from the parameters
and model recorded in a frame header (``from_header``), and is then used for every block of that frame.
A codec id is stable forever: a codec must decode every payload any released version wrote under
its id and format version.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import ClassVar, TypeVar

from nncodec.core.container import MAX_BLOCK_SIZE
from nncodec.core.errors import CorruptError, NncodecError
from nncodec.core.modelstore import LoadedModel

T = TypeVar("T")
R = TypeVar("R")


class BlockDeclined(Exception):
    """Raised by ``encode_block`` when a codec cannot code a block (it is then coded otherwise)."""


class Codec(ABC):
    """One way of coding a block. Subclasses set the class attributes and the two block methods."""

    codec_id: ClassVar[int]
    name: ClassVar[str]
    #: preferred number of original bytes per block when encoding
    block_size: ClassVar[int] = 32 << 20
    #: True if the codec must see the whole input as one block (e.g. an image file)
    needs_whole_input: ClassVar[bool] = False
    #: largest block this codec writes or accepts (a decoder refuses larger declared sizes)
    max_block_size: ClassVar[int] = MAX_BLOCK_SIZE
    #: worker threads for independent work inside a block (set by the engine for -T N); a codec's
    #: output must not depend on it
    pool: Executor | None = None
    workers: int = 1  # threads in ``pool``
    #: coding memory for a block (beyond start-up and a loaded model): base bytes, and bytes per
    #: original byte when encoding / decoding. Calibrated with tracemalloc on the shared samples
    #: (about 1.5x what was measured); ``-M`` compares them with its limit
    memory_base: ClassVar[int] = 0
    memory_per_byte: ClassVar[tuple[float, float]] = (2.0, 2.0)
    #: called with the share (0..1) of the block coded since the last call, while a block is coded,
    #: so a progress bar moves inside long blocks (set by the engine when blocks run one at a time)
    progress_hook: Callable[[float], None] | None = None
    #: every block also tries the classical fallback, whatever ``needs_fallback_trial`` says (set by
    #: the engine for compression levels 10 and up)
    always_trial: bool = False
    #: at -T N, blocks may be coded in N worker processes instead of threads: for a codec without a
    #: model or parameters whose work is mostly Python (it holds the GIL: threads would not help)
    process_blocks: ClassVar[bool] = False

    def map_parallel(self, func: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[func(x) for x in items]``, on the engine's worker threads when there are some."""
        if self.pool is None:
            return [func(item) for item in items]
        return list(self.pool.map(func, items))

    @classmethod
    def for_encoding(cls, sample: bytes, **options: object) -> Codec:
        """A codec ready to encode input whose first bytes are ``sample``. ``options`` are codec
        settings from the command line (e.g. ``max_error``); codecs ignore those they lack."""
        return cls()

    @classmethod
    def from_header(cls, params: bytes, model: LoadedModel | None) -> Codec:
        """A codec ready to decode blocks of a frame recorded with ``params`` and ``model``."""
        if params:
            raise CorruptError(f"codec '{cls.name}' takes no parameters")
        return cls()

    def params(self) -> bytes:
        """Parameters to record in the frame header (whatever ``from_header`` needs)."""
        return b""

    @property
    def model(self) -> LoadedModel | None:
        """The model this codec's blocks need, recorded in the frame header by id and hash."""
        return None

    @abstractmethod
    def encode_block(self, data: bytes) -> bytes:
        """Code one block of original bytes."""

    def encode_block_with_output(self, data: bytes) -> tuple[bytes, bytes]:
        """(payload, what decoding it gives). That is ``data`` for every byte-exact codec; a codec
        that rebuilds a file in its own way (a PNG with new IDAT data) or a lossy one returns what
        its decoder will produce, and the container's checksums cover that."""
        return self.encode_block(data), data

    def declines(self, data: bytes) -> bool:
        """Whether this codec can tell cheaply that it will not win the block (it would raise
        BlockDeclined): the engine then codes an input whose first block it declines with a
        model-free codec throughout."""
        return False

    def report_progress(self, share: float) -> None:
        if self.progress_hook is not None:
            self.progress_hook(share)

    def memory_need(self, size: int, decoding: bool) -> int:
        """Estimated coding memory in bytes for a block of ``size`` original bytes."""
        return int(self.memory_base + self.memory_per_byte[decoding] * size)

    def needs_fallback_trial(self, data: bytes, payload: bytes) -> bool:
        """Whether the engine should also try zstd -19 on a block this codec coded to ``payload``
        (it keeps the smaller). A codec that can tell cheaply that zstd will not win may say no."""
        return True

    @classmethod
    def describe_params(cls, params: bytes) -> list[tuple[str, str]]:
        """(label, value) lines about a frame's parameters for ``nncodec info``."""
        return []

    @abstractmethod
    def decode_block(self, payload: bytes, original_size: int) -> bytes:
        """Invert ``encode_block``; raise ``CorruptError`` on a malformed payload."""


#: what damaged payload bytes can make decoding code raise (numpy on nonsense shapes, the range
#: coder, lookups with out-of-range values); ``damage_is_corruption`` reports them as CorruptError
DAMAGE_ERRORS = (ValueError, IndexError, KeyError, TypeError, RuntimeError, MemoryError, OSError)


@contextmanager
def damage_is_corruption(what: str) -> Iterator[None]:
    """Inside, an exception that damaged input can cause becomes ``CorruptError("WHAT corrupt
    (...)")``; nncodec's own errors pass through as they are."""
    try:
        yield
    except NncodecError:
        raise
    except DAMAGE_ERRORS as exc:
        raise CorruptError(f"{what} corrupt ({exc})") from exc
