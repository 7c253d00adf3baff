"""Validate and render user-written Jinja2 templates without letting them escape or run away.

Three layers, because each one misses something the next one catches:

* `TemplateSandbox.validate` refuses forbidden constructs when a template is saved, with line
  numbers the editor can show.
* Rendering uses Jinja's immutable sandbox, tightened: names starting with ``_``, string
  formatting methods and ``mro`` are refused however they are reached, and every operator,
  filter and string method that can build a result much larger than its inputs is sized first
  (see `ccm.message_templates.limits`). Only plain data may become text: a function, class, loop
  or namespace is refused wherever it would be printed, alone, in a list, joined or formatted
  (see `ccm.message_templates.printing`).
* A watchdog interrupts renders that run past ``timeout``; the size checks exist because a
  single C call (``'x' * 10**9``) cannot be interrupted.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError, TemplateNotFound, TemplateSyntaxError, UndefinedError

from ccm.message_templates.limits import WORK_FACTOR, LimitExceeded, work_budget
from ccm.message_templates.printing import PlainUndefined, PrintableEnvironment, scrub
from ccm.message_templates.static_checks import (
    BLOCKED_ATTRIBUTES,
    BLOCKED_NAMES,
    find_forbidden_constructs,
    name_problem,
)
from ccm.message_templates.watchdog import WATCHDOG, DeadlineExceeded

__all__ = [
    "BLOCKED_ATTRIBUTES",
    "BLOCKED_NAMES",
    "WORK_FACTOR",
    "Problem",
    "RenderError",
    "TemplateBundle",
    "TemplateSandbox",
]

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


@dataclass
class _RenderScope:
    bundle: TemplateBundle
    # Templates compiled for an uncacheable bundle live as long as the render, no longer.
    compiled: dict[tuple[str, str, bool], jinja2.Template] = field(default_factory=dict)


# Rendering is synchronous, so the loader finds the bundle of the render in progress here.
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


class _SandboxEnvironment(PrintableEnvironment):
    """The size-checked, plain-text sandbox with name blocking added; one per autoescape setting."""

    def __init__(self, *, autoescape: bool, max_chars: int, loader: jinja2.BaseLoader) -> None:
        super().__init__(
            max_chars=max_chars,
            autoescape=autoescape,
            undefined=PlainUndefined,
            loader=loader,
            cache_size=0,
            auto_reload=False,
        )
        for name in ("lipsum", "cycler", "joiner"):
            del self.globals[name]

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return attr not in BLOCKED_ATTRIBUTES and super().is_safe_attribute(obj, attr, value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        # Fail at the access rather than hand back an undefined that `is defined` would accept.
        raise SecurityError(name_problem(attribute) or f"{attribute!r} is not allowed in templates")

    def wrap_str_format(self, value: Any) -> None:
        # is_safe_attribute refuses str.format and format_map outright, so there is nothing to wrap.
        return None

    def getattr(self, obj: Any, attribute: str) -> Any:
        problem = name_problem(attribute)
        if problem:
            raise SecurityError(problem)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(argument, str) and argument.startswith("_"):
            raise SecurityError(name_problem(argument))
        return super().getitem(obj, argument)


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
            problems = [
                Problem(name, line, "forbidden", f"line {line}: {message}")
                for line, message in find_forbidden_constructs(tree)
            ]
            problems.sort(key=lambda problem: problem.line or 0)
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
        token = _SCOPE.set(_RenderScope(bundle))
        try:
            # The budget wraps the deadline so that the watchdog cannot interrupt its reset.
            with work_budget(self._max_chars * WORK_FACTOR), WATCHDOG.deadline(self._timeout):
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
                    raise LimitExceeded(f"the output is longer than {self._max_chars:,} characters")
                parts.append(chunk)
        except DeadlineExceeded as exc:
            # The deadline fell between two chunks, in this loop rather than in template code:
            # point at the template line where the render is suspended.
            exc.suspended_at = _suspended_at(chunks)
            raise
        finally:
            chunks.close()  # type: ignore[attr-defined]  # Template.generate is a generator; Jinja types it Iterator
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
    return RenderError(code, where + scrub(detail), name=name, line=line)


def _describe(exc: BaseException, timeout: float) -> tuple[str, str]:
    if isinstance(exc, DeadlineExceeded):
        return "timeout", f"rendering took longer than {timeout:g} seconds"
    if isinstance(exc, LimitExceeded):
        return "output_too_large", str(exc)
    if isinstance(exc, SecurityError):
        return "forbidden", str(exc)
    if isinstance(exc, UndefinedError):
        return "undefined_variable", str(exc)
    if isinstance(exc, TemplateSyntaxError):
        return "syntax_error", str(exc.message)
    if isinstance(exc, TemplateNotFound):
        if not isinstance(exc.name, str):
            return "template_error", "a template name must be a string"
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
    found: tuple[str | None, int | None] = getattr(exc, "suspended_at", (None, None))
    tb = exc.__traceback__
    while tb is not None:
        frame_globals = tb.tb_frame.f_globals
        if "__jinja_exception__" in frame_globals:  # a frame Jinja rewrote to point at the source
            found = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        elif (template := frame_globals.get("__jinja_template__")) is not None:
            found = (template.filename, template.get_corresponding_lineno(tb.tb_lineno))
        tb = tb.tb_next
    return found


def _suspended_at(generator: Any) -> tuple[str | None, int | None]:
    """The innermost template source and line of a suspended render (following ``yield from``)."""
    found: tuple[str | None, int | None] = (None, None)
    while generator is not None and getattr(generator, "gi_frame", None) is not None:
        frame = generator.gi_frame
        template = frame.f_globals.get("__jinja_template__")
        if template is not None:
            found = (template.filename, template.get_corresponding_lineno(frame.f_lineno))
        generator = generator.gi_yieldfrom
    return found
