"""A model-free first look at text: inputs the language model clearly cannot win are declined
before the model (and numpy) is loaded, so they are coded at the classical coders' speed.

The text codec's probes (nncodec/codecs/text.py) decide with the model itself, which costs a small
input most of its time: ~0.15 s to load numpy and the model, 0.05 s for the 1 KB probe, 0.25 s more
for the 8 KB one. Two statistics of the sniffed sample (the input's first 64 KB) need neither:

- **digits**: a share of ASCII digits of at least ``DIGIT_SHARE`` (tables of numbers, CSV of floats,
  hashes): the model's vocabulary has little to say about digit strings, and PPMd learns them fast;
- **long lines**: at least ``LINE_BYTES`` bytes per line on average and spaces under ``SPACE_SHARE``
  (minified code, one-line JSON or HTML; prose written as long paragraphs has spaces): PPMd and xz
  find such code's repeats, and the model gains little from its identifiers.

Calibrated (model text-v2) on 43 dev files that are neither training nor validation data (sources,
headers, HTML, markdown, JSON, CSV, minified JS, prose), by whether the learned path beat the best
classical coder on the file's first 128 KB: of 15 losers, 9 are declined here (CSV 1.18-1.33x,
minified JS 1.02-1.42x, a one-line HTML 1.02x, a changelog of version numbers 1.05x); of 28 winners
none is (digits at most 11.4% (math.h), lines at most 78 bytes; the declined minified files have
0-6% spaces, prose 15-18%). The other losers are left to the probes, which see them with the model.
Rechecked with text-v3 (trained on code too) on 49 dev files: it declines 4 (two CSVs of floats
and a table of test cases, 1.13-1.35x, and a one-line minified JS index that text-v3 now wins by
0.9%), no other winner. A decline here only chooses the classical coders, whose output is what the
probes would have written for a block they decline (and a small input still tries the log codec, as
then).
"""

from __future__ import annotations

DIGIT_SHARE = 0.15
LINE_BYTES = 1024
SPACE_SHARE = 0.10
DIGITS = b"0123456789"


def hopeless(sample: bytes) -> str | None:
    """Why the language model cannot win text that starts with ``sample``, or None (undecided)."""
    if not sample:
        return None
    digits = len(sample) - len(sample.translate(None, DIGITS))
    if digits >= DIGIT_SHARE * len(sample):
        return f"gate: {digits / len(sample):.0%} of the first {len(sample):,} bytes are digits"
    lines = sample.count(b"\n") + 1
    if len(sample) >= LINE_BYTES * lines and sample.count(b" ") < SPACE_SHARE * len(sample):
        return f"gate: {len(sample) // lines:,} bytes per line in the first {len(sample):,} bytes"
    return None
