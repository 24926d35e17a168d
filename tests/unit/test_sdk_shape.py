"""The SDK's request shapes and pure rules: the body it builds (routing hints in `metadata`),
tier resolution, fallback eligibility, the daily cost guard and bounded fan-out. No network:
the in-process gateway's `chat` is replaced by a recorder that refuses every call."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Mapping

import pytest

from tiergate.config.models import Deployment, Settings
from tiergate.errors import (
    AllCandidatesFailedError,
    GatewayError,
    InvalidRequestError,
    PolicyError,
    RateLimitError,
    UpstreamConnectionError,
    UpstreamStatusError,
)
from tiergate.sdk import (
    DailyCostGuard,
    DailyCostLimitError,
    LLMResponse,
    Route,
    Tiergate,
    TierNotConfiguredError,
    _body,
    _bounded,
    _falls_back,
    _SyncAPI,
    allm_call,
    configure,
    llm_call,
    resolve_target,
    resolve_tier,
)


class Captured(InvalidRequestError):
    """Raised by the recorder: a 400, so the SDK never falls back on it."""


def _tiergate(groups: Mapping[str, tuple[str, ...]] | None = None) -> tuple[Tiergate, list[dict[str, Any]]]:
    deployments = tuple(
        Deployment(name=n, base_url="http://127.0.0.1:9/v1", model=f"{n}-m", location=loc)  # type: ignore[arg-type]
        for n, loc in (("box", "local"), ("az", "sovereign"), ("us", "cloud"))
    )
    settings = Settings(deployments=deployments, model_groups=dict(groups or {"default": ("us", "az", "box")}))
    tg = Tiergate(settings)
    bodies: list[dict[str, Any]] = []

    async def chat(body: Any, **_: Any) -> Any:
        bodies.append(body)
        raise Captured("captured")

    tg.gateway.chat = chat  # type: ignore[method-assign]
    return tg, bodies


@pytest.fixture(autouse=True)
def _fresh_config() -> Iterator[None]:
    configure()
    yield
    configure()


def test_body_carries_hints_in_metadata() -> None:
    b = _body("hi", "default", {"privacy": "high"}, False, {"metadata": {"trace": "t1"}, "max_tokens": 5}, True)
    assert b == {
        "model": "default", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5,
        "metadata": {"trace": "t1", "constraints": {"privacy": "high"}, "auto_route": True},
    }
    assert "metadata" not in _body("hi", "default", None, False, {})  # nothing to say: no metadata
    assert _body("hi", "m", None, True, {}, True)["metadata"] == {"auto_route": True}


def test_llm_call_auto_route_body() -> None:
    tg, bodies = _tiergate()
    try:
        with pytest.raises(Captured):
            llm_call("Explain quantum computing", auto_route=True, config=tg)
        with pytest.raises(Captured):
            llm_call("plain", config=tg, constraints={"max_cost": 0.01})
    finally:
        tg.close()
    assert bodies[0]["metadata"] == {"auto_route": True}
    assert bodies[0]["model"] == "default"
    assert bodies[1]["metadata"] == {"constraints": {"max_cost": 0.01}}


def test_shortcut_bodies() -> None:
    tg, bodies = _tiergate({"default": ("us", "az", "box"), "claude": ("us",)})
    try:
        for call in (llm_call.local, llm_call.sovereign, llm_call.cloud, llm_call.frontier, llm_call.gpu, llm_call.claude):
            with pytest.raises(Captured):
                call("x", config=tg, auto_route=True)
        with pytest.raises(Captured):
            llm_call.local("x", model="box", config=tg, constraints={"privacy": "high"})
    finally:
        tg.close()
    got = [(b["model"], b["metadata"].get("constraints")) for b in bodies]
    assert got == [
        ("default", {"allowed_locations": ["local"]}),
        ("default", {"allowed_locations": ["sovereign"]}),
        ("default", {"allowed_locations": ["cloud"]}),
        ("default", {"allowed_locations": ["cloud"]}),
        ("default", {"allowed_locations": ["sovereign", "cloud"], "optimize": "throughput"}),
        ("claude", None),
        ("box", {"privacy": "high", "allowed_locations": ["local"]}),
    ]
    assert all(b["metadata"].get("auto_route") is True for b in bodies[:6])


async def test_async_shortcuts_and_batch_bodies() -> None:
    tg, bodies = _tiergate()
    try:
        with pytest.raises(Captured):
            await allm_call.sovereign("x", config=tg)
        with pytest.raises(Captured):
            await allm_call("x", config=tg, auto_route=True)
        out = await allm_call.batch(["a", "b", "c"], config=tg, concurrency=2)
        assert [type(o) for o in out] == [Captured, Captured, Captured]
        await allm_call.batch(["d"], config=tg, constraints={"privacy": "high"})
    finally:
        await tg.aclose()
    assert bodies[0]["metadata"]["constraints"] == {"allowed_locations": ["sovereign"]}
    assert bodies[1]["metadata"] == {"auto_route": True}
    assert [b["metadata"]["constraints"] for b in bodies[2:5]] == [{"optimize": "throughput"}] * 3
    assert sorted(b["messages"][0]["content"] for b in bodies[2:5]) == ["a", "b", "c"]
    assert bodies[5]["metadata"]["constraints"] == {"privacy": "high"}  # own constraints as given


def test_default_tier_sets_the_model() -> None:
    tg, bodies = _tiergate({"default": ("us", "az", "box"), "fast": ("box",)})
    try:
        configure(default_tier="fast", config=tg)
        with pytest.raises(Captured):
            llm_call("x")
        configure(default_tier="ollama", config=tg)  # the seed's name for the local tier
        with pytest.raises(Captured):
            llm_call("x")
        with pytest.raises(Captured):
            llm_call("x", model="default")  # an explicit model wins over default_tier
    finally:
        tg.close()
    assert [(b["model"], b.get("metadata")) for b in bodies] == [
        ("fast", None),
        ("default", {"constraints": {"allowed_locations": ["local"]}}),
        ("default", None),
    ]


@pytest.mark.parametrize(
    ("tier", "groups", "model", "expect"),
    [
        ("local", (), None, Route("default", {"allowed_locations": ["local"]}, "local")),
        ("sovereign", (), None, Route("default", {"allowed_locations": ["sovereign"]}, "sovereign")),
        ("cloud", (), None, Route("default", {"allowed_locations": ["cloud"]}, "cloud")),
        ("frontier", (), None, Route("default", {"allowed_locations": ["cloud"]}, "frontier")),
        ("gpu", (), None, Route("default", {"allowed_locations": ["sovereign", "cloud"], "optimize": "throughput"}, "gpu")),
        ("gpu", ("gpu",), None, Route("gpu", None, "gpu")),
        ("cloud", ("cloud",), "gpt-4", Route("gpt-4", None, "cloud:gpt-4")),
        ("claude", ("claude",), None, Route("claude", None, "claude")),
        ("claude", (), "claude-3-opus", Route("claude-3-opus", None, "claude:claude-3-opus")),
        # privacy tiers keep their promise whatever names the model
        ("local", ("local",), None, Route("local", {"allowed_locations": ["local"]}, "local")),
        ("local", (), "llama3:8b", Route("llama3:8b", {"allowed_locations": ["local"]}, "local:llama3:8b")),
        ("sovereign", (), "az", Route("az", {"allowed_locations": ["local", "sovereign"]}, "sovereign:az")),
    ],
)
def test_resolve_tier_table(tier: str, groups: tuple[str, ...], model: str | None, expect: Route) -> None:
    assert resolve_tier(tier, model=model, groups=groups) == expect


def test_resolve_tier_errors_and_narrowing() -> None:
    with pytest.raises(TierNotConfiguredError) as e:
        resolve_tier("claude", groups=("default", "local"))
    assert "model group named 'claude'" in e.value.message and "model_groups" in e.value.message
    assert e.value.status == 404
    with pytest.raises(ValueError, match="unknown tier"):
        resolve_tier("quantum")
    narrowed = resolve_tier("gpu", constraints={"allowed_locations": ["cloud", "local"], "optimize": "cost"})
    assert narrowed.constraints == {"allowed_locations": ["cloud"], "optimize": "cost"}  # caller's optimize kept
    with pytest.raises(InvalidRequestError, match="no location is left"):
        resolve_tier("local", constraints={"allowed_locations": ["cloud"]})


def test_resolve_target() -> None:
    assert resolve_target("fast", groups=("fast",)) == Route("fast", None, "fast")
    assert resolve_target("ollama", groups=()) == Route("default", {"allowed_locations": ["local"]}, "ollama")
    assert resolve_target("ollama", groups=("ollama",)) == Route("ollama", None, "ollama")  # a group wins
    assert resolve_target("litellm").constraints == {"allowed_locations": ["cloud"]}
    assert resolve_target("nope", constraints={"max_cost": 1}) == Route("nope", {"max_cost": 1}, "nope")


@pytest.mark.parametrize(
    ("exc", "falls_back"),
    [
        (AllCandidatesFailedError([UpstreamConnectionError("down", deployment="a")]), True),  # 502
        (UpstreamStatusError("busy", upstream_status=503), True),
        (UpstreamStatusError("slow down", upstream_status=429), True),
        (UpstreamStatusError("keys", upstream_status=401), True),  # the gateway's own credentials
        (GatewayError("remote 504", status=504), True),
        (UpstreamStatusError("bad", upstream_status=400), False),
        (PolicyError("private data"), False),  # never retried on another tier
        (InvalidRequestError("bad"), False),
        (GatewayError("no such model", status=404, code="model_not_found"), False),
        (DailyCostLimitError("limit"), False),
        (RateLimitError("key rate limit"), True),
    ],
)
def test_falls_back(exc: GatewayError, falls_back: bool) -> None:
    assert _falls_back(exc) is falls_back


def test_daily_cost_guard_counts_a_utc_day() -> None:
    now = [datetime(2025, 3, 1, 23, 59, tzinfo=timezone.utc)]
    guard = DailyCostGuard(0.01, clock=lambda: now[0])
    guard.check()
    guard.charge(0.004)
    guard.charge(None)
    guard.check()
    guard.charge(0.006)
    with pytest.raises(DailyCostLimitError) as e:
        guard.check()
    assert "$0.01" in e.value.message and "2025-03-01" in e.value.message and e.value.status == 429
    now[0] += timedelta(minutes=2)  # a new UTC day
    assert guard.spent_usd == 0.0
    guard.check()
    # a local time zone is counted by its UTC day
    now[0] = datetime(2025, 3, 2, 1, 0, tzinfo=timezone(timedelta(hours=4)))  # 21:00 UTC on the 1st
    assert guard.spent_usd == 0.0
    with pytest.raises(ValueError):
        DailyCostGuard(-1)
    with pytest.raises(DailyCostLimitError):
        DailyCostGuard(0).check()  # zero: nothing may be spent


async def test_bounded_keeps_order_and_the_bound() -> None:
    in_flight = peak = 0

    async def work(i: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001 * (i % 3))
        in_flight -= 1
        if i == 5:
            raise ValueError("item 5")
        return i * 10

    out = await _bounded(list(range(20)), work, 4)
    assert peak == 4
    assert [o for i, o in enumerate(out) if i != 5] == [i * 10 for i in range(20) if i != 5]
    assert isinstance(out[5], ValueError)
    assert await _bounded([], work, 4) == []
    with pytest.raises(ValueError, match="concurrency"):
        await _bounded([1], work, 0)


class _Recorder(_SyncAPI):
    """A client that answers from a script, to check the SDK's fallback and logging logic."""

    def __init__(self, fail: Mapping[str, GatewayError], groups: frozenset[str]) -> None:
        self.fail, self.groups, self.calls = fail, groups, []  # type: list[tuple[str, Any]]

    async def amodel_names(self) -> frozenset[str]:
        return self.groups

    async def acall(self, prompt_or_messages: Any, model: str = "default", constraints: Mapping[str, Any] | None = None,
                    *, auto_route: bool = False, **params: Any) -> LLMResponse:
        self.calls.append((model, constraints))
        if model in self.fail:
            raise self.fail[model]
        return LLMResponse("ok", model, f"{model}-dep", "local", "on-prem", "PUBLIC", "r1",
                           {"prompt_tokens": 3, "completion_tokens": 2}, {}, 0.5)


