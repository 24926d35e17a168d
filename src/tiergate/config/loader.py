"""Load and validate `Settings` from a YAML file and the environment.

Precedence, strongest first (docs/configuration.md has the full story):

* `server`, `store`, `privacy`: `TIERGATE_*` variables > the config file > the seeds' generic
  variables (`GENAI_DATABASE_URL`, `DEFAULT_PRIVACY_LEVEL`) > built-in defaults.
* deployments: the config file's `deployments` (if it lists any) > the environment conventions
  (`YONCA_*`, then `GENAI_*`, then `OPENAI_API_KEY` & co., first present wins) > the simulated
  demo deployments (only when nothing defines one and `allow_simulated_default` is true).
* model groups: the file's `model_groups` are laid over the groups the environment or the
  simulated defaults generate (a file group of the same name replaces the generated one).
* `routing.default_strategy`: `TIERGATE_ROUTING_STRATEGY` > the file > seed 002's `LLM_STRATEGY`
  (which also sets `allowed_locations`, unless the file does) > `ordered`.
* a deployment's `max_concurrency` and `timeout_s`: the value the file writes for it > seed 002's
  `MAX_CONCURRENT_LOCAL`/`_API`, `LOCAL_TIMEOUT_SEC`/`API_TIMEOUT_SEC` (by location) > its
  preset's value > the built-in default.

Every problem is collected and reported at once in a `ConfigError`, one line each, naming the
file (or variable), the key path and what is wrong. Secret values are never echoed.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..cache.config import CacheConfig
from ..privacy.levels import parse_level
from . import env as envconv
from .errors import ConfigError
from .models import (
    BudgetsConfig,
    Deployment,
    Price,
    PrivacyConfig,
    RedisConfig,
    RoutingConfig,
    ServerConfig,
    Settings,
    StoreConfig,
)
from .presets import ALEM_TIERS, AZINTELECOM_EXAMPLE_BASE_URL, PRESETS, VERTEX_LABEL

DEFAULT_FILE = "tiergate.yaml"
SIMULATED_ORIGIN = "simulated defaults (no deployment configured)"
SIMULATED_SOURCE = "simulated default"

#: Fields set by the loader, not by users.
LOADER_ONLY: dict[type[BaseModel], frozenset[str]] = {
    Settings: frozenset({"origin"}),
    Deployment: frozenset({"source", "simulated"}),
}
SECTIONS: dict[str, type[BaseModel]] = {
    "server": ServerConfig, "store": StoreConfig, "privacy": PrivacyConfig, "routing": RoutingConfig,
    "budgets": BudgetsConfig, "redis": RedisConfig, "cache": CacheConfig,
}
#: Wire formats whose deployments need a base URL. The native adapters have their provider's
#: default endpoint (Anthropic's, Gemini's AI Studio or Vertex AI, local Ollama, AWS Bedrock).
URL_REQUIRED = ("openai",)
#: Keys whose values may be (or contain) secrets: never shown in messages.
SECRET_KEYS = frozenset({"api_key", "master_key", "url", "base_url", "headers"})

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    allow_simulated_default: bool = True,
) -> Settings:
    """Load, merge and validate the configuration.

    `path` None: `$TIERGATE_CONFIG` if set, else `./tiergate.yaml` if it exists, else no file.
    `environ` None: `os.environ`.

    Raises:
        ConfigError: every problem found (one line each), e.g.
            `tiergate.yaml: deployments[2].location: must be one of local, sovereign, cloud (got 'moon')`.
    """
    return _Loader(dict(os.environ if environ is None else environ)).load(path, allow_simulated_default)


def allowed_keys(model: type[BaseModel]) -> list[str]:
    """The keys a config file may use in the section validated by `model`."""
    keys = [k for k in model.model_fields if k not in LOADER_ONLY.get(model, ())]
    if model is Deployment:
        keys.append("preset")
    return keys


def format_loc(loc: tuple[Any, ...] | list[Any]) -> str:
    """`('deployments', 2, 'price', 'input')` -> `deployments[2].price.input`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (key)"
        elif _PLAIN_KEY.match(str(part)):
            out += ("." if out else "") + str(part)
        else:
            out += '["' + str(part).replace('"', '\\"') + '"]'
    return out


