"""Authenticator with virtual keys: principals, refusals, the lookup cache, invalidation, and the
Redis broadcast between processes (here: two authenticators with their own Redis clients)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tiergate.auth import ANONYMOUS, Authenticator, build_authenticator, publish_invalidation
from tiergate.config.models import Settings
from tiergate.errors import AuthenticationError
from tiergate.keys import KeySpec, KeyStore, VirtualKey
from tiergate.store import Store

from .conftest import SECRET

MASTER = "master-key-for-auth-tests"


class CountingKeyStore(KeyStore):
    """A KeyStore that counts lookups and can hold one until released."""

    def __init__(self, engine: Any, secret: str) -> None:
        super().__init__(engine, secret)
        self.lookups = 0
        self.hold: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def lookup(self, plaintext: str, now: datetime | None = None) -> VirtualKey | None:
        self.lookups += 1
        key = await super().lookup(plaintext, now)
        if self.hold is not None:
            self.entered.set()
            await self.hold.wait()
        return key


@pytest.fixture
async def sqlite_store(sqlite_store_url: str) -> Any:
    s = await Store.open(sqlite_store_url)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def ks(sqlite_store: Store) -> CountingKeyStore:
    return CountingKeyStore(sqlite_store.engine, SECRET)


async def refused(auth: Authenticator, token: str | None) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as exc:
        await auth.authenticate(token)
    assert exc.value.status == 401 and exc.value.type == "authentication_error"
    return exc.value


async def test_master_and_virtual_principals(ks: CountingKeyStore) -> None:
    auth = Authenticator(MASTER, ks, cache_ttl_s=60)
    admin = await auth.authenticate(MASTER)
    assert admin.is_admin and admin.key_id == "master" and admin.key is None and admin.team is None
    key, plaintext = await ks.create(KeySpec(team="research", models=["assistant"], rpm=5))
    p = await auth.authenticate(plaintext)
    assert (p.key_id, p.is_admin, p.team) == (key.id, False, "research")
    assert p.key == key and p.key.models == ("assistant",) and p.key.rpm == 5
    assert (await refused(auth, None)).message.startswith("missing API key")
    assert (await refused(auth, "")).message.startswith("missing API key")
    assert (await refused(auth, KeyStore.new_plaintext())).message == "invalid API key"
    lookups = ks.lookups
    assert (await refused(auth, "not-a-virtual-key")).message == "invalid API key"
    assert (await refused(auth, plaintext + "x")).message == "invalid API key"
    assert ks.lookups == lookups  # keys of the wrong shape never reach the database


async def test_revoked_and_expired_keys_are_refused_with_the_reason(ks: CountingKeyStore) -> None:
    now = [datetime(2026, 11, 23, 12, 0, tzinfo=UTC)]
    auth = Authenticator(MASTER, ks, cache_ttl_s=0, clock=lambda: now[0])
    key, plaintext = await ks.create(KeySpec(expires_in=timedelta(hours=1)), now=now[0])
    assert (await auth.authenticate(plaintext)).key_id == key.id
    now[0] += timedelta(hours=1)
    exc = await refused(auth, plaintext)
    assert exc.message == f"API key {key.id} expired at 2026-11-23T13:00:00Z" and exc.code == "key_expired"

    key2, plaintext2 = await ks.create(KeySpec())
    await ks.revoke(key2.id, now=datetime(2026, 11, 23, 12, 30, tzinfo=UTC))
    exc = await refused(auth, plaintext2)
    assert exc.message == f"API key {key2.id} was revoked at 2026-11-23T12:30:00Z" and exc.code == "key_revoked"


async def test_without_a_master_key_everyone_is_anonymous_and_keys_are_off(ks: CountingKeyStore) -> None:
    _, plaintext = await ks.create(KeySpec())
    auth = Authenticator(None, ks)
    assert auth.keystore is None and not auth.enabled
    assert await auth.authenticate(plaintext) is ANONYMOUS
    assert await auth.authenticate(None) is ANONYMOUS
    assert ks.lookups == 0


async def test_cache_serves_repeats_and_invalidate_drops_at_once(ks: CountingKeyStore, sqlite_store: Store) -> None:
    auth = Authenticator(MASTER, ks, cache_ttl_s=60)
    key, plaintext = await ks.create(KeySpec())
    for _ in range(5):
        await auth.authenticate(plaintext)
    assert ks.lookups == 1
    # Revoked behind the cache's back (another process, no Redis): still cached...
    await KeyStore(sqlite_store.engine, SECRET).revoke(key.id)
    assert (await auth.authenticate(plaintext)).key_id == key.id
    # ... until invalidated: then refused at once.
    await auth.invalidate(key.id)
    assert "was revoked at" in (await refused(auth, plaintext)).message
    assert ks.lookups == 2


async def test_cache_expires_after_the_ttl(ks: CountingKeyStore, sqlite_store: Store) -> None:
    auth = Authenticator(MASTER, ks, cache_ttl_s=0.2)
    key, plaintext = await ks.create(KeySpec())
    await auth.authenticate(plaintext)
    await KeyStore(sqlite_store.engine, SECRET).revoke(key.id)
    await asyncio.sleep(0.25)
    await refused(auth, plaintext)


async def test_unknown_keys_are_cached_too_and_the_cache_is_bounded(ks: CountingKeyStore) -> None:
    auth = Authenticator(MASTER, ks, cache_ttl_s=60, cache_size=3)
    unknown = KeyStore.new_plaintext()
    for _ in range(3):
        await refused(auth, unknown)
    assert ks.lookups == 1
    for _ in range(5):
        await refused(auth, KeyStore.new_plaintext())
    assert len(auth._cache) == 3


async def test_a_rotated_key_is_not_cached_past_its_grace_period(ks: CountingKeyStore) -> None:
    auth = Authenticator(MASTER, ks, cache_ttl_s=60)
    key, old = await ks.create(KeySpec())
    _, new = await ks.rotate(key.id, grace_s=0.3)
    await auth.invalidate(key.id)
    assert (await auth.authenticate(old)).key_id == key.id
    assert (await auth.authenticate(new)).key_id == key.id
    await asyncio.sleep(0.35)
    await refused(auth, old)
    assert (await auth.authenticate(new)).key_id == key.id


async def test_a_lookup_in_flight_during_an_invalidation_is_not_cached(
    ks: CountingKeyStore, sqlite_store: Store
) -> None:
    auth = Authenticator(MASTER, ks, cache_ttl_s=60)
    key, plaintext = await ks.create(KeySpec())
    ks.hold = asyncio.Event()
    pending = asyncio.create_task(auth.authenticate(plaintext))
    await ks.entered.wait()  # read the key (not yet revoked) ...
    await KeyStore(sqlite_store.engine, SECRET).revoke(key.id)
    await auth.invalidate(key.id)  # ... revoked and invalidated before the lookup returns
    ks.hold.set()
    assert (await pending).key_id == key.id  # that request was already under way
    ks.hold = None
    await refused(auth, plaintext)  # the stale answer was not cached


async def test_build_authenticator_secret_and_switches(sqlite_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIERGATE_MASTER_KEY", raising=False)
    monkeypatch.delenv("TIERGATE_KEY_SECRET", raising=False)
    off = build_authenticator(Settings(), sqlite_store.engine, None)
    assert not off.enabled and off.keystore is None

    monkeypatch.setenv("TIERGATE_MASTER_KEY", MASTER)
    settings = Settings.model_validate({"server": {"key_cache_ttl_s": 7}, "redis": {"prefix": "tgx"}})
    no_store = build_authenticator(settings, None, None)
    assert no_store.enabled and no_store.keystore is None
    on = build_authenticator(settings, sqlite_store.engine, None)
    assert on.keystore is not None and on.cache_ttl_s == 7 and on.channel == "tgx:keys"
    _, plaintext = await on.keystore.create(KeySpec())
    assert on.keystore.digest(plaintext) == KeyStore(sqlite_store.engine, MASTER).digest(plaintext)

    monkeypatch.setenv("TIERGATE_KEY_SECRET", "a-separate-secret")
    sep = build_authenticator(settings, sqlite_store.engine, None)
    assert sep.keystore is not None
    assert sep.keystore.digest(plaintext) == KeyStore(sqlite_store.engine, "a-separate-secret").digest(plaintext)
    await refused(sep, plaintext)  # issued under the master key as HMAC secret: unknown now


# ---------------------------------------------------------------------------- Redis broadcast
def _redis(url: str, name: str) -> Any:
    from redis.asyncio import Redis

    return Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5, client_name=name)


async def _wait(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


async def test_invalidation_is_broadcast_through_redis(
    ks: CountingKeyStore, sqlite_store: Store, redis_url: str, redis_prefix: str
) -> None:
    channel = f"{redis_prefix}:keys"
    ra, rb = _redis(redis_url, f"{redis_prefix}-a"), _redis(redis_url, f"{redis_prefix}-b")
    a = Authenticator(MASTER, ks, cache_ttl_s=60, redis=ra, channel=channel)
    b = Authenticator(MASTER, KeyStore(sqlite_store.engine, SECRET), cache_ttl_s=60, redis=rb, channel=channel)
    try:
        await a.start()
        await b.start()
        assert a.subscribed and b.subscribed
        key, plaintext = await ks.create(KeySpec())
        for auth in (a, b):
            await auth.authenticate(plaintext)  # cached in both "processes"
        await ks.revoke(key.id)
        await a.invalidate(key.id)
        await refused(a, plaintext)
        assert await _wait(lambda: not b._cache), "b never heard of the revocation"
        await refused(b, plaintext)
    finally:
        for auth, client in ((a, ra), (b, rb)):
            await auth.close()
            await client.aclose()


async def test_a_lost_subscription_falls_back_and_resubscribes(
    ks: CountingKeyStore, redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Kill only this test's subscriber connection (the Redis server is shared)."""
    name = f"{redis_prefix}-sub"
    sub, admin = _redis(redis_url, name), _redis(redis_url, f"{redis_prefix}-admin")
    auth = Authenticator(MASTER, ks, cache_ttl_s=60, redis=sub, channel=f"{redis_prefix}:keys")
    try:
        await auth.start()
        assert auth.subscribed
        _, plaintext = await ks.create(KeySpec())
        await auth.authenticate(plaintext)
        assert auth._cache
        with caplog.at_level(logging.WARNING, logger="tiergate.auth"):
            clients = await admin.client_list()
            ids = [c["id"] for c in clients if c.get("name") == name]
            assert ids
            for client_id in ids:
                await admin.execute_command("CLIENT", "KILL", "ID", client_id)
            assert await _wait(lambda: "lost the subscription" in caplog.text)
        # Resubscribed (with backoff): the whole cache is dropped, messages may have been missed.
        assert await _wait(lambda: auth.subscribed and not auth._cache)
        heard = await publish_invalidation(admin, auth.channel, "key_0000000000000000")
        assert heard >= 1
    finally:
        await auth.close()
        assert not auth.subscribed
        await sub.aclose()
        await admin.aclose()
    assert MASTER not in caplog.text and redis_url not in caplog.text


