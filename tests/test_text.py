"""The text codec: tokenizer invertibility, exactness of the integer model across paths and batch
shapes, round trips of edge cases, and cross-configuration decoding."""

import os
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SHARED_DATA, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

import nncodec
from nncodec.codecs import text as text_module
from nncodec.codecs.classical import ClassicalCodec
from nncodec.codecs.text import MIX_GROUP, TEXT_MODEL_ID, TextCodec
from nncodec.core.modelstore import find_model
from nncodec.nn import mixing, rowops
from nncodec.nn.mixing import ORDER_PRIORS, ORDER_PRIORS_V2, ContextMixer

MODEL_FILE = REPO / "models" / f"{TEXT_MODEL_ID}.safetensors"
pytestmark = pytest.mark.skipif(not MODEL_FILE.exists(), reason=f"{MODEL_FILE} not built yet")


def natural_text(size: int) -> bytes:
    """Real text every machine has: Python standard library sources (sorted, from the end)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, total = [], 0
    for path in sorted(root.glob("*.py"), reverse=True):
        parts.append(path.read_bytes())
        total += len(parts[-1])
        if total >= size:
            break
    return b"".join(parts)[:size]


KERNEL_LEVELS = pytest.mark.parametrize("level", [0, 1, 2], ids=["best-for-this-cpu", "avx2", "portable"])


class kernel_level:
    """Run the C kernels at ``level`` (0: the best loops this CPU has, AVX-512 VNNI included; 1: at
    most AVX2; 2: baseline x86-64) inside the block, then go back to the session's level."""

    def __init__(self, level: int) -> None:
        self.level = level

    def __enter__(self):
        from nncodec.nn import _kernels

        _kernels.set_level(self.level)
        return _kernels

    def __exit__(self, *exc) -> None:
        from nncodec.nn import _kernels

        _kernels.set_level(rowops.LEVELS.get(rowops.KERNELS, 0))


@pytest.fixture(scope="module")
def codec() -> TextCodec:
    return TextCodec(find_model(TEXT_MODEL_ID))


EDGE_CASES = {
    "empty": b"",
    "one byte": b"x",
    "crlf": b"line one\r\nline two\r\n\r\nlast line without newline",
    "invalid utf-8": b"caf\xe9 \xff\xfe na\xefve \xc3\x28 \xed\xa0\x80 end",
    "nul bytes": b"a\x00b\x00\x00c" * 50,
    "huge line": b"word " * 8_000,
    "unicode": "Ünïcödé — “quotes” 日本語 emoji 🙂\n".encode() * 30,
    "mixed endings": b"a\nb\r\nc\rd\n\n\r\n",
}


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_tokenizer_is_exactly_invertible(codec, name):
    data = EDGE_CASES[name]
    assert codec.tokenizer.decode(codec.tokenizer.encode(data)) == data


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_tokenizer_inverts_any_bytes(codec, data):
    assert codec.tokenizer.decode(codec.tokenizer.encode(data)) == data


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_codec_round_trips_edge_cases(codec, name):
    data = EDGE_CASES[name]
    if data:  # the model's path even where a probe would decline the block (the huge line)
        assert codec.decode_block(codec.encode_learned(data), len(data)) == data
    assert nncodec.decompress(nncodec.compress(data, codec="text")) == data


def test_sequence_and_step_paths_give_identical_tables(codec):
    """The encoder's parallel pass and the decoder's KV-cache steps, past the window (ring wrap)."""
    model = codec.lm
    tokens = np.random.default_rng(3).integers(0, model.vocab_size, size=(3, model.window + 60))
    parallel = model.sequence_frequencies(tokens)
    decoder = model.decoder(3)
    stepped = np.stack([decoder.step(tokens[:, t]) for t in range(tokens.shape[1] - 1)], axis=1)
    assert np.array_equal(parallel, stepped)


