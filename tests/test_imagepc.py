"""The image-pc codec (probabilistic circuit): exact integer circuit arithmetic, round trips on idx
sets (MNIST, Fashion-MNIST), image files and edge cases, and decoding under other thread counts."""

import gzip
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, SHARED_DATA, run_cli
from PIL import Image

import nncodec
from nncodec.codecs.base import BlockDeclined
from nncodec.codecs.imagepc import (
    GRAY_MODEL,
    IDX_MODELS,
    RGB_MODEL,
    ImagePCCodec,
)
from nncodec.core import engine
from nncodec.core.errors import CorruptError
from nncodec.core.modelstore import find_model
from nncodec.image.circuit import HCLT, integer_rows, rescale
from nncodec.image.transforms import forward_transform, inverse_transform

MODELS = REPO / "models"
NEEDED = [*IDX_MODELS, RGB_MODEL, GRAY_MODEL]
MISSING = [m for m in NEEDED if not (MODELS / f"{m}.safetensors").exists()]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"models not built yet: {MISSING}")
FASHION = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def idx_bytes(images: np.ndarray) -> bytes:
    n, h, w = images.shape
    return b"\x00\x00\x08\x03" + b"".join(v.to_bytes(4, "big") for v in (n, h, w)) + images.tobytes()


def idx_sample(path, count: int, seed: int = 0) -> bytes:
    """``count`` random images of an idx file (skip when it is absent)."""
    if not os.path.isfile(path):
        pytest.skip(f"{path} not present (../shared/data or dataset-fashion-mnist)")
    raw = gzip.decompress(open(path, "rb").read())
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
    pick = np.sort(np.random.default_rng(seed).choice(len(images), count, replace=False))
    return idx_bytes(images[pick])


def png(pixels: np.ndarray, mode: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels, mode).save(out, "PNG")
    return out.getvalue()


def smooth(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    """A photo-like test image: smooth gradients plus a little noise, mostly shared by the channels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    shared, own = rng.normal(0, 3, (height, width)), rng.normal(0, 0.7, (channels, height, width))
    planes = [128 + 60 * np.sin(x / (7 + 3 * c) + y / 11) + shared + own[c] for c in range(channels)]
    return np.clip(np.stack(planes, axis=-1), 0, 255).astype(np.uint8)


def saved(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def frame_codec(packed: bytes) -> int:
    return packed[6]


# -- the circuit's arithmetic ---------------------------------------------------------------------


def test_integer_rows_and_rescale_are_exact():
    q = np.array([[0, 8, 16, 255], [3, 3, 3, 3]], np.uint8)
    rows = integer_rows(q)
    assert rows.dtype == np.float64 and rows.min() >= 1 and rows.max() <= 1 << 16
    assert rows[0, 0] / rows[0, 1] == pytest.approx(2.0, rel=1e-4) and rows[1, 0] == rows[1, 3]
    x = np.array([[3.0, 0.0, 1 << 40], [5.0, 6.0, 7.0]]).T  # two columns
    out = rescale(x, 20)
    assert np.array_equal(out, np.floor(x * np.array([[2.0**-21, 2.0**17]])) + 1)


def circuit_rows(circuit: HCLT, samples: np.ndarray) -> list[np.ndarray]:
    rows = []

    def code(v, part, freqs):
        rows.append(freqs.copy())
        return samples[:, v].astype(np.int64) >> 4 if part == 0 else samples[:, v] & 15

    circuit.walk(len(samples), code)
    return rows


def test_rows_do_not_depend_on_the_batch():
    """A sample's frequency rows are the same alone and inside a batch of others."""
    circuit = HCLT.load(MODELS / f"{IDX_MODELS[0]}.safetensors")
    samples = np.random.default_rng(1).integers(0, 256, (5, circuit.config.size)).astype(np.uint8)
    samples[2] = 0
    together = circuit_rows(circuit, samples)
    alone = circuit_rows(circuit, samples[2:3])
    assert all(np.array_equal(a[0], t[2]) for a, t in zip(alone, together, strict=True))
    m = circuit.config.latents
    assert all(r.min() >= m and r.max() < 2.0**43 and np.array_equal(r, np.floor(r)) for r in together)


@pytest.mark.parametrize("transform", ["vdiff", "diff2d", "sg-vdiff", "sg-diff2d"])
def test_transforms_invert(transform):
    x = np.random.default_rng(0).integers(0, 256, (9, 7, 3)).astype(np.uint8)
    assert np.array_equal(inverse_transform(forward_transform(x, transform), transform), x)
    flat = np.full((4, 5, 3), 77, np.uint8)
    assert np.count_nonzero(forward_transform(flat, transform)[1:, 1:, 1]) == 0


# -- idx sets -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, model",
    [
        (SHARED_DATA / "images" / "mnist" / "t10k-images-idx3-ubyte.gz", "pc-mnist-v2"),
        (FASHION, "pc-fashion-v2"),
    ],
)
def test_idx_round_trip_and_model_choice(path, model):
    data = idx_sample(path, 300)
    packed = nncodec.compress(data)  # auto: idx sets go to image-pc
    assert frame_codec(packed) == ImagePCCodec.codec_id
    assert model.encode() in packed[:80]  # the encoder picked the model that fits
    assert nncodec.decompress(packed, threads=2) == data
    assert len(packed) * 8 / (300 * 784) < (1.6 if model == "pc-mnist-v2" else 4.0)


