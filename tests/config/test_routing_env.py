"""Seed 002's routing variables: `LLM_STRATEGY`, `TIERGATE_ROUTING_STRATEGY`,
`MAX_CONCURRENT_LOCAL`/`_API` and `LOCAL_TIMEOUT_SEC`/`API_TIMEOUT_SEC`, with their precedence
against the config file, presets and built-in defaults."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tiergate.config import ConfigError, load_settings
from tiergate.config.models import STRATEGIES, Settings

Write = Callable[..., Path]

#: A file with one deployment per location: a preset with its own values (Ollama: 2 slots, 120 s),
#: a preset without them (AzInTelecom has 120 s, no cap), and a plain deployment.
THREE = """
deployments:
  - preset: ollama-llama3.2-3b
  - preset: azintelecom-llama-3.3-70b
    base_url: https://llm.gov.az/v1
  - name: plain-cloud
    base_url: https://api.example.com/v1
    model: m
    location: cloud
"""


def problems(path: Path | None, environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ)
    return list(info.value.problems)


def dep(settings: Settings, name: str) -> tuple[int | None, float]:
    d = settings.deployment(name)
    assert d is not None, name
    return d.max_concurrency, d.timeout_s


# ---- LLM_STRATEGY / TIERGATE_ROUTING_STRATEGY -----------------------------------------------


@pytest.mark.parametrize(
    ("value", "strategy", "locations"),
    [
        ("local", "local_first", ("local",)),
        ("hybrid", "balanced", ()),
        ("api-only", "cost_optimized", ("sovereign", "cloud")),
        ("API-Only", "cost_optimized", ("sovereign", "cloud")),
        ("api_only", "cost_optimized", ("sovereign", "cloud")),
        (" Hybrid ", "balanced", ()),
    ],
)
def test_llm_strategy_maps_onto_routing(value: str, strategy: str, locations: tuple[str, ...]) -> None:
    s = load_settings(None, {"LLM_STRATEGY": value})
    assert s.routing.default_strategy == strategy
    assert s.routing.allowed_locations == locations


def test_routing_defaults_without_variables() -> None:
    s = load_settings(None, {"LLM_STRATEGY": ""})  # empty counts as unset
    assert s.routing.default_strategy == "ordered"
    assert s.routing.allowed_locations == ()


def test_llm_strategy_unknown_value_names_variable_and_choices() -> None:
    assert problems(None, {"LLM_STRATEGY": "cloud"}) == [
        "LLM_STRATEGY: must be one of local, hybrid, api-only (got 'cloud')"
    ]


def test_file_strategy_beats_llm_strategy_as_a_whole(write: Write) -> None:
    path = write("routing:\n  default_strategy: quality\n")
    s = load_settings(path, {"LLM_STRATEGY": "local"})
    assert s.routing.default_strategy == "quality"
    # LLM_STRATEGY yields as a unit: its location restriction does not leak into the file's choice.
    assert s.routing.allowed_locations == ()


def test_file_allowed_locations_beat_llm_strategy_which_still_picks_the_strategy(write: Write) -> None:
    path = write("routing:\n  allowed_locations: [local, sovereign]\n")
    s = load_settings(path, {"LLM_STRATEGY": "local"})
    assert s.routing.default_strategy == "local_first"
    assert s.routing.allowed_locations == ("local", "sovereign")


def test_file_other_routing_keys_combine_with_llm_strategy(write: Write) -> None:
    path = write("routing:\n  max_failover_s: 12\n")
    s = load_settings(path, {"LLM_STRATEGY": "api-only"})
    assert s.routing.max_failover_s == 12
    assert s.routing.default_strategy == "cost_optimized"
    assert s.routing.allowed_locations == ("sovereign", "cloud")


@pytest.mark.parametrize("name", STRATEGIES)
def test_tiergate_routing_strategy_accepts_every_strategy(name: str) -> None:
    assert load_settings(None, {"TIERGATE_ROUTING_STRATEGY": name}).routing.default_strategy == name


def test_tiergate_routing_strategy_normalises_case_and_hyphens() -> None:
    s = load_settings(None, {"TIERGATE_ROUTING_STRATEGY": "Cost-Optimized"})
    assert s.routing.default_strategy == "cost_optimized"


def test_tiergate_routing_strategy_beats_file_and_llm_strategy(write: Write) -> None:
    path = write("routing:\n  default_strategy: quality\n")
    s = load_settings(path, {"TIERGATE_ROUTING_STRATEGY": "speed", "LLM_STRATEGY": "local"})
    assert s.routing.default_strategy == "speed"
    assert s.routing.allowed_locations == ()
    s = load_settings(None, {"TIERGATE_ROUTING_STRATEGY": "speed", "LLM_STRATEGY": "api-only"})
    assert (s.routing.default_strategy, s.routing.allowed_locations) == ("speed", ())


def test_tiergate_routing_strategy_keeps_file_allowed_locations(write: Write) -> None:
    path = write("routing:\n  allowed_locations: [cloud]\n")
    s = load_settings(path, {"TIERGATE_ROUTING_STRATEGY": "quality"})
    assert (s.routing.default_strategy, s.routing.allowed_locations) == ("quality", ("cloud",))


def test_tiergate_routing_strategy_unknown_value() -> None:
    assert problems(None, {"TIERGATE_ROUTING_STRATEGY": "fastest"}) == [
        f"TIERGATE_ROUTING_STRATEGY: must be one of {', '.join(STRATEGIES)} (got 'fastest')"
    ]


def test_bad_strategy_variables_are_reported_together_with_file_problems(write: Write) -> None:
    path = write("routing:\n  default_strategy: fastest\n")
    assert problems(path, {"LLM_STRATEGY": "x", "MAX_CONCURRENT_API": "0"}) == [
        "LLM_STRATEGY: must be one of local, hybrid, api-only (got 'x')",
        "MAX_CONCURRENT_API: must be an integer >= 1 (got '0')",
        f"{path}: routing.default_strategy: must be one of {', '.join(STRATEGIES)} (got 'fastest')",
    ]


# ---- MAX_CONCURRENT_* / *_TIMEOUT_SEC: deployments from a file -------------------------------


SEED = {"MAX_CONCURRENT_LOCAL": "1", "MAX_CONCURRENT_API": "10", "LOCAL_TIMEOUT_SEC": "10", "API_TIMEOUT_SEC": "30"}


def test_without_variables_presets_and_built_in_defaults_apply(write: Write) -> None:
    s = load_settings(write(THREE), {})
    assert dep(s, "ollama-llama3.2-3b") == (2, 120.0)  # preset
    assert dep(s, "azintelecom-llama-3.3-70b") == (None, 120.0)  # preset timeout, no cap
    assert dep(s, "plain-cloud") == (None, 60.0)  # built-in defaults


def test_seed_variables_beat_presets_and_built_in_defaults_by_location(write: Write) -> None:
    s = load_settings(write(THREE), SEED)
    assert dep(s, "ollama-llama3.2-3b") == (1, 10.0)  # local -> LOCAL
    assert dep(s, "azintelecom-llama-3.3-70b") == (10, 30.0)  # sovereign -> API
    assert dep(s, "plain-cloud") == (10, 30.0)  # cloud -> API


def test_value_written_in_file_beats_seed_variable(write: Write) -> None:
    path = write(
        """
