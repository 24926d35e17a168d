"""The ResponseCache on each backend: hits without upstream calls, partitions, LRU and TTL,
statistics, clearing, persistence across restarts, and the admin functions."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from tiergate.cache import CacheHit, ResponseCache
from tiergate.cache.admin import admin_clear, admin_stats
from tiergate.cache.keys import exact_key, partition, plan

from .conftest import COST, Clock, answer, chat, config

Closing = Callable[[ResponseCache], ResponseCache]
PUB = partition("team:a", "PUBLIC")


class Upstream:
    """A fake upstream: counts calls, answers with the question echoed."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, body: dict[str, Any]) -> bytes:
        self.calls += 1
        return answer(f"answer to {body['messages'][-1]['content']}")


async def serve(cache: ResponseCache, upstream: Upstream, body: dict[str, Any], part: str = PUB,
                headers: dict[str, str] | None = None) -> tuple[bytes, str]:
    """What the pipeline does: plan, look up, call the upstream on a miss, store."""
    p = plan(cache.cfg, body, part.rsplit("|", 1)[1], headers)
    if p.lookup:
        hit = await cache.lookup("faq", part, body, semantic=p.semantic)
        if hit is not None:
            return hit.response, hit.kind
    response = await upstream(body)
    if p.store:
        await cache.store("faq", part, body, response, COST, semantic=p.semantic)
    return response, p.status or "miss"


async def test_hit_returns_the_same_content_with_no_upstream_call(any_cache: ResponseCache) -> None:
    up = Upstream()
    first, status = await serve(any_cache, up, chat())
    assert status == "miss" and up.calls == 1
    second, status = await serve(any_cache, up, chat(user="someone", stream=False))
    assert status == "hit"
    assert second == first
    assert up.calls == 1


async def test_hit_details(any_cache: ResponseCache, clock: Clock) -> None:
    await any_cache.store("faq", PUB, chat(), answer(), Decimal("0.0042"))
    clock.advance(5)
    hit = await any_cache.lookup("faq", PUB, chat())
    assert isinstance(hit, CacheHit)
    assert hit.kind == "hit" and hit.similarity is None
    assert hit.saved_usd == Decimal("0.0042")
    assert hit.created_at == clock.t - 5
    assert hit.key == exact_key("faq", chat())
    assert hit.headers(now=clock.t) == {"x-tiergate-cache": "hit", "age": "5"}


async def test_another_tenant_or_privacy_level_misses(any_cache: ResponseCache) -> None:
    up = Upstream()
    await serve(any_cache, up, chat())
    assert (await serve(any_cache, up, chat()))[1] == "hit"
    for other in (partition("team:b", "PUBLIC"), partition("team:a", "SENSITIVE"), partition(None, "PUBLIC")):
        assert await any_cache.lookup("faq", other, chat()) is None
    assert await any_cache.lookup("other-group", PUB, chat()) is None
    assert up.calls == 1


async def test_private_requests_are_not_cached_unless_enabled(tmp_path: Path) -> None:
    up = Upstream()
    cache = ResponseCache.from_settings(config(), None)
    part = partition("team:a", "PRIVATE")
    assert (await serve(cache, up, chat(), part))[1] == "bypass"
    assert (await serve(cache, up, chat(), part))[1] == "bypass"
    assert up.calls == 2
    allowed = ResponseCache.from_settings(config(private=True), None)
    await serve(allowed, up, chat(), part)
    assert (await serve(allowed, up, chat(), part))[1] == "hit"


async def test_bypass_refresh_and_nonzero_temperature(any_cache: ResponseCache) -> None:
    up = Upstream()
    await serve(any_cache, up, chat())
    assert (await serve(any_cache, up, chat(), headers={"x-tiergate-cache": "bypass"}))[1] == "bypass"
    assert (await serve(any_cache, up, chat(), headers={"Cache-Control": "no-cache"}))[1] == "bypass"
    assert up.calls == 3
    assert (await serve(any_cache, up, chat()))[1] == "hit"
    assert (await serve(any_cache, up, chat(temperature=0.8)))[1] == "bypass"
    assert (await serve(any_cache, up, chat(temperature=0.8)))[1] == "bypass"
    assert up.calls == 5


