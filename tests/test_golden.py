"""Files written by earlier releases must keep decoding: format v1 containers made by nncodec 0.1.0
(raw codec, text codec with model text-v1, image codec with models image-v1 and image-v2, log codec
format 1) and later ones (text format 2 with models text-v2 and text-v3, text format 3, classical
frames). If a change breaks one of these, it broke users' archives: keep the old decoding path (and
model) instead of regenerating the file."""

from pathlib import Path

import pytest

import nncodec

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize(
    "name",
    [
        "sample.raw-v1.nnc",
        "sample.text-v1.nnc",
        "sample.classical-v1.nnc",
        "sample.text-v2.nnc",
        "sample.text-v3.nnc",
        "sample.text-v3-format3.nnc",
    ],
)
def test_old_files_still_decode(name):
    original = (GOLDEN / "sample.txt").read_bytes()
    assert nncodec.decompress((GOLDEN / name).read_bytes()) == original


def test_classical_ppmd_variant_i_files_still_decode():
    """A classical frame whose stream is backend tag 4 (PPMd variant I, pyppmd's Ppmd8)."""
    packed = (GOLDEN / "sample-code.classical-ppmd8.nnc").read_bytes()
    assert packed[25:27] == bytes([4, 10])  # tag byte and PPMd order, after the headers
    assert nncodec.decompress(packed) == (GOLDEN / "sample-code.txt").read_bytes()


def test_old_image_files_still_decode():
    import io

    import numpy as np
    from PIL import Image

    original = (GOLDEN / "sample.ppm").read_bytes()
    assert nncodec.decompress((GOLDEN / "sample.image-v1.nnc").read_bytes()) == original
    near = nncodec.decompress((GOLDEN / "sample.image-v1-near2.nnc").read_bytes())  # checksummed
    a, b = (np.asarray(Image.open(io.BytesIO(d))).astype(int) for d in (original, near))
    assert a.shape == b.shape and np.abs(a - b).max() <= 2


def test_image_v2_files_still_decode():
    original = (GOLDEN / "sample.ppm").read_bytes()
    assert nncodec.decompress((GOLDEN / "sample.image-v2.nnc").read_bytes()) == original


def test_image_v3_format2_files_still_decode():
    """Image format 2 (the mixer's five contexts) with model image-v3, lossless and max error 1."""
    import io

    import numpy as np
    from PIL import Image

    original = (GOLDEN / "sample.ppm").read_bytes()
    lossless = (GOLDEN / "sample.image-v3.nnc").read_bytes()
    assert b"image-v3" in lossless and nncodec.decompress(lossless) == original
    near = nncodec.decompress((GOLDEN / "sample.image-v3-near1.nnc").read_bytes())  # checksummed
    a, b = (np.asarray(Image.open(io.BytesIO(d))).astype(int) for d in (original, near))
    assert a.shape == b.shape and np.abs(a - b).max() <= 1 and (a != b).any()


def test_image_v4_files_still_decode():
    """Image format 2 with model image-v4 (256 wide)."""
    packed = (GOLDEN / "sample.image-v4.nnc").read_bytes()
    assert b"image-v4" in packed and nncodec.decompress(packed) == (GOLDEN / "sample.ppm").read_bytes()


def test_image_v5_files_still_decode():
    """Image format 2 with model image-v5 (image-v4's shape, trained with mirrored copies)."""
    packed = (GOLDEN / "sample.image-v5.nnc").read_bytes()
    assert b"image-v5" in packed and nncodec.decompress(packed) == (GOLDEN / "sample.ppm").read_bytes()


def test_image_v3_format2_flags_still_decode():
    """Image format 2 with both model flags set (exact-value mixer, value bitmaps): a screen-like
    40x24 image."""
    import io

    from nncodec.core import engine

    original = (GOLDEN / "sample-screen.ppm").read_bytes()
    packed = (GOLDEN / "sample-screen.image-v3.nnc").read_bytes()
    assert engine.scan_frames(io.BytesIO(packed))[0].block_codecs == {"image": 1}
    assert bytes([0, 3]) in packed  # method 0 (model), flags 1 | 2
    assert nncodec.decompress(packed) == original


def test_image_method2_palette_files_still_decode():
    """Image payload method 2 with transform 8 (palette): a synthetic 160x120 screen of 7 colours."""
    from nncodec.image import classical

    transforms = []
    decode = classical.decode

    def recording(body, shape):
        transforms.append(body[0])
        return decode(body, shape)

    original = (GOLDEN / "sample-screen-palette.ppm").read_bytes()
    packed = (GOLDEN / "sample-screen-palette.image-v5.nnc").read_bytes()
    classical.decode = recording
    try:
        assert nncodec.decompress(packed) == original
    finally:
        classical.decode = decode
    assert transforms == [classical.PALETTE]


