"""Byte-exact PNG (issue 18): the recipe that rebuilds a PNG's IDAT stream, and the fallbacks.

* the vendored zlib deflate writes what Python's zlib writes (where that is zlib 1.2.x);
* the vectorised PNG filters equal a per-byte reference for every filter type;
* zlib's block size gives away memLevel (what the recipe search relies on to stay fast);
* PNGs written by Pillow at every level, mode and strategy come back byte for byte through the
  learned codecs; a stream no recipe rebuilds is coded as bytes and still comes back exactly;
* ``--png-pixels`` keeps today's pixels-only result and says so in ``info``;
* every PNG in ../shared/data/images is either rebuilt exactly by its recipe or declined.
"""

from __future__ import annotations

import io
import os
import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import smooth_png
from PIL import Image

import nncodec
from nncodec.cli.main import main
from nncodec.core import engine
from nncodec.image import imagefile, pngdeflate

SHARED_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "images"


def _png(array: np.ndarray, mode: str, **save: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, format="PNG", **save)
    return out.getvalue()


def _coded_by(packed: bytes) -> dict[str, int]:
    return dict(engine.scan_frames(io.BytesIO(packed))[0].block_codecs)


@pytest.mark.skipif(not zlib.ZLIB_RUNTIME_VERSION.startswith("1.2."), reason="system zlib is not zlib 1.2.x")
@pytest.mark.skipif(pngdeflate._deflate is None, reason="the _deflate extension is not built")
def test_vendored_deflate_writes_what_zlib_writes():
    rng = random.Random(7)
    data = bytes(rng.randrange(40) for _ in range(30000)) + bytes(range(256)) * 50
    for level in range(1, 10):
        for strategy in range(5):
            for memlevel in (1, 8, 9):
                for wbits in (9, 15):
                    z = zlib.compressobj(level, zlib.DEFLATED, wbits, memlevel, strategy)
                    expected = z.compress(data) + z.flush()
                    params = (level, wbits, memlevel, strategy)
                    assert pngdeflate._deflate.compress(data, *params) == expected, params
                    assert pngdeflate._matches(data, expected, params)
                    assert not pngdeflate._matches(data, expected[:-1] + b"\0", params)
                    assert not pngdeflate._matches(data, expected[:-1], params)


