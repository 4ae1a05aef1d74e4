"""Walks a survey definition: which question comes next, how far along the user is, and whether
an answer is valid (and why not). Pure functions over (definition, answers); no I/O.

Answers map question names to values; a key that is present means "answered" (None for a skipped
optional question). Answers to questions that are no longer relevant are kept while the user is
answering — they come back if relevance does — and dropped by :func:`final_answers`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from bot.i18n import N_
from bot.services.surveys.expressions import Expression, parse
from bot.services.surveys.model import DISPLAY_TYPES, Question, SurveyDefinition, Texts

MAX_TEXT = 1000
INTEGER = re.compile(r"[+-]?\d+")
DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
DATE_FORMATS = ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y-%m-%d", "%d/%m/%y", "%d-%m-%y")


@dataclass
class InvalidAnswer(Exception):
    """Why an answer was refused: a catalog msgid with its values, or the survey's own text."""

    msgid: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    texts: Texts | None = None


@lru_cache(maxsize=4096)
def _expression(source: str) -> Expression:
    return parse(source)


def _value_for_expressions(value: Any) -> Any:
    return "" if value is None else value


def _scope(answers: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _value_for_expressions(value) for name, value in answers.items()}


def is_relevant(question: Question, answers: Mapping[str, Any]) -> bool:
    if not question.relevant:
        return True
    return _expression(question.relevant).truthy(_scope(answers))


def reachable(definition: SurveyDefinition, answers: Mapping[str, Any]) -> list[Question]:
    """The questions this respondent will see, given what they have answered so far."""
    return [question for question in definition.questions if is_relevant(question, answers)]


def next_question(
    definition: SurveyDefinition, answers: Mapping[str, Any], after: str | None = None
) -> Question | None:
    """The first reachable unanswered question after ``after`` (or from the start); None when done."""
    questions = reachable(definition, answers)
    names = [question.name for question in questions]
    start = names.index(after) + 1 if after in names else 0
    for question in questions[start:] + questions[:start]:
        if question.name not in answers:
            return question
    return None


def previous_question(
    definition: SurveyDefinition, answers: Mapping[str, Any], current: str
) -> Question | None:
    questions = reachable(definition, answers)
    names = [question.name for question in questions]
    if current not in names:
        return None
    index = names.index(current)
    return questions[index - 1] if index > 0 else None


def progress(definition: SurveyDefinition, answers: Mapping[str, Any], current: str) -> tuple[int, int]:
    """(k, n): the current question's place among the questions still reachable."""
    names = [question.name for question in reachable(definition, answers)]
    position = names.index(current) + 1 if current in names else len(names)
    return position, len(names)


def final_answers(definition: SurveyDefinition, answers: Mapping[str, Any]) -> dict[str, Any]:
    """What is kept when a response is complete: only reachable questions, in survey order."""
    return {
        question.name: answers[question.name]
        for question in reachable(definition, answers)
        if question.name in answers and question.type not in DISPLAY_TYPES
    }


def is_complete(definition: SurveyDefinition, answers: Mapping[str, Any]) -> bool:
    return next_question(definition, answers) is None


def normalise_digits(text: str) -> str:
    """Turn Devanagari, Tamil, Bengali... digits into ASCII ones ("५०" -> "50")."""
    return "".join(
        str(unicodedata.decimal(char)) if unicodedata.category(char) == "Nd" else char
        for char in text
    )


def _number_text(raw: str) -> str:
    text = normalise_digits(raw).strip().replace(" ", "").replace("\u00a0", "")
    # Indian grouping (12,34,567) and Western (1,234,567) both use commas for thousands.
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{2,3})+(\.\d+)?", text):
        text = text.replace(",", "")
    return text


def parse_integer(raw: str) -> int:
    text = _number_text(raw)
    if INTEGER.fullmatch(text):
        return int(text)
    if DECIMAL.fullmatch(text):
        raise InvalidAnswer(N_("Please write a whole number, without a decimal point."))
    if re.search(r"\d", text):
        raise InvalidAnswer(N_("Please write only the number, without %, units or other signs."))
    raise InvalidAnswer(N_("Please write a number using digits, for example 25."))


