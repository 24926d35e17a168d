"""The request log's SQLite writer: one call on a worker thread per batch.

Why not the async engine (aiosqlite) here: every statement it runs is a round trip between the
serving event loop and its thread, and every `sqlite3_step` hands the GIL to and from the busy
serving thread (each hand-off can wait the interpreter's 5 ms switch interval). Under load that
capped the log at ~1,700 rows/s on a gateway answering ~3,000 requests/s, so the queue, and the
process, grew without bound. Here a whole batch (BEGIN, a few multi-row INSERTs of fixed sizes,
COMMIT) runs in one thread call, on a stdlib `sqlite3` connection kept for the purpose.
Migrations and reads still go through SQLAlchemy.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from pathlib import Path
from typing import Any

from tiergate.store.models import request_log

COLUMNS: tuple[str, ...] = tuple(c.name for c in request_log.columns)

# Multi-row statements come in a few fixed sizes only: the sqlite3 module caches each distinct
# statement it prepared, and one per batch length (hundreds of rows x 24 columns each) grew the
# worker by ~50 MB. SQLite allows 32,766 bound parameters since 3.32 (999 before).
CHUNKS: tuple[int, ...] = (
    (1024, 256, 64, 16, 4, 1) if sqlite3.sqlite_version_info >= (3, 32, 0) else (32, 8, 1)
)


def chunks(n: int) -> list[tuple[int, int]]:
    """(start, length) slices covering n rows with the fixed statement sizes, largest first."""
    out: list[tuple[int, int]] = []
    start = 0
    for size in CHUNKS:
        while n - start >= size:
            out.append((start, size))
            start += size
    return out


@functools.lru_cache(maxsize=len(CHUNKS))
def multirow_sql(n: int) -> str:
    one = "(" + ", ".join("?" for _ in COLUMNS) + ")"
    return (
        f"INSERT INTO request_log ({', '.join(COLUMNS)}) VALUES "
        + ", ".join([one] * n)
        + " ON CONFLICT (id) DO NOTHING"
    )


class SQLiteSink:
    """Inserts pre-converted request-log rows into a SQLite file, one transaction per call."""

    def __init__(self, path: Path, busy_timeout_s: float) -> None:
        self._path = path
        self._timeout = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False,
            cached_statements=len(CHUNKS) + 4,
        )
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def insert(self, rows: list[tuple[Any, ...]]) -> None:
        """Write all rows in one transaction (blocking: call it from a worker thread)."""
        with self._lock:
            conn = self._conn or self._connect()
            self._conn = conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                for start, size in chunks(len(rows)):
                    params = [v for row in rows[start : start + size] for v in row]
                    conn.execute(multirow_sql(size), params)
                conn.execute("COMMIT")
            except BaseException:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    self.close_locked()  # connection in a bad state: reopen next time
                raise

    def close_locked(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        with self._lock:
            self.close_locked()
