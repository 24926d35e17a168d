"""The seeds' environment conventions, TIERGATE_* overrides and precedence."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from tiergate.banner import banner_text
from tiergate.config import SIMULATED_ORIGIN, ConfigError, load_settings

ALEM = {
    "groq": (
        {"YONCA_GROQ_API_KEY": "gsk_x", "YONCA_GROQ_MODEL": "meta-llama/llama-4-maverick-17b-128e-instruct"},
        dict(name="groq-maverick", tier="I", tier_name="Groq LPU", location="cloud", residency="US",
             latency_ms=200, throughput_tps=800, cost_range="$0–50/mo",
             provider="openai", base_url="https://api.groq.com/openai/v1", api_key="env:YONCA_GROQ_API_KEY",
             model="meta-llama/llama-4-maverick-17b-128e-instruct"),
        ["⚡  Tier I: Groq LPU — Rapid Prototyping", "Provider: Groq Cloud", "Latency: ~200ms (P95)",
         "Throughput: 800 tok/s", "Data Residency: US (Groq servers)", "Cost Range: $0–50/mo",
         "Models: Llama 4 Maverick 17B, Qwen 3 32B", "Best for: Hackathons, demos, MVPs, dev/test"],
    ),
    "gemini": (
        {"YONCA_GEMINI_API_KEY": "AIx", "YONCA_GEMINI_MODEL": "gemini-2.0-flash-exp"},
        dict(name="gemini-2.0-flash-exp", tier="II", tier_name="Google Gemini", location="cloud", residency="EU",
             latency_ms=400, throughput_tps=150, cost_range="$20–300/mo",
             provider="gemini", base_url="https://generativelanguage.googleapis.com/v1beta",
             api_key="env:YONCA_GEMINI_API_KEY", model="gemini-2.0-flash-exp", project=None),
        ["🧠  Tier II: Google Gemini — High Reasoning", "Latency: ~400ms (P95)", "Throughput: 150 tok/s",
         "Data Residency: EU (via Vertex AI region lock)", "Cost Range: $20–300/mo",
         "Models: Gemini 2.0 Flash, Gemini 1.5 Pro", "Best for: Complex reasoning, multimodal, production pilots"],
    ),
    "azintelecom": (
        {"YONCA_AZINTELECOM_BASE_URL": "https://llm.gov.az/v1", "YONCA_AZINTELECOM_API_KEY": "k",
         "YONCA_AZINTELECOM_MODEL": "llama-3.3-70b"},
        dict(name="azintelecom-llama-3.3-70b", tier="III", tier_name="AzInTelecom", location="sovereign",
             residency="AZ", latency_ms=600, throughput_tps=80, cost_range="$800–1,500/mo",
             provider="openai", base_url="https://llm.gov.az/v1", api_key="env:YONCA_AZINTELECOM_API_KEY",
             model="llama-3.3-70b"),
        ["Tier III: AzInTelecom", "Latency: ~600ms (P95)", "Throughput: 80 tok/s",
         "Data Residency: Azerbaijan 🇦🇿 (Baku DC)", "Cost Range: $800–1,500/mo",
         "Best for: Government, regulated industries, data sovereignty requirements"],
    ),
    "ollama": (
        {"YONCA_OLLAMA_BASE_URL": "http://localhost:11434", "YONCA_OLLAMA_MODEL": "atllama:7b"},
        dict(name="ollama-atllama-7b", tier="IV", tier_name="ZekaLab Custom", location="local",
             residency="on-prem", latency_ms=300, throughput_tps=250, cost_range="$6,500–12,000 one-time",
             provider="ollama", base_url="http://localhost:11434", api_key=None, model="atllama:7b"),
        ["🔒  Tier IV: ZekaLab Custom", "Latency: ~300ms (P95)", "Throughput: 250 tok/s",
         "Data Residency: Customer premises (air-gapped capable)", "Cost Range: $6,500–12,000 one-time",
         "Best for: Offline farms, military, banks, air-gapped networks"],
    ),
}


@pytest.mark.parametrize("provider", list(ALEM))
def test_alem_provider(provider: str) -> None:
    extra, expected, banner_lines = ALEM[provider]
    s = load_settings(None, {"YONCA_LLM_PROVIDER": provider, **extra})
    (d,) = s.deployments
    for key, value in expected.items():
        assert getattr(d, key) == value, key
    assert d.source == f"env:YONCA_LLM_PROVIDER={provider}"
    assert d.simulated is None
    assert s.model_groups["default"] == (d.name,)
    assert s.model_groups[d.name] == (d.name,) and s.model_groups[d.model] == (d.name,)
    assert s.origin == f"environment (ALEM: YONCA_LLM_PROVIDER={provider})"
    text = banner_text(s, environ=extra)
    for line in banner_lines:
        assert line in text, (line, text)
    assert f"Source: env:YONCA_LLM_PROVIDER={provider}" in text
    for value in extra.values():
        if "KEY" in value:
            assert value not in text


def test_alem_defaults_and_errors() -> None:
    s = load_settings(None, {"YONCA_LLM_PROVIDER": "Groq", "YONCA_GROQ_API_KEY": "k"})
    assert s.deployments[0].model == "meta-llama/llama-4-maverick-17b-128e-instruct"
    s = load_settings(None, {"YONCA_LLM_PROVIDER": "ollama"})
    assert s.deployments[0].base_url == "http://localhost:11434"
    s = load_settings(None, {"YONCA_LLM_PROVIDER": "groq", "YONCA_GROQ_API_KEY": "k", "YONCA_GROQ_MODEL": "qwen/qwen3-32b"})
    assert s.deployments[0].name == "groq-qwen3-32b" and s.deployments[0].tier == "I"

    def fails(env: dict[str, str]) -> list[str]:
        with pytest.raises(ConfigError) as info:
            load_settings(None, env)
        return info.value.problems

    assert fails({"YONCA_LLM_PROVIDER": "azure"}) == [
        "YONCA_LLM_PROVIDER: must be one of groq, gemini, azintelecom, ollama (got 'azure')"
    ]
    assert fails({"YONCA_LLM_PROVIDER": "azintelecom"})[0].startswith(
        "YONCA_AZINTELECOM_BASE_URL: required when YONCA_LLM_PROVIDER=azintelecom"
    )
    assert fails({"YONCA_LLM_PROVIDER": "groq"}) == ["YONCA_GROQ_API_KEY: required when YONCA_LLM_PROVIDER=groq"]
    assert fails({"YONCA_LLM_PROVIDER": "azintelecom", "YONCA_AZINTELECOM_BASE_URL": "llm.gov.az"}) == [
        "YONCA_AZINTELECOM_BASE_URL: must start with http:// or https://"
    ]


def test_genai_spine_fallback_chain_and_store() -> None:
    env = {
        "GENAI_DEFAULT_PROVIDER": "ollama",
        "GENAI_OLLAMA_URL": "http://ollama:11434",
        "GENAI_OPENAI_API_KEY": "sk-x",
        "GENAI_ANTHROPIC_API_KEY": "sk-ant-x",
        "GENAI_FALLBACK_CHAIN": "ollama,openai,anthropic",
        "GENAI_DATABASE_URL": "postgresql://user:pass@db:5432/genai",
        "GENAI_REDIS_URL": "redis://redis:6379",
        "GENAI_BUDGET_DAILY": "10.00",
    }
    s = load_settings(None, env)
    assert s.model_groups["default"] == (
        "ollama-llama3.2-3b", "openai-gpt-4o", "openai-gpt-4o-mini", "claude-3-5-sonnet", "claude-3-haiku",
    )
    assert s.store.url == "postgresql://user:pass@db:5432/genai"
    assert s.redis.url == "redis://redis:6379" and s.budgets.daily_usd == Decimal("10.00")
    ollama = s.deployment("ollama-llama3.2-3b")
    assert ollama is not None and ollama.base_url == "http://ollama:11434" and ollama.location == "local"
    assert ollama.provider == "ollama"
    assert ollama.source == "env:GENAI_OLLAMA_URL (preset ollama-llama3.2-3b)"
    gpt = s.deployment("openai-gpt-4o")
    assert gpt is not None and gpt.api_key == "env:GENAI_OPENAI_API_KEY"
    assert gpt.source == "env:GENAI_OPENAI_API_KEY (preset openai-gpt-4o)"
    claude = s.deployment("claude-3-5-sonnet")
    assert claude is not None and claude.base_url == "https://api.anthropic.com" and claude.provider == "anthropic"
    assert s.model_groups["gpt-4o"] == ("openai-gpt-4o",)

    # chain order is respected even when it is not local-first
    s = load_settings(None, {**env, "GENAI_FALLBACK_CHAIN": "anthropic,ollama", "GENAI_DEFAULT_PROVIDER": "anthropic"})
    assert s.model_groups["default"] == ("claude-3-5-sonnet", "claude-3-haiku", "ollama-llama3.2-3b")
    # TIERGATE_DATABASE_URL beats GENAI_DATABASE_URL, TIERGATE_REDIS_URL beats GENAI_REDIS_URL
    s = load_settings(None, {**env, "TIERGATE_DATABASE_URL": "sqlite:///x.db", "TIERGATE_REDIS_URL": "redis://r2:1/0"})
    assert s.store.url == "sqlite:///x.db" and s.redis.url == "redis://r2:1/0"


def test_seed_002_budget_variables() -> None:
    env = {"LLM_MONTHLY_BUDGET": "1000.0", "COST_ALERT_THRESHOLD": "0.8", "EMERGENCY_LOCAL_ONLY": "false"}
    s = load_settings(None, env)
    assert s.budgets.monthly_usd == Decimal("1000.0") and s.budgets.alert_threshold == 0.8
    assert s.budgets.emergency_local_only is False
    s = load_settings(None, {**env, "EMERGENCY_LOCAL_ONLY": "true", "TIERGATE_BUDGET_MONTHLY_USD": "50"})
    assert s.budgets.emergency_local_only is True and s.budgets.monthly_usd == Decimal("50")
    with pytest.raises(ConfigError) as info:
        load_settings(None, {"COST_ALERT_THRESHOLD": "80%"})
    assert any("COST_ALERT_THRESHOLD" in p for p in info.value.problems), info.value.problems


def test_genai_errors() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, {"GENAI_FALLBACK_CHAIN": "ollama,openai,azure", "GENAI_DEFAULT_PROVIDER": "nope"})
    valid = "ollama, groq, gemini, deepseek, openai, anthropic, bedrock"
    assert info.value.problems == [
        f"GENAI_DEFAULT_PROVIDER: must be one of {valid} (got 'nope')",
        f"GENAI_FALLBACK_CHAIN: unknown provider 'azure' (valid: {valid})",
        "GENAI_FALLBACK_CHAIN: names openai, but no API key is set (GENAI_OPENAI_API_KEY or OPENAI_API_KEY)",
    ]
    # the conventional key satisfies a GENAI chain entry
    s = load_settings(None, {"GENAI_FALLBACK_CHAIN": "openai", "OPENAI_API_KEY": "k"})
    assert s.deployments[0].api_key == "env:OPENAI_API_KEY"


def test_conventional_variables() -> None:
    env = {
        "OPENAI_API_KEY": "sk-x",
        "ANTHROPIC_API_KEY": "sk-ant",
        "GROQ_API_KEY": "gsk",
        "DEEPSEEK_API_KEY": "ds",
        "GOOGLE_API_KEY": "AIza",
        "OLLAMA_HOST": "localhost:11434",
        "DEFAULT_PRIVACY_LEVEL": "CRITICAL",
    }
    s = load_settings(None, env)
    names = [d.name for d in s.deployments]
    assert names == [
        "ollama-llama3.2-3b", "groq-maverick", "groq-qwen3-32b", "gemini-2.0-flash", "gemini-1.5-pro",
        "deepseek-chat", "deepseek-coder", "openai-gpt-4o", "openai-gpt-4o-mini", "claude-3-5-sonnet", "claude-3-haiku",
    ]
    assert s.model_groups["default"] == tuple(names)  # local first, then cloud
    assert s.model_groups["gpt-4o"] == ("openai-gpt-4o",)
    assert s.model_groups["openai-gpt-4o"] == ("openai-gpt-4o",)
    assert s.deployment("ollama-llama3.2-3b").base_url == "http://localhost:11434"  # type: ignore[union-attr]
    assert s.deployment("gemini-2.0-flash").api_key == "env:GOOGLE_API_KEY"  # type: ignore[union-attr]
    gpt = s.deployment("openai-gpt-4o")
    assert gpt is not None and gpt.source == "env:OPENAI_API_KEY (preset openai-gpt-4o)"
    assert gpt.price.input == Decimal("2.50")
    assert s.privacy.default_level == "PRIVATE"  # CRITICAL is an alias, stored canonically
    assert s.origin.startswith("environment (provider variables: OLLAMA_HOST, GROQ_API_KEY")


def test_ollama_host_forms() -> None:
    for host, url in [
        ("localhost:11434", "http://localhost:11434"),
        ("localhost", "http://localhost:11434"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("[::]:11434", "http://127.0.0.1:11434"),
        ("http://gpu-box:8080", "http://gpu-box:8080"),
        ("http://gpu-box:11434/v1/", "http://gpu-box:11434"),  # Ollama's OpenAI URL pasted
        ("https://ollama.lan/api", "https://ollama.lan"),  # API prefix pasted; https: port 443 as in Ollama
        (":8081", "http://127.0.0.1:8081"),
    ]:
        s = load_settings(None, {"OLLAMA_HOST": host})
        assert s.deployments[0].base_url == url, host
    s = load_settings(None, {"OLLAMA_BASE_URL": "http://box:11434", "OLLAMA_DEFAULT_MODEL": "qwen2.5:7b"})
    assert s.deployments[0].name == "ollama-qwen2.5-7b" and s.deployments[0].base_url == "http://box:11434"
    assert s.deployments[0].provider == "ollama" and s.deployments[0].source == "env:OLLAMA_BASE_URL (preset ollama-qwen2.5-7b)"


def test_conventions_are_not_mixed() -> None:
    """An ALEM (or GenAI) setup does not pick up an unrelated OPENAI_API_KEY from the shell."""
    s = load_settings(None, {"YONCA_LLM_PROVIDER": "ollama", "OPENAI_API_KEY": "sk"})
    assert [d.name for d in s.deployments] == ["ollama-atllama-7b"]
    s = load_settings(None, {"GENAI_DEFAULT_PROVIDER": "ollama", "OPENAI_API_KEY": "sk"})
    assert [d.name for d in s.deployments] == ["ollama-llama3.2-3b"]


def test_file_with_deployments_overrides_environment(write: Callable[..., Path]) -> None:
    p = write("deployments:\n  - {name: mine, base_url: 'http://h:1/v1', model: m, location: local}\n")
    s = load_settings(p, {"OPENAI_API_KEY": "sk", "YONCA_LLM_PROVIDER": "bogus"})
    assert [d.name for d in s.deployments] == ["mine"]
    assert s.deployments[0].source == f"{p}:deployments[0]"
    assert s.deployments[0].residency == "on-prem"  # default for local
    assert s.model_groups == {}
    assert s.origin == str(p)


def test_file_without_deployments_uses_environment_and_adds_groups(write: Callable[..., Path]) -> None:
    p = write("server: {port: 9000}\nmodel_groups:\n  assistant: [ollama-llama3.2-3b, openai-gpt-4o-mini]\n")
    s = load_settings(p, {"OPENAI_API_KEY": "sk", "OLLAMA_HOST": "localhost"})
    assert s.server.port == 9000
    assert s.model_groups["assistant"] == ("ollama-llama3.2-3b", "openai-gpt-4o-mini")
    assert "default" in s.model_groups
    assert s.origin == f"{p} + environment (provider variables: OLLAMA_HOST, OPENAI_API_KEY)"


def test_tiergate_overrides_beat_file_and_file_beats_generic(write: Callable[..., Path]) -> None:
    p = write(
        "server: {host: 0.0.0.0, port: 9000, max_body_mb: 5}\nstore: {url: 'sqlite:///file.db'}\n"
        "privacy: {default_level: sensitive}\n"
        "deployments:\n  - {name: a, base_url: 'http://h:1/v1', model: m, location: local}\n",
        "custom.yaml",
    )
    generic = {"GENAI_DATABASE_URL": "sqlite:///genai.db", "DEFAULT_PRIVACY_LEVEL": "PUBLIC"}
    s = load_settings(p, generic)
    assert (s.server.host, s.server.port, s.store.url, s.privacy.default_level) == (
        "0.0.0.0", 9000, "sqlite:///file.db", "SENSITIVE",
    )
    s = load_settings(
        p,
        {
            **generic,
            "TIERGATE_HOST": "127.0.0.2",
            "TIERGATE_PORT": "8200",
            "TIERGATE_MAX_BODY_MB": "2.5",
            "TIERGATE_WORKERS": "4",
            "TIERGATE_DATABASE_URL": "postgresql+asyncpg://u@db/t",
            "TIERGATE_DEFAULT_PRIVACY": "enhanced",
        },
    )
    assert (s.server.host, s.server.port, s.server.max_body_mb, s.server.workers) == ("127.0.0.2", 8200, 2.5, 4)
    assert s.store.url == "postgresql+asyncpg://u@db/t" and s.privacy.default_level == "SENSITIVE"
    # generic variables apply when the file says nothing
    s = load_settings(None, {**generic, "DEFAULT_PRIVACY_LEVEL": "high"})
    assert s.store.url == "sqlite:///genai.db" and s.privacy.default_level == "PRIVATE"


def test_config_path_discovery(write: Callable[..., Path], tmp_path: Path) -> None:
    write("deployments:\n  - {name: here, base_url: 'http://h:1/v1', model: m, location: local}\n")
    s = load_settings(None, {})
    assert [d.name for d in s.deployments] == ["here"] and s.origin == "tiergate.yaml"
    other = write("deployments:\n  - {name: there, base_url: 'http://h:1/v1', model: m, location: local}\n", "o.yaml")
    s = load_settings(None, {"TIERGATE_CONFIG": str(other)})
    assert [d.name for d in s.deployments] == ["there"]


def test_simulated_default_only_when_nothing_configured(write: Callable[..., Path]) -> None:
    s = load_settings(None, {})
    assert s.simulated and s.origin == SIMULATED_ORIGIN
    by_name = {d.name: d for d in s.deployments}
    assert [(d.location, d.residency, d.tier, d.simulated, d.base_url, d.source) for d in by_name.values()] == [
        ("local", "on-prem", "IV", "local", "", "simulated default"),
        ("sovereign", "AZ", "III", "sovereign", "", "simulated default"),
        ("cloud", "US", "I", "cloud", "", "simulated default"),
    ]
    assert by_name["sim-cloud"].price.input == Decimal("0.15") and by_name["sim-cloud"].price.output == Decimal("0.60")
    assert s.model_groups["assistant"] == s.model_groups["default"] == ("sim-local", "sim-sovereign", "sim-cloud")
    assert s.model_groups["sim-local"] == ("sim-local",)

    # a file without deployments (server settings only) still gets the simulated defaults
    p = write("server: {port: 9001}\nmodel_groups: {fast: [sim-cloud]}\n", "custom.yaml")
    s = load_settings(p, {})
    assert s.simulated and s.server.port == 9001 and s.model_groups["fast"] == ("sim-cloud",)

    # anything configured: no simulated deployment
    assert not load_settings(None, {"OLLAMA_HOST": "localhost"}).simulated

    with pytest.raises(ConfigError) as info:
        load_settings(None, {}, allow_simulated_default=False)
    assert info.value.problems[0].startswith("configuration: no deployment configured")


def test_bad_ollama_address_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, {"OLLAMA_HOST": "box:abc"})
    assert info.value.problems == ["OLLAMA_HOST: not a valid Ollama address (got 'box:abc')"]
