#!/usr/bin/env python3
"""Speed of the privacy engine: the detector, the `tiergate privacy scan` CLI, a naive regex
baseline, and the gateway with detection on vs off.

From the repository root (needs the project venv, `make install`; the gateway part also needs
nginx + its echo module + wrk, which `bench/run.sh` installs):

    .venv/bin/python bench/privacy_speed.py               # everything, ~8 min on 2 cores
    .venv/bin/python bench/privacy_speed.py --quick       # smoke check, ~1.5 min
    .venv/bin/python bench/privacy_speed.py --only detector,naive,cli   # no servers
    .venv/bin/python bench/privacy_speed.py --no-write    # print only
    .venv/bin/python bench/privacy_speed.py --render      # re-render the .md and README from the .json

Writes bench/results/privacy_speed.json (every sample statistic, settings, versions),
bench/results/privacy_speed.md and the figures of the "Privacy engine" section of bench/README.md. What is measured, and the targets (issue 4):

1. detector: `default_detector().scan(text)` on 1 KB, 10 KB, 100 KB and 1 MB (UTF-8 bytes) of
   mixed EN/AZ/RU/TR prose with names, phones, e-mails, IBANs, cards, secrets and code, built
   deterministically below; median and p90 per call, µs per KB. Targets: 10 KB <= 1 ms, 1 MB <= 100 ms.
2. naive baseline: 17 plain regexes run one after another (`finditer`, matches collected, no
   checksums) over the same 10 KB and a 16 KB text: the approach the detector replaces.
3. CLI: `.venv/bin/tiergate privacy scan < in.jsonl > out.jsonl` on 50,000 short lines (30-200
   chars), wall time of the whole process (start-up included); start-up measured separately.
   Target >= 5,000 lines/s.
4. gateway: two `tiergate serve` processes (2 workers each) with the same config except
   `privacy: {detection: false}` in one, in front of bench/run.py's nginx fixture (deployment at
   location `cloud`, so pseudonymisation applies); wrk with a 1 KB prompt that has a few
   pseudonymised values and with a clean 1 KB prompt, at 50 and 1 connections, interleaved on/off,
   several rounds; medians. Target: req/s with detection >= 85 % of without.

Every server listens on 127.0.0.1, every load run is bounded by wrk's -d and a subprocess timeout,
every process started here is stopped by its own process-group id (bench/run.py's helpers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.server
import importlib.util
import json
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / ".work"
PWORK = WORK / "privacy_speed"
RESULTS = BENCH / "results"
TIERGATE_BIN = ROOT / ".venv" / "bin" / "tiergate"

TARGETS = {
    "scan_10kb_median_ms": 1.0,
    "scan_1mb_median_ms": 100.0,
    "cli_lines_per_s": 5000.0,
    "gateway_rps_ratio": 0.85,
}
SIZES = [("1 KB", 1024), ("10 KB", 10 * 1024), ("100 KB", 100 * 1024), ("1 MB", 1024 * 1024)]


def log(msg: str) -> None:
    print(f"[privacy-speed {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# Deterministic test data
# --------------------------------------------------------------------------------------------

NAMES = {
    "en": [("John", "Smith"), ("Emily", "Carter"), ("Michael", "Brown"), ("Sarah", "Johnson"), ("David", "Miller")],
    "az": [("Elvin", "Məmmədov"), ("Aysel", "Əliyeva"), ("Rəşad", "Hüseynov"), ("Leyla", "Quliyeva"), ("Orxan", "Həsənov")],
    "ru": [("Иван", "Петров"), ("Анна", "Смирнова"), ("Дмитрий", "Кузнецов"), ("Ольга", "Иванова"), ("Сергей", "Соколов")],
    "tr": [("Mehmet", "Yılmaz"), ("Ayşe", "Demir"), ("Emre", "Kaya"), ("Zeynep", "Çelik"), ("Burak", "Şahin")],
}
TRANSLIT = str.maketrans({"ə": "e", "Ə": "E", "ş": "s", "Ş": "S", "ç": "c", "Ç": "C", "ı": "i", "İ": "I",
                          "ğ": "g", "ü": "u", "ö": "o"})
RU_LAT = dict(zip("абвгдежзийклмнопрстуфхцчшщыэюяьъ",
                  ["a", "b", "v", "g", "d", "e", "zh", "z", "i", "y", "k", "l", "m", "n", "o", "p", "r", "s", "t",
                   "u", "f", "kh", "ts", "ch", "sh", "sch", "y", "e", "yu", "ya", "", ""]))


def _ascii(s: str) -> str:
    s = s.lower().translate(TRANSLIT)
    return "".join(RU_LAT.get(c, c) for c in s)


def luhn_card(rng: random.Random) -> str:
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):  # the check digit will sit to the right
        d = d * 2 if i % 2 == 0 else d
        total += d - 9 if d > 9 else d
    digits.append((10 - total % 10) % 10)
    s = "".join(map(str, digits))
    return " ".join(s[i : i + 4] for i in range(0, 16, 4))


def iban(rng: random.Random, country: str) -> str:
    if country == "AZ":
        bban = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + "".join(
            str(rng.randrange(10)) for _ in range(20))
    elif country == "TR":
        bban = "".join(str(rng.randrange(10)) for _ in range(5)) + "0" + "".join(str(rng.randrange(10)) for _ in range(16))
    else:  # DE
        bban = "".join(str(rng.randrange(10)) for _ in range(18))
    num = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(num) % 97
    raw = f"{country}{check:02d}{bban}"
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4)) if rng.random() < 0.5 else raw


def phone(rng: random.Random, lang: str) -> str:
    d = lambda n: "".join(str(rng.randrange(10)) for _ in range(n))  # noqa: E731
    if lang == "az":
        return f"+994 {rng.choice(['50', '51', '55', '70', '77'])} {d(3)} {d(2)} {d(2)}"
    if lang == "ru":
        return f"+7 9{d(2)} {d(3)}-{d(2)}-{d(2)}"
    if lang == "tr":
        return f"+90 5{d(2)} {d(3)} {d(2)} {d(2)}"
    return f"+1 ({rng.choice(['212', '415', '617'])}) {rng.randrange(200, 999)}-{d(4)}"


def email(rng: random.Random, first: str, last: str) -> str:
    dom = rng.choice(["example.com", "mail.az", "yandex.ru", "firma.com.tr", "corp.example.org"])
    return f"{_ascii(first)}.{_ascii(last)}{rng.choice(['', str(rng.randrange(10, 99))])}@{dom}"


def secret(rng: random.Random) -> str:
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    pick = lambda n, a=alnum: "".join(rng.choice(a) for _ in range(n))  # noqa: E731
    kind = rng.randrange(4)
    if kind == 0:
        return "sk-proj-" + pick(40)
    if kind == 1:
        return "AKIA" + pick(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    if kind == 2:
        return "ghp_" + pick(36)
    return "xoxb-" + pick(11, "0123456789") + "-" + pick(12, "0123456789") + "-" + pick(24)


PROSE = {
    "en": [
        "Hi team, {name} asked me to forward the invoice. You can reach {them} at {phone} or write to {email}. "
        "The refund should go to IBAN {iban}; the card on file ends the way shown below: {card}.",
        "Meeting notes: we reviewed the quarterly roadmap, agreed to move the migration to next sprint and to keep "
        "the retry budget at three attempts. Nobody objected to the new on-call rotation.",
        "Please summarise the following customer complaint in two sentences. The customer, {name}, says the delivery "
        "was late twice and the support line at {phone} never answered.",
        "The model should answer in a friendly tone, cite the relevant section of the policy and never invent "
        "numbers. If the question is ambiguous, ask one clarifying question first.",
    ],
    "az": [
        "Salam, mənim adım {name}. Mobil nömrəm {phone}, e-poçt ünvanım {email}. Maaşım bu hesaba köçürülsün: "
        "IBAN {iban}. Kartımın nömrəsi {card}.",
        "Hesabat hazırdır: bu ay satışlar on iki faiz artıb, yeni filial Gəncədə açılıb və müştəri məmnuniyyəti "
        "sorğusunun nəticələri gələn həftə təqdim olunacaq.",
        "Zəhmət olmasa bu məktubu qısa şəkildə tərcümə edin. Müştəri {name} sifarişin gecikdiyini yazır və "
        "{email} ünvanına cavab gözləyir.",
    ],
    "ru": [
        "Здравствуйте! Меня зовут {name}, мой телефон {phone}, почта {email}. Прошу перевести возврат на счёт "
        "IBAN {iban}, карта {card}.",
        "Протокол встречи: обсудили план на квартал, решили перенести миграцию базы данных на следующий спринт и "
        "оставить три попытки повтора запроса. Возражений не было.",
        "Составьте вежливый ответ клиенту. {name} жалуется, что заказ пришёл повреждённым, и просит связаться по "
        "телефону {phone}.",
    ],
    "tr": [
        "Merhaba, ben {name}. Cep telefonum {phone}, e-posta adresim {email}. Ödemeyi IBAN {iban} hesabına "
        "yapabilirsiniz; kredi kartı numaram {card}.",
        "Toplantı özeti: üç aylık yol haritasını inceledik, veritabanı geçişini bir sonraki sprinte erteledik ve "
        "yeniden deneme sayısını üçte bıraktık.",
        "Lütfen aşağıdaki şikâyeti iki cümleyle özetleyin. Müşteri {name} siparişin iki kez geciktiğini ve "
        "{phone} numaralı hattın hiç cevap vermediğini söylüyor.",
    ],
}

CODE = [
    'def fetch_user(client, user_id: int) -> dict:\n    """Load one user and its open orders."""\n'
    '    resp = client.get(f"/users/{{user_id}}", timeout=5)\n    resp.raise_for_status()\n'
    '    return {{"user": resp.json(), "orders": [o for o in resp.json()["orders"] if o["open"]]}}\n',
    'OPENAI_API_KEY = "{secret}"\nDATABASE_URL = "postgres://app:{password}@db.internal:5432/app"\n'
    'client = OpenAI(api_key=OPENAI_API_KEY, timeout=30)\n',
    '{{\n  "service": "billing",\n  "replicas": 3,\n  "upstream": "http://10.{a}.{b}.17:8080",\n'
    '  "token": "{secret}",\n  "retries": {{"max": 3, "backoff_ms": 250}}\n}}\n',
    "SELECT o.id, o.total, c.country\n  FROM orders o JOIN customers c ON c.id = o.customer_id\n"
    " WHERE o.created_at >= '2025-01-01' AND o.status IN ('paid', 'shipped')\n ORDER BY o.total DESC LIMIT 50;\n",
    "2025-03-14T09:21:{s:02d}Z INFO http request method=POST path=/v1/chat/completions status=200 "
    "duration_ms={ms} client=192.168.{a}.{b} request_id=req_{rid}\n",
    "for (let i = 0; i < items.length; i++) {{\n  const item = items[i];\n  if (!item.enabled) continue;\n"
    "  total += item.price * item.qty;\n}}\nconsole.log(`total: ${{total.toFixed(2)}}`);\n",
]


def paragraph(rng: random.Random) -> str:
    if rng.random() < 0.3:
        tpl = rng.choice(CODE)
        return "```\n" + tpl.format(
            secret=secret(rng), password="".join(rng.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(14)),
            a=rng.randrange(256), b=rng.randrange(1, 255), s=rng.randrange(60), ms=rng.randrange(3, 900),
            rid="".join(rng.choice("0123456789abcdef") for _ in range(12)),
        ) + "```"
    lang = rng.choice(list(PROSE))
    first, last = rng.choice(NAMES[lang])
    return rng.choice(PROSE[lang]).format(
        name=f"{first} {last}", them="him" if first in ("John", "Michael", "David") else "her",
        phone=phone(rng, lang), email=email(rng, first, last),
        iban=iban(rng, {"az": "AZ", "tr": "TR"}.get(lang, "DE")), card=luhn_card(rng),
    )


def mixed_text(n_bytes: int, seed: int) -> str:
    """Paragraphs until n_bytes of UTF-8, cut at the last whitespace before the limit."""
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    while size < n_bytes:
        p = paragraph(rng)
        parts.append(p)
        size += len(p.encode()) + 2
    text = "\n\n".join(parts)
    raw = text.encode()[:n_bytes].decode("utf-8", "ignore")
    cut = max(raw.rfind(" "), raw.rfind("\n"))
    return raw[:cut] if cut > n_bytes // 2 else raw


SHORT = {
    "en": ["Translate this to French: the meeting is moved to Thursday.", "Call me at {phone} after six.",
           "Write a haiku about autumn rain.", "Send the report to {email} please.",
           "What is the capital of Australia?", "{name} will join the call tomorrow.",
           "Explain recursion to a ten year old.", "Refund to card {card}, thanks."],
    "az": ["Bu mətni ingilis dilinə tərcümə et.", "Mənə {phone} nömrəsinə zəng edin.",
           "Hesabatı {email} ünvanına göndərin.", "Sabah hava necə olacaq?", "{name} sabah iclasda olacaq.",
           "IBAN: {iban}"],
    "ru": ["Переведи текст на английский язык.", "Позвоните мне по телефону {phone}.",
           "Напиши письмо {name} о переносе встречи.", "Какая сегодня погода в Москве?",
           "Мой e-mail: {email}"],
    "tr": ["Bu metni İngilizceye çevir.", "Beni {phone} numarasından arayın.", "Bana kısa bir şiir yaz.",
           "Faturayı {email} adresine gönderin.", "{name} yarın toplantıya katılacak."],
}


def short_lines(n: int, seed: int) -> list[str]:
    """n JSON Lines {"id","text"} with texts of 30-200 characters, about half with personal data."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        lang = rng.choice(list(SHORT))
        target = rng.randint(30, 200)
        bits: list[str] = []
        while sum(len(b) + 1 for b in bits) < target:
            first, last = rng.choice(NAMES[lang])
            bits.append(rng.choice(SHORT[lang]).format(
                phone=phone(rng, lang), email=email(rng, first, last), name=f"{first} {last}",
                card=luhn_card(rng), iban=iban(rng, {"az": "AZ", "tr": "TR"}.get(lang, "DE"))))
        text = " ".join(bits)
        if len(text) > 200:
            text = text[:200].rsplit(" ", 1)[0]
        if len(text) < 30:
            text = (text + " " + rng.choice(SHORT["en"]).split("{")[0])[:200]
        out.append(json.dumps({"id": i, "text": text}, ensure_ascii=False))
    return out