deployments:
  - preset: ollama-llama3.2-3b
    max_concurrency: 4
  - name: plain-cloud
    base_url: https://api.example.com/v1
    model: m
    location: cloud
    timeout_s: 90
  - name: uncapped
    base_url: https://api.example.com/v1
    model: m
    location: cloud
    max_concurrency: null
"""
    )
    s = load_settings(path, SEED)
    assert dep(s, "ollama-llama3.2-3b") == (4, 10.0)  # file's cap, LOCAL_TIMEOUT_SEC
    assert dep(s, "plain-cloud") == (10, 90.0)  # MAX_CONCURRENT_API, file's timeout
    assert dep(s, "uncapped") == (None, 30.0)  # an explicit null in the file is a value too


def test_only_some_variables_set(write: Write) -> None:
    s = load_settings(write(THREE), {"API_TIMEOUT_SEC": "2.5", "MAX_CONCURRENT_LOCAL": "3"})
    assert dep(s, "ollama-llama3.2-3b") == (3, 120.0)
    assert dep(s, "azintelecom-llama-3.3-70b") == (None, 2.5)
    assert dep(s, "plain-cloud") == (None, 2.5)


def test_location_from_the_preset_decides(write: Write) -> None:
    path = write("deployments:\n  - preset: openai-gpt-4o\n    name: gpt\n")
    s = load_settings(path, {"MAX_CONCURRENT_LOCAL": "1", "MAX_CONCURRENT_API": "7"})
    assert dep(s, "gpt") == (7, 60.0)


def test_location_written_in_file_overrides_the_presets_location(write: Write) -> None:
    # A preset moved on-prem by the file counts as local.
    path = write("deployments:\n  - preset: openai-gpt-4o\n    name: gpt\n    location: local\n")
    s = load_settings(path, {"MAX_CONCURRENT_LOCAL": "1", "MAX_CONCURRENT_API": "7"})
    assert dep(s, "gpt") == (1, 60.0)


# ---- ... deployments from the environment conventions and simulated defaults ----------------


def test_provider_variables_get_seed_values(write: Write) -> None:
    env = {"OLLAMA_BASE_URL": "http://localhost:11434", "DEEPSEEK_API_KEY": "sk-x", **SEED}
    s = load_settings(None, env)
    assert dep(s, "ollama-llama3.2-3b") == (1, 10.0)
    assert dep(s, "deepseek-chat") == (10, 30.0)
    assert dep(s, "deepseek-coder") == (10, 30.0)


def test_alem_and_genai_deployments_get_seed_values() -> None:
    s = load_settings(None, {"YONCA_LLM_PROVIDER": "ollama", "LOCAL_TIMEOUT_SEC": "15"})
    (d,) = s.deployments
    assert (d.max_concurrency, d.timeout_s) == (2, 15.0)  # preset cap, seed timeout
    s = load_settings(None, {"GENAI_OPENAI_API_KEY": "sk", "MAX_CONCURRENT_API": "5"})
    assert {d.max_concurrency for d in s.deployments} == {5}


def test_file_without_deployments_plus_environment_deployments(write: Write) -> None:
    path = write("routing:\n  default_strategy: speed\n")
    s = load_settings(path, {"OPENAI_API_KEY": "sk", "API_TIMEOUT_SEC": "20", "LLM_STRATEGY": "local"})
    assert s.routing.default_strategy == "speed"
    assert {d.timeout_s for d in s.deployments} == {20.0}


def test_simulated_defaults_get_seed_values() -> None:
    s = load_settings(None, SEED)
    assert dep(s, "sim-local") == (1, 10.0)
    assert dep(s, "sim-sovereign") == (10, 30.0)
    assert dep(s, "sim-cloud") == (10, 30.0)


def test_the_full_seed_env_block() -> None:
    """Seed 002's `.env` as written (its API keys switch on the conventional presets)."""
    env = {
        "LLM_STRATEGY": "hybrid", "OLLAMA_BASE_URL": "http://localhost:11434",
        "OLLAMA_DEFAULT_MODEL": "llama3.2:3b-instruct-q4_K_M", "OLLAMA_KEEP_ALIVE": "30m",
        "OPENAI_API_KEY": "sk-...", "OPENAI_ORG_ID": "org-...", "DEEPSEEK_API_KEY": "sk-...",
        "GOOGLE_API_KEY": "AIza...", "DEFAULT_PRIVACY_LEVEL": "PRIVATE",
        "LOCAL_TIMEOUT_SEC": "10", "API_TIMEOUT_SEC": "30", "MAX_CONCURRENT_LOCAL": "2", "MAX_CONCURRENT_API": "10",
    }
    s = load_settings(None, env)
    assert s.routing.default_strategy == "balanced"
    assert s.privacy.default_level == "PRIVATE"
    for d in s.deployments:
        expected = (2, 10.0) if d.location == "local" else (10, 30.0)
        assert (d.max_concurrency, d.timeout_s) == expected, d.name
    assert {d.location for d in s.deployments} == {"local", "cloud"}


