"""The admission rules of `BudgetManager` (seed 002), with in-memory counters and injected time:
emergency mode and its end at the reset, the per-request share, exhaustion, alerts (a real local
webhook receiver), rate limits and their headers, time-zone boundaries, store outages."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web

from tiergate.auth import Principal
from tiergate.budget.counters import CounterStoreUnavailable
from tiergate.budget.manager import BudgetExceededError
from tiergate.budget.memory import MemoryCounters
from tiergate.budget.policies import Policies
from tiergate.budget.setup import build_budget_manager
from tiergate.budget.windows import period_bounds
from tiergate.config.models import Deployment, Settings
from tiergate.errors import RateLimitError, ServiceUnavailableError

BAKU = ZoneInfo("Asia/Baku")
ANON = Principal(None)


class Clock:
    def __init__(self, when: datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now


def _deployments() -> tuple[Deployment, ...]:
    return (
        Deployment(name="local", model="m", location="local", base_url="http://127.0.0.1:9"),
        # $10 per 1M output tokens: 1,000 output tokens = $0.01.
        Deployment(name="cloud", model="m", location="cloud", base_url="http://127.0.0.1:9",
                   price={"input": "0", "output": "10"}),
        Deployment(name="cloud2", model="m", location="cloud", base_url="http://127.0.0.1:9",
                   price={"input": "0", "output": "20"}),
    )


def manager(budgets: dict[str, Any], clock: Clock, **settings: Any) -> Any:
    s = Settings(budgets=budgets, deployments=_deployments(), **settings)
    return build_budget_manager(s, None, None, clock=clock), {d.name: d for d in s.deployments}


async def settle_all(m: Any) -> None:
    while m._tasks:
        await asyncio.gather(*list(m._tasks))


async def spend(m: Any, d: Deployment, usd: str, rid: str) -> None:
    """One request on `d` that cost `usd`."""
    _kept, _ex, adm = await m.admit(rid, ANON, [d], 1, 1000)
    m.settle(adm, Decimal(usd))
    await settle_all(m)


async def test_emergency_mode_goes_local_below_ten_percent_and_back_after_the_reset() -> None:
    clock = Clock(datetime(2026, 11, 20, 12, 0, tzinfo=BAKU))
    m, d = manager({"monthly_usd": "1.00", "timezone": "Asia/Baku"}, clock)
    both = [d["cloud"], d["local"]]
    kept, excluded, _ = await m.admit("r0", ANON, both, 1, 1000)
    assert [x.name for x in kept] == ["cloud", "local"] and not excluded
    m.settle(_, Decimal(0))
    # Spend $0.905: $0.095 (9.5 %) left -> only the local deployment.
    await spend(m, d["cloud"], "0.905", "r1")
    kept, excluded, adm = await m.admit("r2", ANON, both, 1, 1000)
    assert [x.name for x in kept] == ["local"]
    assert excluded[0].deployment == "cloud" and excluded[0].kind == "budget"
    assert "less than 10%" in excluded[0].reason
    assert adm is not None and adm.emergency and adm.reserved_nano == 0
    # Still the same month one second before midnight local time on the 30th...
    clock.now = datetime(2026, 11, 30, 23, 59, 59, tzinfo=BAKU).timestamp()
    kept, _, _ = await m.admit("r3", ANON, both, 1, 1000)
    assert [x.name for x in kept] == ["local"]
    # ...and a fresh budget at 00:00 on 1 December in Baku (20:00 UTC on the 30th).
    clock.now = datetime(2026, 12, 1, 0, 0, 0, tzinfo=BAKU).timestamp()
    kept, excluded, _ = await m.admit("r4", ANON, both, 1, 1000)
    assert [x.name for x in kept] == ["cloud", "local"] and not excluded


async def test_emergency_local_only_always_routes_local() -> None:
    m, d = manager({"monthly_usd": "100", "emergency_local_only": True}, Clock(datetime(2026, 1, 5)))
    kept, excluded, _ = await m.admit("r", ANON, [d["cloud"], d["local"]], 1, 10)
    assert [x.name for x in kept] == ["local"]
    assert "emergency_local_only" in excluded[0].reason


async def test_one_request_may_use_at_most_five_percent_of_what_remains() -> None:
    m, d = manager({"monthly_usd": "0.30"}, Clock(datetime(2026, 1, 5)))
    # 5 % of $0.30 = $0.015: cloud at 1,000 tokens costs $0.01 (kept), cloud2 $0.02 (dropped).
    kept, excluded, adm = await m.admit("r", ANON, [d["cloud2"], d["cloud"], d["local"]], 1, 1000)
    assert [x.name for x in kept] == ["cloud", "local"]
    assert excluded[0].deployment == "cloud2" and "5%" in excluded[0].reason
    # The reservation is the most the kept candidates can cost.
    assert adm is not None and adm.reserved_nano == 10_000_000
    # Without a free candidate, the request is refused naming the budget.
    with pytest.raises(BudgetExceededError) as info:
        await m.admit("r2", ANON, [d["cloud2"]], 1, 1000)
    assert info.value.code == "budget_exceeded" and info.value.status == 429
    assert info.value.budget is not None and info.value.budget["scope"] == "global"


async def test_exhausted_budget_refuses_with_scope_and_reset_and_free_models_still_work() -> None:
    clock = Clock(datetime(2026, 3, 10, 15, 0, tzinfo=ZoneInfo("UTC")))
    m, d = manager({"daily_usd": "0.02", "max_request_share": 1.0, "emergency_below": 0}, clock)
    await spend(m, d["cloud"], "0.01", "a")
    await spend(m, d["cloud"], "0.01", "b")
    with pytest.raises(BudgetExceededError) as info:
        await m.admit("c", ANON, [d["cloud"]], 1, 1000)
    err = info.value
    body = err.to_dict()["error"]
    assert body["code"] == "budget_exceeded"
    assert body["budget"]["period"] == "daily" and body["budget"]["resets_at"] == "2026-03-11T00:00:00+00:00"
    assert "daily budget of $0.02" in err.message and "resets at 2026-03-11T00:00:00+00:00" in err.message
    assert int(err.headers["retry-after"]) == 9 * 3600
    kept, _, _ = await m.admit("d", ANON, [d["cloud"], d["local"]], 1, 1000)
    assert [x.name for x in kept] == ["local"]


async def test_reservations_make_concurrent_requests_unable_to_overspend() -> None:
    m, d = manager({"monthly_usd": "0.50", "max_request_share": 1.0, "emergency_below": 0},
                   Clock(datetime(2026, 1, 5)))

    async def one(i: int) -> bool:
        try:
            _, _, adm = await m.admit(f"r{i}", ANON, [d["cloud"]], 1, 1000)
        except BudgetExceededError:
            return False
        await asyncio.sleep(0)  # the call: others reserve meanwhile
        m.settle(adm, Decimal("0.01"))
        return True

    results = await asyncio.gather(*(one(i) for i in range(500)))
    await settle_all(m)
    assert sum(results) == 50
    usage = await m.status(m.scopes(ANON))
    assert usage[0]["spent_usd"] == "0.500000" and usage[0]["reserved_usd"] == "0.000000"


async def test_a_cancelled_or_failed_request_releases_its_reservation() -> None:
    m, d = manager({"monthly_usd": "0.01", "max_request_share": 1.0, "emergency_below": 0},
                   Clock(datetime(2026, 1, 5)))
    _, _, adm = await m.admit("r1", ANON, [d["cloud"]], 1, 1000)
    with pytest.raises(BudgetExceededError):  # fully reserved by r1
        await m.admit("r2", ANON, [d["cloud"]], 1, 1000)
    m.settle(adm, None)  # r1 failed upstream: nothing spent
    await settle_all(m)
    _, _, adm3 = await m.admit("r3", ANON, [d["cloud"]], 1, 1000)
    assert adm3 is not None and adm3.reserved_nano == 10_000_000


async def test_alert_at_threshold_posts_the_webhook_once_per_period() -> None:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        m, d = manager(
            {"monthly_usd": "0.10", "alert_webhook": f"http://127.0.0.1:{port}/hook", "max_request_share": 1.0},
            Clock(datetime(2026, 1, 5)),
        )
        for i in range(7):  # $0.07: below 80 %
            await spend(m, d["cloud"], "0.01", f"a{i}")
        assert received == [] and m.stats["alerts"] == 0
        await spend(m, d["cloud"], "0.01", "a7")  # reserving $0.01 on top of $0.07 reaches 80 %
        await spend(m, d["cloud"], "0.01", "a8")
        await settle_all(m)
        assert m.stats["alerts"] == 1 and len(received) == 1
        event = received[0]
        assert event["event"] == "budget_alert" and event["scope"] == "global" and event["period"] == "monthly"
        assert event["limit_usd"] == "0.10" and event["used_share"] >= 0.8
        await m.close()
    finally:
        await runner.cleanup()


async def test_rate_limits_refuse_with_retry_after_and_report_headers() -> None:
    clock = Clock(datetime(2026, 1, 5, 10, 0, 0))
    m, d = manager({"rpm": 3, "tpm": 10_000}, clock)
    heads = []
    for i in range(3):
        _, _, adm = await m.admit(f"r{i}", ANON, [d["local"]], 100, 400)
        heads.append(adm.headers)
        clock.now += 1
    assert [h["x-ratelimit-remaining-requests"] for h in heads] == ["2", "1", "0"]
    assert heads[0]["x-ratelimit-limit-requests"] == "3" and heads[0]["x-ratelimit-limit-tokens"] == "10000"
    assert [h["x-ratelimit-remaining-tokens"] for h in heads] == ["9500", "9000", "8500"]
    assert heads[2]["x-ratelimit-reset-requests"] == "1m0s"
    with pytest.raises(RateLimitError) as info:
        await m.admit("r3", ANON, [d["local"]], 100, 400)
    err = info.value
    # The first request (at t=0) leaves the 60 s window at t=60; now is t=3.
    assert err.headers["retry-after"] == "57" and err.headers["x-ratelimit-remaining-requests"] == "0"
    assert "3 requests per minute" in err.message
    clock.now += 57
    _, _, adm = await m.admit("r4", ANON, [d["local"]], 100, 400)
    assert adm.headers["x-ratelimit-remaining-requests"] == "0"


async def test_a_request_larger_than_the_token_limit_says_so() -> None:
    m, d = manager({"tpm": 1000}, Clock(datetime(2026, 1, 5)))
    with pytest.raises(RateLimitError) as info:
        await m.admit("r", ANON, [d["local"]], 200, 900)
    assert "more than the gateway's limit of 1000 tokens per minute allows at all" in info.value.message


def test_periods_follow_the_configured_time_zone() -> None:
    # 23:30 UTC on 31 Jan is already 1 Feb 03:30 in Baku (UTC+4).
    now = datetime(2026, 1, 31, 23, 30, tzinfo=ZoneInfo("UTC")).timestamp()
    label, start, end = period_bounds("monthly", now, BAKU)
    assert label == "2026-02" and start == datetime(2026, 2, 1, tzinfo=BAKU) and end == datetime(2026, 3, 1, tzinfo=BAKU)
    label, start, end = period_bounds("daily", now, ZoneInfo("UTC"))
    assert label == "2026-01-31" and end == datetime(2026, 2, 1, tzinfo=ZoneInfo("UTC"))
    # A daylight-saving day in Berlin is 23 hours long.
    label, start, end = period_bounds("daily", datetime(2026, 3, 29, 12, tzinfo=ZoneInfo("Europe/Berlin")).timestamp(),
                                      ZoneInfo("Europe/Berlin"))
    assert end.timestamp() - start.timestamp() == 23 * 3600  # wall-clock subtraction would say 24


class _DownCounters(MemoryCounters):
    async def usage(self, windows: Any, now: float) -> Any:
        raise CounterStoreUnavailable("down")

    async def hit(self, limits: Any, now: float) -> Any:
        raise CounterStoreUnavailable("down")

    async def reserve(self, *args: Any) -> Any:
        raise CounterStoreUnavailable("down")


@pytest.mark.parametrize("policy", ["refuse", "allow"])
async def test_unreachable_store_refuses_or_admits_uncounted_as_configured(policy: str) -> None:
    from tiergate.budget.manager import BudgetManager

    s = Settings(budgets={"monthly_usd": "5", "rpm": 10, "on_store_unavailable": policy}, deployments=_deployments())
    m = BudgetManager(s, _DownCounters(), policies=Policies(s), clock=Clock(datetime(2026, 1, 5)), backend="redis")
    cloud = s.deployments[1]
    if policy == "refuse":
        with pytest.raises(ServiceUnavailableError) as info:
            await m.admit("r", ANON, [cloud], 1, 10)
        assert info.value.code == "budget_store_unavailable" and "nothing was sent upstream" in info.value.message
    else:
        kept, _, adm = await m.admit("r", ANON, [cloud], 1, 10)
        assert [x.name for x in kept] == ["cloud"] and m.stats["uncounted"] == 2


async def test_team_and_key_scopes_each_count() -> None:
    from tiergate.keys import VirtualKey

    clock = Clock(datetime(2026, 1, 5))
    s = Settings(budgets={"max_request_share": 1.0, "emergency_below": 0},
                 teams={"research": {"daily_usd": "0.03"}}, deployments=_deployments())
    m = build_budget_manager(s, None, None, clock=clock)
    now = datetime(2026, 1, 1)
    key = VirtualKey(
        id="key_1", prefix="tg-abc", name=None, team="research", models=(), deployments=(), locations=(),
        residencies=(), default_privacy=None, default_strategy=None, daily_usd=Decimal("0.02"), monthly_usd=None,
        rpm=None, tpm=None, expires_at=None, revoked_at=None, metadata={}, created_at=now, updated_at=now,
    )
    p_key = Principal("key_1", team="research", key=key)
    p_team = Principal("key_2", team="research")
    cloud = s.deployments[1]
    for rid in ("a", "b"):
        _, _, adm = await m.admit(rid, p_key, [cloud], 1, 1000)
        m.settle(adm, Decimal("0.01"))
    await settle_all(m)
    with pytest.raises(BudgetExceededError) as info:  # the key's own $0.02
        await m.admit("c", p_key, [cloud], 1, 1000)
    assert info.value.budget["scope"] == "key:key_1"
    _, _, adm = await m.admit("d", p_team, [cloud], 1, 1000)  # the team has $0.01 left
    m.settle(adm, Decimal("0.01"))
    await settle_all(m)
    with pytest.raises(BudgetExceededError) as info:
        await m.admit("e", p_team, [cloud], 1, 1000)
    assert info.value.budget["scope"] == "team:research"
