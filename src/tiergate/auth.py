"""Authentication: an API key -> the principal making the request.

Two kinds of key:

* the master key (`server.master_key`): the admin principal, for everything including `/admin`;
* virtual keys (`keys.py`): issued through the admin API or `tiergate keys create`, stored as HMAC
  digests only; each carries its team, restrictions and limits into the principal (`key`).

Only digests of keys are kept in memory; the master key comparison is constant-time. A virtual
key is looked up through a small in-process cache (HMAC digest -> key record or "unknown", for
`server.key_cache_ttl_s`, bounded in size): the database is not asked on every request. Revocation,
rotation and updates take effect at once in the process that made them (`invalidate`), and in
every process when Redis is configured: the change is published on `<redis.prefix>:keys` and each
gateway drops the key from its cache when the message arrives. If the subscription is lost, the
TTL alone bounds how long a revoked key may still be accepted, and the subscriber reconnects with
backoff (and then drops its whole cache: it may have missed messages). A database that does not
answer fails closed: 503 `auth_unavailable` for virtual keys (the master key needs no database).

With no master key configured, every request is the anonymous principal, virtual keys are
disabled and the server refuses to listen anywhere but loopback (see `server.serve`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .config.models import Settings, resolve_secret
from .errors import AuthenticationError, ServiceUnavailableError
from .keys import KeyStore, VirtualKey, looks_like_key
from .redisconn import key as redis_key

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("tiergate.auth")

CACHE_SIZE = 10_000
CHANNEL_SUFFIX = "keys"
RESUBSCRIBE_MIN_S = 0.5
RESUBSCRIBE_MAX_S = 30.0


@dataclass(slots=True, frozen=True)
class Principal:
    key_id: str | None  # safe to log: a name or a key id, never the key
    is_admin: bool = False
    team: str | None = None
    key: VirtualKey | None = None  # the virtual key's settings; None for master and anonymous


ANONYMOUS = Principal(None, is_admin=False)


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Authenticator:
    """Master key, then virtual keys (when a `KeyStore` is given and a master key is set)."""

    def __init__(
        self,
        master_key: str | None,
        keystore: KeyStore | None = None,
        *,
        cache_ttl_s: float = 1.0,
        cache_size: int = CACHE_SIZE,
        redis: Redis | None = None,
        channel: str = "tiergate:keys",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._master = key_digest(master_key) if master_key else None
        self._master_principal = Principal("master", is_admin=True)
        self.keystore = keystore if self._master is not None else None
        self.cache_ttl_s = cache_ttl_s
        self._cache_size = max(1, cache_size)
        # HMAC digest -> (key or None for "unknown", monotonic time the entry stops being valid)
        self._cache: OrderedDict[str, tuple[VirtualKey | None, float]] = OrderedDict()
        self._generation = 0  # bumped by every invalidation: lookups in flight do not cache
        self._redis = redis if self.keystore is not None else None
        self.channel = channel
        self._clock = clock or (lambda: datetime.now(UTC))
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    @property
    def enabled(self) -> bool:
        return self._master is not None

    @property
    def subscribed(self) -> bool:
        """Is the revocation subscription (Redis) live right now?"""
        return self._subscribed.is_set()

    async def authenticate(self, token: str | None) -> Principal:
        """Raises AuthenticationError (401) for a missing, wrong, revoked or expired key when auth
        is enabled; ServiceUnavailableError (503) when a virtual key cannot be looked up."""
        if self._master is None:
            return ANONYMOUS
        if not token:
            raise AuthenticationError(
                "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
            )
        if hmac.compare_digest(key_digest(token), self._master):
            return self._master_principal
        if self.keystore is None or not looks_like_key(token):
            raise AuthenticationError("invalid API key")
        key = await self._lookup(token)
        if key is None:
            raise AuthenticationError("invalid API key")
        if key.revoked_at is not None:
            raise AuthenticationError(f"API key {key.id} was revoked at {_iso(key.revoked_at)}", code="key_revoked")
        if key.expires_at is not None and key.expires_at <= self._clock():
            raise AuthenticationError(f"API key {key.id} expired at {_iso(key.expires_at)}", code="key_expired")
        return Principal(key.id, is_admin=False, team=key.team, key=key)

    async def _lookup(self, token: str) -> VirtualKey | None:
        assert self.keystore is not None
        digest = self.keystore.digest(token)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None:
            if hit[1] > now:
                self._cache.move_to_end(digest)
                return hit[0]
            del self._cache[digest]
        generation = self._generation
        wall = self._clock()
        try:
            key = await self.keystore.lookup(token, wall)
        except Exception as exc:  # noqa: BLE001 - fail closed, with a 503 rather than a 500
            log.warning("API key lookup failed (%s): the database did not answer", type(exc).__name__)
            raise ServiceUnavailableError(
                "cannot check the API key now: the gateway's database did not answer; retry later",
                code="auth_unavailable",
            ) from None
        if self.cache_ttl_s > 0 and generation == self._generation:
            until = now + self.cache_ttl_s
            if key is not None and key.prev_valid_until is not None and key.prev_valid_until > wall:
                # Matched (maybe) by the previous plaintext: not cached past its grace period.
                until = min(until, now + (key.prev_valid_until - wall).total_seconds())
            self._cache[digest] = (key, until)
            self._cache.move_to_end(digest)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return key

    def forget(self, key_id: str | None = None) -> None:
        """Drop the cached entries of `key_id` in this process (all entries when None)."""
        self._generation += 1
        if key_id is None:
            self._cache.clear()
            return
        for digest in [d for d, (k, _) in self._cache.items() if k is not None and k.id == key_id]:
            del self._cache[digest]

    async def invalidate(self, key_id: str) -> None:
        """A key changed (revoked, rotated, updated): drop it here at once and tell the other
        gateways (Redis). A failed publish is logged; the other processes then see the change
        within `server.key_cache_ttl_s`."""
        self.forget(key_id)
        if self._redis is not None:
            try:
                await publish_invalidation(self._redis, self.channel, key_id)
            except Exception as exc:  # noqa: BLE001 - Redis down: the TTL bounds the delay
                log.warning(
                    "could not publish the change of API key %s on %s (%s); other gateways see it "
                    "within key_cache_ttl_s", key_id, self.channel, type(exc).__name__,
                )

    # ------------------------------------------------------------------ the subscription
    async def start(self, wait_s: float = 2.0) -> None:
        """Subscribe to key changes (when Redis is configured), waiting up to `wait_s` for the
        subscription; an unreachable Redis does not stop the start (the subscriber keeps trying)."""
        if self._redis is not None and self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listen(), name="tiergate-key-changes")
            if wait_s > 0 and not await self.wait_subscribed(wait_s):
                log.warning(
                    "not subscribed to API key changes on %s yet; until then, changes made elsewhere "
                    "take effect within key_cache_ttl_s", self.channel,
                )

    async def wait_subscribed(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        task, self._listener = self._listener, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._subscribed.clear()

    async def _listen(self) -> None:
        assert self._redis is not None
        delay = RESUBSCRIBE_MIN_S
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.forget()  # messages may have been missed while not subscribed
                self._subscribed.set()
                if delay > RESUBSCRIBE_MIN_S:
                    log.info("resubscribed to API key changes on %s", self.channel)
                delay = RESUBSCRIBE_MIN_S
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._on_message(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: fall back to the TTL, retry
                self._subscribed.clear()
                log.warning(
                    "lost the subscription to API key changes on %s (%s); cached keys expire after "
                    "key_cache_ttl_s; resubscribing in %.1fs", self.channel, type(exc).__name__, delay,
                )
            finally:
                self._subscribed.clear()
                try:
                    await asyncio.shield(pubsub.aclose())
                except Exception:  # noqa: BLE001, S110 - the connection is gone anyway
                    pass
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, RESUBSCRIBE_MAX_S)

    def _on_message(self, data: Any) -> None:
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        self.forget(data if isinstance(data, str) and data and data != "*" else None)


async def publish_invalidation(redis: Redis, channel: str, key_id: str) -> int:
    """Tell every subscribed gateway that `key_id` changed; returns how many processes heard."""
    return int(await redis.publish(channel, key_id.encode("utf-8")))


def key_channel(settings: Settings) -> str:
    return redis_key(settings.redis, CHANNEL_SUFFIX)


def key_secret(settings: Settings) -> str | None:
    """The HMAC secret of virtual keys: `server.key_secret`, else the master key (None: keys are
    disabled)."""
    return resolve_secret(settings.server.key_secret) or resolve_secret(settings.server.master_key)


def build_authenticator(
    settings: Settings, engine: AsyncEngine | None, redis: Redis | None
) -> Authenticator:
    """The authenticator for these settings: master key only, or with virtual keys from the
    database (`engine`) when a master key is set; key changes are broadcast through `redis`."""
    master = resolve_secret(settings.server.master_key)
    keystore = None
    if master and engine is not None:
        keystore = KeyStore(engine, key_secret(settings) or master)
    return Authenticator(
        master,
        keystore,
        cache_ttl_s=settings.server.key_cache_ttl_s,
        redis=redis,
        channel=key_channel(settings),
    )


def token_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value:
            return value.strip()
        return authorization.strip()
    return x_api_key.strip() if x_api_key else None