def test_tables_do_not_depend_on_batch_or_chunking(codec):
    model = codec.lm
    tokens = np.random.default_rng(4).integers(0, model.vocab_size, size=(4, 300))
    full = model.frequencies(model.sequence_residuals(tokens))
    assert np.array_equal(full[2:3], model.frequencies(model.sequence_residuals(tokens[2:3])))
    assert np.array_equal(full, model.frequencies(model.sequence_residuals(tokens, chunk=37)))
    assert np.array_equal(full[:, :50], model.frequencies(model.sequence_residuals(tokens[:, :50])))
    q, s = model.sequence_outputs(tokens)  # the encoder's stored form of the residual stream
    assert q.dtype == np.int8
    assert np.array_equal(full[1:3, 40:90], model.frequencies_of_outputs(q[1:3, 40:90], s[1:3, 40:90]))


def test_encoder_output_does_not_depend_on_rows_per_pass(codec, monkeypatch):
    """The encoder runs the model over ROWS_PER_PASS streams at a time (memory): any count gives the
    same bytes, on one thread and with workers."""
    data = loop_data() * 3
    reference = codec.encode_learned(data)
    for rows in (1, 3, 64):
        monkeypatch.setattr(text_module, "ROWS_PER_PASS", rows)
        assert codec.encode_learned(data) == reference
        with ThreadPoolExecutor(2) as pool:
            codec.pool, codec.workers = pool, 2
            try:
                assert codec.encode_learned(data) == reference
            finally:
                codec.pool, codec.workers = None, 1


needs_kernels = pytest.mark.skipif(
    not rowops.CompiledOps.available(), reason="nncodec.nn._kernels not built (no C compiler at install)"
)


def test_compiled_kernels_are_built():
    """`pip install` builds nncodec/nn/_kernels.c (optional, for machines without a compiler): where it
    silently did not, everything still works but several times slower, so the suite says so."""
    if os.environ.get("NNCODEC_ALLOW_NO_KERNELS") != "1":
        assert rowops.CompiledOps.available(), "nncodec.nn._kernels missing: run `pip install -e .` with gcc"


@needs_kernels
@KERNEL_LEVELS
def test_compiled_ops_match_the_numpy_reference(codec, level):
    """Both paths of the model give bit-identical tables with the C kernels (at each level of
    instruction set) and with numpy."""
    model = codec.lm
    tokens = np.random.default_rng(5).integers(0, model.vocab_size, size=(3, model.window + 40))
    tables = {}
    with kernel_level(level):
        try:
            for ops in (rowops.NumpyOps(), rowops.CompiledOps()):
                model.ops = ops
                decoder = model.decoder(3)
                stepped = np.stack([decoder.step(tokens[:, t]) for t in range(tokens.shape[1] - 1)], axis=1)
                tables[ops.compiled] = (model.sequence_frequencies(tokens), stepped)
        finally:
            model.ops = rowops.best_ops()
    assert np.array_equal(tables[False][0], tables[True][0])
    assert np.array_equal(tables[False][1], tables[True][1])
    assert np.array_equal(tables[True][0], tables[True][1])


@needs_kernels
@KERNEL_LEVELS
def test_fused_decoder_step_equals_the_per_operation_step(codec, level):
    """The compiled decoder step (one C call) gives the per-operation compiled path's tables, past
    a ring wrap, and refuses a token outside the vocabulary instead of reading out of bounds."""
    model = codec.lm
    tokens = np.random.default_rng(9).integers(0, model.vocab_size, size=(2, model.window + 20))
    with kernel_level(level):
        fused, per_op = model.decoder(2), model.decoder(2)
        for t in range(tokens.shape[1]):
            a = fused.step(tokens[:, t])
            model.ops.compiled = False  # instance flag: step() takes the per-operation path
            try:
                b = per_op.step(tokens[:, t])
            finally:
                del model.ops.compiled
            assert np.array_equal(a, b), t
        with pytest.raises(ValueError, match="token out of range"):
            fused.step(np.array([0, model.vocab_size]))


