"""Recognizers of structured identifiers and secrets.

Speed shapes this module: CPython's regex engine costs ~7-20 ns per character for a pattern that
starts with a character class and far less for one that starts with a literal, and a per-match
Python step costs ~1 us. So each family makes one pass at most and most make none:

* numbers (phones, cards, national ids, IPv4): one pass finds runs of digits and separators with
  at least 7 characters; each run is split into space-separated tokens and only token sequences
  with a plausible digit count are classified, by shape, checksum and the context words around;
* upper-case tokens (IBAN, ID card and passport numbers): one pass over `[A-Z]` starts;
* e-mail, IPv6, secrets, FIN codes and Russian passport "серия ... номер": found from literal
  triggers (`@`, `:`, `sk-`, `AKIA`, `-----BEGIN`, `FİN`...) with `str.find`, then matched
  with anchored patterns at those places only.

Context words (four languages) are looked up in a small lower-cased window around a candidate,
never in the whole text. Scores follow one scale: checksum and context ~0.95-1.0, checksum and
a convincing shape ~0.8-0.9, shape alone below 0.5 (dropped by the default threshold).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection, Iterator

from tiergate.privacy.entities import Entity
from tiergate.privacy.validators import (
    IBAN_LENGTHS,
    az_voen_valid,
    iban_mod97,
    luhn_valid,
    ru_inn_valid,
    ru_snils_valid,
    tckn_valid,
    us_ssn_valid,
)

# --------------------------------------------------------------------------------------------
# Context words


def normalize(window: str) -> str:
    """Lower-case for context matching: `İ`.lower() adds a combining dot, `ё` is written `е`."""
    return window.lower().replace("\u0307", "").replace("ё", "е")


class ContextWords:
    """Context words of one kind, found in a short lower-cased window.

    A word matches at a word start; words of three letters or fewer, and those written with a
    trailing `=`, must also end there ("tc", "fin", "pin"), longer ones may be inflected
    ("kartınızın", "паспорта", "telefonu").

    Speed: the words are compiled as a trie (`p(?:hone|ass…)|t(?:el…)`), opening with one branch
    per first character and the word-start test only after that character. sre then skips, in
    C, every position whose character starts no word, and tries few branches at the others; a
    flat alternation behind a look-behind tries every word at every position (~3x slower).
    """

    __slots__ = ("regex",)

    def __init__(self, words: str) -> None:
        trie: dict[str, dict] = {}
        for word in words.split():
            exact = word.endswith("=") or len(word.rstrip("=")) <= 3
            node = trie
            for ch in word.rstrip("=").replace("_", " "):
                node = node.setdefault(ch, {})
            # an inflectable word ends anywhere; an exact one only before a non-letter
            node[""] = node.get("", True) and exact  # type: ignore[assignment]
        branches = [re.escape(ch) + r"(?<![^\W\d_].)" + _trie_rest(sub) for ch, sub in sorted(trie.items())]
        self.regex = re.compile("(?:" + "|".join(branches) + ")")

    def search(self, window: str) -> re.Match[str] | None:
        """The first context word in `window` (already `normalize`d), or None."""
        return self.regex.search(window)


def _trie_rest(node: dict) -> str:
    """The regex for the rest of the words below a trie node (longer words tried first)."""
    alts = [re.escape(ch) + _trie_rest(sub) for ch, sub in sorted(node.items()) if ch]
    if "" in node:
        alts.append(r"(?![^\W\d_])" if node[""] else "")
    if len(alts) == 1:
        return alts[0]
    return "(?:" + "|".join(alts) + ")"


def _context_regex(words: str) -> ContextWords:
    """Words (space-separated, `_` for a space inside one) as a `ContextWords` matcher."""
    return ContextWords(words)


CONTEXT: dict[str, ContextWords] = {
    "PHONE": _context_regex(
        "phone telephone tel tel. mobile mob cell call calling contact reach whatsapp viber sms fax "
        "hotline number= telefon mobil zəng əlaqə nömrəm nömrəmə nömrəsi nömrəsinə "
        "тел тел. телефон моб моб. мобильн сотов звон позвон факс контакт связ номеру= "
        "cep gsm ara= arayın arayabilir numaram numarası numaradan iletişim irtibat"
    ),
    "CREDIT_CARD": _context_regex(
        "card cards credit debit visa mastercard master_card amex maestro cc cvv pan payment "
        "kart kartı kartın kartım kartla kartına kredit debet ödəniş "
        "карт карта карты карте картой кредитн дебетов оплат платеж платёж "
        "kredi banka_kartı ödeme troy"
    ),
    "IBAN": _context_regex(
        "iban account acct bank swift bic transfer wire beneficiary hesab hesabı köçürmə "
        "счет счета счёт банк перевод реквизит получател hesap havale eft alıcı banka"
    ),
    "EMAIL": _context_regex("email e-mail mail e-poçt poçt почт почта e-posta eposta"),
    "IP_ADDRESS": _context_regex("ip ip-address server host сервер хост sunucu ünvan адрес address"),
    "US_SSN": _context_regex("ssn ss# social_security social_sec ssa"),
    "TR_TCKN": _context_regex(
        "tc t.c. tckn tc_no tckimlik kimlik vatandaş nüfus identity national_id id_number id_no"
    ),
    "RU_INN": _context_regex("инн inn налогоплат taxpayer tax_id tin"),
    "RU_SNILS": _context_regex("снилс snils страхов пенсион insurance_number"),
    "AZ_VOEN": _context_regex("vöen voen vöen-i vöen-ə воен vergi_ödəyicisi"),
    "TAX": _context_regex("vergi taxpayer tax_id tin инн налог"),
    "PASSPORT": _context_regex(
        "passport passports pasport pasportu pasportun паспорт загранпаспорт pasaport pasaportu"
    ),
    "AZ_ID_CARD": _context_regex(
        "şəxsiyyət vəsiqə şv id_card id_kart identity_card seriya seriyası удостоверени "
        "kimlik_kartı ид-карт"
    ),
}

# The bound search methods, for `Windows.has` (called dozens of times per prompt).
_CONTEXT_SEARCH = {kind: words.regex.search for kind, words in CONTEXT.items()}

#: Labels that make a nearby number an order, invoice, version or product code, not PII.
NEGATIVE = _context_regex(
    "order orders invoice inv ref reference tracking sku part model serial s/n version ver build "
    "release item product transaction txn receipt batch lot ticket po= "
    "sifariş qaimə faktura məhsul əməliyyat partiya versiya "
    "sipariş fatura ürün işlem takip kargo sürüm "
    "заказ фактур накладн артикул трек версия товар транзакц квитанц парти заявк тикет"
)

#: Labels that make a dotted quad a version or an OID rather than an IPv4 address.
VERSION = _context_regex("version ver build release oid versiya версия sürüm")


class Windows:
    """Context windows of one text, lower-cased on demand and cached per span."""

    __slots__ = ("text", "_cache", "_neg")

    BEFORE = 56
    AFTER = 28
    NEG_BEFORE = 24

    def __init__(self, text: str) -> None:
        self.text = text
        self._cache: dict[tuple[int, int], str] = {}
        self._neg: dict[int, bool] = {}

    def around(self, start: int, end: int) -> str:
        key = (start, end)
        window = self._cache.get(key)
        if window is None:
            before = self.text[max(0, start - self.BEFORE) : start]
            window = normalize(before + " \x00 " + self.text[end : end + self.AFTER])
            self._cache[key] = window
        return window

    def has(self, kind: str, start: int, end: int) -> bool:
        """A context word of `kind` near the span."""
        window = self._cache.get((start, end))
        if window is None:
            window = self.around(start, end)
        return _CONTEXT_SEARCH[kind](window) is not None

    def negative(self, start: int) -> bool:
        """An order/invoice/version label (or `#`) right before the span."""
        hit = self._neg.get(start)
        if hit is None:
            before = self.text[max(0, start - self.NEG_BEFORE) : start]
            hit = before.rstrip().endswith("#") or NEGATIVE.search(normalize(before)) is not None
            self._neg[start] = hit
        return hit


Found = list[Entity]


def _word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


# --------------------------------------------------------------------------------------------
# Numbers: one pass for digit runs, then classification of token sequences

_NUM_RUN = re.compile(r"[+(0-9][0-9 \-.()+]{5,}[0-9]")
_GROUPS = re.compile(r"[0-9]+")

#: Expected total digit counts after `+` for common country codes (others: 8-15).
_COUNTRY_DIGITS: dict[str, tuple[int, ...]] = {
    "994": (12,), "7": (11,), "90": (12,), "1": (11,), "44": (11, 12), "49": (11, 12, 13),
    "995": (12,), "380": (12,), "375": (12,), "998": (12,), "996": (12,), "992": (12,),
    "993": (11,), "374": (11,), "98": (12,), "33": (11,), "39": (11, 12), "34": (11,),
    "86": (13,), "91": (12,), "971": (12,), "966": (12,), "48": (11,), "31": (11,), "43": (11, 12, 13),
}  # fmt: skip


class _Seq:
    """A candidate: consecutive tokens of a digit run, with its digits and grouping."""

    __slots__ = ("text", "start", "end", "digits", "groups", "_spans", "_value", "_seps")

    def __init__(self, text: str, start: int, end: int, spans: list[tuple[int, int]], digits: str) -> None:
        while text[start] == "(" and text.count("(", start, end) > text.count(")", start, end):
            start += 1  # "((012) 463-42-76)", "(+44 7967 596947)": the outer bracket is punctuation
        self.text = text
        self.start = start
        self.end = end
        self.digits = digits
        self._spans = spans
        self.groups = [b - a for a, b in spans]
        self._value: str | None = None
        self._seps: list[str] | None = None

    @property
    def value(self) -> str:
        if self._value is None:
            self._value = self.text[self.start : self.end]
        return self._value

    @property
    def seps(self) -> list[str]:
        if self._seps is None:
            spans = self._spans
            self._seps = [self.text[spans[i][1] : spans[i + 1][0]] for i in range(len(spans) - 1)]
        return self._seps

    @property
    def plus(self) -> bool:
        return self.value.startswith(("+", "(+"))

    def sep_set(self) -> set[str]:
        return set(self.seps)


_Token = tuple[int, list[tuple[int, int]], str]


def _tokens(text: str, run_start: int, run_end: int) -> list[_Token]:
    """Split a digit run into space-separated tokens: (start, digit-group spans, digits) each.

    A last token glued to letters ("12345-abc") is part of a code, not an identifier; it is replaced
    by a break marker (start -1). A run whose first token is glued ("INV-2024-00123", a UUID's last
    part, an IBAN's digits after "TR33") is dropped whole.
    """
    tokens: list[_Token] = []
    pos = run_start
    for piece in text[run_start:run_end].split(" "):
        if piece:
            body = piece.lstrip("+(")
            if body.isdigit():  # the common case: "994", "+994", "(012" need no regex
                tokens.append((pos, [(pos + len(piece) - len(body), pos + len(piece))], body))
            else:
                groups = [(pos + g.start(), pos + g.end()) for g in _GROUPS.finditer(piece)]
                if groups:
                    tokens.append((_token_start(text, groups[0][0]), groups, piece.translate(_NON_DIGITS)))
        pos += len(piece) + 1
    if tokens and _glued_left(text, tokens[0][0]):
        return []  # the tail of a code ("TR33 0006 1005 ...", "ID7 123 456"): nothing in it stands alone
    if tokens and tokens[-1][0] >= 0 and _glued_right(text, run_end):
        tokens[-1] = (-1, [], "")
    return tokens


def _token_start(text: str, first_digit: int) -> int:
    """Include a leading `+` or `(` in the token (`+994 ...`, `(012) ...`)."""
    start = first_digit
    while start > 0 and text[start - 1] in "+(":
        start -= 1
    return start


def _glued_left(text: str, start: int) -> bool:
    """Part of a longer code: after a letter/digit, `INV-`, `/api/`, or a decimal point."""
    if start == 0:
        return False
    prev = text[start - 1]
    if _word_char(prev):
        return True
    if start < 2 or prev not in "-./":
        return False
    before = text[start - 2]
    return before.isdigit() if prev == "." else _word_char(before)


def _glued_right(text: str, end: int) -> bool:
    if end >= len(text):
        return False
    nxt = text[end]
    if _word_char(nxt):
        return True
    return nxt in "-." and end + 1 < len(text) and text[end + 1].isdigit()


_NON_DIGITS = str.maketrans("", "", " -.()+")


def find_numbers(text: str, wanted: Collection[str], win: Windows) -> Found:
    """Phones, cards, SSN, TCKN, INN, SNILS, VÖEN, numeric passports, IPv4 addresses, and the codes
    whose digits follow capital letters: IBANs, ID card and passport numbers.
    """
    found: Found = []
    checks = _checks_by_length(frozenset(wanted))
    want_ip = "IP_ADDRESS" in wanted
    want_codes = not _UPPER_TYPES.isdisjoint(wanted)
    skip_to = 0
    for m in _NUM_RUN.finditer(text):
        start, end = m.span()
        if start < skip_to:
            continue
        code = _code_start(text, start) if start and _maybe_code(text, start) else -1
        if code >= 0:  # "AA1234567", "TR33 0006 1005 ...": the digits belong to a code
            if want_codes:
                skip_to = _upper_at(text, code, wanted, win, found)
            continue
        run = m.group()
        if " " in run:
            _run_tokens(text, m, checks, want_ip, win, found)
            continue
        if run[0] == "(" and ")" not in run:  # one token: the common case (dates, amounts, ids)
            start += 1
        if _glued_left(text, start) or _glued_right(text, end):
            continue
        if want_ip and run.count(".") == 3:
            _ipv4(text, start, [g.span() for g in _GROUPS.finditer(text, start, end)], win, found)
        digits = run.translate(_NON_DIGITS)
        if not 8 <= len(digits) <= 19:
            continue
        todo = checks[len(digits), not run.isdigit()]
        if todo and (len(digits) > 8 or text[start] in "+("):
            spans = [g.span() for g in _GROUPS.finditer(text, start, end)]
            _classify(_Seq(text, start, end, spans, digits), todo, win, found)
    return found


def _is_upper_or_digit(ch: str) -> bool:
    return "A" <= ch <= "Z" or "0" <= ch <= "9"


def _maybe_code(text: str, run_start: int) -> bool:
    """Cheap gate for `_code_start`: a capital letter right before the run, or a capital or digit
    before the blank before it. Most runs follow a blank after a lower-case word."""
    prev = text[run_start - 1]
    if "A" <= prev <= "Z":
        return True
    if prev != " " or run_start < 2:
        return False
    p2 = text[run_start - 2]
    return "A" <= p2 <= "Z" or "0" <= p2 <= "9"


def _code_start(text: str, run_start: int) -> int:
    """Where the code that a digit run belongs to starts, or -1 if the run stands alone.

    Glued to a capital letter ("AA1234567", "GB82WEST1234..."): the start of that token, or of
    the IBAN the token continues. After a space: only inside an IBAN written in groups of four
    ("AZ21 NABZ 0000 ..."), recognised by its head (two letters and two digits).
    """
    if run_start == 0:
        return -1
    glued = "A" <= text[run_start - 1] <= "Z"
    if not glued and text[run_start - 1] != " ":
        return -1
    if not glued:
        series = _id_prefix_start(text, run_start)
        if series >= 0:
            return series
    token_start = -1
    j = run_start
    if glued:
        while j > 0 and _is_upper_or_digit(text[j - 1]) and run_start - j < 40:
            j -= 1
        token_start = j
    head = token_start if glued and _iban_head(text, token_start) else -1
    while j >= 2 and text[j - 1] == " " and _is_upper_or_digit(text[j - 2]) and run_start - j < 40:
        k = j - 1
        while k > 0 and _is_upper_or_digit(text[k - 1]):
            k -= 1
        if j - 1 - k > 4:  # IBAN groups have four characters
            break
        if _iban_head(text, k):
            head = k
        j = k
    return head if head >= 0 else token_start


def _id_prefix_start(text: str, run_start: int) -> int:
    """`AA 1234567` / `AZE 12345678`: the series letters written apart from the number."""
    if run_start >= 3 and text.startswith("AA ", run_start - 3):
        start = run_start - 3
    elif run_start >= 4 and text.startswith("AZE ", run_start - 4):
        start = run_start - 4
    else:
        return -1
    return start if start == 0 or not _word_char(text[start - 1]) else -1


def _iban_head(text: str, i: int) -> bool:
    return (i + 4 <= len(text) and "A" <= text[i] <= "Z" and "A" <= text[i + 1] <= "Z"
            and "0" <= text[i + 2] <= "9" and "0" <= text[i + 3] <= "9")


def _run_tokens(text: str, m: re.Match[str], checks: _Table, want_ip: bool,
                win: Windows, found: Found) -> None:
    """Classify sequences of up to 6 consecutive tokens with a plausible digit count.

    Tokens covered by an identifier found from an earlier token are not starts themselves:
    "+994 50 123 45 67" is one phone, not also a "50 123 45 67" candidate.
    """
    tokens = _tokens(text, m.start(), m.end())
    covered = 0
    for i, (start, groups, _) in enumerate(tokens):
        if start < 0 or i < covered:
            continue
        if want_ip and len(groups) == 4:
            _ipv4(text, start, groups, win, found)
        spans: list[tuple[int, int]] = []
        digits = ""
        before = len(found)
        # a first group longer than 4 digits only starts single-token identifiers ("0501234567")
        last = i + 1 if groups[0][1] - groups[0][0] > 4 else min(i + 6, len(tokens))
        plus = text[start] == "+" or text.startswith("(+", start)
        for j in range(i, last):
            token_start, token_groups, token_digits = tokens[j]
            if token_start < 0:
                break
            spans += token_groups  # in place: each `_Seq` is used up before the next extension
            digits += token_digits
            if len(digits) > 19:
                break
            todo = checks.get((len(digits), len(spans) > 1))
            if not todo:
                continue
            if plus and _country_fit(digits) is False:
                continue  # "+994 50 123": a `+` starts a phone only, and 994 numbers have 12 digits
            if len(digits) > 8 or text[start] in "+(":
                _classify(_Seq(text, start, spans[-1][1], spans, digits), todo, win, found)
                if len(found) > before and found[-1].score >= 0.5:
                    covered = j + 1


def _ipv4(text: str, start: int, groups: list[tuple[int, int]], win: Windows, found: Found) -> None:
    end = groups[-1][1]
    if text[start] in "+(" or any(groups[k + 1][0] - groups[k][1] != 1 or text[groups[k][1]] != "."
                                  for k in range(3)):
        return
    parts = [text[a:b] for a, b in groups]
    if any(len(p) > 3 or int(p) > 255 or (len(p) > 1 and p[0] == "0") for p in parts):
        return
    score, reason = 0.85, "pattern:ipv4"
    if win.has("IP_ADDRESS", start, end):
        score, reason = 0.95, reason + "+context"
    elif VERSION.search(normalize(text[max(0, start - 24) : start])) or text[start - 1 : start] == "v":
        score, reason = 0.3, reason + "+version-label"
    found.append(Entity("IP_ADDRESS", start, end, score, reason))


_Check = Callable[["_Seq", Windows], "tuple[float, str] | None"]


def _classify(seq: _Seq, checks: tuple[tuple[str, _Check], ...], win: Windows, found: Found) -> None:
    for kind, check in checks:
        result = check(seq, win)
        if result is not None:
            score, reason = result
            found.append(Entity(kind, seq.start, seq.end, score, reason))


def _scored(seq: _Seq, win: Windows, kind: str, base: float, ctx_score: float, reason: str,
            *, neg_score: float = 0.3) -> tuple[float, str]:
    """Raise to `ctx_score` when a context word is near, lower when an order/invoice label is."""
    if win.has(kind, seq.start, seq.end):
        return max(base, ctx_score), reason + "+context"
    if base >= 0.5 and win.negative(seq.start):
        return min(base, neg_score), reason + "+negative-context"
    return base, reason


def _phone(seq: _Seq, win: Windows) -> tuple[float, str] | None:
    """International (`+`/`00` and a country code) and national AZ/TR/RU/US phone formats.

    Digit tests come first (they reject most sequences), separators after.
    """
    digits, text, start = seq.digits, seq.text, seq.start
    n = len(digits)
    if text[start] == "+" or text.startswith("(+", start):
        penalty, national = 0.0, digits
    elif digits.startswith("00") and text[start] != "(":
        penalty, national = 0.15, digits[2:]
    elif n in (10, 11) and _national_digits_fit(digits, seq.groups):
        penalty, national = -1.0, ""
    else:
        return None
    if penalty >= 0 and (not 8 <= len(national) <= 15 or national[0] == "0" or _country_fit(national) is False):
        return None
    if not _phone_separators(seq):
        return None
    if penalty < 0:
        return _phone_national(seq, win)
    return _phone_international(seq, national, penalty, win)


def _national_digits_fit(digits: str, groups: list[int]) -> bool:
    """Trunk `0` (AZ 10 digits, TR 11), trunk `8` (RU 11), or the US 3-3-4 grouping."""
    n = len(digits)
    if digits[0] == "0":
        return (n == 10 and digits[1] != "0") or (n == 11 and digits[1] in "2345")
    if digits[0] == "8":
        return n == 11 and digits[1] in "34789"
    if n == 10:
        return groups == [3, 3, 4] and digits[0] in "23456789"
    return n == 11 and digits[0] == "1" and groups == [1, 3, 3, 4] and digits[1] in "23456789"


def _phone_separators(seq: _Seq) -> bool:
    """Spaces, dashes, dots (not mixed with others) and balanced brackets; no 1-digit last group."""
    groups = seq.groups
    if len(groups) == 1:
        return True
    if groups[-1] < 2:
        return False
    value = seq.value
    if value.count("(") != value.count(")"):
        return False
    seps = seq.seps
    dots = 0
    for sep in seps:
        mark = sep.replace(" ", "") if " " in sep else sep
        if len(mark) > 1 and mark != ")-" and mark != "-(":
            return False
        dots += mark == "."
    return dots == 0 or dots == len(seps)


def _country_fit(digits: str) -> bool | None:
    """True/False when the country code is known and the length fits or not; None if unknown."""
    for n in (3, 2, 1):
        lengths = _COUNTRY_DIGITS.get(digits[:n])
        if lengths is not None:
            return len(digits) in lengths
    return None


def _phone_international(seq: _Seq, digits: str, penalty: float, win: Windows) -> tuple[float, str]:
    base = (0.9 if _country_fit(digits) else 0.7) - penalty
    if len(seq.groups) == 1 and penalty:
        base -= 0.3
    if win.has("PHONE", seq.start, seq.end):
        return max(base, 0.97), "pattern:phone-international+context"
    return base, "pattern:phone-international"


def _phone_national(seq: _Seq, win: Windows) -> tuple[float, str] | None:
    digits, groups = seq.digits, seq.groups
    if len(groups) == 1:
        base = 0.35
    elif max(groups[1:]) > 4 or (digits[0] in "08" and groups[0] > 5):
        return None
    else:
        base = 0.7 if seq.value.startswith("(") or digits[0] in "08" else 0.6
    return _scored(seq, win, "PHONE", base, 0.95, "pattern:phone-national", neg_score=0.25)


def _iin_known(digits: str) -> bool:
    """Issuer prefixes of the card networks seen in the four markets (Visa, MC, Amex, Mir...)."""
    first2, first4 = int(digits[:2]), int(digits[:4])
    return (
        digits[0] == "4"
        or 51 <= first2 <= 55
        or 2221 <= first4 <= 2720
        or 2200 <= first4 <= 2204
        or first2 in (34, 37, 35, 36, 38, 30, 62, 60, 64, 65, 50, 56, 57, 58, 63, 67, 69)
        or first4 in (9792, 9860)
    )


def _card(seq: _Seq, win: Windows) -> tuple[float, str] | None:
    digits, groups = seq.digits, seq.groups
    if not 13 <= len(digits) <= 19:
        return None
    seps = seq.sep_set()
    if len(groups) > 1:
        if len(seps) != 1 or not seps <= {" ", "-"}:
            return None
        four = all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4
        if not (four or groups in ([4, 6, 5], [4, 6, 4])):
            return None
    if not luhn_valid(digits):
        return None
    known = _iin_known(digits)
    if len(groups) > 1:
        base = 0.9 if known else 0.6
    else:  # contiguous: 16 digits (15 for Amex) look like a card, other lengths like barcodes
        typical = len(digits) == 16 or (len(digits) == 15 and digits[:2] in ("34", "37"))
        base = 0.7 if known and typical else 0.4
    return _scored(seq, win, "CREDIT_CARD", base, 0.98, "pattern:card+luhn")


def _ssn(seq: _Seq, win: Windows) -> tuple[float, str] | None:
    if len(seq.digits) != 9 or not us_ssn_valid(seq.digits):
        return None
    if seq.groups == [3, 2, 4] and seq.sep_set() == {"-"}:
        base = 0.8
    elif seq.groups == [3, 2, 4] and seq.sep_set() == {" "}:
        base = 0.45
    elif len(seq.groups) == 1:
        base = 0.3
    else:
        return None
    return _scored(seq, win, "US_SSN", base, 0.97, "pattern:ssn+rules")


def _tckn(seq: _Seq, win: Windows) -> tuple[float, str] | None:
    if len(seq.groups) != 1 or not tckn_valid(seq.digits):
        return None
    return _scored(seq, win, "TR_TCKN", 0.65, 0.98, "pattern:tckn+checksum")


def _inn(seq: _Seq, win: Windows) -> tuple[float, str] | None:
    if len(seq.groups) != 1 or not ru_inn_valid(seq.digits):
        return None
    base = 0.6 if len(seq.digits) == 12 else 0.4
    return _scored(seq, win, "RU_INN", base, 0.97, "pattern:inn+checksum")


def _snils(seq: _Seq, win: Windows) -> tuple[float, str] | None:
    # the shape first: most 11-digit sequences are phones ("8 912 345-67-89"), not 3-3-3-2
    if len(seq.digits) != 11:
        return None
    if seq.groups == [3, 3, 3, 2] and seq.seps[0] == seq.seps[1] == "-" and seq.seps[2] in (" ", "-"):
        base = 0.9
    elif seq.groups == [3, 3, 3, 2] and seq.sep_set() == {" "}:
        base = 0.55  # "123 456 789 01": the grouping of the card, written with spaces only
    elif len(seq.groups) == 1:
        base = 0.35
    else:
        return None
    if not ru_snils_valid(seq.digits):
        return None
    return _scored(seq, win, "RU_SNILS", base, 0.98, "pattern:snils+checksum")


def _voen(seq: _Seq, win: Windows) -> tuple[float, str] | None:
    if len(seq.groups) != 1 or not az_voen_valid(seq.digits):
        return None
    if win.has("AZ_VOEN", seq.start, seq.end):
        return 0.97, "pattern:voen+context"
    if win.has("TAX", seq.start, seq.end):
        return 0.75, "pattern:voen+tax-context"
    return None


def _passport_numeric(seq: _Seq, win: Windows) -> tuple[float, str] | None:
    """Russian internal (`45 06 123456`), Russian foreign (`75 1234567`) and US (9 digits)."""
    if seq.groups not in ([2, 2, 6], [4, 6], [10], [2, 7], [9]) or seq.sep_set() - {" "}:
        return None
    if not win.has("PASSPORT", seq.start, seq.end):
        return None
    return (0.95 if len(seq.digits) == 10 else 0.9), "pattern:passport-number+context"


#: Each numeric check with the digit counts it can accept, so most sequences skip most checks.
_NUMERIC_CHECKS: tuple[tuple[str, _Check, range | tuple[int, ...], bool], ...] = (
    # kind, check, digit counts, also for numbers written in groups
    ("PHONE", _phone, range(8, 16), True),
    ("CREDIT_CARD", _card, range(13, 20), True),
    ("US_SSN", _ssn, (9,), True),
    ("TR_TCKN", _tckn, (11,), False),
    ("RU_INN", _inn, (10, 12), False),
    ("RU_SNILS", _snils, (11,), True),
    ("AZ_VOEN", _voen, (10,), False),
    ("PASSPORT", _passport_numeric, (9, 10), True),
)
_Table = dict[tuple[int, bool], tuple[tuple[str, _Check], ...]]
_BY_LENGTH_CACHE: dict[frozenset[str], _Table] = {}


def _checks_by_length(wanted: frozenset[str]) -> _Table:
    """The checks to try by (digit count, written in groups), for the wanted types."""
    table = _BY_LENGTH_CACHE.get(wanted)
    if table is None:
        table = {
            (n, grouped): tuple(
                (kind, check)
                for kind, check, lengths, any_groups in _NUMERIC_CHECKS
                if kind in wanted and n in lengths and (any_groups or not grouped)
            )
            for n in range(8, 20)
            for grouped in (False, True)
        }
        _BY_LENGTH_CACHE[wanted] = table
    return table

# --------------------------------------------------------------------------------------------
# Upper-case tokens: IBAN, Azerbaijani ID card numbers, passports with a letter prefix

_UPPER = re.compile(r"[A-Z](?:[A-Z][0-9]{2}(?: ?[A-Z0-9]){11,36}|A ?[0-9]{7}|ZE ?[0-9]{8}|[A-Z]?[0-9]{6,9})")
_ID_CARD = re.compile(r"AA ?[0-9]{7}|AZE ?[0-9]{8}")
_PASSPORT_LETTERS = re.compile(r"[A-Z]{1,2}[0-9]{6,9}")
_ID_OR_PASSPORT = re.compile(r"AA ?[0-9]{7}(?![0-9])|AZE ?[0-9]{8}(?![0-9])|[A-Z]{1,2}[0-9]{6,9}(?![0-9])")


_UPPER_TYPES = frozenset({"IBAN", "AZ_ID_CARD", "PASSPORT"})


def _upper_at(text: str, start: int, wanted: Collection[str], win: Windows, found: Found) -> int:
    """An IBAN, ID card or passport number starting at `start`; returns where scanning resumes."""
    if start and _word_char(text[start - 1]):
        return start
    m = _UPPER.match(text, start)
    if m is None:
        return start
    end, token = m.end(), m.group()
    if token[2:4].isdigit() and token[:2].isalpha() and len(token) >= 15:
        iban_end = _iban(text, start, token, win, found) if "IBAN" in wanted else None
        if iban_end is not None:
            return iban_end
        short = _ID_OR_PASSPORT.match(text, start)
        if short is None:
            return start
        token, end = short.group(), short.end()
    if _glued_right(text, end) or (end < len(text) and text[end].isalnum()):
        return start
    entity: Entity | None = None
    if _ID_CARD.fullmatch(token):
        if "AZ_ID_CARD" in wanted:
            entity = _id_card(start, end, token, win)
    elif "PASSPORT" in wanted and _PASSPORT_LETTERS.fullmatch(token):
        entity = _passport_letters(start, end, token, win)
    if entity is None:
        return start
    found.append(entity)
    return end


def _iban(text: str, start: int, token: str, win: Windows, found: Found) -> int | None:
    """Cut the greedy match to the country's IBAN length, then check mod 97."""
    expected = IBAN_LENGTHS.get(token[:2])
    lengths = (expected,) if expected else tuple(range(34, 14, -1))
    for length in lengths:
        end = _iban_end(token, length)
        if end is None or (end < len(token) and token[end] != " "):
            continue
        if start + end < len(text) and _word_char(text[start + end]):
            continue
        compact = token[:end].replace(" ", "")
        if iban_mod97(compact):
            base = 0.92 if expected else 0.75
            ctx = win.has("IBAN", start, start + end)
            score = max(base, 0.99) if ctx else base
            found.append(Entity("IBAN", start, start + end, score, "pattern:iban+mod97" + ("+context" if ctx else "")))
            return start + end
    return None


def _iban_end(token: str, length: int) -> int | None:
    """Offset in `token` right after its `length`-th alphanumeric character."""
    count = 0
    for i, ch in enumerate(token):
        if ch != " ":
            count += 1
            if count == length:
                return i + 1
    return None


def _id_card(start: int, end: int, token: str, win: Windows) -> Entity:
    if win.has("AZ_ID_CARD", start, end) or win.has("PASSPORT", start, end):
        return Entity("AZ_ID_CARD", start, end, 0.97, "pattern:az-id-card+context")
    base = 0.75 if token.startswith("AZE") else 0.65
    if win.negative(start):
        return Entity("AZ_ID_CARD", start, end, 0.3, "pattern:az-id-card+negative-context")
    return Entity("AZ_ID_CARD", start, end, base, "pattern:az-id-card")


def _passport_letters(start: int, end: int, token: str, win: Windows) -> Entity | None:
    """AZ `C` + 8 digits and TR `U` + 8 digits stand alone; other letter+digit shapes need context."""
    if win.has("PASSPORT", start, end):
        return Entity("PASSPORT", start, end, 0.97, "pattern:passport+context")
    if token[0] in "CU" and len(token) == 9 and token[1:].isdigit():
        if win.negative(start):
            return Entity("PASSPORT", start, end, 0.3, "pattern:passport+negative-context")
        return Entity("PASSPORT", start, end, 0.55, "pattern:passport-az-tr")
    return None


# --------------------------------------------------------------------------------------------
# Literal-triggered families


def _positions(text: str, literal: str) -> Iterator[int]:
    pos = text.find(literal)
    while pos >= 0:
        yield pos
        pos = text.find(literal, pos + 1)


_EMAIL_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.([A-Za-z]{2,24})(?![A-Za-z0-9-])")
_EMAIL_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-'")
_FILE_TLDS = frozenset("png jpg jpeg gif svg webp bmp ico js ts css py md txt json yaml yml xml html htm pdf".split())


def find_emails(text: str, win: Windows) -> Found:
    found: Found = []
    for at in _positions(text, "@"):
        start = at
        while start > 0 and text[start - 1] in _EMAIL_LOCAL and at - start < 64:
            start -= 1
        while start < at and text[start] in ".'-":
            start += 1
        if start == at or text[at - 1] == ".":
            continue
        m = _EMAIL_DOMAIN.match(text, at + 1)
        if m is None or m.group(1).lower() in _FILE_TLDS or _url_credentials(text, start):
            continue
        if start and (_word_char(text[start - 1]) or text[start - 1] == "/"):
            continue
        ctx = win.has("EMAIL", start, m.end())
        found.append(Entity("EMAIL", start, m.end(), 0.98 if ctx else 0.9, "pattern:email" + ("+context" if ctx else "")))
    return found


def _url_credentials(text: str, start: int) -> bool:
    """`scheme://user:password@host`: the part before `@` is a password, not a mailbox."""
    line_start = max(text.rfind(" ", 0, start), text.rfind("\n", 0, start)) + 1
    return "://" in text[line_start:start]


_V6_TRIGGER = re.compile(r":[0-9A-Fa-f]{0,4}:")
_V6_CANDIDATE = re.compile(r"[0-9A-Fa-f:]{2,45}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f:]{2,45}")
_HEX_COLON = frozenset("0123456789abcdefABCDEF:")


def find_ipv6(text: str, win: Windows) -> Found:
    found: Found = []
    done = -1
    for m in _V6_TRIGGER.finditer(text):
        if m.start() < done:
            continue
        start = m.start()
        while start > 0 and text[start - 1] in _HEX_COLON and m.start() - start < 40:
            start -= 1
        c = _V6_CANDIDATE.match(text, start)
        if c is None:
            continue
        end = c.end()
        done = end
        value = c.group()
        if value.endswith(":") and not value.endswith("::"):
            value, end = value[:-1], end - 1
        if _ipv6_ok(text, start, end, value):
            ctx = win.has("IP_ADDRESS", start, end)
            found.append(Entity("IP_ADDRESS", start, end, 0.95 if ctx else 0.9, "pattern:ipv6"))
    return found


def _ipv6_ok(text: str, start: int, end: int, value: str) -> bool:
    if (start and (_word_char(text[start - 1]) or text[start - 1] == ":")) or (
        end < len(text) and (_word_char(text[end]) or text[end] == ":")
    ):
        return False
    groups = [g for g in value.replace("::", ":").split(":") if g]
    if len(groups) < 2 or all(len(g) <= 1 for g in groups):
        return False
    if "::" not in value and len(groups) < 8 and "." not in value:
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


# Azerbaijani FIN: 7 characters, digits and capital letters without I and O, near a context word.
# Each trigger pattern starts with a literal, which the regex engine finds at memchr-like speed.
_FIN_TRIGGERS = tuple(
    re.compile(p) for p in (r"F(?:İN|IN|in|İn)", r"fin", r"P(?:IN|in)", r"pin", r"ŞV", r"əsiqə")
)
_FIN_TOKEN = re.compile(r"(?<![0-9A-Za-z])(?=[0-9]*[A-HJ-NP-Z])(?=[A-Z]*[0-9])[0-9A-HJ-NP-Z]{7}(?![0-9A-Za-z])")


def find_fin(text: str) -> Found:
    found: Found = []
    seen: set[int] = set()
    n = len(text)
    for trigger in _FIN_TRIGGERS:
        inflected = trigger.pattern[-1] in "əƏ"  # "vəsiqəsi", "vəsiqədə" may go on
        for t in trigger.finditer(text):
            pos, end = t.span()
            if not inflected and ((pos and text[pos - 1].isalpha()) or (end < n and text[end].isalpha())):
                continue
            for m in _FIN_TOKEN.finditer(text, max(0, pos - 30), min(n, end + 60)):
                if m.end() < n and text[m.end()].isalnum():
                    continue
                if m.start() not in seen:
                    seen.add(m.start())
                    found.append(Entity("AZ_FIN", m.start(), m.end(), 0.95, "pattern:az-fin+context"))
    return found


# Russian passport written as "серия 45 06 номер 123456" / "серия 4506 № 123456".
_RU_SERIES = re.compile(r"([0-9]{2} ?[0-9]{2})[ ,]*(?:№|N|номер|nömrə|no\.?)?[ :]*[0-9]{6}(?![0-9])", re.I)


def find_ru_passport_series(text: str) -> Found:
    """"серия 45 06 номер 123456": the word "серия" (any case) and a series and number after it.
    Two literal searches: one pattern opening with `ерия|ЕРИЯ` would test every character."""
    found: Found = []
    for literal in ("ерия", "ЕРИЯ"):
        for word_start in _positions(text, literal):
            _ru_series_at(text, word_start, word_start + 4, found)
    return found


def _ru_series_at(text: str, word_start: int, word_end: int, found: Found) -> None:
    pos = word_start - 1
    if pos >= 0 and text[pos] in "СсC":
        m = _RU_SERIES.search(text, word_end, min(len(text), pos + 48))
        if m and m.start() - pos < 20 and not text[m.start() - 1].isdigit():
            found.append(Entity("PASSPORT", m.start(), m.end(), 0.95, "pattern:passport-series+context"))


# --------------------------------------------------------------------------------------------
# Secrets

#: Token shapes. Every pattern starts with a literal, so a text without it costs one fast scan.
_TOKEN_RULES: tuple[tuple[re.Pattern[str], float, str], ...] = (
    (re.compile(r"sk(?:-ant-[A-Za-z0-9_\-]{20,}|-proj-[A-Za-z0-9_\-]{20,}|-(?=[A-Za-z_\-]*[0-9])[A-Za-z0-9_\-]{20,}"
                r"|_(?:live|test)_[A-Za-z0-9]{16,})"), 0.97, "api-key"),
    (re.compile(r"rk_live_[A-Za-z0-9]{16,}"), 0.97, "stripe-key"),
    (re.compile(r"A(?:KIA[0-9A-Z]{16}|SIA[0-9A-Z]{16}|Iza[0-9A-Za-z_\-]{35})"), 0.97, "cloud-key"),
    # one scan for the three that start with "g"
    (re.compile(r"g(?:h[pousr]_[A-Za-z0-9]{30,}|ithub_pat_[A-Za-z0-9_]{30,}|lpat-[A-Za-z0-9_\-]{20,})"), 0.99,
     "git-token"),
    (re.compile(r"xox[baprse]-[A-Za-z0-9\-]{10,}"), 0.97, "slack-token"),
    (re.compile(r"eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"), 0.95, "jwt"),
    (re.compile(r"Bearer (?=[A-Za-z._~+/=\-]*[0-9])([A-Za-z0-9._~+/=\-]{16,})"), 0.9, "bearer-token"),
)
_SEPARATOR_RULES = frozenset({0, 1, 3, 4})  # indexes in `_TOKEN_RULES` of the shapes with `_`/`-`
#: Names of the token kinds, for the reason, by their first characters.
_TOKEN_NAMES: tuple[tuple[str, float, str], ...] = (
    ("sk-ant-", 0.99, "anthropic-key"), ("sk-proj-", 0.99, "openai-project-key"), ("sk-", 0.95, "openai-key"),
    ("sk_live_", 0.97, "stripe-key"), ("sk_test_", 0.9, "stripe-test-key"), ("AKIA", 0.97, "aws-access-key-id"),
    ("ASIA", 0.95, "aws-access-key-id"), ("AIza", 0.97, "google-api-key"), ("gh", 0.99, "github-token"),
    ("github_pat_", 0.99, "github-token"), ("glpat-", 0.98, "gitlab-token"),
)
_TOKEN_END = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+])(?=[A-Za-z0-9/+]*[a-z])(?=[A-Za-z0-9/+]*[A-Z])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_PEM = re.compile(r"-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----")
_PEM_END = re.compile(r"-----END ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----")
_PEM_BODY = re.compile(r"(?:[ \t]*\r?\n[ \t]*[A-Za-z0-9+/=:\- ]+)*")


