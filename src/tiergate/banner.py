"""The startup banner: one ALEM block per deployment (seed 000's "Banner Display").

    ⚡  Tier I: Groq LPU — Rapid Prototyping
        Provider: Groq Cloud
        Latency: ~200ms (P95)
        Throughput: 800 tok/s
        Data Residency: US (Groq servers)
        Cost Range: $0–50/mo
        Models: Llama 4 Maverick 17B, Qwen 3 32B
        Best for: Hackathons, demos, MVPs, dev/test

plus where the data may go (location), where the deployment came from (source), its API-key
*reference* and, when given, live reachability. Simulated upstreams are labelled as such and the
banner says how to configure a real provider. Secrets are never printed: only references.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from decimal import Decimal
from typing import Protocol

from rich.console import Console
from rich.rule import Rule
from rich.text import Text

from . import __version__
from .config.models import Deployment, SecretRef, Settings, _mask_url_password
from .config.presets import ALEM_TIERS
from .privacy.levels import ALLOWED_LOCATIONS

_LOCATION_ICON = {"local": "🏠", "sovereign": "🏛", "cloud": "☁"}
_LOCATION_TEXT = {
    "local": "stays on the premises",
    "sovereign": "stays in the country",
    "cloud": "foreign cloud: leaves the country",
}
_INDENT = "     "

HOW_TO_ADD_PROVIDER = (
    "To use a real provider, set one of:",
    "  export GROQ_API_KEY=...                   # Groq presets (ALEM Tier I, cloud US)",
    "  export OLLAMA_HOST=localhost:11434        # local Ollama (ALEM Tier IV, on-prem)",
    "  export YONCA_LLM_PROVIDER=groq|gemini|azintelecom|ollama   # ALEM conventions",
    "or write a tiergate.yaml with `deployments:` (see docs/configuration.md).",
)


def _levels_for(location: str) -> str:
    levels = [lvl.name for lvl in sorted(ALLOWED_LOCATIONS, reverse=True) if location in ALLOWED_LOCATIONS[lvl]]
    return ", ".join(levels) if levels else "none"


def _money(value: Decimal) -> str:
    return f"${value:.2f}" if value == value.quantize(Decimal("0.01")) else f"${value.normalize()}"


def _num(value: float) -> str:
    return f"{value:g}"


def _key_line(ref: str | None, environ: Mapping[str, str]) -> str | None:
    if not ref:
        return None
    secret = SecretRef(ref)
    shown = secret.display
    if secret.startswith("env:") and not environ.get(secret[4:]):
        shown += " (not set)"
    return shown


class Probe(Protocol):
    """A deployment's health probe result (`tiergate.providers.Health`)."""

    ok: bool
    latency_ms: float | None
    models: list[str]
    error: str | None


def _status(reachability: Mapping[str, Probe] | None, name: str) -> tuple[str, str] | None:
    """(status, models line) from a probe."""
    if reachability is None or name not in reachability:
        return None
    probe = reachability[name]
    if not probe.ok:
        return f"UNREACHABLE ({probe.error})" if probe.error else "UNREACHABLE", ""
    status = f"reachable, {probe.latency_ms:.0f} ms" if probe.latency_ms is not None else "reachable"
    models = ", ".join(probe.models[:8]) + (f" (+{len(probe.models) - 8} more)" if len(probe.models) > 8 else "")
    return status, models


def _title(d: Deployment) -> Text:
    tier = ALEM_TIERS.get(d.tier or "")
    if d.simulated:
        icon = tier["icon"] if tier else _LOCATION_ICON.get(d.location, "•")
        label = f"Tier {d.tier}" if d.tier else "Simulated"
        text = Text(f"  {icon}  {label}: {d.name} — ", style="bold")
        text.append("SIMULATED upstream (no real provider configured)", style="bold yellow")
        return text
    if tier or d.tier:
        icon = tier["icon"] if tier else _LOCATION_ICON.get(d.location, "•")
        name = d.tier_name or (tier["tier_name"] if tier else d.name)
        line = f"  {icon}  Tier {d.tier}: {name}"
        if tier and tier["tagline"]:
            line += f" — {tier['tagline']}"
        return Text(line, style="bold")
    who = d.provider_label or d.provider
    return Text(f"  {_LOCATION_ICON.get(d.location, '•')}  {d.name}: {who}", style="bold")