@needs_kernels
@KERNEL_LEVELS
def test_compiled_int8_matmul_equals_the_blas_product(level):
    """The compiled int8 product gives BLAS's exact integers at every kernel level, at the extremes
    (+-127, the largest K), for shapes off the vector widths (K not a multiple of 32 or 4, N not of
    64) and for row counts off the VNNI tile (1-3 leftover rows, more than one chunk of rows);
    values that are not int8 are refused, not wrapped, and so is a packed layout of the wrong size."""
    from nncodec.nn.exact import MAX_EXACT_K, int_matmul
    from nncodec.nn.linear import pack_vnni

    rng = np.random.default_rng(8)
    shapes = [(1, 256, 768), (3, 1024, 256), (2, 100, 37), (16, MAX_EXACT_K - 16, 6), (70, 256, 128)]
    shapes.append((5, 36, 64))
    with kernel_level(level) as kernels:
        for rows, k, n in shapes:
            weight = rng.integers(-127, 128, (n, k)).astype(np.int8)
            weight[0] = 127
            weight[-1] = -127
            q = rng.integers(-127, 128, (rows, k)).astype(np.float32)
            q[0] = -127
            q[-1] = 127
            out = np.empty((rows, n), np.float32)
            packed = pack_vnni(weight)
            reference = pack_vnni(weight, compiled=False)  # the numpy layout the C packing must give
            for ours, numpy_layout in zip(packed, reference, strict=True):
                assert np.array_equal(ours, numpy_layout) and ours.dtype == numpy_layout.dtype
            kernels.matmul_i8(q, weight, *packed, out, rows, k, n)
            assert np.array_equal(out, int_matmul(q, np.ascontiguousarray(weight.astype(np.float32).T)))
        none = (np.zeros(0, np.int8), np.zeros(0, np.int32))
        for bad in (128.0, 0.5, np.nan):
            q = np.zeros((1, 32), np.float32)
            q[0, 5] = bad
            with pytest.raises(ValueError, match="int8"):
                out = np.empty((1, 4), np.float32)
                kernels.matmul_i8(q, np.zeros((4, 32), np.int8), *none, out, 1, 32, 4)
        with pytest.raises(ValueError, match="packed"):
            q = np.zeros((1, 32), np.float32)
            packed = (np.zeros(64 * 16, np.int8), np.zeros(64, np.int32))  # for K = 16, not 32
            out = np.empty((1, 64), np.float32)
            kernels.matmul_i8(q, np.zeros((64, 32), np.int8), *packed, out, 1, 32, 64)


@needs_kernels
@KERNEL_LEVELS
def test_compiled_attention_equals_the_reference(codec, level):
    """The compiled attention gives the numpy reference's values at every kernel level: key counts
    off the vector widths (16 keys per dot vector, 8 per score vector), masked keys, extreme int8
    values, and queries where every key ties with the peak (all weights 2^15, which the AVX loops
    cannot hold in int16 and add in two parts)."""
    model = codec.lm
    rng = np.random.default_rng(12)
    heads, dim, window = model.n_head, model.head_dim, model.window
    for batch, queries, keys in [(2, 3, 37), (1, 5, 300), (1, 2, 16), (2, 1, 7)]:
        def int8(*shape):
            return rng.integers(-127, 128, shape).astype(np.int8)

        q = int8(batch, heads, queries, dim)
        k, v = int8(batch, heads, keys, dim), int8(batch, heads, keys, dim)
        q[0, 0, 0] = 127
        k[0, 0, :] = -127
        q_s = rng.uniform(1e-4, 1e-2, (batch, heads, queries))
        k_s = rng.uniform(1e-3, 1e-1, (batch, heads, keys))
        distance = rng.integers(-3, window + 3, (queries, keys)).astype(np.int64)
        distance[0] = np.arange(keys) % window  # every key inside
        if queries > 1:
            distance[1] = 0  # every key inside at distance 0
            k[:, :, :] = k[:, :, :1]  # ... with equal keys: all scores tie
            k_s[:] = k_s[..., :1]
        tables = (model.alibi, model.attn_exp, model.attn_steps, model.layers[0].v_scale)
        args = (q, q_s, k, k_s, v, distance, *tables)
        with kernel_level(level):
            compiled = rowops.CompiledOps().attend(*args)
        reference = rowops.NumpyOps().attend(*args)
        assert np.array_equal(compiled, reference, equal_nan=True), (batch, queries, keys)


