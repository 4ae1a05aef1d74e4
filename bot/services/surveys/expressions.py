"""A safe evaluator for the XLSForm/ODK XPath subset used in ``relevant`` and ``constraint``.

Survey files come from people outside the codebase, so expressions are tokenised and parsed by
hand into a small tree and interpreted; nothing is handed to eval, exec or Python's compiler.
Values follow XPath 1.0 (as JavaRosa does) so that forms behave as they do in ODK Collect.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple

__all__ = ["Expression", "ExpressionError", "parse"]

MAX_LENGTH = 2000
MAX_DEPTH = 50
# Python has no regex timeout, so the pattern length is the one cheap bound on backtracking cost.
MAX_PATTERN = 200

_NAN = math.nan


class ExpressionError(ValueError):
    """An expression that cannot be parsed; the message says what is wrong and at which column."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.offset = offset
        self.column = None if offset is None else offset + 1
        super().__init__(message if offset is None else f"{message} (at column {offset + 1})")


# --- values -------------------------------------------------------------------------------------
# Inside the evaluator a value is str, bool, int, float or list[str] (a select_multiple answer kept
# as a list so that choice names are not re-split). Everything else is normalised on the way in.

_XPATH_NUMBER = re.compile(r"[ \t\r\n]*(-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))[ \t\r\n]*")
# Date answers arrive as ISO strings; a datetime's ISO form (with a T part) still sorts correctly.
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:T[0-9:.]+(?:Z|[+-][0-9:]+)?)?")
_EXACT_FLOAT = 2**53


def _from_answer(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return [_to_string(_from_answer(item)) for item in value]
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _to_number(value: Any) -> int | float:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    # XPath number() accepts only plain decimals, unlike float() which takes "1e5", "inf", "1_0".
    match = _XPATH_NUMBER.fullmatch(_to_string(value))
    return float(match.group(1)) if match else _NAN


def _to_float(value: Any) -> float:
    number = _to_number(value)
    try:
        return float(number)
    except OverflowError:  # an int beyond float range is, as a double, an infinity
        return math.inf if number > 0 else -math.inf


def _plain(number: float) -> int | float:
    """Integral doubles as ints, so results read as "3" rather than "3.0" wherever they are shown."""
    # -0.0 stays a float: 1 div -0 must still be -Infinity.
    negative_zero = number == 0 and math.copysign(1.0, number) < 0
    if number.is_integer() and abs(number) <= _EXACT_FLOAT and not negative_zero:
        return int(number)
    return number


def _format_number(number: int | float) -> str:
    if isinstance(number, int):
        try:
            return str(number)
        except ValueError:  # longer than Python's int-to-str digit limit
            return _format_number(_to_float(number))
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number.is_integer():
        return str(int(number))
    # XPath never uses exponent notation: 1e-07 is "0.0000001".
    return format(Decimal(repr(number)), "f")


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _format_number(value)
    if isinstance(value, list):
        return " ".join(value)
    return str(value)


def _to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, float):
        return value != 0 and not math.isnan(value)
    return len(value) > 0


def _public(value: Any) -> Any:
    return _to_string(value) if isinstance(value, list) else value


# --- operators ----------------------------------------------------------------------------------


def _equal(left: Any, right: Any) -> bool:
    # XPath 1.0 (and JavaRosa) give booleans priority over numbers, then numbers over strings.
    if isinstance(left, bool) or isinstance(right, bool):
        return _to_boolean(left) == _to_boolean(right)
    if _is_number(left) or _is_number(right):
        return _to_number(left) == _to_number(right)
    return _to_string(left) == _to_string(right)


