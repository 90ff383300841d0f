"""README.md front matter: parsed for repo info ``cardData`` and checked by ``/api/validate-yaml`` (§5.5, §5.6)."""

from __future__ import annotations

import re
from typing import Any

import yaml

# The Hub's license identifiers (https://huggingface.co/docs/hub/repositories-licenses): it refuses a card whose
# ``license`` is not one of them. The list grows on the Hub from time to time.
LICENSES = frozenset(
    """
    apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0 bigcode-openrail-m
    afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0
    cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0
    cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0
    cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 eupl-1.2 agpl-3.0 gfdl
    gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc lppl-1.3c ms-pl apple-ascl mpl-2.0 odc-by odbl openrail++
    osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr deepfloyd-if-license llama2 llama3 llama3.1
    llama3.2 llama3.3 gemma unknown other
    """.split()  # noqa: SIM905 - a word list reads better than 77 quoted lines
)

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
    """(errors, warnings) for a README, with the checks the ``datasets`` library relies on (§6.2) and the Hub's
    refusal of an unknown license."""
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
    license = data.get("license")
    for value in license if isinstance(license, list) else [] if license is None else [license]:
        if not isinstance(value, str) or value not in LICENSES:
            errors.append(f'"license" must be one of [{", ".join(sorted(LICENSES))}]; got {value!r}')
    configs = data.get("configs")
    if configs is not None:
        if not isinstance(configs, list):
            errors.append('"configs" must be a list')
        else:
            for i, config in enumerate(configs):
                if not isinstance(config, dict) or not isinstance(config.get("config_name"), str):
                    errors.append(f'"configs[{i}]" must be a mapping with a string "config_name"')
    return errors, []
