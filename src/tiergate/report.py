"""`tiergate report`: traffic, spend, latency, errors and feedback over the last N days.

Built from the store (`build_report`), shown as rich tables (`Report.to_table`), JSON
(`to_json`) or CSV (`to_csv`). Sections:

* per deployment and per model group: requests, tokens, spend, average and p95 latency,
  errors / error rate, feedback count and average;
* per experiment arm (the deployments of each group with an experiment in the Settings passed
  in; arms without traffic are listed with zeros): the same numbers for requests of that group
  answered by that deployment;
* learning: the all-time `deployment_stats` totals per (deployment, task class).

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

Counts and sums are one GROUP BY (model_group, deployment) query; the per-deployment and
per-group rows are summed from it in Python.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tiergate.store.models import deployment_stats, feedback, request_log

if TYPE_CHECKING:
    from rich.table import Table

    from tiergate.config.models import Settings
    from tiergate.store.db import Store

DEFAULT_P95_SAMPLE = 10_000


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

    def add(self, other: Metrics) -> None:
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.total_tokens += other.total_tokens
        self.spend_usd += other.spend_usd
        self.latency_ms_sum += other.latency_ms_sum
        self.errors += other.errors

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
        }


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


_CSV_METRICS = (
    "requests", "prompt_tokens", "completion_tokens", "total_tokens", "spend_usd",
    "avg_latency_ms", "p95_latency_ms", "errors", "error_rate", "feedback_count", "feedback_avg",
)


@dataclass(slots=True)
class Report:
    since: datetime
    until: datetime
    days: int
    deployments: dict[str, Metrics] = field(default_factory=dict)
    groups: dict[str, Metrics] = field(default_factory=dict)
    arms: list[ArmReport] = field(default_factory=list)
    learning: list[LearningRow] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
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
            "learning": [row.as_dict() for row in self.learning],
        }

    def to_csv(self) -> str:
        """One CSV for all sections: `section` is deployment, model_group or arm."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("section", "name", "model_group", "weight", *_CSV_METRICS))
        rows: list[tuple[str, str, str, str, Metrics]] = []
        rows += [("deployment", k, "", "", m) for k, m in self.deployments.items()]
        rows += [("model_group", k, k, "", m) for k, m in self.groups.items()]
        rows += [("arm", a.deployment, a.group, _num(a.weight), a.metrics) for a in self.arms]
        for section, name, group, weight, m in rows:
            values = m.as_dict()
            values["spend_usd"] = m.spend_usd
            writer.writerow((section, name, group, weight, *(_num(values[c]) for c in _CSV_METRICS)))
        return out.getvalue()

    def to_table(self) -> list[Table]:
        """Rich tables: deployments, model groups, experiment arms and learning (if any)."""
        window = f"{self.since:%Y-%m-%d %H:%M} – {self.until:%Y-%m-%d %H:%M} UTC"
        deployments = [((k,), m) for k, m in self.deployments.items()]
        groups = [((k,), m) for k, m in self.groups.items()]
        tables = [
            _metrics_table(f"Deployments ({window})", ("deployment",), deployments),
            _metrics_table("Model groups", ("model group",), groups),
        ]
        if self.arms:
            arms = [((a.group, a.deployment, _num(a.weight)), a.metrics) for a in self.arms]
            tables.append(
                _metrics_table("Experiment arms", ("model group", "arm", "weight"), arms)
            )
        if self.learning:
            tables.append(_learning_table(self.learning))
        return tables


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


def _metrics_table(
    title: str, key_columns: tuple[str, ...], rows: Iterable[tuple[tuple[str, ...], Metrics]]
) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name in key_columns:
        table.add_column(name)
    for name in ("requests", "tokens in", "tokens out", "spend $", "avg ms", "p95 ms",
                 "errors", "feedback"):
        table.add_column(name, justify="right")
    for keys, m in rows:
        avg = m.feedback_avg
        table.add_row(
            *keys, f"{m.requests:,}", f"{m.prompt_tokens:,}", f"{m.completion_tokens:,}",
            f"{m.spend_usd:,.4f}", _fmt_ms(m.avg_latency_ms), _fmt_ms(m.p95_latency_ms),
            f"{m.errors:,} ({_fmt_rate(m.error_rate)})",
            "–" if avg is None else f"{avg:.2f} (n={m.feedback_count})",
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


def p95(values: list[float]) -> float | None:
    """Nearest-rank 95th percentile (the ceil(0.95 n)-th smallest), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


async def build_report(
    store: Store,
    days: int,
    now: datetime | None = None,
    *,
    settings: Settings | None = None,
    p95_sample: int = DEFAULT_P95_SAMPLE,
) -> Report:
    """Read the store and assemble the report for the `days` before `now` (default: now)."""
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
    return report


Pair = tuple[str, str | None]  # (model_group, deployment)


async def _pair_metrics(conn: Any, in_window: Any) -> dict[Pair, Metrics]:
    c = request_log.c
    query = (
        sa.select(
            c.model_group, c.deployment, sa.func.count(),
            sa.func.sum(c.prompt_tokens), sa.func.sum(c.completion_tokens),
            sa.func.sum(c.total_tokens), sa.func.sum(c.cost_usd), sa.func.sum(c.latency_ms),
            sa.func.sum(sa.case((c.status_code >= 400, 1), else_=0)),
        )
        .where(in_window)
        .group_by(c.model_group, c.deployment)
    )
    pairs: dict[Pair, Metrics] = {}
    for group, deployment, n, p_tok, c_tok, t_tok, cost, lat, errors in await conn.execute(query):
        pairs[(group, deployment)] = Metrics(
            requests=int(n), prompt_tokens=int(p_tok or 0), completion_tokens=int(c_tok or 0),
            total_tokens=int(t_tok or 0), spend_usd=_decimal(cost),
            latency_ms_sum=float(lat or 0.0), errors=int(errors or 0),
        )
    return pairs


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
