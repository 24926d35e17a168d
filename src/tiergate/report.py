"""`tiergate report`: traffic, spend, latency, errors and feedback over the last N days.

Built from the store (`build_report`), shown as rich tables (`Report.to_table`), JSON
(`to_json`) or CSV (`to_csv`). Sections:

* per deployment and per model group: requests, tokens, spend, average and p95 latency,
  errors / error rate, feedback count and average, cache hits and cache savings;
* per team: requests, tokens, spend, errors, cache hits and savings;
* per experiment arm (the deployments of each group with an experiment in the Settings passed
  in; arms without traffic are listed with zeros): the same numbers for requests of that group
  answered by that deployment;
* learning: the all-time `deployment_stats` totals per (deployment, task class);
* recommendations computed from these numbers (below).

Definitions:
* The window is `now - days` (inclusive) to `now` (inclusive) on `request_log.created_at`;
  feedback counts when its own `created_at` is in the window. Feedback is tied to a model group
  through its request's request_log row (feedback without one counts for its deployment only).
* An error is a request with `status_code >= 400` (anything but a success: upstream failures,
  timeouts, rejected requests). Requests that never reached a deployment (deployment NULL) count
  for their model group only.
* Spend is `sum(cost_usd)`; rows without a cost add nothing. Tokens are the logged counts.
* p95 latency is the nearest-rank 95th percentile (the ceil(0.95 n)-th smallest value) of the
  newest `p95_sample` (default 10,000) latencies of that deployment / group / arm in the window,
  computed in Python: percentile functions are not portable between SQLite and PostgreSQL, and
  the bound keeps memory and transfer fixed on a big log. Averages use every row.

* Cache hits are requests whose `cache` is `hit` or `semantic-hit`; cache savings are
  `sum(saved_usd)` (the upstream cost those hits did not spend). Both are 0 without a cache.
* Teams: the same counts per `request_log.team` (requests, tokens, spend, errors, cache hits and
  savings); requests without a team form one row, `team` null in JSON, "(no team)" elsewhere.

Counts and sums are one GROUP BY (model_group, deployment) query; the per-deployment and
per-group rows are summed from it in Python. Teams are a GROUP BY team.

Recommendations (`Recommendation`: kind, message, savings_usd or None, data) are computed from
the same window; every number in a message comes from `data`. They need the Settings for prices,
locations and model groups (without Settings only error_rate and slow_p95 are possible). The
thresholds are `Thresholds` (defaults: the module constants below). "Served" requests of a
(model group, deployment) are its successful ones (`status_code < 400`) that were not cache hits,
i.e. the requests the deployment really answered; their cost is the logged `cost_usd`, and their
cost "on" another deployment is that deployment's price (per 1M tokens) times their logged
prompt and completion tokens.

* simple_to_local: a paid deployment (price > 0) whose served requests in a model group include
  at least `simple_min_requests` whose auto-route `task_class` level is `simple` (`"simple"` or
  `"<domain>:simple"`), making up at least `simple_share_min` of them, in a group with a local
  deployment: the saving is their logged cost minus their cost on the group's cheapest local
  deployment (0 for a free one), reported when it is at least `min_savings_usd`.
* cheaper_equal_feedback: in a model group, another deployment with at least as good an average
  feedback (both with `feedback_min_count` scores in the group), an error rate within
  `max(error_rate_max, the deployment's own)` and a location at least as private (local <
  sovereign < cloud; sovereign to sovereign only within one residency) that would have served
  the deployment's requests for at least `min_savings_usd` less (the largest saving is named).
* error_rate: a deployment with at least `error_min_requests` requests whose error rate is above
  `error_rate_max`; the most frequent error codes are listed.
* slow_p95: a deployment with at least `slow_min_requests` requests whose p95 latency is at least
  `slow_p95_factor` times the median p95 of the other deployments (with as many requests) of a
  model group it served (the group with the largest ratio is named), or, failing that, above
  `slow_p95_max_ms`.

Cache opportunities are not recommended: repeated requests cannot be recognised without bodies.
Recommendations with a saving come first (largest first), then error_rate, then slow_p95.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tiergate.store.models import deployment_stats, feedback, request_log

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table

    from tiergate.config.models import Deployment, Settings
    from tiergate.store.db import Store

DEFAULT_P95_SAMPLE = 10_000
CACHE_HITS = ("hit", "semantic-hit")  # request_log.cache values that mean "answered from cache"
NO_TEAM = "(no team)"  # how requests without a team are labelled in tables and CSV
PER_MILLION = Decimal(1_000_000)  # prices are USD per 1M tokens

# Recommendation thresholds (the defaults of `Thresholds`).
SIMPLE_SHARE_MIN = 0.20  # simple_to_local: share of served requests scored simple
SIMPLE_MIN_REQUESTS = 20  # simple_to_local: simple requests needed
MIN_SAVINGS_USD = Decimal("1.00")  # simple_to_local, cheaper_equal_feedback: smallest saving
ERROR_RATE_MAX = 0.05  # error_rate: error rates above this are reported ...
ERROR_MIN_REQUESTS = 50  # ... from this many requests
SLOW_P95_FACTOR = 2.0  # slow_p95: p95 at least this times the group's median of the others ...
SLOW_P95_MAX_MS = 30_000.0  # ... or above this (when no comparison in a group flags it)
SLOW_MIN_REQUESTS = 50  # slow_p95: requests needed (on both sides of a comparison)
FEEDBACK_MIN_COUNT = 20  # cheaper_equal_feedback: feedback scores needed on both sides
TOP_ERROR_CODES = 3  # error_rate: how many error codes the message names

_LOCATION_RANK = {"local": 0, "sovereign": 1, "cloud": 2}  # lower: more private
_KIND_ORDER = {"simple_to_local": 0, "cheaper_equal_feedback": 1, "error_rate": 2, "slow_p95": 3}


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a recommendation is made (see the module doc); defaults are the module constants."""

    simple_share_min: float = SIMPLE_SHARE_MIN
    simple_min_requests: int = SIMPLE_MIN_REQUESTS
    min_savings_usd: Decimal = MIN_SAVINGS_USD
    error_rate_max: float = ERROR_RATE_MAX
    error_min_requests: int = ERROR_MIN_REQUESTS
    slow_p95_factor: float = SLOW_P95_FACTOR
    slow_p95_max_ms: float = SLOW_P95_MAX_MS
    slow_min_requests: int = SLOW_MIN_REQUESTS
    feedback_min_count: int = FEEDBACK_MIN_COUNT


