"""The text model's training and validation data: named files, fixed byte ranges.

Validation ranges are never trained on (nor used to fit the tokenizer):
- the last 1,000,000 bytes of Silesia ``dickens`` (English prose),
- the last 500,000 bytes of ``enwik8-bytes1M-4M`` (Wikipedia XML),
- the last 500,000 bytes of Silesia ``xml``.
Training uses the rest of those files plus the Python standard library's ``.py`` sources
(text every machine has), in sorted path order, up to ``STDLIB_BYTES``.

The **broad** split (``load_split(broad=True)``, text-v2 on) adds the Gutenberg set
(``../shared/data/text/gutenberg``) minus every book by a ``HELD_OUT_AUTHORS`` writer, and groff man
pages installed on the machine (``/usr/share/man``, minus ``HELD_OUT_PATHS``), and samples sources by
the fixed ``BROAD_WEIGHTS`` rather than by size. Its validation adds the held-out authors (the first
``HELD_OUT_BYTES`` of each of ``HELD_OUT_BOOKS``). The cross-domain validation set of
scripts/bench_text.py draws its prose, poetry and drama only from held-out authors and its other files
from paths no training step reads.

The **code** split (``load_split(broad=True, code=True)``, text-v3 on) adds source code and documentation
installed on the machine, each source a stride sample of its sorted files (``stride_sample``) so that
no one directory fills it: C/C++ headers under ``/usr/include``'s subdirectories except ``X11`` and
``linux``, the npm package's JavaScript (``/usr/lib/node_modules``, minified files left out), and the
Rust toolchain's HTML documentation. Held out of it, by source, for validation: the top-level
``/usr/include/*.h`` (glibc's own headers; ``elf.h`` is in scripts/bench_text.py), ``X11`` and
``linux`` headers, ``/usr/share/javascript`` (jQuery, Underscore) and the HTML under ``/usr/share/doc``;
its validation adds ``C_DEV``, ``JS_DEV`` and ``HTML_DEV`` (checkpoint selection only).
"""

from __future__ import annotations

import gzip
import sysconfig
import tarfile
from collections.abc import Iterable, Iterator
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


GUTENBERG = SHARED_TEXT / "gutenberg" / "books.tar.xz"
#: whole authors never trained on (validation: scripts/bench_text.py and HELD_OUT_BOOKS)
HELD_OUT_AUTHORS = ("Austen", "Chesterton", "Darwin", "Ibsen", "Joyce", "Poe,", "Wilde")
HELD_OUT_BOOKS = ("0399.txt", "0253.txt", "0059.txt")  # Austen prose, Wilde poems, Ibsen drama
HELD_OUT_BYTES = 100_000
#: machine files the validation set uses: never trained on
HELD_OUT_PATHS = ("/usr/share/man/man1/bash.1.gz", "/usr/share/doc/nodejs")
MAN_ROOT = Path("/usr/share/man")
MAN_BYTES = 4_000_000
CODE_SOURCES = {
    # name: (root, glob, excluded path prefixes relative to root, bytes)
    "c-headers": (Path("/usr/include"), "*/**/*.h", ("X11/", "linux/"), 3_000_000),
    "javascript": (Path("/usr/lib/node_modules"), "**/*.js", (), 2_500_000),
    "html-docs": (
        Path("/root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/share/doc/rust/html"),
        "**/*.html",
        (),
        3_000_000,
    ),
}
#: validation of the code split (checkpoint selection): sources it never trains on
C_DEV = ("/usr/include/linux", "*.h")
JS_DEV = ("/usr/share/javascript/underscore", "underscore.js")
HTML_DEV = ("/usr/share/doc", "*/*.html")
CODE_FILE_BYTES = 64 << 10  # at most this much of one file, so that big files do not dominate
CODE_WEIGHTS = {"c-headers": 0.07, "javascript": 0.06, "html-docs": 0.06}
BROAD_WEIGHTS = {
    "gutenberg": 0.45,
    "dickens": 0.08,
    "enwik8": 0.14,
    "xml": 0.08,
    "python-stdlib": 0.15,
    "man-pages": 0.10,
}


def held_out_author(author: str) -> bool:
    return any(name in author for name in HELD_OUT_AUTHORS)


