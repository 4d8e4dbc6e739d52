"""Write testdata/logs/synthetic_app.log: a deterministic, ~40 KB synthetic application log.

Seeded and stdlib-only, so the output is byte-identical on every run and machine:

    python testdata/make_synthetic_log.py [OUTPUT]

The log mixes the shapes a real service log has, including the byte-exactness edge cases a
compressor must round-trip: ISO timestamps with milliseconds, levels, bracketed components and
thread names, key=value fields, a multi-line Java stack trace (continuation lines without a
timestamp), a few CRLF-terminated lines, valid non-ASCII UTF-8, and exactly one invalid UTF-8
byte (0xFF). The file ends with a newline.
"""

from __future__ import annotations

import random
import sys
from datetime import datetime, timedelta
from pathlib import Path

SEED = 20240305
TARGET_SIZE = 40_000
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "logs" / "synthetic_app.log"

LEVELS = ["DEBUG"] * 6 + ["INFO"] * 10 + ["WARN"] * 2 + ["ERROR"]
COMPONENTS = ["http.server", "db.pool", "auth", "cache", "scheduler", "billing", "mailer"]
WEIGHTS = [10, 2, 3, 2, 1, 2, 1]
PATHS = ["/api/v1/items", "/api/v1/users", "/api/v1/orders", "/health", "/login", "/static/app.js"]
METHODS = ["GET"] * 6 + ["POST"] * 2 + ["PUT", "DELETE"]
STATUSES = [200] * 12 + [201, 204, 301, 304, 400, 401, 403, 404, 500, 503]
USERS = ["alice", "bob", "carol", "dave", "erin", "José", "Zoë", "Łukasz", "李雷"]
JOBS = ["reindex", "cleanup-sessions", "send-digest", "rotate-keys", "sync-ledger"]

STACK_TRACE = """\
java.lang.IllegalStateException: ledger entry 88412 has no matching invoice
\tat com.example.billing.LedgerSync.reconcile(LedgerSync.java:214)
\tat com.example.billing.LedgerSync.run(LedgerSync.java:97)
\tat java.base/java.util.concurrent.Executors$RunnableAdapter.call(Executors.java:539)
\tat java.base/java.util.concurrent.FutureTask.run(FutureTask.java:264)
\tat java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:1136)
\tat java.base/java.lang.Thread.run(Thread.java:833)
Caused by: java.sql.SQLException: deadlock detected (SQLSTATE 40P01)
\tat org.postgresql.core.v3.QueryExecutorImpl.receiveErrorResponse(QueryExecutorImpl.java:2676)
\tat com.example.billing.LedgerDao.lockEntry(LedgerDao.java:61)
\t... 5 more
"""


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _line(rng: random.Random, when: datetime, seq: int) -> str:
    component = rng.choices(COMPONENTS, weights=WEIGHTS)[0]
    level = rng.choice(LEVELS)
    head = f"{_stamp(when)} {level:<5} [{component}] (worker-{rng.randint(1, 8)})"
    if component == "http.server":
        path = rng.choice(PATHS)
        if path.startswith("/api/"):
            path += f"/{rng.randint(1, 5000)}"
        return (
            f"{head} request done method={rng.choice(METHODS)} path={path} status={rng.choice(STATUSES)}"
            f" bytes={rng.randint(0, 90_000)} dur_ms={rng.expovariate(1 / 40):.1f}"
            f" req_id={rng.getrandbits(64):016x}"
        )
    if component == "db.pool":
        active, idle, waiting = rng.randint(0, 20), rng.randint(0, 10), rng.randint(0, 3)
        return f"{head} pool stats active={active} idle={idle} waiting={waiting} max=20"
    if component == "auth":
        user, outcome = rng.choice(USERS), rng.choice(["ok", "ok", "ok", "bad_password", "locked"])
        return f'{head} login user="{user}" result={outcome} ip=10.0.{rng.randint(0, 255)}.{seq % 256}'
    if component == "cache":
        hits = rng.randint(0, 10_000)
        misses, evicted = rng.randint(0, hits // 4 + 1), rng.randint(0, 50)
        return f"{head} cache sweep hits={hits} misses={misses} evicted={evicted}"
    if component == "scheduler":
        job, took, every = rng.choice(JOBS), rng.uniform(0.01, 30), rng.choice([60, 300, 3600])
        return f"{head} job {job} finished in {took:.3f}s next_run=+{every}s"
    if component == "billing":
        invoice, amount = rng.randint(10_000, 99_999), rng.uniform(1, 900)
        return f"{head} invoice {invoice} amount={amount:.2f} currency=EUR"
    return f"{head} queued mail to={rng.choice(USERS).lower()}@example.org template=digest"


def build() -> bytes:
    rng = random.Random(SEED)
    when = datetime(2024, 3, 5, 8, 0, 0)
    out = bytearray()
    seq = 0
    trace_at = 120  # line numbers where the edge cases go
    crlf_at = {40, 41, 42, 200}
    invalid_at = 160
    while len(out) < TARGET_SIZE:
        when += timedelta(milliseconds=rng.randint(1, 2500))
        seq += 1
        line = _line(rng, when, seq).encode("utf-8")
        if seq == invalid_at:  # one invalid UTF-8 byte, as a mangled user name in the wild
            head = f"{_stamp(when)} WARN  [auth] (worker-3) login user="
            line = head.encode() + b'"ren\xffe" result=unknown_user'
        out += line + (b"\r\n" if seq in crlf_at else b"\n")
        if seq == trace_at:
            head = f"{_stamp(when)} ERROR [billing] (worker-2)"
            out += f"{head} ledger sync failed job=sync-ledger attempt=3\n".encode()
            out += STACK_TRACE.encode()
    return bytes(out)


def main() -> None:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT
    output.parent.mkdir(parents=True, exist_ok=True)
    data = build()
    output.write_bytes(data)
    print(f"wrote {output} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
