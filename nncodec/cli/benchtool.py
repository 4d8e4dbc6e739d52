"""``nncodec bench PATH...``: nncodec against the classical compressors found on this machine.

Every tool runs as a fresh process per file (stdin/stdout, or temporary files for the image tools),
so its wall time includes start-up and its peak RSS is its own (read by GNU time where installed,
see ``_run``). Every round trip is verified: byte for byte, or, where a tool gives back a
different image file (a rebuilt PNG, a PNM from dwebp), pixel for pixel. Files are grouped by the
kind nncodec sniffs (text, log, image, binary); the image tools run on images only. Results: a
table (ratio, bits per byte, MB/s both ways, peak RSS), optionally a PNG plot (ratio against
compression speed, one point per tool and kind; needs matplotlib, the ``bench`` extra) and a
Markdown section for BENCHMARKS.md.
"""

from __future__ import annotations

import io
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from nncodec.core.detect import SNIFF_SIZE, sniff

PPMD_ORDER, PPMD_MEMORY = 16, 256 << 20
KIND_ORDER = ("text", "log", "image", "binary")


@dataclass(frozen=True)
class Tool:
    name: str
    compress: list[str]
    decompress: list[str]
    kinds: tuple[str, ...] = KIND_ORDER
    #: image tools work on files: "{in}" and "{out}" in the commands are replaced by paths
    files: tuple[str, str] = ("", "")


@dataclass
class Measurement:
    tool: str
    kind: str
    original: int = 0
    compressed: int = 0
    compress_s: float = 0.0
    decompress_s: float = 0.0
    rss_kib: int = 0
    files: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.original / self.compressed if self.compressed else 0.0

    @property
    def bpb(self) -> float:
        return 8 * self.compressed / self.original if self.original else 0.0

    def speed(self, seconds: float) -> float:
        return self.original / seconds / 1e6 if seconds else 0.0


def available_tools(threads: int = 1) -> list[Tool]:
    """nncodec and whichever classical tools are installed (PPMd via nncodec's compiled PPMd7, and
    brotli via its Python module when the command is missing, as filter processes)."""
    python = [sys.executable, "-m"]
    workers = f"-T{threads}"
    tools = [Tool("nncodec", [*python, "nncodec", workers, "-c"], [*python, "nncodec", workers, "-dc"])]
    if shutil.which("gzip"):
        tools.append(Tool("gzip -9", ["gzip", "-9", "-c"], ["gzip", "-dc"]))
    if shutil.which("xz"):
        tools.append(Tool("xz -9e", ["xz", "-9e", "-T1", "-c"], ["xz", "-dc"]))
    if shutil.which("zstd"):
        tools.append(
            Tool(
                "zstd -19 --long",
                ["zstd", "-q", "-19", "--long=27", "-c"],
                ["zstd", "-q", "-dc", "--long=27"],
            )
        )
    seven = shutil.which("7z") or shutil.which("7za") or shutil.which("7zz")
    if seven:
        tools.append(
            Tool("7z PPMd", [seven, "a", "-bd", "-m0=PPMd", "-mx=9", "{out}", "{in}"],
                 [seven, "e", "-bd", "-so", "{in}"], files=(".7z", ""))
        )  # fmt: skip
    tools.append(
        Tool(f"PPMd o{PPMD_ORDER}", [*python, "nncodec.cli.benchtool", "ppmd-compress"],
             [*python, "nncodec.cli.benchtool", "ppmd-decompress"])
    )  # fmt: skip
    if shutil.which("brotli"):
        tools.append(Tool("brotli -q 11", ["brotli", "-q", "11", "-w", "24", "-c"], ["brotli", "-dc"]))
    else:
        try:
            import brotli  # noqa: F401  (the `bench` extra installs it)
        except ImportError:
            pass
        else:
            tools.append(
                Tool("brotli -q 11", [*python, "nncodec.cli.benchtool", "brotli-compress"],
                     [*python, "nncodec.cli.benchtool", "brotli-decompress"])
            )  # fmt: skip
    images = ("image",)
    if shutil.which("cwebp") and shutil.which("dwebp"):
        tools.append(
            Tool("cwebp -lossless -z 9", ["cwebp", "-quiet", "-lossless", "-z", "9", "{in}", "-o", "{out}"],
                 ["dwebp", "-quiet", "{in}", "-ppm", "-o", "{out}"], images, (".webp", ".ppm"))
        )  # fmt: skip
    if shutil.which("cjxl") and shutil.which("djxl"):
        tools.append(
            Tool("cjxl -d 0 -e 7", ["cjxl", "--quiet", "-d", "0", "-e", "7", "{in}", "{out}"],
                 ["djxl", "--quiet", "{in}", "{out}"], images, (".jxl", ".png"))
        )  # fmt: skip
    return tools


