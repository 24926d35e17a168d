"""The request path, top to bottom. Every inbound API (OpenAI route, Anthropic route, SDK, later
batches) calls `Gateway.chat` (`Gateway.embed` for embeddings: the same stages without streaming);
each stage is a call into its own module:

    authenticate  key -> principal: master key or virtual key         (auth.py, keys.py)
    validate      body -> ChatRequest                                (request.py)
    classify      declared level (header / metadata / constraint) or default -> effective level
    resolve       model name -> model group candidates (404 lists known names; 403 for a model
                  the caller's key may not use)
    eligible      privacy by location, the key's deployments/locations/residencies, then
                  constraints                                        (routing/eligible.py)
    admit         rate limits, budget rules and the reservation      (budget/manager.py)
    cache         exact / semantic lookup in the request's partition (tenant, level): a hit is
                  answered here (as JSON or as an SSE stream), the reservation released (cache/)
    route         order the candidates by the strategy                (routing/router.py)
    explain       `x-tiergate-explain: true` returns the trace here, nothing is called
    transform     per candidate: redact / pseudonymise               (privacy/)
    audit         egress record before a non-local call              (later: audit.py)
    call          adapter call; fallback to the next candidate on connection errors, timeouts,
                  429 and 5xx; other 4xx are returned as they are
    settle        usage (reported, else estimated) -> cost; the reservation is released and the
                  actual cost counted against every budget           (budget/)
    store         a cacheable answer into the cache, after it was sent (streams once complete)
    record        request log row, batched off the hot path          (store/)

The decision trace (`Decision`) is a value, so `explain` and the logs come from the same data.
"""

from __future__ import annotations

import asyncio
import base64
import struct
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, AsyncGenerator, Awaitable, Callable, Mapping, TypeVar

import orjson

from .auth import Authenticator, Principal, build_authenticator
from .budget.manager import Admission, BudgetManager
from .budget.setup import build_budget_manager
from .cache import CacheHit, ResponseCache
from .cache.keys import CachePlan
from .cache.keys import partition as cache_partition
from .cache.keys import plan as cache_plan
from .cache.keys import tenant as cache_tenant
from .cache.sse import StreamAssembler, sse_events
from .config.models import Deployment, Settings
from .errors import (
    GatewayError,
    InvalidRequestError,
    ModelNotFoundError,
    PolicyError,
    ServiceUnavailableError,
    UnprocessableRequestError,
    UpstreamError,
    UpstreamProtocolError,
)
from .ids import new_request_id
from .keys import KeyStore
from .privacy.levels import PrivacyLevel, parse_level
from .privacy.policy import Inspection, PrivacyEngine
from .privacy.restoration import StreamRestoration, restore_result
from .privacy.restore import Restorer
from .providers import Provider, create_provider
from .redisconn import connect as connect_redis
from .request import parse_chat_request, parse_embeddings_request
from .routing.constraints import RequestNeeds
from .routing.eligible import (
    Exclusion,
    estimate_prompt_tokens,
    predicted_cost,
    split_eligible,
)
from .routing.router import Router, Slot
from .store import RequestLogRecord, RequestLogWriter
from .types import ChatRequest, ChatResult, ChatStream, StreamEvent, Usage

T = TypeVar("T")

# The privacy level of the request whose question the cache embeds with a routed embeddings
# deployment: the embedding call obeys it like any other request (set around lookup and store).
_cache_level: ContextVar[str] = ContextVar("tiergate_cache_level", default="PRIVATE")
_INTERNAL = Principal("cache", is_admin=True)


@dataclass(slots=True)
class Decision:
    """Why this level, why these candidates, why this order."""

    request_id: str
    model: str
    privacy: PrivacyLevel = PrivacyLevel.PUBLIC
    privacy_reason: str = ""
    candidates: list[str] = field(default_factory=list)
    excluded: list[Exclusion] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    strategy: str = "ordered"
    detection: dict[str, Any] = field(default_factory=dict)  # types, positions, counts: no values
    routing: dict[str, Any] = field(default_factory=dict)  # ranking with reasons, task profile
    transforms: dict[str, str] = field(default_factory=dict)  # deployment -> transform it gets

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "model": self.model,
            "privacy": {"level": self.privacy.name, "reason": self.privacy_reason, "detection": self.detection},
            "candidates": self.candidates,
            "excluded": [{"deployment": e.deployment, "reason": e.reason, "kind": e.kind} for e in self.excluded],
            "strategy": self.strategy,
            "routing": self.routing,
            "order": self.order,
            "transforms": {d: self.transforms.get(d, "none") for d in self.order},
            "upstream_called": False,
        }


@dataclass(slots=True)
class Receipt:
    """The residency receipt every answer carries."""

    request_id: str
    deployment: str
    location: str
    residency: str
    privacy: str
    overhead_ms: float
    fallbacks: int = 0
    transform: str = "none"
    cost_usd: Decimal | None = None  # known for complete answers (not for streams: sent first)
    extra: dict[str, str] = field(default_factory=dict)  # x-ratelimit-* of the key/team limits

    def headers(self) -> dict[str, str]:
        out = {
            "x-tiergate-transform": self.transform,
            "x-request-id": self.request_id,
            "x-tiergate-deployment": self.deployment,
            "x-tiergate-location": self.location,
            "x-tiergate-residency": self.residency,
            "x-tiergate-privacy": self.privacy,
            "x-tiergate-overhead-ms": f"{self.overhead_ms:.3f}",
            "x-tiergate-fallbacks": str(self.fallbacks),
        }
        if self.cost_usd is not None:
            out["x-tiergate-cost-usd"] = f"{self.cost_usd:.8f}"
        if self.extra:
            out.update(self.extra)
        return out


@dataclass(slots=True)
class Completed:
    result: ChatResult
    receipt: Receipt
    decision: Decision


@dataclass(slots=True)
class Embedded:
    """An embeddings answer in OpenAI's format (vectors as floats or base64, as asked)."""

    raw: bytes
    receipt: Receipt
    decision: Decision


@dataclass(slots=True)
class Explained:
    decision: Decision


class Streaming:
    """An answer being streamed: iterate `events()`; always `aclose()` when done.

    Fallback is over once this exists: the first event already came from `receipt.deployment`.
    """

    def __init__(
        self, gateway: Gateway, ctx: _Call, stream: ChatStream, first: list[StreamEvent], receipt: Receipt,
        decision: Decision, slot: Slot, restoration: StreamRestoration | None = None,
    ) -> None:
        self.receipt = receipt
        self.decision = decision
        self._gw, self._ctx, self._stream, self._first = gateway, ctx, stream, first
        self._slot = slot
        self._restoration = restoration
        self._failure: UpstreamError | None = None
        self._closed = False
        self._status = 499  # until the stream ends cleanly: the client went away
        self._error: str | None = None
        self._usage: Usage | None = None
        self._content_events = 0
        self._kept: list[str] | None = [] if gateway._log_bodies else None
        plan = ctx.cache_plan
        # A cacheable streamed answer is assembled as it goes out, and stored once complete.
        self._assembler: StreamAssembler | None = StreamAssembler() if plan is not None and plan.store else None

    def _accept(self, ev: StreamEvent) -> bool:
        """Track usage; False for the usage-only chunk the client did not ask for."""
        if self._kept is not None:
            self._kept.append(ev.raw.decode("utf-8", "replace"))
        if b'"content":"' in ev.raw:
            self._content_events += 1
        usage = ev.maybe_usage()
        if usage is not None:
            self._usage = usage
            if not self._ctx.req.include_usage and not ev.data.get("choices"):
                if self._assembler is not None:  # kept with a cached answer all the same
                    self._assembler.feed_data(ev.raw)
                return False
        return True

    async def events(self) -> AsyncGenerator[list[StreamEvent], None]:
        """The answer's events, in batches as they arrived (relay each batch in one write)."""
        restore = self._restoration.batch if self._restoration is not None else None
        try:
            batch = [ev for ev in self._first if self._accept(ev)]
            if restore is not None:
                batch = restore(batch)
            if batch:
                self._assemble(batch)
                yield batch
            async for upstream_batch in self._stream:
                batch = [ev for ev in upstream_batch if self._accept(ev)]
                if restore is not None:
                    batch = restore(batch)
                if batch:
                    self._assemble(batch)
                    yield batch
            self._status = 200
        except UpstreamError as exc:
            self._status, self._error, self._failure = exc.status, exc.code, exc
            raise

    def _assemble(self, batch: list[StreamEvent]) -> None:
        if self._assembler is not None:
            for ev in batch:
                self._assembler.feed_data(ev.raw)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._stream.aclose()
        finally:
            ttft_ms = self._ctx.ttft_s * 1000.0 if self._ctx.ttft_s is not None else None
            if self._status == 200:
                self._slot.done(True, ttft_ms=ttft_ms)
            elif self._failure is not None:
                self._slot.done(False, exc=self._failure)
            else:
                self._slot.done(None)  # the client went away: no verdict on the deployment
            usage = self._usage
            if usage is None:
                usage = Usage(
                    estimate_prompt_tokens(self._ctx.req.body), self._content_events, 0, estimated=True
                )
                usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
            body = "\n".join(self._kept) if self._kept is not None else None
            self._gw._record(self._ctx, self._status, usage=usage, error_code=self._error, response_body=body)
            if self._status == 200 and self._assembler is not None and self._assembler.complete():
                raw = self._assembler.result_bytes()
                d = self._ctx.deployment
                if raw is not None and d is not None:
                    self._gw._cache_store(self._ctx, d, raw, predicted_cost(d, usage.prompt_tokens,
                                                                            usage.completion_tokens))


class CachedStreaming(Streaming):
    """A cache hit sent as an SSE stream (the request asked for `stream: true`)."""

    def __init__(self, gateway: Gateway, ctx: _Call, raw: bytes, receipt: Receipt, decision: Decision) -> None:
        self.receipt = receipt
        self.decision = decision
        self._gw, self._ctx, self._raw = gateway, ctx, raw
        self._closed = False
        self._status = 499

    async def events(self) -> AsyncGenerator[list[StreamEvent], None]:
        batch = []
        for line in sse_events(self._raw, include_usage=self._ctx.req.include_usage):
            payload = line[6:-2]  # b"data: " ... b"\n\n"
            if payload != b"[DONE]":
                batch.append(StreamEvent(payload))
        yield batch
        self._status = 200

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._gw._record(self._ctx, self._status)


@dataclass(slots=True)
class _Call:
    """Per-request bookkeeping shared by the stages."""

    request_id: str
    t0: float
    principal: Principal
    req: ChatRequest
    decision: Decision
    deployment: Deployment | None = None
    upstream_s: float = 0.0
    ttft_s: float | None = None
    attempts: list[UpstreamError] = field(default_factory=list)
    inspection: Inspection = field(default_factory=Inspection)
    task_class: str = "general"
    # The pseudonymised/redacted body (computed once, for the candidates that need it).
    transformed: tuple[dict[str, Any], Restorer, dict[str, int]] | None = None
    admission: Admission | None = None  # budget reservation and rate-limit headers
    cache_plan: CachePlan | None = None  # None: no cache configured
    cache_part: str = ""  # the partition (tenant and level) the answer belongs to
    cache_state: str | None = None  # x-tiergate-cache: hit, semantic-hit, miss, bypass
    cache_hit: CacheHit | None = None
    cached_from: Deployment | None = None  # the deployment that produced a cached answer
    tokens_estimate: int = 0  # prompt estimate + max_tokens: what rate limits count


class Gateway:
    """The in-process gateway: settings, adapters, and the request pipeline."""

    def __init__(
        self, settings: Settings, *, log_writer: RequestLogWriter | None = None, store: Any = None
    ) -> None:
        self.settings = settings
        self.default_level = parse_level(settings.privacy.default_level)
        self.privacy = PrivacyEngine(settings.privacy)
        self.log_writer = log_writer
        self._log_bodies = settings.store.log_bodies
        self.providers: dict[str, Provider] = {d.name: create_provider(d) for d in settings.deployments}
        self.deployments: dict[str, Deployment] = {d.name: d for d in settings.deployments}
        self.groups: dict[str, tuple[Deployment, ...]] = {
            name: tuple(self.deployments[n] for n in members)
            for name, members in settings.model_groups.items()
        }
        for d in settings.deployments:  # every deployment is addressable by its own name
            self.groups.setdefault(d.name, (d,))
        self.router = Router(settings, self.providers, store)
        self.redis = connect_redis(settings.redis)  # None without redis.url
        self.budget: BudgetManager = build_budget_manager(
            settings, store.engine if store is not None else None, self.redis
        )
        # Master key, then virtual keys from the store (none without a master key or a store);
        # key changes are broadcast to the other gateways through Redis.
        self.auth: Authenticator = build_authenticator(
            settings, store.engine if store is not None else None, self.redis
        )
        self.keystore: KeyStore | None = self.auth.keystore
        self.cache: ResponseCache | None = None
        if settings.cache.enabled:
            self.cache = ResponseCache.from_settings(
                settings.cache, settings.redis, self.redis, self._cache_embedder(), detector=self.privacy.detector
            )
        self._tasks: set[asyncio.Task[Any]] = set()
        if any(d.rpm or d.tpm for d in settings.deployments):
            self.router.quota = self._deployment_quota

    async def start(self) -> None:
        self.privacy.warm_up()
        await asyncio.gather(*(p.start() for p in self.providers.values()))
        await self.router.start()
        await self.budget.policies.start()
        await self.auth.start()
        if self.cache is not None:
            await self.cache.warm_up()  # the semantic model, when a group uses it

    async def close(self) -> None:
        await self.router.close()
        await self.budget.policies.close()
        await self.budget.close()
        await self.auth.close()
        if self._tasks:  # cache stores still running
            await asyncio.wait(list(self._tasks), timeout=5.0)
        if self.cache is not None:
            await self.cache.close()
        if self.redis is not None:
            await self.redis.aclose()
        await asyncio.gather(*(p.close() for p in self.providers.values()), return_exceptions=True)

    # ------------------------------------------------------------------ the pipeline
    async def chat(
        self,
        body: Any,
        *,
        headers: Mapping[str, str] | None = None,
        api_key: str | None = None,
        principal: Principal | None = None,
        request_id: str | None = None,
        t0: float | None = None,
    ) -> Completed | Streaming | Explained:
        headers = headers or {}
        ctx = await self._begin(parse_chat_request, body, api_key, principal, request_id, t0)
        try:
            order = await self._decide(ctx, headers, ctx.req.body)  # classify ... route
            if order is None:  # explain
                return Explained(ctx.decision)
            if self.cache is not None:
                hit = await self._cache_lookup(ctx, headers)  # cache
                if hit is not None:
                    return self._cached(ctx, hit)
            if ctx.req.stream:
                return await self._call_stream(ctx, order)  # transform/audit/call
            return await self._call(ctx, order)
        except GatewayError as exc:
            self._record(ctx, exc.status, error_code=exc.code)  # record failures too
            self._limit_headers(ctx, exc)
            raise
        except BaseException:
            self.budget.settle(ctx.admission, None)  # cancelled: release the reservation
            raise

    async def embed(
        self,
        body: Any,
        *,
        headers: Mapping[str, str] | None = None,
        api_key: str | None = None,
        principal: Principal | None = None,
        request_id: str | None = None,
        t0: float | None = None,
    ) -> Embedded | Explained:
        """`POST /v1/embeddings`: the same stages as `chat` (privacy, eligibility, fallback,
        record); the input text is data like any prompt and obeys the same residency rules."""
        headers = headers or {}
        ctx = await self._begin(parse_embeddings_request, body, api_key, principal, request_id, t0)
        try:
            order = await self._decide(ctx, headers, {})  # classify ... route (no chat needs)
            if order is None:  # explain
                return Explained(ctx.decision)
            return await self._call_embed(ctx, order)  # call
        except GatewayError as exc:
            self._record(ctx, exc.status, error_code=exc.code)
            self._limit_headers(ctx, exc)
            raise
        except BaseException:
            self.budget.settle(ctx.admission, None)
            raise

    async def _begin(
        self, parse: Callable[[Any], ChatRequest], body: Any, api_key: str | None,
        principal: Principal | None, request_id: str | None, t0: float | None,
    ) -> _Call:
        """authenticate and validate: the request's state for the stages that follow."""
        t0 = time.perf_counter() if t0 is None else t0
        request_id = request_id or new_request_id()
        principal = principal or await self.auth.authenticate(api_key)  # authenticate
        req = parse(body)  # validate
        return _Call(request_id, t0, principal, req, Decision(request_id, req.model))

    async def _decide(
        self, ctx: _Call, headers: Mapping[str, str], needs_body: Mapping[str, Any]
    ) -> list[Deployment] | None:
        """classify -> resolve -> eligible -> route: the candidates in the order to try them, or
        None when the client asked only for the explanation (`x-tiergate-explain: true`)."""
        req, decision = ctx.req, ctx.decision
        await self._classify(ctx, headers)  # classify: declared, default, detection
        candidates = self.resolve(req.model, ctx.principal)  # resolve
        decision.candidates = [d.name for d in candidates]
        needs = RequestNeeds.from_body(needs_body, req.constraints)
        eligible = self._eligible(ctx, candidates, needs)  # eligible
        explain = _truthy(headers.get("x-tiergate-explain"))
        eligible = await self._admit(ctx, eligible, needs, explain)  # admit
        # cache: a later issue plugs in here.
        order = self._route(ctx, eligible, needs, headers, explain)  # route
        if explain:
            decision.detection = ctx.inspection.to_dict(self.privacy.actions)
            return None
        return order

    async def _classify(self, ctx: _Call, headers: Mapping[str, str]) -> None:
        """The request's level: the highest of the declared levels, the configured default and
        what detection found (a level only goes up). Blocked types refuse the request here."""
        req, decision = ctx.req, ctx.decision
        levels: list[tuple[PrivacyLevel, str]] = []
        for value, source, param in (
            (headers.get("x-tiergate-privacy"), "header x-tiergate-privacy", "x-tiergate-privacy"),
            (req.declared_privacy, req.privacy_source, "metadata.privacy"),
            (req.constraints.get("privacy"), "constraints.privacy", "metadata.constraints.privacy"),
        ):
            if value is None:
                continue
            try:
                levels.append((parse_level(value), f"declared by {source}"))
            except ValueError as exc:
                raise InvalidRequestError(f"invalid privacy level in {source}: {exc}", param=param) from None
        levels.append((self.default_level, "default (privacy.default_level)"))
        key = ctx.principal.key
        if key is not None and key.default_privacy:
            levels.append((parse_level(key.default_privacy), f"default of API key {key.id}"))
        insp = ctx.inspection = await self.privacy.inspect(req.body)
        if insp.failed is not None and self.settings.privacy.on_detector_failure == "refuse":
            raise ServiceUnavailableError(
                f"privacy detection failed ({insp.failed}); the request was refused and nothing was sent "
                "upstream (privacy.on_detector_failure: refuse)",
                code="privacy_detection_failed",
            )
        if insp.blocked:
            raise PolicyError(
                f"the request contains {', '.join(insp.blocked)}, which this gateway blocks "
                "(privacy.actions); nothing was sent upstream",
                code="blocked_entity",
            )
        if insp.level > PrivacyLevel.PUBLIC:
            levels.append((insp.level, insp.reason))
        # Highest wins; on a tie the first named (declared, then default, then detection).
        decision.privacy, decision.privacy_reason = max(levels, key=lambda item: item[0])

    def resolve(self, model: str, principal: Principal | None = None) -> tuple[Deployment, ...]:
        """The candidates of a public model name; 404 naming the known ones; 403 for a name the
        caller's key may not use."""
        key = principal.key if principal is not None else None
        if key is not None and key.models and model not in key.models:
            raise PolicyError(
                f"API key {key.id} may not use model '{model}'; it may use: {', '.join(key.models)}",
                param="model", code="model_not_allowed",
            )
        group = self.groups.get(model)
        if group is None:
            known = ", ".join(sorted(self.settings.model_groups) or sorted(self.groups))
            raise ModelNotFoundError(
                f"model '{model}' is not configured on this gateway; known models: {known}",
                param="model",
            )
        return group

    def _eligible(self, ctx: _Call, candidates: tuple[Deployment, ...], needs: RequestNeeds) -> list[Deployment]:
        """Privacy first (absolute), then the request's constraints and live availability."""
        level = ctx.decision.privacy
        cleared, excluded = split_eligible(candidates, level, self.settings.privacy.allowed_residencies)
        key = ctx.principal.key
        if key is not None and (key.deployments or key.locations or key.residencies):
            cleared, by_key = _key_allows(key, cleared)
            excluded += by_key
        eligible, more = self.router.filter(cleared, needs)
        excluded += more
        ctx.decision.excluded = excluded
        for d in eligible:
            ctx.decision.transforms[d.name] = self._transform_name(ctx, d)
        if eligible:
            return eligible
        reasons = "; ".join(e.reason for e in excluded)
        kinds = {e.kind for e in excluded}
        if kinds == {"privacy"}:
            raise PolicyError(
                f"no deployment of model '{ctx.req.model}' is cleared for {level.name} data "
                f"({ctx.decision.privacy_reason}): {reasons}. Nothing was sent upstream."
            )
        if kinds <= {"privacy", "key"}:
            raise PolicyError(
                f"no deployment of model '{ctx.req.model}' is allowed for this API key at {level.name}: "
                f"{reasons}. Nothing was sent upstream.",
                code="key_not_allowed",
            )
        if "constraint" not in kinds:
            raise ServiceUnavailableError(
                f"no deployment of model '{ctx.req.model}' is available now: {reasons}",
                code="no_available_deployment",
            )
        raise UnprocessableRequestError(
            f"no deployment of model '{ctx.req.model}' satisfies the request's constraints: {reasons}",
            code="no_eligible_deployment",
        )

    async def _admit(
        self, ctx: _Call, eligible: list[Deployment], needs: RequestNeeds, explain: bool
    ) -> list[Deployment]:
        """admit: rate limits, then the budget rules and the reservation (budget/manager.py)."""
        req = ctx.req
        if "messages" in req.body:
            prompt, out = needs.prompt_tokens, needs.explicit_max_tokens
        else:  # embeddings: input tokens only
            prompt, out = _estimate_input_tokens(req.body.get("input")), 0
        ctx.tokens_estimate = prompt + (out if out is not None else self.settings.budgets.estimate_max_tokens)
        kept, excluded, ctx.admission = await self.budget.admit(
            ctx.request_id, ctx.principal, eligible, prompt, out, dry_run=explain
        )
        if excluded:
            ctx.decision.excluded += excluded
        return kept

    async def _deployment_quota(self, d: Deployment, ctx: Any) -> None:
        """Before each attempt: the deployment's own requests/tokens per minute (fallback when used up)."""
        if self.budget.has_quota(d):
            await self.budget.deployment_quota(d, max(1, getattr(ctx, "tokens_estimate", 1)))

    @staticmethod
    def _limit_headers(ctx: _Call, exc: GatewayError) -> None:
        """Every answer carries the rate-limit headers, errors included."""
        if ctx.admission is not None and ctx.admission.headers:
            for k, v in ctx.admission.headers.items():
                exc.headers.setdefault(k, v)

    def _route(
        self, ctx: _Call, eligible: list[Deployment], needs: RequestNeeds, headers: Mapping[str, str], explain: bool
    ) -> list[Deployment]:
        """route: the strategy's order of the eligible candidates (an experiment's arm first)."""
        req = ctx.req
        key = ctx.principal.key
        strategy = self.router.strategy(
            req.model, req.constraints, headers.get("x-tiergate-strategy"), key.default_strategy if key else None
        )
        auto = self.settings.routing.auto_route.enabled or req.constraints.get("auto_route") is True
        route = self.router.route(
            req.model, strategy, eligible, needs, req.body, auto=auto, key_id=ctx.principal.key_id, explain=explain
        )
        if route.profile is not None:
            ctx.task_class = route.profile.task_class
        decision = ctx.decision
        decision.strategy = strategy
        decision.order = [d.name for d in route.order]
        if explain:
            decision.routing = route.explain()
        return route.order

    # ------------------------------------------------------------------ cache
    async def _cache_lookup(self, ctx: _Call, headers: Mapping[str, str]) -> CacheHit | None:
        """cache: the plan for this request (may it read, may it store) and the lookup."""
        assert self.cache is not None
        cfg = self.settings.cache
        level = ctx.decision.privacy
        plan = ctx.cache_plan = cache_plan(cfg, ctx.req.body, level, headers)
        ctx.cache_state = plan.status or "miss"
        if not (plan.lookup or plan.store):
            return None
        ctx.cache_part = cache_partition(cache_tenant(cfg.partition_by, ctx.principal.key_id, ctx.principal.team), level)
        if not plan.lookup:
            return None
        _cache_level.set(level.name)
        hit = await self.cache.lookup(ctx.req.model, ctx.cache_part, ctx.req.body, semantic=plan.semantic)
        if hit is not None:
            ctx.cache_state, ctx.cache_hit = hit.kind, hit
        return hit

    def _cached(self, ctx: _Call, hit: CacheHit) -> Completed | Streaming:
        """A cache hit: the stored answer, with the receipt of the deployment that produced it;
        nothing is charged (the reservation is released when the request is recorded)."""
        meta, _, raw = hit.response.partition(b"\n")
        name = meta.decode("utf-8", "replace")
        d = self.deployments.get(name)
        ctx.cached_from = d
        extra = {**(ctx.admission.headers if ctx.admission is not None else {}), **hit.headers()}
        receipt = Receipt(
            ctx.request_id, name, d.location if d else "", d.residency if d else "", ctx.decision.privacy.name,
            (time.perf_counter() - ctx.t0) * 1000.0, 0, "none", cost_usd=Decimal(0), extra=extra,
        )
        if ctx.req.stream:
            ctx.ttft_s = time.perf_counter() - ctx.t0
            return CachedStreaming(self, ctx, raw, receipt, ctx.decision)
        self._record(ctx, 200, overhead_ms=receipt.overhead_ms)
        return Completed(ChatResult(raw, None), receipt, ctx.decision)

    def _cache_store(self, ctx: _Call, d: Deployment, raw: bytes, cost: Decimal) -> None:
        """store: a complete answer into the request's partition, in the background (the client
        already has it). The deployment's name goes first, for the receipt of later hits."""
        plan = ctx.cache_plan
        if self.cache is None or plan is None or not plan.store:
            return
        _cache_level.set(ctx.decision.privacy.name)  # copied into the task's context
        envelope = d.name.encode() + b"\n" + raw
        task = asyncio.get_running_loop().create_task(
            self.cache.store(ctx.req.model, ctx.cache_part, ctx.req.body, envelope, cost, semantic=plan.semantic)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _cache_embedder(self) -> Any:
        """With `cache.semantic.embedder` naming a model group: its routed embeddings deployment,
        called at the level of the request being cached (None: the local model, if installed)."""
        name = self.settings.cache.semantic.embedder
        if name == "local":
            return None
        from .cache.semantic import CallableEmbedder

        async def embed(texts: list[str]) -> list[list[float]]:
            out = await self.embed({"model": name, "input": texts}, principal=_INTERNAL,
                                   headers={"x-tiergate-privacy": _cache_level.get()})
            assert isinstance(out, Embedded)
            data = orjson.loads(out.raw)["data"]
            return [item["embedding"] for item in sorted(data, key=lambda x: x.get("index", 0))]

        return CallableEmbedder(embed, name)

    def _transform_name(self, ctx: _Call, d: Deployment) -> str:
        if not self.privacy.applies_to(d.location, ctx.inspection):
            return "none"
        return "+".join(sorted(ctx.inspection.transforms))

    def _restorer(self, ctx: _Call, d: Deployment) -> Restorer | None:
        """The restorer of the placeholders sent to `d` (None: it got the original text)."""
        if ctx.transformed is None or not self.privacy.applies_to(d.location, ctx.inspection):
            return None
        return ctx.transformed[1]

    def _upstream_body(self, ctx: _Call, d: Deployment) -> dict[str, Any]:
        """transform: the request as deployment `d` may see it, then `d`'s own model id."""
        req = ctx.req
        body = req.body
        if self.privacy.applies_to(d.location, ctx.inspection):
            if ctx.transformed is None:
                ctx.transformed = self.privacy.transform(body, ctx.inspection)
            body = ctx.transformed[0]
        body = dict(body)
        body["model"] = d.model
        if req.stream and not req.include_usage:
            # Ask for usage anyway, for the record; that chunk is not passed to the client.
            opts = dict(body.get("stream_options") or {})
            opts["include_usage"] = True
            body["stream_options"] = opts
        return body

    async def _first_success(
        self, ctx: _Call, order: list[Deployment], call: Callable[[Deployment], Awaitable[T]]
    ) -> T:
        """`call` each candidate in order until one answers (routing/router.py)."""
        d, result, _slot = await self.router.first_success(ctx, order, call)
        ctx.deployment = d
        return result

    async def _call(self, ctx: _Call, order: list[Deployment]) -> Completed:
        def call(d: Deployment) -> Awaitable[ChatResult]:
            return self.providers[d.name].chat(self._upstream_body(ctx, d))

        result = await self._first_success(ctx, order, call)
        d = ctx.deployment
        assert d is not None
        restorer = self._restorer(ctx, d)
        if restorer is not None:
            result = restore_result(result, restorer)
        receipt = self._receipt(ctx, d)
        usage = result.usage or _estimate_usage(ctx.req.body, result)
        receipt.cost_usd = predicted_cost(d, usage.prompt_tokens, usage.completion_tokens)
        self._record(
            ctx, 200, usage=usage, overhead_ms=receipt.overhead_ms,
            response_body=result.raw.decode("utf-8", "replace") if self._log_bodies else None,
        )
        if ctx.cache_plan is not None and ctx.cache_plan.store:
            self._cache_store(ctx, d, result.raw, receipt.cost_usd)  # store
        return Completed(result, receipt, ctx.decision)

    async def _call_embed(self, ctx: _Call, order: list[Deployment]) -> Embedded:
        async def call(d: Deployment) -> dict[str, Any]:
            body = self._upstream_body(ctx, d)
            body = {k: v for k, v in body.items() if k not in ("encoding_format", "metadata")}
            data = await self.providers[d.name].embed(body)
            if not isinstance(data, dict) or not isinstance(data.get("data"), list):
                raise UpstreamProtocolError("upstream answer is not an embeddings list", deployment=d.name)
            return data

        data = await self._first_success(ctx, order, call)
        d = ctx.deployment
        assert d is not None
        if ctx.req.body.get("encoding_format") == "base64":
            for item in data["data"]:
                item["embedding"] = _float32_base64(item.get("embedding") or [])
        receipt = self._receipt(ctx, d)
        usage = Usage.from_openai(data.get("usage")) or Usage(
            _estimate_input_tokens(ctx.req.body.get("input")), 0, 0, estimated=True
        )
        usage.total_tokens = usage.total_tokens or usage.prompt_tokens
        self._record(ctx, 200, usage=usage, overhead_ms=receipt.overhead_ms)
        return Embedded(orjson.dumps(data), receipt, ctx.decision)

    async def _call_stream(self, ctx: _Call, order: list[Deployment]) -> Streaming:
        async def open_first(d: Deployment) -> tuple[ChatStream, list[StreamEvent]]:
            stream = await self.providers[d.name].open_stream(self._upstream_body(ctx, d))
            try:
                # Fallback stays possible until the first event: pull it before committing.
                first = await anext(aiter(stream))
                first[0].data  # noqa: B018 - parse the first event once: malformed -> fallback
            except StopAsyncIteration:
                await stream.aclose()
                raise UpstreamProtocolError("upstream stream ended without any event", deployment=d.name) from None
            except ValueError:
                await stream.aclose()
                raise UpstreamProtocolError("upstream sent a malformed stream event", deployment=d.name) from None
            except BaseException:
                await stream.aclose()
                raise
            return stream, first

        d, (stream, first), slot = await self.router.first_success(ctx, order, open_first, hold=True)
        ctx.ttft_s = time.perf_counter() - ctx.t0
        ctx.deployment = d
        restorer = self._restorer(ctx, d)
        return Streaming(
            self, ctx, stream, first, self._receipt(ctx, d), ctx.decision, slot,
            StreamRestoration(restorer) if restorer is not None else None,
        )

    def _receipt(self, ctx: _Call, d: Deployment) -> Receipt:
        overhead = (time.perf_counter() - ctx.t0 - ctx.upstream_s) * 1000.0
        extra = ctx.admission.headers if ctx.admission is not None else {}
        if ctx.cache_state is not None:
            extra = {**extra, "x-tiergate-cache": ctx.cache_state}
        return Receipt(
            ctx.request_id, d.name, d.location, d.residency, ctx.decision.privacy.name,
            overhead, len(ctx.attempts), ctx.decision.transforms.get(d.name, "none"), extra=extra,
        )

    def _record(
        self, ctx: _Call, status: int, *, usage: Usage | None = None, error_code: str | None = None,
        overhead_ms: float | None = None, response_body: str | None = None,
    ) -> None:
        """settle and record: the outcome into the learning statistics and the request log."""
        now = time.perf_counter()
        d = ctx.deployment
        logged = d or ctx.cached_from  # a cache hit names the deployment that produced it
        hit = ctx.cache_hit
        total_ms = (now - ctx.t0) * 1000.0
        upstream_ms = ctx.upstream_s * 1000.0
        cost = None
        if usage is not None and d is not None:
            cost = predicted_cost(d, usage.prompt_tokens, usage.completion_tokens)
        self.budget.settle(ctx.admission, cost)  # settle
        if d is not None and status != 499:  # a client that went away says nothing of d
            self.router.learn(ctx.request_id, d, ctx.task_class, status < 400, upstream_ms, float(cost or 0))
        self.router.learn_failures(ctx.attempts, ctx.task_class)  # attempts fallback covered, too
        if self.log_writer is None:
            return
        self.log_writer.submit(
            RequestLogRecord(
                id=ctx.request_id,
                model_group=ctx.req.model,
                deployment=logged.name if logged else None,
                location=logged.location if logged else None,
                residency=logged.residency if logged else None,
                privacy_level=ctx.decision.privacy.name,
                status_code=status,
                latency_ms=total_ms,
                overhead_ms=overhead_ms if overhead_ms is not None else max(0.0, total_ms - upstream_ms),
                upstream_ms=upstream_ms,
                key_id=ctx.principal.key_id,
                team=ctx.principal.team,
                task_class=ctx.task_class,
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
                total_tokens=usage.total_tokens if usage else 0,
                tokens_estimated=usage.estimated if usage else False,
                cost_usd=cost,
                ttft_ms=ctx.ttft_s * 1000.0 if ctx.ttft_s is not None else None,
                error_code=error_code,
                stream=ctx.req.stream,
                fallbacks=len(ctx.attempts),
                attempts=[
                    {"deployment": a.deployment, "error_code": a.code, "status": a.upstream_status}
                    for a in ctx.attempts
                ],
                # Bodies only when the operator enabled store.log_bodies.
                request_body=orjson.dumps(ctx.req.body).decode() if self._log_bodies else None,
                response_body=response_body if self._log_bodies else None,
                cache=ctx.cache_state,
                saved_usd=hit.saved_usd if hit is not None else None,
            )
        )

    # ------------------------------------------------------------------ discovery
    def list_models(self) -> list[dict[str, Any]]:
        created = 0
        out = []
        for name, members in sorted(self.settings.model_groups.items()):
            out.append(_model_entry(name, created, "group", members))
        for d in self.settings.deployments:
            if d.name not in self.settings.model_groups:
                out.append(_model_entry(d.name, created, "deployment", (d.name,)))
        return out

    def ready_deployments(self) -> list[str]:
        return [d.name for d in self.settings.deployments if d.base_url]


def _key_allows(key: Any, candidates: list[Deployment]) -> tuple[list[Deployment], list[Exclusion]]:
    """The candidates an API key restricted to deployments / locations / residencies may reach."""
    kept: list[Deployment] = []
    excluded: list[Exclusion] = []
    for d in candidates:
        if key.deployments and d.name not in key.deployments:
            why = f"API key {key.id} may use only deployments {', '.join(key.deployments)}"
        elif key.locations and d.location not in key.locations:
            why = f"{d.name} is {d.location}; API key {key.id} may reach only {', '.join(key.locations)}"
        elif key.residencies and d.residency not in key.residencies:
            why = (f"{d.name} is in {d.residency or 'an unknown residency'}; API key {key.id} may reach only "
                   f"{', '.join(key.residencies)}")
        else:
            kept.append(d)
            continue
        excluded.append(Exclusion(d.name, why, "key"))
    return kept, excluded


def _model_entry(name: str, created: int, kind: str, members: Any) -> dict[str, Any]:
    return {
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": "tiergate",
        "tiergate": {"kind": kind, "deployments": list(members)},
    }


def _estimate_usage(body: dict[str, Any], result: ChatResult) -> Usage:
    prompt = estimate_prompt_tokens(body)
    chars = 0
    for choice in result.json().get("choices") or ():
        msg = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(msg, dict) and isinstance(msg.get("content"), str):
            chars += len(msg["content"])
    completion = max(1, chars // 4)
    return Usage(prompt, completion, prompt + completion, estimated=True)


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "true", "yes", "on")


def _float32_base64(vector: list[float]) -> str:
    """OpenAI's `encoding_format: base64`: little-endian float32 values, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def _estimate_input_tokens(inputs: Any) -> int:
    if isinstance(inputs, str):
        return max(1, len(inputs) // 4)
    if isinstance(inputs, list):
        if inputs and isinstance(inputs[0], int):
            return len(inputs)  # one token array
        return sum(_estimate_input_tokens(x) for x in inputs)
    return 1
