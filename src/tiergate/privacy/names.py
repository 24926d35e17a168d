"""PERSON, ADDRESS and DATE_OF_BIRTH spans found without any downloaded model.

Rules, bundled word lists (`data/`, loaded once into frozensets) and the morphology of English,
Azerbaijani (Latin script), Russian and Turkish names stand in for an NER model, so detection
runs offline, in time linear in the text.

How the three finders share work: one precompiled regex finds the runs of capitalised words, and
one pass over them classifies each run as a person, a street, an area or nothing (token kinds are
cached per word). A second cheap scan finds 19xx/20xx years; only where a birth word is near a
year does the date pattern run. The result is kept for the last text seen, so the detector
calling `find_people`, `find_addresses` and `find_birth_dates` on one prompt pays for one pass.

Span conventions (documented choices):
- A person span is the name only: titles ("Dr.", "cənab", "Bey", "müəllim") stay outside; a
  patronymic ("Vaqif oğlu", "Иванович") is inside. A Turkish apostrophe suffix stays outside
  (`Mehmet'in` -> `Mehmet`); an Azerbaijani/Russian case ending written without an apostrophe
  is part of the word and so inside (`Əliyevə`, `Иванову`): a span never cuts a word.
- An address span runs from the first to the last component that is part of the address
  (city/district, street, house, flat, postal code), so "Bakı şəhəri, Yasamal rayonu, ..." and
  ", mənzil 7" are inside; a city or country name alone is not an address.
- A birth date span is the date itself (with a Russian "г."/"года" after it), and only a date
  that a birth context ("doğum tarixi", "дата рождения", "DOB", "born", "doğulub" ...) names.
  A month and year ("born in May 1990") count; a year alone only right next to a birth word
  ("1978 doğumlu", "1985-ci il təvəllüdlü", "1964 г.р.", "born in 1978").
- A street alone, without a house number, district, city or postal code next to it, is a
  landmark ("the office on Nizami Street"), not an address, unless an address label
  ("ünvan", "адрес", "address") comes right before it.
"""

from __future__ import annotations

import re
from importlib import resources

from .entities import Entity

# --------------------------------------------------------------------------------------------
# Word lists

_DATA = resources.files("tiergate.privacy") / "data"


def _fold(word: str) -> str:
    """Case-fold for list lookups: Turkish dotted/dotless i and Russian ё compare equal to i/е,
    so `İSMAYIL`, `Ismayıl` and `ismayil` all find the same entry."""
    if word.isascii():
        return word.lower()
    return word.replace("İ", "i").lower().replace("ı", "i").replace("ё", "е").replace("’", "'")


def _load(*names: str) -> frozenset[str]:
    """One-entry-per-line UTF-8 lists; `#` lines are the header comment saying where they come from."""
    words: set[str] = set()
    for name in names:
        for line in (_DATA / name).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                words.add(_fold(line))
    return frozenset(words)


_FIRST = _load("first_names_az.txt", "first_names_en.txt", "first_names_ru.txt", "first_names_tr.txt")
_AMBIGUOUS = _load("ambiguous_names.txt")
_SURNAMES = _load("surnames.txt")
_NOT_NAMES = _load("not_names.txt")
_PLACES = _load("places.txt")

# Titles written before a name. Strong ones make any capitalised words after them a name.
_TITLE_STRONG = frozenset(
    _fold(w)
    for w in (
        "Mr Mrs Ms Miss Mister Dr Prof Professor Doctor Sir Madam Madame Sayın Cənab Cenab Doktor "
        "Господин Госпожа Доктор Профессор Мистер Миссис Гражданин Гражданка"
    ).split()
)
# Greetings and weaker titles: they help, but "Bay Area" or "Hello World" are no people.
_TITLE_WEAK = frozenset(
    _fold(w)
    for w in (
        "Bay Bayan Dear Hi Hello Salam Merhaba Привет Здравствуйте Уважаемый Уважаемая Hörmətli "
        "Hormetli Değerli Sevgili Əziz"
    ).split()
)
# Titles written after the name ("Rəşad müəllim", "Ayşe Hanım", "Ahmet Bey").
_TITLE_AFTER = frozenset(
    _fold(w) for w in "bey bəy hanım xanım müəllim muellim həkim hoca hocam efendi ağa paşa".split()
)

# Lower-case text right before a name that says a name follows (label, "my name is", role).
_TRIGGER_STRONG: tuple[str, ...] = tuple(
    _fold(p)
    for p in (
        "my name is",
        "name is",
        "mənim adım",
        "menim adim",
        "adım",
        "adim",
        "benim adım",
        "ismim",
        "меня зовут",
        "моё имя",
        "мое имя",
        "cənab",
        "xanım",
        "hanım",
        "господин",
        "госпожа",
        "г-н",
        "г-жа",
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sayın",
        "həkim",
        "doktor",
        "доктор",
        "профессор",
        "signed by",
        "written by",
        "imzalayan",
        "tanış olun",
        "meet",
    )
)
_LABEL_STRONG: tuple[str, ...] = tuple(
    _fold(p)
    for p in (
        "name:",
        "name -",
        "фио:",
        "ф.и.о.:",
        "ф.и.о:",
        "имя:",
        "фамилия:",
        "ad:",
        "adı:",
        "soyad:",
        "soyadı:",
        "ad soyad:",
        "adı soyadı:",
        "ad, soyad:",
        "isim:",
        "i̇sim:",
        "soyisim:",
        "from:",
        "to:",
        "patient:",
        "pasiyent:",
        "пациент:",
        "hasta:",
        "müştəri:",
        "клиент:",
        "customer:",
        "client:",
        "employee:",
        "контакт:",
        "contact:",
        "əlaqədar şəxs:",
    )
)
_TRIGGER_WEAK: tuple[str, ...] = tuple(
    _fold(p)
    for p in (
        "patient",
        "pasiyent",
        "пациент",
        "пациентка",
        "пациента",
        "hasta",
        "müştəri",
        "müşteri",
        "клиент",
        "клиентка",
        "клиента",
        "customer",
        "client",
        "employee",
        "işçi",
        "сотрудник",
        "сотрудника",
        "dear",
        "hi",
        "hello",
        "salam",
        "merhaba",
        "привет",
        "уважаемый",
        "уважаемая",
        "hörmətli",
        "değerli",
        "sevgili",
        "bay",
        "bayan",
        "colleague",
        "manager",
        "director",
        "müdir",
        "direktor",
        "директор",
        "menecer",
        "менеджер",
        "contact",
        "called",
        "named",
        "thanks",
        "thank you",
        "regards",
        "sincerely",
        "с уважением",
        "hörmətlə",
        "saygılarımla",
    )
)

