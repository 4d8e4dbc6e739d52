"""Benchmark the image codec against PNG, WebP and JPEG-XL and write BENCHMARKS.md's image section.

    python scripts/bench_image.py [--out BENCHMARKS.md] [--no-e9]

Data: McMaster mcm10-mcm18 from ../shared/data/images (500x500 RGB photos; the model never saw
them: it trains on mcm01-mcm09, see nncodec/training/image/train.py). nncodec runs as the CLI in a
fresh process (start-up included); cwebp and cjxl (Debian webp and libjxl-tools) run if installed.
Bits per subpixel = 8 x bytes / (width x height x 3). Every nncodec round trip is verified (pixels
exact, or within the error bound for --max-error).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench import run_measured, write_section  # noqa: E402

SHARED_IMAGES = REPO.parent / "shared" / "data" / "images"
BEGIN, END = "<!-- image-bench:begin -->", "<!-- image-bench:end -->"
CLI = [sys.executable, "-m", "nncodec"]


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def tool_size(command: list[str], source: Path, suffix: str) -> int | None:
    """Size of ``source`` coded by an external tool, or None when the tool is not installed."""
    if not shutil.which(command[0]):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / ("out" + suffix)
        tail = ["-o", str(out)] if command[0] == "cwebp" else [str(out)]
        subprocess.run([*command, str(source), *tail], check=True, capture_output=True)
        return out.stat().st_size


def nncodec_run(data: bytes, threads: int, max_error: int = 0) -> tuple[int, float, float, int, np.ndarray]:
    """-> (compressed bytes, compress s, decompress s, peak RSS KiB, decoded pixels)."""
    extra = ["--max-error", str(max_error)] if max_error else []
    packed, c_time, c_rss = run_measured([*CLI, f"-T{threads}", "-n", *extra, "-c"], data)
    restored, d_time, d_rss = run_measured([*CLI, f"-T{threads}", "-d", "-c"], packed)
    return len(packed), c_time, d_time, max(c_rss, d_rss), pixels(restored)


def quantize(values: np.ndarray, near: int) -> np.ndarray:
    """uint8 values quantized to multiples of 2N+1 (max error N), for 'JPEG-XL on quantized'."""
    x = values.astype(np.int32)
    step = 2 * near + 1
    q = np.clip(np.round(x / step) * step, 0, 255)
    q = np.where(np.abs(q - x) > near, q - step, q)  # clipping at 255 could exceed N: step down
    return q.astype(np.uint8)


def quantized_png(path: Path, near: int, out: Path) -> None:
    """Pixels quantized to multiples of 2N+1 (max error N) as a PNG."""
    Image.fromarray(quantize(pixels(path.read_bytes()), near), "RGB").save(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--no-e9", action="store_true", help="skip cjxl -e 9 (slow)")
    args = parser.parse_args()
    paths = sorted((SHARED_IMAGES / "mcmaster").glob("mcm1[0-8].png"))
    if not paths:
        sys.exit(f"{SHARED_IMAGES}/mcmaster not found: the image benchmark needs ../shared/data/images")

    tools = {
        "PNG (as shipped)": None,
        "WebP lossless (cwebp -lossless -z 9)": ["cwebp", "-quiet", "-lossless", "-z", "9"],
        "JPEG-XL (cjxl -d 0 -e 7)": ["cjxl", "-d", "0", "-e", "7"],
    }
    if not args.no_e9:
        tools["JPEG-XL (cjxl -d 0 -e 9)"] = ["cjxl", "-d", "0", "-e", "9"]
    subpixels = 0
    ours = {0: 0, 1: 0, 2: 0}
    ours_psnr = {1: [], 2: []}
    others: dict[str, int | None] = dict.fromkeys(tools, 0)
    quantized: dict[int, int | None] = {1: 0, 2: 0}
    times = []
    for path in paths:
        data = path.read_bytes()
        truth = pixels(data)
        subpixels += truth.size
        for near in (0, 1, 2):
            size, c_time, d_time, rss, decoded = nncodec_run(data, threads=2, max_error=near)
            error = int(np.abs(decoded - truth).max())
            assert error <= near, f"{path.name}: max error {error} > {near}"
            ours[near] += size
            if near:
                mse = float(np.mean((decoded - truth).astype(np.float64) ** 2))
                ours_psnr[near].append(10 * np.log10(255**2 / mse) if mse else float("inf"))
            else:
                times.append((c_time, d_time, rss))
        for name, command in tools.items():
            suffix = ".webp" if "webp" in name else ".jxl"
            size = len(data) if command is None else tool_size(command, path, suffix)
            others[name] = None if size is None or others[name] is None else others[name] + size
        with tempfile.TemporaryDirectory() as tmp:
            for near in (1, 2):
                q_path = Path(tmp) / f"q{near}.png"
                quantized_png(path, near, q_path)
                size = tool_size(["cjxl", "-d", "0", "-e", "7"], q_path, ".jxl")
                quantized[near] = None if size is None or quantized[near] is None else quantized[near] + size
        print(f"{path.name}: done", flush=True)

    # decode speed on a 768x512 RGB photo (mcm10-mcm13 tiled 2x2, cropped)
    tiles = [pixels(p.read_bytes()).astype(np.uint8) for p in paths[:4]]
    mosaic = np.concatenate([np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)], axis=0)
    big = io.BytesIO()
    Image.fromarray(mosaic[:512, :768], "RGB").save(big, "PPM")
    speed = {t: nncodec_run(big.getvalue(), threads=t) for t in (1, 2)}
    for t, (_, _, _, _, decoded) in speed.items():
        assert np.array_equal(decoded, mosaic[:512, :768].astype(np.int16)), f"768x512 round trip, -T{t}"

    def bpsp(size: int | None) -> str:
        return "n/a" if size is None else f"{8 * size / subpixels:.3f}"

    names = list(tools)
    lines = [
        BEGIN,
        f"Measured {time.strftime('%Y-%m-%d')} by `make bench` (scripts/bench_image.py) on "
        f"{platform.machine()}, "
        f"{os.cpu_count()} cores; McMaster mcm10-mcm18 (9 photos, 500x500 RGB, never trained on). "
        "Bits per subpixel (lower is better); every nncodec round trip verified.",
        "",
        "Lossless:",
        "",
        "| set | **nncodec image** | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
        f"| McMaster mcm10-18 | **{bpsp(ours[0])}** | " + " | ".join(bpsp(others[n]) for n in names) + " |",
        "",
        "Near-lossless (every subpixel within N of the original; JPEG-XL codes pixels quantized to "
        "multiples of 2N+1, losslessly, cjxl -e 7):",
        "",
        "| N | **nncodec --max-error N** | nncodec mean PSNR | JPEG-XL on quantized pixels |",
        "|---|---|---|---|",
    ]
    for near in (1, 2):
        psnr = np.mean(ours_psnr[near])
        lines.append(f"| {near} | **{bpsp(ours[near])}** | {psnr:.2f} dB | {bpsp(quantized[near])} |")
    c_mean = np.mean([t[0] for t in times])
    d_mean = np.mean([t[1] for t in times])
    lines += [
        "",
        "Speed (fresh CLI process, start-up included, peak RSS of the process):",
        "",
        "| image | threads | compress s | decompress s | peak RSS |",
        "|---|---|---|---|---|",
        f"| McMaster 500x500, mean of 9 | 2 | {c_mean:.2f} | {d_mean:.2f} | "
        f"{max(t[2] for t in times) / 1024:.0f} MiB |",
    ]
    for t, (_, c_time, d_time, rss, _) in speed.items():
        lines.append(f"| 768x512 RGB (PPM) | {t} | {c_time:.2f} | {d_time:.2f} | {rss / 1024:.0f} MiB |")
    lines.append(END)
    section = "\n".join(lines)
    write_section(args.out, "Images", section)
    print(section)


if __name__ == "__main__":
    main()