@dataclass(slots=True)
class Metrics:
    """Totals for one row of the report; averages and rates are derived."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    spend_usd: Decimal = Decimal(0)
    latency_ms_sum: float = 0.0
    errors: int = 0
    feedback_count: int = 0
    feedback_sum: float = 0.0
    p95_latency_ms: float | None = None
    cache_hits: int = 0
    cache_savings_usd: Decimal = Decimal(0)

    def add(self, other: Metrics) -> None:
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.total_tokens += other.total_tokens
        self.spend_usd += other.spend_usd
        self.latency_ms_sum += other.latency_ms_sum
        self.errors += other.errors
        self.cache_hits += other.cache_hits
        self.cache_savings_usd += other.cache_savings_usd

    @property
    def avg_latency_ms(self) -> float | None:
        return self.latency_ms_sum / self.requests if self.requests else None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def feedback_avg(self) -> float | None:
        return self.feedback_sum / self.feedback_count if self.feedback_count else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "spend_usd": float(self.spend_usd),
            "avg_latency_ms": self.avg_latency_ms,
            "p95_latency_ms": self.p95_latency_ms,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "feedback_count": self.feedback_count,
            "feedback_avg": self.feedback_avg,
            "cache_hits": self.cache_hits,
            "cache_savings_usd": float(self.cache_savings_usd),
        }


# What the team rows carry (latency and feedback are not computed per team).
_TEAM_FIELDS = (
    "requests", "prompt_tokens", "completion_tokens", "total_tokens", "spend_usd", "errors",
    "error_rate", "cache_hits", "cache_savings_usd",
)


@dataclass(slots=True)
class ArmReport:
    group: str
    deployment: str
    weight: float
    metrics: Metrics


@dataclass(frozen=True, slots=True)
class LearningRow:
    deployment: str
    task_class: str
    requests: int
    successes: int
    failures: int
    latency_ms_sum: float
    cost_usd_sum: float
    feedback_count: int
    feedback_sum: float

    def as_dict(self) -> dict[str, Any]:
        n = self.requests
        return {
            "deployment": self.deployment,
            "task_class": self.task_class,
            "requests": n,
            "successes": self.successes,
            "failures": self.failures,
            "success_rate": self.successes / n if n else None,
            "avg_latency_ms": self.latency_ms_sum / n if n else None,
            "avg_cost_usd": self.cost_usd_sum / n if n else None,
            "feedback_count": self.feedback_count,
            "feedback_avg": self.feedback_sum / self.feedback_count if self.feedback_count else None,
        }


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One data-backed suggestion. `data` holds every number the message states (JSON types);
    `savings_usd` is what following it would have saved in the window (None: not a money one)."""

    kind: str
    message: str
    savings_usd: Decimal | None
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "savings_usd": None if self.savings_usd is None else float(self.savings_usd),
            "data": self.data,
        }

    @property
    def subject(self) -> tuple[str, str]:
        """(deployment, model group) it is about, "" where none."""
        return str(self.data.get("deployment") or ""), str(self.data.get("model_group") or "")


