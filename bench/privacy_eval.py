#!/usr/bin/env python3
"""PII detection quality: tiergate's detector next to Microsoft Presidio's pattern recognizers.

Both run on the same labelled set (tests/privacy/data/pii_eval.jsonl, see build_eval.py there) in
one run and are scored by the same scorer (tiergate.privacy.evaluate: same-type overlap of ≥ 50 %
of the longer span; leak rate = texts whose personal data is not ≥ 50 % covered by any predicted
span). From the repository root:

    .venv/bin/python bench/privacy_eval.py --install    # first time: makes the Presidio venv, then runs
    .venv/bin/python bench/privacy_eval.py              # both; writes bench/results/privacy_eval.{json,md}
    .venv/bin/python bench/privacy_eval.py --no-write   # print only

Presidio lives in its own venv so that none of its dependencies enter tiergate's; `--install` does,
idempotently, what you can also do by hand:

    python3.11 -m venv bench/.work/presidio-venv
    bench/.work/presidio-venv/bin/pip install presidio-analyzer==2.2.366

How Presidio is run. No spaCy model is downloaded or loaded (the set must run offline, and
tiergate's detector does not use one either): this script re-executes itself inside the Presidio
venv (`--presidio-worker`), instantiates Presidio's predefined *pattern* recognizers directly and
calls `recognizer.analyze(text, entities, nlp_artifacts=None)`. Consequences, stated in the
results too:
  * Presidio's PERSON/LOCATION/NRP come from spaCy NER, so Presidio finds no PERSON or ADDRESS here.
  * Context enhancement (raising a score when "card", "SSN"… is nearby) lives in AnalyzerEngine and
    needs NLP artifacts, so scores are the raw pattern scores. Like AnalyzerEngine's default
    (`score_threshold=0`), every returned result counts; a second line applies threshold 0.5.
  * tldextract (used by the e-mail recognizer) is pointed at its bundled suffix list so that it does
    not try to download one.
  * PhoneRecognizer gets AZ, RU and TR added to its default regions, to be fair to the set.
Our types Presidio has no recognizer for count as misses for Presidio (recall 0). Presidio's
results of types we do not have (DATE_TIME, URL, CRYPTO) are ignored for precision/recall but
count, in a separate line, as protection for the leak rate (Presidio would redact them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / ".work"
RESULTS = BENCH / "results"
DATASET = ROOT / "tests" / "privacy" / "data" / "pii_eval.jsonl"
PRESIDIO_PIN = "presidio-analyzer==2.2.366"
PRESIDIO_VENV = WORK / "presidio-venv"
PRESIDIO_PY = PRESIDIO_VENV / "bin" / "python"

#: Presidio entity -> ours. Anything else Presidio returns is kept only for the "all types" leak rate.
PRESIDIO_TO_OURS = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "IP_ADDRESS": "IP_ADDRESS",
    "US_SSN": "US_SSN",
    "US_PASSPORT": "PASSPORT",
    "UK_PASSPORT": "PASSPORT",
    "TR_NATIONAL_ID": "TR_TCKN",
}
#: The recognizers instantiated in the worker (class name, constructor kwargs).
PRESIDIO_RECOGNIZERS: list[tuple[str, dict]] = [
    ("EmailRecognizer", {}),
    ("PhoneRecognizer", {"supported_regions": ("US", "GB", "DE", "FR", "IL", "IN", "CA", "BR", "AZ", "RU", "TR")}),
    ("CreditCardRecognizer", {}),
    ("IbanRecognizer", {}),
    ("IpRecognizer", {}),
    ("UsSsnRecognizer", {}),
    ("UsPassportRecognizer", {}),
    ("UkPassportRecognizer", {}),
    ("TrNationalIdRecognizer", {}),
    ("DateRecognizer", {}),
    ("UrlRecognizer", {}),
    ("CryptoRecognizer", {}),
]
STRONG = 0.5  # the second Presidio line keeps results with at least this score


def log(msg: str) -> None:
    print(f"[privacy-eval {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Worker: runs inside the Presidio venv; stdlib + presidio only (tiergate is not installed there)
# --------------------------------------------------------------------------------------------


def presidio_worker(dataset: Path) -> None:
    """Print {"version", "init_seconds", "seconds", "predictions": {id: [[type, start, end, score]]}}."""
    import tldextract

    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)  # bundled list, no fetch
    from importlib.metadata import version

    import presidio_analyzer.predefined_recognizers as pr

    t0 = time.perf_counter()
    recognizers = [getattr(pr, name)(**kwargs) for name, kwargs in PRESIDIO_RECOGNIZERS]
    init_seconds = time.perf_counter() - t0
    rows = [json.loads(line) for line in dataset.read_text(encoding="utf-8").splitlines() if line.strip()]
    recognizers[0].analyze("warm up a@b.cd", recognizers[0].supported_entities, None)
    predictions: dict[str, list] = {}
    t0 = time.perf_counter()
    for row in rows:
        found = set()
        for rec in recognizers:
            for r in rec.analyze(row["text"], rec.supported_entities, None) or ():
                found.add((r.entity_type, r.start, r.end, round(float(r.score), 3)))
        predictions[row["id"]] = sorted(found, key=lambda f: (f[1], f[2], f[0]))
    seconds = time.perf_counter() - t0
    json.dump({"version": version("presidio-analyzer"), "init_seconds": init_seconds, "seconds": seconds,
               "recognizers": [name for name, _ in PRESIDIO_RECOGNIZERS], "predictions": predictions}, sys.stdout)


# --------------------------------------------------------------------------------------------
# Driver: runs in tiergate's venv
# --------------------------------------------------------------------------------------------


def install_presidio() -> None:
    """Create bench/.work/presidio-venv with the pinned presidio-analyzer (idempotent)."""
    if PRESIDIO_PY.exists():
        r = subprocess.run([str(PRESIDIO_PY), "-c", "import presidio_analyzer"], capture_output=True, timeout=120)
        if r.returncode == 0:
            log(f"Presidio venv present: {PRESIDIO_VENV}")
            return
    WORK.mkdir(parents=True, exist_ok=True)
    log(f"creating {PRESIDIO_VENV} and installing {PRESIDIO_PIN}")
    subprocess.run(["python3.11", "-m", "venv", str(PRESIDIO_VENV)], check=True, timeout=300)
    subprocess.run([str(PRESIDIO_VENV / "bin" / "pip"), "install", "-q", PRESIDIO_PIN], check=True, timeout=1200)


def run_presidio(dataset: Path) -> dict | None:
    if not PRESIDIO_PY.exists():
        log(f"no Presidio venv at {PRESIDIO_VENV} (run with --install): Presidio skipped")
        return None
    env = {**os.environ, "PYTHONNOUSERSITE": "1"}
    r = subprocess.run([str(PRESIDIO_PY), __file__, "--presidio-worker", str(dataset)], capture_output=True,
                       text=True, timeout=1800, env=env)
    if r.returncode != 0:
        log(f"Presidio worker failed:\n{r.stderr[-3000:]}")
        return None
    return json.loads(r.stdout)


def run_tiergate(samples: list) -> dict | None:
    """Our detector's predictions by id and its timing, or None when it does not exist yet."""
    try:
        from tiergate.privacy.detector import default_detector
    except ImportError as exc:
        log(f"tiergate detector not available ({exc}): skipped")
        return None
    t0 = time.perf_counter()
    detector = default_detector()
    init_seconds = time.perf_counter() - t0
    detector.scan("warm up a@b.cd")
    predictions = {}
    t0 = time.perf_counter()
    for s in samples:
        predictions[s.id] = list(detector.scan(s.text))
    return {"init_seconds": init_seconds, "seconds": time.perf_counter() - t0, "predictions": predictions}


