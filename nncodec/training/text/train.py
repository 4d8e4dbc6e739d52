"""Train the text model (float32, torch) with checkpoints and resumption.

    python -m nncodec.training.text.train --tokenizer models/text-bpe4k.tokenizer.json \
        --out-dir checkpoints/text --steps 20000 [--resume] [--init-from WEIGHTS.safetensors]
        [--init-from-exact models/text-v1.safetensors] [--broad [--code]]

``--broad`` trains on the broad split of ``nncodec.training.text.data`` (Gutenberg minus held-out
authors, man pages, ...), sampled by its fixed source weights; ``--init-from-exact`` continues from a
shipped exact model file (dequantized by ``export.float_state_from_exact``); ``--code`` adds the code
split's sources (source code and documentation, weighted by ``CODE_WEIGHTS``).

Reproducible: fixed seed, the data split of ``nncodec.training.text.data``, and the command line
(recorded in the card written beside the weights). Every ``--eval-every`` steps it measures
validation bits per byte and writes the best weights to ``OUT_DIR/model.safetensors`` with
``OUT_DIR/card.json``; ``OUT_DIR/ckpt.pt`` holds model + optimizer state for ``--resume``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from nncodec.text.tokenizer import ByteTokenizer
from nncodec.training.common import argument_parser
from nncodec.training.text.data import BROAD_WEIGHTS, CODE_WEIGHTS, load_split
from nncodec.training.text.gpt import GPT, GPTConfig

DATA_NARROW = (
    "nncodec.training.text.data (see its docstring): Silesia dickens and xml, "
    "enwik8 bytes 1M-4M (each minus its validation tail), Python stdlib sources"
)
DATA_BROAD = (
    "nncodec.training.text.data, broad split (see its docstring): as text-v1 plus the Gutenberg set "
    "minus held-out authors and man pages, sampled by BROAD_WEIGHTS"
)
DATA_CODE = (
    "nncodec.training.text.data, broad + code split (see its docstring): the broad split plus C/C++ "
    "headers, npm JavaScript and Rust HTML documentation installed on the machine, sampled by "
    "BROAD_WEIGHTS and CODE_WEIGHTS"
)
VAL_BYTES = 200_000  # bytes of each validation file used for the periodic estimate


def tokenize_all(
    tokenizer: ByteTokenizer, items: list[tuple[str, bytes]]
) -> list[tuple[str, np.ndarray, int]]:
    out = []
    for name, data in items:
        ids = np.concatenate(
            [tokenizer.encode(data[i : i + (1 << 20)]) for i in range(0, len(data), 1 << 20)]
        ).astype(np.int64)
        out.append((name, ids, len(data)))
    return out


def batch_from(
    streams: list[np.ndarray], weights: np.ndarray, rng: np.random.Generator, batch: int, window: int
):
    choice = rng.choice(len(streams), size=batch, p=weights)
    rows = []
    for s in choice:
        ids = streams[s]
        start = rng.integers(0, len(ids) - window - 1)
        rows.append(ids[start : start + window + 1])
    rows = torch.from_numpy(np.stack(rows))
    return rows[:, :-1], rows[:, 1:]


@torch.no_grad()
def evaluate(model: GPT, val: list[tuple[str, np.ndarray, int]], window: int) -> dict[str, float]:
    """Bits per byte on non-overlapping windows (a slight overestimate of the codec's sliding window)."""
    model.eval()
    result = {}
    for name, ids, nbytes in val:
        usable = (len(ids) - 1) // window * window
        x = torch.from_numpy(ids[:usable]).view(-1, window)
        y = torch.from_numpy(ids[1 : usable + 1]).view(-1, window)
        total = 0.0
        for i in range(0, len(x), 32):
            _, loss = model(x[i : i + 32], y[i : i + 32])
            total += loss.item() * y[i : i + 32].numel()
        covered = nbytes * usable / len(ids)
        result[name] = total / math.log(2) / covered
    model.train()
    return result


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, default=Path("checkpoints/text"))
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=256)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--init-from", type=Path)
    parser.add_argument("--init-from-exact", type=Path)
    parser.add_argument("--broad", action="store_true")
    parser.add_argument("--code", action="store_true", help="with --broad: add the code split's sources")
    parser.add_argument("--stop-after", type=int, help="end at this step (the schedule still spans --steps)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)

    tokenizer = ByteTokenizer.from_file(args.tokenizer)
    train_items, val_items = load_split(broad=args.broad, code=args.code)
    train = tokenize_all(tokenizer, train_items)
    val = tokenize_all(tokenizer, [(n, d[:VAL_BYTES]) for n, d in val_items])
    streams = [ids for _, ids, _ in train]
    if args.broad:
        source_weights = {**BROAD_WEIGHTS, **CODE_WEIGHTS}
        weights = np.array([source_weights[name] for name, _, _ in train], dtype=np.float64)
    else:
        weights = np.array([len(s) for s in streams], dtype=np.float64)
    weights /= weights.sum()
    print("train tokens:", {n: len(i) for n, i, _ in train}, flush=True)

    config = GPTConfig(
        vocab_size=tokenizer.vocab_size,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        window=args.window,
    )
    model = GPT(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    step, best, history = 0, float("inf"), []
    ckpt_path = args.out_dir / "ckpt.pt"
    if args.resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step, best, history = ckpt["step"], ckpt["best"], ckpt["history"]
        rng = np.random.default_rng([args.seed, step])
        print(f"resumed at step {step}, best {best:.4f}", flush=True)
    elif args.init_from:
        model.load_state_dict(load_file(args.init_from))
    elif args.init_from_exact:
        from nncodec.training.text.export import float_state_from_exact

        model.load_state_dict(float_state_from_exact(args.init_from_exact, config))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_params:,} parameters, config {config.to_dict()}", flush=True)

    started = time.time()
    tokens_seen = 0
    last = min(args.steps, args.stop_after or args.steps)
    while step < last:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        x, y = batch_from(streams, weights, rng, args.batch, config.window)
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        tokens_seen += x.numel()
        if step % 50 == 0:
            rate = tokens_seen / (time.time() - started)
            print(f"step {step} loss {loss.item():.4f} lr {group['lr']:.2e} {rate:.0f} tok/s", flush=True)
        if step % args.eval_every == 0 or step == last:
            bpb = evaluate(model, val, config.window)
            mean = float(np.mean(list(bpb.values())))
            history.append({"step": step, "val_bpb": bpb, "time": time.time()})
            print(f"eval step {step}: {bpb} mean {mean:.4f}", flush=True)
            if mean < best:
                best = mean
                weights_path = args.out_dir / "model.safetensors"
                save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights_path)
                card = {
                    "architecture": "GPT (ALiBi, RMSNorm, ReLU MLP, tied embeddings, no biases)",
                    "config": config.to_dict(),
                    "parameters": n_params,
                    "tokenizer": args.tokenizer.name,
                    "training": {
                        "data": DATA_CODE if args.code else DATA_BROAD if args.broad else DATA_NARROW,
                        "steps": step,
                        "batch": args.batch,
                        "tokens_seen": step * args.batch * config.window,
                        "seed": args.seed,
                        "command": " ".join(
                            [os.path.basename(sys.executable), "-m", "nncodec.training.text.train"]
                            + sys.argv[1:]
                        ),
                        "torch": torch.__version__,
                    },
                    "validation_bpb_float": bpb,
                    "history": history,
                }
                (args.out_dir / "card.json").write_text(json.dumps(card, indent=2))
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "step": step,
                    "best": best,
                    "history": history,
                    "config": config.to_dict(),
                },
                ckpt_path,
            )


if __name__ == "__main__":
    main()
