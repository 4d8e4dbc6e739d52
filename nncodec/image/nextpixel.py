"""The next-pixel predictor: causal context features and an exact-integer MLP with a 256-way softmax.

Every 8-bit subpixel is one token of 256 values (P2-LLM's view). For subpixel (y, x) of channel c
the model sees already-decoded values only: same-channel neighbours W, WW, NW, N, NE, NN, NNE, NWW,
and, for the second and third colour channel, the earlier channels of the same pixel and their
neighbours. Everything is expressed relative to a base prediction (LOCO-I's median edge detector
of W, N, NW), and the model predicts the residual token ``(value - base) mod 256``. Out-of-image
neighbours read as 0 (the MED then falls back to the available one) and flags tell the model where
the borders are.

Inference follows nncodec/nn/exact.py through nncodec/nn/rowops.py (int8 weights per output channel,
int8 activations per row, exact integer matmuls: the compiled int8 kernel or float32 BLAS, lookup-table
softmax), so the frequency rows are a
pure function of the model file and the decoded pixels. The float model used for training
(``PixelMLP`` in nncodec/training/image/train.py) computes the same function up to quantization.

Canvas convention: a stripe of the image is held in an int16 array (channels, rows + PAD, cols +
2 * PAD) with PAD zero rows above and PAD zero columns on each side; pixel (y, x) of the stripe sits
at canvas[:, y + PAD, x + PAD].
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nncodec.core.modelstore import read_model_file
from nncodec.nn.exact import INT8_MAX, MAX_EXACT_K
from nncodec.nn.linear import IntLinear
from nncodec.nn.rowops import KERNELS, CompiledOps, NumpyOps, best_ops

try:  # feature set v2 compiled (nncodec/image/_pixels.c): the same values as the numpy reference
    from nncodec.image import _pixels
except ImportError:  # pragma: no cover - built by `pip install`
    _pixels = None
if KERNELS == "numpy":
    _pixels = None

FORMAT = "nncodec-pixelmlp-1"
PAD = 3  # zero columns on each side, zero rows above (and below) every stripe; v1 reads 2 at most
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

# -- feature set v2 (model image-v2 on). Local part: more neighbours, the current channel's own
# prediction errors at its neighbours, and the earlier channels' values all around the pixel
# (channels are coded one after another inside a stripe, so an earlier channel is known below and
# to the right too).
NEIGHBOURS_V2 = NEIGHBOURS + ((-2, -1), (-2, 2), (0, -3), (-3, 0))
#: neighbours whose prediction error (value - base, as the codec computed it) the model sees
ERRORS_V2 = ((0, -1), (-1, 0), (-1, -1), (-1, 1), (0, -2), (-2, 0))
#: earlier-channel neighbours, causal and not (the whole earlier channel of the stripe is known)
CROSS_V2 = CROSS + ((0, 1), (1, 0), (1, 1), (1, -1))
N_LOCAL_V2 = len(NEIGHBOURS_V2) + len(ERRORS_V2) + MAX_EARLIER * (1 + len(CROSS_V2)) + 3 + 4 + 2

# Adaptive part: a per-image linear predictor. The encoder fits, for each channel, least-squares
# weights over the same-channel neighbours and the earlier channels around the pixel, quantizes
# them to integers (LS_SHIFT fractional bits) and stores them in the payload; the model sees that
# prediction (minus base) and the predictor's errors at neighbours.
LS_SAME = NEIGHBOURS_V2
LS_CROSS = ((0, 0),) + CROSS_V2
LS_SHIFT = 12
LS_LIMIT = (1 << 15) - 1  # weights are int16
LS_ERRORS = ((0, -1), (-1, 0), (-1, -1), (-1, 1))
N_FEATURES_V2 = N_LOCAL_V2 + 1 + len(LS_ERRORS)
FEATURE_SETS = {"v1": N_FEATURES, "v2": N_FEATURES_V2}
TEMPERATURE_ONE = 16  # a row's output temperature m scales its logits by m / TEMPERATURE_ONE


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
    out = np.clip(np.stack(cols, axis=-1), -INT8_MAX, INT8_MAX).astype(np.int16)
    return out, base


def base_prediction(
    canvas: np.ndarray, cy: np.ndarray, cx: np.ndarray, channel: int, kind: int
) -> np.ndarray:
    """The base prediction both feature sets use: MED of W, N, NW, shifted by the last earlier
    channel's MED surprise at the same pixel (clamped to 0..255)."""

    def med_at(plane: np.ndarray) -> np.ndarray:
        return med(*(plane[cy + dy, cx + dx].astype(np.int32) for dy, dx in ((0, -1), (-1, 0), (-1, -1))))

    base = med_at(canvas[channel])
    if kind:
        surprise = canvas[channel - 1][cy, cx].astype(np.int32) - med_at(canvas[channel - 1])
        base = np.clip(base + surprise, 0, 255)
    return base


