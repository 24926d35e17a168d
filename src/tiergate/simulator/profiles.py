"""Simulator profiles and configuration.

Owns: the ``local`` / ``sovereign`` / ``cloud`` timing presets, the public
:class:`SimulatorConfig` dataclass, and :func:`resolve_profile`, which merges a
config's overrides over its preset into an immutable :class:`Profile` that the
server uses at request time (so no per-request config lookups happen).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

#: Fault kinds understood by the simulator (config ``fault`` and ``[[fault:KIND]]``).
FAULT_KINDS: frozenset[str] = frozenset(
    {
        "500",
        "503",
        "429",
        "400",
        "401",
        "timeout",
        "reset",
        "malformed",
        "truncate",
        "slow_first_byte",
        "midstream_error",  # streams: some content, then the format's own error event
        "trickle",  # streams: the body written one byte per network write
        "blocked",  # the provider's content/safety block (Gemini promptFeedback, ...)
    }
)


#: Wire formats the simulator speaks (`openai` is served by `server.py`, the others by
#: `formats/<name>.py`, each following its provider's public API reference).
WIRE_FORMATS: tuple[str, ...] = ("openai", "anthropic", "gemini", "ollama", "bedrock")


@dataclass(frozen=True, slots=True)
class Profile:
    """Fully-resolved timing/model settings of one simulator instance."""

    name: str
    models: tuple[str, ...]
    latency_ms: float  # non-streaming: delay before the whole answer (plus generation time)
    ttft_ms: float  # streaming: delay before the first chunk
    tokens_per_s: float  # generation pace; 0 = instantaneous
    reply_tokens: int  # words in a generated reply

    @property
    def is_fast(self) -> bool:
        """True when the instance never sleeps (benchmarks / tests)."""
        return self.latency_ms <= 0 and self.ttft_ms <= 0 and self.tokens_per_s <= 0


PROFILES: dict[str, Profile] = {
    "local": Profile(
        name="local",
        models=("llama3.2:3b", "qwen2.5:7b"),
        latency_ms=30.0,
        ttft_ms=30.0,
        tokens_per_s=300.0,
        reply_tokens=24,
    ),
    "sovereign": Profile(
        name="sovereign",
        models=("llama-3.3-70b",),
        latency_ms=60.0,
        ttft_ms=60.0,
        tokens_per_s=200.0,
        reply_tokens=24,
    ),
    "cloud": Profile(
        name="cloud",
        models=("gpt-4o-mini", "llama-4-maverick"),
        latency_ms=40.0,
        ttft_ms=40.0,
        tokens_per_s=800.0,
        reply_tokens=24,
    ),
}


@dataclass
class SimulatorConfig:
    """User-facing simulator options; ``None`` means "take the profile's value".

    ``SimulatorConfig(latency_ms=0, ttft_ms=0, tokens_per_s=0)`` (or
    :meth:`SimulatorConfig.fast`) disables all sleeping.
    ``fault`` is one of :data:`FAULT_KINDS` (``"slow_first_byte:MS"`` carries
    its delay) injected into ``fault_rate`` (0..1, 1 = always) of chat requests.
    """

    profile: str = "local"
    latency_ms: float | None = None
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    reply_tokens: int | None = None
    models: list[str] | None = None
    api_key: str | None = None
    fault: str | None = None
    fault_rate: float = 1.0
    hang_s: float = 30.0
    seed: int = 0  # seeds the fault_rate dice so runs are reproducible
    format: str = "openai"  # wire format spoken: openai | anthropic | gemini | ollama | bedrock
    # The configured HTTP fault (500, 503, 429, 400, 401) also answers the model listing (OpenAI
    # format), which gateways' health probes read: a wholly dead upstream, not a failing model.
    fault_models: bool = False

    @classmethod
    def fast(cls, profile: str = "local", **overrides: Any) -> SimulatorConfig:
        """A config with every delay at zero (the mode tests and benchmarks use)."""
        values: dict[str, Any] = {"latency_ms": 0, "ttft_ms": 0, "tokens_per_s": 0}
        values.update(overrides)
        return cls(profile=profile, **values)


def _pick(value: float | int | None, default: float | int) -> float | int:
    return default if value is None else value


def resolve_profile(cfg: SimulatorConfig) -> Profile:
    """Merge ``cfg`` overrides over its named preset; validates the result."""
    try:
        base = PROFILES[cfg.profile]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown simulator profile {cfg.profile!r} (known: {known})") from None
    models = tuple(cfg.models) if cfg.models else base.models
    resolved = replace(
        base,
        models=models,
        latency_ms=float(_pick(cfg.latency_ms, base.latency_ms)),
        ttft_ms=float(_pick(cfg.ttft_ms, base.ttft_ms)),
        tokens_per_s=float(_pick(cfg.tokens_per_s, base.tokens_per_s)),
        reply_tokens=int(_pick(cfg.reply_tokens, base.reply_tokens)),
    )
    _validate(resolved, cfg)
    return resolved


def _validate(p: Profile, cfg: SimulatorConfig) -> None:
    if p.latency_ms < 0 or p.ttft_ms < 0 or p.tokens_per_s < 0:
        raise ValueError("latency_ms, ttft_ms and tokens_per_s must be >= 0")
    if p.reply_tokens < 1:
        raise ValueError("reply_tokens must be >= 1")
    if not 0.0 <= cfg.fault_rate <= 1.0:
        raise ValueError("fault_rate must be within 0..1")
    if cfg.hang_s < 0:
        raise ValueError("hang_s must be >= 0")
    if cfg.format not in WIRE_FORMATS:
        raise ValueError(f"unknown wire format {cfg.format!r} (known: {', '.join(WIRE_FORMATS)})")
    if cfg.fault is not None and cfg.fault.split(":", 1)[0] not in FAULT_KINDS:
        known = ", ".join(sorted(FAULT_KINDS))
        raise ValueError(f"unknown fault {cfg.fault!r} (known: {known})")


#: Keys `POST /_sim/config` accepts (the running instance's settings a test may change).
RUNTIME_KEYS: tuple[str, ...] = (
    "fault", "fault_rate", "latency_ms", "ttft_ms", "tokens_per_s", "hang_s", "fault_models", "seed",
)
_TIMING_KEYS = ("latency_ms", "ttft_ms", "tokens_per_s")


def reconfigure(profile: Profile, cfg: SimulatorConfig, changes: dict[str, Any]) -> tuple[Profile, SimulatorConfig]:
    """A running instance's new (profile, config) after `changes` (the `/_sim/config` body).

    Both are replaced, never mutated (`Profile` is frozen and the config object may be shared by
    other instances), so a request already being answered keeps the settings it started with.
    Raises ValueError naming the offending key; nothing changes then. `seed` is accepted here
    and ignored: reseeding the fault dice is the server's job (it owns the `Random`).
    """
    unknown = sorted(set(changes) - set(RUNTIME_KEYS))
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(RUNTIME_KEYS)}")
    fault = changes.get("fault", cfg.fault)
    if fault is not None and not isinstance(fault, str):
        raise ValueError("fault must be a fault kind or null")
    numbers = {}
    for key in (*_TIMING_KEYS, "fault_rate", "hang_s"):
        if key in changes:
            value = changes[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{key} must be a number")
            numbers[key] = float(value)
    fault_models = changes.get("fault_models", cfg.fault_models)
    if not isinstance(fault_models, bool):
        raise ValueError("fault_models must be true or false")
    seed = changes.get("seed", cfg.seed)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError("seed must be an integer")
    new_cfg = replace(
        cfg, fault=fault, fault_rate=numbers.get("fault_rate", cfg.fault_rate),
        hang_s=numbers.get("hang_s", cfg.hang_s), fault_models=fault_models, seed=seed,
    )
    new_profile = replace(profile, **{k: numbers[k] for k in _TIMING_KEYS if k in numbers})
    _validate(new_profile, new_cfg)
    return new_profile, new_cfg


def runtime_settings(profile: Profile, cfg: SimulatorConfig) -> dict[str, Any]:
    """What `GET /_sim/config` reports: the settings `reconfigure` can change, as they are now."""
    return {
        "fault": cfg.fault, "fault_rate": cfg.fault_rate, "latency_ms": profile.latency_ms,
        "ttft_ms": profile.ttft_ms, "tokens_per_s": profile.tokens_per_s, "hang_s": cfg.hang_s,
        "fault_models": cfg.fault_models, "seed": cfg.seed,
    }