# Role words that may open a capitalised run ("Пациентка Петрова Анна", "Hasta Ali Veli").
_ROLE_WORDS = frozenset(
    _fold(w)
    for w in (
        "Patient Pasiyent Пациент Пациентка Hasta Müştəri Müşteri Клиент Клиентка Customer Client "
        "Employee Сотрудник Сотрудница İşçi Tələbə Öğrenci Студент Студентка Student"
    ).split()
)

# The last word of every trigger: a set lookup rules out most candidates before `endswith`.
_TRIGGER_LAST_WORDS = frozenset(
    p.rstrip(":-. ").rsplit(" ", 1)[-1] for p in _TRIGGER_STRONG + _LABEL_STRONG + _TRIGGER_WEAK
)


def _lower_spellings(folded: str) -> set[str]:
    """Every `str.lower()` form of a word whose `_fold` is `folded`: `i` may be `ı` or, from
    "İ", `i` + combining dot; `е` may be `ё`; `'` may be `’`. Lets a hot path test
    `word.lower() in ...` instead of folding each word."""
    options = {"i": ("i", "ı", "i\u0307"), "е": ("е", "ё"), "'": ("'", "’")}
    out = {""}
    for ch in folded:
        out = {v + c for v in out for c in options.get(ch, (ch,))}
    return out


_TRIGGER_LAST_LOWER = frozenset(v for w in _TRIGGER_LAST_WORDS for v in _lower_spellings(w))

# Words after a capitalised run (their first two letters gate the look at the next word) that make it a street, a place or an institution, not a person.
_STREET_AFTER = frozenset(
    _fold(w)
    for w in (
        "küçəsi küç küc kucesi küçəsində küçəsindəki prospekti prospektində pr prosp döngəsi dalanı "
        "şossesi bulvarı meydanı keçidi caddesi cad cd sokak sokağı sok sk bulvar blv yolu "
        "улица проспект переулок шоссе бульвар пр ул пер street st avenue ave road rd boulevard blvd"
    ).split()
)
_AREA_AFTER = frozenset(
    _fold(w)
    for w in (
        "şəhəri şəhərində ş rayonu rayonunda r-nu qəsəbəsi qəsəbəsində kəndi kəndində massivi "
        "məhəlləsi mikrorayonu ilçesi ili mahallesi mah район района области область обл край"
    ).split()
)
_INSTITUTION_AFTER = frozenset(
    _fold(w)
    for w in (
        "metro metrosu stansiyası parkı park universiteti üniversitesi məktəbi okulu "
        "xəstəxanası hastanesi muzeyi müzesi meydanı limanı hava prospekti"
    ).split()
)
# Stems of the same words under any case ending ("prospektindəki", "küçəsinə", "rayonundakı").
_STREET_STEMS = tuple(_fold(w) for w in "küçə prospekt bulvar caddes sokağ döngə şosse".split())
_AREA_STEMS = tuple(_fold(w) for w in "rayon şəhər qəsəbə kənd massiv məhəllə mikrorayon mahalle".split())


def _after_kind(word: str) -> str:
    """'street', 'area' (also institutions) or '' for the folded word after a capitalised run."""
    if word in _STREET_AFTER or (len(word) > 5 and word.startswith(_STREET_STEMS)):
        return "street"
    if word in _AREA_AFTER or word in _INSTITUTION_AFTER or (len(word) > 5 and word.startswith(_AREA_STEMS)):
        return "area"
    return ""


def _dotless_variants(prefix: str) -> set[str]:
    """`prefix` with each `i` also written `ı` (the lists are folded, the text is not)."""
    out = {""}
    for ch in prefix:
        out = {v + c for v in out for c in ((ch, "ı") if ch == "i" else (ch,))}
    return out


_AFTER_WORDS = _STREET_AFTER | _AREA_AFTER | _INSTITUTION_AFTER | _TITLE_AFTER | {"adina"}
# Gate on the characters right after a run (its next word is never capitalised, or it would
# belong to the run): the first three letters of a place or title word, or a word of one or two
# letters ("pr", "ул", "ş."). Three letters, not two: "you", "and", "but" no longer pass.
_AFTER_GATE3 = frozenset(v for w in _AFTER_WORDS if len(w) >= 3 for v in _dotless_variants(w[:3]))
_AFTER_GATE2 = frozenset(
    v for w in _AFTER_WORDS if len(w) < 3 for v in ({w} if len(w) == 2 else {w + c for c in ". ,;\t-"})
)


def _after_gate(text: str, e: int) -> bool:
    """Could the word after the run ending at `e` be a street, area, institution or title word?"""
    return text[e : e + 1] == " " and (text[e + 1 : e + 4] in _AFTER_GATE3 or text[e + 1 : e + 3] in _AFTER_GATE2)


_STREET_WORDS = frozenset(  # capitalised street words ending a run: "Atatürk Caddesi", "Baker Street"
    _fold(w)
    for w in (
        "Küçəsi Prospekti Caddesi Cad Cd Sokak Sokağı Sok Sk Mahallesi Mah Bulvarı Blv Bulvar "
        "Street St Avenue Ave Road Rd Boulevard Blvd Lane Ln Drive Way Place Pl Square Sq Court Ct "
        "Terrace Close Crescent Highway Hwy Parkway Pkwy Row Gardens Улица Проспект Переулок Шоссе"
    ).split()
)
# Capitalised words that end the name of an institution, a brand or a place named after
# someone ("Heydər Əliyev Mərkəzi", "Atatürk Havalimanı", "Ayşe Teyze Çiftliği"): the words
# before them are no person.
_INSTITUTION_WORDS = frozenset(
    _fold(w)
    for w in (
        "Mərkəzi Merkezi Center Centre Центр Universiteti Üniversitesi University Университет "
        "Institute İnstitutu Enstitüsü Институт Muzeyi Müzesi Museum Музей Parkı Park Парк "
        "Havalimanı Hava Airport Аэропорт Hastanesi Xəstəxanası Hospital Больница Çiftliği Fermer "
        "Holding Şirkəti Şirketi Company Corporation Corp Inc Ltd LLC Group Qrupu Grubu Bankı Bank "
        "Stadionu Stadium Стадион Teatrı Tiyatrosu Theatre Theater Театр Kitabxanası Library "
        "Məscidi Camii Mosque Oteli Hotel Отель Foundation Fondu Vakfı Фонд"
    ).split()
)

