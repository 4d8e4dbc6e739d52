"""The text model for training (torch, float32), nanoGPT-style.

Chosen so that inference can be exact with integer arithmetic (see nncodec/text/model.py):
- no position embeddings; ALiBi distance biases in attention, so a sliding window of ``window``
  tokens works the same at every position of a long stream (KV cache as a ring buffer);
- RMSNorm (a sum of squares of integers is exact), ReLU MLP (exact), tied input/output embeddings;
- no biases anywhere.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class GPTConfig:
    vocab_size: int = 4096
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    window: int = 256  # attention window = training sequence length
    mlp_ratio: int = 4

    def to_dict(self) -> dict:
        return asdict(self)


def alibi_slopes(n_head: int) -> list[float]:
    return [2.0 ** (-8.0 * (h + 1) / n_head) for h in range(n_head)]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.register_buffer("slopes", torch.tensor(alibi_slopes(config.n_head)), persistent=False)

    def forward(self, x: torch.Tensor, window: int | None = None) -> torch.Tensor:
        """window: attend only to the last ``window`` positions (the codec's sliding window)."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        pos = torch.arange(T, device=x.device)
        distance = (pos[:, None] - pos[None, :]).float()  # (T, T), query minus key
        bias = -self.slopes[:, None, None] * distance  # (H, T, T)
        outside = distance < 0 if window is None else (distance < 0) | (distance >= window)
        bias = bias.masked_fill(outside, float("-inf"))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.unsqueeze(0))
        return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.up = nn.Linear(config.n_embd, config.mlp_ratio * config.n_embd, bias=False)
        self.down = nn.Linear(config.mlp_ratio * config.n_embd, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.relu(self.up(x)))


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.norm1 = RMSNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.norm2 = RMSNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, window: int | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), window)
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = RMSNorm(config.n_embd)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("down.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, window: int | None = None):
        x = self.embed(idx)  # (B, T, C)
        for block in self.blocks:
            x = block(x, window)
        logits = self.norm(x) @ self.embed.weight.T  # tied output head: (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss
