"""The Python SDK: the seeds' `llm_call` shape, in-process or against a remote gateway.

    from tiergate.sdk import llm_call, allm_call, configure, Tiergate, RemoteClient

    answer = llm_call("Summarise this", model="assistant",
                      constraints={"privacy": "high", "max_latency_ms": 500, "max_cost": 0.01},
                      config="tiergate.yaml")
    print(answer.text, answer.deployment, answer.location, answer.cost_usd)

    llm_call.local("Rate this action")                 # tier shortcuts (see `llm_call`)
    llm_call("Explain quantum computing", auto_route=True)
    answers = llm_call.batch(prompts, concurrency=8)    # list[LLMResponse | Exception]
    configure(default_tier="local", fallback_chain=["local", "cloud"],
              cost_limit_daily=5.0, log_performance=True)

In-process calls run the same `Gateway.chat` pipeline as the HTTP server (same privacy rules,
routing and fallback), with no server. `RemoteClient` speaks HTTP to a running gateway and
returns the same `LLMResponse`. Sync calls run on a private event-loop thread, so they also work
inside programs that have no event loop.

Every routing hint the SDK takes becomes a field of the request body the gateway already reads
(`metadata.constraints`, `metadata.auto_route`); the SDK never routes by itself, so an SDK call
and an HTTP call with the same body are routed the same way.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    TypeVar,
)

import aiohttp
import orjson

from .auth import ANONYMOUS
from .config import Settings, load_settings
from .errors import (
    GatewayError,
    InvalidRequestError,
    ModelNotFoundError,
    RateLimitError,
    UpstreamError,
)
from .pipeline import Completed, Embedded, Explained, Gateway, Streaming
from .routing.eligible import estimate_prompt_tokens, predicted_cost

T = TypeVar("T")
Messages = str | list[dict[str, Any]]

log = logging.getLogger("tiergate.sdk")

#: The model group used when neither `model=` nor `configure(default_tier=...)` names one.
DEFAULT_MODEL = "default"
#: `batch` routes for throughput unless the caller passes constraints of their own.
BATCH_CONSTRAINTS: Mapping[str, Any] = {"optimize": "throughput"}


@dataclass(slots=True)
class LLMResponse:
    text: str
    model: str
    deployment: str
    location: str
    residency: str
    privacy: str
    request_id: str
    usage: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    #: USD for this answer: in-process from `usage` and the deployment's configured prices;
    #: from a remote gateway only when it reports one (`x-tiergate-cost-usd`), else None.
    cost_usd: float | None = None
    #: Wall time of the call as the SDK saw it (milliseconds).
    latency_ms: float | None = None

    def __str__(self) -> str:
        return self.text


class TierNotConfiguredError(ModelNotFoundError):
    """A tier shortcut that needs a model group of its own name, and the gateway has none."""

    code = "tier_not_configured"


class DailyCostLimitError(RateLimitError):
    """`configure(cost_limit_daily=...)` is reached for the current UTC day (this process)."""

    code = "daily_cost_limit_reached"


# ---------------------------------------------------------------------------- request bodies
def _messages(prompt_or_messages: Messages) -> list[dict[str, Any]]:
    if isinstance(prompt_or_messages, str):
        return [{"role": "user", "content": prompt_or_messages}]
    return list(prompt_or_messages)


def _body(
    prompt: Messages, model: str, constraints: Mapping[str, Any] | None, stream: bool, params: dict[str, Any],
    auto_route: bool = False,
) -> dict[str, Any]:
    """The OpenAI-format body; tiergate's hints go in `metadata` (the gateway strips them)."""
    body: dict[str, Any] = {"model": model, "messages": _messages(prompt), **params}
    if stream:
        body["stream"] = True
    if constraints or auto_route:
        meta = dict(body.get("metadata") or {})
        if constraints:
            meta["constraints"] = dict(constraints)
        if auto_route:
            meta["auto_route"] = True
        body["metadata"] = meta
    return body


def _embed_body(inputs: str | list[str], model: str, constraints: Mapping[str, Any] | None, params: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "input": inputs, **params, "encoding_format": "float"}
    if constraints:
        body["metadata"] = {**(body.get("metadata") or {}), "constraints": dict(constraints)}
    return body


def _vectors(data: dict[str, Any]) -> list[list[float]]:
    return [item["embedding"] for item in sorted(data["data"], key=lambda item: item["index"])]


def _text(data: dict[str, Any]) -> str:
    choices = data.get("choices") or [{}]
    msg = choices[0].get("message") or {}
    return msg.get("content") or ""


def _delta_text(chunk: dict[str, Any]) -> str:
    choices = chunk.get("choices") or ()
    if not choices:
        return ""
    return (choices[0].get("delta") or {}).get("content") or ""


