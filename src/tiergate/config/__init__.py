"""Configuration: the schema (`models`), loading (`loader`), presets and environment conventions.

    from tiergate.config import load_settings, ConfigError, Settings, Deployment
"""

from .errors import ConfigError
from .loader import SIMULATED_ORIGIN, load_settings
from .models import (
    Deployment,
    Price,
    PrivacyConfig,
    SecretRef,
    ServerConfig,
    Settings,
    StoreConfig,
    resolve_secret,
)
from .presets import ALEM_TIERS, PRESETS

__all__ = [
    "ALEM_TIERS",
    "PRESETS",
    "SIMULATED_ORIGIN",
    "ConfigError",
    "Deployment",
    "Price",
    "PrivacyConfig",
    "SecretRef",
    "ServerConfig",
    "Settings",
    "StoreConfig",
    "load_settings",
    "resolve_secret",
]