def find_secrets(text: str) -> Found:
    found: Found = []
    # sk-/sk_/rk_/gh?_/glpat-/xox?- tokens need a `_` or `-`: two one-character searches (C,
    # memchr-fast) spare prose without either four regex scans
    separators = "_" in text or "-" in text
    for index, (pattern, score, name) in enumerate(_TOKEN_RULES):
        if not separators and index in _SEPARATOR_RULES:
            continue
        for m in pattern.finditer(text):
            _token(text, m, score, name, found)
    if any(e.reason == "secret:aws-access-key-id" for e in found):
        _aws_secrets(text, found)
    if "-----BEGIN" in text:
        _pem_blocks(text, found)
    if "://" in text:
        _connection_passwords(text, found)
    _config_values(text, found)
    return found


def _token(text: str, m: re.Match[str], score: float, name: str, found: Found) -> None:
    """A token glued to a longer word ("task-..." for `sk-`) is not one."""
    group = 1 if name == "bearer-token" else 0
    start, end = m.span(group)
    if start == end:
        return
    for prefix, prefix_score, prefix_name in _TOKEN_NAMES:
        if text.startswith(prefix, start):
            score, name = prefix_score, prefix_name
            break
    if (m.start() and text[m.start() - 1] in _TOKEN_END) or (end < len(text) and text[end] in _TOKEN_END):
        return
    found.append(Entity("SECRET", start, end, score, "secret:" + name))