def _tokens(prompt: Messages, usage: Mapping[str, Any], text: str) -> tuple[int, int]:
    """(prompt, completion) tokens: the reported usage, else a local estimate (4 chars a token)."""
    p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(p, int) and isinstance(c, int):
        return p, c
    return estimate_prompt_tokens({"messages": _messages(prompt)}), max(1, len(text) // 4) if text else 0


def _header_float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------- tiers
#: Tier shortcut -> (allowed_locations when no group of the tier's name exists, optimize).
TIER_CONSTRAINTS: Mapping[str, tuple[tuple[str, ...], str | None]] = {
    "local": (("local",), None),
    "sovereign": (("sovereign",), None),
    "cloud": (("cloud",), None),
    "frontier": (("cloud",), None),
    "gpu": (("sovereign", "cloud"), "throughput"),
}
#: Locations a privacy tier keeps its data in whatever resolves the model (group or `model=`).
TIER_PROMISES: Mapping[str, tuple[str, ...]] = {"local": ("local",), "sovereign": ("local", "sovereign")}
#: Tiers that exist only as a model group of their own name.
GROUP_ONLY_TIERS: tuple[str, ...] = ("claude",)
TIERS: tuple[str, ...] = (*TIER_CONSTRAINTS, *GROUP_ONLY_TIERS)
#: The seed's provider-named tiers, accepted in `configure` when no group has the name.
SEED_TIER_ALIASES: Mapping[str, str] = {"ollama": "local", "runpod": "gpu", "litellm": "frontier"}


@dataclass(slots=True, frozen=True)
class Route:
    """What one attempt asks the gateway for: a model name and the constraints to send."""

    model: str
    constraints: dict[str, Any] | None
    label: str  # the tier or group name, for logs and error notes


def _with_locations(constraints: Mapping[str, Any] | None, allowed: tuple[str, ...], tier: str) -> dict[str, Any]:
    """The caller's constraints narrowed to `allowed` (a caller's own list can only narrow it)."""
    out = dict(constraints or {})
    own = out.get("allowed_locations")
    if own is not None:
        narrowed = tuple(loc for loc in allowed if loc in own)
        if not narrowed:
            raise InvalidRequestError(
                f"llm_call.{tier} allows only {', '.join(allowed)} but constraints.allowed_locations "
                f"is {list(own)}: no location is left",
                param="metadata.constraints.allowed_locations",
            )
        allowed = narrowed
    out["allowed_locations"] = list(allowed)
    return out


def resolve_tier(
    tier: str,
    *,
    model: str | None = None,
    constraints: Mapping[str, Any] | None = None,
    groups: Collection[str] = (),
    default_model: str = DEFAULT_MODEL,
) -> Route:
    """Where a tier shortcut goes (pure; see `llm_call` for the table).

    An explicit `model` wins, then a model group named like the tier, then constraints on the
    default group. `.local` and `.sovereign` are privacy promises, so they keep their locations
    (`allowed_locations`) even when `model` or a group resolves the name.
    """
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; tiers: {', '.join(TIERS)}")
    name = model or (tier if tier in groups else None)
    if name is not None:
        promise = TIER_PROMISES.get(tier)
        c = _with_locations(constraints, promise, tier) if promise else (dict(constraints) if constraints else None)
        return Route(name, c, tier if name == tier else f"{tier}:{name}")
    if tier in GROUP_ONLY_TIERS:
        raise TierNotConfiguredError(
            f"llm_call.{tier} needs a model group named '{tier}' and this gateway has none; add one to "
            f"the config (model_groups: {{{tier}: [<deployment>, ...]}}) or pass model='<group or deployment>'",
            param="model",
        )
    allowed, optimize = TIER_CONSTRAINTS[tier]
    c = _with_locations(constraints, allowed, tier)
    if optimize and "optimize" not in c:
        c["optimize"] = optimize
    return Route(default_model, c, tier)


def resolve_target(name: str, *, constraints: Mapping[str, Any] | None = None, groups: Collection[str] = ()) -> Route:
    """A `default_tier` or `fallback_chain` entry: a group or deployment name wins, then a tier
    (or the seed's `ollama`/`runpod`/`litellm`), else the name is sent as it is (the gateway
    answers 404 listing the known names)."""
    if name in groups:
        return resolve_tier(name, groups=groups, constraints=constraints) if name in TIERS else Route(
            name, dict(constraints) if constraints else None, name
        )
    tier = SEED_TIER_ALIASES.get(name, name)
    if tier in TIERS:
        route = resolve_tier(tier, groups=groups, constraints=constraints)
        return Route(route.model, route.constraints, name)
    return Route(name, dict(constraints) if constraints else None, name)


# ---------------------------------------------------------------------------- configure
def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class DailyCostGuard:
    """Sums answers' costs for the current UTC day and refuses calls once the limit is reached.

    In-process and per `configure` call: it protects one program from running up a bill, not a
    gateway (the gateway-wide budget is issue 6's job). The limit is checked before a call and
    charged after it, so calls already in flight when it is reached still finish (the overshoot
    is bounded by the concurrency). Thread-safe: sync and async callers share it.
    """

    def __init__(self, limit_usd: float, clock: Callable[[], datetime] = _utc_now) -> None:
        if limit_usd < 0:
            raise ValueError("cost_limit_daily must be >= 0")
        self.limit_usd = float(limit_usd)
        self._clock = clock
        self._lock = threading.Lock()
        self._day: date | None = None
        self._spent = 0.0

    def _roll(self) -> date:
        today = self._clock().astimezone(timezone.utc).date()
        if today != self._day:
            self._day, self._spent = today, 0.0
        return today

    @property
    def spent_usd(self) -> float:
        with self._lock:
            self._roll()
            return self._spent

    def check(self) -> None:
        with self._lock:
            today = self._roll()
            if self._spent >= self.limit_usd:
                raise DailyCostLimitError(
                    f"the SDK's daily cost limit of ${self.limit_usd:g} (configure(cost_limit_daily=...)) is "
                    f"reached: ${self._spent:.6f} spent by this process on {today.isoformat()} (UTC); calls "
                    "resume at 00:00 UTC. Nothing was sent."
                )

    def charge(self, usd: float | None) -> None:
        if not usd:
            return
        with self._lock:
            self._roll()
            self._spent += usd


@dataclass(slots=True, frozen=True)
class SDKConfig:
    """What `configure` set (module defaults of `llm_call` / `allm_call`)."""

    default_tier: str | None = None
    fallback_chain: tuple[str, ...] = ()
    cost_limit_daily: float | None = None
    log_performance: bool = False
    config: str | Path | _SyncAPI | None = None
    guard: DailyCostGuard | None = None


_CONFIG = SDKConfig()


def configure(
    default_tier: str | None = None,
    fallback_chain: Iterable[str] | None = None,
    cost_limit_daily: float | None = None,
    log_performance: bool = False,
    config: str | Path | _SyncAPI | None = None,
) -> SDKConfig:
    """Set the module defaults of `llm_call` and `allm_call` (the seed's `configure`).

    Each call replaces the whole configuration (and starts a fresh daily cost count);
    `configure()` with no arguments restores the defaults.

    - `default_tier`: the model used when a call names none: a tier (`local`, `sovereign`,
      `cloud`, `gpu`, `frontier`, `claude`; the seed's `ollama`, `runpod`, `litellm` too) or a
      model group / deployment name; resolved like `fallback_chain` entries (a group of that
      name wins). Without it: the `default` group.
    - `fallback_chain`: tier or group names. When a call fails with an error that is not the
      caller's fault (status >= 500, 429, or the upstream refusing the gateway's own
      credentials), the next entry is tried: the entries after the failed one if it is in the
      chain, else the whole chain. The caller's constraints (privacy, max_cost, ...) go with
      every attempt. Other 4xx are final. A privacy refusal (403) is never retried on another
      tier: it is a decision, not an outage. The data's level forbade the tier the caller
      chose, and moving it elsewhere behind the caller's back would relocate sensitive data to
      a place nobody picked and hide a refusal that audits expect to see; ask for a tier (or
      the default group with a privacy level) that may hold the data instead. Streams use the
      first target only (the gateway still falls back across its own candidates).
    - `cost_limit_daily` (USD): an in-process guard summing each answer's cost for the current
      UTC day; once reached, calls fail with `DailyCostLimitError` before anything is sent.
      Costs come from `usage` and the deployment's configured prices (a remote gateway's
      answers count only when it reports a cost). Gateway-wide budgets are issue 6's job.
    - `log_performance`: one INFO line per call on logger `tiergate.sdk` with deployment,
      location, latency, tokens and cost; never the prompt or the answer.
    - `config`: the default `config=` of calls: a config file, or a `Tiergate` / `RemoteClient`
      to use (a `RemoteClient` sends `llm_call` to a running gateway).
    """
    global _CONFIG
    guard = DailyCostGuard(cost_limit_daily) if cost_limit_daily is not None else None
    _CONFIG = SDKConfig(
        default_tier, tuple(fallback_chain or ()), cost_limit_daily, bool(log_performance), config, guard
    )
    return _CONFIG


def _falls_back(exc: GatewayError) -> bool:
    """May another tier be tried? Outages and rate limits yes; the caller's own errors and
    privacy refusals no (see `configure`)."""
    if isinstance(exc, DailyCostLimitError):
        return False
    return exc.status >= 500 or exc.status == 429 or exc.code == "upstream_auth_error"


# ---------------------------------------------------------------------------- clients
class _LoopThread:
    """A private event loop on a daemon thread, for the sync API."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="tiergate-sdk", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        it = agen.__aiter__()
        try:
            while True:
                try:
                    yield self.run(it.__anext__())  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                self.run(aclose())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


async def _bounded(items: list[Any], fn: Callable[[Any], Awaitable[T]], concurrency: int) -> list[T | Exception]:
    """`fn` over `items` with at most `concurrency` in flight; results in input order, a failed
    item as its exception. `concurrency` workers pull from one iterator, so a batch of 100,000
    costs `concurrency` coroutines, not 100,000."""
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    results: list[T | Exception] = [None] * len(items)  # type: ignore[list-item]
    pending = iter(enumerate(items))

    async def worker() -> None:
        for i, item in pending:
            try:
                results[i] = await fn(item)
            except Exception as exc:  # noqa: BLE001 - returned to the caller, by design
                results[i] = exc

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(items)))))
    return results


class _SyncAPI:
    """`call`, `stream`, `batch` for sync code, over the subclass's `acall` and `astream`."""

    _thread: _LoopThread | None = None

    async def acall(
        self, prompt_or_messages: Messages, model: str = DEFAULT_MODEL, constraints: Mapping[str, Any] | None = None,
        *, auto_route: bool = False, **params: Any,
    ) -> LLMResponse:
        raise NotImplementedError

    def astream(
        self, prompt_or_messages: Messages, model: str = DEFAULT_MODEL, constraints: Mapping[str, Any] | None = None,
        *, auto_route: bool = False, **params: Any,
    ) -> AsyncIterator[str]:
        return self._astream(prompt_or_messages, model, constraints, auto_route, params, None)

    def _astream(
        self, prompt: Messages, model: str, constraints: Mapping[str, Any] | None, auto_route: bool,
        params: dict[str, Any], info: dict[str, Any] | None,
    ) -> AsyncIterator[str]:
        """Text deltas; fills `info` (deployment, location, cost_per_token) once known."""
        raise NotImplementedError

    async def aembed(self, inputs: str | list[str], model: str = DEFAULT_MODEL, constraints: Mapping[str, Any] | None = None, **params: Any) -> list[list[float]]:
        raise NotImplementedError

    async def amodel_names(self) -> frozenset[str]:
        """The model group and deployment names this gateway answers to."""
        raise NotImplementedError

    async def abatch(
        self, prompts: Iterable[Messages], model: str = DEFAULT_MODEL, constraints: Mapping[str, Any] | None = None,
        *, concurrency: int = 8, auto_route: bool = False, **params: Any,
    ) -> list[LLMResponse | Exception]:
        """Each prompt through `acall`, at most `concurrency` at a time; answers in input order.

        A failed prompt's slot holds its exception (e.g. a `GatewayError`); it never stops the
        others. `constraints=None` means `{"optimize": "throughput"}`.
        """
        c = BATCH_CONSTRAINTS if constraints is None else constraints

        def one(p: Messages) -> Awaitable[LLMResponse]:
            return self.acall(p, model, c, auto_route=auto_route, **params)

        return await _bounded(list(prompts), one, concurrency)

    def embed(self, inputs: str | list[str], model: str = DEFAULT_MODEL, constraints: Mapping[str, Any] | None = None, **params: Any) -> list[list[float]]:
        """One vector per input, in input order (same privacy rules as chat)."""
        return self._loop().run(self.aembed(inputs, model, constraints, **params))

    def close(self) -> None:
        """Stop the private loop thread of the sync API (if it was started)."""
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def _loop(self) -> _LoopThread:
        if self._thread is None:
            self._thread = _LoopThread()
        return self._thread

    def call(
        self, prompt_or_messages: Messages, model: str = DEFAULT_MODEL, constraints: Mapping[str, Any] | None = None,
        *, auto_route: bool = False, **params: Any,
    ) -> LLMResponse:
        return self._loop().run(self.acall(prompt_or_messages, model, constraints, auto_route=auto_route, **params))

    def stream(
        self, prompt_or_messages: Messages, model: str = DEFAULT_MODEL, constraints: Mapping[str, Any] | None = None,
        *, auto_route: bool = False, **params: Any,
    ) -> Iterator[str]:
        return self._loop().iterate(self.astream(prompt_or_messages, model, constraints, auto_route=auto_route, **params))

    def batch(
        self, prompts: Iterable[Messages], model: str = DEFAULT_MODEL, constraints: Mapping[str, Any] | None = None,
        *, concurrency: int = 8, auto_route: bool = False, **params: Any,
    ) -> list[LLMResponse | Exception]:
        """Sync twin of `abatch`."""
        return self._loop().run(
            self.abatch(prompts, model, constraints, concurrency=concurrency, auto_route=auto_route, **params)
        )


class Tiergate(_SyncAPI):
    """The gateway in-process, built from a config file (or Settings)."""

    def __init__(self, config: str | Path | Settings | None = None) -> None:
        settings = config if isinstance(config, Settings) else load_settings(config, allow_simulated_default=False)
        self.gateway = Gateway(settings)
        self._started: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Task[None] | None = None
        self._thread: _LoopThread | None = None

    async def _ensure_started(self) -> None:
        """Start the gateway once, even when a batch's first calls arrive together."""
        loop = asyncio.get_running_loop()
        if self._started is None:
            self._started = loop
            self._ready = loop.create_task(self.gateway.start())
        elif self._started is not loop:
            raise RuntimeError("a Tiergate instance is bound to the event loop it was first used on")
        assert self._ready is not None
        await asyncio.shield(self._ready)

    def _cost(self, deployment: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        d = self.gateway.deployments.get(deployment)
        return float(predicted_cost(d, prompt_tokens, completion_tokens)) if d is not None else None

    async def amodel_names(self) -> frozenset[str]:
        return frozenset(self.gateway.groups)

    async def acall(
        self, prompt_or_messages: Messages, model: str = DEFAULT_MODEL, constraints: Mapping[str, Any] | None = None,
        *, auto_route: bool = False, **params: Any,
    ) -> LLMResponse:
        t0 = time.perf_counter()
        await self._ensure_started()
        body = _body(prompt_or_messages, model, constraints, False, params, auto_route)
        outcome = await self.gateway.chat(body, principal=ANONYMOUS)
        if isinstance(outcome, Explained):  # pragma: no cover - explain is a header, not an SDK call
            raise GatewayError("explain is not available through acall")
        assert isinstance(outcome, Completed)
        data = outcome.result.json()
        r = outcome.receipt
        text, usage = _text(data), data.get("usage") or {}
        cost = self._cost(r.deployment, *_tokens(prompt_or_messages, usage, text))
        return LLMResponse(text, data.get("model", model), r.deployment, r.location, r.residency,
                           r.privacy, r.request_id, usage, data, cost, (time.perf_counter() - t0) * 1000.0)

    async def _astream(
        self, prompt: Messages, model: str, constraints: Mapping[str, Any] | None, auto_route: bool,
        params: dict[str, Any], info: dict[str, Any] | None,
    ) -> AsyncIterator[str]:
        await self._ensure_started()
        outcome = await self.gateway.chat(_body(prompt, model, constraints, True, params, auto_route), principal=ANONYMOUS)
        assert isinstance(outcome, Streaming)
        if info is not None:
            r = outcome.receipt
            info.update(deployment=r.deployment, location=r.location, cost=lambda p, c: self._cost(r.deployment, p, c))
        try:
            async for batch in outcome.events():
                for ev in batch:
                    text = _delta_text(ev.data)
                    if text:
                        yield text
        finally:
            await outcome.aclose()

    async def aembed(self, inputs: str | list[str], model: str = DEFAULT_MODEL, constraints: Mapping[str, Any] | None = None, **params: Any) -> list[list[float]]:
        await self._ensure_started()
        outcome = await self.gateway.embed(_embed_body(inputs, model, constraints, params), principal=ANONYMOUS)
        assert isinstance(outcome, Embedded)
        return _vectors(orjson.loads(outcome.raw))

    async def aclose(self) -> None:
        if self._started is not None:
            if self._ready is not None:
                await asyncio.gather(self._ready, return_exceptions=True)
            await self.gateway.close()
            self._started = self._ready = None

    def close(self) -> None:
        if self._thread is not None:
            self._thread.run(self.aclose())
            self._thread.stop()
            self._thread = None


class RemoteClient(_SyncAPI):
    """A thin client for a running gateway; same call shapes as `Tiergate`."""

    def __init__(self, base_url: str = "http://127.0.0.1:8100", api_key: str | None = None, timeout_s: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.api_key = api_key
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._thread: _LoopThread | None = None
        self._names: frozenset[str] | None = None

    def _headers(self) -> dict[str, str]:
        h = {"content-type": "application/json"}
        if self.api_key:
            h["authorization"] = f"Bearer {self.api_key}"
        return h

    @staticmethod
    def _error(status: int, data: Any) -> GatewayError:
        err = (data.get("error") if isinstance(data, dict) else None) or {}
        return GatewayError(err.get("message", "gateway error"), code=err.get("code"), status=status, param=err.get("param"))

    async def amodel_names(self) -> frozenset[str]:
        """`GET /v1/models`, once per client (group and deployment names)."""
        if self._names is None:
            async with aiohttp.ClientSession(timeout=self.timeout) as s:
                async with s.get(f"{self.base_url}/v1/models", headers=self._headers()) as resp:
                    data = orjson.loads(await resp.read())
                    if resp.status != 200:
                        raise self._error(resp.status, data)
            self._names = frozenset(m["id"] for m in data.get("data") or ())
        return self._names

    async def acall(
        self, prompt_or_messages: Messages, model: str = DEFAULT_MODEL, constraints: Mapping[str, Any] | None = None,
        *, auto_route: bool = False, **params: Any,
    ) -> LLMResponse:
        t0 = time.perf_counter()
        body = _body(prompt_or_messages, model, constraints, False, params, auto_route)
        async with aiohttp.ClientSession(timeout=self.timeout) as s:
            async with s.post(f"{self.base_url}/v1/chat/completions", data=orjson.dumps(body), headers=self._headers()) as resp:
                raw = await resp.read()
                data = orjson.loads(raw)
                if resp.status != 200:
                    raise self._error(resp.status, data)
                h = resp.headers
                usage = data.get("usage") or {}
                cost = _header_float(h.get("x-tiergate-cost-usd"))
                if cost is None and isinstance(usage.get("cost"), (int, float)):
                    cost = float(usage["cost"])
                return LLMResponse(_text(data), data.get("model", model), h.get("x-tiergate-deployment", ""),
                                   h.get("x-tiergate-location", ""), h.get("x-tiergate-residency", ""),
                                   h.get("x-tiergate-privacy", ""), h.get("x-request-id", ""), usage, data,
                                   cost, (time.perf_counter() - t0) * 1000.0)

    async def aembed(self, inputs: str | list[str], model: str = DEFAULT_MODEL, constraints: Mapping[str, Any] | None = None, **params: Any) -> list[list[float]]:
        body = _embed_body(inputs, model, constraints, params)
        async with aiohttp.ClientSession(timeout=self.timeout) as s:
            async with s.post(f"{self.base_url}/v1/embeddings", data=orjson.dumps(body), headers=self._headers()) as resp:
                data = orjson.loads(await resp.read())
                if resp.status != 200:
                    raise self._error(resp.status, data)
                return _vectors(data)

    async def _astream(
        self, prompt: Messages, model: str, constraints: Mapping[str, Any] | None, auto_route: bool,
        params: dict[str, Any], info: dict[str, Any] | None,
    ) -> AsyncIterator[str]:
        from .providers.sse import iter_sse

        body = _body(prompt, model, constraints, True, params, auto_route)
        async with aiohttp.ClientSession(timeout=self.timeout) as s:
            async with s.post(f"{self.base_url}/v1/chat/completions", data=orjson.dumps(body), headers=self._headers()) as resp:
                if resp.status != 200:
                    raise self._error(resp.status, orjson.loads(await resp.read()))
                if info is not None:
                    info.update(deployment=resp.headers.get("x-tiergate-deployment", ""),
                                location=resp.headers.get("x-tiergate-location", ""))
                async for ev in iter_sse(resp.content.iter_any()):
                    if ev.data == b"[DONE]":
                        return
                    chunk = orjson.loads(ev.data)
                    if "error" in chunk:
                        raise UpstreamError(chunk["error"].get("message", "stream failed"))
                    text = _delta_text(chunk)
                    if text:
                        yield text
                raise UpstreamError("the gateway's stream ended before the answer was complete")


# ---------------------------------------------------------------------------- llm_call
_DEFAULT: dict[str, Tiergate] = {}
_DEFAULT_LOCK = threading.Lock()
_ASYNC: dict[tuple[str, int], tuple[weakref.ref[asyncio.AbstractEventLoop], Tiergate, AsyncIterator[None]]] = {}


@atexit.register
def _close_defaults() -> None:
    """Close the sync API's in-process gateways at exit (their pools live on daemon threads)."""
    with _DEFAULT_LOCK:
        instances = list(_DEFAULT.values())
        _DEFAULT.clear()
    for tg in instances:
        try:
            tg.close()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            log.debug("closing an in-process gateway at exit failed", exc_info=True)


def _instance(config: str | Path | _SyncAPI | None) -> _SyncAPI:
    config = _CONFIG.config if config is None else config
    if isinstance(config, _SyncAPI):
        return config
    key = str(config or "")
    with _DEFAULT_LOCK:
        if key not in _DEFAULT:
            _DEFAULT[key] = Tiergate(config)
        return _DEFAULT[key]


async def _instance_async(config: str | Path | _SyncAPI | None) -> _SyncAPI:
    """In-process gateways are bound to one event loop: one per (config, running loop), closed
    when that loop shuts down its async generators (`asyncio.run` does, at the end), so no
    connection pool outlives its loop."""
    config = _CONFIG.config if config is None else config
    if isinstance(config, _SyncAPI):
        return config
    loop = asyncio.get_running_loop()
    key = (str(config or ""), id(loop))
    entry = _ASYNC.get(key)
    if entry is None or entry[0]() is not loop:  # a new loop may reuse a dead one's id
        tg = Tiergate(config)
        closer = _close_with_loop(key, tg)
        await closer.__anext__()  # the loop now tracks it (and finalises it at shutdown)
        entry = _ASYNC[key] = (weakref.ref(loop), tg, closer)
    return entry[1]


async def _close_with_loop(key: tuple[str, int], tg: Tiergate) -> AsyncIterator[None]:
    """Parked at `yield` until the loop's `shutdown_asyncgens`; then closes `tg` on its loop."""
    try:
        yield
    finally:
        _ASYNC.pop(key, None)
        await tg.aclose()


async def _primary(backend: _SyncAPI, cfg: SDKConfig, model: str | None, tier: str | None,
                   constraints: Mapping[str, Any] | None) -> Route:
    if tier is not None:
        names = frozenset() if model else await backend.amodel_names()
        return resolve_tier(tier, model=model, constraints=constraints, groups=names)
    if model is not None:
        return Route(model, dict(constraints) if constraints else None, model)
    if cfg.default_tier:
        return resolve_target(cfg.default_tier, constraints=constraints, groups=await backend.amodel_names())
    return Route(DEFAULT_MODEL, dict(constraints) if constraints else None, DEFAULT_MODEL)


def _chain_after(cfg: SDKConfig, label: str) -> tuple[str, ...]:
    """The chain entries after `label` (a tier called with `model=` counts as its tier)."""
    chain = cfg.fallback_chain
    for name in (label, label.partition(":")[0]):
        if name in chain:
            return chain[chain.index(name) + 1:]
    return chain


def _log_answer(r: LLMResponse, route: str, fallbacks: int) -> None:
    p, c = r.usage.get("prompt_tokens", "?"), r.usage.get("completion_tokens", "?")
    cost = "unknown" if r.cost_usd is None else f"{r.cost_usd:.6f}"
    log.info("llm_call ok deployment=%s location=%s latency_ms=%.1f prompt_tokens=%s completion_tokens=%s "
             "cost_usd=%s route=%s sdk_fallbacks=%d", r.deployment, r.location, r.latency_ms or 0.0, p, c, cost,
             route, fallbacks)


def _log_failure(exc: Exception, route: str, t0: float, fallbacks: int) -> None:
    status = getattr(exc, "status", "-")
    code = getattr(exc, "code", None) or type(exc).__name__
    log.info("llm_call failed status=%s code=%s latency_ms=%.1f route=%s sdk_fallbacks=%d",
             status, code, (time.perf_counter() - t0) * 1000.0, route, fallbacks)


async def _configured_call(
    backend: _SyncAPI, prompt: Messages, model: str | None, constraints: Mapping[str, Any] | None,
    auto_route: bool, params: dict[str, Any], tier: str | None = None,
) -> LLMResponse:
    """One `llm_call`: the cost guard, the primary target, then the fallback chain."""
    if params.get("stream"):
        raise TypeError("allm_call does not stream; use `Tiergate(...).astream` or `llm_call(..., stream=True)`")
    cfg = _CONFIG
    t0 = time.perf_counter()
    route = Route(model or tier or DEFAULT_MODEL, None, model or tier or DEFAULT_MODEL)
    failed: list[str] = []
    try:
        if cfg.guard is not None:
            cfg.guard.check()
        route = await _primary(backend, cfg, model, tier, constraints)
        chain = iter(_chain_after(cfg, route.label))
        while True:
            try:
                r = await backend.acall(prompt, route.model, route.constraints, auto_route=auto_route, **params)
                break
            except GatewayError as exc:
                nxt = next(chain, None) if _falls_back(exc) else None
                if nxt is None:
                    if failed:
                        exc.add_note("the SDK's fallback_chain tried before: " + "; ".join(failed))
                    raise
                failed.append(f"{route.label}: {exc.status} {exc.code or ''}".rstrip())
                try:
                    route = resolve_target(nxt, constraints=constraints, groups=await backend.amodel_names())
                except GatewayError as bad:
                    bad.add_note("the SDK's fallback_chain tried before: " + "; ".join(failed))
                    raise
    except Exception as exc:
        if cfg.log_performance:
            _log_failure(exc, route.label, t0, len(failed))
        raise
    r.latency_ms = (time.perf_counter() - t0) * 1000.0
    if cfg.guard is not None:
        if r.cost_usd is None:
            log.warning("llm_call: the answer from %s has no cost; cost_limit_daily cannot count it", r.deployment)
        cfg.guard.charge(r.cost_usd)
    if cfg.log_performance:
        _log_answer(r, route.label, len(failed))
    return r


async def _configured_stream(
    backend: _SyncAPI, prompt: Messages, model: str | None, constraints: Mapping[str, Any] | None,
    auto_route: bool, params: dict[str, Any], tier: str | None = None,
) -> AsyncIterator[str]:
    """A streamed `llm_call`: guard and primary target only; cost estimated from the text."""
    cfg = _CONFIG
    t0 = time.perf_counter()
    if cfg.guard is not None:
        cfg.guard.check()
    route = await _primary(backend, cfg, model, tier, constraints)
    info: dict[str, Any] = {}
    chars = 0
    async for piece in backend._astream(prompt, route.model, route.constraints, auto_route, params, info):
        chars += len(piece)
        yield piece
    p, c = estimate_prompt_tokens({"messages": _messages(prompt)}), chars // 4
    cost_of = info.get("cost")
    cost = cost_of(p, c) if cost_of is not None else None
    if cfg.guard is not None:
        cfg.guard.charge(cost)
    if cfg.log_performance:
        r = LLMResponse("", route.model, info.get("deployment", ""), info.get("location", ""), "", "", "",
                        {"prompt_tokens": p, "completion_tokens": c}, {}, cost, (time.perf_counter() - t0) * 1000.0)
        _log_answer(r, route.label, 0)


class _LLMCall:
    """`llm_call(prompt, model=None, constraints=None, *, config=None, stream=False, auto_route=False, **params)`

    Call a model through the gateway (sync; in-process unless `config` is a `RemoteClient`).
    `stream=True` yields text deltas. `auto_route=True` asks the gateway to classify the
    prompt's complexity and domain (`metadata.auto_route`). `constraints` go to the gateway as
    `metadata.constraints`: `privacy`, `max_latency_ms`, `max_cost`, `min_quality`,
    `capabilities`, `allowed_locations`, `exclude`, `optimize` (cost | quality | speed | latency
    | throughput | local | balanced | learned). `model=None` means `configure(default_tier=...)`,
    else the `default` group.

    Tier shortcuts (the seed's `llm_call.local(prompt, model=...)`), resolved in this order:
    an explicit `model=` (a group or deployment name), else a model group named like the tier,
    else constraints on the `default` group:

        tier        without model= or a group of its name
        .local      allowed_locations [local]
        .sovereign  allowed_locations [sovereign]
        .cloud      allowed_locations [cloud]
        .frontier   allowed_locations [cloud]
        .gpu        allowed_locations [sovereign, cloud], optimize: throughput
        .claude     needs a group named `claude` (TierNotConfiguredError otherwise)

    `.local` and `.sovereign` are privacy promises: with `model=` or a group they still send
    allowed_locations ([local]; [local, sovereign]), so a misnamed model fails loudly (422)
    instead of leaving the premises. A caller's own `allowed_locations` can only narrow a tier.

    `llm_call.batch(prompts, ...)`: see `batch`.
    """

    def __call__(
        self, prompt_or_messages: Messages, model: str | None = None, constraints: Mapping[str, Any] | None = None,
        *, config: str | Path | _SyncAPI | None = None, stream: bool = False, auto_route: bool = False, **params: Any,
    ) -> LLMResponse | Iterator[str]:
        return self._go(None, prompt_or_messages, model, constraints, config, stream, auto_route, params)

    def _go(
        self, tier: str | None, prompt: Messages, model: str | None, constraints: Mapping[str, Any] | None,
        config: str | Path | _SyncAPI | None, stream: bool, auto_route: bool, params: dict[str, Any],
    ) -> LLMResponse | Iterator[str]:
        backend = _instance(config)
        if stream:
            return backend._loop().iterate(_configured_stream(backend, prompt, model, constraints, auto_route, params, tier))
        return backend._loop().run(_configured_call(backend, prompt, model, constraints, auto_route, params, tier))

    def _tier(self, tier: str, prompt: Messages, model: str | None, constraints: Mapping[str, Any] | None,
              kw: dict[str, Any]) -> LLMResponse | Iterator[str]:
        config, stream, auto = kw.pop("config", None), kw.pop("stream", False), kw.pop("auto_route", False)
        return self._go(tier, prompt, model, constraints, config, stream, auto, kw)

    def local(self, prompt_or_messages: Messages, model: str | None = None, constraints: Mapping[str, Any] | None = None, **kw: Any) -> LLMResponse | Iterator[str]:
        """Local tier (on the premises); see the class docstring for the resolution."""
        return self._tier("local", prompt_or_messages, model, constraints, kw)

    def sovereign(self, prompt_or_messages: Messages, model: str | None = None, constraints: Mapping[str, Any] | None = None, **kw: Any) -> LLMResponse | Iterator[str]:
        """Sovereign tier (in-country)."""
        return self._tier("sovereign", prompt_or_messages, model, constraints, kw)

    def cloud(self, prompt_or_messages: Messages, model: str | None = None, constraints: Mapping[str, Any] | None = None, **kw: Any) -> LLMResponse | Iterator[str]:
        """Cloud tier."""
        return self._tier("cloud", prompt_or_messages, model, constraints, kw)

    def gpu(self, prompt_or_messages: Messages, model: str | None = None, constraints: Mapping[str, Any] | None = None, **kw: Any) -> LLMResponse | Iterator[str]:
        """The seed's GPU tier (RunPod): a `gpu` group, else sovereign or cloud by throughput."""
        return self._tier("gpu", prompt_or_messages, model, constraints, kw)

    def frontier(self, prompt_or_messages: Messages, model: str | None = None, constraints: Mapping[str, Any] | None = None, **kw: Any) -> LLMResponse | Iterator[str]:
        """The seed's frontier tier (LiteLLM): a `frontier` group, else cloud."""
        return self._tier("frontier", prompt_or_messages, model, constraints, kw)

    def claude(self, prompt_or_messages: Messages, model: str | None = None, constraints: Mapping[str, Any] | None = None, **kw: Any) -> LLMResponse | Iterator[str]:
        """The seed's Claude tier: a group named `claude` (or `model=`)."""
        return self._tier("claude", prompt_or_messages, model, constraints, kw)

    def batch(
        self, prompts: Iterable[Messages], model: str | None = None, constraints: Mapping[str, Any] | None = None,
        *, concurrency: int = 8, config: str | Path | _SyncAPI | None = None, auto_route: bool = False, **params: Any,
    ) -> list[LLMResponse | Exception]:
        """Each prompt as its own `llm_call`, at most `concurrency` in flight; answers in input order.

        A failed prompt's slot holds its exception (a `GatewayError`, `DailyCostLimitError`,
        ...) and never stops the others; check with `isinstance(item, Exception)`.
        `constraints=None` means `{"optimize": "throughput"}` (the seed's batch routing);
        `configure` defaults (tier, fallback chain, cost limit, logging) apply per prompt.
        """
        backend = _instance(config)
        return backend._loop().run(_abatch(backend, prompts, model, constraints, concurrency, auto_route, params))


async def _abatch(
    backend: _SyncAPI, prompts: Iterable[Messages], model: str | None, constraints: Mapping[str, Any] | None,
    concurrency: int, auto_route: bool, params: dict[str, Any],
) -> list[LLMResponse | Exception]:
    c = BATCH_CONSTRAINTS if constraints is None else constraints

    def one(p: Messages) -> Awaitable[LLMResponse]:
        return _configured_call(backend, p, model, c, auto_route, params)

    return await _bounded(list(prompts), one, concurrency)


class _AsyncLLMCall:
    """`await allm_call(prompt, model=None, constraints=None, *, config=None, auto_route=False, **params)`

    The async twin of `llm_call`, with the same tier shortcuts (`await allm_call.local(...)`)
    and `await allm_call.batch(...)`. For async streaming use `Tiergate(...).astream`.
    """

    async def __call__(
        self, prompt_or_messages: Messages, model: str | None = None, constraints: Mapping[str, Any] | None = None,
        *, config: str | Path | _SyncAPI | None = None, auto_route: bool = False, **params: Any,
    ) -> LLMResponse:
        return await _configured_call(await _instance_async(config), prompt_or_messages, model, constraints, auto_route, params)

    async def _tier(self, tier: str, prompt: Messages, model: str | None, constraints: Mapping[str, Any] | None,
                    kw: dict[str, Any]) -> LLMResponse:
        config, auto = kw.pop("config", None), kw.pop("auto_route", False)
        return await _configured_call(await _instance_async(config), prompt, model, constraints, auto, kw, tier)

    async def local(self, prompt_or_messages: Messages, model: str | None = None, constraints: Mapping[str, Any] | None = None, **kw: Any) -> LLMResponse:
        return await self._tier("local", prompt_or_messages, model, constraints, kw)

    async def sovereign(self, prompt_or_messages: Messages, model: str | None = None, constraints: Mapping[str, Any] | None = None, **kw: Any) -> LLMResponse:
        return await self._tier("sovereign", prompt_or_messages, model, constraints, kw)

    async def cloud(self, prompt_or_messages: Messages, model: str | None = None, constraints: Mapping[str, Any] | None = None, **kw: Any) -> LLMResponse:
        return await self._tier("cloud", prompt_or_messages, model, constraints, kw)

    async def gpu(self, prompt_or_messages: Messages, model: str | None = None, constraints: Mapping[str, Any] | None = None, **kw: Any) -> LLMResponse:
        return await self._tier("gpu", prompt_or_messages, model, constraints, kw)

    async def frontier(self, prompt_or_messages: Messages, model: str | None = None, constraints: Mapping[str, Any] | None = None, **kw: Any) -> LLMResponse:
        return await self._tier("frontier", prompt_or_messages, model, constraints, kw)

    async def claude(self, prompt_or_messages: Messages, model: str | None = None, constraints: Mapping[str, Any] | None = None, **kw: Any) -> LLMResponse:
        return await self._tier("claude", prompt_or_messages, model, constraints, kw)

    async def batch(
        self, prompts: Iterable[Messages], model: str | None = None, constraints: Mapping[str, Any] | None = None,
        *, concurrency: int = 8, config: str | Path | _SyncAPI | None = None, auto_route: bool = False, **params: Any,
    ) -> list[LLMResponse | Exception]:
        """Async twin of `llm_call.batch` (same order and error-slot rules)."""
        return await _abatch(await _instance_async(config), prompts, model, constraints, concurrency, auto_route, params)


llm_call = _LLMCall()
allm_call = _AsyncLLMCall()
