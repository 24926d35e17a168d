"""The router's attempt loop (routing/router.py) with stand-in upstream calls: the failover
budget, the reserve it keeps for the fallback, and what counts against a deployment."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import pytest

from tiergate.config.models import Deployment, Settings
from tiergate.errors import AllCandidatesFailedError, UpstreamError
from tiergate.routing.router import Router


@dataclass
class Attempts:
    attempts: list[UpstreamError] = field(default_factory=list)
    upstream_s: float = 0.0


def _router(budget_s: float, *names: str) -> tuple[Router, list[Deployment]]:
    settings = Settings.model_validate({
        "deployments": [{"name": n, "base_url": "http://127.0.0.1:9/v1", "model": "m", "location": "cloud"}
                        for n in names],  # timeout_s: the default 60 s, longer than the budget
        "routing": {"max_failover_s": budget_s, "health_probe_interval_s": 0, "learning": False},
    })
    return Router(settings, {}), list(settings.deployments)


async def test_a_hanging_first_candidate_leaves_the_fallback_time_to_answer() -> None:
    router, (hang, ok) = _router(0.6, "hang", "ok")

    async def call(d: Deployment) -> str:
        if d.name == "hang":
            await asyncio.sleep(30)
        return d.name

    t0 = time.monotonic()
    ctx = Attempts()
    d, answer, _ = await router.first_success(ctx, [hang, ok], call)
    assert (d.name, answer) == ("ok", "ok")
    assert time.monotonic() - t0 < 0.6
    assert [a.code for a in ctx.attempts] == ["upstream_timeout"]
    assert router.health.stats("hang").failures == 1 and router.health.stats("ok").successes == 1


async def test_budget_exhaustion_is_no_verdict_on_the_deployment() -> None:
    router, (slow,) = _router(0.2, "slow")

    async def call(d: Deployment) -> str:
        await asyncio.sleep(30)
        return "never"

    ctx = Attempts()
    with pytest.raises(AllCandidatesFailedError) as e:
        await router.first_success(ctx, [slow], call)
    assert e.value.status == 504
    assert [a.code for a in ctx.attempts] == ["failover_budget_exhausted"]
    assert router.health.stats("slow").failures == 0  # the budget ran out, not the deployment
