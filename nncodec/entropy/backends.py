"""Classical byte-stream coders for a codec's inner streams: zstd, xz (LZMA2) and PPMd, best of.

A codec that splits its input into streams (the log codec's template ids, number columns, string
columns) codes each one with whichever backend makes it smallest and records the choice in one tag
byte before the coded bytes. Every backend here is a fixed, documented algorithm with fixed
parameters, so its output decodes with any build of the library (FORMAT.md §7.3):

* tag 0: the bytes as they are;
* tag 1: one zstd frame (level 19, content size recorded);
* tag 2: raw LZMA2 (``lzma.FORMAT_RAW``, preset 9 | extreme, dictionary capped at 64 MiB; the log
  codec's long streams with a shallower match search, ``XZ_QUICK_DEPTH``: the same format);
* tag 3 + order: PPMd variant H (7-Zip's PPMd7); the order follows the tag byte, then the data's
  length (PPMd cannot tell where its data ends), which also sets the model memory
  (``ppmd_memory``);
* tag 4 + order: PPMd variant I rev. 1 (PPMd8, as in RAR and ZIP's PPMd method) with the "restart"
  model-restore method, order, length and memory as for tag 3: 0.3-0.5% smaller than variant H on
  source code (jquery.js, elf.h), by pyppmd 1.3.1 (decoded again at encode time, as below).

PPMd runs in ``nncodec.entropy._ppmd`` (nncodec/entropy/_ppmd.c: the LZMA SDK's public-domain PPMd7
code, which frees what it allocates and runs without the GIL). Where that extension was not built,
pyppmd 1.3.1 writes the same bytes, but it leaks memory on every encoder and mis-decodes some inputs:
every PPMd stream is decoded again at encode time and used only if it gives the data back. Decoding never
produces more than the size the caller says a stream may have.

Choosing is the encoder's business (any choice decodes): a stream over ``PROBE_SIZE`` is coded by
every backend in a 128 KB sample, and the best (and a close runner-up) code the stream. (A first
look at 32 KB that dropped the backends 10% behind saved 27% of the time on 20 dev streams with the
same output, but cost nginxplus_json_logs 1.8% in the log codec; at 25% it dropped nothing: removed.)
PPMd variant H at its highest order (``LONG_CODERS``) also codes every such stream in full: samples
of 4 x 32 KB underrate it, as its long contexts only pay over a whole stream (the Rust book's 4.7 MB
search index in 1 MiB blocks: 456,463 -> 430,945 bytes, order 32 best on 4 of 5 blocks; whole shared
logs of 2-4 MB: 3-9% below the sampled choice).
"""

from __future__ import annotations

import lzma
from collections.abc import Callable

import zstandard

try:  # compiled PPMd (nncodec/entropy/_ppmd.c); pyppmd gives the same bytes, slower and leaking memory
    from nncodec.entropy import _ppmd as compiled_ppmd
except ImportError:  # pragma: no cover - built by `pip install` wherever a C compiler is found
    compiled_ppmd = None
try:  # compiled PPMd variant I (nncodec/entropy/_ppmd8.c); pyppmd's holds the GIL between bytes
    from nncodec.entropy import _ppmd8 as compiled_ppmd8
except ImportError:  # pragma: no cover - built by `pip install` wherever a C compiler is found
    compiled_ppmd8 = None

from nncodec.core.errors import CorruptError, TruncatedError
from nncodec.core.framing import decode_varint, encode_varint

STORED, ZSTD, XZ, PPMD, PPMD8 = 0, 1, 2, 3, 4
#: zstd -19: the level of every zstd pass whose output is kept (the raw codec, inner streams, image
#: skeletons and 16-bit images); a quick pass at ZSTD_QUICK_LEVEL only estimates what zstd would do
ZSTD_LEVEL = 19
ZSTD_QUICK_LEVEL = 3
XZ_DICT_MAX = 64 << 20
PPMD_MEMORY_MAX = 64 << 20
PPMD_ORDERS = (3, 5, 8, 16, 32)
PPMD8_ORDERS = (6, 10, 16)  # variant I: where it beats variant H (its orders above 16 code alike)
#: below this size a stream is only tried stored and with PPMd order 5 (others rarely win there)
SMALL_STREAM = 64
#: a longer stream is coded in full only with the backends that code a sample of it best
PROBE_SIZE = 128 << 10
PROBE_PIECES = 4
PROBE_CLOSE = 1.03  # the runner-up is tried in full too if the sample says it is this close
LONG_CODERS: tuple[tuple[str, int], ...] = (("ppmd", PPMD_ORDERS[-1]),)  # a stream over PROBE_SIZE is
# also coded in full by these

