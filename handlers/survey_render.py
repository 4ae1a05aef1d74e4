"""How a survey question looks in chat: text with "k / n" progress, and its buttons."""

from __future__ import annotations

import hashlib
from html import escape
from typing import Any

from bot.i18n import Translator
from bot.services.surveys import engine
from bot.services.surveys.model import Question, SurveyDefinition, text_in
from handlers.common import inline

ANSWER_PREFIX = "sva"
MEMBERS_PER_PAGE = 8


def question_key(question: Question) -> str:
    """A stable id for callback data that fits Telegram's 64 bytes whatever the name's length."""
    if len(question.name) <= 20:
        return question.name
    return "#" + hashlib.sha1(question.name.encode()).hexdigest()[:12]


def find_question(definition: SurveyDefinition, key: str) -> Question | None:
    return next((q for q in definition.questions if question_key(q) == key), None)


def _data(response_id: int, question: Question, action: str) -> str:
    return f"{ANSWER_PREFIX}:{response_id}:{question_key(question)}:{action}"


def question_text(
    t: Translator, definition: SurveyDefinition, question: Question, answers: dict[str, Any]
) -> str:
    language, fallback = t.language, definition.default_language
    position, total = engine.progress(definition, answers, question.name)
    lines = [f"<b>{t.number(position)} / {t.number(total)}</b>", escape(text_in(question.label, language, fallback))]
    hint = text_in(question.hint, language, fallback)
    if hint:
        lines.append(f"<i>{escape(hint)}</i>")
    instruction = {
        "integer": t("Type a number."),
        "decimal": t("Type a number."),
        "text": t("Type your answer."),
        "date": t("Type the date as day/month/year, or press a button."),
        "image": t("Send a photo."),
        "geopoint": t("Press “Share my location” below."),
        "select_multiple": t("Choose all that apply, then press Done."),
        "select_stakeholders": t("Choose all that apply, then press Done. To find someone, type part of their name."),
    }.get(question.type)
    if instruction:
        lines.append(instruction)
    return "\n".join(lines)


def question_markup(
    t: Translator,
    definition: SurveyDefinition,
    question: Question,
    response_id: int,
    answers: dict[str, Any],
    pending: list[Any],
    members: list[tuple[int, str]] | None = None,
    page: int = 0,
    pages: int = 1,
):
    language, fallback = t.language, definition.default_language
    rows: list[list[tuple[str, str]]] = []
    kind = question.type
    if kind == "select_one":
        rows += [[(text_in(c.label, language, fallback), _data(response_id, question, f"c{i}"))] for i, c in enumerate(question.choices)]
    elif kind == "select_multiple":
        for i, choice in enumerate(question.choices):
            mark = "✅ " if choice.name in pending else "▫️ "
            rows.append([(mark + text_in(choice.label, language, fallback), _data(response_id, question, f"c{i}"))])
        rows.append([(t("Done ✔"), _data(response_id, question, "done"))])
    elif kind == "range":
        start, end, step = question.start or 0, question.end if question.end is not None else 10, abs(question.step or 1)
        values, value = [], start
        direction = 1 if end >= start else -1
        while (value <= end) if direction > 0 else (value >= end):
            values.append(value)
            value += step * direction
        buttons = [(t.number(_plain(v)), _data(response_id, question, f"r{_plain(v)}")) for v in values]
        rows += [buttons[i : i + 6] for i in range(0, len(buttons), 6)]
    elif kind == "date":
        rows.append([(t("Today"), _data(response_id, question, "today")), (t("Yesterday"), _data(response_id, question, "yday"))])
    elif kind == "note":
        rows.append([(t("Continue ▶"), _data(response_id, question, "ok"))])
    elif kind == "acknowledge":
        rows.append([(t("OK ✔"), _data(response_id, question, "ok"))])
    elif kind == "select_stakeholders":
        for member_id, label in members or []:
            mark = "✅ " if member_id in pending else "▫️ "
            rows.append([(mark + label, _data(response_id, question, f"p{member_id}"))])
        navigation = []
        if page > 0:
            navigation.append(("◀", _data(response_id, question, f"pg{page - 1}")))
        if page + 1 < pages:
            navigation.append(("▶", _data(response_id, question, f"pg{page + 1}")))
        if navigation:
            rows.append(navigation)
        rows.append([(t("Done ✔"), _data(response_id, question, "done"))])
    footer = []
    if engine.previous_question(definition, answers, question.name) is not None:
        footer.append((t("◀ Back"), _data(response_id, question, "back")))
    if not question.required and kind not in ("note", "acknowledge", "select_multiple", "select_stakeholders"):
        footer.append((t("Skip"), _data(response_id, question, "skip")))
    if footer:
        rows.append(footer)
    return inline(rows) if rows else None


def _plain(number: float) -> int | float:
    return int(number) if float(number).is_integer() else number


def answer_label(t: Translator, definition: SurveyDefinition, question: Question, value: Any, names: dict[int, str] | None = None) -> str:
    language, fallback = t.language, definition.default_language
    if value is None:
        return t("Skipped")
    kind = question.type
    if kind == "select_one":
        choice = question.choice(value)
        return text_in(choice.label, language, fallback) if choice else str(value)
    if kind == "select_multiple":
        return ", ".join(text_in(c.label, language, fallback) for c in question.choices if c.name in value) or t("Skipped")
    if kind in ("integer", "decimal", "range"):
        return t.number(value)
    if kind == "date":
        from datetime import date as _date

        return t.date(_date.fromisoformat(value), "long")
    if kind == "image":
        return t("Photo received")
    if kind == "geopoint":
        return t("Location received")
    if kind == "select_stakeholders":
        return ", ".join((names or {}).get(i, str(i)) for i in value) or t("Skipped")
    if kind in ("note", "acknowledge"):
        return "✔"
    return str(value)


def problem_text(t: Translator, definition: SurveyDefinition, problem: engine.InvalidAnswer) -> str:
    if problem.texts:
        return text_in(problem.texts, t.language, definition.default_language)
    return t(problem.msgid or "This answer is not allowed.").format(**problem.values)