@needs_kernels
@pytest.mark.parametrize("vocab", [4096, 256, 64])
@pytest.mark.parametrize(
    "priors, learned, product",
    [
        (ORDER_PRIORS, False, False), (ORDER_PRIORS_V2, False, False), (ORDER_PRIORS_V2, True, False),
        (ORDER_PRIORS_V2 + (4.0, 2.0), True, True), (ORDER_PRIORS_V2, False, True),
    ],
    ids=["format-1", "format-2", "format-3", "product-learned", "product"],
)  # fmt: skip
def test_compiled_mixer_matches_the_reference(priors, learned, product, vocab):
    """Also with small vocabularies, where the compiled mixer takes its dense loop (many tokens seen
    in the contexts): the same values bit for bit, learned weights (format 3) and the product form
    (image format 4, seven orders) included."""
    if product and len(priors) == 7 and vocab > 256:
        vocab = 256  # seven orders need vocab^7 < 2^63
    rng = np.random.default_rng(6)
    reference = ContextMixer(vocab, priors, compiled=False, learned=learned, product=product)
    compiled = ContextMixer(vocab, priors, compiled=True, learned=learned, product=product)
    assert compiled._compiled.product == product  # the two forms differ only in rare roundings
    orders = len(priors)
    tokens = rng.integers(0, 40, size=(5, 1500))  # few distinct tokens: contexts repeat
    tokens[:, :orders] = -1
    for t in range(orders, tokens.shape[1]):
        history = tokens[:, t - orders : t]
        rows = np.floor(rng.random((5, vocab)) * 2.0**20) + 1
        if t == 900:  # forget: the counts go, the learned weights stay (in both)
            reference.forget()
            compiled.forget()
            fresh = ContextMixer(vocab, priors, compiled=False, product=product)  # no counts: model rows
            assert np.array_equal(reference.frequencies(rows, history), fresh.frequencies(rows, history))
        assert np.array_equal(reference.frequencies(rows, history), compiled.frequencies(rows, history))
        reference.update(history, tokens[:, t], rows)
        compiled.update(history, tokens[:, t], rows)
    if learned:  # the weights moved, and the reference's are in the range the compiled mixer keeps
        assert np.abs(reference.weights[..., 1]).max() > 0
        assert np.abs(reference.weights[..., 0]).max() <= mixing.W0_LIMIT


def test_learned_weights_follow_the_data():
    """A learned mixer trusts an order whose counts keep being right more than the formula does, and
    one whose counts keep being wrong less: the coded tokens' probabilities rise accordingly."""
    vocab, steps = 4096, 600
    rows = np.ones((1, vocab))  # a model that knows nothing
    history = np.full((1, 5), 7)  # one context throughout
    for case in ("mostly the same token", "always a new token"):
        rng = np.random.default_rng(3)
        tokens = rng.integers(2, vocab, size=steps)
        if case == "mostly the same token":
            tokens[rng.random(steps) < 0.9] = 1
        else:
            tokens = 2 + np.arange(steps)  # never seen before: the counts are always wrong
        log_p = []
        for learned in (False, True):
            mixer = ContextMixer(vocab, ORDER_PRIORS_V2, compiled=False, learned=learned)
            total = 0.0
            for t, token in enumerate(tokens):
                row = mixer.frequencies(rows, history)[0]
                total += np.log(row[token] / row.sum()) if t >= steps // 2 else 0.0
                mixer.update(history, tokens[t : t + 1], rows)
            log_p.append(total)
        formula, learned = log_p
        assert learned > formula + 10, case  # nats over the last 300 tokens


def test_learned_mixer_needs_the_model_rows():
    mixer = ContextMixer(64, ORDER_PRIORS_V2, learned=True)
    with pytest.raises(ValueError):
        mixer.update(np.zeros((1, 5), np.int64), np.zeros(1, np.int64))


