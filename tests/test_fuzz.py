"""Fuzzing the decoder: at least 100,000 damaged containers per run (NNCODEC_FUZZ_CASES changes the
count), each of which must decode to the exact original or raise a clean NncodecError: never another
exception, never other bytes, never a hang, never memory in proportion to a size a header declares.

Damage: bit flips, random bytes, truncations, appended garbage, deleted and duplicated ranges,
splices of two containers, random headers, and header fields changed *with their CRCs recomputed*
(so that absurd sizes and ids get past the checksums and reach the codecs). The corpus covers every
codec: stored, raw (zstd, several blocks), metadata, concatenated frames, empty, log, text and image.
Deterministic: the seed is fixed, so a failure names a case that can be replayed.
"""

from __future__ import annotations

import io
import os
import random
import resource
import signal
import struct
import time
import zlib
from dataclasses import dataclass, field, replace

import pytest
from conftest import RELIABILITY_LINES, access_lines, log_lines, prose, smooth_png, zeek_lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nncodec
from nncodec.core import container, engine
from nncodec.core.container import FileMetadata
from nncodec.core.errors import NncodecError

CASES = int(os.environ.get("NNCODEC_FUZZ_CASES", "100000"))
SEED = 20261122
CASE_TIME_LIMIT_S = 20  # a case slower than this is a hang
RSS_GROWTH_LIMIT = 300 << 20
HUGE_SIZES = (1 << 24, (1 << 30) - 1, 1 << 30, 1 << 40, (1 << 63) - 1)


class CaseTimeout(Exception):
    pass


@dataclass
class Sample:
    """A container, what it decodes to, and where its headers lie (to damage them validly)."""

    name: str
    original: bytes
    packed: bytes
    weight: float  # share of the cases (slow codecs get fewer)
    #: cut -> content, for cuts at frame boundaries (a prefix of whole frames decodes, as in zstd)
    boundaries: dict[int, bytes] = field(default_factory=dict)
    frame_header_spans: list[tuple[int, int]] = field(default_factory=list)
    block_header_spans: list[tuple[int, int]] = field(default_factory=list)


def _layout(sample: Sample) -> Sample:
    """Record the byte spans of every frame header and block header of ``sample.packed``."""
    stream = io.BytesIO(sample.packed)
    while stream.tell() < len(sample.packed):
        start = stream.tell()
        header = container.read_frame_header(stream)
        assert header is not None
        sample.frame_header_spans.append((start, stream.tell()))
        while True:
            block_start = stream.tell()
            block = container.read_block_header(stream)
            if block is None:
                break
            sample.block_header_spans.append((block_start, stream.tell()))
            stream.seek(block.payload_size, io.SEEK_CUR)
        container.read_content_checksum(stream)
    return sample


def _compress(data: bytes, codec: str, **kwargs: object) -> bytes:
    out = io.BytesIO()
    engine.compress_stream(io.BytesIO(data), out, codec=codec, content_size=len(data), **kwargs)
    return out.getvalue()


def _corpus() -> list[Sample]:
    text = prose(3000, seed=11)
    binary = random.Random(3).randbytes(400)
    first = nncodec.compress(text[:200], codec="raw")
    second = nncodec.compress(binary[:100], codec="raw")
    with_metadata = _compress(text[:500], "raw", metadata=FileMetadata("a.txt", 0o640, 12))
    image_png = smooth_png(64, 48, "L")
    numbers = ",".join(str(n * n % 977) for n in range(700)).encode()  # text the model loses: classical
    image = image_png  # Pillow writes it with zlib: it comes back byte for byte
    access = access_lines(40, seed=5)  # the log codec's access-log mode (payload mode 2)
    zeek = zeek_lines(40, seed=5)  # Zeek UIDs taken out (format 3), tab-separated rows (mode 3)
    samples = [
        Sample("stored", binary, nncodec.compress(binary, codec="stored"), 1.0),
        Sample("raw-multiblock", text, nncodec.compress(text, codec="raw", block_size=700), 1.0),
        Sample("metadata", text[:500], with_metadata, 1.0),
        Sample(
            "concatenated", text[:200] + binary[:100], first + second, 1.0,
            boundaries={len(first): text[:200]},
        ),
        Sample("empty", b"", nncodec.compress(b""), 0.3),
        Sample("log", log_lines(40, seed=5), nncodec.compress(log_lines(40, seed=5), codec="log"), 1.0),
        Sample("access-log", access, nncodec.compress(access, codec="log"), 0.5),
        Sample("zeek-log", zeek, nncodec.compress(zeek, codec="log"), 0.5),
        Sample("text", prose(160, seed=2), nncodec.compress(prose(160, seed=2), codec="text"), 0.05),
        Sample("image", image, nncodec.compress(image, codec="image"), 0.01),
        Sample("classical", numbers, nncodec.compress(numbers, codec="text"), 0.3),
    ]  # fmt: skip
    for sample in samples:
        frames = engine.scan_frames(io.BytesIO(sample.packed))
        kinds = {"log": "log", "access-log": "log", "zeek-log": "log", "text": "text", "image": "image",
                 "classical": "classical"}  # fmt: skip
        learned = kinds.get(sample.name)
        if learned:
            assert frames[0].block_codecs[learned] >= 1, f"{sample.name}: coded by {frames[0].block_codecs}"
        _layout(sample)
    return samples


