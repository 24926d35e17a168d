"""Wire-format name -> adapter class. The one place that knows which adapters exist."""

from __future__ import annotations

from ..config.models import Deployment, resolve_secret
from .anthropic import AnthropicProvider
from .base import Provider
from .bedrock import BedrockProvider
from .gemini import GeminiProvider
from .ollama import OllamaProvider
from .openai_compat import OpenAICompatProvider

ADAPTERS: dict[str, type[Provider]] = {
    "openai": OpenAICompatProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
    "ollama": OllamaProvider,
    "bedrock": BedrockProvider,
}


class UnsupportedProviderError(ValueError):
    pass


def create_provider(deployment: Deployment) -> Provider:
    cls = ADAPTERS.get(deployment.provider)
    if cls is None:
        raise UnsupportedProviderError(
            f"deployment '{deployment.name}': provider '{deployment.provider}' has no adapter in "
            f"this version (available: {', '.join(sorted(ADAPTERS))})"
        )
    return cls(deployment, api_key=resolve_secret(deployment.api_key))
