"""Jinja2 templates from configs, compiled once and rendered per row in a sandbox.

Configs come from URLs and other people's repos, so templates run in ``ImmutableSandboxedEnvironment`` (no
private attributes, no mutation of values, bounded ``range``) with ``StrictUndefined`` (a misspelt column is an
error, not an empty string). On top of the sandbox's runtime checks, templates are checked statically when the
config is loaded, so an escape attempt (``__class__``, ``__subclasses__``, ``mro``...) fails before generation
starts, with the column named. Operations that can build a large value from a short template (``*``, ``+``,
``~``, ``%``, ``replace``, ``center``, ``indent``, ``wordwrap``, ``format``, ``join``, str methods) are checked
before they run, and so is the rendered text, against :data:`MAX_VALUE_SIZE`. A template with loops also has a
budget per render (:data:`MAX_LOOP_ITERATIONS`, :data:`MAX_BUILT_CHARACTERS`): a loop that calls a macro that
loops, or that builds a large value and throws it away on every turn, stops instead of running for hours.

Templates are reproducible: the ``random`` filter draws from a generator seeded by (seed, batch, template, row),
and ``lipsum()``, whose text comes from Python's global generator, is not available.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextvars import ContextVar
from string import Formatter
from typing import Any

from jinja2 import (
    StrictUndefined,
    TemplateSyntaxError,
    meta,
    nodes,
    pass_context,
    pass_environment,
    pass_eval_context,
)
from jinja2 import filters as jinja_filters
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tasks.generation.errors import ConfigError, TemplateRenderError, TemplateSecurityError

# Attribute names that lead from a value to Python internals even though they do not start with "_".
_BLOCKED_NAMES = frozenset({"mro", "func_globals", "f_globals", "f_locals", "gi_frame", "cr_frame", "tb_frame"})
_BLOCKED_NODES = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)

MAX_VALUE_SIZE = 1_000_000  # characters (or items) one operation ('ab' * n, replace...) or one render may produce
MAX_EXPONENT = 10_000
# Per render (one row) of a template with loops: loop turns, and characters built by the checked operations.
# One loop over the sandbox's largest range fits, and ten values of the largest size.
MAX_LOOP_ITERATIONS = 100_000
MAX_BUILT_CHARACTERS = 10 * MAX_VALUE_SIZE
_RANDOM = "__row_random__"  # context name of the row's generator; templates cannot name it (leading "_")
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})
_SEQUENCES = (str, bytes, list, tuple)


def _size(value: Any) -> int:
    """How large ``value`` renders, roughly: characters of strings, plus one per item of a list, tuple or dict and
    the size of each item (shared items count every time). Counting stops once over the limit."""
    total, stack = 0, [value]
    while stack and total <= MAX_VALUE_SIZE:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, list | tuple):
            total += len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            total += len(item)
            stack.extend(item.values())
    return total


class _RenderWork:
    """What one render of a template with loops has done so far; over budget, it stops (a ``SecurityError``)."""

    __slots__ = ("built", "turns")

    def __init__(self) -> None:
        self.turns = 0
        self.built = 0

    def turn(self) -> None:
        self.turns += 1
        if self.turns > MAX_LOOP_ITERATIONS:
            raise SecurityError(f"the template's loops turn more than {MAX_LOOP_ITERATIONS:,} times in one render")

    def build(self, size: int) -> None:
        self.built += size
        if self.built > MAX_BUILT_CHARACTERS:
            raise SecurityError(
                f"the template builds more than {MAX_BUILT_CHARACTERS:,} characters in one render, over the limit"
            )


# The budget of the render running in this thread: set by CompiledTemplate for templates with loops only (one
# without loops does a bounded amount of work: each operation is bounded, and so is their number).
_WORK: ContextVar[_RenderWork | None] = ContextVar("template_render_work", default=None)


def _limit(size: int, what: str, *, built: bool = True) -> None:
    """Refuse a value over :data:`MAX_VALUE_SIZE`; ``built``: charge it to the render's budget, if any."""
    if size > MAX_VALUE_SIZE:
        raise SecurityError(
            f"{what} would make a value of {size:,} characters, over the limit of {MAX_VALUE_SIZE:,}"
        )
    if built and (work := _WORK.get()) is not None:
        work.build(size)


def _collect(
    items: Iterable[Any], separator: int, what: str, convert: Callable[[Any], Any] | None = None
) -> list[Any]:
    """``items`` as a list, stopping as soon as joining them with a ``separator``-long string would be too large."""
    out: list[Any] = []
    size = 0
    for item in items:
        if convert is not None:
            item = convert(item)
        size += (len(item) if isinstance(item, str | bytes) else 0) + (separator if out else 0)
        _limit(size, what, built=False)
        out.append(item)
    _limit(size, what)  # charged once, at its final size
    return out


