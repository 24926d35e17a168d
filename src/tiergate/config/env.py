"""Environment variables: `TIERGATE_*` overrides and the seeds' provider conventions.

Three conventions can define deployments when the config file defines none. They are not mixed:
the first one present wins, in this order (so an `OPENAI_API_KEY` lying around in a shell never
adds a cloud deployment to an ALEM or GenAI Spine setup):

1. ALEM (seed 000): `YONCA_LLM_PROVIDER=groq|gemini|azintelecom|ollama` -> one deployment with
   the ALEM tier data.
2. GenAI Spine (seed 001): `GENAI_DEFAULT_PROVIDER`, `GENAI_FALLBACK_CHAIN`, `GENAI_OLLAMA_URL`,
   `GENAI_<PROVIDER>_API_KEY` -> preset deployments, group `default` in fallback-chain order.
3. Conventional provider variables: `OLLAMA_HOST` / `OLLAMA_BASE_URL`, `GROQ_API_KEY`,
   `GEMINI_API_KEY` / `GOOGLE_API_KEY`, `DEEPSEEK_API_KEY`, `OPENAI_API_KEY`,
   `ANTHROPIC_API_KEY` -> preset deployments, group `default` ordered local -> sovereign -> cloud.

API keys become `env:NAME` references; values are never copied into the settings or messages.
Empty variables count as unset.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..privacy.levels import parse_level
from .presets import ALEM_PROVIDERS, ALEM_TIERS, PRESETS, PROVIDER_PRESETS

# ---------------------------------------------------------------------------------------------
# TIERGATE_* overrides
# ---------------------------------------------------------------------------------------------

#: variable -> (section, key). These win over the config file.
OVERRIDES: dict[str, tuple[str, str]] = {
    "TIERGATE_HOST": ("server", "host"),
    "TIERGATE_PORT": ("server", "port"),
    "TIERGATE_MAX_BODY_MB": ("server", "max_body_mb"),
    "TIERGATE_WORKERS": ("server", "workers"),
    "TIERGATE_DATABASE_URL": ("store", "url"),
    "TIERGATE_DEFAULT_PRIVACY": ("privacy", "default_level"),
}

#: variable -> (section, key). Used only when neither the file nor a TIERGATE_* variable sets it.
FALLBACKS: dict[str, tuple[str, str]] = {
    "GENAI_DATABASE_URL": ("store", "url"),  # seed 001
    "DEFAULT_PRIVACY_LEVEL": ("privacy", "default_level"),  # seed 002
}

#: Accepted and ignored for now (no error): seed 001 variables tiergate does not use yet.
IGNORED = ("GENAI_REDIS_URL", "GENAI_BUDGET_DAILY")


@dataclass(frozen=True)
class Override:
    section: str
    key: str
    value: Any
    var: str


def get(environ: Mapping[str, str], name: str) -> str | None:
    """A variable's value, stripped; empty counts as unset."""
    value = environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def overrides(environ: Mapping[str, str]) -> tuple[list[Override], list[Override], list[str]]:
    """(overrides that beat the file, fallbacks the file beats, problems)."""
    problems: list[str] = []

    def collect(table: dict[str, tuple[str, str]]) -> list[Override]:
        out: list[Override] = []
        for var, (section, key) in table.items():
            value: Any = get(environ, var)
            if value is None:
                continue
            if key == "default_level":
                try:
                    value = parse_level(value).name
                except ValueError as exc:
                    problems.append(f"{var}: {exc}")
                    continue
            out.append(Override(section, key, value, var))
        return out

    strong = collect(OVERRIDES)
    if get(environ, "TIERGATE_MASTER_KEY") is not None:
        # A reference, never the value: resolved when a request is authenticated.
        strong.append(Override("server", "master_key", "env:TIERGATE_MASTER_KEY", "TIERGATE_MASTER_KEY"))
    return strong, collect(FALLBACKS), problems


# ---------------------------------------------------------------------------------------------
# Deployments from the seeds' conventions
# ---------------------------------------------------------------------------------------------


@dataclass
class EnvDeployment:
    fields: dict[str, Any]
    #: Deployment field -> the variable that supplied its value (named in error messages).
    field_vars: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.fields["name"])