# ---- bad values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("MAX_CONCURRENT_LOCAL", "0", "must be an integer >= 1 (got '0')"),
        ("MAX_CONCURRENT_LOCAL", "-3", "must be an integer >= 1 (got '-3')"),
        ("MAX_CONCURRENT_API", "2.5", "must be an integer >= 1 (got '2.5')"),
        ("MAX_CONCURRENT_API", "ten", "must be an integer >= 1 (got 'ten')"),
        ("LOCAL_TIMEOUT_SEC", "0", "must be a number of seconds > 0 (got '0')"),
        ("LOCAL_TIMEOUT_SEC", "10s", "must be a number of seconds > 0 (got '10s')"),
        ("API_TIMEOUT_SEC", "-1", "must be a number of seconds > 0 (got '-1')"),
        ("API_TIMEOUT_SEC", "inf", "must be a number of seconds > 0 (got 'inf')"),
        ("API_TIMEOUT_SEC", "nan", "must be a number of seconds > 0 (got 'nan')"),
    ],
)
def test_bad_values_name_the_variable(var: str, value: str, message: str) -> None:
    assert problems(None, {var: value}) == [f"{var}: {message}"]


def test_all_bad_values_are_reported_at_once(write: Write) -> None:
    env = {"MAX_CONCURRENT_LOCAL": "x", "MAX_CONCURRENT_API": "0", "LOCAL_TIMEOUT_SEC": "-", "API_TIMEOUT_SEC": "0"}
    assert [p.split(":", 1)[0] for p in problems(write(THREE), env)] == [
        "MAX_CONCURRENT_LOCAL", "MAX_CONCURRENT_API", "LOCAL_TIMEOUT_SEC", "API_TIMEOUT_SEC",
    ]


def test_empty_values_count_as_unset(write: Write) -> None:
    env = {k: " " for k in SEED}
    s = load_settings(write(THREE), env)
    assert dep(s, "ollama-llama3.2-3b") == (2, 120.0)
    assert dep(s, "plain-cloud") == (None, 60.0)


def test_surrounding_spaces_and_float_notation_are_accepted() -> None:
    s = load_settings(None, {"MAX_CONCURRENT_LOCAL": " 3 ", "LOCAL_TIMEOUT_SEC": "1e1"})
    assert dep(s, "sim-local") == (3, 10.0)


def test_a_bad_value_in_the_file_is_still_reported_against_the_file(write: Write) -> None:
    path = write("deployments:\n  - preset: ollama-llama3.2-3b\n    max_concurrency: 0\n")
    assert problems(path, {"MAX_CONCURRENT_LOCAL": "2"}) == [
        f"{path}: deployments[0].max_concurrency: must be >= 1 (got 0)"
    ]