Coder = tuple[str, int]  # backend name, PPMd order or xz match-finder depth (0: the preset's)

#: ``xz-quick`` (the log codec's streams): LZMA2 -9e with its binary-tree match finder searching at most
#: this deep on streams over XZ_QUICK_MIN bytes (-9e's own depth is 16 + 273 / 2). On the shared-log
#: concatenation's first 16 MiB (14.4 MB of JSON lines left verbatim by the access-log mode) -9e took
#: 6.29 s for 207,853 bytes, depth 24 2.40 s for 208,416 (+0.27%). With that depth on every stream the
#: log codec's output over every log of bench_log grew 0.04% (Linux.log +0.54%); on streams over 1 MiB
#: only, no ratio in the table moved. Same format: any xz decoder reads it.
XZ_QUICK_DEPTH = 24
XZ_QUICK_MIN = 1 << 20


def _xz_filters(size: int, depth: int = 0) -> list[dict]:
    dict_size = min(XZ_DICT_MAX, max(1 << 16, 1 << max(size - 1, 1).bit_length()))
    lzma2 = {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": dict_size}
    if depth:
        lzma2["depth"] = depth
    return [lzma2]


def zstd_compress(data: bytes, level: int = ZSTD_LEVEL) -> bytes:
    """One standard zstd frame (content size recorded, no checksum: the container has CRCs)."""
    return zstandard.ZstdCompressor(level=level, write_checksum=False).compress(data)


def zstd_decompress(data: bytes, limit: int, what: str) -> bytes:
    """Inverse of ``zstd_compress``, producing at most ``limit`` bytes; damage is CorruptError."""
    try:
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=limit)
    except zstandard.ZstdError as exc:
        raise CorruptError(f"{what} corrupt ({exc})") from exc


def ppmd_memory(size: int) -> int:
    """PPMd model memory for ``size`` bytes of data: 32x the data (a power of two), 1-64 MiB."""
    return min(PPMD_MEMORY_MAX, max(1 << 20, 1 << (32 * max(size, 1) - 1).bit_length()))


def _ppmd(data: bytes, order: int) -> bytes:
    if compiled_ppmd is not None:
        return compiled_ppmd.encode(data, order, ppmd_memory(len(data)))
    import pyppmd  # only where nncodec/entropy/_ppmd.c was not built

    encoder = pyppmd.Ppmd7Encoder(order, ppmd_memory(len(data)))
    return encoder.encode(data) + encoder.flush(endmark=False)


def _ppmd8(data: bytes, order: int) -> bytes:
    if compiled_ppmd8 is not None:
        return compiled_ppmd8.encode(data, order, ppmd_memory(len(data)))
    import pyppmd  # only where nncodec/entropy/_ppmd8.c was not built

    encoder = pyppmd.Ppmd8Encoder(order, ppmd_memory(len(data)), pyppmd.PPMD8_RESTORE_METHOD_RESTART)
    return encoder.encode(data) + encoder.flush(endmark=False)


def ppmd_size(data: bytes, order: int) -> int:
    """Bytes PPMd of this order takes for ``data`` (an estimate for choosing how to code)."""
    return len(_ppmd(data, order))


class _PpmdFailure(Exception):
    pass


