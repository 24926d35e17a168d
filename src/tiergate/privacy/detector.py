"""The detector: every recognizer over one text, merged into non-overlapping typed spans.

Cheap literal checks decide which recognizer families run at all (no digit: no numbers; no `@`:
no e-mail; no `sk-`/`AKIA`/`-----BEGIN`...: no token patterns), so a prompt without personal
data costs a few substring searches. Overlaps are resolved once, at the end: the higher score
wins, then the longer span, so a Luhn-valid card in context beats the phone-like reading of the
same digits and a PEM block swallows the base64 inside it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection, Sequence

from tiergate.privacy import patterns
from tiergate.privacy.entities import ENTITY_TYPES, Entity
from tiergate.privacy.validators import VALIDATORS

from . import names

_NAME_FINDERS: tuple[tuple[str, Callable[[str], list[Entity]]], ...] = (
    ("PERSON", names.find_people),
    ("ADDRESS", names.find_addresses),
    ("DATE_OF_BIRTH", names.find_birth_dates),
)
_DIGIT = re.compile(r"[0-9]")
_NUMERIC_TYPES = frozenset(
    {"PHONE", "CREDIT_CARD", "US_SSN", "TR_TCKN", "RU_INN", "RU_SNILS", "AZ_VOEN", "PASSPORT", "IP_ADDRESS",
     "IBAN", "AZ_ID_CARD"}
)


class CustomRecognizer:
    """A user-defined identifier from configuration: a regex, optionally a checksum and context.

    If the pattern has a group named `value`, only that group is the entity (so a pattern may
    include its own label, `Policy no\\.? (?P<value>[0-9]{8})`). Context words raise the score to
    at least 0.95; with `context_required` a match without them is dropped.
    """

    def __init__(
        self,
        name: str,
        pattern: str,
        *,
        validator: str | None = None,
        context: Sequence[str] = (),
        score: float = 0.8,
        context_required: bool = False,
    ) -> None:
        if not name or not name.replace("_", "").isalnum():
            raise ValueError(f"custom recognizer name must be letters, digits and '_' (got {name!r})")
        if validator is not None and validator not in VALIDATORS:
            raise ValueError(f"unknown validator {validator!r}; valid: {', '.join(sorted(VALIDATORS))}")
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"score must be between 0 and 1 (got {score})")
        if context_required and not context:
            raise ValueError("context_required needs at least one context word")
        try:
            self.regex = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid pattern for {name}: {exc}") from None
        self.name = name
        self.pattern = pattern
        self.validator = validator
        self.context = tuple(context)
        self.score = score
        self.context_required = context_required
        self._check: Callable[[str], bool] | None = VALIDATORS[validator] if validator else None
        self._context_re = (
            re.compile("|".join(re.escape(patterns.normalize(w)) for w in self.context)) if self.context else None
        )
        self._group: str | int = "value" if "value" in self.regex.groupindex else 0

    def __repr__(self) -> str:
        return f"CustomRecognizer({self.name!r}, {self.pattern!r}, validator={self.validator!r})"

    def find(self, text: str, win: patterns.Windows) -> list[Entity]:
        found: list[Entity] = []
        for m in self.regex.finditer(text):
            start, end = m.span(self._group)
            if start >= end:
                continue
            if self._check is not None and not self._check(text[start:end]):
                continue
            reason = f"custom:{self.name}" + (f"+{self.validator}" if self.validator else "")
            score = self.score
            if self._context_re is not None:
                if self._context_re.search(win.around(start, end)):
                    score, reason = max(score, 0.95), reason + "+context"
                elif self.context_required:
                    continue
            found.append(Entity(self.name, start, end, score, reason))
        return found


class Detector:
    """Finds personal data and secrets; `scan` returns sorted, non-overlapping spans."""

    def __init__(
        self,
        *,
        custom: Sequence[CustomRecognizer] = (),
        types: Collection[str] | None = None,
        min_score: float = 0.5,
    ) -> None:
        custom_names = {c.name for c in custom}
        known = set(ENTITY_TYPES) | custom_names
        if types is not None:
            unknown = set(types) - known
            if unknown:
                raise ValueError(f"unknown entity types: {', '.join(sorted(unknown))}")
        self.types: frozenset[str] = frozenset(types) if types is not None else frozenset(known)
        self.custom: tuple[CustomRecognizer, ...] = tuple(c for c in custom if c.name in self.types)
        self.min_score = min_score
        self._numeric = bool(self.types & _NUMERIC_TYPES)

    def scan(self, text: str) -> list[Entity]:
        if not text:
            return []
        candidates = self._candidates(text)
        return resolve([e for e in candidates if e.score >= self.min_score])

    def _candidates(self, text: str) -> list[Entity]:
        types = self.types
        win = patterns.Windows(text)
        found: list[Entity] = []
        has_digit = _DIGIT.search(text) is not None
        if has_digit and self._numeric:
            found += patterns.find_numbers(text, types, win)
        if "PASSPORT" in types and has_digit:
            found += patterns.find_ru_passport_series(text)
        if "EMAIL" in types and "@" in text:
            found += patterns.find_emails(text, win)
        if "IP_ADDRESS" in types and ":" in text:
            found += patterns.find_ipv6(text, win)
        if "AZ_FIN" in types and has_digit:
            found += patterns.find_fin(text)
        if "SECRET" in types:
            found += patterns.find_secrets(text)
        for recognizer in self.custom:
            found += recognizer.find(text, win)
        for kind, find in _NAME_FINDERS:
            if kind in types:
                found += find(text)
        return found


def resolve(candidates: list[Entity]) -> list[Entity]:
    """Non-overlapping spans: the higher score wins, then the longer span, then the earlier one.

    Taken characters are marked in a bytearray, so checking and keeping a span costs its length
    in C: linear in the text, where inserting into sorted lists was quadratic in the number of
    spans (a megabyte prompt has thousands).
    """
    if not candidates:
        return []
    candidates.sort(key=lambda e: (-e.score, e.start - e.end, e.start))
    taken = bytearray(max(e.end for e in candidates))
    kept: list[Entity] = []
    for entity in candidates:
        start, end = entity.start, entity.end
        if taken.find(1, start, end) >= 0:
            continue
        taken[start:end] = b"\x01" * (end - start)
        kept.append(entity)
    kept.sort(key=lambda e: e.start)
    return kept


_default: Detector | None = None
_default_lock = threading.Lock()


def default_detector() -> Detector:
    """The shared detector with every built-in type and the default threshold, built on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Detector()
    return _default
