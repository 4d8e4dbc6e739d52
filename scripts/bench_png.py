"""Byte-exact PNG over ../shared/data/images: write BENCHMARKS.md's "PNG" section.

    python scripts/bench_png.py [--out BENCHMARKS.md] [--image-model pc|nextpixel]

For every PNG: whether a zlib recipe rebuilds its IDAT stream (nncodec/image/pngdeflate.py), which
codec won the file (the learned image codec, or the classical fallback that codes it as bytes), and
the size of the .nnc file against the PNG file itself; per source folder and in total. Every round
trip is checked byte for byte. The default image model (nextpixel) takes about an hour on the whole
set on this machine; ``--image-model pc`` (the circuit codec, ~10x faster) gives the share and a
ratio that bounds the default's from below.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench import write_section  # noqa: E402

import nncodec  # noqa: E402
from nncodec.core import engine  # noqa: E402
from nncodec.image import imagefile  # noqa: E402

BEGIN, END = "<!-- png-bench:begin -->", "<!-- png-bench:end -->"
IMAGES = REPO.parent / "shared" / "data" / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--image-model", choices=("pc", "nextpixel"), default="pc")
    args = parser.parse_args()
    if not IMAGES.is_dir():
        sys.exit(f"{IMAGES} is not here")
    stats: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])  # files, recipe, learned, png, nnc
    started = time.perf_counter()
    options = {"image_model": args.image_model} if args.image_model == "pc" else {}
    for path in sorted(IMAGES.rglob("*.png")):
        data = path.read_bytes()
        source = str(path.parent.relative_to(IMAGES))
        try:
            imagefile.parse(data)
            recipe = 1
        except imagefile.NotSupported:
            recipe = 0
        packed = nncodec.compress(data, options=options)
        assert nncodec.decompress(packed) == data, path
        codecs = engine.scan_frames(io.BytesIO(packed))[0].block_codecs
        learned = int(bool(codecs.get("image") or codecs.get("image-pc")))
        for key in (source, "all"):
            row = stats[key]
            row[0] += 1
            row[1] += recipe
            row[2] += learned
            row[3] += len(data)
            row[4] += len(packed)
        print(f"{path.relative_to(IMAGES)} recipe={recipe} learned={learned} {len(data)} -> {len(packed)}", flush=True)
    rows = [f"| {key} | {s[0]} | {s[1]} | {s[2]} | {s[3]:,} | {s[4]:,} | {s[3] / s[4]:.3f} |"
            for key, s in sorted(stats.items(), key=lambda kv: (kv[0] == "all", kv[0]))]  # fmt: skip
    model = "the circuit codec (`--image-model pc`)" if args.image_model == "pc" else "the next-pixel codec"
    section = "\n".join([
        BEGIN,
        f"Measured {time.strftime('%Y-%m-%d')} by scripts/bench_png.py over every PNG in ../shared/data/images, "
        f"pixels coded by {model}, in {time.perf_counter() - started:.0f} s; every file came back byte for byte. "
        "*recipe*: a zlib recipe rebuilds the file's IDAT stream; *learned*: the image codec won the file (else "
        "the classical fallback coded it as bytes); ratio = PNG bytes / .nnc bytes.",
        "",
        "| source | PNGs | recipe | learned | PNG bytes | .nnc bytes | ratio vs PNG |",
        "|---|---|---|---|---|---|---|",
        *rows,
        END,
    ])  # fmt: skip
    write_section(args.out, "PNG, byte for byte", section)


if __name__ == "__main__":
    main()