def _aws_secrets(text: str, found: Found) -> None:
    """The 40-character AWS secret key next to an access key id."""
    for entity in [e for e in found if e.reason == "secret:aws-access-key-id"]:
        for m in _AWS_SECRET.finditer(text, max(0, entity.start - 200), min(len(text), entity.end + 200)):
            found.append(Entity("SECRET", m.start(), m.end(), 0.92, "secret:aws-secret-key"))


def _pem_blocks(text: str, found: Found) -> None:
    for m in _PEM.finditer(text):
        end_m = _PEM_END.search(text, m.end())
        if end_m is not None:
            end = end_m.end()
        else:  # a truncated paste: the block runs as far as its base64 lines do
            end = _PEM_BODY.match(text, m.end()).end()
        found.append(Entity("SECRET", m.start(), end, 1.0, "secret:private-key-block"))


_CONN = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:([^\s/]+)@[^\s@/]")


def _connection_passwords(text: str, found: Found) -> None:
    """`postgres://user:PASSWORD@host`: only the password part is a secret."""
    for pos in _positions(text, "://"):
        start = pos
        while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "+.-") and pos - start < 24:
            start -= 1
        m = _CONN.match(text, start)
        if m is None or _TEMPLATE.match(m.group(1)):
            continue
        found.append(Entity("SECRET", m.start(1), m.end(1), 0.9, "secret:connection-string-password"))