_CSV_METRICS = (
    "requests", "prompt_tokens", "completion_tokens", "total_tokens", "spend_usd",
    "avg_latency_ms", "p95_latency_ms", "errors", "error_rate", "feedback_count", "feedback_avg",
    "cache_hits", "cache_savings_usd",
)
_CSV_DECIMALS = ("spend_usd", "cache_savings_usd")  # written exactly, not as floats


@dataclass(slots=True)
class Report:
    since: datetime
    until: datetime
    days: int
    deployments: dict[str, Metrics] = field(default_factory=dict)
    groups: dict[str, Metrics] = field(default_factory=dict)
    arms: list[ArmReport] = field(default_factory=list)
    teams: dict[str | None, Metrics] = field(default_factory=dict)  # None: no team
    learning: list[LearningRow] = field(default_factory=list)
    recommendations: list[Recommendation] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types only (floats, ints, strings, None): the admin route serialises it."""
        return {
            "window": {
                "since": self.since.isoformat(), "until": self.until.isoformat(), "days": self.days,
            },
            "deployments": [{"deployment": k, **m.as_dict()} for k, m in self.deployments.items()],
            "groups": [{"model_group": k, **m.as_dict()} for k, m in self.groups.items()],
            "arms": [
                {"model_group": a.group, "deployment": a.deployment, "weight": a.weight,
                 **a.metrics.as_dict()}
                for a in self.arms
            ],
            "teams": [{"team": k, **_team_dict(m)} for k, m in self.teams.items()],
            "learning": [row.as_dict() for row in self.learning],
            "recommendations": [r.as_dict() for r in self.recommendations],
        }

    def to_csv(self) -> str:
        """One CSV for all sections: `section` is deployment, model_group, arm, team or
        recommendation. Team rows leave latency and feedback empty; recommendation rows fill
        name (deployment), model_group, kind, message and savings_usd only."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            ("section", "name", "model_group", "weight", *_CSV_METRICS, "kind", "message",
             "savings_usd")
        )
        rows: list[tuple[str, str, str, str, Metrics]] = []
        rows += [("deployment", k, "", "", m) for k, m in self.deployments.items()]
        rows += [("model_group", k, k, "", m) for k, m in self.groups.items()]
        rows += [("arm", a.deployment, a.group, _num(a.weight), a.metrics) for a in self.arms]
        rows += [("team", k or NO_TEAM, "", "", m) for k, m in self.teams.items()]
        for section, name, group, weight, m in rows:
            values = m.as_dict()
            for key in _CSV_DECIMALS:
                values[key] = getattr(m, key)
            if section == "team":
                values = {k: (v if k in _TEAM_FIELDS else None) for k, v in values.items()}
            writer.writerow(
                (section, name, group, weight, *(_num(values[c]) for c in _CSV_METRICS), "", "", "")
            )
        for r in self.recommendations:
            deployment, group = r.subject
            writer.writerow(
                ("recommendation", deployment, group, "", *("" for _ in _CSV_METRICS), r.kind,
                 r.message, _num(r.savings_usd))
            )
        return out.getvalue()

    def to_table(self) -> list[RenderableType]:
        """Rich renderables: tables of deployments, model groups, experiment arms, teams and
        learning (the last three if any), and a panel of recommendations (if any traffic)."""
        window = f"{self.since:%Y-%m-%d %H:%M} – {self.until:%Y-%m-%d %H:%M} UTC"
        deployments = [((k,), m) for k, m in self.deployments.items()]
        groups = [((k,), m) for k, m in self.groups.items()]
        out: list[RenderableType] = [
            _metrics_table(f"Deployments ({window})", ("deployment",), deployments),
            _metrics_table("Model groups", ("model group",), groups),
        ]
        if self.arms:
            arms = [((a.group, a.deployment, _num(a.weight)), a.metrics) for a in self.arms]
            out.append(_metrics_table("Experiment arms", ("model group", "arm", "weight"), arms))
        if self.teams:
            out.append(_team_table(self.teams))
        if self.learning:
            out.append(_learning_table(self.learning))
        if self.deployments or self.groups:
            out.append(_recommendation_panel(self.recommendations))
        return out


def _team_dict(m: Metrics) -> dict[str, Any]:
    values = m.as_dict()
    return {k: values[k] for k in _TEAM_FIELDS}


