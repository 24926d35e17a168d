"""Provider adapters: one file per upstream wire format behind `base.Provider`."""

from .base import Health, Provider
from .registry import ADAPTERS, UnsupportedProviderError, create_provider

__all__ = ["ADAPTERS", "Health", "Provider", "UnsupportedProviderError", "create_provider"]