def parse_decimal(raw: str) -> float:
    text = _number_text(raw)
    if DECIMAL.fullmatch(text):
        return float(text)
    if re.search(r"\d", text):
        raise InvalidAnswer(N_("Please write only the number, without %, units or other signs."))
    raise InvalidAnswer(N_("Please write a number using digits, for example 2.5."))


def parse_date(raw: str) -> date:
    text = normalise_digits(raw).strip()
    for pattern in DATE_FORMATS:
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise InvalidAnswer(N_("Please write the date as day/month/year, for example 25/12/2026."))


def _in_range(question: Question, value: float) -> bool:
    start, end = question.start or 0, question.end if question.end is not None else 10
    low, high = min(start, end), max(start, end)
    step = abs(question.step or 1)
    return low <= value <= high and abs(((value - low) / step) - round((value - low) / step)) < 1e-9


def validate(
    question: Question,
    raw: Any,
    answers: Mapping[str, Any],
    *,
    today: date | None = None,
) -> Any:
    """The stored value for a raw answer, or InvalidAnswer saying why it cannot be accepted.

    ``raw`` is the typed text, a choice name, a list of choice names (multi-select), a file id, a
    (lat, lon) pair, a list of stakeholder ids — or None for "skip".
    """
    if question.type == "note":
        return None
    if raw is None or raw == "" or raw == []:
        if question.required or question.type == "acknowledge":
            raise InvalidAnswer(N_("This question needs an answer."), texts=question.required_message or None)
        return None

    kind = question.type
    if kind == "integer":
        value: Any = parse_integer(str(raw))
    elif kind == "decimal":
        value = parse_decimal(str(raw))
    elif kind == "range":
        number = parse_decimal(str(raw))
        if not _in_range(question, number):
            raise InvalidAnswer(
                N_("Please choose a number from {start} to {end}."),
                {"start": _plain(question.start or 0), "end": _plain(question.end if question.end is not None else 10)},
            )
        value = int(number) if float(number).is_integer() else number
    elif kind == "date":
        value = (raw if isinstance(raw, date) else parse_date(str(raw))).isoformat()
    elif kind == "text":
        value = " ".join(str(raw).split())
        if not value and question.required:
            raise InvalidAnswer(N_("This question needs an answer."), texts=question.required_message or None)
        if len(value) > MAX_TEXT:
            raise InvalidAnswer(N_("Please keep it under {limit} characters."), {"limit": MAX_TEXT})
    elif kind == "select_one":
        if question.choice(str(raw)) is None:
            raise InvalidAnswer(N_("Please choose one of the buttons."))
        value = str(raw)
    elif kind == "select_multiple":
        chosen = raw.split() if isinstance(raw, str) else list(raw)
        if any(question.choice(name) is None for name in chosen):
            raise InvalidAnswer(N_("Please choose one of the buttons."))
        # Keep the survey's order, so exports and comparisons do not depend on click order.
        value = [choice.name for choice in question.choices if choice.name in chosen]
    elif kind == "acknowledge":
        value = "OK"
    elif kind == "image":
        value = str(raw)
    elif kind == "geopoint":
        latitude, longitude = raw
        if not (-90 <= float(latitude) <= 90 and -180 <= float(longitude) <= 180):
            raise InvalidAnswer(N_("Please share a location with the button."))
        value = f"{float(latitude):.6f} {float(longitude):.6f}"
    elif kind == "select_stakeholders":
        value = sorted({int(item) for item in raw})
    else:  # pragma: no cover - the loaders refuse other types
        raise InvalidAnswer(N_("This answer is not allowed."))

    if question.constraint:
        scope = _scope(answers)
        scope[question.name] = value
        current = _value_for_expressions(value)
        if not _expression(question.constraint).truthy(scope, current, today=today):
            raise InvalidAnswer(N_("This answer is not allowed."), texts=question.constraint_message or None)
    return value


def _plain(number: float) -> int | float:
    return int(number) if float(number).is_integer() else number
