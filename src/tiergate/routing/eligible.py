"""Eligibility by privacy: the deployments a request may reach, and why each other one was
excluded. Privacy comes first and is absolute (location against the request's level, residency
against the allow-list); the request's constraints follow in `routing/constraints.py`. The
reasons are part of the decision trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Sequence

from ..config.models import Deployment
from ..privacy.levels import ALLOWED_LOCATIONS, PrivacyLevel

DEFAULT_MAX_TOKENS_FOR_ESTIMATE = 1024


@dataclass(slots=True, frozen=True)
class Exclusion:
    deployment: str
    reason: str
    kind: str  # "privacy" | "key" | "constraint" | "unavailable" | "budget"


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """A local token estimate (about 4 characters a token); no tokenizer download needed."""
    chars = 0
    for m in body.get("messages") or ():
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    chars += len(part["text"])
    return max(1, chars // 4)


def predicted_cost(d: Deployment, prompt_tokens: int, max_tokens: int) -> Decimal:
    per = Decimal(1_000_000)
    return (d.price.input * prompt_tokens + d.price.output * max_tokens) / per


def split_eligible(
    candidates: Sequence[Deployment],
    level: PrivacyLevel,
    allowed_residencies: Sequence[str] = (),
) -> tuple[list[Deployment], list[Exclusion]]:
    """Privacy: the deployments whose location the level may reach (and, when an allow-list is
    configured, whose residency is on it). Constraints come after (routing/constraints.py)."""
    allowed = ALLOWED_LOCATIONS[level]
    eligible: list[Deployment] = []
    excluded: list[Exclusion] = []
    for d in candidates:
        if d.location not in allowed:
            excluded.append(
                Exclusion(
                    d.name,
                    f"{d.name} is {d.location} ({d.residency or 'unknown residency'}); "
                    f"{level.name} data may reach only {', '.join(sorted(allowed))}",
                    "privacy",
                )
            )
            continue
        if allowed_residencies and d.residency not in allowed_residencies:
            excluded.append(
                Exclusion(
                    d.name,
                    f"{d.name} is in {d.residency or 'an unknown residency'}; requests may reach only "
                    f"{', '.join(allowed_residencies)} (privacy.allowed_residencies)",
                    "privacy",
                )
            )
            continue
        eligible.append(d)
    return eligible, excluded