def with_workers(codec: TextCodec, pool: ThreadPoolExecutor | None) -> TextCodec:
    codec.pool, codec.workers = pool, (pool._max_workers if pool else 1)
    return codec


def test_decode_batch_arrangement_does_not_change_output(codec):
    """Format 2 (one mix group): the model's rows split over 1 or 2 workers, encoding and decoding,
    give the same bytes. Format 1 (mix groups of 8): any number of groups per decoded batch."""
    data = natural_text(40_000)
    with ThreadPoolExecutor(2) as pool:
        payload = codec.encode_block(data)
        assert with_workers(TextCodec(codec.model), pool).encode_block(data) == payload
        for workers in (None, pool):
            other = with_workers(TextCodec.from_header(codec.params(), codec.model), workers)
            assert other.decode_block(payload, len(data)) == data
        old = TextCodec(codec.model, mix_group=8, version=1)
        payload = old.encode_block(data)
        for groups in (1, 3, 8):
            other = TextCodec.from_header(old.params(), codec.model)
            other.decode_groups = groups
            assert with_workers(other, pool).decode_block(payload, len(data)) == data


def loop_data() -> bytes:
    """Text with long repeats (the match model predicts) over segments of unequal length."""
    return natural_text(5_001) + b"the same line again, and again;\n" * 40 + natural_text(1_503)


def decode_three_ways(coder: TextCodec, payload: bytes, size: int, monkeypatch) -> list[object]:
    """The block decoded by the compiled loop on one thread, by the compiled loop with its helper
    thread (two workers), and by the Python loop: data, or the error's type, for each."""
    results = []
    with ThreadPoolExecutor(2) as pool:
        for native, workers in ((True, None), (True, pool), (False, None)):
            with monkeypatch.context() as patch:
                if not native:
                    patch.setattr(text_module, "TextDecoder", None)
                assert coder._native_decoding() == native
                try:
                    results.append(with_workers(coder, workers).decode_block(payload, size))
                except nncodec.NncodecError as exc:
                    results.append(type(exc))
    with_workers(coder, None)
    return results


@KERNEL_LEVELS
@pytest.mark.parametrize("version", [1, 2, 3], ids=["format-1", "format-2", "format-3"])
def test_compiled_decode_loop_equals_the_python_loop(codec, version, level, monkeypatch):
    """The compiled decode loop (nncodec/nn/_kernels.c, TextDecoder), on one thread and with its
    helper thread, decodes what the Python loop (its reference) decodes: format 1 (order-1..3 mixing,
    no match model), format 2 (orders 1..5 and the match model) and format 3 (learned weights),
    segments of unequal length, at every kernel level."""
    data = loop_data()
    coder = TextCodec(codec.model, mix_group=8 if version == 1 else MIX_GROUP, version=version)
    payload = coder.encode_block(data)
    with kernel_level(level):
        assert decode_three_ways(coder, payload, len(data), monkeypatch) == [data] * 3


@KERNEL_LEVELS
@pytest.mark.parametrize("version", [1, 2, 3], ids=["format-1", "format-2", "format-3"])
def test_compiled_encoder_walk_writes_the_python_walks_bytes(codec, version, level):
    """The compiled encoder walk (nncodec/nn/_kernels.c, TextEncoder: mixing, the match model and a
    range encoder written to constriction's algorithm) writes the bytes of the Python walk (its
    reference, constriction's RangeEncoder) on one thread and with workers, for segments of unequal
    length, a block of one token and an empty one, at every kernel level."""
    coder = TextCodec(codec.model, mix_group=8 if version == 1 else MIX_GROUP, version=version)
    with kernel_level(level), ThreadPoolExecutor(2) as pool:
        for data in (loop_data(), b"x", b""):
            coder.native_walk = False
            reference = coder.encode_learned(data)
            coder.native_walk = True
            assert coder.encode_learned(data) == reference
            coder.pool, coder.workers = pool, 2
            assert coder.encode_learned(data) == reference
            coder.pool, coder.workers = None, 1
            assert coder.decode_block(reference, len(data)) == data


