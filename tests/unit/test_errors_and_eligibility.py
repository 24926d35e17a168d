"""Error mapping and the privacy-by-location rule."""

from __future__ import annotations

from tiergate.config.models import Deployment
from tiergate.errors import (
    AllCandidatesFailedError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from tiergate.privacy.levels import PrivacyLevel, may_reach, parse_level
from tiergate.routing.constraints import RequestNeeds, check
from tiergate.routing.eligible import split_eligible


def _d(name: str, location: str, **kw: object) -> Deployment:
    return Deployment(name=name, base_url="http://127.0.0.1:1/v1", model="m", location=location, **kw)  # type: ignore[arg-type]


def test_levels_and_aliases() -> None:
    assert parse_level("high") is PrivacyLevel.PRIVATE
    assert parse_level("critical") is PrivacyLevel.PRIVATE
    assert parse_level("Enhanced") is PrivacyLevel.SENSITIVE
    assert parse_level("public") is PrivacyLevel.PUBLIC
    assert not may_reach(PrivacyLevel.PRIVATE, "sovereign")
    assert not may_reach(PrivacyLevel.SENSITIVE, "cloud")
    assert may_reach(PrivacyLevel.SENSITIVE, "sovereign")


def test_eligibility_by_location_then_constraints() -> None:
    ds = [_d("l", "local", latency_ms=900), _d("s", "sovereign", latency_ms=100), _d("c", "cloud", price={"input": 100, "output": 100})]
    body = {"messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 100}
    ok, out = split_eligible(ds, PrivacyLevel.SENSITIVE)
    assert [d.name for d in ok] == ["l", "s"] and [(e.deployment, e.kind) for e in out] == [("c", "privacy")]
    needs = RequestNeeds.from_body(body, {"max_latency_ms": 500})
    assert [d.name for d in ok if check(d, needs) is None] == ["s"]
    ok, out = split_eligible(ds, PrivacyLevel.PUBLIC)
    needs = RequestNeeds.from_body(body, {"max_cost": 0.001})
    assert [d.name for d in ok if check(d, needs) is None] == ["l", "s"]
    assert "max_cost" in (check(ds[2], needs) or "")
    ok, out = split_eligible(ds, PrivacyLevel.PUBLIC, ("AZ",))
    assert ok == [] and all("allowed_residencies" in e.reason for e in out)


def test_status_mapping() -> None:
    assert UpstreamStatusError("x", upstream_status=500).retryable
    assert UpstreamStatusError("x", upstream_status=429, retry_after=2).headers["retry-after"] == "2"
    e400 = UpstreamStatusError("x", upstream_status=400)
    assert not e400.retryable and e400.status == 400
    e401 = UpstreamStatusError("x", upstream_status=401)
    # Issue 3: the upstream refusing our credentials is a 401 with its own code, and another
    # deployment may still answer (retryable).
    assert e401.status == 401 and e401.code == "upstream_auth_error" and e401.retryable
    assert UpstreamStatusError("x", upstream_status=529).status == 503  # Anthropic "overloaded"
    all_auth = AllCandidatesFailedError([
        UpstreamStatusError("x", upstream_status=401, deployment="a"),
        UpstreamStatusError("x", upstream_status=403, deployment="b"),
    ])
    assert all_auth.status == 401 and all_auth.code == "upstream_auth_error"
    all_t = AllCandidatesFailedError([UpstreamTimeoutError("t", deployment="a"), UpstreamTimeoutError("t", deployment="b")])
    assert all_t.status == 504 and "a: t" in all_t.message and "b: t" in all_t.message
    mixed = AllCandidatesFailedError([UpstreamTimeoutError("t", deployment="a"), UpstreamStatusError("boom", upstream_status=500, deployment="b")])
    assert mixed.status == 502
