"""The detector on structured identifiers and secrets in English, Azerbaijani, Russian and Turkish.

Positives must come back with exact offsets; hard negatives (order numbers, versions, dates,
amounts, UUIDs, hashes, numbers failing their checksum) must not come back at all.
"""

from __future__ import annotations

import pytest

from tiergate.privacy import patterns
from tiergate.privacy.detector import CustomRecognizer, Detector, default_detector, resolve
from tiergate.privacy.entities import STRUCTURED_TYPES, Entity

DETECTOR = Detector(types=STRUCTURED_TYPES)


def found(text: str, detector: Detector = DETECTOR) -> list[tuple[str, str]]:
    entities = detector.scan(text)
    for e in entities:
        assert 0 <= e.start < e.end <= len(text)
        assert text[e.start : e.end] not in e.reason
    return [(e.type, text[e.start : e.end]) for e in entities]


POSITIVES: list[tuple[str, str, str]] = [
    # (text, type, exact value)
    # EMAIL
    ("Please reply to john.smith@example.com today.", "EMAIL", "john.smith@example.com"),
    ("E-poçt ünvanım: aysel.məmmədova ... aysel_m+bank@mail.az", "EMAIL", "aysel_m+bank@mail.az"),
    ("Пишите на ivan.petrov@yandex.ru, отвечу.", "EMAIL", "ivan.petrov@yandex.ru"),
    ("E-posta adresim ayse.yilmaz@firma.com.tr olarak kayıtlı.", "EMAIL", "ayse.yilmaz@firma.com.tr"),
    ("mailto:support@tiergate.io", "EMAIL", "support@tiergate.io"),
    # PHONE
    ("Call me at +994 50 123 45 67 after six.", "PHONE", "+994 50 123 45 67"),
    ("Mobil nömrəm 050-123-45-67, zəng edin.", "PHONE", "050-123-45-67"),
    ("Ofis telefonu (012) 440-12-34.", "PHONE", "(012) 440-12-34"),
    ("Əlaqə: +994501234567", "PHONE", "+994501234567"),
    ("Звоните: +7 (912) 345-67-89", "PHONE", "+7 (912) 345-67-89"),
    ("тел. 8 (800) 555-35-35", "PHONE", "8 (800) 555-35-35"),
    ("Telefon numaram 0532 123 45 67, arayın.", "PHONE", "0532 123 45 67"),
    ("Cep: +90 532 123 45 67", "PHONE", "+90 532 123 45 67"),
    ("Phone: (555) 123-4567", "PHONE", "(555) 123-4567"),
    ("US office 1-800-555-1234", "PHONE", "1-800-555-1234"),
    ("UK desk +44 20 7946 0958", "PHONE", "+44 20 7946 0958"),
    ("WhatsApp 0501234567", "PHONE", "0501234567"),
    ("Nömrəsi 050-123-45-67-yə zəng edin", "PHONE", "050-123-45-67"),
    # CREDIT_CARD
    ("Card number 4111 1111 1111 1111, exp 12/27", "CREDIT_CARD", "4111 1111 1111 1111"),
    ("Kartımın nömrəsi 5500-0000-0000-0004", "CREDIT_CARD", "5500-0000-0000-0004"),
    ("Номер карты: 2200 0000 0000 0004", "CREDIT_CARD", "2200 0000 0000 0004"),
    ("Kredi kartı 4242424242424242 ile ödedim", "CREDIT_CARD", "4242424242424242"),
    ("Amex 3782 822463 10005", "CREDIT_CARD", "3782 822463 10005"),
    ("paid with 5555 5555 5555 4444 yesterday", "CREDIT_CARD", "5555 5555 5555 4444"),
    # IBAN
    ("IBAN: AZ21 NABZ 0000 0000 1370 1000 1944", "IBAN", "AZ21 NABZ 0000 0000 1370 1000 1944"),
    ("Hesab AZ21NABZ00000000137010001944 üzrə köçürmə", "IBAN", "AZ21NABZ00000000137010001944"),
    ("Счёт получателя DE89370400440532013000.", "IBAN", "DE89370400440532013000"),
    ("IBAN numaram TR33 0006 1005 1978 6457 8413 26 dir", "IBAN", "TR33 0006 1005 1978 6457 8413 26"),
    ("wire to GB82WEST12345698765432 please", "IBAN", "GB82WEST12345698765432"),
    ("NL91ABNA0417164300 (Dutch)", "IBAN", "NL91ABNA0417164300"),
    # IP_ADDRESS
    ("The server at 192.168.1.10 is down.", "IP_ADDRESS", "192.168.1.10"),
    ("Сервер 10.0.0.254:8080 не отвечает", "IP_ADDRESS", "10.0.0.254"),
    ("IP ünvanı 8.8.8.8.", "IP_ADDRESS", "8.8.8.8"),
    ("ipv6 2001:0db8:85a3:0000:0000:8a2e:0370:7334 here", "IP_ADDRESS", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
    ("host fe80::1ff:fe23:4567:890a", "IP_ADDRESS", "fe80::1ff:fe23:4567:890a"),
    ("[2001:db8::1]:443", "IP_ADDRESS", "2001:db8::1"),
    # AZ_FIN
    ("FİN: 5ZJ8K2L", "AZ_FIN", "5ZJ8K2L"),
    ("Şəxsiyyət vəsiqəsinin FIN kodu 7HK3M9P-dir", "AZ_FIN", "7HK3M9P"),
    ("fin kod 1AB2C3D, ad Elvin", "AZ_FIN", "1AB2C3D"),
    ("PIN: 2XY4Z6W", "AZ_FIN", "2XY4Z6W"),
    # AZ_VOEN
    ("VÖEN: 1234567891", "AZ_VOEN", "1234567891"),
    ("Şirkətin VOEN-i 9900003612 olaraq qeyd edilib", "AZ_VOEN", "9900003612"),
    # AZ_ID_CARD
    ("Şəxsiyyət vəsiqəsi AA1234567", "AZ_ID_CARD", "AA1234567"),
    ("ŞV seriyası AZE12345678", "AZ_ID_CARD", "AZE12345678"),
    ("ID card AA 7654321 expired", "AZ_ID_CARD", "AA 7654321"),
    # PASSPORT
    ("Pasport nömrəsi C01234567", "PASSPORT", "C01234567"),
    ("Pasaport no: U12345678", "PASSPORT", "U12345678"),
    ("паспорт 45 06 123456 выдан", "PASSPORT", "45 06 123456"),
    ("Паспорт серия 4506 № 123456", "PASSPORT", "4506 № 123456"),
    ("US passport number 123456789", "PASSPORT", "123456789"),
    ("passport A12345678", "PASSPORT", "A12345678"),
    # US_SSN
    ("SSN 123-45-6789 on file", "US_SSN", "123-45-6789"),
    ("social security number: 536 22 1234", "US_SSN", "536 22 1234"),
    ("my ssn is 536221234", "US_SSN", "536221234"),
    # TR_TCKN
    ("TC kimlik no: 10000000146", "TR_TCKN", "10000000146"),
    ("T.C. 12345678950 numaralı vatandaş", "TR_TCKN", "12345678950"),
    ("TCKN:11111111110", "TR_TCKN", "11111111110"),
    # RU_INN
    ("ИНН 7707083893", "RU_INN", "7707083893"),
    ("ИНН физлица: 500100732259", "RU_INN", "500100732259"),
    ("INN 7736207543 of the supplier", "RU_INN", "7736207543"),
    # RU_SNILS
    ("СНИЛС 112-233-445 95", "RU_SNILS", "112-233-445 95"),
    ("SNILS 11223344595", "RU_SNILS", "11223344595"),
    ("страховой номер 087-654-303 00", "RU_SNILS", "087-654-303 00"),
]


@pytest.mark.parametrize(("text", "kind", "value"), POSITIVES)
def test_positive(text: str, kind: str, value: str) -> None:
    assert (kind, value) in found(text)


NEGATIVES: list[str] = [
    "Order #123-456-7890 shipped on 2024-03-15 at 10:30:45.",
    "Invoice INV-2024-00123, total $1,249.99 (VAT 18%).",
    "Upgrade from version 2.10.0 to v1.2.3.4; build 1.4.2.",
    "Sifariş nömrəsi 20240315001, məbləğ 1 250,00 AZN.",
    "Заказ № 7781 от 12.02.2024 на сумму 1 500 руб., трек 80094512345678.",
    "Sipariş numarası 556677, fatura tarihi 15.03.2024 14:30.",
    "uuid 550e8400-e29b-41d4-a716-446655440000 and sha 3f2a9b1c0d4e5f6a7b8c9d0e1f2a3b4c5d6e7f80",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 (short 9fceb02)",
    "Product code XR-500-1234-5678, SKU 4006381333931, part 123-456-7890.",
    "Card-like 4111 1111 1111 1112 fails Luhn; so does 1234 5678 9012 3456.",
    "IBAN-like AZ21 NABZ 0000 0000 1370 1000 1945 fails mod 97.",
    "IBAN-like GB82WEST12345698765433 fails too.",
    "TC kimlik 12345678951 geçersiz.",
    "ИНН 7707083894 с ошибкой",
    "СНИЛС 112-233-445 96 неверный",
    "SSN 666-12-3456 and 000-12-3456 are never issued",
    "Farm report: 120 hectares, 35 tonnes, 42 mm of rain, 2 treatments per season.",
    "Təzyiq 120/80, nəbz 72, temperatur 36.6, 500 mg gündə 2 dəfə.",
    "Time 2024-05-01T12:00:00Z, timestamp 1714564800, duration 00:12:34.567.",
    "Population 8 123 456 people, GDP 54 000 000 000 USD.",
    "MAC 00:1A:2B:3C:4D:5E and C++ std::vector<int> and time 12:30:45",
    "Section 1.2.3 and OID 1.3.6.1.4.1.311",
    "Ticket 48213: the user cannot log in to the dashboard.",
    "Reference: ABC1234567, batch LOT2024A, model RX7800XT.",
    "Forgot password: what should I do? The token expired yesterday.",
    "password = get_password()  # read from vault",
    'api_key = os.environ["OPENAI_API_KEY"]',
    "DB_PASSWORD=${DB_PASSWORD}",
    "postgres://app:${DB_PASS}@db:5432/app",
    "The task-manager-service-component-registry is big.",
    "Contact icon@2x.png and @types/node@18.0.0",
    "call 10.5.3 release notes",
    "3 + 4 = 7; 10 - 2 = 8; (5) (6) (7)",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_hard_negative(text: str) -> None:
    assert found(text) == []


SECRETS: list[tuple[str, str]] = [
    ("OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"),
    ("key: sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
    ("use sk-1234567890abcdefghijklmnopqrstuv for tests", "sk-1234567890abcdefghijklmnopqrstuv"),
    ("aws AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("token ghp_16C7e42F292c6912E7710c838347Ae178B4a in CI", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
     "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"),
    ("slack xoxb-1234567890-0987654321-AbCdEfGhIjKl", "xoxb-1234567890-0987654321-AbCdEfGhIjKl"),
    ("google AIzaSyA1234567890abcdefghijklmnopqrstuv", "AIzaSyA1234567890abcdefghijklmnopqrstuv"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
     "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ("DATABASE_URL=postgres://admin:S3cr3tPass@db.example.com:5432/app", "S3cr3tPass"),
    ("mongodb+srv://user:p4ss-w0rd@cluster0.mongodb.net/test", "p4ss-w0rd"),
    ("redis://:hunter2secret@cache:6379/0", "hunter2secret"),
    ('{"api_key": "abcd1234efgh5678", "model": "x"}', "abcd1234efgh5678"),
    ("password=Qwerty!2024", "Qwerty!2024"),
    ("db:\n  password: hunter22\n  user: app", "hunter22"),
    ("Пароль: Zx9!kLm2", "Zx9!kLm2"),
    ("Şifrə: Baku2024!", "Baku2024!"),
    ("şifre = 'Ankara06*'", "Ankara06*"),
    ("client_secret: 'f3a9c1d2e4b5'", "f3a9c1d2e4b5"),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
]


@pytest.mark.parametrize(("text", "value"), SECRETS)
def test_secret(text: str, value: str) -> None:
    assert ("SECRET", value) in found(text)


def test_private_key_block_is_one_span() -> None:
    block = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x1234\nabcdEFGH5678==\n-----END RSA PRIVATE KEY-----"
    text = f"here is my key:\n{block}\nthanks"
    assert found(text) == [("SECRET", block)]
    truncated = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\nAAAAB3NzaC1yc2E"
    assert found(truncated) == [("SECRET", truncated)]


def test_public_key_is_not_a_secret() -> None:
    assert found("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----") == []


def test_offsets_after_non_ascii_text() -> None:
    text = "Müştəri Əliyev Ğəşəmçüöı: telefon +994 55 987 65 43, e-poçt şəxsi: elvin@mail.az, ИНН 7707083893"
    result = found(text)
    assert ("PHONE", "+994 55 987 65 43") in result
    assert ("EMAIL", "elvin@mail.az") in result
    assert ("RU_INN", "7707083893") in result
    for e in DETECTOR.scan(text):
        assert text[e.start : e.end] in ("+994 55 987 65 43", "elvin@mail.az", "7707083893")


def test_turkish_dotted_capital_i_does_not_shift_context() -> None:
    # "İ".lower() is two code points; the context window must still see "kimlik"
    text = "İİİİİİİİ TC KİMLİK NO 10000000146"
    assert ("TR_TCKN", "10000000146") in found(text)


def test_mixed_multilingual_ticket() -> None:
    text = (
        "Ticket 48213 (bank): Müştəri kartı 4111 1111 1111 1111 ilə ödəniş edib, IBAN AZ21NABZ00000000137010001944, "
        "FİN 5ZJ8K2L. Клиент просит перезвонить: +7 912 345 67 89. Sipariş 556677 için TC 10000000146."
    )
    assert found(text) == [
        ("CREDIT_CARD", "4111 1111 1111 1111"),
        ("IBAN", "AZ21NABZ00000000137010001944"),
        ("AZ_FIN", "5ZJ8K2L"),
        ("PHONE", "+7 912 345 67 89"),
        ("TR_TCKN", "10000000146"),
    ]


def test_scores_follow_the_scale() -> None:
    scores = {e.type: e.score for e in Detector(min_score=0.0).scan("kart 4111 1111 1111 1111")}
    assert scores["CREDIT_CARD"] >= 0.95
    bare = {e.type: e.score for e in Detector(min_score=0.0).scan("x 4111 1111 1111 1111 y")}
    assert 0.8 <= bare["CREDIT_CARD"] < 0.95
    weak = Detector(min_score=0.0).scan("number 7707083893 here")  # INN shape and checksum, no context
    assert weak and all(e.score < 0.5 for e in weak)
    assert found("number 7707083893 here") == []


def test_types_restrict_and_min_score_filters() -> None:
    text = "mail a@b.co, phone +994 50 123 45 67, card 4111 1111 1111 1111"
    assert [k for k, _ in found(text, Detector(types=["EMAIL"]))] == ["EMAIL"]
    assert {k for k, _ in found(text, Detector(types={"PHONE", "CREDIT_CARD"}))} == {"PHONE", "CREDIT_CARD"}
    assert found(text, Detector(min_score=0.99)) == []
    with pytest.raises(ValueError, match="unknown entity types"):
        Detector(types=["NOPE"])


def test_overlap_keeps_higher_score_then_longer() -> None:
    a = Entity("PHONE", 0, 10, 0.6)
    b = Entity("CREDIT_CARD", 0, 19, 0.9)
    c = Entity("EMAIL", 5, 20, 0.9)
    d = Entity("SECRET", 30, 40, 0.5)
    e = Entity("IBAN", 32, 45, 0.5)
    assert resolve([a, b, c, d, e]) == [b, e]
    assert resolve([]) == []


def test_card_in_context_beats_phone_reading_of_same_digits() -> None:
    assert found("Kart: 4111111111111111") == [("CREDIT_CARD", "4111111111111111")]


def test_custom_recognizer_with_validator_and_context() -> None:
    policy = CustomRecognizer("POLICY_NO", r"\bPL-?[0-9]{6}\b", context=["policy", "polis", "полис"], score=0.7)
    card = CustomRecognizer("LOYALTY_CARD", r"\b[0-9]{16}\b", validator="luhn", context=["loyalty", "bonus"],
                            context_required=True)
    labelled = CustomRecognizer("CLAIM", r"Claim no\.? (?P<value>[0-9]{8})")
    detector = Detector(custom=[policy, card, labelled])
    text = "Sığorta polisi PL-123456; loyalty no 4111111111111111; Claim no. 12345678; other 4111111111111112"
    entities = {e.type: e for e in detector.scan(text)}
    assert text[entities["POLICY_NO"].start : entities["POLICY_NO"].end] == "PL-123456"
    assert entities["POLICY_NO"].score >= 0.95
    assert entities["LOYALTY_CARD"].type == "LOYALTY_CARD"
    assert text[entities["CLAIM"].start : entities["CLAIM"].end] == "12345678"
    assert all(e.type != "LOYALTY_CARD" for e in detector.scan("4111111111111111 with no label"))
    bare = Detector(custom=[policy]).scan("PL-123456")
    assert [e.score for e in bare] == [0.7]
    assert Detector(custom=[policy], types=["EMAIL"]).scan("polis PL-123456") == []


def test_custom_recognizer_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="unknown validator"):
        CustomRecognizer("X", r"\d+", validator="crc32")
    with pytest.raises(ValueError, match="invalid pattern"):
        CustomRecognizer("X", r"(")
    with pytest.raises(ValueError, match="context_required"):
        CustomRecognizer("X", r"\d+", context_required=True)


def test_default_detector_is_shared() -> None:
    assert default_detector() is default_detector()
    assert default_detector().scan("") == []


def test_entity_reason_never_contains_value() -> None:
    text = "FİN 5ZJ8K2L, sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z, ivan@mail.ru, ИНН 7707083893"
    for e in DETECTOR.scan(text):
        assert e.reason and text[e.start : e.end] not in e.reason


# --------------------------------------------------------------------------------------------
# Formats and context added after the evaluation's development half


def test_phone_inside_an_extra_pair_of_brackets() -> None:
    """An outer bracket around a number is punctuation, not part of it (and not unbalanced)."""
    assert ("PHONE", "+44 7911 204518") in found("Ask our agent Tom (+44 7911 204518) tomorrow.")
    assert ("PHONE", "(022) 455-17-30") in found("Manager Elvin ((022) 455-17-30) is on leave.")
    assert ("PHONE", "(0312) 447 2190") in found("Müdür ((0312) 447 2190), pazartesi.")


def test_snils_written_with_spaces_only() -> None:
    assert ("RU_SNILS", "204 207 858 27") in found("СНИЛС 204 207 858 27, проверьте.")
    assert ("RU_SNILS", "369 122 881 01") in found("Employee SNILS: 369 122 881 01")
    assert not any(k == "RU_SNILS" for k, _ in found("Reference 204 207 858 28 in the archive."))


def test_context_words_are_matched_at_word_starts_only() -> None:
    """`ContextWords` finds a word by its first characters, then confirms it with the regex."""
    phone = patterns.CONTEXT["PHONE"]
    assert phone.search("call me at \x00") is not None
    assert phone.search("мой телефону: \x00") is not None  # inflected long word
    assert phone.search("recall the order \x00") is None  # "call" inside a word
    assert phone.search("telegram channel \x00") is None  # "tel" must end there
    assert patterns.NEGATIVE.search("invoice no. ") is not None
    assert patterns.VERSION.search("release ") is not None


def test_config_secrets_found_from_the_key_before_the_sign() -> None:
    """Only signs after a secret-sounding key are looked at; keys aligned with blanks still count."""
    assert ("SECRET", "Zx81-kq2!mw") in found("db_password   =   Zx81-kq2!mw")
    assert ("SECRET", "t0ken-9981-abc") in found('{"clientSecret": "t0ken-9981-abc"}')
    assert not any(k == "SECRET" for k, _ in found("limit: 100, timeout=30, note: see above"))