# Config lines: a key ending in one of these words, `:` or `=`, and a value.
_KEY_ENDINGS = (
    "password", "passwd", "pwd", "pass", "secret", "token", "apikey", "api_key", "api-key",
    "secret_key", "secretkey", "private_key", "access_key", "accesskey", "signing_key",
    "encryption_key", "master_key", "client_secret", "credentials", "credential",
    "пароль", "parol", "parolu", "şifrə", "şifre", "şifresi", "parola", "токен", "parolunuz", "şifreniz",
)  # fmt: skip
_ASSIGN = re.compile(r"""(:=|=>|=|:)[ \t]*(?:"([^"\n]{3,200})"|'([^'\n]{3,200})'|([^\s"',;)}\]]{3,200}))""")
_TEMPLATE = re.compile(r"^(?:\$\{?[\w.]+\}?|\{\{.*\}\}|<.*>|%\(?\w*\)?s|\*+|x{3,}|X{3,}|\.{3}|•+)$")
_PLACEHOLDER = re.compile(
    r"(?i)^(?:\$\{?[\w.]+\}?|\{\{.*\}\}|<.*>|%\(?\w*\)?s?|\*+|x{3,}|\.{3}|•+|none|null|nil|true|false|"
    r"undefined|redacted|\[redacted\]|changeme|your[_\- ].*|env\(.*|os\.environ.*|process\.env.*|"
    r"getenv.*|required|optional|string|str|\w+\(.*|.*\(\)|secret|password|token|example|"
    r"\*{2,}.*|[a-z_]+\.[a-z_.]+)$"
)


