"""Environment variables: `TIERGATE_*` overrides and the seeds' provider conventions.

Three conventions can define deployments when the config file defines none. They are not mixed:
the first one present wins, in this order (so an `OPENAI_API_KEY` lying around in a shell never
adds a cloud deployment to an ALEM or GenAI Spine setup):

1. ALEM (seed 000): `YONCA_LLM_PROVIDER=groq|gemini|azintelecom|ollama` -> one deployment with
   the ALEM tier data.
2. GenAI Spine (seed 001): `GENAI_DEFAULT_PROVIDER`, `GENAI_FALLBACK_CHAIN`, `GENAI_OLLAMA_URL`,
   `GENAI_<PROVIDER>_API_KEY`, `GENAI_BEDROCK_MODEL` -> preset deployments, group `default` in
   fallback-chain order.
3. Conventional provider variables: `OLLAMA_HOST` / `OLLAMA_BASE_URL`, `GROQ_API_KEY`,
   `GEMINI_API_KEY` / `GOOGLE_API_KEY` (or Vertex AI: `GOOGLE_CLOUD_PROJECT` +
   `GOOGLE_CLOUD_LOCATION`), `DEEPSEEK_API_KEY`, `OPENAI_API_KEY`, `ANTHROPIC_API_KEY`,
   `BEDROCK_MODEL_ID` -> preset deployments, group `default` ordered local -> sovereign -> cloud.

Every deployment uses its provider's native adapter (`gemini`, `anthropic`, `ollama`, `bedrock`;
`openai` for OpenAI-compatible providers). API keys become `env:NAME` references; values are never
copied into the settings or messages. AWS credentials are never read here at all: the Bedrock
adapter takes them from botocore's credential chain when it signs a request. Where a cloud region
is configured (Bedrock, Vertex AI) the residency follows it. Empty variables count as unset.

Seed 002's routing variables apply whichever convention (or file) defines the deployments:
`LLM_STRATEGY=local|hybrid|api-only` picks `routing.default_strategy` (and `allowed_locations`)
unless the file or `TIERGATE_ROUTING_STRATEGY` does; `MAX_CONCURRENT_LOCAL`/`_API` and
`LOCAL_TIMEOUT_SEC`/`API_TIMEOUT_SEC` give deployments' `max_concurrency`/`timeout_s` by location.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..privacy.levels import parse_level
from .models import STRATEGIES
from .presets import (
    ALEM_PROVIDERS,
    ALEM_TIERS,
    BEDROCK_DEFAULT_REGION,
    GEMINI_LABEL,
    OLLAMA_BASE_URL,
    PRESETS,
    PROVIDER_PRESETS,
    REGION_PREFIX_RESIDENCY,
    REGION_RESIDENCY,
    VERTEX_ADC_TOKEN_COMMAND,
    VERTEX_BASE_URL,
    VERTEX_LABEL,
    VERTEX_TOKEN_COMMAND,
)

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
    "TIERGATE_ROUTING_STRATEGY": ("routing", "default_strategy"),
    "TIERGATE_REDIS_URL": ("redis", "url"),
    "TIERGATE_BUDGET_DAILY_USD": ("budgets", "daily_usd"),
    "TIERGATE_BUDGET_MONTHLY_USD": ("budgets", "monthly_usd"),
}

#: variable -> (section, key). Used only when neither the file nor a TIERGATE_* variable sets it.
FALLBACKS: dict[str, tuple[str, str]] = {
    "GENAI_DATABASE_URL": ("store", "url"),  # seed 001
    "DEFAULT_PRIVACY_LEVEL": ("privacy", "default_level"),  # seed 002
    "GENAI_REDIS_URL": ("redis", "url"),  # seed 001
    "GENAI_BUDGET_DAILY": ("budgets", "daily_usd"),  # seed 001
    "LLM_MONTHLY_BUDGET": ("budgets", "monthly_usd"),  # seed 002
    "COST_ALERT_THRESHOLD": ("budgets", "alert_threshold"),  # seed 002
    "EMERGENCY_LOCAL_ONLY": ("budgets", "emergency_local_only"),  # seed 002
}

#: Accepted and ignored (no error): seed variables tiergate does not use.
IGNORED: tuple[str, ...] = ()


#: Seed 002's `LLM_STRATEGY` -> routing settings (a fallback: see `overrides`). `local` keeps every
#: request on the premises; `api-only` never uses local models; `hybrid` weighs all locations.
LLM_STRATEGIES: dict[str, dict[str, Any]] = {
    "local": {"default_strategy": "local_first", "allowed_locations": ("local",)},
    "hybrid": {"default_strategy": "balanced"},
    "api-only": {"default_strategy": "cost_optimized", "allowed_locations": ("sovereign", "cloud")},
}


@dataclass(frozen=True)
class Override:
    section: str
    key: str
    value: Any
    var: str
    #: For fallbacks: also skipped when the file sets this key of the section (so one variable
    #: that sets several keys yields as a whole to the file's choice of the leading one).
    unless_set: str | None = None


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
            if key == "default_strategy":
                try:
                    value = parse_strategy(value)
                except ValueError as exc:
                    problems.append(f"{var}: {exc}")
                    continue
            out.append(Override(section, key, value, var))
        return out

    strong = collect(OVERRIDES)
    if get(environ, "TIERGATE_MASTER_KEY") is not None:
        # A reference, never the value: resolved when a request is authenticated.
        strong.append(Override("server", "master_key", "env:TIERGATE_MASTER_KEY", "TIERGATE_MASTER_KEY"))
    weak = collect(FALLBACKS)
    llm = _llm_strategy(environ, problems)
    if not any(o.key == "default_strategy" for o in strong):
        weak += llm
    return strong, weak, problems


def parse_strategy(value: str) -> str:
    """A routing strategy name (`Cost-Optimized` -> `cost_optimized`); ValueError otherwise."""
    name = value.strip().lower().replace("-", "_")
    if name not in STRATEGIES:
        raise ValueError(f"must be one of {', '.join(STRATEGIES)} (got {value!r})")
    return name


def _llm_strategy(environ: Mapping[str, str], problems: list[str]) -> list[Override]:
    """Seed 002's `LLM_STRATEGY=local|hybrid|api-only` as routing fallbacks. The keys it sets
    go together: when the file chooses `routing.default_strategy`, none of them applies."""
    raw = get(environ, "LLM_STRATEGY")
    if raw is None:
        return []
    mapped = LLM_STRATEGIES.get(raw.lower().replace("_", "-"))
    if mapped is None:
        problems.append(f"LLM_STRATEGY: must be one of {', '.join(LLM_STRATEGIES)} (got {raw!r})")
        return []
    return [
        Override("routing", key, value, "LLM_STRATEGY", None if key == "default_strategy" else "default_strategy")
        for key, value in mapped.items()
    ]


# ---------------------------------------------------------------------------------------------
# Seed 002's per-location deployment defaults
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldDefault:
    """A deployment field's value by location, and the variable it came from."""

    key: str
    value: int | float
    var: str


