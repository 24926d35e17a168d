"""Every kind of mistake gives one line naming the file (or variable), the key and the problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tiergate.config import ConfigError, load_settings

GOOD_DEPLOYMENT = """\
  - name: office-llama
    base_url: http://127.0.0.1:11434/v1
    model: llama3.2:3b
    location: local
"""


def problems(path: Path | None, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ or {})
    err = info.value
    assert str(err) == "\n".join(err.problems)
    return err.problems


def only(path: Path, environ: dict[str, str] | None = None) -> str:
    found = problems(path, environ)
    assert len(found) == 1, found
    return found[0]


def test_location_enum(write: Callable[..., Path]) -> None:
    p = write("deployments:\n" + GOOD_DEPLOYMENT.replace("location: local", "location: moon"))
    assert only(p) == f"{p}: deployments[0].location: must be one of local, sovereign, cloud (got 'moon')"


def test_unknown_key_lists_allowed_and_suggests(write: Callable[..., Path]) -> None:
    p = write("deployments:\n" + GOOD_DEPLOYMENT + "    colour: blue\n    modle: x\n")
    found = problems(p)
    assert found[0].startswith(f"{p}: deployments[0].colour: unknown key (allowed: name, provider, base_url, ")
    assert "preset" in found[0]
    assert found[1].startswith(f"{p}: deployments[0].modle: unknown key, did you mean 'model'?")


def test_unknown_top_level_and_section_keys(write: Callable[..., Path]) -> None:
    p = write("deployment: []\nserver: {prot: 1}\norigin: me\n")
    found = problems(p)
    assert f"{p}: deployment: unknown key, did you mean 'deployments'? (allowed: server, store, privacy, routing, budgets, teams, redis, cache, deployments, model_groups)" in found
    assert any(f.startswith(f"{p}: server.prot: unknown key, did you mean 'port'?") for f in found)
    assert any(f.startswith(f"{p}: origin: unknown key") for f in found)


def test_unknown_deployment_in_group(write: Callable[..., Path]) -> None:
    p = write(
        "deployments:\n" + GOOD_DEPLOYMENT + GOOD_DEPLOYMENT.replace("office-llama", "b")
        + "model_groups:\n  assistant: [office-llama, nope]\n"
    )
    assert only(p) == f"{p}: model_groups.assistant[1]: unknown deployment 'nope' (known: office-llama, b)"


def test_duplicate_name(write: Callable[..., Path]) -> None:
    p = write("deployments:\n" + GOOD_DEPLOYMENT + GOOD_DEPLOYMENT)
    assert only(p) == f"{p}: deployments[1].name: duplicate deployment name 'office-llama' (first at deployments[0])"


def test_wrong_type(write: Callable[..., Path]) -> None:
    p = write("server: {port: eighty}\ndeployments:\n" + GOOD_DEPLOYMENT)
    assert only(p) == f"{p}: server.port: must be an integer (got 'eighty')"


def test_negative_price(write: Callable[..., Path]) -> None:
    p = write("deployments:\n" + GOOD_DEPLOYMENT + "    price: {input: -1, output: 0.5}\n")
    assert only(p) == f"{p}: deployments[0].price.input: must be >= 0 (got -1)"


def test_base_url_required(write: Callable[..., Path]) -> None:
    p = write("deployments:\n  - {name: a, model: m, location: cloud}\n")
    assert only(p) == f"{p}: deployments[0].base_url: required for provider openai"


def test_yaml_syntax_error_has_line(write: Callable[..., Path]) -> None:
    p = write("server:\n  port: 8100\ndeployments:\n  - name: a\n    model: [x\n")
    msg = only(p)
    assert msg.startswith(f"{p}: line ") and "YAML syntax error" in msg
    assert "line 5" in msg  # where the unclosed flow sequence started


def test_yaml_duplicate_key_has_line(write: Callable[..., Path]) -> None:
    p = write("server:\n  port: 1\n  port: 2\ndeployments:\n" + GOOD_DEPLOYMENT)
    assert only(p) == f"{p}: line 3: duplicate key 'port' (only one value may be given)"


def test_bad_tiergate_port_names_the_variable(write: Callable[..., Path]) -> None:
    p = write("deployments:\n" + GOOD_DEPLOYMENT)
    assert only(p, {"TIERGATE_PORT": "abc"}) == "TIERGATE_PORT: must be an integer (got 'abc')"
    assert only(p, {"TIERGATE_PORT": "70000"}) == "TIERGATE_PORT: must be <= 65535 (got '70000')"
    assert only(p, {"TIERGATE_DEFAULT_PRIVACY": "secret-ish"}) == (
        "TIERGATE_DEFAULT_PRIVACY: must be one of PRIVATE, SENSITIVE, PUBLIC (got 'secret-ish')"
    )


def test_missing_files_are_named(tmp_path: Path) -> None:
    assert only(tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: config file not found"
    assert problems(None, {"TIERGATE_CONFIG": "/no/such/file.yaml"}) == [
        "TIERGATE_CONFIG: config file not found: /no/such/file.yaml"
    ]


def test_all_problems_reported_together(write: Callable[..., Path]) -> None:
    p = write(
        """\
