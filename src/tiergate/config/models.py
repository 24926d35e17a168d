"""The validated, frozen configuration schema (what `tiergate.yaml` may say).

Unknown keys are errors. Secrets are references (`env:NAME`, `file:PATH`); they are resolved at
use time by `resolve_secret` and never printed: `Deployment.__repr__` and `tiergate info` show the
reference, never the value.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..cache.config import CacheConfig
from ..privacy.entities import ENTITY_TYPES

Location = Literal["local", "sovereign", "cloud"]
ProviderName = Literal["openai", "anthropic", "gemini", "ollama", "bedrock"]
Capability = Literal["tools", "vision", "json", "embeddings", "streaming", "reasoning", "code"]
DOMAINS: tuple[str, ...] = ("general", "code", "analysis", "creative", "translation", "math")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(str):
    """A secret reference: `env:NAME`, `file:PATH`, or (discouraged) a literal value."""

    def resolve(self, environ: os._Environ[str] | dict[str, str] | None = None) -> str | None:
        env = os.environ if environ is None else environ
        if self.startswith("env:"):
            return env.get(self[4:]) or None
        if self.startswith("file:"):
            try:
                return Path(self[5:]).expanduser().read_text(encoding="utf-8").strip() or None
            except OSError:
                return None
        return str(self) or None

    @property
    def display(self) -> str:
        """What may be shown to people: the reference, never a literal secret."""
        if self.startswith(("env:", "file:")):
            return str(self)
        return "<inline secret>"


def resolve_secret(ref: str | None) -> str | None:
    return SecretRef(ref).resolve() if ref else None


class ServerConfig(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(8100, ge=0, le=65535)
    master_key: str | None = "env:TIERGATE_MASTER_KEY"
    max_body_mb: float = Field(20.0, gt=0)
    workers: int = Field(1, ge=1, le=64)
    shutdown_grace_s: float = Field(30.0, ge=0)
    # Virtual keys are stored as HMAC-SHA256(key_secret, key); without a key_secret the master
    # key is the HMAC key (so rotating the master key then invalidates every virtual key).
    key_secret: str | None = "env:TIERGATE_KEY_SECRET"
    # How long a looked-up key stays cached in a process. Revocation through this process (or any
    # process when Redis is configured) clears it at once; otherwise it bounds the delay.
    key_cache_ttl_s: float = Field(1.0, ge=0)

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        for k, v in super().__repr_args__():
            yield (k, SecretRef(v).display if k in ("master_key", "key_secret") and v else v)


class StoreConfig(_Frozen):
    url: str = "sqlite:///data/tiergate.db"
    log_bodies: bool = False  # prompt/response bodies are not stored unless enabled
    flush_interval_ms: int = Field(200, ge=1)
    batch_size: int = Field(500, ge=1)

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        for k, v in super().__repr_args__():
            yield (k, _mask_url_password(v) if k == "url" else v)


def _mask_url_password(url: str) -> str:
    """`postgresql://user:pw@host/db` -> `postgresql://user:***@host/db` (for display)."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not (sep and at and ":" in creds):
        return url
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


#: What the gateway does with a detected entity type (see docs/privacy.md):
#: route_local / route_sovereign raise the request's level to PRIVATE / SENSITIVE;
#: pseudonymize / redact rewrite the value for deployments in `transform_locations`;
#: block refuses the request; allow does nothing.
PrivacyAction = Literal["route_local", "route_sovereign", "pseudonymize", "redact", "block", "allow"]


class CustomDetector(_Frozen):
    """A user's own identifier: a regex, an optional checksum, context words."""

    name: str = Field(pattern=r"^[A-Z][A-Z0-9_]{1,39}$")
    pattern: str = Field(min_length=1)
    validator: Literal["luhn", "iban", "tckn", "ru_inn", "ru_snils", "us_ssn"] | None = None
    context: tuple[str, ...] = ()
    context_required: bool = False
    score: float = Field(0.8, ge=0, le=1)
    action: PrivacyAction = "route_sovereign"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression: {exc}") from None
        return v