# Russian keywords before a street or town name: "ул. Ленина", "г. Москва".
_PREFIX_BEFORE = re.compile(
    r"(?<![^\W\d_])(?:(?P<street>(?:ул|пр|просп|пер|наб|пл|мкр|ш)\.|улиц[аеу]|пр-т|проспект[еу]?|переул(?:ок|ке)|б-р|бульвар[еу]?"
    r"|шоссе|набережная|площадь|мкр|микрорайон)|(?P<area>(?:г|пос|с|дер)\.|город|посёлок|поселок|село)"
    r"|им\.|имени|metro|метро)[ \t]*\Z",
    re.IGNORECASE,
)

# --------------------------------------------------------------------------------------------
# Morphology

_NAME_SUFFIX_AZ_TR = frozenset(
    "a ə ı i u ü nı ni nu nü ya yə da də ta tə la lə yla ylə ın in un ün nın nin nun nün dan dən "
    "tan tən ya yə dır dir dur dür nda ndə ndan ndən".replace("ı", "i").split()
)
_RU_ENDINGS = ("ой", "ей", "ом", "ем", "ою", "ею", "а", "я", "у", "ю", "е", "и", "ы")

# Surname endings (on folded words). Strong: rarely anything but a surname. Weak: need a first
# name or a title next to them ("Putin" or "Həsənli" alone stay unflagged, "Berlin" too).
_SURNAME_STRONG = re.compile(
    r"^.{3,}(?:[oe]v|[oe]va|zadə|zade|oğlu|oglu|enko|ishvili|shvili|dze|yan|skiy|skaya)"
    r"(?:a|ə|u|ü|un|ün|in|i|da|də|dan|dən|la|lə|nin|nun|nün|ya|yə|ni|nu|nü|dir|dur)?$"
    r"|^.{2,}(?:[оеё]в(?:а|у|ым|ом|е|ой|ою|ых|ы)?|енко|швили|дзе|ян)$"
)
# "-ский"/"-цкий" is a surname ("Вишневский") and just as often a proper adjective ("Турецкий
# гражданин", "в Краснодарском крае"), so it is only a weak surname ending.
_SURNAME_WEAK = re.compile(
    r"^.{3,}(?:in|ina|yn|li|lu|lü|ski|sky|er)$|^.{2,}(?:ин|ын)(?:а|у|ым|ой|е)?$"
    r"|^.{2,}[сц]к(?:ий|ого|ому|им|ом|ая|ой|ую)$"
)
_PATRONYMIC = re.compile(
    r"^.{2,}(?:ovich|evich|ovna|evna|ovic|evic|ichna|ovych|ivna)$"
    r"|^.{2,}(?:[оеё]вич|[оеё]вн[аыеуо]|ичн[аыеуо]|ьич|ич)(?:а|у|ем|е|ой|ей)?$"
)
_PATRONYMIC_MARKERS = frozenset(("oğlu", "oglu", "qizi", "kizi", "gizi"))


def _first_name(folded: str) -> bool:
    """A given name, also under an Azerbaijani/Turkish case ending or a Russian one
    ("Leylanın", "Əliyə", "Марии", "Ивану")."""
    if folded in _FIRST:
        return True
    n = len(folded)
    if n < 4:
        return False
    if "а" <= folded[-1] <= "я":
        for ending in _RU_ENDINGS:
            if folded.endswith(ending):
                stem = folded[: -len(ending)]
                if stem in _FIRST or stem + "а" in _FIRST or stem + "я" in _FIRST or stem + "й" in _FIRST:
                    return True
        return False
    for k in (1, 2, 3, 4):
        if n - k >= 3 and folded[n - k :] in _NAME_SUFFIX_AZ_TR and folded[: n - k] in _FIRST:
            return True
    return False


# Token kinds. Names: F given name, A ambiguous given name (May, Deniz), S surname, W weak surname,
# P patronymic, I initial, U unknown capitalised word. Others: X not a name (stop word, place),
# T title ("Dr.", "Sayın"), t weak title/role/greeting ("Bay", "Dear", "Patient"), H title after
# a name ("Bey", "Xanım"), M patronymic marker ("oğlu"), R street word ("Caddesi", "Street"),
# Z postal code ("AZ1000").
_ABBREVIATIONS = frozenset(
    _fold(w)
    for w in "Dr Mr Mrs Ms Prof St Cad Cd Sok Sk Mah Blv Ave Rd Blvd Ln Pl Sq Ct Hwy Pkwy Küç Pr".split()
)
_INFO_CACHE: dict[str, tuple[str, int, bool]] = {}


def _info(raw: str) -> tuple[str, int, bool]:
    """(kind, length of the name part, ends a sentence) of one raw token, cached: the same
    capitalised words come back in every prompt."""
    info = _INFO_CACHE.get(raw)
    if info is None:
        if len(_INFO_CACHE) > 50_000:
            _INFO_CACHE.clear()
        info = _INFO_CACHE[raw] = _token_info(raw)
    return info


def _token_info(raw: str) -> tuple[str, int, bool]:
    """Strip what is not part of a name ("Mehmet'in" -> "Mehmet", "Smith." -> "Smith" and a
    sentence end) and classify the rest."""
    f = _fold(raw)
    if f in _PATRONYMIC_MARKERS:
        return "M", len(raw), False
    word = raw
    for apostrophe in ("'", "’"):
        i = word.find(apostrophe)
        if i > 0 and not word[i + 1 : i + 2].isupper():
            word = word[:i]  # Turkish case suffix or English possessive stays outside
    word = word.rstrip("-")
    ends = False
    if word.endswith("."):
        bare = word.rstrip(".")
        fb = _fold(bare)
        if len(bare) == 1:
            return "I", len(word), False
        if fb in _ABBREVIATIONS:
            kind = "T" if fb in _TITLE_STRONG else "R"
            return kind, len(word), False
        word, ends = bare, True
    n = len(word)
    if not word:
        return "X", 0, ends
    if any(c.isdigit() for c in word):
        return ("Z" if _POSTAL_TOKEN.match(word) else "X"), n, ends
    return _classify(word), n, ends


def _classify(token: str) -> str:
    """Classify one capitalised word; the order matters (a place beats a name, a name beats a
    surname ending)."""
    f = _fold(token)
    if f in _TITLE_STRONG:
        return "T"
    if f in _TITLE_WEAK or f in _ROLE_WORDS:
        return "t"
    if f in _TITLE_AFTER:
        return "H"
    if f in _STREET_WORDS:
        return "R"
    if len(token) <= 4 and token.isupper():
        return "X"  # an acronym: DOB, FIN, API, USA
    if f in _INSTITUTION_WORDS:
        return "N"
    if "." in f:  # "S.Vurğun": initials glued to a word
        f = f.rsplit(".", 1)[1]
    if f in _NOT_NAMES or f in _PLACES:
        return "X"
    if _first_name(f):
        return "A" if f in _AMBIGUOUS else "F"
    if f in _SURNAMES:
        return "S"
    if _PATRONYMIC.match(f):
        return "P"
    if _SURNAME_STRONG.match(f):
        return "S"
    if _SURNAME_WEAK.match(f):
        return "W"
    if token.isupper():
        return "X"  # an unknown word in capitals is an acronym (SNILS, ASAN), not a name
    return "U"


