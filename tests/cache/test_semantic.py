"""The semantic cache with a deterministic word embedder: threshold, the false-hit guard,
contexts and partitions, opt-in, sharing through Redis and SQLite, failures; and the vector
index (exact below the limit, HNSW above it, the same neighbours)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tiergate.cache import ResponseCache
from tiergate.cache.keys import partition
from tiergate.cache.semantic import CallableEmbedder, SemanticIndex, VectorIndex, guard, normalise, tail
from tiergate.privacy.detector import default_detector

from .conftest import COST, Clock, WordEmbedder, answer, chat, config, redis_cfg

Closing = Callable[[ResponseCache], ResponseCache]
PUB = partition("team:a", "PUBLIC")


def sem_cache(embedder: Any = None, *, clock: Clock | None = None, backend: str = "memory", rc: Any = None,
              path: Path | None = None, **semantic: Any) -> ResponseCache:
    sem = {"enabled_groups": ("faq",), "threshold": 0.9, "refresh_s": 0.0, "timeout_ms": 30_000.0, **semantic}
    cfg = config(backend=backend, semantic=sem, sqlite_path=str(path or "unused.db"))
    kwargs = {"clock": clock} if clock else {}
    return ResponseCache.from_settings(cfg, rc, embedder=embedder or WordEmbedder(), **kwargs)


async def test_paraphrase_above_threshold_hits() -> None:
    emb = WordEmbedder()
    cache = sem_cache(emb)
    await cache.store("faq", PUB, chat("How do I reset my password?"), answer("Click 'forgot'."), COST)
    hit = await cache.lookup("faq", PUB, chat("How can I reset my password?"))
    assert hit is not None and hit.kind == "semantic-hit"
    assert hit.similarity is not None and hit.similarity >= 0.9
    assert b"Click 'forgot'." in hit.response and hit.saved_usd == COST
    assert hit.headers()["x-tiergate-cache"] == "semantic-hit"
    assert float(hit.headers()["x-tiergate-cache-similarity"]) == pytest.approx(hit.similarity, abs=1e-4)
    st = (await cache.stats(PUB)).partitions[0]
    assert st.semantic_hits == 1 and st.misses == 0 and st.saved_usd == COST
    assert cache.metrics()["semantic_hits"] == 1


async def test_below_threshold_misses() -> None:
    cache = sem_cache()
    await cache.store("faq", PUB, chat("How do I reset my password?"), answer(), COST)
    assert await cache.lookup("faq", PUB, chat("How do I reset my router?")) is None
    assert await cache.lookup("faq", PUB, chat("What is your refund policy?")) is None
    assert (await cache.stats(PUB)).partitions[0].misses == 2


async def test_number_guard_blocks_the_account_case() -> None:
    emb = WordEmbedder()
    cache = sem_cache(emb, threshold=0.7)
    q123, q456 = "What is the balance of account 123?", "What is the balance of account 456?"
    v = await emb.embed([q123, q456])
    assert float(v[0] @ v[1]) >= 0.7  # similar enough by embedding alone...
    await cache.store("faq", PUB, chat(q123), answer("Balance of 123: $10"), COST)
    assert await cache.lookup("faq", PUB, chat(q456)) is None  # ...but the numbers differ
    hit = await cache.lookup("faq", PUB, chat("Whats the balance of account 123"))
    assert hit is not None and hit.kind == "semantic-hit"


async def test_entity_guard() -> None:
    cache = sem_cache(threshold=0.5)
    await cache.store("faq", PUB, chat("Send the invoice to john.smith@example.com please"), answer(), COST)
    assert await cache.lookup("faq", PUB, chat("Send the invoice to mary.jones@example.com please")) is None
    assert await cache.lookup("faq", PUB, chat("please send the invoice to john.smith@example.com")) is not None


async def test_other_context_partition_or_group_misses() -> None:
    cache = sem_cache()
    await cache.store("faq", PUB, chat("How do I reset my password?"), answer(), COST)
    other_system = chat("How can I reset my password?")
    other_system["messages"][0]["content"] = "Answer in French."
    assert await cache.lookup("faq", PUB, other_system) is None
    assert await cache.lookup("faq", PUB, chat("How can I reset my password?", max_tokens=5)) is None
    for part in (partition("team:b", "PUBLIC"), partition("team:a", "SENSITIVE")):
        assert await cache.lookup("faq", part, chat("How can I reset my password?")) is None
    assert await cache.lookup("faq", PUB, chat("How can I reset my password?")) is not None


async def test_opt_in_and_opt_out() -> None:
    emb = WordEmbedder()
    cfg = config(semantic={"enabled_groups": (), "threshold": 0.9})
    cache = ResponseCache.from_settings(cfg, None, embedder=emb)
    await cache.store("chat", PUB, chat("How do I reset my password?"), answer(), COST)  # not indexed
    assert await cache.lookup("chat", PUB, chat("How can I reset my password?"), semantic=True) is None
    await cache.store("chat", PUB, chat("How do I reset my password?"), answer(), COST, semantic=True)
    assert await cache.lookup("chat", PUB, chat("How can I reset my password?")) is None
    assert await cache.lookup("chat", PUB, chat("How can I reset my password?"), semantic=True) is not None
    assert await cache.lookup("chat", PUB, chat("How can I reset my password?"), semantic=False) is None
    no_opt_in = ResponseCache.from_settings(
        config(semantic={"enabled_groups": (), "allow_opt_in": False}), None, embedder=emb)
    assert not no_opt_in.uses_semantic("chat", True)
    enabled = sem_cache(emb)
    assert enabled.uses_semantic("faq") and not enabled.uses_semantic("faq", False)
    assert not enabled.uses_semantic("other")


async def test_one_embedding_per_question_and_none_without_candidates() -> None:
    emb = WordEmbedder()
    cache = sem_cache(emb)
    assert await cache.lookup("faq", PUB, chat("How do I reset my password?")) is None
    assert emb.calls == 0  # nothing stored in this context yet: no embedding needed
    await cache.store("faq", PUB, chat("How do I reset my password?"), answer(), COST)
    assert emb.calls == 1
    calls = emb.calls
    assert await cache.lookup("faq", PUB, chat("What is your refund policy?")) is None
    await cache.store("faq", PUB, chat("What is your refund policy?"), answer(), COST)
    assert emb.calls == calls + 1  # the store reused the lookup's embedding


async def test_expired_or_evicted_answers_are_not_served(clock: Clock) -> None:
    cache = sem_cache(clock=clock)
    await cache.store("faq", PUB, chat("How do I reset my password?"), answer(), COST)
    clock.advance(cache.cfg.ttl_s + 1)
    assert await cache.lookup("faq", PUB, chat("How can I reset my password?")) is None
    await cache.store("faq", PUB, chat("How do I reset my password?"), answer(), COST)
    await cache.clear(PUB)
    assert await cache.lookup("faq", PUB, chat("How can I reset my password?")) is None
    # An index record whose entry was evicted behind its back is dropped when found.
    await cache.store("faq", PUB, chat("How do I reset my password?"), answer(), COST)
    await cache.backend.clear(PUB)
    assert cache._sem is not None and cache._sem.size() == 1
    assert await cache.lookup("faq", PUB, chat("How can I reset my password?")) is None
    assert cache._sem.size() == 0


async def test_embedder_failure_and_timeout_are_misses() -> None:
    async def broken(texts: list[str]) -> Any:
        raise ConnectionError("embeddings deployment down")

    cache = sem_cache(CallableEmbedder(broken, "remote"))
    assert await cache.store("faq", PUB, chat("How do I reset my password?"), answer(), COST)  # exact part stored
    assert await cache.lookup("faq", PUB, chat("How do I reset my password?")) is not None  # exact hit
    m = cache.metrics()
    assert m["semantic_errors"] == 1 and m["errors"] == 0

    emb = WordEmbedder()
    slow_calls = 0

    async def slow(texts: list[str]) -> Any:
        nonlocal slow_calls
        slow_calls += 1
        if slow_calls > 1:
            await asyncio.sleep(0.5)
        return await emb.embed(texts)

    cache = sem_cache(CallableEmbedder(slow, "slow"), timeout_ms=50)
    await cache.store("faq", PUB, chat("How do I reset my password?"), answer(), COST)
    assert await cache.lookup("faq", PUB, chat("How can I reset my password?")) is None
    assert cache.metrics()["semantic_timeouts"] == 1


async def test_callable_embedder_normalises_and_cuts() -> None:
    seen: list[list[str]] = []

    async def fn(texts: list[str]) -> list[list[float]]:
        seen.append(texts)
        return [[3.0, 4.0] for _ in texts]

    emb = CallableEmbedder(fn, "remote", max_chars=5)
    out = await emb.embed(["abcdefgh", "xy"])
    assert out.dtype == np.float32 and np.allclose(out, [[0.6, 0.8], [0.6, 0.8]])
    assert seen == [["abcde", "xy"]]
    assert emb.coverage("abcdefgh") == 5 and emb.coverage("xy") == 2


async def test_index_is_bounded(clock: Clock) -> None:
    cache = sem_cache(max_index_entries=5, clock=clock)
    for i in range(12):
        await cache.store("faq", PUB, chat(f"question number {i} about topic {chr(97 + i)}"), answer(), COST)
    assert cache._sem is not None and cache._sem.size() == 5


async def test_redis_replicas_share_semantic_entries(redis_url: str, redis_prefix: str, closing: Closing) -> None:
    rc = redis_cfg(redis_url, redis_prefix)
    one = closing(sem_cache(backend="redis", rc=rc))
    two = closing(sem_cache(backend="redis", rc=rc))
    assert await two.lookup("faq", PUB, chat("How can I reset my password?")) is None
    await one.store("faq", PUB, chat("How do I reset my password?"), answer("shared"), COST)
    hit = await two.lookup("faq", PUB, chat("How can I reset my password?"))
    assert hit is not None and hit.kind == "semantic-hit" and b"shared" in hit.response
    st = (await one.stats(PUB)).partitions[0]
    assert st.semantic_hits == 1 and st.misses == 1
    await one.clear(PUB)
    assert await two.lookup("faq", PUB, chat("How can I reset my password?")) is None


async def test_sqlite_semantic_entries_survive_a_restart(tmp_path: Path, closing: Closing) -> None:
    path = tmp_path / "c.db"
    first = closing(sem_cache(backend="sqlite", path=path))
    await first.store("faq", PUB, chat("How do I reset my password?"), answer("persisted"), COST)
    await first.close()
    second = closing(sem_cache(backend="sqlite", path=path))
    hit = await second.lookup("faq", PUB, chat("How can I reset my password?"))
    assert hit is not None and hit.kind == "semantic-hit" and b"persisted" in hit.response


async def test_bulk_load_is_indexed_off_the_loop(tmp_path: Path, closing: Closing) -> None:
    """A replica loading many records indexes them on a worker thread, then finds them."""
    path = tmp_path / "c.db"
    first = closing(sem_cache(backend="sqlite", path=path, exact_search_limit=100))
    for i in range(700):
        await first.store("faq", PUB, chat(f"tell me fact {i} about item{i}"), answer(str(i)), COST)
    await first.close()
    second = closing(sem_cache(backend="sqlite", path=path, exact_search_limit=100))
    hit = await second.lookup("faq", PUB, chat("tell me fact 321 about item321"))
    assert hit is not None  # exact
    hit = await second.lookup("faq", PUB, chat("Tell me: fact 654 about item654!"))
    assert hit is not None and hit.kind == "semantic-hit" and b'"654"' in hit.response
    assert second._sem is not None and second._sem.size() == 700


# ---------------------------------------------------------------------------- the guard


def test_guard() -> None:
    d = default_detector()

    def fp(text: str, strict: bool = True) -> str:
        return guard(text, d, strict=strict)

    assert fp("balance of account 123") != fp("balance of account 456")
    assert fp("balance of account 123") == fp("what's the balance of account 123")
    assert fp("pay 1.5 kg") != fp("pay 15 kg")
    assert fp("mail ann@example.com") != fp("mail bob@example.com")
    assert fp("Is it safe?") != fp("Is it not safe?")
    assert fp("Is it safe?") != fp("Isn't it safe?")
    assert fp("Is it safe?", strict=False) == fp("Is it not safe?", strict=False)
    assert fp("Flights from Paris to Rome") != fp("Flights from Paris to Oslo")
    assert fp("How do I reset my password?") == fp("What are the steps to reset my password?")
    assert fp("How do I reset my password? I use Gmail.") == fp("Reset my password, how? I use Gmail.")


def test_tail() -> None:
    """What the embedding did not see must match exactly."""
    assert tail("short", 5) == "" == tail("short", 99)
    assert tail("same head tail A", 9) != tail("same head tail B", 9)
    assert tail("same head tail A", 9) == tail("SAME HEAD tail A", 9)


# ---------------------------------------------------------------------------- the index


def unit(rng: np.random.Generator, n: int, dim: int = 64) -> np.ndarray:
    return normalise(rng.standard_normal((n, dim)).astype(np.float32))


def test_exact_index_search_and_remove() -> None:
    rng = np.random.default_rng(1)
    x = unit(rng, 50)
    idx = VectorIndex(64, exact_limit=1000)
    idx.add(range(100, 150), x)
    assert len(idx) == 50 and not idx.approximate
    res = idx.search(x[7], 3)
    assert res[0][0] == 107 and res[0][1] == pytest.approx(1.0, abs=1e-5)
    assert res[0][1] >= res[1][1] >= res[2][1]
    idx.remove(107)
    idx.remove(107)  # twice: no effect
    assert len(idx) == 49 and all(i != 107 for i, _ in idx.search(x[7], 49))
    assert idx.search(x[49], 1)[0][0] == 149  # the row moved into the hole is still found
    assert len(idx.search(x[0], 500)) == 49


def test_ann_index_finds_the_same_neighbours_as_exact_search() -> None:
    pytest.importorskip("usearch", reason="usearch not installed: HNSW index not tested")
    rng = np.random.default_rng(7)
    n, dim = 3000, 384
    x = unit(rng, n, dim)
    idx = VectorIndex(dim, exact_limit=256)
    idx.add(range(100), x[:100])
    assert not idx.approximate
    idx.add(range(100, n), x[100:], threads=0)
    assert idx.approximate and len(idx) == n
    sample = rng.choice(n, 200, replace=False)
    queries = normalise(x[sample] + 0.03 * rng.standard_normal((200, dim)).astype(np.float32))
    agree = 0
    for q, s in zip(queries, sample):
        exact_best = int(np.argmax(x @ q))
        assert exact_best == s
        got = idx.search(q, 8)
        agree += got[0][0] == exact_best
        assert got[0][1] == pytest.approx(float(x[got[0][0]] @ q), abs=0.01)
    assert agree >= 198  # HNSW is approximate: allow one or two misses in 200
    idx.remove(int(sample[0]))
    assert all(i != sample[0] for i, _ in idx.search(queries[0], 8))
    assert len(idx) == n - 1


class _Random:
    """Dense random vectors per text (no ties): `near` texts get a small perturbation of another's."""

    name = "test:random"

    def __init__(self, dim: int = 128) -> None:
        self.dim = dim
        self.rng = np.random.default_rng(3)
        self.table: dict[str, np.ndarray] = {}

    def near(self, text: str, of: str, noise: float = 0.02) -> None:
        self.table[text] = normalise(self.table[of] + noise * self.rng.standard_normal(self.dim))[0]

    def coverage(self, text: str) -> int:
        return len(text)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        for t in texts:
            if t not in self.table:
                self.table[t] = normalise(self.rng.standard_normal(self.dim))[0]
        return np.stack([self.table[t] for t in texts])


