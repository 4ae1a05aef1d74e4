"""Turn a survey file (our YAML, or an XLSForm read by pyxform) into a SurveyDefinition.

Anything the engine cannot run is refused here with the row (or question) and the feature named;
nothing is dropped silently. Missing translations are not errors: they fall back to the survey's
default language and are reported as warnings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.languages import LANGUAGES
from bot.services.surveys.expressions import ExpressionError, parse
from bot.services.surveys.model import QUESTION_TYPES, Choice, Question, SurveyDefinition, Texts

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
REFERENCE = re.compile(r"\$\{([^}]*)\}")
LANGUAGE_KEY = re.compile(r"\(([A-Za-z]{2,3})(?:[-_][A-Za-z]+)?\)\s*$")
TRANSLATED_FIELDS = ("label", "hint", "constraint_message", "required_message")


class SurveyFormatError(ValueError):
    """The file cannot be imported; the message names the row or question and what to change."""


@dataclass
class LoadResult:
    definition: SurveyDefinition
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- shared checks


def _check(definition: SurveyDefinition, where: dict[str, str]) -> list[str]:
    """Validate names, types, choices and expressions; return translation warnings."""
    if not definition.questions:
        raise SurveyFormatError("The survey has no questions.")
    if definition.default_language not in LANGUAGES:
        raise SurveyFormatError(
            f"default_language {definition.default_language!r} is not a shipped language "
            f"({', '.join(LANGUAGES)})."
        )
    seen: set[str] = set()
    for question in definition.questions:
        place = where.get(question.name, f"question {question.name!r}")
        if not NAME.fullmatch(question.name or ""):
            raise SurveyFormatError(f"{place}: {question.name!r} is not a valid name (letters, digits, _ . -; starting with a letter).")
        if question.name in seen:
            raise SurveyFormatError(f"{place}: the name {question.name!r} is used twice.")
        seen.add(question.name)
        if question.type not in QUESTION_TYPES:
            raise SurveyFormatError(f"{place}: the question type {question.type!r} is not supported.")
        if not question.label:
            raise SurveyFormatError(f"{place}: the question has no label.")
        if question.type in ("select_one", "select_multiple"):
            if not question.choices:
                raise SurveyFormatError(f"{place}: a {question.type} question needs choices.")
            names = [choice.name for choice in question.choices]
            if len(set(names)) != len(names):
                raise SurveyFormatError(f"{place}: two choices share a name.")
        if question.type == "range":
            if question.start is None or question.end is None:
                raise SurveyFormatError(f"{place}: a range question needs start and end.")
            steps = abs(question.end - question.start) / abs(question.step or 1)
            if steps > 10:
                raise SurveyFormatError(f"{place}: a range may have at most 11 values to fit on buttons.")
    for question in definition.questions:
        place = where.get(question.name, f"question {question.name!r}")
        for column in ("relevant", "constraint"):
            source = getattr(question, column)
            if not source:
                continue
            try:
                expression = parse(source)
            except ExpressionError as error:
                raise SurveyFormatError(f"{place}: the {column} expression {source!r} cannot be used: {error}") from None
            unknown = expression.references() - seen
            if unknown:
                raise SurveyFormatError(
                    f"{place}: the {column} expression refers to {', '.join(sorted(unknown))}, which is not a question of this survey."
                )
    return _missing_translations(definition)


def _missing_translations(definition: SurveyDefinition) -> list[str]:
    languages = sorted(definition.languages() - {definition.default_language})
    warnings = []
    for language in languages:
        missing = [
            question.name
            for question in definition.questions
            if any(getattr(question, f).get(definition.default_language) and not getattr(question, f).get(language) for f in TRANSLATED_FIELDS)
            or any(c.label.get(definition.default_language) and not c.label.get(language) for c in question.choices)
        ]
        if not definition.title.get(language):
            missing.insert(0, "(title)")
        if missing:
            warnings.append(
                f"{LANGUAGES.get(language, language)} ({language}): no translation for "
                f"{', '.join(missing)}; the {definition.default_language} text is shown instead."
            )
    return warnings


# ---------------------------------------------------------------- YAML


def _texts(value: Any, default_language: str, place: str) -> Texts:
    if value is None:
        return {}
    if isinstance(value, str):
        return {default_language: value}
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in value.items()):
        unknown = set(value) - set(LANGUAGES)
        if unknown:
            raise SurveyFormatError(f"{place}: unknown language code(s) {', '.join(sorted(unknown))}.")
        return {k: str(v) for k, v in value.items()}
    raise SurveyFormatError(f"{place}: texts must be a string or a mapping of language code to text.")


def _name(value: Any, place: str) -> str:
    if not isinstance(value, str):
        raise SurveyFormatError(
            f"{place}: the name {value!r} must be text; put it in quotes (YAML reads yes/no as true/false)."
        )
    return value


def _yaml_choices(items: Any, default_language: str, place: str) -> list[Choice]:
    if not isinstance(items, list):
        raise SurveyFormatError(f"{place}: choices must be a list.")
    return [
        Choice(name=_name(item.get("name"), place), label=_texts(item.get("label"), default_language, place))
        for item in items
    ]


def load_yaml_text(text: str) -> LoadResult:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SurveyFormatError(f"The YAML cannot be read: {error}") from None
    if not isinstance(data, dict):
        raise SurveyFormatError("The YAML must be a mapping with form_id, title and questions.")
    unknown = set(data) - {"form_id", "version", "default_language", "anonymous", "title", "description", "choices", "questions"}
    if unknown:
        raise SurveyFormatError(f"Unknown top-level key(s): {', '.join(sorted(unknown))}.")
    default = str(data.get("default_language", "en"))
    lists = {
        _name(name, "choices"): _yaml_choices(items, default, f"choice list {name!r}")
        for name, items in (data.get("choices") or {}).items()
    }
    questions = []
    allowed = {"name", "type", "choices", "start", "end", "step", "required", "relevant", "constraint", "default", "appearance", *TRANSLATED_FIELDS}
    for number, item in enumerate(data.get("questions") or [], start=1):
        place = f"question {number} ({item.get('name')!r})" if isinstance(item, dict) else f"question {number}"
        if not isinstance(item, dict):
            raise SurveyFormatError(f"{place}: must be a mapping.")
        extra = set(item) - allowed
        if extra:
            raise SurveyFormatError(f"{place}: unsupported key(s) {', '.join(sorted(extra))}.")
        choices = item.get("choices")
        if isinstance(choices, str):
            if choices not in lists:
                raise SurveyFormatError(f"{place}: there is no choice list named {choices!r}.")
            choice_objects = lists[choices]
        else:
            choice_objects = _yaml_choices(choices, default, place) if choices is not None else []
        questions.append(
            Question(
                name=_name(item.get("name"), place),
                type=str(item.get("type")),
                label=_texts(item.get("label"), default, place),
                hint=_texts(item.get("hint"), default, place),
                required=bool(item.get("required", False)),
                required_message=_texts(item.get("required_message"), default, place),
                relevant=item.get("relevant"),
                constraint=item.get("constraint"),
                constraint_message=_texts(item.get("constraint_message"), default, place),
                default=None if item.get("default") is None else str(item["default"]),
                appearance=item.get("appearance"),
                choices=choice_objects,
                start=_number(item.get("start"), place),
                end=_number(item.get("end"), place),
                step=_number(item.get("step"), place),
            )
        )
    form_id = data.get("form_id")
    if not isinstance(form_id, str) or not NAME.fullmatch(form_id):
        raise SurveyFormatError("form_id is missing or not a valid name (letters, digits, _ . -).")
    definition = SurveyDefinition(
        form_id=form_id,
        title=_texts(data.get("title"), default, "title") or {default: form_id},
        version=str(data.get("version", "1")),
        default_language=default,
        questions=questions,
        anonymous=bool(data.get("anonymous", False)),
        description=_texts(data.get("description"), default, "description"),
    )
    return LoadResult(definition, _check(definition, {}))


def _number(value: Any, place: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SurveyFormatError(f"{place}: {value!r} is not a number.") from None


# ---------------------------------------------------------------- XLSForm

XLSFORM_TYPES = {
    "select one": "select_one",
    "select all that apply": "select_multiple",
    "text": "text",
    "integer": "integer",
    "decimal": "decimal",
    "range": "range",
    "date": "date",
    "note": "note",
    "acknowledge": "acknowledge",
    "trigger": "acknowledge",
    "image": "image",
    "photo": "image",
    "geopoint": "geopoint",
}
SUPPORTED_ROW_TYPES = {
    "select_one", "select_multiple", "text", "integer", "decimal", "range", "date", "note",
    "acknowledge", "image", "geopoint", "begin_group", "end_group", "begin group", "end group",
}
SUPPORTED_COLUMNS = {
    "type", "name", "label", "hint", "required", "required_message", "relevant", "constraint",
    "constraint_message", "default", "appearance", "parameters",
}


def _language_of(key: str, default_language: str) -> str | None:
    if key in ("default", ""):
        return default_language
    match = LANGUAGE_KEY.search(key)
    if match:
        return match.group(1).lower()
    lowered = key.strip().lower()
    for code, _native in LANGUAGES.items():
        if lowered in (code, {"en": "english", "hi": "hindi", "bn": "bengali", "mr": "marathi", "te": "telugu",
                              "ta": "tamil", "gu": "gujarati", "kn": "kannada", "ml": "malayalam", "pa": "punjabi"}[code]):
            return code
    return None


def _xls_texts(value: Any, default_language: str, warnings: list[str], place: str) -> Texts:
    if value is None:
        return {}
    if isinstance(value, str):
        return {default_language: value}
    texts: Texts = {}
    for key, text in value.items():
        code = _language_of(key, default_language)
        if code is None or code not in LANGUAGES:
            warnings.append(f"{place}: the language {key!r} is not shipped; its texts are ignored.")
            continue
        if text:
            texts[code] = str(text)
    return texts


def _row_numbers(rows: Iterable[dict[str, Any]]) -> dict[str, str]:
    return {row["name"]: f"survey row {number} ({row['name']!r})" for number, row in enumerate(rows, start=2) if row.get("name")}


def _refuse_unsupported(rows: list[dict[str, Any]]) -> None:
    for number, row in enumerate(rows, start=2):
        place = f"survey row {number}" + (f" ({row['name']!r})" if row.get("name") else "")
        kind = " ".join(str(row.get("type", "")).split())
        base = kind.split(" ")[0] if kind.startswith(("select_one", "select_multiple", "select one", "select all")) else kind
        if base.startswith("select one") or base.startswith("select all"):
            base = "select_one" if base.startswith("select one") else "select_multiple"
        if base in ("select_one_from_file", "select_multiple_from_file", "rank"):
            raise SurveyFormatError(f"{place}: the type {kind!r} is not supported.")
        if base not in SUPPORTED_ROW_TYPES:
            feature = "repeats" if "repeat" in base else f"the type {kind!r}"
            raise SurveyFormatError(f"{place}: {feature} is not supported by Cluster Bot; remove the row or use a supported type.")
        for column, value in row.items():
            if value in (None, ""):
                continue
            base_column = column.split("::")[0].strip()
            if base_column not in SUPPORTED_COLUMNS:
                raise SurveyFormatError(f"{place}: the column {column!r} ({base_column}) is not supported; remove it.")


def load_xlsform(path: str | Path) -> LoadResult:
    from pyxform.errors import PyXFormError
    from pyxform.xls2json import parse_file_to_json
    from pyxform.xls2json_backends import get_xlsform

    try:
        raw = get_xlsform(str(path))
        _refuse_unsupported(list(raw.survey))
        form = parse_file_to_json(str(path))
    except PyXFormError as error:
        raise SurveyFormatError(f"The XLSForm is not valid: {error}") from None
    warnings: list[str] = []
    default = _language_of(str(form.get("default_language") or "default"), "en") or "en"
    where = _row_numbers(raw.survey)
    questions: list[Question] = []

    def walk(children: list[dict[str, Any]], inherited: str | None) -> None:
        for child in children:
            kind = child.get("type")
            place = where.get(child.get("name", ""), f"question {child.get('name')!r}")
            bind = child.get("bind") or {}
            relevant = _combine(inherited, bind.get("relevant"))
            if kind == "group":
                if child.get("name") == "meta" and (child.get("control") or {}).get("bodyless"):
                    continue  # pyxform's own instanceID; not a question
                walk(child.get("children") or [], relevant)
                continue
            if kind == "repeat":
                raise SurveyFormatError(f"{place}: repeats are not supported by Cluster Bot.")
            if kind not in XLSFORM_TYPES:
                raise SurveyFormatError(f"{place}: the type {kind!r} is not supported by Cluster Bot.")
            if child.get("choice_filter"):
                raise SurveyFormatError(f"{place}: choice_filter is not supported by Cluster Bot.")
            parameters = child.get("parameters") or {}
            required = str(bind.get("required", "")).strip().lower() in ("yes", "true", "true()", "1")
            questions.append(
                Question(
                    name=child["name"],
                    type=XLSFORM_TYPES[kind],
                    label=_xls_texts(child.get("label"), default, warnings, place),
                    hint=_xls_texts(child.get("hint"), default, warnings, place),
                    required=required,
                    required_message=_xls_texts(bind.get("jr:requiredMsg"), default, warnings, place),
                    relevant=relevant,
                    constraint=bind.get("constraint"),
                    constraint_message=_xls_texts(bind.get("jr:constraintMsg"), default, warnings, place),
                    default=child.get("default"),
                    appearance=(child.get("control") or {}).get("appearance"),
                    choices=[
                        Choice(name=str(c["name"]), label=_xls_texts(c.get("label"), default, warnings, place))
                        for c in child.get("choices") or []
                    ],
                    start=_number(parameters.get("start", 1 if kind == "range" else None), place),
                    end=_number(parameters.get("end", 10 if kind == "range" else None), place),
                    step=_number(parameters.get("step", 1 if kind == "range" else None), place),
                )
            )

    walk(form.get("children") or [], None)
    title = form.get("title") or form.get("id_string") or "survey"
    definition = SurveyDefinition(
        form_id=str(form.get("id_string") or Path(path).stem),
        title={default: str(title)},
        version=str(form.get("version") or "1"),
        default_language=default,
        questions=questions,
    )
    return LoadResult(definition, warnings + _check(definition, where))


def _combine(outer: str | None, inner: str | None) -> str | None:
    if outer and inner:
        return f"({outer}) and ({inner})"
    return outer or inner


def load_file(path: str | Path) -> LoadResult:
    suffix = Path(path).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return load_yaml_text(Path(path).read_text(encoding="utf-8"))
    if suffix in (".xlsx", ".xls"):
        return load_xlsform(path)
    raise SurveyFormatError(f"{path}: use a .yaml file or an XLSForm .xlsx file.")


TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates" / "surveys"


def template_paths() -> list[Path]:
    return sorted(TEMPLATES_DIR.glob("*.yaml"))