# --------------------------------------------------------------------------------------------
# The scan

_UP = "A-ZÀ-ÖØ-ÞĀĂĄĆČĎĐĒĖĘĚĞĢĪĮİĶĹĻĽŁŃŅŇŌŐŒŔŘŚŞŠŢŤŪŮŰŲŸŹŻŽƏА-ЯЁ"
# Runs of capitalised tokens (and "oğlu"/"qızı"); a token keeps its apostrophe suffix, dots and
# digits, which `_token_info` strips. The pattern opens with one character class, so sre skips
# to the next capital in a tight C loop.
_RUN = re.compile(
    rf"[{_UP}](?<![^\W\d_'’].)[\w'’.-]*(?:[ \t]+(?:[{_UP}][\w'’.-]*|oğlu|oglu|qızı|qizi|kızı|gızı))*"
)
_POSTAL_TOKEN = re.compile(r"AZ\d{4}\Z")
_NEXT_WORD = re.compile(r"[ \t]*([^\W\d_][^\W\d_-]*(?:-[^\W\d_]+)?)(\.?)")
_SKIP_BEFORE = frozenset(" \t\"'«“‘„(*•>#-–—")
_SENTENCE_END = frozenset(".!?\n:;…")


def _sentence_start(text: str, start: int) -> bool:
    """Capitalised because a sentence, line or list item starts here?"""
    j = start - 1
    while j >= 0 and text[j] in _SKIP_BEFORE:
        j -= 1
    return j < 0 or text[j] in _SENTENCE_END or text[j].isdigit()


def _tail(text: str, start: int) -> str:
    """The folded text right before `start`, without trailing blanks."""
    return _fold(text[max(0, start - 32) : start]).rstrip(" \t")


def _ends_with_phrase(tail: str, phrases: tuple[str, ...]) -> bool:
    """`tail` ends with one of `phrases` as whole words."""
    if not tail.endswith(phrases):
        return False
    for p in phrases:
        if tail.endswith(p):
            i = len(tail) - len(p)
            if i == 0 or not tail[i - 1].isalnum():
                return True
    return False


def _trigger(text: str, start: int) -> int:
    """2 when a title or label right before says a name follows, 1 for a weak cue (role,
    greeting), else 0."""
    raw = text[max(0, start - 32) : start].rstrip(" \t:,.-–")
    if not raw or _fold(raw[raw.rfind(" ") + 1 :]) not in _TRIGGER_LAST_WORDS:
        return 0
    tail = _tail(text, start)
    if tail[-1] in ":-" and _ends_with_phrase(tail, _LABEL_STRONG):
        return 2
    bare = tail.rstrip(":,.-– ")
    if _ends_with_phrase(bare, _TRIGGER_STRONG) or _ends_with_phrase(tail, _TRIGGER_STRONG):
        return 2
    if _ends_with_phrase(bare, _TRIGGER_WEAK):
        return 1
    return 0


def _after_trigger_word(text: str, s: int) -> bool:
    """Is the word before `s` the last word of a trigger ("Mr", "patient", "name:")? An unknown
    capitalised word is a name only then."""
    raw = text[s - 24 if s > 24 else 0 : s].rstrip(" \t:,.-–")
    return raw[raw.rfind(" ") + 1 :].lower() in _TRIGGER_LAST_LOWER


def _has_prefix(text: str, s: int) -> bool:
    """A Russian street/town keyword or "metro" right before `s` ("ул. Ленина")."""
    return _maybe_prefix(text, s) and _PREFIX_BEFORE.search(text, max(0, s - 24), s) is not None


# Last letters of the keywords `_PREFIX_BEFORE` knows: before a dot ("ул.", "пр.", "г.", "им.")
# and without one ("улица", "проспекте", "город", "метро"). The gate below tests one character.
_PREFIX_LAST_DOTTED = frozenset("лрпбшгсм")
_PREFIX_LAST_PLAIN = frozenset("аеуткряьндои")


def _maybe_prefix(text: str, s: int) -> bool:
    """Cheap gate for `_PREFIX_BEFORE`: a Russian keyword or "metro" can only end right before."""
    j = s - 1
    if j >= 0 and text[j] in " \t":
        j -= 1
    if j < 0:
        return False
    c = text[j]
    if c == ".":
        return j > 0 and text[j - 1] in _PREFIX_LAST_DOTTED
    if c == "o":
        return text[max(0, j - 4) : j + 1].lower() == "metro"
    return c in _PREFIX_LAST_PLAIN


# Kinds of a lone capitalised word that is no name by itself: a stop word or place, an unknown
# word or surname ending (a name only after a trigger word), an initial, a title or greeting
# ("Hello", "Həkim"), an institution word.
_QUIET_KINDS = frozenset("XUWItTHNM")


_STOP_RUN = ("X", 0, False)


def _stop_run(run: str) -> tuple[str, int, bool] | None:
    """A run of several words that are all no names ("IBAN TR33", "Мой ИНН") counts as one stop
    word (and is cached as one): it yields no person and, without a place word after it, no
    address. Other runs: None."""
    if "\t" in run:
        return None
    for raw in run.split(" "):
        if raw and _info(raw)[0] != "X":
            return None
    if len(_INFO_CACHE) > 50_000:
        _INFO_CACHE.clear()
    _INFO_CACHE[run] = _STOP_RUN
    return _STOP_RUN


def _place_or_title_after(text: str, e: int) -> bool:
    """Is the word after a run a street, area, institution or title word ("küçəsi", "bəy")?"""
    if text[e : e + 1] != " ":
        return False
    nxt = _NEXT_WORD.match(text, e)
    if nxt is None:
        return False
    after = _fold(nxt.group(1))
    return bool(_after_kind(after)) or after in _TITLE_AFTER or after == "adina"


class _Analysis:
    """Everything the three finders return for one text."""

    __slots__ = ("people", "addresses", "births")

    def __init__(self) -> None:
        self.people: list[Entity] = []
        self.addresses: list[Entity] = []
        self.births: list[Entity] = []


_last: tuple[str, _Analysis] | None = None


