"""Run by tests/test_determinism.py in a fresh interpreter under one configuration (environment
variables set by the test, plus the settings named in argv): re-encodes every sample, decodes every
reference container, and prints one JSON object with the sha256 of each result.

    python tests/determinism_worker.py CASES_DIR [--threads N] [--torch] [--flush-denormal]

CASES_DIR holds NAME.input, NAME.nnc (the reference container) and NAME.json ({"codec", "options"}).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("cases", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--torch", action="store_true", help="import torch first (loads its kernels)")
    parser.add_argument("--flush-denormal", action="store_true", help="torch.set_flush_denormal(True)")
    args = parser.parse_args()
    if args.torch or args.flush_denormal:
        import torch

        if args.flush_denormal and not torch.set_flush_denormal(True):
            print(json.dumps({"error": "this CPU cannot flush denormals"}))
            return
    from nncodec.core import engine
    from nncodec.nn.rowops import _kernels

    results: dict[str, dict[str, str]] = {}
    for spec_path in sorted(args.cases.glob("*.json")):
        name = spec_path.stem
        spec = json.loads(spec_path.read_text())
        original = (args.cases / f"{name}.input").read_bytes()
        reference = (args.cases / f"{name}.nnc").read_bytes()
        encoded = io.BytesIO()
        engine.compress_stream(
            io.BytesIO(original), encoded, codec=spec["codec"], threads=args.threads,
            content_size=len(original), options=spec["options"],
        )  # fmt: skip
        decoded = io.BytesIO()
        engine.decompress_stream(io.BytesIO(reference), decoded, threads=args.threads)
        results[name] = {
            "encoded": hashlib.sha256(encoded.getvalue()).hexdigest(),
            "decoded": hashlib.sha256(decoded.getvalue()).hexdigest(),
        }
    print(json.dumps({"results": results, "compiled_kernels": _kernels is not None}))


if __name__ == "__main__":
    sys.exit(main())
