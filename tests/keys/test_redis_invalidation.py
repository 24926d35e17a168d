"""Two gateway processes sharing PostgreSQL and Redis: a key revoked (or rotated) through one is
refused by the other at once. `key_cache_ttl_s` is 60, so only the Redis broadcast explains it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis

from tests.support import MASTER_KEY, GatewayProc, deployment, http_json, start_gateway, start_sim

ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}
CHAT = {"model": "assistant", "messages": [{"role": "user", "content": "hello"}]}


def chat(gw: GatewayProc, key: str) -> tuple[int, Any]:
    status, body, _ = http_json("POST", f"{gw.url}/chat/completions", CHAT, headers={"authorization": f"Bearer {key}"})
    return status, body


def _wait_subscribers(redis_url: str, channel: str, n: int, timeout: float = 10.0) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if dict(client.pubsub_numsub(channel)).get(channel.encode(), 0) >= n:
                return
            time.sleep(0.05)
        raise AssertionError(f"fewer than {n} gateways subscribed to {channel}")
    finally:
        client.close()


def test_revocation_through_one_gateway_reaches_the_other_at_once(
    tmp_path: Path, pg_database: str, redis_url: str, redis_prefix: str
) -> None:
    sim = start_sim(tmp_path, "local")
    config = {
        "server": {"key_cache_ttl_s": 60},
        "store": {"url": pg_database, "flush_interval_ms": 20},
        "redis": {"url": redis_url, "prefix": redis_prefix},
        "deployments": [deployment("local-a", sim, "local")],
        "model_groups": {"assistant": ["local-a"]},
    }
    gws: list[GatewayProc] = []
    try:
        gws = [start_gateway(tmp_path, config), start_gateway(tmp_path, config)]
        a, b = gws
        _wait_subscribers(redis_url, f"{redis_prefix}:keys", 2)

        status, created, _ = http_json("POST", f"{a.base}/admin/keys", {"name": "shared", "team": "t"}, headers=ADMIN)
        assert status == 201, created
        plaintext, key_id = created["key"], created["id"]
        for gw in (a, b):  # both processes now hold the key in their caches (60 s)
            for _ in range(2):
                assert chat(gw, plaintext)[0] == 200
        status, shown, _ = http_json("GET", f"{b.base}/admin/keys/{key_id}", headers=ADMIN)
        assert status == 200 and shown["name"] == "shared"  # one database

        # Rotation through B, without grace: A refuses the old plaintext at once.
        status, rotated, _ = http_json("POST", f"{b.base}/admin/keys/{key_id}/rotate", {}, headers=ADMIN)
        assert status == 200
        new = rotated["key"]
        assert chat(a, plaintext)[0] == 401
        assert chat(a, new)[0] == 200 and chat(b, new)[0] == 200

        # Revocation through A: B refuses at once.
        status, revoked, _ = http_json("POST", f"{a.base}/admin/keys/{key_id}/revoke", headers=ADMIN)
        assert status == 200
        status, body = chat(b, new)
        assert status == 401
        assert body["error"]["message"] == f"API key {key_id} was revoked at {revoked['revoked_at']}"
        assert chat(a, new)[0] == 401
    finally:
        for gw in gws:
            gw.stop()
        sim.stop()
    for gw in gws:
        log = gw.log()
        assert plaintext not in log and new not in log and MASTER_KEY not in log
