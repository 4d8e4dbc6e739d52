"""Learn a hidden Chow-Liu tree (HCLT) by EM in torch and export it for the image-pc codec.

    python -m nncodec.training.pc.train --device cuda --data fashion --latents 32 --leaf-alpha 5
        --leaf-smooth 30 --minibatch-epochs 2 --full-epochs 84 --batch 5000 --max-held 10000
        --model-id pc-fashion-v2

(the exact command of every shipped model is in its card, models/pc-*.json, with the device it ran
on: one CPU thread, or ``--device cuda``; EM on a GPU gives slightly different weights, and the card
records the exact held-out bits the codec pays with the weights shipped).

Data:
* ``mnist``: the first 5,000 digits of MNIST's test set (``../shared/data/images/mnist``; only the
  10k test set exists here); the last 5,000 are the held-out set the card reports.
* ``fashion``: Fashion-MNIST train (60k, Debian package dataset-fashion-mnist); held out: its test set.
* ``patches-rgb`` / ``patches-gray``: non-overlapping 8x8 patches of the codec's transform (RGB:
  subtract green, then 2-D differences; gray: 2-D differences) of the photos among the next-pixel
  model's training images (CBSD68 2x downsampled, McMaster mcm01-mcm09, and for gray Set12;
  ``train_image.image_lists``); gray uses every channel of every image as a plane. Held out:
  McMaster mcm10-mcm18.

Structure: pairwise mutual information of the variables (values binned to ``--bins`` levels, on at
most 4,000 samples), maximum spanning tree (Prim), rooted at its centre (least height). Learning:
``--minibatch-epochs`` of mini-batch EM (step size ``--step``), then ``--full-epochs`` of full-batch
EM; expected counts are the circuit flows (theta x dlogL/dtheta, by autograd through an upward pass
in log space), plus pseudocounts. Export quantizes every probability to an 8-bit log value
(-8 log2 p) and writes ``models/<id>.safetensors`` + card with the exact held-out bits per
dimension of nncodec/image/circuit.py (what the codec pays, before container overhead).
"""

from __future__ import annotations

import gzip
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from nncodec.image.circuit import FORMAT, HCLT
from nncodec.image.transforms import forward_transform
from nncodec.training.common import SHARED_DATA, argument_parser, write_card

SHARED_IMAGES = SHARED_DATA / "images"
FASHION = Path("/usr/share/datasets/fashion-mnist")
PATCH = 8
MI_SAMPLES = 4000


