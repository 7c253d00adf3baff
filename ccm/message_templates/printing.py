"""Only plain data becomes text: a render never prints a function, class, module or address.

``str()`` of a function or class shows its name, module and memory address, and a container's
text shows the ``repr`` of everything inside it, so checking what ``{{ ... }}`` prints at the top
is not enough. Every point where the sandbox turns a value into text checks the whole value
first: output, ``~``, ``%``, calls to ``Markup``'s methods, and every filter not known to leave its
arguments alone (so a filter Jinja adds later is checked too). Plain data is str, Markup, int,
float, bool and None, and lists, tuples and dicts of them; anything else is refused with an
error saying what it is, and the render fails rather than send a message with a hole in it.
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

from jinja2 import StrictUndefined, pass_context
from jinja2.environment import TemplateModule
from jinja2.exceptions import SecurityError
from jinja2.filters import make_attrgetter
from jinja2.runtime import LoopContext, Macro, TemplateReference, Undefined
from jinja2.utils import Namespace, _PassArg, missing
from markupsafe import Markup

from ccm.message_templates.limits import BoundedEnvironment, LimitExceeded, printf_fields

_SCALARS = frozenset({str, Markup, int, float, bool, type(None)})

PASS_THROUGH_FILTERS = frozenset(
    {
        "abs",
        "attr",
        "batch",
        "count",
        "d",
        "default",
        "dictsort",
        "first",
        "float",
        "groupby",
        "int",
        "items",
        "last",
        "length",
        "list",
        "map",
        "max",
        "min",
        "random",
        "reject",
        "rejectattr",
        "reverse",
        "round",
        "select",
        "selectattr",
        "slice",
        "sort",
        "sum",
        "unique",
    }
)
"""Filters that never turn an argument into text; what they return is checked where it is printed.
Every other filter has its arguments checked."""

_DATA_NOUNS = {
    str: "a string",
    Markup: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "none",
    list: "a list",
    tuple: "a list",
    dict: "a dict",
}
_OBJECT_NOUNS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (type, "a class"),
    (ModuleType, "a module"),
    (LoopContext, "the loop variable"),
    (Macro, "a macro"),
    (Namespace, "a namespace"),
    (TemplateReference, "a template reference"),
    (TemplateModule, "an imported template"),
    ((bytes, bytearray), "bytes"),
)
_HINTS = {
    "a function": "; call it",
    "a macro": "; call it",
    "the loop variable": "; print one of its attributes, such as loop.index",
    "a namespace": "; print one of its attributes",
    "an imported template": "; call its macros",
    "a sequence that is not a list": "; apply |list or |join first",
}
# What Python's own error messages show of the sandbox's objects: reprs such as <function f at
# 0x7f...> and <class 'x.Y'>, addresses, Markup('...'), and the names of Jinja's runtime types.
# Each pattern is linear, since messages can quote user text.
_HOST_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>|<(?:class|module) '[^'<>]*'[^<>]*>")
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
_MARKUP_REPR = re.compile(r"\bMarkup\(('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\)")
_JINJA_TYPES = {
    "LoopContext": "loop",
    "Macro": "macro",
    "Namespace": "namespace",
    "PlainUndefined": "undefined",
    "TemplateModule": "imported template",
    "TemplateReference": "template reference",
    "BlockReference": "block",
    "Markup": "str",
}
_JINJA_TYPE = re.compile(rf"\b(?:{'|'.join(_JINJA_TYPES)})\b")


class Unprintable(SecurityError):
    """A value that is not plain data was about to become text."""

    def __init__(self, value: Any) -> None:
        noun = describe(value)
        super().__init__(f"{noun} cannot be printed{_HINTS.get(noun, '')}")


def describe(value: Any) -> str:
    """A few words saying what ``value`` is, naming no Python type."""
    noun = _DATA_NOUNS.get(type(value))
    if noun is not None:
        return noun
    for kind, noun in _OBJECT_NOUNS:
        if isinstance(value, kind):
            return noun
    if callable(value):
        return "a function"
    return "a sequence that is not a list" if isinstance(value, Iterable) else "this value"


def scrub(message: str) -> str:
    """``message`` without what it would show of the host's objects, for errors built from Python's own."""
    message = _ADDRESS.sub("0x…", _HOST_REPR.sub("an object", message))
    return _JINJA_TYPE.sub(lambda match: _JINJA_TYPES[match[0]], _MARKUP_REPR.sub(r"\1", message))


class PlainUndefined(StrictUndefined):
    """Jinja's strict undefined, with errors that describe the object instead of naming its type."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        name, owner = self._undefined_name, self._undefined_obj
        if self._undefined_hint:
            return self._undefined_hint
        if owner is missing:
            return f"{name!r} is undefined"  # a variable name, from the template source
        if isinstance(name, str):
            return f"{describe(owner)} has no attribute {str(name)!r}"  # str(): a Markup's repr names its class
        key = repr(name) if type(name) in _SCALARS else f"keyed by {describe(name)}"
        return f"{describe(owner)} has no element {key}"