def test_synthetic_idx_and_odd_idx_files():
    rng = np.random.default_rng(3)
    images = (rng.random((7, 28, 28)) < 0.2).astype(np.uint8) * 255
    data = idx_bytes(images)
    assert nncodec.decompress(nncodec.compress(data)) == data
    for odd in (idx_bytes(images[:, :27, :]), data + b"x", data[:-5]):  # other size, trailing, short
        packed, stats = pc_compress_stats(odd, codec="auto")
        assert not stats.block_codecs["image-pc"]  # declined: coded as bytes
        assert nncodec.decompress(packed) == odd


# -- image files ----------------------------------------------------------------------------------


def pc_compress(data: bytes, threads: int = 1) -> bytes:
    return pc_compress_stats(data, threads)[0]


def pc_compress_stats(data: bytes, threads: int = 1, codec: str = "image") -> tuple[bytes, engine.FrameStats]:
    """Compress as ``--image-model pc`` does; also return the frame's statistics."""
    out = io.BytesIO()
    options = {"image_model": "pc"}
    stats = engine.compress_stream(io.BytesIO(data), out, codec=codec, threads=threads, options=options)
    return out.getvalue(), stats


def pixels_of(data: bytes) -> tuple[str, np.ndarray]:
    with Image.open(io.BytesIO(data)) as im:
        return im.mode, np.asarray(im)