def _placeholder(value: str) -> bool:
    return _PLACEHOLDER.match(value) is not None


_KEY_STOP = frozenset(" \t\n\r\f\v\"'`:=,;{}()[]<>")


# The last letters of every key ending (both cases) and what may stand between key and sign.
_KEY_LAST = "dstnyluezaiьəнDSTNYLUEZAIЬƏН"
_KEY_FILL = "[\"'` \t]"


def _sign_pattern(sign: str) -> re.Pattern[str]:
    """`:` (or `=`) after a letter that can end a secret key, up to three quotes or blanks
    between. The pattern opens with the sign, so sre finds it with a fast literal search; the
    fixed-width look-behinds reject "10:45", "Config:" and most other signs in C."""
    behind = "|".join(f"(?<=[{_KEY_LAST}]{_KEY_FILL * k}{re.escape(sign)})" for k in range(4))
    return re.compile(f"{re.escape(sign)}(?:{behind})")


_KEY_SIGNS = (_sign_pattern(":"), _sign_pattern("="))


def _config_values(text: str, found: Found) -> None:
    """`password=...`, `"api_key": "..."`, `secret: ...`: found from the signs after secret keys."""
    endings = _KEY_ENDINGS
    for pattern in _KEY_SIGNS:
        for m in pattern.finditer(text):
            pos = m.start()
            if text[max(0, pos - 20) : pos].rstrip(" \t\"'`").lower().endswith(endings):
                _config_candidate(text, pos, found)


