"""KeySpec validation: every mistake is a 400 naming the field, as for chat requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tiergate.errors import InvalidRequestError
from tiergate.keys import KeySpec, check_known_names, parse_duration, parse_key_spec


def error(body: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as exc:
        parse_key_spec(body)
    assert exc.value.status == 400 and exc.value.type == "invalid_request_error"
    return exc.value


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"daily_usd": -1}, "daily_usd", "greater than or equal to 0"),
        ({"monthly_usd": "lots"}, "monthly_usd", "decimal"),
        ({"daily_usd": 0.00000000001}, "daily_usd", "decimal places"),
        ({"rpm": 0}, "rpm", "greater than or equal to 1"),
        ({"tpm": "100"}, "tpm", "integer"),
        ({"rpm": True}, "rpm", "integer"),
        ({"locations": ["local", "moon"]}, "locations[1]", "'local', 'sovereign' or 'cloud'"),
        ({"default_privacy": "secret"}, "default_privacy", "PRIVATE, SENSITIVE, PUBLIC"),
        ({"default_strategy": "fastest"}, "default_strategy", "cost_optimized"),
        ({"expires_at": "2030-01-01T00:00:00"}, "expires_at", "timezone"),
        ({"expires_in": "soon"}, "expires_in", "duration"),
        ({"expires_in": "0d"}, "expires_in", "more than 0"),
        ({"expires_at": "2030-01-01T00:00:00Z", "expires_in": "1d"}, "expires_in", "not both"),
        ({"metadata": {"blob": "x" * 9000}}, "metadata", "at most 8192"),
        ({"metadata": {"": 1}}, "metadata", "characters"),
        ({"metadata": "text"}, "metadata", "dictionary"),
        ({"models": ["ok", ""]}, "models", "item 1"),
        ({"models": "assistant"}, "models", "list"),
        ({"name": " padded "}, "name", "spaces"),
        ({"team": ""}, "team", "at least 1"),
        ({"budget": 5}, "budget", "is not a key setting"),
    ],
)
def test_errors_name_the_field(body: dict[str, Any], param: str, words: str) -> None:
    exc = error(body)
    assert exc.param == param
    assert words in exc.message, exc.message
    assert exc.message.startswith(f"invalid key settings: '{param}'")
    assert exc.to_dict()["error"]["param"] == param


def test_body_must_be_an_object() -> None:
    assert error([1, 2]).param is None


def test_values_are_normalised() -> None:
    spec = parse_key_spec({
        "default_privacy": "sovereign", "locations": ["cloud", "cloud"], "daily_usd": "1.50",
        "expires_in": "12h", "residencies": ["AZ", "AZ", "EU"],
    })
    assert spec.default_privacy == "SENSITIVE"
    assert spec.locations == ["cloud"] and spec.residencies == ["AZ", "EU"]
    assert spec.daily_usd == Decimal("1.50")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert spec.resolved_expiry(now) == now + timedelta(hours=12)
    assert parse_key_spec({"expires_in": "P2D"}).expires_in == timedelta(days=2)  # ISO 8601 too
    assert parse_key_spec({"expires_in": 90}).expires_in == timedelta(seconds=90)
    assert parse_key_spec({"daily_usd": 0.1}).daily_usd == Decimal("0.1")


def test_fields_set_tell_an_update_what_changes() -> None:
    assert parse_key_spec({"rpm": None, "models": []}).model_fields_set == {"rpm", "models"}
    assert KeySpec().model_fields_set == set()


@pytest.mark.parametrize(("text", "seconds"), [("30d", 30 * 86400), ("12h", 43200), ("15m", 900),
                                               ("3600s", 3600), ("2w", 14 * 86400), ("1.5h", 5400)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_restrictions_must_name_configured_models_and_deployments() -> None:
    ok = parse_key_spec({"models": ["assistant", "local-a"], "deployments": ["local-a"]})
    check_known_names(ok, ["assistant"], ["local-a", "cloud-a"])
    with pytest.raises(InvalidRequestError) as exc:
        check_known_names(parse_key_spec({"models": ["assistant", "gpt-9"]}), ["assistant"], ["local-a"])
    assert exc.value.param == "models[1]" and "known: assistant, local-a" in exc.value.message
    with pytest.raises(InvalidRequestError) as exc:
        check_known_names(parse_key_spec({"deployments": ["assistant"]}), ["assistant"], ["local-a"])
    assert exc.value.param == "deployments[0]"
