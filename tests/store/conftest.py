"""Fixtures for the store tests: a database target per backend and a loopback TCP proxy.

`target` runs each test against SQLite (a file under tmp_path) and, when
TIERGATE_TEST_POSTGRES_URL is set, against PostgreSQL in a freshly created schema that is
dropped afterwards, so concurrent runs never see each other's tables.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

POSTGRES_ENV = "TIERGATE_TEST_POSTGRES_URL"
POSTGRES_SKIP = "TIERGATE_TEST_POSTGRES_URL not set: PostgreSQL tests did not run"

T = TypeVar("T")


def run_in_thread(fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on a private loop in another thread (leaves the test's
    event loop, and pytest-asyncio's, alone)."""
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        return ex.submit(lambda: asyncio.run(fn())).result()  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Target:
    backend: str  # "sqlite" | "postgres"
    url: str
    schema: str | None
    tmp_path: Path


def _drop_schema(url: str, schema: str) -> None:
    import asyncpg  # the async driver tiergate uses; the URL may name it

    from tiergate.store import normalize_url

    dsn = normalize_url(url).replace("postgresql+asyncpg://", "postgresql://", 1)

    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    run_in_thread(go)


def _postgres_target(tmp_path: Path) -> Iterator[Target]:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(POSTGRES_SKIP)
    schema = f"tg_test_{uuid.uuid4().hex[:16]}"
    try:
        yield Target("postgres", url, schema, tmp_path)
    finally:
        _drop_schema(url, schema)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Each test runs on SQLite and (if configured) on PostgreSQL in a throwaway schema."""
    if request.param == "sqlite":
        yield Target("sqlite", f"sqlite:///{tmp_path}/data/tiergate.db", None, tmp_path)
    else:
        yield from _postgres_target(tmp_path)


@pytest.fixture
def pg_target(tmp_path: Path) -> Iterator[Target]:
    """PostgreSQL only (a throwaway schema); skipped when TIERGATE_TEST_POSTGRES_URL is unset."""
    yield from _postgres_target(tmp_path)


class TcpProxy:
    """A loopback TCP forwarder we can start late: the 'database comes up later' switch."""

    def __init__(self, upstream_host: str, upstream_port: int, port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    w.close()
            self._tasks.discard(task)  # type: ignore[arg-type]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