# ---------------------------------------------------------------------------------------------
# damage


def _refresh_crcs(data: bytearray, sample: Sample) -> None:
    """Recompute the frame-header CRC32s and block-header CRC16s of ``data`` at the spans they had
    in the undamaged container (so a changed header field gets past the checksums)."""
    for start, end in sample.frame_header_spans:
        if end <= len(data):
            data[end - 4 : end] = struct.pack("<I", zlib.crc32(bytes(data[start : end - 4])))
    for start, end in sample.block_header_spans:
        if end <= len(data):
            data[end - 2 : end] = struct.pack("<H", zlib.crc32(bytes(data[start : end - 2])) & 0xFFFF)


def _huge_block(sample: Sample, rng: random.Random) -> bytes | None:
    """A block header (CRC16 valid) that declares a huge original or payload size."""
    if not sample.block_header_spans:
        return None
    start, end = rng.choice(sample.block_header_spans)
    old = container.read_block_header(io.BytesIO(sample.packed[start:end]))
    assert old is not None
    size = rng.choice(HUGE_SIZES)
    original, payload = (size, old.payload_size) if rng.random() < 0.7 else (old.original_size, size)
    header = container.BlockHeader(old.codec_id, original, payload, old.crc32).encode()
    return sample.packed[:start] + header + sample.packed[end:]


def _huge_frame(sample: Sample, rng: random.Random) -> bytes | None:
    """A frame header (CRC32 valid) that declares a huge content size."""
    if not sample.frame_header_spans:
        return None
    start, end = sample.frame_header_spans[0]
    old = container.read_frame_header(io.BytesIO(sample.packed[start:end]))
    assert old is not None
    header = replace(old, content_size=rng.choice(HUGE_SIZES)).encode()
    return sample.packed[:start] + header + sample.packed[end:]