def local_features_v2(
    canvas: np.ndarray, errors: np.ndarray, cy: np.ndarray, cx: np.ndarray, ys: np.ndarray, last: np.ndarray,
    channel: int, kind: int, width: int,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The local part of feature set v2: (B, N_LOCAL_V2) int16 features and (B,) int32 base
    predictions. Like ``features`` plus ``errors`` (a canvas-shaped int16 array holding value - base
    of every coded subpixel) and ``last`` (whether a position is in its stripe's last row: the rows
    below read 0)."""
    xs = cx - PAD
    plane = canvas[channel]

    def at(ch_plane: np.ndarray, dy: int, dx: int) -> np.ndarray:
        return ch_plane[cy + dy, cx + dx].astype(np.int32)

    base = med(at(plane, 0, -1), at(plane, -1, 0), at(plane, -1, -1))
    surprises, heres = [], []
    for e in range(kind):
        earlier = canvas[channel - kind + e]
        heres.append(at(earlier, 0, 0))
        surprises.append(heres[-1] - med(at(earlier, 0, -1), at(earlier, -1, 0), at(earlier, -1, -1)))
    if kind:
        base = np.clip(base + surprises[-1], 0, 255)
    cols = [at(plane, dy, dx) - base for dy, dx in NEIGHBOURS_V2]
    own_errors = errors[channel]
    cols += [at(own_errors, dy, dx) for dy, dx in ERRORS_V2]
    for e in range(MAX_EARLIER):
        if e < kind:
            earlier = canvas[channel - kind + e]
            cols.append(surprises[e])
            cols.extend(heres[e] - at(earlier, dy, dx) for dy, dx in CROSS_V2)
        else:
            zero = np.zeros_like(base)
            cols.extend([zero] * (1 + len(CROSS_V2)))
    flag = np.full_like(base, FLAG)
    cols += [flag * (kind == k) for k in range(3)]
    cols += [flag * (ys == 0), flag * (xs == 0), flag * (xs == width - 1), flag * last]
    cols += [base - 128, flag]
    out = np.clip(np.stack(cols, axis=-1), -INT8_MAX, INT8_MAX).astype(np.int16)
    return out, base


def ls_size(kind: int) -> int:
    """Weights of a channel's linear predictor: same-channel neighbours, earlier channels, constant."""
    return len(LS_SAME) + kind * len(LS_CROSS) + 1


def ls_inputs(canvas: np.ndarray, cy: np.ndarray, cx: np.ndarray, channel: int, kind: int) -> np.ndarray:
    """(B, ls_size(kind)) int64 inputs of the linear predictor (the constant input is 128)."""
    cols = [canvas[channel][cy + dy, cx + dx] for dy, dx in LS_SAME]
    for e in range(kind):
        earlier = canvas[channel - kind + e]
        cols.extend(earlier[cy + dy, cx + dx] for dy, dx in LS_CROSS)
    cols.append(np.full(len(cy), 128, np.int16))
    return np.stack(cols, axis=-1).astype(np.int64)


def ls_predict(inputs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Integer prediction in 0..255 (exact int64 arithmetic)."""
    acc = inputs @ weights.astype(np.int64)
    return np.clip((acc + (1 << (LS_SHIFT - 1))) >> LS_SHIFT, 0, 255)


def ls_fit(pixels: np.ndarray, stripe_rows: int = STRIPE_ROWS) -> list[np.ndarray]:
    """Per channel int16 weights of the least-squares linear predictor of an (H, W, C) image, fitted
    on the positions whose neighbours are all inside their stripe (the encoder's choice: the
    decoder only reads the weights)."""
    height, width, channels = pixels.shape
    kinds = channel_kinds(channels)
    gram = [np.zeros((ls_size(k), ls_size(k))) for k in kinds]
    cross = [np.zeros(ls_size(k)) for k in kinds]
    for top in range(0, height, stripe_rows):
        stripe = pixels[top : top + stripe_rows]
        rows = stripe.shape[0]
        if rows <= 4 or width <= 6:
            continue
        canvas = stripe_canvas(stripe)
        ys, xs = np.divmod(np.arange(rows * width), width)
        inside = (ys >= 3) & (ys < rows - 1) & (xs >= 3) & (xs < width - 3)
        ys, xs = ys[inside], xs[inside]
        for c in range(channels):
            x = ls_inputs(canvas, ys + PAD, xs + PAD, c, kinds[c]).astype(np.float64)
            gram[c] += x.T @ x
            cross[c] += x.T @ stripe[ys, xs, c].astype(np.float64)
    weights = []
    for c in range(channels):
        n = ls_size(kinds[c])
        w = np.zeros(n)
        if gram[c][-1, -1] > 0:
            ridge = 1e-3 * np.trace(gram[c]) / n
            w = np.linalg.solve(gram[c] + ridge * np.eye(n), cross[c])
        weights.append(np.clip(np.round(w * (1 << LS_SHIFT)), -LS_LIMIT, LS_LIMIT).astype(np.int16))
    return weights


def features_v2(
    canvas: np.ndarray, errors: np.ndarray, ls_errors: np.ndarray, weights: np.ndarray,
    cy: np.ndarray, cx: np.ndarray, ys: np.ndarray, last: np.ndarray, channel: int, kind: int, width: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Feature set v2: the local features, the linear prediction (``weights``: the channel's, from
    ``ls_fit``) minus base and the linear predictor's errors at neighbours (``ls_errors``: value -
    linear prediction of every coded subpixel) -> (features (B, N_FEATURES_V2) int16, base int32,
    linear prediction int64). Computed by nncodec/image/_pixels.c when it is built (and
    ``NNCODEC_KERNELS`` is not ``numpy``), else by ``features_v2_reference``: the same values."""
    if _pixels is None:
        args = (canvas, errors, ls_errors, weights, cy, cx, ys, last)
        return features_v2_reference(*args, channel, kind, width)
    count = len(cy)
    feats = np.empty((count, N_FEATURES_V2), np.int16)
    base = np.empty(count, np.int32)
    pred = np.empty(count, np.int64)
    c = np.ascontiguousarray
    _pixels.features_v2(
        c(canvas, np.int16), c(errors, np.int16), c(ls_errors, np.int16), c(weights, np.int16),
        c(cy, np.int64), c(cx, np.int64), c(ys, np.int64), c(last, np.uint8), channel, kind, width,
        *canvas.shape, feats, base, pred,
    )  # fmt: skip
    return feats, base, pred


def features_v2_reference(
    canvas: np.ndarray, errors: np.ndarray, ls_errors: np.ndarray, weights: np.ndarray,
    cy: np.ndarray, cx: np.ndarray, ys: np.ndarray, last: np.ndarray, channel: int, kind: int, width: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """``features_v2`` in numpy (the reference)."""
    feats, base = local_features_v2(canvas, errors, cy, cx, ys, last, channel, kind, width)
    pred = ls_predict(ls_inputs(canvas, cy, cx, channel, kind), weights)
    own = ls_errors[channel]
    cols = [pred - base] + [own[cy + dy, cx + dx].astype(np.int32) for dy, dx in LS_ERRORS]
    extra = np.clip(np.stack(cols, axis=-1), -INT8_MAX, INT8_MAX).astype(np.int16)
    return np.concatenate([feats, extra], axis=1), base, pred


def new_canvas(channels: int, rows: int, cols: int) -> np.ndarray:
    return np.zeros((channels, rows + 2 * PAD, cols + 2 * PAD), np.int16)


def stripe_canvas(stripe: np.ndarray) -> np.ndarray:
    """(rows, cols, C) pixels -> the padded canvas holding them."""
    rows, cols, channels = stripe.shape
    canvas = new_canvas(channels, rows, cols)
    canvas[:, PAD : PAD + rows, PAD : PAD + cols] = np.moveaxis(stripe, -1, 0)
    return canvas


def residual_tokens(values: np.ndarray, base: np.ndarray) -> np.ndarray:
    return np.mod(values.astype(np.int64) - base, 256)


def stripe_features(
    pixels: np.ndarray, stripe_rows: int = STRIPE_ROWS, feature_set: str = "v1",
    weights: list[np.ndarray] | None = None,
):  # fmt: skip
    """Yield (features, residual tokens) for every channel of every stripe of an (H, W, C) image:
    all positions at once (every value is known), as the trainer uses them. Feature set v2 uses the
    linear predictor ``weights`` (default: ``ls_fit``'s)."""
    height, width, channels = pixels.shape
    kinds = channel_kinds(channels)
    if feature_set == "v2" and weights is None:
        weights = ls_fit(pixels, stripe_rows)
    for top in range(0, height, stripe_rows):
        stripe = pixels[top : top + stripe_rows]
        canvas = stripe_canvas(stripe)
        ys, xs = np.divmod(np.arange(stripe.shape[0] * width), width)
        cy, cx = ys + PAD, xs + PAD
        if feature_set == "v1":
            for c in range(channels):
                feats, base = features(canvas, cy, cx, ys, c, kinds[c], width)
                yield feats, residual_tokens(stripe[ys, xs, c], base)
            continue
        errors = np.zeros_like(canvas)
        ls_errors = np.zeros_like(canvas)
        last = ys == stripe.shape[0] - 1
        for c in range(channels):  # every error first: the features read them at neighbours
            value = stripe[ys, xs, c].astype(np.int32)
            errors[c, cy, cx] = value - base_prediction(canvas, cy, cx, c, kinds[c])
            ls_errors[c, cy, cx] = value - ls_predict(ls_inputs(canvas, cy, cx, c, kinds[c]), weights[c])
            feats, base, _ = features_v2(
                canvas, errors, ls_errors, weights[c], cy, cx, ys, last, c, kinds[c], width
            )
            yield feats, residual_tokens(value, base)


class PixelModel:
    """The exact-integer MLP loaded from ``models/<id>.safetensors``."""

    def __init__(self, path: Path) -> None:
        metadata, tensors = read_model_file(path, FORMAT)
        self.config = json.loads(metadata["config"])
        self.layers: list[IntLinear] = []
        for i in range(self.config["n_layers"]):
            weight = tensors[f"l{i}.w"]  # (out, in) int8 values
            if np.abs(weight.astype(np.int32)).max() > INT8_MAX or weight.shape[1] > MAX_EXACT_K:
                raise ValueError("model file violates an exactness invariant: weight range or size")
            weight = weight.astype(np.int8)
            if i == 0:  # zero columns up to a multiple of 4 inputs: the VNNI kernel's layout
                weight = np.pad(weight, ((0, 0), (0, -weight.shape[1] % 4)))
            self.layers.append(IntLinear(np.ascontiguousarray(weight), tensors[f"l{i}.s"].astype(np.float64)))
        self.feature_set = self.config.get("features", "v1")  # absent in image-v1
        if self.feature_set not in FEATURE_SETS:
            raise ValueError(f"model file needs feature set {self.feature_set!r} (newer nncodec?)")
        n_features = FEATURE_SETS[self.feature_set]
        self.n_inputs = tensors["l0.w"].shape[1]
        if self.n_inputs != n_features or self.layers[-1].weight.shape[0] != 256:
            raise ValueError("model file does not match its feature set")
        self.out_exp = tensors["out_exp"].astype(np.float64)
        self.out_steps = float(metadata["out_lut_steps"])
        if self.out_exp[-1] != 0 or self.out_exp.max() > 1 << 24:
            raise ValueError("model file violates an exactness invariant: output table")
        self.ops: NumpyOps | CompiledOps = best_ops()

    def frequencies(self, feats: np.ndarray, temperature: np.ndarray | None = None) -> np.ndarray:
        """(B, N_FEATURES) integer features -> (B, 256) integer frequency rows (entries >= 1) over
        residual tokens. ``temperature``: (B,) integers m, each row's logits scaled by m / 16
        (``TEMPERATURE_ONE``; image format 4), sharper above 16, flatter below."""
        return self.head_rows(*self.head_inputs(feats), temperature)

    def head_inputs(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The output layer's integer accumulator and its row scales for ``feats``."""
        ops = self.ops
        x = np.zeros((len(feats), self.layers[0].weight.shape[1]), np.int8 if ops.compiled else np.float32)
        x[:, : self.n_inputs] = feats  # int8 values; the padding columns stay 0
        scale = np.ones(len(feats), np.float64)  # features are int8 values already
        for linear in self.layers[:-1]:
            x, scale = ops.relu_quantize(ops.matmul(x, linear), scale, linear.scale)
        return ops.matmul(x, self.layers[-1]), scale

    def head_rows(self, acc: np.ndarray, scale: np.ndarray, temperature: np.ndarray | None = None
                  ) -> np.ndarray:  # fmt: skip
        """Frequency rows from ``head_inputs``; a temperature m multiplies the row scale by m / 16
        (exact: a dyadic factor, one IEEE product, the same in the numpy and compiled paths)."""
        if temperature is not None:
            scale = scale * (np.asarray(temperature, np.float64) / TEMPERATURE_ONE)
        last = self.layers[-1]
        return self.ops.head_lut(acc, scale, last.scale, self.out_exp, self.out_steps)
