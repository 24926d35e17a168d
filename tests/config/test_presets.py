"""Presets are valid deployments and carry the seeds' figures."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from tiergate.config import ConfigError, Deployment, load_settings
from tiergate.config.presets import ALEM_TIERS, PRESETS, PROVIDER_PRESETS


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_a_valid_deployment(name: str) -> None:
    fields = {"base_url": "https://example.test/v1", **{k: v for k, v in PRESETS[name].items() if v != ""}}
    d = Deployment.model_validate({"name": name, **fields})
    assert isinstance(d.price.input, Decimal) and isinstance(PRESETS[name]["price"]["input"], Decimal)
    assert d.latency_ms and d.throughput_tps and 0 < d.quality <= 1
    if d.tier:
        assert d.location == ALEM_TIERS[d.tier]["location"]
    if d.location == "local":
        assert d.residency == "on-prem" and d.price.input == d.price.output == 0


def test_seed_prices_per_million() -> None:
    def price(name: str) -> tuple[Decimal, Decimal]:
        p = PRESETS[name]["price"]
        return p["input"], p["output"]

    assert price("openai-gpt-4o")[0] == Decimal("2.50")  # seed 002: $0.0025 / 1K
    assert price("gemini-1.5-pro")[0] == Decimal("1.25")
    assert price("gemini-1.5-flash")[0] == Decimal("0.35")
    assert price("deepseek-chat")[0] == Decimal("0.14")
    assert price("openai-gpt-3.5-turbo")[0] == Decimal("0.50")
    assert price("claude-3-5-sonnet") == (Decimal("3.00"), Decimal("15.00"))  # seed 004
    assert price("claude-3-haiku") == (Decimal("0.80"), Decimal("2.40"))  # seed 004
    assert PRESETS["groq-maverick"]["model"] == "meta-llama/llama-4-maverick-17b-128e-instruct"
    assert PRESETS["groq-qwen3-32b"]["model"] == "qwen/qwen3-32b"
    assert PRESETS["azintelecom-llama-3.3-70b"]["base_url"] == ""  # from the environment only
    for presets in PROVIDER_PRESETS.values():
        assert all(p in PRESETS for p in presets)


def test_preset_in_yaml_with_overrides(write: Callable[..., Path]) -> None:
    p = write(
        """\
deployments:
  - preset: groq-maverick
    api_key: env:GROQ_API_KEY
  - preset: openai-gpt-4o
    name: gpt4o-eu
    base_url: https://eu.example.test/v1
    residency: EU
    price: {input: 2.0}
  - preset: azintelecom-llama-3.3-70b
    base_url: https://llm.gov.az/v1
model_groups:
  assistant: [azintelecom-llama-3.3-70b, groq-maverick]
"""
    )
    s = load_settings(p, {})
    groq, gpt, az = s.deployments
    assert groq.name == "groq-maverick" and groq.tier == "I" and groq.base_url == "https://api.groq.com/openai/v1"
    assert gpt.name == "gpt4o-eu" and gpt.residency == "EU" and gpt.model == "gpt-4o"
    assert gpt.price.input == Decimal("2.0") and gpt.price.output == Decimal("10.00")  # deep merge
    assert az.location == "sovereign" and az.residency == "AZ" and az.tier == "III"


def test_preset_without_endpoint_needs_base_url(write: Callable[..., Path]) -> None:
    p = write("deployments:\n  - preset: azintelecom-llama-3.3-70b\n")
    with pytest.raises(ConfigError) as info:
        load_settings(p, {})
    assert info.value.problems == [
        f"{p}: deployments[0].base_url: required for provider openai "
        "(preset azintelecom-llama-3.3-70b has no default endpoint; e.g. https://llm.gov.az/v1)"
    ]


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_example_config_loads() -> None:
    s = load_settings(EXAMPLES / "tiergate.yaml", {})
    assert len(s.deployments) == 6 and not s.simulated
    assert s.privacy.default_level == "SENSITIVE"
    assert s.model_groups["assistant"] == ("office-llama", "azintelecom-llama70b", "groq-maverick")
    assert {d.location for d in s.deployments} == {"local", "sovereign", "cloud"}


def test_example_alem_env_loads() -> None:
    env = {}
    for line in (EXAMPLES / "alem.env").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    (d,) = load_settings(None, env).deployments
    assert d.name == "groq-maverick" and d.tier == "I"
