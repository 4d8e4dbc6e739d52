"""Image codec on photo and screen sources no image model was trained on, per source, beside PNG, WebP
and JPEG-XL: issue 20's baseline and acceptance table (BENCHMARKS.md "Image: sources never trained on").

    python scripts/bench_image_sources.py [--out BENCHMARKS.md] [--sources NAME ...] [--no-write]

Data: ../shared/data/images/more (README and MANIFEST.tsv there give each file's origin). The sources measured
are held out of every image model's training and tuning (models/image-v3.json: its ``held_out`` list; image-v2
trained on cbsd68, mcmaster mcm01-09, set12_gray and screen_synthetic only): USC-SIPI colour scans and the
gb82 CC0 photo set (photos), charls' screen captures (screen content). nncodec gets the pixels as PPM on stdin
(so the PNG container's own compression does not count) and runs as the CLI in a fresh process at -T2, round
trip checked pixel for pixel; cjxl and cwebp (Debian libjxl-tools and webp) code the PNG file, when installed.
Near-lossless (photo sources): ``nncodec --max-error N``, N = 1, 2 (every subpixel checked within N) against
JPEG-XL (``cjxl -d 0 -e 7``, as in ``bench_image.py``) on the pixels quantized to multiples of 2N + 1.
Bits per subpixel = 8 x bytes / (width x height x channels), totals over all subpixels of a source.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench import run_measured, write_section  # noqa: E402
from bench_image import quantize, tool_size  # noqa: E402

from nncodec.cli.benchtool import describe_machine  # noqa: E402

MORE = REPO.parent / "shared" / "data" / "images" / "more"
BEGIN, END = "<!-- image-sources:begin -->", "<!-- image-sources:end -->"
SOURCES = {
    "usc_sipi_misc_color": "photo (film scans)",
    "gb82": "photo",
    "charls_screen": "screen",
    "gb82_sc_screen": "screen",
}
SCREEN_ANCHORS = ("PNG", "cwebp -lossless -z 9")  # issue 20: screens below the better of these
CLI = [sys.executable, "-m", "nncodec"]
E9 = "cjxl -d 0 -e 9"
NEAR = (1, 2)  # near-lossless error bounds measured on photo sources
QUANTIZED_JXL = ["cjxl", "--quiet", "-d", "0", "-e", "7"]
ANCHORS = {
    "PNG": None,
    "cwebp -lossless -z 9": (["cwebp", "-quiet", "-lossless", "-z", "9"], ".webp"),
    "cjxl -d 0 -e 7": (["cjxl", "--quiet", "-d", "0", "-e", "7"], ".jxl"),
    "cjxl -d 0 -e 9": (["cjxl", "--quiet", "-d", "0", "-e", "9"], ".jxl"),
}


def measure(path: Path, near_lossless: bool) -> tuple[int, dict[str, int | None], tuple[float, float]]:
    """(subpixels, name -> bytes or None, nncodec (compress s, decompress s)) for one image; with
    ``near_lossless`` also "nncodec N=k" and "JPEG-XL quantized N=k" for k in NEAR."""
    with Image.open(path) as image:
        image.load()
        # gb82_sc_screen's gui.png has an alpha channel (all opaque) and windows95.png a palette:
        # nncodec gets their RGB pixels, the other tools the PNG file
        mode = "L" if image.mode in ("L", "1") else "RGB"
        image = image.convert(mode)
    pixels = np.asarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PPM")
    packed, c_s, _ = run_measured([*CLI, "-T2", "-c"], buffer.getvalue())
    restored, d_s, _ = run_measured([*CLI, "-T2", "-d", "-c"], packed)
    with Image.open(io.BytesIO(restored)) as back:
        if not np.array_equal(np.asarray(back.convert(mode)), pixels):
            raise RuntimeError(f"{path.name}: pixels differ after the round trip")
    sizes: dict[str, int | None] = {"nncodec": len(packed), "PNG": path.stat().st_size}
    for name, anchor in ANCHORS.items():
        if anchor is not None:
            command, suffix = anchor
            sizes[name] = tool_size(command, path, suffix)
    for near in NEAR if near_lossless else ():
        sizes[f"nncodec N={near}"] = near_lossless_size(buffer.getvalue(), pixels, near, mode)
        with tempfile.TemporaryDirectory() as tmp:
            quantized = Path(tmp) / "quantized.png"
            Image.fromarray(quantize(pixels, near), mode).save(quantized)
            sizes[f"JPEG-XL quantized N={near}"] = tool_size(QUANTIZED_JXL, quantized, ".jxl")
    return pixels.size, sizes, (c_s, d_s)


def near_lossless_size(ppm: bytes, pixels: np.ndarray, near: int, mode: str) -> int:
    """Bytes of ``nncodec --max-error near`` (-T2, fresh processes), the bound checked on every subpixel."""
    packed, _, _ = run_measured([*CLI, "-T2", "--max-error", str(near), "-c"], ppm)
    restored, _, _ = run_measured([*CLI, "-T2", "-d", "-c"], packed)
    with Image.open(io.BytesIO(restored)) as back:
        error = np.abs(np.asarray(back.convert(mode)).astype(np.int16) - pixels.astype(np.int16)).max()
    if error > near:
        raise RuntimeError(f"max error {error} > {near}")
    return len(packed)


def report(results: dict[str, list[tuple[str, int, dict, tuple]]]) -> str:
    names = ["nncodec", *ANCHORS]  # the lossless columns
    lines = [
        f"Measured by `scripts/bench_image_sources.py` (in `make bench`) on {describe_machine()}, nncodec "
        "`-T2` on the pixels as PPM (fresh processes, start-up included, round trip checked), the others "
        "on the PNG file. Bits per subpixel over each source; `vs e9` = nncodec / cjxl -e 9.",
        "",
        "| source | kind | images | " + " | ".join(names) + " | vs e9 | below e9 | nncodec c / d s each |",
        "|---|---|---:|" + "---:|" * len(names) + "---:|---:|---:|",
    ]
    for source, rows in results.items():
        subpixels = sum(row[1] for row in rows)
        cells, totals = [], {}
        for name in names:
            sizes = [row[2][name] for row in rows]
            totals[name] = None if None in sizes else 8 * sum(sizes) / subpixels
            cells.append("—" if totals[name] is None else f"{totals[name]:.3f}")
        e9 = totals.get(E9)
        versus = f"{totals['nncodec'] / e9:.3f}" if e9 else "—"
        below = sum(1 for row in rows if row[2][E9] and row[2]["nncodec"] < row[2][E9])
        c_s = sum(row[3][0] for row in rows) / len(rows)
        d_s = sum(row[3][1] for row in rows) / len(rows)
        counted = f"{below} of {len(rows)}" if e9 else "—"
        row_text = f"| {source} | {SOURCES[source]} | {len(rows)} | " + " | ".join(cells)
        lines.append(row_text + f" | {versus} | {counted} | {c_s:.1f} / {d_s:.1f} |")
    photos = [row for source, rows in results.items() if SOURCES[source].startswith("photo") for row in rows]
    if photos and all(row[2][E9] for row in photos):  # issue 20's "in total", from the exact byte counts
        ours, theirs = (sum(row[2][name] for row in photos) for name in ("nncodec", E9))
        below = sum(1 for row in photos if row[2]["nncodec"] < row[2][E9])
        lines += [
            "",
            f"All {len(photos)} photos together: nncodec {ours:,} bytes, {E9} {theirs:,} bytes: "
            f"**{ours / theirs:.4f}x** ({ours / theirs - 1:+.2%}); nncodec below {E9} on {below} of "
            f"{len(photos)}.",
        ]
    near_rows = {source: rows for source, rows in results.items() if "nncodec N=1" in rows[0][2]}
    if near_rows:
        lines += [
            "",
            "Near-lossless (every subpixel within N of the original, checked on every image), bits per "
            "subpixel; JPEG-XL codes the pixels quantized to multiples of 2N + 1 (`cjxl -d 0 -e 7`, "
            "as in the McMaster table):",
            "",
            "| source | " + " | ".join(f"nncodec N={n} | JPEG-XL quantized N={n} | vs" for n in NEAR) + " |",
            "|---|" + "---:|---:|---:|" * len(NEAR),
        ]
        for source, rows in near_rows.items():
            subpixels = sum(row[1] for row in rows)
            cells = []
            for near in NEAR:
                ours = 8 * sum(row[2][f"nncodec N={near}"] for row in rows) / subpixels
                sizes = [row[2][f"JPEG-XL quantized N={near}"] for row in rows]
                theirs = None if None in sizes else 8 * sum(sizes) / subpixels
                cells += [f"{ours:.3f}", "—" if theirs is None else f"{theirs:.3f}"]
                cells.append("—" if theirs is None else f"{ours / theirs - 1:+.1%}")
            lines.append(f"| {source} | " + " | ".join(cells) + " |")
    screen_rows = {source: rows for source, rows in results.items() if SOURCES[source] == "screen"}
    if screen_rows:
        lines += [
            "",
            "Screens against the better of PNG and WebP lossless in total (issue 20), bytes:",
            "",
            "| source | images | nncodec | " + " | ".join(SCREEN_ANCHORS) + " | vs better | smaller on |",
            "|---|---:|---:|" + "---:|" * len(SCREEN_ANCHORS) + "---:|---:|",
        ]
        together = [row for rows in screen_rows.values() for row in rows]
        for source, rows in [*screen_rows.items(), ("all screens", together)]:
            totals = {name: sum(row[2][name] or 0 for row in rows) for name in ("nncodec", *SCREEN_ANCHORS)}
            if any(row[2][name] is None for row in rows for name in SCREEN_ANCHORS):
                lines.append(f"| {source} | {len(rows)} | {totals['nncodec']:,} | (an anchor is missing) |")
                continue
            better = min(totals[name] for name in SCREEN_ANCHORS)
            wins = sum(1 for row in rows if row[2]["nncodec"] < min(row[2][name] for name in SCREEN_ANCHORS))
            cells = " | ".join(f"{totals[name]:,}" for name in SCREEN_ANCHORS)
            versus = totals["nncodec"] / better
            head = f"| {source} | {len(rows)} | {totals['nncodec']:,} | {cells}"
            lines.append(f"{head} | {versus:.3f} | {wins} of {len(rows)} |")
    lines.append("")
    lines.append("Images: " + "; ".join(f"`{source}/` ({', '.join(row[0] for row in rows)})"
                                        for source, rows in results.items()) + ".")  # fmt: skip
    return "\n".join([BEGIN, *lines, END])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--sources", nargs="*", default=list(SOURCES))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not MORE.is_dir():
        sys.exit(f"{MORE} not found: this benchmark needs ../shared/data/images/more")
    results: dict[str, list[tuple[str, int, dict, tuple]]] = {}
    for source in args.sources:
        for path in sorted((MORE / source).glob("*.png")):
            subpixels, sizes, times = measure(path, SOURCES[source].startswith("photo"))
            results.setdefault(source, []).append((path.name, subpixels, sizes, times))
            bpsp = " ".join(f"{n} {8 * v / subpixels:.3f}" for n, v in sizes.items() if v is not None)
            print(f"{source}/{path.name}: {bpsp} (nncodec {times[0]:.1f} / {times[1]:.1f} s)", flush=True)
    section = report(results)
    print(section)
    if not args.no_write and args.sources == list(SOURCES):
        write_section(args.out, "Image: sources never trained on (issue 20)", section)


if __name__ == "__main__":
    main()