def _unppmd(body: bytes, order: int, size: int) -> bytes:
    """PPMd-decode ``size`` bytes, reading zeros past the end of ``body`` (a damaged stream gives
    garbage that the caller's checksums catch, or a data error). pyppmd waits for more input when a
    stream runs short and raises odd exceptions on garbage; feeding it zeros until it has produced
    ``size`` bytes (each symbol reads a few bytes at most) and catching everything keeps damage a
    clean error there too."""
    if compiled_ppmd is not None:
        try:
            return compiled_ppmd.decode(body, order, ppmd_memory(size), size)
        except ValueError as exc:
            raise _PpmdFailure(str(exc)) from exc
    import pyppmd  # only where nncodec/entropy/_ppmd.c was not built

    return _pyppmd_decode(pyppmd.Ppmd7Decoder(order, ppmd_memory(size)), body, size)


def _unppmd8(body: bytes, order: int, size: int) -> bytes:
    """PPMd variant I decoding of ``size`` bytes, as ``_unppmd`` does."""
    if compiled_ppmd8 is not None:
        try:
            return compiled_ppmd8.decode(body, order, ppmd_memory(size), size)
        except ValueError as exc:
            raise _PpmdFailure(str(exc)) from exc
    import pyppmd  # only where nncodec/entropy/_ppmd8.c was not built

    decoder = pyppmd.Ppmd8Decoder(order, ppmd_memory(size), pyppmd.PPMD8_RESTORE_METHOD_RESTART)
    return _pyppmd_decode(decoder, body, size)


def _pyppmd_decode(decoder, body: bytes, size: int) -> bytes:
    """``size`` bytes from a pyppmd decoder fed ``body`` and then zeros (see ``_unppmd``)."""
    try:
        data = decoder.decode(body + bytes(16), size)
        for _ in range(8):
            if len(data) >= size or decoder.eof:
                break
            data += decoder.decode(bytes(4 * (size - len(data)) + 16), size - len(data))
    except Exception as exc:  # noqa: BLE001 - pyppmd raises ValueError, SystemError, ... on garbage
        raise _PpmdFailure(str(exc) or type(exc).__name__) from exc
    if len(data) != size:
        raise _PpmdFailure("PPMd data ends early")
    return data


def _coders(candidates: tuple[str, ...], size: int) -> list[Coder]:
    """Backends by name; ``ppmd`` means every order in PPMD_ORDERS, ``ppmd-N`` order N only;
    ``ppmd8`` every order in PPMD8_ORDERS; ``xz-quick`` xz with a shallower match search on long
    streams (``XZ_QUICK_DEPTH``)."""
    if size < SMALL_STREAM:
        return [("ppmd", 5)]
    coders: list[Coder] = []
    for name in candidates:
        if name.startswith("ppmd-"):
            coders.append(("ppmd", int(name[5:])))
        elif name == "ppmd":
            coders.extend(("ppmd", order) for order in PPMD_ORDERS)
        elif name == "ppmd8":
            coders.extend(("ppmd8", order) for order in PPMD8_ORDERS)
        elif name in ("xz", "zstd"):
            coders.append((name, 0))
        elif name == "xz-quick":
            coders.append(("xz", XZ_QUICK_DEPTH if size > XZ_QUICK_MIN else 0))
        else:
            raise ValueError(f"unknown backend {name!r}")
    return coders


def _encode_with(data: bytes, coder: Coder) -> bytes:
    name, order = coder
    if name == "zstd":
        return bytes([ZSTD]) + zstd_compress(data)
    if name == "xz":
        return bytes([XZ]) + lzma.compress(data, lzma.FORMAT_RAW, filters=_xz_filters(len(data), order))
    if name == "ppmd8":
        return bytes([PPMD8, order]) + encode_varint(len(data)) + _ppmd8(data, order)
    return bytes([PPMD, order]) + encode_varint(len(data)) + _ppmd(data, order)


def _decodes_back(coded: bytes, data: bytes) -> bool:
    """Whether a coded stream gives ``data`` back (checked for PPMd, whose library is not sure)."""
    if coded[0] not in (PPMD, PPMD8):
        return True
    try:
        return decode_stream(coded, len(data), "check") == data
    except CorruptError:
        return False


