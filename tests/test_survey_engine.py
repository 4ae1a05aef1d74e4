"""The survey engine on its own: next question, progress, validation, and random walks."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.services.surveys import engine
from bot.services.surveys.loaders import (
    SurveyFormatError,
    load_file,
    load_yaml_text,
    template_paths,
)

FORM = """
form_id: demo
version: "1"
default_language: en
title: {en: Demo, hi: डेमो}
choices:
  yn:
    - {name: "yes", label: {en: "Yes", hi: हाँ}}
    - {name: "no", label: {en: "No", hi: नहीं}}
  problems:
    - {name: credit, label: {en: Credit}}
    - {name: skills, label: {en: Skills}}
    - {name: power, label: {en: Power}}
questions:
  - {name: owner, type: select_one, choices: yn, required: true, label: {en: "Are you the owner?"}}
  - {name: employees, type: integer, required: true, relevant: "${owner} = 'yes'",
     constraint: ". >= 1 and . <= 500", constraint_message: {en: Between 1 and 500, hi: 1 से 500 के बीच},
     label: {en: "How many employees?"}}
  - {name: problems, type: select_multiple, choices: problems, label: {en: "Problems?"}}
  - {name: credit_need, type: decimal, relevant: "selected(${problems}, 'credit')", label: {en: "How much credit (lakh)?"}}
  - {name: score, type: range, start: 1, end: 5, step: 1, required: true, label: {en: Score}}
  - {name: since, type: date, constraint: ". <= today()", label: {en: "Since when?"}}
  - {name: remarks, type: text, label: {en: Remarks}}
