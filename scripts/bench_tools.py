"""`nncodec bench` on a small mixed sample, and batch speed with -T1 vs -T2; writes BENCHMARKS.md's
"All tools" section and docs/bench.png.

    python scripts/bench_tools.py [--out BENCHMARKS.md] [--plot docs/bench.png] [--repeat 3]

The sample (kept small: the text codec codes ~15 KB/s): testdata/ without its text (dickens_head is
in the text model's training data), plus, from ../shared/data when present, 60 KB of the held-out
tails of dickens and enwik8, two loghub logs, McMaster mcm10 (held out) and Set12 01 as PNM, and
the first 512 KB of silesia/ooffice. Images are given as PNM so ratios are against raw pixels.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import write_section  # noqa: E402

from nncodec.cli import benchtool  # noqa: E402
from nncodec.training.text.data import SHARED_FILES, SHARED_TEXT  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
BEGIN, END = "<!-- tools-bench:begin -->", "<!-- tools-bench:end -->"
SPEED_BEGIN, SPEED_END = "<!-- batch-speed:begin -->", "<!-- batch-speed:end -->"
TEXT_BYTES = 60_000


def make_sample(root: Path) -> list[str]:
    """Write the sample files under ``root``; return a description of each."""
    from PIL import Image

    described = []
    for kind in ("logs", "images", "binary"):
        for path in sorted((REPO / "testdata" / kind).iterdir()):
            if path.suffix != ".png":  # the PPM of the same test card is there
                shutil.copy(path, root / path.name)
                described.append(f"testdata/{kind}/{path.name}")
    if not SHARED.is_dir():
        return described
    for name, relative, held_out in SHARED_FILES[:2]:
        data = (SHARED_TEXT / relative).read_bytes()[-held_out:][:TEXT_BYTES]
        (root / f"{name}-heldout.txt").write_bytes(data)
        described.append(f"{relative} (first {TEXT_BYTES // 1000} KB of the held-out tail)")
    for relative in ("logs/loghub2k/Linux_2k.log", "logs/loghub2k/HDFS_2k.log"):
        shutil.copy(SHARED / relative, root / Path(relative).name)
        described.append(relative)
    for relative, suffix in (("images/mcmaster/mcm10.png", ".ppm"), ("images/set12_gray/01.png", ".pgm")):
        with Image.open(SHARED / relative) as image:
            image.save(root / (Path(relative).stem + suffix))
        described.append(f"{relative} (as {suffix[1:].upper()})")
    data = (SHARED / "text/silesia/ooffice").read_bytes()[: 512 << 10]
    (root / "ooffice-512k.bin").write_bytes(data)
    described.append("text/silesia/ooffice (first 512 KB)")
    return described


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def batch_speed(
    sample: Path, work: Path, repeat: int
) -> tuple[dict[int, list[float]], dict[int, list[float]], int, int]:
    """Wall and CPU seconds of `nncodec -r -T1` and `-T2` over the sample (alternating, ``repeat``
    times each); checks the outputs are identical. Returns (wall per T, CPU per T, files, bytes)."""
    times: dict[int, list[float]] = {1: [], 2: []}
    cpu: dict[int, list[float]] = {1: [], 2: []}
    outputs: dict[int, dict[str, bytes]] = {}
    for _ in range(repeat):
        for threads in (1, 2):
            out = work / f"T{threads}"
            shutil.rmtree(out, ignore_errors=True)
            started, cpu_started = time.perf_counter(), _children_cpu()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "nncodec",
                    "-r",
                    "-q",
                    f"-T{threads}",
                    str(sample),
                    "--output-dir",
                    str(out),
                ],
                check=True,
            )
            times[threads].append(time.perf_counter() - started)
            cpu[threads].append(_children_cpu() - cpu_started)
            outputs[threads] = {p.name: p.read_bytes() for p in out.iterdir()}
    if outputs[1] != outputs[2]:
        raise SystemExit("nncodec -T1 and -T2 gave different outputs")
    files = list(sample.iterdir())
    return times, cpu, len(files), sum(p.stat().st_size for p in files)


def cores_available(seconds: float = 3.0) -> float:
    """Cores this process tree gets right now: two busy-loop processes' CPU seconds per second."""
    code = f"import time\nt = time.perf_counter()\nwhile time.perf_counter() - t < {seconds!r}: pass"
    started, cpu_started = time.perf_counter(), _children_cpu()
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2)]
    for proc in procs:
        proc.wait()
    return (_children_cpu() - cpu_started) / (time.perf_counter() - started)


