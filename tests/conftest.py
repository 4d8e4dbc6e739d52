"""Shared test helpers: running the CLI in a subprocess, sample inputs, the optional ../shared data."""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


#: folders a test run may change inside the repository: the environment, caches and build outputs
#: (pip wheel writes build/ and *.egg-info; pytest, ruff and hypothesis their caches)
UNWATCHED = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", "build"}
UNWATCHED |= {"checkpoints"}  # training outputs (make train-text), ignored by git


def _tree_state(root: Path) -> dict[str, tuple[int, int, int]]:
    """(mode, size, mtime) of every path under ``root``, build outputs and caches left out."""
    state: dict[str, tuple[int, int, int]] = {}
    if not root.is_dir():
        return state
    for folder, folders, files in os.walk(root):
        folders[:] = [f for f in folders if f not in UNWATCHED and not f.endswith(".egg-info")]
        for name in files:
            path = Path(folder) / name
            if name.endswith(".so"):  # compiled extensions: the build's, like build/
                continue
            info = path.lstat()
            state[str(path.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return state


@pytest.fixture(scope="session", autouse=True)
def nothing_written_outside_test_folders():
    """Acceptance 5 of issue 18, for the whole suite: every test writes only under its own temporary
    folders. The repository (less caches and build outputs) and ../shared/data are compared before
    and after the session; any file created, changed or removed there fails the run."""
    watched = {"repository": REPO, "../shared/data": SHARED_DATA}
    before = {name: _tree_state(root) for name, root in watched.items()}
    yield
    for name, root in watched.items():
        after = _tree_state(root)
        changed = sorted(k for k in before[name].keys() | after.keys() if before[name].get(k) != after.get(k))
        assert not changed, f"the test run changed files in the {name}: {changed[:10]}"


def shared_file(relative: str) -> Path:
    """A file from ../shared/data, or skip the test with the reason when it is not there."""
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"{path} not present (../shared/data is optional outside the dev machines)")
    return path


def run_cli(
    *args: str, input: bytes | None = None, cwd: Path | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``python -m nncodec ARGS`` and capture its output (never raises on failure)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "nncodec", *args],
        input=input if input is not None else b"",
        capture_output=True,
        cwd=cwd,
        env=full_env,
        timeout=600,
    )


def prose(size: int, seed: int = 0) -> bytes:
    """English-like text made from a fixed vocabulary (deterministic)."""
    rng = random.Random(seed)
    words = (
        "the of and a to in is was he that it for his with as had on at by not be this but from "
        "they which she or her all an were one we there been so their has when would who more "
        "house door morning letter window evening Mr. Pickwick replied gentleman said"
    ).split()
    out = []
    length = 0
    while length < size:
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(5, 18))).capitalize() + ". "
        if rng.random() < 0.15:
            sentence += "\n\n"
        out.append(sentence)
        length += len(sentence)
    return "".join(out).encode()[:size]