def _replaced_size(text: Any, old: Any, new: Any, count: Any) -> int:
    if not isinstance(text, bytes):  # the filter takes any value and replaces in its text
        text, old, new = str(text), str(old), str(new)
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * (len(new) - len(old))


def _check_printf(fmt: str, args: Any) -> None:
    # Widths and precisions pad: '%0999999999d' % 1 is a gigabyte. '*' takes them from the arguments.
    specs = _PRINTF_SPEC.findall(fmt)
    numbers = [int(n) for spec in specs for n in spec if n.isdigit()]
    if any("*" in spec for spec in specs):
        numbers += [a for a in (args if isinstance(args, tuple) else (args,)) if isinstance(a, int)]
    _limit(max(numbers, default=0), "a format width")


def _check_format(fmt: str, values: Iterable[Any]) -> None:
    # As _check_printf, for str.format: '{:>999999999}'; nested fields ('{:{w}}') take widths from the values.
    numbers: list[int] = []
    nested = False
    for _, _, spec, _ in Formatter().parse(fmt):
        if spec:
            numbers += map(int, re.findall(r"\d+", spec))
            nested = nested or "{" in spec
    if nested:
        numbers += [v for v in values if isinstance(v, int)]
    _limit(max(numbers, default=0), "a format width")


class _RowRandom:
    """The generator of one row of one template, made on first use (most templates never draw)."""

    __slots__ = ("_key", "_rng")

    def __init__(self, key: str) -> None:
        self._key = key
        self._rng: random.Random | None = None

    def get(self) -> random.Random:
        if self._rng is None:
            self._rng = random.Random(self._key)  # a str seed is hashed with SHA-512: same in every process
        return self._rng


@pass_context
def _random(context: Context, seq: Any) -> Any:
    """Jinja's ``random`` filter, drawing from the row's seeded generator instead of Python's global one."""
    rng = context.get(_RANDOM)  # absent only when the filter is named by data (map(name)): a fixed generator
    try:
        return (rng.get() if isinstance(rng, _RowRandom) else random.Random(0)).choice(seq)
    except IndexError:
        return context.environment.undefined("No random item, sequence was empty.")


@pass_eval_context
def _replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    _limit(_replaced_size(s, old, new, count), "replace")
    return jinja_filters.do_replace(eval_ctx, s, old, new, count)


def _center(value: Any, width: int = 80) -> str:
    _limit(width if isinstance(width, int) else 0, "center")
    return jinja_filters.do_center(value, width)


def _indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    text = str(s)
    pad = width if isinstance(width, int) else len(str(width))
    _limit(len(text) + (text.count("\n") + 1) * max(pad, 0), "indent")
    return jinja_filters.do_indent(s, width, first, blank)


@pass_environment
def _wordwrap(
    environment: Any,
    s: Any,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    text = str(s)
    wrap = environment.newline_sequence if wrapstring is None else str(wrapstring)
    # Two consecutive lines hold more than `width` characters, so there are at most 2 * len / width lines.
    lines = 2 * len(text) // max(width if isinstance(width, int) else 1, 1) + text.count("\n") + 1
    _limit(len(text) + lines * len(wrap), "wordwrap")
    return jinja_filters.do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    _check_printf(str(value), kwargs or args)
    return jinja_filters.do_format(value, *args, **kwargs)


@pass_eval_context
def _join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: str | int | None = None) -> str:
    if attribute is not None:
        value = map(jinja_filters.make_attrgetter(eval_ctx.environment, attribute), value)
    return jinja_filters.do_join(eval_ctx, _collect(value, len(str(d)), "join", str), d)


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator, with ``~`` concatenations joined by :meth:`_Sandbox.concat_values`."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat_values((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus limits on the operations that can exhaust memory or CPU in one expression."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "+":  # the common case, kept short: it runs for every addition of numbers too
            if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
                _limit(_size(left) + _size(right), "'+'")
            return left + right
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, _SEQUENCES) and isinstance(times, int):
                    _limit(_size(seq) * times, f"repeating a sequence {times} times")
        if operator == "%" and isinstance(left, str):
            _check_printf(left, right)
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is over the limit of {MAX_EXPONENT}")
        return super().call_binop(context, operator, left, right)

    def loop_turns(self, iterable: Any) -> Iterator[Any]:
        """A ``for`` loop's items, each turn charged to the render's budget (every loop iterates through this)."""
        work = _WORK.get()
        if work is None:
            yield from iterable
            return
        for item in iterable:
            work.turn()
            yield item

    def concat_values(self, values: tuple[Any, ...]) -> str:
        """``a ~ b``: the parts as text, joined if the result stays within the limit."""
        return "".join(_collect(values, 0, "'~'", str))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        # str methods that build a value larger than their arguments: checked before they run.
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str | bytes):
            name = getattr(obj, "__name__", "")
            if name in _WIDTH_METHODS:
                width = args[0] if args else kwargs.get("width", 0)
                _limit(width if isinstance(width, int) else 0, f"str.{name}")
            elif name == "replace" and len(args) >= 2:
                _limit(_replaced_size(owner, args[0], args[1], args[2] if len(args) > 2 else -1), "str.replace")
            elif name == "expandtabs":
                tabsize = args[0] if args else kwargs.get("tabsize", 8)
                tabs = owner.count(b"\t") if isinstance(owner, bytes) else owner.count("\t")
                _limit(len(owner) + tabs * max(tabsize, 0), f"str.{name}")
            elif name == "join" and len(args) == 1:
                args = (_collect(args[0], len(owner), "str.join"),)
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt: str = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            mapping = args[0] if value.__name__ == "format_map" and args else kwargs
            _check_format(fmt, [*args, *(mapping.values() if isinstance(mapping, Mapping) else ())])
            return wrapped(*args, **kwargs)

        return checked


