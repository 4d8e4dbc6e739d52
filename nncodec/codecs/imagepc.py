"""The ``image-pc`` codec: a probabilistic circuit (hidden Chow-Liu tree) gives every pixel's exact
conditional distribution; the range coder codes it.

Two kinds of input:

* **idx image files** (MNIST's format: magic ``00 00 08 03``, big-endian u32 count, rows, cols, then
  the pixels, nothing after them) of 28 x 28 images: every image is one sample of a 784-variable
  circuit (``pc-mnist-v2`` or ``pc-fashion-v2``; the encoder scores both on the first images and
  records the better one in the frame).
* **image files** nncodec/image/imagefile.py rebuilds (PNG, PNM, BMP, TIFF; 8-bit channels): the image is
  padded to whole 8 x 8 patches by repeating its last row and column; RGB pixels become
  (R - G, G, B - G) mod 256 ("subtract green"); every channel is replaced by its 2-D differences
  (x - W - N + NW) mod 256 (128 outside the image); the result is cut into 8 x 8 patches, each one
  sample: RGB images as 8 x 8 x 3 patches (``pc-patch-rgb-v1``), any other channel count plane by
  plane as 8 x 8 x 1 (``pc-patch-gray-v1``). The decoder undoes the differences with two cumulative
  sums, adds green back and drops the padding. 16-bit images are declined (the engine codes them
  with zstd).

Samples are coded in streams of ``chunk`` samples; each stream is one batched walk of
nncodec/image/circuit.py (variables in the circuit's preorder, all samples of the stream at each step),
so the streams decode independently (``-T`` spreads them over threads; the output never depends on
it). The circuit's arithmetic is exact integer arithmetic (see nncodec/image/circuit.py).

Payload::

    u8 kind
    kind 0 (idx):   varint count | varint rows | varint cols | streams
    kind 1 (image): varint len(layout) | layout JSON | varint len(skeleton) | zstd(skeleton) | u8 planes
                    (0: RGB patches, 1: one plane per channel) | streams
    streams:        varint chunk | varint S | S x varint size | S range-coded streams

Frame params: format version (1), then an optional flags byte: 1 when a PNG was coded as pixels only
(``--png-pixels``); without it a PNG comes back byte for byte (nncodec/image/imagefile.py).
"""

from __future__ import annotations

import numpy as np

from nncodec.codecs.base import BlockDeclined, Codec, damage_is_corruption
from nncodec.core import modelstore
from nncodec.core.detect import IDX3_UBYTE, idx_header
from nncodec.core.errors import CodecUnavailableError, CorruptError, ModelError, TruncatedError
from nncodec.core.framing import encode_varint, join_streams, payload_varint, split_streams
from nncodec.core.modelstore import LoadedModel, find_model
from nncodec.entropy.rangecoder import SymbolDecoder, SymbolEncoder
from nncodec.image import imagefile
from nncodec.image.circuit import HCLT
from nncodec.image.transforms import forward_transform, from_patches, inverse_transform, to_patches

FORMAT_VERSION = 1
FLAG_PNG_PIXELS = 1
KIND_IDX, KIND_IMAGE = 0, 1
PLANES_RGB, PLANES_EACH = 0, 1
IDX_MODELS = ("pc-mnist-v2", "pc-fashion-v2")
RGB_MODEL, GRAY_MODEL = "pc-patch-rgb-v1", "pc-patch-gray-v1"
CHUNK = 1024  # samples per stream
SCORE_SAMPLES = 64  # idx images scored to choose the model


