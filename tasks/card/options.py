"""What the user says about a dataset on its card (:class:`CardOptions`), apart from the renderer.

Kept apart so that a push can take and check the options without importing the renderer (Jinja2, and pyarrow's
compute functions, which import pandas): a push whose card is cached never renders one.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator

from tasks.validation import (
    validate_description,
    validate_languages,
    validate_license,
    validate_repo_id,
    validate_revision,
    validate_task_categories,
)

__all__ = ["CardOptions"]


class CardOptions(BaseModel):
    """What the user says about the dataset; everything else on the card is computed."""

    model_config = ConfigDict(extra="forbid")

    repo_id: str
    description: str
    tags: list[str] = []
    license: str | None = None
    language: list[str] | None = None
    task_categories: list[str] | None = None
    pretty_name: str | None = None
    template: Path | None = None
    hub_url: str = "https://huggingface.co"  # used in the citation's URL
    # The branch pushed to, when not main: the Quick Start names it, since the card lives on that branch and a
    # reader copying the snippet wants its data, not main's. A pull request's card (refs/pr/N) is main's once merged.
    revision: str | None = None

    @field_validator("repo_id")
    @classmethod
    def _repo_id(cls, value: str) -> str:
        return validate_repo_id(value)

    @field_validator("revision")
    @classmethod
    def _revision(cls, value: str | None) -> str | None:
        if value is None or value == "main" or value.startswith("refs/pr/"):
            return None
        return validate_revision(value)

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        return validate_description(value)

    @field_validator("license")
    @classmethod
    def _license(cls, value: str | None) -> str | None:
        return validate_license(value)

    @field_validator("pretty_name")
    @classmethod
    def _pretty_name(cls, value: str | None) -> str | None:
        return (value or "").strip() or None

    @field_validator("language")
    @classmethod
    def _language(cls, value: list[str] | None) -> list[str] | None:
        return validate_languages(value)

    @field_validator("task_categories")
    @classmethod
    def _task_categories(cls, value: list[str] | None) -> list[str] | None:
        return validate_task_categories(value)

    @field_validator("template")
    @classmethod
    def _template(cls, value: Path | None) -> Path | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"template {str(value)!r} is not a file")
        return value
