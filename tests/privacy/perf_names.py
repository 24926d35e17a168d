"""Median time of find_people + find_addresses + find_birth_dates on 1 KB, 10 KB and 1 MB prompts.

Not collected by pytest (no `test_` prefix). Run: `.venv/bin/python tests/privacy/perf_names.py`.
Two kinds of text: "typical" (prose in the four languages and code, two names per KB) and "dense"
(a name, an address or a birth date in every ~200 characters: a worst case for the Python-level
work). Each run uses a fresh string so the per-text cache in `names.py` does not help.
"""

from __future__ import annotations

import statistics
import time

from tiergate.privacy.names import find_addresses, find_birth_dates, find_people

_TYPICAL = (
    "Please summarise the following design document and list the open questions for the review. ",
    "The service reads events from the queue, validates them and writes the results to PostgreSQL. ",
    "def handler(event, context):\n    items = [parse(x) for x in event['Records']]\n    return {'ok': True}\n",
    "Bu sənəddə layihənin mərhələləri və risklər təsvir olunur; nəticələri həftəlik göndərin. ",
    "Пожалуйста, проверьте код ниже и исправьте ошибки в функции parse_config(). ",
    "Lütfen aşağıdaki metni özetleyin ve önemli noktaları listeleyin. ",
    "In 2023 we moved 40% of traffic to the new cluster; version 2.10.0 shipped on 12.03.2024. ",
    "Ask Leyla Məmmədova or John Smith if the numbers look wrong. ",
)
_PARAGRAPHS = (
    "Please summarise the following report about our Q3 revenue and explain the main drivers; we "
    "shipped version 2.10.0 to 1200 customers in Baku and Istanbul last quarter. ",
    "Bu gün hesabatı hazırlamaq lazımdır, sonra nəticələri Rəşad Əliyevə göndərin. ",
    "Пожалуйста, проверьте код ниже и исправьте ошибки в функции parse_config(). ",
    "Lütfen aşağıdaki metni özetleyin ve önemli noktaları listeleyin; toplantı 12.03.2024 tarihinde. ",
    "The customer John Smith wrote: my order 4711 arrived late, please call me back. ",
    "def handler(event):\n    return {'status': 200, 'body': event.get('Body')}\n",
    "Müştəri: Leyla Məmmədova, doğum tarixi 12.03.1985, ünvan: Bakı şəhəri, Nizami küç. 12, mənzil 7. ",
    "Иванов Иван Иванович проживает по адресу ул. Ленина, д. 5, кв. 12. ",
)


def _text(size: int, salt: int, paragraphs: tuple[str, ...] = _PARAGRAPHS) -> str:
    base = "".join(paragraphs)
    text = (base * (size // len(base) + 1))[:size]
    return text[:-8] + f" #{salt:06d}"  # a new string object each run


def _median_ms(size: int, runs: int, paragraphs: tuple[str, ...]) -> float:
    times = []
    for i in range(runs):
        text = _text(size, i, paragraphs)
        t0 = time.perf_counter()
        find_people(text)
        find_addresses(text)
        find_birth_dates(text)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    for kind, paragraphs in (("typical", _TYPICAL), ("dense", _PARAGRAPHS)):
        for label, size, runs in (("1 KB", 1024, 500), ("10 KB", 10 * 1024, 200), ("1 MB", 1024 * 1024, 5)):
            ms = _median_ms(size, runs, paragraphs)
            print(f"{kind:>8} {label:>6}: median {ms:.3f} ms (3 finders together)")


if __name__ == "__main__":
    main()