def _reference_filter(rows: np.ndarray, types: np.ndarray, bpp: int) -> np.ndarray:
    out = np.zeros((rows.shape[0], rows.shape[1] + 1), np.uint8)
    for y in range(rows.shape[0]):
        out[y, 0] = types[y]
        for x in range(rows.shape[1]):
            a = int(rows[y, x - bpp]) if x >= bpp else 0
            b = int(rows[y - 1, x]) if y else 0
            c = int(rows[y - 1, x - bpp]) if y and x >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            paeth = a if pa <= pb and pa <= pc else b if pb <= pc else c
            prediction = (0, a, b, (a + b) // 2, paeth)[types[y]]
            out[y, x + 1] = (int(rows[y, x]) - prediction) % 256
    return out


@pytest.mark.parametrize("bpp", [1, 2, 3, 4, 6, 8])
def test_filters_equal_the_reference(bpp):
    rng = np.random.default_rng(bpp)
    rows = rng.integers(0, 256, (12, bpp * 9), dtype=np.uint8)
    rows[3:6] = 255  # saturated rows exercise the wrap-around
    types = np.array([0, 1, 2, 3, 4] * 2 + [4, 3], np.uint8)
    assert np.array_equal(pngdeflate.filter_rows(rows, types, bpp), _reference_filter(rows, types, bpp))


@pytest.mark.parametrize("memlevel", [1, 5, 8, 9])
def test_zlib_block_size_gives_away_memlevel(memlevel):
    data = np.random.default_rng(1).integers(0, 8, 400_000, dtype=np.uint8).tobytes()
    stream = pngdeflate.compress(data, (6, 15, memlevel, 0))
    assert pngdeflate.first_block_symbols(stream[2:]) == (False, (1 << (memlevel + 6)) - 1)
    assert pngdeflate.find_params(data, stream) == (6, 15, memlevel, 0)


def test_a_stream_zlib_did_not_block_so_has_no_recipe():
    data = np.random.default_rng(2).integers(0, 8, 200_000, dtype=np.uint8).tobytes()
    z = zlib.compressobj(6)
    stream = z.compress(data[:50_000]) + z.flush(zlib.Z_FULL_FLUSH) + z.compress(data[50_000:]) + z.flush()
    assert pngdeflate.find_params(data, stream) is None


SMOOTH = np.asarray(Image.open(io.BytesIO(smooth_png(48, 40, "RGB"))))


@pytest.mark.parametrize(
    ("mode", "save"),
    [
        ("RGB", {}),
        ("RGB", {"compress_level": 1}),
        ("RGB", {"compress_level": 9}),
        ("RGB", {"optimize": True}),
        ("L", {"compress_level": 3}),
        ("LA", {}),
        ("RGBA", {"compress_level": 7}),
        ("P", {}),
        ("I;16", {}),
    ],
)
def test_pillow_pngs_come_back_byte_for_byte(mode, save):
    if mode == "I;16":
        image = Image.fromarray(SMOOTH[..., 0].astype(np.uint16) * 257).convert("I;16")
        out = io.BytesIO()
        image.save(out, format="PNG", **save)
        data = out.getvalue()
    else:
        data = _png(SMOOTH, "RGB") if mode == "RGB" and not save else None
        if data is None:
            out = io.BytesIO()
            Image.fromarray(SMOOTH).convert(mode).save(out, format="PNG", **save)
            data = out.getvalue()
    layout, pixels = imagefile.parse(data)
    assert layout.recipe is not None, "Pillow's PNG has a recipe"
    assert imagefile.rebuild(layout, pixels) == data
    codec = engine.choose_codec("image", data)  # the learned coder itself, whether or not it wins here
    payload, output = codec.encode_block_with_output(data)
    assert output == data
    decoder = type(codec).from_header(codec.params(), codec.model)
    assert decoder.decode_block(payload, len(data)) == data
    assert nncodec.decompress(nncodec.compress(data, codec="image")) == data


def test_png_without_a_recipe_is_coded_as_bytes_and_comes_back():
    data = _png(SMOOTH, "RGB")
    chunks = imagefile._chunks(data)
    raw = zlib.decompress(b"".join(body for kind, _, body in chunks if kind == b"IDAT"))
    z = zlib.compressobj(9)
    stream = z.compress(raw[:2000]) + z.flush(zlib.Z_FULL_FLUSH) + z.compress(raw[2000:]) + z.flush()
    idat = struct.pack(">I", len(stream)) + b"IDAT" + stream + struct.pack(">I", zlib.crc32(b"IDAT" + stream))
    odd = data[:8] + b"".join(c for kind, c, _ in chunks if kind == b"IHDR") + idat + chunks[-1][1]
    with pytest.raises(imagefile.NotSupported, match="not reproducible"):
        imagefile.parse(odd)
    packed = nncodec.compress(odd, codec="image")
    assert nncodec.decompress(packed) == odd
    assert "image" not in _coded_by(packed)


def test_png_pixels_keeps_pixels_and_says_so(tmp_path):
    data = _png(SMOOTH, "RGB", compress_level=9)
    source = tmp_path / "a.png"
    source.write_bytes(data)
    runner = CliRunner()
    assert runner.invoke(main, ["-q", "--png-pixels", "-k", str(source)]).exit_code == 0
    info = runner.invoke(main, ["info", str(source) + ".nnc"])
    assert "pixels only" in info.output
    exact = runner.invoke(main, ["-q", "-k", "-c", str(source)]).stdout_bytes
    packed = (tmp_path / "a.png.nnc").read_bytes()
    assert len(packed) < len(exact)  # no recipe to store
    decoded = nncodec.decompress(packed)
    assert decoded != data
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(decoded))), SMOOTH)
    assert "pixels only" not in runner.invoke(main, ["info", "-"], input=exact).output


@pytest.mark.skipif(not SHARED_IMAGES.is_dir(), reason="../shared/data/images is not here")
def test_every_shared_png_is_rebuilt_exactly_or_declined():
    """The recipe layer over every shared PNG (the pixel coders are lossless and tested elsewhere).
    NNCODEC_TEST_FULL_IMAGES=1 checks all of them; CI checks every fifth (they take ~1 min all)."""
    paths = sorted(SHARED_IMAGES.rglob("*.png"))
    if not os.environ.get("NNCODEC_TEST_FULL_IMAGES"):
        paths = paths[::5]
    exact = 0
    for path in paths:
        data = path.read_bytes()
        try:
            layout, pixels = imagefile.parse(data)
        except imagefile.NotSupported:
            continue
        assert imagefile.rebuild(layout, pixels) == data, path
        exact += 1
    assert exact >= len(paths) * 2 // 3, f"only {exact} of {len(paths)} shared PNGs have a recipe"
