"""Benchmark nncodec's text codec against classical compressors and write BENCHMARKS.md's text section.

    python scripts/bench.py [--bytes 300000] [--out BENCHMARKS.md]

Data: the validation tails of the text model (never trained on, see nncodec/training/text/data.py),
the first ``--bytes`` of each, read from ../shared/data/text. nncodec runs as the CLI in a fresh
process (`-T1` and `-T2`, codec text), so its times include start-up and its peak RSS is that
process's; the two thread counts must give identical bytes. The
classical coders run in-process through their Python bindings at the settings named in the table.
Every round trip is verified.
"""

from __future__ import annotations

import argparse
import gzip
import lzma
import os
import platform
import re
import sys
import time
from pathlib import Path

import pyppmd
import zstandard

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nncodec.cli.benchtool import _run as run_tool  # noqa: E402
from nncodec.training.text.data import SHARED_FILES, SHARED_TEXT  # noqa: E402

BEGIN, END = "<!-- text-bench:begin -->", "<!-- text-bench:end -->"
THREADS = (1, 2)


def run_measured(args: list[str], data: bytes) -> tuple[bytes, float, int]:
    """Run a command with ``data`` on stdin; return (stdout, wall seconds, peak RSS in KiB): the
    ``nncodec bench`` runner, whose peak RSS is the command's own (GNU time; see its docstring)."""
    return run_tool(args, data)


def write_section(out: Path, heading: str, section: str) -> None:
    """Put ``section`` (which starts and ends with its begin/end markers) into ``out``: in place of
    the text between those markers, or at the end under ``## heading`` if they are not there yet."""
    begin, end = section.split("\n", 1)[0], section.rsplit("\n", 1)[-1]
    text = out.read_text() if out.exists() else "# Benchmarks\n"
    if begin in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + f"\n\n## {heading}\n\n" + section + "\n"
    out.write_text(text)


def classical(data: bytes) -> dict[str, tuple[int, float, float]]:
    """name -> (compressed bytes, compress s, decompress s), round trips verified."""
    zstd_params = zstandard.ZstdCompressionParameters.from_level(19, enable_ldm=True, window_log=27)
    coders = {
        "gzip -9": (lambda d: gzip.compress(d, 9), gzip.decompress),
        "xz -9e": (lambda d: lzma.compress(d, preset=9 | lzma.PRESET_EXTREME), lzma.decompress),
        "zstd -19 --long": (
            lambda d: zstandard.ZstdCompressor(compression_params=zstd_params).compress(d),
            lambda c: zstandard.ZstdDecompressor(max_window_size=1 << 27).decompress(c),
        ),
        "PPMd o16 (7z var. H)": (
            lambda d: (lambda e: e.encode(d) + e.flush())(pyppmd.Ppmd7Encoder(16, 256 << 20)),
            lambda c: pyppmd.Ppmd7Decoder(16, 256 << 20).decode(c, len(data)),
        ),
    }
    results = {}
    for name, (compress, decompress) in coders.items():
        t0 = time.perf_counter()
        packed = compress(data)
        t1 = time.perf_counter()
        assert decompress(packed) == data, name
        results[name] = (len(packed), t1 - t0, time.perf_counter() - t1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bytes", type=int, default=300_000)
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args()
    if not SHARED_TEXT.is_dir():
        sys.exit(f"{SHARED_TEXT} not found: the text benchmark needs ../shared/data/text")

    cli = [sys.executable, "-m", "nncodec"]
    rows = []
    for name, relative, held_out in SHARED_FILES:
        data = (SHARED_TEXT / relative).read_bytes()[-held_out:][: args.bytes]
        c_time, d_time, rss = {}, {}, 0
        for threads in THREADS:
            flag = f"-T{threads}"
            out, c_time[threads], c_rss = run_measured([*cli, flag, "--codec", "text", "-c"], data)
            restored, d_time[threads], d_rss = run_measured([*cli, flag, "-d", "-c"], out)
            assert restored == data, f"nncodec round trip failed on {name} with {flag}"
            if threads == THREADS[0]:
                packed = out
            assert out == packed, f"nncodec output depends on the thread count on {name}"
            rss = max(rss, c_rss, d_rss)
        others = classical(data)
        rows.append((name, relative, len(data), len(packed), c_time, d_time, rss, others))
        size = len(data)
        speeds = ", ".join(
            f"-T{t} {size / c_time[t] / 1e3:.1f} / {size / d_time[t] / 1e3:.1f} KB/s" for t in THREADS
        )
        print(f"{name}: nncodec {8 * len(packed) / len(data):.3f} bpb, {speeds}", flush=True)

    names = list(rows[0][7])
    lines = [
        BEGIN,
        f"Measured {time.strftime('%Y-%m-%d')} by `make bench` (scripts/bench.py) on {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; first {args.bytes:,} bytes of each "
        "validation tail (never trained on). Bits per byte (lower is better); every round trip verified.",
        "",
        "| file (held-out part) | bytes | **nncodec text** | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for name, relative, size, packed, *_, others in rows:
        cells = [f"{8 * others[n][0] / size:.3f}" for n in names]
        lines.append(
            f"| {name} (`{relative}`, tail) | {size:,} | **{8 * packed / size:.3f}** | "
            + " | ".join(cells)
            + " |"
        )
    lines += [
        "",
        "Speed (KB/s = 1000 bytes of original per second, wall clock; nncodec as a fresh CLI process with "
        "`-T1` and `-T2` (identical output), start-up included; peak RSS of those processes; the classical "
        "coders single-threaded, in-process):",
        "",
        "| file | "
        + " | ".join(f"nncodec -T{t} compress / decompress" for t in THREADS)
        + " | nncodec peak RSS | "
        + " | ".join(f"{n} c / d" for n in names)
        + " |",
        "|---|" + "---|" * len(THREADS) + "---|" + "---|" * len(names),
    ]
    for name, _, size, _, c_time, d_time, rss, others in rows:
        ours = [f"{size / c_time[t] / 1e3:.1f} / {size / d_time[t] / 1e3:.1f}" for t in THREADS]
        cells = [f"{size / others[n][1] / 1e3:,.0f} / {size / others[n][2] / 1e3:,.0f}" for n in names]
        lines.append(
            f"| {name} | " + " | ".join(ours) + f" | {rss / 1024:.0f} MiB | " + " | ".join(cells) + " |"
        )
    lines.append(END)
    write_section(args.out, "Text", "\n".join(lines))
    print(f"wrote the text section of {args.out}")


if __name__ == "__main__":
    main()
