"""What the user says about a dataset on its card (:class:`CardOptions`), apart from the renderer.

Kept apart so that a push can take and check the options without importing the renderer (Jinja2, and pyarrow's
compute functions, which import pandas): a push whose card is cached never renders one.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator

from tasks.validation import validate_description, validate_repo_id

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

    @field_validator("repo_id")
    @classmethod
    def _repo_id(cls, value: str) -> str:
        return validate_repo_id(value)

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        return validate_description(value)

    @field_validator("license", "pretty_name")
    @classmethod
    def _optional_text(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return value.strip() or None

    @field_validator("language", "task_categories")
    @classmethod
    def _optional_list(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = list(dict.fromkeys(v.strip() for v in value if v.strip()))
        return cleaned or None

    @field_validator("template")
    @classmethod
    def _template(cls, value: Path | None) -> Path | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"template {str(value)!r} is not a file")
        return value