def _config_candidate(text: str, pos: int, found: Found) -> None:
    key = _key_before(text, pos)
    if key:
        entity = _config_value_at(text, key, pos)
        if entity is not None:
            found.append(entity)


def _key_before(text: str, pos: int) -> str:
    """The key written before the sign at `pos` (blanks and one closing quote skipped): up to 64
    characters that are no blank, quote, bracket or separator. A backward scan: a regex search
    for "a key, then the end" retries at every start in the window."""
    end = pos
    while end > 0 and text[end - 1] in " \t":
        end -= 1
    if end > 0 and text[end - 1] in "\"'`":
        end -= 1
    start = end
    while start > 0 and end - start < 64 and not text[start - 1].isspace() and text[start - 1] not in _KEY_STOP:
        start -= 1
    return text[start:end]


def _config_value_at(text: str, key: str, sign: int) -> Entity | None:
    if not _secret_key(key):
        return None
    m = _ASSIGN.match(text, sign)
    if m is None or (text[sign] == "=" and m.group(1) not in ("=", "=>")) or (text[sign] == ":" and m.group(1) == "="):
        return None
    group = 2 if m.group(2) is not None else 3 if m.group(3) is not None else 4
    value = m.group(group)
    if _placeholder(value.strip()):
        return None
    quoted = group in (2, 3)
    env_style = m.group(1) == "=" and text[sign - 1] not in " \t" and not quoted
    if not quoted and not env_style and not _secret_like(value):
        return None
    score = 0.85 if quoted or env_style else 0.8
    return Entity("SECRET", m.start(group), m.end(group), score, "secret:config-value")


def _secret_key(key: str) -> bool:
    """`DB_PASSWORD`, `apiKey`, `client-secret`, `пароль`: the key's last word names a secret.

    "bypass" or "max_tokens" end in other words; a camelCase or separator boundary is required.
    """
    lower = key.lower().replace("-", "_")
    for ending in _KEY_ENDINGS:
        if lower.endswith(ending):
            cut = len(key) - len(ending)
            return cut == 0 or key[cut - 1] in "_.-" or (key[cut].isupper() and key[cut - 1].islower())
    return False


def _secret_like(value: str) -> bool:
    """An unquoted value after `password:` in prose is a secret only if it looks like one."""
    if len(value) < 6:
        return False
    has_digit = any(c.isdigit() for c in value)
    has_symbol = any(not c.isalnum() for c in value)
    mixed = any(c.isupper() for c in value[1:]) and any(c.islower() for c in value)
    return has_digit or has_symbol or mixed
