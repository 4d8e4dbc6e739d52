"""The log codec's line cut in C (nncodec/log/_linesplit.c) against its Python reference,
``VARIABLE.split`` (nncodec/log/templates.py): the same pieces on random lines made of the bytes
the regex cares about, on hand-picked edge cases and on every line of shared logs."""

from __future__ import annotations

import pytest
from conftest import SHARED_DATA
from hypothesis import given, settings
from hypothesis import strategies as st

from nncodec.log.templates import VARIABLE

_linesplit = pytest.importorskip("nncodec.log._linesplit", reason="C extension not built")

ALPHABET = b"0123456789....aZ_- :/\xff\t"


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(list(ALPHABET)), max_size=40).map(bytes))
def test_random_lines_split_as_the_regex_does(line):
    assert _linesplit.split(line) == VARIABLE.split(line)


@given(st.binary(max_size=200))
def test_any_bytes_split_as_the_regex_does(line):
    assert _linesplit.split(line) == VARIABLE.split(line)


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"1.2.3.4",
        b"1.2.3.4.5",
        b"v1.2.3.4",
        b"1.23456x 12.5 .5 5. 10.47.1.100:80 1234.5678",
        b"blk_3886 CqKst53mF3 no_digits_here a1.5 1.x 123.45.67 999.1.1.1 1.1.1.1000",
        b"2015-10-18 18:01:47,978 INFO [main] x=0.25",
    ],
)
def test_edge_cases_split_as_the_regex_does(line):
    assert _linesplit.split(line) == VARIABLE.split(line)


@pytest.mark.parametrize(
    "name",
    [
        "loghub2k/HDFS_2k.log",
        "loghub2k/Mac_2k.log",
        "loghub2k/OpenStack_2k.log",
        "json_lines/mssis_suricata_out.jsonl",
    ],
)
def test_shared_log_lines_split_as_the_regex_does(name):
    path = SHARED_DATA / "logs" / name
    if not path.exists():
        pytest.skip(f"shared data not present ({path})")
    for line in path.read_bytes().split(b"\n"):
        assert _linesplit.split(line) == VARIABLE.split(line)
