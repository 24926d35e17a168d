"""Learning: outcome statistics per (deployment, task class), kept in memory and persisted.

Every finished request adds one outcome (`record`): success or failure, latency, cost. Users may
later score an answer (`feedback`, from `POST /v1/feedback`). The `learned` strategy reads the
result as a Beta posterior per deployment (`beta`) and samples from it (Thompson sampling).

Hot path: `record`, `remember`, `beta` and `stats` are synchronous dictionary updates/reads
(no I/O, no awaits, a few hundred nanoseconds). Persistence happens elsewhere:

* `load()` (start-up) reads the `deployment_stats` table, so statistics survive restarts.
* `flush()` writes the increments gathered since the last flush, one UPSERT per touched
  (deployment, task class) row (`x = x + excluded.x`), plus the queued feedback rows, in one
  transaction. Several gateway workers sharing a database therefore add up instead of
  overwriting each other. After writing it re-reads the table, so each worker also learns from
  the others' traffic (memory = database totals + increments not yet written).
* `start(flush_interval_s)` runs `flush()` periodically in a background task; `stop()` ends it
  and flushes once more. A failed flush keeps its increments for the next one (nothing lost
  while the database is down; they are only lost if the process dies first).

Feedback scores are in **[0, 1]** (0 = bad, 1 = good; a thumbs up/down is 1/0). A score s counts
as s of a success and (1 - s) of a failure in the posterior, so `feedback_sum` is the positive
mass and `feedback_count - feedback_sum` the negative one. Only the first score per request id
counts (the feedback table's primary key; later ones are reported as duplicates).

Finding the deployment a request went to: `remember(request_id, ...)` keeps the newest
`remember_size` requests in an LRU, so feedback on a recent request needs no query (the request
log is written in batches and may not have the row yet anyway). Older ids are looked up in
`request_log`; the request log has no task class, so such feedback counts under
`UNKNOWN_CLASS` (it still moves the deployment's overall posterior).

`store=None` gives the same behaviour in memory only (tests, `tiergate` without a database).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from tiergate.store.models import deployment_stats, request_log
from tiergate.store.models import feedback as feedback_table

if TYPE_CHECKING:
    from tiergate.store.db import Store

log = logging.getLogger("tiergate.routing.learning")

DEFAULT_TASK_CLASS = "general"  # `record(..., task_class=None)` counts here
UNKNOWN_CLASS = "unknown"  # feedback whose task class could not be found (request_log lookup)
PRIOR: tuple[float, float] = (1.0, 1.0)  # Beta(1, 1): uniform before evidence

_COUNTERS = (
    "requests", "successes", "failures", "latency_ms_sum", "cost_usd_sum",
    "feedback_count", "feedback_sum",
)


class Stats:
    """Running totals for one (deployment, task class), or a deployment overall."""

    __slots__ = _COUNTERS

    def __init__(self) -> None:
        self.requests = 0
        self.successes = 0
        self.failures = 0
        self.latency_ms_sum = 0.0
        self.cost_usd_sum = 0.0
        self.feedback_count = 0
        self.feedback_sum = 0.0

    def add(self, other: Stats) -> None:
        for name in _COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def empty(self) -> bool:
        return self.requests == 0 and self.feedback_count == 0

    @property
    def mean_latency_ms(self) -> float | None:
        return self.latency_ms_sum / self.requests if self.requests else None

    @property
    def mean_cost_usd(self) -> float | None:
        return self.cost_usd_sum / self.requests if self.requests else None

    @property
    def feedback_avg(self) -> float | None:
        return self.feedback_sum / self.feedback_count if self.feedback_count else None

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in _COUNTERS}

    def __repr__(self) -> str:
        return f"Stats({self.as_dict()})"


def beta_from(stats: Stats, prior: tuple[float, float] = PRIOR) -> tuple[float, float]:
    """Beta(alpha, beta) posterior: successes + positive feedback vs failures + negative."""
    alpha = prior[0] + stats.successes + stats.feedback_sum
    beta = prior[1] + stats.failures + (stats.feedback_count - stats.feedback_sum)
    return alpha, beta


class UnknownRequest(LookupError):
    """Feedback for a request id this gateway cannot place (not recent, not in request_log)."""


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    request_id: str
    deployment: str
    task_class: str
    score: float
    duplicate: bool  # a score for this request was already counted: this one was ignored
    source: Literal["given", "memory", "request_log"]  # how the deployment was found


@dataclass(frozen=True, slots=True)
class _PendingFeedback:
    request_id: str
    score: float
    comment: str | None
    created_at: datetime
    deployment: str
    task_class: str


Key = tuple[str, str]


class Learner:
    """Per-(deployment, task class) outcome statistics; see the module docstring."""

    def __init__(
        self,
        store: Store | None,
        clock: Callable[[], float] = time.time,
        *,
        flush_interval_s: float = 5.0,
        remember_size: int = 10_000,
        prior: tuple[float, float] = PRIOR,
        sync_from_store: bool = True,
    ) -> None:
        if flush_interval_s <= 0 or remember_size < 1:
            raise ValueError("flush_interval_s and remember_size must be positive")
        self._store = store
        self._clock = clock
        self._interval = flush_interval_s
        self._remember_size = remember_size
        self.prior = prior
        self._sync = sync_from_store
        self._stats: dict[Key, Stats] = {}
        self._overall: dict[str, Stats] = {}
        self._pending: dict[Key, Stats] = {}
        self._pending_feedback: list[_PendingFeedback] = []
        self._recent: OrderedDict[str, Key] = OrderedDict()
        self._scored: OrderedDict[str, None] = OrderedDict()  # request ids with feedback
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self.flushes = 0  # committed flushes
        self.flush_failures = 0

    # ----- hot path (synchronous, no I/O) ---------------------------------------------------

    def record(
        self,
        deployment: str,
        task_class: str | None,
        ok: bool,
        latency_ms: float,
        cost_usd: float,
    ) -> None:
        """Count one outcome (called once per upstream attempt that finished)."""
        key = (deployment, task_class or DEFAULT_TASK_CLASS)
        for target in (self._row(key), self._overall_row(deployment), self._pending_row(key)):
            target.requests += 1
            if ok:
                target.successes += 1
            else:
                target.failures += 1
            target.latency_ms_sum += latency_ms
            target.cost_usd_sum += cost_usd

    def remember(self, request_id: str, deployment: str, task_class: str | None) -> None:
        """Note where a request went, so `feedback` on it needs no query (bounded LRU)."""
        recent = self._recent
        recent[request_id] = (deployment, task_class or DEFAULT_TASK_CLASS)
        recent.move_to_end(request_id)
        if len(recent) > self._remember_size:
            recent.popitem(last=False)

    def beta(self, deployment: str, task_class: str | None) -> tuple[float, float] | None:
        """Beta posterior for Thompson sampling, or None before any data for the deployment.

        Uses the task class's own statistics when it has any, else the deployment's overall
        statistics (all classes), so a new class starts from what is known of the deployment.
        """
        stats = self.stats(deployment, task_class)
        return None if stats is None else beta_from(stats, self.prior)

    def stats(self, deployment: str, task_class: str | None) -> Stats | None:
        """The statistics `beta` uses (class, else overall), or None; do not mutate."""
        row = self._stats.get((deployment, task_class or DEFAULT_TASK_CLASS))
        if row is not None and not row.empty():
            return row
        overall = self._overall.get(deployment)
        if overall is not None and not overall.empty():
            return overall
        return None

    def overall(self, deployment: str) -> Stats | None:
        return self._overall.get(deployment)

    def snapshot(self) -> dict[Key, dict[str, float]]:
        """All per-class totals as plain dicts (for `explain`, tests and the report)."""
        return {key: s.as_dict() for key, s in self._stats.items()}

    # ----- feedback (the /v1/feedback handler; may query request_log) ------------------------

    async def feedback(
        self,
        request_id: str,
        score: float,
        deployment: str | None = None,
        task_class: str | None = None,
        *,
        comment: str | None = None,
    ) -> FeedbackResult:
        """Count a user's score in [0, 1] for a request; raise `UnknownRequest` if unplaceable.

        The deployment comes from the arguments, else the recent-request LRU, else request_log.
        The score reaches memory at once and the database at the next flush.
        """
        score = float(score)
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"feedback score must be in [0, 1], got {score}")
        source: Literal["given", "memory", "request_log"]
        if deployment is not None:
            source = "given"
            task_class = task_class or self._recent.get(request_id, ("", DEFAULT_TASK_CLASS))[1]
        elif (known := self._recent.get(request_id)) is not None:
            source = "memory"
            deployment, task_class = known[0], task_class or known[1]
        else:
            source = "request_log"
            deployment = await self._lookup_deployment(request_id)
            task_class = task_class or UNKNOWN_CLASS
        if request_id in self._scored:
            return FeedbackResult(request_id, deployment, task_class, score, True, source)
        self._scored[request_id] = None
        if len(self._scored) > self._remember_size:
            self._scored.popitem(last=False)
        key = (deployment, task_class)
        for target in (self._row(key), self._overall_row(deployment)):
            target.feedback_count += 1
            target.feedback_sum += score
        self._pending_feedback.append(
            _PendingFeedback(request_id, score, comment, self._now(), deployment, task_class)
        )
        return FeedbackResult(request_id, deployment, task_class, score, False, source)

    async def _lookup_deployment(self, request_id: str) -> str:
        if self._store is None:
            raise UnknownRequest(f"unknown request id {request_id!r}")
        query = sa.select(request_log.c.deployment).where(request_log.c.id == request_id)
        async with self._store.engine.connect() as conn:
            deployment = await conn.scalar(query)
        if not deployment:  # no row, or the request never reached a deployment
            raise UnknownRequest(f"unknown request id {request_id!r}")
        return str(deployment)

    # ----- persistence ------------------------------------------------------------------------

    async def load(self) -> None:
        """Replace the in-memory totals with the database's (start-up; keeps unflushed ones)."""
        async with self._flush_lock:  # not halfway through a flush's write
            await self._load()

    async def _load(self) -> None:
        if self._store is None:
            return
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(sa.select(deployment_stats))).mappings().all()
        self._rebuild(rows)

    def _rebuild(self, rows: Any) -> None:
        stats: dict[Key, Stats] = {}
        for row in rows:
            s = Stats()
            for name in _COUNTERS:
                setattr(s, name, type(getattr(s, name))(row[name]))
            stats[(row["deployment"], row["task_class"])] = s
        for key, delta in self._pending.items():  # recorded but not yet in the database
            stats.setdefault(key, Stats()).add(delta)
        # Feedback still queued (not yet in feedback_count) is in memory only: keep it too.
        for fb in self._pending_feedback:
            s = stats.setdefault((fb.deployment, fb.task_class), Stats())
            s.feedback_count += 1
            s.feedback_sum += fb.score
        overall: dict[str, Stats] = {}
        for (deployment, _), s in stats.items():
            overall.setdefault(deployment, Stats()).add(s)
        self._stats, self._overall = stats, overall

    async def flush(self) -> int:
        """Write pending increments and feedback in one transaction; return rows upserted.

        On failure the increments go back to the pending set (retried next time) and the error
        propagates. Feedback whose request id already has a row is dropped, not counted twice.
        """
        if self._store is None:
            self._pending.clear()
            self._pending_feedback.clear()
            return 0
        async with self._flush_lock:
            batch, self._pending = self._pending, {}
            feedback_batch, self._pending_feedback = self._pending_feedback, []
            try:
                written = await self._write(batch, feedback_batch)
            except BaseException:
                self._restore(batch, feedback_batch)
                self.flush_failures += 1
                raise
            self.flushes += 1
            if self._sync:
                try:
                    await self._load()
                except Exception:  # written already; a stale memory view is harmless
                    log.warning("learning: re-reading deployment_stats failed", exc_info=True)
            return written

    def _restore(self, batch: dict[Key, Stats], feedback_batch: list[_PendingFeedback]) -> None:
        for key, delta in batch.items():
            self._pending_row(key).add(delta)
        self._pending_feedback[:0] = feedback_batch

    async def _write(
        self, batch: dict[Key, Stats], feedback_batch: list[_PendingFeedback]
    ) -> int:
        if not batch and not feedback_batch:
            return 0
        assert self._store is not None
        now = self._now()
        merged = {key: _copy(s) for key, s in batch.items()}
        async with self._store.engine.begin() as conn:
            for fb in feedback_batch:
                if await self._insert_feedback(conn, fb):
                    s = merged.setdefault((fb.deployment, fb.task_class), Stats())
                    s.feedback_count += 1
                    s.feedback_sum += fb.score
            if merged:
                params = [
                    {"deployment": d, "task_class": c, "updated_at": now, **s.as_dict()}
                    for (d, c), s in sorted(merged.items())  # fixed order: no deadlocks
                ]
                await conn.execute(_upsert_statement(conn.dialect.name), params)
        return len(merged)

    @staticmethod
    async def _insert_feedback(conn: Any, fb: _PendingFeedback) -> bool:
        stmt = _dialect_insert(conn.dialect.name, feedback_table).values(
            request_id=fb.request_id, score=fb.score, comment=fb.comment,
            created_at=fb.created_at, deployment=fb.deployment, task_class=fb.task_class,
        ).on_conflict_do_nothing(index_elements=["request_id"])
        result = await conn.execute(stmt)
        return bool(result.rowcount)

    # ----- background task --------------------------------------------------------------------

    def start(self, flush_interval_s: float | None = None) -> None:
        """Flush every `flush_interval_s` (default: the constructor's) in a background task."""
        if self._task is not None and not self._task.done():
            return
        if flush_interval_s is not None:
            if flush_interval_s <= 0:
                raise ValueError("flush_interval_s must be positive")
            self._interval = flush_interval_s
        self._task = asyncio.get_running_loop().create_task(self._run(), name="learning-flush")

    async def _run(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception:
                if not failing:  # log once per outage
                    log.warning("learning: flushing statistics failed; will retry", exc_info=True)
                failing = True
            else:
                if failing:
                    log.warning("learning: statistics flushed again")
                failing = False

    async def stop(self) -> None:
        """Stop the background task and flush what is left (errors are logged, not raised)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        try:
            await self.flush()
        except Exception:
            log.warning("learning: final flush failed; increments lost", exc_info=True)

    # ----- helpers ----------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _row(self, key: Key) -> Stats:
        row = self._stats.get(key)
        if row is None:
            row = self._stats[key] = Stats()
        return row

    def _overall_row(self, deployment: str) -> Stats:
        row = self._overall.get(deployment)
        if row is None:
            row = self._overall[deployment] = Stats()
        return row

    def _pending_row(self, key: Key) -> Stats:
        row = self._pending.get(key)
        if row is None:
            row = self._pending[key] = Stats()
        return row


def _copy(stats: Stats) -> Stats:
    out = Stats()
    out.add(stats)
    return out


def _dialect_insert(dialect: str, table: sa.Table) -> Any:
    """INSERT with ON CONFLICT support: the same SQL on SQLite and PostgreSQL."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the store only supports these two
        raise ValueError(f"unsupported dialect {dialect!r}")
    return insert(table)


def _upsert_statement(dialect: str) -> Any:
    """INSERT .. ON CONFLICT (deployment, task_class) DO UPDATE SET x = x + excluded.x."""
    stmt = _dialect_insert(dialect, deployment_stats)
    table = deployment_stats.c
    updates: dict[str, Any] = {
        name: table[name] + getattr(stmt.excluded, name) for name in _COUNTERS
    }
    updates["updated_at"] = stmt.excluded.updated_at
    return stmt.on_conflict_do_update(index_elements=["deployment", "task_class"], set_=updates)
