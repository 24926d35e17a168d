"""Environment conventions for the native adapters: Bedrock, Gemini on Vertex AI, Ollama's
native settings, and how a cloud region decides the residency."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from tiergate.banner import banner_text
from tiergate.config import ConfigError, load_settings

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "AWS_SESSION_TOKEN": "tok-SECRET-1"}
VERTEX = {"GOOGLE_CLOUD_PROJECT": "alem-prod", "GOOGLE_CLOUD_LOCATION": "europe-west4"}
VERTEX_URL = "https://europe-west4-aiplatform.googleapis.com/v1/projects/alem-prod/locations/europe-west4/publishers/google"


def problems(env: dict[str, str], path: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path, env)
    return info.value.problems


# ---- Bedrock -----------------------------------------------------------------------------------


def test_bedrock_model_id_builds_a_native_deployment_without_reading_aws_secrets() -> None:
    env = {**AWS_ENV, "BEDROCK_MODEL_ID": "anthropic.claude-3-sonnet-20240229-v1:0", "AWS_REGION": "eu-central-1"}
    s = load_settings(None, env)
    (d,) = s.deployments
    assert (d.name, d.provider, d.model) == ("bedrock-claude-3-sonnet", "bedrock", "anthropic.claude-3-sonnet-20240229-v1:0")
    assert (d.region, d.residency, d.location, d.base_url) == ("eu-central-1", "EU", "cloud", "")
    assert d.api_key is None and d.aws_profile is None  # botocore's chain, at request time
    assert d.price.input == Decimal("3.00") and d.price.output == Decimal("15.00")  # seed 004
    assert d.source == "env:BEDROCK_MODEL_ID (preset bedrock-claude-3-sonnet)"
    assert s.model_groups["default"] == ("bedrock-claude-3-sonnet",)
    assert s.model_groups["anthropic.claude-3-sonnet-20240229-v1:0"] == ("bedrock-claude-3-sonnet",)
    assert s.origin == "environment (provider variables: BEDROCK_MODEL_ID)"
    shown = repr(s) + banner_text(s, environ=env)
    assert AWS_SECRET not in shown and "tok-SECRET-1" not in shown and "AKIAIOSFODNN7EXAMPLE" not in shown
    assert "(AWS default) [bedrock wire format]" in shown


@pytest.mark.parametrize(
    ("extra", "region", "residency"),
    [
        ({}, "us-east-1", "US"),  # nothing says: seed 004's region, stated in the preset
        ({"AWS_DEFAULT_REGION": "eu-west-3"}, "eu-west-3", "EU"),
        ({"AWS_DEFAULT_REGION": "eu-west-3", "AWS_REGION": "eu-west-2"}, "eu-west-2", "GB"),  # London: not EU
        ({"AWS_REGION": "eu-west-1", "BEDROCK_REGION": "ap-northeast-1"}, "ap-northeast-1", "JP"),
        ({"BEDROCK_REGION": "eu-central-2"}, "eu-central-2", "CH"),  # Zurich: not EU
        ({"BEDROCK_REGION": "mx-central-1"}, "mx-central-1", "mx-central-1"),  # unknown: shown, not guessed
    ],
)
def test_bedrock_region_decides_the_residency(extra: dict[str, str], region: str, residency: str) -> None:
    (d,) = load_settings(None, {"BEDROCK_MODEL_ID": "meta.llama3-70b-instruct-v1:0", **extra}).deployments
    assert (d.name, d.region, d.residency) == ("bedrock-llama3-70b", region, residency)


def test_bedrock_model_variants() -> None:
    def one(model: str) -> object:
        (d,) = load_settings(None, {"BEDROCK_MODEL_ID": model, "BEDROCK_REGION": "eu-central-1"}).deployments
        return d

    # a cross-region inference profile keeps the preset's data and the profile id
    d = one("eu.anthropic.claude-3-5-sonnet-20241022-v2:0")
    assert d.name == "bedrock-claude-3-5-sonnet" and d.model == "eu.anthropic.claude-3-5-sonnet-20241022-v2:0"  # type: ignore[attr-defined]
    assert d.residency == "EU" and d.price.output == Decimal("15.00")  # type: ignore[attr-defined]
    # a global profile may run anywhere: its residency says so
    assert one("global.anthropic.claude-3-5-sonnet-20241022-v2:0").residency == "global"  # type: ignore[attr-defined]
    # an unknown model gets a valid name and a chat preset's data; an unknown embed model an embedding one
    d = one("mistral.mistral-large-2402-v1:0")
    assert d.name == "bedrock-mistral.mistral-large-2402-v1-0" and d.provider == "bedrock"  # type: ignore[attr-defined]
    assert one("cohere.embed-multilingual-v3").capabilities == ("embeddings",)  # type: ignore[attr-defined]


def test_embedding_deployment_gets_an_embeddings_group_not_the_chat_default() -> None:
    s = load_settings(None, {"BEDROCK_MODEL_ID": "amazon.titan-embed-text-v2:0", "OLLAMA_HOST": "localhost"})
    titan = s.deployment("bedrock-titan-embed-text-v2")
    assert titan is not None and titan.capabilities == ("embeddings",) and titan.price.input == Decimal("0.02")
    assert s.model_groups["default"] == ("ollama-llama3.2-3b",)
    assert s.model_groups["embeddings"] == ("bedrock-titan-embed-text-v2",)
    # alone, it is the default too (so a client's model="default" embeddings call works)
    s = load_settings(None, {"BEDROCK_MODEL_ID": "amazon.titan-embed-text-v2:0"})
    assert s.model_groups["default"] == s.model_groups["embeddings"] == ("bedrock-titan-embed-text-v2",)


def test_bedrock_problems_name_the_variable() -> None:
    assert problems({"BEDROCK_MODEL_ID": "amazon.titan-embed-text-v2:0", "AWS_REGION": "Frankfurt please"}) == [
        "AWS_REGION: not a cloud region name (got 'Frankfurt please'), e.g. eu-central-1 or europe-west4"
    ]
    # AWS credentials alone configure nothing (they are on every developer machine)
    assert load_settings(None, {**AWS_ENV, "AWS_REGION": "eu-west-1"}).simulated


def test_genai_spine_fallback_chain_with_bedrock() -> None:
    env = {
        "GENAI_DEFAULT_PROVIDER": "ollama",
        "GENAI_FALLBACK_CHAIN": "ollama,bedrock,anthropic",
        "GENAI_BEDROCK_MODEL": "anthropic.claude-3-haiku-20240307-v1:0",
        "GENAI_BEDROCK_REGION": "eu-west-1",
        "AWS_REGION": "us-west-2",
        "GENAI_ANTHROPIC_API_KEY": "sk-ant-x",
        **AWS_ENV,
    }
    s = load_settings(None, env)
    assert s.model_groups["default"] == ("ollama-llama3.2-3b", "bedrock-claude-3-haiku", "claude-3-5-sonnet", "claude-3-haiku")
    haiku = s.deployment("bedrock-claude-3-haiku")
    assert haiku is not None and (haiku.region, haiku.residency, haiku.provider) == ("eu-west-1", "EU", "bedrock")
    assert haiku.source == "env:GENAI_BEDROCK_MODEL (preset bedrock-claude-3-haiku)"
    assert AWS_SECRET not in repr(s) + banner_text(s, environ=env)

    # the chain may name bedrock without a model: the Bedrock presets, region from AWS_REGION
    s = load_settings(None, {"GENAI_FALLBACK_CHAIN": "bedrock", "AWS_REGION": "us-west-2"})
    assert [(d.name, d.region, d.residency) for d in s.deployments] == [
        ("bedrock-claude-3-5-sonnet", "us-west-2", "US"),
        ("bedrock-claude-3-haiku", "us-west-2", "US"),
    ]
    assert s.deployments[0].source == "env:GENAI_FALLBACK_CHAIN (preset bedrock-claude-3-5-sonnet)"
    # GENAI_BEDROCK_MODEL alone switches the GenAI convention on
    s = load_settings(None, {"GENAI_BEDROCK_MODEL": "meta.llama3-70b-instruct-v1:0", "OPENAI_API_KEY": "sk"})
    assert [d.name for d in s.deployments] == ["bedrock-llama3-70b"]


# ---- Gemini: AI Studio and Vertex AI -------------------------------------------------------------


def test_gemini_key_uses_the_native_ai_studio_api() -> None:
    s = load_settings(None, {"GEMINI_API_KEY": "AIza-SECRET"})
    assert [d.name for d in s.deployments] == ["gemini-2.0-flash", "gemini-1.5-pro"]
    d = s.deployments[0]
    assert (d.provider, d.base_url, d.api_key) == ("gemini", "https://generativelanguage.googleapis.com/v1beta", "env:GEMINI_API_KEY")
    assert d.project is None and d.token_command is None and d.provider_label == "Google Gemini API (AI Studio)"
    assert "AIza-SECRET" not in repr(s) + banner_text(s, environ={"GEMINI_API_KEY": "AIza-SECRET"})


def test_vertex_ai_from_google_cloud_variables() -> None:
    s = load_settings(None, VERTEX)
    d = s.deployments[0]
    assert (d.provider, d.base_url, d.project, d.region) == ("gemini", VERTEX_URL, "alem-prod", "europe-west4")
    assert (d.token_command, d.api_key, d.residency) == ("gcloud auth print-access-token", None, "EU")
    assert d.provider_label == "Google Cloud (Vertex AI)" and d.source == "env:GOOGLE_CLOUD_PROJECT (preset gemini-2.0-flash)"
    assert s.origin == "environment (provider variables: GOOGLE_CLOUD_PROJECT)"
    # a service-account file: the token comes from Application Default Credentials
    (d, _) = load_settings(None, {**VERTEX, "GOOGLE_APPLICATION_CREDENTIALS": "/run/secrets/sa.json"}).deployments
    assert d.token_command == "gcloud auth application-default print-access-token"


@pytest.mark.parametrize(
    ("extra", "vertex", "key"),
    [
        ({"GEMINI_API_KEY": "k"}, False, "env:GEMINI_API_KEY"),  # a Gemini key wins
        ({"GOOGLE_API_KEY": "k"}, True, None),  # the generic Google key loses to project + location
        ({"GOOGLE_API_KEY": "k", "GOOGLE_GENAI_USE_VERTEXAI": "false"}, False, "env:GOOGLE_API_KEY"),
        ({"GEMINI_API_KEY": "k", "GOOGLE_GENAI_USE_VERTEXAI": "True"}, True, None),  # Google's switch decides
    ],
)
def test_vertex_or_ai_studio_precedence(extra: dict[str, str], vertex: bool, key: str | None) -> None:
    d = load_settings(None, {**VERTEX, **extra}).deployments[0]
    assert (d.base_url == VERTEX_URL, d.api_key) == (vertex, key)


@pytest.mark.parametrize(
    ("location", "url_host", "residency"),
    [("us-central1", "us-central1-aiplatform", "US"), ("europe-west2", "europe-west2-aiplatform", "GB"), ("global", "aiplatform", "global")],
)
def test_vertex_location_decides_host_and_residency(location: str, url_host: str, residency: str) -> None:
    d = load_settings(None, {**VERTEX, "GOOGLE_CLOUD_LOCATION": location}).deployments[0]
    assert d.base_url.startswith(f"https://{url_host}.googleapis.com/v1/projects/alem-prod/locations/{location}/")
    assert d.residency == residency


def test_vertex_problems_name_the_variable() -> None:
    assert problems({"GEMINI_API_KEY": "k", "GOOGLE_GENAI_USE_VERTEXAI": "1"}) == [
        "GOOGLE_GENAI_USE_VERTEXAI: Vertex AI needs GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION (e.g. europe-west4)"
    ]
    assert problems({**VERTEX, "GOOGLE_CLOUD_LOCATION": "eu/west"}) == [
        "GOOGLE_CLOUD_LOCATION: not a cloud region name (got 'eu/west'), e.g. eu-central-1 or europe-west4"
    ]
    # only a project (Cloud Shell sets one): no Gemini deployment appears from it
    assert load_settings(None, {"GOOGLE_CLOUD_PROJECT": "p-1"}).simulated
    # GenAI Spine naming gemini without any credentials says what to set
    assert problems({"GENAI_FALLBACK_CHAIN": "gemini"}) == [
        "GENAI_FALLBACK_CHAIN: names gemini, but no API key is set (GENAI_GEMINI_API_KEY or GEMINI_API_KEY or "
        "GOOGLE_API_KEY, or GOOGLE_CLOUD_PROJECT + GOOGLE_CLOUD_LOCATION for Vertex AI)"
    ]


def test_alem_gemini_on_vertex_keeps_the_tier_but_takes_the_region_residency() -> None:
    s = load_settings(None, {"YONCA_LLM_PROVIDER": "gemini", **VERTEX, "GOOGLE_CLOUD_LOCATION": "us-east4"})
    (d,) = s.deployments
    assert (d.tier, d.tier_name, d.latency_ms, d.model) == ("II", "Google Gemini", 400, "gemini-2.0-flash-exp")
    assert (d.base_url.split("/")[2], d.residency, d.token_command) == (
        "us-east4-aiplatform.googleapis.com", "US", "gcloud auth print-access-token",
    )
    assert problems({"YONCA_LLM_PROVIDER": "gemini"}) == [
        "YONCA_GEMINI_API_KEY: required when YONCA_LLM_PROVIDER=gemini "
        "(or GOOGLE_CLOUD_PROJECT + GOOGLE_CLOUD_LOCATION for Gemini on Vertex AI)"
    ]


# ---- Ollama and Anthropic ------------------------------------------------------------------------


def test_ollama_keep_alive_and_native_root() -> None:
    s = load_settings(None, {"OLLAMA_BASE_URL": "http://localhost:11434/v1", "OLLAMA_KEEP_ALIVE": "30m"})
    (d,) = s.deployments
    assert (d.provider, d.base_url, d.keep_alive) == ("ollama", "http://localhost:11434", "30m")
    s = load_settings(None, {"GENAI_DEFAULT_PROVIDER": "ollama", "OLLAMA_DEFAULT_MODEL": "nomic-embed-text"})
    (d,) = s.deployments
    assert d.name == "ollama-nomic-embed-text" and d.capabilities == ("embeddings",)
    assert d.source == "env:GENAI_DEFAULT_PROVIDER=ollama (preset ollama-nomic-embed-text)"


def test_anthropic_key_uses_the_messages_api() -> None:
    s = load_settings(None, {"ANTHROPIC_API_KEY": "sk-ant-SECRET"})
    assert [(d.name, d.provider, d.base_url) for d in s.deployments] == [
        ("claude-3-5-sonnet", "anthropic", "https://api.anthropic.com"),
        ("claude-3-haiku", "anthropic", "https://api.anthropic.com"),
    ]
    assert "sk-ant-SECRET" not in repr(s) + banner_text(s, environ={"ANTHROPIC_API_KEY": "sk-ant-SECRET"})


# ---- the same rules for deployments in a file ------------------------------------------------------


def test_file_gemini_with_project_becomes_vertex_ai(write: Callable[..., Path]) -> None:
    p = write(
        """\