def _relational(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def operator(left: Any, right: Any) -> bool:
        # ISO dates order correctly as text, which keeps `. <= today()` working on date answers.
        if (
            isinstance(left, str)
            and isinstance(right, str)
            and _ISO_DATE.fullmatch(left)
            and _ISO_DATE.fullmatch(right)
        ):
            return compare(left, right)
        # Python's int/float comparisons are exact and false against NaN, as XPath requires.
        return compare(_to_number(left), _to_number(right))

    return operator


def _divide(left: float, right: float) -> float:
    if right == 0:
        if left == 0 or math.isnan(left):
            return _NAN
        return math.copysign(math.inf, left) * math.copysign(1.0, right)
    return left / right


def _modulo(left: float, right: float) -> float:
    # XPath mod truncates (the sign follows the dividend), which is fmod, not Python's %.
    if right == 0 or math.isnan(left) or math.isnan(right) or math.isinf(left):
        return _NAN
    return math.fmod(left, right)


def _arithmetic(compute: Callable[[float, float], float]) -> Callable[[Any, Any], int | float]:
    def operator(left: Any, right: Any) -> int | float:
        return _plain(compute(_to_float(left), _to_float(right)))

    return operator


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "=": _equal,
    "!=": lambda left, right: not _equal(left, right),
    "<": _relational(lambda a, b: a < b),
    "<=": _relational(lambda a, b: a <= b),
    ">": _relational(lambda a, b: a > b),
    ">=": _relational(lambda a, b: a >= b),
    "+": _arithmetic(lambda a, b: a + b),
    "-": _arithmetic(lambda a, b: a - b),
    "*": _arithmetic(lambda a, b: a * b),
    "div": _arithmetic(_divide),
    "mod": _arithmetic(_modulo),
}


# --- functions ----------------------------------------------------------------------------------


class _Context:
    __slots__ = ("answers", "current", "today")

    def __init__(self, answers: Mapping[str, Any], current: Any, today: date | None) -> None:
        self.answers = answers
        self.current = _from_answer(current)
        self.today = today


def _selected(context: _Context, args: list[Any]) -> bool:
    wanted = _to_string(args[1]).strip()
    if not wanted:
        return False
    if isinstance(args[0], list):
        return wanted in (item.strip() for item in args[0])
    return wanted in _to_string(args[0]).split()


def _count_selected(context: _Context, args: list[Any]) -> int:
    if isinstance(args[0], list):
        return sum(1 for item in args[0] if item.strip())
    return len(_to_string(args[0]).split())


def _argument_or_current(context: _Context, args: list[Any]) -> Any:
    # XPath's one-argument string functions default to the context node, which for us is `.`.
    return args[0] if args else context.current


def _int(context: _Context, args: list[Any]) -> int | float:
    number = _to_number(args[0])
    if isinstance(number, int) or math.isnan(number) or math.isinf(number):
        return number
    return math.trunc(number)


def _today(context: _Context, args: list[Any]) -> str:
    day = context.today or date.today()
    # A datetime passed as the clock must still give a plain date.
    return date(day.year, day.month, day.day).isoformat()


@lru_cache(maxsize=256)
def _compile_pattern(pattern: str) -> re.Pattern[str] | None:
    if len(pattern) > MAX_PATTERN:
        return None
    try:
        return re.compile(pattern)
    except (re.error, OverflowError, RecursionError, ValueError):
        return None


def _regex(context: _Context, args: list[Any]) -> bool:
    # A pattern that only arrives at run time (from an answer) cannot fail the form, so it fails
    # the match instead; literal patterns are checked when the expression is parsed.
    compiled = _compile_pattern(_to_string(args[1]))
    return compiled is not None and compiled.fullmatch(_to_string(args[0])) is not None


def _coalesce(context: _Context, args: list[Any]) -> Any:
    return args[0] if _to_string(args[0]) != "" else args[1]


class _Function(NamedTuple):
    minimum: int
    maximum: int
    call: Callable[[_Context, list[Any]], Any]


_FUNCTIONS: dict[str, _Function] = {
    "true": _Function(0, 0, lambda context, args: True),
    "false": _Function(0, 0, lambda context, args: False),
    "not": _Function(1, 1, lambda context, args: not _to_boolean(args[0])),
    "selected": _Function(2, 2, _selected),
    "count-selected": _Function(1, 1, _count_selected),
    "string-length": _Function(
        0, 1, lambda context, args: len(_to_string(_argument_or_current(context, args)))
    ),
    "string": _Function(
        0, 1, lambda context, args: _to_string(_argument_or_current(context, args))
    ),
    "number": _Function(
        0, 1, lambda context, args: _plain(_to_float(_argument_or_current(context, args)))
    ),
    "int": _Function(1, 1, _int),
    "today": _Function(0, 0, _today),
    "regex": _Function(2, 2, _regex),
    "coalesce": _Function(2, 2, _coalesce),
    "if": _Function(3, 3, lambda context, args: None),  # lazy: evaluated by _If, never called
    "contains": _Function(2, 2, lambda context, args: _to_string(args[1]) in _to_string(args[0])),
    "starts-with": _Function(
        2, 2, lambda context, args: _to_string(args[0]).startswith(_to_string(args[1]))
    ),
}