def log_lines(count: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    levels = ["INFO", "WARN", "ERROR", "DEBUG"]
    lines = []
    for i in range(count):
        lines.append(
            f"2024-03-{1 + i // 1000:02d} 12:{(i // 60) % 60:02d}:{i % 60:02d},{rng.randint(0, 999):03d} "
            f"{rng.choice(levels)} [worker-{rng.randint(1, 8)}] dfs.DataNode: Received block "
            f"blk_{rng.getrandbits(40)} of size {rng.randint(1, 1 << 26)} "
            f"from /10.0.{rng.randint(0, 255)}.{rng.randint(0, 255)}"
        )
    return ("\n".join(lines) + "\n").encode()


def access_lines(count: int, seed: int = 0) -> bytes:
    """A synthetic web access log in Combined Log Format: clients (some returning) fetch a page and
    then its assets, with the page as referrer; times jitter inside each minute."""
    rng = random.Random(seed)
    pages = {f"/blog/{word}/": [f"/blog/{word}/img{i}.png" for i in range(rng.randint(1, 5))] + ["/style.css"]
             for word in ("logs", "kibana", "tools", "zstd", "notes")}  # fmt: skip
    agents = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", "curl/8.5.0", "Googlebot/2.1", "-"]
    sizes: dict[str, int] = {}
    clients: list[tuple[str, str]] = []
    lines: list[str] = []
    minute = 27_000_000
    while len(lines) < count:
        if clients and rng.random() < 0.3:
            ip, agent = rng.choice(clients)
        else:
            ip = ".".join(str(rng.randrange(256)) for _ in range(4))
            agent = rng.choice(agents)
            clients.append((ip, agent))
        page = rng.choice(list(pages))
        referrer = rng.choice(["-", "https://www.google.com/search?q=" + page.strip("/").replace("/", "+")])
        for path, ref in [(page, referrer), *((asset, "http://example.org" + page) for asset in pages[page])]:
            minute += rng.random() < 0.2
            t = minute * 60 + rng.randrange(60)
            days, rest = divmod(t, 86400)
            stamp = time.strftime("%d/%b/%Y:%H:%M:%S", time.gmtime(days * 86400 + rest))
            status = rng.choice([200] * 12 + [304, 404])
            size = sizes.setdefault(path, rng.randint(200, 300_000)) if status == 200 else rng.randint(0, 500)
            lines.append(f'{ip} - - [{stamp} +0000] "GET {path} HTTP/1.1" {status} {size} "{ref}" "{agent}"')
    return ("\n".join(lines[:count]) + "\n").encode()


def damaged_payload_trials(
    decode,  # noqa: ANN001 - (payload bytes, original size) -> bytes
    payload: bytes,
    size: int,
    *,
    trials: int,
    seed: int,
    skip: int = 0,
    changes: tuple[int, int] = (1, 1),
    truncate_every: int = 0,
    replace: bool = False,
) -> int:
    """Decode ``trials`` damaged copies of ``payload``: each gets a random number in ``changes`` of
    byte changes past its first ``skip`` bytes (a flipped bit, or with ``replace`` a random byte), or
    every ``truncate_every``-th trial is cut short instead. A decode must fail with NncodecError (one
    clear line) or give ``size`` bytes (the block CRC tells a wrong result). Returns the failures."""
    from nncodec.core.errors import NncodecError

    rng = random.Random(seed)
    failures = 0
    for trial in range(trials):
        damaged = bytearray(payload)
        if truncate_every and trial % truncate_every == 0:
            damaged = damaged[: rng.randrange(len(damaged))]
        else:
            for _ in range(rng.randint(*changes)):
                at = rng.randrange(skip, len(damaged))
                damaged[at] = rng.randrange(256) if replace else damaged[at] ^ 1 << rng.randrange(8)
        try:
            out = decode(bytes(damaged), size)
        except NncodecError:
            failures += 1
            continue
        assert len(out) == size
    return failures


def png_bytes(width: int = 17, height: int = 9, mode: str = "RGB", fmt: str = "PNG") -> bytes:
    from PIL import Image

    rng = random.Random(width * 1000 + height)
    image = Image.new(mode, (width, height))
    bands = len(image.getbands())
    pixels = [tuple(rng.randrange(256) for _ in range(bands)) for _ in range(width * height)]
    image.putdata(pixels if bands > 1 else [p[0] for p in pixels])
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def smooth_png(width: int, height: int, mode: str) -> bytes:
    """A PNG of smooth waves plus a little noise (deterministic): what the image codecs win on."""
    from PIL import Image

    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    rng = np.random.default_rng(width * 31 + height)
    planes = [
        128 + 90 * np.sin(x / 7.0 + c) * np.cos(y / 5.0 - c) + rng.normal(0, 1.5, x.shape) for c in range(3)
    ]
    rgb = np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8)
    image = Image.fromarray(rgb).convert(mode)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def samples() -> dict[str, bytes]:
    """One input of each sniffed kind."""
    return {
        "text": prose(30_000),
        "log": log_lines(400),
        "image": png_bytes(),
        "binary": random.Random(1).randbytes(20_000),
    }


#: one-line results of the reliability tests (fuzz cases, determinism configurations, long stream),
#: printed at the end of every run so that `make test` shows them
RELIABILITY_LINES: list[str] = []


def pytest_terminal_summary(terminalreporter) -> None:
    if RELIABILITY_LINES:
        terminalreporter.section("reliability")
        for line in RELIABILITY_LINES:
            terminalreporter.write_line(line)


ZEEK_HEADER = (
    b"#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tssl\n"
    b"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tversion\tserver_name\tnote\n"
    b"#types\ttime\tstring\taddr\tport\taddr\tport\tstring\tstring\tstring\n"
)


def make_uid(rng: random.Random, prefix: bytes = b"C") -> bytes:
    """A Zeek UID: a prefix letter and 96 random bits (nncodec/log/rewrites/zeekuid.py has the layout)."""
    from nncodec.log.rewrites import zeekuid

    return zeekuid.render_uid(prefix, rng.getrandbits(96))


def zeek_lines(count: int, seed: int = 0) -> bytes:
    """A synthetic Zeek ssl-like log: increasing times with random microseconds, random UIDs
    (some repeated), a few clients allocating ports one after another, unset fields."""
    rng = random.Random(seed)
    clients = [b"10.0.%d.%d" % (rng.randrange(256), rng.randrange(256)) for _ in range(5)]
    ports = {c: rng.randrange(30000, 60000) for c in clients}
    stamp = 1_521_911_720_000_000
    uids: list[bytes] = []
    rows = []
    for _ in range(count):
        stamp += rng.randrange(0, 20_000)
        client = rng.choice(clients)
        ports[client] += rng.choice((1, 1, 2, 3))
        uid = rng.choice(uids) if uids and rng.random() < 0.05 else make_uid(rng)
        uids.append(uid)
        server = rng.choice([b"example.org", b"-", b"mail.example.com"])
        rows.append(
            b"\t".join(
                [
                    b"%d.%06d" % divmod(stamp, 1_000_000),
                    uid,
                    client,
                    b"%d" % ports[client] if rng.random() > 0.01 else b"-",
                    b"10.47.3.200",
                    rng.choice([b"443", b"8443"]),
                    rng.choice([b"TLSv12", b"TLSv10"]),
                    server,
                    rng.choice([b"-", b"(empty)", b"see F" + make_uid(rng, b"F")[1:]]),
                ]
            )
        )
    return ZEEK_HEADER + b"\n".join(rows) + b"\n#close\t2024-04-12-19-29-12\n"
