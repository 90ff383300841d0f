"""README.md front matter: parsed for repo info ``cardData`` and checked by ``/api/validate-yaml`` (§5.5, §5.6)."""

from __future__ import annotations

import re
from typing import Any

import yaml

_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)(?:\r?\n)?^---[ \t]*$", re.DOTALL | re.MULTILINE)


def front_matter(text: str) -> str | None:
    """The YAML between a first line ``---`` and the next ``---`` line, or None when there is none."""
    m = _FRONT_MATTER.match(text)
    return m.group(1) if m else None


def card_data(text: str) -> dict[str, Any] | None:
    """The front matter as a mapping, or None when absent or invalid (repo info just omits ``cardData``)."""
    yaml_text = front_matter(text)
    if yaml_text is None:
        return None
    try:
        data = yaml.safe_load(yaml_text)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def validate_card(text: str) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a README, with the checks the ``datasets`` library relies on (§6.2)."""
    yaml_text = front_matter(text)
    if yaml_text is None or not yaml_text.strip():
        return [], ["Empty or missing yaml metadata in repo card"]
    try:
        data = yaml.safe_load(yaml_text)
    except yaml.YAMLError as e:
        return [f"Invalid YAML in README.md front matter: {e}"], []
    if not isinstance(data, dict):
        return [f"README.md front matter must be a YAML mapping, got {type(data).__name__}"], []
    errors: list[str] = []
    configs = data.get("configs")
    if configs is not None:
        if not isinstance(configs, list):
            errors.append('"configs" must be a list')
        else:
            for i, config in enumerate(configs):
                if not isinstance(config, dict) or not isinstance(config.get("config_name"), str):
                    errors.append(f'"configs[{i}]" must be a mapping with a string "config_name"')
    return errors, []
