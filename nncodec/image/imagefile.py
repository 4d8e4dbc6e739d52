"""Image files <-> (pixels, layout): what the image codec needs to rebuild a file from its pixels.

Two kinds of file are understood; anything else (or anything that fails the round-trip check) is
declined and coded as bytes by another codec:

* **raw** — PNM (P5/P6, 8 or 16 bit), BMP and uncompressed TIFF: Pillow reports where the pixel
  bytes sit (``Image.tile``: offset, box and raw layout). The layout keeps every other byte of the
  file verbatim (the "skeleton") plus each tile's place and layout, so the rebuilt file is
  byte-identical; ``parse`` checks that before accepting a file.
* **png** — non-interlaced PNG with 8-bit gray, gray+alpha, RGB, RGBA or palette pixels, or 16-bit
  gray: every chunk except IDAT is kept verbatim and in order (IHDR, PLTE, tRNS, gAMA, iCCP, tEXt,
  ...). By default the file comes back **byte for byte**: the layout carries a *recipe*
  (nncodec/image/pngdeflate.py: each row's filter type, the zlib parameters that reproduce the IDAT
  stream, the IDAT chunk lengths), and ``parse`` accepts the file only if ``rebuild`` gives back its
  exact bytes. A PNG whose stream no zlib recipe reproduces is declined (NotSupported) and coded as
  bytes. With ``exact_png=False`` (``--png-pixels``, and near-lossless coding) only the pixels, mode
  and other chunks are kept: the IDAT is rewritten as a zlib stream of *stored* deflate blocks with
  filter 0, whose bytes depend on nothing but the pixels.

  The recipe's filter types (one byte per row) are the last ``height`` bytes of the skeleton.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from nncodec.core.detect import PNG_SIGNATURE
from nncodec.core.framing import encode_varint, payload_varint
from nncodec.entropy.backends import zstd_compress, zstd_decompress
from nncodec.image import pngdeflate

#: Pillow modes coded as 8-bit channels, and the 16-bit ones (big- or little-endian gray, 16-bit PNM)
MODES_8BIT = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "P": 1}
MODES_16BIT = {"I;16": 1, "I;16B": 1, "I;16L": 1, "I": 1}  # "I": 16-bit PNM (values < 2^16)
MAX_PIXELS = 1 << 28
MAX_SKELETON = 64 << 20  # a decoded skeleton larger than this is corruption


class NotSupported(Exception):
    """This file is not an image the image codec rebuilds exactly (it is coded as bytes instead)."""


@dataclass
class Layout:
    """Everything about an image file except its pixels."""

    kind: str  # "png" or "raw"
    mode: str  # Pillow mode of the pixels
    height: int
    width: int
    channels: int
    bits: int  # 8 or 16
    skeleton: bytes  # png: all chunks but IDAT, with the IDAT position; raw: bytes outside tiles
    tiles: list[dict] = field(default_factory=list)  # raw: offset, length, box, rawmode, stride, ystep
    idat_at: int = 0  # png: offset in the skeleton where the IDAT chunks go
    recipe: dict | None = None  # png: how to rebuild the exact IDAT bytes (None: pixels only)

    def to_json(self) -> bytes:
        fields = {k: v for k, v in self.__dict__.items() if k != "skeleton"}
        if self.recipe is None:  # pixels-only layouts keep the JSON they had before recipes existed
            del fields["recipe"]
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, text: bytes, skeleton: bytes) -> Layout:
        fields = json.loads(text)
        if not isinstance(fields, dict):
            raise ValueError("image layout is not an object")
        layout = cls(skeleton=skeleton, **fields)
        layout.check()
        return layout

    def check(self) -> None:
        if self.kind not in ("png", "raw") or self.bits not in (8, 16):
            raise ValueError("image layout kind/bits out of range")
        if not (0 < self.height and 0 < self.width and self.height * self.width <= MAX_PIXELS):
            raise ValueError("image size out of range")
        expected = MODES_8BIT.get(self.mode) if self.bits == 8 else MODES_16BIT.get(self.mode)
        if expected != self.channels:
            raise ValueError("image mode and channels disagree")
        if self.recipe is not None:
            self._check_recipe()

    def _check_recipe(self) -> None:
        recipe = self.recipe
        ranges = {"level": (0, 9), "wbits": (8, 15), "memlevel": (1, 9), "strategy": (0, 4)}
        if (
            self.kind != "png"
            or not isinstance(recipe, dict)
            or set(recipe) != {*ranges, "idat"}
            or any(type(recipe[k]) is not int or not lo <= recipe[k] <= hi for k, (lo, hi) in ranges.items())
            or not isinstance(recipe["idat"], list)
            or not all(isinstance(r, list) and len(r) == 2 and all(isinstance(v, int) and v >= 0 for v in r)
                       for r in recipe["idat"])  # fmt: skip
            or len(self.skeleton) < self.idat_at + self.height
        ):
            raise ValueError("PNG recipe out of range")

    @property
    def params(self) -> pngdeflate.Params:
        assert self.recipe is not None
        return self.recipe["level"], self.recipe["wbits"], self.recipe["memlevel"], self.recipe["strategy"]

    def pixels_only(self) -> Layout:
        """The same layout without the PNG recipe (the file comes back with the same pixels only)."""
        if self.recipe is None:
            return self
        chunks = self.skeleton[: len(self.skeleton) - self.height]
        return Layout(self.kind, self.mode, self.height, self.width, self.channels, self.bits, chunks,
                      idat_at=self.idat_at)  # fmt: skip

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.height, self.width, self.channels

    def fits(self, file_size: int) -> bool:
        """Whether a file of ``file_size`` bytes can hold these pixels: a decoder's bound on what it
        allocates. A PNG rebuilt by its recipe deflates them (at most 1032:1), other files hold them
        uncompressed."""
        pixel_bytes = self.height * self.width * self.channels * (self.bits // 8)
        return pixel_bytes <= (file_size * 1032 + 4096 if self.recipe is not None else file_size)

    def pack(self) -> bytes:
        """The layout as the image codecs store it::

            varint len(json) | json (``to_json``) | varint len(skeleton) | zstd(skeleton)
        """
        head = self.to_json()
        skeleton = zstd_compress(self.skeleton)
        return encode_varint(len(head)) + head + encode_varint(len(skeleton)) + skeleton

    @classmethod
    def unpack(cls, payload: bytes, pos: int, what: str) -> tuple[Layout, int]:
        """Inverse of ``pack`` at ``payload[pos:]``: the layout and the position after it."""
        size, pos = payload_varint(payload, pos, what)
        head = payload[pos : pos + size]
        pos += size
        size, pos = payload_varint(payload, pos, what)
        skeleton = zstd_decompress(payload[pos : pos + size], MAX_SKELETON, f"{what} skeleton")
        return cls.from_json(head, skeleton), pos + size


def parse(data: bytes, exact_png: bool = True) -> tuple[Layout, np.ndarray]:
    """-> (layout, pixels (H, W, C) uint8 or uint16); raises NotSupported. ``exact_png=False`` keeps
    a PNG's pixels and chunks but not its IDAT bytes (see the module docstring)."""
    try:
        if data.startswith(PNG_SIGNATURE):
            layout, pixels = _parse_png(data, exact_png)
        else:
            layout, pixels = _parse_raw(data)
        rebuilt = rebuild(layout, pixels)
    except NotSupported:
        raise
    except (OSError, ValueError, SyntaxError, KeyError, TypeError, struct.error, zlib.error) as exc:
        raise NotSupported(f"not an image this codec rebuilds ({exc})") from exc
    if layout.kind == "raw" and rebuilt != data:
        raise NotSupported("raw image bytes are not reproduced exactly by their layout")
    if layout.recipe is not None and rebuilt != data:
        raise NotSupported("PNG bytes are not reproduced exactly by their recipe")
    if layout.kind == "png" and layout.recipe is None:
        mode, again = _pillow_pixels(rebuilt)
        if mode != layout.mode or not np.array_equal(again, pixels):
            raise NotSupported("PNG pixels are not reproduced exactly")
    return layout, pixels