CASES = {
    "1x1 rgb": lambda: png(smooth(1, 1, 3), "RGB"),
    "odd rgb": lambda: png(smooth(67, 45, 3), "RGB"),
    "gray": lambda: png(smooth(30, 41, 1), "L"),
    "gray+alpha": lambda: png(smooth(20, 19, 2), "LA"),
    "rgba": lambda: png(smooth(33, 21, 4), "RGBA"),
    "palette": lambda: saved(Image.fromarray(smooth(40, 30, 3), "RGB").convert("P")),
    "rgb ppm": lambda: b"P6\n13 9\n255\n" + smooth(9, 13, 3).tobytes(),
    "16-bit gray": lambda: saved(
        Image.frombytes("I;16", (23, 17), (smooth(17, 23, 1).astype("<u2") * 257).tobytes())
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_edge_cases_round_trip(name):
    """Through the engine (which keeps zstd where it is smaller) and through the codec itself (so
    the circuit path is exercised for every mode); 16-bit images are declined."""
    data = CASES[name]()
    packed, stats = pc_compress_stats(data)
    restored = nncodec.decompress(packed)
    assert pixels_of(restored)[0] == pixels_of(data)[0]
    assert np.array_equal(pixels_of(restored)[1], pixels_of(data)[1])
    codec = ImagePCCodec(find_model(RGB_MODEL))
    if name == "16-bit gray":
        assert restored == data and not stats.block_codecs["image-pc"]
        with pytest.raises(BlockDeclined):
            codec.encode_block(data)
        return
    payload, output = codec.encode_block_with_output(data)
    decoded = ImagePCCodec.from_header(codec.params(), codec.model).decode_block(payload, len(output))
    assert decoded == output and np.array_equal(pixels_of(decoded)[1], pixels_of(data)[1])
    array = pixels_of(data)[1]
    channels = 1 if array.ndim == 2 else array.shape[2]
    assert codec.model.model_id == (RGB_MODEL if channels == 3 else GRAY_MODEL)
    if name == "odd rgb":  # a photo-like image: the circuit beats zstd on the PNG
        assert stats.block_codecs["image-pc"] == 1


def shared_pngs() -> list:
    root = SHARED_DATA / "images"
    if not root.is_dir():
        return []
    return sorted(root.glob("*/*.png"))


def test_shared_pngs_round_trip():
    """A sample of ../shared/data/images (every file is checked by scripts/bench_pc.py), cropped for
    time: one file of each folder, its top-left 160 x 120."""
    paths = shared_pngs()
    if not paths:
        pytest.skip("../shared/data/images not present")
    picked = {p.parent.name: p for p in paths}
    for path in picked.values():
        with Image.open(path) as im:
            mode = im.mode if im.mode in ("L", "LA", "RGB", "RGBA") else "RGB"
            pixels = np.asarray(im.convert(mode).crop((0, 0, min(im.width, 160), min(im.height, 120))))
        pixels = pixels[..., None] if pixels.ndim == 2 else pixels
        data = png(pixels, mode)
        restored = nncodec.decompress(pc_compress(data))
        assert np.array_equal(pixels_of(restored)[1], pixels_of(data)[1]), path.name


def test_corrupt_payload_is_detected():
    data = png(smooth(40, 40, 3), "RGB")
    packed = bytearray(pc_compress(data))
    packed[len(packed) // 2] ^= 0x10
    with pytest.raises(nncodec.NncodecError):
        nncodec.decompress(bytes(packed))
    with pytest.raises(CorruptError):
        ImagePCCodec.from_header(b"\x09", None)


# -- threads and other BLAS kernels ---------------------------------------------------------------


def test_cli_threads_1_then_threads_2(tmp_path):
    """-T1 compress, -T2 decompress (streams decoded on two threads); -T2 compresses to the same bytes."""
    data = png(smooth(300, 260, 3, seed=5), "RGB")  # > 1024 patches: several streams
    source = tmp_path / "a.png"
    source.write_bytes(data)
    one = run_cli("compress", "--image-model", "pc", "-T1", "-c", str(source))
    two = run_cli("compress", "--image-model", "pc", "-T2", "-c", str(source))
    assert one.returncode == 0 and two.returncode == 0, one.stderr
    assert one.stdout == two.stdout and frame_codec(one.stdout) == ImagePCCodec.codec_id
    back = run_cli("decompress", "-T2", "-c", input=one.stdout)
    assert back.returncode == 0 and np.array_equal(pixels_of(back.stdout)[1], pixels_of(data)[1])
    (tmp_path / "a.png.nnc").write_bytes(one.stdout)
    info = run_cli("info", str(tmp_path / "a.png.nnc"))
    assert info.returncode == 0 and b"image-pc" in info.stdout and RGB_MODEL.encode() in info.stdout


def test_other_blas_kernels_give_the_same_bytes(tmp_path):
    """Compressing under SSE-only BLAS kernels, 2 BLAS threads and no AVX512 gives the same bytes."""
    data = png(smooth(90, 70, 3, seed=2), "RGB")
    here = pc_compress(data)
    script = (
        "import io, sys; from nncodec.core import engine; out = io.BytesIO();"
        "engine.compress_stream(io.BytesIO(sys.stdin.buffer.read()), out, codec='image',"
        " options={'image_model': 'pc'}); sys.stdout.buffer.write(out.getvalue())"
    )
    env = {**os.environ, "OPENBLAS_CORETYPE": "Nehalem", "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2",
           "NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512_SKX"}  # fmt: skip
    there = subprocess.run([sys.executable, "-c", script], input=data, capture_output=True, env=env, cwd=REPO)
    assert there.returncode == 0, there.stderr[-2000:]
    assert there.stdout == here
