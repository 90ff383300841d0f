"""Parameters of the deployments, as pydantic models.

Each deployment's flow takes exactly one of these models as its ``params`` parameter. Prefect turns the model
into the deployment's parameter schema, so the server validates a run's parameters before the run is created
(a bad repo id, an empty description or a negative record count is refused with a 409 that names the field),
and the UI shows a form with the fields and their descriptions.

No model has a token field: the token comes from the environment of the process that runs the flow
(``HF_TOKEN``) or from a saved ``HuggingFaceCredentials`` block named by ``credentials_block``, so it never
shows in a flow run's parameters.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from tasks.stage_plan import StageName
from tasks.validation import (
    LANGUAGE_PATTERN,
    LICENSE_PATTERN,
    TASK_ID_PATTERN,
    validate_dask_address,
    validate_description,
    validate_repo_id,
    validate_revision,
)

# The Hub's rules for ``namespace/name`` as a JSON-schema pattern, so the server checks them too
# (``tasks.validation.validate_repo_id`` adds the rules a regex says badly: no ``--``/``..``, no ``.git``).
REPO_ID_PATTERN = (
    r"^[A-Za-z0-9_](?:[A-Za-z0-9_.\-]{0,94}[A-Za-z0-9_])?/[A-Za-z0-9_](?:[A-Za-z0-9_.\-]{0,94}[A-Za-z0-9_])?$"
)

RepoId = Annotated[
    str,
    Field(
        pattern=REPO_ID_PATTERN,
        max_length=193,
        description=(
            "The dataset repo, as namespace/name (created if missing): each part 1-96 letters, digits, '-', '_' or "
            "'.', not starting or ending with '-' or '.', without '--' or '..'."
        ),
        examples=["alice/multilingual-greetings"],
    ),
    AfterValidator(validate_repo_id),  # after the Field, so its pattern stays in the schema the server checks
]
Description = Annotated[
    str,
    Field(
        min_length=1,
        pattern=r"\S",
        description="The opening paragraph of the dataset card (required).",
    ),
    AfterValidator(validate_description),
]
CredentialsBlock = Annotated[
    str | None,
    Field(
        description=(
            "Name of a saved HuggingFaceCredentials block to take the token from. "
            "Default: HF_TOKEN in the environment of the process that runs the flow, then `hf auth login`."
        ),
    ),
]


class _Parameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CardParameters(_Parameters):
    """Options of the dataset card, the repo and the push, shared by the push deployments."""

    private: bool = Field(default=False, description="Make the repo private (also when it already exists).")
    tags: list[str] = Field(default_factory=list, description="Card tags, after `synthetic` and `datadesigner`.")
    license: Annotated[str, Field(pattern=LICENSE_PATTERN)] | None = Field(
        default=None, description="Card `license`: a Hub license identifier, e.g. `apache-2.0`."
    )
    language: list[Annotated[str, Field(pattern=LANGUAGE_PATTERN)]] | None = Field(
        default=None, description='Card `language`: ISO 639 codes, e.g. ["en", "fr"].'
    )
    task_categories: list[Annotated[str, Field(pattern=TASK_ID_PATTERN)]] | None = Field(
        default=None, description='Card `task_categories`: Hub task ids, e.g. ["text-generation"].'
    )
    pretty_name: str | None = Field(default=None, description="Card `pretty_name`.")
    revision: str = Field(default="main", min_length=1, description="Branch to push to (created if missing).")
    create_pr: bool = Field(default=False, description="Open a pull request instead of committing to `revision`.")
    stages: list[StageName] | None = Field(
        default=None,
        description='Run only these stages, e.g. ["metadata"]; default: all six in order.',
    )
    max_files_per_commit: int = Field(
        default=100, ge=1, le=10_000, description="A stage with more files is split into `(part i of n)` commits."
    )
    credentials_block: CredentialsBlock = None

    @field_validator("revision")
    @classmethod
    def _revision(cls, value: str) -> str:
        return validate_revision(value)


class PushParameters(CardParameters):
    """Push a dataset folder (Data Designer layout) that is already on disk to a Hub dataset repo.

    Example:
        ```python
        PushParameters(
            dataset_dir="artifacts/greetings", repo_id="alice/greetings", description="Greetings in five languages."
        )
        ```
    """

    dataset_dir: str = Field(
        min_length=1,
        description="The dataset folder (parquet-files/, metadata.json, ...) on the machine that runs the flow.",
    )
    repo_id: RepoId
    description: Description


class GenerateAndPushParameters(CardParameters):
    """Generate a dataset from a config, then push it to a Hub dataset repo.

    Example:
        ```python
        GenerateAndPushParameters(
            config="examples/multilingual_greetings.yaml",
            records=1000,
            repo="alice/multilingual-greetings",
            description="Multilingual greetings, generated with samplers and templates.",
        )
        ```
    """

    config: str = Field(
        min_length=1,
        description=(
            "The generation config (Data Designer builder_config format): a path on the machine that runs the "
            "flow, or an http(s) URL (Hub and GitHub blob URLs work)."
        ),
        examples=["examples/multilingual_greetings.yaml"],
    )
    records: int = Field(ge=1, le=100_000_000, description="Number of records to generate.")
    repo: RepoId
    description: Description
    batch_size: int | None = Field(
        default=None, ge=1, description="Records per batch (one Prefect task each); default: the flow's."
    )
    seed: Annotated[int, Field(ge=0)] | Literal["per-run"] = Field(
        default=0,
        description=(
            "Seed of every random choice; the same seed gives the same data, so every run of a schedule would "
            'publish the same dataset. "per-run": each run draws its own seed from its flow run id (a Retry keeps '
            "it, so the retried run resumes its batches)."
        ),
    )
    task_runner: Literal["threads", "dask"] = Field(
        default="threads",
        description=(
            "Where the generation batches run: `threads` (in the flow's process) or `dask` (a local Dask cluster, "
            "or the one at `dask_address`)."
        ),
    )
    dask_address: str | None = Field(
        default=None,
        description="Scheduler of a running Dask cluster (e.g. tcp://scheduler:8786) for task_runner=dask.",
    )
    checkpoint_branch: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Push completed batches to this branch of the repo while generating (not the branch the dataset is "
            "published to), so that a run whose folder is gone resumes from them."
        ),
    )
    checkpoint_interval_seconds: float = Field(
        default=60.0, ge=1, description="At most one checkpoint commit per this many seconds."
    )

    @model_validator(mode="after")
    def _dask_address_needs_dask(self) -> GenerateAndPushParameters:
        # Checked when the run starts, before generating: the schema the server checks cannot relate two fields.
        validate_dask_address(self.task_runner, self.dask_address)
        return self


class VerifyParameters(_Parameters):
    """Check a pushed dataset by loading every config its card declares back from the Hub.

    The chained deployment fills these from the ``hf.dataset.pushed`` event:
    ``repo_id`` ← ``event.payload.repo_id``, ``revision`` ← ``event.payload.commit`` (the commit the push left;
    the branch, ``event.payload.revision``, if no stage ran),
    ``expected_records`` ← ``event.payload.records``.
    """

    repo_id: RepoId
    revision: str = Field(default="main", min_length=1, description="Branch, tag, refs/pr/N or commit sha.")
    expected_records: int | None = Field(
        default=None, ge=0, description="Records the main config must have; default: only check that it loads."
    )
    credentials_block: CredentialsBlock = None
