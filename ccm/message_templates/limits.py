"""Size caps for rendering: refuse a value before it is built if it would be too large.

The watchdog cannot interrupt a single C call (``'x' * 10**9``), so every operator, filter and
string method that can build a result much larger than its inputs is sized first, and
everything built is charged to a per-render work budget so that many small steps cannot add up
to the same thing. A size is in characters for strings and items for lists.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.filters import make_attrgetter
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import soft_str

MAX_RANGE = 100_000
"""Most items ``range()`` may produce."""

MAX_WIDTH = 100
"""Widest field (``%500s``) or JSON indent a template may ask for."""

MAX_INT_BITS = 16_384
"""Largest integer arithmetic may produce: a few thousand digits, cheap to compute."""

WORK_FACTOR = 10
"""Operations that build text may build this many times ``max_chars`` in total per render."""


class LimitExceeded(Exception):
    """A value or the output would grow past the sandbox's limits."""


@dataclass
class _WorkBudget:
    remaining: int

    def spend(self, size: int) -> None:
        self.remaining -= size
        if self.remaining < 0:
            raise LimitExceeded("the template builds too much text while rendering")


# Rendering is synchronous, so the size checks find the budget of the render in progress here.
_BUDGET: ContextVar[_WorkBudget] = ContextVar("ccm_template_work_budget")


@contextmanager
def work_budget(size: int) -> Iterator[None]:
    """Let the block build values of ``size`` characters (or items) in total."""
    token = _BUDGET.set(_WorkBudget(size))
    try:
        yield
    finally:
        _BUDGET.reset(token)