ENVIRONMENT = _Sandbox(
    undefined=StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)
ENVIRONMENT.filters.update(
    random=_random,
    replace=_replace,
    center=_center,
    indent=_indent,
    wordwrap=_wordwrap,
    format=_format,
    join=_join,
)
del ENVIRONMENT.globals["lipsum"]  # its text comes from Python's global, unseeded generator


class _NameTracker(meta.TrackingCodeGenerator):
    """Collects every name a template looks up from its context, Jinja's globals included (Jinja's own
    ``find_undeclared_variables`` leaves those out, but a column may be named ``range`` or ``namespace``)."""

    def enter_frame(self, frame: Frame) -> None:
        CodeGenerator.enter_frame(self, frame)
        self.undeclared_identifiers.update(p for action, p in frame.symbols.loads.values() if action == "resolve")


def column_references(references: Iterable[str], columns: Collection[str]) -> set[str]:
    """The names of ``references`` that are columns: all but Jinja's globals (``range``, ``namespace``...) that
    no column is named after (a column of that name hides the global, so it is read like any column)."""
    return {name for name in references if name in columns or name not in ENVIRONMENT.globals}


def _security_problems(ast: nodes.Template) -> list[str]:
    problems = []
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Name, *_BLOCKED_NODES)):
        if isinstance(node, _BLOCKED_NODES):
            problems.append(f"'{type(node).__name__.lower()}' is not allowed")
        elif isinstance(node, nodes.Getattr):
            if node.attr.startswith("_") or node.attr in _BLOCKED_NAMES:
                problems.append(f"access to attribute {node.attr!r} is not allowed")
        elif isinstance(node, nodes.Getitem):
            key = node.arg
            if isinstance(key, nodes.Const) and isinstance(key.value, str) and _private_path(key.value):
                problems.append(f"access to item {key.value!r} is not allowed")
        elif isinstance(node, nodes.Name) and node.name.startswith("_"):
            problems.append(f"name {node.name!r} is not allowed")
    # Loops are bounded by the sandbox's range limit; nested loops would multiply those bounds. (A macro that loops,
    # called in a loop, is bounded by the render's budget; a recursive loop's inner turns would escape it.)
    for loop in ast.find_all(nodes.For):
        if loop.recursive:
            problems.append("recursive loops are not allowed")
        if next(loop.find_all(nodes.For), None) is not None:
            problems.append("nested for loops are not allowed")
    # Filters that look attributes up by name (attr, map, selectattr, sort, groupby...): constant names only.
    for call in ast.find_all((nodes.Filter, nodes.Test)):
        for arg in [*call.args, *(kw.value for kw in call.kwargs)]:
            if isinstance(arg, nodes.Const) and isinstance(arg.value, str) and _private_path(arg.value):
                problems.append(f"filter {call.name!r} on attribute {arg.value!r} is not allowed")
    return problems


def _private_path(name: str) -> bool:
    return any(part.startswith("_") or part in _BLOCKED_NAMES for part in name.split("."))


