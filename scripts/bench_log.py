"""Benchmark nncodec's log codec against classical compressors and write BENCHMARKS.md's log section.

    python scripts/bench_log.py [--out BENCHMARKS.md] [--no-speed]

Data: every file of ../shared/data/logs (loghub2k, loghub_full, zeek_wrccdc, elastic_examples; see
its README for provenance and licences). Ratios for each file of at least 1 MB, each loghub2k file,
and the loghub2k concatenation (sorted by name). nncodec runs through its Python API with the codec
``log`` and one thread (same bytes as any thread count; zstd -19 fallback per block included); the
classical coders run in-process through their Python bindings at the settings in the table. Every
round trip is verified.

Speed: the concatenation of all those files in name order (~50 MB) through the CLI in fresh
processes, `-T1` and `-T2` (identical output), with their wall time and peak RSS.
"""

from __future__ import annotations

import argparse
import gzip
import lzma
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import pyppmd
import zstandard

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench import run_measured, write_section  # noqa: E402

import nncodec  # noqa: E402

SHARED_LOGS = REPO.parent / "shared" / "data" / "logs"
BEGIN, END = "<!-- log-bench:begin -->", "<!-- log-bench:end -->"
BIG = 1_000_000


def ppmd(data: bytes, order: int) -> bytes:
    encoder = pyppmd.Ppmd7Encoder(order, 192 << 20)
    return encoder.encode(data) + encoder.flush()


def classical(data: bytes) -> dict[str, int]:
    """name -> compressed bytes, round trips verified."""
    zstd_params = zstandard.ZstdCompressionParameters.from_level(19, enable_ldm=True, window_log=27)
    sizes = {
        "gzip -9": gzip.compress(data, 9),
        "xz -9e": lzma.compress(data, preset=9 | lzma.PRESET_EXTREME),
        "zstd -19 --long": zstandard.ZstdCompressor(compression_params=zstd_params).compress(data),
    }
    assert gzip.decompress(sizes["gzip -9"]) == data
    assert lzma.decompress(sizes["xz -9e"]) == data
    assert zstandard.ZstdDecompressor(max_window_size=1 << 27).decompress(sizes["zstd -19 --long"]) == data
    best = min((ppmd(data, order) for order in (6, 32)), key=len)  # 7z -m0=PPMd -mx=9 uses o32
    out = {name: len(packed) for name, packed in sizes.items()}
    out["PPMd (best of o6, o32; 192 MB)"] = len(best)
    return out


def files() -> list[tuple[str, bytes]]:
    paths = sorted(p for p in SHARED_LOGS.rglob("*") if p.is_file() and not p.name.startswith("LICENSE"))
    chosen = [(str(p.relative_to(SHARED_LOGS)), p.read_bytes()) for p in paths]
    loghub2k = [data for name, data in chosen if name.startswith("loghub2k/")]
    # every JSON-lines log whatever its size (issue 21 judges each), the others from BIG bytes
    chosen = [(n, d) for n, d in chosen if len(d) >= BIG or n.startswith(("loghub2k/", "json_lines/"))]
    chosen.append(("loghub2k, all 16 concatenated", b"".join(loghub2k)))
    return chosen


def speed(threads: tuple[int, ...]) -> list[str]:
    paths = sorted(p for p in SHARED_LOGS.rglob("*") if p.is_file() and not p.name.startswith("LICENSE"))
    data = b"".join(p.read_bytes() for p in paths)
    cli = [sys.executable, "-m", "nncodec"]
    lines = [
        f"Speed: all {len(paths)} files concatenated in name order ({len(data) / 1e6:.1f} MB), the CLI "
        "in fresh processes (start-up included), wall clock:",
        "",
        "| threads | compress | decompress | peak RSS c / d | ratio |",
        "|---|---|---|---|---|",
    ]
    packed_first = b""
    for count in threads:
        packed, c_time, c_rss = run_measured([*cli, f"-T{count}", "--codec", "log", "-c"], data)
        restored, d_time, d_rss = run_measured([*cli, f"-T{count}", "-d", "-c"], packed)
        assert restored == data, "round trip failed on the concatenation"
        packed_first = packed_first or packed
        assert packed == packed_first, "output depends on the thread count"
        lines.append(
            f"| -T{count} | {len(data) / c_time / 1e6:.2f} MB/s | {len(data) / d_time / 1e6:.2f} MB/s | "
            f"{c_rss / 1024:.0f} / {d_rss / 1024:.0f} MiB | {len(data) / len(packed):.2f} |"
        )
        print(lines[-1], flush=True)
    return lines


