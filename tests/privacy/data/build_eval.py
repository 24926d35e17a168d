#!/usr/bin/env python3
"""Build the labelled PII evaluation set `pii_eval.jsonl` (deterministic: fixed seed).

    .venv/bin/python tests/privacy/data/build_eval.py          # rewrites pii_eval.jsonl
    .venv/bin/python tests/privacy/data/build_eval.py --check  # fails if the file is stale

Written without looking at the detector, so the set measures it rather than mirrors it. Texts come
from templates (many phrasings per language and domain, values drawn fresh each time) and from
hand-written texts. Both use one inline markup, resolved here into exact offsets:

    ⟨TYPE:gen⟩      a generated value, labelled TYPE            ⟨PERSON:full_f⟩
    ⟨TYPE=value⟩    a literal value, labelled TYPE              ⟨PERSON=Mehmet⟩'in
    ⟨o:gen⟩         a generated distractor, NOT labelled        ⟨o:bad_card⟩

Each output line: {"id", "lang": en|az|ru|tr, "domain", "text", "entities": [{"type","start","end"}]}
with Python string offsets, end exclusive; `text[start:end]` is the value, never padded by spaces.

Labelling conventions (what a span covers)
------------------------------------------
PERSON      Names of people: first, last or full name, with the patronymic (`Rəşad oğlu`, `qızı`,
            `Сергеевич`, `Сергеевна`) and initials (`Смирнов А. В.`) inside the span. Honorifics
            and titles are outside: Mr, Ms, Dr, cənab, xanım, müəllim, господин, госпожа, Sayın,
            Bey, Hanım. Case suffixes after an apostrophe are outside: `Mehmet'in` -> `Mehmet`;
            declined Russian forms are labelled as written (`Петрову Ивану`); Azerbaijani
            case suffixes written without an apostrophe stay outside too (`Əliyev|in`). Names that are part
            of a place, street, organisation or brand (`Heydər Əliyev prospekti`, `Atatürk
            Caddesi`, `улица Пушкина`, `Nizami küçəsi`) are not PERSON.
ADDRESS     A street-level address, from its first element (postal code, city, or house number)
            to its last; a city, district or village named alone is not an address.
DATE_OF_BIRTH  Only the date itself and only where the context says it is a birth date; other
            dates (invoices, deadlines, timestamps) and ages are not labelled.
PHONE       The whole number with `+`, country code, parentheses and separators; not `tel:`.
CREDIT_CARD Luhn-valid numbers only, with their separators; expiry and CVV are not labelled.
IBAN        mod-97-valid only, with its spaces if grouped.
IP_ADDRESS  Any IPv4/IPv6 address including private ranges (they identify hosts); a `:port`
            suffix is outside the span. Versions, OIDs and section numbers are not addresses.
PASSPORT    Series and number as written (`45 06 123456`, `C12345678`), not `№`/`No`.
AZ_FIN, AZ_VOEN, AZ_ID_CARD, US_SSN, TR_TCKN, RU_INN, RU_SNILS  The identifier as written.
            Numbers of the same shape with an invalid checksum are not labelled, whatever the
            context says (the issue defines these types by their checksums).
SECRET      Only the secret value: `password=X`, `"api_key": "X"` -> X without quotes; in a
            connection string the password part only; for `Authorization: Bearer X` -> X; a PEM
            private key is one span from `-----BEGIN` to the closing `-----`. An AWS access key id
            (AKIA…) and its secret access key are two SECRET spans. Placeholders (`<YOUR_KEY>`,
            `***`, `${DB_PASSWORD}`, `changeme-in-prod` marked as such) are not secrets.
EMAIL       The full address; a `mailto:` prefix is outside.
Hard negatives (about a third of the texts) hold no entity at all but PII-like strings: order
and invoice numbers, versions, timestamps, amounts, UUIDs, git SHAs, Luhn-failing card-like
numbers, mod-97-failing IBAN-like strings, checksum-failing TCKN/INN/SNILS-like numbers,
non-birth dates, product codes, place/brand names and capitalised words that are not people.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
import string
import sys
from collections.abc import Callable
from pathlib import Path

SEED = 20240604
OUT = Path(__file__).resolve().parent / "pii_eval.jsonl"
LANGS = ("en", "az", "ru", "tr")
REPEATS = 3  # each template is instantiated this many times with fresh values

Rng = random.Random
Gen = Callable[[Rng, str], str]

# --------------------------------------------------------------------------------------------
# Checksums (the set only labels values that pass them; distractors are made to fail them)
# --------------------------------------------------------------------------------------------


def luhn_check_digit(body: str) -> str:
    """The digit that makes body+digit pass Luhn."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def iban_check_digits(country: str, bban: str) -> str:
    """ISO 13616 check digits: 98 - (BBAN + country + '00' as digits) mod 97."""
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{98 - int(digits) % 97:02d}"


def tckn_complete(first9: str) -> str:
    """Turkish identity number: the 10th and 11th digits from the first nine."""
    d = [int(c) for c in first9]
    d10 = ((d[0] + d[2] + d[4] + d[6] + d[8]) * 7 - (d[1] + d[3] + d[5] + d[7])) % 10
    d11 = (sum(d) + d10) % 10
    return f"{first9}{d10}{d11}"


def _inn_digit(digits: str, weights: tuple[int, ...]) -> str:
    return str(sum(int(c) * w for c, w in zip(digits, weights)) % 11 % 10)


def inn10_complete(first9: str) -> str:
    """Russian INN of an organisation (10 digits)."""
    return first9 + _inn_digit(first9, (2, 4, 10, 3, 5, 9, 4, 6, 8))


def inn12_complete(first10: str) -> str:
    """Russian INN of a person (12 digits, two check digits)."""
    d11 = _inn_digit(first10, (7, 2, 4, 10, 3, 5, 9, 4, 6, 8))
    d12 = _inn_digit(first10 + d11, (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8))
    return first10 + d11 + d12


def snils_check(first9: str) -> str:
    """SNILS check number: weighted sum (9..1), mod 101, 100 -> 00."""
    s = sum(int(c) * (9 - i) for i, c in enumerate(first9))
    if s < 100:
        return f"{s:02d}"
    s %= 101
    return "00" if s == 100 else f"{s:02d}"


# --------------------------------------------------------------------------------------------
# Structured values
# --------------------------------------------------------------------------------------------