def encode_stream(
    data: bytes, candidates: tuple[str, ...] = ("ppmd", "xz", "zstd"), map_coders: Callable | None = None
) -> bytes:
    """``data`` coded with the best of the candidate backends, as tag byte(s) + coded bytes. A long
    stream is coded in full only with the backend that does best on a sample of it, and the
    runner-up if it came close (the choice is the encoder's: any choice decodes). The result
    always decodes back to ``data``. ``map_coders`` (like ``map``, e.g. on worker threads) runs the
    backends' trials; the choice does not depend on it."""
    run = map_coders or (lambda func, items: [func(item) for item in items])
    stored = bytes([STORED]) + data
    if not data:
        return stored
    coders = _coders(candidates, len(data))
    if len(data) > PROBE_SIZE and len(coders) > 2:
        probe = sample_of(data, PROBE_SIZE)
        sizes = dict(zip(coders, run(lambda coder: len(_encode_with(probe, coder)), coders), strict=True))
        coders = sorted(coders, key=sizes.__getitem__)[:2]
        if sizes[coders[1]] > PROBE_CLOSE * sizes[coders[0]]:
            coders = coders[:1]
    if len(data) > PROBE_SIZE:  # what gains more from a whole stream than the samples show
        coders += [coder for coder in LONG_CODERS if coder[0] in candidates and coder not in coders]
    return encode_with_best(data, coders, run)


def encode_with_best(data: bytes, coders: list[Coder], run: Callable = map) -> bytes:
    """``data`` coded in full by each of ``coders`` (through ``run``, like ``map``), as tag byte(s) +
    coded bytes: the smallest that decodes back to ``data``, or stored."""
    stored = bytes([STORED]) + data
    if not data:
        return stored
    options = sorted(run(lambda coder: _encode_with(data, coder), coders), key=len)
    for option in options:
        if len(option) >= len(stored):
            break
        if _decodes_back(option, data):
            return option
    if not any(option[0] == XZ for option in options):  # PPMd failed its check: xz instead
        return min(_encode_with(data, ("xz", 0)), stored, key=len)
    return stored


def sample_of(data: bytes, size: int, pieces: int = PROBE_PIECES) -> bytes:
    """``size`` bytes of ``data`` taken in ``pieces`` pieces from across it (all of a shorter ``data``)."""
    if len(data) <= size:
        return data
    piece = size // pieces
    step = (len(data) - piece) // (pieces - 1)
    return b"".join(data[i * step : i * step + piece] for i in range(pieces))


def coded_size(data: bytes, coder: Coder) -> int:
    """Bytes ``coder`` takes for ``data``, its tag included."""
    return len(_encode_with(data, coder))


def decode_stream(coded: bytes, max_size: int, what: str) -> bytes:
    """Inverse of ``encode_stream``; the result may not exceed ``max_size`` bytes."""
    if not coded:
        raise CorruptError(f"{what} stream is empty")
    tag, body = coded[0], coded[1:]
    try:
        if tag == STORED:
            data = body
        elif tag == ZSTD:
            data = zstandard.ZstdDecompressor().decompress(body, max_output_size=max_size)
        elif tag == XZ:
            decompressor = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=_xz_filters(max_size))
            data = decompressor.decompress(body, max_length=max_size + 1)
        elif tag in (PPMD, PPMD8):
            if not body:
                raise TruncatedError(f"{what} stream ends early")
            order = body[0]
            if not 2 <= order <= 64:
                raise CorruptError(f"{what} stream has a bad PPMd order")
            size, pos = decode_varint(body, 1)
            if size > max_size:
                raise CorruptError(f"{what} stream declares too much data")
            unppmd = _unppmd if tag == PPMD else _unppmd8
            data = unppmd(body[pos:], order, size) if size else b""
        else:
            raise CorruptError(f"{what} stream has unknown coding {tag}")
    except (zstandard.ZstdError, lzma.LZMAError, _PpmdFailure) as exc:
        raise CorruptError(f"{what} stream corrupt ({exc})") from exc
    if len(data) > max_size:
        raise CorruptError(f"{what} stream decodes to too much data")
    return data
