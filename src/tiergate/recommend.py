"""`tiergate recommend`: the ALEM decision tree (seed 000) as functions.

    Is data sovereignty MANDATORY?
    ├── YES → Is air-gap required?
    │         ├── YES → Tier IV (On-Prem)
    │         └── NO  → Tier III (AzInTelecom)
    └── NO  → Is complex reasoning needed?
              ├── YES → Is budget > $100/mo?
              │         ├── YES → Tier II (Gemini)
              │         └── NO  → Tier I (Groq)
              └── NO  → Tier I (Groq) — fastest & cheapest

`recommend(...)` answers from arguments; `ask_interactively(console, prompt_fn)` asks only the
questions on the path (for the CLI); `render_recommendation(rec, console)` prints one. Each
`Recommendation` has the answered questions (`reason`), the seed's `YONCA_*` lines
(`env_snippet`) and an equivalent `tiergate.yaml` snippet (`yaml_snippet`, which `load_settings`
accepts as it is).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.text import Text

from .config.presets import ALEM_TIERS

BUDGET_THRESHOLD_USD = 100.0

Q_SOVEREIGNTY = "Is data sovereignty MANDATORY (data must stay in the country or on your premises)?"
Q_AIR_GAP = "Is an air-gap required (no internet connection at all)?"
Q_REASONING = "Is complex reasoning needed (multi-step analysis, multimodal)?"
Q_BUDGET = "What is the monthly budget in USD?"


@dataclass(frozen=True)
class Recommendation:
    tier: str  # ALEM tier label: "I" | "II" | "III" | "IV"
    name: str  # e.g. "Groq LPU"
    reason: list[str] = field(default_factory=list)  # the answered questions, in order
    env_snippet: str = ""  # the seed's YONCA_* lines
    yaml_snippet: str = ""  # a tiergate.yaml snippet: deployment + model group
    preset: str = ""  # the preset the snippet uses
    location: str = ""  # local | sovereign | cloud
    residency: str = ""
    note: str = ""  # one-line why

    @property
    def title(self) -> str:
        icon = ALEM_TIERS[self.tier]["icon"]
        return f"{icon} Tier {self.tier}: {self.name} — {ALEM_TIERS[self.tier]['tagline']}"


_ENV = {
    "I": (
        "YONCA_LLM_PROVIDER=groq\n"
        "YONCA_GROQ_API_KEY=gsk_...\n"
        "YONCA_GROQ_MODEL=meta-llama/llama-4-maverick-17b-128e-instruct\n"
    ),
    "II": (
        "YONCA_LLM_PROVIDER=gemini\n"
        "YONCA_GEMINI_API_KEY=AI...\n"
        "YONCA_GEMINI_MODEL=gemini-2.0-flash-exp\n"
    ),
    "III": (
        "YONCA_LLM_PROVIDER=azintelecom\n"
        "YONCA_AZINTELECOM_BASE_URL=https://llm.gov.az/v1\n"
        "YONCA_AZINTELECOM_API_KEY=...\n"
        "YONCA_AZINTELECOM_MODEL=llama-3.3-70b\n"
    ),
    "IV": (
        "YONCA_LLM_PROVIDER=ollama\n"
        "YONCA_OLLAMA_BASE_URL=http://localhost:11434\n"
        "YONCA_OLLAMA_MODEL=atllama:7b\n"
    ),
}

_YAML = {
    "I": (
        "deployments:\n"
        "  - preset: groq-maverick            # ALEM Tier I: cloud, US\n"
        "    api_key: env:GROQ_API_KEY\n"
        "model_groups:\n"
        "  assistant: [groq-maverick]\n"
    ),
    "II": (
        "deployments:\n"
        "  - preset: gemini-2.0-flash         # ALEM Tier II: cloud, EU\n"
        "    api_key: env:GEMINI_API_KEY\n"
        "model_groups:\n"
        "  assistant: [gemini-2.0-flash]\n"
    ),
    "III": (
        "privacy:\n"
        "  default_level: SENSITIVE  # only PUBLIC requests may leave the country\n"
        "deployments:\n"
        "  - preset: azintelecom-llama-3.3-70b  # ALEM Tier III: sovereign, AZ\n"
        "    base_url: https://llm.gov.az/v1\n"
        "    api_key: env:AZINTELECOM_API_KEY\n"
        "model_groups:\n"
        "  assistant: [azintelecom-llama-3.3-70b]\n"
    ),
    "IV": (
        "privacy:\n"
        "  default_level: PRIVATE    # nothing leaves the premises\n"
        "deployments:\n"
        "  - preset: ollama-atllama-7b        # ALEM Tier IV: local, on-prem\n"
        "    base_url: http://localhost:11434\n"
        "model_groups:\n"
        "  assistant: [ollama-atllama-7b]\n"
    ),
}

_PRESET = {
    "I": "groq-maverick",
    "II": "gemini-2.0-flash",
    "III": "azintelecom-llama-3.3-70b",
    "IV": "ollama-atllama-7b",
}


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _make(tier: str, path: list[str], note: str) -> Recommendation:
    t = ALEM_TIERS[tier]
    return Recommendation(
        tier=tier,
        name=t["tier_name"],
        reason=path,
        env_snippet=_ENV[tier],
        yaml_snippet=_YAML[tier],
        preset=_PRESET[tier],
        location=t["location"],
        residency=t["residency"],
        note=note,
    )


def recommend(
    *, sovereignty: bool, air_gap: bool, complex_reasoning: bool, budget_per_month: float
) -> Recommendation:
    """Walk the ALEM decision tree. Only the questions on the path are recorded in `reason`."""
    path = [f"{Q_SOVEREIGNTY} {_yes(sovereignty)}"]
    if sovereignty:
        path.append(f"{Q_AIR_GAP} {_yes(air_gap)}")
        if air_gap:
            return _make("IV", path, "air-gapped: only hardware on your premises qualifies")
        return _make("III", path, "sovereign: data stays in Azerbaijan (Baku DC)")
    path.append(f"{Q_REASONING} {_yes(complex_reasoning)}")
    if complex_reasoning:
        over = budget_per_month > BUDGET_THRESHOLD_USD
        path.append(f"Is budget > ${BUDGET_THRESHOLD_USD:.0f}/mo? {_yes(over)} (${budget_per_month:g}/mo)")
        if over:
            return _make("II", path, "best-in-class reasoning within budget")
        return _make("I", path, "budget up to $100/mo: open models on Groq")
    return _make("I", path, "fastest & cheapest")


# ---------------------------------------------------------------------------------------------
# Interactive
# ---------------------------------------------------------------------------------------------

_YES = {"y", "yes", "true", "1", "ha", "bəli", "beli"}
_NO = {"n", "no", "false", "0", "yox", "xeyr"}
_MAX_ATTEMPTS = 5


def parse_yes_no(answer: str) -> bool:
    a = answer.strip().lower()
    if a in _YES:
        return True
    if a in _NO:
        return False
    raise ValueError("please answer yes or no")


def parse_budget(answer: str) -> float:
    """`150`, `$150`, `150/mo`, `1,500 USD` -> 150.0 / 1500.0."""
    a = answer.strip().lower().replace(",", "").replace("$", "").replace("usd", "")
    a = re.sub(r"\s*(/\s*(mo|month)|per month|a month)\s*$", "", a).strip()
    try:
        value = float(a)
    except ValueError:
        raise ValueError("please give an amount in USD per month, e.g. 150") from None
    if value < 0 or value != value or value == float("inf"):
        raise ValueError("please give an amount of 0 or more")
    return value


def ask_interactively(
    console: Console, prompt_fn: Callable[[str], str] | None = None
) -> Recommendation:
    """Ask the ALEM questions (only those on the path) and return the recommendation.

    Nothing but re-ask hints is printed; show the result with `render_recommendation`.

    `prompt_fn(question) -> answer` reads one answer (default: `rich.prompt.Prompt.ask` on
    `console`; from Typer e.g. `lambda q: typer.prompt(q)`). A bad answer is explained and
    asked again (at most 5 times, then `ValueError`).
    """
    from rich.prompt import Prompt

    ask: Callable[[str], str] = prompt_fn or (lambda q: Prompt.ask(q, console=console))

    def question(text: str, parse: Callable[[str], object], hint: str) -> object:
        for _ in range(_MAX_ATTEMPTS):
            try:
                return parse(ask(f"{text} {hint}"))
            except ValueError as exc:
                console.print(Text(f"  {exc}", style="yellow"))
        raise ValueError(f"no valid answer to: {text}")

    yn = "[y/n]"
    sovereignty = bool(question(Q_SOVEREIGNTY, parse_yes_no, yn))
    air_gap = complex_reasoning = False
    budget = 0.0
    if sovereignty:
        air_gap = bool(question(Q_AIR_GAP, parse_yes_no, yn))
    else:
        complex_reasoning = bool(question(Q_REASONING, parse_yes_no, yn))
        if complex_reasoning:
            budget = float(question(Q_BUDGET, parse_budget, "(USD/month)"))  # type: ignore[arg-type]
    return recommend(
        sovereignty=sovereignty, air_gap=air_gap, complex_reasoning=complex_reasoning, budget_per_month=budget
    )


def render_recommendation(rec: Recommendation, console: Console) -> None:
    """Print a recommendation: the path taken, the tier, the env lines and the YAML snippet."""

    def say(text: str = "", style: str | None = None) -> None:
        console.print(Text(text, style=style or ""), markup=False, highlight=False, emoji=False, soft_wrap=True)

    say()
    for step in rec.reason:
        say(f"  • {step}")
    say()
    say(f"  → {rec.title}", style="bold")
    t = ALEM_TIERS[rec.tier]
    say(f"    {rec.note}; location {rec.location}, residency {t['residency_label']}, cost {t['cost_range']}")
    say()
    say("  Environment (ALEM conventions):", style="bold")
    for line in rec.env_snippet.splitlines():
        say(f"    {line}")
    say()
    say("  or tiergate.yaml:", style="bold")
    for line in rec.yaml_snippet.splitlines():
        say(f"    {line}")
    say()
    say("  See docs/configuration.md for all options.")