def test_image_pc_v1_files_still_decode():
    """An image-pc frame (format 1, model pc-patch-rgb-v1): a 64x48 RGB PPM, byte-exact."""
    original = (GOLDEN / "sample-pc.ppm").read_bytes()
    assert nncodec.decompress((GOLDEN / "sample.image-pc-v1.nnc").read_bytes()) == original


def test_log_v1_files_still_decode():
    """A log-codec frame (format 1): CRLF and LF lines, a final line without newline, numbers,
    decimals, addresses, dictionary columns and merged templates."""
    original = (GOLDEN / "sample.log").read_bytes()
    assert nncodec.decompress((GOLDEN / "sample.log-v1.nnc").read_bytes()) == original


def test_log_access_mode_files_still_decode():
    """A log-codec frame in payload mode 2: a web access log as field streams regrouped by client."""
    original = (GOLDEN / "sample-access.log").read_bytes()
    packed = (GOLDEN / "sample-access.log-mode2.nnc").read_bytes()
    assert nncodec.decompress(packed) == original


def test_log_v2_files_still_decode():
    """A log-codec frame in format 2: human-readable sizes dropped and recomputed (formula 1)."""
    original = (GOLDEN / "sample-sizes.log").read_bytes()
    assert nncodec.decompress((GOLDEN / "sample-sizes.log-v2.nnc").read_bytes()) == original


def test_log_v3_files_still_decode():
    """A log-codec frame in format 3, mode 3: Zeek UIDs as 96-bit values, tab-separated rows with
    number columns."""
    original = (GOLDEN / "sample-zeek.log").read_bytes()
    assert nncodec.decompress((GOLDEN / "sample-zeek.log-v3.nnc").read_bytes()) == original


def test_log_v4_files_still_decode():
    """A log-codec frame in format 4 listing two rewrites (derived sizes, then Zeek UIDs), mode 0."""
    original = (GOLDEN / "sample-sizes.log").read_bytes() + (GOLDEN / "sample-zeek.log").read_bytes()
    assert nncodec.decompress((GOLDEN / "sample-sizes-zeek.log-v4.nnc").read_bytes()) == original


def test_log_v4_field_reference_files_still_decode():
    """A log-codec frame in format 4 with rewrite 3: JSON lines whose Message repeats their fields."""
    original = (GOLDEN / "sample-events.jsonl").read_bytes()
    assert nncodec.decompress((GOLDEN / "sample-events.jsonl-v4.nnc").read_bytes()) == original


def test_log_v4_uuid_files_still_decode():
    """A log-codec frame in format 4 with rewrite 4: UUIDs taken out as 16 bytes each."""
    original = (GOLDEN / "sample-cloudtrail.jsonl").read_bytes()
    packed = (GOLDEN / "sample-cloudtrail.jsonl-v4.nnc").read_bytes()
    assert nncodec.decompress(packed) == original


def test_log_v4_line_group_files_still_decode(monkeypatch):
    """A log-codec frame in format 4 with rewrite 5: JSON lines regrouped by a key's value."""
    from nncodec.log.rewrites import linegroups

    original = (GOLDEN / "sample-flows.jsonl").read_bytes()
    packed = (GOLDEN / "sample-flows.jsonl-v4-groups.nnc").read_bytes()
    restored = []
    restore = linegroups.restore
    monkeypatch.setattr(linegroups, "restore", lambda data, ops: restored.append(ops) or restore(data, ops))
    assert nncodec.decompress(packed) == original and len(restored) == 1


def test_image_format4_files_still_decode():
    """Image format 4 (output temperatures) with model image-v5: a photo-like sample whose table of
    temperatures differs by channel and activity level (written with that table forced)."""
    packed = (GOLDEN / "sample.image-v5-format4.nnc").read_bytes()
    assert b"image-v5" in packed and nncodec.decompress(packed) == (GOLDEN / "sample.ppm").read_bytes()


def test_image_format3_files_still_decode():
    """Image format 3 (learned mixer weights) with model image-v5: a photo-like sample (flags 0) and
    a screen-like one with both flags (the exact-value mixer learns too)."""
    for name, original in (
        ("sample.image-v5-format3.nnc", "sample.ppm"),
        ("sample-screen.image-v5-format3.nnc", "sample-screen.ppm"),
    ):
        packed = (GOLDEN / name).read_bytes()
        assert b"image-v5" in packed and nncodec.decompress(packed) == (GOLDEN / original).read_bytes()