def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


def _fmt_ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _fmt_rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _money(value: Decimal) -> str:
    """$1,234.57 from a dollar up (and $0.00); $0.0042 (four places) below."""
    return f"${value:,.2f}" if abs(value) >= 1 or value == 0 else f"${value:,.4f}"


def _pct(value: float) -> str:
    return f"{value * 100:.0f} %"


def _metrics_table(
    title: str, key_columns: tuple[str, ...], rows: Iterable[tuple[tuple[str, ...], Metrics]]
) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name in key_columns:
        table.add_column(name)
    for name in ("requests", "tokens in", "tokens out", "spend $", "avg ms", "p95 ms",
                 "errors", "feedback", "cache hits", "saved $"):
        table.add_column(name, justify="right")
    for keys, m in rows:
        avg = m.feedback_avg
        table.add_row(
            *keys, f"{m.requests:,}", f"{m.prompt_tokens:,}", f"{m.completion_tokens:,}",
            f"{m.spend_usd:,.4f}", _fmt_ms(m.avg_latency_ms), _fmt_ms(m.p95_latency_ms),
            f"{m.errors:,} ({_fmt_rate(m.error_rate)})",
            "–" if avg is None else f"{avg:.2f} (n={m.feedback_count})",
            f"{m.cache_hits:,}", f"{m.cache_savings_usd:,.4f}",
        )
    return table


def _team_table(teams: dict[str | None, Metrics]) -> Table:
    from rich.table import Table

    table = Table(title="Teams", title_justify="left")
    table.add_column("team")
    for name in ("requests", "tokens in", "tokens out", "spend $", "errors", "cache hits",
                 "saved $"):
        table.add_column(name, justify="right")
    for team, m in teams.items():
        table.add_row(
            team or NO_TEAM, f"{m.requests:,}", f"{m.prompt_tokens:,}", f"{m.completion_tokens:,}",
            f"{m.spend_usd:,.4f}", f"{m.errors:,} ({_fmt_rate(m.error_rate)})",
            f"{m.cache_hits:,}", f"{m.cache_savings_usd:,.4f}",
        )
    return table


def _learning_table(rows: list[LearningRow]) -> Table:
    from rich.table import Table

    table = Table(title="Learning (all time)", title_justify="left")
    table.add_column("deployment")
    table.add_column("task class")
    for name in ("requests", "success", "avg ms", "avg cost $", "feedback"):
        table.add_column(name, justify="right")
    for row in rows:
        d = row.as_dict()
        fb = d["feedback_avg"]
        table.add_row(
            row.deployment, row.task_class, f"{row.requests:,}", _fmt_rate(d["success_rate"]),
            _fmt_ms(d["avg_latency_ms"]),
            "–" if d["avg_cost_usd"] is None else f"{d['avg_cost_usd']:.6f}",
            "–" if fb is None else f"{fb:.2f} (n={row.feedback_count})",
        )
    return table


def _recommendation_panel(recommendations: list[Recommendation]) -> RenderableType:
    from rich.panel import Panel
    from rich.text import Text

    text = Text()  # plain Text: names in messages are never read as markup
    if not recommendations:
        text.append("None: no deployment crossed a threshold in this window.")
    for n, r in enumerate(recommendations):
        if n:
            text.append("\n")
        text.append(f"• {r.kind}", style="bold")
        if r.savings_usd is not None:
            text.append(f" (saves {_money(r.savings_usd)})", style="green")
        text.append(f": {r.message}")
    return Panel(text, title="Recommendations", title_align="left")


