"""Acceptance: on binary data nncodec is never meaningfully worse than `zstd -19 --long`."""

import shutil
import subprocess

import pytest
from conftest import shared_file

import nncodec


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mr", "osdb", "ooffice"])
def test_silesia_binaries_within_a_tenth_of_a_percent_of_zstd(name):
    if shutil.which("zstd") is None:
        pytest.skip("the zstd command is not installed")
    data = shared_file(f"text/silesia/{name}").read_bytes()
    reference = subprocess.run(
        ["zstd", "-19", "--long", "-c", "-q"], input=data, capture_output=True, check=True
    ).stdout
    packed = nncodec.compress(data)
    print(f"{name}: zstd -19 --long {len(reference)}, nncodec {len(packed)}")
    assert len(packed) <= len(reference) * 1.001 + 64
    assert nncodec.decompress(packed) == data
