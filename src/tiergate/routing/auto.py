"""auto_route's classifier: how complex a chat request is, and what domain it belongs to.

No model, no network: a handful of precompiled regexes over the last user turn (lower-cased
once), cue lists in English, Azerbaijani, Russian and Turkish, and literal pre-checks that skip
whole feature families when their trigger characters are absent. Microseconds for short prompts,
well under a millisecond for 4 KB (`bench/routing_micro.py`).

Complexity is a transparent weighted sum, clipped to 0..1 (every term is in `features` as
`w_<name>` so `explain` shows where the score came from):

    length      0.30 * log2(1 + tokens/20) / log2(1 + 2000/20)   (last user turn, capped at 1)
                ~0.03 for a greeting, ~0.12 for 100 tokens, ~0.30 at 2,000 tokens
    reasoning   0.35 for the first multi-step cue ("step by step", "prove", "compare", "izah et",
                "пошагово", "adım adım", ...), +0.15 per further distinct cue, at most 0.60
    code        0.20 for a fenced block, 0.08 for inline code or 3+ code-syntax hits, 0.05 for
                code words ("bug", "python", "код", "kod"), at most 0.25
    math        0.12 for LaTeX / math symbols, 0.08 for arithmetic formulas, 0.06 for math words,
                at most 0.20
    questions   0.05 per question mark after the first, at most 0.15
    parts       0.03 per numbered / bulleted item, at most 0.12 (multi-part instructions)
    turns       0.02 per earlier user turn, at most 0.08 (a long conversation carries context)
    tools       0.10 if the request offers tools; response_format json_schema 0.05

Domain: each domain gets evidence points -- translation cues 5 each (an explicit instruction
outranks the material it is about), creative cues 2, analysis cues 1.5; code: a fenced block 3
(at most 2), inline code 1 (at most 2), code syntax 0.5 (at most 3 hits), code words 2; math:
LaTeX/symbols 2 (at most 2), formulas 1 (at most 2), math words 1. The highest at or above 2
wins (ties go in DOMAINS order), else `general`. `task_class` is
`"<domain>:<simple|medium|complex>"` with the thresholds of `AutoRouteConfig` (the learned
strategy keys its statistics by it).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..config.models import AutoRouteConfig

_DEFAULT = AutoRouteConfig()

# ----------------------------------------------------------------------------- cue lists
# A cue is a word stem matched at a word start ("объясни" matches "объясните"), a whole word when
# it ends in "$" ("plan$" does not match "planet"), or a phrase (contains a space or hyphen; found
# in the text once a word of the text starts with the phrase's first word).
_CUES: dict[str, tuple[str, ...]] = {
    "reasoning": (
        # English
        "step by step", "step-by-step", "explain why", "explain how", "compar", "contrast", "analys",
        "analyz", "prove$", "proof", "derive", "derivation", "plan$", "planning$", "design$", "evaluat",
        "trade-off", "tradeoff", "pros and cons", "justify", "walk me through", "in detail", "debug",
        "code review", "review this", "review my", "review the", "refactor", "optimiz", "optimis",
        "architect",
        # Azerbaijani
        "addım-addım", "addım addım", "izah et", "izah ed", "müqayisə", "təhlil", "sübut et", "sübut ed",
        "əsaslandır", "planlaşdır", "plan qur", "ətraflı", "dəyərləndir",
        # Russian
        "пошагов", "шаг за шагом", "объясни", "сравни", "проанализ", "анализ", "докаж", "доказа",
        "обоснуй", "спланиру", "составь план", "разработай", "подробно", "оцени",
        # Turkish
        "adım adım", "adım-adım", "açıkla", "karşılaştır", "analiz", "kanıtla", "ispatla", "planla",
        "tasarla", "değerlendir", "ayrıntılı",
    ),
    "translation": ("translat", "tərcümə", "перевед", "перевест", "перевод", "çevir", "tercüme"),
    "creative": (
        "poem", "poetry", "haiku", "limerick", "sonnet", "story", "stories", "fairy tale", "lyrics", "song",
        "novel$", "slogan", "şeir", "hekayə", "nağıl", "mahnı", "стих", "рассказ", "сказк", "поэм", "песн",
        "şiir", "hikaye", "masal", "öykü", "şarkı",
    ),
    "analysis": (
        "analys", "analyz", "report", "data$", "dataset", "trend", "statistic", "metric", "insight", "kpi",
        "forecast", "təhlil", "hesabat", "məlumat", "статистик", "анализ", "отчёт", "отчет", "данны",
        "тенденц", "тренд", "прогноз", "analiz", "rapor", "veri$", "eğilim", "istatistik",
    ),
    "math_words": (
        "equation", "integral", "derivative", "theorem", "lemma", "solve", "calculat", "probabilit",
        "matrix", "matrices", "irrational", "prime$", "primes$", "proof", "irrasional", "иррацион",
        "доказательств", "простых чис", "простое чис", "irrasyonel", "asal say", "ispat", "tənlik",
        "inteqral", "törəmə", "hesabla", "teorem", "уравнен", "интеграл", "производн", "теорем", "вычисл",
        "реши", "вероятност", "denklem", "türev", "hesapla", "olasılık",
    ),
    "code_words": (
        "code$", "bug$", "bugs$", "buggy$", "python", "javascript", "typescript", "java$", "golang", "rust$",
        "sql$", "regex", "compile", "stack trace", "stacktrace", "traceback", "unit test", "kod", "код",
        "c++", "kotlin", "swift$", "dockerfile", "kubernetes", "html", "css$", "api$",
    ),
}
_ATTRS = tuple(_CUES)
_PUNCT = "\"'`()[]{}<>«»“”„.,;:!?*_"
_KEY = 3  # cues are indexed by their first three characters

# first three characters -> [(stem, family, whole word, phrase or "")]
_INDEX: dict[str, list[tuple[str, str, bool, str]]] = {}
for _family, _cues in _CUES.items():
    for _cue in _cues:
        _phrase = _cue if (" " in _cue or "-" in _cue[1:]) else ""
        _stem = _cue.replace("-", " ").split(" ")[0] if _phrase else _cue.rstrip("$")
        _INDEX.setdefault(_stem[:_KEY], []).append((_stem, _family, _cue.endswith("$"), _phrase))
del _family, _cues, _cue, _phrase, _stem

# Code syntax: distinct markers present (str `in`, C speed); three or more look like code.
_CODE_MARKERS = (
    "def ", "class ", "import ", "return ", "return\n", "=>", "->", "::", "==", "!=", "&&", "||", "();",
    "{\n", ";\n", "console.log", "print(", "#include", "const ", "let ", "fn ", "func ", "self.", "():",
    "</", "/>", "select ", "lambda", "):\n", "\n    ",
)
_CODE_TRIGGERS = "(){};=<>:"
_RE_INLINE_CODE = re.compile(r"`[^`\n]{1,200}`")
_RE_LATEX = re.compile(
    r"\\(?:frac|int|sum|sqrt|lim|prod|alpha|beta|gamma|theta|lambda|sigma|pi|cdot|times|infty|partial"
    r"|leq|geq|neq|mathbb|begin)\b"
)
_RE_DOLLAR_MATH = re.compile(r"\$[^$\n]{1,200}\$")
_RE_MATH_SYMBOL = re.compile("[∫∑√π≤≥≠∞∂∀∃]")
_RE_FORMULA = re.compile(r"\d\s*(?:[a-z]\s*)?[-+*/^=×÷]\s*\(?\d")
_RE_POWER = re.compile(r"[a-z)]\s*\^\s*\d")
_RE_CYRILLIC = re.compile(r"[а-яё]")
_RE_LATIN = re.compile(r"[a-z]")
_LIST_MARKS = frozenset("-*•")

_LEN_NORM = math.log2(1 + 2000 / 20)


@dataclass(slots=True, frozen=True)
class TaskProfile:
    """The classifier's answer: what `explain` shows and what routing and learning key on."""

    complexity: float
    domain: str
    task_class: str
    features: dict[str, float | int | bool] = field(default_factory=dict)

    @property
    def level(self) -> str:
        return self.task_class.rpartition(":")[2]


