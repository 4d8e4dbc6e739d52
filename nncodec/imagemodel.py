"""The next-pixel predictor: causal context features and an exact-integer MLP with a 256-way softmax.

Every 8-bit subpixel is one token of 256 values (P2-LLM's view). For subpixel (y, x) of channel c
the model sees already-decoded values only: same-channel neighbours W, WW, NW, N, NE, NN, NNE, NWW,
and, for the second and third colour channel, the earlier channels of the same pixel and their
neighbours. Everything is expressed relative to a base prediction (LOCO-I's median edge detector
of W, N, NW), and the model predicts the residual token ``(value - base) mod 256``. Out-of-image
neighbours read as 0 (the MED then falls back to the available one) and flags tell the model where
the borders are.

Inference follows nncodec/exact.py through nncodec/rowops.py (int8 weights per output channel, int8
activations per row, exact float32 matmuls, lookup-table softmax), so the frequency rows are a pure
function of the model file and the decoded pixels. The float model used for training lives in
nncodec/training/pixel_mlp.py and computes the same function up to quantization.

Canvas convention: a stripe of the image is held in an int16 array (channels, rows + PAD, cols +
2 * PAD) with PAD zero rows above and PAD zero columns on each side; pixel (y, x) of the stripe sits
at canvas[:, y + PAD, x + PAD].
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nncodec.exact import int_matmul, load_model_file
from nncodec.rowops import CompiledOps, NumpyOps, best_ops

FORMAT = "nncodec-pixelmlp-1"
PAD = 2
#: same-channel neighbours as (dy, dx); all causal for the wavefront schedule t = x + 2y
NEIGHBOURS = ((0, -1), (0, -2), (-1, -1), (-1, 0), (-1, 1), (-2, 0), (-2, 1), (-1, -2))
#: neighbours of an earlier channel compared with its value at the current pixel
CROSS = ((0, -1), (-1, 0), (-1, -1), (-1, 1))
MAX_EARLIER = 2  # channels of the same pixel the model conditions on
CROSS_CHANNEL_BASE = True
FLAG = 64  # value of an indicator feature
FEATURE_SCALE = 64.0  # the float model sees features / FEATURE_SCALE
STRIPE_ROWS = 64  # default rows per independently coded stripe
N_FEATURES = len(NEIGHBOURS) + MAX_EARLIER * (1 + len(CROSS)) + 3 + 3 + 2


def med(w: np.ndarray, n: np.ndarray, nw: np.ndarray) -> np.ndarray:
    """LOCO-I median edge detector on integer arrays."""
    lo, hi = np.minimum(w, n), np.maximum(w, n)
    return np.where(nw >= hi, lo, np.where(nw <= lo, hi, w + n - nw))


def channel_kinds(channels: int) -> list[int]:
    """How many earlier channels each channel conditions on: colour channels 2 and 3 of an RGB(A)
    image see the ones before; gray, gray+alpha and alpha channels stand alone."""
    if channels >= 3:
        return [0, 1, 2] + [0] * (channels - 3)
    return [0] * channels


def features(
    canvas: np.ndarray, cy: np.ndarray, cx: np.ndarray, ys: np.ndarray, channel: int, kind: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Context features (B, N_FEATURES) int16 in [-127, 127] and base predictions (B,) int32 for
    subpixels of ``channel`` at canvas positions (cy, cx); ``ys`` are their rows within their stripe
    (for the top-border flag), ``width`` the image width. ``kind`` earlier channels (channel - kind
    .. channel - 1) are used."""
    xs = cx - PAD
    plane = canvas[channel]

    def at(ch_plane: np.ndarray, dy: int, dx: int) -> np.ndarray:
        return ch_plane[cy + dy, cx + dx].astype(np.int32)

    w, n, nw = at(plane, 0, -1), at(plane, -1, 0), at(plane, -1, -1)
    base = med(w, n, nw)
    surprises = []
    for e in range(kind):
        earlier = canvas[channel - kind + e]
        here = at(earlier, 0, 0)
        surprises.append(here - med(at(earlier, 0, -1), at(earlier, -1, 0), at(earlier, -1, -1)))
    if kind and CROSS_CHANNEL_BASE:  # colour residuals correlate: shift by the last one's surprise
        base = np.clip(base + surprises[-1], 0, 255)
    cols = [at(plane, dy, dx) - base for dy, dx in NEIGHBOURS]
    for e in range(MAX_EARLIER):
        if e < kind:
            earlier = canvas[channel - kind + e]
            here = at(earlier, 0, 0)
            cols.append(surprises[e])
            cols.extend(here - at(earlier, dy, dx) for dy, dx in CROSS)
        else:
            zero = np.zeros_like(base)
            cols.extend([zero] * (1 + len(CROSS)))
    flag = np.full_like(base, FLAG)
    cols += [flag * (kind == k) for k in range(3)]
    cols += [flag * (ys == 0), flag * (xs == 0), flag * (xs == width - 1)]
    cols += [base - 128, flag]
    out = np.clip(np.stack(cols, axis=-1), -127, 127).astype(np.int16)
    return out, base


