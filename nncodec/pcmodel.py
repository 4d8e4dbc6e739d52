"""A hidden Chow-Liu tree (HCLT) probabilistic circuit in exact integer arithmetic.

The circuit: D observed variables x_v (0..255) on a tree; every variable has a hidden variable z_v
with M states; p(z_root) is the prior, p(z_v | z_parent(v)) an M x M edge table, p(x_v | z_v) an
M x 256 leaf table. It gives every conditional p(x_v | x_earlier) exactly, which is what the range
coder needs.

**Order.** Variables are coded in preorder (depth first from the root, children in ascending index).
When v is coded, no variable of v's subtree is known yet, so p(z_v | evidence) is the downward
message from v's parent alone, and p(x_v = k | evidence) = sum_z down_v(z) leaf_v(z, k): one
(B x M) . (M x 256) product per variable. After x_v, the parent's running state picks up the
evidence as each child's subtree closes (its upward message). Total work per image is
O(D (M^2 + 256 M)), batched over any number of images.

**Exactness.** Parameters are stored as 8-bit log-probabilities (``q`` = -8 log2 p, clipped to
0..255) and turned into integers by a table of eight integer constants and shifts (no exp/log from a
math library). Every row is renormalized to integers in 1..2^16 by integer division. Messages are
integers held in float64: after every product they are rescaled by a power of two (``frexp`` and
``ldexp``, exact) so that their row maximum has ``PRECISION`` bits, floored, plus 1 (``rescale``).
Every dot product sums at most M <= 64 products of a <= 2^20 integer and a <= 2^16 integer, and
every elementwise product multiplies two <= 2^20 integers: all below 2^53, so float64 BLAS and
numpy compute them exactly in any order, with any SIMD width or thread count. Frequency rows are
the exact integer sums rescaled the same way (maximum 2^20, every entry >= 1). The result is a
function of the model file and the coded values only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

FORMAT = "nncodec-hclt-1"
#: round(2^40 * 2^(-j/8)) for j = 0..7: 8-bit log-probabilities -> integers without libm
_POW2_EIGHTHS = np.array(
    [1099511627776, 1008256608221, 924575386327, 847839367509,
     777472127994, 712945084849, 653773525390, 599512966123], dtype=np.int64,
)  # fmt: skip
ROW_BITS = 16  # parameter rows are integers in 1..2^16
PRECISION = 20  # messages are rescaled so that each row's maximum has this many bits
FREQ_BITS = 20  # frequency rows: the row maximum has this many bits, then + 1
MAX_LATENTS = 64  # dot products of <= 256 terms of 2^20 x 2^16 stay below 2^53
TRANSFORMS = ("none", "diff2d", "sg-diff2d")  # what the codec applies to pixels (codecs/imagepc.py)


def integer_rows(q: np.ndarray) -> np.ndarray:
    """8-bit log-probabilities (q = -8 log2 p) -> float64 integer rows in 1..2^16 along the last
    axis, each row proportional to 2^(-q/8) (integer arithmetic only)."""
    q = q.astype(np.int64)
    value = _POW2_EIGHTHS[q & 7] >> (q >> 3)  # 2^40 * 2^(-q/8), >= 2^8
    total = value.sum(axis=-1, keepdims=True)  # < 2^48: exact
    return np.maximum(1, (value << ROW_BITS) // total).astype(np.float64)


def rescale(x: np.ndarray, bits: int = PRECISION) -> np.ndarray:
    """Rows of non-negative integers (float64, not all zero) times the power of two that gives the
    row maximum exactly ``bits`` bits, floored, plus 1 (so no entry is ever 0 and no product of
    messages can vanish): exact and order-free. Results are at most 2^bits."""
    _, exponent = np.frexp(x.max(axis=-1, keepdims=True))
    return np.floor(np.ldexp(x, bits - exponent)) + 1.0


@dataclass(frozen=True)
class Config:
    shape: tuple[int, int, int]  # (height, width, channels) of the modelled array, row-major
    latents: int
    transform: str  # "none": pixel values; "diff2d", "sg-diff2d": see nncodec/codecs/imagepc.py

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]


class HCLT:
    """An HCLT loaded from a model file (``nncodec-hclt-1``), ready for exact coding."""

    def __init__(self, parent: np.ndarray, prior_q: np.ndarray, edge_q: np.ndarray, leaf_q: np.ndarray,
                 config: Config) -> None:  # fmt: skip
        d, m = config.size, config.latents
        if not 1 <= m <= MAX_LATENTS or config.transform not in TRANSFORMS:
            raise ValueError("HCLT config out of range")
        if parent.shape != (d,) or prior_q.shape != (m,) or edge_q.shape != (d, m, m):
            raise ValueError("HCLT tensors have the wrong shapes")
        if leaf_q.shape != (d, m, 256):
            raise ValueError("HCLT leaf tensor has the wrong shape")
        self.config = config
        self.parent = parent.astype(np.int64)
        self.prior = integer_rows(prior_q)
        self.edges = integer_rows(edge_q)  # [v, z_parent, z_v]
        self.edges_t = np.ascontiguousarray(self.edges.transpose(0, 2, 1))  # [v, z_v, z_parent]
        self.leaves = integer_rows(leaf_q)  # [v, z, value]
        self.leaves_t = np.ascontiguousarray(self.leaves.transpose(0, 2, 1))  # [v, value, z]
        self.events = _events(self.parent)

    @classmethod
    def load(cls, path: Path) -> HCLT:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as handle:
            meta = handle.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path.name} is not an {FORMAT} model")
        raw = json.loads(meta["config"])
        config = Config(tuple(raw["shape"]), int(raw["latents"]), str(raw["transform"]))
        return cls(tensors["parent"], tensors["prior"], tensors["edges"], tensors["leaves"], config)

    @cached_property
    def order(self) -> np.ndarray:
        """Variables in coding order (preorder)."""
        return np.array([v for kind, v in self.events if kind == 0], np.int64)

    def walk(self, batch: int, code: Callable[[int, np.ndarray], np.ndarray]) -> np.ndarray:
        """Run the coding walk over ``batch`` arrays: for each variable v in order, ``code(v, freqs)``
        gets the (batch, 256) float64 integer frequency rows and returns the (batch,) values of x_v
        (the true ones when encoding, the decoded ones when decoding). Returns them as (batch, D).
        Encoder and decoder run exactly this loop; each array's rows depend on that array alone."""
        out = np.zeros((batch, self.config.size), np.uint8)
        down: dict[int, np.ndarray] = {}  # running state of open nodes: down message x evidence
        up: dict[int, np.ndarray] = {}  # evidence-only running message of open nodes
        for kind, v in self.events:
            if kind == 0:  # visit v: code x_v
                p = int(self.parent[v])
                if p < 0:
                    message = np.broadcast_to(self.prior, (batch, self.config.latents))
                else:
                    message = rescale(down[p] @ self.edges[v])
                freqs = rescale(message @ self.leaves[v], FREQ_BITS)
                x = np.asarray(code(v, freqs), dtype=np.int64)
                out[:, v] = x
                evidence = self.leaves_t[v][x]  # (B, M)
                down[v] = rescale(message * evidence)
                up[v] = evidence
            else:  # close v: its subtree is known; pass its upward message to the parent
                p = int(self.parent[v])
                message = up.pop(v)
                del down[v]
                if p < 0:
                    continue
                lifted = rescale(message @ self.edges_t[v])
                down[p] = rescale(down[p] * lifted)
                up[p] = rescale(up[p] * lifted)
        return out


def _events(parent: np.ndarray) -> list[tuple[int, int]]:
    """(0, v) when v is visited, (1, v) when its subtree closes: a depth-first walk from the root,
    children in ascending index order. Checks that ``parent`` is one tree."""
    d = len(parent)
    roots = [v for v in range(d) if parent[v] < 0]
    children: list[list[int]] = [[] for _ in range(d)]
    for v in range(d):
        p = int(parent[v])
        if p >= d:
            raise ValueError("HCLT parent index out of range")
        if p >= 0:
            children[p].append(v)
    if len(roots) != 1:
        raise ValueError("HCLT structure is not one tree")
    events: list[tuple[int, int]] = []
    stack: list[tuple[int, int]] = [(roots[0], 0)]
    while stack:
        v, i = stack.pop()
        if i == 0:
            events.append((0, v))
        if i < len(children[v]):
            stack.append((v, i + 1))
            stack.append((children[v][i], 0))
        else:
            events.append((1, v))
    if sum(1 for kind, _ in events if kind == 0) != d:
        raise ValueError("HCLT structure is not one tree")
    return events