GNU_TIME = Path("/usr/bin/time")


def _run(args: list[str], stdin: bytes | None) -> tuple[bytes, float, int]:
    """Run ``args`` (stdin from ``stdin``); return (stdout, wall seconds, peak RSS KiB).

    The peak RSS is read by GNU time where it is installed, which starts the command itself: Linux
    counts in a child's ``ru_maxrss`` the memory of the process it was forked from (taken at its
    exec), so ``wait4`` on a child of a large process (a benchmark holding its inputs) reports that
    process's size for every small tool. Without GNU time, ``wait4``'s value (an upper bound)."""
    with (
        tempfile.TemporaryFile() as src,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile() as rss,
    ):
        if stdin is not None:
            src.write(stdin)
            src.seek(0)
        timed = GNU_TIME.is_file()
        command = [str(GNU_TIME), "-q", "-f", "%M", "-o", rss.name, *args] if timed else args
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdin=src, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise RuntimeError(err.read().decode(errors="replace").strip()[-300:] or f"exit {status}")
        out.seek(0)
        peak = usage.ru_maxrss
        if timed:
            reported = Path(rss.name).read_text().split()
            peak = int(reported[-1]) if reported and reported[-1].isdigit() else peak
        return out.read(), elapsed, peak


def _pixels(data: bytes) -> tuple[str, tuple[int, int], bytes] | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.mode, image.size, image.tobytes()
    except Exception:  # not an image PIL reads
        return None


def _same(original: bytes, restored: bytes, kind: str) -> bool:
    if original == restored:
        return True
    if kind != "image":
        return False
    a, b = _pixels(original), _pixels(restored)
    if a is None or b is None:
        return False
    if a[0] != b[0] and {a[0], b[0]} <= {"L", "RGB"}:  # dwebp writes gray images as RGB
        from PIL import Image

        a = ("RGB", a[1], Image.frombytes(a[0], a[1], a[2]).convert("RGB").tobytes())
        b = ("RGB", b[1], Image.frombytes(b[0], b[1], b[2]).convert("RGB").tobytes())
    return a == b


def _measure_file(tool: Tool, path: Path, data: bytes, kind: str) -> tuple[int, float, float, int]:
    """(compressed size, compress s, decompress s, peak RSS KiB) of one verified round trip."""
    if not tool.files[0] and not tool.files[1]:
        packed, c_time, c_rss = _run(tool.compress, data)
        restored, d_time, d_rss = _run(tool.decompress, packed)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            packed_path = Path(tmp) / ("packed" + (tool.files[0] or ".bin"))
            restored_path = Path(tmp) / ("restored" + (tool.files[1] or path.suffix))
            fill = {"{in}": str(path), "{out}": str(packed_path)}
            _, c_time, c_rss = _run([fill.get(a, a) for a in tool.compress], None)
            packed = packed_path.read_bytes()
            fill = {"{in}": str(packed_path), "{out}": str(restored_path)}
            out, d_time, d_rss = _run([fill.get(a, a) for a in tool.decompress], None)
            restored = restored_path.read_bytes() if restored_path.exists() else out
    if not _same(data, restored, kind):
        raise RuntimeError("round trip gave other data")
    return len(packed), c_time, d_time, max(c_rss, d_rss)