def _analyse(text: str) -> _Analysis:
    """Scan once, cache for this text (the detector asks the three questions in a row)."""
    global _last
    cached = _last
    if cached is not None and (cached[0] is text or cached[0] == text):
        return cached[1]
    result = _Analysis()
    cores: list[tuple[int, int, float]] = []
    cache = _INFO_CACHE
    quiet = _QUIET_KINDS
    gate3, gate2 = _AFTER_GATE3, _AFTER_GATE2
    for m in _RUN.finditer(text):
        run = m.group()
        info = cache.get(run)  # a token seen before, or a run of stop words ("Мой ИНН")
        if info is None and " " in run:
            info = _stop_run(run)
        if info is not None and info[0] in quiet:
            s, e = m.span()
            # `_after_gate`, inlined: this line runs for nearly every capitalised word
            if not (
                text[e : e + 1] == " "
                and (text[e + 1 : e + 4] in gate3 or text[e + 1 : e + 3] in gate2)
                and _place_or_title_after(text, e)
            ):
                kind = info[0]
                if kind == "X" or not (
                    _has_prefix(text, s) or (kind in "UW" and _after_trigger_word(text, s))
                ):
                    continue  # "The", "Please", "Baku", "Hello": the common case, kept cheap
        _classify_run(text, m.start(), m.end(), result.people, cores)
    if cores:
        _build_addresses(text, cores, result.addresses)
        if result.addresses and result.people:
            result.people = _outside(result.people, result.addresses)
    _find_birth_dates(text, result.births)
    _last = (text, result)
    return result


def _outside(people: list[Entity], addresses: list[Entity]) -> list[Entity]:
    """Names inside an address are street or town names ("Nizami küç.", "Baker Street").
    Both lists are in text order, so one sweep does it."""
    kept: list[Entity] = []
    i = 0
    for p in people:
        while i < len(addresses) and addresses[i].end <= p.start:
            i += 1
        if i < len(addresses) and addresses[i].start <= p.start and p.end <= addresses[i].end:
            continue
        kept.append(p)
    return kept


# --------------------------------------------------------------------------------------------
# PERSON (and the street and area words found on the way)


def _classify_run(
    text: str, s: int, e: int, people: list[Entity], cores: list[tuple[int, int, float]]
) -> None:
    """One capitalised run: split it into tokens, then into name candidates at titles, stop
    words and sentence ends; streets, areas and postal codes become address cores."""
    run = text[s:e]
    if " " not in run and "\t" not in run:
        kind = _info(run)[0]
        if kind == "X" and not (s > 1 and text[s - 2].isdigit()):
            if not _after_gate(text, e):
                return  # "The", "Please", "Baku" with nothing after: the common case, made cheap
    nxt = None
    after = ""
    if _after_gate(text, e):
        nxt = _NEXT_WORD.match(text, e)
        after = _fold(nxt.group(1)) if nxt else ""
    place = _after_kind(after) if nxt is not None else ""
    if after == "adina" and nxt is not None and _named_after(text, nxt.end()):
        place = "area"
    if place:
        p = _place_start(run)
        if p:  # "Orxan Nəsirlinin Quba rayonu": the possessor before the place is a person
            _people_in_run(text, s, run[: p - 1], False, people, cores)
        assert nxt is not None
        # a district or city is an address part, never alone
        cores.append((s + p, nxt.end(), 0.6 if place == "street" else 0.0))
        return
    before = _PREFIX_BEFORE.search(text, max(0, s - 24), s) if _maybe_prefix(text, s) else None
    if before:
        if before.group("street"):
            cores.append((before.start("street"), e, 0.6))
        elif before.group("area"):
            cores.append((before.start("area"), e, 0.0))
        return
    _people_in_run(text, s, run, after in _TITLE_AFTER, people, cores)


_GENITIVE = ("nin", "nın", "nun", "nün")


def _named_after(text: str, i: int) -> bool:
    """"X adına" before a capitalised word names an institution after X ("Nizami adına
    Ədəbiyyat Muzeyi"); before anything else it means "in X's name" ("Rəşad Əliyev adına
    verilib"), so X stays a person."""
    j = i
    while j < len(text) and text[j] in " \t":
        j += 1
    return j > i and j < len(text) and text[j].isupper()


def _place_start(run: str) -> int:
    """Where the place name of a run followed by "rayonu"/"küçəsi" starts: after the last word
    in the genitive (a possessor: "Orxan Nəsirlinin Quba rayonu"), else at the run's start."""
    cut = run.rfind(" ")
    while cut > 0:
        prev = run.rfind(" ", 0, cut)
        word = run[prev + 1 : cut]
        if len(word) > 5 and word.endswith(_GENITIVE):
            return cut + 1
        cut = prev
    return 0


def _people_in_run(
    text: str, s: int, run: str, title_after: bool, people: list[Entity], cores: list[tuple[int, int, float]]
) -> None:
    """Walk the tokens of a run, cutting it into candidate names."""
    seg: list[tuple[int, int, str]] = []
    trig = -1  # unknown until needed: only the first candidate can follow the text before the run
    at_start = True
    pos = s
    prev = -1  # start of the previous token when it is a place name ("Bornova Mah.")
    for raw in run.replace("\t", " ").split(" "):
        if not raw:
            pos += 1
            continue
        start = pos
        pos += len(raw) + 1
        kind, n, ends = _info(raw)
        place, prev = prev, (start if kind == "X" and not ends else -1)
        if kind in "FASWPIU":
            if seg and kind in "FA" and _fold(raw[:n]) in _SURNAMES:
                kind = "S"  # "Ayşe Yılmaz", "Elif Şahin": a second name that is also a surname
            seg.append((start, start + n, kind))
        elif kind == "M":
            if seg:
                seg[-1] = (seg[-1][0], seg[-1][1], "P")
                seg.append((start, start + n, "M"))
        elif kind == "R":
            if seg or place >= 0:
                cores.append((seg[0][0] if seg else place, start + n, 0.5 if n <= 3 else 0.6))
            seg, trig, at_start = [], 0, ends
            continue
        elif kind == "Z":
            cores.append((start, start + n, 0.45))
            seg, trig, at_start = [], 0, ends
            continue
        elif kind == "N":  # "Heydər Əliyev Mərkəzi": the name of a place, not a person
            seg, trig, at_start = [], 0, ends
            continue
        else:  # X, T, t, H
            if seg:
                _candidate(text, s, seg, 2 if kind == "H" else trig, at_start, people)
            seg, at_start = [], ends
            trig = 2 if kind == "T" else 1 if kind == "t" else 0
            continue
        if ends:
            _candidate(text, s, seg, trig, at_start, people)
            seg, trig, at_start = [], 0, True
    if seg:
        _candidate(text, s, seg, 2 if title_after else trig, at_start, people)


