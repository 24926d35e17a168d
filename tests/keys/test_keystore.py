"""KeyStore on SQLite and PostgreSQL: create, lookup, revoke, expiry, rotation with a grace
period, updates; and the database never holds a plaintext key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.store.conftest import Target
from tiergate.errors import InvalidRequestError
from tiergate.keys import (
    KEY_LENGTH,
    KeyNotFoundError,
    KeyRevokedError,
    KeySpec,
    KeyStore,
    looks_like_key,
    parse_key_spec,
)
from tiergate.store import Store
from tiergate.store.db import sqlite_file

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def spec(**fields: object) -> KeySpec:
    return parse_key_spec(dict(fields))


async def test_create_returns_the_plaintext_once_and_stores_the_settings(keystore: KeyStore) -> None:
    key, plaintext = await keystore.create(
        spec(name="ci bot", team="research", models=["assistant", "assistant"], deployments=["local-a"],
             locations=["local", "sovereign"], residencies=["AZ"], default_privacy="high",
             default_strategy="cost_optimized", daily_usd="10.25", monthly_usd=200, rpm=60, tpm=10000,
             expires_at="2027-01-01T00:00:00+04:00", metadata={"owner": "ali", "tags": [1, {"x": None}]}),
        now=T0,
    )
    assert plaintext.startswith("tg-") and len(plaintext) == KEY_LENGTH == 46 and looks_like_key(plaintext)
    assert key.id.startswith("key_") and len(key.id) == 20
    assert key.prefix == plaintext[:8] + "…"
    assert key.name == "ci bot" and key.team == "research"
    assert key.models == ("assistant",)  # duplicates dropped
    assert key.deployments == ("local-a",) and key.locations == ("local", "sovereign")
    assert key.residencies == ("AZ",)
    assert key.default_privacy == "PRIVATE"  # the seed alias, stored canonically
    assert key.default_strategy == "cost_optimized"
    assert key.daily_usd == Decimal("10.25") and key.monthly_usd == Decimal("200")
    assert (key.rpm, key.tpm) == (60, 10000)
    assert key.expires_at == datetime(2026, 12, 31, 20, 0, tzinfo=UTC)
    assert key.metadata == {"owner": "ali", "tags": [1, {"x": None}]}
    assert key.created_at == key.updated_at == T0 and key.revoked_at is None
    assert key.status(T0) == "active"
    assert await keystore.get(key.id) == key

    data = key.to_dict(T0)
    assert data["daily_usd"] == "10.25" and data["monthly_usd"] == "200"
    assert data["expires_at"] == "2026-12-31T20:00:00Z" and data["status"] == "active"
    assert plaintext not in repr(data) and keystore.digest(plaintext) not in repr(data)
    assert not any("hash" in k for k in data)


async def test_defaults_are_unrestricted(keystore: KeyStore) -> None:
    key, _ = await keystore.create(KeySpec())
    assert (key.name, key.team, key.models, key.locations, key.daily_usd, key.rpm, key.expires_at) == (
        None, None, (), (), None, None, None)
    assert key.metadata == {}


async def test_lookup_by_plaintext(keystore: KeyStore, store: Store) -> None:
    key, plaintext = await keystore.create(spec(team="a"))
    other, _ = await keystore.create(spec(team="b"))
    found = await keystore.lookup(plaintext, T0)
    assert found is not None and found.id == key.id and found.team == "a"
    assert await keystore.lookup(KeyStore.new_plaintext(), T0) is None
    # Another HMAC secret: the same plaintext matches nothing (the digest is keyed).
    assert await KeyStore(store.engine, "another-secret").lookup(plaintext, T0) is None
    assert other.id != key.id


async def test_list_by_team_and_without_revoked(keystore: KeyStore) -> None:
    a, _ = await keystore.create(spec(name="a", team="research"), now=T0)
    b, _ = await keystore.create(spec(name="b", team="ops"), now=T0 + timedelta(seconds=1))
    c, _ = await keystore.create(spec(name="c", team="research"), now=T0 + timedelta(seconds=2))
    await keystore.revoke(c.id)
    assert [k.id for k in await keystore.list()] == [a.id, b.id, c.id]
    assert [k.id for k in await keystore.list(team="research")] == [a.id, c.id]
    assert [k.id for k in await keystore.list(team="research", include_revoked=False)] == [a.id]
    assert await keystore.list(team="nobody") == []


async def test_revoke_is_kept_and_idempotent(keystore: KeyStore) -> None:
    key, plaintext = await keystore.create(KeySpec(), now=T0)
    revoked = await keystore.revoke(key.id, now=T0 + timedelta(minutes=1))
    assert revoked.revoked_at == T0 + timedelta(minutes=1) and revoked.status(T0 + timedelta(hours=1)) == "revoked"
    again = await keystore.revoke(key.id, now=T0 + timedelta(minutes=5))
    assert again.revoked_at == T0 + timedelta(minutes=1)  # the first revocation time stays
    found = await keystore.lookup(plaintext, T0 + timedelta(hours=1))
    assert found is not None and found.revoked_at is not None  # the caller says why it refuses
    with pytest.raises(KeyNotFoundError) as exc:
        await keystore.revoke("key_0000000000000000")
    assert exc.value.status == 404 and exc.value.code == "key_not_found"


async def test_expiry_with_an_injected_now(keystore: KeyStore) -> None:
    key, _ = await keystore.create(spec(expires_in="30d"), now=T0)
    assert key.expires_at == T0 + timedelta(days=30)
    assert key.status(T0 + timedelta(days=29, hours=23)) == "active"
    assert key.status(T0 + timedelta(days=30)) == "expired"
    key2, _ = await keystore.create(spec(expires_at="2026-11-23T13:00:00Z"), now=T0)
    assert key2.status(T0) == "active" and key2.status(T0 + timedelta(hours=2)) == "expired"


async def test_rotate_without_grace_invalidates_the_old_key(keystore: KeyStore) -> None:
    key, old = await keystore.create(spec(name="k", rpm=5), now=T0)
    rotated, new = await keystore.rotate(key.id, now=T0 + timedelta(minutes=1))
    assert new != old and rotated.id == key.id and rotated.prefix == new[:8] + "…"
    assert (rotated.name, rotated.rpm, rotated.created_at) == ("k", 5, T0)
    assert rotated.updated_at == T0 + timedelta(minutes=1) and rotated.prev_valid_until is None
    assert await keystore.lookup(old, T0 + timedelta(minutes=1)) is None
    found = await keystore.lookup(new, T0 + timedelta(minutes=1))
    assert found is not None and found.id == key.id


async def test_rotate_with_grace_keeps_the_old_key_until_it_ends(keystore: KeyStore) -> None:
    key, old = await keystore.create(KeySpec(), now=T0)
    rotated, new = await keystore.rotate(key.id, grace_s=60, now=T0)
    assert rotated.prev_valid_until == T0 + timedelta(seconds=60)
    assert rotated.to_dict(T0)["previous_key_valid_until"] == "2026-11-23T12:01:00Z"
    assert rotated.to_dict(T0 + timedelta(seconds=61))["previous_key_valid_until"] is None
    for plaintext in (old, new):
        found = await keystore.lookup(plaintext, T0 + timedelta(seconds=59))
        assert found is not None and found.id == key.id
    assert await keystore.lookup(old, T0 + timedelta(seconds=60)) is None
    assert (await keystore.lookup(new, T0 + timedelta(days=1))) is not None
    # Rotating again within the grace period: only the latest previous key stays valid.
    _, newest = await keystore.rotate(key.id, grace_s=60, now=T0 + timedelta(seconds=10))
    assert await keystore.lookup(old, T0 + timedelta(seconds=11)) is None
    assert await keystore.lookup(new, T0 + timedelta(seconds=11)) is not None
    assert await keystore.lookup(newest, T0 + timedelta(seconds=11)) is not None
    # Revocation ends the grace period too.
    await keystore.revoke(key.id, now=T0 + timedelta(seconds=12))
    assert await keystore.lookup(new, T0 + timedelta(seconds=13)) is None
    with pytest.raises(KeyRevokedError):
        await keystore.rotate(key.id)
    with pytest.raises(KeyNotFoundError):
        await keystore.rotate("key_0000000000000000")
    with pytest.raises(InvalidRequestError) as exc:
        await keystore.rotate(key.id, grace_s=-1)
    assert exc.value.param == "grace_s"


async def test_update_changes_only_the_given_fields(keystore: KeyStore) -> None:
    key, plaintext = await keystore.create(
        spec(name="k", team="t", models=["a"], daily_usd=5, rpm=10, metadata={"a": 1}), now=T0)
    later = T0 + timedelta(hours=1)
    updated = await keystore.update(key.id, {"daily_usd": None, "models": [], "rpm": 20, "name": "k2"}, now=later)
    assert (updated.name, updated.team, updated.models, updated.daily_usd, updated.rpm) == ("k2", "t", (), None, 20)
    assert updated.metadata == {"a": 1} and updated.updated_at == later and updated.created_at == T0
    updated = await keystore.update(key.id, spec(expires_in="1h"), now=later)
    assert updated.expires_at == later + timedelta(hours=1)
    assert (await keystore.lookup(plaintext, later)) == updated  # the plaintext is unchanged
    unchanged = await keystore.update(key.id, {}, now=later + timedelta(hours=5))
    assert unchanged.updated_at == later
    with pytest.raises(KeyNotFoundError):
        await keystore.update("key_0000000000000000", {"rpm": 1})
    with pytest.raises(InvalidRequestError) as exc:
        await keystore.update(key.id, {"rpm": 0})
    assert exc.value.param == "rpm"


async def _all_rows(store: Store) -> str:
    """Every row of every table, as text."""
    def tables(conn: sa.Connection) -> list[str]:
        return sa.inspect(conn).get_table_names()

    out: list[str] = []
    async with store.engine.connect() as conn:
        for table in await conn.run_sync(tables):
            rows = (await conn.execute(sa.text(f'SELECT * FROM "{table}"'))).all()
            out.extend(f"{table}: {tuple(row)!r}" for row in rows)
    return "\n".join(out)


async def test_the_database_never_holds_a_plaintext(target: Target, keystore: KeyStore, store: Store) -> None:
    plaintexts: list[str] = []
    ids: list[str] = []
    for i in range(5):
        key, plaintext = await keystore.create(spec(name=f"k{i}", team="t", metadata={"i": i}))
        plaintexts.append(plaintext)
        ids.append(key.id)
    for key_id in ids[:3]:
        _, plaintext = await keystore.rotate(key_id, grace_s=300)
        plaintexts.append(plaintext)
    _, plaintext = await keystore.rotate(ids[0])
    plaintexts.append(plaintext)
    await keystore.revoke(ids[4])
    await keystore.update(ids[1], {"name": "renamed"})

    dump = await _all_rows(store)
    assert "renamed" in dump and ids[0] in dump  # we did read the keys' rows
    assert keystore.digest(plaintexts[-1]) in dump  # ... and the digests are what is kept
    for plaintext in plaintexts:
        assert plaintext not in dump
        assert plaintext[3:] not in dump  # not even the random part alone
    if target.backend == "sqlite":
        path = sqlite_file(target.url)
        assert path is not None

        def raw_files() -> dict[str, bytes]:
            return {p.name: p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name)}

        before = raw_files()  # the database, its WAL and shared-memory files as they are now
        assert path.name + "-wal" in before
        await store.close()  # checkpoints the WAL into the database file
        after = raw_files()
        raw = b"".join([*before.values(), *after.values()])
        assert ids[0].encode() in raw
        for plaintext in plaintexts:
            assert plaintext.encode() not in raw and plaintext[3:].encode() not in raw


async def test_sqlite_writes_wait_for_a_busy_writer(sqlite_store_url: str) -> None:
    """Another connection committing all the time (the request log writer) must not make a
    read-then-write operation fail with "database is locked" (BEGIN IMMEDIATE)."""
    import asyncio

    from tiergate.store.models import feedback

    store = await Store.open(sqlite_store_url)
    other = await Store.open(sqlite_store_url, migrate=False)
    keystore = KeyStore(store.engine, "secret")
    stop = asyncio.Event()

    async def busy_writer() -> None:
        n = 0
        while not stop.is_set():
            async with other.engine.begin() as conn:
                await conn.execute(sa.insert(feedback).values(
                    request_id=f"r{n}", score=1.0, created_at=T0, deployment="d", task_class="general"))
            n += 1
            await asyncio.sleep(0)

    writer = asyncio.create_task(busy_writer())
    try:
        key, _ = await keystore.create(KeySpec())
        for i in range(40):
            await keystore.rotate(key.id, grace_s=i % 2)
            await keystore.update(key.id, {"rpm": i + 1})
        assert (await keystore.get(key.id)).rpm == 40
    finally:
        stop.set()
        await writer
        await other.close()
        await store.close()