def load_idx(path: Path) -> np.ndarray:
    """An idx3-ubyte file (gzip or raw) -> (N, H, W) uint8."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[:4] != b"\x00\x00\x08\x03":
        raise ValueError(f"{path} is not an idx3 ubyte file")
    n, h, w = (int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(3))
    return np.frombuffer(raw, np.uint8, n * h * w, 16).reshape(n, h, w)


def patches(pixels: np.ndarray, size: int = PATCH) -> np.ndarray:
    """Non-overlapping size x size patches of an (H, W, C) array (edges cut off) -> (N, size*size*C)."""
    h, w, c = pixels.shape
    h, w = h // size * size, w // size * size
    blocks = pixels[:h, :w].reshape(h // size, size, w // size, size, c).transpose(0, 2, 1, 3, 4)
    return blocks.reshape(-1, size * size * c)


def dataset(
    name: str, transform_arg: str = "", mnist_dir: Path = SHARED_IMAGES / "mnist", fashion_dir: Path = FASHION
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int], str, str]:
    """-> (train (N, D), held-out (N', D), shape, transform, description)."""
    if name == "mnist":
        images = load_idx(mnist_dir / "t10k-images-idx3-ubyte.gz").reshape(10000, -1)
        return (
            images[:5000],
            images[5000:],
            (28, 28, 1),
            "none",
            "MNIST test images 0-4999 (held out: 5000-9999)",
        )
    if name == "fashion":
        train = load_idx(fashion_dir / "train-images-idx3-ubyte.gz").reshape(60000, -1)
        test = load_idx(fashion_dir / "t10k-images-idx3-ubyte.gz").reshape(10000, -1)
        return train, test, (28, 28, 1), "none", "Fashion-MNIST train 60k (held out: test 10k)"
    if name in ("patches-rgb", "patches-gray"):
        from nncodec.training.image.train import image_lists, load_pixels

        train_paths, held_paths = image_lists()
        rgb = name == "patches-rgb"
        transform = transform_arg or ("sg-diff2d" if rgb else "diff2d")
        train_paths = [p for p in train_paths if p.parent.name in ("cbsd68", "mcmaster", "set12_gray")]

        def cut(paths: list[Path]) -> np.ndarray:
            out = []
            for path in paths:
                px = load_pixels(path)
                if rgb:
                    if px.shape[2] == 3:
                        out.append(patches(forward_transform(px, transform)))
                else:
                    out.extend(
                        patches(forward_transform(px[..., c : c + 1], transform)) for c in range(px.shape[2])
                    )
            return np.concatenate(out)

        channels = 3 if rgb else 1
        what = (
            f"8x8 patches of {transform}(image) (nncodec/codecs/imagepc.py): CBSD68 2x downsampled, "
            "McMaster mcm01-mcm09, Set12 (gray model); held out: mcm10-mcm18"
        )
        return cut(train_paths), cut(held_paths), (PATCH, PATCH, channels), transform, what
    raise ValueError(f"unknown data set {name}")


def shifted(images: np.ndarray, shape: tuple[int, int, int], reach: int) -> np.ndarray:
    """``images`` (N, D) with copies moved by every (dy, dx) in -reach..reach (zeros shifted in)."""
    h, w, c = shape
    grid = images.reshape(-1, h, w, c)
    out = []
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            moved = np.zeros_like(grid)
            moved[:, max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)] = grid[
                :, max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)
            ]
            out.append(moved.reshape(len(images), -1))
    return np.concatenate(out)


# -- structure ------------------------------------------------------------------------------------


def mutual_information(x: np.ndarray, bins: int) -> np.ndarray:
    """(D, D) mutual information of the variables with values binned to ``bins`` levels (float32)."""
    n, d = x.shape
    b = (x.astype(np.int64) * bins) // 256
    onehot = torch.zeros(n, d * bins)
    onehot[torch.arange(n)[:, None], torch.from_numpy(np.arange(d)[None, :] * bins + b)] = 1.0
    p = (onehot.T @ onehot + 0.01) / (n + 0.01 * bins * bins)  # joint of every pair (i, a, j, b)
    del onehot
    p = p.reshape(d, bins, d, bins)
    marg = p.sum(dim=3)[torch.arange(d), :, torch.arange(d)]  # (D, bins): p(i = a)
    log_marg = torch.log(marg / marg.sum(dim=1, keepdim=True))
    mi = (p * torch.log(p)).sum(dim=(1, 3))
    mi -= torch.einsum("iajb,ia->ij", p, log_marg)
    mi -= torch.einsum("iajb,jb->ij", p, log_marg)
    return mi.double().numpy()