def classify(body: Mapping[str, Any], auto: AutoRouteConfig | None = None) -> TaskProfile:
    """Score an OpenAI chat body's complexity (0..1) and pick its domain (see the module doc)."""
    cfg = auto or _DEFAULT
    last, total_chars, user_turns, messages = _texts(body.get("messages"))
    text = last.lower()
    f: dict[str, float | int | bool] = {
        "chars": len(last),
        "tokens": len(last) // 4,
        "conversation_chars": total_chars,
        "conversation_tokens": total_chars // 4,
        "messages": messages,
        "user_turns": user_turns,
    }
    cues = _find_cues(text)
    code = _code_features(text)
    maths = _math_features(text)
    f.update(code)
    f.update(maths)
    for name in _ATTRS:
        f[f"{name}_cues"] = len(cues[name])
    f["questions"] = text.count("?") + text.count("？") + text.count("؟")
    f["list_items"] = _list_items(text)
    f["tools"] = bool(body.get("tools") or body.get("functions"))
    rf = body.get("response_format")
    f["json_schema"] = isinstance(rf, Mapping) and rf.get("type") == "json_schema"
    _languages(text, f)

    complexity = _complexity(f)
    domain = _domain(f)
    level = "simple" if complexity < cfg.simple_below else "complex" if complexity > cfg.complex_above else "medium"
    return TaskProfile(round(complexity, 4), domain, f"{domain}:{level}", f)


