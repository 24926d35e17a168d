"""`tiergate keys ...` as an operator runs it (subprocesses against a temporary SQLite database),
and a revocation from the CLI reaching a running gateway through Redis."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import MASTER_KEY, clean_env, deployment, http_json, start_gateway, start_sim

CHAT = {"model": "assistant", "messages": [{"role": "user", "content": "hello"}]}


def keys(cwd: Path, config: Path, *args: str, master: str | None = MASTER_KEY) -> subprocess.CompletedProcess[str]:
    env = clean_env(COLUMNS="200")
    if master:
        env["TIERGATE_MASTER_KEY"] = master
    return subprocess.run(
        [sys.executable, "-m", "tiergate", "keys", *args, "--config", str(config)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    db = tmp_path / "keys.db"
    config = tmp_path / "tiergate.yaml"
    config.write_text(yaml.safe_dump({
        "store": {"url": f"sqlite:///{db}"},
        "deployments": [deployment("local-a", "http://127.0.0.1:9/v1", "local")],
        "model_groups": {"assistant": ["local-a"]},
    }))
    return config, db


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def test_create_list_show_revoke_rotate(tmp_path: Path, setup: tuple[Path, Path]) -> None:
    config, db = setup
    created = ok(keys(tmp_path, config, "create", "--name", "ci", "--team", "research", "--model", "assistant",
                      "--location", "local", "--location", "sovereign", "--daily-usd", "2.50", "--rpm", "30",
                      "--privacy", "sensitive", "--expires-in", "7d", "--metadata", '{"owner": "ali"}', "--json"))
    data: dict[str, Any] = json.loads(created.stdout)
    plaintext, key_id = data["key"], data["id"]
    assert plaintext.startswith("tg-") and len(plaintext) == 46
    assert created.stdout.count(plaintext) == 1
    assert "cannot be shown again" in created.stderr and plaintext not in created.stderr
    assert (data["team"], data["models"], data["locations"]) == ("research", ["assistant"], ["local", "sovereign"])
    assert (data["daily_usd"], data["rpm"], data["default_privacy"]) == ("2.5", 30, "SENSITIVE")
    assert data["metadata"] == {"owner": "ali"} and data["expires_at"]

    human = ok(keys(tmp_path, config, "create", "--name", "second"))
    second = [line.split("key: ", 1)[1] for line in human.stdout.splitlines() if line.startswith("key: ")]
    assert len(second) == 1 and second[0].startswith("tg-") and human.stdout.count(second[0]) == 1
    assert "cannot be shown again" in human.stderr

    listed = json.loads(ok(keys(tmp_path, config, "list", "--json")).stdout)
    assert listed["object"] == "list" and len(listed["data"]) == 2
    assert all("key" not in k for k in listed["data"])
    assert [k["id"] for k in json.loads(ok(keys(tmp_path, config, "list", "--team", "research", "--json")).stdout)[
        "data"]] == [key_id]
    table = ok(keys(tmp_path, config, "list")).stdout
    assert key_id in table and "research" in table and "2 API key(s)" in table
    assert plaintext not in table and second[0] not in table

    shown = json.loads(ok(keys(tmp_path, config, "show", key_id, "--json")).stdout)
    assert shown == {k: v for k, v in data.items() if k != "key"}
    assert key_id in ok(keys(tmp_path, config, "show", key_id)).stdout

    rotated = ok(keys(tmp_path, config, "rotate", key_id, "--grace-s", "60", "--json"))
    rdata = json.loads(rotated.stdout)
    assert rdata["id"] == key_id and rdata["key"] != plaintext and rdata["previous_key_valid_until"]
    assert "cannot be shown again" in rotated.stderr

    revoked = ok(keys(tmp_path, config, "revoke", key_id, "--json"))
    assert json.loads(revoked.stdout)["status"] == "revoked"
    assert "no Redis configured" in revoked.stderr
    active = json.loads(ok(keys(tmp_path, config, "list", "--active-only", "--json")).stdout)["data"]
    assert [k["name"] for k in active] == ["second"]

    # Nothing the CLI printed once is in the database.
    with sqlite3.connect(db) as conn:
        rows = repr(conn.execute("SELECT * FROM api_keys").fetchall())
    assert key_id in rows
    for secret in (plaintext, second[0], rdata["key"]):
        assert secret not in rows
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("keys.db"))
    for secret in (plaintext, second[0], rdata["key"]):
        assert secret.encode() not in raw


def test_errors(tmp_path: Path, setup: tuple[Path, Path]) -> None:
    config, _ = setup
    missing = keys(tmp_path, config, "show", "key_0123456789abcdef")
    assert missing.returncode == 1 and "no API key with id 'key_0123456789abcdef'" in missing.stderr
    missing = keys(tmp_path, config, "revoke", "key_0123456789abcdef", "--json")
    assert missing.returncode == 1 and json.loads(missing.stdout)["error"]["code"] == "key_not_found"
    bad = keys(tmp_path, config, "create", "--rpm", "0", "--json")
    assert bad.returncode == 1 and json.loads(bad.stdout)["error"]["param"] == "rpm"
    bad = keys(tmp_path, config, "create", "--model", "gpt-9")
    assert bad.returncode == 1 and "'models[0]'" in bad.stderr
    bad = keys(tmp_path, config, "create", "--metadata", "{not json")
    assert bad.returncode == 2 and "--metadata is not JSON" in bad.stderr
    no_master = keys(tmp_path, config, "create", master=None)
    assert no_master.returncode == 2 and "need a master key" in no_master.stderr
    for result in (missing, bad, no_master):
        assert "Traceback" not in result.stderr + result.stdout


def test_cli_revocation_reaches_a_running_gateway_through_redis(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    sim = start_sim(tmp_path, "local")
    db = tmp_path / "shared.db"
    gw = start_gateway(tmp_path, {
        "server": {"key_cache_ttl_s": 60},
        "store": {"url": f"sqlite:///{db}", "flush_interval_ms": 20},
        "redis": {"url": redis_url, "prefix": redis_prefix},
        "deployments": [deployment("local-a", sim, "local")],
        "model_groups": {"assistant": ["local-a"]},
    })
    try:
        created = json.loads(ok(keys(tmp_path, gw.config_path, "create", "--name", "cli", "--json")).stdout)
        headers = {"authorization": f"Bearer {created['key']}"}
        assert http_json("POST", f"{gw.url}/chat/completions", CHAT, headers=headers)[0] == 200  # cached 60 s
        revoked = ok(keys(tmp_path, gw.config_path, "revoke", created["id"]))
        assert "told 1 running gateway process(es) through Redis" in revoked.stderr
        status, body, _ = http_json("POST", f"{gw.url}/chat/completions", CHAT, headers=headers)
        assert status == 401 and "was revoked at" in body["error"]["message"]
    finally:
        gw.stop()
        sim.stop()
    assert created["key"] not in gw.log()
