"""The SQLite backend: answers in a file of their own, kept across restarts.

Every statement runs on one worker thread with its own stdlib `sqlite3` connection (WAL,
`synchronous=NORMAL`), so the event loop never waits on the disk, and calls are serialised
without locks. Several gateway processes may share the file (WAL lets readers and one writer
work at once; `busy_timeout` covers the rest).

Reads stay reads: the LRU time of a hit and the hit/miss counters are collected on the worker
thread and written in one transaction every second (or when statistics are asked for, or at
close), not once per lookup. Entries beyond `max_entries` are evicted (least recently used
first) by the store that passes the bound; expired entries are swept every `MAINTAIN_EVERY`
stores, and semantic rows whose answer is gone every sixteen sweeps.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Callable, TypeVar

from .base import Entry, PartitionStats, SemRecord, StatField

T = TypeVar("T")

SCHEMA_VERSION = 1
MAINTAIN_EVERY = 64  # stores between expiry sweeps (eviction runs as soon as the bound is passed)
FLUSH_EVERY_S = 1.0
SEM_BATCH = 5000
_STAT_FIELDS = ("hits", "semantic_hits", "misses", "stores", "saved_nano")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache_entries (
    partition TEXT NOT NULL,
    key TEXT NOT NULL,
    grp TEXT NOT NULL,
    response BLOB NOT NULL,
    cost_nano INTEGER NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    accessed_at REAL NOT NULL,
    PRIMARY KEY (partition, key)
);
CREATE INDEX IF NOT EXISTS ix_cache_entries_accessed ON cache_entries (accessed_at);
CREATE INDEX IF NOT EXISTS ix_cache_entries_expires ON cache_entries (expires_at);
CREATE TABLE IF NOT EXISTS cache_stats (
    partition TEXT PRIMARY KEY,
    hits INTEGER NOT NULL DEFAULT 0,
    semantic_hits INTEGER NOT NULL DEFAULT 0,
    misses INTEGER NOT NULL DEFAULT 0,
    stores INTEGER NOT NULL DEFAULT 0,
    saved_nano INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS cache_semantic (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    partition TEXT NOT NULL,
    space TEXT NOT NULL,
    key TEXT NOT NULL,
    bucket TEXT NOT NULL,
    tail TEXT NOT NULL,
    vector BLOB NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_cache_semantic_space ON cache_semantic (partition, space, id);
CREATE INDEX IF NOT EXISTS ix_cache_semantic_key ON cache_semantic (partition, key);
"""


