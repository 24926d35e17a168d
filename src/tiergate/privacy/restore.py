"""Putting pseudonymised values back into answers, whole or streamed.

A pseudonymised request carries placeholders such as `[PERSON_1]`; models echo them back, not
always verbatim: `[person_1]`, `PERSON_1`, `[Person 1]`, `<PERSON_1>`, `(EMAIL_2)`. Every such
form of a placeholder this request used is replaced by its original value; unknown ones stay.

Streamed answers arrive in pieces, and a placeholder may be split between two chunks
(`... [PERS` + `ON_1] ...`). `StreamRestorer` passes text through at once except for an
ambiguous tail (a suffix that could still become a placeholder), which it holds back until the
next piece decides it, or until the end of the stream.
"""

from __future__ import annotations

import re
from typing import Callable

_MAX_TAIL = 48  # longest placeholder form we hold back for (type names are short)


class Restorer:
    """Replaces the placeholders of one request's mapping (placeholder -> original value)."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping
        # "[PERSON_1]" -> ("PERSON", 1) -> value
        self._values: dict[tuple[str, int], str] = {}
        for placeholder, value in mapping.items():
            kind, _, num = placeholder.strip("[]").rpartition("_")
            self._values[(kind.upper(), int(num))] = value
        kinds = sorted({k for k, _ in self._values}, key=len, reverse=True)
        names = "|".join(re.escape(k) for k in kinds) or "(?!)"
        sep = r"[ _-]?"
        # Bracketed forms may use a space or nothing as separator; bare forms need _ or -.
        self._pattern = re.compile(
            rf"[\[<({{]\s*(?P<k1>{names}){sep}(?P<n1>\d+)\s*[\]>)}}]"
            rf"|(?<![A-Za-z0-9])(?P<k2>{names})[_-](?P<n2>\d+)(?![0-9])",
            re.IGNORECASE,
        )
        self._kinds_bytes = re.compile(names.encode() or b"(?!)", re.IGNORECASE)
        # A suffix that could still grow into one of those forms (held back while streaming).
        prefixes = sorted({k[:i] for k in kinds for i in range(1, len(k))}, key=len, reverse=True)
        partial = "|".join(re.escape(p) for p in prefixes) or "(?!)"
        self._tail = re.compile(
            rf"(?:[\[<({{]\s*(?:(?:{names})[ _-]?\d*\s*|(?:{partial}))?"
            rf"|(?<![A-Za-z0-9])(?:(?:{names})(?:[_-]\d*)?|(?:{partial})))\Z",
            re.IGNORECASE,
        )

    def mentioned_in(self, raw: bytes) -> bool:
        """Whether `raw` (an answer's bytes) may contain one of the placeholders (a cheap test
        on the type names, case-insensitive)."""
        return self._kinds_bytes.search(raw) is not None

    def restore(self, text: str, escape: Callable[[str], str] | None = None) -> str:
        """`text` with every known placeholder form replaced (`escape` adapts the value to its
        context, e.g. JSON string escaping inside tool-call arguments)."""
        if not self._values or not text:
            return text

        def sub(m: re.Match[str]) -> str:
            kind = (m.group("k1") or m.group("k2")).upper()
            value = self._values.get((kind, int(m.group("n1") or m.group("n2"))))
            if value is None:
                return m.group(0)
            return escape(value) if escape else value

        return self._pattern.sub(sub, text)

    def ambiguous_tail(self, text: str) -> int:
        """Where a suffix of `text` starts that could still grow into a placeholder (len(text)
        if none): it is held back until more text decides it."""
        if not self._values:
            return len(text)
        offset = max(0, len(text) - _MAX_TAIL)
        m = self._tail.search(text, offset)
        return m.start() if m is not None else len(text)


class StreamRestorer:
    """Restores one streamed text field (a choice's content or one tool call's arguments)."""

    __slots__ = ("_r", "_pending", "_escape")

    def __init__(self, restorer: Restorer, escape: Callable[[str], str] | None = None) -> None:
        self._r = restorer
        self._pending = ""
        self._escape = escape

    def feed(self, piece: str) -> str:
        """The restored text that can be released now."""
        text = self._pending + piece
        cut = self._r.ambiguous_tail(text)
        ready = self._r.restore(text[:cut], self._escape)
        self._pending = text[cut:]
        return ready

    def flush(self) -> str:
        """At the end of the field: the rest, restored as far as it goes."""
        text, self._pending = self._pending, ""
        return self._r.restore(text, self._escape)