class ImagePCCodec(Codec):
    codec_id = 6
    name = "image-pc"
    needs_whole_input = True
    max_block_size = 1 << 30
    memory_base = 4 << 20
    memory_per_byte = (120.0, 120.0)  # image codecs: per byte of the file (a PNG holds 2-3x in pixels)

    def __init__(self, model: LoadedModel, png_pixels: bool = False) -> None:
        self._model = model
        self.png_pixels = png_pixels  # asked for: code PNGs as pixels only
        self.png_pixels_used = False  # a PNG was coded so (recorded in the params)

    @property
    def model(self) -> LoadedModel:
        return self._model

    @property
    def circuit(self) -> HCLT:
        return modelstore.load(self._model, HCLT.load)

    @classmethod
    def for_encoding(cls, sample: bytes, **options: object) -> ImagePCCodec:
        if options.get("max_error"):
            raise CodecUnavailableError("the image-pc codec is lossless only (--max-error needs nextpixel)")
        header = idx_header(sample)
        if header is None:  # the encoder switches to the gray model if it needs it
            return cls(find_model(RGB_MODEL), png_pixels=bool(options.get("png_pixels")))
        models = []
        for model_id in IDX_MODELS:
            try:
                models.append(find_model(model_id))
            except ModelError:
                continue
        if not models:
            raise ModelError(f"no idx model installed ({', '.join(IDX_MODELS)})")
        count, rows, cols = header
        take = min(SCORE_SAMPLES, count, max(0, (len(sample) - 16) // max(1, rows * cols)))
        if len(models) == 1 or take == 0 or (rows, cols) != (28, 28):
            return cls(models[0])
        images = np.frombuffer(sample, np.uint8, take * rows * cols, 16).reshape(take, -1)
        costs = [_ideal_bits(modelstore.load(m, HCLT.load), images) for m in models]
        return cls(models[int(np.argmin(costs))])

    @classmethod
    def from_header(cls, params: bytes, model: LoadedModel | None) -> ImagePCCodec:
        if params not in (bytes([FORMAT_VERSION]), bytes([FORMAT_VERSION, FLAG_PNG_PIXELS])):
            raise CorruptError(f"image-pc codec parameters {params.hex()} not understood (newer nncodec?)")
        if model is None:
            raise CorruptError("image-pc frame names no model")
        codec = cls(model)
        codec.png_pixels_used = len(params) == 2
        return codec

    def params(self) -> bytes:
        return bytes([FORMAT_VERSION, FLAG_PNG_PIXELS] if self.png_pixels_used else [FORMAT_VERSION])

    @classmethod
    def describe_params(cls, params: bytes) -> list[tuple[str, str]]:
        if params[:1] != bytes([FORMAT_VERSION]) or len(params) > 2:
            return []
        described = [("pixels", "lossless, probabilistic circuit (HCLT)")]
        if params[1:] == bytes([FLAG_PNG_PIXELS]):
            described.append(("png", "pixels only: the same pixels, not the same file bytes"))
        return described

    def needs_fallback_trial(self, data: bytes, payload: bytes) -> bool:
        return len(payload) > len(data) // 4  # zstd cannot beat a quarter of an image

    # -- encoding --------------------------------------------------------------------------------

    def encode_block(self, data: bytes) -> bytes:
        return self.encode_block_with_output(data)[0]

    def encode_block_with_output(self, data: bytes) -> tuple[bytes, bytes]:
        header = idx_header(data)
        if header is not None:
            return self._encode_idx(data, header), data
        try:
            layout, pixels = imagefile.parse(data, exact_png=not self.png_pixels)
        except imagefile.NotSupported as exc:
            raise BlockDeclined(str(exc)) from exc
        self.png_pixels_used |= layout.kind == "png" and self.png_pixels
        if layout.bits != 8:
            raise BlockDeclined("the image-pc codec codes 8-bit images only")
        planes = PLANES_RGB if layout.channels == 3 else PLANES_EACH
        if planes == PLANES_EACH and self._model.model_id != GRAY_MODEL:
            try:
                self._model = find_model(GRAY_MODEL)
            except ModelError as exc:
                raise BlockDeclined(str(exc)) from exc
        samples = self._image_samples(pixels, planes)
        payload = bytes([KIND_IMAGE]) + layout.pack() + bytes([planes]) + self._encode_samples(samples)
        exact = layout.kind == "raw" or layout.recipe is not None  # parse checked that rebuild gives data
        output = data if exact else imagefile.rebuild(layout, pixels)
        return payload, output

    def _encode_idx(self, data: bytes, header: tuple[int, int, int]) -> bytes:
        count, rows, cols = header
        shape = self.circuit.config.shape
        if (rows, cols, 1) != shape or count == 0 or self.circuit.config.transform != "none":
            raise BlockDeclined(f"idx images of {rows}x{cols}: the model codes {shape[0]}x{shape[1]}")
        if len(data) != 16 + count * rows * cols:
            raise BlockDeclined("idx file size does not match its header")
        images = np.frombuffer(data, np.uint8, count * rows * cols, 16).reshape(count, rows * cols)
        head = bytes([KIND_IDX]) + encode_varint(count) + encode_varint(rows) + encode_varint(cols)
        return head + self._encode_samples(images)

    def _image_samples(self, pixels: np.ndarray, planes: int) -> np.ndarray:
        size = self.circuit.config.shape[0]
        h, w, _ = pixels.shape
        padded = np.pad(pixels, ((0, -h % size), (0, -w % size), (0, 0)), mode="edge")
        values = forward_transform(padded, self.circuit.config.transform)
        if planes == PLANES_RGB:
            return to_patches(values, size)
        return np.concatenate([to_patches(values[..., c : c + 1], size) for c in range(values.shape[2])])

    def _encode_samples(self, samples: np.ndarray) -> bytes:
        circuit = self.circuit
        if samples.shape[1] != circuit.config.size:
            raise BlockDeclined("samples do not fit the model")
        chunks = [samples[a : a + CHUNK] for a in range(0, len(samples), CHUNK)]

        def encode(chunk: np.ndarray) -> bytes:
            encoder = SymbolEncoder()
            values = chunk.astype(np.int64)

            def code(v: int, part: int, freqs: np.ndarray) -> np.ndarray:
                symbols = values[:, v] >> 4 if part == 0 else values[:, v] & 15
                encoder.encode(symbols, freqs)
                return symbols

            circuit.walk(len(chunk), code)
            return encoder.finish()

        streams = self.map_parallel(encode, chunks)
        return encode_varint(CHUNK) + encode_varint(len(streams)) + join_streams(streams)

    # -- decoding --------------------------------------------------------------------------------

    def decode_block(self, payload: bytes, original_size: int) -> bytes:
        with damage_is_corruption("image-pc payload"):
            return self._decode(payload, original_size)

    def _decode(self, payload: bytes, original_size: int) -> bytes:
        if not payload:
            raise CorruptError("image-pc payload empty")
        kind, pos = payload[0], 1
        shape = self.circuit.config.shape
        if kind == KIND_IDX:
            count, pos = payload_varint(payload, pos, "image-pc")
            rows, pos = payload_varint(payload, pos, "image-pc")
            cols, pos = payload_varint(payload, pos, "image-pc")
            if (rows, cols, 1) != shape or 16 + count * rows * cols != original_size:
                raise CorruptError("idx dimensions disagree with the model or the block size")
            images = self._decode_samples(payload, pos, count)
            head = IDX3_UBYTE + b"".join(n.to_bytes(4, "big") for n in (count, rows, cols))
            return head + images.tobytes()
        if kind != KIND_IMAGE:
            raise CorruptError(f"image-pc payload kind {kind} not understood")
        layout, pos = imagefile.Layout.unpack(payload, pos, "image-pc")
        if pos >= len(payload) or layout.bits != 8:
            raise CorruptError("image-pc payload truncated or not an 8-bit image")
        planes, pos = payload[pos], pos + 1
        h, w, c = layout.shape
        if not layout.fits(original_size):
            raise CorruptError("image larger than the block it decodes to")  # bounds what we allocate
        patch = shape[0]
        ph, pw = h + -h % patch, w + -w % patch
        if planes == PLANES_RGB and c == 3 and shape == (patch, patch, 3):
            samples = self._decode_samples(payload, pos, ph * pw // patch**2)
            values = from_patches(samples, ph, pw, 3, patch)
        elif planes == PLANES_EACH and shape == (patch, patch, 1):
            per_plane = ph * pw // patch**2
            samples = self._decode_samples(payload, pos, per_plane * c)
            values = np.concatenate(
                [
                    from_patches(samples[k * per_plane : (k + 1) * per_plane], ph, pw, 1, patch)
                    for k in range(c)
                ],
                axis=2,
            )
        else:
            raise CorruptError("image-pc planes disagree with the image or the model")
        pixels = inverse_transform(values, self.circuit.config.transform)[:h, :w]
        return imagefile.rebuild(layout, pixels)

    def _decode_samples(self, payload: bytes, pos: int, count: int) -> np.ndarray:
        circuit = self.circuit
        chunk, pos = payload_varint(payload, pos, "image-pc")
        streams_count, pos = payload_varint(payload, pos, "image-pc")
        if chunk < 1 or streams_count != -(-count // chunk):
            raise CorruptError("image-pc stream layout out of range")
        try:
            streams = split_streams(payload, pos, streams_count, "image-pc")
        except TruncatedError as exc:
            raise CorruptError(f"image-pc payload truncated ({exc})") from exc

        def decode(index: int) -> np.ndarray:
            decoder = SymbolDecoder(streams[index])
            return circuit.walk(
                min(chunk, count - index * chunk), lambda v, part, freqs: decoder.decode(freqs)
            )

        parts = self.map_parallel(decode, range(streams_count))
        return np.concatenate(parts) if parts else np.zeros((0, circuit.config.size), np.uint8)


def _ideal_bits(circuit: HCLT, samples: np.ndarray) -> float:
    """Ideal code length of ``samples`` under ``circuit`` (for choosing a model)."""
    total = 0.0
    values = samples.astype(np.int64)

    def code(v: int, part: int, freqs: np.ndarray) -> np.ndarray:
        nonlocal total
        sym = values[:, v] >> 4 if part == 0 else values[:, v] & 15
        total -= float(np.log2(freqs[np.arange(len(sym)), sym] / freqs.sum(axis=1)).sum())
        return sym

    circuit.walk(len(samples), code)
    return total
