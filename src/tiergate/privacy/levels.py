"""Privacy levels of a request and the deployment locations each level may reach.

PRIVATE never leaves the premises (local only), SENSITIVE never leaves the country (local or
sovereign), PUBLIC may go anywhere. A request's level only ever goes up inside the gateway.
The seeds' own words are accepted as aliases (EAIO CRITICAL/ENHANCED, GRANGER `privacy: high`).
"""

from __future__ import annotations

from enum import IntEnum


class PrivacyLevel(IntEnum):
    PUBLIC = 0
    SENSITIVE = 1
    PRIVATE = 2

    @property
    def label(self) -> str:
        return self.name


LOCATIONS: tuple[str, ...] = ("local", "sovereign", "cloud")

ALLOWED_LOCATIONS: dict[PrivacyLevel, frozenset[str]] = {
    PrivacyLevel.PRIVATE: frozenset({"local"}),
    PrivacyLevel.SENSITIVE: frozenset({"local", "sovereign"}),
    PrivacyLevel.PUBLIC: frozenset(LOCATIONS),
}

_ALIASES: dict[str, PrivacyLevel] = {
    "PRIVATE": PrivacyLevel.PRIVATE,
    "CRITICAL": PrivacyLevel.PRIVATE,  # EAIO data classification
    "HIGH": PrivacyLevel.PRIVATE,  # GRANGER constraints={"privacy": "high"}
    "LOCAL": PrivacyLevel.PRIVATE,
    "SENSITIVE": PrivacyLevel.SENSITIVE,
    "ENHANCED": PrivacyLevel.SENSITIVE,  # EAIO middle level; mapped to the stricter side
    "MEDIUM": PrivacyLevel.SENSITIVE,
    "SOVEREIGN": PrivacyLevel.SENSITIVE,
    "PUBLIC": PrivacyLevel.PUBLIC,
    "LOW": PrivacyLevel.PUBLIC,
}

VALID_NAMES = "PRIVATE, SENSITIVE, PUBLIC"


def parse_level(value: object) -> PrivacyLevel:
    """Parse a declared level (case-insensitive, seed aliases accepted).

    Raises:
        ValueError: the value names no level; the message lists the valid ones.
    """
    if isinstance(value, PrivacyLevel):
        return value
    if isinstance(value, str):
        level = _ALIASES.get(value.strip().upper())
        if level is not None:
            return level
    raise ValueError(f"must be one of {VALID_NAMES} (got {value!r})")


def may_reach(level: PrivacyLevel, location: str) -> bool:
    return location in ALLOWED_LOCATIONS[level]