def p95(values: list[float]) -> float | None:
    """Nearest-rank 95th percentile (the ceil(0.95 n)-th smallest), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def task_level(task_class: str | None) -> str | None:
    """"code:simple" -> "simple", "simple" -> "simple" (as `TaskProfile.level`), None -> None."""
    return task_class.rpartition(":")[2] if task_class else None


async def build_report(
    store: Store,
    days: int,
    now: datetime | None = None,
    *,
    settings: Settings | None = None,
    p95_sample: int = DEFAULT_P95_SAMPLE,
    thresholds: Thresholds | None = None,
) -> Report:
    """Read the store and assemble the report for the `days` before `now` (default: now).

    `settings` supplies experiments, and prices, locations and model groups for the
    recommendations; `thresholds` (default `Thresholds()`) decides when those are made."""
    if days <= 0 or p95_sample < 1:
        raise ValueError("days and p95_sample must be positive")
    until = (now or datetime.now(UTC)).astimezone(UTC)
    since = until - timedelta(days=days)
    report = Report(since=since, until=until, days=days)
    experiments = settings.routing.experiments if settings is not None else {}
    in_window = sa.and_(request_log.c.created_at >= since, request_log.c.created_at <= until)
    async with store.engine.connect() as conn:
        pairs = await _pair_metrics(conn, in_window)
        await _add_feedback(conn, pairs, report, since, until)
        _roll_up(pairs, report, experiments)
        report.teams = await _team_metrics(conn, in_window)
        for name, m in report.deployments.items():
            m.p95_latency_ms = await _p95(conn, in_window, p95_sample,
                                          request_log.c.deployment == name)
        for name, m in report.groups.items():
            m.p95_latency_ms = await _p95(conn, in_window, p95_sample,
                                          request_log.c.model_group == name)
        for arm in report.arms:
            if arm.metrics.requests:
                arm.metrics.p95_latency_ms = await _p95(
                    conn, in_window, p95_sample, request_log.c.model_group == arm.group,
                    request_log.c.deployment == arm.deployment,
                )
        report.learning = await _learning(conn)
        served, simple = await _served(conn, in_window) if report.deployments else ({}, {})
        error_codes = await _error_codes(conn, in_window) if report.deployments else {}
    report.recommendations = recommend(
        report, pairs, served, simple, error_codes, settings, thresholds or Thresholds()
    )
    return report


async def report_payload(
    store: Store, settings: Settings, days: int, *, now: datetime | None = None
) -> dict[str, Any]:
    """The report as plain JSON data (what `tiergate report --json` prints), for
    `GET /admin/report?days=N`. Raises ValueError for days < 1."""
    report = await build_report(store, days, now, settings=settings)
    return report.to_json()


Pair = tuple[str, str | None]  # (model_group, deployment)


def _is_hit() -> Any:
    return request_log.c.cache.in_(CACHE_HITS)


async def _pair_metrics(conn: Any, in_window: Any) -> dict[Pair, Metrics]:
    c = request_log.c
    query = (
        sa.select(
            c.model_group, c.deployment, *_sums(),
            sa.func.sum(c.latency_ms),
        )
        .where(in_window)
        .group_by(c.model_group, c.deployment)
    )
    pairs: dict[Pair, Metrics] = {}
    for group, deployment, *sums, lat in await conn.execute(query):
        m = _metrics(sums)
        m.latency_ms_sum = float(lat or 0.0)
        pairs[(group, deployment)] = m
    return pairs


def _sums() -> tuple[Any, ...]:
    """The aggregate columns `_metrics` reads, in its order."""
    c = request_log.c
    return (
        sa.func.count(), sa.func.sum(c.prompt_tokens), sa.func.sum(c.completion_tokens),
        sa.func.sum(c.total_tokens), sa.func.sum(c.cost_usd),
        sa.func.sum(sa.case((c.status_code >= 400, 1), else_=0)),
        sa.func.sum(sa.case((_is_hit(), 1), else_=0)), sa.func.sum(c.saved_usd),
    )


def _metrics(sums: list[Any]) -> Metrics:
    n, p_tok, c_tok, t_tok, cost, errors, hits, saved = sums
    return Metrics(
        requests=int(n), prompt_tokens=int(p_tok or 0), completion_tokens=int(c_tok or 0),
        total_tokens=int(t_tok or 0), spend_usd=_decimal(cost), errors=int(errors or 0),
        cache_hits=int(hits or 0), cache_savings_usd=_decimal(saved),
    )


async def _team_metrics(conn: Any, in_window: Any) -> dict[str | None, Metrics]:
    c = request_log.c
    query = sa.select(c.team, *_sums()).where(in_window).group_by(c.team)
    teams = {team: _metrics(sums) for team, *sums in await conn.execute(query)}
    return dict(sorted(teams.items(), key=lambda kv: (kv[0] is None, kv[0] or "")))


def _decimal(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))


async def _add_feedback(
    conn: Any, pairs: dict[Pair, Metrics], report: Report, since: datetime, until: datetime
) -> None:
    """Feedback in the window, per (model group of its request, deployment)."""
    f = feedback.c
    query = (
        sa.select(request_log.c.model_group, f.deployment, sa.func.count(), sa.func.sum(f.score))
        .select_from(feedback.outerjoin(request_log, request_log.c.id == f.request_id))
        .where(f.created_at >= since, f.created_at <= until)
        .group_by(request_log.c.model_group, f.deployment)
    )
    for group, deployment, n, total in await conn.execute(query):
        if group is None:  # no request_log row: counts for the deployment only
            m = report.deployments.setdefault(deployment, Metrics())
        else:
            m = pairs.setdefault((group, deployment), Metrics())
        m.feedback_count += int(n)
        m.feedback_sum += float(total or 0.0)


def _roll_up(pairs: dict[Pair, Metrics], report: Report, experiments: dict[str, Any]) -> None:
    for (group, deployment), m in sorted(pairs.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        g = report.groups.setdefault(group, Metrics())
        g.add(m)
        g.feedback_count += m.feedback_count
        g.feedback_sum += m.feedback_sum
        if deployment is not None:
            d = report.deployments.setdefault(deployment, Metrics())
            d.add(m)
            d.feedback_count += m.feedback_count
            d.feedback_sum += m.feedback_sum
    report.deployments = dict(sorted(report.deployments.items()))
    for group, experiment in sorted(experiments.items()):
        for arm, weight in experiment.arms.items():
            source = pairs.get((group, arm))
            metrics = Metrics()
            if source is not None:
                metrics.add(source)
                metrics.feedback_count = source.feedback_count
                metrics.feedback_sum = source.feedback_sum
            report.arms.append(ArmReport(group, arm, float(weight), metrics))


async def _p95(conn: Any, in_window: Any, limit: int, *conditions: Any) -> float | None:
    c = request_log.c
    query = (
        sa.select(c.latency_ms)
        .where(in_window, *conditions)
        .order_by(c.created_at.desc())
        .limit(limit)
    )
    values = [float(v) for v in (await conn.execute(query)).scalars()]
    return p95(values)


async def _learning(conn: Any) -> list[LearningRow]:
    s = deployment_stats.c
    query = sa.select(
        s.deployment, s.task_class, s.requests, s.successes, s.failures, s.latency_ms_sum,
        s.cost_usd_sum, s.feedback_count, s.feedback_sum,
    ).order_by(s.deployment, s.task_class)
    return [
        LearningRow(
            row.deployment, row.task_class, int(row.requests), int(row.successes),
            int(row.failures), float(row.latency_ms_sum), float(row.cost_usd_sum),
            int(row.feedback_count), float(row.feedback_sum),
        )
        for row in await conn.execute(query)
    ]


# ----------------------------------------------------------------------------- recommendations
@dataclass(slots=True)
class Usage:
    """Served requests (successful, not cache hits) of one (model group, deployment)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = Decimal(0)

    def add(self, other: Usage) -> None:
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd += other.cost_usd

    def cost_on(self, d: Deployment) -> Decimal:
        """What these tokens cost at `d`'s price."""
        return (d.price.input * self.prompt_tokens + d.price.output * self.completion_tokens) / PER_MILLION


