"""Export a trained float text model to the exact-integer model file the codec uses.

    python -m nncodec.training.text.export --weights checkpoints/text/model.safetensors \
        --card checkpoints/text/card.json --tokenizer models/text-bpe4k.tokenizer.json \
        --model-id text-v1 --out-dir models

Folds RMSNorm gains into the following weights, quantizes weights to int8 per output channel,
calibrates the residual unit and the per-head value scales on training text, stores the ALiBi bias
and exp lookup tables, embeds the config and tokenizer in the metadata, and writes a JSON card with
the sha256 and validation bits per byte of both the float and the exact model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file
from safetensors.torch import load_file

from nncodec.nn.exact import make_exp_table
from nncodec.text.model import FORMAT, IntGPT
from nncodec.text.tokenizer import ByteTokenizer
from nncodec.training.common import argument_parser, write_card
from nncodec.training.text.data import HELD_OUT_AUTHORS, HELD_OUT_BOOKS, HELD_OUT_BYTES, load_split
from nncodec.training.text.gpt import GPT, GPTConfig, alibi_slopes

ATTN_LUT_STEPS, ATTN_LUT_NATS, ATTN_LUT_SCALE = 64, 16, 1 << 15
OUT_LUT_STEPS, OUT_LUT_NATS, OUT_LUT_SCALE = 64, 24, 1 << 24
RES_HEADROOM = 1 << 22  # the calibrated peak residual maps to 2^22 units
V_HEADROOM = 1.25  # int8 values: the calibrated peak |v| per head maps to 127 / 1.25


def quantize_weight(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    peak = np.abs(w).max(axis=1)
    scale = np.where(peak > 0, peak, 1.0) / 127.0
    return np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int8), scale.astype(np.float64)


@torch.no_grad()
def calibrate(model: GPT, tokens: torch.Tensor) -> tuple[float, list[np.ndarray]]:
    """Peak |residual| over all layers, and peak |v| per layer and head, on sample windows."""
    peaks, v_peaks = [], []
    x = model.embed(tokens)
    peaks.append(x.abs().max().item())
    C, H = model.config.n_embd, model.config.n_head
    for block in model.blocks:
        v = block.attn.qkv(block.norm1(x))[..., 2 * C :]
        v_peaks.append(v.reshape(*v.shape[:-1], H, C // H).abs().amax(dim=(0, 1, 3)).numpy())
        x = block(x)
        peaks.append(x.abs().max().item())
    return max(peaks), v_peaks


def export(
    weights: Path, tokenizer_path: Path, config: GPTConfig, calibration: torch.Tensor
) -> tuple[dict, dict]:
    model = GPT(config)
    model.load_state_dict(load_file(weights))
    model.eval()
    state = {k: v.double().numpy() for k, v in model.state_dict().items()}
    peak, v_peaks = calibrate(model, calibration)
    res_unit = peak / RES_HEADROOM
    tensors: dict[str, np.ndarray] = {
        "embed": np.round(state["embed.weight"] / res_unit).astype(np.int32),
        "res_unit": np.array([res_unit]),
        "eps_units": np.array([1e-5 / res_unit**2]),
    }
    for i in range(config.n_layer):
        p = f"blocks.{i}."
        g1, g2 = state[p + "norm1.weight"], state[p + "norm2.weight"]
        for name, w in (
            ("qkv", state[p + "attn.qkv.weight"] * g1[None, :]),
            ("proj", state[p + "attn.proj.weight"]),
            ("up", state[p + "mlp.up.weight"] * g2[None, :]),
            ("down", state[p + "mlp.down.weight"]),
        ):
            tensors[f"l{i}.{name}.w"], tensors[f"l{i}.{name}.s"] = quantize_weight(w)
        tensors[f"l{i}.v_scale"] = (V_HEADROOM * np.maximum(v_peaks[i], 1e-6) / 127).astype(np.float64)
    tensors["head.w"], tensors["head.s"] = quantize_weight(
        state["embed.weight"] * state["norm.weight"][None, :]
    )
    slopes = np.array(alibi_slopes(config.n_head))
    tensors["alibi"] = slopes[:, None] * np.arange(config.window, dtype=np.float64)[None, :]
    tensors["attn_exp"] = make_exp_table(ATTN_LUT_STEPS, ATTN_LUT_STEPS * ATTN_LUT_NATS, ATTN_LUT_SCALE)
    tensors["out_exp"] = make_exp_table(OUT_LUT_STEPS, OUT_LUT_STEPS * OUT_LUT_NATS, OUT_LUT_SCALE)
    metadata = {
        "format": FORMAT,
        "config": json.dumps(config.to_dict()),
        "tokenizer": tokenizer_path.read_text(encoding="utf-8"),
        "attn_lut_steps": str(ATTN_LUT_STEPS),
        "out_lut_steps": str(OUT_LUT_STEPS),
    }
    return tensors, metadata


def float_state_from_exact(path: Path, config: GPTConfig) -> dict[str, torch.Tensor]:
    """The inverse of ``export`` up to rounding: float weights from an exact model file, to continue
    training a shipped model (its float checkpoint need not exist). Norm gains folded into the next
    weights come back as 1 (the folded weights carry them); the final norm's gain, folded into the
    tied head, is fitted per channel by least squares against the embedding."""
    from nncodec.core.modelstore import read_model_file

    _, tensors = read_model_file(path, FORMAT)
    res_unit = float(tensors["res_unit"][0])

    def weight(name: str) -> np.ndarray:
        return tensors[f"{name}.w"].astype(np.float64) * tensors[f"{name}.s"].astype(np.float64)[:, None]

    embed = tensors["embed"].astype(np.float64) * res_unit
    head = weight("head")
    gain = (head * embed).sum(axis=0) / np.maximum((embed * embed).sum(axis=0), 1e-30)
    state = {"embed.weight": embed, "norm.weight": gain}
    for i in range(config.n_layer):
        p = f"blocks.{i}."
        state[p + "norm1.weight"] = np.ones(config.n_embd)
        state[p + "norm2.weight"] = np.ones(config.n_embd)
        state[p + "attn.qkv.weight"] = weight(f"l{i}.qkv")
        state[p + "attn.proj.weight"] = weight(f"l{i}.proj")
        state[p + "mlp.up.weight"] = weight(f"l{i}.up")
        state[p + "mlp.down.weight"] = weight(f"l{i}.down")
    return {k: torch.from_numpy(v.astype(np.float32)) for k, v in state.items()}


@torch.no_grad()
def float_bpb(model: GPT, ids: np.ndarray, nbytes: int, window: int, span: int = 1024) -> float:
    """The float model's bits per byte with the same sliding window and uniform first token."""
    bits = math.log2(model.config.vocab_size)
    tokens = torch.from_numpy(ids.astype(np.int64))
    for start in range(1, len(ids), span):
        first = max(0, start - window)
        logits, _ = model(tokens[None, first : start + span - 1], window=window)
        targets = tokens[start : start + span]
        logp = torch.log_softmax(logits[0, start - 1 - first :].double(), -1)[: len(targets)]
        bits -= logp.gather(1, targets[:, None]).sum().item() / math.log(2)
    return bits / nbytes