def gutenberg_books(path: Path = GUTENBERG) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """(books by training authors, books by held-out authors) as (file name, bytes), in file order."""
    manifest = (path.parent / "MANIFEST.tsv").read_text(encoding="utf-8").split("\n")
    # rows start with the file name (a few titles hold a line break: their tails are skipped)
    rows = [line.split("\t") for line in manifest if line[:4].isdigit() and ".txt\t" in line[:9]]
    author_of = {row[0]: row[1] for row in rows}
    train, held_out = [], []
    with tarfile.open(path) as archive:
        for member in archive:
            if not member.isfile() or member.name not in author_of:
                continue
            data = archive.extractfile(member).read()  # type: ignore[union-attr]
            (held_out if held_out_author(author_of[member.name]) else train).append((member.name, data))
    return train, held_out


def first_bytes(pieces: Iterable[bytes], limit: int) -> bytes:
    """The first ``limit`` bytes of the pieces joined, reading no piece past the one that reaches it."""
    parts, total = [], 0
    for piece in pieces:
        parts.append(piece)
        total += len(piece)
        if total >= limit:
            break
    return b"".join(parts)[:limit]


def man_pages(root: Path = MAN_ROOT, limit: int = MAN_BYTES) -> bytes:
    """English groff man pages of sections 1-8 (gzip-decompressed), sorted by path, up to ``limit``."""

    def pages() -> Iterator[bytes]:
        for path in sorted(root.glob("man[1-8]/*.gz")):
            if str(path) in HELD_OUT_PATHS or path.is_symlink():
                continue
            try:
                yield gzip.decompress(path.read_bytes())
            except (OSError, EOFError):
                continue

    return first_bytes(pages(), limit)


def stride_sample(paths: list[Path], limit: int, file_bytes: int = CODE_FILE_BYTES) -> bytes:
    """Up to ``limit`` bytes from every k-th of the sorted ``paths`` (k chosen so that the whole
    list is crossed), at most ``file_bytes`` of each: a sample of all directories, not the first."""
    sizes = [min(path.stat().st_size, file_bytes) for path in paths]
    stride = max(1, round(sum(sizes) / limit)) if sizes else 1
    pieces = (path.read_bytes()[:file_bytes] for path in paths[::stride])
    return first_bytes((piece for piece in pieces if b"\0" not in piece), limit)


def code_files(root: Path, pattern: str, excluded: tuple[str, ...] = ()) -> list[Path]:
    """Regular files under ``root`` matching ``pattern``, sorted, minus held-out paths and minified JS."""
    held_out = tuple(str(root / prefix) for prefix in excluded) + HELD_OUT_PATHS
    return sorted(
        path
        for path in root.glob(pattern)
        if path.is_file()
        and not path.is_symlink()
        and not str(path).startswith(held_out)
        and not path.name.endswith(".min.js")
    )


def code_sources() -> list[tuple[str, bytes]]:
    """The code split's training sources (module docstring), as (name, bytes)."""
    return [
        (name, stride_sample(code_files(root, pattern, excluded), limit))
        for name, (root, pattern, excluded, limit) in CODE_SOURCES.items()
    ]


def code_validation(limit: int = HELD_OUT_BYTES * 2) -> list[tuple[str, bytes]]:
    validation = []
    for name, (root, pattern) in (("c-dev", C_DEV), ("js-dev", JS_DEV), ("html-dev", HTML_DEV)):
        paths = code_files(Path(root), pattern, ("nodejs/",))
        validation.append((name, stride_sample(paths, limit, 32 << 10)))
    return validation


def stdlib_sources(limit: int = STDLIB_BYTES) -> bytes:
    root = Path(sysconfig.get_paths()["stdlib"])
    skipped = {"site-packages", "test", "tests"}
    paths = (path for path in sorted(root.rglob("*.py")) if not skipped.intersection(path.parts))
    return first_bytes((path.read_bytes() for path in paths), limit)


def load_split(
    shared_text: Path = SHARED_TEXT, broad: bool = False, code: bool = False
) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """(train, validation) lists of (name, bytes)."""
    train, validation = [], []
    for name, relative, held_out in SHARED_FILES:
        data = (shared_text / relative).read_bytes()
        train.append((name, data[:-held_out]))
        validation.append((name, data[-held_out:]))
    train.append(("python-stdlib", stdlib_sources()))
    if broad:
        books, held_out_books = gutenberg_books(shared_text / "gutenberg" / "books.tar.xz")
        train.append(("gutenberg", b"".join(data for _, data in books)))
        train.append(("man-pages", man_pages()))
        by_name = dict(held_out_books)
        for book in HELD_OUT_BOOKS:
            validation.append((f"gutenberg-{book[:4]}", by_name[book][:HELD_OUT_BYTES]))
    if code:
        train.extend(code_sources())
        validation.extend(code_validation())
    return train, validation