def _candidate(
    text: str,
    run_start: int,
    seg: list[tuple[int, int, str]],
    trig: int,
    at_start: bool,
    people: list[Entity],
) -> None:
    """Score one candidate name and keep it when it looks like a person."""
    kinds = [k for _, _, k in seg if k != "M"]
    start = seg[0][0]
    if trig < 0 or (trig == 0 and start == run_start):
        trig = max(trig, _trigger(text, start) if start == run_start else 0)
    if start == run_start:
        at_start = at_start and _sentence_start(text, start)
    if at_start and len(kinds) >= 2 and kinds[0] == "U" and kinds[1] in "FA":
        seg = seg[1:]  # "Contact John Smith", "Dərsi Rəşad müəllim": the word opening the sentence goes
        kinds = kinds[1:]
        at_start = False
    if len(kinds) > 4 or not kinds:
        return
    score = _score(kinds, trig, at_start)
    if score >= 0.3:
        people.append(Entity("PERSON", seg[0][0], seg[-1][1], score, _reason(kinds, trig)))


def _score(kinds: list[str], trig: int, at_start: bool) -> float:
    """How likely a run of token kinds is a person's name."""
    n = len(kinds)
    first = kinds.count("F")
    amb = kinds.count("A")
    sur = kinds.count("S")
    weak = kinds.count("W")
    pat = kinds.count("P")
    unknown = kinds.count("U")
    if trig == 2:
        return 0.9
    if n == 1:
        k = kinds[0]
        if k == "F":
            return 0.55 if at_start else 0.65
        if k == "A":
            return 0.0 if at_start else 0.55
        if k == "S":
            return 0.55 if at_start else 0.65
        if k == "P":
            return 0.6
        if trig == 1 and k in "WU" and not at_start:
            return 0.6
        return 0.45 if k == "W" and trig == 1 else 0.0
    if n == kinds.count("I"):
        return 0.0
    if pat and (first or amb or sur or unknown or weak):
        return 0.9
    if (first or amb) and sur:
        return 0.9
    if first and weak:
        return 0.85
    if amb and weak:
        return 0.75  # "Sevinc Nəsirli": an ambiguous given name next to a surname ending
    if sur and (unknown or weak or kinds.count("I") or sur > 1):
        return 0.8
    if first and (first > 1 or amb):
        return 0.75
    if first:
        return 0.7 if at_start or unknown > 1 else 0.75
    if amb and unknown:
        return 0.0 if at_start or unknown > 1 else 0.55
    if trig == 1 and (unknown or weak):
        return 0.6
    return 0.0


_KIND_WORDS = {"F": "given name", "A": "given name", "S": "surname", "W": "surname ending", "P": "patronymic"}


_REASONS: dict[tuple[str, int], str] = {}


def _reason(kinds: list[str], trig: int) -> str:
    """Why a span is a person, without the name itself (cached: few combinations exist)."""
    key = ("".join(kinds), trig)
    reason = _REASONS.get(key)
    if reason is None:
        reason = _REASONS[key] = _explain(kinds, trig)
    return reason


def _explain(kinds: list[str], trig: int) -> str:
    """The reason text for `_reason`."""
    parts = sorted({_KIND_WORDS[k] for k in kinds if k in _KIND_WORDS})
    if trig == 2:
        parts.insert(0, "title or label")
    elif trig == 1:
        parts.insert(0, "role or greeting")
    return "person: " + (" + ".join(parts) if parts else "capitalised words")


# --------------------------------------------------------------------------------------------
# ADDRESS

_SEP = r"[ \t]*(?:[,;][ \t]*|\n[ \t]*)?"
# a house number, with a letter ("12A", "221 B") that is not the next label ("No: 74 D: 29")
_NUM = r"\d{1,5}(?:[ \t]?[A-Za-zА-Яа-я](?![^\W\d_]|[ \t]*:))?(?:[/-]\d{1,4}[A-Za-zА-Яа-я]?)?"
# Turkish numbered streets: "2031 Sok.", "1124. Sokak", "15 Cad."
_NUMBERED_STREET = r"\d{1,5}\.?[ \t]?(?:Sokak|Sokağı|Sok\.|Sk\.|Caddesi|Cadde|Cad\.|Cd\.)"
_HOUSE_KEY = (
    r"(?:ev|bina|binа|mənzil|mən\.|menzil|korpus|blok|mərtəbə|д\.|дом|кв\.|квартира|корп\.|корпус"
    r"|к\.|стр\.|строение|оф\.|офис|эт\.|этаж|No|NO|no|Nr|№|Daire|D|Kat|K|Blok|Apt|Apartment|Suite|Ste"
    r"|Unit|Flat|Floor|Fl|Room|#|apt|flat|office|Ofis|ofis)"
)
_HOUSE = rf"{_HOUSE_KEY}\.?[ \t]*[:.]?[ \t]*{_NUM}"
_CAPW = rf"[{_UP}][^\W\d_]+(?:-[{_UP}]?[^\W\d_]+)?"
_AREA_WORDS = (
    r"(?:şəhəri|ş\.|rayonu|r-nu|r\.|qəsəbəsi|kəndi|massivi|məhəlləsi|mikrorayonu|ilçesi|ili"
    r"|Mahallesi|mahallesi|Mah\.|mah\.|район|р-н|области|обл\.|область|край)"
)
_AREA = (
    rf"(?:(?:\d{{1,3}}[ \t])?{_CAPW}(?:[ \t]{_CAPW})?[ \t]{_AREA_WORDS}"
    rf"|(?:г\.|город|пос\.|с\.)[ \t]?{_CAPW}(?:-{_CAPW})*"
    rf"|{_CAPW}[ \t]?/[ \t]?{_CAPW}"
    r"|\d{1,3}(?:-?(?:cu|cü|ci|cı|ncı|nci))?[ \t]mikrorayon(?:u)?|\d{1,3}[ \t]?(?:-?й[ \t])?мкр\.?)"
)
_POSTAL = (
    r"(?:AZ[ \t]?-?\d{4}(?!\d)|[A-Z]{1,2}\d[A-Z\d]?[ \t]\d[A-Z]{2}(?![A-Za-z])"
    r"|[A-Z]{2}[ \t]\d{5}(?:-\d{4})?(?!\d)|\d{5,6}(?!\d))"
)
_PLACE_WORD = rf"{_CAPW}"
_RIGHT_PART = re.compile(
    rf"{_SEP}(?:(?P<street>{_NUMBERED_STREET})|(?P<house>{_HOUSE})|(?P<area>{_AREA})|(?P<postal>{_POSTAL})|(?P<place>{_PLACE_WORD}))"
)
_FIRST_NUMBER = re.compile(rf"[ \t]*,?[ \t]*(?!{_NUMBERED_STREET})(?:{_NUM})(?![\d:.]\d)")
# "address:", "ünvan", "по адресу", "adres": a street named right after is the person's address
_ADDRESS_LABEL = re.compile(r"(?:address|addr|ünvan|unvan|адрес|adres|yaşayır|живет|живёт|lives)[^\n]{0,24}\Z")
_PLACE_BEFORE = re.compile(rf"(?<![^\W\d_])({_CAPW})[ \t]*,[ \t]*\Z")
_LEFT_NUMBER = re.compile(r"(?<![\w.,])\d{1,5}[A-Za-z]?[ \t]+\Z")


