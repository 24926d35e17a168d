"""Counters in Redis: several gateway replicas share budgets and rate limits.

Every operation is one Lua script (registered once, then run by EVALSHA), so each is a single
atomic round trip: no other client sees a half-made reservation or a limit counted in only some
of its windows.

Keys (`<prefix>` is `redis.prefix`):

    <prefix>:budget:<window id>      hash: `spent` (settled), `reserved` (the sum of the open
                                     reservations) and `r:<request id>` -> amount, per request
    <prefix>:budget-exp:<window id>  sorted set: request id, scored by its reservation's expiry
    <prefix>:rl:<limit id>           hash: epoch second -> units counted in that second

Before a budget script reads a window it reaps the reservations whose expiry is <= now (from
the sorted set: only the expired ones are touched) and takes their amounts off `reserved`. Budget
keys expire two days after the window's `ends_at`; a rate-limit key `window_s` seconds after its
last hit; a rate-limit script deletes the fields that have left the window.

Pipelining: redis-py spends ~100 µs of CPU per command round trip, as much as a quarter of a
whole gateway request. The script calls made during one event-loop iteration (the admissions and
settlements of concurrent requests) therefore go out together in one pipeline (no MULTI: each
script is atomic on its own, and they need not be atomic together), which costs about one round
trip's CPU for the whole batch. A lone request waits for nothing: its batch is sent at the end
of the same iteration. Settlements, which nobody waits for, ride along with the next batch (or
go out on their own after `SETTLE_DELAY_S`): a reservation is released a few milliseconds later,
and a request's share of a round trip drops to about half.

Money is integer nano-dollars, exact in Lua's doubles up to 2^53 (about 9 million USD). Numbers
go back to Redis as `%.0f`-formatted strings (never Lua's `1e+15` notation). Times are passed in
(`now`), never read from Redis's clock, except that key TTLs are relative. Any Redis error
(connection refused, timeout, ...) becomes `CounterStoreUnavailable`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError, RedisError

from .counters import (
    CounterStoreUnavailable,
    RateLimit,
    RateResult,
    RateState,
    Reservation,
    Window,
    WindowUsage,
    check_args,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

WINDOW_GRACE_S = 2 * 86400  # budget keys live this long after the window's ends_at
MIN_WINDOW_TTL_S = 3600  # ... and at least this long after their last write
SETTLE_DELAY_S = 0.005  # a settlement waits at most this long for a batch to join

# Shared by the budget scripts. KEYS come in pairs per window: the hash, then the sorted set.
_REAP = """
local function reap(h, z, now)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  if #gone == 0 then return end
  local freed = 0
  for _, rid in ipairs(gone) do
    local f = 'r:' .. rid
    local amount = redis.call('HGET', h, f)
    if amount then
      freed = freed + tonumber(amount)
      redis.call('HDEL', h, f)
    end
  end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
  if freed > 0 then
    redis.call('HINCRBY', h, 'reserved', string.format('%.0f', -freed))
  end
end
"""

# ARGV: request id, amount, now, expires_at, then per window: limit, key TTL (s).
# Returns {index of the first window without room or 0, then per window: spent, reserved}.
_RESERVE = _REAP + """
local rid, amount, now, expires = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local field = 'r:' .. rid
local n = #KEYS / 2
local spent, reserved, own = {}, {}, {}
local refused = 0
for i = 1, n do
  local h = KEYS[2 * i - 1]
  reap(h, KEYS[2 * i], now)
  local v = redis.call('HMGET', h, 'spent', 'reserved', field)
  spent[i] = tonumber(v[1]) or 0
  reserved[i] = tonumber(v[2]) or 0
  own[i] = tonumber(v[3]) or 0  -- a repeated reserve replaces the request's reservation
  if refused == 0 and amount > 0
      and spent[i] + reserved[i] - own[i] + amount > tonumber(ARGV[3 + 2 * i]) then
    refused = i
  end
end
if refused == 0 and amount > 0 then
  for i = 1, n do
    local h, z, ttl = KEYS[2 * i - 1], KEYS[2 * i], ARGV[4 + 2 * i]
    local delta = amount - own[i]
    redis.call('HSET', h, field, ARGV[2])
    redis.call('HINCRBY', h, 'reserved', string.format('%.0f', delta))
    redis.call('ZADD', z, expires, rid)
    redis.call('EXPIRE', h, ttl)
    redis.call('EXPIRE', z, ttl)
    reserved[i] = reserved[i] + delta
  end
end
local out = {refused}
for i = 1, n do
  out[2 * i] = spent[i]
  out[2 * i + 1] = reserved[i]
end
return out
"""

# ARGV: request id, actual, then per window: key TTL (s).
_SETTLE = """
local rid, actual = ARGV[1], tonumber(ARGV[2])
local field = 'r:' .. rid
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local amount = redis.call('HGET', h, field)
  if amount then
    redis.call('HDEL', h, field)
    redis.call('HINCRBY', h, 'reserved', '-' .. amount)
    redis.call('ZREM', z, rid)
  end
  if actual > 0 then
    redis.call('HINCRBY', h, 'spent', ARGV[2])
    redis.call('EXPIRE', h, ARGV[2 + i])
  end