def _pillow_pixels(data: bytes) -> tuple[str, np.ndarray]:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        mode = im.mode
        if mode in MODES_16BIT:
            pixels = np.asarray(im).astype(np.uint16)
        elif mode in MODES_8BIT:
            pixels = np.asarray(im)
        else:
            raise NotSupported(f"pixel mode {mode} not coded")
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return mode, np.ascontiguousarray(pixels)


# -- PNG ------------------------------------------------------------------------------------------


def _chunks(data: bytes) -> list[tuple[bytes, bytes, bytes]]:
    """PNG chunks as (type, raw chunk bytes, data)."""
    chunks, pos = [], len(PNG_SIGNATURE)
    while pos < len(data):
        if pos + 12 > len(data):
            raise NotSupported("truncated PNG chunk")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise NotSupported("truncated PNG chunk")
        chunks.append((kind, data[pos:end], data[pos + 8 : pos + 8 + length]))
        pos = end
        if kind == b"IEND":
            break
    if pos != len(data):
        raise NotSupported("data after the PNG IEND chunk")
    return chunks


def _parse_png(data: bytes, exact: bool) -> tuple[Layout, np.ndarray]:
    chunks = _chunks(data)
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        raise NotSupported("PNG without IHDR/IEND")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][2])
    if interlace:
        raise NotSupported("interlaced PNG")
    if not ((depth == 8 and colour in (0, 2, 3, 4, 6)) or (depth == 16 and colour == 0)):
        raise NotSupported(f"PNG bit depth {depth} with colour type {colour}")
    kinds = [kind for kind, _, _ in chunks]
    first = kinds.index(b"IDAT") if b"IDAT" in kinds else -1
    if first < 0 or any(k != b"IDAT" for k in kinds[first : first + kinds.count(b"IDAT")]):
        raise NotSupported("PNG IDAT chunks missing or not consecutive")
    skeleton = PNG_SIGNATURE + b"".join(raw for _, raw, _ in chunks[:first])
    idat_at = len(skeleton)
    tail = b"".join(raw for kind, raw, _ in chunks[first:] if kind != b"IDAT")
    mode, pixels = _pillow_pixels(data)
    if pixels.shape[:2] != (height, width):
        raise NotSupported("PNG size disagrees with its pixels")
    bits = 16 if depth == 16 else 8
    layout = Layout("png", mode, height, width, pixels.shape[2], bits, skeleton + tail, idat_at=idat_at)
    layout.check()
    if exact:
        idat = [body for kind, _, body in chunks if kind == b"IDAT"]
        layout.recipe, types = _find_recipe(layout, pixels, idat)
        layout.skeleton += types
    return layout, pixels


