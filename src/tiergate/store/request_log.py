"""The request log: one `RequestLogRecord` per request, written in batches off the hot path.

Design (the same trade-off as any access log): the request handler must never wait for the
database, so `RequestLogWriter.submit()` only appends the record to an in-memory deque. That is
O(1), allocation-free beyond the record itself, never awaits and never raises. A background
task turns queued records into positional rows already converted for the driver, and inserts
them in one transaction per batch, every `flush_interval_ms` or as soon as `batch_size` rows are
waiting: asyncpg's pipelined executemany on PostgreSQL; on a SQLite file, one worker-thread call
per batch with multi-row `VALUES` statements (`sqlite_sink.py` says why, with numbers).

Failure handling:
* Database unreachable / locked / table missing: the rows stay queued and the task retries
  with exponential backoff (from the flush interval up to `max_backoff_ms`), logging once when
  the outage starts and once when it ends.
* Queue full (`max_queue`, default 100k rows, i.e. a long outage under load): new records are
  dropped and counted in `dropped`; the oldest unwritten rows are kept.
* A row the database refuses (constraint violation, bad value): that batch is retried row by
  row and only the bad rows are discarded (counted in `rejected`), so one bad record cannot
  wedge the log. Inserts use ON CONFLICT (id) DO NOTHING, which makes a retried batch whose
  commit outcome was unknown harmless, and a duplicated request id a no-op.
* `close()` stops the task and writes everything still queued (retrying until its timeout),
  so nothing accepted is lost on a clean shutdown.

Bodies (`request_body`, `response_body`) are stored only if the gateway passes them, which it
does only when the operator enabled body logging. `key_id` is a key identifier (e.g. a hash
prefix), never a secret.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import sqlite3
from collections import deque
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import exc as sa_exc

from tiergate.store.sqlite_sink import COLUMNS, SQLiteSink

if TYPE_CHECKING:
    from tiergate.store.db import Store

log = logging.getLogger("tiergate.store")


@dataclass(slots=True)
class RequestLogRecord:
    id: str
    model_group: str
    deployment: str | None
    location: str | None
    residency: str | None
    privacy_level: str
    status_code: int
    latency_ms: float
    overhead_ms: float
    upstream_ms: float
    key_id: str | None = None
    team: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    tokens_estimated: bool = False
    cost_usd: Decimal | None = None
    ttft_ms: float | None = None
    error_code: str | None = None
    stream: bool = False
    fallbacks: int = 0
    attempts: list[dict[str, object]] = field(default_factory=list)
    request_body: str | None = None
    response_body: str | None = None
    task_class: str | None = None
    cache: str | None = None  # hit | semantic-hit | miss | bypass; None: no cache configured
    saved_usd: Decimal | None = None  # upstream cost a cache hit saved
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS


_COLUMNS = COLUMNS  # insert order: the table's column order (one definition, in sqlite_sink)


def driver_insert_sql(dialect: str) -> str:
    """A plain INSERT for the DBAPI's executemany: no per-row SQLAlchemy processing.

    Per-row SQLAlchemy bind processing cost ~20 µs a row under load (plus GIL contention with
    the serving loop); the driver's own executemany on pre-converted tuples costs ~4 µs.
    """
    cols = ", ".join(_COLUMNS)
    if dialect == "postgresql":
        marks = ", ".join(f"${i}" for i in range(1, len(_COLUMNS) + 1))
    else:
        marks = ", ".join("?" for _ in _COLUMNS)
    return f"INSERT INTO request_log ({cols}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING"


_ROW = operator.attrgetter(*_COLUMNS)  # every column is a RequestLogRecord field
_I_CREATED, _I_COST, _I_ESTIMATED, _I_STREAM, _I_ATTEMPTS, _I_SAVED = (
    _COLUMNS.index(c)
    for c in ("created_at", "cost_usd", "tokens_estimated", "stream", "attempts", "saved_usd")
)


def record_to_params(r: RequestLogRecord, dialect: str) -> tuple[Any, ...]:
    """Positional insert parameters for one record, converted the way the dialect stores them."""
    row = list(_ROW(r))
    created = row[_I_CREATED]
    created = created.replace(tzinfo=UTC) if created.tzinfo is None else created.astimezone(UTC)
    attempts = row[_I_ATTEMPTS]
    row[_I_ATTEMPTS] = (
        orjson.dumps(attempts, default=str, option=_JSON_OPTIONS).decode() if attempts else "[]"
    )
    if dialect == "sqlite":
        # The text form SQLAlchemy's SQLite DateTime reads back (always with microseconds).
        row[_I_CREATED] = created.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        cost = row[_I_COST]
        row[_I_COST] = float(cost) if cost is not None else None
        saved = row[_I_SAVED]
        row[_I_SAVED] = float(saved) if saved is not None else None
        row[_I_ESTIMATED] = int(bool(row[_I_ESTIMATED]))
        row[_I_STREAM] = int(bool(row[_I_STREAM]))
    else:
        row[_I_CREATED] = created
    return tuple(row)


_FIELDS = frozenset(RequestLogRecord.__dataclass_fields__)


def record_from_row(row: Mapping[str, Any]) -> RequestLogRecord:
    values = {k: v for k, v in row.items() if k in _FIELDS}  # ignore columns added later
    values["attempts"] = orjson.loads(values["attempts"] or "[]")
    return RequestLogRecord(**values)


def _is_bad_data(exc: BaseException) -> bool:
    """True if retrying cannot help because the rows themselves are the problem."""
    if isinstance(exc, (sa_exc.IntegrityError, sa_exc.DataError)):
        return True
    # The SQLite sink's stdlib errors: a constraint, or a value the driver cannot bind.
    if isinstance(exc, (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        # asyncpg reports bad values as plain DBAPIErrors; its SQLSTATE says what they are:
        # class 22 = data exception (overflow, bad input), 23 = integrity violation.
        orig = exc.orig
        state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if state is None and orig is not None:
            state = getattr(orig.__cause__, "sqlstate", None)
        return isinstance(state, str) and state[:2] in ("22", "23")
    # A bind parameter could not be converted (StatementError without a DBAPI error).
    return isinstance(exc, sa_exc.StatementError)


async def _wait(event: asyncio.Event, timeout: float) -> None:
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        pass


class RequestLogWriter:
    """Batches `RequestLogRecord`s into the database from a background task.

    Counters: `written` (rows in committed batches), `flushes` (committed transactions),
    `dropped` (not queued because the queue was full, or still unwritten when `close()` gave
    up), `rejected` (refused by the database), `failures` (failed write attempts).
    Use from one event loop; `submit()` is the only method the hot path calls.
    """

    def __init__(
        self,
        store: Store,
        *,
        flush_interval_ms: int = 200,
        batch_size: int = 500,
        max_queue: int = 100_000,
        max_backoff_ms: int = 10_000,
        write_timeout_s: float = 30.0,
    ) -> None:
        if batch_size < 1 or max_queue < 1 or flush_interval_ms <= 0:
            raise ValueError("batch_size, max_queue and flush_interval_ms must be positive")
        self._store = store
        self._interval = flush_interval_ms / 1000
        self._batch_size = batch_size
        self._max_queue = max_queue
        self._min_backoff = max(self._interval, 0.05)
        self._max_backoff = max(max_backoff_ms / 1000, self._min_backoff)
        self._write_timeout = write_timeout_s
        self._dialect = store.engine.dialect.name
        self._sql = driver_insert_sql(self._dialect)
        from tiergate.store.db import (  # db imports this module
            SQLITE_BUSY_TIMEOUT_S,
            sqlite_file,
        )

        path = sqlite_file(store.engine.url) if self._dialect == "sqlite" else None
        self._sqlite = SQLiteSink(path, SQLITE_BUSY_TIMEOUT_S) if path is not None else None
        self._queue: deque[RequestLogRecord] = deque()
        self._lock = asyncio.Lock()  # one writer at a time: the task, flush() or close()
        self._wake = asyncio.Event()  # a batch is full (or we are stopping)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._outage_failures = 0
        self._dropping = False
        self.written = 0
        self.flushes = 0
        self.dropped = 0
        self.rejected = 0
        self.failures = 0
        self.last_error: str | None = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        """Start the background flush task on the running loop (idempotent)."""
        if self._closed:
            raise RuntimeError("RequestLogWriter is closed")
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="tiergate-request-log"
            )

    def submit(self, record: RequestLogRecord) -> None:
        """Queue one record. Synchronous, O(1); never blocks, awaits or raises."""
        queue = self._queue
        if self._closed or len(queue) >= self._max_queue:
            self.dropped += 1
            if not self._dropping:
                self._dropping = True
                log.warning(
                    "request log: %s, dropping records (queued=%d)",
                    "writer closed" if self._closed else "queue full",
                    len(queue),
                )
            return
        queue.append(record)
        if len(queue) >= self._batch_size:
            self._wake.set()

    async def flush(self) -> None:
        """Write everything queued now. Raises if the database fails (rows stay queued)."""
        await self._write_queued()

    async def close(self, timeout: float = 10.0) -> None:
        """Stop the background task and write what is still queued.

        Retries a failing database until `timeout` seconds have passed; rows still unwritten
        then are counted in `dropped` and logged. Never raises.
        """
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._stop.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        backoff = self._min_backoff
        while self._queue:
            try:
                async with asyncio.timeout(max(deadline - loop.time(), 0.5)):
                    await self._write_queued()
            except Exception as exc:  # includes our own TimeoutError
                self._note_failure(exc)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                await asyncio.sleep(min(backoff, remaining))
                backoff = min(backoff * 2, self._max_backoff)
        self._closed = True
        async with self._lock:
            if self._queue:
                lost = len(self._queue)
                self._queue.clear()
                self.dropped += lost
                log.error("request log: database unavailable at shutdown, lost %d rows", lost)
        if self._sqlite is not None:
            self._sqlite.close()

    # -- background task -------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            if backoff:
                await _wait(self._stop, backoff)
            elif len(self._queue) < self._batch_size:
                await _wait(self._wake, self._interval)
            self._wake.clear()
            if self._stop.is_set() or not self._queue:
                continue
            try:
                await self._write_queued()
            except Exception as exc:
                self._note_failure(exc)
                backoff = min(max(backoff * 2, self._min_backoff), self._max_backoff)
            else:
                backoff = 0.0

    async def _write_queued(self) -> None:
        """Write the rows queued when called, batch by batch (one transaction per batch)."""
        async with self._lock:
            remaining = len(self._queue)
            while remaining > 0 and self._queue:
                n = min(remaining, self._batch_size, len(self._queue))
                try:
                    rows: list[tuple[Any, ...]] | None = [
                        record_to_params(r, self._dialect) for r in islice(self._queue, n)
                    ]
                except Exception:  # a malformed record: sort it out row by row
                    rows = None
                if rows is not None:
                    try:
                        await self._insert(rows)
                    except Exception as exc:
                        if not _is_bad_data(exc):
                            raise  # database trouble: keep everything, retry later
                        rows = None
                if rows is None:
                    await self._write_one_by_one(n)
                else:
                    for _ in range(n):
                        self._queue.popleft()
                    self.written += n
                    self.flushes += 1
                remaining -= n
            self._note_success()

    async def _write_one_by_one(self, n: int) -> None:
        for _ in range(n):
            record = self._queue[0]
            try:
                row = record_to_params(record, self._dialect)
            except Exception as exc:
                self._reject(record, exc)
                continue
            try:
                await self._insert([row])
            except Exception as exc:
                if not _is_bad_data(exc):
                    raise
                self._reject(record, exc)
            else:
                self._queue.popleft()
                self.written += 1
                self.flushes += 1

    def _reject(self, record: object, exc: Exception) -> None:
        self._queue.popleft()
        self.rejected += 1
        log.error(
            "request log: discarding row %r the database cannot store: %s",
            getattr(record, "id", None),
            f"{type(exc).__name__}: {exc}".splitlines()[0],
        )

    async def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        # The timeout keeps a hung connection (half-open TCP) from stalling the log forever;
        # it surfaces as TimeoutError and is retried like any outage.
        async with asyncio.timeout(self._write_timeout):
            if self._sqlite is not None:  # one thread call per batch (see sqlite_sink.py)
                await asyncio.to_thread(self._sqlite.insert, rows)
                return
            async with self._store.engine.begin() as conn:
                await conn.exec_driver_sql(self._sql, rows)  # asyncpg pipelines executemany

    def _note_failure(self, exc: Exception) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if self._outage_failures == 0:
            log.warning(
                "request log: write failed, keeping %d rows and retrying: %s",
                len(self._queue),
                self.last_error,
            )
        self._outage_failures += 1

    def _note_success(self) -> None:
        if self._outage_failures:
            log.warning(
                "request log: database writable again after %d failed attempts",
                self._outage_failures,
            )
        self._outage_failures = 0
        self._dropping = False