async def test_publish_failures_do_not_fail_the_change(ks: CountingKeyStore, caplog: pytest.LogCaptureFixture) -> None:
    from redis.asyncio import Redis

    from tests.support import free_port

    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.3, socket_timeout=0.3)
    auth = Authenticator(MASTER, ks, cache_ttl_s=60, redis=dead, channel="nowhere:keys")
    try:
        await auth.start(wait_s=0.2)
        assert not auth.subscribed
        key, plaintext = await ks.create(KeySpec())
        await auth.authenticate(plaintext)
        with caplog.at_level(logging.WARNING, logger="tiergate.auth"):
            await auth.invalidate(key.id)  # no exception
        assert "could not publish the change of API key" in caplog.text
        assert not auth._cache
    finally:
        await auth.close()
        await dead.aclose()


async def test_an_unreachable_database_fails_closed_with_503(sqlite_store_url: str) -> None:
    from tests.store.conftest import free_port
    from tiergate.errors import ServiceUnavailableError
    from tiergate.store.db import make_engine

    engine = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/x", connect_args={"timeout": 1})
    auth = Authenticator(MASTER, KeyStore(engine, SECRET), cache_ttl_s=60)
    try:
        with pytest.raises(ServiceUnavailableError) as exc:
            await auth.authenticate(KeyStore.new_plaintext())
        assert exc.value.status == 503 and exc.value.code == "auth_unavailable"
        assert not auth._cache  # a failure is not an answer: nothing cached
        assert (await auth.authenticate(MASTER)).is_admin  # the master key needs no database
    finally:
        await engine.dispose()
