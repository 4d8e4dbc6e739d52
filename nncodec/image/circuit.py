"""A hidden Chow-Liu tree (HCLT) probabilistic circuit in exact integer arithmetic.

The circuit: D observed variables x_v (0..255) on a tree; every variable has a hidden variable z_v
with M states; p(z_root) is the prior, p(z_v | z_parent(v)) an M x M edge table, p(x_v | z_v) an
M x 256 leaf table. It gives every conditional p(x_v | x_earlier) exactly, which is what the range
coder needs.

**Order.** Variables are coded in preorder (depth first from the root, children in ascending index).
When v is coded, no variable of v's subtree is known yet, so p(z_v | evidence) is the downward
message from v's parent alone, and p(x_v = k | evidence) = sum_z down_v(z) leaf_v(z, k). A value
is coded as two 16-way symbols (its high and low four bits): the high symbol's rows are the sums
of the leaf table's groups of 16, the low symbol's rows the 16 entries of the decoded group, so a
step costs 2 x 16 x M products per array instead of 256 x M and the range coder reads 32 entries
instead of 256 (the code length is the same: p(high) p(low | high) = p(x)). After x_v, the
parent's running state picks up the evidence as each child's subtree closes (its upward message).
Total work per array is O(D (M^2 + 32 M)), batched over any number of arrays.

**Exactness.** Parameters are stored as 8-bit log-probabilities (``q`` = -8 log2 p, clipped to
0..255) and turned into integers by a table of eight integer constants and shifts (no exp/log from a
math library). Every row is renormalized to integers in 1..2^16 by integer division. Messages are
integers held in float64: after every product they are rescaled by a power of two (``frexp`` and
``ldexp``, exact) so that their row maximum has ``PRECISION`` bits, floored, plus 1 (``rescale``).
Every dot product sums at most M <= 64 products of a <= 2^20 integer and a <= 2^16 integer, and
every elementwise product multiplies two <= 2^20 integers: all below 2^53, so float64 BLAS and
numpy compute them exactly in any order, with any SIMD width or thread count. Frequency rows are
those exact integer sums (each >= M, below 2^43) as they are. The result is a function of the model
file and the coded values only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from nncodec.core.modelstore import read_model_file

FORMAT = "nncodec-hclt-1"
#: round(2^40 * 2^(-j/8)) for j = 0..7: 8-bit log-probabilities -> integers without libm
_POW2_EIGHTHS = np.array(
    [1099511627776, 1008256608221, 924575386327, 847839367509,
     777472127994, 712945084849, 653773525390, 599512966123], dtype=np.int64,
)  # fmt: skip
ROW_BITS = 16  # parameter rows are integers in 1..2^16
PRECISION = 20  # messages are rescaled so that each row's maximum has this many bits
MAX_LATENTS = 64  # dot products of <= 256 terms of 2^20 x 2^16 stay below 2^53
TRANSFORMS = (
    "none",
    "vdiff",
    "diff2d",
    "sg-vdiff",
    "sg-diff2d",
)  # what the codec applies to pixels (codecs/imagepc.py)


def integer_rows(q: np.ndarray) -> np.ndarray:
    """8-bit log-probabilities (q = -8 log2 p) -> float64 integer rows in 1..2^16 along the last
    axis, each row proportional to 2^(-q/8) (integer arithmetic only)."""
    q = q.astype(np.int64)
    value = _POW2_EIGHTHS[q & 7] >> (q >> 3)  # 2^40 * 2^(-q/8), >= 2^8
    total = value.sum(axis=-1, keepdims=True)  # < 2^48: exact
    return np.maximum(1, (value << ROW_BITS) // total).astype(np.float64)


def rescale(x: np.ndarray, bits: int = PRECISION) -> np.ndarray:
    """Columns of non-negative integers (float64, (M, B), not all zero) times the power of two that
    gives the column maximum exactly ``bits`` bits, floored, plus 1 (so no entry is ever 0 and no
    product of messages can vanish): exact and order-free. Results are at most 2^bits."""
    _, exponent = np.frexp(x.max(axis=0, keepdims=True))
    scale = np.ldexp(1.0, bits - exponent)  # a power of two per row: multiplying by it is exact
    out = np.multiply(x, scale)
    np.floor(out, out=out)
    out += 1.0
    return out


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
        blocks = self.leaves.reshape(d, m, 16, 16)  # [v, z, value >> 4, value & 15]
        self.leaf_groups = blocks.sum(axis=3)  # [v, z, group]: exact integer sums
        self.leaf_blocks = np.ascontiguousarray(blocks.transpose(0, 2, 1, 3))  # [v, group, z, value & 15]
        self.events = _events(self.parent)

    @classmethod
    def load(cls, path: Path) -> HCLT:
        meta, tensors = read_model_file(path, FORMAT)
        raw = json.loads(meta["config"])
        config = Config(tuple(raw["shape"]), int(raw["latents"]), str(raw["transform"]))
        return cls(tensors["parent"], tensors["prior"], tensors["edges"], tensors["leaves"], config)

    @cached_property
    def order(self) -> np.ndarray:
        """Variables in coding order (preorder)."""
        return np.array([v for kind, v in self.events if kind == 0], np.int64)

    def walk(self, batch: int, code: Callable[[int, int, np.ndarray], np.ndarray]) -> np.ndarray:
        """Run the coding walk over ``batch`` arrays. Each value x_v is coded as two symbols:
        ``code(v, 0, rows)`` gets (batch, 16) float64 integer frequency rows for x_v >> 4 (the sums
        of each group of 16 values) and returns those symbols; ``code(v, 1, rows)`` gets the
        (batch, 16) rows of the values inside each array's group and returns x_v & 15 (the true
        symbols when encoding, the decoded ones when decoding). Returns the values as (batch, D).
        Encoder and decoder run exactly this loop; each array's rows depend on that array alone.
        Messages are kept as (M, batch) arrays."""
        out = np.zeros((batch, self.config.size), np.uint8)
        down: dict[int, np.ndarray] = {}  # running state of open nodes: down message x evidence
        up: dict[int, np.ndarray] = {}  # evidence-only running message of open nodes
        for kind, v in self.events:
            if kind == 0:  # visit v: code x_v
                p = int(self.parent[v])
                if p < 0:
                    message = np.repeat(self.prior[:, None], batch, axis=1)
                else:
                    message = rescale(self.edges_t[v] @ down[p])
                # exact integers >= M (no entry is 0): sums over states of message x leaf entries
                high = np.asarray(code(v, 0, message.T @ self.leaf_groups[v]), dtype=np.int64)
                inside = self.leaf_blocks[v][high]  # (B, M, 16): each array's group
                low_rows = np.matmul(message.T[:, None, :], inside)[:, 0, :]
                low = np.asarray(code(v, 1, low_rows), dtype=np.int64)
                x = high * 16 + low
                out[:, v] = x
                evidence = self.leaves[v][:, x]  # (M, B)
                down[v] = rescale(message * evidence)
                up[v] = evidence
            else:  # close v: its subtree is known; pass its upward message to the parent
                p = int(self.parent[v])
                message = up.pop(v)
                del down[v]
                if p < 0:
                    continue
                lifted = rescale(self.edges[v] @ message)
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
