"""Secret references resolve; literal secrets never appear in messages, repr or the banner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tiergate.banner import banner_text
from tiergate.config import ConfigError, SecretRef, load_settings

LITERAL = "sk-LITERAL-very-secret-0123456789"
DB_PASSWORD = "db-pass-9876"


def test_env_and_file_references_resolve(tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text("from-file\n")
    assert SecretRef("env:MY_KEY").resolve({"MY_KEY": "from-env"}) == "from-env"
    assert SecretRef("env:MY_KEY").resolve({}) is None
    assert SecretRef(f"file:{key_file}").resolve() == "from-file"
    assert SecretRef("env:MY_KEY").display == "env:MY_KEY"
    assert SecretRef(LITERAL).display == "<inline secret>"


def test_references_in_config_are_kept_as_references(write: Callable[..., Path], tmp_path: Path) -> None:
    key_file = tmp_path / "office.key"
    key_file.write_text("file-secret")
    p = write(
        f"""\
deployments:
  - name: a
    base_url: http://127.0.0.1:1/v1
    model: m
    location: local
    api_key: env:OFFICE_KEY
  - name: b
    base_url: http://127.0.0.1:2/v1
    model: m
    location: local
    api_key: file:{key_file}
"""
    )
    s = load_settings(p, {"OFFICE_KEY": "env-secret"})
    a, b = s.deployments
    assert a.api_key == "env:OFFICE_KEY" and SecretRef(a.api_key).resolve({"OFFICE_KEY": "env-secret"}) == "env-secret"
    assert b.api_key == f"file:{key_file}" and SecretRef(b.api_key).resolve() == "file-secret"
    assert "env-secret" not in repr(s) and "file-secret" not in repr(s)


def test_bad_references_are_reported(write: Callable[..., Path]) -> None:
    p = write(
        """\
server: {master_key: "file:/no/such/master.key"}
deployments:
  - {name: a, base_url: "http://h/v1", model: m, location: local, api_key: "env:"}
  - {name: b, base_url: "http://h/v1", model: m, location: local, api_key: "file:/no/such/key"}
"""
    )
    with pytest.raises(ConfigError) as info:
        load_settings(p, {})
    assert info.value.problems == [
        f"{p}: server.master_key: secret file not found: /no/such/master.key",
        f"{p}: deployments[0].api_key: env: reference must name an environment variable (e.g. env:OPENAI_API_KEY)",
        f"{p}: deployments[1].api_key: secret file not found: /no/such/key",
    ]


def test_literal_secrets_never_echoed(write: Callable[..., Path]) -> None:
    p = write(
        f"""\
server: {{master_key: {LITERAL}}}
store: {{url: "postgresql://tg:{DB_PASSWORD}@db:5432/tiergate"}}
deployments:
  - name: a
    base_url: http://127.0.0.1:1/v1
    model: m
    location: cloud
    api_key: {LITERAL}
    headers: {{Authorization: "Bearer {LITERAL}"}}
"""
    )
    s = load_settings(p, {})
    shown = repr(s) + str(s) + banner_text(s, environ={})
    assert LITERAL not in shown and DB_PASSWORD not in shown
    assert "<inline secret>" in repr(s)

    # Wrong types or values in secret fields: the message names the key but not the value.
    bad = write(
        f"""\
store: {{url: ["postgresql://tg:{DB_PASSWORD}@db/x"]}}
deployments:
  - name: a
    base_url: "ftp://user:{LITERAL}@host"
    model: m
    location: cloud
    api_key: ["{LITERAL}"]
""",
        "bad.yaml",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(bad, {"TIERGATE_PORT": "x"})
    text = str(info.value) + repr(info.value)
    assert LITERAL not in text and DB_PASSWORD not in text
    assert f"{bad}: deployments[0].api_key: must be a string" in info.value.problems
    assert f"{bad}: deployments[0].base_url: must start with http:// or https://" in info.value.problems


def test_master_key_from_environment_is_a_reference(write: Callable[..., Path]) -> None:
    p = write("server: {master_key: env:OTHER}\ndeployments:\n  - {name: a, base_url: 'http://h/v1', model: m, location: local}\n")
    assert load_settings(p, {}).server.master_key == "env:OTHER"
    s = load_settings(p, {"TIERGATE_MASTER_KEY": "mk-secret-value"})
    assert s.server.master_key == "env:TIERGATE_MASTER_KEY"
    assert "mk-secret-value" not in repr(s)