def damage(sample: Sample, other: Sample, rng: random.Random) -> tuple[str, bytes, bytes | None]:
    """(kind, damaged container, the content it may legitimately decode to besides an error)."""
    packed = sample.packed
    data = bytearray(packed)
    n = len(data)
    kind = rng.choice(
        ("flip", "flip", "byte", "truncate", "append", "delete", "duplicate", "splice", "random-header",
         "header-field", "header-field", "huge-block", "huge-frame")
    )  # fmt: skip
    expected: bytes | None = sample.original
    if kind == "flip":
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(n)] ^= 1 << rng.randrange(8)
    elif kind == "byte":
        data[rng.randrange(n)] = rng.randrange(256)
    elif kind == "truncate":
        cut = rng.randrange(n)
        data = data[:cut]
        expected = sample.boundaries.get(cut, sample.original)
    elif kind == "append":
        data += rng.randbytes(rng.randint(1, 64))
    elif kind == "delete":
        start = rng.randrange(n)
        del data[start : start + rng.randint(1, 16)]
    elif kind == "duplicate":
        start = rng.randrange(n)
        piece = data[start : start + rng.randint(1, 32)]
        data[start:start] = piece
    elif kind == "splice":
        # cut inside the first frame of ``sample``, continue with any part of ``other``
        first_end = sample.frame_header_spans[1][0] if len(sample.frame_header_spans) > 1 else n
        cut = rng.randrange(max(first_end - 9, 1))
        data = data[:cut] + other.packed[rng.randrange(len(other.packed)) :]
        # containers share their first bytes, so a cut there joined to ``other`` at the same offset
        # is ``other`` itself, or its frames from one frame on: that must decode to their content
        expected = None
        for start, _ in other.frame_header_spans:
            before = other.boundaries.get(start, b"" if start == 0 else None)
            if before is not None and data == other.packed[start:]:
                expected = other.original[len(before) :]
    elif kind == "random-header":
        data = bytearray(container.MAGIC + bytes([1]) + rng.randbytes(rng.randint(0, 40))) + data[n // 2 :]
        if rng.random() < 0.5:  # give it a valid header CRC at a random place
            at = rng.randrange(5, len(data) - 3)
            data[at : at + 4] = struct.pack("<I", zlib.crc32(bytes(data[:at])))
        expected = None
    elif kind == "header-field":
        spans = sample.frame_header_spans + sample.block_header_spans
        start, end = rng.choice(spans)
        data[rng.randrange(start, max(end - 4, start + 1))] = rng.randrange(256)
        _refresh_crcs(data, sample)
    elif kind == "huge-block":
        data = bytearray(_huge_block(sample, rng) or packed[:-1])
    else:
        data = bytearray(_huge_frame(sample, rng) or packed[:-1])
    return kind, bytes(data), expected


# ---------------------------------------------------------------------------------------------
# the run


def _on_alarm(signum: int, frame: object) -> None:
    raise CaseTimeout


def _max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.mark.slow
def test_fuzzed_containers_decode_exactly_or_fail_cleanly() -> None:
    samples = _corpus()
    for sample in samples:  # warm up: models loaded, allocator grown
        assert nncodec.decompress(sample.packed) == sample.original
    rss_before = _max_rss()
    rng = random.Random(SEED)
    weights = [s.weight for s in samples]
    outcomes: dict[str, int] = {"exact": 0, "error": 0}
    kinds: dict[str, int] = {}
    failures: list[str] = []
    slowest = (0.0, "")
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    started = time.perf_counter()
    try:
        for case in range(CASES):
            sample = rng.choices(samples, weights)[0]
            kind, damaged, expected = damage(sample, rng.choice(samples), rng)
            kinds[kind] = kinds.get(kind, 0) + 1
            t0 = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, CASE_TIME_LIMIT_S)
            try:
                result = nncodec.decompress(damaged)
            except NncodecError:
                outcomes["error"] += 1
            except CaseTimeout:
                failures.append(f"case {case} ({sample.name}, {kind}): no answer in {CASE_TIME_LIMIT_S} s")
            except Exception as exc:  # noqa: BLE001 - any other exception is the bug being hunted
                failures.append(f"case {case} ({sample.name}, {kind}): {type(exc).__name__}: {exc}")
            else:
                if result == sample.original or (expected is not None and result == expected):
                    outcomes["exact"] += 1
                else:
                    failures.append(
                        f"case {case} ({sample.name}, {kind}): decoded to other bytes without error"
                    )
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            elapsed = time.perf_counter() - t0
            if elapsed > slowest[0]:
                slowest = (elapsed, f"case {case} ({sample.name}, {kind})")
            if len(failures) >= 20:
                break
    finally:
        signal.signal(signal.SIGALRM, previous)
    growth = _max_rss() - rss_before
    summary = (
        f"fuzz: {CASES} cases in {time.perf_counter() - started:.1f} s, outcomes {outcomes}, "
        f"kinds {dict(sorted(kinds.items()))}, slowest {slowest[0]:.3f} s ({slowest[1]}), "
        f"peak RSS growth {growth / 2**20:.1f} MiB"
    )
    print(summary)
    RELIABILITY_LINES.append(summary)
    assert not failures, "\n".join(failures)
    assert outcomes["error"] > CASES // 2  # the damage really damaged
    assert growth < RSS_GROWTH_LIMIT, f"peak RSS grew by {growth / 2**20:.0f} MiB"


# ---------------------------------------------------------------------------------------------
# the same property, searched by hypothesis (which shrinks a failure to a minimal edit list)

_CORPUS: list[Sample] = []


def _corpus_once() -> list[Sample]:
    if not _CORPUS:
        _CORPUS.extend(s for s in _corpus() if s.name not in ("text", "image"))  # fast ones only
    return _CORPUS


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(min_value=0, max_value=5),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.one_of(st.none(), st.floats(0, 1)),
    fix_crcs=st.booleans(),
)
def test_hypothesis_edits_decode_exactly_or_fail_cleanly(index, edits, cut, fix_crcs):
    sample = _corpus_once()[index]
    data = bytearray(sample.packed)
    for where, value in edits:
        data[int(where * len(data))] = value
    if fix_crcs:
        _refresh_crcs(data, sample)
    if cut is not None:
        data = data[: int(cut * len(data))]
    try:
        result = nncodec.decompress(bytes(data))
    except NncodecError:
        return
    cut_at = len(data) if cut is not None else None
    assert result in (sample.original, sample.boundaries.get(cut_at, sample.original))
