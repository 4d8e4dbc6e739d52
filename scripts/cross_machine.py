"""Check that another machine encodes and decodes byte-identically to this one.

    python scripts/cross_machine.py export DIR   # here: samples, reference containers, their hashes
    python scripts/cross_machine.py check DIR    # there: re-encode and decode under every
                                                 # configuration of tests/test_determinism.py

``export`` writes the determinism matrix's samples (tests/test_determinism.py) plus, when ../shared
is present, real ones (300 MNIST digits, 64 KB of Apache.log, a 96 x 96 crop of a McMaster photo
for both image models), each with the container this machine made and the sha256 of that container
and of its decoded bytes, and ``reference-machine.txt`` naming this CPU. ``check`` runs
tests/determinism_worker.py in fresh interpreters under each configuration on the other machine and
prints one line per configuration; it exits 1 when any result differs. The coding path never uses a
GPU, so what a second machine adds is another CPU (its SIMD widths, its BLAS kernels).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from test_determinism import WORKER, _cases, _configurations  # noqa: E402

from nncodec.core import engine  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f.startswith(("avx", "fma", "sse4")))
    except OSError:
        pass
    return []


def real_cases() -> dict[str, tuple[bytes, str, dict]]:
    """Real samples cut from ../shared (empty when it is absent)."""
    import gzip

    import numpy as np
    from PIL import Image

    cases: dict[str, tuple[bytes, str, dict]] = {}
    mnist = SHARED / "images" / "mnist" / "t10k-images-idx3-ubyte.gz"
    if mnist.is_file():
        raw = gzip.decompress(mnist.read_bytes())
        count = 300
        head = b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in (count, 28, 28))
        cases["real-mnist-300"] = (head + raw[16 : 16 + count * 784], "image", {"image_model": "pc"})
    apache = SHARED / "logs" / "loghub_full" / "Apache.log"
    if apache.is_file():
        cases["real-apache-64k"] = (apache.read_bytes()[:65536], "log", {})
    photo = SHARED / "images" / "mcmaster" / "mcm12.png"
    if photo.is_file():
        crop = np.asarray(Image.open(photo).convert("RGB"))[100:196, 200:296]
        out = io.BytesIO()
        Image.fromarray(crop).save(out, format="PNG")
        cases["real-photo-nextpixel"] = (out.getvalue(), "image", {})
        cases["real-photo-pc"] = (out.getvalue(), "image", {"image_model": "pc"})
    return cases


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    samples = {name: (data, codec, options) for name, (data, codec, options, _) in _cases().items()}
    samples.update(real_cases())
    expected = {}
    for name, (data, codec, options) in samples.items():
        packed = io.BytesIO()
        engine.compress_stream(io.BytesIO(data), packed, codec=codec, content_size=len(data), options=options)
        decoded = io.BytesIO()
        engine.decompress_stream(io.BytesIO(packed.getvalue()), decoded)
        if decoded.getvalue() != data and codec != "image":  # image PNGs come back rebuilt
            raise SystemExit(f"{name}: round trip failed here")
        (directory / f"{name}.input").write_bytes(data)
        (directory / f"{name}.nnc").write_bytes(packed.getvalue())
        (directory / f"{name}.json").write_text(json.dumps({"codec": codec, "options": options}))
        expected[name] = {"encoded": sha(packed.getvalue()), "decoded": sha(decoded.getvalue())}
    machine = {"cpu": cpu_name(), "flags": cpu_flags(), "python": platform.python_version()}
    (directory / "reference-hashes.txt").write_text(json.dumps(expected, indent=1))
    (directory / "reference-machine.txt").write_text(json.dumps(machine))
    print(f"{len(expected)} samples written to {directory} on {machine['cpu']}")


def check(directory: Path) -> int:
    expected = json.loads((directory / "reference-hashes.txt").read_text())
    origin = json.loads((directory / "reference-machine.txt").read_text())
    print(f"reference: {origin['cpu']} ({' '.join(origin['flags'])}), Python {origin['python']}")
    print(f"this machine: {cpu_name()} ({' '.join(cpu_flags())}), Python {platform.python_version()}")
    failures = 0
    for label, env, args in _configurations():
        result = subprocess.run(
            [sys.executable, str(WORKER), str(directory), *args],
            capture_output=True, env={**os.environ, **env}, cwd=REPO, timeout=1800,
        )  # fmt: skip
        if result.returncode != 0:
            print(f"{label}: worker failed: {result.stderr.decode()[-500:]}")
            failures += 1
            continue
        report = json.loads(result.stdout)
        if "error" in report:
            print(f"{label}: skipped ({report['error']})")
            continue
        got = report["results"]
        same = [name for name in expected if got.get(name) == expected[name]]
        kernels = "C kernels" if report["compiled_kernels"] else "no C kernels"
        print(f"{label}: {len(same)}/{len(expected)} samples identical ({kernels})")
        if len(same) != len(expected):
            failures += 1
            print(f"  differ: {sorted(set(expected) - set(same))}")
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["export", "check"])
    parser.add_argument("directory", type=Path)
    args = parser.parse_args()
    if args.action == "export":
        export(args.directory)
    else:
        sys.exit(check(args.directory))


if __name__ == "__main__":
    main()
