"""Budgets and rate limits end to end (issue 6): real gateway processes, a real simulated upstream
process, SQLite or PostgreSQL + Redis shared by two gateways.

Costs are made exact so counts can be exact: the paid deployment charges only output tokens
($1,000 per 1M, so $0.001 a token) and every request asks for `max_tokens: 8`, which the
simulator fills completely: each answer costs exactly the $0.008 it reserved.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import MASTER_KEY, GatewayProc, Sim, deployment, http_json, start_gateway, start_sim

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
PER_REQUEST = Decimal("0.008")
BODY = {
    "model": "paid",
    "max_tokens": 8,
    "messages": [{"role": "user", "content": "Write a long paragraph about the Caspian Sea and its shores."}],
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    s = start_sim(tmp_path_factory.mktemp("sim"), "cloud")
    yield s
    s.stop()


def _config(sim: Sim, budgets: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "deployments": [
            deployment("paid", sim, "cloud", price={"input": 0, "output": 1000}, max_concurrency=1000),
        ],
        "budgets": budgets,
        "routing": {"health_probe_interval_s": 0, "retries": {"attempts": 1}},
        **extra,
    }


async def _fire(urls: list[str], n: int, body: dict[str, Any] = BODY) -> list[tuple[int, dict[str, Any], dict[str, str]]]:
    """`n` concurrent requests, spread round-robin over `urls`."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=90)) as session:

        async def one(i: int) -> tuple[int, dict[str, Any], dict[str, str]]:
            async with session.post(f"{urls[i % len(urls)]}/chat/completions", json=body, headers=AUTH) as r:
                return r.status, await r.json(), {k.lower(): v for k, v in r.headers.items()}

        return await asyncio.gather(*(one(i) for i in range(n)))


def _check_overflow(results: list[tuple[int, dict[str, Any], dict[str, str]]], covered: int) -> Decimal:
    statuses = Counter(status for status, _, _ in results)
    assert statuses == {200: covered, 429: len(results) - covered}, statuses
    spent = Decimal(0)
    for status, body, headers in results:
        if status == 200:
            assert Decimal(headers["x-tiergate-cost-usd"]) == PER_REQUEST
            spent += Decimal(headers["x-tiergate-cost-usd"])
        else:
            assert body["error"]["code"] == "budget_exceeded", body
            assert body["error"]["budget"]["scope"] == "global"
            assert "resets at" in body["error"]["message"]
            assert int(headers["retry-after"]) > 0
    return spent


def test_500_concurrent_requests_against_a_budget_for_50_on_sqlite(sim: Sim, tmp_path: Path) -> None:
    budget = PER_REQUEST * 50
    gw = start_gateway(tmp_path, _config(sim, {"monthly_usd": str(budget), "max_request_share": 1.0,
                                                "emergency_below": 0}))
    try:
        results = asyncio.run(_fire([gw.url], 500))
        spent = _check_overflow(results, 50)
        assert spent <= budget + PER_REQUEST
        status, body, _ = http_json("GET", f"{gw.base}/admin/budgets", headers=AUTH)
        assert status == 200, body
        monthly = next(b for b in body["data"] if b["scope"] == "global" and b["period"] == "monthly")
        assert Decimal(monthly["spent_usd"]) == spent and Decimal(monthly["reserved_usd"]) == 0
        report = _report_when(gw, lambda r: sum(g["requests"] for g in r["groups"]) == 500)
        dep = next(d for d in report["deployments"] if d["deployment"] == "paid")
        group = next(g for g in report["groups"] if g["model_group"] == "paid")
        assert dep["requests"] == 50 and Decimal(str(dep["spend_usd"])) == spent and dep["errors"] == 0
        assert group["requests"] == 500 and group["errors"] == 450
    finally:
        gw.stop()
    # The ledger (request log) agrees with what the clients were charged.
    with sqlite3.connect(gw.db_path) as db:
        rows = db.execute("SELECT status_code, cost_usd FROM request_log").fetchall()
    assert Counter(r[0] for r in rows) == {200: 50, 429: 450}
    assert sum(Decimal(str(r[1])) for r in rows if r[0] == 200) == spent


def _report_when(gw: GatewayProc, ready: Any, timeout: float = 10.0) -> dict[str, Any]:
    """GET /admin/report once the batched request log holds what `ready` wants."""
    deadline = time.monotonic() + timeout
    while True:
        status, report, _ = http_json("GET", f"{gw.base}/admin/report?days=1", headers=AUTH)
        assert status == 200, report
        if ready(report) or time.monotonic() > deadline:
            return report
        time.sleep(0.05)


def _two_gateways(tmp: Path, config: dict[str, Any]) -> list[GatewayProc]:
    gws: list[GatewayProc] = []
    try:
        for _ in range(2):
            gws.append(start_gateway(tmp, config))
    except BaseException:
        for g in gws:
            g.stop()
        raise
    return gws


def test_two_workers_on_one_sqlite_file_share_the_budget_through_the_database(sim: Sim, tmp_path: Path) -> None:
    """`--workers 2` without Redis: the budget counters live in the SQLite file both share."""
    budget = PER_REQUEST * 20
    gw = start_gateway(tmp_path, _config(sim, {"monthly_usd": str(budget), "max_request_share": 1.0,
                                                "emergency_below": 0}), workers=2)
    try:
        status, body, _ = http_json("GET", f"{gw.base}/admin/budgets", headers=AUTH)
        assert body["backend"] == "database"
        results = asyncio.run(_fire([gw.url], 200))
        spent = _check_overflow(results, 20)
        assert spent <= budget
    finally:
        gw.stop()


