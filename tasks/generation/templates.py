"""Jinja2 templates from configs, compiled once and rendered per row in a sandbox.

Configs come from URLs and other people's repos, so templates run in ``ImmutableSandboxedEnvironment`` (no
private attributes, no mutation of values, bounded ``range``) with ``StrictUndefined`` (a misspelt column is an
error, not an empty string). On top of the sandbox's runtime checks, templates are checked statically when the
config is loaded, so an escape attempt (``__class__``, ``__subclasses__``, ``mro``...) fails before generation
starts, with the column named.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tasks.generation.errors import ConfigError, TemplateRenderError, TemplateSecurityError

# Attribute names that lead from a value to Python internals even though they do not start with "_".
_BLOCKED_NAMES = frozenset({"mro", "func_globals", "f_globals", "f_locals", "gi_frame", "cr_frame", "tb_frame"})
_BLOCKED_NODES = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)

MAX_SEQUENCE_PRODUCT = 1_000_000  # 'ab' * n, [x] * n
MAX_EXPONENT = 10_000


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus limits on the operators that can exhaust memory or CPU in one expression."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > MAX_SEQUENCE_PRODUCT
                ):
                    raise SecurityError(f"repeating a sequence {times} times is over the limit")
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is over the limit of {MAX_EXPONENT}")
        return super().call_binop(context, operator, left, right)


ENVIRONMENT = _Sandbox(
    undefined=StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)


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
    # Loops are bounded by the sandbox's range limit; nested loops would multiply those bounds.
    for loop in ast.find_all(nodes.For):
        if next(loop.find_all(nodes.For), None) is not None:
            problems.append("nested for loops are not allowed")
            break
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
        references: Names the template reads from the row.
    """

    __slots__ = ("_blocks", "_globals", "_name", "_new_context", "_root", "references", "source", "where")

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
        self.references = frozenset(meta.find_undeclared_variables(ast) - set(ENVIRONMENT.globals))
        template = ENVIRONMENT.from_string(source)
        # Skip Template.render's argument copying and traceback rewriting: this is the per-row hot path.
        self._root: Callable[[Any], Iterator[str]] = template.root_render_func
        self._new_context = template.new_context
        # Jinja merges a ChainMap of globals into every context; a flat copy made once is much cheaper.
        self._globals = dict(template.globals)
        self._name = template.name
        self._blocks = template.blocks

    def render(self, row: Mapping[str, Any], index: int | None = None) -> str:
        """Render with the row's values.

        Raises:
            TemplateSecurityError: the sandbox stopped an unsafe operation.
            TemplateRenderError: any other failure, naming the template's owner and the row.
        """
        try:
            return "".join(self._root(self._new_context(dict(row))))
        except SecurityError as exc:
            raise TemplateSecurityError(f"{self.where}: {exc} (template: {self.source!r})") from None
        except UndefinedError as exc:
            raise TemplateRenderError(f"{self.where}{_row(index)}: {exc.message}") from None
        except Exception as exc:
            raise TemplateRenderError(f"{self.where}{_row(index)}: {type(exc).__name__}: {exc}") from None

    def render_rows(self, rows: list[dict[str, Any]]) -> list[str]:
        """Render every row (the batch hot path: no per-row copy of the mapping)."""
        out: list[str] = []
        root, context = self._root, ENVIRONMENT.context_class
        env, name, blocks, globals_ = ENVIRONMENT, self._name, self._blocks, self._globals
        append = out.append
        i = 0
        try:
            for i, row in enumerate(rows):  # noqa: B007 - i is read in the error handlers
                append("".join(root(context(env, {**globals_, **row}, name, blocks))))
        except SecurityError as exc:
            raise TemplateSecurityError(f"{self.where}: {exc} (template: {self.source!r})") from None
        except UndefinedError as exc:
            raise TemplateRenderError(f"{self.where}{_row(i)}: {exc.message}") from None
        except Exception as exc:
            raise TemplateRenderError(f"{self.where}{_row(i)}: {type(exc).__name__}: {exc}") from None
        return out


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
