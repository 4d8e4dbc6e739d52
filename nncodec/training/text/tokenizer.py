"""Train the byte-level BPE vocabulary for the text model.

    python -m nncodec.training.text.tokenizer --vocab 4096 --out models/text-bpe4k.tokenizer.json

The corpus is the text model's training split (see ``nncodec.training.text.data``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nncodec.text.tokenizer import PRETOKENIZE_PATTERN, ByteTokenizer, byte_to_char, bytes_to_text


def train_tokenizer(texts: list[bytes], vocab_size: int) -> str:
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=list(byte_to_char()),
        special_tokens=[],
        show_progress=False,
        min_frequency=2,
    )
    tokenizer.train_from_iterator((bytes_to_text(t) for t in texts), trainer=trainer)
    return tokenizer.to_str()


def main() -> None:
    from nncodec.training.text.data import load_split

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-bytes", type=int, default=30_000_000, help="training text used for BPE")
    args = parser.parse_args()
    train, _ = load_split()
    texts, total = [], 0
    for _, data in train:
        texts.append(data[: args.max_bytes - total])
        total += len(texts[-1])
        if total >= args.max_bytes:
            break
    # feed in 64 KiB pieces so the trainer sees many "documents"
    pieces = [t[i : i + 65536] for t in texts for i in range(0, len(t), 65536)]
    tokenizer_json = train_tokenizer(pieces, args.vocab)
    args.out.write_text(tokenizer_json, encoding="utf-8")
    tok = ByteTokenizer(tokenizer_json)
    print(f"vocab {tok.vocab_size} written to {args.out}")


if __name__ == "__main__":
    main()
