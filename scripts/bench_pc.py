"""Benchmark the image-pc codec (probabilistic circuits) and write BENCHMARKS.md's image-pc section.

    python scripts/bench_pc.py [--out BENCHMARKS.md] [--quick]

* MNIST: the last 5,000 test digits (the model trained on the first 5,000) as an idx file;
  Fashion-MNIST: its 10k test set (the model trained on the 60k train set; Debian package
  dataset-fashion-mnist). Bits per dimension (8 x bytes / pixels) of nncodec (auto: idx sets go to
  image-pc) beside xz -9e on the same idx bytes and WebP lossless / JPEG-XL e7 on one mosaic PNG of
  the same digits (100 per row), all measured in this run.
* McMaster mcm10-mcm18 (held out from every image model): bits per subpixel of
  ``--image-model pc`` beside the next-pixel codec and JPEG-XL e7; decode speed on the 768x512
  photo of scripts/bench_image.py (mcm10-mcm13 tiled), -T1 and -T2, both codecs.
Every nncodec round trip is verified. --quick: 1,000 digits per set, 3 photos (a smoke run, not
for BENCHMARKS.md numbers).
"""

from __future__ import annotations

import argparse
import gzip
import io
import lzma
import os
import platform
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
from bench_image import tool_size  # noqa: E402

from nncodec.codecs.imagepc import RGB_MODEL, ImagePCCodec  # noqa: E402
from nncodec.core.modelstore import find_model  # noqa: E402

SHARED_IMAGES = REPO.parent / "shared" / "data" / "images"
FASHION = Path("/usr/share/datasets/fashion-mnist")
BEGIN, END = "<!-- pc-bench:begin -->", "<!-- pc-bench:end -->"
CLI = [sys.executable, "-m", "nncodec"]
WEBP = ["cwebp", "-quiet", "-lossless", "-z", "9"]
JXL7 = ["cjxl", "-d", "0", "-e", "7"]