def collect(paths: Iterable[str]) -> list[Path]:
    """The regular files named, and those under named directories (sorted; symlinks skipped)."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(name)
    return found


def bench(
    files: list[Path], tools: list[Tool], log: Callable[[str], None] = lambda _: None
) -> list[Measurement]:
    """Measure every tool on every file it applies to; one Measurement per (tool, kind) and per
    tool over all kinds ("all", for tools that ran on every file)."""
    results: dict[tuple[str, str], Measurement] = {}
    for path in files:
        data = path.read_bytes()
        kind = sniff(data[:SNIFF_SIZE])
        for tool in tools:
            if kind not in tool.kinds or not data:
                continue
            for group in (kind, "all") if tool.kinds == KIND_ORDER else (kind,):
                results.setdefault((tool.name, group), Measurement(tool.name, group))
            try:
                size, c_time, d_time, rss = _measure_file(tool, path, data, kind)
            except (RuntimeError, OSError) as exc:
                for group in (kind, "all"):
                    if (tool.name, group) in results:
                        results[(tool.name, group)].failures.append(f"{path.name}: {exc}")
                log(f"{tool.name}: {path}: FAILED ({exc})")
                continue
            log(f"{tool.name:<22} {kind:<6} {path.name:<28} {len(data):>10,} -> {size:>10,} "
                f"({c_time:.2f} s / {d_time:.2f} s)")  # fmt: skip
            for group in (kind, "all") if tool.kinds == KIND_ORDER else (kind,):
                m = results[(tool.name, group)]
                m.original += len(data)
                m.compressed += size
                m.compress_s += c_time
                m.decompress_s += d_time
                m.rss_kib = max(m.rss_kib, rss)
                m.files += 1
    groups = [*KIND_ORDER, "all"]
    return sorted(results.values(), key=lambda m: (groups.index(m.kind), -m.ratio))


HEADER = ("kind", "tool", "files", "original", "compressed", "ratio", "bpb", "comp. MB/s", "decomp. MB/s",
          "peak RSS MiB")  # fmt: skip


def rows(results: list[Measurement]) -> list[tuple[str, ...]]:
    out = []
    for m in results:
        if not m.files:
            continue
        out.append((
            m.kind, m.tool + (f" ({len(m.failures)} failed)" if m.failures else ""), str(m.files),
            f"{m.original:,}", f"{m.compressed:,}", f"{m.ratio:.3f}", f"{m.bpb:.3f}",
            f"{m.speed(m.compress_s):.3f}", f"{m.speed(m.decompress_s):.3f}", f"{m.rss_kib / 1024:.0f}",
        ))  # fmt: skip
    return out


def text_table(results: list[Measurement]) -> str:
    table = [HEADER, *rows(results)]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    lines = []
    for row in table:
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def markdown_table(results: list[Measurement]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows(results):
        cells = list(row)
        if cells[1].startswith("nncodec"):
            cells[1], cells[5] = f"**{cells[1]}**", f"**{cells[5]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: list[Measurement], out: Path) -> None:
    """Ratio against compression speed, one point per tool, one panel per kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in (*KIND_ORDER, "all") if any(m.kind == k and m.files for m in results)]
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.0 * len(kinds), 3.0), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for m in (m for m in results if m.kind == kind and m.files):
            ours = m.tool == "nncodec"
            x = m.speed(m.compress_s)
            ax.scatter([x], [m.ratio], s=30 if ours else 18, c="tab:red" if ours else "tab:blue", zorder=3)
            ax.annotate(
                m.tool.split()[0], (x, m.ratio), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
        ax.set_xscale("log")
        ax.set_title(kind, fontsize=9)
        ax.set_xlabel("compress MB/s (log)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("ratio (original / compressed)", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=72)
    plt.close(fig)


def describe_machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


# ---------------------------------------------------------------------------------------------
# PPMd as a filter process (7-Zip's PPMd var. H, nncodec's compiled copy): 8-byte size, then the stream;
# brotli -q 11 with a 16 MiB window (the brotli command's -w 24) through its Python module


def _ppmd_filter(mode: str) -> None:
    data = sys.stdin.buffer.read()
    if mode.startswith("brotli"):
        import brotli

        compress = mode == "brotli-compress"
        out = brotli.compress(data, quality=11, lgwin=24) if compress else brotli.decompress(data)
    else:  # the LZMA SDK's PPMd7 compiled with nncodec (pyppmd mis-decodes some inputs)
        from nncodec.entropy._ppmd import decode, encode

        if mode == "ppmd-compress":
            out = len(data).to_bytes(8, "little") + encode(data, PPMD_ORDER, PPMD_MEMORY)
        else:
            out = decode(data[8:], PPMD_ORDER, PPMD_MEMORY, int.from_bytes(data[:8], "little"))
    sys.stdout.buffer.write(out)


if __name__ == "__main__":
    _ppmd_filter(sys.argv[1])
