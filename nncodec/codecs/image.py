"""The ``image`` codec: a next-pixel predictor's 256-way distributions, range-coded subpixel by subpixel.

An image file (PNG, PNM, BMP, uncompressed TIFF; see nncodec/image/imagefile.py) is split into its pixels
and a layout that rebuilds the file around them. 8-bit pixels are coded with the model of
nncodec/image/nextpixel.py; 16-bit pixels with a simpler model (the 2-D difference W + N - NW, zstd).

**Schedule.** The image is cut into stripes of ``stripe_rows`` rows (``CODEC_STRIPE_ROWS``), each
coded independently as its own range-coded stream (context never crosses a stripe's top edge).
Inside a stripe, channels are coded one after another; inside a channel, subpixels are coded on a
wavefront: step t holds the positions with x + 2y = t, which depend only on earlier steps (every
neighbour the model reads is causal for this order). The model's rows are mixed with the stripe's
own residual statistics (counts in nested local contexts, learned while coding, exactly as in the
text codec's mixer). One model call codes one step of one channel for all stripes decoded together,
so a 768x512 image takes (768 + 2 * 128) * 3 calls of a few hundred rows each instead of 1.2 M
calls. Any grouping of stripes decodes to the same pixels (``-T`` spreads them over threads).

**Near-lossless** (``max_error`` N > 0): the residual from the base prediction is quantized with
step 2N + 1 inside the loop (JPEG-LS NEAR style): the coded symbol is the bin, the decoded value
the bin's centre clamped to 0..255, so every subpixel is within N of the original; contexts use
the reconstructed values on both sides. The bins' probabilities are exact integer sums of the
model's. The decoded file is the original's layout around the reconstructed pixels; the frame
parameters record N and the PSNR.

Payload::

    varint len(layout) | layout (JSON) | varint len(skeleton) | zstd(skeleton) | u8 method | ...
    method 0 (model):  [format >= 2: u8 flags [value bitmaps]] | [format 4: temperatures] |
                       varint stripe_rows | [feature set v2: the linear predictor, int16 LE per
                       weight, channel after channel] | varint S | S x varint stream_bytes |
                       S streams
                       flags bit 0: the exact-value mixer is on (``EXACT_PRIORS``); bit 1: the
                       flags are followed by C x 32 bytes, the bitmap of the values each channel
                       holds (MSB first; lossless only)
                       temperatures: u8 L (1 or LEVELS) | C x L u8 m, channel after channel
                       (``pack_temperatures``; L = 1: one m for every activity level)
    method 1 (16-bit): zstd of the (W + N - NW) residuals, uint16 little-endian, mod 2^16
    method 2 (classical, 8-bit lossless): u8 transform | one backend stream of the transformed
                       pixels (nncodec/image/classical.py); written where it is smaller than the
                       model's payload (screens, graphics: ``SMALL_IMAGE``, ``SCREEN_MODEL_LIMIT``)

Frame params: format version (4; 1, 2 and 3 are still decoded: format 1's mixer has three contexts,
format 2's five, format 3 learns the mixers' weights, format 4 has seven, mixed in product form, and
output temperatures),
max error N (0: lossless), then, when N > 0, the PSNR (float64
little-endian, +inf when no pixel changed); when N = 0, an optional flags byte: bit 0 set when a PNG
was coded as pixels only (``--png-pixels``: the file comes back with the same pixels and chunks but
not the same bytes). Without that byte a PNG comes back byte for byte (nncodec/image/imagefile.py);
files written before byte-exact PNG carry no recipe in their layout and decode as they did.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nncodec.codecs.base import BlockDeclined, Codec, damage_is_corruption
from nncodec.core import modelstore
from nncodec.core.errors import CorruptError, TruncatedError
from nncodec.core.framing import encode_varint, join_streams, payload_varint, split_streams
from nncodec.core.modelstore import LoadedModel, find_model
from nncodec.entropy.backends import zstd_compress, zstd_decompress
from nncodec.entropy.rangecoder import SymbolDecoder, SymbolEncoder
from nncodec.image import classical as pixel_classical
from nncodec.image import imagefile
from nncodec.image.nextpixel import (
    N_LOCAL_V2,
    PAD,
    TEMPERATURE_ONE,
    PixelModel,
    _pixels,
    channel_kinds,
    features,
    features_v2,
    ls_fit,
    ls_size,
    residual_tokens,
    stripe_features,
)
from nncodec.nn.mixing import ContextMixer

IMAGE_MODEL_ID = "image-v5"
#: 4: format 3 with seven mixer contexts (``_mix_contexts_f4``) mixed in product form and an output
#: temperature per channel and activity level, chosen by the encoder (``choose_temperatures``); on the
#: tuning set (cc0_wesaturate's three photos) -0.51% against format 3; 3: format 2 with the mixers'
#: learned weights when lossless (nncodec/nn/mixing.py; -0.9% on the tuning set); 2 (still
#: decoded): the mixer's five contexts (``_mix_contexts_f2``); 1 (still decoded): three
FORMAT_VERSION = 4
FORMAT_VERSIONS = (1, 2, 3, 4)
METHOD_MODEL, METHOD_DELTA16, METHOD_CLASSICAL = 0, 1, 2
FLAG_PNG_PIXELS = 1
PNG_PIXELS_NOTE = "pixels only: the same pixels, not the same file bytes"
MAX_ERROR = 32
#: rows per stripe the encoder writes (any R decodes; the trainer cuts 64, nextpixel.STRIPE_ROWS): on
#: the tuning set 128 codes 0.5% smaller than 64 (counts learn from longer stripes, fewer top rows
#: without context), and a 768x512 photo decodes faster (fewer, larger calls per step: 2.8-3.2 s
#: against 3.6 at -T2); 256 was no smaller and slower
CODEC_STRIPE_ROWS = 128
QUICK_ZSTD_MARGIN = 0.55  # zstd -19 / zstd -3 was 0.60-0.93 on the screen_synthetic set and photos
#: adaptive statistics mixed into the model per stripe (nncodec/nn/mixing.py over residual tokens):
#: contexts are (channel, local activity), then + the W residual, then + the N residual
MIX_PRIORS = (256.0, 32.0, 16.0)  # tuned on training images mcm01-mcm04 (ideal bits)
#: with feature set v2 (image-v2): a stronger model earns the counts' trust more slowly; tuned on
#: mcm07-mcm09 with a model trained without them (512, 64, 32: +0.25%, 1024, 128, 64: +0.04%)
MIX_PRIORS_V2 = (2048.0, 256.0, 128.0)
#: format 2 (needs feature set v2): contexts [channel x activity, + linear prediction - base, + W gradient, +
#: N gradient, + the linear predictor's errors at W and N], priors tuned on the tuning set
#: cc0_wesaturate_rawpixls (3 photos of 500x500, never trained on; ideal bits): -2.2% against format 1 with
#: image-v2 (2048, 256, 32, 16, 16 there); these with image-v3
MIX_PRIORS_F2 = (4096.0, 512.0, 64.0, 32.0, 32.0)
#: format 4: format 2's contexts, then + the NE - N gradient, then + the NN - N gradient (buckets of
#: GRADIENT_EDGES), chosen on the tuning set among six candidates as one or two finer orders (NE - N
#: and NN - N together -0.28% there; the linear predictor's errors at NW + NE, NW - N, WW - W: less);
#: priors (64, 32) against (32, 32) and (16, 16): within 0.02%. Seven orders is the mixer's limit
#: (256^7 keys). Format 4's mixers compute their rows in product form (nncodec/nn/mixing.py), which
#: pays for the two orders: the finer an order, the fewer tokens its contexts list
MIX_PRIORS_F4 = MIX_PRIORS_F2 + (64.0, 32.0)
#: format 2's exact-value mixer (flag bit 0 of the model payload), after the first: counts under
#: [earlier channel here, + W, + N, + NW, + NE] exact values (``_exact_contexts``), one table per stripe
#: and channel. Tuned on screen_synthetic's testcard and tough images (-29% there, -3% on its other
#: five; +5.5% on the photo tuning set, hence the flag): the encoder tries it where more than
#: EXACT_MIXER_SHARE of the pixels repeat their left neighbour (a render can pass that and lose)
EXACT_PRIORS = (1024.0, 256.0, 32.0, 4.0, 1.0)
EXACT_MIXER_SHARE = 0.4
EXACT_TRIAL_STRIPES = 2  # stripes the encoder codes with and without it first
#: method 2 (classical pixels: nncodec/image/classical.py) is coded for lossless images whose pixels
#: repeat their left neighbour more than EXACT_MIXER_SHARE (screens, graphics) and for images of at most
#: SMALL_IMAGE subpixels (where it costs little), and the smaller of it and the model is kept. Screens
#: over SCREEN_MODEL_LIMIT subpixels get method 2 without the model: on the 12 screen captures of
#: ../shared/data/images/more, the model won 3 (by 0-11%: gmessages 5%, for 40 s of coding a 2.1 MB
#: capture) and lost 9; no cheap estimate of the model's size told them apart (the model's bytes on a
#: 128x512 crop, scaled to the image, were 0.0-5.2x the true ratio to method 2, on 5 crops per image)
SMALL_IMAGE = 1 << 18
CLASSICAL_TRIAL_SHARE = 64  # the engine's zstd trial after method 2 only if the layout is >= 1/64
SCREEN_MODEL_LIMIT = 1 << 21
MODEL_FLAG_EXACT = 1
#: flag bit 1: a bitmap of the values each channel holds follows the flags (32 bytes per channel;
#: lossless only); the model's unused values get frequency 1. Set when some channel leaves at least
#: VALUE_GAPS values unused between its smallest and largest (sparse histograms: scans, gamma-mapped
#: or rescaled images)
MODEL_FLAG_VALUES = 2
VALUE_GAPS = 16
LS_GAP_EDGES = np.array([-12, -6, -3, -1, 0, 1, 2, 4, 7, 13])
ACTIVITY_EDGES = np.array([1, 2, 3, 4, 6, 8, 11, 15, 20, 27, 36, 48, 64, 90, 128])
GRADIENT_EDGES = np.array([-20, -8, -3, -1, 0, 1, 3, 8, 20])
#: format 4's output temperatures: the model's logits of a subpixel of channel c at activity level a
#: (``activity_levels``) are scaled by m[c][a] / 16 (nncodec/image/nextpixel.py ``head_rows``). The
#: model trained on McMaster and friends is overconfident in flat regions of other photos (m 12-14
#: chosen at level 0) and too timid in busy ones (18-23). The encoder chooses m from TEMPERATURES for
#: each (channel, level) on a sample of TEMPERATURE_SAMPLE subpixels per channel (bands of
#: TEMPERATURE_BAND rows spread over the image, features as the trainer computes them), by the model's
#: ideal code length alone, and sends one m per channel instead where the table's bytes cost more than
#: it saves (small images). Its lowest and highest value any decoder accepts: TEMPERATURE_RANGE
LEVELS = len(ACTIVITY_EDGES) + 1
TEMPERATURES = tuple(range(10, 27, 2))
TEMPERATURE_RANGE = (4, 64)
TEMPERATURE_SAMPLE = 1 << 15
TEMPERATURE_BAND = 16
TEMPERATURE_CHUNK = 512  # sample rows evaluated together (memory: about 1 MiB at a time)


@dataclass
class StripePlan:
    """Where each stripe of a group lives on the shared canvas, and the wavefront positions."""

    rows: list[int]  # rows of each stripe
    width: int

    def __post_init__(self) -> None:
        self.tops = np.cumsum([0] + [r + PAD for r in self.rows])[:-1] + PAD  # canvas row of y = 0
        self.canvas_rows = int(sum(r + PAD for r in self.rows)) + PAD  # zero rows below the last
        self.steps = max((self.width - 1) + 2 * (r - 1) + 1 for r in self.rows)
        self._positions: list[tuple] = []
        for t in range(self.steps):
            cys, cxs, ys, lasts, counts = [], [], [], [], []
            for top, rows in zip(self.tops, self.rows, strict=True):
                y = np.arange(max(0, -(-(t - self.width + 1) // 2)), min(rows - 1, t // 2) + 1)
                cys.append(top + y)
                cxs.append(t - 2 * y + PAD)
                ys.append(y)
                lasts.append(y == rows - 1)
                counts.append(len(y))
            self._positions.append(
                (np.concatenate(cys), np.concatenate(cxs), np.concatenate(ys), np.concatenate(lasts), counts)
            )

    def positions(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[int]]:
        return self._positions[t]

    def canvas(self, channels: int) -> np.ndarray:
        return np.zeros((channels, self.canvas_rows, self.width + 2 * PAD), np.int16)

    def fill(self, canvas: np.ndarray, stripes: list[np.ndarray]) -> None:
        for top, stripe in zip(self.tops, stripes, strict=True):
            canvas[:, top : top + stripe.shape[0], PAD : PAD + self.width] = np.moveaxis(stripe, -1, 0)

    def extract(self, canvas: np.ndarray) -> list[np.ndarray]:
        return [
            np.moveaxis(canvas[:, top : top + rows, PAD : PAD + self.width], 0, -1).astype(np.uint8)
            for top, rows in zip(self.tops, self.rows, strict=True)
        ]


class ImageCodec(Codec):
    codec_id = 4
    name = "image"
    #: method 2 is tried beside the model (SMALL_IMAGE, SCREEN_MODEL_LIMIT); tests of the model's own
    #: path turn it off
    classical_rival = True
    needs_whole_input = True
    max_block_size = 1 << 30
    memory_base = 4 << 20
    memory_per_byte = (200.0, 200.0)  # image codecs: per byte of the file (a PNG holds 2-3x in pixels)

    def __init__(
        self,
        model: LoadedModel,
        max_error: int = 0,
        stripe_rows: int = CODEC_STRIPE_ROWS,
        decode_groups: int = 0,
        png_pixels: bool = False,
        version: int = FORMAT_VERSION,
    ) -> None:
        if not 0 <= max_error <= MAX_ERROR:
            raise ValueError(f"max error must be 0..{MAX_ERROR}")
        self._model = model
        self.max_error = max_error
        self.png_pixels = png_pixels  # asked for: code PNGs as pixels only
        self.png_pixels_used = False  # a PNG was coded so (recorded in the params)
        self.classical_payload: bytes | None = None  # the last payload, when it was method 2
        self.classical_layout = 0  # and the bytes of its layout
        self.stripe_rows = stripe_rows
        self.decode_groups = decode_groups  # stripes decoded together (0: an equal share per worker)
        self.psnr: float | None = None
        self.pixel_model = modelstore.load(model, PixelModel)
        # format 2's contexts read feature set v2: a v1 model (image-v1) codes format 1
        self.version = version if self.pixel_model.feature_set == "v2" else 1

    @classmethod
    def for_encoding(cls, sample: bytes, **options: object) -> ImageCodec:
        return cls(
            find_model(IMAGE_MODEL_ID),
            max_error=int(options.get("max_error") or 0),
            png_pixels=bool(options.get("png_pixels")),
        )

    @classmethod
    def from_header(cls, params: bytes, model: LoadedModel | None) -> ImageCodec:
        if len(params) < 2 or params[0] not in FORMAT_VERSIONS or params[1] > MAX_ERROR:
            raise CorruptError(f"image codec parameters {params.hex()} not understood (newer nncodec?)")
        if len(params) not in ((2, 3) if params[1] == 0 else (10,)):
            raise CorruptError("image codec parameters have the wrong length")
        if len(params) == 3 and params[2] != FLAG_PNG_PIXELS:
            raise CorruptError(f"image codec flags {params[2]:#x} not understood (newer nncodec?)")
        if model is None:
            raise CorruptError("image frame names no model")
        codec = cls(model, max_error=params[1], version=params[0])
        if codec.version >= 2 and codec.pixel_model.feature_set != "v2":
            raise CorruptError(f"image format {codec.version} needs a model with feature set v2")
        if params[1]:
            (codec.psnr,) = struct.unpack("<d", params[2:10])
        codec.png_pixels_used = len(params) == 3
        return codec

    def params(self) -> bytes:
        out = bytes([self.version, self.max_error])
        if self.max_error:
            out += struct.pack("<d", self.psnr if self.psnr is not None else math.inf)
        elif self.png_pixels_used:
            out += bytes([FLAG_PNG_PIXELS])
        return out

    @classmethod
    def describe_params(cls, params: bytes) -> list[tuple[str, str]]:
        if len(params) < 2 or params[0] not in FORMAT_VERSIONS:
            return []
        if not params[1]:
            if params[2:] == bytes([FLAG_PNG_PIXELS]):
                return [("pixels", "lossless"), ("png", PNG_PIXELS_NOTE)]
            return [("pixels", "lossless")]
        psnr = struct.unpack("<d", params[2:10])[0] if len(params) >= 10 else math.nan
        shown = "inf (no pixel changed)" if math.isinf(psnr) else f"{psnr:.2f} dB"
        return [("pixels", f"near-lossless, max error {params[1]}"), ("psnr", shown)]

    @property
    def model(self) -> LoadedModel:
        return self._model

    # -- encoding --------------------------------------------------------------------------------

    def needs_fallback_trial(self, data: bytes, payload: bytes) -> bool:
        """The engine's zstd -19 trial runs only where a zstd -3 pass comes within 1 / QUICK_ZSTD_MARGIN
        of the payload (screens, graphics): on photos it cannot win and costs ~0.7 s a megapixel.
        Not after method 2, which took the best of xz and PPMd over the pixels already (so zstd can
        only win by the layout's bytes), unless the layout is a large part of the payload."""
        if self.classical_payload is not None and payload == self.classical_payload:
            return len(payload) < CLASSICAL_TRIAL_SHARE * self.classical_layout
        return len(payload) > QUICK_ZSTD_MARGIN * len(zstd_compress(data, 3))

    def encode_block(self, data: bytes) -> bytes:
        return self.encode_block_with_output(data)[0]

    def encode_block_with_output(self, data: bytes) -> tuple[bytes, bytes]:
        try:
            layout, pixels = imagefile.parse(data, exact_png=not (self.max_error or self.png_pixels))
        except imagefile.NotSupported as exc:
            raise BlockDeclined(str(exc)) from exc
        if layout.kind == "png" and self.png_pixels and not self.max_error:
            self.png_pixels_used = True
        if layout.bits == 16:
            if self.max_error:
                raise BlockDeclined("near-lossless coding of 16-bit images is not supported")
            body = bytes([METHOD_DELTA16]) + zstd_compress(_delta16(pixels))
            decoded = pixels
        else:
            body, decoded = self._encode_pixels(pixels)
        payload = layout.pack() + body
        self.classical_payload = payload if body[0] == METHOD_CLASSICAL else None
        self.classical_layout = len(payload) - len(body)
        exact = layout.kind == "raw" or layout.recipe is not None  # parse checked that rebuild gives data
        output = data if exact and not self.max_error else imagefile.rebuild(layout, decoded)
        return payload, output

    def _encode_pixels(self, pixels: np.ndarray) -> tuple[bytes, np.ndarray]:
        """The body for 8-bit pixels (method 0, the model, or method 2 where it wins) and the pixels
        the decoder will see."""
        used = used_values(pixels) if self.version >= 2 and not self.max_error else None
        used = used if used is not None and sparse_values(used) else None
        rival = None  # method 2 (nncodec/image/classical.py), lossless only: the smaller is kept
        screen = repeat_share(pixels) > EXACT_MIXER_SHARE
        if (
            self.classical_rival
            and self.version >= 2
            and not self.max_error
            and (screen or pixels.size <= SMALL_IMAGE)
        ):
            rival = bytes([METHOD_CLASSICAL]) + pixel_classical.encode(pixels, self.map_parallel)
            if screen and pixels.size > SCREEN_MODEL_LIMIT:
                return rival, pixels
        stripes = self._stripes(pixels)
        weights = None
        predictor = b""
        if self.pixel_model.feature_set == "v2":  # the image's linear predictor, in the payload
            weights = ls_fit(pixels, self.stripe_rows)
            predictor = b"".join(w.astype("<i2").tobytes() for w in weights)
        temperatures = None  # format 4: (channels, LEVELS) m
        if self.version >= 4:
            temperatures = choose_temperatures(self.pixel_model, pixels, weights, self.map_parallel)
        exact = self.version >= 2 and self._exact_mixer_pays(stripes, weights, used, pixels, temperatures)
        per_call = -(-len(stripes) // self.workers)  # stripes coded together: a share per worker
        parts = [stripes[a : a + per_call] for a in range(0, len(stripes), per_call)]
        results = self.map_parallel(
            lambda part: self._encode_stripes(part, weights, exact, used, temperatures), parts
        )
        streams = [stream for part in results for stream in part[0]]
        decoded = np.concatenate([rec for part in results for rec in part[1]], axis=0)
        body = bytes([METHOD_MODEL])
        if self.version >= 2:
            flags = (MODEL_FLAG_EXACT if exact else 0) | (MODEL_FLAG_VALUES if used is not None else 0)
            body += bytes([flags])
            if used is not None:
                body += np.packbits(used, axis=1).tobytes()
        if temperatures is not None:
            body += pack_temperatures(temperatures)
        body += encode_varint(self.stripe_rows) + predictor
        body += encode_varint(len(streams))
        body += join_streams(streams)
        if self.max_error:
            self.psnr = _psnr(pixels, decoded)
        if rival is not None and len(rival) <= len(body):
            return rival, pixels
        return body, decoded

    def _exact_mixer_pays(
        self, stripes: list[np.ndarray], weights: list[np.ndarray] | None, used: np.ndarray | None,
        pixels: np.ndarray, temperatures: np.ndarray | None = None,
    ) -> bool:  # fmt: skip
        """Whether to set format 2's exact-value flag: only for pixels that repeat their left
        neighbour often (screens, graphics, renders), and there only if it codes a sample of up to
        EXACT_TRIAL_STRIPES stripes (spread over the image) smaller."""
        if repeat_share(pixels) <= EXACT_MIXER_SHARE:
            return False
        trials = EXACT_TRIAL_STRIPES
        picks = sorted({len(stripes) * (2 * i + 1) // (2 * trials) for i in range(trials)})
        sample = [stripes[i] for i in picks]
        coded = [self._encode_stripes(sample, weights, on, used, temperatures)[0] for on in (True, False)]
        sizes = [sum(map(len, streams)) for streams in coded]
        return sizes[0] < sizes[1]

    def _stripes(self, pixels: np.ndarray) -> list[np.ndarray]:
        return [pixels[top : top + self.stripe_rows] for top in range(0, pixels.shape[0], self.stripe_rows)]

    def _encode_stripes(
        self,
        stripes: list[np.ndarray],
        weights: list[np.ndarray] | None = None,
        exact: bool = False,
        used: np.ndarray | None = None,
        temperatures: np.ndarray | None = None,
    ) -> tuple[list[bytes], list[np.ndarray]]:
        """Code stripes (one stream each) in one walk; also return their reconstructed pixels."""
        encoders = [SymbolEncoder() for _ in stripes]
        plan = StripePlan([s.shape[0] for s in stripes], stripes[0].shape[1])
        truth = plan.canvas(stripes[0].shape[2])
        plan.fill(truth, stripes)
        canvas = self._walk(
            plan, stripes[0].shape[2], truth=truth, encoders=encoders, weights=weights, exact=exact,
            used=used, temperatures=temperatures,
        )
        return [e.finish() for e in encoders], plan.extract(canvas)

    # -- the shared walk -------------------------------------------------------------------------

    def _walk(
        self,
        plan: StripePlan,
        channels: int,
        *,
        truth: np.ndarray | None = None,
        encoders: list[SymbolEncoder] | None = None,
        decoders: list[SymbolDecoder] | None = None,
        weights: list[np.ndarray] | None = None,
        exact: bool = False,
        used: np.ndarray | None = None,
        temperatures: np.ndarray | None = None,
    ) -> np.ndarray:
        """Code (encoders + truth) or decode (decoders) every stripe of ``plan``; returns the canvas
        of reconstructed values. Both sides run exactly this loop. ``exact``: also mix in counts under
        exact neighbour values; ``used``: (channels, 256) bool, the values each channel holds (others
        get frequency 1); both format 2's flags. ``temperatures``: (channels, LEVELS) output
        temperatures (format 4; None: none)."""
        near = self.max_error
        step = 2 * near + 1
        bins = np.arange(-_half_bins(near), _half_bins(near) + 1)
        canvas = plan.canvas(channels)
        kinds = channel_kinds(channels)
        v2 = self.pixel_model.feature_set == "v2"
        if self.version >= 4:
            priors, mix_contexts = MIX_PRIORS_F4, _mix_contexts_f4
        elif self.version >= 2:
            priors, mix_contexts = MIX_PRIORS_F2, _mix_contexts_f2
        else:
            priors, mix_contexts = (MIX_PRIORS_V2 if v2 else MIX_PRIORS), _mix_contexts
        # format 3: the mixers' learned weights, lossless only (near-lossless codes bins, and weights
        # learned from the bins' centres cost 4-9% there: measured on McMaster, USC-SIPI and gb82)
        learned = self.version >= 3 and not near
        product = self.version >= 4  # format 4: rows in product form
        mixers = [ContextMixer(256, priors, learned=learned, product=product) for _ in plan.rows]
        exact_mixers = None
        if exact:  # one per stripe and channel
            exact_mixers = [
                [ContextMixer(256, EXACT_PRIORS, learned=learned, product=product) for _ in range(channels)]
                for _ in plan.rows
            ]
        unused_at = None  # [channel][base, residual token]: whether value (base + token) % 256 is unused
        if used is not None:
            wrapped = (np.arange(256)[:, None] + np.arange(256)[None, :]) % 256
            unused_at = [~used[c][wrapped] for c in range(channels)]
        errors = np.zeros_like(canvas) if v2 else None  # value - base of every coded subpixel
        ls_errors = np.zeros_like(canvas) if v2 else None  # value - linear prediction
        for c in range(channels):
            for t in range(plan.steps):
                cy, cx, ys, last, counts = plan.positions(t)
                if not len(cy):
                    continue
                if v2:
                    feats, base, ls_pred = features_v2(
                        canvas, errors, ls_errors, weights[c], cy, cx, ys, last, c, kinds[c], plan.width
                    )
                else:
                    feats, base = features(canvas, cy, cx, ys, c, kinds[c], plan.width)
                contexts = mix_contexts(feats, c)
                temperature = None
                if temperatures is not None:  # the last context is channel x activity level
                    temperature = temperatures[c][contexts[:, -1] % LEVELS]
                rows = self.pixel_model.frequencies(feats, temperature)
                parts = _stripe_parts(counts)  # (stripe, its slice of this step's rows)
                # each mixer's input rows are kept: a learned mixer learns from them after the step
                model_rows, rows = rows, np.empty_like(rows)
                for s, part in parts:
                    rows[part] = mixers[s].frequencies(model_rows[part], contexts[part])
                if exact_mixers:
                    exact_contexts = _exact_contexts(canvas, cy, cx, c, kinds[c])
                    mixed_rows, rows = rows, np.empty_like(rows)
                    for s, part in parts:
                        rows[part] = exact_mixers[s][c].frequencies(mixed_rows[part], exact_contexts[part])
                if unused_at is not None:  # the image's unused values: frequency 1 (lossless only)
                    np.putmask(rows, unused_at[c][base], 1.0)
                if near:
                    rows = _bin_rows(rows, base, near, bins)
                if truth is not None:
                    value = truth[c, cy, cx].astype(np.int64)
                    if near:
                        error = value - base
                        q = np.sign(error) * ((np.abs(error) + near) // step)
                        symbols = q + bins[-1]
                    else:
                        symbols = residual_tokens(value, base)
                    for s, part in parts:
                        encoders[s].encode(symbols[part], rows[part])
                else:
                    symbols = np.empty(len(cy), np.int64)
                    for s, part in parts:
                        symbols[part] = decoders[s].decode(rows[part])
                if near:
                    values = np.clip(base + (symbols - bins[-1]) * step, 0, 255)
                else:
                    values = (base + symbols) % 256
                canvas[c, cy, cx] = values
                if v2:
                    errors[c, cy, cx] = values - base
                    ls_errors[c, cy, cx] = values - ls_pred
                tokens = residual_tokens(values, base)
                for s, part in parts:
                    mixers[s].update(contexts[part], tokens[part], model_rows[part])
                if exact_mixers:
                    for s, part in parts:
                        exact_mixers[s][c].update(exact_contexts[part], tokens[part], mixed_rows[part])
            if c < 3:  # every context names min(channel, 3): this channel's counts are never met again
                for mixer in mixers:
                    mixer.forget()
                if exact_mixers:
                    for per_channel in exact_mixers:
                        per_channel[c].forget()
        return canvas

    # -- decoding --------------------------------------------------------------------------------

    def decode_block(self, payload: bytes, original_size: int) -> bytes:
        with damage_is_corruption("image payload"):
            return self._decode(payload, original_size)

    def _decode(self, payload: bytes, original_size: int) -> bytes:
        layout, pos = imagefile.Layout.unpack(payload, 0, "image")
        if pos >= len(payload):
            raise CorruptError("image payload truncated")
        method, pos = payload[pos], pos + 1
        height, width, channels = layout.shape
        if not layout.fits(original_size):
            raise CorruptError("image larger than the block it decodes to")  # bounds what we allocate
        if method == METHOD_DELTA16 and layout.bits == 16:
            raw = zstd_decompress(payload[pos:], height * width * channels * 2, "image payload")
            if len(raw) != height * width * channels * 2:
                raise CorruptError("16-bit image data has the wrong size")
            pixels = _undelta16(np.frombuffer(raw, "<u2").reshape(layout.shape))
        elif method == METHOD_MODEL and layout.bits == 8:
            pixels = self._decode_pixels(payload, pos, layout)
        elif method == METHOD_CLASSICAL and layout.bits == 8:
            pixels = pixel_classical.decode(payload[pos:], layout.shape)
        else:
            raise CorruptError(f"image coding method {method} not understood")
        return imagefile.rebuild(layout, pixels)

    def _decode_pixels(self, payload: bytes, pos: int, layout: imagefile.Layout) -> np.ndarray:
        height, width, channels = layout.shape
        exact, used = False, None
        if self.version >= 2:
            if pos >= len(payload):
                raise CorruptError("image payload truncated")
            flags, pos = payload[pos], pos + 1
            if flags & ~(MODEL_FLAG_EXACT | MODEL_FLAG_VALUES):
                raise CorruptError(f"image model flags {flags:#x} not understood (newer nncodec?)")
            exact = bool(flags & MODEL_FLAG_EXACT)
            if flags & MODEL_FLAG_VALUES:
                if self.max_error or pos + 32 * channels > len(payload):
                    raise CorruptError("image value sets out of place or truncated")
                bits = np.frombuffer(payload, np.uint8, 32 * channels, pos).reshape(channels, 32)
                used = np.unpackbits(bits, axis=1).astype(bool)
                pos += 32 * channels
        temperatures = None
        if self.version >= 4:
            temperatures, pos = unpack_temperatures(payload, pos, channels)
        stripe_rows, pos = payload_varint(payload, pos, "image")
        weights = None
        if self.pixel_model.feature_set == "v2":
            weights = []
            for kind in channel_kinds(channels):
                size = 2 * ls_size(kind)
                if pos + size > len(payload):
                    raise CorruptError("image payload truncated")
                weights.append(np.frombuffer(payload, "<i2", size // 2, pos).astype(np.int16))
                pos += size
        count, pos = payload_varint(payload, pos, "image")
        if not 1 <= stripe_rows or count != -(-height // stripe_rows):
            raise CorruptError("image stripe layout out of range")
        try:
            streams = split_streams(payload, pos, count, "image")
        except TruncatedError as exc:
            raise CorruptError(f"image payload truncated ({exc})") from exc
        rows = [min(stripe_rows, height - top) for top in range(0, height, stripe_rows)]
        per_call = self.decode_groups or -(-count // self.workers)
        parts = [range(a, min(count, a + per_call)) for a in range(0, count, per_call)]

        def decode_part(part: range) -> list[np.ndarray]:
            plan = StripePlan([rows[s] for s in part], width)
            decoders = [SymbolDecoder(streams[s]) for s in part]
            walked = self._walk(
                plan, channels, decoders=decoders, weights=weights, exact=exact, used=used,
                temperatures=temperatures,
            )  # fmt: skip
            return plan.extract(walked)

        stripes = [s for part in self.map_parallel(decode_part, parts) for s in part]
        return np.concatenate(stripes, axis=0)


def _stripe_parts(counts: list[int]) -> list[tuple[int, slice]]:
    """(stripe, slice of the step's rows) for each stripe with positions in this step."""
    parts, start = [], 0
    for s, count in enumerate(counts):
        if count:
            parts.append((s, slice(start, start + count)))
        start += count
    return parts


def _mix_contexts_f4(feats: np.ndarray, channel: int) -> np.ndarray:
    """Format 4's mixer contexts (B, 7), oldest first: [NN - N bucket, NE - N bucket] + format 2's
    (features 3, 4, 5 are N, NE, NN minus base). Compiled where it is built (the same values)."""
    compiled = _compiled_contexts(feats, channel, 7)
    return compiled if compiled is not None else mix_contexts_f4_reference(feats, channel)


def mix_contexts_f4_reference(feats: np.ndarray, channel: int) -> np.ndarray:
    """``_mix_contexts_f4`` in numpy (the reference)."""
    f = feats.astype(np.int32)
    ne_n = np.searchsorted(GRADIENT_EDGES, f[:, 4] - f[:, 3], side="right")
    nn_n = np.searchsorted(GRADIENT_EDGES, f[:, 5] - f[:, 3], side="right")
    return np.concatenate([nn_n[:, None], ne_n[:, None], mix_contexts_f2_reference(feats, channel)], axis=1)


def activity_levels(feats: np.ndarray) -> np.ndarray:
    """Local activity |W - NW| + |N - NW| + |N - NE| in LEVELS buckets (ACTIVITY_EDGES). Features 0,
    2, 3, 4 are W, NW, N, NE minus base."""
    f = feats.astype(np.int32)
    activity = np.abs(f[:, 0] - f[:, 2]) + np.abs(f[:, 3] - f[:, 2]) + np.abs(f[:, 3] - f[:, 4])
    return np.searchsorted(ACTIVITY_EDGES, activity, side="right")


def _mix_contexts(feats: np.ndarray, channel: int) -> np.ndarray:
    """Mixer contexts (B, 3), oldest first as ContextMixer reads them: [N residual bucket, W residual
    bucket, channel x activity level], all < 256."""
    f = feats.astype(np.int32)
    first = min(channel, 3) * LEVELS + activity_levels(feats)
    return np.stack(
        [np.searchsorted(GRADIENT_EDGES, f[:, 3], side="right"),
         np.searchsorted(GRADIENT_EDGES, f[:, 0], side="right"), first],
        axis=1,
    )  # fmt: skip


def _compiled_contexts(feats: np.ndarray, channel: int, columns: int) -> np.ndarray | None:
    """Format 2's or 4's mixer contexts by nncodec/image/_pixels.c (None where it is not built)."""
    if _pixels is None:
        return None
    out = np.empty((len(feats), columns), np.int64)
    feats = np.ascontiguousarray(feats, np.int16)
    _pixels.mix_contexts(feats, channel, *_EDGES, out, len(feats), columns)
    return out


_EDGES = tuple(np.ascontiguousarray(e, np.int64) for e in (ACTIVITY_EDGES, GRADIENT_EDGES, LS_GAP_EDGES))


def _mix_contexts_f2(feats: np.ndarray, channel: int) -> np.ndarray:
    """Format 2's mixer contexts (B, 5), oldest first: [bucket of the linear predictor's errors at W
    plus N, N gradient bucket, W gradient bucket, bucket of linear prediction - base, channel x
    activity] (feature set v2: the linear prediction - base and its errors at W, N follow the local
    features). Compiled where it is built (the same values: tested)."""
    compiled = _compiled_contexts(feats, channel, 5)
    return compiled if compiled is not None else mix_contexts_f2_reference(feats, channel)


def mix_contexts_f2_reference(feats: np.ndarray, channel: int) -> np.ndarray:
    """``_mix_contexts_f2`` in numpy (the reference)."""
    f = feats.astype(np.int32)
    older = _mix_contexts(feats, channel)
    gap = np.searchsorted(LS_GAP_EDGES, f[:, N_LOCAL_V2], side="right")
    ls_errors = np.searchsorted(LS_GAP_EDGES, f[:, N_LOCAL_V2 + 1] + f[:, N_LOCAL_V2 + 2], side="right")
    return np.stack([ls_errors, older[:, 0], older[:, 1], gap, older[:, 2]], axis=1)


def choose_temperatures(
    model: PixelModel, pixels: np.ndarray, weights: list[np.ndarray], map_parallel: Callable | None = None
) -> np.ndarray:
    """Format 4's output temperatures for (H, W, C) pixels: (C, LEVELS) m from TEMPERATURES, each the
    one under which the model alone codes a sample of the channel's subpixels at that activity level
    in the fewest ideal bits (see TEMPERATURES); one m per channel (the table's rows all equal) where
    the table would cost more bytes than it saves. The sample: bands of TEMPERATURE_BAND rows, each
    coded as a stripe of its own with 3 rows of context above (which are not sampled), spread
    evenly over the image, then every k-th subpixel for about TEMPERATURE_SAMPLE per channel.
    ``map_parallel`` spreads the candidates over workers."""
    height, width, channels = pixels.shape
    per_band = TEMPERATURE_BAND * width
    bands = max(1, min(height // (TEMPERATURE_BAND + PAD), -(-TEMPERATURE_SAMPLE // per_band)))
    every = max(1, bands * per_band // TEMPERATURE_SAMPLE)
    feats_parts, token_parts, class_parts = [], [], []  # class: channel x activity level
    for b in range(bands):
        top = max(0, (2 * b + 1) * height // (2 * bands) - TEMPERATURE_BAND // 2 - PAD)
        band = pixels[top : top + TEMPERATURE_BAND + PAD]
        skip = min(PAD, band.shape[0] - 1) * width if top else 0  # the context rows
        for c, (feats, tokens) in enumerate(stripe_features(band, band.shape[0], "v2", weights)):
            feats = feats[skip + b % every :: every]
            feats_parts.append(feats)
            token_parts.append(tokens[skip + b % every :: every])
            class_parts.append(c * LEVELS + activity_levels(feats))
    feats, tokens, classes = (np.concatenate(x) for x in (feats_parts, token_parts, class_parts))
    if not len(tokens):
        return np.full((channels, LEVELS), TEMPERATURE_ONE, np.int64)

    def bits_of(start: int) -> np.ndarray:  # (C x LEVELS, candidates) ideal bits of a chunk
        chunk = slice(start, start + TEMPERATURE_CHUNK)
        acc, scale = model.head_inputs(feats[chunk])
        out = np.empty((channels * LEVELS, len(TEMPERATURES)))
        for j, m in enumerate(TEMPERATURES):
            rows = model.head_rows(acc, scale, np.full(len(acc), m))
            cost = -np.log2(rows[np.arange(len(rows)), tokens[chunk]] / rows.sum(axis=1))
            out[:, j] = np.bincount(classes[chunk], cost, minlength=channels * LEVELS)
        return out

    starts = list(range(0, len(tokens), TEMPERATURE_CHUNK))
    chunks = map_parallel(bits_of, starts) if map_parallel else list(map(bits_of, starts))
    bits = np.sum(chunks, axis=0).reshape(channels, LEVELS, len(TEMPERATURES))
    table = np.asarray(TEMPERATURES)[bits.argmin(axis=2)]
    flat = np.asarray(TEMPERATURES)[bits.sum(axis=1).argmin(axis=1)]
    scale_up = height * width * channels / max(1, len(tokens))  # the sample's bits -> the image's
    saved = (bits.sum(axis=1).min(axis=1) - bits.min(axis=2).sum(axis=1)).sum() * scale_up / 8
    if saved <= channels * (LEVELS - 1):
        table = np.repeat(flat[:, None], LEVELS, axis=1)
    return table.astype(np.int64)


def pack_temperatures(temperatures: np.ndarray) -> bytes:
    """u8 L (1: one m per channel; LEVELS: one per channel and level) | C x L u8 m."""
    uniform = bool((temperatures == temperatures[:, :1]).all())
    table = temperatures[:, :1] if uniform else temperatures
    return bytes([table.shape[1]]) + table.astype(np.uint8).tobytes()


def unpack_temperatures(payload: bytes, pos: int, channels: int) -> tuple[np.ndarray, int]:
    if pos >= len(payload) or payload[pos] not in (1, LEVELS):
        raise CorruptError("image output temperatures truncated or not understood")
    levels, pos = payload[pos], pos + 1
    if pos + channels * levels > len(payload):
        raise CorruptError("image payload truncated")
    table = np.frombuffer(payload, np.uint8, channels * levels, pos).reshape(channels, levels)
    table = table.astype(np.int64)
    if table.min() < TEMPERATURE_RANGE[0] or table.max() > TEMPERATURE_RANGE[1]:
        raise CorruptError("image output temperatures out of range")
    return np.repeat(table, LEVELS // levels, axis=1), pos + channels * levels


def used_values(pixels: np.ndarray) -> np.ndarray:
    """(channels, 256) bool: which values each channel of (H, W, C) pixels holds."""
    used = np.zeros((pixels.shape[2], 256), bool)
    for c in range(pixels.shape[2]):
        used[c, np.unique(pixels[..., c])] = True
    return used


def sparse_values(used: np.ndarray) -> bool:
    """Whether some channel leaves VALUE_GAPS values or more unused inside its range."""
    for row in used:
        held = np.flatnonzero(row)
        if len(held) and held[-1] - held[0] + 1 - len(held) >= VALUE_GAPS:
            return True
    return False


def repeat_share(pixels: np.ndarray) -> float:
    """Share of pixels equal to their left neighbour in every channel (screens 0.5-0.96, photos of the
    tuning sets 0.001-0.26): the encoder's choice of format 2's exact-value mixer."""
    if pixels.shape[1] < 2 or not pixels.shape[0]:
        return 0.0
    return float((pixels[:, 1:] == pixels[:, :-1]).all(axis=-1).mean())


def _exact_contexts(
    canvas: np.ndarray, cy: np.ndarray, cx: np.ndarray, channel: int, kind: int
) -> np.ndarray:
    """Exact-value contexts (B, 5), oldest first: [NE, NW, N, W, the earlier channel here (0 for the
    first)]: the repeats of screen content and graphics."""
    plane = canvas[channel]
    here = canvas[channel - 1][cy, cx] if kind else np.zeros(len(cy), canvas.dtype)
    return np.stack(
        [plane[cy - 1, cx + 1], plane[cy - 1, cx - 1], plane[cy - 1, cx], plane[cy, cx - 1], here], axis=1
    ).astype(np.int64)


def _half_bins(near: int) -> int:
    return -(-255 // (2 * near + 1)) + 1 if near else 0


def _bin_rows(rows: np.ndarray, base: np.ndarray, near: int, bins: np.ndarray) -> np.ndarray:
    """Model rows over residual tokens -> rows over quantization bins of width 2N + 1 centred on
    base + q (2N + 1): exact integer sums of the value probabilities in each bin (1 for empty bins)."""
    index = (np.arange(256)[None, :] - base[:, None]) % 256
    by_value = np.take_along_axis(rows, index, axis=1)
    cum = np.concatenate([np.zeros((len(rows), 1)), np.cumsum(by_value, axis=1)], axis=1)  # exact
    centres = base[:, None] + bins[None, :] * (2 * near + 1)
    lo = np.clip(centres - near, 0, 256)
    hi = np.clip(centres + near + 1, 0, 256)
    sums = np.take_along_axis(cum, hi, axis=1) - np.take_along_axis(cum, lo, axis=1)
    return np.where(hi > lo, sums, 1.0)


def _psnr(original: np.ndarray, decoded: np.ndarray) -> float:
    mse = float(np.mean((original.astype(np.float64) - decoded.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _delta16(pixels: np.ndarray) -> bytes:
    """2-D difference x - W - N + NW (mod 2^16), per channel; inverted by two cumulative sums."""
    p = pixels.astype(np.uint16)
    d = p.copy()
    d[:, 1:] -= p[:, :-1]
    d[1:, :] -= p[:-1, :]
    d[1:, 1:] += p[:-1, :-1]
    return d.astype("<u2").tobytes()


def _undelta16(residuals: np.ndarray) -> np.ndarray:
    out = np.cumsum(residuals.astype(np.uint16), axis=0, dtype=np.uint16)
    return np.cumsum(out, axis=1, dtype=np.uint16)