def _report(samples: list, predictions: dict, seconds: float):
    from tiergate.privacy.evaluate import score

    by_text = {s.text: predictions[s.id] for s in samples}
    report = score(samples, lambda text: by_text[text])
    report.seconds = seconds
    return report


def presidio_entities(raw: list, *, mapped_only: bool, threshold: float = 0.0) -> list:
    from tiergate.privacy.entities import Entity

    out = []
    for etype, start, end, sc in raw:
        if sc < threshold:
            continue
        ours = PRESIDIO_TO_OURS.get(etype)
        if ours is None and mapped_only:
            continue
        out.append(Entity(ours or f"presidio:{etype}", start, end, sc, "presidio"))
    return out


def uncovered_types() -> tuple[list[str], list[str]]:
    """(our types Presidio has no recognizer for, our types it covers only partly)."""
    from tiergate.privacy.entities import ENTITY_TYPES

    mapped = set(PRESIDIO_TO_OURS.values())
    return [t for t in ENTITY_TYPES if t not in mapped], ["PASSPORT (US and UK formats only)"]


def _f(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def render_markdown(results: dict, reports: dict) -> str:
    from tiergate.privacy.entities import ENTITY_TYPES

    ds = results["dataset"]
    lines = [
        "# PII detection: tiergate vs Presidio (pattern recognizers)", "",
        f"Run {results['when']} on {results['machine']}; set `{ds['path']}`: {ds['texts']} texts "
        f"({ds['by_lang']}), {ds['texts_without_entities']} without any entity, {ds['gold_entities']} entities.",
        f"Presidio: presidio-analyzer {results.get('presidio', {}).get('version', '—')}, recognizers "
        f"{', '.join(results.get('presidio', {}).get('recognizers', [])) or '—'}; no spaCy model, no context "
        "enhancement (see bench/privacy_eval.py).", "",
        "Match: same type, overlap ≥ 50 % of the longer span. Leak rate: share of texts with personal data "
        "where some entity is < 50 % covered by predicted spans of any type (a type confusion still "
        "protects the value, so it is not a leak).", "",
        "## Summary", "",
        "| detector | structured P | structured R | structured F1 | PERSON/ADDRESS/DOB F1 | all F1 | leak rate | texts/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rep in reports.items():
        s, c, a = rep.structured, rep.contextual, rep.overall
        tps = rep.texts_per_second
        lines.append(f"| {name} | {_f(s.precision)} | {_f(s.recall)} | {_f(s.f1)} | {_f(c.f1)} | {_f(a.f1)} | "
                     f"{_f(rep.leak_rate)} | {'—' if tps is None else f'{tps:,.0f}'} |")
    ours = reports.get("tiergate")
    theirs = reports.get("presidio")
    lines += ["", "## Per type", "",
              "| type | gold | tiergate P | R | F1 | Presidio P | R | F1 |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for t in ENTITY_TYPES:
        gold = ds["gold_by_type"].get(t, 0)
        cells = []
        for rep in (ours, theirs):
            c = rep.per_type.get(t) if rep else None
            cells += ["—"] * 3 if c is None else [_f(c.precision), _f(c.recall), _f(c.f1)]
        lines.append(f"| {t} | {gold} | " + " | ".join(cells) + " |")
    missing, partial = uncovered_types()
    lines += ["",
              f"Presidio has no recognizer for: {', '.join(missing)} — they count as misses for Presidio "
              f"(recall 0, no precision). Partly covered: {', '.join(partial)}. Presidio's PERSON needs a spaCy "
              "NER model, which this comparison does not load.",
              f"`presidio (score ≥ {STRONG})` drops Presidio's weak-pattern results; `presidio (+ its other "
              "types)` also counts DATE_TIME/URL/CRYPTO spans as protection for the leak rate only."]
    for key in ("tiergate", "presidio"):
        if results.get(key, {}).get("error"):
            lines.append(f"\n{key}: {results[key]['error']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="tiergate PII detector vs Presidio pattern recognizers")
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--install", action="store_true", help=f"create {PRESIDIO_VENV} with {PRESIDIO_PIN} first")
    parser.add_argument("--no-write", action="store_true", help="print the markdown only")
    parser.add_argument("--presidio-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.presidio_worker:
        presidio_worker(args.presidio_worker)
        return 0
    if args.install:
        install_presidio()

    from collections import Counter

    from tiergate.privacy.evaluate import load_dataset

    samples = load_dataset(args.dataset)
    results: dict = {
        "when": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "dataset": {
            "path": str(args.dataset.resolve().relative_to(ROOT)) if args.dataset.resolve().is_relative_to(ROOT)
            else str(args.dataset),
            "texts": len(samples),
            "by_lang": dict(sorted(Counter(s.lang for s in samples).items())),
            "texts_without_entities": sum(1 for s in samples if not s.entities),
            "gold_entities": sum(len(s.entities) for s in samples),
            "gold_by_type": dict(Counter(e.type for s in samples for e in s.entities)),
        },
        "presidio_missing_types": uncovered_types()[0],
    }
    reports: dict = {}

    ours = run_tiergate(samples)
    if ours is None:
        results["tiergate"] = {"error": "tiergate.privacy.detector.default_detector() not available"}
    else:
        reports["tiergate"] = _report(samples, ours["predictions"], ours["seconds"])
        results["tiergate"] = {"init_seconds": round(ours["init_seconds"], 4), **reports["tiergate"].to_dict()}

    log("running Presidio")
    pres = run_presidio(args.dataset)
    if pres is None:
        results["presidio"] = {"error": "Presidio venv missing or worker failed (see --install)"}
    else:
        raw = pres["predictions"]
        variants = {
            "presidio": {s.id: presidio_entities(raw[s.id], mapped_only=True) for s in samples},
            f"presidio (score ≥ {STRONG})": {s.id: presidio_entities(raw[s.id], mapped_only=True, threshold=STRONG)
                                             for s in samples},
            "presidio (+ its other types)": {s.id: presidio_entities(raw[s.id], mapped_only=False) for s in samples},
        }
        for name, preds in variants.items():
            reports[name] = _report(samples, preds, pres["seconds"])
        results["presidio"] = {"version": pres["version"], "recognizers": pres["recognizers"],
                               "init_seconds": round(pres["init_seconds"], 4), "mapping": PRESIDIO_TO_OURS,
                               **reports["presidio"].to_dict(),
                               "variants": {k: reports[k].to_dict() for k in variants if k != "presidio"}}

    md = render_markdown(results, reports)
    print(md)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "privacy_eval.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n",
                                                   encoding="utf-8")
        (RESULTS / "privacy_eval.md").write_text(md, encoding="utf-8")
        log(f"wrote {RESULTS / 'privacy_eval.json'} and {RESULTS / 'privacy_eval.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