#: variable -> (deployment field, locations it applies to, integer?).
LOCATION_DEFAULTS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "MAX_CONCURRENT_LOCAL": ("max_concurrency", ("local",), True),
    "MAX_CONCURRENT_API": ("max_concurrency", ("sovereign", "cloud"), True),
    "LOCAL_TIMEOUT_SEC": ("timeout_s", ("local",), False),
    "API_TIMEOUT_SEC": ("timeout_s", ("sovereign", "cloud"), False),
}


def location_defaults(environ: Mapping[str, str]) -> tuple[dict[str, tuple[FieldDefault, ...]], list[str]]:
    """(location -> the deployment field defaults the seed variables give it, problems).

    They beat a preset's value and the built-in default, never a value the config file writes
    for the deployment (the loader applies them)."""
    out: dict[str, list[FieldDefault]] = {}
    problems: list[str] = []
    for var, (name, locations, integer) in LOCATION_DEFAULTS.items():
        raw = get(environ, var)
        if raw is None:
            continue
        try:
            value = _positive_int(raw) if integer else _positive_seconds(raw)
        except ValueError as exc:
            problems.append(f"{var}: {exc}")
            continue
        for location in locations:
            out.setdefault(location, []).append(FieldDefault(name, value, var))
    return {k: tuple(v) for k, v in out.items()}, problems


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"must be an integer >= 1 (got {raw!r})") from None
    if value < 1:
        raise ValueError(f"must be an integer >= 1 (got {raw!r})")
    return value


