"""Validate and render user-written Jinja2 templates without letting them escape or run away.

Three layers, because each one misses something the next one catches:

* `TemplateSandbox.validate` refuses forbidden constructs when a template is saved, with line
  numbers the editor can show.
* Rendering uses Jinja's immutable sandbox, tightened: names starting with ``_``, string
  formatting methods and ``mro`` are refused however they are reached, and every operator,
  filter and string method that can build a result much larger than its inputs is sized first.
* A watchdog interrupts renders that run past ``timeout``; the size checks exist because a
  single C call (``'x' * 10**9``) cannot be interrupted.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateNotFound, TemplateSyntaxError, UndefinedError
from jinja2.filters import make_attrgetter
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import soft_str

from ccm.message_templates.watchdog import WATCHDOG, DeadlineExceeded

MAX_RANGE = 100_000
"""Most items ``range()`` may produce."""

MAX_WIDTH = 100
"""Widest field (``%500s``) or JSON indent a template may ask for."""

MAX_INT_BITS = 16_384
"""Largest integer arithmetic may produce: a few thousand digits, cheap to compute."""

WORK_FACTOR = 10
"""Operations that build text may build this many times ``max_chars`` in total per render."""

BLOCKED_ATTRIBUTES = {
    "format": "string formatting methods are blocked; use the format filter",
    "format_map": "string formatting methods are blocked; use the format filter",
    "mro": "type internals are blocked",
}
BLOCKED_NAMES = frozenset({"self", "lipsum", "cycler", "joiner"})

# Python's own nesting limits, hit by Jinja's recursive parser or when compiling its output.
_TOO_DEEP = (RecursionError, SyntaxError)
_TOO_DEEP_MESSAGE = "the template is nested too deeply"


@dataclass(frozen=True)
class Problem:
    """Something `TemplateSandbox.validate` refuses in a template source."""

    name: str
    line: int | None
    code: str
    message: str


class RenderError(Exception):
    """A render failed; no output is returned.

    ``code`` is one of ``undefined_variable``, ``timeout``, ``output_too_large``, ``forbidden``,
    ``template_error`` and ``syntax_error``. ``name`` and ``line`` point at the source where it
    happened (possibly a layout or partial), when known.
    """

    def __init__(self, code: str, message: str, *, name: str | None = None, line: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.name = name
        self.line = line


@dataclass(frozen=True)
class TemplateBundle:
    """An immutable set of sources rendered together: message parts plus their layouts and partials.

    ``key`` identifies the set (a template version id) and keys the compiled-template cache;
    drafts and previews pass ``cacheable=False`` so nothing compiled from them is kept.
    """

    key: str
    sources: Mapping[str, str]
    cacheable: bool = True


class _LimitExceeded(Exception):
    """A value or the output would grow past the sandbox's limits."""


@dataclass
class _RenderScope:
    bundle: TemplateBundle
    budget: int
    # Templates compiled for an uncacheable bundle live as long as the render, no longer.
    compiled: dict[tuple[str, str, bool], jinja2.Template] = field(default_factory=dict)

    def spend(self, size: int) -> None:
        self.budget -= size
        if self.budget < 0:
            raise _LimitExceeded("the template builds too much text while rendering")


# Rendering is synchronous, so the loader and the size checks find the render in progress here.
_SCOPE: ContextVar[_RenderScope] = ContextVar("ccm_template_render")


class _LRUCache:
    """A thread-safe map that forgets its least recently used entries."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)


class _BundleLoader(jinja2.BaseLoader):
    """Loads names from the bundle being rendered, so bundles never see each other's sources."""

    def __init__(self, cache: _LRUCache) -> None:
        self._cache = cache

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, None]:
        sources = _SCOPE.get().bundle.sources
        if template not in sources:
            raise TemplateNotFound(template)
        return sources[template], template, None

    def load(self, environment: jinja2.Environment, name: str, globals: Any = None) -> jinja2.Template:
        scope = _SCOPE.get()
        cache = self._cache if scope.bundle.cacheable else scope.compiled
        key = (scope.bundle.key, name, bool(environment.autoescape))
        template = cache.get(key)
        if template is None:
            template = super().load(environment, name, globals)
            cache[key] = template
        return template


