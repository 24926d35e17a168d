"""Timing probe for the detector (not collected by pytest): `python tests/privacy/perf_probe.py`.

Prints the median scan time of 1 KB, 10 KB and 1 MB of mixed English/Azerbaijani/Russian/
Turkish text (support tickets, bank and health notes, code with a key, a few identifiers per
kilobyte, plenty of harmless numbers) and how many short prompts one process scans per second.
Every timed scan gets a fresh string, so no per-text cache can make a repeat free. The machine
may be shared: run it a few times and compare medians.
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time

from tiergate.privacy.detector import Detector, default_detector
from tiergate.privacy.entities import STRUCTURED_TYPES

PARAGRAPHS = (
    "Hello, I ordered 3 items on 15.03.2024 (order #48213, total $1,249.99) and the tracking page "
    "still shows version 2.10.0 of the app. Could you check? My phone is +994 50 123 45 67.",
    "Salam, 2024-cü ilin mart ayında kartımdan 250,00 AZN çıxılıb, amma sifariş 00123 gəlməyib. "
    "Zəhmət olmasa yoxlayın, e-poçt ünvanım aysel.mammadova@example.az, FİN kodum 5ZJ8K2L.",
    "Здравствуйте! Прошу вернуть 1 500 руб. за заказ № 7781 от 12.02.2024, оплата прошла в 10:45. "
    "Мой ИНН 7707083893, телефон 8 (912) 345-67-89. Спасибо за помощь и хорошего дня.",
    "Merhaba, 3 adet ürün için 1.250,00 TL ödedim ama sipariş numarası 556677 hâlâ kargoda görünüyor. "
    "Fatura adresimi güncelleyebilir misiniz? İyi çalışmalar dilerim, teşekkürler.",
    "The farm reported 120 hectares of wheat, 35 tonnes of barley and rainfall of 42 mm in April; "
    "the agronomist recommends 2 treatments per season and a soil test every 3 years.",
    "Pasiyentin təzyiqi 120/80, nəbzi 72 vurğu/dəqiqə, temperaturu 36.6 dərəcədir. Həkim 5 gün "
    "ərzində gündə 2 dəfə 500 mg dərman qəbul etməyi tövsiyə edir. Növbəti müayinə 3 həftə sonradır.",
    "def handler(event):\n    client = Client(timeout=30, retries=3)\n    return client.get('/v1/items', "
    "params={'limit': 100, 'offset': 0})\n# deploy 2024-05-01T12:00:00Z build 1.4.2\n",
    "Banka havalesi için IBAN TR33 0006 1005 1978 6457 8413 26 kullanılabilir; işlem 2 iş günü sürer. "
    "Hesap sahibi bilgileri ve dekont e-posta ile gönderilecektir, lütfen bekleyiniz.",
    "Отчёт за квартал: выручка выросла на 12,5%, расходы снизились на 3,2%, средний чек 2 340 руб., "
    "количество клиентов 18 204. Следующее собрание назначено на 10:00 пятницы.",
    "Config: OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z and the database at "
    "postgres://app:Qw3rty!2024@db.internal:5432/prod should not be pasted into chats.",
)


def make_text(size: int) -> str:
    parts: list[str] = []
    total = 0
    for paragraph in itertools.cycle(PARAGRAPHS):
        parts.append(paragraph)
        total += len(paragraph) + 2
        if total >= size:
            break
    return "\n\n".join(parts)[:size]


def fresh_copies(text: str, count: int) -> list[str]:
    """Distinct string objects with distinct content (the last characters vary): the name
    finders keep the analysis of the last text they saw, so scanning one string again would
    time a cache hit, not a scan."""
    tail = 7
    return [text[:-tail] + f" {i:06d}" for i in range(count)]


def median_seconds(detector: Detector, text: str, repeat: int) -> float:
    texts = fresh_copies(text, repeat + 1)
    detector.scan(texts[-1])
    times = []
    for copy in texts[:repeat]:
        t0 = time.perf_counter()
        detector.scan(copy)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def short_prompt_rate(detector: Detector, seconds: float = 1.0) -> float:
    prompts = [p[:160] for p in PARAGRAPHS] + ["What is the capital of Azerbaijan?", "Salam, necəsən?"]
    count = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for prompt in prompts:  # consecutive prompts differ, so no cached analysis is reused
            detector.scan(prompt)
        count += len(prompts)
    return count / (time.perf_counter() - t0)


def main() -> None:
    detectors = (("structured types", Detector(types=STRUCTURED_TYPES)), ("all types (default)", default_detector()))
    for name, detector in detectors:
        print(name)
        for label, size, repeat in (("1 KB", 1024, 2000), ("10 KB", 10 * 1024, 300), ("1 MB", 1024 * 1024, 7)):
            text = make_text(size)
            found = len(detector.scan(text))
            print(f"  {label:>6}: median {median_seconds(detector, text, repeat) * 1000:8.3f} ms  ({found} entities)")
        print(f"  short prompts: {short_prompt_rate(detector):,.0f} per second")


if __name__ == "__main__":
    sys.exit(main())