@dataclass
class EnvDeployments:
    convention: str  # "ALEM" | "GenAI Spine" | "provider variables"
    description: str  # for Settings.origin, e.g. "ALEM: YONCA_LLM_PROVIDER=groq"
    deployments: list[EnvDeployment] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


_LOCATION_RANK = {"local": 0, "sovereign": 1, "cloud": 2}
_NAME_BAD = re.compile(r"[^A-Za-z0-9.@-]+")


def _slug(provider: str, model: str) -> str:
    tail = _NAME_BAD.sub("-", model.rsplit("/", 1)[-1]).strip("-") or "model"
    return tail if tail.startswith(provider) else f"{provider}-{tail}"


def ollama_v1_url(value: str, *, host_form: bool = False) -> str:
    """An Ollama address -> its OpenAI-compatible base URL (`.../v1`).

    `host_form` is for `OLLAMA_HOST`, which may omit the scheme and the port and may name the
    listen-on-all address: `localhost` / `0.0.0.0:11434` -> `http://127.0.0.1:11434/v1`.
    """
    url = value.strip()
    if host_form or "://" not in url:
        if "://" not in url:
            url = "http://" + url
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        try:
            port = parts.port or 11434
        except ValueError:
            raise ValueError(f"not a valid Ollama address (got {value!r})") from None
        url = f"{parts.scheme}://{host}:{port}{parts.path}"
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def _preset_for(model: str, candidates: tuple[str, ...]) -> tuple[str | None, str]:
    """(preset whose model is exactly `model` or else None, preset to start from)."""
    for name in candidates:
        if PRESETS[name]["model"] == model:
            return name, name
    # A variant of a preset's model (e.g. gemini-2.0-flash-exp): its data, another model id.
    prefixed = [n for n in candidates if model.startswith(PRESETS[n]["model"])]
    if prefixed:
        return None, max(prefixed, key=lambda n: len(PRESETS[n]["model"]))
    return None, candidates[0]


def _from_preset(preset: str) -> dict[str, Any]:
    return copy.deepcopy(PRESETS[preset])


def _add_groups(groups: dict[str, list[str]], deployments: list[EnvDeployment]) -> None:
    """A group per deployment name and per upstream model id."""
    for d in deployments:
        groups.setdefault(d.name, [d.name])
    for d in deployments:
        model = str(d.fields["model"])
        if model in groups:
            if model not in {x.name for x in deployments} and d.name not in groups[model]:
                groups[model].append(d.name)
        else:
            groups[model] = [d.name]


# ---- 1. ALEM ---------------------------------------------------------------------------------


def _alem(environ: Mapping[str, str], raw_provider: str) -> EnvDeployments:
    provider = raw_provider.strip().lower()
    out = EnvDeployments("ALEM", f"ALEM: YONCA_LLM_PROVIDER={provider}")
    spec = ALEM_PROVIDERS.get(provider)
    if spec is None:
        out.problems.append(
            f"YONCA_LLM_PROVIDER: must be one of {', '.join(ALEM_PROVIDERS)} (got {raw_provider!r})"
        )
        return out
    tier = ALEM_TIERS[spec["tier"]]
    source = f"env:YONCA_LLM_PROVIDER={provider}"
    field_vars: dict[str, str] = {}

    model = get(environ, spec["model_var"]) or spec["default_model"]
    if get(environ, spec["model_var"]):
        field_vars["model"] = spec["model_var"]

    base_url: str | None = spec["default_base_url"]
    url_var: str | None = spec["url_var"]
    if url_var and get(environ, url_var):
        base_url = get(environ, url_var)
        field_vars["base_url"] = url_var
    if base_url is None:
        out.problems.append(
            f"{url_var}: required when YONCA_LLM_PROVIDER={provider} "
            "(the OpenAI-compatible endpoint, e.g. https://llm.gov.az/v1)"
        )
        return out
    if provider == "ollama":
        try:
            base_url = ollama_v1_url(base_url)
        except ValueError as exc:
            out.problems.append(f"{url_var}: {exc}")
            return out

    api_key: str | None = None
    key_var: str | None = spec["key_var"]
    if key_var:
        if get(environ, key_var):
            api_key = f"env:{key_var}"
            field_vars["api_key"] = key_var
        elif provider in ("groq", "gemini"):
            out.problems.append(f"{key_var}: required when YONCA_LLM_PROVIDER={provider}")
            return out

    family = tuple(n for n, p in PRESETS.items() if p.get("tier") == spec["tier"])
    exact, base = _preset_for(model, family)
    fields = _from_preset(base)
    fields.update(
        {
            "name": exact or _slug(provider, model),
            "model": model,
            "base_url": base_url,
            "api_key": api_key,
            "location": tier["location"],
            "residency": tier["residency"],
            "tier": spec["tier"],
            "latency_ms": tier["latency_ms"],
            "throughput_tps": tier["throughput_tps"],
            **{k: tier[k] for k in ("tier_name", "provider_label", "cost_range", "models_label", "best_for")},
            "source": source,
        }
    )
    dep = EnvDeployment(fields, field_vars)
    out.deployments.append(dep)
    _add_groups(out.groups, out.deployments)
    out.groups["default"] = [dep.name]
    return out