class PrivacyConfig(_Frozen):
    default_level: Literal["PRIVATE", "SENSITIVE", "PUBLIC"] = "PUBLIC"
    detection: bool = True  # scan prompts for personal data and secrets
    min_score: float = Field(0.5, ge=0, le=1)
    # Entity type -> action, over the defaults (privacy/policy.py DEFAULT_ACTIONS).
    actions: dict[str, PrivacyAction] = Field(default_factory=dict)
    custom_detectors: tuple[CustomDetector, ...] = ()
    # Where pseudonymize/redact apply: local deployments always see the original text.
    transform_locations: tuple[Literal["sovereign", "cloud"], ...] = ("sovereign", "cloud")
    # Residencies any request may reach (empty: all); deployments elsewhere are excluded.
    allowed_residencies: tuple[str, ...] = ()
    # Fail closed: a detector that raises or takes longer than this makes the request PRIVATE
    # (or refuses it, with on_detector_failure: refuse); it is never forwarded unscanned.
    detection_timeout_ms: float = Field(250.0, gt=0)
    on_detector_failure: Literal["private", "refuse"] = "private"

    @model_validator(mode="after")
    def _known_types(self) -> PrivacyConfig:
        known = set(ENTITY_TYPES) | {c.name for c in self.custom_detectors}
        unknown = sorted(set(self.actions) - known)
        if unknown:
            raise ValueError(
                f"actions names unknown entity types {unknown}; known: {', '.join(sorted(known))}"
            )
        return self

    @field_validator("default_level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v


class Price(_Frozen):
    """USD per 1M tokens."""

    input: Decimal = Field(Decimal(0), ge=0)
    output: Decimal = Field(Decimal(0), ge=0)


class Deployment(_Frozen):
    """One model at one endpoint."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._:/@-]+$")
    provider: ProviderName = "openai"
    base_url: str = ""
    model: str = Field(min_length=1)
    api_key: str | None = None
    location: Location
    residency: str = ""
    tier: str | None = None
    price: Price = Price()
    latency_ms: float | None = Field(None, gt=0)
    # The upstream's own quota (e.g. Groq's free tier): requests and tokens per minute. When it is
    # reached the deployment is skipped (fallback) until the sliding window frees room.
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    throughput_tps: float | None = Field(None, gt=0)
    quality: float = Field(0.5, ge=0, le=1)
    capabilities: tuple[Capability, ...] = ()
    tags: tuple[str, ...] = ()  # domains it is good at: code, analysis, creative, translation, ...
    context_length: int | None = Field(None, gt=0)
    max_concurrency: int | None = Field(None, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    # Provider-specific settings (each adapter documents the ones it reads; others ignore them).
    api_version: str | None = None  # anthropic: `anthropic-version` header (default 2023-06-01)
    region: str | None = None  # bedrock: AWS region; gemini on Vertex AI: the location
    project: str | None = None  # gemini on Vertex AI: the Google Cloud project (selects Vertex)
    token_command: str | None = None  # gemini on Vertex AI: prints a bearer token (e.g. gcloud)
    aws_profile: str | None = None  # bedrock: a named profile of botocore's credential chain
    keep_alive: str | None = None  # ollama: how long the model stays loaded ("5m", "-1")
    options: dict[str, Any] = Field(default_factory=dict)  # ollama `options` (num_ctx, ...)
    # Display data for the ALEM banner / `tiergate info`.
    tier_name: str | None = None
    cost_range: str | None = None
    best_for: str | None = None
    models_label: str | None = None
    provider_label: str | None = None  # who runs the endpoint, e.g. "Groq Cloud"
    # Set by the loader, not by users: where this deployment came from, and whether it is a
    # gateway-started simulated upstream (profile name).
    source: str = ""
    simulated: Literal["local", "sovereign", "cloud"] | None = None

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v:
            return v
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        parts = urlsplit(v)
        if not parts.hostname:
            raise ValueError("has no host name")
        try:
            parts.port  # noqa: B018 - raises for a port that is not a number in range
        except ValueError:
            raise ValueError("has an invalid port (must be a number from 1 to 65535)") from None
        return v.rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        return SecretRef(v) if v else None

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        for k, v in super().__repr_args__():
            if k == "api_key" and v:
                v = SecretRef(v).display
            elif k == "headers" and v:
                v = {h: SecretRef(x).display for h, x in v.items()}
            yield (k, v)


Strategy = Literal[
    "ordered", "local_first", "cost_optimized", "quality", "speed", "throughput", "balanced", "learned"
]
STRATEGIES: tuple[str, ...] = (
    "ordered", "local_first", "cost_optimized", "quality", "speed", "throughput", "balanced", "learned",
)


class BalancedWeights(_Frozen):
    cost: float = Field(1.0, ge=0)
    quality: float = Field(1.0, ge=0)
    speed: float = Field(1.0, ge=0)


class AutoRouteConfig(_Frozen):
    """Complexity- and domain-aware routing (`routing/auto.py`)."""

    enabled: bool = False  # per request: metadata.auto_route / SDK auto_route=True
    simple_below: float = Field(0.35, ge=0, le=1)  # complexity < this: simple -> cheap/local
    complex_above: float = Field(0.65, ge=0, le=1)  # complexity > this: complex -> quality
    domain_boost: float = Field(0.3, ge=0)  # score bonus for a deployment tagged with the domain


class CircuitBreakerConfig(_Frozen):
    consecutive_failures: int = Field(5, ge=1)  # open after this many failures in a row
    error_rate: float = Field(0.5, gt=0, le=1)  # ... or this share of failures in the window
    window_s: float = Field(30.0, gt=0)
    min_requests: int = Field(10, ge=1)  # the error rate counts from this many requests
    cooldown_s: float = Field(10.0, gt=0)  # open -> half-open after this
    half_open_probes: int = Field(1, ge=1)  # trial requests let through when half-open


class RetryConfig(_Frozen):
    attempts: int = Field(2, ge=1, le=10)  # tries per deployment (1 = no retry) before fallback
    backoff_base_ms: float = Field(100.0, ge=0)
    backoff_max_ms: float = Field(2000.0, ge=0)
    jitter: float = Field(0.2, ge=0, le=1)  # +/- share of the delay, random
    max_retry_after_s: float = Field(5.0, ge=0)  # a longer upstream Retry-After: fall back instead


class ExperimentConfig(_Frozen):
    """An A/B split of a model group: each request's first candidate is drawn by weight, sticky
    per key (or per `user`); the other candidates stay as fallback."""

    arms: dict[str, float] = Field(min_length=2)  # deployment -> weight
    sticky_by: Literal["key", "user"] = "user"


class RoutingConfig(_Frozen):
    default_strategy: Strategy = "ordered"
    # Locations any request may reach (empty: all); seed 002's LLM_STRATEGY=local / api-only.
    allowed_locations: tuple[Location, ...] = ()
    group_strategies: dict[str, Strategy] = Field(default_factory=dict)
    balanced: BalancedWeights = BalancedWeights()
    auto_route: AutoRouteConfig = AutoRouteConfig()
    retries: RetryConfig = RetryConfig()
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()
    # Total time one request may spend on upstreams. Above the default timeout_s (60), so the
    # common request needs no timer of its own; each non-last attempt keeps a reserve for fallback.
    max_failover_s: float = Field(90.0, gt=0)
    queue_timeout_s: float = Field(10.0, gt=0)  # wait for a deployment's concurrency slot
    health_probe_interval_s: float = Field(15.0, ge=0)  # 0 = no background probes
    ewma_alpha: float = Field(0.2, gt=0, le=1)  # weight of the newest latency sample
    experiments: dict[str, ExperimentConfig] = Field(default_factory=dict)  # group -> split
    learning: bool = True  # record outcomes per deployment and task class (store)


OnStoreUnavailable = Literal["refuse", "allow"]


class Limits(_Frozen):
    """One scope's money and rate limits (a team's; the global ones live in `budgets`)."""

    daily_usd: Decimal | None = Field(None, ge=0)
    monthly_usd: Decimal | None = Field(None, ge=0)
    rpm: int | None = Field(None, ge=1)  # requests per minute (sliding window)
    tpm: int | None = Field(None, ge=1)  # tokens per minute (prompt estimate + max_tokens)
    # When the shared counter store (Redis, or the database) cannot be reached: refuse the request
    # (503) or admit it uncounted. None: `budgets.on_store_unavailable`.
    on_store_unavailable: OnStoreUnavailable | None = None


class BudgetsConfig(_Frozen):
    """Spend control (seed 002): the global daily/monthly budget and the rules every budget follows
    (global, team and key budgets alike)."""

    daily_usd: Decimal | None = Field(None, ge=0)  # GENAI_BUDGET_DAILY
    monthly_usd: Decimal | None = Field(None, ge=0)  # LLM_MONTHLY_BUDGET
    timezone: str = "UTC"  # budgets reset at midnight / on the 1st in this zone
    alert_threshold: float = Field(0.8, gt=0, le=1)  # COST_ALERT_THRESHOLD: share spent -> alert
    alert_webhook: str | None = None  # POSTed a JSON event when a budget crosses the threshold
    # Less than this share left of any budget: only zero-cost (local) deployments are used.
    emergency_below: float = Field(0.10, ge=0, le=1)
    emergency_local_only: bool = False  # EMERGENCY_LOCAL_ONLY: zero-cost deployments only, always
    # One request may reserve at most this share of what remains of each budget (seed 002: 5 %).
    max_request_share: float = Field(0.05, gt=0, le=1)
    # max_tokens assumed for the pre-call estimate when a request sets none.
    estimate_max_tokens: int = Field(1024, ge=1)
    # A reservation not settled within this time (a crashed process) stops counting.
    reservation_ttl_s: float = Field(900.0, gt=0)
    on_store_unavailable: OnStoreUnavailable = "refuse"
    # Global rate limits (every request counts).
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as UTC or Asia/Baku)") from None
        return v

    @field_validator("alert_webhook")
    @classmethod
    def _webhook(cls, v: str | None) -> str | None:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v or None


class RedisConfig(_Frozen):
    """Shared state for several replicas: rate limits, budget counters, key revocations, cache."""

    url: str | None = None  # TIERGATE_REDIS_URL (seed 001: GENAI_REDIS_URL); may be env:NAME
    prefix: str = Field("tiergate", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    timeout_s: float = Field(0.5, gt=0)  # per command: a stuck Redis must not stall requests

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v and not v.startswith(("redis://", "rediss://", "unix://", "env:", "file:")):
            raise ValueError("must start with redis://, rediss:// or unix:// (or be env:NAME)")
        return v or None

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        for k, v in super().__repr_args__():
            yield (k, _mask_url_password(v) if k == "url" and v else v)


class Settings(_Frozen):
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    routing: RoutingConfig = RoutingConfig()
    budgets: BudgetsConfig = BudgetsConfig()
    teams: dict[str, Limits] = Field(default_factory=dict)
    redis: RedisConfig = RedisConfig()
    cache: CacheConfig = CacheConfig()
    deployments: tuple[Deployment, ...] = ()
    model_groups: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    # Where the settings came from (file path, "environment", "defaults"), for banners.
    origin: str = ""

    def deployment(self, name: str) -> Deployment | None:
        for d in self.deployments:
            if d.name == name:
                return d
        return None

    @property
    def simulated(self) -> bool:
        return any(d.simulated for d in self.deployments)
