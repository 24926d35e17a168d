"""Per-request constraints: what a request needs from a deployment, and which deployments fail it.

`RequestNeeds.from_body` reads the body and `metadata.constraints` once per request (token
estimate, tools/vision/json needs, the client's limits) and validates the values; `check` is
then a handful of comparisons per candidate, so constraint filtering costs nanoseconds per
deployment, and every refusal names the constraint that caused it (it becomes part of the 422
message and of `explain`).

Capability policy: what the client asked for explicitly in `constraints.capabilities` is strict
(a deployment that does not declare it is excluded). What is only implied by the body (`tools`,
image parts, `response_format`) excludes a deployment only when that deployment declares its
capabilities at all: an empty `capabilities` list means "not described", and refusing every
undescribed deployment would break configurations that predate capability tags.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping, get_args

from ..config.models import Capability, Deployment
from ..errors import InvalidRequestError
from .eligible import DEFAULT_MAX_TOKENS_FOR_ESTIMATE

LOCATIONS: tuple[str, ...] = ("local", "sovereign", "cloud")
CAPABILITIES: frozenset[str] = frozenset(get_args(Capability))
_IMAGE_PART_TYPES = frozenset(("image_url", "input_image", "image"))
_JSON_FORMATS = frozenset(("json_object", "json_schema"))


@dataclass(slots=True, frozen=True)
class RequestNeeds:
    """Everything routing needs to know about one request, computed once.

    `max_tokens` is the output budget used for cost prediction (the client's `max_tokens` /
    `max_completion_tokens`, else 1024); `explicit_max_tokens` is only what the client said, and
    is what the context-length check adds to the prompt (a default must not exclude a
    small-context model the client never asked a long answer from).
    """

    prompt_tokens: int = 1
    max_tokens: int = DEFAULT_MAX_TOKENS_FOR_ESTIMATE
    explicit_max_tokens: int | None = None
    stream: bool = False
    tools: bool = False
    vision: bool = False
    json: bool = False
    capabilities: frozenset[str] = frozenset()  # asked for explicitly (strict)
    min_quality: float | None = None
    allowed_locations: tuple[str, ...] | None = None
    exclude: frozenset[str] = frozenset()
    max_latency_ms: float | None = None
    max_cost: Decimal | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any], constraints: Mapping[str, Any] | None = None) -> RequestNeeds:
        """Read the body and the request's constraints; invalid values raise
        `InvalidRequestError(param="metadata.constraints.<name>")`."""
        c = constraints or {}
        chars, vision = _scan_messages(body.get("messages"))
        explicit = _explicit_max_tokens(body)
        rf = body.get("response_format")
        return cls(
            prompt_tokens=max(1, chars // 4),  # same estimate as eligible.estimate_prompt_tokens
            max_tokens=explicit or DEFAULT_MAX_TOKENS_FOR_ESTIMATE,
            explicit_max_tokens=explicit,
            stream=body.get("stream") is True,
            tools=bool(body.get("tools")) or bool(body.get("functions")),
            vision=vision,
            json=isinstance(rf, Mapping) and rf.get("type") in _JSON_FORMATS,
            capabilities=_capabilities(c.get("capabilities")),
            min_quality=_number(c, "min_quality", lo=0.0, hi=1.0),
            allowed_locations=_locations(c.get("allowed_locations")),
            exclude=_names(c.get("exclude")),
            max_latency_ms=_number(c, "max_latency_ms", lo=0.0, lo_open=True),
            max_cost=_cost(c.get("max_cost")),
        )


def check(d: Deployment, req: RequestNeeds, observed_latency_ms: float | None = None) -> str | None:
    """None if `d` may serve `req`, else the reason, naming the constraint.

    For `max_latency_ms` the larger of the configured `latency_ms` (the operator's P95
    expectation) and `observed_latency_ms` (the live EWMA, when the caller has it) counts: a
    deployment that became slow is excluded, and a few fast answers do not overrule what the
    operator said to expect. With neither, latency is unknown and passes.
    """
    name = d.name
    if req.exclude and name in req.exclude:
        return f"{name}: excluded by request"
    if req.allowed_locations is not None and d.location not in req.allowed_locations:
        return (
            f"{name}: location {d.location} not in allowed_locations "
            f"[{', '.join(req.allowed_locations)}]"
        )
    if req.min_quality is not None and d.quality < req.min_quality:
        return f"{name}: quality {d.quality:g} < min_quality {req.min_quality:g}"
    missing = _missing_capability(d, req)
    if missing is not None:
        return f"{name}: lacks capability {missing}"
    if d.context_length is not None:
        need = req.prompt_tokens + (req.explicit_max_tokens or 0)
        if need > d.context_length:
            return (
                f"{name}: context_length {d.context_length} < {need} tokens "
                f"(prompt ~{req.prompt_tokens} + max_tokens {req.explicit_max_tokens or 0})"
            )
    if req.max_latency_ms is not None:
        known = [x for x in (d.latency_ms, observed_latency_ms) if x is not None]
        latency = max(known) if known else None
        if latency is not None and latency > req.max_latency_ms:
            kind = "observed" if latency == observed_latency_ms else "expected"
            return f"{name}: max_latency_ms {kind} {latency:.0f} ms > {req.max_latency_ms:g} ms"
    if req.max_cost is not None:
        cost = predicted_cost_f(d, req.prompt_tokens, req.max_tokens)
        # floats (not Decimal) keep this a few hundred ns; the relative slack absorbs rounding
        # so a cost exactly at the limit passes, as `eligible.predicted_cost` would let it.
        if cost > float(req.max_cost) * (1.0 + 1e-9):
            return f"{name}: max_cost {usd(cost)} > {usd(req.max_cost)}"
    return None


_price_cache: dict[int, tuple[Deployment, float, float]] = {}


def float_prices(d: Deployment) -> tuple[float, float]:
    """USD per 1M tokens (input, output) as floats, converted from Decimal once per deployment
    object (keyed by identity; the entry holds the object, so an id is never reused while cached)."""
    hit = _price_cache.get(id(d))
    if hit is None or hit[0] is not d:
        if len(_price_cache) > 4096:  # config reloads create new objects; stay bounded
            _price_cache.clear()
        hit = _price_cache[id(d)] = (d, float(d.price.input), float(d.price.output))
    return hit[1], hit[2]


def predicted_cost_f(d: Deployment, prompt_tokens: int, max_tokens: int) -> float:
    """`eligible.predicted_cost` in floats, for ranking and limits on the hot path."""
    pin, pout = float_prices(d)
    return (pin * prompt_tokens + pout * max_tokens) * 1e-6


def usd(value: Decimal | float) -> str:
    """`$0.0021`: up to 8 decimals, trailing zeros dropped (costs per request are tiny)."""
    text = f"{value:.8f}".rstrip("0").rstrip(".")
    return f"${text or '0'}"


# ---------------------------------------------------------------------------- helpers
def _missing_capability(d: Deployment, req: RequestNeeds) -> str | None:
    caps = d.capabilities
    for cap in req.capabilities:
        if cap not in caps:
            return cap
    if caps:  # implied needs count only against deployments that describe themselves
        if req.tools and "tools" not in caps:
            return "tools"
        if req.vision and "vision" not in caps:
            return "vision"
        if req.json and "json" not in caps:
            return "json"
    return None


def _scan_messages(messages: Any) -> tuple[int, bool]:
    """Characters of text (for the token estimate) and whether any image part is present."""
    chars = 0
    vision = False
    if not isinstance(messages, list):
        return 0, False
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                text = part.get("text")
                if isinstance(text, str):
                    chars += len(text)
                elif part.get("type") in _IMAGE_PART_TYPES:
                    vision = True
    return chars, vision


def _explicit_max_tokens(body: Mapping[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        v = body.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def _invalid(name: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"constraint {name} {message}", param=f"metadata.constraints.{name}")


def _number(
    c: Mapping[str, Any], name: str, *, lo: float, hi: float | None = None, lo_open: bool = False
) -> float | None:
    v = c.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
        raise _invalid(name, f"must be a number (got {v!r})")
    if v < lo or (lo_open and v == lo) or (hi is not None and v > hi):
        rng = f"{'>' if lo_open else '>='} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")
        raise _invalid(name, f"must be {rng} (got {v!r})")
    return float(v)


def _cost(v: Any) -> Decimal | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise _invalid("max_cost", f"must be a number of USD (got {v!r})")
    try:
        cost = Decimal(str(v))
    except InvalidOperation:
        raise _invalid("max_cost", f"must be a number of USD (got {v!r})") from None
    if not cost.is_finite() or cost < 0:
        raise _invalid("max_cost", f"must be a finite amount >= 0 USD (got {v!r})")
    return cost


def _str_list(name: str, v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) and x for x in v):
        raise _invalid(name, f"must be a list of names (got {v!r})")
    return tuple(v)


def _locations(v: Any) -> tuple[str, ...] | None:
    if v is None:
        return None
    locs = _str_list("allowed_locations", v)
    bad = [x for x in locs if x not in LOCATIONS]
    if bad or not locs:
        raise _invalid(
            "allowed_locations", f"must name locations among {', '.join(LOCATIONS)} (got {v!r})"
        )
    return tuple(x for x in LOCATIONS if x in locs)  # canonical order, no duplicates


def _names(v: Any) -> frozenset[str]:
    return frozenset() if v is None else frozenset(_str_list("exclude", v))


def _capabilities(v: Any) -> frozenset[str]:
    if v is None:
        return frozenset()
    caps = _str_list("capabilities", v)
    bad = sorted(set(caps) - CAPABILITIES)
    if bad:
        raise _invalid(
            "capabilities", f"names unknown capabilities {bad}; known: {', '.join(sorted(CAPABILITIES))}"
        )
    return frozenset(caps)
