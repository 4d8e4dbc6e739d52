"""The determinism matrix: text, image and log samples compressed once here, then re-encoded and
decoded in fresh interpreters under other configurations (threads, BLAS/OpenMP thread counts,
torch's CPU kernels and denormal flushing, numpy's SIMD dispatch, nncodec's own kernel variants, hash
seeds). Every configuration must give byte-identical containers and identical decoded bytes.

Results are printed (run with -s to see the table) and recorded in docs/DETERMINISM.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import RELIABILITY_LINES, REPO, SHARED_DATA, log_lines, smooth_png

from nncodec.core import engine

WORKER = Path(__file__).with_name("determinism_worker.py")
BLAS_THREADS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _idx_digits(count: int) -> bytes:
    """An idx3-ubyte file (MNIST's format) of ``count`` blurry 28x28 strokes."""
    rng = np.random.default_rng(count)
    y, x = np.mgrid[0:28, 0:28].astype(np.float64)
    images = []
    for _ in range(count):
        cx, cy, r = rng.uniform(10, 18), rng.uniform(10, 18), rng.uniform(4, 8)
        ring = np.exp(-(((np.hypot(x - cx, y - cy) - r) / 1.0) ** 2))  # thin strokes: image-pc beats zstd
        images.append(np.clip(255 * ring, 0, 255).astype(np.uint8))
    header = b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in (count, 28, 28))
    return header + np.stack(images).tobytes()


def _cases() -> dict[str, tuple[bytes, str, dict, str]]:
    """name -> (input, --codec, codec options, the codec that must code at least one block)."""
    cases = {
        # real prose: generated prose is now won by PPMd (the classical fallback), not by the model
        "text": ((REPO / "testdata" / "text" / "dickens_head.txt").read_bytes()[:6000], "text", {}, "text"),
        "log": (log_lines(300, seed=3), "log", {}, "log"),
        "image-rgb": (smooth_png(64, 48, "RGB"), "image", {}, "image"),
        "image-gray": (smooth_png(61, 47, "L"), "image", {}, "image"),
        "image-near2": (smooth_png(64, 48, "RGB"), "image", {"max_error": 2}, "image"),
    }
    cases["image-pc-gray"] = (smooth_png(96, 64, "L"), "image", {"image_model": "pc"}, "image-pc")
    cases["image-pc-idx"] = (_idx_digits(40), "image", {"image_model": "pc"}, "image-pc")
    dickens = SHARED_DATA / "text" / "silesia" / "dickens"
    if dickens.is_file():  # real prose as well when ../shared is here
        cases["text-dickens"] = (dickens.read_bytes()[200_000:202_000], "text", {}, "text")
    return cases


def _numpy_dispatch_off() -> str:
    """NPY_DISABLE_CPU_FEATURES value that turns off every SIMD extension numpy dispatches to at
    run time on this CPU (leaving its compiled-in baseline), or "" when there is none."""
    from numpy._core import _multiarray_umath as umath

    dispatched = [f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f)]
    return ",".join(dispatched)


def _configurations() -> list[tuple[str, dict[str, str], list[str]]]:
    one = dict.fromkeys(BLAS_THREADS, "1")
    two = dict.fromkeys(BLAS_THREADS, "2")
    configs = [
        ("fresh interpreter, -T1", {}, []),
        ("-T2 (encode and decode)", {}, ["--threads", "2"]),
        ("OMP/MKL/OpenBLAS threads = 1", one, []),
        ("OMP/MKL/OpenBLAS threads = 2, -T2", two, ["--threads", "2"]),
        ("torch loaded, ATEN_CPU_CAPABILITY=default", {"ATEN_CPU_CAPABILITY": "default"}, ["--torch"]),
        ("torch loaded, ATEN_CPU_CAPABILITY=avx2", {"ATEN_CPU_CAPABILITY": "avx2"}, ["--torch"]),
        ("denormals flushed (torch.set_flush_denormal)", {}, ["--flush-denormal"]),
        ("MKL_CBWR=COMPATIBLE, oneDNN ISA SSE4.1", {"MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "SSE41"},
         ["--torch"]),
        ("nncodec kernels: numpy reference", {"NNCODEC_KERNELS": "numpy"}, []),
        ("nncodec kernels: C without AVX-512 (AVX2 loops)", {"NNCODEC_KERNELS": "avx2"}, []),
        ("nncodec kernels: C without AVX2", {"NNCODEC_KERNELS": "portable"}, []),
        ("PYTHONHASHSEED=12345", {"PYTHONHASHSEED": "12345"}, []),
    ]  # fmt: skip
    dispatch_off = _numpy_dispatch_off()
    if dispatch_off:
        label = f"numpy SIMD dispatch off ({dispatch_off})"
        configs.append((label, {"NPY_DISABLE_CPU_FEATURES": dispatch_off}, []))
    return configs


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.slow
def test_every_configuration_encodes_and_decodes_identically(tmp_path: Path) -> None:
    expected: dict[str, dict[str, str]] = {}
    for name, (data, codec, options, learned) in _cases().items():
        packed = io.BytesIO()
        engine.compress_stream(io.BytesIO(data), packed, codec=codec, content_size=len(data), options=options)
        frames = engine.scan_frames(io.BytesIO(packed.getvalue()))
        assert frames[0].block_codecs[learned] >= 1, f"{name}: the {learned} codec coded no block"
        decoded = io.BytesIO()
        engine.decompress_stream(io.BytesIO(packed.getvalue()), decoded)
        (tmp_path / f"{name}.input").write_bytes(data)
        (tmp_path / f"{name}.nnc").write_bytes(packed.getvalue())
        (tmp_path / f"{name}.json").write_text(json.dumps({"codec": codec, "options": options}))
        expected[name] = {"encoded": _sha(packed.getvalue()), "decoded": _sha(decoded.getvalue())}

    failures, rows = [], []
    for label, env, args in _configurations():
        full_env = {**os.environ, **env}
        result = subprocess.run(
            [sys.executable, str(WORKER), str(tmp_path), *args],
            capture_output=True, env=full_env, cwd=REPO, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, f"{label}: {result.stderr.decode()[-2000:]}"
        report = json.loads(result.stdout)
        if "error" in report:
            rows.append(f"{label}: skipped ({report['error']})")
            continue
        got = report["results"]
        same = [name for name in expected if got.get(name) == expected[name]]
        rows.append(f"{label}: {len(same)}/{len(expected)} samples identical")
        if len(same) != len(expected):
            failures.append((label, {n: got.get(n) for n in expected if n not in same}))
    print("\n".join(["determinism matrix:", *rows]))
    identical = sum(row.endswith(f"{len(expected)}/{len(expected)} samples identical") for row in rows)
    RELIABILITY_LINES.append(
        f"determinism matrix: {identical}/{len(rows)} configurations byte-identical "
        f"on {len(expected)} samples"
    )
    assert not failures, failures
