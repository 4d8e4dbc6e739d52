"""The classical codec (issue 19): text blocks the model does not win take the best of zstd, xz and
PPMd; small text the model wins nowhere becomes a classical (or log) frame; damage is a clean error."""

from __future__ import annotations

import io
import json
import lzma
import random

import pytest
import zstandard

import nncodec
from nncodec.core import engine
from nncodec.core.errors import NncodecError


def _json(rows: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    records = [
        {"id": i, "user": f"u{rng.randrange(50)}", "amount": round(rng.random() * 1000, 2)}
        for i in range(rows)
    ]
    return json.dumps(records).encode()


def test_structured_text_takes_the_best_classical_coder():
    data = _json(3000)
    packed = nncodec.compress(data)
    frame = engine.scan_frames(io.BytesIO(packed))[0]
    assert dict(frame.block_codecs) == {"classical": 1}
    assert nncodec.decompress(packed) == data
    best = min(len(zstandard.ZstdCompressor(level=19).compress(data)),
               len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)))  # fmt: skip
    assert len(packed) < best  # PPMd wins on JSON


def test_small_text_the_model_loses_is_a_frame_without_model():
    """A small text input the model wins nowhere is written as a classical frame, or as a log frame
    where that is smaller (this one-line JSON document: the log codec's columns win)."""
    data = _json(300)
    packed = nncodec.compress(data)
    frame = engine.scan_frames(io.BytesIO(packed))[0]
    assert frame.header.codec_id in (5, 7) and not frame.header.model_id
    assert len(packed) <= len(nncodec.compress(data, codec="log"))
    assert nncodec.decompress(packed) == data


def test_damaged_classical_blocks_fail_cleanly():
    data = _json(300)
    packed = nncodec.compress(data)
    rng = random.Random(5)
    for _ in range(300):
        damaged = bytearray(packed)
        damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        try:
            assert nncodec.decompress(bytes(damaged)) == data
        except NncodecError:
            pass


def test_a_classical_block_is_refused_outside_text_frames():
    data = _json(300)
    classical = nncodec.compress(data)
    raw = bytearray(nncodec.compress(data, codec="raw"))
    # graft the classical frame's block onto the raw frame's header: codec id 7 is not allowed there
    raw_header = engine.scan_frames(io.BytesIO(bytes(raw)))[0].header.size
    classical_header = engine.scan_frames(io.BytesIO(classical))[0].header.size
    grafted = bytes(raw[:raw_header]) + classical[classical_header:]
    with pytest.raises(NncodecError, match="not allowed"):
        nncodec.decompress(grafted)


def test_a_text_input_the_model_loses_is_coded_classically_once(monkeypatch):
    """Rewriting a lost text frame as a classical frame reuses the block's classical trial (the
    same bytes, compared in full) instead of coding the block again."""
    from nncodec.codecs.classical import ClassicalCodec

    calls = []
    encode = ClassicalCodec.encode_block

    def counted(self, data):
        calls.append(len(data))
        return encode(self, data)

    monkeypatch.setattr(ClassicalCodec, "encode_block", counted)
    data = _json(3000)
    packed = nncodec.compress(data)
    assert engine.scan_frames(io.BytesIO(packed))[0].header.codec_id in (5, 7)
    assert calls == [len(data)]
    assert nncodec.decompress(packed) == data


def _repeats_far_apart(seed: int = 5) -> bytes:
    """Text whose first 40 KB of random words recur 300 KB later (a repeat beyond a sample's reach)."""
    rng = random.Random(seed)
    letters = b"abcdefghijklmnopqrstuvwxyz"
    words = [bytes(rng.choice(letters) for _ in range(rng.randrange(2, 9))) for _ in range(5000)]
    chunk = b" ".join(rng.choice(words) for _ in range(6000))[:40_000]
    filler = b" ".join(rng.choice(words) for _ in range(50_000))[:300_000]
    return chunk + filler + chunk


@pytest.mark.parametrize("kind", ["json", "long json", "long repeats"])
def test_classical_block_is_never_worse_than_zstd_xz_or_ppmd(kind):
    """The classical codec runs fewer backends than every one (FORMAT's classical section): its
    block is still no larger than zstd -19's, xz -9e's or PPMd order 16's stream, plus the tag.
    A block over FULL_LIMIT chooses its backends on a sample first."""
    from nncodec.codecs.classical import FULL_LIMIT, ClassicalCodec
    from nncodec.entropy import backends

    data = {"json": _json(3000), "long json": _json(6000), "long repeats": _repeats_far_apart()}[kind]
    assert (len(data) > FULL_LIMIT) == kind.startswith("long")
    payload = ClassicalCodec().encode_block(data)
    assert ClassicalCodec().decode_block(payload, len(data)) == data
    for coder in (("zstd", 0), ("xz", 0), ("ppmd", 16)):
        assert len(payload) <= backends.coded_size(data, coder), coder