end
return 0
"""

# ARGV: now. Returns per window: spent, reserved.
_USAGE = _REAP + """
local out = {}
for i = 1, #KEYS / 2 do
  local h = KEYS[2 * i - 1]
  reap(h, KEYS[2 * i], ARGV[1])
  local v = redis.call('HMGET', h, 'spent', 'reserved')
  out[2 * i - 1] = tonumber(v[1]) or 0
  out[2 * i] = tonumber(v[2]) or 0
end
return out
"""

# KEYS: the window hashes. ARGV per window: spent, key TTL (s). SETNX semantics per window.
_SEED = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('HSET', KEYS[i], 'spent', ARGV[2 * i - 1])
    redis.call('EXPIRE', KEYS[i], ARGV[2 * i])
  end
end
return 0
"""

# KEYS: one hash per limit. ARGV: the current second, "1" to count ("0": peek), then per limit:
# limit, cost, window_s. Returns {index of the first limit without room or 0, then per limit:
# used (after counting), newest bucket's second (-1: none), and, when `cost` does not fit, the
# second of the oldest bucket whose leaving makes room (-1 otherwise)}.
_RATE = """
local second, count = tonumber(ARGV[1]), ARGV[2] == '1'
local n = #KEYS
local used, newest, retry = {}, {}, {}
local refused = 0
for i = 1, n do
  local k = KEYS[i]
  local limit, cost, win = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
  local flat = redis.call('HGETALL', k)
  local u, nw = 0, -1
  local secs, counts = {}, {}
  for j = 1, #flat, 2 do
    local s = tonumber(flat[j])
    if s <= second - win then
      redis.call('HDEL', k, flat[j])
    else
      local c = tonumber(flat[j + 1])
      u = u + c
      if s > nw then nw = s end
      secs[#secs + 1] = s
      counts[s] = c
    end
  end
  used[i], newest[i], retry[i] = u, nw, -1
  if u + cost > limit then
    if refused == 0 then refused = i end
    if cost <= limit then
      table.sort(secs)
      local need, freed = u + cost - limit, 0
      for _, s in ipairs(secs) do
        freed = freed + counts[s]
        if freed >= need then
          retry[i] = s
          break
        end
      end
    end
  end
end
if refused == 0 and count then
  for i = 1, n do
    local cost, win = tonumber(ARGV[3 * i + 1]), ARGV[3 * i + 2]
    if cost > 0 then
      -- This second's bucket, or the newest one if another caller's clock is ahead of ours.
      local s = second
      if newest[i] > s then s = newest[i] end
      redis.call('HINCRBY', KEYS[i], string.format('%d', s), ARGV[3 * i + 1])
      redis.call('EXPIRE', KEYS[i], win)
      used[i] = used[i] + cost
      newest[i] = s
    end
  end
end
local out = {refused}
for i = 1, n do
  out[3 * i - 1] = used[i]
  out[3 * i] = newest[i]
  out[3 * i + 1] = retry[i]
end
return out
"""


def _window_ttl(w: Window, now: float) -> int:
    return max(int(w.ends_at + WINDOW_GRACE_S - now), MIN_WINDOW_TTL_S)


