"""Files written by earlier releases must keep decoding: format v1 containers made by nncodec 0.1.0
(raw codec, and text codec with model text-v1). If a change breaks one of these, it broke users'
archives: keep the old decoding path (and model) instead of regenerating the file."""

from pathlib import Path

import pytest

import nncodec

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("name", ["sample.raw-v1.nnc", "sample.text-v1.nnc"])
def test_old_files_still_decode(name):
    original = (GOLDEN / "sample.txt").read_bytes()
    assert nncodec.decompress((GOLDEN / name).read_bytes()) == original