class _BoundedCodeGenerator(CodeGenerator):
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # Hand the operands over unjoined so they can be sized before the join allocates.
        self.write("environment.bounded_concat(context.eval_ctx, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _SandboxEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with name blocking and size checks; one per autoescape setting."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, *, autoescape: bool, max_chars: int, loader: jinja2.BaseLoader) -> None:
        super().__init__(
            autoescape=autoescape,
            undefined=jinja2.StrictUndefined,
            loader=loader,
            cache_size=0,
            auto_reload=False,
            finalize=_refuse_callables,
            # Constant folding would run template code at compile time, outside the size budget.
            optimized=False,
        )
        self.max_chars = max_chars
        for name in ("lipsum", "cycler", "joiner"):
            del self.globals[name]
        self.globals["range"] = _bounded_range
        for name, size_of in _FILTER_SIZES.items():
            self.filters[name] = self._bounded(self.filters[name], size_of)
        self.filters["join"] = self._bounded_join_filter(self.filters["join"])

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return attr not in BLOCKED_ATTRIBUTES and super().is_safe_attribute(obj, attr, value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        # Fail at the access rather than hand back an undefined that `is defined` would accept.
        raise SecurityError(_name_problem(attribute) or f"{attribute!r} is not allowed in templates")

    def wrap_str_format(self, value: Any) -> None:
        # is_safe_attribute refuses str.format and format_map outright, so there is nothing to wrap.
        return None

    def getattr(self, obj: Any, attribute: str) -> Any:
        problem = _name_problem(attribute)
        if problem:
            raise SecurityError(problem)
        return self._bounded_method(obj, attribute, super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        if not isinstance(argument, str):
            return super().getitem(obj, argument)
        if argument.startswith("_"):
            raise SecurityError(_name_problem(argument))
        return self._bounded_method(obj, argument, super().getitem(obj, argument))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            self._check_product(left, right)
        elif operator == "+" and _is_sized(left) and _is_sized(right):
            self.check_size(len(left) + len(right))
        elif operator == "%" and isinstance(left, str):
            _check_printf_widths(left)
        return self.produced(self.binop_table[operator](left, right))

    def bounded_concat(self, eval_ctx: Any, values: tuple[Any, ...]) -> str:
        """Join the operands of ``~``, refusing before the join if they are already too long."""
        self.check_size(sum(len(value) for value in values if isinstance(value, str)))
        return self.produced((markup_join if eval_ctx.autoescape else str_join)(values))

    def concat(self, parts: Any) -> str:  # type: ignore[override]
        """Join captured output (``{% set %}`` blocks, macros, ``caller()``) within the limits."""
        parts = list(parts)
        self.check_size(sum(map(len, parts)))
        return self.produced("".join(parts))

    def check_size(self, size: int) -> None:
        """Refuse a result of ``size`` characters (or items) before it is built."""
        if size > self.max_chars:
            raise _LimitExceeded(f"the result would be {size:,} characters long; the limit is {self.max_chars:,}")

    def produced(self, value: Any) -> Any:
        """Check a freshly built value and charge it to the budget of the render in progress."""
        if isinstance(value, (str, bytes, list, tuple)):
            self.check_size(len(value))
            scope = _SCOPE.get(None)
            if scope is not None:
                scope.spend(len(value))
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


class TemplateSandbox:
    """Validates templates when they are saved and renders them with time and size caps.

    Thread-safe; one instance per process is enough.

    Parameters:
        timeout: Wall-clock seconds a render may take.
        max_chars: Longest output, and longest value any single operation may build.
        cache_size: Compiled templates kept, keyed by bundle key, source name and autoescape.
    """

    def __init__(self, *, timeout: float = 2.0, max_chars: int = 1_000_000, cache_size: int = 512) -> None:
        self._timeout = timeout
        self._max_chars = max_chars
        loader = _BundleLoader(_LRUCache(cache_size))
        self._envs = {
            autoescape: _SandboxEnvironment(autoescape=autoescape, max_chars=max_chars, loader=loader)
            for autoescape in (True, False)
        }

    def validate(self, source: str, *, name: str) -> list[Problem]:
        """Return what is wrong with ``source``; an empty list means it may be saved."""
        env = self._envs[True]
        try:
            tree = env.parse(source, name=name)
            problems = sorted(_forbidden_constructs(tree, name), key=lambda problem: problem.line or 0)
            if not problems:
                env.compile(tree, name=name)  # unknown filters and tests only surface here
        except TemplateSyntaxError as exc:
            return [Problem(name, exc.lineno, "syntax_error", f"line {exc.lineno}: {exc.message}")]
        except _TOO_DEEP:
            return [Problem(name, None, "syntax_error", _TOO_DEEP_MESSAGE)]
        return problems

    def variables(self, source: str) -> set[str]:
        """Return the top-level variable names ``source`` reads.

        Raises:
            RenderError: code ``syntax_error`` if the source does not parse.
        """
        return meta.find_undeclared_variables(self._parse(source))

    def snippets_used(self, source: str) -> set[str]:
        """Return the layouts and partials ``source`` extends, includes or imports by literal name.

        Raises:
            RenderError: code ``syntax_error`` if the source does not parse.
        """
        referenced = meta.find_referenced_templates(self._parse(source))
        return {name for name in referenced if isinstance(name, str)}

    def render(self, bundle: TemplateBundle, name: str, context: Mapping[str, Any], *, autoescape: bool) -> str:
        """Render the source ``name`` of ``bundle``; layouts and partials come from the bundle too.

        ``context`` holds plain dicts, lists, strings and numbers. ``autoescape`` is on for HTML
        parts and off for text parts (subjects, SMS bodies, plain-text email).

        Raises:
            RenderError: the render failed; nothing partial is returned.
        """
        token = _SCOPE.set(_RenderScope(bundle, budget=self._max_chars * WORK_FACTOR))
        try:
            with WATCHDOG.deadline(self._timeout):
                template = self._envs[autoescape].get_template(name)
                return self._collect(template.generate(context))
        except (DeadlineExceeded, Exception) as exc:
            raise _render_error(exc, self._timeout) from exc
        finally:
            _SCOPE.reset(token)

    def _collect(self, chunks: Iterator[str]) -> str:
        parts, size = [], 0
        try:
            for chunk in chunks:
                size += len(chunk)
                if size > self._max_chars:
                    raise _LimitExceeded(f"the output is longer than {self._max_chars:,} characters")
                parts.append(chunk)
        finally:
            chunks.close()  # type: ignore[attr-defined]
        return "".join(parts)

    def _parse(self, source: str) -> nodes.Template:
        try:
            return self._envs[True].parse(source)
        except TemplateSyntaxError as exc:
            raise RenderError("syntax_error", f"line {exc.lineno}: {exc.message}", line=exc.lineno) from exc
        except _TOO_DEEP as exc:
            raise RenderError("syntax_error", _TOO_DEEP_MESSAGE) from exc


def _render_error(exc: BaseException, timeout: float) -> RenderError:
    code, detail = _describe(exc, timeout)
    name, line = _locate(exc)
    where = f"{name}, line {line}: " if name and line else ""
    return RenderError(code, where + detail, name=name, line=line)


def _describe(exc: BaseException, timeout: float) -> tuple[str, str]:
    if isinstance(exc, DeadlineExceeded):
        return "timeout", f"rendering took longer than {timeout:g} seconds"
    if isinstance(exc, _LimitExceeded):
        return "output_too_large", str(exc)
    if isinstance(exc, SecurityError):
        return "forbidden", str(exc)
    if isinstance(exc, UndefinedError):
        return "undefined_variable", str(exc)
    if isinstance(exc, TemplateSyntaxError):
        return "syntax_error", str(exc.message)
    if isinstance(exc, TemplateNotFound):
        return "template_error", f"{exc.name!r} is not part of this template version"
    if isinstance(exc, SyntaxError):
        return "syntax_error", _TOO_DEEP_MESSAGE
    if isinstance(exc, RecursionError):
        return "template_error", "the template recurses or nests too deeply"
    return "template_error", f"{type(exc).__name__}: {exc}"


def _locate(exc: BaseException) -> tuple[str | None, int | None]:
    """Find the innermost template source and line an exception passed through."""
    if isinstance(exc, TemplateSyntaxError):
        return exc.name, exc.lineno
    found: tuple[str | None, int | None] = (None, None)
    tb = exc.__traceback__
    while tb is not None:
        frame_globals = tb.tb_frame.f_globals
        if "__jinja_exception__" in frame_globals:  # a frame Jinja rewrote to point at the source
            found = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        elif (template := frame_globals.get("__jinja_template__")) is not None:
            found = (template.filename, template.get_corresponding_lineno(tb.tb_lineno))
        tb = tb.tb_next
    return found


# Static checks, run by validate().

_CHECKED_NODES = (nodes.Getattr, nodes.Getitem, nodes.NSRef, nodes.Name, nodes.Filter)
# Where the attribute name sits among a filter's positional arguments.
_ATTRIBUTE_POSITION = {"attr": 0, "selectattr": 0, "rejectattr": 0, "groupby": 0, "sum": 0,
                       "min": 1, "max": 1, "unique": 1, "sort": 2}


def _forbidden_constructs(tree: nodes.Template, source_name: str) -> Iterator[Problem]:
    for node in tree.find_all(_CHECKED_NODES):
        message = _static_problem(node)
        if message is not None:
            yield Problem(source_name, node.lineno, "forbidden", f"line {node.lineno}: {message}")


def _static_problem(node: nodes.Node) -> str | None:
    if isinstance(node, (nodes.Getattr, nodes.NSRef)):
        return _name_problem(node.attr)
    if isinstance(node, nodes.Getitem):
        return _name_problem(node.arg.value) if _is_str_const(node.arg) else None
    if isinstance(node, nodes.Name):
        return f"{node.name!r} is not available in templates" if node.name in BLOCKED_NAMES else None
    return _filter_problem(node)


def _filter_problem(node: nodes.Filter) -> str | None:
    names = list(_attribute_arguments(node))
    if _applies_attr(node) and (node.dyn_args or node.dyn_kwargs or not names or not all(map(_is_str_const, names))):
        return "the attr filter needs a literal attribute name"
    for arg in filter(_is_str_const, names):
        for part in re.split(r"[.,]", arg.value):
            problem = _name_problem(part.strip())
            if problem:
                return problem
    return None


def _applies_attr(node: nodes.Filter) -> bool:
    return node.name == "attr" or (node.name == "map" and bool(node.args) and _const(node.args[0]) == "attr")


def _attribute_arguments(node: nodes.Filter) -> Iterator[nodes.Expr]:
    """Yield the arguments of a filter call that name attributes to look up."""
    if node.name == "map" and _applies_attr(node):
        yield from node.args[1:2]
    position = _ATTRIBUTE_POSITION.get(node.name)
    if position is not None and position < len(node.args):
        yield node.args[position]
    for keyword in node.kwargs:
        if keyword.key == "attribute" or (node.name == "attr" and keyword.key == "name"):
            yield keyword.value


def _const(node: nodes.Node) -> Any:
    return node.value if isinstance(node, nodes.Const) else None


def _is_str_const(node: nodes.Node) -> bool:
    return isinstance(_const(node), str)


def _name_problem(name: str) -> str | None:
    if name.startswith("_"):
        return f"{name!r} is not allowed: attributes starting with '_' are blocked"
    if name in BLOCKED_ATTRIBUTES:
        return f"{name!r} is not allowed: {BLOCKED_ATTRIBUTES[name]}"
    return None


@jinja2.pass_context  # which also keeps Jinja from evaluating output at compile time
def _refuse_callables(_context: Any, value: Any) -> Any:
    # Printing a function or type shows Python internals ("<built-in method upper of str ...>").
    if callable(value) and not isinstance(value, jinja2.Undefined):
        raise SecurityError("functions and types cannot be printed")
    return value


# Size checks, run while rendering. A size is in characters for strings and items for lists.

_PRINTF_FIELD = re.compile(r"%(?:%|(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?)")


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    try:
        too_long = len(numbers) > MAX_RANGE
    except OverflowError:
        too_long = True
    if too_long:
        raise _LimitExceeded(f"range() is limited to {MAX_RANGE:,} items")
    return numbers


def _is_sized(value: Any) -> bool:
    return isinstance(value, (str, bytes, list, tuple))


def _int_or_zero(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _check_int_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise _LimitExceeded(f"numbers larger than {MAX_INT_BITS:,} bits are not allowed")


def _check_power(base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        _check_int_bits(base.bit_length() * exponent)


def _check_width(width: int) -> None:
    if width > MAX_WIDTH:
        raise _LimitExceeded(f"widths above {MAX_WIDTH} are not allowed")


def _check_printf_widths(fmt: str) -> None:
    for match in _PRINTF_FIELD.finditer(fmt):
        for number in filter(None, match.groups()):
            if number == "*":
                raise _LimitExceeded("'*' widths are not allowed")
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


def _wordwrap_size(_env: Any, s: Any, width: Any = 79, break_long_words: Any = True,
                   wrapstring: Any = None, break_on_hyphens: Any = True) -> int:
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


def _urlize_size(_eval_ctx: Any, value: Any, trim_url_limit: Any = None, nofollow: Any = False,
                 target: Any = None, rel: Any = None, extra_schemes: Any = None) -> int:
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