class _Pipeliner:
    """Sends the script calls of one event-loop iteration as one pipeline."""

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._pending: list[tuple[Any, list[str], list[str | int | float], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._soon = False  # a flush at the end of this iteration is scheduled
        self._later: asyncio.TimerHandle | None = None  # a delayed flush (settlements only)

    def call(
        self, script: Any, keys: list[str], args: list[str | int | float], *, urgent: bool = True
    ) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, keys, args, fut))
        if urgent:
            if not self._soon:
                self._soon = True
                loop.call_soon(self._flush)
        elif not self._soon and self._later is None:
            self._later = loop.call_later(SETTLE_DELAY_S, self._flush)
        return fut

    def _flush(self) -> None:
        self._soon = False
        if self._later is not None:
            self._later.cancel()
            self._later = None
        batch, self._pending = self._pending, []
        if not batch:
            return
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[Any, list[str], list[str | int | float], asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:
                script, keys, args, fut = batch[0]
                results: list[Any] = [await script(keys=keys, args=args)]
            else:
                pipe = self._client.pipeline(transaction=False)
                for script, keys, args, _ in batch:
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                results = await pipe.execute(raise_on_error=False)
                for i, (res, (script, keys, args, _)) in enumerate(zip(results, batch)):
                    if isinstance(res, NoScriptError):  # Redis restarted or flushed its scripts
                        results[i] = await script(keys=keys, args=args)
        except BaseException as exc:
            for *_, fut in batch:
                if not fut.done():
                    fut.set_exception(exc if isinstance(exc, Exception) else RedisError(repr(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        for res, (*_, fut) in zip(results, batch):
            if fut.done():
                continue
            if isinstance(res, Exception):
                fut.set_exception(res)
            else:
                fut.set_result(res)


class RedisCounters:
    """`Counters` in Redis. The client is shared with the rest of the gateway: `close()` leaves
    it open (its owner closes it)."""

    def __init__(self, client: Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._usage = client.register_script(_USAGE)
        self._seed = client.register_script(_SEED)
        self._rate = client.register_script(_RATE)
        self._pipe = _Pipeliner(client)

    def _budget_keys(self, windows: Sequence[Window]) -> list[str]:
        keys = []
        for w in windows:
            keys.append(f"{self._prefix}:budget:{w.id}")
            keys.append(f"{self._prefix}:budget-exp:{w.id}")
        return keys

    async def _run(
        self, script: Any, keys: list[str], args: list[str | int | float], *, urgent: bool = True
    ) -> list[int]:
        try:
            return await self._pipe.call(script, keys, args, urgent=urgent)  # type: ignore[no-any-return]
        except (RedisError, OSError) as exc:
            raise CounterStoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc

    # -- budgets ------------------------------------------------------------------------------

    async def reserve(
        self, request_id: str, windows: Sequence[Window], amount_nano: int, ttl_s: float, now: float
    ) -> Reservation:
        check_args(windows, amount_nano, "amount_nano")
        if not windows:
            return Reservation(True, ())
        args: list[str | int | float] = [request_id, int(amount_nano), repr(now), repr(now + ttl_s)]
        for w in windows:
            args.append(int(w.limit_nano))
            args.append(_window_ttl(w, now))
        out = await self._run(self._reserve, self._budget_keys(windows), args)
        refused = int(out[0])
        usage = tuple(
            WindowUsage(w.id, w.limit_nano, int(out[2 * i + 1]), int(out[2 * i + 2]))
            for i, w in enumerate(windows)
        )
        if refused:
            return Reservation(False, usage, windows[refused - 1].id)
        return Reservation(True, usage)

    async def settle(self, request_id: str, windows: Sequence[Window], actual_nano: int, now: float) -> None:
        check_args(windows, actual_nano, "actual_nano")
        if not windows:
            return
        args: list[str | int | float] = [request_id, int(actual_nano)]
        args.extend(_window_ttl(w, now) for w in windows)
        await self._run(self._settle, self._budget_keys(windows), args, urgent=False)

    async def usage(self, windows: Sequence[Window], now: float) -> tuple[WindowUsage, ...]:
        if not windows:
            return ()
        out = await self._run(self._usage, self._budget_keys(windows), [repr(now)])
        return tuple(
            WindowUsage(w.id, w.limit_nano, int(out[2 * i]), int(out[2 * i + 1]))
            for i, w in enumerate(windows)
        )

    async def seed(self, spent: Mapping[Window, int]) -> None:
        if not spent:
            return
        now = time.time()  # for the relative TTLs only (seeding happens at start-up)
        keys: list[str] = []
        args: list[str | int | float] = []
        for w, nano in spent.items():
            keys.append(f"{self._prefix}:budget:{w.id}")
            args.append(int(nano))
            args.append(_window_ttl(w, now))
        await self._run(self._seed, keys, args)

    # -- rate limits ---------------------------------------------------------------------------

    async def hit(self, limits: Sequence[RateLimit], now: float) -> RateResult:
        return await self._limits(limits, now, True)

    async def peek(self, limits: Sequence[RateLimit], now: float) -> RateResult:
        return await self._limits(limits, now, False)

    async def _limits(self, limits: Sequence[RateLimit], now: float, count: bool) -> RateResult:
        if not limits:
            return RateResult(True, ())
        keys = [f"{self._prefix}:rl:{lim.id}" for lim in limits]
        args: list[str | int | float] = [math.floor(now), "1" if count else "0"]
        for lim in limits:
            args.extend((int(lim.limit), int(lim.cost), int(lim.window_s)))
        out = await self._run(self._rate, keys, args)
        refused = int(out[0])
        ok = refused == 0
        states = []
        for i, lim in enumerate(limits):
            used, newest, retry_second = int(out[3 * i + 1]), int(out[3 * i + 2]), int(out[3 * i + 3])
            window_s = lim.window_s
            reset = newest + window_s - now if used > 0 else 0.0
            if (ok and count) or used + lim.cost <= lim.limit:
                retry = 0.0
            elif lim.cost > lim.limit or retry_second < 0:
                retry = float(window_s)
            else:
                retry = retry_second + window_s - now
            states.append(
                RateState(lim.id, lim.limit, max(0, lim.limit - used), max(0.0, reset), max(0.0, retry))
            )
        return RateResult(ok, tuple(states), limits[refused - 1].id if refused else None)

    async def close(self) -> None:
        """Nothing to release: the client belongs to the caller."""
