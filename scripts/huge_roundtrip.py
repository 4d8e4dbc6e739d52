"""A huge stream through ``nncodec -c | nncodec -d -c``, compared with the original on the fly.

    python scripts/huge_roundtrip.py 4G [--threads N] [--codec auto]

The input is generated on the fly (logs and prose from testdata/, each pass preceded by a numbered
line, so nothing is stored on disk) and written into the compressor; the decompressor's output is
compared byte for byte with a second run of the same generator. Prints one JSON line: size, time,
speed, and the peak RSS of each nncodec process (from wait4, i.e. the kernel's own high-water mark).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIECES = (
    "testdata/logs/synthetic_app.log",
    "testdata/logs/apache_access.log",
    "testdata/text/dickens_head.txt",
)


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper()
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def generate(size: int) -> Iterator[bytes]:
    """``size`` bytes of logs and text: the sample files over and over, each pass numbered."""
    body = b"".join((REPO / piece).read_bytes() for piece in PIECES)
    produced, number = 0, 0
    while produced < size:
        chunk = b"=== pass %d ===\n" % number + body
        chunk = chunk[: size - produced]
        produced += len(chunk)
        number += 1
        yield chunk


def feed(size: int, sink) -> None:
    try:
        for chunk in generate(size):
            sink.write(chunk)
    except BrokenPipeError:
        pass
    finally:
        sink.close()


def compare(size: int, source) -> tuple[int, str | None]:
    """Read ``source`` to its end, comparing it with the generator; (bytes read, first problem)."""
    seen = 0
    problem = None
    for expected in generate(size):
        got = source.read(len(expected))
        if got != expected and problem is None:
            problem = f"differs within bytes {seen}..{seen + len(expected)}"
        seen += len(got)
        if len(got) < len(expected):
            return seen, problem or f"output ends early at byte {seen}"
    if source.read(1):
        problem = problem or "output is longer than the input"
    return seen, problem


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("size", type=parse_size)
    parser.add_argument("--threads", default="1")
    parser.add_argument("--codec", default="auto")
    args = parser.parse_args()
    nncodec = [sys.executable, "-m", "nncodec", "-T", args.threads]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    compressor = subprocess.Popen(
        [*nncodec, "-c", "--codec", args.codec], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    decompressor = subprocess.Popen(
        [*nncodec, "-d", "-c"], stdin=compressor.stdout, stdout=subprocess.PIPE, env=env
    )
    compressor.stdout.close()  # the decompressor holds it now
    writer = threading.Thread(target=feed, args=(args.size, compressor.stdin))
    writer.start()
    seen, problem = compare(args.size, decompressor.stdout)
    writer.join()
    results = {}
    for name, process in (("compress", compressor), ("decompress", decompressor)):
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        results[name] = {"exit": process.returncode, "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}
    elapsed = time.perf_counter() - started
    report = {
        "bytes": args.size,
        "identical": problem is None and seen == args.size,
        "problem": problem,
        "seconds": round(elapsed, 1),
        "mb_per_s": round(args.size / 1e6 / elapsed, 2),
        "threads": args.threads,
        "codec": args.codec,
        **results,
    }
    print(json.dumps(report))
    ok = report["identical"] and all(r["exit"] == 0 for r in results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