# --- syntax tree --------------------------------------------------------------------------------


class _Node(ABC):
    __slots__ = ()

    @abstractmethod
    def eval(self, context: _Context) -> Any:
        """The node's value for one set of answers."""


class _Literal(_Node):
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def eval(self, context: _Context) -> Any:
        return self.value


class _Reference(_Node):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def eval(self, context: _Context) -> Any:
        return _from_answer(context.answers.get(self.name))


class _Current(_Node):
    __slots__ = ()

    def eval(self, context: _Context) -> Any:
        return context.current


class _Negate(_Node):
    __slots__ = ("operand", "odd")

    def __init__(self, operand: _Node, odd: bool) -> None:
        self.operand = operand
        self.odd = odd

    def eval(self, context: _Context) -> Any:
        # An even run of minus signs still converts to a number: --'5' is 5, --'x' is NaN.
        number = _to_float(self.operand.eval(context))
        return _plain(-number if self.odd else number)


class _Or(_Node):
    __slots__ = ("operands",)

    def __init__(self, operands: Sequence[_Node]) -> None:
        self.operands = tuple(operands)

    def eval(self, context: _Context) -> bool:
        return any(_to_boolean(operand.eval(context)) for operand in self.operands)


class _And(_Node):
    __slots__ = ("operands",)

    def __init__(self, operands: Sequence[_Node]) -> None:
        self.operands = tuple(operands)

    def eval(self, context: _Context) -> bool:
        return all(_to_boolean(operand.eval(context)) for operand in self.operands)


class _Chain(_Node):
    """A run of left-associative operators of one precedence level, kept flat so that a long
    `1 + 1 + ... + 1` does not become a tree deep enough to exhaust Python's stack."""

    __slots__ = ("first", "rest")

    def __init__(self, first: _Node, rest: Sequence[tuple[str, _Node]]) -> None:
        self.first = first
        self.rest = tuple(rest)

    def eval(self, context: _Context) -> Any:
        value = self.first.eval(context)
        for operator, operand in self.rest:
            value = _BINARY[operator](value, operand.eval(context))
        return value


class _Call(_Node):
    __slots__ = ("function", "arguments")

    def __init__(self, function: _Function, arguments: Sequence[_Node]) -> None:
        self.function = function
        self.arguments = tuple(arguments)

    def eval(self, context: _Context) -> Any:
        return self.function.call(context, [argument.eval(context) for argument in self.arguments])


class _If(_Node):
    __slots__ = ("condition", "then", "otherwise")

    def __init__(self, condition: _Node, then: _Node, otherwise: _Node) -> None:
        self.condition = condition
        self.then = then
        self.otherwise = otherwise

    def eval(self, context: _Context) -> Any:
        branch = self.then if _to_boolean(self.condition.eval(context)) else self.otherwise
        return branch.eval(context)


# --- tokens -------------------------------------------------------------------------------------


class _Token(NamedTuple):
    kind: str  # number, string, reference, name, symbol, end
    text: str
    offset: int


# \s is Unicode-aware on purpose: spreadsheet cells often carry non-breaking spaces.
_WHITESPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
# A hyphen joins name parts only before a letter, so `count-selected` is one name while
# `${a} mod-1` still reads as `mod - 1`.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z_][A-Za-z0-9_]*)*")
_SYMBOL = re.compile(r"!=|<=|>=|[=<>+\-*(),.]")


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    offset = 0
    while offset < len(source):
        if match := _WHITESPACE.match(source, offset):
            offset = match.end()
            continue
        character = source[offset]
        if match := _NUMBER.match(source, offset):
            tokens.append(_Token("number", match.group(), offset))
        elif character in "'\"":
            end = source.find(character, offset + 1)
            if end < 0:
                raise ExpressionError(
                    f"unterminated string: the {character} is never closed", offset
                )
            tokens.append(_Token("string", source[offset + 1 : end], offset))
            offset = end + 1
            continue
        elif character == "$":
            match = _REFERENCE.match(source, offset)
            if not match:
                raise ExpressionError(
                    "malformed reference: write ${name}, where the name starts with a letter or _ "
                    "and has only letters, digits, _ . -",
                    offset,
                )
            tokens.append(_Token("reference", match.group(1), offset))
        elif match := _NAME.match(source, offset):
            tokens.append(_Token("name", match.group(), offset))
        elif match := _SYMBOL.match(source, offset):
            tokens.append(_Token("symbol", match.group(), offset))
        else:
            raise ExpressionError(f"unexpected character {character!r}", offset)
        offset = match.end()
    tokens.append(_Token("end", "", len(source)))
    return tokens


