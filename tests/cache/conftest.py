"""Fixtures of the cache tests: request bodies, answers, a controllable clock, a word-hashing
embedder (deterministic, no model), and caches on each backend."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from tiergate.cache import CacheConfig, ResponseCache
from tiergate.cache.config import SemanticConfig


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


def chat(text: str = "What is the capital of France?", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "faq",
        "messages": [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": text}],
        "temperature": 0,
    }
    body.update(extra)
    return body


def answer(content: str = "Paris.", **extra: Any) -> bytes:
    return orjson.dumps({
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 1_800_000_000, "model": "gpt-x",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 2, "total_tokens": 22},
        **extra,
    })


_WORD = re.compile(r"[a-z0-9]+")
_SYNONYMS = {"can": "do", "how": "do", "what": "do", "whats": "do", "is": "do", "the": "", "a": "", "my": "",
             "i": "", "steps": "way", "to": ""}


class WordEmbedder:
    """Bag of words hashed into 256 dimensions, with a few synonyms folded: paraphrases that use
    the same content words are close, others far. Counts its calls."""

    name = "test:words"

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.calls = 0

    def coverage(self, text: str) -> int:
        return len(text)

    def vector(self, text: str) -> Any:
        import numpy as np

        v = np.zeros(self.dim, dtype=np.float32)
        for w in _WORD.findall(text.lower().replace("'", "")):
            w = _SYNONYMS.get(w, w)
            if w:
                v[int(hashlib.sha256(w.encode()).hexdigest()[:8], 16) % self.dim] += 1.0
        n = float(np.linalg.norm(v))
        return v / n if n else v

    async def embed(self, texts: Sequence[str]) -> Any:
        import numpy as np

        self.calls += 1
        return np.stack([self.vector(t) for t in texts])


@pytest.fixture
def clock() -> Clock:
    return Clock()


def config(**kw: Any) -> CacheConfig:
    sem = kw.pop("semantic", None)
    cfg = CacheConfig(enabled=True, **kw)
    if sem is not None:
        cfg = cfg.model_copy(update={"semantic": SemanticConfig(**sem)})
    return cfg


def redis_cfg(url: str, prefix: str) -> Any:
    from tiergate.config.models import RedisConfig

    return RedisConfig(url=url, prefix=prefix)


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def any_cache(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> AsyncIterator[ResponseCache]:
    """A ResponseCache on each backend (Redis: skipped without TIERGATE_TEST_REDIS_URL)."""
    backend = request.param
    rcfg = None
    if backend == "redis":
        rcfg = redis_cfg(request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix"))
    cfg = config(backend=backend, sqlite_path=str(tmp_path / "cache.db"), max_entries=1000)
    cache = ResponseCache.from_settings(cfg, rcfg, clock=clock)
    yield cache
    await cache.close()


@pytest.fixture
async def closing() -> AsyncIterator[Callable[[ResponseCache], ResponseCache]]:
    """`closing(cache)` returns the cache and closes it after the test, whatever happens."""
    opened: list[ResponseCache] = []

    def track(cache: ResponseCache) -> ResponseCache:
        opened.append(cache)
        return cache

    yield track
    for cache in opened:
        await cache.close()


COST = Decimal("0.0012")