# the gateway prompts: ~1 KB each; the first has values the default policy pseudonymises
# (PERSON, EMAIL, PHONE: no IBAN/card, which would raise the level and exclude the cloud deployment)
PII_PROMPT = (
    "Please draft a short, polite reply to the customer message below. Keep it under 120 words, thank the "
    "customer, apologise for the delay and promise an update by Friday.\n\n"
    "--- customer message {{N}} ---\n"
    "Hello, my name is John Smith and I ordered a standing desk three weeks ago (order 55-A). The tracking page "
    "has not changed since Monday and nobody answered when I called your hotline. You can reach me on my mobile "
    "+1 (415) 555-0142 or by e-mail at john.smith@example.com. My colleague Emily Carter ordered the same desk "
    "and got hers in four days, so I do not understand what happened with mine. If it cannot be delivered this "
    "week I would like to cancel. Her address for the second desk is the office one; you can also write to her "
    "at emily.carter@example.org. The desk is the oak model with the memory keypad, and the delivery slot I "
    "booked was in the morning, so somebody stayed at home for nothing. Thank you for sorting this out.\n"
    "--- end ---\n\n"
    "Answer in English, in plain text, no bullet points, and do not repeat the order number."
)
CLEAN_PROMPT = (
    "Please draft a short, polite reply to the customer message below. Keep it under 120 words, thank the "
    "customer, apologise for the delay and promise an update by Friday.\n\n"
    "--- customer message {{N}} ---\n"
    "Hello, I ordered a standing desk three weeks ago. The tracking page has not changed since Monday and nobody "
    "answered when I called your hotline last week. A friend of mine ordered the same desk from your shop and "
    "got hers in four days, so I do not understand what happened with mine. The box was supposed to come with "
    "the cable tray and the anti-fatigue mat that were advertised on the product page. If it cannot be "
    "delivered this week I would like to cancel the order and get my money back, otherwise please let me know "
    "the new date. I would also like to know whether the mat is still included, and whether the cable tray "
    "can be sent separately if the desk itself is delayed again. Thank you for sorting this out.\n"
    "--- end ---\n\n"
    "Answer in English, in plain text, no bullet points, and do not repeat anything personal."
)