def spanning_tree(weight: np.ndarray) -> np.ndarray:
    """Maximum spanning tree (Prim) rooted at its centre -> parent array (-1 at the root)."""
    d = len(weight)
    inside = np.zeros(d, bool)
    best = np.full(d, -np.inf)
    link = np.full(d, -1)
    inside[0] = True
    best[:] = weight[0]
    link[:] = 0
    adjacency: list[list[int]] = [[] for _ in range(d)]
    for _ in range(d - 1):
        cand = np.where(inside, -np.inf, best)
        v = int(np.argmax(cand))
        inside[v] = True
        adjacency[v].append(int(link[v]))
        adjacency[int(link[v])].append(v)
        better = (weight[v] > best) & ~inside
        best[better] = weight[v][better]
        link[better] = v

    def farthest(start: int) -> tuple[int, list[int]]:
        prev = {start: -1}
        queue = [start]
        for u in queue:
            for w in adjacency[u]:
                if w not in prev:
                    prev[w] = u
                    queue.append(w)
        end = queue[-1]
        path = [end]
        while prev[path[-1]] >= 0:
            path.append(prev[path[-1]])
        return end, path

    a, _ = farthest(0)
    _, path = farthest(a)
    root = path[len(path) // 2]
    parent = np.full(d, -1, np.int64)
    seen = {root}
    queue = [root]
    for u in queue:
        for w in adjacency[u]:
            if w not in seen:
                seen.add(w)
                parent[w] = u
                queue.append(w)
    return parent


# -- the circuit in torch -------------------------------------------------------------------------


class TorchHCLT:
    """Upward pass in log space over depth levels; parameters are probabilities (for EM flows)."""

    def __init__(
        self, parent: np.ndarray, latents: int, x: np.ndarray, seed: int, device: str = "cpu"
    ) -> None:
        d = len(parent)
        self.leaf_smooth, self.smooth_width = 0.0, 2.0  # see smooth_values
        self.device = torch.device(device)
        self.parent = parent
        self.d, self.m = d, latents
        depth = np.zeros(d, np.int64)
        order = [int(np.flatnonzero(parent < 0)[0])]
        children: list[list[int]] = [[] for _ in range(d)]
        for v in range(d):
            if parent[v] >= 0:
                children[parent[v]].append(v)
        for u in order:
            for w in children[u]:
                depth[w] = depth[u] + 1
                order.append(w)
        levels = [np.flatnonzero(depth == k) for k in range(depth.max() + 1)]
        position = np.zeros(d, np.int64)
        for nodes in levels:
            position[nodes] = np.arange(len(nodes))
        self.levels = [torch.from_numpy(n).to(self.device) for n in levels]
        self.parent_pos = [torch.from_numpy(position[parent[n]]).to(self.device) if k else None
                           for k, n in enumerate(levels)]  # fmt: skip
        gen = torch.Generator().manual_seed(seed)
        counts = np.stack([np.bincount(x[:, v], minlength=256) for v in range(d)]).astype(np.float64) + 1
        base = torch.from_numpy(counts / counts.sum(1, keepdims=True)).float()
        # leaf pseudocounts are shaped like each variable's marginal
        self.marginals = base[:, None, :].to(self.device)
        # Start from a hard assignment: hidden state = quantile bin of the variable's own value (so
        # the start is a Chow-Liu tree over binned values); states left over start as noisy marginals.
        state = np.zeros_like(x, dtype=np.int64)
        for v in range(d):
            edges = np.unique(np.quantile(x[:, v], np.linspace(0, 1, latents + 1)[1:-1], method="lower"))
            state[:, v] = np.searchsorted(edges, x[:, v], side="right")
        leaf = np.zeros((d, latents, 256))
        np.add.at(leaf, (np.arange(d)[None, :], state, x.astype(np.int64)), 1.0)
        noise = torch.rand(d, latents, 256, generator=gen).double() + 0.5
        leaves = torch.from_numpy(leaf) + 0.05 * base[:, None, :].double() * noise * len(x) / latents
        self.leaves = _normalize(leaves).float().to(self.device)
        pair = np.zeros((d, latents, latents))
        root = int(np.flatnonzero(parent < 0)[0])
        kids = np.flatnonzero(parent >= 0)
        np.add.at(pair, (kids[None, :], state[:, parent[kids]], state[:, kids]), 1.0)
        edge_noise = torch.rand(d, latents, latents, generator=gen).double() + 0.5
        self.edges = (
            _normalize(torch.from_numpy(pair) + 0.1 * edge_noise * len(x) / latents**2)
            .float()
            .to(self.device)
        )
        prior = np.bincount(state[:, root], minlength=latents).astype(np.float64)
        self.prior = _normalize(torch.from_numpy(prior) + 0.1 * len(x) / latents).float().to(self.device)

    def log_likelihood(self, x: torch.Tensor, leaves, edges, prior) -> torch.Tensor:
        """(B,) log p(x) for x (B, D) long."""
        log_leaves = torch.log(leaves).transpose(1, 2)  # (D, 256, M)
        log_e = log_leaves[torch.arange(self.d, device=self.device)[None, :], x]  # (B, D, M)
        below = None
        for k in range(len(self.levels) - 1, -1, -1):
            nodes = self.levels[k]
            lam = log_e[:, nodes, :]
            if below is not None:
                lam = lam + below
            if k == 0:
                return torch.logsumexp(lam[:, 0, :] + torch.log(prior), dim=1)
            top = lam.max(dim=2, keepdim=True).values.detach()
            up = torch.bmm(torch.exp(lam - top).transpose(0, 1), edges[nodes].transpose(1, 2))
            up = torch.log(up.clamp_min(1e-30)).transpose(0, 1) + top  # (B, n, M) over parent states
            below = torch.zeros(x.shape[0], len(self.levels[k - 1]), self.m, device=self.device).index_add(
                1, self.parent_pos[k], up
            )
        raise AssertionError

    def flows(self, x: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor, torch.Tensor]:
        params = [p.clone().requires_grad_(True) for p in (self.leaves, self.edges, self.prior)]
        ll = self.log_likelihood(x, *params).sum()
        ll.backward()
        return (float(ll), *(p.detach() * p.grad for p in params))

    def update(self, flows: tuple, alpha: tuple[float, float, float], step: float) -> None:
        """EM step: leaves get ``alpha[0]`` pseudocounts per row spread like the variable's marginal,
        edges and prior ``alpha[1]``, ``alpha[2]`` per entry."""
        pseudo = (alpha[0] * self.marginals, alpha[1], alpha[2])
        if self.leaf_smooth:
            flows = (smooth_values(flows[0], self.leaf_smooth, self.smooth_width), *flows[1:])
        new = [_normalize(f + a) for f, a in zip(flows, pseudo, strict=True)]
        self.leaves = (1 - step) * self.leaves + step * new[0]
        self.edges = (1 - step) * self.edges + step * new[1]
        self.prior = (1 - step) * self.prior + step * new[2]


def smooth_values(counts: torch.Tensor, mass: float, width: float) -> torch.Tensor:
    """Leaf counts (D, M, 256) plus ``mass`` pseudocounts per row shaped like the row itself blurred
    over values by a Gaussian of standard deviation ``width`` (pixel values are ordinal: a value
    seen makes its neighbours likelier too; rows seen rarely are smoothed most). Edges reflect.
    Unlike the other pseudocounts, ``mass`` is not scaled down for mini-batch steps (the shipped
    models were trained so)."""
    reach = max(1, math.ceil(3 * width))
    offsets = torch.arange(-reach, reach + 1, dtype=counts.dtype, device=counts.device)
    kernel = torch.exp(-0.5 * (offsets / width) ** 2)
    kernel = (kernel / kernel.sum()).view(1, 1, -1)
    rows = counts.reshape(-1, 1, counts.shape[-1])
    spread = torch.nn.functional.conv1d(torch.nn.functional.pad(rows, (reach, reach), mode="reflect"), kernel)
    return counts + mass * _normalize(spread.reshape(counts.shape).clamp_min(1e-12))


def _normalize(t: torch.Tensor) -> torch.Tensor:
    return t / t.sum(dim=-1, keepdim=True)


def bits_per_dim(model: TorchHCLT, x: np.ndarray, batch: int = 1000) -> float:
    with torch.no_grad():
        total = sum(
            float(model.log_likelihood(torch.from_numpy(x[a : a + batch]).long().to(model.device),
                                       model.leaves, model.edges, model.prior).sum())
            for a in range(0, len(x), batch)
        )  # fmt: skip
    return -total / math.log(2) / x.size


def dequantize(q: np.ndarray) -> torch.Tensor:
    """8-bit log values -> normalized probabilities (float32)."""
    return _normalize(torch.exp2(-torch.from_numpy(q.astype(np.float64)) / 8)).float()


def quantize(p: torch.Tensor) -> np.ndarray:
    """Probabilities -> 8-bit log values q = round(-8 log2 p), clipped to 0..255."""
    q = torch.round(-8 * torch.log2(p.cpu().double().clamp_min(1e-300)))
    return q.clamp(0, 255).numpy().astype(np.uint8)


def exact_bits_per_dim(hclt: HCLT, x: np.ndarray, batch: int = 500) -> float:
    """What the codec pays (ideal code length of its integer frequency rows) on x (N, D)."""
    total = 0.0
    for a in range(0, len(x), batch):
        chunk = x[a : a + batch].astype(np.int64)

        def code(v: int, part: int, freqs: np.ndarray, chunk=chunk) -> np.ndarray:
            nonlocal total
            sym = chunk[:, v] >> 4 if part == 0 else chunk[:, v] & 15
            total -= float(np.log2(freqs[np.arange(len(sym)), sym] / freqs.sum(axis=1)).sum())
            return sym

        hclt.walk(len(chunk), code)
    return total / x.size


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--data", required=True, choices=["mnist", "fashion", "patches-rgb", "patches-gray"])
    parser.add_argument("--latents", type=int, default=16)
    parser.add_argument("--bins", type=int, default=8)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--minibatch-epochs", type=int, default=4)
    parser.add_argument("--full-epochs", type=int, default=8)
    parser.add_argument("--step", type=float, default=0.1)
    parser.add_argument("--leaf-alpha", type=float, default=1.0, help="pseudocounts per leaf row")
    parser.add_argument("--leaf-smooth", type=float, default=0.0, help="leaf pseudocounts like blurred rows")
    parser.add_argument("--smooth-width", type=float, default=2.0, help="over values, Gaussian of this sd")
    parser.add_argument("--edge-alpha", type=float, default=0.01, help="pseudocounts per edge entry")
    parser.add_argument("--transform", default="", help="patches: vdiff, diff2d, sg-vdiff or sg-diff2d")
    parser.add_argument("--augment", type=int, default=0, help="add copies shifted by up to N pixels")
    parser.add_argument("--max-train", type=int, default=0, help="use at most this many training samples")
    parser.add_argument("--max-held", type=int, default=5000, help="held-out samples for the card")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--init", type=Path, help="start from this exported model (its card beside it)")
    parser.add_argument(
        "--time-limit", type=float, default=0, help="stop EM after this many seconds (0: none)"
    )
    parser.add_argument(
        "--device", default="cpu", help="cpu or cuda (EM only; export and scoring run on the CPU)"
    )
    parser.add_argument("--mnist-dir", type=Path, default=SHARED_IMAGES / "mnist")
    parser.add_argument("--fashion-dir", type=Path, default=FASHION)
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parents[3] / "models")
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    start = time.time()

    train, held, shape, transform, what = dataset(args.data, args.transform, args.mnist_dir, args.fashion_dir)
    if args.max_train and len(train) > args.max_train:
        train = train[np.sort(rng.choice(len(train), args.max_train, replace=False))]
    if args.augment:
        train = shifted(train, shape, args.augment)
    if len(held) > args.max_held:
        held = held[np.sort(rng.choice(len(held), args.max_held, replace=False))]
    print(f"{args.data}: train {train.shape}, held out {held.shape}", flush=True)
    sample = train[rng.choice(len(train), min(MI_SAMPLES, len(train)), replace=False)]
    init_card = None
    if args.init:  # go on from an exported model: its tree and its (8-bit) parameters
        init = load_file(str(args.init))
        parent = init["parent"].astype(np.int64)
        init_card = json.loads(args.init.with_suffix(".json").read_text())
    else:
        parent = spanning_tree(mutual_information(sample, args.bins))
    model = TorchHCLT(parent, args.latents, train, args.seed, args.device)
    if args.init:
        model.leaves, model.edges, model.prior = (
            dequantize(init[name]).to(model.device) for name in ("leaves", "edges", "prior")
        )
    model.leaf_smooth, model.smooth_width = args.leaf_smooth, args.smooth_width
    print(f"structure: {len(model.levels)} levels ({time.time() - start:.0f}s)", flush=True)

    alpha = (args.leaf_alpha, args.edge_alpha, args.edge_alpha)
    history = []
    xt = torch.from_numpy(train).long().to(model.device)
    for epoch in range(args.minibatch_epochs + args.full_epochs):
        full = epoch >= args.minibatch_epochs
        perm = torch.from_numpy(rng.permutation(len(train))).to(model.device)
        total_ll, acc = 0.0, None
        for a in range(0, len(train), args.batch):
            ll, *flows = model.flows(xt[perm[a : a + args.batch]])
            total_ll += ll
            if full:
                acc = flows if acc is None else [s + f for s, f in zip(acc, flows, strict=True)]
            else:  # pseudocounts scaled to the batch's share of the data
                share = min(1.0, args.batch / len(train))
                model.update(tuple(flows), tuple(a * share for a in alpha), args.step)
        if full:
            model.update(tuple(acc), alpha, 1.0)
        train_bpd = -total_ll / math.log(2) / train.size
        held_bpd = bits_per_dim(model, held)
        history.append({"epoch": epoch + 1, "mode": "full" if full else "minibatch",
                        "train_bpd": train_bpd, "held_out_bpd": held_bpd})  # fmt: skip
        print(f"epoch {epoch + 1} ({'full' if full else 'mini'}): train {train_bpd:.4f} held-out "
              f"{held_bpd:.4f} bpd ({time.time() - start:.0f}s)", flush=True)  # fmt: skip
        if args.time_limit and time.time() - start > args.time_limit:
            print(f"time limit reached after epoch {epoch + 1}", flush=True)
            break

    tensors = {"parent": parent.astype(np.int32), "prior": quantize(model.prior),
               "edges": quantize(model.edges), "leaves": quantize(model.leaves)}  # fmt: skip
    config = {"shape": list(shape), "latents": args.latents, "transform": transform}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / f"{args.model_id}.safetensors"
    save_file(tensors, str(path), metadata={"format": FORMAT, "config": json.dumps(config)})
    hclt = HCLT.load(path)
    exact = exact_bits_per_dim(hclt, held)
    print(f"exact held-out {exact:.4f} bpd", flush=True)
    card = write_card(path, {
        "format": FORMAT,
        "config": config,
        "architecture": f"hidden Chow-Liu tree: {parent.size} variables, {args.latents} hidden states each, "
        "256-way categorical leaves; parameters as 8-bit log-probabilities (-8 log2 p)",
        "training": {
            "data": what,
            "samples": int(len(train)),
            "augment": f"copies shifted by up to {args.augment} pixels" if args.augment else "none",
            "structure": f"mutual information on {len(sample)} samples, {args.bins} bins; max spanning tree",
            "em": {
                "minibatch_epochs": sum(h["mode"] == "minibatch" for h in history),
                "full_epochs": sum(h["mode"] == "full" for h in history),
                "batch": args.batch,
                "step": args.step,
                "leaf_pseudocount": args.leaf_alpha,
                "edge_pseudocount": args.edge_alpha,
                "leaf_smoothing": {"pseudocounts": args.leaf_smooth, "width": args.smooth_width},
            },  # fmt: skip
            "seed": args.seed,
            "initialized_from": None
            if init_card is None
            else {
                "model": init_card["model_id"],
                "sha256": init_card["sha256"],
                "training": init_card["training"],
            },
            "command": "python -m nncodec.training.pc.train " + " ".join(sys.argv[1:]),
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name() if model.device.type == "cuda" else "cpu, 1 thread",
            "seconds": round(time.time() - start),
            "history": history,
        },
        "validation": {
            "what": f"held out ({len(held)} samples)",
            "float_bpd": history[-1]["held_out_bpd"],
            "exact_bpd": exact,
        },  # fmt: skip
    })  # fmt: skip
    print(json.dumps(card["validation"]), flush=True)


if __name__ == "__main__":
    main()
