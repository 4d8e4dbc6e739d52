"""Exact integer inference of the text model (the float model lives in nncodec/training/text/gpt.py).

The model file (``models/<id>.safetensors``, written by nncodec/training/text/export.py) holds int8
weights with per-output-channel scales, the residual-stream unit, per-head value scales, the ALiBi
bias table and the exp lookup tables; its metadata holds the config and the tokenizer. All arithmetic
follows nncodec/nn/exact.py, so the frequency tables are a pure function of the model file and the
tokens before them. Two paths compute them:

* ``sequence_residuals`` + ``frequencies``: all positions of many streams at once (the encoder);
* ``Decoder.step``: one new token per stream with a KV ring buffer (the decoder).

They give bit-identical tables (tests check it): each query's computation is the same sequence of
exact integer matmuls, integer sums and elementwise IEEE operations on the same values in both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nncodec.core.modelstore import read_model_file
from nncodec.nn.exact import INT8_MAX, MAX_EXACT_K
from nncodec.nn.linear import IntLinear
from nncodec.nn.rowops import CompiledOps, NumpyOps, ResidualOverflow, best_ops

__all__ = ["IntGPT", "Decoder", "ResidualOverflow"]

MAX_RESIDUAL = 1 << 27  # sums of 256 squares stay below 2^63 in int64

FORMAT = "nncodec-intgpt-1"


@dataclass(frozen=True)
class IntLayer:
    qkv: IntLinear
    proj: IntLinear
    up: IntLinear
    down: IntLinear
    v_scale: np.ndarray  # (H,) value unit per head (values are int8 in these units)


class IntGPT:
    """The text model in exact arithmetic."""

    def __init__(self, path: Path) -> None:
        metadata, tensors = read_model_file(path, FORMAT)
        self.config = json.loads(metadata["config"])
        self.tokenizer_json = metadata["tokenizer"]
        self.n_head = self.config["n_head"]
        self.n_embd = self.config["n_embd"]
        self.window = self.config["window"]
        self.head_dim = self.n_embd // self.n_head
        self.vocab_size = self.config["vocab_size"]
        self.attn_steps = float(metadata["attn_lut_steps"])
        self.out_steps = float(metadata["out_lut_steps"])

        def linear(name: str) -> IntLinear:
            weight = np.ascontiguousarray(tensors[f"{name}.w"], dtype=np.int8)
            return IntLinear(weight, tensors[f"{name}.s"].astype(np.float64))

        self.embed = np.ascontiguousarray(tensors["embed"], np.int32)  # (V, C) in residual units
        self.layers = [
            IntLayer(
                linear(f"l{i}.qkv"),
                linear(f"l{i}.proj"),
                linear(f"l{i}.up"),
                linear(f"l{i}.down"),
                tensors[f"l{i}.v_scale"].astype(np.float64),
            )
            for i in range(self.config["n_layer"])
        ]
        self.head = linear("head")
        self.res_unit = float(tensors["res_unit"][0])
        self.eps_units = float(tensors["eps_units"][0])  # RMSNorm epsilon in residual units squared
        self.alibi = tensors["alibi"].astype(np.float64)  # (H, window): slope * distance
        self.attn_exp = tensors["attn_exp"].astype(np.float64)  # integers, exact in float64
        self.out_exp = tensors["out_exp"].astype(np.float64)
        self.inv_sqrt_hd = 1.0 / np.sqrt(np.float64(self.head_dim))
        self.ops: NumpyOps | CompiledOps = best_ops()  # tests swap in NumpyOps to compare
        self._step_tensors: tuple[np.ndarray, ...] | None = None
        self._check_invariants()

    def _check_invariants(self) -> None:
        """The conditions the exactness argument relies on (see nncodec/nn/exact.py)."""
        hidden = self.layers[0].up.weight.shape[0] if self.layers else 0
        problems = [
            (self.window > 512, "window above 512"),
            (self.head_dim * INT8_MAX * INT8_MAX >= 1 << 24, "head dimension too large"),
            (max(self.n_embd, hidden) > MAX_EXACT_K, f"matmul inner dimension above {MAX_EXACT_K}"),
            (self.attn_exp[-1] != 0 or self.attn_exp.max() > 1 << 15, "attention table out of range"),
            (self.out_exp[-1] != 0 or self.out_exp.max() > 1 << 24, "output table out of range"),
            (self.alibi.shape != (self.n_head, self.window), "ALiBi table shape"),
            (self.embed.shape != (self.vocab_size, self.n_embd), "embedding shape"),
            (any(w.weight.min(initial=0) < -INT8_MAX for w in self._linears()), "weight -128"),
        ]
        for failed, what in problems:
            if failed:
                raise ValueError(f"model file violates an exactness invariant: {what}")

    def _linears(self) -> list[IntLinear]:
        per_layer = [(layer.qkv, layer.proj, layer.up, layer.down) for layer in self.layers]
        return [w for linears in per_layer for w in linears] + [self.head]

    def step_tensors(self) -> tuple[np.ndarray, ...]:
        """The arrays of the compiled decoder step, in its order (nncodec/nn/_kernels.c)."""
        if self._step_tensors is None:
            def linear(layer: IntLinear) -> list[np.ndarray]:
                return [layer.weight, *layer.packed, layer.scale]

            arrays = [self.embed, self.alibi, self.attn_exp, self.out_exp, *linear(self.head)]
            for layer in self.layers:
                for part in (layer.qkv, layer.proj, layer.up, layer.down):
                    arrays += linear(part)
                arrays.append(layer.v_scale)
            self._step_tensors = tuple(np.ascontiguousarray(a) for a in arrays)
        return self._step_tensors

    def step_constants(self) -> tuple[tuple[float, ...], tuple[int, ...]]:
        """The compiled step's scalars (eps, residual limit, residual unit, 1/sqrt(head dim), the two
        lookup tables' steps) and dims (C, H, hidden, V, window, layers)."""
        hidden = self.layers[0].up.weight.shape[0] if self.layers else 1
        scalars = (self.eps_units, MAX_RESIDUAL, self.res_unit, self.inv_sqrt_hd)
        scalars += (self.attn_steps, self.out_steps)
        return scalars, (self.n_embd, self.n_head, hidden, self.vocab_size, self.window, len(self.layers))

    # -- pieces shared by both paths -------------------------------------------------------------

    def _norm_quantize(self, residual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.ops.norm_quantize(residual, self.eps_units, MAX_RESIDUAL)

    def _qkv(self, layer: IntLayer, residual: np.ndarray):
        """-> q (..., H, hd) int8, q scale / sqrt(hd), k, k scale, v (int8 in units of v_scale)."""
        q_in, s_in = self._norm_quantize(residual)
        acc = self.ops.matmul(q_in, layer.qkv)
        return self.ops.qkv_split(acc, s_in, layer.qkv.scale, self.inv_sqrt_hd, layer.v_scale, self.n_head)

    def _attend(self, q_q, q_s, k_q, k_s, v_i, distance, v_scale) -> np.ndarray:
        """q: (B, H, Tq, hd), k/v: (B, H, Tk, hd) int8, distance: (Tq, Tk) query-minus-key
        positions (keys outside [0, window) are masked) -> (B, H, Tq, hd) float64."""
        return self.ops.attend(
            q_q, q_s, k_q, k_s, v_i, distance, self.alibi, self.attn_exp, self.attn_steps, v_scale
        )

    def _layer_output(self, layer: IntLayer, residual, q_q, q_s, k_q, k_s, v_i, distance) -> np.ndarray:
        """The rest of a layer once its queries, keys and values are known, for both paths:
        attention of q (B, H, Tq, hd) over k/v (B, H, Tk, hd), the projection and the MLP.
        ``residual`` is (B, Tq, C) for the encoder or (B, C) for the decoder's single query."""
        attended = self._attend(q_q, q_s, k_q, k_s, v_i, distance, layer.v_scale)  # (B, H, Tq, hd)
        attended = np.moveaxis(attended, 1, 2).reshape(residual.shape)
        ops = self.ops
        a_q, a_s = ops.quantize(attended)
        acc = ops.matmul(a_q, layer.proj)
        residual = ops.residual_add(residual, acc, a_s, layer.proj.scale, self.res_unit)
        m_q, m_s = self._norm_quantize(residual)
        h_q, h_s = ops.relu_quantize(ops.matmul(m_q, layer.up), m_s, layer.up.scale)
        return ops.residual_add(residual, ops.matmul(h_q, layer.down), h_s, layer.down.scale, self.res_unit)

    def frequencies(self, residual: np.ndarray) -> np.ndarray:
        """Final norm + tied head + LUT softmax -> integer frequency rows (..., vocab).

        Row entries are exp(logit - max) * 2^24 from the lookup table, plus 1 so every token stays
        codable; rows need no common total (the coder normalizes integer rows exactly)."""
        return self.frequencies_of_outputs(*self._norm_quantize(residual))

    def frequencies_of_outputs(self, q: np.ndarray, s: np.ndarray) -> np.ndarray:
        """``frequencies`` of a residual stream already normalized and quantized (``sequence_outputs``)."""
        acc = self.ops.matmul(q, self.head)
        return self.ops.head_lut(acc, s, self.head.scale, self.out_exp, self.out_steps)

    # -- encoder path: whole sequences ------------------------------------------------------------

    def sequence_residuals(self, tokens: np.ndarray, chunk: int = 128, map_spans=None) -> np.ndarray:
        """tokens (B, T) -> final residual stream (B, T, C) int64.

        Layer by layer: keys and values for all positions first, then attention, projection and
        MLP one span of ``chunk`` query positions at a time (row-wise work, so memory stays bounded
        by the span, and the results do not depend on ``chunk``). ``map_spans`` (like ``map``, e.g.
        on worker threads) runs a layer's spans; they are independent, so any order gives the same
        values."""
        run = map_spans or (lambda func, items: [func(item) for item in items])
        T = tokens.shape[1]
        residual = self.embed[tokens].astype(np.int64)
        positions = np.arange(T)
        starts = list(range(0, T, chunk))
        for layer in self.layers:
            parts = run(lambda a, layer=layer: self._qkv(layer, residual[:, a : a + chunk]), starts)
            q_q, q_s, k_q, k_s, v_i = (
                np.moveaxis(np.concatenate(p, axis=1), 2, 1) for p in zip(*parts, strict=True)
            )

            def span(start: int, layer=layer, q_q=q_q, q_s=q_s, k_q=k_q, k_s=k_s, v_i=v_i) -> np.ndarray:
                stop = min(T, start + chunk)
                first = max(0, start - self.window + 1)
                distance = positions[start:stop, None] - positions[None, first:stop]
                return self._layer_output(
                    layer, residual[:, start:stop], q_q[:, :, start:stop], q_s[:, :, start:stop],
                    k_q[:, :, first:stop], k_s[:, :, first:stop], v_i[:, :, first:stop], distance,
                )  # fmt: skip

            for start, output in zip(starts, run(span, starts), strict=True):
                residual[:, start : start + chunk] = output
        return residual

    def sequence_outputs(self, tokens: np.ndarray, map_spans=None) -> tuple[np.ndarray, np.ndarray]:
        """tokens (B, T) -> the final residual stream normalized and quantized for the head: int8
        (B, T, C) and row scales (B, T), what ``frequencies`` computes first (so
        ``frequencies_of_outputs`` of a slice equals ``frequencies`` of the same residual slice), in
        an eighth of the int64 stream's memory."""
        return self._norm_quantize(self.sequence_residuals(tokens, map_spans=map_spans))

    def sequence_frequencies(self, tokens: np.ndarray) -> np.ndarray:
        """Frequency rows for predicting tokens[:, t] from tokens[:, :t], for t = 1..T-1."""
        return self.frequencies(self.sequence_residuals(tokens[:, :-1]))

    def decoder(self, batch: int) -> Decoder:
        return Decoder(self, batch)


class Decoder:
    """Step-by-step inference for ``batch`` streams in lockstep, with a KV ring buffer per layer."""

    def __init__(self, model: IntGPT, batch: int) -> None:
        self.model = model
        shape = (batch, model.n_head, model.window, model.head_dim)
        self.k_q = [np.zeros(shape, np.int8) for _ in model.layers]
        self.k_s = [np.ones(shape[:3], np.float64) for _ in model.layers]
        self.v_i = [np.zeros(shape, np.int8) for _ in model.layers]
        self.position = 0
        self.slot_position = np.full(model.window, -1)

    def select(self, rows: np.ndarray) -> None:
        """Keep only the given streams (others have finished)."""
        self.k_q = [a[rows] for a in self.k_q]
        self.k_s = [a[rows] for a in self.k_s]
        self.v_i = [a[rows] for a in self.v_i]

    def step(self, tokens: np.ndarray) -> np.ndarray:
        """Feed one token per stream; return frequency rows (batch, vocab) for the next token."""
        model = self.model
        slot = self.position % model.window
        self.slot_position[slot] = self.position
        distance = np.where(self.slot_position >= 0, self.position - self.slot_position, -1)[None, :]
        if model.ops.compiled:
            return self._compiled_step(np.ascontiguousarray(tokens, np.int64), distance, slot)
        residual = model.embed[tokens].astype(np.int64)  # (B, C)
        for i, layer in enumerate(model.layers):
            q_q, q_s, k_q, k_s, v_i = model._qkv(layer, residual)  # (B, H, hd), (B, H)
            self.k_q[i][:, :, slot] = k_q
            self.k_s[i][:, :, slot] = k_s
            self.v_i[i][:, :, slot] = v_i
            residual = model._layer_output(
                layer, residual, q_q[:, :, None], q_s[:, :, None],
                self.k_q[i], self.k_s[i], self.v_i[i], distance,
            )  # fmt: skip
        self.position += 1
        return model.frequencies(residual)

    def _compiled_step(self, tokens: np.ndarray, distance: np.ndarray, slot: int) -> np.ndarray:
        """``step`` in one call of the compiled kernels (the same operations in the same order)."""
        model = self.model
        out = np.empty((len(tokens), model.vocab_size), np.float64)
        caches = tuple(a for i in range(len(model.layers)) for a in (self.k_q[i], self.k_s[i], self.v_i[i]))
        scalars, dims = model.step_constants()
        if not model.ops.decoder_step(
            tokens, distance.astype(np.int32).ravel(), out, model.step_tensors(), caches, scalars,
            (len(tokens), *dims, slot),
        ):  # fmt: skip
            raise ResidualOverflow("residual stream out of range")
        self.position += 1
        return out