def _build_addresses(text: str, cores: list[tuple[int, int, float]], out: list[Entity]) -> None:
    """Grow each street (or postal code) into the whole address around it, then merge."""
    spans: list[tuple[int, int, float]] = []
    for s, e, base in cores:
        spans.append(_grow(text, s, e, base))
    spans.sort()
    merged: list[list[float]] = []
    for s, e, score in spans:
        if merged and s <= merged[-1][1] + 2 and not text[int(merged[-1][1]) : s].strip(" ,;\t"):
            last = merged[-1]
            last[1] = max(last[1], e)
            last[2] = min(0.95, max(last[2], score) + 0.1)
        else:
            merged.append([s, e, score])
    for s, e, score in merged:
        if score >= 0.3:
            out.append(
                Entity("ADDRESS", int(s), int(e), score, "address: street, house, area or postal code")
            )


def _grow(text: str, s: int, e: int, base: float) -> tuple[int, int, float]:
    """Add the house number, flat, district, city and postal code written next to a street."""
    score = base
    has_street = base >= 0.5
    num = _FIRST_NUMBER.match(text, e) if has_street else None
    if num:
        e = num.end()
        score = 0.9
    left = _LEFT_NUMBER.search(text, max(0, s - 8), s)
    if left and has_street:
        s = left.start()
        if text[s:e].split(None, 1)[0][-1:].isalpha() or _looks_english(text, s, e):
            score = 0.9  # "221B Baker Street"
    parts = 0
    while True:
        m = _RIGHT_PART.match(text, e)
        if not m:
            break
        kind = m.lastgroup
        if kind == "place" and _fold(m.group("place")) not in _PLACES:
            break
        if kind == "postal" and not (has_street or parts or base > 0.4) and m.group("postal")[0].isdigit():
            break
        e = m.end()
        parts += 1
        if kind == "house":
            score = max(score, 0.9 if has_street else 0.7)
        elif has_street or kind in ("postal", "area"):
            score = max(score, 0.75)
    if has_street or parts:
        s = _left_places(text, s)
    if not has_street and base > 0.0 and parts == 0:
        score = base
    elif has_street and score < 0.75 and not _ADDRESS_LABEL.search(text[max(0, s - 40) : s].lower()):
        score = 0.45  # a street alone ("the office on Nizami Street") is a landmark, not an address
    return s, e, score


def _looks_english(text: str, s: int, e: int) -> bool:
    """An English street ("12 Main Street") puts the house number first."""
    return _fold(text[s:e].rstrip(". ").rsplit(None, 1)[-1]) in _STREET_WORDS


def _left_places(text: str, s: int) -> int:
    """Known towns and countries written before a street, comma-separated ("Baku, Nizami küç.").
    Areas with a keyword ("Yasamal rayonu") are their own cores and get merged instead."""
    while True:
        m = _PLACE_BEFORE.search(text, max(0, s - 40), s)
        if not m or _fold(m.group(1)) not in _PLACES:
            return s
        s = m.start()


# --------------------------------------------------------------------------------------------
# DATE_OF_BIRTH
#
# Every full date has a 19xx/20xx year: a scan for years (a cheap two-digit literal class) finds
# the few places worth a look; a birth word near the year (cheap test on the lowered window)
# lets the date pattern and the context rules run there.

_MONTHS_EN = (
    "January|February|March|April|May|June|July|August|September|October|November|December"
    "|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec"
)
_MONTHS_AZ = "yanvar|fevral|mart|aprel|may|iyun|iyul|avqust|sentyabr|oktyabr|noyabr|dekabr"
_MONTHS_TR = "ocak|şubat|mart|nisan|mayıs|haziran|temmuz|ağustos|eylül|ekim|kasım|aralık"
_MONTHS_RU = (
    "января|февраля|марта|апреля|мая|июня|июля|августа|сентября|октября|ноября|декабря"
    "|январь|февраль|март|апрель|май|июнь|июль|август|сентябрь|октябрь|ноябрь|декабрь"
)
_MONTHS_RU_IN = "январе|феврале|марте|апреле|мае|июне|июле|августе|сентябре|октябре|ноябре|декабре"
_MONTH = rf"(?i:{_MONTHS_EN}|{_MONTHS_AZ}|{_MONTHS_TR}|{_MONTHS_RU})\.?"
_YEAR = r"(?:1[89]\d\d|20\d\d)"
# Two patterns that each open with a literal: sre finds "19"/"20" with a fast literal search,
# where one pattern opening with an alternation or class ([12]) tests every character.
_YEAR_ANCHORS = (re.compile(r"19\d\d(?!\d)"), re.compile(r"20\d\d(?!\d)"))


def _years(text: str) -> list[tuple[int, int]]:
    """Spans of 19xx/20xx numbers, in text order."""
    spans = [m.span() for m in _YEAR_ANCHORS[0].finditer(text)]
    more = [m.span() for m in _YEAR_ANCHORS[1].finditer(text)]
    if spans and more:
        spans += more
        spans.sort()
        return spans
    return spans or more