async def test_refresh_replaces_the_answer(any_cache: ResponseCache) -> None:
    await any_cache.store("faq", PUB, chat(), answer("old"), COST)
    await any_cache.store("faq", PUB, chat(), answer("new"), COST)
    hit = await any_cache.lookup("faq", PUB, chat())
    assert hit is not None and orjson.loads(hit.response)["choices"][0]["message"]["content"] == "new"


async def test_ttl_per_group(tmp_path: Path, clock: Clock) -> None:
    cache = ResponseCache.from_settings(config(ttl_s=60, group_ttl_s={"faq": 86_400}), None, clock=clock)
    await cache.store("faq", PUB, chat(), answer(), COST)
    await cache.store("chat", PUB, chat(), answer(), COST)
    clock.advance(61)
    assert await cache.lookup("chat", PUB, chat()) is None
    assert await cache.lookup("faq", PUB, chat()) is not None
    clock.advance(86_400)
    assert await cache.lookup("faq", PUB, chat()) is None


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_ttl_on_each_backend(backend: str, tmp_path: Path, clock: Clock, closing: Closing) -> None:
    """(Redis expires keys on its own clock: test_redis.py::test_redis_ttl_is_redis_expiry.)"""
    cache = closing(ResponseCache.from_settings(config(backend=backend, sqlite_path=str(tmp_path / "c.db")), None, clock=clock))
    await cache.store("faq", PUB, chat(), answer(), COST)
    clock.advance(cache.cfg.ttl_s - 1)
    assert await cache.lookup("faq", PUB, chat()) is not None
    clock.advance(2)
    assert await cache.lookup("faq", PUB, chat()) is None


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_lru_eviction(backend: str, tmp_path: Path, clock: Clock, closing: Closing) -> None:
    cache = closing(ResponseCache.from_settings(
        config(backend=backend, max_entries=3, sqlite_path=str(tmp_path / "c.db")), None, clock=clock
    ))
    for q in ("a", "b", "c"):
        clock.advance(1)
        await cache.store("faq", PUB, chat(q), answer(q), COST)
    clock.advance(1)
    assert await cache.lookup("faq", PUB, chat("a")) is not None  # a is now the most recent
    clock.advance(1)
    await cache.store("faq", PUB, chat("d"), answer("d"), COST)  # evicts b, the least recent
    assert await cache.lookup("faq", PUB, chat("b")) is None
    for q in ("a", "c", "d"):
        assert await cache.lookup("faq", PUB, chat(q)) is not None, q
    st = await cache.stats()
    assert st.totals().entries == 3


async def test_memory_is_bounded_over_partitions(clock: Clock) -> None:
    cache = ResponseCache.from_settings(config(max_entries=10), None, clock=clock)
    for i in range(50):
        await cache.store("faq", partition(f"team:{i % 5}", "PUBLIC"), chat(str(i)), answer(), COST)
    st = await cache.stats()
    assert st.totals().entries == 10
    assert sum(p.entries for p in st.partitions) == 10


async def test_max_entry_bytes() -> None:
    cache = ResponseCache.from_settings(config(max_entry_bytes=100), None)
    assert not await cache.store("faq", PUB, chat(), answer("x" * 200), COST)
    assert await cache.lookup("faq", PUB, chat()) is None


async def test_disabled_cache_does_nothing() -> None:
    cache = ResponseCache.from_settings(config().model_copy(update={"enabled": False}), None)
    assert not await cache.store("faq", PUB, chat(), answer(), COST)
    assert await cache.lookup("faq", PUB, chat()) is None


async def test_stats_and_clear(any_cache: ResponseCache) -> None:
    other = partition("team:b", "PUBLIC")
    up = Upstream()
    await serve(any_cache, up, chat("q1"))
    await serve(any_cache, up, chat("q1"))
    await serve(any_cache, up, chat("q1"))
    await serve(any_cache, up, chat("q2"))
    await serve(any_cache, up, chat("q1"), other)
    st = await any_cache.stats()
    by = {p.partition: p for p in st.partitions}
    assert by[PUB].entries == 2 and by[PUB].hits == 2 and by[PUB].misses == 2 and by[PUB].stores == 2
    assert by[PUB].saved_usd == 2 * COST
    assert by[other].entries == 1 and by[other].misses == 1 and by[other].hits == 0
    totals = st.totals()
    assert totals.entries == 3 and totals.hits == 2 and totals.misses == 3
    d = st.to_dict()
    assert d["backend"] == any_cache.backend.name and d["totals"]["saved_usd"] == str(2 * COST)
    one = await any_cache.stats(other)
    assert [p.partition for p in one.partitions] == [other]

    assert await any_cache.clear(PUB) == 2
    assert await any_cache.lookup("faq", PUB, chat("q1")) is None
    assert await any_cache.lookup("faq", other, chat("q1")) is not None
    st = await any_cache.stats()
    by = {p.partition: p for p in st.partitions}
    assert by[PUB].entries == 0 and by[PUB].hits == 2  # counters are kept
    assert await any_cache.clear() == 1
    assert (await any_cache.stats()).totals().entries == 0