def test_compiled_range_encoder_carries_like_constriction():
    """Skewed rows over 40,000 symbols: many renormalizations, some with a carry pending (the
    interval wrapping past 2^64), coded as constriction codes them, sealed the same way."""
    from nncodec.entropy.rangecoder import SymbolEncoder
    from nncodec.nn import _kernels
    from nncodec.nn.mixing import ORDER_PRIORS_V2, CompiledMixer, ContextMixer

    rng = np.random.default_rng(7)
    vocab, length = 16, 40_000
    dominant = rng.integers(0, vocab, size=length)
    rows = np.ones((1, length, vocab))
    rows[0, np.arange(length), dominant] = rng.choice([1e3, 1e6, 1e9], size=length)
    tokens = np.where(rng.random(length) < 0.97, dominant, rng.integers(0, vocab, size=length))[None, :]
    reference, mixer = SymbolEncoder(), ContextMixer(vocab, ORDER_PRIORS_V2, compiled=False)
    reference.encode(tokens[0, :1], np.ones((1, vocab)))
    orders = len(ORDER_PRIORS_V2)
    padded = np.concatenate([np.full((1, orders), -1), tokens], axis=1)
    for t in range(1, length):
        history = padded[:, t : t + orders]
        reference.encode(tokens[0, t : t + 1], mixer.frequencies(rows[:, t], history))
        mixer.update(history, tokens[:, t])
    mixer = CompiledMixer(vocab, ORDER_PRIORS_V2)
    native = _kernels.TextEncoder(tokens.astype(np.int32), np.array([length]), mixer, None)
    native.run(np.zeros((1, 1, vocab)), 0, 1)
    for start in range(1, length, 997):
        stop = min(length, start + 997)
        native.run(np.ascontiguousarray(rows[:, start:stop]), start, stop)
    assert native.finish() == [reference.finish()]


def test_compiled_decode_loop_fails_like_the_python_loop_on_damage(codec, monkeypatch):
    """Damaged text payloads: the compiled loop (one thread or two) gives what the Python loop gives,
    the same bytes or the same clean error."""
    import random

    data = natural_text(3_000)
    payload = codec.encode_block(data)
    rng = random.Random(11)
    outcomes = set()
    for _ in range(12):
        damaged = bytearray(payload)
        damaged[rng.randrange(4, len(damaged))] ^= 1 << rng.randrange(8)
        native, helped, python = decode_three_ways(codec, bytes(damaged), len(data), monkeypatch)
        assert native == helped == python
        outcomes.add(native if isinstance(native, type) else bytes)
    assert nncodec.core.errors.CorruptError in outcomes


@pytest.mark.slow
def test_cli_threads_1_then_threads_2_on_200kb(tmp_path):
    """Compress with -T1 and one block/segment layout; decompress with -T2 (other block parallelism)."""
    data = natural_text(210_000) + "naïve café\r\n".encode() * 100
    source = tmp_path / "prose.txt"
    source.write_bytes(data)
    packed = run_cli("--codec", "text", "-T1", "-B", "100K", "-c", str(source))
    assert packed.returncode == 0, packed.stderr
    info = nncodec.core.engine.scan_frames(__import__("io").BytesIO(packed.stdout))[0]
    assert info.codec_name == "text" and info.blocks == 3 and info.block_codecs["text"] >= 2
    restored = run_cli("-d", "-T2", input=packed.stdout)
    assert restored.returncode == 0 and restored.stdout == data
    # -T2 also splits the work inside a block (mix groups on two threads): same bytes
    again = run_cli("--codec", "text", "-T2", "-B", "100K", "-c", str(source))
    assert again.returncode == 0 and again.stdout == packed.stdout


