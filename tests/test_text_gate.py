"""The model-free text gate (nncodec/text/gate.py) and the sniffer's text test: what the gate
declines, that a declined input is coded without loading numpy or the model, and that the fast
``is_text`` counts exactly what the Unicode-category definition counts."""

import io
import random
import subprocess
import sys
import unicodedata

from conftest import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

import nncodec
from nncodec.core import detect
from nncodec.core.engine import scan_frames
from nncodec.text.gate import DIGIT_SHARE, LINE_BYTES, hopeless


def numbers_csv(rows: int, seed: int = 5) -> bytes:
    rng = random.Random(seed)
    return b"".join(b"%.6f,%.6f,%.6f\n" % (rng.random() * i, rng.random(), rng.random()) for i in range(rows))


def minified(size: int) -> bytes:
    rng = random.Random(7)
    names = ["a", "e", "t", "n", "fn", "this", "return", "var", "function"]
    parts = [f"{rng.choice(names)}{rng.choice('(){};,.=+')}" for _ in range(size // 3)]
    return "".join(parts).encode()[:size]


def prose() -> bytes:
    return (REPO / "testdata" / "text" / "dickens_head.txt").read_bytes()


def test_gate_declines_numbers_and_minified_code_and_passes_prose_and_code():
    assert "digits" in hopeless(numbers_csv(2000))
    assert "per line" in hopeless(minified(50_000))
    text = prose()
    assert hopeless(text) is None
    assert hopeless(text.replace(b"\n", b" ")) is None  # prose as one long paragraph has spaces
    assert hopeless((REPO / "nncodec" / "core" / "engine.py").read_bytes()) is None
    assert hopeless(b"") is None and hopeless(b"x" * (LINE_BYTES - 1)) is None


def test_gate_thresholds_are_where_the_docstring_says():
    base = b"abcdefghi\n" * 1000  # no digits, 10 bytes per line
    digits_needed = int(DIGIT_SHARE * len(base)) + 1
    assert hopeless(base) is None
    assert hopeless(b"7" * digits_needed + base[digits_needed:]) is not None
    assert hopeless(b"7" * (digits_needed - 20) + base[digits_needed - 20 :]) is None


def test_gated_input_is_coded_classically_without_numpy_or_the_model(tmp_path):
    """The point of the gate: a data file the model cannot win never loads numpy or the model; it
    becomes a classical frame that decodes."""
    data = numbers_csv(5000)
    sample = data[: detect.SNIFF_SIZE]
    assert len(data) > detect.SNIFF_SIZE and detect.sniff(sample) == "text" and hopeless(sample) is not None
    source = tmp_path / "numbers.csv"
    source.write_bytes(data)
    script = (
        "import sys, nncodec; packed = nncodec.compress(open(sys.argv[1], 'rb').read()); "
        "sys.stdout.buffer.write(packed); "
        "sys.stderr.write(' '.join(m for m in ('numpy', 'nncodec.codecs.text') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", script, str(source)], capture_output=True, check=True)
    assert run.stderr == b"", f"loaded: {run.stderr.decode()}"
    frame = scan_frames(io.BytesIO(run.stdout))[0]
    assert frame.codec_name == "classical"
    assert nncodec.decompress(run.stdout) == data


def test_small_gated_input_still_tries_the_log_codec():
    data = b"seed, 0xdeadbeaf\n" + b"".join(b"%d, 0x%08x\n" % (i, i * 2654435761 % 2**32) for i in range(900))
    assert hopeless(data) is not None
    packed = nncodec.compress(data)
    assert scan_frames(io.BytesIO(packed))[0].codec_name == "log"
    assert nncodec.decompress(packed) == data


def reference_is_text(sample: bytes) -> bool:
    """``is_text`` as first written: a loop over characters with their Unicode category."""
    if not sample:
        return False
    text = sample.decode("utf-8", errors="replace")
    if len(sample) >= 4:
        text = text[:-3] + sample[-3:].decode("utf-8", errors="ignore")
    bad = sum(
        1
        for ch in text
        if ch == "\ufffd" or (unicodedata.category(ch) == "Cc" and ch not in detect._TEXT_CONTROLS)
    )
    return bad <= detect._MAX_BAD_TEXT_SHARE * len(text)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_is_text_counts_as_the_unicode_category_definition(sample):
    assert detect.is_text(sample) == reference_is_text(sample)


def test_is_text_near_the_threshold_matches_the_reference():
    rng = random.Random(11)
    for bad_share in (0.0, 0.01, 0.02, 0.03, 0.05, 0.1):
        for _ in range(20):
            pool = "abc \n\t\x1b\x7f\x00\x85é"
            chars = [rng.choice(pool) if rng.random() < bad_share else "x" for _ in range(400)]
            sample = "".join(chars).encode()
            assert detect.is_text(sample) == reference_is_text(sample)