def exact_bpb(model: IntGPT, ids: np.ndarray, nbytes: int, window: int) -> float:
    """Bits per byte of the exact model with the codec's sliding window, on one long stream."""
    freqs_bits = 0.0
    tokens = ids[None, :]
    freqs = model.sequence_frequencies(tokens)[0]  # (T-1, V)
    targets = ids[1:]
    p = freqs[np.arange(len(targets)), targets] / freqs.sum(axis=1)
    freqs_bits = float(-np.log2(p).sum()) + math.log2(model.vocab_size)  # first token: uniform
    return freqs_bits / nbytes


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--card", type=Path, required=True, help="training card written by train_text")
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--out-dir", type=Path, default=Path("models"))
    parser.add_argument("--eval-bytes", type=int, default=100_000)
    parser.add_argument("--broad", action="store_true", help="broad split: validation adds held-out authors")
    parser.add_argument("--code", action="store_true", help="code split: held-out code validation")
    args = parser.parse_args()

    train_card = json.loads(args.card.read_text())
    config = GPTConfig(**train_card["config"])
    tokenizer = ByteTokenizer.from_file(args.tokenizer)
    train, validation = load_split(broad=args.broad, code=args.code)
    rng = np.random.default_rng(0)
    sample_ids = np.concatenate([tokenizer.encode(data[:2_000_000]) for _, data in train])
    starts = rng.integers(0, len(sample_ids) - config.window, size=64)
    calibration = torch.from_numpy(
        np.stack([sample_ids[s : s + config.window] for s in starts]).astype(np.int64)
    )

    tensors, metadata = export(args.weights, args.tokenizer, config, calibration)
    out = args.out_dir / f"{args.model_id}.safetensors"
    save_file(tensors, str(out), metadata=metadata)

    exact = IntGPT(out)
    float_model = GPT(config)
    float_model.load_state_dict(load_file(args.weights))
    float_model.eval()
    exact_val, float_val = {}, {}
    for name, data in validation:
        piece = data[: args.eval_bytes]
        ids = tokenizer.encode(piece)
        exact_val[name] = round(exact_bpb(exact, ids, len(piece), config.window), 4)
        float_val[name] = round(float_bpb(float_model, ids, len(piece), config.window), 4)
        print(
            f"{name}: float {float_val[name]} exact {exact_val[name]} bpb (first {len(piece):,} bytes)",
            flush=True,
        )
    card = write_card(out, {
        "format": FORMAT,
        "architecture": train_card["architecture"],
        "config": train_card["config"],
        "parameters": train_card["parameters"],
        "tokenizer": {
            "file": args.tokenizer.name,
            "kind": "byte-level BPE (exactly invertible)",
            "vocab_size": tokenizer.vocab_size,
        },
        "quantization": "int8 weights per output channel; int8 activations per row; int16 values per head; "
        "int64 residual stream; exp via lookup tables (exact arithmetic, see nncodec/nn/exact.py)",
        "training": train_card["training"],
        "validation": {
            "what": "tails never trained on: dickens last 1,000,000 bytes, enwik8-bytes1M-4M last 500,000, "
            "silesia xml last 500,000"
            + (
                f"; books by held-out authors ({', '.join(a.strip(',') for a in HELD_OUT_AUTHORS)}): "
                f"the first {HELD_OUT_BYTES:,} bytes of Gutenberg {', '.join(HELD_OUT_BOOKS)}"
                if args.broad
                else ""
            )
            + (
                "; code sources never trained on: /usr/include/linux headers, Underscore.js, HTML under "
                "/usr/share/doc (stride samples, nncodec.training.text.data.code_validation)"
                if args.code
                else ""
            ),
            "float_bpb_nonoverlapping_windows_first_200k": train_card["validation_bpb_float"],
            "bytes_evaluated": f"first {args.eval_bytes:,} of each tail, LM alone (no adaptive mixing)",
            "float_bpb": float_val,
            "exact_bpb": exact_val,
            "quantization_cost_bpb": {k: round(exact_val[k] - float_val[k], 4) for k in exact_val},
        },
        "history": train_card["history"],
    })  # fmt: skip
    print(f"wrote {out} ({card['size_bytes']:,} bytes, sha256 {card['sha256'][:16]}…)")


if __name__ == "__main__":
    main()