@pass_context  # which also keeps Jinja from evaluating output at compile time
def finalize(context: Any, value: Any) -> Any:
    """The environment's ``finalize``: what ``{{ ... }}`` prints."""
    return value if type(value) in _SCALARS else context.environment.printable(value)


class PrintableEnvironment(BoundedEnvironment):
    """The size-checked sandbox in which only plain data can become text (see the module docstring)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=finalize, **options)
        self.filters["format"] = _refusing_reprs(self.filters["format"])
        # Wrapped after the size checks, so those measure values already known to be plain.
        for name, func in list(self.filters.items()):
            if name not in PASS_THROUGH_FILTERS:
                self.filters[name] = self._checked_filter(func, _ARGUMENT_CHECKS.get(name))

    def printable(self, value: Any) -> Any:
        """``value``, ready for ``str()``, if it is plain data; Markup inside a container becomes
        str, since its repr would name its class.

        Raises:
            Unprintable: the value, or something inside it, is not plain data.
            LimitExceeded: the value would print as more than ``max_chars`` characters.
        """
        if type(value) in _SCALARS:
            return value
        return _PlainCopy(self.max_chars).copy(value)

    def printf_arguments(self, fmt: str | bytes, arguments: Any) -> Any:
        """The right operand of ``fmt % arguments``, each argument checked as by `printable`.

        Raises:
            SecurityError: ``fmt`` asks for a repr (``%r``, ``%a``).
        """
        text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
        _refuse_reprs(text)
        if isinstance(arguments, tuple):
            return tuple(map(self.printable, arguments))
        if isinstance(arguments, dict) and "%(" in text:
            return {key: self.printable(value) for key, value in arguments.items()}
        return self.printable(arguments)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, (str, bytes)):
            right = self.printf_arguments(left, right)
        return super().call_binop(context, operator, left, right)

    def bounded_concat(self, eval_ctx: Any, values: tuple[Any, ...]) -> str:
        return super().bounded_concat(eval_ctx, tuple(map(self.printable, values)))

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        # Markup's methods escape their arguments, and escaping what is not a string calls str() on
        # it. Checked here rather than where the method is read: calls are far rarer than reads.
        method = getattr(obj, "__wrapped__", obj)  # the size checks wrap some of them
        owner = getattr(method, "__self__", None)
        if owner is Markup or type(owner) is Markup:
            if getattr(method, "__name__", None) == "join" and len(args) == 1:
                # One by one, so that Markup items stay Markup and are not escaped again.
                args = ([self.printable(item) for item in args[0]],)
            else:
                args = tuple(map(self.printable, args))
            kwargs = {name: self.printable(value) for name, value in kwargs.items()}
        return super().call(context, obj, *args, **kwargs)

    def _checked_filter(self, func: Callable[..., Any], check: _ArgumentCheck | None) -> Callable[..., Any]:
        """Wrap ``func`` so its arguments are checked with `printable`, its first one with ``check``
        if given; ``func`` takes a context or environment first if Jinja passes it one."""
        skip = 1 if _PassArg.from_obj(func) else 0

        @functools.wraps(func)
        def checked(*args: Any, **kwargs: Any) -> Any:
            if check is None and not kwargs:
                # The usual case, and on the hot path: plain scalars, nothing to copy. (A loop:
                # cheaper here than any()/issuperset() over a generator.)
                for argument in args[skip:]:
                    if type(argument) not in _SCALARS:
                        break
                else:
                    return func(*args)
            value, rest, kwargs = (check or _plain_value)(self, args[skip], list(args[skip + 1 :]), kwargs)
            return func(
                *args[:skip],
                value,
                *map(self.printable, rest),
                **{name: self.printable(argument) for name, argument in kwargs.items()},
            )

        return checked


class _PlainCopy:
    """Walks a value, refusing what is not plain data and counting the text it will print as."""

    def __init__(self, max_chars: int) -> None:
        self._max_chars = max_chars
        self._left = max_chars

    def copy(self, value: Any) -> Any:
        """``value``, or a copy with its Markup turned into str and its tuple subclasses into tuples."""
        kind = type(value)
        if kind is str or kind is Markup:
            self._spend(len(value) + 2)
            return str(value)
        if kind is int or kind is bool:
            self._spend(value.bit_length() // 3 + 1)
            return value
        if kind is float or value is None:
            self._spend(8)
            return value
        if kind is dict:
            return self._copy_dict(value)
        if kind is list or isinstance(value, tuple):
            return self._copy_sequence(value)
        if isinstance(value, Undefined):
            str(value)  # raises the undefined-variable error, which says more
        raise Unprintable(value)

    def _copy_dict(self, value: dict[Any, Any]) -> dict[Any, Any]:
        self._spend(2)
        parts = [self.copy(part) for pair in value.items() for part in pair]
        if all(map(operator.is_, parts, itertools.chain.from_iterable(value.items()))):
            return value
        return dict(zip(parts[::2], parts[1::2], strict=True))

    def _copy_sequence(self, value: list[Any] | tuple[Any, ...]) -> list[Any] | tuple[Any, ...]:
        self._spend(2)
        items = [self.copy(item) for item in value]
        if type(value) in (list, tuple) and all(map(operator.is_, items, value)):
            return value
        return items if type(value) is list else tuple(items)

    def _spend(self, size: int) -> None:
        # A repr is at least as long as what is counted here, and a nested one can be far longer
        # than its container's len(): [[s] * 1000] * 1000 prints a million copies of s.
        self._left -= size
        if self._left < 0:
            raise LimitExceeded(f"the value would print as more than {self._max_chars:,} characters")


def _refuse_reprs(fmt: str) -> None:
    if any(conversion in ("r", "a") for _, _, conversion in printf_fields(fmt)):
        raise SecurityError("'%r' and '%a' are not allowed: they show Python internals; use '%s'")


def _refusing_reprs(format_filter: Callable[..., str]) -> Callable[..., str]:
    @functools.wraps(format_filter)
    def refusing(value: Any, *args: Any, **kwargs: Any) -> str:
        if isinstance(value, str):
            _refuse_reprs(value)
        return format_filter(value, *args, **kwargs)

    return refusing


# A filter's first argument, its other positional arguments and its keyword arguments, prepared
# for the filter; the other arguments are then checked with `PrintableEnvironment.printable`.
_Arguments = tuple[Any, list[Any], dict[str, Any]]
_ArgumentCheck = Callable[[PrintableEnvironment, Any, list[Any], dict[str, Any]], _Arguments]


def _plain_value(env: PrintableEnvironment, value: Any, args: list[Any], kwargs: dict[str, Any]) -> _Arguments:
    return env.printable(value), args, kwargs


def _repr_value(env: PrintableEnvironment, value: Any, args: list[Any], kwargs: dict[str, Any]) -> _Arguments:
    # pprint shows the repr even of the top-level value, and a Markup's repr names its class.
    value = env.printable(value)
    return (str(value) if type(value) is Markup else value), args, kwargs


def _joined_items(env: PrintableEnvironment, value: Any, args: list[Any], kwargs: dict[str, Any]) -> _Arguments:
    # An attribute of plain data can still be a method ('upper' of a string), so look it up first.
    attribute = kwargs.pop("attribute", args.pop(1) if len(args) > 1 else None)
    items = value if attribute is None else map(make_attrgetter(env, attribute), value)
    # One by one, so that Markup items stay Markup and are not escaped again.
    return [env.printable(item) for item in items], args, kwargs


def _encoded_pairs(env: PrintableEnvironment, value: Any, args: list[Any], kwargs: dict[str, Any]) -> _Arguments:
    # urlencode takes a string, a dict, or any iterable of pairs (dict.items(), say).
    if isinstance(value, Iterable) and not isinstance(value, (str, Mapping)):
        value = list(value)
    return env.printable(value), args, kwargs


_ARGUMENT_CHECKS: dict[str, _ArgumentCheck] = {
    "join": _joined_items,
    "pprint": _repr_value,
    "urlencode": _encoded_pairs,
}