def _positive_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"must be a number of seconds > 0 (got {raw!r})") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"must be a number of seconds > 0 (got {raw!r})")
    return value


# ---------------------------------------------------------------------------------------------
# Endpoint helpers (also used by the loader for deployments in a file)
# ---------------------------------------------------------------------------------------------

_REGION = re.compile(r"^(?:[a-z]+(?:-[a-z0-9]+)+|global)$")
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9.:-]*$")
#: A Bedrock cross-region inference profile id starts with its geography (`us.anthropic...`).
_BEDROCK_PROFILE = re.compile(r"^(?:us|us-gov|eu|apac|ca|jp|au|global)\.")


def residency_for_region(region: str) -> str:
    """The residency code of an AWS or Google Cloud region (`eu-central-1` -> `EU`,
    `europe-west2` -> `GB`). A region in no table is its own residency: shown as it is rather
    than guessed."""
    r = region.strip().lower()
    if r in REGION_RESIDENCY:
        return REGION_RESIDENCY[r]
    for prefix, code in REGION_PREFIX_RESIDENCY.items():
        if r.startswith(prefix):
            return code
    return r


def check_region(value: str) -> str:
    """A cloud region name, normalised; ValueError for anything that cannot be one (it becomes
    part of a host name)."""
    region = value.strip().lower()
    if not _REGION.match(region):
        raise ValueError(f"not a cloud region name (got {value!r}), e.g. eu-central-1 or europe-west4")
    return region


def vertex_base_url(project: str, region: str) -> str:
    """Gemini's base URL on Vertex AI for a project and location (`global`: no host prefix)."""
    host = "" if region == "global" else f"{region}-"
    return VERTEX_BASE_URL.format(host=host, project=project, region=region)


def ollama_root_url(value: str, *, host_form: bool = False) -> str:
    """An Ollama address -> the server root the native adapter calls (`http://host:11434`).

    People paste Ollama's OpenAI-compatible URL (`.../v1`) or its API prefix (`.../api`); both
    are dropped. An address without a scheme gets `http://` and, without a port, Ollama's 11434.
    `host_form` is for `OLLAMA_HOST`, read the way Ollama reads it: it may also name the
    listen-on-all address (`0.0.0.0:11434` -> `http://127.0.0.1:11434`), and with an explicit
    scheme the scheme's own port applies (`https://ollama.lan` is port 443, as in Ollama).
    """
    url = value.strip()
    had_scheme = "://" in url
    if not had_scheme:
        url = "http://" + url
    if host_form or not had_scheme:
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        try:
            port = parts.port or (None if had_scheme else 11434)
        except ValueError:
            raise ValueError(f"not a valid Ollama address (got {value!r})") from None
        url = f"{parts.scheme}://{host}{f':{port}' if port else ''}{parts.path}"
    url = url.rstrip("/")
    for suffix in ("/v1", "/api"):
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url


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

    @property
    def embeddings_only(self) -> bool:
        return tuple(self.fields.get("capabilities", ())) == ("embeddings",)


@dataclass
class EnvDeployments:
    convention: str  # "ALEM" | "GenAI Spine" | "provider variables"
    description: str  # for Settings.origin, e.g. "ALEM: YONCA_LLM_PROVIDER=groq"
    deployments: list[EnvDeployment] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass
class _Target:
    """What the environment says about one provider: fields laid over each of its presets."""

    switched_by: str  # the variable named in each deployment's `source`
    fields: dict[str, Any] = field(default_factory=dict)
    field_vars: dict[str, str] = field(default_factory=dict)
    #: A model the environment names: one deployment of it instead of the provider's presets.
    model: str | None = None
    model_var: str | None = None


_LOCATION_RANK = {"local": 0, "sovereign": 1, "cloud": 2}
_NAME_BAD = re.compile(r"[^A-Za-z0-9.@-]+")


def _slug(provider: str, model: str) -> str:
    tail = _NAME_BAD.sub("-", model.rsplit("/", 1)[-1]).strip("-") or "model"
    return tail if tail.startswith(provider) else f"{provider}-{tail}"


