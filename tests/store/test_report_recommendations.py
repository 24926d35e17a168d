"""`tiergate report`'s cache, team and recommendation numbers equal sums computed here, without
the report code, from the request_log rows we insert (SQLite, and PostgreSQL in a schema of its
own when TIERGATE_TEST_POSTGRES_URL is set); the CLI prints the same numbers as JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import statistics
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tests.support import clean_env
from tiergate.config import load_settings
from tiergate.config.models import Settings
from tiergate.report import (
    CACHE_HITS,
    NO_TEAM,
    Metrics,
    Recommendation,
    Report,
    Thresholds,
    build_report,
    report_payload,
)
from tiergate.store import RequestLogRecord, RequestLogWriter, Store
from tiergate.store.models import feedback

from .conftest import Target

NOW = datetime(2025, 11, 30, 12, 0, tzinfo=UTC)
DAYS = 30
MILLION = Decimal(1_000_000)
EPS = Decimal("1e-8")  # SQLite keeps costs as REAL

# name -> (location, residency, price in, price out) per 1M tokens
DEPLOYMENTS: dict[str, tuple[str, str, str, str]] = {
    "local-llama": ("local", "on-prem", "0", "0"),
    "local-paid": ("local", "on-prem", "0.05", "0.10"),
    "local-pricy": ("local", "on-prem", "0.2", "0.4"),
    "sov-mid": ("sovereign", "AZ", "0.5", "1.5"),
    "cloud-cheap": ("cloud", "US", "0.15", "0.6"),
    "gpt-4o": ("cloud", "US", "2.5", "10"),
    "slow-cloud": ("cloud", "US", "1", "2"),
}
# local-paid is listed before local-llama: the cheaper one must win, not the first.
GROUPS: dict[str, list[str]] = {
    "chat": ["gpt-4o", "sov-mid", "cloud-cheap", "local-paid", "local-llama"],
    "code": ["gpt-4o", "slow-cloud"],  # no local deployment
    "assist": ["sov-mid", "local-pricy", "local-paid"],  # only paid local ones
}
MIXED = ("general:simple", "simple", "code:simple", "general:medium", "analysis:complex", None)
CACHE_CYCLE = (None, "miss", "hit", None, "bypass", "semantic-hit", None, "miss")
TEAMS = ("alpha", "beta", None)
STRICT = Thresholds(min_savings_usd=Decimal("0.01"), slow_p95_max_ms=600.0, error_rate_max=0.01)


@dataclass(frozen=True)
class Segment:
    group: str
    deployment: str | None
    n: int
    task_classes: tuple[str | None, ...]
    error_every: int  # every k-th request fails (0: none)
    latency: tuple[float, float]
    scores: tuple[float, ...] = ()  # feedback for the first 40 requests in the window


SEGMENTS = (
    Segment("chat", "gpt-4o", 240, MIXED, 50, (200, 900), (0.5, 0.75)),
    Segment("chat", "sov-mid", 120, MIXED, 0, (300, 1000), (1.0, 0.75, 1.0)),
    Segment("chat", "cloud-cheap", 120, MIXED, 0, (150, 600), (1.0, 0.5)),
    Segment("chat", "local-llama", 40, MIXED, 0, (100, 500)),
    Segment("code", "gpt-4o", 80, ("code:simple", "code:medium"), 0, (200, 900)),
    Segment("code", "slow-cloud", 80, ("code:complex",), 4, (2000, 5000)),
    Segment("assist", "sov-mid", 60, ("general:simple", "translation:medium"), 0, (300, 1000)),
    Segment("chat", None, 12, (None,), 1, (1, 5)),  # refused before any deployment
)


def _config(db_url: str) -> dict[str, Any]:
    return {
        "store": {"url": db_url},
        "deployments": [
            {"name": name, "provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model": name,
             "location": loc, "residency": res, "price": {"input": p_in, "output": p_out}}
            for name, (loc, res, p_in, p_out) in DEPLOYMENTS.items()
        ],
        "model_groups": GROUPS,
    }


def _settings(tmp_path: Path, db_url: str) -> tuple[Settings, Path]:
    path = tmp_path / "tiergate.yaml"
    path.write_text(json.dumps(_config(db_url)))
    return load_settings(path, environ={}), path


def _price_cost(name: str, prompt: int, completion: int) -> Decimal:
    _, _, p_in, p_out = DEPLOYMENTS[name]
    return (Decimal(p_in) * prompt + Decimal(p_out) * completion) / MILLION


def _rows(now: datetime) -> tuple[list[RequestLogRecord], dict[str, float]]:
    """The request log and the feedback scores (request id -> score)."""
    rng = random.Random(11)
    rows: list[RequestLogRecord] = []
    scores: dict[str, float] = {}
    i = 0
    for seg in SEGMENTS:
        in_window = 0
        for k in range(seg.n):
            i += 1
            outside = i % 17 == 0
            age = timedelta(days=rng.uniform(31, 45)) if outside else timedelta(
                seconds=rng.uniform(3600, (DAYS - 1) * 86400))
            failed = bool(seg.error_every) and k % seg.error_every == 0
            prompt, completion = rng.randint(3000, 9000), rng.randint(300, 2000)
            cache = None if failed or seg.deployment is None else CACHE_CYCLE[i % len(CACHE_CYCLE)]
            cost: Decimal | None = None
            saved: Decimal | None = None
            if seg.deployment is not None and not failed:
                full = _price_cost(seg.deployment, prompt, completion).quantize(Decimal("1e-10"))
                if cache in CACHE_HITS:
                    cost, saved = Decimal(0), full
                elif i % 23:
                    cost = full  # every 23rd answered request has no cost logged
            loc = DEPLOYMENTS[seg.deployment][0] if seg.deployment else None
            r = RequestLogRecord(
                id=f"r{i}", model_group=seg.group, deployment=seg.deployment, location=loc,
                residency=None, privacy_level="PUBLIC",
                status_code=(502 if k % 3 else 504) if failed and seg.deployment else 422 if failed else 200,
                error_code=("upstream_error" if k % 3 else "upstream_timeout") if failed and seg.deployment
                else "invalid_request" if failed else None,
                latency_ms=round(rng.uniform(*seg.latency), 3), overhead_ms=1.0, upstream_ms=1.0,
                prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                cost_usd=cost, team=TEAMS[(i // 2) % 3],
                task_class=seg.task_classes[k % len(seg.task_classes)],
                cache=cache, saved_usd=saved, created_at=now - age,
            )
            rows.append(r)
            if seg.scores and not outside and in_window < 40:
                scores[r.id] = seg.scores[in_window % len(seg.scores)]
                in_window += 1
    return rows, scores


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


# ----------------------------------------------------------------------------- reference numbers
def _window(rows: Iterable[RequestLogRecord], now: datetime) -> list[RequestLogRecord]:
    return [r for r in rows if now - timedelta(days=DAYS) <= r.created_at <= now]


def _nearest_rank_p95(values: list[float]) -> float | None:
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1] if ordered else None


def _totals(rows: list[RequestLogRecord]) -> dict[str, Any]:
    return {
        "requests": len(rows),
        "prompt_tokens": sum(r.prompt_tokens for r in rows),
        "completion_tokens": sum(r.completion_tokens for r in rows),
        "total_tokens": sum(r.total_tokens for r in rows),
        "spend": sum((r.cost_usd for r in rows if r.cost_usd is not None), Decimal(0)),
        "errors": sum(r.status_code >= 400 for r in rows),
        "cache_hits": sum(r.cache in ("hit", "semantic-hit") for r in rows),
        "saved": sum((r.saved_usd for r in rows if r.saved_usd is not None), Decimal(0)),
        "p95": _nearest_rank_p95([r.latency_ms for r in rows]),
    }


def _check(m: Metrics, rows: list[RequestLogRecord], *, p95: bool = True) -> None:
    e = _totals(rows)
    assert (m.requests, m.prompt_tokens, m.completion_tokens, m.total_tokens, m.errors, m.cache_hits) == (
        e["requests"], e["prompt_tokens"], e["completion_tokens"], e["total_tokens"], e["errors"],
        e["cache_hits"],
    )
    assert abs(m.spend_usd - e["spend"]) < EPS
    assert abs(m.cache_savings_usd - e["saved"]) < EPS
    assert m.error_rate == pytest.approx(e["errors"] / e["requests"])
    if p95:
        assert m.p95_latency_ms == e["p95"]


def _served(win: list[RequestLogRecord], group: str, name: str) -> list[RequestLogRecord]:
    return [r for r in win if r.model_group == group and r.deployment == name and r.status_code < 400
            and r.cache not in ("hit", "semantic-hit")]


def _is_simple(task_class: str | None) -> bool:
    return task_class is not None and task_class.split(":")[-1] == "simple"


def _logged_cost(rows: list[RequestLogRecord]) -> Decimal:
    return sum((r.cost_usd or Decimal(0) for r in rows), Decimal(0))


def _cost_on(name: str, rows: list[RequestLogRecord]) -> Decimal:
    return sum((_price_cost(name, r.prompt_tokens, r.completion_tokens) for r in rows), Decimal(0))


def _money(value: Decimal) -> str:
    """As the report writes amounts: cents from a dollar up (and for 0), four places below."""
    return f"${value:,.2f}" if abs(value) >= 1 or value == 0 else f"${value:,.4f}"


def _paid(name: str) -> bool:
    return Decimal(DEPLOYMENTS[name][2]) > 0 or Decimal(DEPLOYMENTS[name][3]) > 0


def _expected_simple_to_local(
    win: list[RequestLogRecord], t: Thresholds
) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for group, members in GROUPS.items():
        for name in members:
            served = _served(win, group, name)
            simple = [r for r in served if _is_simple(r.task_class)]
            locals_ = [x for x in members if DEPLOYMENTS[x][0] == "local" and x != name]
            if not _paid(name) or len(simple) < t.simple_min_requests or not locals_:
                continue
            share = len(simple) / len(served)
            costs = {x: _cost_on(x, simple) for x in locals_}
            cheapest = min(costs.values())
            local = next(x for x in locals_ if costs[x] == cheapest)
            savings = _logged_cost(simple) - cheapest
            if share >= t.simple_share_min and savings >= t.min_savings_usd:
                out[(group, name)] = {"share": share, "savings": savings, "local": local,
                                      "served": len(served), "simple": len(simple),
                                      "cost": _logged_cost(simple), "local_cost": cheapest}
    return out


def _fb(scores: dict[str, float], win: list[RequestLogRecord], group: str, name: str) -> list[float]:
    return [scores[r.id] for r in win if r.model_group == group and r.deployment == name and r.id in scores]


def _expected_cheaper(win: list[RequestLogRecord], scores: dict[str, float],
                      t: Thresholds) -> dict[tuple[str, str], dict[str, Any]]:
    rank = {"local": 0, "sovereign": 1, "cloud": 2}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for group, members in GROUPS.items():
        for name in members:
            mine = _fb(scores, win, group, name)
            rows = [r for r in win if r.model_group == group and r.deployment == name]
            if not _paid(name) or len(mine) < t.feedback_min_count or not rows:
                continue
            my_err = sum(r.status_code >= 400 for r in rows) / len(rows)
            served = _served(win, group, name)
            best: tuple[Decimal, str] | None = None
            for alt in members:
                theirs = _fb(scores, win, group, alt)
                alt_rows = [r for r in win if r.model_group == group and r.deployment == alt]
                if alt == name or len(theirs) < t.feedback_min_count or not alt_rows:
                    continue
                alt_err = sum(r.status_code >= 400 for r in alt_rows) / len(alt_rows)
                loc, alt_loc = DEPLOYMENTS[name][0], DEPLOYMENTS[alt][0]
                if (statistics.fmean(theirs) < statistics.fmean(mine) or rank[alt_loc] > rank[loc]
                        or alt_err > max(t.error_rate_max, my_err)
                        or (loc == alt_loc == "sovereign" and DEPLOYMENTS[alt][1] != DEPLOYMENTS[name][1])):
                    continue
                savings = _logged_cost(served) - _cost_on(alt, served)
                if best is None or savings > best[0]:
                    best = (savings, alt)
            if best is not None and best[0] >= t.min_savings_usd:
                out[(group, name)] = {"savings": best[0], "alternative": best[1],
                                      "feedback_avg": statistics.fmean(mine), "served": len(served)}
    return out


def _dep_p95s(win: list[RequestLogRecord], min_requests: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in DEPLOYMENTS:
        lat = [r.latency_ms for r in win if r.deployment == name]
        if len(lat) >= min_requests:
            out[name] = _nearest_rank_p95(lat)  # type: ignore[assignment]
    return out


def _expected_slow(win: list[RequestLogRecord], t: Thresholds) -> dict[str, dict[str, Any]]:
    p95s = _dep_p95s(win, t.slow_min_requests)
    served_groups = {(r.model_group, r.deployment) for r in win if r.deployment}
    out: dict[str, dict[str, Any]] = {}
    for name, value in p95s.items():
        ratios = []
        for group in GROUPS:
            others = [o for o in p95s if o != name and (group, o) in served_groups]
            if (group, name) in served_groups and others:
                median = statistics.median(p95s[o] for o in others)
                ratios.append((value / median, group, median))
        flagged = [x for x in ratios if x[0] >= t.slow_p95_factor]
        if flagged:
            ratio, group, median = max(flagged)
            out[name] = {"basis": "group_median", "ratio": ratio, "model_group": group, "median": median,
                         "p95": value}
        elif value > t.slow_p95_max_ms:
            out[name] = {"basis": "absolute", "p95": value}
    return out


def _expected_errors(win: list[RequestLogRecord], t: Thresholds) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in DEPLOYMENTS:
        rows = [r for r in win if r.deployment == name]
        errors = [r for r in rows if r.status_code >= 400]
        if len(rows) >= t.error_min_requests and len(errors) / len(rows) > t.error_rate_max:
            codes = Counter(r.error_code for r in errors)
            out[name] = {"requests": len(rows), "errors": len(errors), "rate": len(errors) / len(rows),
                         "codes": sorted(codes.items(), key=lambda kv: (-kv[1], kv[0] or ""))[:3]}
    return out


def _by_kind(report: Report, kind: str, key: Callable[[Recommendation], Any]) -> dict[Any, Recommendation]:
    return {key(r): r for r in report.recommendations if r.kind == kind}


def _pair(r: Recommendation) -> tuple[str, str]:
    return r.data["model_group"], r.data["deployment"]


def _check_recommendations(report: Report, rows: list[RequestLogRecord], scores: dict[str, float],
                           t: Thresholds) -> None:
    win = _window(rows, report.until)
    money = [r.savings_usd for r in report.recommendations if r.savings_usd is not None]
    assert money == sorted(money, reverse=True)
    kinds = [r.kind for r in report.recommendations if r.savings_usd is None]
    assert kinds == sorted(kinds, key=("error_rate", "slow_p95").index)
    assert all(r.savings_usd is not None for r in report.recommendations[:len(money)])

    expected = _expected_simple_to_local(win, t)
    got = _by_kind(report, "simple_to_local", _pair)
    assert sorted(got) == sorted(expected)
    for key, e in expected.items():
        r = got[key]
        assert r.data["share"] == pytest.approx(e["share"])
        assert abs(r.savings_usd - e["savings"]) < EPS  # type: ignore[operator]
        assert r.data["local_deployment"] == e["local"]
        assert (r.data["served_requests"], r.data["simple_requests"]) == (e["served"], e["simple"])
        assert r.data["cost_usd"] == pytest.approx(float(e["cost"]), abs=1e-8)
        assert r.data["local_cost_usd"] == pytest.approx(float(e["local_cost"]), abs=1e-8)
        assert f"{e['share'] * 100:.0f} %" in r.message and _money(e["savings"]) in r.message
        assert _money(e["cost"]) in r.message and _money(e["local_cost"]) in r.message
        assert key[1] in r.message and e["local"] in r.message

    expected_cheaper = _expected_cheaper(win, scores, t)
    got = _by_kind(report, "cheaper_equal_feedback", _pair)
    assert sorted(got) == sorted(expected_cheaper)
    for key, e in expected_cheaper.items():
        r = got[key]
        assert r.data["alternative"] == e["alternative"]
        assert abs(r.savings_usd - e["savings"]) < EPS  # type: ignore[operator]
        assert r.data["feedback_avg"] == pytest.approx(e["feedback_avg"])
        assert r.data["served_requests"] == e["served"]
        assert _money(e["savings"]) in r.message and e["alternative"] in r.message

    expected_errors = _expected_errors(win, t)
    got_errors = _by_kind(report, "error_rate", lambda r: r.data["deployment"])
    assert sorted(got_errors) == sorted(expected_errors)
    for name, e in expected_errors.items():
        r = got_errors[name]
        assert (r.data["requests"], r.data["errors"]) == (e["requests"], e["errors"])
        assert r.data["error_rate"] == pytest.approx(e["rate"])
        assert [(x["error_code"], x["count"]) for x in r.data["top_errors"]] == e["codes"]
        assert f"{e['rate']:.1%}" in r.message and r.savings_usd is None

    expected_slow = _expected_slow(win, t)
    got_slow = _by_kind(report, "slow_p95", lambda r: r.data["deployment"])
    assert sorted(got_slow) == sorted(expected_slow)
    for name, e in expected_slow.items():
        r = got_slow[name]
        assert r.data["basis"] == e["basis"] and r.data["p95_latency_ms"] == e["p95"]
        if e["basis"] == "group_median":
            assert r.data["model_group"] == e["model_group"]
            assert r.data["ratio"] == pytest.approx(e["ratio"])
            assert r.data["group_median_p95_ms"] == pytest.approx(e["median"])
            assert f"{e['ratio']:.1f}×" in r.message


# ----------------------------------------------------------------------------- tests
async def test_report_cache_teams_and_recommendations(target: Target) -> None:
    db_url = target.url
    settings, _ = _settings(target.tmp_path, db_url)
    rows, scores = _rows(NOW)
    store = await Store.open(db_url, schema=target.schema)
    try:
        await _fill(store, rows, scores)
        report = await build_report(store, DAYS, now=NOW, settings=settings)
        strict = await build_report(store, DAYS, now=NOW, settings=settings, thresholds=STRICT)
        bare = await build_report(store, DAYS, now=NOW)  # no settings: no prices, no groups
        payload = await report_payload(store, settings, DAYS, now=NOW)
    finally:
        await store.close()
    win = _window(rows, NOW)

    # Per deployment, model group and team: the independent sums.
    assert sorted(report.deployments) == sorted(DEPLOYMENTS.keys() - {"local-paid", "local-pricy"})
    for name, m in report.deployments.items():
        _check(m, [r for r in win if r.deployment == name])
    for group, m in report.groups.items():
        _check(m, [r for r in win if r.model_group == group])
    assert list(report.teams) == ["alpha", "beta", None]
    for team, m in report.teams.items():
        _check(m, [r for r in win if r.team == team], p95=False)
    assert sum(m.cache_hits for m in report.deployments.values()) > 0
    assert sum(m.spend_usd for m in report.teams.values()) == sum(m.spend_usd for m in report.groups.values())

    # The data makes every kind appear at the default thresholds, and not everything qualify.
    _check_recommendations(report, rows, scores, Thresholds())
    assert {(r.kind, r.data["deployment"]) for r in report.recommendations} == {
        ("simple_to_local", "gpt-4o"), ("cheaper_equal_feedback", "gpt-4o"), ("error_rate", "slow-cloud"),
        ("slow_p95", "slow-cloud"),
    }
    s2l = next(r for r in report.recommendations if r.kind == "simple_to_local")
    # local-llama is free (listed after local-paid): all of the cost is saved.
    assert (s2l.data["model_group"], s2l.data["local_deployment"]) == ("chat", "local-llama")
    assert s2l.data["local_cost_usd"] == 0
    assert float(s2l.savings_usd or 0) == pytest.approx(s2l.data["cost_usd"])

    # Other thresholds: more pairs qualify (the paid local in "assist"), the absolute p95 rule.
    _check_recommendations(strict, rows, scores, STRICT)
    pairs = {_pair(r) for r in strict.recommendations if r.kind == "simple_to_local"}
    assert ("assist", "sov-mid") in pairs and ("code", "gpt-4o") not in pairs  # "code" has no local
    assist = next(r for r in strict.recommendations
                  if r.kind == "simple_to_local" and _pair(r)[0] == "assist")
    assert assist.data["local_deployment"] == "local-paid" and assist.data["local_cost_usd"] > 0
    assert any(r.data["basis"] == "absolute" for r in strict.recommendations if r.kind == "slow_p95")
    assert any(r.data["deployment"] == "gpt-4o" for r in strict.recommendations if r.kind == "error_rate")

    # Without settings: only the kinds that need no prices.
    assert {r.kind for r in bare.recommendations} == {"error_rate", "slow_p95"}

    # JSON: plain types, the same numbers.
    assert json.loads(json.dumps(payload)) == payload
    assert payload == report.to_json()
    by_dep = {d["deployment"]: d for d in payload["deployments"]}
    assert by_dep["gpt-4o"]["cache_hits"] == report.deployments["gpt-4o"].cache_hits
    assert by_dep["gpt-4o"]["cache_savings_usd"] == float(report.deployments["gpt-4o"].cache_savings_usd)
    assert [t["team"] for t in payload["teams"]] == ["alpha", "beta", None]
    assert set(payload["teams"][0]) == {
        "team", "requests", "prompt_tokens", "completion_tokens", "total_tokens", "spend_usd", "errors",
        "error_rate", "cache_hits", "cache_savings_usd",
    }
    assert [(r["kind"], r["savings_usd"]) for r in payload["recommendations"]] == [
        (r.kind, None if r.savings_usd is None else float(r.savings_usd)) for r in report.recommendations
    ]

    # CSV and terminal.
    parsed = list(csv.DictReader(io.StringIO(report.to_csv())))
    teams = {row["name"]: row for row in parsed if row["section"] == "team"}
    assert set(teams) == {"alpha", "beta", NO_TEAM}
    assert Decimal(teams[NO_TEAM]["spend_usd"]) == report.teams[None].spend_usd
    assert teams["alpha"]["p95_latency_ms"] == "" and teams["alpha"]["feedback_count"] == ""
    recs = [row for row in parsed if row["section"] == "recommendation"]
    assert [row["kind"] for row in recs] == [r.kind for r in report.recommendations]
    assert [row["message"] for row in recs] == [r.message for r in report.recommendations]
    console = Console(record=True, width=240)
    for renderable in report.to_table():
        console.print(renderable)
    text = console.export_text()
    assert "Teams" in text and NO_TEAM in text and "Recommendations" in text and "simple_to_local" in text


async def test_no_recommendation_below_the_thresholds(tmp_path: Path) -> None:
    """Few requests: numbers are reported, but nothing crosses a minimum count."""
    db_url = f"sqlite:///{tmp_path}/few.db"
    settings, _ = _settings(tmp_path, db_url)
    rows = [r for r in _rows(NOW)[0] if int(r.id[1:]) % 8 == 0]  # about 90 rows over 7 pairs
    store = await Store.open(db_url)
    try:
        await _fill(store, rows, {})
        report = await build_report(store, DAYS, now=NOW, settings=settings)
    finally:
        await store.close()
    _check_recommendations(report, rows, {}, Thresholds())
    assert report.recommendations == []
    console = Console(record=True, width=200)
    for renderable in report.to_table():
        console.print(renderable)
    assert "None: no deployment crossed a threshold" in console.export_text()


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tiergate", "report", *args], cwd=cwd,
                          env=clean_env(COLUMNS="200"), capture_output=True, text=True, timeout=60)


async def test_cli_json_and_csv(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path}/cli.db"
    settings, config = _settings(tmp_path, db_url)
    now = datetime.now(UTC)
    rows, scores = _rows(now)
    store = await Store.open(db_url)
    try:
        await _fill(store, rows, scores)
    finally:
        await store.close()
    win = _window(rows, now)

    r = _cli(["--days", str(DAYS), "--json", "--config", str(config)], tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["window"]["days"] == DAYS
    for row in data["deployments"]:
        e = _totals([x for x in win if x.deployment == row["deployment"]])
        got_row = (row["requests"], row["total_tokens"], row["errors"], row["cache_hits"],
                   row["p95_latency_ms"])
        assert got_row == (e["requests"], e["total_tokens"], e["errors"], e["cache_hits"], e["p95"])
        assert row["spend_usd"] == pytest.approx(float(e["spend"]), abs=1e-8)
        assert row["cache_savings_usd"] == pytest.approx(float(e["saved"]), abs=1e-8)
    for row in data["teams"]:
        e = _totals([x for x in win if x.team == row["team"]])
        assert row["requests"] == e["requests"]
        assert row["spend_usd"] == pytest.approx(float(e["spend"]), abs=1e-8)
    s2l = _expected_simple_to_local(win, Thresholds())
    got = {(x["data"]["model_group"], x["data"]["deployment"]): x for x in data["recommendations"]
           if x["kind"] == "simple_to_local"}
    assert sorted(got) == sorted(s2l) == [("chat", "gpt-4o")]
    rec, expected = got[("chat", "gpt-4o")], s2l[("chat", "gpt-4o")]
    assert rec["savings_usd"] == pytest.approx(float(expected["savings"]), abs=1e-8)
    assert rec["data"]["share"] == pytest.approx(expected["share"])
    assert {x["kind"] for x in data["recommendations"]} == {
        "simple_to_local", "cheaper_equal_feedback", "error_rate", "slow_p95"}

    r = _cli(["--days", str(DAYS), "--csv", "--config", str(config)], tmp_path)
    assert r.returncode == 0, r.stderr
    parsed = list(csv.DictReader(io.StringIO(r.stdout)))
    assert {row["section"] for row in parsed} == {"deployment", "model_group", "team", "recommendation"}
    team_rows = {row["name"]: row for row in parsed if row["section"] == "team"}
    assert int(team_rows[NO_TEAM]["requests"]) == len([x for x in win if x.team is None])
    recs = [row for row in parsed if row["section"] == "recommendation"]
    assert [(row["kind"], row["message"]) for row in recs] == [
        (x["kind"], x["message"]) for x in data["recommendations"]]
    assert float(recs[0]["savings_usd"]) == pytest.approx(data["recommendations"][0]["savings_usd"])

    table = _cli(["--days", str(DAYS), "--config", str(config)], tmp_path)
    assert table.returncode == 0, table.stderr
    assert "Recommendations" in table.stdout and "(no team)" in table.stdout
    both = _cli(["--json", "--csv", "--config", str(config)], tmp_path)
    assert both.returncode == 2
    assert _cli(["--days", "0", "--config", str(config)], tmp_path).returncode == 2
    assert settings.deployment("gpt-4o") is not None
