"""The privacy policy: what detection finds in a request, what level that sets, and which
transform each candidate deployment gets.

Per entity type an action (config `privacy.actions` over `DEFAULT_ACTIONS`):

    route_local      raise the request to PRIVATE (local deployments only)
    route_sovereign  raise the request to SENSITIVE (local or sovereign)
    pseudonymize     `[TYPE_n]` placeholders for deployments in `transform_locations`; restored
                     in the answer
    redact           `[TYPE]` for deployments in `transform_locations`; not restored
    block            refuse the request (403); nothing is sent
    allow            nothing

Fail closed: if the detector raises or takes longer than `detection_timeout_ms`, the request is
treated as PRIVATE (or refused, `on_detector_failure: refuse`); it is never forwarded unscanned.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..config.models import PrivacyConfig
from .entities import Entity
from .levels import PrivacyLevel
from .restore import Restorer
from .transform import Pseudonymizer, iter_texts, map_texts

log = logging.getLogger("tiergate.privacy")

DEFAULT_ACTIONS: dict[str, str] = {
    "SECRET": "route_local",
    **{
        t: "route_sovereign"
        for t in (
            "AZ_FIN", "AZ_VOEN", "AZ_ID_CARD", "PASSPORT", "US_SSN", "TR_TCKN", "RU_INN",
            "RU_SNILS", "CREDIT_CARD", "IBAN",
        )
    },
    **{t: "pseudonymize" for t in ("EMAIL", "PHONE", "PERSON", "ADDRESS", "IP_ADDRESS", "DATE_OF_BIRTH")},
}
_RAISES = {"route_local": PrivacyLevel.PRIVATE, "route_sovereign": PrivacyLevel.SENSITIVE}
# Texts up to this size are scanned on the event loop (about a millisecond); larger ones in a
# worker thread, bounded by the detection timeout, so one big prompt does not stall the others.
_INLINE_CHARS = 8_000
# Recently scanned texts (system prompts, conversation history resent every turn) are not
# scanned again: a bounded map from the text to its spans, oldest dropped first.
_CACHE_ENTRIES = 4096
_CACHE_MAX_CHARS = 64_000


class DetectorFailure(Exception):
    """Detection did not complete: the request must not leave the premises unscanned."""


@dataclass(slots=True)
class Inspection:
    """What detection found in one request (types, positions and counts; values only in memory
    for the transform, never in this object's `to_dict`)."""

    entities: dict[str, list[Entity]] = field(default_factory=dict)  # text -> spans
    level: PrivacyLevel = PrivacyLevel.PUBLIC
    reason: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    transforms: frozenset[str] = frozenset()  # {"pseudonymize", "redact"} present
    blocked: tuple[str, ...] = ()
    failed: str | None = None

    def to_dict(self, actions: dict[str, str]) -> dict[str, Any]:
        found = []
        for index, spans in enumerate(self.entities.values()):
            found.extend(
                {"text": index, "type": e.type, "start": e.start, "end": e.end, "score": round(e.score, 3),
                 "action": actions.get(e.type, "allow"), "why": e.reason}
                for e in spans
            )
        return {"counts": self.counts, "entities": found, "detector_failed": self.failed}


class PrivacyEngine:
    """Detection + policy for a gateway. The detector is built lazily (first request)."""

    def __init__(self, cfg: PrivacyConfig, detector: Any = None) -> None:
        self.cfg = cfg
        self.actions: dict[str, str] = {**DEFAULT_ACTIONS, **{c.name: c.action for c in cfg.custom_detectors}}
        self.actions.update(cfg.actions)
        self._detector = detector
        self._timeout = cfg.detection_timeout_ms / 1000.0
        self._seen: dict[str, list[Entity]] = {}

    @property
    def detector(self) -> Any:
        if self._detector is None:
            from .detector import CustomRecognizer, Detector

            custom = [
                CustomRecognizer(
                    c.name, c.pattern, validator=c.validator, context=c.context, score=c.score,
                    context_required=c.context_required,
                )
                for c in self.cfg.custom_detectors
            ]
            self._detector = Detector(custom=custom, min_score=self.cfg.min_score)
        return self._detector

    def action(self, kind: str) -> str:
        return self.actions.get(kind, "allow")

    # ------------------------------------------------------------------ inspection
    async def inspect(self, body: dict[str, Any]) -> Inspection:
        """Scan the request's texts; never raises for a detector problem (fails closed)."""
        if not self.cfg.detection:
            return Inspection(reason="detection disabled (privacy.detection: false)")
        texts = list(dict.fromkeys(iter_texts(body)))  # each distinct text once
        try:
            if sum(len(t) for t in texts) <= _INLINE_CHARS:
                found = self._scan(texts)
            else:
                found = await asyncio.wait_for(asyncio.to_thread(self._scan, texts), self._timeout)
        except asyncio.TimeoutError:
            return self._failed(f"detection took longer than {self.cfg.detection_timeout_ms:g} ms")
        except Exception as exc:  # noqa: BLE001 - any detector fault fails closed
            log.error("privacy detector failed (%s); failing closed", type(exc).__name__)
            return self._failed(f"detector error ({type(exc).__name__})")
        return self._judge(found)

    def _scan(self, texts: list[str]) -> dict[str, list[Entity]]:
        scan = self.detector.scan
        seen = self._seen
        found: dict[str, list[Entity]] = {}
        for t in texts:
            spans = seen.get(t)
            if spans is None:
                spans = scan(t)
                if len(t) <= _CACHE_MAX_CHARS:
                    if len(seen) >= _CACHE_ENTRIES:
                        del seen[next(iter(seen))]
                    seen[t] = spans
            if spans:
                found[t] = spans
        return found

    def warm_up(self) -> None:
        """Build the detector now (its name lists take tens of milliseconds to load), so the
        first request does not pay for it."""
        if self.cfg.detection:
            try:
                self.detector.scan("warm-up")
            except Exception as exc:  # noqa: BLE001 - requests will fail closed; say so now
                log.error("privacy detector failed to start (%s); requests will fail closed", type(exc).__name__)

    def _failed(self, why: str) -> Inspection:
        return Inspection(
            level=PrivacyLevel.PRIVATE,
            reason=f"fail closed: {why}; treated as PRIVATE",
            failed=why,
        )

    def _judge(self, found: dict[str, list[Entity]]) -> Inspection:
        counts: dict[str, int] = {}
        for spans in found.values():
            for e in spans:
                counts[e.type] = counts.get(e.type, 0) + 1
        level, reason = PrivacyLevel.PUBLIC, ""
        transforms: set[str] = set()
        blocked: list[str] = []
        for kind in sorted(counts):
            action = self.action(kind)
            raised = _RAISES.get(action)
            if raised is not None and raised > level:
                level, reason = raised, f"detected {kind} ({action})"
            elif action in ("pseudonymize", "redact"):
                transforms.add(action)
            elif action == "block":
                blocked.append(kind)
        return Inspection(found, level, reason, counts, frozenset(transforms), tuple(blocked))

    # ------------------------------------------------------------------ transform
    def applies_to(self, location: str, inspection: Inspection) -> bool:
        """Whether a deployment at `location` gets the transformed text."""
        return bool(inspection.transforms) and location in self.cfg.transform_locations

    def transform(self, body: dict[str, Any], inspection: Inspection) -> tuple[dict[str, Any], Restorer, dict[str, int]]:
        """The body with values pseudonymised/redacted, the restorer of its placeholders, and
        how many values each action rewrote."""
        pseudo = Pseudonymizer(lambda t: inspection.entities.get(t, []), self.action)
        out = map_texts(body, pseudo)
        return out, Restorer(pseudo.mapping), pseudo.rewritten


def json_escape(value: str) -> str:
    """A value as it must appear inside a JSON string (tool-call arguments)."""
    return orjson.dumps(value).decode()[1:-1]
