"""A long generated stream through ``nncodec -c | nncodec -d -c``, compared on the fly, with the
peak RSS of both processes under 1 GiB. The suite runs 40 MiB (three 16 MiB log blocks); set
NNCODEC_HUGE_SIZE=4G for the full run recorded in BENCHMARKS.md (scripts/huge_roundtrip.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import RELIABILITY_LINES, REPO

SIZE = os.environ.get("NNCODEC_HUGE_SIZE", "40M")
RSS_LIMIT_MIB = 1024


@pytest.mark.slow
def test_a_long_stream_round_trips_in_bounded_memory():
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "huge_roundtrip.py"), SIZE],
        capture_output=True, timeout=24 * 3600, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()[-2000:]
    report = json.loads(result.stdout)
    print("huge stream:", report)
    RELIABILITY_LINES.append(
        f"long stream: {report['bytes']:,} bytes identical={report['identical']} in {report['seconds']} s, "
        f"peak RSS {report['compress']['peak_rss_mib']} / {report['decompress']['peak_rss_mib']} MiB"
    )
    assert report["identical"]
    for side in ("compress", "decompress"):
        assert report[side]["peak_rss_mib"] < RSS_LIMIT_MIB, report
