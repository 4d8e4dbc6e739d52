"""Measure the compression levels and write BENCHMARKS.md's "Levels" section.

    python scripts/bench_levels.py [--out BENCHMARKS.md]

For each kind of input, a small named sample (testdata/, and ../shared/data where present) is coded
in-process at levels 1, 2, 3, 4, 5, 6 (the default) and 19 with -T1; 7-9 are 6 and 10-18 are 19 by
construction (nncodec/core/levels.py). Reported: ratio (original / compressed) and MB/s both ways
(1e6 bytes of original per second, wall clock, one core; models already loaded, so start-up is not
in it). Every round trip is verified, and a level that gives larger output than a lower one is
flagged in the table.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench import write_section  # noqa: E402

import nncodec  # noqa: E402

BEGIN, END = "<!-- levels-bench:begin -->", "<!-- levels-bench:end -->"
SHARED = REPO.parent / "shared" / "data"
LEVELS = (1, 2, 3, 4, 5, 6, 19)
SAMPLES = {
    "text": ["testdata/text/dickens_head.txt", "testdata/README.md"],
    "logs": ["testdata/logs/apache_access.log", "testdata/logs/synthetic_app.log"],
    "images": ["testdata/images/testcard_crop.ppm", "../shared/data/images/set12_gray/01.png"],
    "binary": ["testdata/binary/inventory.sqlite"],
}


def measure(paths: list[Path], level: int) -> tuple[int, int, float, float]:
    original = compressed = 0
    seconds_c = seconds_d = 0.0
    for path in paths:
        data = path.read_bytes()
        started = time.perf_counter()
        packed = nncodec.compress(data, level=level)
        seconds_c += time.perf_counter() - started
        started = time.perf_counter()
        assert nncodec.decompress(packed) == data, f"{path} at level {level} does not round-trip"
        seconds_d += time.perf_counter() - started
        original += len(data)
        compressed += len(packed)
    return original, compressed, seconds_c, seconds_d


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args()
    for level in (6,):  # load the models before timing anything
        measure([REPO / "testdata/README.md"], level)
    rows = []
    for kind, names in SAMPLES.items():
        paths = [REPO / n for n in names if (REPO / n).exists()]
        previous = None
        for level in LEVELS:
            original, compressed, sc, sd = measure(paths, level)
            flag = " (larger than the level before!)" if previous is not None and compressed > previous else ""
            previous = compressed
            rows.append(f"| {kind} | {level}{' (default)' if level == 6 else ''} | {original / compressed:.3f}{flag} | "
                        f"{original / sc / 1e6:.3f} | {original / sd / 1e6:.3f} |")  # fmt: skip
            print(rows[-1], flush=True)
    files = "; ".join(f"{kind}: {', '.join(Path(n).name for n in names if (REPO / n).exists())}"
                      for kind, names in SAMPLES.items())  # fmt: skip
    section = "\n".join([
        BEGIN,
        f"Measured {time.strftime('%Y-%m-%d')} by `make bench` (scripts/bench_levels.py) on {platform.machine()}, "
        f"Python {platform.python_version()}, in-process, -T1, models loaded beforehand. Samples ({files}). "
        "Levels 7-9 are level 6 and 10-18 are level 19 by construction (nncodec/core/levels.py). MB/s = 1e6 "
        "bytes of original per second; the 2 cores are shared, so speeds are lower bounds.",
        "",
        "| kind | level | ratio | compress MB/s | decompress MB/s |",
        "|---|---|---|---|---|",
        *rows,
        END,
    ])  # fmt: skip
    write_section(args.out, "Levels", section)


if __name__ == "__main__":
    main()
