"""The admin API over a real gateway process (SQLite store, simulated upstream): issue a key, use
it, refuse it the moment it is revoked; only the master key may administer keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import MASTER_KEY, GatewayProc, Sim, deployment, http_json, start_gateway, start_sim

ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}
CHAT = {"model": "assistant", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProc, Sim]]:
    tmp = tmp_path_factory.mktemp("keys-admin")
    sim = start_sim(tmp, "local")
    gw: GatewayProc | None = None
    try:
        gw = start_gateway(tmp, {
            # A long cache: only invalidation can explain a revocation taking effect at once.
            "server": {"key_cache_ttl_s": 60},
            "deployments": [deployment("local-a", sim, "local"), deployment("cloud-a", sim, "cloud")],
            "model_groups": {"assistant": ["local-a", "cloud-a"]},
        })
        yield gw, sim
    finally:
        if gw is not None:
            gw.stop()
        sim.stop()


def admin(gw: GatewayProc, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
          ) -> tuple[int, Any, dict[str, str]]:
    return http_json(method, f"{gw.base}{path}", body, headers=ADMIN if headers is None else headers)


def chat(gw: GatewayProc, key: str) -> tuple[int, Any, dict[str, str]]:
    return http_json("POST", f"{gw.url}/chat/completions", CHAT, headers={"authorization": f"Bearer {key}"})


def test_issue_use_and_revoke_a_key(world: tuple[GatewayProc, Sim]) -> None:
    gw, _ = world
    status, created, headers = admin(gw, "POST", "/admin/keys", {
        "name": "billing bot", "team": "billing", "models": ["assistant"], "locations": ["local"],
        "daily_usd": 5, "rpm": 100, "expires_in": "30d", "metadata": {"owner": "ops"},
    })
    assert status == 201, created
    assert headers["x-request-id"]
    plaintext = created.pop("key")
    assert plaintext.startswith("tg-") and len(plaintext) == 46
    key_id = created["id"]
    assert created["object"] == "api_key" and created["status"] == "active"
    assert created["prefix"] == plaintext[:8] + "…" and created["team"] == "billing"
    assert created["daily_usd"] == "5" and created["locations"] == ["local"]
    assert not any("hash" in k for k in created)

    status, listed, _ = admin(gw, "GET", "/admin/keys")
    assert status == 200 and listed["object"] == "list"
    assert key_id in [k["id"] for k in listed["data"]]
    assert all("key" not in k for k in listed["data"])  # the plaintext is never shown again
    status, shown, _ = admin(gw, "GET", f"/admin/keys/{key_id}")
    assert status == 200 and shown == {**created, "updated_at": shown["updated_at"]}

    for _ in range(3):
        status, body, headers = chat(gw, plaintext)
        assert status == 200, body
        assert headers["x-tiergate-deployment"] in ("local-a", "cloud-a")
    # x-api-key works too
    status, _, _ = http_json("POST", f"{gw.url}/chat/completions", CHAT, headers={"x-api-key": plaintext})
    assert status == 200

    status, revoked, _ = admin(gw, "POST", f"/admin/keys/{key_id}/revoke")
    assert status == 200 and revoked["status"] == "revoked" and revoked["revoked_at"]
    status, body, _ = chat(gw, plaintext)  # at once, despite key_cache_ttl_s: 60
    assert status == 401
    assert body["error"]["type"] == "authentication_error"
    assert body["error"]["message"] == f"API key {key_id} was revoked at {revoked['revoked_at']}"

    status, body, _ = admin(gw, "POST", f"/admin/keys/{key_id}/rotate")
    assert status == 409 and body["error"]["code"] == "key_revoked"
    status, again, _ = admin(gw, "POST", f"/admin/keys/{key_id}/revoke")
    assert status == 200 and again["revoked_at"] == revoked["revoked_at"]  # idempotent

    status, listed, _ = admin(gw, "GET", "/admin/keys?team=billing&include_revoked=false")
    assert status == 200 and key_id not in [k["id"] for k in listed["data"]]
    status, listed, _ = admin(gw, "GET", "/admin/keys?team=billing")
    assert key_id in [k["id"] for k in listed["data"]]

    log = gw.log()
    assert plaintext not in log and plaintext[3:] not in log and MASTER_KEY not in log
    assert f"revoked API key {key_id}" in log


def test_rotate_with_and_without_grace(world: tuple[GatewayProc, Sim]) -> None:
    gw, _ = world
    _, created, _ = admin(gw, "POST", "/admin/keys", {"name": "rotating"})
    key_id, first = created["id"], created["key"]
    assert chat(gw, first)[0] == 200

    status, rotated, _ = admin(gw, "POST", f"/admin/keys/{key_id}/rotate", {"grace_s": 300})
    assert status == 200 and rotated["id"] == key_id and rotated["previous_key_valid_until"]
    second = rotated["key"]
    assert second != first
    assert chat(gw, first)[0] == 200 and chat(gw, second)[0] == 200  # the grace period

    status, rotated, _ = admin(gw, "POST", f"/admin/keys/{key_id}/rotate")  # no body: no grace
    assert status == 200 and rotated["previous_key_valid_until"] is None
    third = rotated["key"]
    assert chat(gw, first)[0] == 401 and chat(gw, second)[0] == 401  # at once
    assert chat(gw, third)[0] == 200

    status, body, _ = admin(gw, "POST", f"/admin/keys/{key_id}/rotate", {"grace_s": -5})
    assert status == 400 and body["error"]["param"] == "grace_s"
    status, body, _ = admin(gw, "POST", f"/admin/keys/{key_id}/rotate", {"grace": 5})
    assert status == 400 and body["error"]["param"] == "grace"
    log = gw.log()
    assert all(k not in log for k in (first, second, third))


def test_update_takes_effect_at_once(world: tuple[GatewayProc, Sim]) -> None:
    gw, _ = world
    _, created, _ = admin(gw, "POST", "/admin/keys", {"name": "short-lived", "rpm": 10})
    key_id, plaintext = created["id"], created["key"]
    assert chat(gw, plaintext)[0] == 200  # cached now (60 s)
    status, updated, _ = admin(gw, "PATCH", f"/admin/keys/{key_id}", {
        "expires_at": "2020-01-01T00:00:00Z", "rpm": None, "metadata": {"why": "test"}})
    assert status == 200, updated
    assert updated["status"] == "expired" and updated["rpm"] is None and updated["name"] == "short-lived"
    status, body, _ = chat(gw, plaintext)
    assert status == 401 and body["error"]["message"] == f"API key {key_id} expired at 2020-01-01T00:00:00Z"


def test_only_the_master_key_administers_keys(world: tuple[GatewayProc, Sim]) -> None:
    gw, _ = world
    _, created, _ = admin(gw, "POST", "/admin/keys", {"name": "plain user"})
    virtual = {"authorization": f"Bearer {created['key']}"}
    for method, path, body in (
        ("GET", "/admin/keys", None), ("POST", "/admin/keys", {}), ("GET", f"/admin/keys/{created['id']}", None),
        ("PATCH", f"/admin/keys/{created['id']}", {"rpm": 1}),
        ("POST", f"/admin/keys/{created['id']}/revoke", None), ("POST", f"/admin/keys/{created['id']}/rotate", {}),
    ):
        status, answer, headers = admin(gw, method, path, body, headers=virtual)
        assert status == 403, (method, path, answer)
        assert answer["error"]["code"] == "permission_denied" and answer["error"]["type"] == "permission_error"
        assert headers["x-request-id"]
        status, answer, _ = admin(gw, method, path, body, headers={})
        assert status == 401 and answer["error"]["type"] == "authentication_error"
        status, answer, _ = admin(gw, method, path, body, headers={"authorization": "Bearer wrong"})
        assert status == 401
    # The virtual key still works for the API itself, and nothing was changed.
    assert chat(gw, created["key"])[0] == 200


def test_errors_are_openai_shaped(world: tuple[GatewayProc, Sim]) -> None:
    gw, _ = world
    for method, path in (("GET", "/admin/keys/key_0123456789abcdef"), ("GET", "/admin/keys/nonsense"),
                         ("POST", "/admin/keys/key_0123456789abcdef/revoke"),
                         ("POST", "/admin/keys/key_0123456789abcdef/rotate"),
                         ("PATCH", "/admin/keys/key_0123456789abcdef")):
        status, body, _ = admin(gw, method, path, {"name": "x"} if method == "PATCH" else None)
        assert status == 404, (method, path, body)
        assert body["error"]["code"] == "key_not_found" and body["error"]["param"] == "id"
    cases: list[tuple[Any, str | None]] = [
        ({"daily_usd": -1}, "daily_usd"), ({"locations": ["mars"]}, "locations[0]"),
        ({"models": ["no-such-model"]}, "models[0]"), ({"deployments": ["assistant"]}, "deployments[0]"),
        ({"colour": "red"}, "colour"), ({"default_privacy": "nope"}, "default_privacy"), ([1], None),
    ]
    for body, param in cases:
        status, answer, _ = admin(gw, "POST", "/admin/keys", body)
        assert status == 400, (body, answer)
        assert answer["error"]["type"] == "invalid_request_error" and answer["error"]["param"] == param
        assert "Traceback" not in str(answer)
    status, answer, _ = http_json("POST", f"{gw.base}/admin/keys", None, headers=ADMIN)
    assert status == 400 and "empty" in answer["error"]["message"]
    status, answer, _ = admin(gw, "GET", "/admin/keys?include_revoked=maybe")
    assert status == 400 and answer["error"]["param"] == "include_revoked"
    status, answer, _ = admin(gw, "DELETE", "/admin/keys")
    assert status == 405


def test_admin_routes_need_a_master_key_to_exist(tmp_path: Path) -> None:
    """Without a master key the gateway is anonymous and virtual keys are off."""
    sim = start_sim(tmp_path, "local")
    gw = start_gateway(tmp_path, {"deployments": [deployment("local-a", sim, "local")]}, master_key=None)
    try:
        status, body, _ = http_json("GET", f"{gw.base}/admin/keys")
        assert status == 403 and "needs a master key" in body["error"]["message"]
    finally:
        gw.stop()
        sim.stop()
