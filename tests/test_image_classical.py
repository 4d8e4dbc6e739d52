"""Method 2 of the image codec: classical pixel coding (nncodec/image/classical.py). Every transform
inverts exactly for any pixels and channel count, damaged bodies fail cleanly, large screens skip
the model, and the codec keeps the smaller of the model's payload and method 2's."""

import io

import numpy as np
import pytest
from conftest import SHARED_DATA
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import nncodec.codecs.image as image_codec
from nncodec.codecs.image import IMAGE_MODEL_ID, ImageCodec
from nncodec.core.errors import CorruptError, NncodecError
from nncodec.core.modelstore import find_model
from nncodec.image import classical, imagefile


def ppm(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "PPM")
    return buffer.getvalue()


def screen(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Windows of flat colour with rows of repeated 'glyphs': what screen captures look like."""
    rng = np.random.default_rng(seed)
    pixels = np.full((height, width, 3), (236, 238, 240), np.uint8)
    glyphs = rng.random((8, 9, 6)) < 0.35
    for _ in range(6):
        top, left = rng.integers(0, height - 40), rng.integers(0, width - 60)
        rows, cols = rng.integers(40, 200), rng.integers(60, 400)
        pixels[top : top + rows, left : left + cols] = rng.integers(0, 256, 3)
    for top in range(4, height - 9, 14):
        for left in range(4, width // 2, 7):
            pixels[top : top + 9, left : left + 6][glyphs[rng.integers(0, 8)]] = (20, 20, 30)
    return pixels


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 4))),
    st.sampled_from(classical.TRANSFORMS),
)
def test_every_transform_inverts_exactly(pixels, transform):
    data = classical.forward(pixels, transform)
    assert len(data) == pixels.size
    assert np.array_equal(classical.inverse(data, pixels.shape, transform), pixels)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_body_round_trips_and_takes_the_smallest_candidate(channels):
    pixels = screen(120, 160)[..., :1].repeat(channels, axis=2) if channels != 3 else screen(120, 160)
    body = classical.encode(pixels)
    assert np.array_equal(classical.decode(body, pixels.shape), pixels)
    raw = classical.forward(pixels, classical.NONE)
    from nncodec.entropy.backends import coded_size

    assert len(body) <= 1 + coded_size(raw, ("ppmd", 32))  # raw bytes are one of the candidates


def test_damaged_bodies_fail_cleanly():
    pixels = screen(60, 80, seed=2)
    body = classical.encode(pixels)
    with pytest.raises(CorruptError, match="transform"):
        classical.decode(bytes([99]) + body[1:], pixels.shape)
    with pytest.raises(CorruptError):
        classical.decode(b"", pixels.shape)
    with pytest.raises(CorruptError):  # a stream of another size
        classical.decode(classical.encode(pixels[:30]), pixels.shape)
    rng = np.random.default_rng(4)
    for _ in range(30):
        damaged = bytearray(body)
        damaged[rng.integers(1, len(damaged))] ^= 1 << int(rng.integers(8))
        try:
            decoded = classical.decode(bytes(damaged), pixels.shape)
        except NncodecError:
            continue
        assert decoded.shape == pixels.shape  # damage the backend cannot see gives other pixels


def palette_body(pixels: np.ndarray, transform: int) -> bytes:
    """A method-2 body of this palette transform (whether or not the encoder would pick it)."""
    from nncodec.entropy.backends import encode_with_best

    palette, indices = classical.palette_of(pixels)
    head = classical._palette_head(palette, transform)
    return head + encode_with_best(classical._index_bytes(indices, len(palette), transform), [("ppmd", 8)])


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.uint8, st.tuples(*[st.integers(1, 9)] * 2, st.integers(1, 4)), elements=st.integers(0, 3)),
    st.sampled_from(classical.PALETTE_TRANSFORMS),
)
def test_palette_bodies_invert_exactly(pixels, transform):
    palette, indices = classical.palette_of(pixels)
    assert len(palette) == len(np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0))
    assert np.array_equal(palette[indices], pixels)
    assert np.array_equal(classical.decode(palette_body(pixels, transform), pixels.shape), pixels)


@pytest.mark.parametrize("transform", classical.PALETTE_TRANSFORMS)
def test_palettes_of_more_than_256_colours_take_two_bytes_per_index(transform):
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 40, (50, 60, 3), dtype=np.uint8)  # ~3,000 colours
    palette, indices = classical.palette_of(pixels)
    assert 256 < len(palette) <= classical.MAX_COLOURS
    assert len(classical._index_bytes(indices, len(palette), transform)) == 2 * 50 * 60
    assert np.array_equal(classical.decode(palette_body(pixels, transform), pixels.shape), pixels)
    assert classical.palette_of(rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)) is None  # > 65,536


def test_few_colours_code_as_a_palette_and_damaged_palettes_fail_cleanly():
    pixels = screen(120, 160, seed=3)
    body = classical.encode(pixels)
    assert body[0] == classical.PALETTE  # a screen of a few flat colours: the palette wins
    assert np.array_equal(classical.decode(body, pixels.shape), pixels)
    palette, indices = classical.palette_of(pixels)
    short = classical._palette_head(palette[:-1], classical.PALETTE)  # an index past the palette
    from nncodec.entropy.backends import encode_with_best

    index_bytes = classical._index_bytes(indices, len(palette), classical.PALETTE)
    bad = short + encode_with_best(index_bytes, [("xz", 0)])
    with pytest.raises(CorruptError, match="index out of range"):
        classical.decode(bad, pixels.shape)
    for damaged in (body[:1] + b"\x00" + body[2:], body[:3], body[:1] + b"\xff\xff\xff\x7f"):
        with pytest.raises(CorruptError):
            classical.decode(damaged, pixels.shape)


def test_large_screens_skip_the_model(monkeypatch):
    """Over SCREEN_MODEL_LIMIT subpixels a screen capture is written as method 2 without running
    the model (which took 40 s on a 2.1 MB capture and lost on 9 of 12)."""
    height, width = 800, 1000
    assert height * width * 3 > image_codec.SCREEN_MODEL_LIMIT
    pixels = screen(height, width, seed=5)
    assert image_codec.repeat_share(pixels) > image_codec.EXACT_MIXER_SHARE
    codec = ImageCodec(find_model(IMAGE_MODEL_ID))

    def no_model(*args, **kwargs):
        raise AssertionError("the model ran")

    monkeypatch.setattr(codec, "_encode_stripes", no_model)
    data = ppm(pixels)
    payload = codec.encode_block(data)
    layout, pos = imagefile.Layout.unpack(payload, 0, "image")
    assert payload[pos] == image_codec.METHOD_CLASSICAL
    assert len(payload) >= image_codec.CLASSICAL_TRIAL_SHARE * pos  # the layout is a small share:
    assert not codec.needs_fallback_trial(data, payload)  # zstd could only win by its bytes
    assert codec.decode_block(payload, len(data)) == data
    with pytest.raises(CorruptError):
        codec.decode_block(payload[: pos + 1], len(data))


def test_smaller_of_model_and_method_2_is_kept():
    """A small screen-like image: both are coded, and the payload is the smaller; with method 2 off
    the model's payload is written (never smaller)."""
    pixels = screen(96, 128, seed=7)
    data = ppm(pixels)
    codec = ImageCodec(find_model(IMAGE_MODEL_ID))
    both = codec.encode_block(data)
    model_only = ImageCodec(codec.model)
    model_only.classical_rival = False
    alone = model_only.encode_block(data)
    layout, pos = imagefile.Layout.unpack(both, 0, "image")
    method2 = len(layout.pack()) + 1 + len(classical.encode(pixels))
    assert len(both) == min(len(alone), method2)
    assert codec.decode_block(both, len(data)) == data


def test_shared_screen_captures_code_below_png_and_round_trip():
    """Real captures (gb82's, CC0): method 2 below the PNG files (by 20% at least), exact round trip."""
    folder = SHARED_DATA / "images" / "more" / "gb82_sc_screen"
    if not folder.exists():
        pytest.skip(f"{folder} not present (../shared not mounted)")
    for name in ("graph.png", "terminal.png"):
        png = (folder / name).read_bytes()
        pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        body = classical.encode(pixels)
        assert len(body) < 0.8 * len(png), name  # graph 0.69, terminal 0.42
        assert np.array_equal(classical.decode(body, pixels.shape), pixels)