"""


@pytest.fixture
def definition():
    return load_yaml_text(FORM).definition


def test_skip_logic_and_progress(definition):
    answers: dict = {}
    assert engine.next_question(definition, answers).name == "owner"
    assert engine.progress(definition, answers, "owner") == (1, 5)  # employees, credit_need unreachable yet
    answers["owner"] = "no"
    assert engine.next_question(definition, answers, after="owner").name == "problems"
    assert engine.progress(definition, answers, "problems") == (2, 5)
    answers["problems"] = ["credit"]
    assert engine.next_question(definition, answers, after="problems").name == "credit_need"
    assert engine.progress(definition, answers, "credit_need") == (3, 6)
    assert engine.previous_question(definition, answers, "credit_need").name == "problems"


def test_irrelevant_answers_are_dropped_at_the_end(definition):
    answers = {"owner": "yes", "employees": 12, "problems": ["credit"], "credit_need": 2.5, "score": 3,
               "since": None, "remarks": None}
    answers["owner"] = "no"
    assert "employees" not in engine.final_answers(definition, answers)
    assert engine.is_complete(definition, answers)


@pytest.mark.parametrize(("raw", "value"), [("25", 25), ("५०", 50), ("௪௨", 42), ("১২", 12), (" 7 ", 7)])
def test_integers_in_any_indian_script(definition, raw, value):
    question = definition.question("employees")
    assert engine.validate(question, raw, {"owner": "yes"}) == value


@pytest.mark.parametrize(("raw", "msgid"), [
    ("50%", "Please write only the number, without %, units or other signs."),
    ("12 people", "Please write only the number, without %, units or other signs."),
    ("2.5", "Please write a whole number, without a decimal point."),
    ("many", "Please write a number using digits, for example 25."),
])
def test_bad_integers_say_why(definition, raw, msgid):
    with pytest.raises(engine.InvalidAnswer) as problem:
        engine.validate(definition.question("employees"), raw, {})
    assert problem.value.msgid == msgid


def test_constraint_message_is_the_surveys_own(definition):
    with pytest.raises(engine.InvalidAnswer) as problem:
        engine.validate(definition.question("employees"), "0", {"owner": "yes"})
    assert problem.value.texts == {"en": "Between 1 and 500", "hi": "1 से 500 के बीच"}


def test_required_range_date_and_choices(definition):
    with pytest.raises(engine.InvalidAnswer) as problem:
        engine.validate(definition.question("score"), None, {})
    assert problem.value.msgid == "This question needs an answer."
    with pytest.raises(engine.InvalidAnswer) as problem:
        engine.validate(definition.question("score"), "6", {})
    assert problem.value.values == {"start": 1, "end": 5}
    assert engine.validate(definition.question("score"), "४", {}) == 4
    assert engine.validate(definition.question("since"), "२५/१२/२०२५", {}, today=date(2026, 1, 1)) == "2025-12-25"
    with pytest.raises(engine.InvalidAnswer):
        engine.validate(definition.question("since"), "25/12/2030", {}, today=date(2026, 1, 1))
    with pytest.raises(engine.InvalidAnswer):
        engine.validate(definition.question("since"), "yesterday", {})
    assert engine.validate(definition.question("problems"), ["power", "credit"], {}) == ["credit", "power"]
    with pytest.raises(engine.InvalidAnswer):
        engine.validate(definition.question("problems"), ["bribes"], {})
    with pytest.raises(engine.InvalidAnswer):
        engine.validate(definition.question("owner"), "maybe", {})
    assert engine.validate(definition.question("remarks"), None, {}) is None


@st.composite
def raw_answers(draw):
    return draw(st.one_of(
        st.none(), st.text(max_size=30), st.sampled_from(["yes", "no", "credit", "५०", "3", "-5", "50%", "1.5", "01/02/2020"]),
        st.lists(st.sampled_from(["credit", "skills", "power", "x"]), max_size=4), st.integers(-10, 1000).map(str),
    ))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), raw_answers()), max_size=40))
def test_random_answer_sequences_never_reach_an_invalid_state(actions):
    """Whatever a user sends, in any order, with Back presses: only valid answers are stored,
    the current question is always reachable, and progress stays within bounds."""
    definition = load_yaml_text(FORM).definition
    answers: dict = {}
    current = engine.next_question(definition, answers)
    for back, raw in actions:
        if current is None:
            break
        if back:
            previous = engine.previous_question(definition, answers, current.name)
            current = previous or current
            continue
        try:
            value = engine.validate(current, raw, answers, today=date(2026, 11, 28))
        except engine.InvalidAnswer as problem:
            assert problem.msgid or problem.texts
            continue
        answers[current.name] = value
        current = engine.next_question(definition, answers, after=current.name)
        if current is not None:
            assert current in engine.reachable(definition, answers)
            k, n = engine.progress(definition, answers, current.name)
            assert 1 <= k <= n <= len(definition.questions)
    for name, value in engine.final_answers(definition, answers).items():
        question = definition.question(name)
        assert engine.is_relevant(question, answers)
        if value is not None:
            assert engine.validate(question, value if not isinstance(value, int | float) else str(value), answers, today=date(2026, 11, 28)) == value


def test_templates_load_complete_in_every_language():
    for path in template_paths():
        result = load_file(path)
        assert result.warnings == [], (path.name, result.warnings)
        assert {"en", "hi", "ta", "bn", "gu", "kn", "ml", "mr", "pa", "te"} <= result.definition.languages()


@pytest.mark.parametrize(("text", "message"), [
    ("form_id: x\nquestions: []", "no questions"),
    ("form_id: x\nquestions:\n  - {name: a, type: calculate, label: A}", "type 'calculate' is not supported"),
    ("form_id: x\nquestions:\n  - {name: a, type: text, label: A, relevant: \"${b} = 1\"}", "refers to b"),
    ("form_id: x\nquestions:\n  - {name: a, type: text, label: A, constraint: \". >>> 3\"}", "cannot be used"),
    ("form_id: x\nquestions:\n  - {name: a, type: select_one, choices: nope, label: A}", "no choice list named"),
    ("form_id: x\nchoices: {yn: [{name: yes, label: Y}]}\nquestions:\n  - {name: a, type: select_one, choices: yn, label: A}", "put it in quotes"),
    ("form_id: x\nquestions:\n  - {name: a, type: text, label: {xx: A}}", "unknown language"),
])
def test_yaml_errors_name_the_question_and_the_problem(text, message):
    with pytest.raises(SurveyFormatError, match=message):
        load_yaml_text(text)


def test_grouped_numbers(definition):
    question = definition.question("credit_need")
    assert engine.validate(question, "12,34,567", {}) == 1234567.0
    assert engine.validate(question, "1,234.5", {}) == 1234.5


def test_readme_yaml_example_imports():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    result = load_yaml_text(example)
    assert [q.name for q in result.definition.questions] == ["workers", "has_loan", "loan_amount", "rating", "partners"]