async def _served(
    conn: Any, in_window: Any
) -> tuple[dict[tuple[str, str], Usage], dict[tuple[str, str], Usage]]:
    """Served usage per (model group, deployment): all of it, and the part scored simple."""
    c = request_log.c
    query = (
        sa.select(
            c.model_group, c.deployment, c.task_class, sa.func.count(),
            sa.func.sum(c.prompt_tokens), sa.func.sum(c.completion_tokens), sa.func.sum(c.cost_usd),
        )
        .where(
            in_window, c.status_code < 400, c.deployment.is_not(None),
            sa.or_(c.cache.is_(None), c.cache.not_in(CACHE_HITS)),
        )
        .group_by(c.model_group, c.deployment, c.task_class)
    )
    served: dict[tuple[str, str], Usage] = {}
    simple: dict[tuple[str, str], Usage] = {}
    for group, deployment, task_class, n, p_tok, c_tok, cost in await conn.execute(query):
        usage = Usage(int(n), int(p_tok or 0), int(c_tok or 0), _decimal(cost))
        served.setdefault((group, deployment), Usage()).add(usage)
        if task_level(task_class) == "simple":
            simple.setdefault((group, deployment), Usage()).add(usage)
    return served, simple


async def _error_codes(conn: Any, in_window: Any) -> dict[str, list[tuple[str | None, int]]]:
    """Failed requests per deployment and error code, most frequent first."""
    c = request_log.c
    query = (
        sa.select(c.deployment, c.error_code, sa.func.count())
        .where(in_window, c.status_code >= 400, c.deployment.is_not(None))
        .group_by(c.deployment, c.error_code)
    )
    out: dict[str, list[tuple[str | None, int]]] = {}
    for deployment, code, n in await conn.execute(query):
        out.setdefault(deployment, []).append((code, int(n)))
    for codes in out.values():
        codes.sort(key=lambda kv: (-kv[1], kv[0] or ""))
    return out


