"""Checksums and validity rules of structured identifiers.

A shape alone (11 digits, 16 digits in groups) says little: order numbers and timestamps have the
same shapes. The check digits are what turns a shape into an identifier, so each function here
answers one question, "could this be a real X", for a value in any of its usual spellings
(separators are ignored). They are also the validators users name in custom recognizers.
"""

from __future__ import annotations

from collections.abc import Callable

_SEPARATORS = str.maketrans("", "", " -.\u00a0/")


def digits_only(value: str) -> str:
    """The value without the separators people type inside identifiers (space, dash, dot, slash)."""
    return value.translate(_SEPARATORS)


def luhn_valid(value: str) -> bool:
    """Payment card numbers (and a few others) end with a Luhn check digit."""
    digits = digits_only(value)
    if not digits.isdigit() or not digits.isascii() or len(digits) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


#: IBAN length per country (the ISO 13616 registry; countries using IBAN experimentally included).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


_LETTER_VALUES = {ord(ch): str(10 + i) for i, ch in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ")}


def iban_mod97(compact: str) -> bool:
    """ISO 7064 mod 97-10 over the rearranged IBAN (country and check digits moved to the end)."""
    if len(compact) < 5 or not compact.isascii() or not compact.isalnum():
        return False
    rearranged = (compact[4:] + compact[:4]).upper().translate(_LETTER_VALUES)
    return rearranged.isdigit() and int(rearranged) % 97 == 1


def iban_valid(value: str) -> bool:
    """Country code, the country's length (15-34 for countries not in the table) and mod 97."""
    compact = value.replace(" ", "").replace("-", "").upper()
    if len(compact) < 15 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is not None and len(compact) != expected:
        return False
    if expected is None and len(compact) > 34:
        return False
    return iban_mod97(compact)


def tckn_valid(value: str) -> bool:
    """Turkish identity number: 11 digits, first non-zero, two check digits (10th and 11th)."""
    digits = digits_only(value)
    if len(digits) != 11 or not digits.isdigit() or not digits.isascii() or digits[0] == "0":
        return False
    d = [ord(c) - 48 for c in digits]
    odd = d[0] + d[2] + d[4] + d[6] + d[8]
    even = d[1] + d[3] + d[5] + d[7]
    if (odd * 7 - even) % 10 != d[9]:
        return False
    return sum(d[:10]) % 10 == d[10]


_INN10 = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN11 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)


def _inn_check(d: list[int], weights: tuple[int, ...]) -> int:
    return sum(w * x for w, x in zip(weights, d, strict=False)) % 11 % 10


def ru_inn_valid(value: str) -> bool:
    """Russian taxpayer number: 10 digits (organisations, one check digit) or 12 (people, two)."""
    digits = digits_only(value)
    if not digits.isdigit() or not digits.isascii() or len(digits) not in (10, 12):
        return False
    d = [ord(c) - 48 for c in digits]
    if len(d) == 10:
        return _inn_check(d, _INN10) == d[9]
    return _inn_check(d, _INN11) == d[10] and _inn_check(d, _INN12) == d[11]


def ru_snils_valid(value: str) -> bool:
    """Russian pension insurance number: 9 digits and a 2-digit checksum (weights 9..1, mod 101).

    The checksum is defined for numbers above 001-001-998; lower ones are accepted as issued.
    """
    digits = digits_only(value)
    if len(digits) != 11 or not digits.isdigit() or not digits.isascii():
        return False
    body, check = digits[:9], int(digits[9:])
    if int(body) <= 1001998:
        return True
    total = sum((9 - i) * (ord(c) - 48) for i, c in enumerate(body))
    if total > 101:
        total %= 101
    expected = 0 if total in (100, 101) else total
    return expected == check


def us_ssn_valid(value: str) -> bool:
    """US social security number: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    digits = digits_only(value)
    if len(digits) != 9 or not digits.isdigit() or not digits.isascii():
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return len(set(digits)) > 1  # 111-11-1111 and the like are placeholders, never issued


def az_voen_valid(value: str) -> bool:
    """Azerbaijani taxpayer number: 10 digits ending with the legal-form code 1 or 2."""
    digits = digits_only(value)
    return len(digits) == 10 and digits.isdigit() and digits.isascii() and digits[-1] in "12"


#: Validators by the names configuration uses (`validator: luhn`).
VALIDATORS: dict[str, Callable[[str], bool]] = {
    "luhn": luhn_valid,
    "iban": iban_valid,
    "tckn": tckn_valid,
    "ru_inn": ru_inn_valid,
    "ru_snils": ru_snils_valid,
    "us_ssn": us_ssn_valid,
    "az_voen": az_voen_valid,
}
