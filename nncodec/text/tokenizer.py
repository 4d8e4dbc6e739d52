"""Byte-level BPE tokenizer that is exactly invertible for every byte string.

Bytes are first mapped one-to-one onto 256 printable characters (GPT-2's byte-to-unicode table), so
invalid UTF-8, NUL and CR bytes are ordinary characters to the BPE model. Every token is a string of
such characters, and decoding is a table lookup from token id to bytes: the decoder never runs the
BPE algorithm, so decoding depends only on the vocabulary, not on the `tokenizers` library version.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

# Pre-tokenizer split, in the byte-mapped alphabet. Note: the mapped space and control bytes
# (U+0100..U+0143, e.g. Ġ for space, Ċ for LF) fall inside the \u00c0-\u024f "letter" range, so
# runs of words, spaces and newlines form one piece and BPE merges may cross word and line
# boundaries. Invertibility does not depend on this; changing it means retraining the tokenizer
# and the model (a new model id).
PRETOKENIZE_PATTERN = r"Ġ?[A-Za-z\u00c0-\u024f]+|Ġ?[0-9]{1,3}|Ġ?[^A-Za-z0-9\u00c0-\u024fĠĊč]+|[Ġ]+|[čĊ]"


@lru_cache(maxsize=1)
def byte_to_char() -> tuple[str, ...]:
    """GPT-2's table: printable Latin-1 bytes map to themselves, the rest to U+0100.. upwards."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return tuple(chars[b] for b in range(256))


_TRANSLATE = {b: ord(c) for b, c in enumerate(byte_to_char())}
_UNTRANSLATE = {ord(c): b for b, c in enumerate(byte_to_char())}  # the BPE alphabet -> Latin-1 chars


def bytes_to_text(data: bytes) -> str:
    """The BPE model's view of raw bytes: one character per byte."""
    return data.decode("latin-1").translate(_TRANSLATE)


class ByteTokenizer:
    """Encode bytes to token ids (BPE via `tokenizers`) and decode ids back by table lookup."""

    def __init__(self, tokenizer_json: str) -> None:
        self._json = tokenizer_json
        self._tokenizer = None  # the BPE encoder is built on first use: decoding never needs it
        vocab = json.loads(tokenizer_json)["model"]["vocab"]
        self.token_bytes: list[bytes] = [b""] * len(vocab)
        for token, index in vocab.items():  # (the file is a verified model file: every char is in the table)
            self.token_bytes[index] = token.translate(_UNTRANSLATE).encode("latin-1")
        self.vocab_size = len(vocab)

    @classmethod
    def from_file(cls, path: Path) -> ByteTokenizer:
        return cls(Path(path).read_text(encoding="utf-8"))

    def encode(self, data: bytes) -> np.ndarray:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            self._tokenizer = Tokenizer.from_str(self._json)
        ids = self._tokenizer.encode(bytes_to_text(data), add_special_tokens=False).ids
        return np.asarray(ids, dtype=np.int32)

    def decode(self, ids: np.ndarray) -> bytes:
        token_bytes = self.token_bytes
        return b"".join([token_bytes[i] for i in ids.tolist()])