def recommend(
    report: Report,
    pairs: dict[Pair, Metrics],
    served: dict[tuple[str, str], Usage],
    simple: dict[tuple[str, str], Usage],
    error_codes: dict[str, list[tuple[str | None, int]]],
    settings: Settings | None,
    t: Thresholds,
) -> list[Recommendation]:
    """Every recommendation the numbers support (see the module doc), best first."""
    out: list[Recommendation] = []
    if settings is not None:
        out += _simple_to_local(served, simple, settings, t, report.days)
        out += _cheaper_equal_feedback(pairs, served, settings, t, report.days)
    out += _error_rate(report, error_codes, t)
    out += _slow_p95(report, pairs, t)
    out.sort(key=lambda r: (
        r.savings_usd is None, -(r.savings_usd or 0), _KIND_ORDER.get(r.kind, 99), r.subject,
    ))
    return out


def _paid(d: Deployment) -> bool:
    return d.price.input > 0 or d.price.output > 0


def _group_members(settings: Settings, group: str) -> list[Deployment]:
    members = (settings.deployment(n) for n in settings.model_groups.get(group, ()))
    return [d for d in members if d is not None]


def _simple_to_local(
    served: dict[tuple[str, str], Usage],
    simple: dict[tuple[str, str], Usage],
    settings: Settings,
    t: Thresholds,
    days: int,
) -> list[Recommendation]:
    out: list[Recommendation] = []
    for (group, name), used in sorted(served.items()):
        d = settings.deployment(name)
        s = simple.get((group, name))
        if d is None or not _paid(d) or s is None or s.requests < t.simple_min_requests:
            continue
        share = s.requests / used.requests
        locals_ = [x for x in _group_members(settings, group) if x.location == "local" and x.name != name]
        if share < t.simple_share_min or not locals_:
            continue
        best = min(locals_, key=s.cost_on)  # the first of equally cheap ones, in group order
        local_cost = s.cost_on(best)
        savings = s.cost_usd - local_cost
        if savings < t.min_savings_usd:
            continue
        message = (
            f"{_pct(share)} of the successful requests sent to {name} for model group {group} "
            f"({s.requests:,} of {used.requests:,}) scored as simple by auto_route; they cost "
            f"{_money(s.cost_usd)} there and would have cost {_money(local_cost)} on {best.name}, "
            f"the cheapest local deployment of {group}: routing them to the local tier would have "
            f"saved {_money(savings)} in the last {days} days."
        )
        out.append(Recommendation("simple_to_local", message, savings, {
            "deployment": name, "model_group": group, "local_deployment": best.name,
            "served_requests": used.requests, "simple_requests": s.requests, "share": share,
            "prompt_tokens": s.prompt_tokens, "completion_tokens": s.completion_tokens,
            "cost_usd": float(s.cost_usd), "local_cost_usd": float(local_cost),
            "threshold_share": t.simple_share_min,
        }))
    return out


def _privacy_ok(alt: Deployment, d: Deployment) -> bool:
    """May the requests `d` answered go to `alt`: as private a location, and for sovereign to
    sovereign the same residency."""
    if _LOCATION_RANK[alt.location] > _LOCATION_RANK[d.location]:
        return False
    return not (alt.location == d.location == "sovereign" and alt.residency != d.residency)


def _cheaper_equal_feedback(
    pairs: dict[Pair, Metrics],
    served: dict[tuple[str, str], Usage],
    settings: Settings,
    t: Thresholds,
    days: int,
) -> list[Recommendation]:
    out: list[Recommendation] = []
    min_count = max(1, t.feedback_min_count)  # never compare without feedback
    for (group, name), used in sorted(served.items()):
        d = settings.deployment(name)
        mine = pairs.get((group, name))
        if d is None or not _paid(d) or mine is None or mine.feedback_count < min_count:
            continue
        mine_fb = mine.feedback_avg or 0.0
        max_errors = max(t.error_rate_max, mine.error_rate or 0.0)
        best: tuple[Decimal, Deployment, Metrics] | None = None
        for (other_group, other), theirs in sorted(pairs.items(), key=lambda kv: str(kv[0])):
            alt = settings.deployment(other) if other_group == group and other else None
            if (
                alt is None or alt.name == name or not _privacy_ok(alt, d)
                or theirs.feedback_count < min_count
                or (theirs.feedback_avg or 0.0) < mine_fb
                or (theirs.error_rate or 0.0) > max_errors
            ):
                continue
            savings = used.cost_usd - used.cost_on(alt)
            if best is None or savings > best[0]:
                best = (savings, alt, theirs)
        if best is None or best[0] < t.min_savings_usd:
            continue
        savings, alt, theirs = best
        alt_cost = used.cost_on(alt)
        message = (
            f"In model group {group}, {alt.name} scored {theirs.feedback_avg:.2f} in user feedback "
            f"(n={theirs.feedback_count:,}) against {mine_fb:.2f} (n={mine.feedback_count:,}) for "
            f"{name}; the {used.requests:,} successful requests {name} answered in the last "
            f"{days} days cost "
            f"{_money(used.cost_usd)} and would have cost {_money(alt_cost)} at {alt.name}'s "
            f"price: sending them there would have saved {_money(savings)}."
        )
        out.append(Recommendation("cheaper_equal_feedback", message, savings, {
            "deployment": name, "model_group": group, "alternative": alt.name,
            "served_requests": used.requests, "prompt_tokens": used.prompt_tokens,
            "completion_tokens": used.completion_tokens, "cost_usd": float(used.cost_usd),
            "alternative_cost_usd": float(alt_cost), "feedback_avg": mine_fb,
            "feedback_count": mine.feedback_count, "alternative_feedback_avg": theirs.feedback_avg,
            "alternative_feedback_count": theirs.feedback_count,
            "error_rate": mine.error_rate, "alternative_error_rate": theirs.error_rate,
            "location": d.location, "alternative_location": alt.location,
        }))
    return out