def test_fallback_chain_order_and_notes() -> None:
    rec = _Recorder({"a": GatewayError("down", status=502, code="all_upstreams_failed"),
                     "b": GatewayError("busy", status=503)}, frozenset({"a", "b", "c"}))
    try:
        configure(default_tier="a", fallback_chain=["a", "b", "c"], config=rec)
        r = llm_call("x", constraints={"privacy": "high"})
        assert isinstance(r, LLMResponse) and r.deployment == "c-dep"
        assert rec.calls == [("a", {"privacy": "high"}), ("b", {"privacy": "high"}), ("c", {"privacy": "high"})]
        rec.calls.clear()
        r = llm_call("x", model="b")  # in the chain: only the entries after it
        assert r.deployment == "c-dep" and [m for m, _ in rec.calls] == ["b", "c"]
        rec.calls.clear()
        rec.fail["c"] = GatewayError("gone", status=502)
        rec.fail["zzz"] = GatewayError("no", status=500)
        with pytest.raises(GatewayError) as e:
            llm_call("x", model="zzz")  # not in the chain: then the whole chain
        assert [m for m, _ in rec.calls] == ["zzz", "a", "b", "c"]
        assert "zzz: 500" in "".join(e.value.__notes__) and "b: 503" in "".join(e.value.__notes__)
        rec.calls.clear()
        rec.fail["p"] = PolicyError("private")
        with pytest.raises(PolicyError):
            llm_call("x", model="p")
        assert [m for m, _ in rec.calls] == ["p"]  # a privacy refusal is final
    finally:
        rec.close()


def test_cost_guard_through_llm_call() -> None:
    rec = _Recorder({}, frozenset({"default"}))
    try:
        configure(cost_limit_daily=1.0, config=rec)
        assert [isinstance(x, LLMResponse) for x in llm_call.batch(["1", "2"], concurrency=1)] == [True, True]
        with pytest.raises(DailyCostLimitError):
            llm_call("3")
        assert len(rec.calls) == 2
        out = llm_call.batch(["4", "5"])
        assert all(isinstance(x, DailyCostLimitError) for x in out)
        configure(config=rec)  # a new configuration: no limit
        assert llm_call("6").text == "ok"
    finally:
        rec.close()