_DATE = re.compile(
    # 12.03.1985, 12/03/1985, 12-03-85 (day or month first), 1985-03-12; not a timestamp's date
    rf"(?:(?<![\d.])(?:\d{{1,2}}(?P<s1>[./-])\d{{1,2}}(?P=s1){_YEAR}|{_YEAR}(?P<s2>[./-])\d{{1,2}}(?P=s2)\d{{1,2}})"
    r"(?![\d.]?\d)(?!T\d|[ \t]\d\d:)"
    # 12 mart 1985, 12 марта 1985 г., 12th of March 1985, 12-ci mart 1985
    rf"|(?<!\d)\d{{1,2}}(?:st|nd|rd|th|-?(?:ci|cı|cu|cü|си))?(?:[ \t]+|[ \t]*-[ \t]*)(?:of[ \t]+)?{_MONTH}"
    rf"(?:,?[ \t]+|[ \t]*-[ \t]*){_YEAR}(?:[ \t]?(?:г\.|года|г(?![^\W\d_])))?"
    # March 12, 1985
    rf"|(?<![^\W\d_])(?:{_MONTHS_EN})\.?[ \t]+\d{{1,2}}(?:st|nd|rd|th)?,?[ \t]+{_YEAR}"
    # May 1990, mart 1985, в марте 1985 (month and year only; still a birth date next to "born")
    rf"|(?<![^\W\d_])(?<!\d[ \t])(?:{_MONTH}|(?i:{_MONTHS_RU_IN}))[ \t]+{_YEAR}(?![^\W\d_]))(?!\d)"
)
# Birth words (lower-cased). Before a date: labels and verbs; after it: verbs ("... anadan olub").
_BIRTH_STEM = re.compile(
    r"(?<![^\W\d_])(?:doğum|doğul|doğdu|dogum|dogul|рожд|родил|birth|born|dob(?![^\W\d_])|d\.o\.b|д\.\s?р\."
    r"|г\.\s?р\.|anadan|d\.t\.|d/t|dünyaya|tevellüd|təvəllüd)[^\W\d_]*(?:[ \t]+(?:tarixi|tarix|tarihi|tarih|günü|рождения"
    r"|olub|olmuşdur|gəlib|geldi|date|on)(?![^\W\d_]))?"
)
# The same stems as plain literals: sre skips to their first letters in C, so most windows
# (no birth word at all) are ruled out cheaply before `_BIRTH_STEM` runs.
_BIRTH_QUICK = re.compile(
    "|".join(
        re.escape(w)
        for w in (
            "doğ",
            "dog",
            "рожд",
            "родил",
            "birth",
            "born",
            "dob",
            "d.o.b",
            "д.р",
            "д. р",
            "г.р",
            "г. р",
            "anadan",
            "d.t.",
            "d/t",
            "dünyaya",
            "tevellüd",
            "təvəllüd",
        )
    )
)
_OTHER_DATE_LABEL = re.compile(
    r"date|tarix|tarih|дата|срок|deadline|due|invoice|faktura|hesab|sifariş|order|sipariş|ödəniş|ödeme"
    r"|payment|expir|valid|visit|qəbul|randevu|appointment|issued|verilib|выдан|;|\n\s*\n"
)


def _find_birth_dates(text: str, out: list[Entity]) -> None:
    """Dates next to a birth word, in text order."""
    prev_end = 0
    for ys, ye in _years(text):
        if ys < prev_end or (ys and text[ys - 1].isdigit()):
            continue
        lo = max(0, ys - 80)
        window = text[lo : ys + 48].lower()
        if not _BIRTH_QUICK.search(window) or not _BIRTH_STEM.search(window):
            continue
        d = _DATE.search(text, max(0, ys - 24), min(len(text), ys + 12))
        while d is not None and d.end() <= ys:
            d = _DATE.search(text, d.end(), min(len(text), ys + 12))
        if d is None or d.start() > ys:
            birth_end = _birth_year(text, ys, ye)
            if birth_end:
                out.append(Entity("DATE_OF_BIRTH", ys, ye, 0.85, "birth year next to a birth word"))
                prev_end = birth_end  # the birth word is used up: "1978 doğumlu ... 12.03.2025'te"
            continue
        score = _birth_context(window, d.start() - lo, d.end() - lo, prev_end - lo)
        if score:
            out.append(Entity("DATE_OF_BIRTH", d.start(), d.end(), score, "date next to a birth word"))
        prev_end = d.end()


# A year alone is a birth date only right next to a birth word: "born in 1978", "год рождения:
# 1978", "1978 doğumlu", "1985-ci il təvəllüdlü", "1978 г.р.", "1990 года рождения".
_YEAR_BIRTH_BEFORE = re.compile(
    r"(?:born(?:[ \t]+in)?|year[ \t]+of[ \t]+birth|birth[ \t]+year|doğum[ \t]+(?:yılı|ili)|doğulub"
    r"|год[ \t]+рождения|рожд[её]н(?:а|ный|ная)?(?:[ \t]+в)?|родил(?:ся|ась)(?:[ \t]+в)?)[ \t:,-]*\Z"
)
_YEAR_BIRTH_AFTER = re.compile(
    r"(?:-?(?:ci|cı|cu|cü)[ \t]+il[ \t]+|[ \t]+(?:yılında|ildə)[ \t]+)?[ \t]*"
    r"(?:doğumlu|təvəllüdlü|tevellüdlü|г\.[ \t]?р\.|года[ \t]+рождения|г\.р|doğulub|doğdu|anadan)"
)


def _birth_year(text: str, ys: int, ye: int) -> int:
    """Where the birth word of a birth year ends (0: the year is not a birth year)."""
    if text[ye : ye + 1].isalnum() or (ys and text[ys - 1] in "./-"):
        return 0
    after = _YEAR_BIRTH_AFTER.match(text[ye : ye + 30].lower())
    if after:
        return ye + after.end()
    return ye if _YEAR_BIRTH_BEFORE.search(text[max(0, ys - 24) : ys].lower()) else 0


def _birth_context(window: str, s: int, e: int, floor: int) -> float:
    """0.9 when a birth word comes shortly before the date (no other date or date label between),
    0.85 when a birth verb comes shortly after it ("12.03.1985-ci ildə anadan olub"), else 0."""
    best = 0.0
    for m in _BIRTH_STEM.finditer(window):
        if floor <= m.start() and m.end() <= s:
            gap = window[m.end() : s]
            if len(gap) <= 32 and not _OTHER_DATE_LABEL.search(gap):
                best = 0.9
        elif m.start() >= e and best == 0.0:
            gap = window[e : m.start()]
            if len(gap) <= 25 and "." not in gap.replace("г.", "") and ";" not in gap and "\n" not in gap:
                best = 0.85
            break
    return best


# --------------------------------------------------------------------------------------------
# Public API


def find_people(text: str) -> list[Entity]:
    """PERSON spans: names by title, label, given-name list and surname/patronymic morphology."""
    return list(_analyse(text).people) if text else []


def find_addresses(text: str) -> list[Entity]:
    """ADDRESS spans: a street with its house, flat, district, city and postal code."""
    return list(_analyse(text).addresses) if text else []


def find_birth_dates(text: str) -> list[Entity]:
    """DATE_OF_BIRTH spans: full dates that a birth context in one of the four languages names."""
    return list(_analyse(text).births) if text else []
