"""The XLSForm expression evaluator: XPath value rules, every operator and function, errors that
point at the problem, and properties that hold for arbitrary answers and arbitrary text."""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bot.services.surveys.expressions import (
    MAX_DEPTH,
    MAX_LENGTH,
    Expression,
    ExpressionError,
    parse,
)

TODAY = date(2024, 5, 17)


def ev(source: str, answers: Mapping[str, Any] | None = None, current: Any = None) -> Any:
    return parse(source).evaluate(answers or {}, current, today=TODAY)


def ok(source: str, answers: Mapping[str, Any] | None = None, current: Any = None) -> bool:
    return parse(source).truthy(answers or {}, current, today=TODAY)


class RecordingAnswers(Mapping[str, Any]):
    """Answers that note which names were looked up, to observe short-circuiting."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.looked_up: list[str] = []

    def __getitem__(self, key: str) -> Any:
        self.looked_up.append(key)
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


# --- literals and references ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("3", 3),
        ("2.5", 2.5),
        (".5", 0.5),
        ("-1", -1),
        ("'single'", "single"),
        ('"double"', "double"),
        ('"it\'s"', "it's"),
        ("''", ""),
        ("true()", True),
        ("false()", False),
    ],
)
def test_literals(source, expected):
    value = ev(source)
    assert value == expected and type(value) is type(expected)


def test_references_and_current():
    answers = {"age": 20, "name": "Asha", "none": None, "when": date(2024, 1, 2)}
    assert ev("${age}", answers) == 20
    assert ev("${name}", answers) == "Asha"
    assert ev("${missing}", answers) == ""
    assert ev("${none}", answers) == ""
    assert ev("${when}", answers) == "2024-01-02"
    assert ev(".", answers, current=7) == 7
    assert ev(".", answers) == ""
    assert ev("${q}", {"q": ["a", "b"]}) == "a b"


def test_reference_names_may_contain_dots_and_hyphens():
    expression = parse("${a.b-c} + ${_x1}")
    assert expression.references() == {"a.b-c", "_x1"}
    assert expression.evaluate({"a.b-c": 1, "_x1": 2}) == 3


def test_references_lists_every_name_once():
    expression = parse("if(${a} > 1, ${b}, coalesce(${c}, ${a})) and selected(${d}, 'x')")
    assert expression.references() == {"a", "b", "c", "d"}
    assert parse("1 + .").references() == set()


def test_whitespace_is_free():
    assert ok("  ${a}>=1and${b}=  'x'  ", {"a": 1, "b": "x"})
    assert ok("\t${a}\n>\u00a01", {"a": 2})  # non-breaking spaces come from spreadsheets


# --- comparisons -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 = 1", True),
        ("1 = 2", False),
        ("1 != 2", True),
        ("1 != 1", False),
        ("1 < 2", True),
        ("2 < 2", False),
        ("2 <= 2", True),
        ("3 <= 2", False),
        ("3 > 2", True),
        ("2 > 2", False),
        ("2 >= 2", True),
        ("1 >= 2", False),
        ("'a' = 'a'", True),
        ("'a' != 'b'", True),
        ("'a' = 'A'", False),
        ("'abc' < 'abd'", False),  # relational operators compare numbers, and 'abc' is NaN
        ("true() = 'x'", True),
        ("false() = ''", True),
        ("true() != 0", True),
        ("true() = 2", True),  # XPath: a boolean on either side makes it a boolean comparison
    ],
)
def test_comparisons(source, expected):
    assert ev(source) is expected


def test_numeric_strings_compare_as_numbers():
    assert ok("${age} > 18", {"age": "20"})
    assert not ok("${age} > 18", {"age": "9"})  # "9" > "18" as text, but not as numbers
    assert ok("${age} = 20", {"age": " 20.0 "})
    assert ok("${n} = '3'", {"n": 3})
    assert ok("${a} = ${b}", {"a": "1", "b": "1"})
    assert not ok("${a} = ${b}", {"a": "1", "b": "1.0"})  # two strings compare as text


def test_non_numeric_string_against_number_is_nan():
    assert not ok("${x} = 1", {"x": "abc"})
    assert ok("${x} != 1", {"x": "abc"})
    for op in ("<", "<=", ">", ">="):
        assert not ok(f"${{x}} {op} 1", {"x": "abc"})
        assert not ok(f"${{x}} {op} 1", {})
    # Only plain decimals are numbers, as in XPath; Python's float() would accept these.
    for text in ("1e3", "inf", "nan", "1_000", "+5", "0x10"):
        assert not ok("${x} = number(${x})", {"x": text})


def test_missing_answer_is_empty_string():
    assert ok("${q} = ''", {})
    assert not ok("${q} = 0", {})
    assert ok("${q} != 0", {})
    assert not ok("${q}", {})
    assert ok("string-length(${q}) = 0", {"q": None})


def test_dates_compare_as_iso_strings():
    assert ok(". <= today()", current=date(2024, 5, 17))
    assert ok(". <= today()", current="2020-02-29")
    assert not ok(". <= today()", current=date(2024, 5, 18))
    assert ok(". > '2024-01-01'", current=date(2024, 1, 2))
    assert ok("${d} = today()", {"d": TODAY})
    assert ok(". < today()", current=datetime(2024, 5, 16, 23, 59))
    # A date against a number is NaN, so false either way.
    assert not ok(". < 5", current=TODAY) and not ok(". > 5", current=TODAY)


def test_booleans_in_comparisons():
    assert ok("(1 < 2) = true()")
    assert ok("${flag} = true()", {"flag": True})
    assert ok("${flag} = false()", {"flag": False})
    assert ok("${flag} = 1", {"flag": True})


# --- logic -------------------------------------------------------------------------------------------


def test_and_or_not():
    assert ev("true() and true()") is True
    assert ev("true() and false()") is False
    assert ev("false() or true()") is True
    assert ev("false() or false()") is False
    assert ev("not(false())") is True
    assert ev("not(1)") is False
    assert ev("not('')") is True
    assert ev("1 and 'x'") is True
    assert ev("0 or ''") is False


def test_and_or_short_circuit():
    answers = RecordingAnswers({"a": 1, "b": 2})
    assert not parse("false() and ${b}").truthy(answers)
    assert parse("true() or ${b}").truthy(answers)
    assert answers.looked_up == []
    assert parse("${a} and ${b}").truthy(answers)
    assert answers.looked_up == ["a", "b"]


def test_if_evaluates_one_branch():
    answers = RecordingAnswers({"a": 1})
    assert parse("if(${a} = 1, 'yes', ${other})").evaluate(answers) == "yes"
    assert answers.looked_up == ["a"]
    assert ev("if(0, 'yes', 'no')") == "no"
    assert ev("if('', 1, 2)") == 2


# --- arithmetic -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2", 3),
        ("5 - 7", -2),
        ("3 * 4", 12),
        ("7 div 2", 3.5),
        ("8 div 2", 4),
        ("7 mod 3", 1),
        ("-7 mod 3", -1),  # the sign follows the dividend, as in XPath
        ("7 mod -3", 1),
        ("5.5 mod 2", 1.5),
        ("-(2 + 3)", -5),
        ("--4", 4),
        ("- - -4", -4),
        ("1.5 + 1.5", 3),
        ("'3' + '4'", 7),
        ("true() + 1", 2),
        ("${a} - 1", 1),
    ],
)
def test_arithmetic(source, expected):
    value = ev(source, {"a": "2"})
    assert value == expected and not isinstance(value, bool)


def test_arithmetic_with_non_numbers_is_nan():
    assert math.isnan(ev("'x' + 1"))
    assert math.isnan(ev("${missing} * 2"))
    assert math.isnan(ev("-'x'"))
    assert math.isnan(ev("--'x'"))  # an even run of minus signs still converts to a number


def test_division_by_zero_follows_ieee():
    assert ev("1 div 0") == math.inf
    assert ev("-1 div 0") == -math.inf
    assert ev("1 div -0") == -math.inf
    assert math.isnan(ev("0 div 0"))
    assert math.isnan(ev("5 mod 0"))
    assert math.isnan(ev("(1 div 0) mod 2"))
    assert ev("5 mod (1 div 0)") == 5
    assert not ok("1 div 0 = 0 div 0")


def test_huge_integers_do_not_overflow():
    huge = 10**400
    assert ev("${a} > 1", {"a": huge}) is True
    assert ok("${a}", {"a": huge}) and ok("not(${a} = 0)", {"a": huge})
    assert ev("${a} * 2", {"a": huge}) == math.inf
    assert ev("${a} = ${a}", {"a": huge}) is True
    assert ev("string(${a} div 1)", {"a": huge}) == "Infinity"


# --- precedence --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 2 - 3", 5),
        ("8 div 2 div 2", 2),
        ("2 * 3 mod 4", 2),
        ("-2 * 3", -6),
        ("1 + 2 = 3", True),
        ("1 < 2 = 2 < 3", True),  # relational binds tighter than equality
        ("1 = 2 < 3", True),  # 1 = (2 < 3) → 1 = true() → true
        ("3 > 2 > 1", False),  # (3 > 2) > 1 → true() > 1 → 1 > 1
        ("true() or false() and false()", True),  # and binds tighter than or
        ("(true() or false()) and false()", False),
        ("not(1 = 1) or 2 = 2", True),
        ("1 = 1 and 2 = 2 or 3 = 4", True),
        ("${a} mod-1", 0),  # `mod-1` is `mod -1`, not a name
    ],
)
def test_precedence(source, expected):
    assert ev(source, {"a": 5}) == expected


# --- functions ------------------------------------------------------------------------------------


def test_selected_and_count_selected_on_lists_and_strings():
    for value in (["credit", "training"], "credit training", " credit  training "):
        answers = {"q": value}
        assert ok("selected(${q}, 'credit')", answers)
        assert ok("selected(${q}, 'training')", answers)
        assert not ok("selected(${q}, 'cred')", answers)
        assert not ok("selected(${q}, '')", answers)
        assert ev("count-selected(${q})", answers) == 2
    assert ev("count-selected(${q})", {"q": []}) == 0
    assert ev("count-selected(${q})", {}) == 0
    assert not ok("selected(${q}, 'x')", {})
    assert ok("selected(${q}, 'a b')", {"q": ["a b", "c"]})  # a list keeps names whole


def test_select_multiple_as_value_is_space_joined():
    assert ok("${q} = 'a b'", {"q": ["a", "b"]})
    assert ok("${q}", {"q": ["a"]})
    assert not ok("${q}", {"q": []})
    assert ev("string-length(${q})", {"q": ["ab", "c"]}) == 4
    assert ok("contains(${q}, 'b c')", {"q": ("a", "b", "c")})


def test_string_functions():
    assert ev("string-length('hello')") == 5
    assert ev("string-length(.)", current="नमस्ते") == 6
    assert ev("string-length()", current="abc") == 3
    assert ev("string-length(${n})", {"n": 12345}) == 5
    assert ev("string(12)") == "12"
    assert ev("string(2.50)") == "2.5"
    assert ev("string(1 div 3)") == "0.3333333333333333"
    assert ev("string(0.0000001)") == "0.0000001"
    assert ev("string(1 div 0)") == "Infinity"
    assert ev("string(-1 div 0)") == "-Infinity"
    assert ev("string(0 div 0)") == "NaN"
    assert ev("string(-0)") == "0"
    assert ev("string(true())") == "true"
    assert ev("string(${d})", {"d": date(2024, 2, 3)}) == "2024-02-03"
    assert ev("string()", current=4) == "4"
    assert ev("contains('kolhapur', 'hap')") is True
    assert ev("contains('kolhapur', 'x')") is False
    assert ev("contains('abc', '')") is True
    assert ev("starts-with('kolhapur', 'kol')") is True
    assert ev("starts-with('kolhapur', 'hap')") is False


def test_number_and_int():
    assert ev("number('12')") == 12
    assert ev("number(' 2.5 ')") == 2.5
    assert math.isnan(ev("number('abc')"))
    assert math.isnan(ev("number('')"))
    assert ev("number(true())") == 1
    assert ev("number()", current="7") == 7
    assert ev("int(3.7)") == 3
    assert ev("int(-3.7)") == -3
    assert ev("int('42.9')") == 42
    assert ev("int(${n})", {"n": 5}) == 5
    assert math.isnan(ev("int('abc')"))
    assert ev("int(1 div 0)") == math.inf


def test_today_uses_the_injected_date():
    assert ev("today()") == "2024-05-17"
    assert parse("today()").evaluate({}, today=datetime(2024, 1, 2, 23, 0)) == "2024-01-02"
    real = parse("today()").evaluate({})
    assert real == date.fromisoformat(real).isoformat()


def test_regex_fullmatch():
    assert ok("regex(., '[0-9]{10}')", current="9876543210")
    assert not ok("regex(., '[0-9]{10}')", current="98765432100")
    assert not ok("regex(., '[0-9]+')", current="12a")  # a full match, not a search
    assert ok("regex(${pin}, '[1-9][0-9]{5}')", {"pin": 416001})
    assert ok("regex(${v}, ${p})", {"v": "abc", "p": "a.c"})


def test_regex_rejects_bad_and_long_patterns():
    with pytest.raises(ExpressionError, match="invalid regex"):
        parse("regex(., '[a-')")
    with pytest.raises(ExpressionError, match="longer than 200"):
        parse("regex(., '" + "a" * 201 + "')")
    parse("regex(., '" + "a" * 200 + "')")
    # Patterns known only at run time cannot fail the form, so they fail the match.
    assert not ok("regex(${v}, ${p})", {"v": "a", "p": "[a-"})
    assert not ok("regex(${v}, ${p})", {"v": "a" * 201, "p": "a" * 201})


def test_coalesce():
    assert ev("coalesce(${a}, 'fallback')", {}) == "fallback"
    assert ev("coalesce(${a}, 'fallback')", {"a": "given"}) == "given"
    assert ev("coalesce(${a}, 'fallback')", {"a": 0}) == 0
    assert ev("coalesce(${a}, ${b})", {"a": [], "b": 3}) == 3


# --- survey-shaped expressions -------------------------------------------------------------------------


def test_typical_constraints_and_relevance():
    in_range = parse(". >= 0 and . <= 100")
    assert in_range.truthy({}, 0) and in_range.truthy({}, 100) and in_range.truthy({}, "55")
    assert not in_range.truthy({}, -1) and not in_range.truthy({}, 101)
    assert not in_range.truthy({}, "") and not in_range.truthy({}, "abc")

    short = parse("string-length(.) <= 10")
    assert short.truthy({}, "ten chars!") and not short.truthy({}, "eleven char")

    not_future = parse(". <= today()")
    assert not_future.truthy({}, date(2024, 5, 17), today=TODAY)
    assert not not_future.truthy({}, date(2024, 5, 18), today=TODAY)

    relevance = parse("selected(${q}, 'credit') or ${n} > 3")
    assert relevance.truthy({"q": ["credit"], "n": 0})
    assert relevance.truthy({"q": "training", "n": "4"})
    assert not relevance.truthy({"q": "training", "n": 3})
    assert not relevance.truthy({})


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message", "column"),
    [
        ("(1 + 2", "never closed", 1),
        ("1 + 2)", "no matching '('", 6),
        ("not(1", "never closed", 4),
        ("if(1, 2 3)", "expected ')'", 9),
        ("eval(1)", "unknown function eval()", 1),
        ("__import__('os')", "unknown function __import__()", 1),
        ("${a}.__class__", "unexpected", 5),
        ("1 = 1; 2", "unexpected character ';'", 6),
        ("'abc", "unterminated string", 1),
        ('1 = "abc', "unterminated string", 5),
        ("${a", "malformed reference", 1),
        ("${1a}", "malformed reference", 1),
        ("$a", "malformed reference", 1),
        ("1 +", "ends where a value was expected", 4),
        ("* 2", "expected a value", 1),
        ("()", "expected a value but found ')'", 2),
        ("1 2", "expected an operator", 3),
        ("age > 1", "unknown name 'age'", 1),
        ("and", "operator 'and'", 1),
        ("selected(${q})", "takes 2 arguments but was given 1", 1),
        ("today(1)", "takes 0 arguments", 1),
        ("not()", "takes 1 argument but was given 0", 1),
        ("1 == 1", "expected a value but found '='", 4),
        ("1 & 2", "unexpected character '&'", 3),
        ("..", "expected an operator", 2),
        ("f(", "unknown function f()", 1),
        ("1 = ${a}}", "unexpected character '}'", 9),
        ("1 = `x`", "unexpected character '`'", 5),
    ],
)
def test_parse_errors_say_what_and_where(source, message, column):
    with pytest.raises(ExpressionError) as raised:
        parse(source)
    assert message in str(raised.value)
    assert raised.value.column == column
    assert f"column {column}" in str(raised.value)


@pytest.mark.parametrize("source", ["", "   ", "\n\t"])
def test_empty_expression(source):
    with pytest.raises(ExpressionError, match="empty expression"):
        parse(source)


def test_error_is_a_value_error():
    assert issubclass(ExpressionError, ValueError)
    with pytest.raises(ValueError):
        parse(")")


def test_non_text_is_refused():
    with pytest.raises(ExpressionError, match="must be text"):
        parse(12)  # type: ignore[arg-type]


def test_length_limit():
    parse("1" + " + 1" * ((MAX_LENGTH - 1) // 4))
    with pytest.raises(ExpressionError, match="limit is 2000"):
        parse("1" + " " * MAX_LENGTH)


def test_long_flat_chains_are_not_deep():
    # 500 additions must neither count as nesting nor exhaust the stack when evaluated.
    assert ev(" + ".join(["1"] * 500)) == 500
    assert ev(" and ".join(["1 = 1"] * 150)) is True
    assert ev("-" * 1999 + "1") == -1


def test_nesting_limit():
    assert ev("(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH) == 1
    assert ev("not(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH) is True
    with pytest.raises(ExpressionError, match="nested deeper than 50"):
        parse("(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(ExpressionError, match="nested deeper than 50"):
        parse("not(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1))


def test_deepest_allowed_nesting_through_every_precedence_level():
    # Each level passes through every precedence level, the worst case for the parser's stack.
    source = "1"
    for _ in range(MAX_DEPTH):
        source = f"(0 or 1 and 1 = 1 < 1 + 1 * -{source})"
    assert len(source) <= MAX_LENGTH
    # `0 or` and `1 and` do not short-circuit, so evaluation reaches the innermost level too.
    assert parse(source).evaluate({}) is False


# --- the Expression object ------------------------------------------------------------------------


def test_expression_value_semantics():
    expression = parse("${a} + 1")
    assert expression == Expression("${a} + 1")
    assert hash(expression) == hash(Expression("${a} + 1"))
    assert expression.source == "${a} + 1"
    assert "${a} + 1" in repr(expression)
    copy = pickle.loads(pickle.dumps(expression))
    assert copy == expression and copy.evaluate({"a": 1}) == 2
    with pytest.raises(ExpressionError):
        Expression("1 +")
    with pytest.raises(AttributeError):
        expression.source = "2"  # type: ignore[misc]


def test_references_returns_a_fresh_set():
    expression = parse("${a}")
    expression.references().add("b")
    assert expression.references() == {"a"}


def test_error_pickles():
    try:
        parse("1 +")
    except ExpressionError as error:
        copy = pickle.loads(pickle.dumps(error))
        assert str(copy) == str(error)


# --- properties ------------------------------------------------------------------------------------

NAMES = ["a", "b", "c", "q"]
answer_values = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.text(max_size=20),
    st.sampled_from(["", "0", "1", "-3", "2.5", " 7 ", "2024-01-31", "a b", "NaN", "1e3"]),
    st.lists(st.sampled_from(["a", "b", "credit", "x y", ""]), max_size=4),
    st.lists(st.text(max_size=5), max_size=3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.dates(),
)
answer_dicts = st.dictionaries(st.sampled_from(NAMES), answer_values, max_size=len(NAMES))

VALID_EXPRESSIONS = [
    parse(source)
    for source in [
        "${a}",
        ".",
        "${a} = ${b}",
        "${a} != ${b}",
        "${a} < ${b} or ${a} <= ${b} or ${a} > ${b} or ${a} >= ${b}",
        "${a} + ${b} - ${c} * ${a} div ${b} mod ${c}",
        "-${a}",
        "not(${a}) and ${b} or ${c}",
        "selected(${q}, 'credit') or ${a} > 3",
        "count-selected(${q}) + count-selected(${a})",
        "string-length(${a}) <= 10",
        "string(${a}) = string(${b})",
        "number(${a}) + int(${b})",
        "int(${a} div ${b})",
        "string(${a} * ${b})",
        ". >= 0 and . <= 100",
        ". <= today()",
        "${a} < today()",
        "regex(${a}, '[a-z]+')",
        "regex(${a}, ${b})",
        "coalesce(${a}, ${b})",
        "if(${a}, ${b}, ${c})",
        "contains(${a}, ${b}) or starts-with(${b}, ${a})",
        "string(${q}) = ${q}",
    ]
]

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(
    expression=st.sampled_from(VALID_EXPRESSIONS),
    answers=answer_dicts,
    current=answer_values,
    today=st.dates(),
)
def test_valid_expressions_never_raise(expression, answers, current, today):
    value = expression.evaluate(answers, current, today=today)
    assert type(value) in (str, bool, int, float)
    assert expression.truthy(answers, current, today=today) in (True, False)


TOKENS = [
    "${a}", "${b}", "${q}", ".", "1", "0", "-", "2.5", "'x'", '"y"', "'", '"', "(", ")", ",",
    "=", "!=", "<", "<=", ">", ">=", "+", "*", "div", "mod", "and", "or", "not(", "selected(",
    "count-selected(", "string-length(", "string(", "number(", "int(", "today()", "regex(",
    "coalesce(", "if(", "contains(", "starts-with(", "true()", "false()", "eval(", ";", "$", "{",
    "}", " ",
]  # fmt: skip


@FAST
@given(st.one_of(st.text(max_size=60), st.lists(st.sampled_from(TOKENS), max_size=25).map("".join)))
def test_parse_only_raises_expression_error(source):
    try:
        expression = parse(source)
    except ExpressionError as error:
        assert str(error)
        return
    # Whatever parses must evaluate without raising, too.
    expression.evaluate({"a": "1", "b": ["x"], "q": 2.5}, "3", today=TODAY)


leaves = st.sampled_from(
    ["${a}", "${b}", "${q}", ".", "1", "0", "2.5", "'x'", "''", "'2024-01-02'", "true()",
     "false()", "today()"]
)  # fmt: skip


def _grow(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(
        children,
        st.sampled_from(
            ["=", "!=", "<", "<=", ">", ">=", "+", "-", "*", "div", "mod", "and", "or"]
        ),
        children,
    ).map(lambda parts: f"({parts[0]} {parts[1]} {parts[2]})")
    one = st.tuples(
        st.sampled_from(["not", "string", "number", "int", "string-length", "count-selected", "-"]),
        children,
    ).map(lambda parts: f"{parts[0]}({parts[1]})")
    two = st.tuples(
        st.sampled_from(["selected", "coalesce", "contains", "starts-with", "regex"]),
        children,
        children,
    ).map(lambda parts: f"{parts[0]}({parts[1]}, {parts[2]})")
    three = st.tuples(children, children, children).map(
        lambda parts: "if({}, {}, {})".format(*parts)
    )
    return st.one_of(binary, one, two, three)


expressions = st.recursive(leaves, _grow, max_leaves=12)


@FAST
@given(source=expressions, answers=answer_dicts, current=answer_values)
def test_not_is_the_negation_of_truthy(source, answers, current):
    try:
        expression = parse(source)
        negated = parse(f"not({source})")
    except ExpressionError as error:
        assume("nested deeper" not in str(error))
        raise
    truth = expression.truthy(answers, current, today=TODAY)
    assert negated.truthy(answers, current, today=TODAY) is (not truth)
    assert negated.evaluate(answers, current, today=TODAY) is (not truth)