class CompiledTemplate:
    """A template compiled once; :meth:`render` takes a row mapping and returns text.

    Attributes:
        source: The template text.
        where: What the template belongs to, for messages (``"column 'greeting'"``).
        references: Names the template reads: columns, and Jinja globals such as ``range`` (see
            :func:`column_references`).
    """

    __slots__ = (
        "_blocks",
        "_draws",
        "_globals",
        "_loops",
        "_name",
        "_new_context",
        "_root",
        "references",
        "source",
        "where",
    )

    def __init__(self, source: str, where: str) -> None:
        self.source = source
        self.where = where
        try:
            ast = ENVIRONMENT.parse(source)
        except TemplateSyntaxError as exc:
            raise ConfigError(f"{where}: template syntax error on line {exc.lineno}: {exc.message}") from None
        problems = _security_problems(ast)
        if problems:
            raise TemplateSecurityError([f"{where}: {p} (template: {source!r})" for p in dict.fromkeys(problems)])
        if any(isinstance(c.node, nodes.Name) and c.node.name == "lipsum" for c in ast.find_all(nodes.Call)):
            raise ConfigError(
                f"{where}: lipsum() is not available (its text is not reproducible from the seed): use a sampler "
                "column for randomness"
            )
        tracker = _NameTracker(ENVIRONMENT)
        tracker.visit(ast)
        self.references = frozenset(tracker.undeclared_identifiers)
        loops = list(ast.find_all(nodes.For))
        for loop in loops:  # every turn of every loop is charged to the render's budget
            loop.iter = nodes.Call(
                nodes.EnvironmentAttribute("loop_turns"), [loop.iter], [], None, None, lineno=loop.lineno
            )
        self._loops = bool(loops)
        template = ENVIRONMENT.from_string(ast)
        # Skip Template.render's argument copying and traceback rewriting: this is the per-row hot path.
        self._root: Callable[[Any], Iterator[str]] = template.root_render_func
        self._new_context = template.new_context
        # Jinja merges a ChainMap of globals into every context; a flat copy made once is much cheaper.
        self._globals = dict(template.globals)
        self._name = template.name
        self._blocks = template.blocks
        # Only a template that names the filter draws; others skip the per-row generator (the hot path).
        self._draws = "random" in source

    def render(self, row: Mapping[str, Any], index: int | None = None, stream: tuple[int, int] = (0, 0)) -> str:
        """Render with the row's values (``stream``: the run seed and batch index, which seed ``random``).

        Raises:
            TemplateSecurityError: the sandbox stopped an unsafe operation.
            TemplateRenderError: any other failure, naming the template's owner and the row.
        """
        work = _WORK.set(_RenderWork() if self._loops else None)
        try:
            context = self._new_context({**row, _RANDOM: _RowRandom(self._row_key(stream, index or 0))})
            return _joined_output(self._root(context))
        except Exception as exc:
            raise self._failure(exc, index) from None
        finally:
            _WORK.reset(work)

    def render_rows(self, rows: list[dict[str, Any]], stream: tuple[int, int] = (0, 0)) -> list[str]:
        """Render every row (the batch hot path: no per-row copy of the mapping).

        ``stream`` is the run seed and the batch index: with the template and the row, they seed ``random``.
        """
        out: list[str] = []
        root, context = self._root, ENVIRONMENT.context_class
        env, name, blocks, globals_ = ENVIRONMENT, self._name, self._blocks, self._globals
        draws, loops = self._draws, self._loops
        append = out.append
        i = 0
        work = _WORK.set(None)
        try:
            for i, row in enumerate(rows):
                variables = {**globals_, **row}
                if draws:
                    variables[_RANDOM] = _RowRandom(self._row_key(stream, i))
                if loops:  # a fresh budget per row
                    _WORK.set(_RenderWork())
                append(_joined_output(root(context(env, variables, name, blocks))))
        except Exception as exc:
            raise self._failure(exc, i) from None
        finally:
            _WORK.reset(work)
        return out

    def _row_key(self, stream: tuple[int, int], index: int) -> str:
        """What seeds a row's ``random``: the run seed, the batch, this template's owner and the row."""
        return f"{stream[0]}/{stream[1]}/{self.where}/{index}"

    def _failure(self, exc: Exception, index: int | None) -> Exception:
        """The error to raise for a render that failed: the template's owner and the row named."""
        if isinstance(exc, SecurityError):
            return TemplateSecurityError(f"{self.where}: {exc} (template: {self.source!r})")
        if isinstance(exc, UndefinedError):
            return TemplateRenderError(f"{self.where}{_row(index)}: {exc.message}")
        return TemplateRenderError(f"{self.where}{_row(index)}: {type(exc).__name__}: {exc}")


def _joined_output(pieces: Iterator[str]) -> str:
    # A loop can emit a large value many times over: the text is counted as it is produced.
    out: list[str] = []
    size = 0
    for piece in pieces:
        size += len(piece)
        if size > MAX_VALUE_SIZE:
            _limit(size, "the rendered template")
        out.append(piece)
    return "".join(out)


def _row(index: int | None) -> str:
    return "" if index is None else f", row {index}"


def compile_template(source: str, where: str) -> CompiledTemplate:
    """Compile and check a config template.

    Raises:
        TemplateSecurityError: the template reaches for Python internals.
        ConfigError: the template does not parse.
    """
    return CompiledTemplate(source, where)


def is_template(source: str) -> bool:
    """Whether a string holds Jinja2 syntax (plain strings are constants and never rendered)."""
    return "{{" in source or "{%" in source or "{#" in source
