"""The ``text`` codec: a token language model's predictions, range-coded.

A block is tokenized (exactly invertible byte-level BPE), its tokens are cut into S contiguous
segments, and each segment is coded as its own range-coded stream: the first token with a uniform
table, every later one with the exact-integer model's table given the segment's previous tokens (a
sliding window of ``window`` tokens), mixed with order-1..k token counts learned from the block itself
(nncodec/nn/mixing.py). Segments are grouped in mix groups of consecutive segments that share one set
of counts, updated in lockstep (step t sees every token of the group before step t).

Format versions (the first params byte): **1** mixes orders 1..3 with ``mixing.ORDER_PRIORS`` in mix
groups of 8 segments (nncodec 0.1); **2** (written now) mixes with ``mixing.ORDER_PRIORS_V2`` and
puts every segment of a block in one mix group, so the counts see the whole block coded so far:
measured on text no model or setting was fitted on (dev files of training authors, not the
validation set) this takes 3-7% off version 1's output. The model's work is still split by rows
across worker threads (encoder and decoder), so one mix group costs no parallelism. **3** (written
now) is version 2 with the mixer's learned weights (``learned=True`` in nncodec/nn/mixing.py: each
order's trust is refined per class of context by weights learned while coding): -0.9% on dev files.

The encoder scores all segments in one parallel pass; the decoder runs all segments together as a
batch, one token per stream per step, with a KV cache. Both compute the same tables bit for bit
(nncodec/text/model.py), and decoding any arrangement of whole mix groups gives the same output.
A batch that one thread steps (at most 7 streams, or any batch at -T1) is decoded by the compiled
loop (nncodec/nn/_kernels.c, TextDecoder: model, mixer, match model and range decoder without a
return to Python per token); the Python loop in ``_decode_streams`` is its reference. The encoder's walk
(mixing, match model, range coding) over the model's rows is compiled too (TextEncoder; the Python
walk ``_ReferenceWalk`` is its reference), and runs without the GIL while the workers compute the
next chunk's rows.

Frame params: format version (1, 2 or 3), mix group size. Payload::

    varint n_tokens | varint S | S x varint stream_bytes | S range-coded streams

Segment s holds n_tokens // S tokens, plus one if s < n_tokens % S.

**Probes.** A block of at least ``QUICK_PROBE_MIN`` bytes is first probed quickly: 1 KB from its middle
is coded by this codec and by PPMd (orders 5, 8, 16, the best kept), and when the model's coding is
larger than ``QUICK_PROBE_MARGIN`` times PPMd's the block is declined at once (the engine codes it
with the classical coders). A block over ``PROBE_MIN`` bytes that passes is then probed with
``PROBE_BYTES`` from its middle against ``PROBE_MARGIN``, instead of running the model over the whole
block to lose. PPMd gains more than the model from the rest of a block, so the margins are below 1.
Calibrated (model text-v2) on dev files that are neither training nor validation data, as (ratio on
the 8 KB sample) -> (whole file, learned path / best classical coder): prose by training authors
(Alger, Kipling) 0.54-0.61 -> 0.76-0.77; Python stdlib sources 0.50-0.57 -> 0.71-0.73; node
crypto.html 0.76 -> 0.90, stream.md 0.74 -> 0.89; sqlite3.h 0.72 -> 0.93, zlib.h 0.73 -> 0.91,
underscore.js 0.78 -> 0.90; and the losers: SBOM JSON 0.85-0.89 -> 1.06-1.08, curses.h 1.00 -> 1.02,
rustdoc search.js 1.01 -> 1.05. The margin lies between the two groups. An 8 KB sample separates them
as well as 16 KB did (0.82 vs 0.91 there) at half the cost. The quick probe costs an eighth of that
(~0.05 s) and separates less well, so its margin only catches clear losers: on 40 dev files (27 the
model wins by 0.5-29%, 13 it loses), the 1 KB ratio of every winner was <= 0.854, and 5 losers
(minified JS, a rustdoc index, a CSV of floats) were above 0.90. Blocks below ``PROBE_MIN`` had no
probe before; the quick one now spares them a whole model run when they are clear losers. The
probes only decide; they write nothing.

Rechecked with model text-v3 (trained on code as well) on 49 dev files that no training step reads
(glibc, Linux, X11 and CPython headers, C sources, JavaScript outside npm, HTML under /usr/share/doc,
markdown, rst, Perl, JSON, YAML, CSV): 39 winners (0.67-0.99 of the best classical coder) and 10
losers (1.01-1.35). The 1 KB ratio of every winner is <= 0.81, of five data-like losers >= 1.07.
The 8 KB ratios: winners up to 0.84 (Xlib.h 0.84 -> 0.94, _wrappers.c 0.81 -> 0.93, a Closure JS
file 0.81 -> 0.95), losers from 0.80 (a changelog of version lines, 1.01: it passes, and the
engine's classical candidate wins the block) then 0.85 (clinic.test.c, 1.04), 0.88-0.98 (JSON,
YAML, a generated header). The margin moved from 0.81 to 0.83 (two winners of 5-7% were declined).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from nncodec.codecs.base import BlockDeclined, Codec
from nncodec.core import modelstore
from nncodec.core.errors import CorruptError, NncodecError, TruncatedError
from nncodec.core.framing import decode_varint, encode_varint, join_streams, split_streams
from nncodec.core.modelstore import LoadedModel, find_model
from nncodec.entropy.backends import ZSTD_QUICK_LEVEL, ppmd_size, zstd_compress
from nncodec.entropy.rangecoder import SymbolDecoder, SymbolEncoder
from nncodec.nn.matching import (
    APM_PRIOR,
    LENGTH_BUCKETS,
    MATCH_MIN,
    MAX_VERIFY,
    P_MAX,
    P_MIN,
    PROB_EDGES,
    MatchModel,
)
from nncodec.nn.mixing import ORDER_PRIORS, ORDER_PRIORS_V2, ContextMixer, compiled_mixer
from nncodec.nn.rowops import KERNELS
from nncodec.text.model import IntGPT, ResidualOverflow
from nncodec.text.tokenizer import ByteTokenizer

try:  # the compiled decode loop and encoder walk (nncodec/nn/_kernels.c); the Python loops below are
    # their reference
    from nncodec.nn._kernels import TextDecoder, TextEncoder
except ImportError:  # pragma: no cover - built by `pip install`
    TextDecoder = TextEncoder = None
if KERNELS == "numpy":
    TextDecoder = TextEncoder = None

TEXT_MODEL_ID = "text-v3"
FORMAT_VERSION = 3  # written; versions 1 and 2 still decode
PRIORS_BY_VERSION = {1: ORDER_PRIORS, 2: ORDER_PRIORS_V2, 3: ORDER_PRIORS_V2}
MAX_SEGMENTS = 64
MIN_SEGMENT_TOKENS = 512
MIX_GROUP = MAX_SEGMENTS  # consecutive segments sharing adaptive counts (version 1 wrote 8)
MIN_ROWS_PER_WORKER = 4  # fewer rows run on one thread: a hand-off per step costs more than it gives
FREQUENCY_ROWS = 512  # encoder: frequency rows (streams x positions) that exist at once
ROWS_PER_PASS = 4  # encoder: streams whose int64 residual stream exists at once, per worker
PROBE_MIN = 64 << 10  # blocks at least this long are probed first
PROBE_BYTES = 8 << 10  # the probe's sample, from the middle of the block
PROBE_MARGIN = 0.83  # decline when the model's sample coding is larger than this times PPMd's
QUICK_PROBE_MIN = 8 << 10  # blocks at least this long get a quick probe before anything else
QUICK_PROBE_BYTES = 1 << 10
QUICK_PROBE_MARGIN = 0.90
REPEAT_MARGIN = 0.15  # decline when zstd -3 codes the block below this times the model's sample rate
#: (block size at least, sample bytes, margin), in the order they run
PROBES = ((QUICK_PROBE_MIN, QUICK_PROBE_BYTES, QUICK_PROBE_MARGIN), (PROBE_MIN, PROBE_BYTES, PROBE_MARGIN))
PROBE_PPMD_ORDERS = (5, 8, 16)


def load_text_model(path: Path) -> tuple[IntGPT, ByteTokenizer]:
    """The exact model and its tokenizer, from one model file (built once per process by
    ``modelstore.load``)."""
    model = IntGPT(path)
    return model, ByteTokenizer(model.tokenizer_json)


def segment_lengths(n_tokens: int, segments: int) -> list[int]:
    base, extra = divmod(n_tokens, segments)
    return [base + (1 if s < extra else 0) for s in range(segments)]


def choose_segments(n_tokens: int) -> int:
    return max(1, min(MAX_SEGMENTS, n_tokens // MIN_SEGMENT_TOKENS))


PROGRESS_STEPS = 16  # decoding reports progress every this many token steps


class TextCodec(Codec):
    codec_id = 3
    name = "text"
    block_size = 1 << 20
    max_block_size = 4 << 20  # bounds encoder memory and a corrupt header's decoding work
    memory_base = 96 << 20
    # measured peaks (tracemalloc, -T1): encoding 318 B per input byte on 1 MiB of prose (the
    # quantized final residual stream, mixer and match tables; the int64 stream of ROWS_PER_PASS
    # streams at a time: 1.6-2.4 KB when it was held for the whole block), decoding 0.26-0.66 KB
    # (KV rings, streams)
    memory_per_byte = (400.0, 250.0)

    def __init__(
        self,
        model: LoadedModel,
        mix_group: int = MIX_GROUP,
        decode_groups: int = 0,
        version: int = FORMAT_VERSION,
    ) -> None:
        self._model = model
        self.version = version
        self.priors = PRIORS_BY_VERSION[version]
        self.orders = len(self.priors)
        self.matching = version >= 2  # format 2 adds the match model (nncodec/nn/matching.py)
        self.learned = version >= 3  # format 3: the mixer's learned weights (nncodec/nn/mixing.py)
        self.mix_group = mix_group
        # mix groups decoded together (0: all); any value gives the same output
        self.decode_groups = decode_groups
        self.lm, self.tokenizer = modelstore.load(model, load_text_model)
        self._passed_probe: bytes | None = None  # the last block the probes let through
        self.native_walk = True  # the compiled encoder walk where built (False: the Python reference)

    @classmethod
    def for_encoding(cls, sample: bytes, **options: object) -> TextCodec:
        return cls(find_model(TEXT_MODEL_ID))

    @classmethod
    def from_header(cls, params: bytes, model: LoadedModel | None) -> TextCodec:
        if len(params) != 2 or params[0] not in PRIORS_BY_VERSION or not 1 <= params[1] <= MAX_SEGMENTS:
            raise CorruptError(f"text codec parameters {params.hex()} not understood (newer nncodec?)")
        if model is None:
            raise CorruptError("text frame names no model")
        return cls(model, mix_group=params[1], version=params[0])

    def params(self) -> bytes:
        return bytes([self.version, self.mix_group])

    @property
    def model(self) -> LoadedModel:
        return self._model

    # -- encoding --------------------------------------------------------------------------------

    def _encode_segments(self, segments: list[np.ndarray]) -> list[bytes]:
        """Code segments mix group by mix group: one parallel model pass per group, then the
        lockstep walk that mixes in the group's adaptive counts exactly as the decoder will."""
        size = self.mix_group
        groups = [segments[first : first + size] for first in range(0, len(segments), size)]
        if len(groups) == 1:  # the model's rows are split across the workers inside
            return self._encode_group(groups[0], split_rows=True)
        return [stream for group in self.map_parallel(self._encode_group, groups) for stream in group]

    def _match_parameters(self) -> tuple | None:
        """The match model's parameters for the compiled loops (None: format 1, no match model)."""
        if not self.matching:
            return None
        return (LENGTH_BUCKETS.astype(np.int64), PROB_EDGES.astype(np.float64), APM_PRIOR, P_MIN, P_MAX,
                MATCH_MIN, MAX_VERIFY)  # fmt: skip

    def _matcher(self, lengths: list[int]) -> MatchModel | None:
        """The match model of a mix group (format 2), holding token 0 of every stream."""
        if not self.matching or not lengths:
            return None
        return MatchModel(len(lengths), max(lengths), self.lm.vocab_size)

    def _row_parts(self, rows: int) -> list[slice]:
        """Contiguous row ranges, one per worker (the model's rows are independent)."""
        parts = min(self.workers, max(1, rows // MIN_ROWS_PER_WORKER)) if self.pool is not None else 1
        bounds = [rows * i // parts for i in range(parts + 1)]
        return [slice(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]

    def _outputs(self, batch: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """``sequence_outputs`` of these rows, ``ROWS_PER_PASS`` at a time, one pair per pass: the
        int64 residual stream of a whole block's rows took 1.1 GB to code 458 KB (rows are
        independent, so the values do not depend on the grouping)."""
        starts = range(0, len(batch), ROWS_PER_PASS)
        return [self.lm.sequence_outputs(batch[a : a + ROWS_PER_PASS]) for a in starts]

    def _encode_group(self, group: list[np.ndarray], split_rows: bool = False) -> list[bytes]:
        """``split_rows``: run the model's rows on the workers (never from inside a worker)."""
        lengths = [len(t) for t in group]
        longest = max(lengths)
        batch = np.zeros((len(group), longest), dtype=np.int64)  # short rows padded at the end
        for row, tokens in enumerate(group):
            batch[row, : len(tokens)] = tokens
        if self.native_walk and TextEncoder is not None and self._match_keys_fit():
            mixer = compiled_mixer(self.lm.vocab_size, self.priors, self.learned)
            lengths_array = np.asarray(lengths, np.int64)
            walker = TextEncoder(batch.astype(np.int32), lengths_array, mixer, self._match_parameters())
        else:
            walker = _ReferenceWalk(self, lengths, batch)
        first = min(1, longest)  # step 0: every stream's first token, against a uniform row
        walker.run(np.zeros((len(group), first, self.lm.vocab_size)), 0, first)
        if longest < 2:
            return walker.finish()
        parts = self._row_parts(len(group)) if split_rows else [slice(0, len(group))]
        run = self.map_parallel if split_rows else lambda f, items: [f(x) for x in items]
        if split_rows and len(parts) == 1 and self.pool is not None:
            # few rows (small inputs, the probe): the workers share each layer's position spans
            # instead (submitted from this thread: a worker never waits on the pool)
            q, s = self.lm.sequence_outputs(batch[:, :-1], map_spans=self.map_parallel)
        else:
            per_part = run(lambda part: self._outputs(batch[part, :-1]), parts)
            passes = [out for part in per_part for out in part]
            q = np.concatenate([q for q, _ in passes])  # one copy of the passes, in row order
            s = np.concatenate([s for _, s in passes])
            del per_part, passes
        span = max(1, FREQUENCY_ROWS // len(group))  # positions per chunk
        chunks = [(start, min(longest, start + span)) for start in range(1, longest, span)]

        def predict(start: int, stop: int) -> list:
            """The model's rows for positions start..stop-1: on the workers, while this thread
            walks the chunk before (futures), or here."""
            frequencies = self.lm.frequencies_of_outputs
            if split_rows and self.pool is not None:
                return [self.pool.submit(frequencies, q[p, start - 1 : stop - 1], s[p, start - 1 : stop - 1])
                        for p in parts]  # fmt: skip
            return [_run_here(frequencies, q[:, start - 1 : stop - 1], s[:, start - 1 : stop - 1])]

        pending = predict(*chunks[0])
        for index, (start, stop) in enumerate(chunks):
            model_rows = np.concatenate([future.result() for future in pending])
            if index + 1 < len(chunks):
                pending = predict(*chunks[index + 1])
            walker.run(np.ascontiguousarray(model_rows, dtype=np.float64), start, stop)
            if self._block_tokens:  # 0 while probing: the probe is not progress
                self.report_progress(sum(min(n, stop) - min(n, start) for n in lengths) / self._block_tokens)
        return walker.finish()

    def probe(self, data: bytes) -> str | None:
        """Why the learned path cannot win this block, as the probes see it (module docstring), or
        None."""
        for minimum, size, margin in PROBES:
            if len(data) < minimum:
                continue
            middle = len(data) // 2
            sample = data[middle - size // 2 : middle + size // 2]
            learned = len(self._encode_tokens(self.tokenizer.encode(sample), report=False))
            classical = min(ppmd_size(sample, order) for order in PROBE_PPMD_ORDERS)
            if learned > margin * classical:
                return f"probe: the model codes {size} B in {learned} B, PPMd in {classical}"
            if size == QUICK_PROBE_BYTES:
                repeating = len(zstd_compress(data, ZSTD_QUICK_LEVEL))
                if repeating < REPEAT_MARGIN * learned * len(data) / size:
                    return (
                        f"probe: zstd -{ZSTD_QUICK_LEVEL} codes the block in {repeating} B, "
                        f"the model {size} B in {learned} B"
                    )
        return None

    def declines(self, data: bytes) -> bool:
        """Whether the probes decline this block; one they pass is not probed again when it is coded."""
        if self.probe(data) is not None:
            return True
        self._passed_probe = data
        return False

    def encode_block(self, data: bytes) -> bytes:
        passed, self._passed_probe = self._passed_probe, None
        if passed != data:
            reason = self.probe(data)
            if reason is not None:
                raise BlockDeclined(reason)
        return self.encode_learned(data)

    def encode_learned(self, data: bytes) -> bytes:
        """The block's payload, without the probes (that may decline it first)."""
        return self._encode_tokens(self.tokenizer.encode(data))

    def _encode_tokens(self, tokens: np.ndarray, report: bool = True) -> bytes:
        self._block_tokens = max(1, len(tokens)) if report else 0
        segments, start = [], 0
        for length in segment_lengths(len(tokens), choose_segments(len(tokens))):
            segments.append(tokens[start : start + length])
            start += length
        try:
            streams = self._encode_segments(segments)
        except ResidualOverflow as exc:
            raise BlockDeclined(str(exc)) from exc
        return encode_varint(len(tokens)) + encode_varint(len(segments)) + join_streams(streams)

    # -- decoding --------------------------------------------------------------------------------

    def decode_block(self, payload: bytes, original_size: int) -> bytes:
        try:
            n_tokens, pos = decode_varint(payload, 0)
            segments, pos = decode_varint(payload, pos)
            if n_tokens > original_size or not 1 <= segments <= max(1, min(MAX_SEGMENTS, n_tokens)):
                raise CorruptError("text block header out of range")
            streams = split_streams(payload, pos, segments, "text block")
            lengths = segment_lengths(n_tokens, segments)
            if not n_tokens:  # an empty block: its one stream holds nothing
                if any(streams):
                    raise CorruptError("text block holds bytes past its tokens")
                decoded = []
            else:
                self._block_tokens = n_tokens
                per_call = self.mix_group * self._groups_per_call(segments)
                parts = [slice(first, first + per_call) for first in range(0, segments, per_call)]
                if len(parts) == 1:  # one batch: its model rows are split across the workers inside
                    decoded = [self._decode_streams(streams, lengths, split_rows=True)]
                else:
                    decoded = self.map_parallel(lambda p: self._decode_streams(streams[p], lengths[p]), parts)
            tokens = [t for part in decoded for t in part]
        except TruncatedError as exc:  # a varint running off a complete payload: corruption
            raise CorruptError(f"text block corrupt ({exc})") from exc
        except NncodecError:
            raise
        except (ValueError, IndexError, RuntimeError, MemoryError) as exc:
            raise CorruptError(f"text stream corrupt ({exc})") from exc
        data = self.tokenizer.decode(np.concatenate(tokens) if tokens else np.zeros(0, np.int32))
        if len(data) != original_size:
            raise CorruptError("text block decodes to the wrong size")
        return data

    def _groups_per_call(self, segments: int) -> int:
        """Mix groups decoded together as one batch: all of them, or an equal share per worker."""
        if self.decode_groups:
            return self.decode_groups
        groups = -(-segments // self.mix_group)
        return -(-groups // self.workers)

    def _decode_streams(
        self, streams: list[bytes], lengths: list[int], split_rows: bool = False
    ) -> list[np.ndarray]:
        """Decode whole mix groups in lockstep; lengths are non-increasing, so the active streams
        are always a prefix of the batch. ``split_rows``: the model steps a share of the rows on
        each worker (never from inside a worker)."""
        longest = max(lengths, default=0)
        orders = self.orders
        # column orders + t holds token t; the orders columns before it hold -1 ("no token")
        tokens = np.full((len(streams), orders + longest), -1, dtype=np.int32)
        active = sum(1 for n in lengths if n > 0)
        parts = self._row_parts(active) if split_rows else [slice(0, active)]
        if len(parts) == 1 and len(streams) <= self.mix_group and self._native_decoding():
            helper = split_rows and self.pool is not None and self.workers > 1
            return self._decode_native(streams, lengths, tokens, threads=2 if helper else 1)
        decoders = [SymbolDecoder(s) for s in streams]
        uniform = np.ones((1, self.lm.vocab_size))
        for s in range(active):
            tokens[s, orders] = decoders[s].decode(uniform)[0]
        mixers = [
            ContextMixer(self.lm.vocab_size, self.priors, learned=self.learned)
            for _ in range(0, len(streams), self.mix_group)
        ]
        matchers = [
            self._matcher(lengths[first : first + self.mix_group])
            for first in range(0, len(streams), self.mix_group)
        ]
        for g, matcher in enumerate(matchers):
            if matcher is not None:
                first = g * self.mix_group
                starting = range(first, min(active, first + self.mix_group))
                matcher.update(tokens[starting.start : starting.stop, orders].astype(np.int64), 0)
        ranges = [_Rows(part, self.lm.decoder(part.stop - part.start)) for part in parts]
        submit = self.pool.submit if len(ranges) > 1 else _run_here
        size = self.mix_group
        active_at = [sum(1 for n in lengths if n > t) for t in range(longest + 1)]  # non-increasing
        # the model's rows of the current step, kept for the learned mixer's update (format 3)
        step_rows = np.empty((len(streams), self.lm.vocab_size)) if self.learned else None

        def decode(rows: _Rows, t: int, history: np.ndarray) -> None:
            """Step t of a range of streams from the model's rows: each mix group's counts and match
            model (both only read here) and the range decoders."""
            part = rows.part
            for g in range(part.start // size, (part.stop - 1) // size + 1):
                first, stop = max(part.start, g * size), min(part.stop, (g + 1) * size)
                own = rows.ahead[first - part.start : stop - part.start]
                if step_rows is not None:
                    step_rows[first:stop] = own
                mixed = mixers[g].frequencies(own, history[first:stop])
                if matchers[g] is not None:
                    matchers[g].adjust(mixed, stop - g * size, first - g * size)
                for i, s in enumerate(range(first, stop)):
                    tokens[s, orders + t] = decoders[s].decode_row(mixed[i : i + 1])

        def predict(rows: _Rows, t: int) -> None:
            """The model's rows for step t of the range's streams still active then (the others
            are dropped from its state first), fed with their tokens t - 1."""
            keep = min(rows.part.stop, active_at[t]) - rows.part.start
            if keep < rows.part.stop - rows.part.start:
                if keep > 0:
                    rows.state.select(np.arange(keep))
                rows.part = slice(rows.part.start, rows.part.start + max(keep, 0))
            rows.ahead = rows.state.step(tokens[rows.part, orders + t - 1]) if keep > 0 else None

        def work(rows: _Rows, t: int, history: np.ndarray, decoded: threading.Event, failed: list) -> None:
            """Decode step t, say so (the updates of step t may then start on the calling thread),
            then run the model for step t + 1 (on a worker: meanwhile; here: before the updates,
            which the model does not read)."""
            try:
                decode(rows, t, history)
            except BaseException as exc:
                failed.append(exc)
                raise
            finally:
                decoded.set()
            if t + 1 < longest:
                predict(rows, t + 1)

        for future in [submit(predict, rows, 1) for rows in ranges]:
            future.result()
        for t in range(1, longest):
            active = active_at[t]
            history = tokens[:active, t : t + orders]  # tokens t-orders .. t-1
            if t % PROGRESS_STEPS == 0:
                self.report_progress(active * PROGRESS_STEPS / self._block_tokens)
            live = [rows for rows in ranges if rows.part.stop > rows.part.start]
            failed: list[BaseException] = []
            events = [threading.Event() for _ in live]
            jobs = zip(live, events, strict=True)
            futures = [submit(work, rows, t, history, event, failed) for rows, event in jobs]
            for event in events:
                event.wait()
            if failed:
                raise failed[0]
            for g, mixer in enumerate(mixers):  # the updates, in stream order
                group = range(g * size, min(active, (g + 1) * size))
                if not group:
                    break
                coded = tokens[group.start : group.stop, orders + t]
                if matchers[g] is not None:
                    matchers[g].update(coded.astype(np.int64), t)
                model_rows = step_rows[group.start : group.stop] if step_rows is not None else None
                mixer.update(history[group.start : group.stop], coded, model_rows)
            for future in futures:
                future.result()
        return [tokens[s, orders : orders + n] for s, n in enumerate(lengths)]

    def _native_decoding(self) -> bool:
        """Whether the compiled decode loop can run this codec's streams (compiled kernels, and the
        match model's keys in int64)."""
        return TextDecoder is not None and self.lm.ops.compiled and self._match_keys_fit()

    def _match_keys_fit(self) -> bool:
        """Whether the match model's keys (MATCH_MIN tokens) fit the compiled loops' int64 keys."""
        return not self.matching or self.lm.vocab_size**MATCH_MIN < 1 << 63

    def _decode_native(
        self, streams: list[bytes], lengths: list[int], tokens: np.ndarray, threads: int = 1
    ) -> list[np.ndarray]:
        """``_decode_streams`` for one mix group in the compiled loop (nncodec/nn/_kernels.c,
        TextDecoder: the same tables and updates in the same order); ``threads`` 2: a helper thread
        shares each step's products and attention."""
        mixer = compiled_mixer(self.lm.vocab_size, self.priors, self.learned)  # built wherever TextDecoder is
        scalars, dims = self.lm.step_constants()
        native = TextDecoder(
            self.lm.step_tensors(), scalars, dims, tuple(streams), np.asarray(lengths, np.int64), tokens,
            mixer, self._match_parameters(), threads,
        )  # fmt: skip
        longest = max(lengths, default=0)
        for start in range(0, longest, PROGRESS_STEPS):
            stop = min(longest, start + PROGRESS_STEPS)
            if not native.run(stop):
                raise ResidualOverflow("residual stream out of range")
            if self._block_tokens:
                self.report_progress(sum(min(n, stop) - min(n, start) for n in lengths) / self._block_tokens)
        return [tokens[s, self.orders : self.orders + n] for s, n in enumerate(lengths)]


class _ReferenceWalk:
    """The encoder's walk in Python, the compiled TextEncoder's reference, with its interface: ``run``
    mixes in the adaptive counts and the match model, range-codes and updates steps start..stop-1
    given the model's rows for them (step 0: every stream's first token, uniform); ``finish`` gives
    the streams."""

    def __init__(self, codec: TextCodec, lengths: list[int], batch: np.ndarray) -> None:
        self.lengths, self.batch, self.orders = lengths, batch, codec.orders
        self.padded = np.concatenate([np.full((len(lengths), codec.orders), -1), batch], axis=1)  # -1: none
        self.mixer = ContextMixer(codec.lm.vocab_size, codec.priors, learned=codec.learned)
        self.matcher = codec._matcher(lengths)
        self.encoders = [SymbolEncoder() for _ in lengths]

    def run(self, model_rows: np.ndarray, start: int, stop: int) -> None:
        lengths, batch, orders = self.lengths, self.batch, self.orders
        if start == 0 and stop > 0:
            for row, encoder in enumerate(self.encoders):
                if lengths[row]:
                    encoder.encode(batch[row, :1], np.ones((1, model_rows.shape[2])))
            if self.matcher is not None:
                self.matcher.update(batch[: sum(1 for n in lengths if n > 0), 0], 0)
            return
        mixed = np.empty_like(model_rows)
        for t in range(start, stop):
            active = sum(1 for n in lengths if n > t)  # lengths are non-increasing
            history = self.padded[:active, t : t + orders]  # tokens t-orders .. t-1
            mixed[:active, t - start] = self.mixer.frequencies(model_rows[:active, t - start], history)
            if self.matcher is not None:
                self.matcher.adjust(mixed[:active, t - start], active)
                self.matcher.update(batch[:active, t], t)
            self.mixer.update(history, batch[:active, t], model_rows[:active, t - start])
        for row, encoder in enumerate(self.encoders):
            count = min(stop, lengths[row]) - start
            if count > 0:
                encoder.encode(batch[row, start : start + count], mixed[row, :count])

    def finish(self) -> list[bytes]:
        return [encoder.finish() for encoder in self.encoders]


class _Done:
    """A value where a future may stand (``result()`` returns it)."""

    def __init__(self, value: object) -> None:
        self.value = value

    def result(self) -> object:
        return self.value


def _run_here(func, *args) -> _Done:
    """``func(*args)`` on this thread, as a finished future (the one-worker form of ``pool.submit``)."""
    return _Done(func(*args))


class _Rows:
    """A contiguous range of a batch's streams that one worker steps: its model state, and the
    model's rows for the next step once computed."""

    def __init__(self, part: slice, state) -> None:
        self.part = part
        self.state = state
        self.ahead: np.ndarray | None = None