def test_zstd_runs_in_full_only_when_its_sample_beats_xz(monkeypatch):
    from nncodec.codecs import classical
    from nncodec.entropy import backends

    ran = []
    encode_with = backends._encode_with

    def counted(data, coder):
        if len(data) > classical.ZSTD_SAMPLE:
            ran.append(coder)
        return encode_with(data, coder)

    monkeypatch.setattr(backends, "_encode_with", counted)
    data = _json(3000)
    monkeypatch.setattr(classical, "ZSTD_KEEP", 0.5)  # zstd's sample is never half of xz's here
    classical.ClassicalCodec().encode_block(data)
    assert ("zstd", 0) not in ran and ("xz", 0) in ran and set(classical.PPMD_CODERS) <= set(ran)
    ran.clear()
    monkeypatch.setattr(classical, "ZSTD_KEEP", 2.0)
    classical.ClassicalCodec().encode_block(data)
    assert ("zstd", 0) in ran


def test_long_blocks_choose_their_backends_on_a_sample(monkeypatch):
    from nncodec.codecs import classical

    data = _json(6000)
    assert len(data) > classical.FULL_LIMIT
    coders = classical.ClassicalCodec().coders(data)
    assert ("ppmd", 32) in coders and len(coders) < 2 + len(classical.PPMD_CODERS)
    monkeypatch.setattr(classical, "LZ_KEEP", 10.0)
    monkeypatch.setattr(classical, "ZSTD_KEEP", 10.0)
    monkeypatch.setattr(classical, "PPMD_CLOSE", 10.0)
    assert set(classical.ClassicalCodec().coders(data)) == {("xz", 0), ("zstd", 0), *classical.PPMD_CODERS}
    monkeypatch.setattr(classical, "LZ_KEEP", 0.5)
    monkeypatch.setattr(classical, "PPMD_CLOSE", 1.0)
    assert not {("xz", 0), ("zstd", 0)} & set(classical.ClassicalCodec().coders(data))


def _repetitive_json(size: int) -> bytes:
    """A pretty-printed JSON schema that repeats itself with small changes (like cfn-lint's 4.6 MB
    db_instance_class.json, which issue 19 saw take 9 minutes and lose to xz)."""
    rules = []
    for i in range(size // 300 + 1):
        engine_name = ("aurora-mysql", "aurora-postgresql", "mysql", "postgres")[i % 4]
        version = {"pattern": f"^({i % 7}\\\\.{i % 3}\\\\..+)$"}
        classes = {"DBInstanceClass": {"enum": ["db.r5.large", "db.r6g.xlarge"]}}
        condition = {"Engine": {"const": engine_name, "type": "string"}, "EngineVersion": version}
        rules.append({"if": {"properties": condition}, "then": {"properties": classes}})
    return json.dumps({"allOf": rules}, indent=1).encode()[:size]


def test_a_block_that_repeats_itself_is_declined_by_the_quick_probe():
    from nncodec.codecs.text import TEXT_MODEL_ID, TextCodec
    from nncodec.core.modelstore import find_model

    codec = TextCodec(find_model(TEXT_MODEL_ID))
    reason = codec.probe(_repetitive_json(200_000))
    assert reason is not None and "zstd -3 codes the block" in reason


def test_text_input_declined_from_its_first_block_is_one_classical_frame():
    """Past one text block (1 MiB): the first block's probes decline it, so the input becomes one
    classical frame of 8 MiB blocks, whose coders see repeats across the whole input."""
    data = _repetitive_json(2_500_000)
    packed = nncodec.compress(data, threads=2)
    frame = engine.scan_frames(io.BytesIO(packed))[0]
    assert frame.header.codec_id == 7 and not frame.header.model_id
    assert dict(frame.block_codecs) == {"classical": 1}
    assert nncodec.decompress(packed) == data
    per_block = sum(len(_classical().encode_block(data[i : i + (1 << 20)]))
                    for i in range(0, len(data), 1 << 20))  # fmt: skip
    assert len(packed) < per_block


def _classical():
    from nncodec.codecs.classical import ClassicalCodec

    return ClassicalCodec()
