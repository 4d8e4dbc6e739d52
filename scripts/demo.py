"""Round-trip every file under a directory through the nncodec CLI and compare ratios.

    .venv/bin/python scripts/demo.py testdata

For each file (recursive, sorted; hidden files skipped) this runs ``python -m nncodec -c -n FILE``
and ``python -m nncodec -dc`` (stdin to stdout), checks that the bytes come back identical (for a
PNG coded by the image codec: identical pixels and mode, as the codec promises), and
prints the ratio (original / compressed) next to gzip -9, xz -9e and zstd -19 --long computed with
Python libraries. Times are wall-clock seconds of the CLI calls, process start included.
Exit status 1 if any file fails to round-trip.
"""

from __future__ import annotations

import gzip
import lzma
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import zstandard

from nncodec.core.detect import sniff

NNCODEC = [sys.executable, "-m", "nncodec"]
ZSTD_PARAMS = zstandard.ZstdCompressionParameters.from_level(19, enable_ldm=True, window_log=27)


@dataclass
class Row:
    name: str
    kind: str
    size: int
    nncodec: int
    gzip: int
    xz: int
    zstd: int
    compress_s: float
    decompress_s: float


def run_cli(args: list[str], stdin: bytes = b"") -> tuple[bytes, float]:
    """Run the nncodec CLI; return its stdout and wall time. Raises on a non-zero exit."""
    start = time.perf_counter()
    proc = subprocess.run([*NNCODEC, *args], input=stdin, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"nncodec {' '.join(args)} exited {proc.returncode}: {message}")
    return proc.stdout, elapsed


def same_png_pixels(original: bytes, restored: bytes) -> bool:
    """The image codec gives PNGs back with identical pixels, mode and metadata, not identical bytes."""
    if not original.startswith(b"\x89PNG"):
        return False
    import io

    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(original)) as a, Image.open(io.BytesIO(restored)) as b:
        return a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))


def measure(path: Path, root: Path) -> Row:
    data = path.read_bytes()
    packed, compress_s = run_cli(["-c", "-n", str(path)])
    unpacked, decompress_s = run_cli(["-dc"], stdin=packed)
    if unpacked != data and not same_png_pixels(data, unpacked):
        raise RuntimeError(f"{path}: round trip differs ({len(unpacked)} bytes back, {len(data)} in)")
    return Row(
        name=str(path.relative_to(root)),
        kind=sniff(data),
        size=len(data),
        nncodec=len(packed),
        gzip=len(gzip.compress(data, compresslevel=9, mtime=0)),
        xz=len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)),
        zstd=len(zstandard.ZstdCompressor(compression_params=ZSTD_PARAMS).compress(data)),
        compress_s=compress_s,
        decompress_s=decompress_s,
    )


def ratio(size: int, packed: int) -> str:
    return f"{size / packed:.2f}" if packed else "-"


def print_table(rows: list[Row]) -> None:
    total = Row(
        name="TOTAL",
        kind="",
        size=sum(r.size for r in rows),
        nncodec=sum(r.nncodec for r in rows),
        gzip=sum(r.gzip for r in rows),
        xz=sum(r.xz for r in rows),
        zstd=sum(r.zstd for r in rows),
        compress_s=sum(r.compress_s for r in rows),
        decompress_s=sum(r.decompress_s for r in rows),
    )
    width = max(len("file"), *(len(r.name) for r in rows))
    header = (
        f"{'file':<{width}}  {'kind':<6} {'bytes':>8}  {'nncodec':>7} {'gzip-9':>7} {'xz-9e':>7}"
        f" {'zstd-19':>7}  {'comp s':>7} {'dec s':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in [*rows, total]:
        if r is total:
            print("-" * len(header))
        print(
            f"{r.name:<{width}}  {r.kind:<6} {r.size:>8}  {ratio(r.size, r.nncodec):>7}"
            f" {ratio(r.size, r.gzip):>7} {ratio(r.size, r.xz):>7} {ratio(r.size, r.zstd):>7}"
            f"  {r.compress_s:>7.2f} {r.decompress_s:>7.2f}"
        )
    print("ratio = original bytes / compressed bytes (higher is better); times: nncodec CLI wall seconds")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: demo.py DIRECTORY", file=sys.stderr)
        return 2
    root = Path(argv[0])
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        print(f"demo.py: no files under {root}", file=sys.stderr)
        return 1
    rows: list[Row] = []
    failures = 0
    for path in files:
        try:
            rows.append(measure(path, root))
        except (OSError, RuntimeError) as exc:
            print(f"demo.py: FAILED: {exc}", file=sys.stderr)
            failures += 1
    if rows:
        print_table(rows)
    if failures:
        print(f"demo.py: {failures} of {len(files)} files FAILED", file=sys.stderr)
        return 1
    print(f"all {len(files)} files round-tripped exactly (PNGs coded as images: identical pixels and mode)")
    print(
        "note: text/dickens_head.txt is the start of Silesia dickens, which the text model was trained "
        "on; BENCHMARKS.md reports held-out text"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