async def test_semantic_index_uses_ann_past_the_limit() -> None:
    pytest.importorskip("usearch", reason="usearch not installed: HNSW index not tested")
    emb = _Random()
    cfg = config(semantic={"exact_search_limit": 20, "threshold": 0.9}).semantic
    sem = SemanticIndex(cfg, emb)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    texts = [f"tell me about {a} and {b}" for a in words for b in words]
    for i, t in enumerate(texts):
        sem.add(PUB, "faq", sem.bucket("ctx", t), await sem.probe(t), f"key{i}", 2e9)
    space = sem._spaces[(PUB, "faq")]
    assert len(space.buckets) == 1 and next(iter(space.buckets.values())).approximate
    emb.near("so, tell me about delta and golf", texts[3 * 8 + 6])
    q = "so, tell me about delta and golf"
    found = sem.candidates(PUB, "faq", sem.bucket("ctx", q), await sem.probe(q), 0.9, 1e9)
    assert found and found[0].key == f"key{3 * 8 + 6}"


async def test_guard_buckets_keep_templated_questions_apart() -> None:
    """Questions that differ only in a number land in different buckets: the right one is found
    however many near-identical ones are stored."""
    emb = WordEmbedder()
    cache = sem_cache(emb, exact_search_limit=16)
    for i in range(200):
        await cache.store("faq", PUB, chat(f"what is the price of product {i}"), answer(f"price {i}"), COST)
    calls = emb.calls
    hit = await cache.lookup("faq", PUB, chat("What's the price of product 142?"))
    assert hit is not None and hit.kind == "semantic-hit" and b"price 142" in hit.response
    assert await cache.lookup("faq", PUB, chat("what is the price of product 999")) is None
    assert emb.calls == calls + 1  # the miss needed no embedding: its bucket is empty


