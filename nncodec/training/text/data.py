"""The text model's training and validation data: named files, fixed byte ranges.

Validation ranges are never trained on (nor used to fit the tokenizer):
- the last 1,000,000 bytes of Silesia ``dickens`` (English prose),
- the last 500,000 bytes of ``enwik8-bytes1M-4M`` (Wikipedia XML),
- the last 500,000 bytes of Silesia ``xml``.
Training uses the rest of those files plus the Python standard library's ``.py`` sources
(text every machine has), in sorted path order, up to ``STDLIB_BYTES``.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

from nncodec.training.common import SHARED_DATA

SHARED_TEXT = SHARED_DATA / "text"
STDLIB_BYTES = 6_000_000

# (name, path relative to ../shared/data/text, bytes held out at the end for validation)
SHARED_FILES = [
    ("dickens", "silesia/dickens", 1_000_000),
    ("enwik8", "enwik8-bytes1M-4M", 500_000),
    ("xml", "silesia/xml", 500_000),
]


def stdlib_sources(limit: int = STDLIB_BYTES) -> bytes:
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, total = [], 0
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts or "test" in path.parts or "tests" in path.parts:
            continue
        data = path.read_bytes()
        parts.append(data)
        total += len(data)
        if total >= limit:
            break
    return b"".join(parts)[:limit]


def load_split(shared_text: Path = SHARED_TEXT) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """(train, validation) lists of (name, bytes)."""
    train, validation = [], []
    for name, relative, held_out in SHARED_FILES:
        data = (shared_text / relative).read_bytes()
        train.append((name, data[:-held_out]))
        validation.append((name, data[-held_out:]))
    train.append(("python-stdlib", stdlib_sources()))
    return train, validation
