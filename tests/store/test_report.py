"""`tiergate report`: numbers equal the sums computed here from the rows we insert."""

from __future__ import annotations

import csv
import io
import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from rich.console import Console

from tiergate.config.models import (
    Deployment,
    ExperimentConfig,
    RoutingConfig,
    Settings,
)
from tiergate.report import build_report, p95
from tiergate.routing.learning import Learner
from tiergate.store import RequestLogRecord, RequestLogWriter, Store
from tiergate.store.models import feedback

from .conftest import Target

NOW = datetime(2025, 11, 30, 12, 0, tzinfo=UTC)
DEPLOYMENTS = ("local-a", "sov-b", "cloud-c")


def _settings() -> Settings:
    return Settings(
        deployments=tuple(Deployment(name=n, model="m", location="local") for n in DEPLOYMENTS),
        model_groups={"chat": DEPLOYMENTS, "code": ("local-a", "cloud-c")},
        routing=RoutingConfig(experiments={
            "chat": ExperimentConfig(arms={"local-a": 0.5, "cloud-c": 0.3, "unused": 0.2}),
        }),
    )


def _rows(n: int = 240) -> list[RequestLogRecord]:
    rng = random.Random(7)
    rows = []
    for i in range(n):
        group = "chat" if i % 3 else "code"
        deployment: str | None = rng.choice(DEPLOYMENTS if group == "chat" else ("local-a", "cloud-c"))
        if i % 37 == 0:
            deployment = None  # rejected before any deployment
        prompt, completion = rng.randint(1, 500), rng.randint(0, 300)
        # Inside the 7-day window, except every 10th row (8 to 20 days old).
        age = timedelta(days=rng.uniform(8, 20)) if i % 10 == 0 else timedelta(hours=rng.uniform(0, 160))
        rows.append(RequestLogRecord(
            id=f"r{i}", model_group=group, deployment=deployment,
            location="local" if deployment else None, residency=None, privacy_level="PUBLIC",
            status_code=rng.choice((200, 200, 200, 200, 429, 502)) if deployment else 422,
            latency_ms=round(rng.uniform(5, 3000), 3), overhead_ms=1.0, upstream_ms=1.0,
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
            cost_usd=None if i % 11 == 0 else Decimal(rng.randint(0, 10**6)) / Decimal(10**9),
            created_at=NOW - age,
        ))
    return rows


def _expect(rows: list[RequestLogRecord], scores: dict[str, float], since: datetime) -> dict[str, object]:
    """Reference numbers for one row subset, computed without the report code."""
    inside = [r for r in rows if since <= r.created_at <= NOW]
    lat = sorted(r.latency_ms for r in inside)
    fb = [scores[r.id] for r in inside if r.id in scores]
    return {
        "requests": len(inside),
        "prompt_tokens": sum(r.prompt_tokens for r in inside),
        "completion_tokens": sum(r.completion_tokens for r in inside),
        "total_tokens": sum(r.total_tokens for r in inside),
        "spend": sum((r.cost_usd for r in inside if r.cost_usd is not None), Decimal(0)),
        "avg": sum(lat) / len(lat) if lat else None,
        "p95": lat[math.ceil(0.95 * len(lat)) - 1] if lat else None,
        "errors": sum(r.status_code >= 400 for r in inside),
        "feedback_count": len(fb),
        "feedback_avg": sum(fb) / len(fb) if fb else None,
    }


def _check(metrics: object, expected: dict[str, object]) -> None:
    m = metrics
    assert m.requests == expected["requests"]  # type: ignore[attr-defined]
    assert m.prompt_tokens == expected["prompt_tokens"]  # type: ignore[attr-defined]
    assert m.completion_tokens == expected["completion_tokens"]  # type: ignore[attr-defined]
    assert m.total_tokens == expected["total_tokens"]  # type: ignore[attr-defined]
    assert m.spend_usd == pytest.approx(expected["spend"], abs=Decimal("1e-9"))  # type: ignore[attr-defined]
    assert m.avg_latency_ms == pytest.approx(expected["avg"])  # type: ignore[attr-defined]
    assert m.p95_latency_ms == expected["p95"]  # type: ignore[attr-defined]
    assert m.errors == expected["errors"]  # type: ignore[attr-defined]
    if expected["requests"]:
        assert m.error_rate == pytest.approx(expected["errors"] / expected["requests"])  # type: ignore[attr-defined,operator]
    assert m.feedback_count == expected["feedback_count"]  # type: ignore[attr-defined]
    assert m.feedback_avg == pytest.approx(expected["feedback_avg"])  # type: ignore[attr-defined]


async def _fill(store: Store, rows: list[RequestLogRecord], scores: dict[str, float]) -> None:
    writer = RequestLogWriter(store, flush_interval_ms=10)
    writer.start()
    for r in rows:
        writer.submit(r)
    await writer.close()
    assert writer.written == len(rows)
    if not scores:
        return
    by_id = {r.id: r for r in rows}
    async with store.engine.begin() as conn:
        await conn.execute(feedback.insert(), [
            {"request_id": rid, "score": s, "comment": None, "deployment": by_id[rid].deployment,
             "task_class": "general", "created_at": by_id[rid].created_at + timedelta(minutes=1)}
            for rid, s in scores.items()
        ])