def test_model_hash_mismatch_names_the_model(tmp_path, monkeypatch):
    packed = nncodec.compress(b"Some text to code with the language model. " * 20, codec="text")
    (tmp_path / f"{TEXT_MODEL_ID}.safetensors").write_bytes(b"not the same weights")
    monkeypatch.setenv("NNCODEC_MODEL_PATH", str(tmp_path))
    # the bundled file still matches, so it is used ...
    assert nncodec.decompress(packed).startswith(b"Some text")
    # ... but when only a different file is found, the error names the model and both hashes
    monkeypatch.setattr("nncodec.core.modelstore.BUNDLED_MODEL_DIR", tmp_path / "nowhere")
    with pytest.raises(nncodec.NncodecError, match=f"needs model '{TEXT_MODEL_ID}' with sha256"):
        nncodec.decompress(packed)


OTHER_KERNELS = {
    "OPENBLAS_CORETYPE": "Nehalem",  # SSE-only BLAS kernels, as on an old CPU
    "OPENBLAS_NUM_THREADS": "2",
    "OMP_NUM_THREADS": "2",
    "NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512_SKX",
}


def test_other_blas_kernels_and_threads_produce_the_same_bytes(tmp_path):
    """Compressed bytes are identical when BLAS kernels, SIMD dispatch and thread counts change."""
    data = natural_text(20_000)
    source = tmp_path / "code.py"
    source.write_bytes(data)
    here = run_cli("--codec", "text", "-n", "-c", str(source))
    there = run_cli("--codec", "text", "-n", "-c", str(source), env=OTHER_KERNELS)
    assert here.returncode == 0 and there.returncode == 0, there.stderr
    assert here.stdout == there.stdout
    restored = run_cli("-d", input=here.stdout, env=OTHER_KERNELS)
    assert restored.returncode == 0 and restored.stdout == data


SHARED_SAMPLE = int(os.environ.get("NNCODEC_TEST_SAMPLE", "160000"))


