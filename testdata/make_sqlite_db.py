"""Write testdata/binary/inventory.sqlite: a small (~50 KB) SQLite database, generated, no licence issue.

Seeded and stdlib-only (``sqlite3``, ``random``):

    python testdata/make_sqlite_db.py [OUTPUT]

The content is deterministic; the file bytes are too for a given SQLite library version (the
header records the version of the library that last wrote it). Pages hold the usual mix a binary
compressor meets: B-tree page headers and cell pointers, varint records, little runs of zeros,
short strings, doubles, an index, and a column of random (incompressible) 16-byte blobs.
"""

from __future__ import annotations

import random
import sqlite3
import sys
from pathlib import Path

SEED = 1729
ROWS = 190
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "binary" / "inventory.sqlite"

WORDS = "bolt nut washer gear spring valve pump hose clamp seal filter bearing shaft belt fan".split()
COLOURS = ["red", "green", "blue", "black", "white", "steel", "brass"]
WAREHOUSES = ["AMS-1", "BER-2", "LIS-1", "OSL-3", "WAW-1"]


def build(output: Path) -> None:
    rng = random.Random(SEED)
    tmp = output.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    try:
        con.executescript(
            """
            PRAGMA page_size = 4096;
            PRAGMA journal_mode = OFF;
            CREATE TABLE item (
                id INTEGER PRIMARY KEY,
                sku TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL,
                colour TEXT,
                weight_kg REAL,
                price_cents INTEGER,
                tag BLOB
            );
            CREATE TABLE stock (
                item_id INTEGER REFERENCES item(id),
                warehouse TEXT NOT NULL,
                quantity INTEGER NOT NULL,
                PRIMARY KEY (item_id, warehouse)
            ) WITHOUT ROWID;
            CREATE INDEX item_by_name ON item(name);
            """
        )
        items = []
        for i in range(1, ROWS + 1):
            name = f"{rng.choice(WORDS)} {rng.choice(WORDS)} M{rng.choice([3, 4, 5, 6, 8, 10, 12])}"
            items.append(
                (
                    i,
                    f"SKU-{rng.randint(0, 999_999):06d}-{i:04d}",
                    name,
                    rng.choice(COLOURS) if rng.random() < 0.8 else None,
                    round(rng.uniform(0.001, 25.0), 3),
                    rng.randint(5, 250_000),
                    rng.randbytes(16),
                )
            )
        con.executemany("INSERT INTO item VALUES (?, ?, ?, ?, ?, ?, ?)", items)
        stock = [
            (i, warehouse, rng.randint(0, 5000))
            for i in range(1, ROWS + 1)
            for warehouse in WAREHOUSES
            if rng.random() < 0.4
        ]
        con.executemany("INSERT INTO stock VALUES (?, ?, ?)", stock)
        con.commit()
        con.execute("VACUUM")
    finally:
        con.close()
    tmp.replace(output)


def main() -> None:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT
    output.parent.mkdir(parents=True, exist_ok=True)
    build(output)
    print(f"wrote {output} ({output.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