def _block(
    d: Deployment,
    reachability: Mapping[str, Probe] | None,
    environ: Mapping[str, str],
) -> list[Text]:
    tier = ALEM_TIERS.get(d.tier or "")
    rows: list[tuple[str, str | None]] = [
        ("Deployment", f"{d.name} → {d.model}"),
    ]
    if not d.simulated:
        rows.append(("Provider", d.provider_label or (tier["provider_label"] if tier else d.provider)))
    rows.append(("Latency", f"~{_num(d.latency_ms)}ms (P95)" if d.latency_ms else None))
    rows.append(("Throughput", f"{_num(d.throughput_tps)} tok/s" if d.throughput_tps else None))
    residency = d.residency or "unspecified"
    if tier and d.residency == tier["residency"] and not d.simulated:
        residency = tier["residency_label"]
    rows.append(("Data Residency", residency))
    rows.append(("Cost Range", d.cost_range))
    rows.append(("Models", d.models_label))
    rows.append(("Best for", d.best_for))
    rows.append(
        (
            "Location",
            f"{d.location} ({_LOCATION_TEXT.get(d.location, '?')}); serves {_levels_for(d.location)}",
        )
    )
    if not d.simulated:
        rows.append(
            ("Price", f"{_money(d.price.input)} in / {_money(d.price.output)} out per 1M tokens")
        )
        rows.append(("Endpoint", f"{_mask_url_password(d.base_url) or '(AWS default)'} [{d.provider} wire format]"))
        rows.append(("API key", _key_line(d.api_key, environ)))
    rows.append(("Source", d.source or None))
    status = _status(reachability, d.name)
    out = [_title(d), Text("")]
    for label, value in rows:
        if value:
            out.append(Text(f"{_INDENT}{label}: {value}"))
    if status:
        text, models = status
        line = Text(f"{_INDENT}Status: ")
        line.append(text, style="bold red" if text.startswith("UNREACHABLE") else "green")
        out.append(line)
        if models:
            out.append(Text(f"{_INDENT}Endpoint reports: {models}"))
    return out


def render_banner(
    settings: Settings,
    *,
    console: Console,
    reachability: Mapping[str, Probe] | None = None,
    listen_url: str | None = None,
    auth: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Print the startup banner for `settings` on `console` (no secrets, only references).

    `reachability`: deployment name -> its health probe (reachable, round trip, models reported).
    `environ` (default `os.environ`) is only used to say whether an `env:` key reference is set.
    """
    env = os.environ if environ is None else environ

    def say(text: Text | str = "") -> None:
        # soft_wrap: long lines are left to the terminal, never hard-wrapped into logs
        console.print(
            text if isinstance(text, Text) else Text(text), markup=False, highlight=False, emoji=False, soft_wrap=True
        )

    console.print(Rule(f"tiergate {__version__} · ALEM Infrastructure Tier", style="cyan"))
    if listen_url:
        say(f"  Listening: {listen_url}")
    if auth:
        say(f"  Auth: {auth}")
    say(f"  Config: {settings.origin or 'defaults'}")
    say(f"  Default privacy level: {settings.privacy.default_level}")

    for d in settings.deployments:
        say()
        for line in _block(d, reachability, env):
            say(line)

    if settings.model_groups:
        say()
        say("  Model groups:")
        for group, members in settings.model_groups.items():
            if list(members) == [group]:
                continue  # the implicit one-deployment group of that name
            say(f"{_INDENT}{group} → {', '.join(members)}")

    if settings.simulated:
        say()
        say(
            Text(
                "  These upstreams are SIMULATED: answers are generated by tiergate, no real model runs.",
                style="bold yellow",
            )
        )
        for hint in HOW_TO_ADD_PROVIDER:
            say(f"  {hint}")
    console.print(Rule(style="cyan"))


def banner_text(
    settings: Settings,
    *,
    reachability: Mapping[str, Probe] | None = None,
    listen_url: str | None = None,
    auth: str | None = None,
    environ: Mapping[str, str] | None = None,
    width: int = 110,
) -> str:
    """The banner as plain text (no colours), e.g. for tests and `tiergate info`."""
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, force_terminal=False, no_color=True)
    render_banner(
        settings,
        console=console,
        reachability=reachability,
        listen_url=listen_url,
        auth=auth,
        environ=environ,
    )
    return buf.getvalue()