def _scanline_rows(layout: Layout, pixels: np.ndarray) -> np.ndarray:
    """The unfiltered PNG rows of these pixels, (H, bytes per row) uint8."""
    height, width, channels = layout.shape
    if layout.bits == 16:
        return pixels.astype(">u2").view(np.uint8).reshape(height, width * channels * 2)
    return pixels.astype(np.uint8).reshape(height, width * channels)


def _find_recipe(layout: Layout, pixels: np.ndarray, idat: list[bytes]) -> tuple[dict, bytes]:
    """The recipe that rebuilds these IDAT chunks from the pixels, and the rows' filter types."""
    stream = b"".join(idat)
    rows = _scanline_rows(layout, pixels)
    expected = rows.size + layout.height
    inflater = zlib.decompressobj()
    scanlines = inflater.decompress(stream, expected + 1)
    if len(scanlines) != expected or not inflater.eof or inflater.unused_data:
        raise NotSupported("PNG IDAT stream is not one zlib stream of exactly the image's scanlines")
    types = np.frombuffer(scanlines, np.uint8)[:: rows.shape[1] + 1].copy()
    if types.max(initial=0) > 4:
        raise NotSupported("PNG row filter type out of range")
    bpp = max(1, layout.channels * layout.bits // 8)
    if pngdeflate.filter_rows(rows, types, bpp).tobytes() != scanlines:
        raise NotSupported("PNG scanlines disagree with the decoded pixels")
    params = pngdeflate.find_params(scanlines, stream)
    if params is None:
        raise NotSupported("PNG deflate stream not reproducible by zlib (another encoder wrote it)")
    level, wbits, memlevel, strategy = params
    recipe = {"level": level, "wbits": wbits, "memlevel": memlevel, "strategy": strategy,
              "idat": pngdeflate.runs([len(body) for body in idat])}  # fmt: skip
    return recipe, types.tobytes()


def _stored_zlib(raw: bytes) -> bytes:
    """A zlib stream of stored (uncompressed) deflate blocks: fully determined by ``raw``."""
    out = bytearray(b"\x78\x01")
    block = 65535
    for start in range(0, max(len(raw), 1), block):
        piece = raw[start : start + block]
        final = 1 if start + block >= len(raw) else 0
        out += bytes([final]) + struct.pack("<HH", len(piece), len(piece) ^ 0xFFFF) + piece
    out += struct.pack(">I", zlib.adler32(raw))
    return bytes(out)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _rebuild_png(layout: Layout, pixels: np.ndarray) -> bytes:
    rows = _scanline_rows(layout, pixels)
    if layout.recipe is None:
        scanlines = np.concatenate([np.zeros((layout.height, 1), np.uint8), rows], axis=1).tobytes()
        stream = _stored_zlib(scanlines)
        bodies = [stream[a : a + (1 << 20)] for a in range(0, len(stream), 1 << 20)]
        chunks = layout.skeleton
    else:
        chunks = layout.skeleton[: len(layout.skeleton) - layout.height]
        types = np.frombuffer(layout.skeleton[len(chunks) :], np.uint8)
        if types.max(initial=0) > 4:
            raise ValueError("PNG row filter type out of range")
        bpp = max(1, layout.channels * layout.bits // 8)
        stream = pngdeflate.compress(pngdeflate.filter_rows(rows, types, bpp).tobytes(), layout.params)
        bodies = pngdeflate.split_runs(stream, layout.recipe["idat"])
    idat = b"".join(_png_chunk(b"IDAT", body) for body in bodies)
    return chunks[: layout.idat_at] + idat + chunks[layout.idat_at :]


# -- raw layouts (PNM, BMP, uncompressed TIFF) ----------------------------------------------------


def _parse_raw(data: bytes) -> tuple[Layout, np.ndarray]:
    with Image.open(io.BytesIO(data)) as im:
        if im.format not in ("PPM", "BMP", "TIFF", "DIB"):
            raise NotSupported(f"image format {im.format} not coded")
        if getattr(im, "n_frames", 1) != 1:
            raise NotSupported("multi-frame image")
        tiles = list(im.tile)
        if not tiles or any(t[0] != "raw" for t in tiles):
            raise NotSupported("compressed pixel data")
        mode = im.mode
        described = []
        for _, box, offset, args in tiles:
            args = args if isinstance(args, tuple) else (args,)
            rawmode, stride, ystep = (*args, 0, 1)[:3]
            described.append({"offset": int(offset), "box": [int(v) for v in box],
                              "rawmode": rawmode, "stride": int(stride), "ystep": int(ystep)})  # fmt: skip
        im.load()
        if mode in MODES_16BIT:
            wide = np.asarray(im)
            if wide.min() < 0 or wide.max() > 65535:
                raise NotSupported("pixel values beyond 16 bits")
            pixels, bits = wide.astype(np.uint16), 16
        elif mode in MODES_8BIT:
            pixels, bits = np.asarray(im), 8
        else:
            raise NotSupported(f"pixel mode {mode} not coded")
    pixels = np.ascontiguousarray(pixels[..., None] if pixels.ndim == 2 else pixels)
    image = _to_pillow(pixels, mode)
    pieces, pos = [], 0
    for tile in sorted(described, key=lambda t: t["offset"]):
        tile["length"] = len(_tile_bytes(image, tile))
        if tile["offset"] < pos:
            raise NotSupported("overlapping pixel tiles")
        pieces.append(data[pos : tile["offset"]])
        pos = tile["offset"] + tile["length"]
    pieces.append(data[pos:])
    layout = Layout("raw", mode, pixels.shape[0], pixels.shape[1], pixels.shape[2], bits, b"".join(pieces),
                    tiles=sorted(described, key=lambda t: t["offset"]))  # fmt: skip
    layout.check()
    return layout, pixels


def _to_pillow(pixels: np.ndarray, mode: str) -> Image.Image:
    height, width = pixels.shape[:2]
    if mode == "I":
        return Image.fromarray(pixels[..., 0].astype(np.int32), "I")
    if mode in MODES_16BIT:
        order = ">u2" if mode == "I;16B" else "<u2"
        return Image.frombytes(mode, (width, height), pixels[..., 0].astype(order).tobytes())
    array = pixels[..., 0] if pixels.shape[2] == 1 else pixels
    return Image.fromarray(np.ascontiguousarray(array, np.uint8), mode)


def _tile_bytes(image: Image.Image, tile: dict) -> bytes:
    box = tuple(tile["box"])
    region = image if box == (0, 0, *image.size) else image.crop(box)
    return region.tobytes("raw", (tile["rawmode"], tile["stride"], tile["ystep"]))


def _rebuild_raw(layout: Layout, pixels: np.ndarray) -> bytes:
    image = _to_pillow(pixels, layout.mode)
    out, pos = bytearray(), 0
    for tile in layout.tiles:
        gap = tile["offset"] - len(out)
        out += layout.skeleton[pos : pos + gap]
        pos += gap
        piece = _tile_bytes(image, tile)
        if len(piece) != tile["length"]:
            raise ValueError("image tile size disagrees with its layout")
        out += piece
    out += layout.skeleton[pos:]
    return bytes(out)


def rebuild(layout: Layout, pixels: np.ndarray) -> bytes:
    """The file for these pixels: the original bytes (raw), or a PNG with the original's chunks."""
    if pixels.shape != layout.shape:
        raise ValueError("pixels do not match the image layout")
    return _rebuild_png(layout, pixels) if layout.kind == "png" else _rebuild_raw(layout, pixels)