async def test_report_matches_independent_sums(target: Target) -> None:
    rows = _rows()
    rng = random.Random(3)
    scores = {
        r.id: rng.choice((0.0, 0.25, 1.0)) for r in rows
        if r.deployment and rng.random() < 0.4 and r.created_at + timedelta(minutes=1) <= NOW
    }
    since = NOW - timedelta(days=7)
    store = await Store.open(target.url, schema=target.schema)
    try:
        await _fill(store, rows, scores)
        learner = Learner(store, clock=lambda: NOW.timestamp())
        learner.record("local-a", "code", True, 120.0, 0.001)
        learner.record("local-a", "code", False, 80.0, 0.0)
        await learner.flush()

        report = await build_report(store, 7, now=NOW, settings=_settings())
    finally:
        await store.close()

    # Feedback is windowed by its own time: one minute after its request here.
    in_window = {k: v for k, v in scores.items()
                 if since <= next(r for r in rows if r.id == k).created_at + timedelta(minutes=1) <= NOW}
    assert (report.since, report.until) == (since, NOW)
    assert sorted(report.deployments) == sorted(DEPLOYMENTS)
    for name in DEPLOYMENTS:
        _check(report.deployments[name], _expect([r for r in rows if r.deployment == name], in_window, since))
    assert sorted(report.groups) == ["chat", "code"]
    for group in ("chat", "code"):
        _check(report.groups[group], _expect([r for r in rows if r.model_group == group], in_window, since))

    arms = {(a.group, a.deployment): a for a in report.arms}
    assert list(arms) == [("chat", "local-a"), ("chat", "cloud-c"), ("chat", "unused")]
    assert arms[("chat", "local-a")].weight == 0.5
    for arm in ("local-a", "cloud-c", "unused"):
        subset = [r for r in rows if r.model_group == "chat" and r.deployment == arm]
        _check(arms[("chat", arm)].metrics, _expect(subset, in_window, since))
    assert arms[("chat", "unused")].metrics.requests == 0

    assert [(row.deployment, row.task_class, row.requests, row.successes) for row in report.learning] == [
        ("local-a", "code", 2, 1)
    ]

    # Output formats carry the same numbers.
    data = report.to_json()
    assert data["window"]["days"] == 7
    by_dep = {d["deployment"]: d for d in data["deployments"]}
    assert by_dep["sov-b"]["requests"] == report.deployments["sov-b"].requests
    assert by_dep["sov-b"]["p95_latency_ms"] == report.deployments["sov-b"].p95_latency_ms
    assert data["learning"][0]["success_rate"] == 0.5
    parsed = list(csv.DictReader(io.StringIO(report.to_csv())))
    sections = {row["section"] for row in parsed}
    assert sections == {"deployment", "model_group", "arm", "team", "recommendation"}
    assert {r.kind for r in report.recommendations} == {"error_rate"}  # a third fail (429/502)
    chat = next(row for row in parsed if row["section"] == "model_group" and row["name"] == "chat")
    assert int(chat["requests"]) == report.groups["chat"].requests
    assert Decimal(chat["spend_usd"]) == report.groups["chat"].spend_usd
    console = Console(record=True, width=200)
    for table in report.to_table():
        console.print(table)
    text = console.export_text()
    assert "Experiment arms" in text and "cloud-c" in text and "Learning" in text


async def test_p95_sample_is_bounded_to_the_newest_rows(tmp_path: object) -> None:
    store = await Store.open(f"sqlite:///{tmp_path}/p95.db")
    try:
        rows = [
            RequestLogRecord(
                id=f"r{i}", model_group="g", deployment="d", location="local", residency=None,
                privacy_level="PUBLIC", status_code=200, latency_ms=float(i), overhead_ms=0.0,
                upstream_ms=0.0, created_at=NOW - timedelta(minutes=100 - i),
            )
            for i in range(100)
        ]
        await _fill(store, rows, {})
        full = await build_report(store, 1, now=NOW)
        sampled = await build_report(store, 1, now=NOW, p95_sample=20)  # latencies 80..99
    finally:
        await store.close()
    assert full.deployments["d"].p95_latency_ms == 94.0
    assert sampled.deployments["d"].p95_latency_ms == 98.0
    assert sampled.deployments["d"].avg_latency_ms == pytest.approx(49.5)  # averages use all rows
    assert full.arms == [] and full.learning == []


def test_p95_nearest_rank() -> None:
    assert p95([]) is None
    assert p95([3.0]) == 3.0
    assert p95([float(v) for v in range(1, 21)]) == 19.0  # ceil(0.95 * 20) = 19th
    assert p95([float(v) for v in range(1, 101)]) == 95.0


async def test_empty_store(tmp_path: object) -> None:
    store = await Store.open(f"sqlite:///{tmp_path}/empty.db")
    try:
        report = await build_report(store, 30, settings=_settings())
        with pytest.raises(ValueError):
            await build_report(store, 0)
        async with store.engine.connect() as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(feedback)) == 0
    finally:
        await store.close()
    assert report.deployments == {} and report.groups == {}
    assert [a.metrics.requests for a in report.arms] == [0, 0, 0]
    assert report.to_json()["arms"][0]["avg_latency_ms"] is None
    assert report.to_csv().count("\n") == 4  # header + three arms
    assert len(report.to_table()) == 3