def test_500_concurrent_requests_over_two_gateways_sharing_postgres_and_redis(
    sim: Sim, tmp_path: Path, pg_database: str, redis_url: str, redis_prefix: str
) -> None:
    budget = PER_REQUEST * 50
    config = _config(
        sim, {"monthly_usd": str(budget), "max_request_share": 1.0, "emergency_below": 0},
        store={"url": pg_database, "flush_interval_ms": 20},
        redis={"url": redis_url, "prefix": redis_prefix},
    )
    gws = _two_gateways(tmp_path, config)
    try:
        results = asyncio.run(_fire([g.url for g in gws], 500))
        spent = _check_overflow(results, 50)
        assert spent <= budget + PER_REQUEST
        # Exactly 50 over both: each gateway alone would have admitted 50, so the budget was
        # shared (which gateway got them is up to scheduling).
    finally:
        for g in gws:
            g.stop()


def test_rate_limit_is_shared_by_two_gateways_through_redis(sim: Sim, tmp_path: Path, redis_url: str,
                                                            redis_prefix: str) -> None:
    config = _config(sim, {"rpm": 20}, redis={"url": redis_url, "prefix": redis_prefix})
    config["deployments"][0]["price"] = {"input": 0, "output": 0}
    gws = _two_gateways(tmp_path, config)
    try:
        seen: list[tuple[int, dict[str, str]]] = []
        for i in range(40):  # alternating between the two gateways, one at a time
            status, body, headers = http_json("POST", f"{gws[i % 2].url}/chat/completions", BODY, headers=AUTH)
            headers = {k.lower(): v for k, v in headers.items()}
            seen.append((status, headers))
            if status == 429:
                assert body["error"]["code"] == "rate_limit_exceeded"
                assert "20 requests per minute" in body["error"]["message"]
        statuses = [s for s, _ in seen]
        assert statuses == [200] * 20 + [429] * 20
        remaining = [int(h["x-ratelimit-remaining-requests"]) for _, h in seen]
        assert remaining[:20] == list(range(19, -1, -1)) and set(remaining[20:]) == {0}
        for status, h in seen:
            assert h["x-ratelimit-limit-requests"] == "20"
            assert h["x-ratelimit-reset-requests"].endswith("s")
            if status == 429:
                assert 1 <= int(h["retry-after"]) <= 60
        # Concurrent bursts on both gateways: still nothing beyond the limit.
        results = asyncio.run(_fire([g.url for g in gws], 50))
        assert {s for s, _, _ in results} == {429}
    finally:
        for g in gws:
            g.stop()


def test_deployment_quota_falls_back_to_the_next_deployment(sim: Sim, tmp_path: Path) -> None:
    config = {
        "deployments": [
            deployment("groq-free", sim, "cloud", rpm=3),
            deployment("backup", sim, "cloud"),
        ],
        "model_groups": {"chat": ["groq-free", "backup"]},
        "routing": {"health_probe_interval_s": 0},
    }
    gw = start_gateway(tmp_path, config)
    try:
        used = []
        for _ in range(6):
            status, body, headers = http_json("POST", f"{gw.url}/chat/completions", {**BODY, "model": "chat"},
                                              headers=AUTH)
            assert status == 200, body
            used.append(headers["x-tiergate-deployment"])
        assert used == ["groq-free"] * 3 + ["backup"] * 3
    finally:
        gw.stop()


def test_budget_env_variables_from_the_seeds(sim: Sim, tmp_path: Path) -> None:
    """LLM_MONTHLY_BUDGET / GENAI_BUDGET_DAILY / COST_ALERT_THRESHOLD / EMERGENCY_LOCAL_ONLY."""
    config = {
        "deployments": [deployment("paid", sim, "cloud", price={"input": 0, "output": 1000}),
                        deployment("home", sim, "local")],
        "model_groups": {"chat": ["paid", "home"]},
        "routing": {"health_probe_interval_s": 0},
    }
    env = {"LLM_MONTHLY_BUDGET": "250", "GENAI_BUDGET_DAILY": "10.00", "COST_ALERT_THRESHOLD": "0.5",
           "EMERGENCY_LOCAL_ONLY": "true"}
    gw = start_gateway(tmp_path, config, env=env)
    try:
        status, body, _ = http_json("GET", f"{gw.base}/admin/budgets", headers=AUTH)
        assert status == 200
        limits = {(b["scope"], b["period"]): b["limit_usd"] for b in body["data"]}
        assert limits == {("global", "daily"): "10.00", ("global", "monthly"): "250.00"}
        status, body, headers = http_json("POST", f"{gw.url}/chat/completions", {**BODY, "model": "chat"},
                                          headers=AUTH)
        assert status == 200 and headers["x-tiergate-deployment"] == "home"  # EMERGENCY_LOCAL_ONLY
    finally:
        gw.stop()
    assert os.environ.get("LLM_MONTHLY_BUDGET") is None  # the test's own process was not changed