async def test_process_counters(any_cache: ResponseCache) -> None:
    up = Upstream()
    await serve(any_cache, up, chat())
    await serve(any_cache, up, chat())
    m = any_cache.metrics()
    assert m["hits"] == 1 and m["misses"] == 1 and m["stores"] == 1 and m["errors"] == 0
    assert m["saved_usd"] == float(COST)


async def test_admin_functions(any_cache: ResponseCache) -> None:
    await any_cache.store("faq", PUB, chat(), answer(), COST)
    status, body = await admin_stats(any_cache)
    assert status == 200 and body["enabled"] and body["totals"]["entries"] == 1
    assert "hits" in body["process"]
    status, body = await admin_clear(any_cache, PUB)
    assert status == 200 and body["deleted"] == 1
    assert await admin_stats(None) == (200, {"enabled": False})


async def test_sqlite_survives_a_restart(tmp_path: Path, clock: Clock, closing: Closing) -> None:
    cfg = config(backend="sqlite", sqlite_path=str(tmp_path / "sub" / "cache.db"))
    first = closing(ResponseCache.from_settings(cfg, None, clock=clock))
    await first.store("faq", PUB, chat(), answer("kept"), COST)
    assert await first.lookup("faq", PUB, chat()) is not None
    await first.close()
    second = closing(ResponseCache.from_settings(cfg, None, clock=clock))
    hit = await second.lookup("faq", PUB, chat())
    assert hit is not None and b"kept" in hit.response and hit.saved_usd == COST
    st = await second.stats(PUB)
    assert st.partitions[0].hits == 2 and st.partitions[0].stores == 1  # counters flushed at close


async def test_sqlite_unwritable_path_is_a_miss(tmp_path: Path, closing: Closing) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = closing(ResponseCache.from_settings(config(backend="sqlite", sqlite_path=str(blocker / "c.db")), None))
    assert not await cache.store("faq", PUB, chat(), answer(), COST)
    assert await cache.lookup("faq", PUB, chat()) is None
    st = await cache.stats()
    assert st.errors >= 3 and st.unavailable
    status, _ = await admin_stats(cache)
    assert status == 503


async def test_sqlite_does_not_block_the_loop(tmp_path: Path) -> None:
    """Statements run on the backend's own thread."""
    import threading

    from tiergate.cache.sqlite import SQLiteBackend

    backend = SQLiteBackend(tmp_path / "c.db", 10)
    seen: list[str] = []
    original = backend._db

    def spy() -> Any:
        seen.append(threading.current_thread().name)
        return original()

    backend._db = spy  # type: ignore[method-assign]
    await backend.stats(None, 0.0)
    assert seen and all(name.startswith("tiergate-cache-sqlite") for name in seen)
    await backend.close()


def test_redis_backend_needs_a_url() -> None:
    from tiergate.config.models import RedisConfig

    with pytest.raises(ValueError, match="redis.url"):
        ResponseCache.from_settings(config(backend="redis"), RedisConfig())
    with pytest.raises(ValueError, match="redis.url"):
        ResponseCache.from_settings(config(backend="redis"), None)


def test_config_validation() -> None:
    from pydantic import ValidationError

    from tiergate.cache import CacheConfig

    cfg = CacheConfig()
    assert cfg.enabled is False and cfg.backend == "memory" and cfg.partition_by == "team"
    assert cfg.ttl_for("faq") == cfg.ttl_s
    assert CacheConfig(group_ttl_s={"faq": 86_400}).ttl_for("faq") == 86_400
    for bad in ({"backend": "memcached"}, {"group_ttl_s": {"faq": 0}}, {"unknown": 1},
                {"semantic": {"threshold": 1.5}}, {"max_entries": 0}, {"partition_by": "none"}):
        with pytest.raises(ValidationError):
            CacheConfig(**bad)
    with pytest.raises(ValidationError):
        cfg.enabled = True  # type: ignore[misc]