@pytest.mark.slow
def test_every_shared_text_file_round_trips_through_the_text_codec():
    """Acceptance 1, sampled for CI time: 160 KB from the middle of every file in ../shared/data/text
    (binaries included: their blocks fall back to zstd or stored after the text codec tried them).
    ``NNCODEC_TEST_SAMPLE=1000000`` runs the ~1 MB version (about 10 minutes here)."""
    root = SHARED_DATA / "text"
    if not root.is_dir():
        pytest.skip(f"{root} not present (../shared/data is optional)")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert files
    for path in files:
        data = path.read_bytes()
        start = max(0, len(data) // 2 - SHARED_SAMPLE // 2)
        sample = data[start : start + SHARED_SAMPLE]
        packed = nncodec.compress(sample, codec="text", threads=2)
        assert nncodec.decompress(packed, threads=2) == sample, path


def test_damaged_text_containers_fail_cleanly(codec):
    """Sampled byte flips and truncations of a text-coded container: the original or a clean error."""
    import random

    data = natural_text(1500)
    packed = nncodec.compress(data, codec="text")
    assert nncodec.core.engine.scan_frames(__import__("io").BytesIO(packed))[0].block_codecs["text"] == 1
    rng = random.Random(7)
    for _ in range(40):
        damaged = bytearray(packed)
        if rng.random() < 0.3:
            damaged = damaged[: rng.randrange(len(damaged))]
        else:
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        try:
            assert nncodec.decompress(bytes(damaged)) == data
        except nncodec.NncodecError:
            pass


def test_small_input_the_model_does_not_win_gets_a_raw_frame():
    """No model id and hash are spent on a frame whose blocks all fell back to zstd or stored."""
    packed = nncodec.compress(b"hi!")
    frame = nncodec.core.engine.scan_frames(__import__("io").BytesIO(packed))[0]
    assert frame.codec_name == "raw" and len(packed) <= 3 + 40


def test_one_block_input_the_model_does_not_win_gets_a_classical_frame():
    """Past the 64 KiB sniff too: an input of one block whose block went classical is written as a
    classical frame (no model id and hash), and it decodes."""
    rng = np.random.default_rng(9)
    rows = [f'{{"id": {i}, "value": {rng.integers(0, 10**6)}, "tag": "t{i % 7}"}}' for i in range(4000)]
    data = ("[" + ",\n".join(rows) + "]\n").encode()
    assert 64 << 10 < len(data) < TextCodec.block_size
    packed = nncodec.compress(data, codec="text")
    frame = nncodec.core.engine.scan_frames(__import__("io").BytesIO(packed))[0]
    assert frame.codec_name == "classical" and frame.blocks == 1
    assert nncodec.decompress(packed) == data


def test_small_text_the_model_loses_may_become_a_log_frame():
    """A small line-structured text input (a CSV of random hex numbers, like numpy's mt19937 test
    set, where brotli beat every classical coder) is also tried as a log frame, whose columns code
    the numbers apart: it is written as one when smaller than the classical frame, and decodes."""
    rng = np.random.default_rng(21)
    values = rng.integers(0, 2**32, 900)
    data = b"seed, 0xdeadbeaf\n" + b"".join(b"%d, 0x%08x\n" % (i, v) for i, v in enumerate(values))
    assert len(data) < nncodec.core.engine.SMALL_TEXT_LOG_TRIAL
    packed = nncodec.compress(data, codec="text")
    frame = nncodec.core.engine.scan_frames(__import__("io").BytesIO(packed))[0]
    assert frame.codec_name == "log"
    assert len(packed) < len(nncodec.compress(data, codec="log")) + 1
    assert len(packed) < min(len(ClassicalCodec().encode_block(data)), len(data))
    assert nncodec.decompress(packed) == data


@pytest.mark.parametrize("rows", [9000, 1000])
def test_probe_declines_structured_text_early_and_lets_prose_through(rows):
    """Issue 19's probes: a block the model cannot win (CSV of numbers) is declined after the quick
    1 KB sample, before the model runs over the block, whether it is long enough for the 8 KB probe
    or not; prose passes both probes."""
    import random

    from nncodec.codecs.base import BlockDeclined
    from nncodec.codecs.text import PROBE_MIN, QUICK_PROBE_BYTES, QUICK_PROBE_MIN

    codec = TextCodec(find_model(TEXT_MODEL_ID))
    rng = random.Random(3)
    lines = (f"{i},{rng.randrange(10**6)},{rng.random():.5f},{rng.choice(['x', 'yy'])}" for i in range(rows))
    csv = "\n".join(lines)
    assert QUICK_PROBE_MIN <= len(csv) and (len(csv) >= PROBE_MIN) == (rows == 9000)
    with pytest.raises(BlockDeclined, match=f"codes {QUICK_PROBE_BYTES} B"):
        codec.encode_block(csv.encode())
    prose = (REPO / "testdata" / "text" / "dickens_head.txt").read_bytes()
    prose += (REPO / "README.md").read_bytes()[:8000]
    assert len(prose) >= PROBE_MIN
    payload = codec.encode_block(prose)  # not declined
    assert codec.decode_block(payload, len(prose)) == prose


def test_compiled_coders_refuse_a_second_init(codec):
    """``__init__`` called again on a TextEncoder or TextDecoder would leak its first buffers: it is
    refused (Python never does it; a caller could)."""
    from nncodec.nn import _kernels
    from nncodec.nn.mixing import ORDER_PRIORS_V2, CompiledMixer

    args = (np.zeros((1, 3), np.int32), np.array([3]), CompiledMixer(16, ORDER_PRIORS_V2), None)
    encoder = _kernels.TextEncoder(*args)
    with pytest.raises(RuntimeError, match="twice"):
        encoder.__init__(*args)
    coder = TextCodec(codec.model)
    streams = [b""]  # what the stream holds does not matter before run()
    tokens = np.full((1, coder.orders + 4), -1, np.int32)
    mixer = CompiledMixer(coder.lm.vocab_size, coder.priors)
    scalars, dims = coder.lm.step_constants()
    decoder_args = (coder.lm.step_tensors(), scalars, dims, tuple(streams), np.array([4]), tokens, mixer,
                    coder._match_parameters())  # fmt: skip
    decoder = _kernels.TextDecoder(*decoder_args)
    with pytest.raises(RuntimeError, match="twice"):
        decoder.__init__(*decoder_args)
