"""Which template files a card is made from: what a cached card must be keyed on.

Kept apart from the renderer (``tasks.card.render``), whose imports a push that takes its card from the cache
does not need.
"""

from __future__ import annotations

import uuid
from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"  # the shipped templates


def template_sources(user_template: Path) -> list[tuple[str, str]]:
    """The user's card template and every template of its folder it loads (``include``, ``import``, ``from``,
    ``extends``, followed through), as ``(name, text)``: what a cached card must be keyed on. A template name
    computed at render time cannot be followed: the result then holds a one-off value, so such a card is never
    taken from a cache. The shipped templates are the code's, not part of it.
    """
    import jinja2  # here, not at the top: the push loads this module, and needs Jinja only for a custom card
    from jinja2 import meta as jinja2_meta

    root = Path(user_template).resolve()
    folder = root.parent
    parser = jinja2.Environment(autoescape=False)  # noqa: S701  parsed only, never rendered
    sources: dict[str, str] = {}
    pending: list[tuple[str, Path]] = [(root.name, root)]  # the template itself is read from its path
    while pending:
        name, path = pending.pop()
        if name in sources or not path.is_file():
            continue  # seen; or missing: rendering will say so
        sources[name] = path.read_text(encoding="utf-8")
        try:
            referenced = list(jinja2_meta.find_referenced_templates(parser.parse(sources[name])))
        except jinja2.TemplateSyntaxError:
            continue  # rendering will report it
        if None in referenced:
            sources["<computed template name>"] = uuid.uuid4().hex
        # Names resolve as the renderer's loader does: the shipped folder first, then the template's own.
        pending += [
            (ref, folder / ref)
            for ref in referenced
            if ref is not None and not (TEMPLATES_DIR / ref).is_file() and ".." not in ref.split("/")
        ]
    return sorted(sources.items())