def _median_time(func, *args, **kwargs) -> float:
    """Median wall time of three calls of ``func(*args, **kwargs)``."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        func(*args, **kwargs)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def json_lines_speed(threads: int = 2) -> list[str]:
    """Issue 21's per-log speed: every JSON-lines log through the CLI at -T``threads``, fresh processes."""
    paths = sorted(SHARED_LOGS.glob("json_lines/*"))
    paths.append(SHARED_LOGS / "elastic_examples" / "nginxplus_json_logs")
    cli = [sys.executable, "-m", "nncodec", f"-T{threads}"]
    lines = [
        f"Each JSON-lines log alone, the CLI at -T{threads} in fresh processes (start-up included), "
        "wall clock; and the coding alone (the Python API in this process, median of 3 runs): the CLI's "
        "start-up (interpreter, imports, reading and writing) costs ~0.15-0.2 s, which bounds small files:",
        "",
        "| file | bytes | compress | decompress | peak RSS c / d | coding alone: compress | decompress |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in paths:
        data = path.read_bytes()
        packed, c_time, c_rss = run_measured([*cli, "-c"], data)
        restored, d_time, d_rss = run_measured([*cli, "-d", "-c"], packed)
        assert restored == data, f"round trip failed on {path.name}"
        c_alone = _median_time(nncodec.compress, data, codec="log", threads=threads)
        d_alone = _median_time(nncodec.decompress, packed, threads=threads)
        lines.append(
            f"| {path.relative_to(SHARED_LOGS)} | {len(data):,} | {len(data) / c_time / 1e6:.2f} MB/s | "
            f"{len(data) / d_time / 1e6:.2f} MB/s | {c_rss / 1024:.0f} / {d_rss / 1024:.0f} MiB | "
            f"{len(data) / c_alone / 1e6:.2f} MB/s | {len(data) / d_alone / 1e6:.2f} MB/s |"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--no-speed", action="store_true", help="skip the ~50 MB CLI speed run")
    args = parser.parse_args()
    if not SHARED_LOGS.is_dir():
        sys.exit(f"{SHARED_LOGS} not found: the log benchmark needs ../shared/data/logs")

    rows = []
    for name, data in files():
        started = time.perf_counter()
        packed = nncodec.compress(data, codec="log")
        c_time = time.perf_counter() - started
        assert nncodec.decompress(packed) == data, name
        others = classical(data)
        best = min(others["xz -9e"], others["PPMd (best of o6, o32; 192 MB)"])
        rows.append((name, len(data), len(packed), others, best))
        print(
            f"{name}: nncodec {len(data) / len(packed):.2f} ({c_time:.1f} s), best of xz/PPMd "
            f"{len(data) / best:.2f}",
            flush=True,
        )

    names = list(rows[0][3])
    lines = [
        BEGIN,
        f"Measured {time.strftime('%Y-%m-%d')} by `make bench` (scripts/bench_log.py) on "
        f"{platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}. Compression ratio (original / "
        "compressed, higher is better); every round trip verified. **vs best** = nncodec / the better of "
        "xz -9e and PPMd (target ≥ 1.3 on files of ≥ 1 MB, ≥ 1 vs xz on every loghub2k file).",
        "",
        "| file | bytes | **nncodec log** | " + " | ".join(names) + " | vs best |",
        "|---|---|---|" + "---|" * len(names) + "---|",
    ]
    for name, size, packed, others, best in rows:
        cells = [f"{size / others[n]:.2f}" for n in names]
        lines.append(
            f"| {name} | {size:,} | **{size / packed:.2f}** | "
            + " | ".join(cells)
            + f" | {best / packed:.2f} |"
        )
    if not args.no_speed:
        lines += ["", *speed((1, 2)), "", *json_lines_speed()]
    lines.append(END)
    section = "\n".join(lines)
    write_section(args.out, "Logs", section)
    print(f"wrote the log section of {args.out}")


if __name__ == "__main__":
    main()