def idx_images(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    n, h, w = (int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(3))
    return np.frombuffer(raw, np.uint8, n * h * w, 16).reshape(n, h, w)


def idx_bytes(images: np.ndarray) -> bytes:
    n, h, w = images.shape
    return b"\x00\x00\x08\x03" + b"".join(v.to_bytes(4, "big") for v in (n, h, w)) + images.tobytes()


def nncodec_run(data: bytes, threads: int, extra: list[str]) -> tuple[bytes, float, float, bytes]:
    packed, c_time, _ = run_measured([*CLI, f"-T{threads}", "-n", *extra, "-c"], data)
    restored, d_time, _ = run_measured([*CLI, f"-T{threads}", "-d", "-c"], packed)
    return packed, c_time, d_time, restored


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def digit_set(name: str, images: np.ndarray) -> list[str]:
    dims = images.size
    data = idx_bytes(images)
    packed, c_time, d_time, restored = nncodec_run(data, 2, [])
    assert restored == data, f"{name}: round trip"
    assert packed[6] == 6, f"{name}: not coded by image-pc"
    xz = len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
    per_row = 100
    rows = -(-len(images) // per_row)
    canvas = np.zeros((rows * 28, per_row * 28), np.uint8)
    for i, im in enumerate(images):
        canvas[(i // per_row) * 28 : (i // per_row + 1) * 28, (i % per_row) * 28 : (i % per_row + 1) * 28] = (
            im
        )
    with tempfile.TemporaryDirectory() as tmp:
        mosaic = Path(tmp) / "mosaic.png"
        Image.fromarray(canvas, "L").save(mosaic)
        webp = tool_size(WEBP, mosaic, ".webp")
        jxl = tool_size(JXL7, mosaic, ".jxl")

    def bpd(size: int | None) -> str:
        return "n/a" if size is None else f"{8 * size / dims:.3f}"

    print(f"{name}: pc {bpd(len(packed))} xz {bpd(xz)} webp {bpd(webp)} jxl {bpd(jxl)}", flush=True)
    return [f"| {name} | {len(images):,} | **{bpd(len(packed))}** | {bpd(xz)} | {bpd(webp)} | {bpd(jxl)} | "
            f"{c_time:.1f} / {d_time:.1f} |"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    count = 1000 if args.quick else None

    lines = [
        BEGIN,
        f"Measured {time.strftime('%Y-%m-%d')} by `make bench` (scripts/bench_pc.py) "
        f"on {platform.machine()}, "
        f"{os.cpu_count()} cores. Every nncodec round trip verified; nothing here was trained on.",
        "",
        "Digit sets (bits per dimension, lower is better; nncodec times: fresh CLI process, -T2):",
        "",
        "| set | images | **nncodec image-pc** | xz -9e (idx) | WebP lossless (mosaic) | JPEG-XL e7 (mosaic) "
        "| compress / decompress s |",
        "|---|---|---|---|---|---|---|",
    ]
    mnist = idx_images(SHARED_IMAGES / "mnist" / "t10k-images-idx3-ubyte.gz")[5000:]
    lines += digit_set("MNIST test 5000-9999", mnist[:count])
    if (FASHION / "t10k-images-idx3-ubyte.gz").exists():
        lines += digit_set("Fashion-MNIST test", idx_images(FASHION / "t10k-images-idx3-ubyte.gz")[:count])

    paths = sorted((SHARED_IMAGES / "mcmaster").glob("mcm1[0-8].png"))[: 3 if args.quick else None]
    sizes = {"pc": 0, "nextpixel": 0, "jxl": 0, "circuit": 0, "png": 0}
    subpixels = 0
    for path in paths:
        data = path.read_bytes()
        truth = pixels(data)
        subpixels += truth.size
        for model in ("pc", "nextpixel"):
            packed, _, _, restored = nncodec_run(data, 2, ["--image-model", model])
            assert np.array_equal(pixels(restored), truth), f"{path.name} {model}"
            sizes[model] += len(packed)
        sizes["jxl"] += tool_size(JXL7, path, ".jxl") or 0
        sizes["circuit"] += len(ImagePCCodec(find_model(RGB_MODEL)).encode_block(data))
        sizes["png"] += len(data)
        print(f"{path.name}: done", flush=True)
    tiles = [pixels(p.read_bytes()) for p in sorted((SHARED_IMAGES / "mcmaster").glob("mcm1[0-3].png"))]
    mosaic = np.concatenate([np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)], axis=0)
    big = io.BytesIO()
    Image.fromarray(mosaic[:512, :768], "RGB").save(big, "PPM")
    speed = {}
    for model in ("pc", "nextpixel"):
        for t in (1, 2):
            packed, c_time, d_time, restored = nncodec_run(big.getvalue(), t, ["--image-model", model])
            assert restored == big.getvalue(), f"768x512 {model} -T{t}"
            speed[model, t] = (len(packed), c_time, d_time)
    bpsp = {k: f"{8 * v / subpixels:.3f}" for k, v in sizes.items()}
    lines += [
        "",
        f"Photos (McMaster mcm10-mcm18, {len(paths)} x 500x500 RGB; bits per subpixel):",
        "",
        "| set | **nncodec --image-model pc** | nncodec next-pixel (image-v2) | JPEG-XL e7 |",
        "|---|---|---|---|",
        f"| McMaster mcm10-18 | **{bpsp['pc']}** | {bpsp['nextpixel']} | {bpsp['jxl']} |",
        "",
        f"The circuit's payloads alone: {bpsp['circuit']} bits/subpixel (the PNGs as shipped: "
        f"{bpsp['png']}); nncodec keeps the smallest of circuit, zstd and the input itself per file.",
        "",
        "Speed on a 768x512 RGB photo (PPM, mcm10-mcm13 tiled; fresh CLI process, start-up included):",
        "",
        "| codec | threads | bpsp | compress s | decompress s |",
        "|---|---|---|---|---|",
    ]
    for (model, t), (size, c_time, d_time) in speed.items():
        lines.append(f"| {model} | {t} | {8 * size / (768 * 512 * 3):.3f} | {c_time:.2f} | {d_time:.2f} |")
    ratio = speed["nextpixel", 1][2] / speed["pc", 1][2]
    lines += ["", f"image-pc decodes the 768x512 photo {ratio:.1f}x faster than next-pixel at -T1.", END]
    section = "\n".join(lines)
    if args.quick:
        print(section)
        return
    write_section(args.out, "Image PC codec", section)
    print(section)


if __name__ == "__main__":
    main()