# --------------------------------------------------------------------------------------------
# Naive baseline: one regex per entity type, run one after another
# --------------------------------------------------------------------------------------------

NAIVE_PATTERNS: list[tuple[str, str]] = [
    ("EMAIL", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    ("PHONE", r"(?:\+\d{1,3}[\s.-]?)?\(?\d{2,4}\)?[\s.-]?\d{2,4}[\s.-]?\d{2,4}(?:[\s.-]?\d{2,4})?"),
    ("CREDIT_CARD", r"\b(?:\d[ -]?){13,19}\b"),
    ("IBAN", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"),
    ("IPV4", r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"),
    ("IPV6", r"\b(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{1,4}\b"),
    ("US_SSN", r"\b\d{3}-\d{2}-\d{4}\b"),
    ("TR_TCKN", r"\b[1-9]\d{10}\b"),
    ("RU_INN", r"\b\d{10}(?:\d{2})?\b"),
    ("RU_SNILS", r"\b\d{3}-\d{3}-\d{3}[ -]\d{2}\b"),
    ("AZ_FIN", r"\b[0-9A-Z]{7}\b"),
    ("AZ_ID_CARD", r"\b(?:AA\d{7}|AZE\d{8})\b"),
    ("PASSPORT", r"\b[A-Z]{1,2}\d{6,9}\b"),
    ("DATE", r"\b\d{1,2}[./-]\d{1,2}[./-]\d{2,4}\b"),
    ("API_KEY", r"\b(?:sk-[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36}|xox[baprs]-[A-Za-z0-9-]{10,})"),
    ("JWT_PEM", r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+|-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    ("PERSON", r"\b[A-ZÀ-ÖØ-ÞƏİŞÇĞÜÖА-ЯЁ][a-zß-öø-ÿəışçğüöа-яё]+ [A-ZÀ-ÖØ-ÞƏİŞÇĞÜÖА-ЯЁ][a-zß-öø-ÿəışçğüöа-яё]+\b"),
]
NAIVE = [(name, re.compile(p)) for name, p in NAIVE_PATTERNS]


def naive_scan(text: str) -> list[tuple[str, int, int]]:
    found = []
    for name, rx in NAIVE:
        for m in rx.finditer(text):
            found.append((name, m.start(), m.end()))
    return found


# --------------------------------------------------------------------------------------------
# Timing helpers
# --------------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def time_calls(fn, arg, n: int, max_s: float, min_n: int = 5) -> list[float]:
    """Seconds per call, n calls at most and about max_s seconds (at least min_n calls)."""
    out = []
    stop = time.monotonic() + max_s
    for _ in range(n):
        t0 = time.perf_counter()
        fn(arg)
        out.append(time.perf_counter() - t0)
        if len(out) >= min_n and time.monotonic() > stop:
            break
    return out


def summarise(samples: list[float], round_medians: list[float], n_bytes: int, n_chars: int) -> dict:
    med = statistics.median(samples)
    return {
        "bytes": n_bytes, "chars": n_chars, "calls": len(samples),
        "median_ms": round(med * 1e3, 4), "p90_ms": round(pct(samples, 0.9) * 1e3, 4),
        "min_ms": round(min(samples) * 1e3, 4),
        "round_medians_ms": [round(x * 1e3, 4) for x in round_medians],
        "us_per_kb": round(med * 1e6 / (n_bytes / 1024), 2),
    }


# --------------------------------------------------------------------------------------------
# 1-2. detector and naive baseline, in this process
# --------------------------------------------------------------------------------------------


def bench_detector(quick: bool, rounds: int) -> dict:
    from tiergate.privacy.detector import default_detector

    det = default_detector()
    texts = {label: mixed_text(n, seed=1000 + n) for label, n in SIZES}
    texts["16 KB"] = mixed_text(16 * 1024, seed=1000 + 16 * 1024)
    det.scan(texts["10 KB"])  # build lazily-loaded tables before timing
    # calls per size per round, and a time cap per size per round
    plan = {"1 KB": (2000, 1.5), "10 KB": (400, 1.5), "16 KB": (250, 1.5), "100 KB": (40, 2.0), "1 MB": (6, 3.0)}
    if quick:
        plan = {k: (max(3, n // 8), t / 4) for k, (n, t) in plan.items()}
    det_samples: dict[str, list[float]] = {k: [] for k in plan}
    det_rounds: dict[str, list[float]] = {k: [] for k in plan}
    naive_samples: dict[str, list[float]] = {"10 KB": [], "16 KB": []}
    naive_rounds: dict[str, list[float]] = {"10 KB": [], "16 KB": []}
    for r in range(rounds):
        for label in plan:
            n, cap = plan[label]
            s = time_calls(det.scan, texts[label], n, cap)
            det_samples[label] += s
            det_rounds[label].append(statistics.median(s))
            if label in naive_samples:
                s = time_calls(naive_scan, texts[label], n, cap)
                naive_samples[label] += s
                naive_rounds[label].append(statistics.median(s))
        log(f"detector round {r + 1}/{rounds}: " + ", ".join(
            f"{k} {1e3 * det_rounds[k][-1]:.3f} ms" for k in plan))
    out: dict = {"sizes": {}, "naive": {}}
    for label in plan:
        t = texts[label]
        found = det.scan(t)
        counts: dict[str, int] = {}
        for e in found:
            counts[e.type] = counts.get(e.type, 0) + 1
        row = summarise(det_samples[label], det_rounds[label], len(t.encode()), len(t))
        row["entities"] = len(found)
        row["entity_counts"] = dict(sorted(counts.items()))
        out["sizes"][label] = row
    for label in naive_samples:
        t = texts[label]
        row = summarise(naive_samples[label], naive_rounds[label], len(t.encode()), len(t))
        row["matches"] = len(naive_scan(t))
        row["detector_median_ms"] = out["sizes"][label]["median_ms"]
        row["naive_over_detector"] = round(row["median_ms"] / out["sizes"][label]["median_ms"], 2)
        out["naive"][label] = row
    out["naive"]["patterns"] = len(NAIVE)
    base = out["sizes"]["10 KB"]["us_per_kb"]
    for label in out["sizes"]:
        out["sizes"][label]["per_kb_vs_10kb"] = round(out["sizes"][label]["us_per_kb"] / base, 2)
    return out


# --------------------------------------------------------------------------------------------
# 3. the CLI
# --------------------------------------------------------------------------------------------


def _run_cli(infile: Path | None, outfile: Path, timeout: float) -> float:
    stdin = open(infile, "rb") if infile else subprocess.DEVNULL
    try:
        with open(outfile, "wb") as out:
            t0 = time.perf_counter()
            r = subprocess.run([str(TIERGATE_BIN), "privacy", "scan"], stdin=stdin, stdout=out,
                               stderr=subprocess.PIPE, timeout=timeout, cwd=str(PWORK))
            secs = time.perf_counter() - t0
    finally:
        if infile:
            stdin.close()
    if r.returncode != 0:
        raise RuntimeError(f"tiergate privacy scan exited {r.returncode}: {r.stderr.decode()[-1000:]}")
    return secs


def bench_cli(quick: bool, runs: int, n_lines: int) -> dict:
    PWORK.mkdir(parents=True, exist_ok=True)
    lines = short_lines(n_lines, seed=4)
    infile, one = PWORK / "short.jsonl", PWORK / "one.jsonl"
    infile.write_text("\n".join(lines) + "\n", encoding="utf-8")
    one.write_text(lines[0] + "\n", encoding="utf-8")
    outfile = PWORK / "short.out.jsonl"
    lengths = [len(json.loads(x)["text"]) for x in lines]
    startup_empty = [_run_cli(None, PWORK / "empty.out", 60) for _ in range(3)]
    startup_one = [_run_cli(one, PWORK / "one.out", 60) for _ in range(3)]
    walls = []
    for i in range(runs):
        walls.append(_run_cli(infile, outfile, 300))
        log(f"cli run {i + 1}/{runs}: {n_lines:,} lines in {walls[-1]:.2f} s = {n_lines / walls[-1]:,.0f} lines/s")
    outs = outfile.read_text(encoding="utf-8").splitlines()
    errors = sum(1 for x in outs if '"error"' in x)
    with_entities = sum(1 for x in outs if '"entities":[]' not in x)
    wall = statistics.median(walls)
    start = statistics.median(startup_one)
    return {
        "lines": n_lines, "runs": runs, "input_bytes": infile.stat().st_size,
        "text_chars_min": min(lengths), "text_chars_median": statistics.median(lengths), "text_chars_max": max(lengths),
        "wall_s": [round(w, 3) for w in walls], "wall_median_s": round(wall, 3),
        "lines_per_s": round(n_lines / wall, 0),
        "startup_empty_input_s": round(statistics.median(startup_empty), 3),
        "startup_one_line_s": round(start, 3),
        "lines_per_s_after_startup": round(n_lines / max(1e-9, wall - start), 0),
        "output_lines": len(outs), "output_errors": errors, "lines_with_entities": with_entities,
        "command": ".venv/bin/tiergate privacy scan < short.jsonl > short.out.jsonl",
    }


# --------------------------------------------------------------------------------------------
# 4. the gateway, detection on vs off
# --------------------------------------------------------------------------------------------


def load_run_module():
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


GATEWAY_CONFIG = """# generated by bench/privacy_speed.py: the same as bench/tiergate-bench.yaml's fast JSON
# deployment, but at location cloud (pseudonymisation applies there), plus a capture upstream used
# only to verify what the upstream receives. The two runs differ only in privacy.detection.
server: {{host: 127.0.0.1, port: 8100, master_key: env:TIERGATE_MASTER_KEY}}
store: {{url: "sqlite:///bench/.work/{label}.db"}}
privacy: {{default_level: PUBLIC{detection}}}
deployments:
  - {{name: upstream-json, provider: openai, base_url: "http://127.0.0.1:NGINX_PORT/json/v1", model: bench-model, location: cloud, residency: eu, timeout_s: 30, price: {{input: 0.1, output: 0.2}}}}
  - {{name: upstream-capture, provider: openai, base_url: "http://127.0.0.1:{capture}/v1", model: bench-model, location: cloud, residency: eu, timeout_s: 30, price: {{input: 0.1, output: 0.2}}}}
model_groups:
  bench: [upstream-json]
  bench-capture: [upstream-capture]
"""


class Capture:
    """A tiny upstream that records the last request body and answers with its last user message."""

    def __init__(self) -> None:
        cap = self
        self.last: dict | None = None

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                cap.last = body
                content = body["messages"][-1]["content"]
                out = json.dumps({
                    "id": "chatcmpl-capture", "object": "chat.completion", "created": 1700000000, "model": "bench-model",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def chat_body(model: str, content: str) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "system", "content": "You are a helpful support agent."},
                                                    {"role": "user", "content": content}],
                       "max_tokens": 200, "stream": False}, ensure_ascii=False, separators=(",", ":")).encode()


PII_VALUES = ["John Smith", "Emily Carter", "+1 (415) 555-0142", "john.smith@example.com", "emily.carter@example.org"]


def verify_gateway(R, t, on: bool, cap: Capture) -> dict:
    """Both prompts through the fixture (answer + x-tiergate-transform) and the PII one through the
    capture upstream (what the upstream saw, and that the answer is restored)."""
    hdrs = {"Content-Type": "application/json", "Authorization": f"Bearer {R.MASTER_KEY}"}
    res: dict = {}
    for name, prompt in (("pii", PII_PROMPT), ("clean", CLEAN_PROMPT)):
        st, rh, data = R.http_request(t.port, "POST", "/v1/chat/completions", chat_body("bench", prompt), hdrs, timeout=30)
        if st != 200 or json.loads(data)["choices"][0]["message"]["content"] != R.FIXTURE_TEXT:
            raise RuntimeError(f"{t.name} {name}: HTTP {st}: {data[:300]!r}")
        want = "pseudonymize" if (on and name == "pii") else "none"
        got = rh.get("x-tiergate-transform")
        if got != want:
            raise RuntimeError(f"{t.name} {name}: x-tiergate-transform is {got!r}, expected {want!r}")
        res[name] = {"transform": got, "privacy": rh.get("x-tiergate-privacy"), "overhead_ms": rh.get("x-tiergate-overhead-ms")}
    st, rh, data = R.http_request(t.port, "POST", "/v1/chat/completions", chat_body("bench-capture", PII_PROMPT), hdrs, timeout=30)
    if st != 200:
        raise RuntimeError(f"{t.name} capture: HTTP {st}: {data[:300]!r}")
    seen = cap.last["messages"][-1]["content"]
    answer = json.loads(data)["choices"][0]["message"]["content"]
    leaked = [v for v in PII_VALUES if v in seen]
    placeholders = sorted(set(re.findall(r"\[[A-Z_]+_\d+\]", seen)))
    if on and (leaked or not placeholders):
        raise RuntimeError(f"{t.name}: upstream saw {leaked} unchanged / no placeholders: {seen[:400]!r}")
    if not on and (len(leaked) != len(PII_VALUES) or placeholders):
        raise RuntimeError(f"{t.name}: with detection off the upstream should see the prompt unchanged")
    if answer != PII_PROMPT:
        raise RuntimeError(f"{t.name}: the answer was not restored to the original: {answer[:300]!r}")
    res["upstream_saw_values"] = len(leaked)
    res["upstream_placeholders"] = placeholders
    res["answer_restored"] = True
    return res


WRK_LUA = """-- generated by bench/privacy_speed.py: bench/wrk/chat.lua with the body read from BENCH_BODY_FILE
-- Every request's prompt is unique (a counter replaces "{{{{N}}}}"), so no cache anywhere can
-- serve a repeated text: each request pays the full detection cost, as real traffic does.
dofile("{chat}")
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
local template = f:read("*a")
f:close()
wrk.body = template
local n = 0
local salt = tostring({{}}):sub(8)  -- a table's address: differs between wrk's per-thread Lua states
request = function()
  n = n + 1
  local body = template:gsub("{{{{N}}}}", salt .. "-" .. tostring(n), 1)
  return wrk.format(nil, nil, nil, body)
end
"""


def bench_gateway(quick: bool, rounds: int, duration: float, warmup: float, conns_list: list[int],
                  wait_quiet_s: float) -> dict:
    R = load_run_module()
    for d in (WORK, R.LOGS, PWORK):
        d.mkdir(parents=True, exist_ok=True)
    import shutil
    if not (shutil.which("nginx") and shutil.which("wrk") and R.ECHO_MODULE.exists()):
        raise RuntimeError("nginx, its echo module and wrk are needed (bench/run.sh installs them)")
    lua = PWORK / "chat_body.lua"
    lua.write_text(WRK_LUA.format(chat=BENCH / "wrk" / "chat.lua"))
    bodies = {}
    for name, prompt in (("pii", PII_PROMPT), ("clean", CLEAN_PROMPT)):
        bodies[name] = PWORK / f"body-{name}.json"
        bodies[name].write_bytes(chat_body("bench", prompt))

    from tiergate.privacy.detector import default_detector

    det = default_detector()
    prompt_info = {}
    for name, prompt in (("pii", PII_PROMPT), ("clean", CLEAN_PROMPT)):
        prompt_info[name] = {"chars": len(prompt), "bytes": len(prompt.encode()),
                             "body_bytes": bodies[name].stat().st_size,
                             "entities": [f"{e.type}:{prompt[e.start:e.end]}" for e in det.scan(prompt)]}
        log(f"gateway prompt {name}: {prompt_info[name]['bytes']} bytes, entities {prompt_info[name]['entities']}")

    results: dict = {"prompts": prompt_info, "cells": [], "verify": {}}
    cap = Capture()
    direct = R.start_fixture_nginx("nginx-privacy")
    nginx, nginx_port = direct.proc, direct.port
    gws = {}
    try:
        R.wait_healthy(direct, 10)
        for mode, det_cfg in (("on", ""), ("off", ", detection: false")):
            label = f"tiergate-privacy-{mode}"
            cfg = GATEWAY_CONFIG.format(label=label, detection=det_cfg, capture=cap.port)
            t = R.Tiergate(nginx_port, config_text=cfg, label=label)
            t.port = R.free_port()
            t.proc = t.start()
            results.setdefault("startup_s", {})[mode] = round(R.wait_healthy(t, 60), 2)
            results["verify"][mode] = verify_gateway(R, t, mode == "on", cap)
            log(f"{label} on 127.0.0.1:{t.port} (pid {t.proc.pid}) verified: {json.dumps(results['verify'][mode])}")
            gws[mode] = t
        roots = [nginx.pid] + [t.proc.pid for t in gws.values()]
        for r in range(rounds):
            for conns in conns_list:
                for prompt in ("pii", "clean"):
                    order = ("on", "off") if (r + conns_list.index(conns)) % 2 == 0 else ("off", "on")
                    for mode in order:
                        t = gws[mode]
                        R.wait_quiet(wait_quiet_s, roots, f"{mode} {prompt} c={conns}")
                        c = R.measure_cell(t, "json", conns, duration, warmup, script=lua,
                                           extra_env={"BENCH_BODY_FILE": str(bodies[prompt])})
                        c.update(mode=mode, prompt=prompt, round=r + 1)
                        results["cells"].append(c)
                        dist = f", other CPU {c['other_cpu_pct']}%" if c.get("disturbed") else ""
                        log(f"round {r + 1} detection {mode:3s} {prompt:5s} c={conns:<3d} {c['rps']:>8.1f} req/s  "
                            f"p50 {c['p50_ms']:.2f} ms  p99 {c['p99_ms']:.2f} ms  {c.get('cpu_ms_per_req')} ms CPU/req  "
                            f"errors {c['errors']}{dist}")
        for mode, t in gws.items():
            results.setdefault("mem_after_mb", {})[mode] = R.memory_mb(t.proc.pid)
    finally:
        for t in gws.values():
            if t.proc:
                R.stop_process(t.proc)
        R.stop_process(nginx)
        cap.close()

    summary = []
    for conns in conns_list:
        for prompt in ("pii", "clean"):
            row: dict = {"prompt": prompt, "connections": conns}
            for mode in ("on", "off"):
                cs = [c for c in results["cells"] if c["mode"] == mode and c["prompt"] == prompt and c["connections"] == conns]
                if not cs:
                    continue
                for key in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_req"):
                    vals = [c[key] for c in cs if c.get(key) is not None]
                    row[f"{key}_{mode}"] = round(statistics.median(vals), 3) if vals else None
                row[f"errors_{mode}"] = sum(c["errors"] for c in cs)
                row[f"disturbed_{mode}"] = sum(1 for c in cs if c.get("disturbed"))
                row[f"rps_{mode}_runs"] = [c["rps"] for c in cs]
            if row.get("rps_on") and row.get("rps_off"):
                row["rps_ratio"] = round(row["rps_on"] / row["rps_off"], 3)
                row["added_p50_ms"] = round(row["p50_ms_on"] - row["p50_ms_off"], 3)
                row["added_p99_ms"] = round(row["p99_ms_on"] - row["p99_ms_off"], 3)
                if row.get("cpu_ms_per_req_on") is not None and row.get("cpu_ms_per_req_off") is not None:
                    row["added_cpu_ms_per_req"] = round(row["cpu_ms_per_req_on"] - row["cpu_ms_per_req_off"], 3)
                    # req/s ratio if the gateway's own CPU were the only limit
                    row["cpu_capacity_ratio"] = round(row["cpu_ms_per_req_off"] / row["cpu_ms_per_req_on"], 3)
            summary.append(row)
    results["summary"] = summary
    results["machine"] = R.machine_info()
    return results


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def f(v, digits: int = 2) -> str:
    if v is None:
        return "—"
    if isinstance(v, (int, float)) and abs(v) >= 1000:
        return f"{v:,.0f}"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def verdicts(res: dict) -> list[dict]:
    out = []
    det = res.get("detector")
    if det:
        out.append({"target": "detector scan, 10 KB mixed text: median ≤ 1 ms",
                    "measured": f"{det['sizes']['10 KB']['median_ms']:.3f} ms",
                    "met": det["sizes"]["10 KB"]["median_ms"] <= TARGETS["scan_10kb_median_ms"]})
        out.append({"target": "detector scan, 1 MB mixed text: median ≤ 100 ms",
                    "measured": f"{det['sizes']['1 MB']['median_ms']:.1f} ms",
                    "met": det["sizes"]["1 MB"]["median_ms"] <= TARGETS["scan_1mb_median_ms"]})
    cli = res.get("cli")
    if cli:
        out.append({"target": "short prompts through `tiergate privacy scan`, one process: ≥ 5,000/s",
                    "measured": f"{cli['lines_per_s']:,.0f}/s (start-up included)",
                    "met": cli["lines_per_s"] >= TARGETS["cli_lines_per_s"] and not cli["output_errors"]})
    gw = res.get("gateway")
    if gw and gw.get("summary"):
        for row in gw["summary"]:
            if row.get("rps_ratio") is None:
                continue
            how = "1 connection, latency-bound" if row["connections"] == 1 else f"{row['connections']} connections"
            out.append({"target": f"gateway req/s with detection ≥ 85 % of without ({row['prompt']} 1 KB prompt, {how})",
                        "measured": f"{100 * row['rps_ratio']:.1f} %",
                        "met": row["rps_ratio"] >= TARGETS["gateway_rps_ratio"]})
    return out


def render(res: dict) -> str:
    s = res["settings"]
    m = res["machine"]
    out = [f"Run {res['date']} on {m['cpu']} ({m['cores']} cores), Python {m['python']}, tiergate {m.get('tiergate')} "
           f"(git {m.get('git')}){' — quick run' if s['quick'] else ''}; load average at start {m['loadavg_at_start']}.",
           ""]
    v = res.get("verdicts") or []
    if v:
        out += ["### Targets", "", "| target | measured | met |", "|---|---:|:---:|"]
        out += [f"| {x['target']} | {x['measured']} | {'yes' if x['met'] else '**no**'} |" for x in v]
        out.append("")
    det = res.get("detector")
    if det:
        out += ["### Detector: `default_detector().scan(text)`", "",
                "| text | chars | entities found | median ms | p90 ms | min ms | µs per KB | per KB vs 10 KB |",
                "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for label, r in det["sizes"].items():
            out.append(f"| {label} | {r['chars']:,} | {r['entities']:,} | {f(r['median_ms'], 3)} | {f(r['p90_ms'], 3)} | "
                       f"{f(r['min_ms'], 3)} | {f(r['us_per_kb'], 1)} | {r['per_kb_vs_10kb']:.2f}× |")
        counts = det["sizes"]["100 KB"]["entity_counts"]
        out += ["", f"Mixed EN/AZ/RU/TR text (UTF-8 bytes; Cyrillic and Azerbaijani letters take 2), ~30 % code blocks "
                    f"(Python/JS/SQL/JSON/log lines, some with API keys and connection-string passwords); what the detector "
                    f"finds in the 100 KB text: {', '.join(f'{k} {n}' for k, n in counts.items())}. "
                    f"{s['detector_rounds']} interleaved rounds; median and p90 over all calls "
                    f"(per-round medians in the JSON).", ""]
        nv = det["naive"]
        out += [f"### Naive baseline: {nv['patterns']} separate regexes, one after another", "",
                "| text | naive median ms | naive matches | detector median ms | naive ÷ detector |", "|---|---:|---:|---:|---:|"]
        for label in ("10 KB", "16 KB"):
            r = nv[label]
            out.append(f"| {label} | {f(r['median_ms'], 3)} | {r['matches']:,} | {f(r['detector_median_ms'], 3)} | "
                       f"{r['naive_over_detector']:.1f}× |")
        out += ["", "One `re.finditer` per type (e-mail, phone, card, IBAN, IPv4, IPv6, SSN, TCKN, INN, SNILS, FIN, "
                    "AZ ID card, passport, date, API keys, JWT/PEM, capitalised name pair), matches collected, no "
                    "checksums or context: faster to write, slower to run and far less precise (its match count "
                    "is mostly false positives).", ""]
    cli = res.get("cli")
    if cli:
        out += ["### `tiergate privacy scan` (JSON Lines, one process)", "",
                "| lines | text chars (min / median / max) | wall s (median) | lines/s | start-up s | lines/s after start-up | lines with entities | errors |",
                "|---:|---|---:|---:|---:|---:|---:|---:|",
                f"| {cli['lines']:,} | {cli['text_chars_min']} / {cli['text_chars_median']:.0f} / {cli['text_chars_max']} | "
                f"{cli['wall_median_s']:.2f} | {cli['lines_per_s']:,.0f} | {cli['startup_one_line_s']:.2f} | "
                f"{cli['lines_per_s_after_startup']:,.0f} | {cli['lines_with_entities']:,} | {cli['output_errors']} |",
                "", f"`{cli['command']}` run {cli['runs']}× (walls {cli['wall_s']} s); lines/s divides by the whole "
                    f"wall time, start-up included. Start-up = the same command on one line (process start, imports, "
                    f"config, detector); on empty input {cli['startup_empty_input_s']:.2f} s.", ""]
    gw = res.get("gateway")
    if gw and gw.get("summary"):
        out += ["### Gateway: detection on vs off (1 KB prompts, fast upstream)", "",
                "| prompt | conns | req/s on | req/s off | on ÷ off | p50 ms on / off | p99 ms on / off | added p50 ms | added p99 ms | CPU ms/req on / off | CPU off ÷ on | errors |",
                "|---|---:|---:|---:|---:|---|---|---:|---:|---|---:|---:|"]
        for row in gw["summary"]:
            if row.get("rps_on") is None or row.get("rps_off") is None:
                continue
            busy = row.get("disturbed_on", 0) + row.get("disturbed_off", 0)
            err = str(row["errors_on"] + row["errors_off"]) + (f" ({busy} busy runs)" if busy else "")
            capacity = f"{100 * row['cpu_capacity_ratio']:.0f} %" if row.get("cpu_capacity_ratio") else "—"
            out.append(
                f"| {row['prompt']} | {row['connections']} | {f(row['rps_on'], 0)} | {f(row['rps_off'], 0)} | "
                f"{100 * row['rps_ratio']:.1f} % | {f(row['p50_ms_on'])} / {f(row['p50_ms_off'])} | "
                f"{f(row['p99_ms_on'])} / {f(row['p99_ms_off'])} | {f(row['added_p50_ms'])} | {f(row['added_p99_ms'])} | "
                f"{f(row.get('cpu_ms_per_req_on'), 3)} / {f(row.get('cpu_ms_per_req_off'), 3)} | {capacity} | {err} |")
        pi = gw["prompts"]
        vo = gw["verify"].get("on", {})
        out += ["", f"Two `tiergate serve --workers 2` processes in front of bench/run.py's nginx JSON fixture, identical "
                    f"config except `privacy: {{detection: false}}` in one (deployment at location `cloud`, so the "
                    f"default policy pseudonymises). Prompts: `pii` = {pi['pii']['bytes']} bytes with "
                    f"{', '.join(pi['pii']['entities'])}; `clean` = {pi['clean']['bytes']} bytes, nothing to find "
                    f"({len(pi['clean']['entities'])} entities). Verified before load: with detection the upstream "
                    f"received {', '.join(vo.get('upstream_placeholders', []))} and none of the values, and the answer "
                    f"echoing them was restored; without, the upstream received the text unchanged. "
                    f"wrk -t1, {s['gateway_duration_s']} s per run after {s['gateway_warmup_s']} s warm-up, "
                    f"{s['gateway_rounds']} rounds with on/off interleaved (order alternating); medians of the rounds "
                    f"(each run in the JSON). Added = on − off at the same percentile; at 50 connections the box "
                    f"(wrk + nginx + 2 workers on 2 cores) is CPU-bound, so CPU ms/req is the steadiest measure of "
                    f"what detection costs per request; `CPU off ÷ on` is the req/s ratio the gateway's own CPU alone would give.", ""]
    return "\n".join(out) + "\n"


def update_readme(md: str) -> None:
    """The figures between the privacy markers of bench/README.md."""
    readme = BENCH / "README.md"
    start, end = "<!-- privacy:results:start -->", "<!-- privacy:results:end -->"
    text = readme.read_text() if readme.exists() else ""
    if start in text and end in text:
        pre, rest = text.split(start, 1)
        _, post = rest.split(end, 1)
        readme.write_text(f"{pre}{start}\n{md}{end}{post}")


def write_results(res: dict, md: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "privacy_speed.json").write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")
    (RESULTS / "privacy_speed.md").write_text("# Privacy engine speed\n\n" + md)
    update_readme(md)
    log("wrote bench/results/privacy_speed.json, privacy_speed.md and the figures in bench/README.md")


def machine_info() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "os": platform.platform(terse=True),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        import tiergate
        info["tiergate"] = getattr(tiergate, "__version__", "?")
    except ImportError:
        pass
    try:
        r = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src/tiergate/privacy"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        info["git"] = r.stdout.strip() + ("+uncommitted privacy/ changes" if dirty else "")
    except Exception:  # noqa: BLE001
        pass
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs for a smoke check (~1.5 min)")
    ap.add_argument("--no-write", action="store_true", help="print only; do not write bench/results/privacy_speed.*")
    ap.add_argument("--only", default="detector,cli,gateway",
                    help="comma list of detector (includes the naive baseline), cli, gateway")
    ap.add_argument("--lines", type=int, help="short lines for the CLI run (default 50,000; quick 10,000)")
    ap.add_argument("--rounds", type=int, help="gateway rounds (default 4, quick 1)")
    ap.add_argument("--duration", type=float, help="seconds per gateway wrk run (default 5, quick 2)")
    ap.add_argument("--connections", default="50,1", help="gateway connection counts")
    ap.add_argument("--wait-quiet", type=float, default=10.0,
                    help="before each gateway run wait up to this long for other processes to go quiet")
    ap.add_argument("--render", action="store_true",
                    help="only re-render privacy_speed.md and the README figures from privacy_speed.json")
    args = ap.parse_args()
    if args.render:
        res = json.loads((RESULTS / "privacy_speed.json").read_text())
        res["verdicts"] = verdicts(res)
        md = render(res)
        print(md)
        write_results(res, md)
        return 0
    parts = {p.strip() for p in args.only.replace("naive", "detector").split(",") if p.strip()}
    bad = parts - {"detector", "cli", "gateway"}
    if bad:
        ap.error(f"unknown parts {sorted(bad)}")
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(130))
    quick = args.quick
    settings = {
        "quick": quick,
        "detector_rounds": 1 if quick else 3,
        "cli_lines": args.lines or (10_000 if quick else 50_000),
        "cli_runs": 1 if quick else 3,
        "gateway_rounds": args.rounds or (1 if quick else 4),
        "gateway_duration_s": args.duration or (2.0 if quick else 5.0),
        "gateway_warmup_s": 1.0,
        "gateway_connections": [int(c) for c in args.connections.split(",")],
        "gateway_workers": 2,
    }
    res: dict = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                 "machine": machine_info(), "settings": settings, "targets": TARGETS}
    t0 = time.monotonic()
    if "detector" in parts:
        log("detector and naive baseline")
        res["detector"] = bench_detector(quick, settings["detector_rounds"])
    if "cli" in parts:
        log(f"tiergate privacy scan on {settings['cli_lines']:,} short lines")
        res["cli"] = bench_cli(quick, settings["cli_runs"], settings["cli_lines"])
    if "gateway" in parts:
        log("gateway, detection on vs off")
        try:
            res["gateway"] = bench_gateway(quick, settings["gateway_rounds"], settings["gateway_duration_s"],
                                           settings["gateway_warmup_s"], settings["gateway_connections"], args.wait_quiet)
            res["machine"]["nginx"] = res["gateway"]["machine"].get("nginx")
            res["machine"]["wrk"] = res["gateway"]["machine"].get("wrk")
        except Exception as e:  # noqa: BLE001
            log(f"gateway part failed: {e}")
            res["gateway"] = {"error": str(e)[:1000]}
    res["elapsed_s"] = round(time.monotonic() - t0, 1)
    res["verdicts"] = verdicts(res)
    md = render(res)
    print()
    print(md)
    if not args.no_write:
        write_results(res, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
