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
    d = Deployment.model_validate({"name": name, **PRESETS[name]})
    assert isinstance(d.price.input, Decimal) and isinstance(PRESETS[name]["price"]["input"], Decimal)
    assert d.latency_ms and 0 < d.quality <= 1 and d.residency
    if d.capabilities == ("embeddings",):
        assert d.throughput_tps is None and d.price.output == 0  # nothing is generated
    else:
        assert d.throughput_tps and "embeddings" not in d.capabilities
    if d.tier:
        assert d.location == ALEM_TIERS[d.tier]["location"]
    if d.location == "local":
        assert d.residency == "on-prem" and d.price.input == d.price.output == 0


# preset name prefix -> (wire format, default base URL) the native adapters expect
NATIVE = {
    "gemini-": ("gemini", "https://generativelanguage.googleapis.com/v1beta"),
    "claude-": ("anthropic", "https://api.anthropic.com"),
    "ollama-": ("ollama", "http://localhost:11434"),
    "bedrock-": ("bedrock", ""),  # https://bedrock-runtime.{region}.amazonaws.com, from region
    "groq-": ("openai", "https://api.groq.com/openai/v1"),
    "openai-": ("openai", "https://api.openai.com/v1"),
    "deepseek-": ("openai", "https://api.deepseek.com/v1"),
    "azintelecom-": ("openai", ""),  # sovereign endpoint: from the environment / file only
}


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_use_the_native_adapter_of_their_provider(name: str) -> None:
    (prefix,) = [p for p in NATIVE if name.startswith(p)]
    assert (PRESETS[name]["provider"], PRESETS[name]["base_url"]) == NATIVE[prefix]
    if prefix == "bedrock-":
        assert (PRESETS[name]["region"], PRESETS[name]["residency"], PRESETS[name]["location"]) == ("us-east-1", "US", "cloud")


def test_embedding_and_bedrock_presets() -> None:
    embedding = {n: PRESETS[n]["model"] for n in PRESETS if PRESETS[n]["capabilities"] == ("embeddings",)}
    assert embedding == {
        "gemini-text-embedding-004": "text-embedding-004",
        "ollama-nomic-embed-text": "nomic-embed-text",
        "openai-text-embedding-3-small": "text-embedding-3-small",
        "bedrock-titan-embed-text-v2": "amazon.titan-embed-text-v2:0",
    }
    bedrock = {n: PRESETS[n]["model"] for n in PRESETS if n.startswith("bedrock-")}
    assert bedrock == {
        "bedrock-claude-3-5-sonnet": "anthropic.claude-3-5-sonnet-20241022-v2:0",
        "bedrock-claude-3-sonnet": "anthropic.claude-3-sonnet-20240229-v1:0",  # seed 004
        "bedrock-claude-3-haiku": "anthropic.claude-3-haiku-20240307-v1:0",  # seed 004
        "bedrock-llama3-70b": "meta.llama3-70b-instruct-v1:0",
        "bedrock-titan-embed-text-v2": "amazon.titan-embed-text-v2:0",
    }


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
    assert price("bedrock-claude-3-sonnet") == (Decimal("3.00"), Decimal("15.00"))  # seed 004: $0.003 / $0.015 per 1K
    assert price("bedrock-claude-3-haiku") == (Decimal("0.80"), Decimal("2.40"))  # seed 004
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


PROVIDER_EXAMPLES = {
    "groq": {"openai"}, "gemini": {"gemini"}, "azintelecom": {"openai"}, "ollama": {"ollama", "openai"},
    "openai": {"openai"}, "deepseek": {"openai"}, "anthropic": {"anthropic"}, "bedrock": {"bedrock"},
    "vllm": {"openai"}, "offline": {"openai", "anthropic", "gemini", "ollama", "bedrock"},
}


@pytest.mark.parametrize("name", list(PROVIDER_EXAMPLES))
def test_provider_example_loads(name: str) -> None:
    s = load_settings(EXAMPLES / "providers" / f"{name}.yaml", {})
    assert {d.provider for d in s.deployments} == PROVIDER_EXAMPLES[name]
    assert all(d.api_key is None or d.api_key.startswith("env:") for d in s.deployments)  # no secret in a file
    assert all(set(members) <= {d.name for d in s.deployments} for members in s.model_groups.values())
    assert all(d.residency for d in s.deployments)


def test_provider_examples_are_all_tested() -> None:
    assert {p.stem for p in (EXAMPLES / "providers").glob("*.yaml")} == set(PROVIDER_EXAMPLES)