def new_canvas(channels: int, rows: int, cols: int) -> np.ndarray:
    return np.zeros((channels, rows + PAD, cols + 2 * PAD), np.int16)


def stripe_canvas(stripe: np.ndarray) -> np.ndarray:
    """(rows, cols, C) pixels -> the padded canvas holding them."""
    rows, cols, channels = stripe.shape
    canvas = new_canvas(channels, rows, cols)
    canvas[:, PAD:, PAD : PAD + cols] = np.moveaxis(stripe, -1, 0)
    return canvas


def residual_tokens(values: np.ndarray, base: np.ndarray) -> np.ndarray:
    return np.mod(values.astype(np.int64) - base, 256)


def stripe_features(pixels: np.ndarray, stripe_rows: int = STRIPE_ROWS):
    """Yield (features, residual tokens) for every channel of every stripe of an (H, W, C) image:
    all positions at once (every value is known), as the encoder and the trainer use them."""
    height, width, channels = pixels.shape
    kinds = channel_kinds(channels)
    for top in range(0, height, stripe_rows):
        stripe = pixels[top : top + stripe_rows]
        canvas = stripe_canvas(stripe)
        ys, xs = np.divmod(np.arange(stripe.shape[0] * width), width)
        for c in range(channels):
            feats, base = features(canvas, ys + PAD, xs + PAD, ys, c, kinds[c], width)
            yield feats, residual_tokens(stripe[ys, xs, c], base)


class PixelModel:
    """The exact-integer MLP loaded from ``models/<id>.safetensors``."""

    def __init__(self, path: Path) -> None:
        metadata, tensors = load_model_file(path, FORMAT)
        self.config = json.loads(metadata["config"])
        self.layers = []
        for i in range(self.config["n_layers"]):
            weight = tensors[f"l{i}.w"].astype(np.float32)  # (out, in) int8 values
            if np.abs(weight).max() > 127 or weight.shape[1] > 1040:
                raise ValueError("model file violates an exactness invariant: weight range or size")
            self.layers.append((np.ascontiguousarray(weight.T), tensors[f"l{i}.s"].astype(np.float64)))
        if self.layers[0][0].shape[0] != N_FEATURES or self.layers[-1][0].shape[1] != 256:
            raise ValueError("model file does not match this feature set")
        self.out_exp = tensors["out_exp"].astype(np.float64)
        self.out_steps = float(metadata["out_lut_steps"])
        if self.out_exp[-1] != 0 or self.out_exp.max() > 1 << 24:
            raise ValueError("model file violates an exactness invariant: output table")
        self.ops: NumpyOps | CompiledOps = best_ops()

    def frequencies(self, feats: np.ndarray) -> np.ndarray:
        """(B, N_FEATURES) integer features -> (B, 256) integer frequency rows (entries >= 1) over
        residual tokens."""
        x = feats.astype(np.float32)
        scale = np.ones(len(feats), np.float64)  # features are int8 values already
        for weight_t, col_scale in self.layers[:-1]:
            x, scale = self.ops.relu_quantize(int_matmul(x, weight_t), scale, col_scale)
        weight_t, col_scale = self.layers[-1]
        return self.ops.head_lut(int_matmul(x, weight_t), scale, col_scale, self.out_exp, self.out_steps)