def _digits(rng: Rng, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _alnum(rng: Rng, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


CARD_PREFIXES = (  # (prefix, length): Visa, Mastercard 5x/2x, Amex, Discover, UnionPay, Mir, Maestro
    ("4", 16), ("4", 16), ("51", 16), ("53", 16), ("55", 16), ("2221", 16), ("2720", 16),
    ("34", 15), ("37", 15), ("6011", 16), ("62", 16), ("2200", 16), ("2202", 16), ("6759", 16),
    ("4169", 16), ("4098", 16),
)


def card_number(rng: Rng) -> str:
    prefix, length = rng.choice(CARD_PREFIXES)
    body = prefix + _digits(rng, length - len(prefix) - 1)
    return body + luhn_check_digit(body)


def format_card(rng: Rng, number: str) -> str:
    style = rng.choice(("space", "space", "dash", "plain"))
    if style == "plain":
        return number
    sep = " " if style == "space" else "-"
    if len(number) == 15:
        return sep.join((number[:4], number[4:10], number[10:]))
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


def gen_card(rng: Rng, _lang: str) -> str:
    return format_card(rng, card_number(rng))


def gen_bad_card(rng: Rng, _lang: str) -> str:
    number = card_number(rng)
    wrong = str((int(number[-1]) + rng.randint(1, 9)) % 10)
    return format_card(rng, number[:-1] + wrong)


IBAN_BBAN: dict[str, Callable[[Rng], str]] = {
    "AZ": lambda r: r.choice(("NABZ", "AIIB", "IBAZ", "PAHA", "CAPN", "UBAZ", "ACAB")) + _digits(r, 20),
    "TR": lambda r: r.choice(("00010", "00012", "00046", "00062", "00064", "00067")) + "0" + _digits(r, 16),
    "DE": lambda r: _digits(r, 18),
    "GB": lambda r: r.choice(("NWBK", "BARC", "HBUK", "LOYD")) + _digits(r, 14),
    "FR": lambda r: _digits(r, 10) + _alnum(r, 11, string.ascii_uppercase + string.digits) + _digits(r, 2),
    "GE": lambda r: r.choice(("TB", "BG")) + _digits(r, 16),
    "NL": lambda r: r.choice(("ABNA", "INGB", "RABO")) + _digits(r, 10),
    "KZ": lambda r: _digits(r, 3) + _alnum(r, 13, string.ascii_uppercase + string.digits),
    "ES": lambda r: _digits(r, 20),
}
IBAN_COUNTRIES_BY_LANG = {
    "az": ("AZ", "AZ", "AZ", "GE", "TR", "DE"),
    "tr": ("TR", "TR", "TR", "DE", "AZ", "NL"),
    "ru": ("KZ", "AZ", "DE", "GE", "FR", "TR"),
    "en": ("GB", "DE", "FR", "NL", "ES", "AZ"),
}


def iban_value(rng: Rng, country: str) -> str:
    bban = IBAN_BBAN[country](rng)
    return country + iban_check_digits(country, bban) + bban


def format_iban(rng: Rng, iban: str) -> str:
    if rng.random() < 0.5:
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


def gen_iban(rng: Rng, lang: str) -> str:
    return format_iban(rng, iban_value(rng, rng.choice(IBAN_COUNTRIES_BY_LANG[lang])))


def gen_iban_az(rng: Rng, _lang: str) -> str:
    return format_iban(rng, iban_value(rng, "AZ"))


def gen_bad_iban(rng: Rng, lang: str) -> str:
    iban = iban_value(rng, rng.choice(IBAN_COUNTRIES_BY_LANG[lang]))
    check = int(iban[2:4])
    wrong = (check - 2 + rng.randint(1, 95)) % 97 + 2  # any other value in 02..98
    return format_iban(rng, iban[:2] + f"{wrong:02d}" + iban[4:])


def gen_tckn(rng: Rng, _lang: str) -> str:
    return tckn_complete(str(rng.randint(1, 9)) + _digits(rng, 8))


def gen_bad_tckn(rng: Rng, lang: str) -> str:
    while True:
        good = gen_tckn(rng, lang)
        bad = good[:-1] + str((int(good[-1]) + rng.randint(1, 9)) % 10)
        if not (snils_ok(bad) or luhn_ok(bad)):
            return bad


def gen_inn10(rng: Rng, _lang: str) -> str:
    return inn10_complete(rng.choice(("77", "78", "50", "16", "54", "66")) + _digits(rng, 7))


def gen_inn12(rng: Rng, _lang: str) -> str:
    return inn12_complete(rng.choice(("77", "78", "50", "16", "54", "66")) + _digits(rng, 8))


def gen_inn(rng: Rng, lang: str) -> str:
    return gen_inn12(rng, lang) if rng.random() < 0.55 else gen_inn10(rng, lang)


def gen_bad_inn(rng: Rng, lang: str) -> str:
    while True:
        good = gen_inn(rng, lang)
        bad = good[:-1] + str((int(good[-1]) + rng.randint(1, 9)) % 10)
        if not (luhn_ok(bad) or inn_ok(bad)):
            return bad


def _snils_body(rng: Rng) -> str:
    return str(rng.randint(2, 999)).zfill(3) + _digits(rng, 6)  # above 001-001-998


def format_snils(rng: Rng, body: str, check: str) -> str:
    sep = rng.choice(("-", "-", "-", " "))
    tail = rng.choice((" ", " ", " ", "-"))
    return f"{body[:3]}{sep}{body[3:6]}{sep}{body[6:]}{tail}{check}"


def gen_snils(rng: Rng, _lang: str) -> str:
    body = _snils_body(rng)
    return format_snils(rng, body, snils_check(body))


def gen_bad_snils(rng: Rng, _lang: str) -> str:
    body = _snils_body(rng)
    wrong = (int(snils_check(body)) + rng.randint(1, 90)) % 100
    return format_snils(rng, body, f"{wrong:02d}")


def gen_ssn(rng: Rng, _lang: str) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    ssn = f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    return ssn if rng.random() < 0.85 else ssn.replace("-", " ")


def gen_bad_ssn(rng: Rng, _lang: str) -> str:
    area = rng.choice(("000", "666", str(rng.randint(900, 999))))
    return f"{area}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


FIN_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"  # no I, no O


def gen_fin(rng: Rng, _lang: str) -> str:
    while True:
        fin = _alnum(rng, 7, FIN_ALPHABET)
        if any(c.isdigit() for c in fin) and sum(c.isalpha() for c in fin) >= 2:
            return fin


def gen_voen(rng: Rng, _lang: str) -> str:
    return str(rng.randint(1, 9)) + _digits(rng, 8) + rng.choice("12")


def gen_idcard(rng: Rng, _lang: str) -> str:
    return "AA" + _digits(rng, 7) if rng.random() < 0.6 else "AZE" + _digits(rng, 8)


def gen_passport(rng: Rng, lang: str) -> str:
    kind = {"az": "az", "ru": "ru", "tr": "tr", "en": "us"}[lang] if rng.random() < 0.75 else rng.choice(
        ("az", "ru", "tr", "us")
    )
    if kind == "az":
        return "C" + _digits(rng, 8)
    if kind == "tr":
        return "U" + _digits(rng, 8)
    if kind == "us":
        return str(rng.randint(1, 9)) + _digits(rng, 8)
    series = f"{rng.randint(1, 99):02d} {rng.randint(0, 25):02d}"
    number = _digits(rng, 6)
    return f"{series} {number}" if rng.random() < 0.7 else f"{series.replace(' ', '')} {number}"


def gen_ipv4(rng: Rng, _lang: str) -> str:
    kind = rng.random()
    if kind < 0.3:
        return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if kind < 0.5:
        return f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    return f"{rng.choice((31, 46, 62, 78, 85, 91, 94, 176, 185, 212, 213))}." + ".".join(
        str(rng.randint(0, 255)) for _ in range(2)
    ) + f".{rng.randint(1, 254)}"


def gen_ipv6(rng: Rng, _lang: str) -> str:
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    style = rng.random()
    if style < 0.35:
        return ":".join(groups)
    if style < 0.7:
        return f"2001:db8:{groups[2]}::{groups[6]}:{groups[7]}"
    return f"fe80::{groups[4]}:{groups[5]}:{groups[6]}:{groups[7]}"


def gen_ip(rng: Rng, lang: str) -> str:
    return gen_ipv6(rng, lang) if rng.random() < 0.3 else gen_ipv4(rng, lang)


# --------------------------------------------------------------------------------------------
# Phones
# --------------------------------------------------------------------------------------------


def _two(rng: Rng) -> str:
    return f"{rng.randint(0, 99):02d}"


def gen_phone_az(rng: Rng, _lang: str) -> str:
    op = rng.choice(("50", "51", "55", "70", "77", "99", "10"))
    a, b, c = str(rng.randint(200, 999)), _two(rng), _two(rng)
    return rng.choice(
        (
            f"+994 {op} {a} {b} {c}",
            f"+994{op}{a}{b}{c}",
            f"0{op}-{a}-{b}-{c}",
            f"0{op} {a} {b} {c}",
            f"(0{op}) {a}-{b}-{c}",
            f"(012) 4{rng.randint(10, 99)}-{b}-{c}",
            f"+994 12 4{rng.randint(10, 99)} {b} {c}",
            f"+994 (50) {a}-{b}-{c}",
        )
    )


def gen_phone_ru(rng: Rng, _lang: str) -> str:
    code = rng.choice(("495", "499", "812", "916", "926", "903", "965", "843"))
    a, b, c = str(rng.randint(200, 999)), _two(rng), _two(rng)
    return rng.choice(
        (
            f"+7 ({code}) {a}-{b}-{c}",
            f"8 ({code}) {a}-{b}-{c}",
            f"+7 {code} {a} {b} {c}",
            f"8-{code}-{a}-{b}-{c}",
            f"+7{code}{a}{b}{c}",
        )
    )


def gen_phone_tr(rng: Rng, _lang: str) -> str:
    op = rng.choice(("532", "533", "542", "505", "555", "544", "212", "216", "312"))
    a, b, c = str(rng.randint(200, 999)), _two(rng), _two(rng)
    return rng.choice(
        (
            f"0{op} {a} {b} {c}",
            f"+90 {op} {a} {b} {c}",
            f"0 ({op}) {a} {b} {c}",
            f"(0{op}) {a} {b}{c}",
            f"+90{op}{a}{b}{c}",
            f"0{op}-{a}-{b}-{c}",
        )
    )


def gen_phone_en(rng: Rng, _lang: str) -> str:
    area = rng.choice(("212", "415", "617", "312", "646", "202", "503"))
    a, b = str(rng.randint(200, 999)), f"{rng.randint(0, 9999):04d}"
    return rng.choice(
        (
            f"+1 ({area}) {a}-{b}",
            f"({area}) {a}-{b}",
            f"{area}-{a}-{b}",
            f"+1 {area} {a} {b}",
            f"+44 20 {rng.randint(7000, 8999)} {rng.randint(1000, 9999)}",
            f"+44 7{rng.randint(100, 999)} {rng.randint(100000, 999999)}",
            f"+49 30 {rng.randint(1000000, 9999999)}",
        )
    )


PHONES_BY_LANG: dict[str, Gen] = {"az": gen_phone_az, "ru": gen_phone_ru, "tr": gen_phone_tr, "en": gen_phone_en}


def gen_phone(rng: Rng, lang: str) -> str:
    if rng.random() < 0.8:
        return PHONES_BY_LANG[lang](rng, lang)
    return PHONES_BY_LANG[rng.choice(LANGS)](rng, lang)


# --------------------------------------------------------------------------------------------
# Names, e-mails, addresses, dates
# --------------------------------------------------------------------------------------------

NAMES: dict[str, dict[str, tuple[str, ...]]] = {
    "az": {
        "first_m": ("Elçin", "Rəşad", "Tural", "Orxan", "Kamran", "Vüsal", "Ramil", "Anar", "Fuad",
                    "Səbuhi", "Elnur", "İlqar", "Cavid", "Murad", "Nicat", "Vüqar", "Şahin", "Emin"),
        "first_f": ("Aygün", "Günay", "Leyla", "Nərgiz", "Sevinc", "Aynur", "Könül", "Ülviyyə",
                    "Şəbnəm", "Lalə", "Zəhra", "Fidan", "Aysel", "Səbinə", "Gülnar", "Təranə"),
        "last_m": ("Məmmədov", "Əliyev", "Hüseynov", "Quliyev", "Həsənov", "Rzayev", "Abbasov",
                   "Kərimov", "Hacıyev", "Babayev", "Cəfərov", "Orucov", "Nəsirli", "Mustafazadə",
                   "Əhmədli", "Süleymanlı", "İsmayılzadə", "Vəliyev", "Qasımov"),
        "last_f": ("Məmmədova", "Əliyeva", "Hüseynova", "Quliyeva", "Həsənova", "Rzayeva", "Abbasova",
                   "Kərimova", "Hacıyeva", "Babayeva", "Cəfərova", "Orucova", "Nəsirli", "Mustafazadə",
                   "Əhmədli", "Süleymanlı", "İsmayılzadə", "Vəliyeva", "Qasımova"),
    },
    "ru": {
        "first_m": ("Иван", "Алексей", "Дмитрий", "Сергей", "Андрей", "Михаил", "Николай", "Павел",
                    "Артём", "Олег", "Виктор", "Игорь", "Руслан", "Тимур"),
        "first_f": ("Анна", "Мария", "Елена", "Ольга", "Наталья", "Татьяна", "Ирина", "Светлана",
                    "Юлия", "Екатерина", "Дарья", "Алина", "Ксения"),
        "last_m": ("Иванов", "Петров", "Смирнов", "Кузнецов", "Попов", "Соколов", "Лебедев", "Козлов",
                   "Новиков", "Морозов", "Волков", "Алиев", "Гусейнов", "Белов", "Захаров"),
        "last_f": ("Иванова", "Петрова", "Смирнова", "Кузнецова", "Попова", "Соколова", "Лебедева",
                   "Козлова", "Новикова", "Морозова", "Волкова", "Алиева", "Гусейнова", "Белова"),
        "patr_m": ("Сергеевич", "Александрович", "Иванович", "Петрович", "Николаевич", "Игоревич",
                   "Викторович", "Олегович"),
        "patr_f": ("Сергеевна", "Александровна", "Ивановна", "Петровна", "Николаевна", "Игоревна",
                   "Викторовна", "Олеговна"),
    },
    "tr": {
        "first_m": ("Mehmet", "Ahmet", "Mustafa", "Emre", "Hüseyin", "Cem", "Burak", "Murat", "Oğuz",
                    "Serkan", "Kerem", "Yusuf", "Çağlar", "İbrahim"),
        "first_f": ("Ayşe", "Zeynep", "Elif", "Fatma", "Büşra", "Merve", "Emine", "Gül", "Şeyma",
                    "Özlem", "Derya", "İrem", "Hülya"),
        "last": ("Yılmaz", "Kaya", "Demir", "Çelik", "Şahin", "Yıldız", "Aydın", "Öztürk", "Arslan",
                 "Doğan", "Koç", "Kılıç", "Aslan", "Çetin", "Kara", "Güneş", "Erdoğan", "Polat"),
    },
    "en": {
        "first_m": ("John", "Michael", "David", "James", "Robert", "Daniel", "Thomas", "Kevin",
                    "Andrew", "Brian", "Samuel", "Arjun"),
        "first_f": ("Emily", "Sarah", "Laura", "Olivia", "Jessica", "Hannah", "Priya", "Rachel",
                    "Megan", "Chloe", "Grace", "Natalie"),
        "last": ("Smith", "Carter", "O'Brien", "Johnson", "Miller", "Patel", "Nguyen", "Fischer",
                 "Whitaker", "Bennett", "Harris", "McAllister", "Lopez", "Thompson", "Kowalski"),
    },
}

TRANSLIT = str.maketrans(
    {"ə": "a", "ı": "i", "ö": "o", "ü": "u", "ş": "s", "ç": "c", "ğ": "g", "İ": "i", "'": "",
     "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
     "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
     "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "sch",
     "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya"}
)


def _gender(rng: Rng) -> str:
    return rng.choice(("m", "f"))


def first_name(rng: Rng, lang: str, g: str) -> str:
    return rng.choice(NAMES[lang][f"first_{g}"])


def last_name(rng: Rng, lang: str, g: str) -> str:
    table = NAMES[lang]
    return rng.choice(table.get(f"last_{g}") or table["last"])


def full_name(rng: Rng, lang: str, g: str) -> str:
    first, last = first_name(rng, lang, g), last_name(rng, lang, g)
    if lang == "ru" and rng.random() < 0.3:
        return f"{last} {first}"
    return f"{first} {last}"


def formal_name(rng: Rng, lang: str, g: str) -> str:
    """The official form: with a patronymic where the language has one."""
    first, last = first_name(rng, lang, g), last_name(rng, lang, g)
    if lang == "az":
        father = rng.choice(NAMES["az"]["first_m"])
        suffix = "oğlu" if g == "m" else "qızı"
        return rng.choice((f"{last} {first} {father} {suffix}", f"{first} {father} {suffix} {last}"))
    if lang == "ru":
        patr = rng.choice(NAMES["ru"][f"patr_{g}"])
        return rng.choice((f"{last} {first} {patr}", f"{first} {patr} {last}", f"{last} {first[0]}. {patr[0]}."))
    return f"{first} {last}"


def _name_gen(kind: str, g: str | None) -> Gen:
    def gen(rng: Rng, lang: str) -> str:
        gg = g or _gender(rng)
        return {"first": first_name, "last": last_name, "full": full_name, "formal": formal_name}[kind](rng, lang, gg)

    return gen


def gen_email(rng: Rng, lang: str) -> str:
    g = _gender(rng)
    first = first_name(rng, lang, g).lower().translate(TRANSLIT)
    last = last_name(rng, lang, g).lower().translate(TRANSLIT)
    local = rng.choice(
        (f"{first}.{last}", f"{first}_{last}{rng.randint(1, 99)}", f"{first[0]}.{last}", f"{first}{rng.randint(70, 99)}",
         f"{last}.{first}")
    )
    domains = {
        "az": ("gmail.com", "mail.ru", "box.az", "azercell.com", "agro.gov.az", "bakcell.az", "aqrar-koop.az"),
        "ru": ("mail.ru", "yandex.ru", "gmail.com", "rambler.ru", "sber-client.ru", "agro-kuban.ru"),
        "tr": ("gmail.com", "hotmail.com.tr", "yahoo.com.tr", "ciftci-koop.org.tr", "firma.com.tr"),
        "en": ("gmail.com", "outlook.com", "example.co.uk", "acme-farms.com", "mail.nhs-trust.org"),
    }[lang]
    return f"{local}@{rng.choice(domains)}"


AZ_STREETS = ("Nizami", "Füzuli", "Səməd Vurğun", "Azadlıq", "Neftçilər", "Rəşid Behbudov", "Bülbül",
              "Üzeyir Hacıbəyov", "Atatürk", "Həsən bəy Zərdabi", "İstiqlaliyyət", "Cəfər Cabbarlı",
              "Mirzə İbrahimov", "Təbriz", "Qara Qarayev")
AZ_DISTRICTS = ("Nəsimi", "Yasamal", "Nərimanov", "Səbail", "Xətai", "Binəqədi", "Nizami", "Suraxanı")
AZ_CITIES = ("Gəncə", "Sumqayıt", "Şəki", "Lənkəran", "Mingəçevir", "Quba", "Şamaxı", "Bərdə")
AZ_VILLAGES = (("Şəki", "Kiş"), ("Şəki", "Baş Göynük"), ("Quba", "Qəçrəş"), ("Qəbələ", "Nic"),
               ("İsmayıllı", "Lahıc"), ("Ağdaş", "Qəşəd"))
RU_STREETS = ("Тверская", "Ленина", "Пушкина", "Гагарина", "Садовая", "Мира", "Советская", "Лесная",
              "Профсоюзная", "Баумана", "Красная")
RU_CITIES = ("Москва", "Санкт-Петербург", "Казань", "Новосибирск", "Екатеринбург", "Самара", "Краснодар")
TR_STREETS = ("Atatürk", "Cumhuriyet", "İstiklal", "Bağdat", "Gazi Mustafa Kemal", "İnönü", "Barbaros")
TR_MAH = ("Cumhuriyet", "Yenimahalle", "Bahçelievler", "Kazımdirik", "Fenerbahçe", "Esentepe", "Kocatepe")
TR_PLACES = (("Kadıköy", "İstanbul"), ("Çankaya", "Ankara"), ("Konak", "İzmir"), ("Bornova", "İzmir"),
             ("Nilüfer", "Bursa"), ("Seyhan", "Adana"), ("Şişli", "İstanbul"))
EN_STREETS = ("Baker", "Harbour", "Maple", "Oak", "Elm", "Kingsley", "Mill", "Church", "Victoria", "Cedar")
EN_PLACES = (("Boston", "MA", "02110"), ("Springfield", "IL", "62704"), ("Austin", "TX", "78701"),
             ("Portland", "OR", "97205"), ("Denver", "CO", "80202"))


def gen_address(rng: Rng, lang: str) -> str:
    n, apt = rng.randint(1, 240), rng.randint(1, 160)
    if lang == "az":
        st = rng.choice(AZ_STREETS)
        village = rng.choice(AZ_VILLAGES)
        return rng.choice((
            f"Bakı şəhəri, {rng.choice(AZ_DISTRICTS)} rayonu, {st} küçəsi {n}, mənzil {apt}",
            f"AZ{rng.randint(1000, 1130)}, Bakı, {st} küç. {n}",
            f"{rng.choice(AZ_CITIES)} şəhəri, {st} prospekti {n}",
            f"{village[0]} rayonu, {village[1]} kəndi, {st} küçəsi {rng.randint(1, 60)}",
            f"Bakı, {rng.choice(AZ_DISTRICTS)} r-nu, {st} küç., ev {n}, m. {apt}",
        ))
    if lang == "ru":
        st, city = rng.choice(RU_STREETS), rng.choice(RU_CITIES)
        return rng.choice((
            f"г. {city}, ул. {st}, д. {n}, кв. {apt}",
            f"{rng.randint(101000, 690000)}, {city}, ул. {st}, д. {n}, корп. {rng.randint(1, 5)}, кв. {apt}",
            f"{city}, проспект {rng.choice(('Мира', 'Ленина', 'Победы'))}, {n}",
            f"Московская обл., г. Химки, ул. {st}, д. {n}",
        ))
    if lang == "tr":
        dist, city = rng.choice(TR_PLACES)
        return rng.choice((
            f"{rng.choice(TR_STREETS)} Cad. No: {n} D: {rng.randint(1, 30)}, {dist} / {city}",
            f"{rng.choice(TR_MAH)} Mah. {rng.randint(1000, 2999)} Sok. No:{n}, {rng.randint(10000, 81999)} {dist}/{city}",
            f"{rng.choice(TR_MAH)} Mahallesi, {rng.choice(TR_STREETS)} Caddesi No:{n} Daire:{rng.randint(1, 40)}, {dist}, {city}",
        ))
    city, state, zipc = rng.choice(EN_PLACES)
    st = rng.choice(EN_STREETS)
    return rng.choice((
        f"{n} {st} Street, Apt {rng.randint(1, 30)}{rng.choice('ABCD')}, {city}, {state} {zipc}",
        f"{n} {st} Ave, {city}, {state} {zipc}",
        f"Flat {rng.randint(1, 40)}, {n} {st} Road, London SW{rng.randint(1, 20)} {rng.randint(1, 9)}{rng.choice('ABDEFG')}{rng.choice('HJLNPQ')}",
        f"{n} {st} Lane, Springfield, IL 62704",
    ))


MONTHS = {
    "az": ("yanvar", "fevral", "mart", "aprel", "may", "iyun", "iyul", "avqust", "sentyabr", "oktyabr",
           "noyabr", "dekabr"),
    "ru": ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября",
           "октября", "ноября", "декабря"),
    "tr": ("Ocak", "Şubat", "Mart", "Nisan", "Mayıs", "Haziran", "Temmuz", "Ağustos", "Eylül", "Ekim",
           "Kasım", "Aralık"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"),
}


def _format_date(rng: Rng, lang: str, y: int) -> str:
    m, d = rng.randint(1, 12), rng.randint(1, 28)
    words = MONTHS[lang][m - 1]
    styles = [f"{d:02d}.{m:02d}.{y}", f"{y}-{m:02d}-{d:02d}", f"{d:02d}/{m:02d}/{y}"]
    styles.append({"az": f"{d} {words} {y}", "ru": f"{d} {words} {y} г.", "tr": f"{d} {words} {y}",
                   "en": rng.choice((f"{words} {d}, {y}", f"{d} {words} {y}"))}[lang])
    if lang == "en":
        styles.append(f"{m:02d}/{d:02d}/{y}")
    return rng.choice(styles)


def gen_dob(rng: Rng, lang: str) -> str:
    return _format_date(rng, lang, rng.randint(1941, 2006))


def gen_date(rng: Rng, lang: str) -> str:
    """A date that is not a birth date (invoices, deadlines, visits)."""
    return _format_date(rng, lang, rng.randint(2019, 2026))


# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------

B64URL = string.ascii_letters + string.digits + "-_"


def _b64url(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")


def gen_jwt(rng: Rng, _lang: str) -> str:
    header = {"alg": rng.choice(("HS256", "RS256")), "typ": "JWT"}
    payload = {"sub": str(rng.randint(10000, 99999)), "iat": rng.randint(1700000000, 1760000000),
               "role": rng.choice(("user", "admin", "service"))}
    return f"{_b64url(header)}.{_b64url(payload)}.{_alnum(rng, 43, B64URL)}"


def gen_pem(rng: Rng, _lang: str) -> str:
    kind = rng.choice(("RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"))
    alphabet = string.ascii_letters + string.digits + "+/"
    lines = [_alnum(rng, 64, alphabet) for _ in range(rng.randint(3, 6))] + [_alnum(rng, rng.randint(8, 60), alphabet) + "=="]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----"


def gen_password(rng: Rng, _lang: str) -> str:
    """Human-looking and random passwords; no quote, space, '@', ':' or '/' (they end URLs)."""
    words = ("Baku", "Aysel", "Qwerty", "Summer", "Istanbul", "Moskva", "Dragon", "Pamb1q", "Ferma", "Tractor")
    if rng.random() < 0.5:
        return rng.choice(words) + str(rng.randint(1970, 2025)) + rng.choice("!#$%*")
    return _alnum(rng, rng.randint(12, 20), string.ascii_letters + string.digits + "!#$%^&*_-")


def gen_api_key(rng: Rng, lang: str) -> str:
    kind = rng.choice(("sk", "proj", "ant", "ghp", "gho", "pat", "slack", "google"))
    an = string.ascii_letters + string.digits
    return {
        "sk": lambda: "sk-" + _alnum(rng, 48, an),
        "proj": lambda: "sk-proj-" + _alnum(rng, 74, B64URL) + "T3BlbkFJ" + _alnum(rng, 74, B64URL),
        "ant": lambda: "sk-ant-api03-" + _alnum(rng, 93, B64URL) + "AA",
        "ghp": lambda: "ghp_" + _alnum(rng, 36, an),
        "gho": lambda: "gho_" + _alnum(rng, 36, an),
        "pat": lambda: "github_pat_" + _alnum(rng, 22, an) + "_" + _alnum(rng, 59, an),
        "slack": lambda: f"xox{rng.choice('bpa')}-{_digits(rng, 12)}-{_digits(rng, 13)}-{_alnum(rng, 24, an)}",
        "google": lambda: "AIza" + _alnum(rng, 35, B64URL),
    }[kind]()


def gen_openai(rng: Rng, _lang: str) -> str:
    if rng.random() < 0.5:
        return "sk-" + _alnum(rng, 48)
    return "sk-proj-" + _alnum(rng, 74, B64URL) + "T3BlbkFJ" + _alnum(rng, 74, B64URL)


def gen_anthropic(rng: Rng, _lang: str) -> str:
    return "sk-ant-api03-" + _alnum(rng, 93, B64URL) + "AA"


def gen_aws_key(rng: Rng, _lang: str) -> str:
    return "AKIA" + _alnum(rng, 16, string.ascii_uppercase + "234567")


def gen_aws_secret(rng: Rng, _lang: str) -> str:
    return _alnum(rng, 40, string.ascii_letters + string.digits + "/+")


def gen_ghp(rng: Rng, _lang: str) -> str:
    if rng.random() < 0.7:
        return "ghp_" + _alnum(rng, 36)
    return "github_pat_" + _alnum(rng, 22) + "_" + _alnum(rng, 59)


# --------------------------------------------------------------------------------------------
# Distractors (never labelled)
# --------------------------------------------------------------------------------------------


def gen_uuid(rng: Rng, _lang: str) -> str:
    h = "".join(rng.choice("0123456789abcdef") for _ in range(32))
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{rng.choice('89ab')}{h[17:20]}-{h[20:]}"


def gen_sha(rng: Rng, _lang: str) -> str:
    n = rng.choice((7, 12, 40, 40, 64))
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


DISTRACTORS: dict[str, Gen] = {
    "order": lambda r, _l: rng_choice(r, (f"ORD-{r.randint(100000, 999999)}", f"#{r.randint(1000000, 99999999)}",
                                          f"SO-{r.randint(2019, 2026)}-{r.randint(1000, 99999):05d}",
                                          plain_number(r, 10))),
    "invoice": lambda r, _l: rng_choice(r, (f"INV-{r.randint(2020, 2026)}/{r.randint(1, 9999):04d}",
                                            f"AZ-F-{r.randint(100000, 999999)}", plain_number(r, 11),
                                            f"Nº {r.randint(100, 99999)}/{r.randint(20, 26)}")),
    "version": lambda r, _l: rng_choice(r, (f"v{r.randint(0, 5)}.{r.randint(0, 20)}.{r.randint(0, 30)}",
                                            f"{r.randint(1, 3)}.{r.randint(0, 15)}.{r.randint(0, 9)}",
                                            f"{r.randint(1, 9)}.{r.randint(0, 99)}.{r.randint(0, 999)}-rc{r.randint(1, 4)}")),
    "ts": lambda r, _l: rng_choice(r, (f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:"
                                       f"{r.randint(0, 59):02d}:{r.randint(0, 59):02d}Z",
                                       plain_number(r, 10, "17"),
                                       f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}.{r.randint(0, 999):03d}")),
    "amount": lambda r, l: gen_amount(r, l),
    "uuid": gen_uuid,
    "sha": gen_sha,
    "bad_card": gen_bad_card,
    "bad_iban": gen_bad_iban,
    "bad_tckn": gen_bad_tckn,
    "bad_inn": gen_bad_inn,
    "bad_snils": gen_bad_snils,
    "bad_ssn": gen_bad_ssn,
    "date": gen_date,
    "product": lambda r, _l: rng_choice(r, (f"SKU-{_alnum(r, 6, string.ascii_uppercase + string.digits)}",
                                            f"{r.choice(('XR', 'MX', 'TB', 'AG'))}-{r.randint(100, 9999)}",
                                            f"P{r.randint(1000000, 9999999)}", f"{_alnum(r, 3, string.ascii_uppercase)}{r.randint(1000, 99999)}")),
    "ticket": lambda r, _l: rng_choice(r, (f"TCK-{r.randint(10000, 99999)}", f"JIRA-{r.randint(100, 9999)}",
                                           f"#{r.randint(10000, 999999)}", f"INC{r.randint(1000000, 9999999)}")),
    "num11": lambda r, _l: plain_number(r, 11),
    "port": lambda r, _l: str(r.choice((5432, 6379, 8080, 3306, 9200, 27017, 443))),
    "hectares": lambda r, _l: f"{r.randint(1, 300)},{r.randint(0, 9)}",
}


def plain_number(rng: Rng, n: int, prefix: str = "") -> str:
    """An n-digit number that passes none of the checksums (so it is no identifier by accident);
    10-digit ones also avoid the VÖEN shape (last digit 1 or 2)."""
    while True:
        value = prefix + str(rng.randint(1, 9)) + _digits(rng, n - len(prefix) - 1)
        if n == 10 and value[-1] in "12":
            continue
        if not any(check(value) for check in (luhn_ok, tckn_ok, inn_ok, snils_ok)):
            return value


def gen_amount(rng: Rng, lang: str) -> str:
    whole, cents = rng.randint(10, 99999), rng.randint(0, 99)
    return {
        "az": rng.choice((f"{whole}.{cents:02d} AZN", f"{whole} manat", f"{whole},{cents:02d} ₼")),
        "ru": rng.choice((f"{whole:,}".replace(",", " ") + f",{cents:02d} ₽", f"{whole} руб.")),
        "tr": rng.choice((f"{whole:,}".replace(",", ".") + f",{cents:02d} TL", f"{whole} ₺")),
        "en": rng.choice((f"${whole:,}.{cents:02d}", f"€{whole},{cents:02d}", f"{whole} USD")),
    }[lang]


def rng_choice(rng: Rng, options: tuple[str, ...]) -> str:
    return rng.choice(options)


GENERATORS: dict[str, Gen] = {
    "email": gen_email, "phone": gen_phone, "phone_az": gen_phone_az, "phone_ru": gen_phone_ru,
    "phone_tr": gen_phone_tr, "phone_en": gen_phone_en, "card": gen_card, "iban": gen_iban,
    "iban_az": gen_iban_az, "ipv4": gen_ipv4, "ipv6": gen_ipv6, "ip": gen_ip, "addr": gen_address,
    "dob": gen_dob, "fin": gen_fin, "voen": gen_voen, "idcard": gen_idcard, "passport": gen_passport,
    "ssn": gen_ssn, "tckn": gen_tckn, "inn": gen_inn, "inn10": gen_inn10, "inn12": gen_inn12,
    "snils": gen_snils, "jwt": gen_jwt, "pem": gen_pem, "password": gen_password, "apikey": gen_api_key,
    "openai": gen_openai, "anthropic": gen_anthropic, "aws_key": gen_aws_key, "aws_secret": gen_aws_secret,
    "ghp": gen_ghp,
    **{f"{kind}{'_' + g if g else ''}": _name_gen(kind, g) for kind in ("first", "last", "full", "formal")
       for g in (None, "m", "f")},
    **DISTRACTORS,
}

# --------------------------------------------------------------------------------------------
# Templates: (domain, text with ⟨…⟩ slots). Each is instantiated REPEATS times.
# --------------------------------------------------------------------------------------------

CODE_POS: list[tuple[str, str]] = [  # language-neutral code and config, comments vary per language
    ("code", 'OPENAI_API_KEY=⟨SECRET:openai⟩\nMODEL=gpt-4o-mini\nTIMEOUT=⟨o:port⟩'),
    ("code", 'export ANTHROPIC_API_KEY="⟨SECRET:anthropic⟩"'),
    ("code", '[default]\naws_access_key_id = ⟨SECRET:aws_key⟩\naws_secret_access_key = ⟨SECRET:aws_secret⟩\nregion = eu-central-1'),
    ("code", 'DATABASE_URL=postgresql://billing:⟨SECRET:password⟩@⟨IP_ADDRESS:ipv4⟩:⟨o:port⟩/billing'),
    ("code", 'git remote set-url origin https://⟨SECRET:ghp⟩@github.com/acme/agro-portal.git'),
    ("code", 'curl -H "Authorization: Bearer ⟨SECRET:jwt⟩" https://api.internal/v2/farms/⟨o:order⟩'),
    ("code", '{"service": "sms-gateway", "api_key": "⟨SECRET:apikey⟩", "sender": "KOOP"}'),
    ("code", 'db:\n  host: ⟨IP_ADDRESS:ipv4⟩\n  user: app\n  password: ⟨SECRET:password⟩\n  pool: 10'),
    ("code", 'ssh deploy@⟨IP_ADDRESS:ip⟩ -i ~/.ssh/id_ed25519 # commit ⟨o:sha⟩'),
    ("code", '⟨SECRET:pem⟩'),
    ("code", 'redis_url = "redis://:⟨SECRET:password⟩@cache.local:6379/0"  # build ⟨o:version⟩'),
    ("code", 'SLACK_BOT_TOKEN=⟨SECRET:apikey⟩\nCHANNEL=#alerts'),
]

CODE_COMMENTS = {
    "en": ("Why does this fail? ", "Please check my config: ", "Here is the deploy file:\n"),
    "az": ("Bu niyə işləmir? ", "Konfiqurasiyama baxın: ", "Deploy faylı budur:\n"),
    "ru": ("Почему это не работает? ", "Проверьте мой конфиг: ", "Вот файл деплоя:\n"),
    "tr": ("Bu neden çalışmıyor? ", "Yapılandırmama bakar mısınız: ", "Dağıtım dosyası şu:\n"),
}

CODE_NEG: list[tuple[str, str]] = [
    ("code", 'OPENAI_API_KEY=${OPENAI_API_KEY}\nMODEL=gpt-4o\nMAX_TOKENS=4096'),
    ("code", 'password: <YOUR_PASSWORD_HERE>\napi_key: "***"\nretries: 3'),
    ("code", 'git checkout ⟨o:sha⟩ && pip install fastapi==⟨o:version⟩'),
    ("code", 'request_id=⟨o:uuid⟩ status=502 upstream_time=1.204 ts=⟨o:ts⟩'),
    ("code", 'image: registry.local/agro-api@sha256:⟨o:sha⟩\nreplicas: 3\nport: ⟨o:port⟩'),
    ("code", 'SELECT order_id, amount FROM orders WHERE order_id = ⟨o:num11⟩ AND status = \'PAID\';'),
    ("code", 'ERROR 2025-03-11 10:22:31 worker-7 task ⟨o:uuid⟩ failed after 3 retries (exit code 137)'),
    ("code", 'DB_PASSWORD_FILE=/run/secrets/db_password\nTOKEN_TTL=3600\nLOG_LEVEL=debug'),
]

POS: dict[str, list[tuple[str, str]]] = {
    "en": [
        ("support", "Hi, this is ⟨PERSON:full⟩. I can't log in since yesterday — my email is ⟨EMAIL:email⟩ and my phone ⟨PHONE:phone⟩."),
        ("support", "Ticket ⟨o:ticket⟩: customer ⟨PERSON:full_f⟩ (⟨EMAIL:email⟩) reports the order ⟨o:order⟩ never arrived."),
        ("support", "Please call Mr ⟨PERSON:last_m⟩ back on ⟨PHONE:phone_en⟩, he asked about invoice ⟨o:invoice⟩."),
        ("support", "Our user ⟨EMAIL:email⟩ keeps getting 403 from ⟨IP_ADDRESS:ipv4⟩; can you whitelist it?"),
        ("bank", "Please refund to card ⟨CREDIT_CARD:card⟩, exp 09/27, the charge of ⟨o:amount⟩ was duplicated."),
        ("bank", "Wire the deposit to IBAN ⟨IBAN:iban⟩ (beneficiary: ⟨PERSON:full⟩)."),
        ("bank", "My SSN is ⟨US_SSN:ssn⟩ and my date of birth is ⟨DATE_OF_BIRTH:dob⟩ — why was the loan declined?"),
        ("bank", "Account holder ⟨PERSON:full_m⟩, DOB ⟨DATE_OF_BIRTH:dob⟩, SSN ⟨US_SSN:ssn⟩, card on file ⟨CREDIT_CARD:card⟩."),
        ("bank", "Transfer ⟨o:amount⟩ from my card ⟨CREDIT_CARD:card⟩ to ⟨IBAN:iban⟩ today, reference ⟨o:invoice⟩."),
        ("gov", "Applicant: ⟨PERSON:full⟩, passport no. ⟨PASSPORT:passport⟩, born ⟨DATE_OF_BIRTH:dob⟩, lives at ⟨ADDRESS:addr⟩."),
        ("gov", "Please update the mailing address for SSN ⟨US_SSN:ssn⟩ to ⟨ADDRESS:addr⟩."),
        ("gov", "The Azerbaijani ID card ⟨AZ_ID_CARD:idcard⟩ (FIN code ⟨AZ_FIN:fin⟩) was presented at the embassy."),
        ("gov", "Visa form: surname ⟨PERSON:last⟩, passport ⟨PASSPORT:passport⟩, date of birth: ⟨DATE_OF_BIRTH:dob⟩."),
        ("health", "Patient ⟨PERSON:full_f⟩, date of birth ⟨DATE_OF_BIRTH:dob⟩, was admitted with chest pain; contact ⟨PHONE:phone⟩."),
        ("health", "Dr. ⟨PERSON:last⟩ asked us to send the MRI report to ⟨EMAIL:email⟩ before the visit on ⟨o:date⟩."),
        ("health", "Summarise this note: ⟨PERSON:full_m⟩ (born on ⟨DATE_OF_BIRTH:dob⟩) reports dizziness after starting metformin 500 mg."),
        ("agri", "The cooperative's treasurer ⟨PERSON:full⟩ (⟨PHONE:phone⟩) will collect the subsidy for ⟨o:hectares⟩ ha of wheat."),
        ("agri", "Subsidy payment for farmer ⟨PERSON:full⟩, VOEN ⟨AZ_VOEN:voen⟩, to account ⟨IBAN:iban_az⟩."),
        ("agri", "Deliver 20 t of fertiliser to ⟨ADDRESS:addr⟩ and call ⟨PERSON:first⟩ at ⟨PHONE:phone⟩ on arrival."),
        ("support", "Can you translate this for me: \"Dear ⟨PERSON:full⟩, your new PIN was sent to ⟨PHONE:phone⟩.\""),
        ("bank", "The Turkish client's TC kimlik no ⟨TR_TCKN:tckn⟩ and IBAN ⟨IBAN:iban⟩ need verification."),
        ("bank", "Counterparty INN ⟨RU_INN:inn10⟩, contact ⟨PERSON:full⟩, ⟨EMAIL:email⟩."),
        ("gov", "Russian employee: SNILS ⟨RU_SNILS:snils⟩, INN ⟨RU_INN:inn12⟩, passport ⟨PASSPORT:passport@ru⟩."),
        ("support", "Server logs show logins for ⟨EMAIL:email⟩ from ⟨IP_ADDRESS:ipv6⟩ and ⟨IP_ADDRESS:ipv4⟩ at ⟨o:ts⟩."),
        ("gov", "Our new hire ⟨PERSON:full_f⟩ gave FIN ⟨AZ_FIN:fin⟩ and ID card number ⟨AZ_ID_CARD:idcard⟩ for payroll."),
        ("health", "Insurance claim ⟨o:invoice⟩ for ⟨PERSON:full⟩, SSN ⟨US_SSN:ssn⟩, address ⟨ADDRESS:addr⟩."),
    ],
    "az": [
        ("support", "Salam, mən ⟨PERSON:full⟩. Hesabıma daxil ola bilmirəm, e-poçtum ⟨EMAIL:email⟩, telefonum ⟨PHONE:phone_az⟩."),
        ("support", "Müraciət ⟨o:ticket⟩: müştəri ⟨PERSON:full_f⟩ sifariş ⟨o:order⟩ barədə zəng edib, nömrəsi ⟨PHONE:phone_az⟩."),
        ("support", "Xahiş edirəm, cənab ⟨PERSON:full_m⟩ ilə ⟨PHONE:phone_az⟩ nömrəsi ilə əlaqə saxlayın."),
        ("support", "Xanım ⟨PERSON:first_f⟩ yazır ki, ⟨EMAIL:email⟩ ünvanına məktub gəlmir."),
        ("bank", "Kartımdan (⟨CREDIT_CARD:card⟩) ⟨o:amount⟩ iki dəfə çıxılıb, geri qaytarın."),
        ("bank", "Pulu bu hesaba köçürün: ⟨IBAN:iban_az⟩, alıcı ⟨PERSON:formal⟩."),
        ("bank", "Kredit ərizəsi: ⟨PERSON:formal⟩, doğum tarixi ⟨DATE_OF_BIRTH:dob⟩, FİN ⟨AZ_FIN:fin⟩, mobil ⟨PHONE:phone_az⟩."),
        ("bank", "Şirkətin VÖEN-i ⟨AZ_VOEN:voen⟩, hesab nömrəsi ⟨IBAN:iban_az⟩, direktor ⟨PERSON:full⟩."),
        ("gov", "Şəxsiyyət vəsiqəsi ⟨AZ_ID_CARD:idcard⟩, FİN kod: ⟨AZ_FIN:fin⟩, qeydiyyat ünvanı: ⟨ADDRESS:addr⟩."),
        ("gov", "Vətəndaş ⟨PERSON:formal⟩ (doğum tarixi: ⟨DATE_OF_BIRTH:dob⟩) ASAN xidmətə pasport ⟨PASSPORT:passport⟩ ilə müraciət edib."),
        ("gov", "ŞV-nin FİN kodu ⟨AZ_FIN:fin⟩, seriyası ⟨AZ_ID_CARD:idcard⟩ olan sənəd itirilib."),
        ("gov", "Xarici pasport ⟨PASSPORT:passport⟩ ⟨PERSON:full⟩ adına ⟨o:date⟩ tarixində verilib."),
        ("health", "Pasiyent ⟨PERSON:full_f⟩, ⟨DATE_OF_BIRTH:dob⟩ təvəllüdlü, ⟨ADDRESS:addr⟩ ünvanında yaşayır."),
        ("health", "Həkim ⟨PERSON:full⟩ analiz nəticələrini ⟨EMAIL:email⟩ ünvanına göndərəcək."),
        ("health", "Xəstə: ⟨PERSON:formal⟩; doğum tarixi ⟨DATE_OF_BIRTH:dob⟩; əlaqə nömrəsi ⟨PHONE:phone_az⟩; diaqnoz: hipertoniya."),
        ("agri", "Kooperativ sədri ⟨PERSON:full_m⟩ (⟨PHONE:phone_az⟩) ⟨o:hectares⟩ hektar pambıq sahəsi üçün subsidiya istəyir."),
        ("agri", "Fermer ⟨PERSON:formal⟩, VÖEN: ⟨AZ_VOEN:voen⟩, subsidiya ⟨IBAN:iban_az⟩ hesabına köçürülsün."),
        ("agri", "Toxumları ⟨ADDRESS:addr⟩ ünvanına çatdırın, ⟨PERSON:first⟩ müəllimə ⟨PHONE:phone_az⟩ zəng edin."),
        ("agri", "Aqrar Subsidiya Şurasına ərizə: ⟨PERSON:full⟩, FİN ⟨AZ_FIN:fin⟩, torpaq sahəsi ⟨o:hectares⟩ ha."),
        ("support", "Bu mətni ingiliscəyə tərcümə et: \"Hörmətli ⟨PERSON:full⟩, yeni PIN kodunuz ⟨PHONE:phone_az⟩ nömrəsinə göndərildi.\""),
        ("bank", "Türkiyəli müştərinin TC kimlik nömrəsi ⟨TR_TCKN:tckn⟩, Rusiya şirkətinin İNN-i ⟨RU_INN:inn10⟩."),
        ("support", "Giriş ⟨IP_ADDRESS:ip⟩ ünvanından olub, istifadəçi ⟨EMAIL:email⟩, vaxt ⟨o:ts⟩."),
        ("gov", "⟨PERSON:formal⟩ ⟨DATE_OF_BIRTH:dob⟩ tarixində anadan olub, şəxsiyyət vəsiqəsinin FİN-i ⟨AZ_FIN:fin⟩."),
        ("bank", "Vergi ödəyicisinin VÖEN ⟨AZ_VOEN:voen⟩, əlaqə: ⟨EMAIL:email⟩, ⟨PHONE:phone_az⟩."),
        ("bank", "Kart: ⟨CREDIT_CARD:card⟩; sahibi ⟨PERSON:full⟩; müddət 11/28."),
        ("gov", "ABŞ-dakı işəgötürən ⟨PERSON:full⟩ üçün SSN ⟨US_SSN:ssn⟩ və ev ünvanı ⟨ADDRESS:addr⟩ istəyir."),
        ("gov", "Sənəd ⟨PERSON:full_m⟩ tərəfindən imzalanıb, ünvan: ⟨ADDRESS:addr⟩, tel. ⟨PHONE:phone_az⟩."),
    ],
    "ru": [
        ("support", "Здравствуйте, меня зовут ⟨PERSON:full⟩, не могу войти в кабинет. Почта ⟨EMAIL:email⟩, тел. ⟨PHONE:phone_ru⟩."),
        ("support", "Обращение ⟨o:ticket⟩: клиентка ⟨PERSON:full_f⟩ жалуется на задержку заказа ⟨o:order⟩."),
        ("support", "Перезвоните господину ⟨PERSON=Смирнову⟩ по номеру ⟨PHONE:phone_ru⟩, он спрашивал про счёт ⟨o:invoice⟩."),
        ("support", "Пользователь ⟨EMAIL:email⟩ получает ошибку 403 с адреса ⟨IP_ADDRESS:ipv4⟩."),
        ("bank", "С карты ⟨CREDIT_CARD:card⟩ дважды списали ⟨o:amount⟩, прошу вернуть."),
        ("bank", "Переведите деньги на счёт ⟨IBAN:iban⟩, получатель ⟨PERSON:formal⟩."),
        ("bank", "Заявка на кредит: ⟨PERSON:formal⟩, дата рождения ⟨DATE_OF_BIRTH:dob⟩, ИНН ⟨RU_INN:inn12⟩, тел. ⟨PHONE:phone_ru⟩."),
        ("bank", "Реквизиты организации: ИНН ⟨RU_INN:inn10⟩, генеральный директор ⟨PERSON:formal⟩, e-mail ⟨EMAIL:email⟩."),
        ("gov", "Паспорт ⟨PASSPORT:passport⟩ выдан ⟨o:date⟩, владелец ⟨PERSON:formal⟩, адрес регистрации: ⟨ADDRESS:addr⟩."),
        ("gov", "СНИЛС ⟨RU_SNILS:snils⟩, ИНН ⟨RU_INN:inn12⟩ — проверьте, пожалуйста, данные сотрудника ⟨PERSON:full⟩."),
        ("gov", "Гражданин ⟨PERSON:formal_m⟩, ⟨DATE_OF_BIRTH:dob⟩ года рождения, проживающий по адресу ⟨ADDRESS:addr⟩."),
        ("gov", "Для оформления пособия укажите СНИЛС: ⟨RU_SNILS:snils⟩ и дату рождения: ⟨DATE_OF_BIRTH:dob⟩."),
        ("health", "Пациентка ⟨PERSON:full_f⟩, дата рождения ⟨DATE_OF_BIRTH:dob⟩, полис ОМС, СНИЛС ⟨RU_SNILS:snils⟩."),
        ("health", "Врач ⟨PERSON:full⟩ отправит результаты анализов на ⟨EMAIL:email⟩."),
        ("health", "Выписка: ⟨PERSON:formal⟩ (д.р. ⟨DATE_OF_BIRTH:dob⟩) наблюдается с гипертонией, контакт ⟨PHONE:phone_ru⟩."),
        ("agri", "Председатель кооператива ⟨PERSON:full_m⟩ (⟨PHONE:phone_ru⟩) запрашивает субсидию на ⟨o:hectares⟩ га пшеницы."),
        ("agri", "Фермерское хозяйство, ИНН ⟨RU_INN:inn⟩, глава ⟨PERSON:formal⟩, адрес: ⟨ADDRESS:addr⟩."),
        ("agri", "Доставьте семена по адресу ⟨ADDRESS:addr⟩ и позвоните ⟨PERSON=Ивану⟩ по ⟨PHONE:phone_ru⟩."),
        ("support", "Переведи на английский: «Уважаемый ⟨PERSON:full_m⟩, новый PIN-код отправлен на номер ⟨PHONE:phone_ru⟩»."),
        ("bank", "Азербайджанский партнёр: VÖEN ⟨AZ_VOEN:voen⟩, FIN директора ⟨AZ_FIN:fin⟩, счёт ⟨IBAN:iban_az⟩."),
        ("support", "В логах входы ⟨EMAIL:email⟩ с ⟨IP_ADDRESS:ipv6⟩ в ⟨o:ts⟩."),
        ("gov", "Удостоверение личности Азербайджана ⟨AZ_ID_CARD:idcard⟩, паспорт ⟨PASSPORT:passport⟩, владелец ⟨PERSON:full⟩."),
        ("bank", "Карта ⟨CREDIT_CARD:card⟩ заблокирована, держатель ⟨PERSON:full⟩, телефон ⟨PHONE:phone_ru⟩."),
        ("gov", "Турецкий гражданин, TC kimlik ⟨TR_TCKN:tckn⟩, паспорт ⟨PASSPORT:passport@tr⟩."),
        ("bank", "ИНН ⟨RU_INN:inn12⟩; СНИЛС ⟨RU_SNILS:snils⟩; карта ⟨CREDIT_CARD:card⟩."),
        ("gov", "Заявитель ⟨PERSON:formal_f⟩, дата рождения: ⟨DATE_OF_BIRTH:dob⟩, паспорт серии ⟨PASSPORT:passport⟩."),
    ],
    "tr": [
        ("support", "Merhaba, ben ⟨PERSON:full⟩. Hesabıma giremiyorum; e-posta adresim ⟨EMAIL:email⟩, telefonum ⟨PHONE:phone_tr⟩."),
        ("support", "Talep ⟨o:ticket⟩: müşteri ⟨PERSON:full_f⟩, ⟨o:order⟩ numaralı siparişin gelmediğini bildirdi."),
        ("support", "Sayın ⟨PERSON:full⟩ ile ⟨PHONE:phone_tr⟩ numarasından iletişime geçin lütfen."),
        ("support", "⟨PERSON:first_f⟩ Hanım, ⟨EMAIL:email⟩ adresine fatura ⟨o:invoice⟩ gönderilmediğini yazdı."),
        ("bank", "Kartımdan (⟨CREDIT_CARD:card⟩) ⟨o:amount⟩ iki kez çekildi, iade edin."),
        ("bank", "Parayı şu IBAN'a gönderin: ⟨IBAN:iban⟩, alıcı ⟨PERSON:full⟩."),
        ("bank", "Kredi başvurusu: ⟨PERSON:full⟩, TC kimlik no ⟨TR_TCKN:tckn⟩, doğum tarihi ⟨DATE_OF_BIRTH:dob⟩."),
        ("bank", "Müşteri TCKN: ⟨TR_TCKN:tckn⟩, cep: ⟨PHONE:phone_tr⟩, e-posta: ⟨EMAIL:email⟩."),
        ("gov", "Başvuru sahibi ⟨PERSON:full⟩, T.C. Kimlik No: ⟨TR_TCKN:tckn⟩, adres: ⟨ADDRESS:addr⟩."),
        ("gov", "Pasaport numarası ⟨PASSPORT:passport⟩, doğum tarihi: ⟨DATE_OF_BIRTH:dob⟩, ad soyad ⟨PERSON:full⟩."),
        ("gov", "e-Devlet şifresi için ⟨TR_TCKN:tckn⟩ kimlik numarası ve ⟨PHONE:phone_tr⟩ telefonu kullanıldı."),
        ("health", "Hasta ⟨PERSON:full_f⟩, doğum tarihi ⟨DATE_OF_BIRTH:dob⟩, ⟨ADDRESS:addr⟩ adresinde ikamet ediyor."),
        ("health", "Dr. ⟨PERSON:full⟩ tahlil sonuçlarını ⟨EMAIL:email⟩ adresine gönderecek."),
        ("health", "Epikriz: ⟨PERSON:full_m⟩ (TC ⟨TR_TCKN:tckn⟩), ⟨DATE_OF_BIRTH:dob⟩ doğumlu, tansiyon takibi."),
        ("agri", "Kooperatif başkanı ⟨PERSON:full_m⟩ (⟨PHONE:phone_tr⟩), ⟨o:hectares⟩ dekar buğday için destek istiyor."),
        ("agri", "Çiftçi ⟨PERSON:full⟩, TCKN ⟨TR_TCKN:tckn⟩, destek ödemesi ⟨IBAN:iban⟩ hesabına yatırılsın."),
        ("agri", "Gübreyi ⟨ADDRESS:addr⟩ adresine teslim edin, varınca ⟨PERSON:first_m⟩ Bey'i ⟨PHONE:phone_tr⟩ numarasından arayın."),
        ("support", "Şunu İngilizceye çevir: \"Sayın ⟨PERSON:full⟩, yeni şifreniz ⟨PHONE:phone_tr⟩ numarasına gönderildi.\""),
        ("bank", "Azerbaycanlı ortak: VÖEN ⟨AZ_VOEN:voen⟩, hesap ⟨IBAN:iban_az⟩, yetkili ⟨PERSON:full⟩."),
        ("support", "Loglarda ⟨EMAIL:email⟩ kullanıcısının ⟨IP_ADDRESS:ip⟩ adresinden girişi görünüyor."),
        ("gov", "Azerbaycan kimlik kartı ⟨AZ_ID_CARD:idcard⟩, FİN ⟨AZ_FIN:fin⟩, sahibi ⟨PERSON:full@az⟩."),
        ("bank", "Kart: ⟨CREDIT_CARD:card⟩, son kullanma 04/29, kart sahibi ⟨PERSON:full⟩."),
        ("gov", "Rus vatandaşı, pasaport ⟨PASSPORT:passport@ru⟩, SNILS ⟨RU_SNILS:snils⟩, INN ⟨RU_INN:inn12⟩."),
        ("gov", "Yabancı uyruklu başvuru: ⟨PERSON:full⟩, pasaport ⟨PASSPORT:passport⟩, doğum tarihi ⟨DATE_OF_BIRTH:dob⟩."),
        ("bank", "ABD'li müşterinin SSN numarası ⟨US_SSN:ssn⟩, telefonu ⟨PHONE:phone_en⟩."),
        ("support", "Sunucu ⟨IP_ADDRESS:ipv4⟩ erişilemiyor; yönetici ⟨PERSON:full⟩, ⟨EMAIL:email⟩."),
    ],
}

NEG: dict[str, list[tuple[str, str]]] = {
    "en": [
        ("support", "Order ⟨o:order⟩ shipped on ⟨o:date⟩; tracking updates every 4 hours."),
        ("support", "After upgrading to ⟨o:version⟩ the dashboard shows a blank page in Chrome and Firefox."),
        ("support", "Ticket ⟨o:ticket⟩ was merged into ⟨o:ticket⟩; the fix ships in release ⟨o:version⟩."),
        ("bank", "Invoice ⟨o:invoice⟩ for ⟨o:amount⟩ is due on ⟨o:date⟩."),
        ("bank", "The test number ⟨o:bad_card⟩ fails the Luhn check, so the form rejects it."),
        ("bank", "Why is ⟨o:bad_iban⟩ rejected as an invalid IBAN? The check digits look wrong."),
        ("bank", "Apple Pay and Google Pay are supported at Kapital Bank and Halyk Bank terminals."),
        ("gov", "The office on Nizami Street is closed on ⟨o:date⟩; applications are accepted online."),
        ("gov", "Form W-9, revision ⟨o:version⟩, section 3.2.1 explains the reporting threshold of ⟨o:amount⟩."),
        ("health", "Take 500 mg twice a day for 10 days; next check-up on ⟨o:date⟩ at 09:30."),
        ("health", "Ward B, bed 14: blood pressure 135/85, pulse 72, temperature 36.8."),
        ("agri", "The cooperative harvested ⟨o:hectares⟩ ha of cotton in Sabirabad; yield rose by 12%."),
        ("agri", "Product ⟨o:product⟩ (urea 46%) costs ⟨o:amount⟩ per tonne; order ⟨o:order⟩."),
        ("support", "Request ⟨o:uuid⟩ timed out at ⟨o:ts⟩; retry with backoff."),
        ("support", "Reference ⟨o:bad_ssn⟩ appears on the shipping label, not a social security number."),
        ("gov", "Registry entry ⟨o:num11⟩ was created on ⟨o:date⟩ by the Ministry of Agriculture."),
    ],
    "az": [
        ("support", "Sifariş ⟨o:order⟩ ⟨o:date⟩ tarixində göndərilib, çatdırılma 3 gün çəkir."),
        ("support", "Tətbiqi ⟨o:version⟩ versiyasına yenilədikdən sonra giriş səhifəsi açılmır."),
        ("bank", "Faktura ⟨o:invoice⟩ üzrə ⟨o:amount⟩ ödəniş ⟨o:date⟩ tarixinə qədər edilməlidir."),
        ("bank", "⟨o:bad_card⟩ nömrəsi Luhn yoxlamasından keçmir, sistem onu qəbul etmir."),
        ("bank", "⟨o:bad_iban⟩ IBAN kimi qəbul olunmur, nəzarət rəqəmləri səhvdir."),
        ("bank", "Kapital Bank və ABB filialları bazar günü işləmir, Azercell abunəçiləri üçün endirim var."),
        ("gov", "Heydər Əliyev prospektindəki ASAN xidmət mərkəzi ⟨o:date⟩ tarixində bağlı olacaq."),
        ("gov", "Qanunun 3.2.1-ci maddəsinə əsasən ərizə 15 iş günü ərzində baxılır."),
        ("health", "Dərmanı gündə iki dəfə 500 mq qəbul edin, növbəti müayinə ⟨o:date⟩ tarixində."),
        ("health", "Nizami rayonundakı poliklinikada qəbul saat 09:00-dan 18:00-dək davam edir."),
        ("agri", "Kooperativ Sabirabadda ⟨o:hectares⟩ hektar pambıq yığıb, məhsuldarlıq 12% artıb."),
        ("agri", "⟨o:product⟩ kodlu gübrənin tonu ⟨o:amount⟩, sifariş nömrəsi ⟨o:order⟩."),
        ("agri", "Subsidiya üçün müraciətlər ⟨o:date⟩ tarixinədək Aqrar Subsidiya Şurasına qəbul edilir."),
        ("support", "Sorğu ⟨o:uuid⟩ ⟨o:ts⟩ vaxtında cavabsız qaldı, yenidən cəhd edin."),
        ("gov", "Reyestr nömrəsi ⟨o:num11⟩ olan qeyd Kənd Təsərrüfatı Nazirliyi tərəfindən yaradılıb."),
        ("support", "Müraciət ⟨o:ticket⟩ bağlandı; düzəliş ⟨o:version⟩ buraxılışında olacaq."),
    ],
    "ru": [
        ("support", "Заказ ⟨o:order⟩ отправлен ⟨o:date⟩, доставка займёт 3 дня."),
        ("support", "После обновления до версии ⟨o:version⟩ не открывается личный кабинет."),
        ("bank", "Счёт ⟨o:invoice⟩ на сумму ⟨o:amount⟩ нужно оплатить до ⟨o:date⟩."),
        ("bank", "Номер ⟨o:bad_card⟩ не проходит проверку Луна, форма его отклоняет."),
        ("bank", "Почему ⟨o:bad_iban⟩ не принимается как IBAN? Контрольные цифры неверны."),
        ("bank", "Отделения Сбербанка и ВТБ на улице Пушкина работают до 20:00."),
        ("gov", "Проверка ИНН ⟨o:bad_inn⟩ выдаёт ошибку контрольного числа — такого номера нет."),
        ("gov", "Номер ⟨o:bad_snils⟩ не является корректным СНИЛС: контрольная сумма не совпадает."),
        ("health", "Принимать по 500 мг два раза в день, повторный приём ⟨o:date⟩ в 9:30."),
        ("health", "Палата 14: давление 135/85, пульс 72, температура 36,8."),
        ("agri", "Кооператив собрал ⟨o:hectares⟩ га пшеницы в Краснодарском крае, урожайность выросла на 12%."),
        ("agri", "Удобрение ⟨o:product⟩ стоит ⟨o:amount⟩ за тонну, заказ ⟨o:order⟩."),
        ("support", "Запрос ⟨o:uuid⟩ завершился по таймауту в ⟨o:ts⟩."),
        ("gov", "Пункт 3.2.1 постановления № 1234 от ⟨o:date⟩ определяет размер субсидии."),
        ("support", "Тикет ⟨o:ticket⟩ закрыт, исправление войдёт в релиз ⟨o:version⟩."),
        ("gov", "Реестровая запись ⟨o:num11⟩ создана Минсельхозом ⟨o:date⟩."),
    ],
    "tr": [
        ("support", "⟨o:order⟩ numaralı sipariş ⟨o:date⟩ tarihinde kargoya verildi."),
        ("support", "⟨o:version⟩ sürümüne güncelledikten sonra uygulama açılmıyor."),
        ("bank", "⟨o:invoice⟩ numaralı ⟨o:amount⟩ tutarındaki fatura ⟨o:date⟩ tarihine kadar ödenmeli."),
        ("bank", "⟨o:bad_card⟩ numarası Luhn kontrolünden geçmiyor, sistem reddediyor."),
        ("bank", "⟨o:bad_iban⟩ geçerli bir IBAN değil, kontrol basamakları hatalı."),
        ("bank", "Ziraat Bankası ve Garanti BBVA şubeleri Atatürk Caddesi üzerinde."),
        ("gov", "⟨o:bad_tckn⟩ numarası TC kimlik doğrulamasından geçmedi, böyle bir numara yok."),
        ("gov", "Yönetmeliğin 3.2.1 maddesine göre başvurular 15 iş günü içinde sonuçlanır."),
        ("health", "Günde iki kez 500 mg alın, kontrol randevusu ⟨o:date⟩ saat 09:30'da."),
        ("health", "Oda 14: tansiyon 13/8, nabız 72, ateş 36,8."),
        ("agri", "Kooperatif Konya'da ⟨o:hectares⟩ dekar buğday hasat etti, verim %12 arttı."),
        ("agri", "⟨o:product⟩ kodlu gübrenin tonu ⟨o:amount⟩, sipariş ⟨o:order⟩."),
        ("support", "⟨o:uuid⟩ istekleri ⟨o:ts⟩ itibarıyla zaman aşımına uğradı."),
        ("gov", "Kayıt numarası ⟨o:num11⟩ olan başvuru ⟨o:date⟩ tarihinde Tarım Bakanlığına iletildi."),
        ("support", "⟨o:ticket⟩ numaralı talep kapatıldı; düzeltme ⟨o:version⟩ sürümünde gelecek."),
        ("gov", "Türk Telekom ve Turkcell bayileri İstiklal Caddesi'nde hafta sonu açık."),
    ],
}

# --------------------------------------------------------------------------------------------
# Hand-written texts (literal values; ⟨TYPE=value⟩ marks what is labelled). Checksummed values
# were generated with the functions above and pasted; `main` re-validates them.
# --------------------------------------------------------------------------------------------

HAND: dict[str, list[tuple[str, str]]] = {
    "en": [
        ("support", "hey, ⟨PERSON=Sarah⟩ here again!! still no reply to ⟨EMAIL=sarah.k.oconnell@gmail.com⟩…"),
        ("support", "Forwarding from ⟨PERSON=Tom Riley⟩ <⟨EMAIL=t.riley@northwind-logistics.co.uk⟩>: the API returns 500 since v2.3.1."),
        ("support", "Call me: ⟨PHONE=+1 (617) 555-0148⟩. Or text ⟨PHONE=617.555.0199⟩ after 6pm."),
        ("bank", "Card ending 4417 was declined at Amazon; full number ⟨CREDIT_CARD=4539 1488 0343 6467⟩, CVV not included."),
        ("bank", "Amex ⟨CREDIT_CARD=3714 496353 98431⟩ expired; please switch autopay to my debit card."),
        ("bank", "IBAN:⟨IBAN=GB82WEST12345698765432⟩ (Barclays) — is the sort code inside it?"),
        ("gov", "Mrs. ⟨PERSON=Eleanor Whitfield-Hayes⟩, born ⟨DATE_OF_BIRTH=12 March 1958⟩, moved from ⟨ADDRESS=14 Cedar Lane, Portland, OR 97205⟩."),
        ("health", "Pt. ⟨PERSON=J. Alvarez⟩ (DOB: ⟨DATE_OF_BIRTH=1979-11-02⟩) — allergic to penicillin; GP is Dr. ⟨PERSON=Hannah Lee⟩."),
        ("code", "# TODO remove before commit\nSTRIPE_SECRET=\"⟨SECRET=sk_live_51HxQ2aLk9PzTb3Vw8YcN4mRgT0uE7sJd6fKh⟩\""),
        ("code", "psql \"host=⟨IP_ADDRESS=10.12.0.7⟩ port=5432 dbname=crm user=analyst password=⟨SECRET=Rg7!pq2Lx9#w⟩\""),
        ("agri", "Farmer ⟨PERSON=Rashad Mammadov⟩ from Shaki asked whether the 2025 subsidy covers hazelnut orchards."),
        ("support", "Washington and Lincoln are the two branches we have in Nebraska; Jordan is the product name of our router."),
        ("support", "Version 10.4.2 of Ubuntu Pro, build 20240512, ships kernel 6.8.0-45."),
        ("bank", "The amount of $1,234,567.89 was wired on 2024-06-01 under reference 7700-1234-5678-9012."),
        ("gov", "Section 4111.1111 of the code and form 1040-SR apply; see page 12 of the 2024 instructions."),
        ("health", "Amoxicillin 875 mg, lot A1234567, expiry 2026-08; store below 25 °C."),
        ("code", "commit 3f9a1c27d8e0b4f5a6c7d8e9f0a1b2c3d4e5f6a7\nAuthor: ci-bot\n    bump to 2.10.0"),
        ("agri", "John Deere 6R and Case IH tractors are eligible under programme AG-2025-07."),
        ("support", "⟨PERSON=Priya⟩: my new number is ⟨PHONE=+44 7700 900123⟩; old one (⟨PHONE=+1 212 555 0176⟩) is gone."),
        ("code", "const client = new Client({ apiKey: '⟨SECRET=AIzaSyD3k9Qm2Lx8Vb7Nc6Zp5Rt4Wy1Ue0Hs-Jq⟩', project: 'agro-maps' });"),
        ("code", "{\"AccessKeyId\": \"⟨SECRET=AKIAZ7QK3M5N2P4R6T8V⟩\", \"SecretAccessKey\": \"⟨SECRET=q7Vt2Lr9+Hk4Wm1Zx8Pb3Nc6Ja0Ye5Ud/Gs2Fo7Q⟩\"}"),
        ("gov", "Date of birth (DD/MM/YYYY): ⟨DATE_OF_BIRTH=30/06/1974⟩. Place of birth: Ganja. Passport expiry: 30/06/2031."),
        ("bank", "Dispute: ⟨PERSON=Kevin O'Neill⟩, card ⟨CREDIT_CARD=378282246310005⟩, IBAN ⟨IBAN=GE62BG5383236405622415⟩, SSN ⟨US_SSN=512-48-3370⟩."),
        ("health", "She was born in ⟨DATE_OF_BIRTH=May 1990⟩ according to the chart; admitted 2025-02-11, discharged 2025-02-14."),
        ("support", "Virginia, Georgia and Carolina are our sales regions; Jackson Hole is the offsite venue; Ford and Dell sponsor it."),
        ("bank", "The Luhn-invalid test string 5536 9123 4567 8901 and IBAN GB00 WEST 1234 5698 7654 32 must be rejected."),
        ("code", "OID 1.3.6.1.4.1.2021.10.1.3.1; kernel 4.19.112; see section 10.2.3 of the runbook."),
    ],
    "az": [
        ("support", "Salam! ⟨PERSON=Günay⟩ yazır: ⟨EMAIL=gunay.hasanova@box.az⟩ ünvanıma kod gəlmir, tez baxın."),
        ("support", "⟨PERSON=Rəşad Əliyev⟩in sifarişi hələ çatmayıb, nömrəsi ⟨PHONE=055 312 44 87⟩."),
        ("gov", "Mən, ⟨PERSON=Məmmədova Aygün Vüqar qızı⟩, ⟨DATE_OF_BIRTH=14.02.1987⟩ tarixində anadan olmuşam, FİN: ⟨AZ_FIN=5ZJ8K2L⟩."),
        ("gov", "Şəxsiyyət vəsiqəsi: ⟨AZ_ID_CARD=AA4827361⟩; köhnə vəsiqə ⟨AZ_ID_CARD=AZE17283945⟩ etibarsızdır."),
        ("gov", "Yaşayış yeri: ⟨ADDRESS=Bakı şəhəri, Yasamal rayonu, Şərifzadə küçəsi 112, mənzil 34⟩."),
        ("bank", "Hesab: ⟨IBAN=AZ21NABZ00000000137010001944⟩; alan: ⟨PERSON=Tural Hüseynov⟩; təyinat: kirayə."),
        ("bank", "ABB-də açılmış kartım ⟨CREDIT_CARD=4169 7388 1234 5670⟩ bloklanıb, zəng edin: ⟨PHONE=(012) 498-12-34⟩."),
        ("agri", "Kooperativin VÖEN-i: ⟨AZ_VOEN=1401567832⟩. Sədr — ⟨PERSON=Elnur Qasımov⟩, tel.: ⟨PHONE=+994 50 123 45 67⟩."),
        ("health", "⟨PERSON=Leyla⟩ xanım üçün analiz cavabları hazırdır, ⟨PERSON=Nərgiz⟩ xanıma da deyin."),
        ("code", "# istehsal bazası\nPOSTGRES_PASSWORD=⟨SECRET=Ferma2024!⟩\nPOSTGRES_HOST=⟨IP_ADDRESS=192.168.10.25⟩"),
        ("support", "Heydər Əliyev adına Beynəlxalq Aeroportdan Nizami metrosuna necə gedim?"),
        ("gov", "Füzuli küçəsindəki ASAN xidmət mərkəzi 2025-ci il 1 mart tarixindən yeni ünvanda işləyir."),
        ("bank", "Kapital Bank-ın 2.3.7 versiyalı tətbiqində ödəniş 150.00 AZN kimi göstərilir, sifariş #884120."),
        ("agri", "Şəki və Qəbələ rayonlarında fındıq bağları üçün subsidiya 2025-ci ildə 20% artırılıb."),
        ("health", "Səməd Vurğun adına poliklinikada qəbul 09:00-da başlayır, kabinet 214."),
        ("support", "Azercell, Bakcell və Nar abunəçiləri üçün tarif 01.04.2025-dən dəyişir."),
        ("gov", "Reyestr nömrəsi 2024/118-AZ, VÖEN formasının 3.1 bəndi doldurulmayıb."),
        ("agri", "Nəsimi bazarında pomidorun kiloqramı 2,40 manatdır, Sabirabad pambığı isə 0,95."),
        ("support", "⟨PERSON=Nicat⟩ bəy, sabah saat 10-da ⟨PHONE=050-123-45-67⟩ nömrəsinə zəng edin; ⟨PERSON=Səbinə⟩ xanım da orada olacaq."),
        ("gov", "Ərizəçi: ⟨PERSON=Hüseynov Kamran Elçin oğlu⟩; ŞV seriya ⟨AZ_ID_CARD=AA0912345⟩, FİN ⟨AZ_FIN=7KP2XM9⟩; ⟨DATE_OF_BIRTH=3 fevral 1969⟩-cu ildə doğulub."),
        ("bank", "Ödəniş ⟨IBAN=AZ96CAPN45807302157368193036⟩ hesabına, VÖEN ⟨AZ_VOEN=1300456781⟩, kart ⟨CREDIT_CARD=5536912345678906⟩."),
        ("agri", "Fermer ⟨PERSON=Orxan Nəsirli⟩nin ⟨ADDRESS=Quba rayonu, Qəçrəş kəndi, Mərkəzi küçə 5⟩ ünvanındakı anbarına 3 ton toxum gətirin."),
        ("code", "# gizli açar\nSLACK_TOKEN=⟨SECRET=xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx⟩\nSERVER=⟨IP_ADDRESS=2001:db8:85a3::8a2e:370:7334⟩"),
        ("health", "Doğum tarixi: ⟨DATE_OF_BIRTH=1995-08-21⟩. Qan qrupu: II(+). Növbəti müayinə: 2025-09-01."),
        ("gov", "Azadlıq prospekti və Heydər Əliyev Mərkəzi arasında yol təmiri 2025-ci ilin may ayında bitəcək."),
        ("bank", "AZ00 NABZ 0000 0000 1370 1000 1944 nömrəsi səhvdir, nəzarət rəqəmləri uyğun gəlmir."),
        ("agri", "Gəncə Aqrar Kooperativi 2024-cü ildə 1 250 ton buğda tədarük edib, məhsul kodu AQR-2024-0031."),
    ],
    "ru": [
        ("support", "Добрый день! Пишет ⟨PERSON=Петрова Анна Сергеевна⟩, мой e-mail — ⟨EMAIL=anna.petrova@yandex.ru⟩."),
        ("support", "Передайте ⟨PERSON=Ивану Сергеевичу⟩, что ⟨PERSON=Кузнецова⟩ звонила с ⟨PHONE=+7 (495) 123-45-67⟩."),
        ("gov", "Паспорт гражданина РФ ⟨PASSPORT=4506 123456⟩ выдан ОВД района Хамовники 15.03.2010."),
        ("gov", "СНИЛС ⟨RU_SNILS=112-233-445 95⟩, ИНН ⟨RU_INN=500100732259⟩ (проверены)."),
        ("gov", "Адрес: ⟨ADDRESS=г. Москва, ул. Тверская, д. 12, кв. 34⟩; телефон ⟨PHONE=8 (916) 555-12-34⟩."),
        ("bank", "Карта «Мир» ⟨CREDIT_CARD=2200 1234 5678 9019⟩ — не проходит оплата."),
        ("bank", "ООО «Агро-Юг», ИНН ⟨RU_INN=7707083893⟩, КПП 773601001, р/с 40702810938000012345."),
        ("health", "Пациент ⟨PERSON=Смирнов А. В.⟩, ⟨DATE_OF_BIRTH=05.11.1979⟩ г.р., направлен к кардиологу."),
        ("health", "Родилась ⟨DATE_OF_BIRTH=12 марта 1980 г.⟩, аллергия на пенициллин."),
        ("code", "# прод\nexport GITHUB_TOKEN=⟨SECRET=ghp_8xK2mQ9vL4pR7sT1wY3zA6bC0dE5fG2hJ4kL⟩"),
        ("support", "Как доехать от улицы Пушкина до проспекта Ленина? Там рядом Сбербанк."),
        ("gov", "Постановление № 1432 от 12.10.2024 вступает в силу 01.01.2025."),
        ("bank", "Сумма 1 234 567,89 ₽ поступила по платёжному поручению № 000123 от 15.03.2025."),
        ("agri", "Кубанские кооперативы получили 3,2 млрд руб. субсидий; версия отчёта 1.4.2."),
        ("health", "Анализ № 77-0045-19 готов, норма глюкозы 3,9–5,5 ммоль/л."),
        ("support", "Заказ 4276 3800 1234 5671 — это номер накладной, а не карта (не проходит Луна)."),
        ("gov", "Министерство сельского хозяйства и Росреестр переехали на Садовую улицу."),
        ("agri", "Елена — название нашего сорта пшеницы, а Победа — название колхоза."),
        ("support", "Уважаемая ⟨PERSON=Ольга Николаевна⟩! Ваш номер ⟨PHONE=+7 926 123 45 67⟩ подтверждён."),
        ("gov", "Сведения: ⟨PERSON=Захаров Павел Олегович⟩, ⟨DATE_OF_BIRTH=14.07.1983⟩ г.р., ИНН ⟨RU_INN=772512345622⟩, СНИЛС ⟨RU_SNILS=234-567-890 99⟩."),
        ("bank", "ООО «Северный колос», ИНН ⟨RU_INN=7812345675⟩; карта сотрудника ⟨CREDIT_CARD=2202 2012 3456 7895⟩."),
        ("code", "# боевой ключ, не коммитить\nOPENAI_API_KEY=⟨SECRET=sk-Zx81mQw4Lp0rT9vB2nC7dE5fG3hJ6kL1aS8qW4eR2tY9uI0o⟩"),
        ("health", "Пациент родился ⟨DATE_OF_BIRTH=1 января 1950 г.⟩; госпитализирован 03.02.2025, выписан 10.02.2025."),
        ("support", "Письмо от ⟨EMAIL=d.lebedev@sber-client.ru⟩ пришло с ⟨IP_ADDRESS=185.12.44.201⟩ — это наш клиент ⟨PERSON=Лебедев Д.⟩?"),
        ("gov", "ИНН 7707083894 не проходит проверку контрольного разряда, а СНИЛС 112-233-445 96 — тоже."),
        ("agri", "Колхоз «Заря» и агрохолдинг «Мираторг» подписали договор № 45/2025 на 12 500 т зерна."),
        ("bank", "Курс 1 USD = 89,45 ₽ на 15.03.2025, комиссия 0,5 %, БИК 044525225."),
    ],
    "tr": [
        ("support", "⟨PERSON=Mehmet⟩'in telefonu kapalı, ⟨PERSON=Ayşe⟩'ye ulaşın: ⟨PHONE=0532 123 45 67⟩."),
        ("support", "⟨PERSON=Zeynep Çelik⟩ (⟨EMAIL=zeynep.celik@hotmail.com.tr⟩) şifresini sıfırlayamıyor."),
        ("gov", "T.C. Kimlik No: ⟨TR_TCKN=10000000146⟩ — ⟨PERSON=Hüseyin Arslan⟩, ⟨DATE_OF_BIRTH=23/04/1990⟩ doğumlu."),
        ("gov", "İkametgâh: ⟨ADDRESS=Cumhuriyet Mah. 1203 Sok. No:7, 35220 Konak/İzmir⟩."),
        ("bank", "IBAN: ⟨IBAN=TR33 0006 1005 1978 6457 8413 26⟩, alıcı ⟨PERSON=Fatma Öztürk⟩."),
        ("bank", "Kredi kartım ⟨CREDIT_CARD=5406 6753 4186 1134⟩ çalındı, hemen iptal edin!"),
        ("health", "Sayın ⟨PERSON=Elif Yıldız⟩'ın randevusu iptal edildi; doğum tarihi ⟨DATE_OF_BIRTH=3 Mart 1985⟩."),
        ("agri", "Çiftçi ⟨PERSON=Mustafa Şahin⟩, ÇKS kaydı için ⟨PHONE=+90 505 222 33 44⟩ numarasını verdi."),
        ("code", "# canlı ortam\nJWT_SECRET=⟨SECRET=q8Zr!4vT#x2Lm9Pw⟩\nMONGO_URI=mongodb://admin:⟨SECRET=Istanbul1453*⟩@⟨IP_ADDRESS=10.0.3.14⟩:27017"),
        ("support", "Atatürk Havalimanı'ndan Kadıköy'e nasıl giderim? Mehmet Akif Ersoy Caddesi kapalı mı?"),
        ("gov", "Resmî Gazete'nin 12.10.2024 tarihli sayısında 7524 sayılı kanun yayımlandı."),
        ("bank", "Fatura no 2024/00987, tutar 1.250,00 TL, son ödeme 15.01.2025."),
        ("agri", "Konya Ovası'nda buğday verimi dekar başına 450 kg; destek kodu TR-2025-118."),
        ("health", "İlaç kodu 8699536090115 olan kutu, son kullanma 08/2026."),
        ("support", "Turkcell Superonline modem yazılımı 3.2.14 sürümüne güncellendi."),
        ("gov", "12345678901 numarası TC kimlik algoritmasını geçmiyor, örnek veri."),
        ("agri", "Ayşe Teyze Çiftliği markalı süt ürünleri Migros raflarında."),
        ("bank", "Kart numarası gibi görünen 4111 1111 1111 1112 aslında test verisi ve geçersiz."),
        ("support", "⟨PERSON=Cem⟩'e söyleyin, ⟨PERSON=Derya Polat⟩'ın yeni numarası ⟨PHONE=+90 533 444 55 66⟩."),
        ("gov", "Vatandaş: ⟨PERSON=İbrahim Güneş⟩ — TCKN ⟨TR_TCKN=38502194798⟩, doğum tarihi ⟨DATE_OF_BIRTH=05.05.1965⟩, adres ⟨ADDRESS=Bahçelievler Mah. 1124 Sok. No:3, 06490 Çankaya/Ankara⟩."),
        ("bank", "Hesap ⟨IBAN=TR520004602621299722003322⟩, kart ⟨CREDIT_CARD=4276 3800 1234 5679⟩, TC ⟨TR_TCKN=21987654338⟩."),
        ("code", "# prod\nANTHROPIC_API_KEY=⟨SECRET=sk-ant-api03-Qw3rTy8uIoP1aSdF6gHjK9lZxC2vBnM5qWeR7tYuI0oPaS4dFgH1jKlZ3xCvBnM8qWeR6tYuI2oPaS5dFgH7jKlZxCvBnMqWeRtYuIoAA⟩"),
        ("health", "⟨DATE_OF_BIRTH=1978⟩ doğumlu hasta ⟨PERSON=Hülya Aslan⟩ kontrol için 12.03.2025'te gelecek."),
        ("support", "Bilet PNR: X7K2LM, uçuş TK1985, koltuk 14C; rezervasyon 2025-06-30."),
        ("gov", "Mustafa Kemal Atatürk Bulvarı ile İnönü Caddesi kavşağında yol çalışması var."),
        ("bank", "TR00 0006 1005 1978 6457 8413 26 geçersiz bir IBAN; kontrol basamağı yanlış."),
        ("agri", "Tarım Kredi Kooperatifi gübre fiyatlarını %8 düşürdü; ürün kodu TK-UREA-46."),
    ],
}

# --------------------------------------------------------------------------------------------
# Markup resolution and assembly
# --------------------------------------------------------------------------------------------

SLOT = re.compile(r"⟨([A-Za-z_]+)(?::(\w+)(?:@(\w\w))?)?(?:=([^⟩]*))?⟩")
ENTITY_TYPES = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "IP_ADDRESS", "PERSON", "ADDRESS", "DATE_OF_BIRTH",
                "AZ_FIN", "AZ_VOEN", "AZ_ID_CARD", "PASSPORT", "US_SSN", "TR_TCKN", "RU_INN", "RU_SNILS", "SECRET")
# (kept in sync with tiergate.privacy.entities.ENTITY_TYPES by the integrity test; copied so this
# script runs without the package installed)


def render(template: str, rng: Rng, lang: str) -> tuple[str, list[dict[str, object]]]:
    """Resolve the ⟨…⟩ slots of one template into text plus exact entity offsets."""
    out: list[str] = []
    entities: list[dict[str, object]] = []
    pos = 0
    length = 0
    for m in SLOT.finditer(template):
        literal = template[pos : m.start()]
        out.append(literal)
        length += len(literal)
        kind, gen, lang_override, value = m.groups()
        if value is None:
            value = GENERATORS[gen](rng, lang_override or lang)
        if kind != "o":
            if kind not in ENTITY_TYPES:
                raise ValueError(f"unknown entity type {kind!r} in {template!r}")
            entities.append({"type": kind, "start": length, "end": length + len(value)})
        out.append(value)
        length += len(value)
        pos = m.end()
    out.append(template[pos:])
    return "".join(out), entities


def _items(lang: str) -> list[tuple[str, str, int]]:
    """(domain, template, repeats) for one language, in a fixed order."""
    prefixes = CODE_COMMENTS[lang]
    code_pos = [(d, prefixes[i % len(prefixes)] + t, 2) for i, (d, t) in enumerate(CODE_POS)]
    return (
        [(d, t, REPEATS) for d, t in POS[lang]]
        + code_pos
        + [(d, t, REPEATS) for d, t in NEG[lang]]
        + [(d, prefixes[i % len(prefixes)] + t, 2) for i, (d, t) in enumerate(CODE_NEG)]
        + [(d, t, 1) for d, t in HAND[lang]]
    )


def build() -> list[dict[str, object]]:
    rng = random.Random(SEED)
    seen: set[str] = set()
    records: list[dict[str, object]] = []
    for lang in LANGS:
        counter = 0
        for domain, template, repeats in _items(lang):
            for _ in range(repeats):
                for _attempt in range(10):
                    text, entities = render(template, rng, lang)
                    if text not in seen:
                        break
                else:
                    continue  # a literal template already emitted
                seen.add(text)
                counter += 1
                records.append({"id": f"{lang}-{domain}-{counter:04d}", "lang": lang, "domain": domain,
                                "text": text, "entities": entities})
    return records


# --------------------------------------------------------------------------------------------
# Self-checks (the integrity test re-checks the written file independently)
# --------------------------------------------------------------------------------------------


def luhn_ok(number: str) -> bool:
    digits = re.sub(r"\D", "", number)
    return len(digits) >= 12 and luhn_check_digit(digits[:-1]) == digits[-1]


def iban_ok(value: str) -> bool:
    iban = value.replace(" ", "")
    return iban_check_digits(iban[:2], iban[4:]) == iban[2:4]


def tckn_ok(value: str) -> bool:
    return len(value) == 11 and value[0] != "0" and tckn_complete(value[:9]) == value


def inn_ok(value: str) -> bool:
    if len(value) == 10:
        return inn10_complete(value[:9]) == value
    return len(value) == 12 and inn12_complete(value[:10]) == value


def snils_ok(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    return len(digits) == 11 and snils_check(digits[:9]) == digits[9:]


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "CREDIT_CARD": luhn_ok, "IBAN": iban_ok, "TR_TCKN": tckn_ok, "RU_INN": inn_ok, "RU_SNILS": snils_ok,
}


def problems(records: list[dict[str, object]]) -> list[str]:
    """Offsets that are off, values that are padded, checksums that fail."""
    found = []
    for rec in records:
        text = rec["text"]
        for ent in rec["entities"]:
            value = text[ent["start"] : ent["end"]]
            if not value or value != value.strip():
                found.append(f"{rec['id']}: bad span {value!r}")
            check = VALIDATORS.get(ent["type"])
            if check and not check(value):
                found.append(f"{rec['id']}: {ent['type']} {value!r} fails its checksum")
    return found


def dump(records: list[dict[str, object]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if pii_eval.jsonl differs from a fresh build")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    records = build()
    bad = problems(records)
    if bad:
        print("\n".join(bad), file=sys.stderr)
        return 1
    content = dump(records)
    if args.check:
        same = args.out.exists() and args.out.read_text(encoding="utf-8") == content
        print("up to date" if same else f"{args.out} is stale: rerun build_eval.py")
        return 0 if same else 1
    args.out.write_text(content, encoding="utf-8")
    with_entities = sum(1 for r in records if r["entities"])
    print(f"wrote {len(records)} texts ({len(records) - with_entities} without entities) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