def _error_rate(
    report: Report, error_codes: dict[str, list[tuple[str | None, int]]], t: Thresholds
) -> list[Recommendation]:
    out: list[Recommendation] = []
    for name, m in report.deployments.items():
        rate = m.error_rate
        if m.requests < t.error_min_requests or rate is None or rate <= t.error_rate_max:
            continue
        codes = error_codes.get(name, [])[:TOP_ERROR_CODES]
        listed = ", ".join(f"{code or '(no code)'} ×{n:,}" for code, n in codes)
        message = (
            f"{name} failed {rate:.1%} of its {m.requests:,} requests ({m.errors:,} with status "
            f">= 400; the threshold is {t.error_rate_max:.1%}) in the last {report.days} days"
            + (f"; most frequent: {listed}" if listed else "")
            + ". Check its health, quota and timeouts, or move it down the fallback order."
        )
        out.append(Recommendation("error_rate", message, None, {
            "deployment": name, "requests": m.requests, "errors": m.errors, "error_rate": rate,
            "threshold": t.error_rate_max,
            "top_errors": [{"error_code": code, "count": n} for code, n in codes],
        }))
    return out


def _slow_p95(report: Report, pairs: dict[Pair, Metrics], t: Thresholds) -> list[Recommendation]:
    enough: dict[str, float] = {}
    for name, m in report.deployments.items():
        if m.requests >= t.slow_min_requests and m.p95_latency_ms is not None:
            enough[name] = m.p95_latency_ms
    members: dict[str, set[str]] = {}
    for (group, name), m in pairs.items():
        if name in enough and m.requests:  # not a pair that only has feedback in the window
            members.setdefault(group, set()).add(name)
    out: list[Recommendation] = []
    for name, value in enough.items():
        worst: tuple[float, str, float, list[str]] | None = None
        for group in sorted(g for g, names in members.items() if name in names):
            others = sorted(members[group] - {name})
            if not others:
                continue
            median = statistics.median(enough[o] for o in others)
            if median <= 0:
                continue
            ratio = value / median
            if ratio >= t.slow_p95_factor and (worst is None or ratio > worst[0]):
                worst = (ratio, group, median, others)
        requests = report.deployments[name].requests
        if worst is not None:
            ratio, group, median, others = worst
            message = (
                f"{name}'s p95 latency is {value:,.0f} ms over {requests:,} requests, "
                f"{ratio:.1f}× the median p95 of the other deployments of model group {group} "
                f"({median:,.0f} ms; {', '.join(others)}); prefer them for latency-sensitive "
                "traffic (strategy speed) or check its load."
            )
            out.append(Recommendation("slow_p95", message, None, {
                "deployment": name, "model_group": group, "basis": "group_median",
                "requests": requests, "p95_latency_ms": value, "group_median_p95_ms": median,
                "ratio": ratio, "compared_with": others, "threshold_factor": t.slow_p95_factor,
            }))
        elif value > t.slow_p95_max_ms:
            message = (
                f"{name}'s p95 latency is {value:,.0f} ms over {requests:,} requests, above "
                f"{t.slow_p95_max_ms:,.0f} ms; check its load, timeouts and max_tokens, or prefer a "
                "faster deployment for latency-sensitive traffic."
            )
            out.append(Recommendation("slow_p95", message, None, {
                "deployment": name, "model_group": None, "basis": "absolute",
                "requests": requests, "p95_latency_ms": value,
                "threshold_ms": t.slow_p95_max_ms,
            }))
    return out
