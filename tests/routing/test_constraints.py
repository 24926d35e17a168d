"""Per-request constraints: what a request needs, and the reason each deployment fails it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tiergate.config.models import Deployment, Price
from tiergate.errors import InvalidRequestError
from tiergate.routing.constraints import RequestNeeds, check, usd
from tiergate.routing.eligible import predicted_cost


def dep(name: str, location: str = "cloud", **kw) -> Deployment:
    return Deployment(name=name, model="m", location=location, **kw)


LOCAL = dep("local-a", "local", quality=0.45, capabilities=("tools", "json"), context_length=4096, latency_ms=900)
CLOUD = dep("cloud-a", price=Price(input=Decimal("3"), output=Decimal("15")), quality=0.95, latency_ms=350)
PLAIN = dep("plain", "sovereign")  # describes no capabilities


def body(text: str = "x" * 4000, **kw) -> dict:
    return {"model": "g", "messages": [{"role": "user", "content": text}], **kw}


def test_from_body_reads_the_request_once() -> None:
    b = body(
        max_tokens=200, stream=True, tools=[{"type": "function", "function": {"name": "f"}}],
        response_format={"type": "json_schema", "json_schema": {}},
    )
    b["messages"].append({"role": "user", "content": [
        {"type": "text", "text": "y" * 400}, {"type": "image_url", "image_url": {"url": "data:,"}},
    ]})
    n = RequestNeeds.from_body(b, {"capabilities": ["reasoning"], "allowed_locations": ["cloud", "local"]})
    assert (n.prompt_tokens, n.max_tokens, n.explicit_max_tokens) == (1100, 200, 200)
    assert n.stream and n.tools and n.vision and n.json
    assert n.capabilities == {"reasoning"}
    assert n.allowed_locations == ("local", "cloud")  # canonical order
    plain = RequestNeeds.from_body(body("hi"), None)
    assert (plain.prompt_tokens, plain.max_tokens, plain.explicit_max_tokens) == (1, 1024, None)
    assert not (plain.tools or plain.vision or plain.json or plain.stream)
    assert RequestNeeds.from_body(body(max_completion_tokens=64), {}).max_tokens == 64


def test_no_constraints_pass_everything() -> None:
    n = RequestNeeds.from_body(body(), {})
    assert [check(d, n) for d in (LOCAL, CLOUD, PLAIN)] == [None, None, None]


@pytest.mark.parametrize(
    ("constraints", "d", "reason"),
    [
        ({"exclude": ["cloud-a"]}, CLOUD, "cloud-a: excluded by request"),
        ({"allowed_locations": ["local", "sovereign"]}, CLOUD,
         "cloud-a: location cloud not in allowed_locations [local, sovereign]"),
        ({"min_quality": 0.8}, LOCAL, "local-a: quality 0.45 < min_quality 0.8"),
        ({"capabilities": ["vision"]}, LOCAL, "local-a: lacks capability vision"),
        ({"capabilities": ["tools"]}, PLAIN, "plain: lacks capability tools"),  # explicit: strict
        ({"max_latency_ms": 500}, LOCAL, "local-a: max_latency_ms expected 900 ms > 500 ms"),
        ({"max_cost": 0.001}, CLOUD, "cloud-a: max_cost $0.01836 > $0.001"),
    ],
)
def test_each_constraint_names_itself(constraints: dict, d: Deployment, reason: str) -> None:
    assert check(d, RequestNeeds.from_body(body(), constraints)) == reason


def test_max_cost_matches_the_decimal_prediction_at_the_boundary() -> None:
    n = RequestNeeds.from_body(body(), {})
    exact = predicted_cost(CLOUD, n.prompt_tokens, n.max_tokens)  # $0.01836
    assert check(CLOUD, RequestNeeds.from_body(body(), {"max_cost": str(exact)})) is None
    assert check(CLOUD, RequestNeeds.from_body(body(), {"max_cost": float(exact) * 0.999})) is not None
    assert usd(exact) == "$0.01836" and usd(Decimal(0)) == "$0"


def test_implied_needs_exclude_only_deployments_that_describe_capabilities() -> None:
    tools = {"tools": [{"type": "function", "function": {"name": "f"}}]}
    image = [{"type": "image_url", "image_url": {"url": "data:,"}}]
    n = RequestNeeds.from_body(body(**tools), {})
    assert check(LOCAL, n) is None  # declares tools
    assert check(PLAIN, n) is None  # declares nothing: unknown is not excluded
    vision = RequestNeeds.from_body({"messages": [{"role": "user", "content": image}]}, {})
    assert check(LOCAL, vision) == "local-a: lacks capability vision"
    assert check(dep("v", capabilities=("vision",)), vision) is None
    js = RequestNeeds.from_body(body(response_format={"type": "json_object"}), {})
    assert check(dep("t", capabilities=("tools",)), js) == "t: lacks capability json"


def test_context_length_counts_the_prompt_and_the_asked_output_only() -> None:
    assert check(LOCAL, RequestNeeds.from_body(body("x" * 12000), {})) is None  # 3000 tokens, no max_tokens
    n = RequestNeeds.from_body(body("x" * 12000, max_tokens=2000), {})
    assert check(LOCAL, n) == "local-a: context_length 4096 < 5000 tokens (prompt ~3000 + max_tokens 2000)"
    assert check(LOCAL, RequestNeeds.from_body(body("x" * 20000), {})).startswith("local-a: context_length")


def test_the_larger_of_configured_and_observed_latency_counts() -> None:
    n = RequestNeeds.from_body(body(), {"max_latency_ms": 500})
    assert check(CLOUD, n, observed_latency_ms=750) == "cloud-a: max_latency_ms observed 750 ms > 500 ms"
    assert check(CLOUD, n, observed_latency_ms=20) is None  # configured 350 ms, observed faster
    slow = LOCAL.model_copy(update={"latency_ms": 900.0})
    # Fast observed answers do not overrule the operator's expectation.
    assert check(slow, n, observed_latency_ms=30) == "local-a: max_latency_ms expected 900 ms > 500 ms"
    assert check(PLAIN, n) is None  # no latency known: passes


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_cost", -1), ("max_cost", "cheap"), ("max_cost", True), ("max_cost", [1]),
        ("max_latency_ms", 0), ("max_latency_ms", "fast"), ("max_latency_ms", float("nan")),
        ("min_quality", 1.5), ("min_quality", "high"),
        ("allowed_locations", ["moon"]), ("allowed_locations", []), ("allowed_locations", 3),
        ("exclude", [1]), ("exclude", {"a": 1}),
        ("capabilities", ["telepathy"]), ("capabilities", [None]),
    ],
)
def test_invalid_values_name_the_parameter(name: str, value: object) -> None:
    with pytest.raises(InvalidRequestError) as err:
        RequestNeeds.from_body(body(), {name: value})
    assert err.value.param == f"metadata.constraints.{name}"
    assert err.value.status == 400


def test_single_strings_are_accepted_for_lists() -> None:
    n = RequestNeeds.from_body(body(), {"exclude": "cloud-a", "allowed_locations": "local", "capabilities": "tools"})
    assert n.exclude == {"cloud-a"} and n.allowed_locations == ("local",) and n.capabilities == {"tools"}
