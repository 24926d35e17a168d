"""The Redis backend: one cache shared by every replica, expiry kept by Redis itself.

Keys (`P` is `redis.prefix`, `pt` the first 16 hex digits of the partition's SHA-256, so any
partition name is safe in a key and in a SCAN pattern):

    P:cache:<pt>:e:<key>        hash: r (response), c (cost, nano-USD), t (created), x (expires), g (group); PEXPIRE
    P:cache:lru                 sorted set over all partitions: member `<pt>:e:<key>`, score = last use
    P:cache:<pt>:stats          hash: hits, semantic_hits, misses, stores, saved_nano
    P:cache:partitions          hash: pt -> partition name (for statistics and clearing)
    P:cache:<pt>:sem:<space>    stream of semantic records (k, b, t, v, x), trimmed to the index size

A lookup is one round trip (a Lua script reads the entry, refreshes its LRU score and counts the
hit or miss); a store is one (write, expire, LRU insert, eviction of the least recently used
entries beyond `max_entries`). The scripts touch keys they derive from the LRU members, which a
single Redis (what `tiergate.redisconn` connects to) allows; Redis Cluster is not supported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError

from .base import Entry, PartitionStats, SemRecord, StatField

if TYPE_CHECKING:
    from redis.asyncio import Redis

_GET = """
local v = redis.call('HMGET', KEYS[1], 'r', 'c', 't', 'x', 'g')
if ARGV[3] == '1' then redis.call('HSET', KEYS[4], ARGV[4], ARGV[5]) end
if v[1] then
  redis.call('ZADD', KEYS[2], 'XX', ARGV[1], ARGV[2])
  if ARGV[3] == '1' then
    redis.call('HINCRBY', KEYS[3], 'hits', 1)
    redis.call('HINCRBY', KEYS[3], 'saved_nano', v[2])
  end
  return v
end
if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[3], 'misses', 1) end
return false
"""

_PUT = """
redis.call('HSET', KEYS[1], 'r', ARGV[1], 'c', ARGV[2], 't', ARGV[3], 'x', ARGV[4], 'g', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[7], ARGV[8])
redis.call('HINCRBY', KEYS[3], 'stores', 1)
redis.call('HSET', KEYS[4], ARGV[10], ARGV[11])
local n = redis.call('ZCARD', KEYS[2])
local max = tonumber(ARGV[9])
if n > max then
  local victims = redis.call('ZPOPMIN', KEYS[2], n - max)
  for i = 1, #victims, 2 do redis.call('UNLINK', ARGV[12] .. victims[i]) end
