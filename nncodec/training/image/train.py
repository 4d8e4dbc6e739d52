"""Train the next-pixel model (a float MLP in torch) and export it as an exact-integer model file.

    python -m nncodec.training.image.train --out-dir checkpoints/image --model-id image-v5 \
        --features v2 --hidden 256 --mcm-share 1.0 --steps 48000 --data broad --augment [--seed 1234]

(``make train-image-v5``; image-v4 was that without ``--augment`` and with ``--steps 32000``, image-v3
``--hidden 192 --steps 24000``, image-v2 that without ``--data broad``, image-v1 ``--model-id image-v1
--steps 6000``: feature set v1, hidden 128; the exact commands are in the model cards.)

Data (``../shared/data/images``, see its README for provenance and licences): training on CBSD68 (2x
downsampled, see ``image_lists``), McMaster mcm01-mcm09, Set12 (gray) and the screen/synthetic set (``--data
broad`` adds the photo sets of ``images/more`` in ``BROAD_SETS``, keeping four sources out of training and one
for tuning, see ``HELD_OUT_SETS``); McMaster mcm10-mcm18 are held out (benchmark; the card reports the model
on them, nothing is chosen by them). ``--tune`` holds mcm07-mcm09 out as well and validates on them: feature
sets, widths, data shares and the codec's mixer priors were chosen that way.
Every image is cut into stripes of ``STRIPE_ROWS`` rows exactly as the codec codes them, features
come from nncodec/image/nextpixel.py, and a random share of all subpixels is used per image.

The float model computes relu(W1 f/64) -> relu(W2 .) -> W3 . (no biases: a constant feature
stands in for them), the same function the exact model computes with int8 weights per output
channel, int8 activations per row and a lookup-table softmax. Export writes
``models/<id>.safetensors`` and ``models/<id>.json`` (card: data, command, seed, float and exact
bits per subpixel on validation data, sha256).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.numpy import save_file

from nncodec.image.nextpixel import FEATURE_SCALE, FEATURE_SETS, FORMAT, PixelModel, stripe_features
from nncodec.nn.exact import make_exp_table
from nncodec.training.common import SHARED_DATA, argument_parser, write_card

SHARED_IMAGES = SHARED_DATA / "images"
OUT_LUT_STEPS, OUT_LUT_NATS, OUT_LUT_SCALE = 64, 24, 1 << 24
SAMPLE_SHARE = 0.3


def image_lists(tune: bool = False) -> tuple[list[Path], list[Path]]:
    """Training and validation images. CBSD68 (BSDS500) photos were JPEG-compressed at the source,
    so their colour channels carry JPEG's chroma structure; they are used 2x box-downsampled
    (see ``load_pixels``), which removes most of it. McMaster (genuine, uncompressed photos) is
    split by name: mcm01-mcm09 train, mcm10-mcm18 are held out (the benchmark set: reported in the
    card, never used to choose anything). ``tune``: mcm07-mcm09 leave the training set and are the
    validation set instead (for choosing features and settings without the benchmark set)."""
    cbsd = sorted((SHARED_IMAGES / "cbsd68").glob("*.png"))
    mcm = sorted((SHARED_IMAGES / "mcmaster").glob("*.png"))
    mcm_train = mcm[: len(mcm) // 2]
    train = cbsd + (mcm_train[:6] if tune else mcm_train)
    train += sorted((SHARED_IMAGES / "set12_gray").glob("*.png"))
    train += sorted((SHARED_IMAGES / "screen_synthetic").glob("*.png"))
    return train, mcm_train[6:] if tune else mcm[len(mcm) // 2 :]


#: ``--data broad`` (image-v3): sets of ``images/more`` trained on. Held out of all training and
#: tuning: gb82 and usc_sipi_misc_color (the headline photo validation, issue 20), gb82_sc_screen and
#: charls_screen (screens); cc0_wesaturate_rawpixls is the tuning set (codec settings are chosen on
#: it, the model never sees it).
BROAD_SETS = (
    "cid22_512_sub10", "clic2025_valid_sub4", "urban100_hr_sub10", "set14",
    "rgb8bit_imagecompression_info", "tecnick_rgb_1200",
)  # fmt: skip
HELD_OUT_SETS = ("gb82", "usc_sipi_misc_color", "gb82_sc_screen", "charls_screen")
TUNING_SETS = ("cc0_wesaturate_rawpixls",)
#: JPEG-derived (or partly so) sources: used 2x box-downsampled, which removes most of JPEG's traces
DOWNSAMPLED = ("cbsd68", "cid22_512_sub10", "clic2025_valid_sub4", "urban100_hr_sub10", "set14")
MAX_KEPT = 1_500_000  # subpixels kept from one image at most (the 3072x2048 photos would dominate)


def broad_image_lists() -> tuple[list[Path], list[Path]]:
    """``--data broad``: the narrow training set (all but mcm10-mcm18) plus BROAD_SETS; validation
    during training stays mcm10-mcm18 (comparable with image-v2's card)."""
    train, val = image_lists()
    for name in BROAD_SETS:
        train += sorted((SHARED_IMAGES / "more" / name).glob("*.png"))
    return train, val


def load_pixels(path: Path) -> np.ndarray:
    """(H, W, C) uint8 pixels as the codec sees them (gray, gray+alpha, RGB or RGBA); photos of
    JPEG-derived sets (``DOWNSAMPLED``) 2x box-downsampled (rounded mean of each 2x2 block)."""
    with Image.open(path) as im:
        if im.mode not in ("L", "LA", "RGB", "RGBA"):
            im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
        pixels = np.asarray(im)
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    if path.parent.name in DOWNSAMPLED:
        h, w = pixels.shape[0] // 2 * 2, pixels.shape[1] // 2 * 2
        blocks = pixels[:h, :w].astype(np.uint16).reshape(h // 2, 2, w // 2, 2, -1)
        pixels = ((blocks.sum(axis=(1, 3)) + 2) // 4).astype(np.uint8)
    return pixels


def samples(
    paths: list[Path],
    share: float,
    rng: np.random.Generator,
    feature_set: str,
    augment: bool = False,
    mcm_share: float | None = None,
    max_kept: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, F) int16 and residual tokens (N,) for a random share of all subpixels
    (``mcm_share`` of the McMaster photos' when given, at most ``max_kept`` per image); ``augment``
    adds each image mirrored left-right."""
    feats, targets = [], []
    for path in paths:
        pixels = load_pixels(path)
        keep_share = mcm_share if mcm_share is not None and path.parent.name == "mcmaster" else share
        if max_kept is not None:
            keep_share = min(keep_share, max_kept / pixels.size)
        for image in [pixels, pixels[:, ::-1]] if augment else [pixels]:
            for f, t in stripe_features(np.ascontiguousarray(image), feature_set=feature_set):
                keep = rng.random(len(t)) < keep_share
                feats.append(f[keep])
                targets.append(t[keep])
    return np.concatenate(feats), np.concatenate(targets)


class PixelMLP(torch.nn.Module):
    def __init__(self, hidden: int, layers: int = 3, n_features: int = FEATURE_SETS["v1"]) -> None:
        super().__init__()
        sizes = [n_features] + [hidden] * (layers - 1) + [256]
        self.linears = torch.nn.ModuleList(
            torch.nn.Linear(a, b, bias=False) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = feats / FEATURE_SCALE
        for linear in self.linears[:-1]:
            x = torch.relu(linear(x))
        return self.linears[-1](x)


def bits_per_subpixel(model: PixelMLP, feats: np.ndarray, targets: np.ndarray) -> float:
    with torch.no_grad():
        total = 0.0
        for a in range(0, len(targets), 65536):
            logits = model(torch.from_numpy(feats[a : a + 65536].astype(np.float32)))
            total += torch.nn.functional.cross_entropy(
                logits, torch.from_numpy(targets[a : a + 65536]), reduction="sum"
            ).item()
    return total / len(targets) / math.log(2)


def export(model: PixelMLP, out_dir: Path, model_id: str, card: dict, feature_set: str = "v1") -> Path:
    tensors, config = {}, {"n_layers": len(model.linears), "hidden": model.linears[0].out_features}
    if feature_set != "v1":  # image-v1's files name none: v1
        config["features"] = feature_set
    for i, linear in enumerate(model.linears):
        w = linear.weight.detach().double().numpy()
        if i == 0:
            w = w / FEATURE_SCALE  # the exact model takes the integer features
        peak = np.abs(w).max(axis=1)
        scale = np.where(peak > 0, peak, 1.0) / 127.0
        tensors[f"l{i}.w"] = np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int8)
        tensors[f"l{i}.s"] = scale
    tensors["out_exp"] = make_exp_table(OUT_LUT_STEPS, OUT_LUT_STEPS * OUT_LUT_NATS, OUT_LUT_SCALE)
    tensors["out_exp"][-1] = 0
    metadata = {"format": FORMAT, "config": json.dumps(config), "out_lut_steps": str(OUT_LUT_STEPS)}
    path = out_dir / f"{model_id}.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    write_card(path, {"format": FORMAT, "config": config, **card})
    return path


def exact_bits(path: Path, feats: np.ndarray, targets: np.ndarray) -> float:
    exact = PixelModel(path)
    total = 0.0
    for a in range(0, len(targets), 65536):
        rows = exact.frequencies(feats[a : a + 65536])
        p = rows[np.arange(len(rows)), targets[a : a + 65536]] / rows.sum(axis=1)
        total -= np.log2(p).sum()
    return float(total / len(targets))


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--out-dir", type=Path, default=Path("checkpoints/image"))
    parser.add_argument("--model-dir", type=Path, default=Path("models"))
    parser.add_argument("--model-id", default="image-v1")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--features", choices=sorted(FEATURE_SETS), default="v1")
    parser.add_argument("--share", type=float, default=SAMPLE_SHARE, help="share of subpixels used")
    parser.add_argument("--mcm-share", type=float, default=None, help="share of McMaster subpixels used")
    parser.add_argument("--augment", action="store_true", help="add every image mirrored left-right")
    parser.add_argument("--tune", action="store_true", help="validate on mcm07-09, not trained on")
    parser.add_argument("--data", choices=("narrow", "broad"), default="narrow", help="training sets")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    train_paths, val_paths = broad_image_lists() if args.data == "broad" else image_lists(args.tune)
    started = time.time()
    max_kept = MAX_KEPT if args.data == "broad" else None
    feats, targets = samples(
        train_paths, args.share, rng, args.features, args.augment, args.mcm_share, max_kept
    )
    val_feats, val_targets = samples(val_paths, 0.1, rng, args.features)
    print(f"{len(targets):,} training and {len(val_targets):,} validation subpixels "
          f"({time.time() - started:.0f} s)", flush=True)  # fmt: skip

    n_features = FEATURE_SETS[args.features]
    model = PixelMLP(args.hidden, n_features=n_features)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.steps)
    feats_t, targets_t = torch.from_numpy(feats), torch.from_numpy(targets)  # int16: converted per batch
    args.out_dir.mkdir(parents=True, exist_ok=True)
    history = []
    for step in range(1, args.steps + 1):
        index = torch.from_numpy(rng.integers(0, len(targets), args.batch))
        loss = torch.nn.functional.cross_entropy(model(feats_t[index].float()), targets_t[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 500 == 0 or step == args.steps:
            val = bits_per_subpixel(model, val_feats, val_targets)
            history.append({"step": step, "train_bpsp": loss.item() / math.log(2), "val_bpsp": val})
            print(f"step {step}: train {loss.item() / math.log(2):.4f} val {val:.4f} bpsp "
                  f"({time.time() - started:.0f} s)", flush=True)  # fmt: skip
            torch.save({"model": model.state_dict(), "step": step}, args.out_dir / "ckpt.pt")

    card = {
        "architecture": f"MLP {n_features} -> {args.hidden} -> {args.hidden} -> 256, ReLU, no biases; "
        f"feature set {args.features} of nncodec/image/nextpixel.py; predicts (value - base) mod 256",
        "features": args.features,
        "quantization": "int8 weights per output channel, int8 activations per row, exp lookup table",
        "training": {
            "data": "../shared/data/images: cbsd68 (2x box-downsampled), "
            f"mcmaster mcm01-mcm{6 if args.tune else 9:02d}, set12_gray, screen_synthetic"
            + (f"; more/: {', '.join(BROAD_SETS)} ({', '.join(DOWNSAMPLED[1:])} 2x box-downsampled; at most "
               f"{MAX_KEPT:,} subpixels per image)" if args.data == "broad" else ""),
            "held_out": list(HELD_OUT_SETS) if args.data == "broad" else [],
            "tuning_sets": list(TUNING_SETS) if args.data == "broad" else [],
            "subpixels": int(len(targets)),
            "sample_share": args.share,
            "mcmaster_share": args.mcm_share if args.mcm_share is not None else args.share,
            "augment": "mirrored copies" if args.augment else "none",
            "steps": args.steps,
            "batch": args.batch,
            "seed": args.seed,
            "command": "python -m nncodec.training.image.train " + " ".join(sys.argv[1:]),
            "torch": torch.__version__,
            "history": history,
        },
        "validation": {
            "what": "mcmaster mcm07-mcm09 (left out of training: --tune), 10% of subpixels"
            if args.tune
            else "mcmaster mcm10-mcm18 (never trained on), 10% of subpixels"
        },
    }
    path = export(model, args.model_dir, args.model_id, card, args.features)
    card["validation"]["float_bpsp"] = bits_per_subpixel(model, val_feats, val_targets)
    card["validation"]["exact_bpsp"] = exact_bits(path, val_feats, val_targets)
    path = export(model, args.model_dir, args.model_id, card, args.features)  # with the exact numbers
    print(json.dumps(card["validation"], indent=2))


if __name__ == "__main__":
    main()