class _Fixed:
    """An embedder with given vectors, for exact similarity values."""

    name = "test:fixed"

    def __init__(self, table: dict[str, Sequence[float]]) -> None:
        self.table = table

    def coverage(self, text: str) -> int:
        return len(text)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        return normalise([self.table[t] for t in texts])


async def test_threshold_is_inclusive_and_best_candidate_wins() -> None:
    table = {"q": [1.0, 0.0, 0.0], "a": [0.9, np.sqrt(1 - 0.81), 0.0], "b": [0.95, 0.0, np.sqrt(1 - 0.9025)]}
    cache = sem_cache(_Fixed(table), threshold=0.9)
    await cache.store("faq", PUB, chat("a"), answer("A"), COST)
    await cache.store("faq", PUB, chat("b"), answer("B"), COST)
    hit = await cache.lookup("faq", PUB, chat("q"))
    assert hit is not None and b'"B"' in hit.response and hit.similarity == pytest.approx(0.95, abs=1e-5)
    cache2 = sem_cache(_Fixed(table), threshold=0.95)
    await cache2.store("faq", PUB, chat("a"), answer("A"), COST)
    assert await cache2.lookup("faq", PUB, chat("q")) is None


async def test_warm_up_loads_the_embedder_and_the_detector() -> None:
    loaded: list[bool] = []

    class Loading(WordEmbedder):
        async def load(self) -> None:
            loaded.append(True)

    cache = sem_cache(Loading())
    await cache.warm_up()
    assert loaded == [True] and cache._sem is not None
    idle = ResponseCache.from_settings(config(semantic={"enabled_groups": ()}), None, embedder=Loading())
    await idle.warm_up()
    assert loaded == [True]  # no semantic group: nothing to warm up