def _preset_for(model: str, candidates: tuple[str, ...]) -> tuple[str | None, str]:
    """(preset whose model is exactly `model` or else None, preset to start from)."""
    for name in candidates:
        if PRESETS[name]["model"] == model:
            return name, name
    # A variant of a preset's model (e.g. gemini-2.0-flash-exp): its data, another model id.
    prefixed = [n for n in candidates if model.startswith(PRESETS[n]["model"])]
    if prefixed:
        return None, max(prefixed, key=lambda n: len(PRESETS[n]["model"]))
    # An unknown model: an embedding model starts from an embedding preset, others from a chat one.
    embedding = [n for n in candidates if PRESETS[n].get("capabilities") == ("embeddings",)]
    if "embed" in model.lower() and embedding:
        return None, embedding[0]
    chat = [n for n in candidates if n not in embedding]
    return None, (chat or list(candidates))[0]


def _family(provider: str) -> tuple[str, ...]:
    """The presets a model named for `provider` may be matched against."""
    return tuple(n for n, p in PRESETS.items() if p["provider"] == provider)


def _from_preset(preset: str) -> dict[str, Any]:
    return copy.deepcopy(PRESETS[preset])


def _first_set(environ: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for n in names:
        if get(environ, n):
            return n
    return None


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


def _finish_groups(out: EnvDeployments) -> None:
    """Per-name and per-model groups, `default` (chat models; the order given) and `embeddings`.

    Embedding-only deployments stay out of `default` (a chat request routed to one would fail)
    unless nothing else is configured."""
    _add_groups(out.groups, out.deployments)
    chat = [d.name for d in out.deployments if not d.embeddings_only]
    embed = [d.name for d in out.deployments if d.embeddings_only]
    if out.deployments:
        out.groups["default"] = chat or embed
    if embed:
        out.groups.setdefault("embeddings", embed)


def _target_deployments(provider: str, target: _Target) -> list[EnvDeployment]:
    """The provider's presets (or the one model the environment names) with the target laid over."""
    if target.model:
        lookup = _BEDROCK_PROFILE.sub("", target.model) if provider == "bedrock" else target.model
        exact, base = _preset_for(lookup, _family(provider))
        chosen = [(exact or _slug(provider, target.model), base)]
    else:
        chosen = [(p, p) for p in PROVIDER_PRESETS[provider]]
    out: list[EnvDeployment] = []
    for name, preset in chosen:
        fields = {**_from_preset(preset), **copy.deepcopy(target.fields), "name": name}
        field_vars = dict(target.field_vars)
        if target.model:
            fields["model"] = target.model
            if target.model_var:
                field_vars["model"] = target.model_var
        fields["source"] = f"env:{target.switched_by} (preset {preset})"
        out.append(EnvDeployment(fields, field_vars))
    return out


# ---- provider targets: what each provider's variables say --------------------------------------

#: provider -> candidate variables holding its API key, preferred first.
CONVENTIONAL_KEYS: dict[str, tuple[str, ...]] = {
    "groq": ("GROQ_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
}
PROVIDER_ORDER: tuple[str, ...] = ("ollama", "groq", "gemini", "deepseek", "openai", "anthropic", "bedrock")
#: Where Bedrock's region comes from, after a convention's own variable (BEDROCK_REGION, GENAI_...).
AWS_REGION_VARS: tuple[str, ...] = ("AWS_REGION", "AWS_DEFAULT_REGION")
VERTEX_VARS = ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION")


def _ollama_target(environ: Mapping[str, str], url_vars: tuple[str, ...]) -> _Target:
    """Ollama's address (the first of `url_vars` set, else localhost), `OLLAMA_DEFAULT_MODEL`
    and `OLLAMA_KEEP_ALIVE` (seed 002). `switched_by` is the address variable used, or ""."""
    target = _Target("", {"base_url": OLLAMA_BASE_URL})
    url_var = _first_set(environ, url_vars)
    if url_var:
        try:
            target.fields["base_url"] = ollama_root_url(str(get(environ, url_var)), host_form=url_var == "OLLAMA_HOST")
        except ValueError as exc:
            raise ValueError(f"{url_var}: {exc}") from None
        target.field_vars["base_url"] = target.switched_by = url_var
    keep_alive = get(environ, "OLLAMA_KEEP_ALIVE")
    if keep_alive:
        target.fields["keep_alive"] = keep_alive
        target.field_vars["keep_alive"] = "OLLAMA_KEEP_ALIVE"
    model = get(environ, "OLLAMA_DEFAULT_MODEL")
    if model:
        target.model, target.model_var = model, "OLLAMA_DEFAULT_MODEL"
    return target


def _key_target(environ: Mapping[str, str], provider: str, candidates: tuple[str, ...]) -> _Target | None:
    """An API-key provider: the first key variable set (as a reference), or None."""
    key_var = _first_set(environ, candidates)
    if key_var is None:
        return None
    target = _Target(key_var, {"api_key": f"env:{key_var}"}, {"api_key": key_var})
    if provider == "openai" and get(environ, "OPENAI_BASE_URL"):
        target.fields["base_url"] = get(environ, "OPENAI_BASE_URL")
        target.field_vars["base_url"] = "OPENAI_BASE_URL"
    return target


def _vertex_wanted(environ: Mapping[str, str], key_vars: tuple[str, ...]) -> bool:
    """Vertex AI rather than AI Studio? Google's own switch `GOOGLE_GENAI_USE_VERTEXAI` decides
    when set; otherwise a Gemini key beats `GOOGLE_CLOUD_PROJECT` + `GOOGLE_CLOUD_LOCATION`, and
    those beat the generic `GOOGLE_API_KEY` (which many Google APIs use)."""
    flag = get(environ, "GOOGLE_GENAI_USE_VERTEXAI")
    if flag is not None:
        return flag.lower() in ("true", "1", "yes", "on")
    if _first_set(environ, tuple(v for v in key_vars if v != "GOOGLE_API_KEY")):
        return False
    return all(get(environ, v) for v in VERTEX_VARS)


def _vertex_target(environ: Mapping[str, str]) -> _Target:
    """Gemini on Vertex AI in `GOOGLE_CLOUD_LOCATION`; the residency follows the location and the
    bearer token comes from gcloud (Application Default Credentials when
    `GOOGLE_APPLICATION_CREDENTIALS` names a service-account file)."""
    project, location = (get(environ, v) for v in VERTEX_VARS)
    if not (project and location):
        raise ValueError(
            "GOOGLE_GENAI_USE_VERTEXAI: Vertex AI needs GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION "
            "(e.g. europe-west4)"
        )
    if not _PROJECT.match(project):
        raise ValueError(f"GOOGLE_CLOUD_PROJECT: not a Google Cloud project id (got {project!r})")
    try:
        region = check_region(location)
    except ValueError as exc:
        raise ValueError(f"GOOGLE_CLOUD_LOCATION: {exc}") from None
    adc = get(environ, "GOOGLE_APPLICATION_CREDENTIALS")
    fields = {
        "base_url": vertex_base_url(project, region),
        "project": project,
        "region": region,
        "token_command": VERTEX_ADC_TOKEN_COMMAND if adc else VERTEX_TOKEN_COMMAND,
        "api_key": None,
        "residency": residency_for_region(region),
        "provider_label": VERTEX_LABEL,
    }
    field_vars = {"project": "GOOGLE_CLOUD_PROJECT", "region": "GOOGLE_CLOUD_LOCATION"}
    return _Target("GOOGLE_CLOUD_PROJECT", fields, field_vars)


def _gemini_target(environ: Mapping[str, str], key_vars: tuple[str, ...]) -> _Target | None:
    """Gemini on AI Studio (an API key) or on Vertex AI (see `_vertex_wanted`), or None."""
    if _vertex_wanted(environ, key_vars):
        return _vertex_target(environ)
    target = _key_target(environ, "gemini", key_vars)
    if target is not None:
        target.fields["provider_label"] = GEMINI_LABEL
    return target


def _bedrock_target(
    environ: Mapping[str, str], model_vars: tuple[str, ...], region_vars: tuple[str, ...], switched_by: str
) -> _Target:
    """Bedrock in the first region variable set (else us-east-1, seed 004's), the residency
    following the region (a `global.` inference profile has none). Credentials are not read."""
    region_var = _first_set(environ, region_vars)
    region = BEDROCK_DEFAULT_REGION
    if region_var:
        try:
            region = check_region(str(get(environ, region_var)))
        except ValueError as exc:
            raise ValueError(f"{region_var}: {exc}") from None
    model_var = _first_set(environ, model_vars)
    model = get(environ, model_var) if model_var else None
    residency = "global" if model and model.startswith("global.") else residency_for_region(region)
    target = _Target(model_var or switched_by, {"region": region, "residency": residency}, model=model)
    target.model_var = model_var
    if region_var:
        target.field_vars["region"] = region_var
    return target


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
    field_vars: dict[str, str] = {}
    # The tier's figures; a provider target below may refine residency and label.
    fields: dict[str, Any] = {
        "location": tier["location"],
        "residency": tier["residency"],
        "tier": spec["tier"],
        "latency_ms": tier["latency_ms"],
        "throughput_tps": tier["throughput_tps"],
        **{k: tier[k] for k in ("tier_name", "provider_label", "cost_range", "models_label", "best_for")},
        "base_url": spec["default_base_url"],
        "api_key": None,
    }

    model = get(environ, spec["model_var"]) or spec["default_model"]
    if get(environ, spec["model_var"]):
        field_vars["model"] = spec["model_var"]

    try:
        target = _alem_target(environ, provider, spec)
    except ValueError as exc:
        out.problems.append(str(exc))
        return out
    if target is not None:
        fields.update(target.fields)
        field_vars.update(target.field_vars)

    family = tuple(n for n, p in PRESETS.items() if p.get("tier") == spec["tier"])
    exact, base = _preset_for(model, family)
    dep = EnvDeployment(
        {
            **_from_preset(base),
            **fields,
            "name": exact or _slug(provider, model),
            "model": model,
            "source": f"env:YONCA_LLM_PROVIDER={provider}",
        },
        field_vars,
    )
    out.deployments.append(dep)
    _finish_groups(out)
    return out


def _alem_target(environ: Mapping[str, str], provider: str, spec: dict[str, Any]) -> _Target | None:
    """The ALEM provider's own variables; ValueError names a missing or bad one."""
    if provider == "ollama":
        return _ollama_target(environ, (spec["url_var"],))
    if provider == "gemini":
        target = _gemini_target(environ, (spec["key_var"],))
        if target is None:
            raise ValueError(
                f"{spec['key_var']}: required when YONCA_LLM_PROVIDER=gemini "
                "(or GOOGLE_CLOUD_PROJECT + GOOGLE_CLOUD_LOCATION for Gemini on Vertex AI)"
            )
        return target
    target = _key_target(environ, provider, (spec["key_var"],))
    if target is None and provider == "groq":
        raise ValueError(f"{spec['key_var']}: required when YONCA_LLM_PROVIDER={provider}")
    url_var = spec["url_var"]
    if url_var:  # azintelecom: the endpoint has no default
        if not get(environ, url_var):
            raise ValueError(
                f"{url_var}: required when YONCA_LLM_PROVIDER={provider} "
                "(the OpenAI-compatible endpoint, e.g. https://llm.gov.az/v1)"
            )
        target = target or _Target(url_var)
        target.fields["base_url"] = get(environ, url_var)
        target.field_vars["base_url"] = url_var
    return target


# ---- 2. GenAI Spine --------------------------------------------------------------------------

GENAI_PROVIDERS: tuple[str, ...] = PROVIDER_ORDER
#: provider -> the GENAI_* variable that switches it on without a fallback chain.
_GENAI_SWITCH = {
    p: {"ollama": "GENAI_OLLAMA_URL", "bedrock": "GENAI_BEDROCK_MODEL"}.get(p, f"GENAI_{p.upper()}_API_KEY")
    for p in GENAI_PROVIDERS
}
_GENAI_TRIGGERS = ("GENAI_DEFAULT_PROVIDER", "GENAI_FALLBACK_CHAIN", *_GENAI_SWITCH.values())


def _genai_order(environ: Mapping[str, str], out: EnvDeployments) -> tuple[list[str], dict[str, str]]:
    """(providers in fallback order, provider -> the variable that asked for it)."""
    valid = ", ".join(GENAI_PROVIDERS)
    named_by: dict[str, str] = {}
    default = get(environ, "GENAI_DEFAULT_PROVIDER")
    if default is not None:
        if default.lower() in GENAI_PROVIDERS:
            default = default.lower()
            named_by[default] = f"GENAI_DEFAULT_PROVIDER={default}"
        else:
            out.problems.append(f"GENAI_DEFAULT_PROVIDER: must be one of {valid} (got {default!r})")
            default = None

    chain: list[str] = []
    for item in (x.strip().lower() for x in (get(environ, "GENAI_FALLBACK_CHAIN") or "").split(",")):
        if not item:
            continue
        if item not in GENAI_PROVIDERS:
            out.problems.append(f"GENAI_FALLBACK_CHAIN: unknown provider {item!r} (valid: {valid})")
        elif item not in chain:
            chain.append(item)
            named_by.setdefault(item, "GENAI_FALLBACK_CHAIN")

    if chain:
        return (chain if default is None or default in chain else [default, *chain]), named_by
    order = [default] if default else []
    for p in GENAI_PROVIDERS:
        if p not in order and get(environ, _GENAI_SWITCH[p]):
            order.append(p)
            named_by.setdefault(p, _GENAI_SWITCH[p])
    return order, named_by


def _genai_target(environ: Mapping[str, str], provider: str, named_by: str) -> _Target:
    """One provider the GenAI variables ask for; ValueError says what is missing."""
    if provider == "ollama":
        target = _ollama_target(environ, ("GENAI_OLLAMA_URL", "OLLAMA_BASE_URL", "OLLAMA_HOST"))
        if target.switched_by != "GENAI_OLLAMA_URL":
            target.switched_by = named_by
        return target
    if provider == "bedrock":
        return _bedrock_target(
            environ,
            ("GENAI_BEDROCK_MODEL", "BEDROCK_MODEL_ID"),
            ("GENAI_BEDROCK_REGION", "BEDROCK_REGION", *AWS_REGION_VARS),
            named_by,
        )
    candidates = (f"GENAI_{provider.upper()}_API_KEY", *CONVENTIONAL_KEYS[provider])
    if provider == "gemini":
        target = _gemini_target(environ, candidates)
        wanted = f"{' or '.join(candidates)}, or {' + '.join(VERTEX_VARS)} for Vertex AI"
    else:
        target = _key_target(environ, provider, candidates)
        wanted = " or ".join(candidates)
    if target is None:
        var = named_by.split("=", 1)[0]
        raise ValueError(f"{var}: names {provider}, but no API key is set ({wanted})")
    return target


def _genai(environ: Mapping[str, str]) -> EnvDeployments:
    out = EnvDeployments("GenAI Spine", "GenAI Spine: GENAI_*")
    order, named_by = _genai_order(environ, out)
    for provider in order:
        try:
            target = _genai_target(environ, provider, named_by[provider])
        except ValueError as exc:
            out.problems.append(str(exc))
            continue
        out.deployments += _target_deployments(provider, target)
    _finish_groups(out)
    return out


# ---- 3. Conventional provider variables -------------------------------------------------------


def _conventional_target(environ: Mapping[str, str], provider: str) -> _Target | None:
    """The provider's target if its own variables switch it on, else None."""
    if provider == "ollama":
        if not _first_set(environ, ("OLLAMA_BASE_URL", "OLLAMA_HOST")):
            return None
        return _ollama_target(environ, ("OLLAMA_BASE_URL", "OLLAMA_HOST"))
    if provider == "bedrock":
        if not get(environ, "BEDROCK_MODEL_ID"):
            return None  # AWS credentials alone are everywhere: the model id is the switch
        return _bedrock_target(environ, ("BEDROCK_MODEL_ID",), ("BEDROCK_REGION", *AWS_REGION_VARS), "BEDROCK_MODEL_ID")
    if provider == "gemini":
        keys = CONVENTIONAL_KEYS["gemini"]
        if not (_first_set(environ, keys) or all(get(environ, v) for v in VERTEX_VARS)):
            return None
        return _gemini_target(environ, keys)
    return _key_target(environ, provider, CONVENTIONAL_KEYS[provider])


def _conventional(environ: Mapping[str, str]) -> EnvDeployments:
    found: list[EnvDeployment] = []
    used: list[str] = []
    problems: list[str] = []
    for provider in PROVIDER_ORDER:
        try:
            target = _conventional_target(environ, provider)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if target is not None:
            used.append(target.switched_by)
            found += _target_deployments(provider, target)
    out = EnvDeployments("provider variables", "provider variables: " + ", ".join(used), problems=problems)
    found.sort(key=lambda d: _LOCATION_RANK[d.fields["location"]])  # stable
    out.deployments = found
    _finish_groups(out)
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