class SQLiteBackend:
    name = "sqlite"
    shares_semantic = True

    def __init__(self, path: str | Path, max_entries: int, *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.max_entries = max_entries
        self._timeout = busy_timeout_s
        self._ex = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tiergate-cache-sqlite")
        # Worker-thread state only.
        self._conn: sqlite3.Connection | None = None
        self._touch: dict[tuple[str, str], float] = {}
        self._deltas: dict[str, list[int]] = {}
        self._flushed_at = 0.0
        self._puts = 0
        self._count = -1  # entries in the file as of the last maintenance, plus stores since
        self._closed = False

    # ------------------------------------------------------------------ worker thread
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._ex, partial(fn, *args))

    def _db(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                conn.close()
                raise sqlite3.DatabaseError(f"{self.path}: cache schema {version} is newer than this tiergate's")
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._conn = conn
        return conn

    def _delta(self, partition: str, index: int, n: int) -> None:
        d = self._deltas.get(partition)
        if d is None:
            d = self._deltas[partition] = [0, 0, 0, 0, 0]
        d[index] += n

    def _flush(self, conn: sqlite3.Connection, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._flushed_at < FLUSH_EVERY_S:
            return
        self._flushed_at = now
        if not self._touch and not self._deltas:
            return
        touch, self._touch = self._touch, {}
        deltas, self._deltas = self._deltas, {}
        conn.execute("BEGIN IMMEDIATE")
        try:
            if touch:
                conn.executemany(
                    "UPDATE cache_entries SET accessed_at = ? WHERE partition = ? AND key = ? AND accessed_at < ?",
                    [(t, p, k, t) for (p, k), t in touch.items()],
                )
            if deltas:
                conn.executemany(
                    "INSERT INTO cache_stats (partition, hits, semantic_hits, misses, stores, saved_nano) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (partition) DO UPDATE SET "
                    "hits = hits + excluded.hits, semantic_hits = semantic_hits + excluded.semantic_hits, "
                    "misses = misses + excluded.misses, stores = stores + excluded.stores, "
                    "saved_nano = saved_nano + excluded.saved_nano",
                    [(p, *d) for p, d in deltas.items()],
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _get(self, partition: str, key: str, now: float, count: bool) -> Entry | None:
        conn = self._db()
        row = conn.execute(
            "SELECT response, grp, created_at, expires_at, cost_nano FROM cache_entries "
            "WHERE partition = ? AND key = ? AND expires_at > ?",
            (partition, key, now),
        ).fetchone()
        entry = None if row is None else Entry(row[0], row[1], row[2], row[3], row[4])
        if count:
            if entry is None:
                self._delta(partition, 2, 1)
            else:
                self._delta(partition, 0, 1)
                self._delta(partition, 4, entry.cost_nano)
        if entry is not None:
            self._touch[(partition, key)] = now
        self._flush(conn)
        return entry

    def _put(self, partition: str, key: str, e: Entry, now: float) -> None:
        conn = self._db()
        conn.execute(
            "INSERT OR REPLACE INTO cache_entries "
            "(partition, key, grp, response, cost_nano, created_at, expires_at, accessed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (partition, key, e.group, e.response, e.cost_nano, e.created_at, e.expires_at, now),
        )
        self._delta(partition, 3, 1)
        self._puts += 1
        if self._count >= 0:
            self._count += 1
        if self._count < 0 or self._count > self.max_entries or self._puts % MAINTAIN_EVERY == 0:
            self._maintain(conn, now)
        self._flush(conn)

    def _maintain(self, conn: sqlite3.Connection, now: float) -> None:
        self._flush(conn, force=True)  # hits' access times first: they decide what is evicted
        conn.execute("DELETE FROM cache_entries WHERE expires_at <= ?", (now,))
        n = conn.execute("SELECT COUNT(*) FROM cache_entries").fetchone()[0]
        if n > self.max_entries:
            conn.execute(
                "DELETE FROM cache_entries WHERE rowid IN "
                "(SELECT rowid FROM cache_entries ORDER BY accessed_at, rowid LIMIT ?)",
                (n - self.max_entries,),
            )
            n = self.max_entries
        self._count = n
        if self._puts % (MAINTAIN_EVERY * 16) == 1:
            conn.execute(
                "DELETE FROM cache_semantic WHERE expires_at <= ? OR NOT EXISTS (SELECT 1 FROM cache_entries e "
                "WHERE e.partition = cache_semantic.partition AND e.key = cache_semantic.key)",
                (now,),
            )

    def _record(self, partition: str, what: StatField, saved_nano: int) -> None:
        self._delta(partition, _STAT_FIELDS.index(what), 1)
        if saved_nano:
            self._delta(partition, 4, saved_nano)
        self._flush(self._db())

    def _sem_add(self, partition: str, space: str, r: SemRecord) -> None:
        self._db().execute(
            "INSERT INTO cache_semantic (partition, space, key, bucket, tail, vector, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (partition, space, r.key, r.bucket, r.tail, r.vector, r.expires_at),
        )

    def _sem_since(self, partition: str, space: str, cursor: str, now: float) -> tuple[list[SemRecord], str]:
        last = int(cursor or 0)
        rows = self._db().execute(
            "SELECT id, key, bucket, tail, vector, expires_at FROM cache_semantic "
            "WHERE partition = ? AND space = ? AND id > ? ORDER BY id",
            (partition, space, last),
        ).fetchall()
        if rows:
            last = rows[-1][0]
        return [SemRecord(r[1], r[2], r[3], r[4], r[5]) for r in rows if r[5] > now], str(last)

    def _stats(self, partition: str | None, now: float) -> list[PartitionStats]:
        conn = self._db()
        self._flush(conn, force=True)
        where, args = ("WHERE partition = ?", (partition,)) if partition is not None else ("", ())
        out: dict[str, PartitionStats] = {}
        for p, *vals in conn.execute(f"SELECT partition, {', '.join(_STAT_FIELDS)} FROM cache_stats {where}", args):
            out[p] = PartitionStats(p, 0, *vals)
        live = "expires_at > ?" + (" AND partition = ?" if partition is not None else "")
        for p, n in conn.execute(
            f"SELECT partition, COUNT(*) FROM cache_entries WHERE {live} GROUP BY partition", (now, *args)
        ):
            out.setdefault(p, PartitionStats(p)).entries = n
        return list(out.values())

    def _clear(self, partition: str | None) -> int:
        conn = self._db()
        self._flush(conn, force=True)
        conn.execute("BEGIN IMMEDIATE")
        try:
            if partition is None:
                n = conn.execute("DELETE FROM cache_entries").rowcount
                conn.execute("DELETE FROM cache_semantic")
            else:
                n = conn.execute("DELETE FROM cache_entries WHERE partition = ?", (partition,)).rowcount
                conn.execute("DELETE FROM cache_semantic WHERE partition = ?", (partition,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._count = -1
        return n

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._flush(self._conn, force=True)
            finally:
                self._conn.close()
                self._conn = None

    # ------------------------------------------------------------------ Backend
    async def get(self, partition: str, key: str, now: float, *, count: bool = True) -> Entry | None:
        return await self._run(self._get, partition, key, now, count)

    async def put(self, partition: str, key: str, entry: Entry, now: float) -> None:
        await self._run(self._put, partition, key, entry, now)

    async def record(self, partition: str, what: StatField, saved_nano: int = 0) -> None:
        await self._run(self._record, partition, what, saved_nano)

    async def sem_add(self, partition: str, space: str, rec: SemRecord) -> None:
        await self._run(self._sem_add, partition, space, rec)

    async def sem_since(self, partition: str, space: str, cursor: str, now: float) -> tuple[list[SemRecord], str]:
        return await self._run(self._sem_since, partition, space, cursor, now)

    async def stats(self, partition: str | None, now: float) -> list[PartitionStats]:
        return await self._run(self._stats, partition, now)

    async def clear(self, partition: str | None) -> int:
        return await self._run(self._clear, partition)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._run(self._close)
        finally:
            self._ex.shutdown(wait=False)