end
return n
"""

_SEM_BATCH = 5000
_SCAN_BATCH = 1000


def partition_token(partition: str) -> str:
    return hashlib.sha256(partition.encode()).hexdigest()[:16]


class _Script:
    """EVALSHA, falling back to EVAL (which caches the script) on NOSCRIPT: no `SCRIPT LOAD`
    round trip, and nothing that depends on how the connection packs multi-word commands."""

    def __init__(self, client: Redis, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await self.client.evalsha(self.sha, len(keys), *keys, *args)  # type: ignore[misc]
        except NoScriptError:
            return await self.client.eval(self.source, len(keys), *keys, *args)  # type: ignore[misc]


class RedisBackend:
    name = "redis"
    shares_semantic = True

    def __init__(self, client: Redis, prefix: str, max_entries: int, *, sem_max_len: int, own_client: bool = False) -> None:
        self.client = client
        self.base = f"{prefix}:cache:"
        self.max_entries = max_entries
        self.sem_max_len = sem_max_len
        self._own = own_client
        self._get_script = _Script(client, _GET)
        self._put_script = _Script(client, _PUT)
        self._tokens: dict[str, str] = {}

    def _pt(self, partition: str) -> str:
        pt = self._tokens.get(partition)
        if pt is None:
            if len(self._tokens) > 10_000:
                self._tokens.clear()
            pt = self._tokens[partition] = partition_token(partition)
        return pt

    async def get(self, partition: str, key: str, now: float, *, count: bool = True) -> Entry | None:
        pt = self._pt(partition)
        b = self.base
        v = await self._get_script(
            [f"{b}{pt}:e:{key}", f"{b}lru", f"{b}{pt}:stats", f"{b}partitions"],
            [repr(now), f"{pt}:e:{key}", 1 if count else 0, pt, partition],
        )
        if not v or v[0] is None:
            return None
        r, c, t, x, g = v
        return Entry(r, g.decode() if g else "", float(t or 0), float(x or 0), int(c or 0))

    async def put(self, partition: str, key: str, entry: Entry, now: float) -> None:
        pt = self._pt(partition)
        b = self.base
        ttl_ms = max(1, int((entry.expires_at - now) * 1000))
        await self._put_script(
            [f"{b}{pt}:e:{key}", f"{b}lru", f"{b}{pt}:stats", f"{b}partitions"],
            [
                entry.response, entry.cost_nano, repr(entry.created_at), repr(entry.expires_at), entry.group,
                ttl_ms, repr(now), f"{pt}:e:{key}", self.max_entries, pt, partition, b,
            ],
        )

    async def record(self, partition: str, what: StatField, saved_nano: int = 0) -> None:
        pt = self._pt(partition)
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(f"{self.base}{pt}:stats", what, 1)
        if saved_nano:
            pipe.hincrby(f"{self.base}{pt}:stats", "saved_nano", saved_nano)
        pipe.hset(f"{self.base}partitions", pt, partition)
        await pipe.execute()

    async def sem_add(self, partition: str, space: str, rec: SemRecord) -> None:
        name = f"{self.base}{self._pt(partition)}:sem:{space}"
        fields: dict[Any, Any] = {"k": rec.key, "b": rec.bucket, "t": rec.tail, "v": rec.vector, "x": repr(rec.expires_at)}
        pipe = self.client.pipeline(transaction=False)
        pipe.xadd(name, fields, maxlen=self.sem_max_len, approximate=True)
        pipe.expireat(name, int(rec.expires_at) + 1)
        await pipe.execute()

    async def sem_since(self, partition: str, space: str, cursor: str, now: float) -> tuple[list[SemRecord], str]:
        name = f"{self.base}{self._pt(partition)}:sem:{space}"
        out: list[SemRecord] = []
        while True:
            rows = await self.client.xrange(name, min=f"({cursor}" if cursor else "-", max="+", count=_SEM_BATCH)
            for rid, f in rows:
                x = float(f.get(b"x", 0))
                if x > now:
                    out.append(SemRecord(f[b"k"].decode(), f[b"b"].decode(), f[b"t"].decode(), f[b"v"], x))
            if rows:
                cursor = rows[-1][0].decode()
            if len(rows) < _SEM_BATCH:
                return out, cursor

    async def _partitions(self, partition: str | None) -> dict[str, str]:
        if partition is not None:
            return {self._pt(partition): partition}
        raw = await self.client.hgetall(f"{self.base}partitions")
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def _members(self, pt: str) -> list[bytes]:
        members = []
        async for m, _ in self.client.zscan_iter(f"{self.base}lru", match=f"{pt}:e:*", count=_SCAN_BATCH):
            members.append(m)
        return members

    async def stats(self, partition: str | None, now: float) -> list[PartitionStats]:
        out = []
        for pt, name in (await self._partitions(partition)).items():
            raw = await self.client.hgetall(f"{self.base}{pt}:stats")
            members = await self._members(pt)
            live = 0
            for i in range(0, len(members), _SCAN_BATCH):
                chunk = members[i : i + _SCAN_BATCH]
                pipe = self.client.pipeline(transaction=False)
                for m in chunk:
                    pipe.exists(self.base + m.decode())
                found = await pipe.execute()
                live += sum(found)
                stale = [m for m, ok in zip(chunk, found) if not ok]
                if stale:
                    await self.client.zrem(f"{self.base}lru", *stale)
            if not raw and not live and partition is None:
                continue
            st = PartitionStats(name, live)
            for f in ("hits", "semantic_hits", "misses", "stores", "saved_nano"):
                setattr(st, f, int(raw.get(f.encode(), 0)))
            out.append(st)
        return out

    async def clear(self, partition: str | None) -> int:
        deleted = 0
        for pt in await self._partitions(partition):
            members = await self._members(pt)
            for i in range(0, len(members), _SCAN_BATCH):
                chunk = members[i : i + _SCAN_BATCH]
                deleted += await self.client.unlink(*(self.base + m.decode() for m in chunk))
                await self.client.zrem(f"{self.base}lru", *chunk)
            # Entries whose LRU member was already dropped, and the semantic streams; the counters stay.
            doomed = [
                k async for k in self.client.scan_iter(match=f"{self.base}{pt}:*", count=_SCAN_BATCH)
                if not k.endswith(b":stats")
            ]
            for i in range(0, len(doomed), _SCAN_BATCH):
                await self.client.unlink(*doomed[i : i + _SCAN_BATCH])
            deleted += sum(1 for k in doomed if b":e:" in k)
        return deleted

    async def close(self) -> None:
        if self._own:
            await self.client.aclose()