# ---- provider credentials shared by GenAI Spine and conventional variables ----------------------

#: provider -> candidate variables holding its API key, preferred first.
CONVENTIONAL_KEYS: dict[str, tuple[str, ...]] = {
    "groq": ("GROQ_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
}
PROVIDER_ORDER: tuple[str, ...] = ("ollama", "groq", "gemini", "deepseek", "openai", "anthropic")


def _first_set(environ: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for n in names:
        if get(environ, n):
            return n
    return None


def _ollama_url(environ: Mapping[str, str], first: tuple[str, ...] = ()) -> tuple[str, str | None]:
    """(base URL, variable it came from) for Ollama; localhost when no variable says."""
    for var in (*first, "OLLAMA_BASE_URL", "OLLAMA_HOST"):
        value = get(environ, var)
        if value:
            try:
                return ollama_v1_url(value, host_form=var == "OLLAMA_HOST"), var
            except ValueError as exc:
                raise ValueError(f"{var}: {exc}") from None
    return ollama_v1_url("http://localhost:11434"), None


def _provider_deployments(
    environ: Mapping[str, str],
    provider: str,
    *,
    key_var: str | None,
    switched_by: str,
    url: tuple[str, str | None] | None = None,
) -> list[EnvDeployment]:
    out: list[EnvDeployment] = []
    for preset in PROVIDER_PRESETS[provider]:
        fields = _from_preset(preset)
        fields["name"] = preset
        field_vars: dict[str, str] = {}
        if key_var:
            fields["api_key"] = f"env:{key_var}"
            field_vars["api_key"] = key_var
        if provider == "ollama":
            assert url is not None
            fields["base_url"], url_var = url
            if url_var:
                field_vars["base_url"] = url_var
            model = get(environ, "OLLAMA_DEFAULT_MODEL")  # seed 002
            if model and model != fields["model"]:
                exact, base = _preset_for(model, tuple(n for n in PRESETS if n.startswith("ollama-")))
                keep = {k: fields[k] for k in ("base_url",)}
                fields = {**_from_preset(base), **keep, "model": model}
                fields["name"] = exact or _slug("ollama", model)
                field_vars["model"] = "OLLAMA_DEFAULT_MODEL"
        if provider == "openai" and get(environ, "OPENAI_BASE_URL"):
            fields["base_url"] = get(environ, "OPENAI_BASE_URL")
            field_vars["base_url"] = "OPENAI_BASE_URL"
        fields["source"] = f"env:{switched_by} (preset {preset})"
        out.append(EnvDeployment(fields, field_vars))
    return out


# ---- 2. GenAI Spine --------------------------------------------------------------------------

GENAI_PROVIDERS: tuple[str, ...] = PROVIDER_ORDER
_GENAI_TRIGGERS = (
    "GENAI_DEFAULT_PROVIDER",
    "GENAI_FALLBACK_CHAIN",
    "GENAI_OLLAMA_URL",
    *(f"GENAI_{p.upper()}_API_KEY" for p in GENAI_PROVIDERS if p != "ollama"),
)


def _genai(environ: Mapping[str, str]) -> EnvDeployments:
    out = EnvDeployments("GenAI Spine", "GenAI Spine: GENAI_*")
    valid = ", ".join(GENAI_PROVIDERS)
    named_by: dict[str, str] = {}  # provider -> the variable that asked for it
    order: list[str] = []

    default = get(environ, "GENAI_DEFAULT_PROVIDER")
    if default is not None:
        if default.lower() in GENAI_PROVIDERS:
            default = default.lower()
            named_by[default] = f"GENAI_DEFAULT_PROVIDER={default}"
        else:
            out.problems.append(f"GENAI_DEFAULT_PROVIDER: must be one of {valid} (got {default!r})")
            default = None

    chain_raw = get(environ, "GENAI_FALLBACK_CHAIN")
    chain: list[str] = []
    if chain_raw is not None:
        for item in (x.strip().lower() for x in chain_raw.split(",")):
            if not item:
                continue
            if item not in GENAI_PROVIDERS:
                out.problems.append(f"GENAI_FALLBACK_CHAIN: unknown provider {item!r} (valid: {valid})")
            elif item not in chain:
                chain.append(item)
                named_by.setdefault(item, "GENAI_FALLBACK_CHAIN")

    if chain:
        order = chain if default is None or default in chain else [default, *chain]
    else:
        order = [default] if default else []
        for p in GENAI_PROVIDERS:
            var = "GENAI_OLLAMA_URL" if p == "ollama" else f"GENAI_{p.upper()}_API_KEY"
            if p not in order and get(environ, var):
                order.append(p)
                named_by.setdefault(p, var)

    for provider in order:
        if provider == "ollama":
            try:
                url = _ollama_url(environ, ("GENAI_OLLAMA_URL",))
            except ValueError as exc:
                out.problems.append(str(exc))
                continue
            switched = url[1] if url[1] == "GENAI_OLLAMA_URL" else named_by[provider]
            out.deployments += _provider_deployments(
                environ, "ollama", key_var=None, switched_by=switched, url=url
            )
            continue
        candidates = (f"GENAI_{provider.upper()}_API_KEY", *CONVENTIONAL_KEYS[provider])
        key_var = _first_set(environ, candidates)
        if key_var is None:
            var = named_by[provider].split("=", 1)[0]
            out.problems.append(
                f"{var}: names {provider}, but no API key is set ({' or '.join(candidates)})"
            )
            continue
        out.deployments += _provider_deployments(
            environ, provider, key_var=key_var, switched_by=key_var
        )

    _add_groups(out.groups, out.deployments)
    if out.deployments:
        out.groups["default"] = [d.name for d in out.deployments]
    return out


# ---- 3. Conventional provider variables -------------------------------------------------------


def _conventional(environ: Mapping[str, str]) -> EnvDeployments:
    found: list[EnvDeployment] = []
    used: list[str] = []
    problems: list[str] = []
    for provider in PROVIDER_ORDER:
        if provider == "ollama":
            try:
                url = _ollama_url(environ)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            if url[1] is None:
                continue
            used.append(url[1])
            found += _provider_deployments(environ, "ollama", key_var=None, switched_by=url[1], url=url)
            continue
        key_var = _first_set(environ, CONVENTIONAL_KEYS[provider])
        if key_var:
            used.append(key_var)
            found += _provider_deployments(environ, provider, key_var=key_var, switched_by=key_var)
    out = EnvDeployments("provider variables", "provider variables: " + ", ".join(used), problems=problems)
    found.sort(key=lambda d: _LOCATION_RANK[d.fields["location"]])  # stable
    out.deployments = found
    _add_groups(out.groups, found)
    if found:
        out.groups["default"] = [d.name for d in found]
    return out


def env_deployments(environ: Mapping[str, str]) -> EnvDeployments | None:
    """Deployments defined by the first convention present in `environ`, or None."""
    provider = get(environ, "YONCA_LLM_PROVIDER")
    if provider is not None:
        return _alem(environ, provider)
    if any(get(environ, v) for v in _GENAI_TRIGGERS):
        return _genai(environ)
    conventional = _conventional(environ)
    return conventional if conventional.deployments or conventional.problems else None