def simulated_deployments() -> list[dict[str, Any]]:
    """The three demo deployments (base_url filled in by the gateway when it starts them)."""
    common = {
        "provider": "openai",
        "base_url": "",
        "capabilities": ("tools", "json", "streaming"),
        "provider_label": "tiergate simulator",
        "source": SIMULATED_SOURCE,
    }
    rows = [
        ("sim-local", "local", "on-prem", "IV", "llama3.2:3b", ("0", "0"), 0.45, 131072),
        ("sim-sovereign", "sovereign", "AZ", "III", "llama-3.3-70b", ("0", "0"), 0.78, 131072),
        ("sim-cloud", "cloud", "US", "I", "gpt-4o-mini", ("0.15", "0.60"), 0.75, 128000),
    ]
    out = []
    for name, location, residency, tier, model, (pin, pout), quality, ctx in rows:
        out.append(
            {
                **common,
                "name": name,
                "model": model,
                "location": location,
                "residency": residency,
                "tier": tier,
                "price": {"input": Decimal(pin), "output": Decimal(pout)},
                "latency_ms": ALEM_TIERS[tier]["latency_ms"],
                "throughput_tps": ALEM_TIERS[tier]["throughput_tps"],
                "quality": quality,
                "context_length": ctx,
                "simulated": location,
            }
        )
    return out


def simulated_groups() -> dict[str, list[str]]:
    names = ["sim-local", "sim-sovereign", "sim-cloud"]
    groups: dict[str, list[str]] = {"assistant": list(names), "default": list(names)}
    for d in simulated_deployments():
        groups[d["name"]] = [d["name"]]
        groups[d["model"]] = [d["name"]]
    return groups


# ---------------------------------------------------------------------------------------------
# YAML reading
# ---------------------------------------------------------------------------------------------


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that records duplicate mapping keys instead of silently keeping the last."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[int, str]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    self.duplicates.append((key_node.start_mark.line + 1, key_node.value))
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(label: str, path: Path, problems: list[str]) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        problems.append(f"{label}: cannot read: not UTF-8 text")
        return None
    except OSError as exc:
        problems.append(f"{label}: cannot read: {exc.strerror or exc}")
        return None
    loader = _YamlLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context and exc.context_mark and exc.context_mark is not mark:
            what += f" ({exc.context} started at line {exc.context_mark.line + 1})"
        problems.append(f"{label}: {where}YAML syntax error: {what}")
        return None
    except yaml.YAMLError as exc:
        problems.append(f"{label}: YAML syntax error: {exc}")
        return None
    finally:
        loader.dispose()
    for line, key in loader.duplicates:
        problems.append(f"{label}: line {line}: duplicate key {key!r} (only one value may be given)")
    return data


# ---------------------------------------------------------------------------------------------
# The loader
# ---------------------------------------------------------------------------------------------


@dataclass
class _DepMeta:
    label: str  # file label or the deployment's source
    in_file: bool
    field_vars: dict[str, str] = field(default_factory=dict)
    preset: str | None = None