def tools_section(results: list, described: list[str], plot_path: Path) -> str:
    tools = sorted({m.tool for m in results})
    return "\n".join([
        BEGIN,
        f"Measured {time.strftime('%Y-%m-%d')} by `make bench` (scripts/bench_tools.py, which runs what "
        f"`nncodec bench` runs) on {benchtool.describe_machine()}; nncodec `-T1`. Tools found: "
        f"{', '.join(tools)}. Each tool is a fresh process per file (start-up included in its MB/s; the "
        "sample files are small, so start-up weighs heavily for nncodec, which loads a model, and for the "
        "PPMd filter, a Python process); peak RSS is the largest of its processes. Every round trip "
        "verified (images pixel for pixel). Rows in each kind sorted by ratio. The 2 cores are shared with "
        "other sessions, so MB/s are lower bounds (all tools alike: each runs as one process).",
        "",
        "Sample: " + "; ".join(described) + ".",
        "",
        benchtool.markdown_table(results),
        "",
        f"![ratio against compression speed, one point per tool and kind]({plot_path})",
        END,
    ])  # fmt: skip


def speed_section(sample: Path, work: Path, repeat: int) -> str:
    cores_before = cores_available()
    load_before = os.getloadavg()[0]
    times, cpu, files, size = batch_speed(sample, work, repeat)
    load_after = os.getloadavg()[0]
    cores_after = cores_available()
    best = {t: min(v) for t, v in times.items()}

    def listed(values: list[float]) -> str:
        return ", ".join(f"{v:.1f}" for v in values)

    def share(t: int) -> str:
        return ", ".join(f"{c / w:.2f}" for c, w in zip(cpu[t], times[t], strict=True))

    return "\n".join([
        SPEED_BEGIN,
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} by `make bench` (scripts/bench_tools.py; "
        "`--speed-only` repeats just this): `nncodec -r` compressing the sample above "
        f"({files} files, {size:,} bytes), wall clock, {repeat} runs each, alternating.",
        "",
        "| | runs (s) | best (s) | cores used (CPU s / wall s) |",
        "|---|---|---|---|",
        f"| `-T1` | {listed(times[1])} | {best[1]:.1f} | {share(1)} |",
        f"| `-T2` | {listed(times[2])} | {best[2]:.1f} | {share(2)} |",
        "",
        f"Best `-T1` / best `-T2` = **{best[1] / best[2]:.2f}x**; outputs identical (checked). Cores this "
        f"benchmark could get at the time (two busy-loop processes, CPU seconds per second): "
        f"{cores_before:.2f} before, {cores_after:.2f} after; 1-minute load average {load_before:.1f} "
        f"before, {load_after:.1f} after. The 2 cores are shared with other sessions; when they are "
        "busy a process tree gets its share whatever its number of processes, and `-T2` cannot be "
        "faster than `-T1`. On free cores the bound is the file with the most work (the worker "
        "processes take files, most work first, as they finish).",
        SPEED_END,
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "bench.png")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--speed-only", action="store_true", help="only the -T1/-T2 batch speed section")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "sample"
        sample.mkdir()
        described = make_sample(sample)
        if not args.speed_only:
            results = benchtool.bench(benchtool.collect([str(sample)]), benchtool.available_tools(1), print)
            print(benchtool.text_table(results))
            failures = [f for m in results for f in m.failures]
            if failures:
                raise SystemExit(f"round trips failed: {failures}")
            benchtool.plot(results, args.plot)
            try:
                plot_path = args.plot.relative_to(args.out.parent)
            except ValueError:
                plot_path = args.plot
            write_section(
                args.out, "All tools: `nncodec bench`", tools_section(results, described, plot_path)
            )
            print(f"wrote the tools section of {args.out} and {args.plot}")
        section = speed_section(sample, Path(tmp), args.repeat)
    print(section)
    write_section(args.out, "Batch speed: `-T2` against `-T1`", section)
    print(f"wrote the batch speed section of {args.out}")


if __name__ == "__main__":
    main()
