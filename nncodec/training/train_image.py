"""Train the next-pixel model (a float MLP in torch) and export it as an exact-integer model file.

    python -m nncodec.training.train_image --out-dir checkpoints/image --model-id image-v1 \
        [--steps 6000] [--hidden 128] [--seed 1234]

Data (``../shared/data/images``, see its README for provenance and licences): training on CBSD68
(2x downsampled, see ``image_lists``), McMaster mcm01-mcm09, Set12 (gray) and the screen/synthetic
set; McMaster mcm10-mcm18 are held out (validation and benchmark).
Every image is cut into stripes of ``STRIPE_ROWS`` rows exactly as the codec codes them, features
come from nncodec/imagemodel.py, and a random share of all subpixels is used per image.

The float model computes relu(W1 f/64) -> relu(W2 .) -> W3 . (no biases: a constant feature
stands in for them), the same function the exact model computes with int8 weights per output
channel, int8 activations per row and a lookup-table softmax. Export writes
``models/<id>.safetensors`` and ``models/<id>.json`` (card: data, command, seed, float and exact
bits per subpixel on validation data, sha256).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.numpy import save_file

from nncodec.exact import make_exp_table
from nncodec.imagemodel import FEATURE_SCALE, FORMAT, N_FEATURES, PixelModel, stripe_features

SHARED_IMAGES = Path(__file__).resolve().parents[3] / "shared" / "data" / "images"
OUT_LUT_STEPS, OUT_LUT_NATS, OUT_LUT_SCALE = 64, 24, 1 << 24
SAMPLE_SHARE = 0.3


def image_lists() -> tuple[list[Path], list[Path]]:
    """Training and validation images. CBSD68 (BSDS500) photos were JPEG-compressed at the source,
    so their colour channels carry JPEG's chroma structure; they are used 2x box-downsampled
    (see ``load_pixels``), which removes most of it. McMaster (genuine, uncompressed photos) is
    split by name: mcm01-mcm09 train, mcm10-mcm18 are held out (the benchmark set)."""
    cbsd = sorted((SHARED_IMAGES / "cbsd68").glob("*.png"))
    mcm = sorted((SHARED_IMAGES / "mcmaster").glob("*.png"))
    train = cbsd + mcm[: len(mcm) // 2] + sorted((SHARED_IMAGES / "set12_gray").glob("*.png"))
    train += sorted((SHARED_IMAGES / "screen_synthetic").glob("*.png"))
    return train, mcm[len(mcm) // 2 :]


def load_pixels(path: Path) -> np.ndarray:
    """(H, W, C) uint8 pixels as the codec sees them (gray, gray+alpha, RGB or RGBA); CBSD68
    photos 2x box-downsampled (rounded mean of each 2x2 block)."""
    with Image.open(path) as im:
        if im.mode not in ("L", "LA", "RGB", "RGBA"):
            im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
        pixels = np.asarray(im)
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    if path.parent.name == "cbsd68":
        h, w = pixels.shape[0] // 2 * 2, pixels.shape[1] // 2 * 2
        blocks = pixels[:h, :w].astype(np.uint16).reshape(h // 2, 2, w // 2, 2, -1)
        pixels = ((blocks.sum(axis=(1, 3)) + 2) // 4).astype(np.uint8)
    return pixels


def samples(paths: list[Path], share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, F) int16 and residual tokens (N,) for a random share of all subpixels."""
    feats, targets = [], []
    for path in paths:
        for f, t in stripe_features(load_pixels(path)):
            keep = rng.random(len(t)) < share
            feats.append(f[keep])
            targets.append(t[keep])
    return np.concatenate(feats), np.concatenate(targets)


class PixelMLP(torch.nn.Module):
    def __init__(self, hidden: int, layers: int = 3) -> None:
        super().__init__()
        sizes = [N_FEATURES] + [hidden] * (layers - 1) + [256]
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


def export(model: PixelMLP, out_dir: Path, model_id: str, card: dict) -> Path:
    tensors, config = {}, {"n_layers": len(model.linears), "hidden": model.linears[0].out_features}
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
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    card = {"model_id": model_id, "file": path.name, "sha256": digest, "size_bytes": path.stat().st_size,
            "format": FORMAT, "config": config, **card}  # fmt: skip
    (out_dir / f"{model_id}.json").write_text(json.dumps(card, indent=2) + "\n")
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
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out-dir", type=Path, default=Path("checkpoints/image"))
    parser.add_argument("--model-dir", type=Path, default=Path("models"))
    parser.add_argument("--model-id", default="image-v1")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train_paths, val_paths = image_lists()
    started = time.time()
    feats, targets = samples(train_paths, SAMPLE_SHARE, rng)
    val_feats, val_targets = samples(val_paths, 0.1, rng)
    print(f"{len(targets):,} training and {len(val_targets):,} validation subpixels "
          f"({time.time() - started:.0f} s)", flush=True)  # fmt: skip

    model = PixelMLP(args.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.steps)
    feats_t, targets_t = torch.from_numpy(feats.astype(np.float32)), torch.from_numpy(targets)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    history = []
    for step in range(1, args.steps + 1):
        index = torch.from_numpy(rng.integers(0, len(targets), args.batch))
        loss = torch.nn.functional.cross_entropy(model(feats_t[index]), targets_t[index])
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
        "architecture": f"MLP {N_FEATURES} -> {args.hidden} -> {args.hidden} -> 256, ReLU, no biases; "
        "features of nncodec/imagemodel.py; predicts (value - MED base) mod 256",
        "quantization": "int8 weights per output channel, int8 activations per row, exp lookup table",
        "training": {
            "data": "../shared/data/images: cbsd68 (2x box-downsampled), mcmaster mcm01-mcm09, set12_gray, "
            "screen_synthetic",
            "subpixels": int(len(targets)),
            "sample_share": SAMPLE_SHARE,
            "steps": args.steps,
            "batch": args.batch,
            "seed": args.seed,
            "command": "python -m nncodec.training.train_image " + " ".join(sys.argv[1:]),
            "torch": torch.__version__,
            "history": history,
        },
        "validation": {"what": "mcmaster mcm10-mcm18 (never trained on), 10% of subpixels"},
    }
    path = export(model, args.model_dir, args.model_id, card)
    card["validation"]["float_bpsp"] = bits_per_subpixel(model, val_feats, val_targets)
    card["validation"]["exact_bpsp"] = exact_bits(path, val_feats, val_targets)
    path = export(model, args.model_dir, args.model_id, card)  # card with the exact numbers
    print(json.dumps(card["validation"], indent=2))


if __name__ == "__main__":
    main()