# --- parser -------------------------------------------------------------------------------------

_OPERATOR_WORDS = frozenset({"and", "or", "div", "mod"})


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "the end of the expression"
    if token.kind == "string":
        return f"the string {token.text!r}"
    if token.kind == "reference":
        return f"${{{token.text}}}"
    return repr(token.text)


class _Parser:
    """Recursive descent, one method per XPath precedence level, lowest first."""

    def __init__(self, source: str) -> None:
        self.tokens = _tokenize(source)
        self.index = 0
        self.depth = 0
        self.references: set[str] = set()

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at(self, kind: str, *texts: str) -> bool:
        return self.token.kind == kind and self.token.text in texts

    def parse(self) -> _Node:
        if self.token.kind == "end":
            raise ExpressionError("empty expression")
        node = self.or_expression()
        token = self.token
        if token.kind == "end":
            return node
        if token.text == ")":
            raise ExpressionError(
                "unbalanced parentheses: this ')' has no matching '('", token.offset
            )
        raise ExpressionError(
            f"unexpected {_describe(token)}: expected an operator or the end of the expression",
            token.offset,
        )

    def enter(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(
                f"expression is nested deeper than {MAX_DEPTH} levels", token.offset
            )

    def close(self, opening: _Token, what: str) -> None:
        token = self.token
        if token.kind == "symbol" and token.text == ")":
            self.advance()
            self.depth -= 1
            return
        if token.kind == "end":
            raise ExpressionError(
                f"unbalanced parentheses: the '(' of {what} is never closed", opening.offset
            )
        raise ExpressionError(
            f"expected ')' to close {what} (opened at column {opening.offset + 1}) "
            f"but found {_describe(token)}",
            token.offset,
        )

    def or_expression(self) -> _Node:
        operands = [self.and_expression()]
        while self.at("name", "or"):
            self.advance()
            operands.append(self.and_expression())
        return operands[0] if len(operands) == 1 else _Or(operands)

    def and_expression(self) -> _Node:
        operands = [self.equality()]
        while self.at("name", "and"):
            self.advance()
            operands.append(self.equality())
        return operands[0] if len(operands) == 1 else _And(operands)

    def chain(self, kind: str, operators: tuple[str, ...], operand: Callable[[], _Node]) -> _Node:
        first = operand()
        rest = []
        while self.at(kind, *operators):
            rest.append((self.advance().text, operand()))
        return _Chain(first, rest) if rest else first

    def equality(self) -> _Node:
        return self.chain("symbol", ("=", "!="), self.relational)

    def relational(self) -> _Node:
        return self.chain("symbol", ("<", "<=", ">", ">="), self.additive)

    def additive(self) -> _Node:
        return self.chain("symbol", ("+", "-"), self.multiplicative)

    def multiplicative(self) -> _Node:
        first = self.unary()
        rest = []
        while self.at("symbol", "*") or self.at("name", "div", "mod"):
            rest.append((self.advance().text, self.unary()))
        return _Chain(first, rest) if rest else first

    def unary(self) -> _Node:
        # Counted in a loop rather than by recursion, so `------1` costs no stack.
        minuses = 0
        while self.at("symbol", "-"):
            self.advance()
            minuses += 1
        operand = self.primary()
        return _Negate(operand, minuses % 2 == 1) if minuses else operand

    def primary(self) -> _Node:
        token = self.advance()
        if token.kind == "number":
            return _Literal(_plain(float(token.text)))
        if token.kind == "string":
            return _Literal(token.text)
        if token.kind == "reference":
            self.references.add(token.text)
            return _Reference(token.text)
        if token.kind == "symbol" and token.text == ".":
            return _Current()
        if token.kind == "symbol" and token.text == "(":
            self.enter(token)
            node = self.or_expression()
            self.close(token, "this group")
            return node
        if token.kind == "name":
            return self.call(token)
        if token.kind == "end":
            raise ExpressionError("the expression ends where a value was expected", token.offset)
        if token.text == ")":
            raise ExpressionError("expected a value but found ')'", token.offset)
        raise ExpressionError(f"expected a value but found {_describe(token)}", token.offset)

    def call(self, name: _Token) -> _Node:
        if name.text in _OPERATOR_WORDS:
            raise ExpressionError(
                f"expected a value but found the operator {name.text!r}", name.offset
            )
        if not self.at("symbol", "("):
            raise ExpressionError(
                f"unknown name {name.text!r}: answers are written ${{{name.text}}}, "
                "functions need parentheses",
                name.offset,
            )
        function = _FUNCTIONS.get(name.text)
        if function is None:
            raise ExpressionError(
                f"unknown function {name.text}(); the supported ones are "
                + ", ".join(f"{known}()" for known in _FUNCTIONS),
                name.offset,
            )
        opening = self.advance()
        self.enter(opening)
        arguments: list[_Node] = []
        argument_offsets: list[int] = []
        if not self.at("symbol", ")"):
            while True:
                argument_offsets.append(self.token.offset)
                arguments.append(self.or_expression())
                if not self.at("symbol", ","):
                    break
                self.advance()
        self.close(opening, f"{name.text}()")
        if not function.minimum <= len(arguments) <= function.maximum:
            expected = (
                str(function.minimum)
                if function.minimum == function.maximum
                else f"{function.minimum} to {function.maximum}"
            )
            raise ExpressionError(
                f"{name.text}() takes {expected} argument{'s' if expected != '1' else ''} "
                f"but was given {len(arguments)}",
                name.offset,
            )
        if name.text == "if":
            return _If(*arguments)
        if name.text == "regex" and isinstance(arguments[1], _Literal):
            self.check_pattern(arguments[1].value, argument_offsets[1])
        return _Call(function, arguments)

    @staticmethod
    def check_pattern(pattern: Any, offset: int) -> None:
        pattern = _to_string(pattern)
        if len(pattern) > MAX_PATTERN:
            raise ExpressionError(f"regex pattern is longer than {MAX_PATTERN} characters", offset)
        try:
            re.compile(pattern)
        except re.error as error:
            raise ExpressionError(f"invalid regex pattern: {error}", offset) from None
        except (OverflowError, RecursionError, ValueError):
            raise ExpressionError("invalid regex pattern", offset) from None


# --- public API ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expression:
    """A parsed expression; building one (directly or through parse()) validates the source."""

    source: str
    _root: _Node = field(init=False, repr=False, compare=False)
    _references: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.source, str):
            raise ExpressionError(f"an expression must be text, not {type(self.source).__name__}")
        if len(self.source) > MAX_LENGTH:
            raise ExpressionError(
                f"expression is {len(self.source)} characters long; the limit is {MAX_LENGTH}"
            )
        parser = _Parser(self.source)
        try:
            root = parser.parse()
        except RecursionError:
            # The depth limit should make this unreachable; it is here so that no input can
            # surface as anything but ExpressionError.
            raise ExpressionError("expression is nested too deeply") from None
        object.__setattr__(self, "_root", root)
        object.__setattr__(self, "_references", frozenset(parser.references))

    def __reduce__(self) -> tuple[Any, ...]:
        # The tree holds functions; re-parsing the source is the simple way to copy or pickle.
        return (parse, (self.source,))

    def references(self) -> set[str]:
        """The answer names used as ${name}."""
        return set(self._references)

    def _raw(self, answers: Mapping[str, Any], current: Any, today: date | None) -> Any:
        return self._root.eval(_Context(answers, current, today))

    def evaluate(
        self, answers: Mapping[str, Any], current: Any = None, *, today: date | None = None
    ) -> Any:
        """The value: str, bool, int or float (a select_multiple comes back space-joined).

        ``current`` is what `.` means (the answer being validated); ``today`` fixes the clock."""
        return _public(self._raw(answers, current, today))

    def truthy(
        self, answers: Mapping[str, Any], current: Any = None, *, today: date | None = None
    ) -> bool:
        """XPath boolean() of the value: the answer to a `relevant` or `constraint`."""
        return _to_boolean(self._raw(answers, current, today))


def parse(source: str) -> Expression:
    """Parse an expression, raising ExpressionError for anything outside the supported subset."""
    return Expression(source)