class _BoundedCodeGenerator(CodeGenerator):
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # Hand the operands over unjoined so they can be sized before the join allocates.
        self.write("environment.bounded_concat(context.eval_ctx, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with every amplifying operation sized before it runs.

    Parameters:
        max_chars: Longest value any single operation may build.
        options: Passed on to Jinja's environment.
    """

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, *, max_chars: int, **options: Any) -> None:
        # Constant folding would run template code at compile time, outside the size budget.
        super().__init__(optimized=False, **options)
        self.max_chars = max_chars
        self.globals["range"] = _bounded_range
        for name, size_of in _FILTER_SIZES.items():
            self.filters[name] = self._bounded(self.filters[name], size_of)
        self.filters["join"] = self._bounded_join_filter(self.filters["join"])

    def getattr(self, obj: Any, attribute: str) -> Any:
        return self._bounded_method(obj, attribute, super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        value = super().getitem(obj, argument)
        return self._bounded_method(obj, argument, value) if isinstance(argument, str) else value

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            self._check_product(left, right)
        elif operator == "+" and _is_sized(left) and _is_sized(right):
            self.check_size(len(left) + len(right))
        elif operator == "%" and isinstance(left, (str, bytes)):
            _check_printf_widths(left.decode("latin-1") if isinstance(left, bytes) else left)
        return self.produced(self.binop_table[operator](left, right))

    def bounded_concat(self, eval_ctx: Any, values: tuple[Any, ...]) -> str:
        """Join the operands of ``~``, refusing before the join if they are already too long."""
        self.check_size(sum(len(value) for value in values if isinstance(value, str)))
        return self.produced((markup_join if eval_ctx.autoescape else str_join)(values))

    def concat(self, parts: Any) -> str:
        """Join captured output (``{% set %}`` blocks, macros, ``caller()``) within the limits."""
        parts = list(parts)
        self.check_size(sum(map(len, parts)))
        return self.produced("".join(parts))

    def check_size(self, size: int) -> None:
        """Refuse a result of ``size`` characters (or items) before it is built."""
        if size > self.max_chars:
            raise LimitExceeded(f"the result would be {size:,} characters long; the limit is {self.max_chars:,}")

    def produced(self, value: Any) -> Any:
        """Check a freshly built value and charge it to the budget of the render in progress."""
        if isinstance(value, (str, bytes, list, tuple)):
            self.check_size(len(value))
            budget = _BUDGET.get(None)
            if budget is not None:
                budget.spend(len(value))
        return value

    def _check_product(self, left: Any, right: Any) -> None:
        if isinstance(left, int) and isinstance(right, int):
            _check_int_bits(left.bit_length() + right.bit_length())
        elif _is_sized(left) and isinstance(right, int):
            self.check_size(len(left) * right)
        elif _is_sized(right) and isinstance(left, int):
            self.check_size(len(right) * left)

    def _bounded_method(self, obj: Any, name: str, value: Any) -> Any:
        if not isinstance(obj, (str, bytes)):
            return value
        if name == "join":
            return self._bounded(value, lambda parts: _joined_size(obj, parts), materialize=True)
        size_of = _METHOD_SIZES.get(name)
        return value if size_of is None else self._bounded(value, functools.partial(size_of, obj))

    def _bounded(
        self, func: Callable[..., Any], size_of: Callable[..., int], *, materialize: bool = False
    ) -> Callable[..., Any]:
        """Wrap ``func`` so ``size_of`` (given the same arguments) vets its result before it is built.

        ``materialize`` turns the first argument into a list first, for ``str.join`` and its iterable.
        """

        @functools.wraps(func)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            if materialize:
                args = (list(args[0]), *args[1:])
            self.check_size(size_of(*args, **kwargs))
            return self.produced(func(*args, **kwargs))

        return bounded

    def _bounded_join_filter(self, join: Callable[..., str]) -> Callable[..., str]:
        @functools.wraps(join)
        def bounded(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
            if attribute is not None:
                value = map(make_attrgetter(self, attribute), value)
            parts = [soft_str(item) for item in value]
            self.check_size(_joined_size(soft_str(d), parts))
            return self.produced(join(eval_ctx, parts, d))

        return bounded


# What follows a printf field's '%' and its optional '(key)': flags, width, precision, length, conversion.
_PRINTF_SPEC = re.compile(r"[#0 +-]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.?)", re.DOTALL)
_PARENTHESES = {"(": 1, ")": -1}


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    try:
        too_long = len(numbers) > MAX_RANGE
    except OverflowError:
        too_long = True
    if too_long:
        raise LimitExceeded(f"range() is limited to {MAX_RANGE:,} items")
    return numbers


def _is_sized(value: Any) -> bool:
    return isinstance(value, (str, bytes, list, tuple))


def _int_or_zero(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _check_int_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise LimitExceeded(f"numbers larger than {MAX_INT_BITS:,} bits are not allowed")


def _check_power(base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        _check_int_bits(base.bit_length() * exponent)


def _check_width(width: int) -> None:
    if width > MAX_WIDTH:
        raise LimitExceeded(f"widths above {MAX_WIDTH} are not allowed")


def printf_fields(fmt: str) -> tuple[tuple[str, str, str], ...]:
    """The width, precision and conversion of every field of a printf-style format, as Python's
    ``%`` reads them (``''`` where one is absent; ``%%`` is a field converting ``'%'``)."""
    # Formats are mostly short literals in the template, parsed again at every render.
    return _cached_printf_fields(fmt) if len(fmt) <= 200 else _parse_printf_fields(fmt)


def _parse_printf_fields(fmt: str) -> tuple[tuple[str, str, str], ...]:
    fields = []
    start = fmt.find("%")
    while start != -1:
        position = _after_key(fmt, start + 1)
        match = _PRINTF_SPEC.match(fmt, position)
        assert match is not None  # every part of the pattern is optional
        fields.append((match.group(1) or "", match.group(2) or "", match.group(3)))
        start = fmt.find("%", match.end())
    return tuple(fields)


_cached_printf_fields = functools.lru_cache(maxsize=1024)(_parse_printf_fields)


def _after_key(fmt: str, position: int) -> int:
    """Skip a mapping key such as ``(name)`` at ``position``; Python lets keys nest parentheses."""
    if not fmt.startswith("(", position):
        return position
    depth = 0
    for index in range(position, len(fmt)):
        depth += _PARENTHESES.get(fmt[index], 0)
        if depth == 0:
            return index + 1
    return len(fmt)


def _check_printf_widths(fmt: str) -> None:
    for width, precision, _ in printf_fields(fmt):
        for number in filter(None, (width, precision)):
            if number == "*":
                raise LimitExceeded("'*' widths are not allowed")
            _check_width(int(number) if len(number) <= 4 else MAX_WIDTH + 1)


def _joined_size(separator: Any, parts: list[Any]) -> int:
    text = sum(len(part) for part in parts if isinstance(part, (str, bytes)))
    return text + len(separator) * max(len(parts) - 1, 0)


def _replace_size(s: Any, old: Any, new: Any, count: Any = -1) -> int:
    hits = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(s) + hits * len(new)


def _pad_size(s: Any, width: Any = 80, *_: Any) -> int:
    return max(len(soft_str(s)), _int_or_zero(width))


def _expandtabs_size(s: Any, tabsize: Any = 8) -> int:
    return len(s) + s.count("\t" if isinstance(s, str) else b"\t") * _int_or_zero(tabsize)


def _translate_size(s: Any, table: Any) -> int:
    values = table.values() if isinstance(table, Mapping) else table if isinstance(table, (list, tuple)) else ()
    widest = max((len(value) for value in values if isinstance(value, (str, bytes))), default=1)
    return len(s) * max(widest, 1)


def _replace_filter_size(_eval_ctx: Any, s: Any, old: Any, new: Any, count: Any = None) -> int:
    return _replace_size(soft_str(s), soft_str(old), soft_str(new), count)


def _indent_size(s: Any, width: Any = 4, first: Any = False, blank: Any = False) -> int:
    text = soft_str(s)
    unit = len(width) if isinstance(width, str) else _int_or_zero(width)
    return len(text) + (text.count("\n") + 1) * unit


def _wordwrap_size(
    _env: Any,
    s: Any,
    width: Any = 79,
    break_long_words: Any = True,
    wrapstring: Any = None,
    break_on_hyphens: Any = True,
) -> int:
    # Every wrapped line holds at least one character, so there are at most len(text) breaks.
    separator = len(wrapstring) if isinstance(wrapstring, str) else 1
    return len(soft_str(s)) * (1 + separator)


def _format_size(value: Any, *args: Any, **kwargs: Any) -> int:
    text = soft_str(value)
    _check_printf_widths(text)
    return len(text)


def _tojson_size(_eval_ctx: Any, value: Any, indent: Any = None) -> int:
    _check_width(len(indent) if isinstance(indent, str) else _int_or_zero(indent))
    return 0


def _urlize_size(
    _eval_ctx: Any,
    value: Any,
    trim_url_limit: Any = None,
    nofollow: Any = False,
    target: Any = None,
    rel: Any = None,
    extra_schemes: Any = None,
) -> int:
    # Every link needs a '.', '@' or ':'; each repeats its address and carries the attributes.
    text = soft_str(value)
    links = text.count(".") + text.count("@") + text.count(":") + 1
    return 2 * len(text) + links * (64 + len(soft_str(target or "")) + len(soft_str(rel or "")))


def _batch_size(value: Any, linecount: Any, fill_with: Any = None) -> int:
    return _int_or_zero(linecount)


def _slice_size(_eval_ctx: Any, value: Any, slices: Any, fill_with: Any = None) -> int:
    # The registered slice filter is Jinja's async-variant wrapper, which also takes the eval context.
    return _int_or_zero(slices)


def _sum_size(_env: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> int:
    # Adding lists runs one C loop that grows a list quadratically; numbers are all sum is for.
    if not isinstance(start, (int, float)):
        raise SecurityError("the sum filter only adds numbers")
    return 0


# Filters and str/bytes methods whose result can be far larger than their arguments, each with a
# function taking the same arguments that returns the largest size the result could have.
_FILTER_SIZES: dict[str, Callable[..., int]] = {
    "batch": _batch_size,
    "center": _pad_size,
    "format": _format_size,
    "indent": _indent_size,
    "replace": _replace_filter_size,
    "slice": _slice_size,
    "sum": _sum_size,
    "tojson": _tojson_size,
    "urlize": _urlize_size,
    "wordwrap": _wordwrap_size,
}
_METHOD_SIZES: dict[str, Callable[..., int]] = {
    "center": _pad_size,
    "expandtabs": _expandtabs_size,
    "ljust": _pad_size,
    "replace": _replace_size,
    "rjust": _pad_size,
    "translate": _translate_size,
    "zfill": _pad_size,
}