# ----------------------------------------------------------------------------- features
def _texts(messages: Any) -> tuple[str, int, int, int]:
    """(last user turn's text, characters of all text, user turns, messages)."""
    if not isinstance(messages, list):
        return "", 0, 0, 0
    last = ""
    total = 0
    users = 0
    for m in messages:
        if not isinstance(m, dict):
            continue
        content = m.get("content")
        if isinstance(content, str):
            text = content
        elif isinstance(content, list):
            text = "\n".join(
                p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
        else:
            text = ""
        total += len(text)
        if m.get("role") == "user":
            users += 1
            last = text
    return last, total, users, len(messages)


def _find_cues(text: str) -> dict[str, set[str]]:
    """Distinct cues per family: one pass over the text's distinct words, a dict lookup each."""
    found: dict[str, set[str]] = {name: set() for name in _ATTRS}
    index = _INDEX
    for raw in set(text.split()):
        word = raw.strip(_PUNCT)
        entries = index.get(word[:_KEY])
        if entries is None:
            continue
        for stem, family, whole, phrase in entries:
            if whole:
                if word != stem:
                    continue
            elif not word.startswith(stem):
                continue
            if phrase:
                if phrase not in text:
                    continue
                found[family].add(phrase)
            else:
                found[family].add(stem)
    return found


def _code_features(text: str) -> dict[str, int]:
    fences = text.count("```") // 2 if "```" in text else 0
    inline = len(_RE_INLINE_CODE.findall(text)) if "`" in text else 0
    syntax = 0
    if any(c in text for c in _CODE_TRIGGERS):
        syntax = sum(1 for m in _CODE_MARKERS if m in text)
    return {"code_blocks": fences, "inline_code": inline - fences if inline > fences else 0, "code_syntax": syntax}


def _math_features(text: str) -> dict[str, int]:
    latex = len(_RE_LATEX.findall(text)) if "\\" in text else 0
    if text.count("$") >= 2:
        latex += len(_RE_DOLLAR_MATH.findall(text))
    if not text.isascii():
        latex += len(_RE_MATH_SYMBOL.findall(text))
    formulas = 0
    if any(c in text for c in "0123456789"):
        formulas = len(_RE_FORMULA.findall(text))
        if "^" in text:
            formulas += len(_RE_POWER.findall(text))
    return {"latex": latex, "formulas": formulas}


def _list_items(text: str) -> int:
    """Numbered or bulleted lines ("1. ...", "2) ...", "- ...", "* ...", "• ...")."""
    if "\n" not in text and not text[:1].isdigit() and text[:1] not in _LIST_MARKS:
        return 0
    n = 0
    for line in text.split("\n"):
        line = line.lstrip()
        if len(line) < 3:
            continue
        head = line[0]
        if head in _LIST_MARKS:
            n += line[1] == " "
        elif head.isdigit():
            i = 2 if line[1].isdigit() else 1
            n += line[i : i + 1] in (".", ")") and line[i + 1 : i + 2] == " "
    return n


def _languages(text: str, f: dict[str, float | int | bool]) -> None:
    ascii_only = text.isascii()
    cyr = not ascii_only and _RE_CYRILLIC.search(text) is not None
    lat = _RE_LATIN.search(text) is not None
    az = not ascii_only and "ə" in text
    tr = not ascii_only and not az and ("ı" in text or "ğ" in text or "ş" in text)
    f["lang_cyrillic"] = cyr
    f["lang_latin"] = lat
    f["lang_az"] = az
    f["lang_tr"] = tr
    f["mixed_scripts"] = cyr and lat


# ----------------------------------------------------------------------------- scoring
def _complexity(f: dict[str, Any]) -> float:
    w: dict[str, float] = {}
    w["length"] = 0.30 * min(1.0, math.log2(1 + f["tokens"] / 20) / _LEN_NORM)
    r = f["reasoning_cues"]
    w["reasoning"] = min(0.60, 0.35 + 0.15 * (r - 1)) if r else 0.0
    code = 0.20 if f["code_blocks"] else 0.0
    if f["inline_code"] or f["code_syntax"] >= 3:
        code += 0.08
    if f["code_words_cues"]:
        code += 0.05
    w["code"] = min(0.25, code)
    maths = (0.12 if f["latex"] else 0.0) + (0.08 if f["formulas"] else 0.0)
    maths += 0.06 if f["math_words_cues"] else 0.0
    w["math"] = min(0.20, maths)
    w["questions"] = min(0.15, 0.05 * max(0, f["questions"] - 1))
    w["parts"] = min(0.12, 0.03 * f["list_items"])
    w["turns"] = min(0.08, 0.02 * max(0, f["user_turns"] - 1))
    w["tools"] = (0.10 if f["tools"] else 0.0) + (0.05 if f["json_schema"] else 0.0)
    for k, v in w.items():
        f[f"w_{k}"] = round(v, 4)
    return min(1.0, sum(w.values()))


def _domain(f: dict[str, Any]) -> str:
    points = {
        "code": 3.0 * min(2, f["code_blocks"]) + min(3, f["code_syntax"]) * 0.5 + min(2, f["inline_code"])
        + 2.0 * f["code_words_cues"],
        "analysis": 1.5 * f["analysis_cues"],
        "creative": 2.0 * f["creative_cues"],
        "translation": 5.0 * f["translation_cues"],
        "math": 2.0 * min(2, f["latex"]) + min(2, f["formulas"]) + f["math_words_cues"],
    }
    best, score = "general", 1.999
    for name in ("code", "analysis", "creative", "translation", "math"):  # DOMAINS order
        if points[name] > score:
            best, score = name, points[name]
    return best
