"""Database URLs, engines and the `Store` handle the rest of tiergate holds on to.

Operators write plain URLs (`sqlite:///data/tiergate.db`, `postgresql://user@host/db`); this
module maps them to SQLAlchemy's async drivers (aiosqlite, asyncpg) and builds engines with the
settings each backend needs to be shared by several gateway worker processes:

* SQLite: WAL journal (readers never block the writer), `busy_timeout` (a writer waits for
  another process's write instead of failing at once), `synchronous=NORMAL` (safe with WAL),
  foreign keys on. The sqlite3 driver's own transaction handling is switched off and SQLAlchemy
  emits BEGIN itself, so transactions (and DDL) really are transactional; a connection whose
  execution options hold `sqlite_begin="IMMEDIATE"` takes the write lock up front (migrations
  use this to serialise several processes starting at once).
* PostgreSQL: connections are pre-pinged (the gateway outlives database restarts); an optional
  `schema` puts every table (and Alembic's version table) in that schema via `search_path`.

`Store` owns the engine: `Store.open()` runs the migrations (unless told not to), `ping()` is
the readiness probe, `close()` disposes of the pool. Writing the request log is
`request_log.RequestLogWriter`'s job; `Store` only has the small read helpers tests and the CLI
use.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable
from pathlib import Path
from threading import Thread
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tiergate.store.models import request_log
from tiergate.store.request_log import RequestLogRecord, record_from_row

DEFAULT_URL = "sqlite:///data/tiergate.db"
SQLITE_BUSY_TIMEOUT_S = 10.0

_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _parse(url: str | URL) -> URL:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
        query = dict(parsed.query)
        if "sslmode" in query and "ssl" not in query:  # libpq spelling -> asyncpg's
            query["ssl"] = query.pop("sslmode")
            parsed = parsed.set(query=query)
        return parsed
    raise ValueError(
        f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:///PATH or "
        "postgresql://USER@HOST/DB"
    )


def normalize_url(url: str) -> str:
    """Map a plain database URL to its async-driver form (the password is kept).

    `sqlite:///x.db` -> `sqlite+aiosqlite:///x.db`; `postgresql://` and `postgres://` ->
    `postgresql+asyncpg://` (a libpq `sslmode=` becomes asyncpg's `ssl=`). A URL that already
    names a driver gets the async one for its backend. Other backends raise ValueError.
    """
    return _parse(url).render_as_string(hide_password=False)


def sqlite_file(url: str | URL) -> Path | None:
    """The database file of a SQLite URL, or None (not SQLite, in-memory, or a `file:` URI)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or parsed.query.get("uri"):
        return None
    return Path(database)


def check_schema(schema: str | None) -> str | None:
    if schema is not None and not _SCHEMA_RE.match(schema):
        raise ValueError(f"invalid schema name {schema!r}: use letters, digits and _")
    return schema


def make_engine(url: str, *, schema: str | None = None, **kwargs: Any) -> AsyncEngine:
    """An AsyncEngine for a plain or async URL, set up as the module docstring describes.

    `schema` (PostgreSQL only) sets `search_path` on every connection. Extra keyword arguments
    go to `create_async_engine` (e.g. `poolclass=NullPool`, `echo=True`).
    """
    parsed = _parse(url)
    check_schema(schema)
    if parsed.get_backend_name() == "sqlite":
        if schema is not None:
            raise ValueError("schema= is only supported for PostgreSQL")
        timeout = float(parsed.query.get("timeout", SQLITE_BUSY_TIMEOUT_S))  # type: ignore[arg-type]
        sqlite_args = {"async_creator_fn": _aiosqlite_connect, **kwargs.pop("connect_args", {})}
        engine = create_async_engine(parsed, connect_args=sqlite_args, **kwargs)
        _install_sqlite_hooks(engine, busy_timeout_ms=int(timeout * 1000),
                              wal=sqlite_file(parsed) is not None)
        return engine
    connect_args: dict[str, Any] = dict(kwargs.pop("connect_args", {}))
    if schema is not None:
        settings = dict(connect_args.get("server_settings", {}))
        settings["search_path"] = f'"{schema}"'
        connect_args["server_settings"] = settings
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(parsed, connect_args=connect_args, **kwargs)


def _aiosqlite_connect(*args: Any, **kwargs: Any) -> Awaitable[Any]:
    """aiosqlite.connect, minus a race when the file cannot be opened.

    On a failed open aiosqlite asks its worker thread to stop and has it report back to the
    event loop later; if the loop closes first (end of a test, shutdown) the thread dies with
    "Event loop is closed". Waiting for that thread (it only has to acknowledge) closes the gap.
    """
    import aiosqlite

    connection = aiosqlite.connect(*args, **kwargs)
    thread = connection if isinstance(connection, Thread) else getattr(connection, "_thread", None)
    if isinstance(thread, Thread):
        thread.daemon = True  # as SQLAlchemy's own aiosqlite adapter does

    async def connect() -> Any:
        try:
            return await connection
        except BaseException:
            if isinstance(thread, Thread) and thread.is_alive():
                thread.join(1.0)  # microseconds: it only closes and posts its "stopped" reply
            raise

    return connect()


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL (persistent, so usually already done).

    Two processes opening a brand-new file at once can get "database is locked" from the
    switch itself, which SQLite does not route through busy_timeout: retry briefly. This only
    happens on the first connections to a new file, so the short blocking sleep is harmless.
    """
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() == "wal":
        return
    for attempt in range(100):
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.fetchall()
            return
        except Exception as exc:
            if attempt == 99 or "locked" not in str(exc).lower():
                raise
            time.sleep(0.01 + 0.001 * attempt)


def _install_sqlite_hooks(engine: AsyncEngine, *, busy_timeout_ms: int, wal: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN (see _on_begin)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        if wal:
            _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin")
        connection.exec_driver_sql(f"BEGIN {mode}" if mode else "BEGIN")


class Store:
    """The database handle: one async engine (pool) per process."""

    def __init__(self, engine: AsyncEngine, *, schema: str | None = None) -> None:
        self.engine = engine
        self.schema = schema

    @classmethod
    async def open(
        cls, url: str, *, migrate: bool = True, schema: str | None = None, **engine_kwargs: Any
    ) -> Store:
        """Connect (lazily) and, if `migrate`, bring the schema to the newest revision.

        With `migrate=False` nothing touches the database here: the caller (e.g. a worker whose
        parent already ran `run_migrations`) expects it to exist, and the SQLite directory is
        not created.
        """
        engine = make_engine(url, schema=schema, **engine_kwargs)
        if migrate:
            from tiergate.store.migrate import migrate_engine

            try:
                await migrate_engine(engine, schema=schema)
            except BaseException:
                await engine.dispose()
                raise
        return cls(engine, schema=schema)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def ping(self, timeout: float = 2.0) -> bool:
        """Readiness: can we run SELECT 1 within `timeout` seconds? Never raises."""
        try:
            async with asyncio.timeout(timeout):
                async with self.engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
            return True
        except Exception:
            return False

    async def close(self) -> None:
        """Dispose of the connection pool (close the `RequestLogWriter` first)."""
        await self.engine.dispose()

    async def recent_requests(self, limit: int = 50) -> list[RequestLogRecord]:
        """The newest `limit` request log rows, newest first."""
        query = (
            sa.select(request_log)
            .order_by(request_log.c.created_at.desc(), request_log.c.id.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [record_from_row(dict(row)) for row in rows]

    async def count_requests(self) -> int:
        async with self.engine.connect() as conn:
            count = await conn.scalar(sa.select(sa.func.count()).select_from(request_log))
        return int(count or 0)
