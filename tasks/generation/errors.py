"""Errors of the generation pipeline: every problem of a config is reported at once, before generation starts."""

from __future__ import annotations

from collections.abc import Iterable


class ConfigError(ValueError):
    """A generation config is invalid; ``problems`` lists every problem found, one line each."""

    header = "Invalid generation config"

    def __init__(self, problems: str | Iterable[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            message = f"{self.header}: {self.problems[0]}"
        else:
            message = f"{self.header} ({len(self.problems)} problems):\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(message)


class UnsupportedConfigError(ConfigError):
    """The config uses column, sampler or processor types (or options) that this generator does not support."""

    header = "Unsupported items in the generation config"


class TemplateSecurityError(ConfigError):
    """A Jinja2 template tried to reach Python internals; the sandbox refused it."""

    header = "Template rejected by the sandbox"


class OutputFolderError(ConfigError):
    """The output folder holds files this run would not own (another tool's dataset, files it never writes)."""

    header = "Output folder not usable"


class TemplateRenderError(RuntimeError):
    """A template failed while rendering a row (a bad filter, a type error, a value that does not cast)."""


class CheckpointRefusedError(RuntimeError):
    """A checkpoint commit cannot be made: the Hub refused it for good (401 or 403: the token cannot write there),
    or another run is checkpointing to the same branch (committing would overwrite its batches). The run stops at
    its next batch instead of generating everything for a checkpoint that can never be written; its completed
    batches stay in its folder, from which a rerun resumes."""