class _Loader:
    def __init__(self, environ: dict[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []
        self.file_label: str | None = None
        self.metas: list[_DepMeta] = []
        self.var_locs: dict[tuple[str, str], str] = {}
        self.location_defaults: dict[str, tuple[envconv.FieldDefault, ...]] = {}

    # -- where a problem is -------------------------------------------------------------------

    def _at(self, loc: tuple[Any, ...] | list[Any]) -> str:
        return f"{self.file_label or 'settings'}: {format_loc(loc)}"

    def _where(self, loc: tuple[Any, ...]) -> str:
        if len(loc) >= 2 and loc[0] == "deployments" and isinstance(loc[1], int) and loc[1] < len(self.metas):
            meta = self.metas[loc[1]]
            if len(loc) >= 3 and loc[2] in meta.field_vars:
                return meta.field_vars[str(loc[2])]
            if meta.in_file:
                return self._at(loc)
            return f"{meta.label}: {format_loc(loc[2:]) or 'deployment'}"
        if len(loc) >= 2 and (loc[0], loc[1]) in self.var_locs:
            return self.var_locs[(loc[0], loc[1])]
        return self._at(loc)

    # -- main -----------------------------------------------------------------------------------

    def load(self, path: str | os.PathLike[str] | None, allow_simulated_default: bool) -> Settings:
        raw, file_ok = self._read(path)
        doc = self._top_level(raw)

        strong, weak, env_problems = envconv.overrides(self.environ)
        self.problems += env_problems
        self._sections(doc, strong, weak)
        self.location_defaults, default_problems = envconv.location_defaults(self.environ)
        self.problems += default_problems

        deployments, groups, origin = self._deployments(doc, file_ok, allow_simulated_default)
        self._check_deployments(deployments)
        model_groups = self._groups(doc, groups, deployments)

        data: dict[str, Any] = {k: doc[k] for k in SECTIONS if k in doc}
        if doc.get("teams") is not None:
            data["teams"] = doc["teams"]
        data["deployments"] = deployments
        data["model_groups"] = model_groups
        data["origin"] = origin
        settings: Settings | None = None
        try:
            settings = Settings.model_validate(data)
        except ValidationError as exc:
            self.problems += self._translate(exc)
        if self.problems or settings is None:
            raise ConfigError(self._ordered(_dedupe(self.problems)))
        return settings

    def _ordered(self, problems: list[str]) -> list[str]:
        """Problems in file order (sections, then deployment index); others first, as found."""
        ranks = {name: i + 1 for i, name in enumerate(allowed_keys(Settings))}
        prefix = f"{self.file_label}: " if self.file_label else None

        def key(item: tuple[int, str]) -> tuple[int, int, int]:
            pos, text = item
            if prefix and text.startswith(prefix):
                m = re.match(r"([A-Za-z_]+)(?:\[(\d+)\])?", text[len(prefix) :])
                if m and m.group(1) in ranks:
                    return (ranks[m.group(1)], int(m.group(2) or -1), pos)
            return (0, 0, pos)

        return [text for _, text in sorted(enumerate(problems), key=key)]

    def _read(self, path: str | os.PathLike[str] | None) -> tuple[Any, bool]:
        """(parsed document or None, whether the file, if any, was read and parsed)."""
        if path is None:
            configured = envconv.get(self.environ, "TIERGATE_CONFIG")
            if configured is not None:
                if not Path(configured).expanduser().is_file():
                    self.problems.append(f"TIERGATE_CONFIG: config file not found: {configured}")
                    return None, False
                path = configured
            elif Path(DEFAULT_FILE).is_file():
                path = DEFAULT_FILE
            else:
                return None, True
        label = os.fspath(path)
        self.file_label = label
        p = Path(label).expanduser()
        if not p.exists():
            self.problems.append(f"{label}: config file not found")
            return None, False
        if p.is_dir():
            self.problems.append(f"{label}: is a directory, not a config file")
            return None, False
        before = len(self.problems)
        data = _read_yaml(label, p, self.problems)
        return data, len(self.problems) == before

    def _top_level(self, raw: Any) -> dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.problems.append(f"{self.file_label}: the top level must be a mapping (got {_kind(raw)})")
            return {}
        allowed = allowed_keys(Settings)
        doc: dict[str, Any] = {}
        for key, value in raw.items():
            if key in allowed:
                doc[key] = value
            else:
                self.problems.append(f"{self._at([str(key)])}: {_unknown(key, allowed)}")
        return doc

    def _sections(self, doc: dict[str, Any], strong: list[envconv.Override], weak: list[envconv.Override]) -> None:
        for name in SECTIONS:
            if doc.get(name) is None and name in doc:
                doc[name] = {}  # `server:` with nothing under it
        privacy = doc.get("privacy")
        if isinstance(privacy, dict) and isinstance(privacy.get("default_level"), str):
            try:
                privacy["default_level"] = parse_level(privacy["default_level"]).name
            except ValueError as exc:
                self.problems.append(f"{self._at(['privacy', 'default_level'])}: {exc}")
                del privacy["default_level"]
        in_file = {name: set(sec) for name, sec in doc.items() if name in SECTIONS and isinstance(sec, dict)}
        for ov in weak:
            section = doc.setdefault(ov.section, {})
            written = in_file.get(ov.section, set())
            if not isinstance(section, dict) or ov.key in written:
                continue
            if ov.unless_set is None or ov.unless_set not in written:
                section[ov.key] = ov.value
                self.var_locs[(ov.section, ov.key)] = ov.var
        for ov in strong:
            section = doc.setdefault(ov.section, {})
            if isinstance(section, dict):
                section[ov.key] = ov.value
                self.var_locs[(ov.section, ov.key)] = ov.var

    # -- deployments ----------------------------------------------------------------------------

    def _deployments(
        self, doc: dict[str, Any], file_ok: bool, allow_simulated: bool
    ) -> tuple[list[Any], dict[str, list[str]], str]:
        listed = doc.get("deployments")
        if listed is not None and not isinstance(listed, list):
            self.problems.append(f"{self._at(['deployments'])}: must be a list (got {_kind(listed)})")
            listed = None
        if listed:
            return [self._file_deployment(i, item) for i, item in enumerate(listed)], {}, str(self.file_label)

        found = envconv.env_deployments(self.environ)
        if found is not None:
            self.problems += found.problems
            if found.deployments:
                out = []
                for d in found.deployments:
                    meta = _DepMeta(str(d.fields["source"]), False, dict(d.field_vars))
                    self.metas.append(meta)
                    self._location_defaults(d.fields, (), meta)
                    out.append(d.fields)
                origin = f"environment ({found.description})"
                if self.file_label:
                    origin = f"{self.file_label} + {origin}"
                return out, found.groups, origin
            return [], {}, "environment"

        if allow_simulated:
            sims = simulated_deployments()
            for sim in sims:
                meta = _DepMeta(SIMULATED_SOURCE, False)
                self.metas.append(meta)
                self._location_defaults(sim, (), meta)
            return sims, simulated_groups(), SIMULATED_ORIGIN

        if file_ok and not self.problems:
            where = f"{self.file_label}: deployments" if self.file_label else "configuration"
            self.problems.append(
                f"{where}: no deployment configured (list deployments in tiergate.yaml or set "
                "provider variables such as YONCA_LLM_PROVIDER, OPENAI_API_KEY or OLLAMA_HOST; "
                "see docs/configuration.md)"
            )
        return [], {}, str(self.file_label or "defaults")

    def _file_deployment(self, i: int, item: Any) -> Any:
        meta = _DepMeta(str(self.file_label), True)
        self.metas.append(meta)
        loc: list[Any] = ["deployments", i]
        if not isinstance(item, dict):
            return item  # pydantic reports "must be a mapping"
        item = dict(item)
        for key in LOADER_ONLY[Deployment]:
            if key in item:
                del item[key]
                self.problems.append(f"{self._at([*loc, key])}: set by tiergate; not allowed in a config file")
        preset_name = item.pop("preset", None)
        merged: dict[str, Any] = {}
        if preset_name is not None:
            if isinstance(preset_name, str) and preset_name in PRESETS:
                merged = copy.deepcopy(PRESETS[preset_name])
                merged["name"] = preset_name
                meta.preset = preset_name
            else:
                close = difflib.get_close_matches(str(preset_name), PRESETS, n=1)
                hint = f" did you mean {close[0]!r}?" if close else ""
                meta.preset = ""  # unknown: the base URL check would only add noise
                self.problems.append(
                    f"{self._at([*loc, 'preset'])}: unknown preset {preset_name!r};{hint} "
                    f"(known: {', '.join(PRESETS)})"
                )
        merged = _merge(merged, item)
        self._location_defaults(merged, item, meta)
        self._region_defaults(loc, item, merged)
        if "residency" not in merged and merged.get("location") == "local":
            merged["residency"] = "on-prem"
        merged["source"] = f"{self.file_label}:deployments[{i}]"
        return merged

    def _location_defaults(self, fields: dict[str, Any], written: Container[str], meta: _DepMeta) -> None:
        """Seed 002's per-location values (`MAX_CONCURRENT_*`, `*_TIMEOUT_SEC`) for the fields the
        file did not write (`written`: the file's keys for this deployment). They replace a
        preset's value: the operator's environment knows its hardware better than a preset."""
        location = fields.get("location")
        if not isinstance(location, str):
            return
        for default in self.location_defaults.get(location, ()):
            if default.key not in written:
                fields[default.key] = default.value
                meta.field_vars[default.key] = default.var

    def _region_defaults(self, loc: list[Any], item: dict[str, Any], merged: dict[str, Any]) -> None:
        """What a deployment's cloud region implies, unless the file says otherwise: Gemini with a
        `project` is Vertex AI (base_url built from project and region, replacing a preset's AI
        Studio URL); a Bedrock or Vertex AI deployment's residency follows its region."""
        provider, project, region = merged.get("provider"), merged.get("project"), merged.get("region")
        vertex = provider == "gemini" and isinstance(project, str) and bool(project)
        if not (vertex or provider == "bedrock"):
            return
        if not isinstance(region, str) or not region:
            if vertex and "base_url" not in item:
                self.problems.append(
                    f"{self._at([*loc, 'region'])}: required with project (the Vertex AI location, "
                    "e.g. europe-west4), or set base_url"
                )
            return
        try:
            region = envconv.check_region(region)
        except ValueError as exc:
            self.problems.append(f"{self._at([*loc, 'region'])}: {exc}")
            return
        merged["region"] = region
        if vertex and "base_url" not in item:
            merged["base_url"] = envconv.vertex_base_url(str(project), region)
            if "provider_label" not in item:
                merged["provider_label"] = VERTEX_LABEL
        if "residency" not in item:
            merged["residency"] = envconv.residency_for_region(region)

    def _check_deployments(self, deployments: list[Any]) -> None:
        first_at: dict[str, int] = {}
        for i, d in enumerate(deployments):
            if not isinstance(d, dict):
                continue
            meta = self.metas[i]
            name = d.get("name")
            if isinstance(name, str):
                if name in first_at:
                    self.problems.append(
                        f"{self._where(('deployments', i, 'name'))}: duplicate deployment name "
                        f"{name!r} (first at deployments[{first_at[name]}])"
                    )
                else:
                    first_at[name] = i
            provider = d.get("provider", "openai")
            if (
                meta.preset != ""
                and not d.get("simulated")
                and provider in URL_REQUIRED
                and ("base_url" not in d or d["base_url"] == "")
            ):
                hint = ""
                if meta.preset and not PRESETS[meta.preset].get("base_url"):
                    hint = f" (preset {meta.preset} has no default endpoint; e.g. {AZINTELECOM_EXAMPLE_BASE_URL})"
                self.problems.append(
                    f"{self._where(('deployments', i, 'base_url'))}: required for provider {provider}{hint}"
                )
            self._check_ref(("deployments", i, "api_key"), d.get("api_key"))
            headers = d.get("headers")
            if isinstance(headers, dict):
                for h, v in headers.items():
                    self._check_ref(("deployments", i, "headers", str(h)), v)

    def _check_ref(self, loc: tuple[Any, ...], value: Any) -> None:
        """`env:NAME` must name a variable; `file:PATH` must exist. Never echoes the value."""
        if not isinstance(value, str):
            return
        if value.startswith("env:"):
            if not _ENV_NAME.match(value[4:]):
                self.problems.append(
                    f"{self._where(loc)}: env: reference must name an environment variable "
                    "(e.g. env:OPENAI_API_KEY)"
                )
        elif value.startswith("file:"):
            target = value[5:]
            if not target:
                self.problems.append(f"{self._where(loc)}: file: reference must name a file")
            elif not Path(target).expanduser().is_file():
                self.problems.append(f"{self._where(loc)}: secret file not found: {target}")

    # -- model groups ---------------------------------------------------------------------------

    def _groups(
        self, doc: dict[str, Any], generated: dict[str, list[str]], deployments: list[Any]
    ) -> dict[str, list[str]]:
        server = doc.get("server")
        if isinstance(server, dict):
            self._check_ref(("server", "master_key"), server.get("master_key"))
        groups = {k: list(v) for k, v in generated.items()}
        raw = doc.get("model_groups")
        if raw is None:
            return groups
        if not isinstance(raw, dict):
            self.problems.append(
                f"{self._at(['model_groups'])}: must be a mapping of group name -> list of "
                f"deployment names (got {_kind(raw)})"
            )
            return groups
        names = list(
            dict.fromkeys(d["name"] for d in deployments if isinstance(d, dict) and isinstance(d.get("name"), str))
        )
        known = set(names)
        for group, members in raw.items():
            loc: list[Any] = ["model_groups", str(group)]
            if not isinstance(group, str) or not group:
                self.problems.append(f"{self._at(['model_groups'])}: group names must be strings (got {group!r})")
                continue
            if isinstance(members, str):
                members = [members]  # `assistant: office-llama` is a one-deployment group
            if not isinstance(members, list):
                self.problems.append(f"{self._at(loc)}: must be a list of deployment names (got {_kind(members)})")
                continue
            if not members:
                self.problems.append(f"{self._at(loc)}: must list at least one deployment")
                continue
            ok: list[str] = []
            for j, m in enumerate(members):
                if not isinstance(m, str):
                    self.problems.append(f"{self._at([*loc, j])}: must be a deployment name (got {_show(m)})")
                elif m not in known:
                    self.problems.append(
                        f"{self._at([*loc, j])}: unknown deployment {m!r} (known: {', '.join(names) or 'none'})"
                    )
                elif m in ok:
                    self.problems.append(f"{self._at([*loc, j])}: {m!r} is listed twice")
                else:
                    ok.append(m)
            if group in known and ok != [group]:
                self.problems.append(
                    f"{self._at(loc)}: {group!r} is a deployment name; a group of that name would "
                    "hide it (choose another group name)"
                )
            groups[group] = ok
        return groups

    # -- pydantic errors -> plain messages ----------------------------------------------------

    def _translate(self, exc: ValidationError) -> list[str]:
        out = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            secret = any(isinstance(p, str) and p in SECRET_KEYS for p in loc)
            if err["type"] == "extra_forbidden":
                model = _model_at(loc[:-1])
                msg = _unknown(loc[-1], allowed_keys(model)) if model else "unknown key"
            else:
                msg = _message(err, secret)
            out.append(f"{self._where(loc)}: {msg}")
        return out


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    if not loc:
        return Settings
    if len(loc) == 1 and loc[0] in SECTIONS:
        return SECTIONS[loc[0]]
    if loc[0] == "deployments" and len(loc) == 2:
        return Deployment
    if loc[0] == "deployments" and len(loc) == 3 and loc[2] == "price":
        return Price
    return None


def _unknown(key: Any, allowed: list[str]) -> str:
    close = difflib.get_close_matches(str(key), allowed, n=1) if isinstance(key, str) else []
    hint = f", did you mean {close[0]!r}?" if close else ""
    return f"unknown key{hint} (allowed: {', '.join(allowed)})"


def _kind(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    return type(value).__name__


def _show(value: Any) -> str:
    if value is None or isinstance(value, (dict, list, tuple)):
        return _kind(value)
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return repr(text)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _message(err: Any, secret: bool) -> str:
    t: str = err["type"]
    ctx = err.get("ctx") or {}
    got = "" if secret else f" (got {_show(err.get('input'))})"
    if t == "missing":
        return "required"
    if t == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"must be one of {', '.join(options)}{got}"
    if t.startswith("int_"):
        return f"must be an integer{got}"
    if t.startswith(("float_", "decimal_")):
        return f"must be a number{got}"
    if t.startswith("bool_"):
        return f"must be true or false{got}"
    if t in ("string_type", "string_unicode"):
        return f"must be a string{got}"
    if t == "string_too_short":
        n = ctx.get("min_length", 1)
        return "must not be empty" if n == 1 else f"must be at least {n} characters"
    if t == "string_pattern_mismatch":
        return f"may only contain letters, digits and . : / @ -{got}"
    bounds = {
        "greater_than_equal": (">=", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
    }
    if t in bounds:
        op, key = bounds[t]
        return f"must be {op} {_num(ctx.get(key))}{got}"
    kind = "" if secret else f" (got {_kind(err.get('input'))})"
    if t in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping{kind}"
    if t in ("tuple_type", "list_type", "iterable_type"):
        return f"must be a list{kind}"
    if t == "value_error":
        error = ctx.get("error")
        return f"{error if error is not None else err['msg']}{got}"
    msg = str(err["msg"])
    return (msg[:1].lower() + msg[1:]) + got


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _dedupe(problems: list[str]) -> list[str]:
    return list(dict.fromkeys(problems))  # keeps the first of each, in order