server: {port: abc, colour: red}
privacy: {default_level: moon}
deployments:
  - name: a
    base_url: http://127.0.0.1:1/v1
    model: m
    location: moon
    price: {input: -1}
  - name: a
    model: m
    location: local
  - preset: groq-maverik
model_groups:
  assistant: [a, nope]
"""
    )
    found = problems(p, {"TIERGATE_WORKERS": "many"})
    expected = [
        "TIERGATE_WORKERS: must be an integer (got 'many')",
        f"{p}: server.port: must be an integer (got 'abc')",
        f"{p}: server.colour: unknown key",
        f"{p}: privacy.default_level: must be one of PRIVATE, SENSITIVE, PUBLIC (got 'moon')",
        f"{p}: deployments[0].location: must be one of local, sovereign, cloud (got 'moon')",
        f"{p}: deployments[0].price.input: must be >= 0 (got -1)",
        f"{p}: deployments[1].name: duplicate deployment name 'a'",
        f"{p}: deployments[1].base_url: required for provider openai",
        f"{p}: deployments[2].preset: unknown preset 'groq-maverik'; did you mean 'groq-maverick'?",
        f"{p}: model_groups.assistant[1]: unknown deployment 'nope' (known: a)",
    ]
    for e in expected:
        assert any(f.startswith(e) for f in found), (e, found)
    # in file order: server before privacy before deployments before model_groups
    idx = [next(i for i, f in enumerate(found) if f.startswith(e)) for e in expected[1:]]
    assert idx == sorted(idx)


def test_loader_only_fields_are_rejected(write: Callable[..., Path]) -> None:
    p = write("deployments:\n" + GOOD_DEPLOYMENT + "    simulated: cloud\n    source: me\n")
    found = problems(p)
    assert f"{p}: deployments[0].simulated: set by tiergate; not allowed in a config file" in found
    assert f"{p}: deployments[0].source: set by tiergate; not allowed in a config file" in found


def test_top_level_must_be_mapping(write: Callable[..., Path]) -> None:
    p = write("- a\n- b\n")
    assert only(p) == f"{p}: the top level must be a mapping (got a list)"


def test_group_shapes(write: Callable[..., Path]) -> None:
    p = write(
        "deployments:\n" + GOOD_DEPLOYMENT
        + "model_groups:\n  empty: []\n  twice: [office-llama, office-llama]\n  office-llama: [office-llama]\n"
        "  single: office-llama\n"
    )
    found = problems(p)
    assert found == [
        f"{p}: model_groups.empty: must list at least one deployment",
        f"{p}: model_groups.twice[1]: 'office-llama' is listed twice",
    ]


def test_base_url_with_a_bad_port_is_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tiergate.config import ConfigError, load_settings

    cfg = tmp_path / "tiergate.yaml"
    cfg.write_text("deployments:\n  - {name: x, model: m, base_url: 'http://127.0.0.1:NGINX_PORT/v1', location: local}\n")
    try:
        load_settings(cfg, environ={})
    except ConfigError as exc:
        assert "deployments[0].base_url" in str(exc) and "invalid port" in str(exc)
    else:
        raise AssertionError("a base_url with a non-numeric port was accepted")