deployments:
  - {preset: gemini-2.0-flash, project: alem-prod, region: europe-west4, token_command: "gcloud auth print-access-token"}
  - {preset: gemini-1.5-pro, project: alem-prod, region: us-central1, residency: EU-contract}
  - {preset: gemini-1.5-flash, api_key: env:GEMINI_API_KEY}
"""
    )
    flash, pro, ai_studio = load_settings(p, {}).deployments
    assert (flash.base_url, flash.residency, flash.provider_label) == (VERTEX_URL, "EU", "Google Cloud (Vertex AI)")
    assert pro.base_url.startswith("https://us-central1-aiplatform") and pro.residency == "EU-contract"  # as written
    assert ai_studio.base_url == "https://generativelanguage.googleapis.com/v1beta" and ai_studio.residency == "EU"


def test_file_bedrock_region_moves_the_residency(write: Callable[..., Path]) -> None:
    p = write(
        """\
deployments:
  - {preset: bedrock-claude-3-haiku}
  - {preset: bedrock-claude-3-5-sonnet, name: sonnet-eu, region: eu-central-1}
  - {name: titan-sg, provider: bedrock, model: amazon.titan-embed-text-v2:0, location: cloud, region: ap-southeast-1}
"""
    )
    haiku, sonnet, titan = load_settings(p, {}).deployments
    assert (haiku.region, haiku.residency, haiku.base_url) == ("us-east-1", "US", "")
    assert (sonnet.region, sonnet.residency) == ("eu-central-1", "EU")
    assert (titan.region, titan.residency) == ("ap-southeast-1", "SG")


def test_file_region_problems(write: Callable[..., Path]) -> None:
    p = write(
        """\
deployments:
  - {preset: gemini-2.0-flash, project: alem-prod}
  - {preset: bedrock-llama3-70b, region: "EU Central"}
"""
    )
    assert problems({}, p) == [
        f"{p}: deployments[0].region: required with project (the Vertex AI location, e.g. europe-west4), or set base_url",
        f"{p}: deployments[1].region: not a cloud region name (got 'EU Central'), e.g. eu-central-1 or europe-west4",
    ]
