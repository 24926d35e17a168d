"""Shipped deployment presets: data only (name -> partial `Deployment` fields), no logic.

A `tiergate.yaml` deployment may say `preset: groq-maverick` and override any field; the
environment conventions (`YONCA_*`, `GENAI_*`, `OPENAI_API_KEY`, `BEDROCK_MODEL_ID`, ...) build
their deployments from these presets too (see `tiergate.config.env`). docs/providers.md describes
each provider; docs/configuration.md lists every preset.

Units and sources
-----------------
* `price`: USD per 1M tokens (`Decimal`). Where a seed gives a figure it wins; seed 002 (EAIO)
  quotes USD per 1K tokens, multiplied here by 1000; seed 004's Bedrock figures are per 1K too.
  Where no seed gives a figure (usually the output price) the provider's public list price
  (2024-2025: the provider's pricing page, on-demand, standard tier) is used; each entry says
  which. Embedding models have only an input price.
* `latency_ms`: expected P95 time to first token; `throughput_tps`: generation tokens/s. ALEM
  (seed 000) figures for its four tiers; seed 002 tokens/s for the local M1 models; otherwise
  our rough public-benchmark estimates. Embedding presets have no throughput (nothing is generated).
* `quality` (0..1): tiergate's own judgement of general answer quality, used only as a routing
  signal ("quality" strategy, tie-breaks). Roughly: frontier models 0.9, strong open 70B-class
  / mid models ~0.8, small cloud models ~0.7, 7B local ~0.5, 3B local ~0.45. Override freely.
* Display fields (`tier_name`, `provider_label`, `cost_range`, `models_label`, `best_for`) feed
  the ALEM banner; they describe the ALEM tier the deployment belongs to.

Wire formats: each preset names the native adapter of its provider: `gemini` (Google's Gemini API,
AI Studio form; Vertex AI when a deployment sets `project` and `region`), `anthropic` (Messages
API), `ollama` (`/api/chat`), `bedrock` (Converse); Groq, OpenAI, DeepSeek and AzInTelecom speak
the OpenAI wire format (`openai`).

Residency
---------
`residency` is what the preset's default endpoint implies. Gemini: ALEM Tier II states EU
residency "via Vertex AI region lock"; the default AI Studio endpoint is Google's global Gemini
API, so EU residency holds only on Vertex AI in an EU region (set `project` and `region`: the
loader then derives `base_url` and `residency` from the region). Bedrock presets pin `region`
us-east-1 (seed 004's region): set `region` to move them, and `residency` follows the region
(`REGION_RESIDENCY`) unless you set it too.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

D = Decimal

# --------------------------------------------------------------------------------------------
# ALEM four-tier matrix (seed 000): display data per tier label, used by presets and banner.
# --------------------------------------------------------------------------------------------
ALEM_TIERS: Final[dict[str, dict[str, Any]]] = {
    "I": {
        "icon": "⚡",
        "tier_name": "Groq LPU",
        "tagline": "Rapid Prototyping",
        "provider_label": "Groq Cloud",
        "location": "cloud",
        "residency": "US",
        "residency_label": "US (Groq servers)",
        "latency_ms": 200.0,
        "throughput_tps": 800.0,
        "cost_range": "$0–50/mo",
        "models_label": "Llama 4 Maverick 17B, Qwen 3 32B",
        "best_for": "Hackathons, demos, MVPs, dev/test",
    },
    "II": {
        "icon": "🧠",
        "tier_name": "Google Gemini",
        "tagline": "High Reasoning",
        "provider_label": "Google Cloud (Vertex AI)",
        "location": "cloud",
        "residency": "EU",
        "residency_label": "EU (via Vertex AI region lock)",
        "latency_ms": 400.0,
        "throughput_tps": 150.0,
        "cost_range": "$20–300/mo",
        "models_label": "Gemini 2.0 Flash, Gemini 1.5 Pro",
        "best_for": "Complex reasoning, multimodal, production pilots",
    },
    "III": {
        "icon": "🏛",
        "tier_name": "AzInTelecom",
        "tagline": "Sovereign Rented GPU (DigiRella Cloud)",
        "provider_label": "AzInTelecom (DigiRella Cloud partner)",
        "location": "sovereign",
        "residency": "AZ",
        "residency_label": "Azerbaijan 🇦🇿 (Baku DC)",
        "latency_ms": 600.0,
        "throughput_tps": 80.0,
        "cost_range": "$800–1,500/mo",
        "models_label": "Llama 3.3 70B, Qwen 3 32B",
        "best_for": "Government, regulated industries, data sovereignty requirements",
    },
    "IV": {
        "icon": "🔒",
        "tier_name": "ZekaLab Custom",
        "tagline": "Private Hardware (DigiRella Owned, self-hosted)",
        "provider_label": "Self-hosted hardware (DigiRella profiles)",
        "location": "local",
        "residency": "on-prem",
        "residency_label": "Customer premises (air-gapped capable)",
        "latency_ms": 300.0,
        # ALEM: "200-300 tok/s (Groq-equivalent)"; the midpoint is used as the number.
        "throughput_tps": 250.0,
        "cost_range": "$6,500–12,000 one-time",
        "models_label": "Llama 70B, Qwen 32B, Maverick 17B (all Groq models), Ollama 7B-13B",
        "best_for": "Offline farms, military, banks, air-gapped networks",
    },
}

# The `Deployment` display fields each ALEM tier contributes to a preset.
_TIER_FIELDS: Final = ("tier_name", "provider_label", "cost_range", "models_label", "best_for")


def _tier(label: str) -> dict[str, Any]:
    t = ALEM_TIERS[label]
    return {"tier": label, **{k: t[k] for k in _TIER_FIELDS}}


GROQ_BASE_URL: Final = "https://api.groq.com/openai/v1"
#: Gemini API (AI Studio form); the `gemini` adapter appends `/models/{model}:generateContent`.
GEMINI_BASE_URL: Final = "https://generativelanguage.googleapis.com/v1beta"
#: Gemini on Vertex AI, per project and location (`global` has no location prefix on the host).
VERTEX_BASE_URL: Final = (
    "https://{host}aiplatform.googleapis.com/v1/projects/{project}/locations/{region}/publishers/google"
)
#: How a Vertex AI deployment gets its bearer token when the environment sets it up.
VERTEX_TOKEN_COMMAND: Final = "gcloud auth print-access-token"
#: The same through Application Default Credentials (e.g. GOOGLE_APPLICATION_CREDENTIALS).
VERTEX_ADC_TOKEN_COMMAND: Final = "gcloud auth application-default print-access-token"
OPENAI_BASE_URL: Final = "https://api.openai.com/v1"
ANTHROPIC_BASE_URL: Final = "https://api.anthropic.com"
DEEPSEEK_BASE_URL: Final = "https://api.deepseek.com/v1"
#: Ollama's server root (native API); the adapter drops a pasted `/v1` or `/api`.
OLLAMA_BASE_URL: Final = "http://localhost:11434"
#: `provider_label` of a Gemini deployment, by API surface (the banner shows who runs it).
GEMINI_LABEL: Final = "Google Gemini API (AI Studio)"
VERTEX_LABEL: Final = "Google Cloud (Vertex AI)"
#: Seed 004's region; Bedrock presets pin it so that their residency is known.
BEDROCK_DEFAULT_REGION: Final = "us-east-1"
#: Documented example only (seed 000); the AzInTelecom preset takes its URL from the environment.
AZINTELECOM_EXAMPLE_BASE_URL: Final = "https://llm.gov.az/v1"

# Cloud region -> residency code (AWS and Google Cloud names). Exact names first, then the
# region's prefix; a region found in neither is its own residency (shown as it is).
REGION_RESIDENCY: Final[dict[str, str]] = {
    # AWS: European regions outside the EU
    "eu-west-2": "GB",  # London
    "eu-central-2": "CH",  # Zurich
    # AWS: Asia-Pacific, Middle East, Africa, Americas
    "ap-northeast-1": "JP",
    "ap-northeast-3": "JP",
    "ap-northeast-2": "KR",
    "ap-south-1": "IN",
    "ap-south-2": "IN",
    "ap-southeast-1": "SG",
    "ap-southeast-2": "AU",
    "ap-southeast-4": "AU",
    "ap-southeast-3": "ID",
    "ap-east-1": "HK",
    "me-central-1": "AE",
    "me-south-1": "BH",
    "il-central-1": "IL",
    "af-south-1": "ZA",
    "sa-east-1": "BR",
    # Google Cloud: European regions outside the EU
    "europe-west2": "GB",  # London
    "europe-west6": "CH",  # Zurich
    "global": "global",  # Vertex AI's global endpoint: no residency guarantee
}
REGION_PREFIX_RESIDENCY: Final[dict[str, str]] = {
    "us-": "US",  # AWS us-*, us-gov-*; Google us-*
    "eu-": "EU",
    "europe-": "EU",
    "ca-": "CA",
    "northamerica-northeast": "CA",
}

_GROQ = {"provider": "openai", "base_url": GROQ_BASE_URL, "location": "cloud", "residency": "US"}
_GEMINI = {
    "provider": "gemini",
    "base_url": GEMINI_BASE_URL,
    "location": "cloud",
    "residency": "EU",  # ALEM Tier II's figure: holds on Vertex AI in an EU region (see above)
    **_tier("II"),
    "provider_label": GEMINI_LABEL,
}
_OPENAI = {
    "provider": "openai",
    "base_url": OPENAI_BASE_URL,
    "location": "cloud",
    "residency": "US",
    "provider_label": "OpenAI",
}
_ANTHROPIC = {
    "provider": "anthropic",
    "base_url": ANTHROPIC_BASE_URL,
    "location": "cloud",
    "residency": "US",
    "provider_label": "Anthropic",
}
_DEEPSEEK = {
    "provider": "openai",
    "base_url": DEEPSEEK_BASE_URL,
    "location": "cloud",
    # DeepSeek's API is operated from the People's Republic of China.
    "residency": "CN",
    "provider_label": "DeepSeek",
}
_OLLAMA = {
    "provider": "ollama",
    "base_url": OLLAMA_BASE_URL,
    "location": "local",
    "residency": "on-prem",
    "price": {"input": D("0"), "output": D("0")},
    "max_concurrency": 2,  # seed 002: "Concurrent requests: 1-2"
    "timeout_s": 120.0,  # cold starts take 5-15 s (seed 002)
    **_tier("IV"),
    "provider_label": "Ollama (self-hosted)",
}
_BEDROCK = {
    "provider": "bedrock",
    "base_url": "",  # the adapter uses https://bedrock-runtime.{region}.amazonaws.com
    "region": BEDROCK_DEFAULT_REGION,
    "location": "cloud",
    "residency": "US",  # follows `region` (REGION_RESIDENCY)
    "provider_label": "AWS Bedrock",
}

_CHAT = ("tools", "json", "streaming")
_EMBED = ("embeddings",)

PRESETS: Final[dict[str, dict[str, Any]]] = {
    # ---- ALEM Tier I: Groq LPU (cloud, US) ----------------------------------------------
    "groq-maverick": {
        **_GROQ,
        **_tier("I"),
        "model": "meta-llama/llama-4-maverick-17b-128e-instruct",
        "price": {"input": D("0.20"), "output": D("0.60")},  # Groq public list price
        "latency_ms": 200.0,  # ALEM Tier I
        "throughput_tps": 800.0,  # ALEM Tier I benchmark target
        "quality": 0.8,
        "capabilities": (*_CHAT, "vision"),
        "context_length": 131072,
    },
    "groq-qwen3-32b": {
        **_GROQ,
        **_tier("I"),
        "model": "qwen/qwen3-32b",
        "price": {"input": D("0.29"), "output": D("0.59")},  # Groq public list price
        "latency_ms": 200.0,  # ALEM Tier I
        "throughput_tps": 400.0,  # Groq published speed for Qwen3 32B (approx.)
        "quality": 0.78,
        "capabilities": (*_CHAT, "reasoning"),
        "context_length": 131072,
    },
    # ---- ALEM Tier II: Google Gemini (cloud, EU per ALEM: see residency caveat above) -----
    "gemini-2.0-flash": {
        **_GEMINI,
        "model": "gemini-2.0-flash",
        "price": {"input": D("0.10"), "output": D("0.40")},  # Google public list price
        "latency_ms": 400.0,  # ALEM Tier II
        "throughput_tps": 150.0,  # ALEM Tier II
        "quality": 0.8,
        "capabilities": (*_CHAT, "vision"),
        "context_length": 1048576,
    },
    "gemini-1.5-pro": {
        **_GEMINI,
        "model": "gemini-1.5-pro",
        # input: seed 002 ($0.00125/1K); output: Google list price (<=128K context)
        "price": {"input": D("1.25"), "output": D("5.00")},
        "latency_ms": 400.0,
        "throughput_tps": 150.0,
        "quality": 0.85,
        "capabilities": (*_CHAT, "vision", "reasoning"),
        "context_length": 2097152,
    },
    "gemini-1.5-flash": {
        **_GEMINI,
        "model": "gemini-1.5-flash",
        # input: seed 002 ($0.00035/1K); output: Google list price at that tariff
        "price": {"input": D("0.35"), "output": D("1.05")},
        "latency_ms": 400.0,
        "throughput_tps": 150.0,
        "quality": 0.72,
        "capabilities": (*_CHAT, "vision"),
        "context_length": 1048576,
    },
    "gemini-text-embedding-004": {
        **_GEMINI,
        "model": "text-embedding-004",
        # Google's Gemini API price list showed text-embedding-004 as free of charge (2024-2025);
        # Google announced its retirement for 2026-01-14 in favour of gemini-embedding-001
        # ($0.15 / 1M input): override `model` and `price` for that one. Vertex AI bills per
        # character.
        "price": {"input": D("0"), "output": D("0")},
        "latency_ms": 300.0,
        "quality": 0.7,
        "capabilities": _EMBED,
        "context_length": 2048,
    },
    # ---- ALEM Tier III: AzInTelecom sovereign cloud (AZ) --------------------------------
    "azintelecom-llama-3.3-70b": {
        "provider": "openai",
        # No default: the endpoint comes from the environment / config
        # (YONCA_AZINTELECOM_BASE_URL; documented example https://llm.gov.az/v1).
        "base_url": "",
        "model": "llama-3.3-70b",
        "location": "sovereign",
        "residency": "AZ",
        **_tier("III"),
        # Rented capacity billed flat ($800-1,500/mo, ALEM): no per-token price.
        "price": {"input": D("0"), "output": D("0")},
        "latency_ms": 600.0,  # ALEM Tier III (target ~250 ms)
        "throughput_tps": 80.0,  # ALEM Tier III (target 200+)
        "quality": 0.78,
        "capabilities": _CHAT,
        "context_length": 131072,
        "timeout_s": 120.0,
    },
    # ---- ALEM Tier IV: local Ollama (on-prem), price 0 ----------------------------------
    "ollama-atllama-7b": {
        **_OLLAMA,
        "model": "atllama:7b",  # ALEM Tier IV configuration example
        "latency_ms": 300.0,  # ALEM Tier IV
        "throughput_tps": 250.0,  # ALEM Tier IV (200-300 tok/s)
        "quality": 0.5,
        "capabilities": ("json", "streaming"),
    },
    "ollama-llama3.2-3b": {
        **_OLLAMA,
        "model": "llama3.2:3b",
        "latency_ms": 300.0,
        "throughput_tps": 50.0,  # seed 002: 45-60 tok/s on an M1
        "quality": 0.45,
        "capabilities": _CHAT,
        "context_length": 131072,
    },
    "ollama-qwen2.5-7b": {
        **_OLLAMA,
        "model": "qwen2.5:7b",
        "latency_ms": 300.0,
        "throughput_tps": 30.0,  # seed 002: 25-35 tok/s
        "quality": 0.55,
        "capabilities": _CHAT,
        "context_length": 32768,
    },
    "ollama-deepseek-coder-6.7b": {
        **_OLLAMA,
        "model": "deepseek-coder:6.7b",
        "latency_ms": 300.0,
        "throughput_tps": 35.0,  # seed 002: 30-40 tok/s
        "quality": 0.45,
        "capabilities": ("json", "streaming", "code"),
        "context_length": 16384,
    },
    "ollama-phi3-mini": {
        **_OLLAMA,
        "model": "phi3:mini",
        "latency_ms": 250.0,
        "throughput_tps": 55.0,  # seed 002: 50-65 tok/s
        "quality": 0.4,
        "capabilities": ("json", "streaming"),
        "context_length": 4096,  # Phi-3-Mini-4K (seed 002)
    },
    "ollama-nomic-embed-text": {
        **_OLLAMA,
        "model": "nomic-embed-text",
        "latency_ms": 100.0,  # estimate: a 137M-parameter model, warm
        "quality": 0.6,
        "capabilities": _EMBED,
        "context_length": 8192,
    },
    # ---- OpenAI (cloud, US) -------------------------------------------------------------
    "openai-gpt-4o": {
        **_OPENAI,
        "model": "gpt-4o",
        # input: seed 002 ($0.0025/1K); output: OpenAI list price
        "price": {"input": D("2.50"), "output": D("10.00")},
        "latency_ms": 500.0,
        "throughput_tps": 80.0,
        "quality": 0.9,
        "capabilities": (*_CHAT, "vision"),
        "context_length": 128000,
    },
    "openai-gpt-4o-mini": {
        **_OPENAI,
        "model": "gpt-4o-mini",
        "price": {"input": D("0.15"), "output": D("0.60")},  # OpenAI list price
        "latency_ms": 350.0,
        "throughput_tps": 100.0,
        "quality": 0.75,
        "capabilities": (*_CHAT, "vision"),
        "context_length": 128000,
    },
    "openai-gpt-3.5-turbo": {
        **_OPENAI,
        "model": "gpt-3.5-turbo",
        # input: seed 002 ($0.0005/1K); output: OpenAI list price
        "price": {"input": D("0.50"), "output": D("1.50")},
        "latency_ms": 300.0,
        "throughput_tps": 120.0,
        "quality": 0.6,
        "capabilities": _CHAT,
        "context_length": 16385,
    },
    "openai-text-embedding-3-small": {
        **_OPENAI,
        "model": "text-embedding-3-small",
        "price": {"input": D("0.02"), "output": D("0")},  # OpenAI list price
        "latency_ms": 300.0,
        "quality": 0.7,
        "capabilities": _EMBED,
        "context_length": 8191,
    },
    # ---- DeepSeek (cloud, CN) -----------------------------------------------------------
    "deepseek-chat": {
        **_DEEPSEEK,
        "model": "deepseek-chat",
        # input: seed 002 ($0.00014/1K); output: DeepSeek list price at that tariff
        "price": {"input": D("0.14"), "output": D("0.28")},
        "latency_ms": 800.0,
        "throughput_tps": 50.0,
        "quality": 0.82,
        "capabilities": _CHAT,
        "context_length": 65536,
    },
    "deepseek-coder": {
        **_DEEPSEEK,
        "model": "deepseek-coder",
        # input: seed 002 ($0.00014/1K); output: DeepSeek list price at that tariff
        "price": {"input": D("0.14"), "output": D("0.28")},
        "latency_ms": 800.0,
        "throughput_tps": 50.0,
        "quality": 0.7,
        "capabilities": (*_CHAT, "code"),
        "context_length": 65536,
    },
    "deepseek-reasoner": {
        **_DEEPSEEK,
        "model": "deepseek-reasoner",  # seed 002's "deepseek-reasoning"
        "price": {"input": D("0.55"), "output": D("2.19")},  # DeepSeek list price
        "latency_ms": 2000.0,
        "throughput_tps": 40.0,
        "quality": 0.88,
        "capabilities": ("json", "streaming", "reasoning"),
        "context_length": 65536,
        "timeout_s": 180.0,
    },
    # ---- Anthropic Claude (cloud, US) ---------------------------------------------------
    "claude-3-5-sonnet": {
        **_ANTHROPIC,
        "model": "claude-3-5-sonnet-20241022",
        "price": {"input": D("3.00"), "output": D("15.00")},  # seed 004 (Claude 3 Sonnet)
        "latency_ms": 900.0,
        "throughput_tps": 70.0,
        "quality": 0.92,
        "capabilities": (*_CHAT, "vision", "code"),
        "context_length": 200000,
    },
    "claude-3-haiku": {
        **_ANTHROPIC,
        "model": "claude-3-haiku-20240307",
        # seed 004 as it states ($0.00080 / $0.0024 per 1K); Anthropic's own list price for
        # Claude 3 Haiku is lower ($0.25 / $1.25): override `price` if you are billed that.
        "price": {"input": D("0.80"), "output": D("2.40")},
        "latency_ms": 500.0,
        "throughput_tps": 120.0,
        "quality": 0.7,
        "capabilities": (*_CHAT, "vision"),
        "context_length": 200000,
    },
    "claude-3-opus": {
        **_ANTHROPIC,
        "model": "claude-3-opus-20240229",
        "price": {"input": D("15.00"), "output": D("75.00")},  # Anthropic list price
        "latency_ms": 1500.0,
        "throughput_tps": 30.0,
        "quality": 0.9,
        "capabilities": (*_CHAT, "vision", "reasoning"),
        "context_length": 200000,
        "timeout_s": 180.0,
    },
    # ---- AWS Bedrock (cloud; region us-east-1 -> US unless `region` says otherwise) -----------
    # Prices: seed 004 where it quotes Bedrock (Claude 3 Sonnet, Claude 3 Haiku), otherwise the
    # AWS Bedrock pricing page, on-demand, us-east-1 (2024-2025).
    "bedrock-claude-3-5-sonnet": {
        **_BEDROCK,
        "model": "anthropic.claude-3-5-sonnet-20241022-v2:0",
        "price": {"input": D("3.00"), "output": D("15.00")},  # AWS list price
        "latency_ms": 900.0,
        "throughput_tps": 70.0,
        "quality": 0.92,
        "capabilities": (*_CHAT, "vision", "code"),
        "context_length": 200000,
    },
    "bedrock-claude-3-sonnet": {
        **_BEDROCK,
        "model": "anthropic.claude-3-sonnet-20240229-v1:0",  # seed 004's model
        "price": {"input": D("3.00"), "output": D("15.00")},  # seed 004 ($0.003 / $0.015 per 1K)
        "latency_ms": 900.0,
        "throughput_tps": 60.0,
        "quality": 0.82,
        "capabilities": (*_CHAT, "vision"),
        "context_length": 200000,
    },
    "bedrock-claude-3-haiku": {
        **_BEDROCK,
        "model": "anthropic.claude-3-haiku-20240307-v1:0",  # seed 004's cheaper model
        # seed 004 as it states ($0.00080 / $0.0024 per 1K); AWS's list price for Claude 3
        # Haiku is lower ($0.25 / $1.25 per 1M): override `price` if you are billed that.
        "price": {"input": D("0.80"), "output": D("2.40")},
        "latency_ms": 500.0,
        "throughput_tps": 120.0,
        "quality": 0.7,
        "capabilities": (*_CHAT, "vision"),
        "context_length": 200000,
    },
    "bedrock-llama3-70b": {
        **_BEDROCK,
        "model": "meta.llama3-70b-instruct-v1:0",
        "price": {"input": D("2.65"), "output": D("3.50")},  # AWS list price
        "latency_ms": 700.0,
        "throughput_tps": 50.0,
        "quality": 0.78,
        # Bedrock's Converse API has no tool use for Llama 3 (only from Llama 3.1 on).
        "capabilities": ("streaming",),
        "context_length": 8192,
    },
    "bedrock-titan-embed-text-v2": {
        **_BEDROCK,
        "model": "amazon.titan-embed-text-v2:0",
        "price": {"input": D("0.02"), "output": D("0")},  # AWS list price ($0.00002 per 1K)
        "latency_ms": 200.0,
        "quality": 0.68,
        "capabilities": _EMBED,
        "context_length": 8192,
    },
}

# Which presets a provider's credentials switch on (environment conventions), in order.
PROVIDER_PRESETS: Final[dict[str, tuple[str, ...]]] = {
    "ollama": ("ollama-llama3.2-3b",),  # model replaced by OLLAMA_DEFAULT_MODEL if set
    "groq": ("groq-maverick", "groq-qwen3-32b"),
    "gemini": ("gemini-2.0-flash", "gemini-1.5-pro"),
    "deepseek": ("deepseek-chat", "deepseek-coder"),
    "openai": ("openai-gpt-4o", "openai-gpt-4o-mini"),
    "anthropic": ("claude-3-5-sonnet", "claude-3-haiku"),
    # GENAI_FALLBACK_CHAIN naming bedrock without a model (BEDROCK_MODEL_ID names exactly one)
    "bedrock": ("bedrock-claude-3-5-sonnet", "bedrock-claude-3-haiku"),
}

# ALEM providers (YONCA_LLM_PROVIDER): tier label, base preset and variable names.
ALEM_PROVIDERS: Final[dict[str, dict[str, Any]]] = {
    "groq": {
        "tier": "I",
        "preset": "groq-maverick",
        "key_var": "YONCA_GROQ_API_KEY",
        "model_var": "YONCA_GROQ_MODEL",
        "url_var": None,
        "default_model": "meta-llama/llama-4-maverick-17b-128e-instruct",
        "default_base_url": GROQ_BASE_URL,
    },
    "gemini": {
        "tier": "II",
        "preset": "gemini-2.0-flash",
        "key_var": "YONCA_GEMINI_API_KEY",
        "model_var": "YONCA_GEMINI_MODEL",
        "url_var": None,
        "default_model": "gemini-2.0-flash-exp",  # seed 000's example value
        "default_base_url": GEMINI_BASE_URL,
    },
    "azintelecom": {
        "tier": "III",
        "preset": "azintelecom-llama-3.3-70b",
        "key_var": "YONCA_AZINTELECOM_API_KEY",
        "model_var": "YONCA_AZINTELECOM_MODEL",
        "url_var": "YONCA_AZINTELECOM_BASE_URL",
        "default_model": "llama-3.3-70b",
        "default_base_url": None,  # required
    },
    "ollama": {
        "tier": "IV",
        "preset": "ollama-atllama-7b",
        "key_var": None,
        "model_var": "YONCA_OLLAMA_MODEL",
        "url_var": "YONCA_OLLAMA_BASE_URL",
        "default_model": "atllama:7b",  # seed 000's example value
        "default_base_url": OLLAMA_BASE_URL,  # a pasted "/v1" or "/api" is dropped
    },
}
