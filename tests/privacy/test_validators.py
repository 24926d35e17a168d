"""Checksums: known valid identifiers pass, one changed digit fails."""

from __future__ import annotations

import pytest

from tiergate.privacy.validators import (
    VALIDATORS,
    az_voen_valid,
    iban_valid,
    luhn_valid,
    ru_inn_valid,
    ru_snils_valid,
    tckn_valid,
    us_ssn_valid,
)


@pytest.mark.parametrize(
    "number",
    ["4111 1111 1111 1111", "4111-1111-1111-1111", "5500000000000004", "378282246310005", "6011111111111117",
     "5555555555554444", "4242424242424242", "2200000000000004", "3530111333300000", "79927398713"],
)
def test_luhn_valid(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["4111 1111 1111 1112", "1234567812345678", "5500000000000005", "", "abc", "0"])
def test_luhn_invalid(number: str) -> None:
    assert not luhn_valid(number)


@pytest.mark.parametrize(
    "iban",
    ["AZ21NABZ00000000137010001944", "AZ21 NABZ 0000 0000 1370 1000 1944", "GB82WEST12345698765432",
     "DE89370400440532013000", "TR330006100519786457841326", "FR1420041010050500013M02606",
     "NL91ABNA0417164300", "CH9300762011623852957", "NO9386011117947", "RU0204452560040702810412345678901"],
)
def test_iban_valid(iban: str) -> None:
    assert iban_valid(iban)


@pytest.mark.parametrize(
    "iban",
    ["AZ21NABZ00000000137010001945", "GB82WEST12345698765433", "DE89370400440532013001",
     "AZ21NABZ0000000013701000194",  # one character short for AZ (28)
     "TR33000610051978645784132", "XX00", "1234567890123456"],
)
def test_iban_invalid(iban: str) -> None:
    assert not iban_valid(iban)


@pytest.mark.parametrize("number", ["10000000146", "12345678950", "11111111110"])
def test_tckn_valid(number: str) -> None:
    assert tckn_valid(number)


@pytest.mark.parametrize("number", ["10000000147", "12345678951", "01234567890", "1234567895", "123456789500"])
def test_tckn_invalid(number: str) -> None:
    assert not tckn_valid(number)


@pytest.mark.parametrize("number", ["7707083893", "500100732259", "7736207543", "773370857141"])
def test_inn_valid(number: str) -> None:
    assert ru_inn_valid(number)


@pytest.mark.parametrize("number", ["7707083894", "500100732258", "500100732269", "12345", "77070838931"])
def test_inn_invalid(number: str) -> None:
    assert not ru_inn_valid(number)


@pytest.mark.parametrize("number", ["112-233-445 95", "11223344595", "087-654-303 00", "001-001-998 00"])
def test_snils_valid(number: str) -> None:
    assert ru_snils_valid(number)


@pytest.mark.parametrize("number", ["112-233-445 96", "123-456-789 00", "1122334459"])
def test_snils_invalid(number: str) -> None:
    assert not ru_snils_valid(number)


@pytest.mark.parametrize("number", ["123-45-6789", "536-22-1234", "001-01-0001", "899-99-9999"])
def test_ssn_valid(number: str) -> None:
    assert us_ssn_valid(number)


@pytest.mark.parametrize(
    "number", ["000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000", "111-11-1111", "12-345-678"]
)
def test_ssn_invalid(number: str) -> None:
    assert not us_ssn_valid(number)


def test_voen_legal_form_digit() -> None:
    assert az_voen_valid("1234567891") and az_voen_valid("9900003612")
    assert not az_voen_valid("1234567893") and not az_voen_valid("123456789")


def test_validator_names_for_configuration() -> None:
    assert {"luhn", "iban", "tckn", "ru_inn", "ru_snils", "us_ssn"} <= set(VALIDATORS)
