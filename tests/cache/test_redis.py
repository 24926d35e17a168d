"""The Redis backend: namespaced keys, expiry by Redis, the LRU bound, sharing between gateway
processes, and Redis unreachable or stopped mid-test (misses, counted, never an exception)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

import tiergate.cache as cache_mod
from tiergate.cache import CacheUnavailable, ResponseCache
from tiergate.cache.admin import admin_clear, admin_stats
from tiergate.cache.keys import partition

from .conftest import COST, answer, chat, config, redis_cfg

Closing = Callable[[ResponseCache], ResponseCache]

PUB = partition("team:a", "PUBLIC")
SRC = str(Path(__file__).resolve().parents[2] / "src")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_keys_are_namespaced_and_expire(redis_url: str, redis_prefix: str, closing: Closing) -> None:
    cache = closing(ResponseCache.from_settings(config(backend="redis", ttl_s=30), redis_cfg(redis_url, redis_prefix)))
    await cache.store("faq", PUB, chat(), answer(), COST)
    client = cache.backend.client  # type: ignore[attr-defined]
    keys = sorted([k.decode() async for k in client.scan_iter(match=f"{redis_prefix}:*")])
    assert keys and all(k.startswith(f"{redis_prefix}:cache:") for k in keys)
    entry = [k for k in keys if ":e:" in k]
    assert len(entry) == 1
    ttl = await client.pttl(entry[0])
    assert 0 < ttl <= 30_000


async def test_redis_ttl_is_redis_expiry(redis_url: str, redis_prefix: str, closing: Closing) -> None:
    cache = closing(ResponseCache.from_settings(
        config(backend="redis", group_ttl_s={"faq": 0.3}), redis_cfg(redis_url, redis_prefix)
    ))
    await cache.store("faq", PUB, chat(), answer(), COST)
    assert await cache.lookup("faq", PUB, chat()) is not None
    await asyncio.sleep(0.45)
    assert await cache.lookup("faq", PUB, chat()) is None
    assert (await cache.stats(PUB)).partitions[0].entries == 0


async def test_redis_lru_bound(redis_url: str, redis_prefix: str, closing: Closing) -> None:
    cache = closing(ResponseCache.from_settings(config(backend="redis", max_entries=3), redis_cfg(redis_url, redis_prefix)))
    for q in ("a", "b", "c"):
        await cache.store("faq", PUB, chat(q), answer(q), COST)
        await asyncio.sleep(0.002)
    assert await cache.lookup("faq", PUB, chat("a")) is not None
    await asyncio.sleep(0.002)
    await cache.store("faq", partition("team:b", "PUBLIC"), chat("d"), answer("d"), COST)  # bound is global
    assert await cache.lookup("faq", PUB, chat("b")) is None
    assert await cache.lookup("faq", PUB, chat("a")) is not None
    assert await cache.lookup("faq", PUB, chat("c")) is not None
    assert (await cache.stats()).totals().entries == 3


async def test_two_caches_share_one_redis(redis_url: str, redis_prefix: str, closing: Closing) -> None:
    rc = redis_cfg(redis_url, redis_prefix)
    one = closing(ResponseCache.from_settings(config(backend="redis"), rc))
    two = closing(ResponseCache.from_settings(config(backend="redis"), rc))
    assert await one.lookup("faq", PUB, chat()) is None
    await one.store("faq", PUB, chat(), answer("shared"), COST)
    hit = await two.lookup("faq", PUB, chat())
    assert hit is not None and b"shared" in hit.response
    assert await two.lookup("faq", partition("team:b", "PUBLIC"), chat()) is None
    st = await two.stats(PUB)
    assert st.partitions[0].hits == 1 and st.partitions[0].misses == 1  # both processes' counts


_CHILD = textwrap.dedent(
    """
    import asyncio, sys, orjson
    from decimal import Decimal
    from tiergate.cache import CacheConfig, ResponseCache
    from tiergate.config.models import RedisConfig

    async def main():
        url, prefix, op, text = sys.argv[1:5]
        cache = ResponseCache.from_settings(
            CacheConfig(enabled=True, backend="redis"), RedisConfig(url=url, prefix=prefix), embedder=None)
        body = {"model": "faq", "messages": [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": text}], "temperature": 0}
        part = "team:a|PUBLIC"
        hit = await cache.lookup("faq", part, body)
        out = {"hit": None if hit is None else hit.response.decode()}
        if op == "store" and hit is None:
            out["stored"] = await cache.store("faq", part, body, b'{"answer": "from the child"}', Decimal("0.5"))
        await cache.close()
        print(orjson.dumps(out).decode())

    asyncio.run(main())
    """
)


def child(redis_url: str, redis_prefix: str, op: str, text: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, redis_url, redis_prefix, op, text],
        capture_output=True, timeout=60, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return orjson.loads(proc.stdout.strip().splitlines()[-1])


async def test_a_miss_in_one_process_is_a_hit_in_another(redis_url: str, redis_prefix: str, closing: Closing) -> None:
    cache = closing(ResponseCache.from_settings(config(backend="redis"), redis_cfg(redis_url, redis_prefix)))
    # Here: miss, store; the child process: hit.
    assert await cache.lookup("faq", PUB, chat("first question")) is None
    await cache.store("faq", PUB, chat("first question"), answer("stored by the parent"), COST)
    out = await asyncio.to_thread(child, redis_url, redis_prefix, "lookup", "first question")
    assert out["hit"] is not None and "stored by the parent" in str(out["hit"])
    # The child: miss, store; here: hit.
    out = await asyncio.to_thread(child, redis_url, redis_prefix, "store", "second question")
    assert out["hit"] is None and out["stored"] is True
    hit = await cache.lookup("faq", PUB, chat("second question"))
    assert hit is not None and orjson.loads(hit.response) == {"answer": "from the child"}


async def test_unreachable_redis_is_a_counted_miss(monkeypatch: pytest.MonkeyPatch, closing: Closing) -> None:
    from tiergate.config.models import RedisConfig

    monkeypatch.setattr(cache_mod, "_BACKOFF_MIN_S", 0.0)
    url = f"redis://127.0.0.1:{free_port()}/0"
    cache = closing(ResponseCache.from_settings(config(backend="redis"), RedisConfig(url=url, prefix="tgtest-down")))
    started = time.monotonic()
    assert await cache.lookup("faq", PUB, chat()) is None
    assert await cache.store("faq", PUB, chat(), answer(), COST) is False
    assert await cache.lookup("faq", PUB, chat()) is None
    assert time.monotonic() - started < 5
    st = await cache.stats()
    assert st.errors >= 3 and st.unavailable and st.partitions == []
    with pytest.raises(CacheUnavailable):
        await cache.clear()
    assert (await admin_stats(cache))[0] == 503
    assert (await admin_clear(cache))[0] == 503
    assert cache.metrics()["errors"] >= 5


async def test_after_a_failure_the_backend_is_left_alone_for_a_while(closing: Closing) -> None:
    from tiergate.config.models import RedisConfig

    url = f"redis://127.0.0.1:{free_port()}/0"
    cache = closing(ResponseCache.from_settings(config(backend="redis"), RedisConfig(url=url, prefix="tgtest-down")))
    calls = 0
    original = cache.backend.get

    async def counting(*a: object, **kw: object) -> object:
        nonlocal calls
        calls += 1
        return await original(*a, **kw)  # type: ignore[arg-type]

    cache.backend.get = counting  # type: ignore[method-assign]
    for _ in range(20):
        assert await cache.lookup("faq", PUB, chat()) is None
    assert calls == 1  # one failure, then misses without asking Redis until the back-off ends
    assert cache.metrics()["errors"] == 20


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, int, Callable[[int], bool]]]:
    """A redis-server of this test's own (so it can be stopped); skipped without the binary."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed: the stop-mid-test case did not run")
    import redis as sync_redis

    procs: list[subprocess.Popen[bytes]] = []

    def start(port: int) -> bool:
        """Whether a redis-server of ours now answers on `port` (not some other listener)."""
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                client = sync_redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
                try:
                    return int(client.info("server")["process_id"]) == proc.pid
                finally:
                    client.close()
            except (OSError, sync_redis.RedisError):
                time.sleep(0.05)
        return False

    for _ in range(5):
        port = free_port()
        if start(port):
            break
    else:
        raise RuntimeError("private redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0", port, start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


def stop_server(port: int) -> None:
    import redis as sync_redis

    client = sync_redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
    try:
        client.shutdown(nosave=True)
    except (OSError, sync_redis.RedisError):
        pass  # the connection closes as the server stops
    finally:
        client.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            time.sleep(0.05)
        except OSError:
            return
    raise RuntimeError("private redis-server did not stop")


async def test_redis_stopped_mid_test(
    private_redis: tuple[str, int, Callable[[int], bool]], monkeypatch: pytest.MonkeyPatch, closing: Closing
) -> None:
    from tiergate.config.models import RedisConfig

    monkeypatch.setattr(cache_mod, "_BACKOFF_MIN_S", 0.05)
    url, port, start = private_redis
    cache = closing(ResponseCache.from_settings(config(backend="redis"), RedisConfig(url=url, prefix="tgtest", timeout_s=0.5)))
    await cache.store("faq", PUB, chat(), answer("before"), COST)
    assert (await cache.lookup("faq", PUB, chat())) is not None

    # Stop the server: every request still gets an answer (a miss), quickly, with errors counted.
    stop_server(port)
    started = time.monotonic()
    for i in range(10):
        assert await cache.lookup("faq", PUB, chat()) is None
        assert await cache.store("faq", PUB, chat(f"q{i}"), answer(), COST) is False
        await asyncio.sleep(0.01)
    assert time.monotonic() - started < 5
    assert cache.metrics()["errors"] >= 10

    # Started again: after the back-off the cache is used again.
    if not await asyncio.to_thread(start, port):
        pytest.skip("could not restart redis-server on the same port")
    await asyncio.sleep(0.3)
    for _ in range(50):
        if await cache.store("faq", PUB, chat("after"), answer("after"), COST):
            break
        await asyncio.sleep(0.1)
    hit = await cache.lookup("faq", PUB, chat("after"))
    assert hit is not None and b"after" in hit.response
