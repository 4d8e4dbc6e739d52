import random

import pytest
from conftest import SHARED_DATA, png_bytes

from nncodec.core.detect import sniff


def test_sniffs_generated_samples(samples):
    for kind, data in samples.items():
        assert sniff(data) == ("binary" if kind == "binary" else kind), kind


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "PPM"])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_sniffs_image_formats(fmt, mode):
    assert sniff(png_bytes(5, 3, mode, fmt)) == "image"


def test_sniffs_edge_cases():
    assert sniff(b"") == "binary"
    assert sniff(b"P6\n# comment\n3 2\n255\n" + bytes(18)) == "image"
    assert sniff("Ünïcödé prose, with accents — and dashes.\n".encode() * 50) == "text"
    assert sniff(b'{"time": "2015-05-17T08:05:32", "level": "info"}\n' * 20) == "log"
    assert sniff(random.Random(0).randbytes(5000)) == "binary"
    assert sniff(b"def f(x):\n    return x + 1\n" * 100) == "text"


def test_a_few_stray_invalid_bytes_still_count_as_text():
    text = bytearray(b"plain words and more words\n" * 200)
    text[100] = 0xFF
    assert sniff(bytes(text)) == "text"


@pytest.mark.parametrize(
    "relative, kind",
    [
        ("text/silesia/dickens", "text"),
        ("text/silesia/xml", "text"),
        ("text/enwik8-bytes1M-4M", "text"),
        ("text/silesia/mr", "binary"),
        ("text/silesia/osdb", "binary"),
        ("text/silesia/ooffice", "binary"),
        ("logs/loghub2k/HDFS_2k.log", "log"),
        ("logs/loghub2k/Linux_2k.log", "log"),
        ("logs/loghub2k/HealthApp_2k.log", "log"),
        ("logs/zeek_wrccdc/dns.log", "log"),
        ("logs/elastic_examples/nginxplus_json_logs", "log"),
        ("images/mcmaster/mcm01.png", "image"),
    ],
)
def test_sniffs_shared_data(relative, kind):
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"{path} not present (../shared/data is optional)")
    assert sniff(path.read_bytes()[:65536]) == kind
