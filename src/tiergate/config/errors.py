"""Configuration errors: every problem found, one line each, reported together."""

from __future__ import annotations

from collections.abc import Iterable


class ConfigError(Exception):
    """The configuration is invalid.

    `problems` lists every problem found (file or variable, key path, what is wrong), one line
    each; `str(error)` is those lines joined by newlines. Messages never contain secret values.
    """

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: list[str] = list(problems) or ["invalid configuration"]
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)
