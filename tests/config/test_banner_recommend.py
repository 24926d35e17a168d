"""The ALEM banner and the ALEM decision tree."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from tiergate.banner import banner_text, render_banner
from tiergate.config import load_settings
from tiergate.providers import Health
from tiergate.recommend import (
    ask_interactively,
    parse_budget,
    recommend,
    render_recommendation,
)


def test_simulated_banner_says_so_and_how_to_fix() -> None:
    s = load_settings(None, {})
    text = banner_text(
        s,
        reachability={
            "sim-local": Health(True, 12.4, ["llama3.2:3b", "qwen2.5:7b"]),
            "sim-cloud": Health(False, error="cannot connect to upstream"),
        },
        listen_url="http://127.0.0.1:8100",
        auth="no master key: bound to loopback only",
    )
    assert text.count("SIMULATED upstream (no real provider configured)") == 3
    assert "export GROQ_API_KEY=..." in text and "docs/configuration.md" in text
    assert "Status: reachable, 12 ms" in text and "Status: UNREACHABLE (cannot connect to upstream)" in text
    assert "Endpoint reports: llama3.2:3b, qwen2.5:7b" in text
    assert "Listening: http://127.0.0.1:8100" in text
    assert "Auth: no master key: bound to loopback only" in text
    assert "Config: simulated defaults (no deployment configured)" in text
    assert "Groq Cloud" not in text  # no real provider is claimed


def test_banner_for_plain_deployments_and_key_status() -> None:
    s = load_settings(None, {"OPENAI_API_KEY": "sk-real-secret"})
    text = banner_text(s, environ={"OPENAI_API_KEY": "sk-real-secret"})
    assert "openai-gpt-4o: OpenAI" in text and "Price: $2.50 in / $10.00 out per 1M tokens" in text
    assert "API key: env:OPENAI_API_KEY\n" in text and "sk-real-secret" not in text
    assert "API key: env:OPENAI_API_KEY (not set)" in banner_text(s, environ={})
    assert "Source: env:OPENAI_API_KEY (preset openai-gpt-4o)" in text
    assert "SIMULATED" not in text


def test_render_banner_to_console() -> None:
    buf = io.StringIO()
    render_banner(load_settings(None, {"YONCA_LLM_PROVIDER": "ollama"}), console=Console(file=buf, width=100))
    assert "Tier IV: ZekaLab Custom" in buf.getvalue()


LEAVES = [
    (dict(sovereignty=True, air_gap=True, complex_reasoning=False, budget_per_month=0), "IV", "ZekaLab Custom", 2),
    (dict(sovereignty=True, air_gap=False, complex_reasoning=True, budget_per_month=5000), "III", "AzInTelecom", 2),
    (dict(sovereignty=False, air_gap=False, complex_reasoning=True, budget_per_month=150), "II", "Google Gemini", 3),
    (dict(sovereignty=False, air_gap=False, complex_reasoning=True, budget_per_month=100), "I", "Groq LPU", 3),
    (dict(sovereignty=False, air_gap=True, complex_reasoning=False, budget_per_month=9999), "I", "Groq LPU", 2),
]


@pytest.mark.parametrize(("answers", "tier", "name", "steps"), LEAVES)
def test_recommend_leaves(answers: dict, tier: str, name: str, steps: int, tmp_path: Path) -> None:
    rec = recommend(**answers)
    assert (rec.tier, rec.name, len(rec.reason)) == (tier, name, steps)
    assert rec.reason[0].startswith("Is data sovereignty MANDATORY")
    assert "YONCA_LLM_PROVIDER=" in rec.env_snippet
    # the YAML snippet is a valid tiergate.yaml
    cfg = tmp_path / "rec.yaml"
    cfg.write_text(rec.yaml_snippet)
    s = load_settings(cfg, {})
    assert s.deployments[0].tier == tier and s.model_groups["assistant"] == (rec.preset,)
    # and so are the env lines, through the ALEM convention
    env = dict(line.split("=", 1) for line in rec.env_snippet.splitlines())
    (d,) = load_settings(None, env).deployments
    assert d.tier == tier and d.location == rec.location


def test_ask_interactively_only_asks_the_path() -> None:
    answers = iter(["maybe", "no", "yes", "lots", "$1,500/mo"])
    asked: list[str] = []

    def prompt(q: str) -> str:
        asked.append(q)
        return next(answers)

    buf = io.StringIO()
    rec = ask_interactively(Console(file=buf, width=120), prompt)
    assert rec.tier == "II"
    assert len(asked) == 5  # two re-asks after "maybe" and "lots"
    assert rec.reason[-1] == "Is budget > $100/mo? yes ($1500/mo)"
    assert "please answer yes or no" in buf.getvalue()
    render_recommendation(rec, Console(file=buf, width=120))
    out = buf.getvalue()
    assert "Tier II: Google Gemini" in out and "YONCA_LLM_PROVIDER=gemini" in out and "preset: gemini-2.0-flash" in out

    more = iter(["y", "y"])
    rec = ask_interactively(Console(file=io.StringIO()), lambda q: next(more))
    assert rec.tier == "IV"
    assert parse_budget("1,500 USD") == 1500.0 and parse_budget("$99/month") == 99.0
