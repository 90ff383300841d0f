"""Pydantic models for Data Designer's ``builder_config.json`` format, for the column types this generator supports.

The file format is ``{"data_designer": {"columns": [...], "model_configs": [...], "processors": [...]},
"library_version": ...}``. Models accept the keys Data Designer writes (and unknown ones, which are kept on
write-back); anything this generator cannot run is reported by :func:`parse_config` in one
:class:`UnsupportedConfigError` that lists every item, before any generation starts.

One extension lives beside ``data_designer`` (Data Designer keeps providers outside its config file):
``model_providers``, the OpenAI-compatible endpoints that ``model_configs[*].provider`` names. Their API keys are
given by reference (an environment variable or a Prefect ``Secret`` block), so a written config holds no secret.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from tasks.generation.errors import ConfigError, UnsupportedConfigError
from tasks.redaction import ENV_VAR_NAME, is_secret_header, redact_secrets

SUPPORTED_COLUMN_TYPES = ("sampler", "expression", "llm-text")
SUPPORTED_SAMPLER_TYPES = (
    "category",
    "subcategory",
    "uniform",
    "gaussian",
    "bernoulli",
    "poisson",
    "uuid",
    "datetime",
)
SUPPORTED_PROCESSOR_TYPES = ("schema_transform", "drop_columns")
# Data Designer settings that change what is generated; accepted only when empty.
_UNSUPPORTED_DESIGNER_KEYS = ("seed_config", "constraints", "profilers", "tool_configs", "record_selection")
# Fields that change how requests are sent, not what is generated: left out of config_hash.
_TRANSPORT_INFERENCE_FIELDS = ("max_parallel_requests", "timeout")
_TRANSPORT_PROVIDER_FIELDS = (
    "api_key_env",
    "api_key_secret",
    "api_key",
    "max_retries",
    "retry_backoff_seconds",
    "max_backoff_seconds",
)

Scalar = bool | str | int | float


class _Lenient(BaseModel):
    """Unknown keys are accepted and written back unchanged (Data Designer adds fields between releases)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# ---------------------------------------------------------------------------------------------- sampler params


class CategoryParams(_Lenient):
    """``category``: one of ``values``, with optional unnormalised ``weights``."""

    sampler_type: Literal["category"] = "category"
    values: list[Scalar] = Field(min_length=1)
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _check_weights(self) -> CategoryParams:
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError("'weights' must have one entry per value")
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError("'weights' must be non-negative and sum to more than 0")
        return self


class SubcategoryParams(_Lenient):
    """``subcategory``: a value from ``values[<parent value>]``, where the parent is the ``category`` column."""

    sampler_type: Literal["subcategory"] = "subcategory"
    category: str
    values: dict[str, list[Scalar]]

    @property
    def all_values(self) -> list[Scalar]:
        """Every value, of every parent value, in order."""
        return [v for vs in self.values.values() for v in vs]

    @field_validator("values")
    @classmethod
    def _non_empty(cls, value: dict[str, list[Scalar]]) -> dict[str, list[Scalar]]:
        empty = [k for k, v in value.items() if not v]
        if not value or empty:
            raise ValueError(f"every parent value needs at least one subcategory (empty: {empty})")
        return value


class UniformParams(_Lenient):
    """``uniform``: a float in ``[low, high)``, optionally rounded."""

    sampler_type: Literal["uniform"] = "uniform"
    low: float
    high: float
    decimal_places: int | None = None

    @model_validator(mode="after")
    def _check_bounds(self) -> UniformParams:
        if not self.low < self.high:
            raise ValueError("'low' must be less than 'high'")
        return self


class GaussianParams(_Lenient):
    """``gaussian``: a normal sample, optionally rounded."""

    sampler_type: Literal["gaussian"] = "gaussian"
    mean: float
    stddev: float = Field(ge=0)
    decimal_places: int | None = None


class BernoulliParams(_Lenient):
    """``bernoulli``: 1 with probability ``p``, else 0."""

    sampler_type: Literal["bernoulli"] = "bernoulli"
    p: float = Field(ge=0, le=1)


class PoissonParams(_Lenient):
    """``poisson``: a count with the given mean."""

    sampler_type: Literal["poisson"] = "poisson"
    mean: float = Field(ge=0)


class UUIDParams(_Lenient):
    """``uuid``: a version-4 UUID drawn from the seeded generator (so reruns reproduce it)."""

    sampler_type: Literal["uuid"] = "uuid"
    prefix: str | None = None
    short_form: bool = False
    uppercase: bool = False


class DatetimeParams(_Lenient):
    """``datetime``: uniform in ``[start, end)`` at the granularity of ``unit`` (Y, M, D, h, m, s)."""

    sampler_type: Literal["datetime"] = "datetime"
    start: str
    end: str
    unit: Literal["Y", "M", "D", "h", "m", "s"] = "D"

    @field_validator("start", "end")
    @classmethod
    def _iso(cls, value: str) -> str:
        try:
            datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"not an ISO 8601 date or datetime: {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _ordered(self) -> DatetimeParams:
        if not parse_datetime(self.start) < parse_datetime(self.end):
            raise ValueError("'start' must be before 'end'")
        return self


def parse_datetime(value: str) -> datetime:
    """Parse an ISO 8601 date/datetime; aware values are converted to naive UTC."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


SamplerParams = Annotated[
    CategoryParams
    | SubcategoryParams
    | UniformParams
    | GaussianParams
    | BernoulliParams
    | PoissonParams
    | UUIDParams
    | DatetimeParams,
    Field(discriminator="sampler_type"),
]

# ---------------------------------------------------------------------------------------------- columns


class _Column(_Lenient):
    name: str = Field(min_length=1)
    drop: bool = False


class SamplerColumn(_Column):
    """A column drawn from a statistical sampler (vectorised, seeded per batch and column).

    ``convert_to`` is ``"int"``, ``"float"`` or ``"str"``; for ``datetime`` samplers it may also be a ``strftime``
    format such as ``"%Y-%m-%d"``.
    """

    column_type: Literal["sampler"] = "sampler"
    sampler_type: Literal[
        "category", "subcategory", "uniform", "gaussian", "bernoulli", "poisson", "uuid", "datetime"
    ]
    params: SamplerParams
    convert_to: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _inject_sampler_type(cls, data: Any) -> Any:
        # Data Designer writes params with their own sampler_type; hand-written configs usually omit it.
        if isinstance(data, dict) and isinstance(data.get("params", {}), dict):
            params = dict(data.get("params") or {})
            params.setdefault("sampler_type", data.get("sampler_type"))
            data = {**data, "params": params}
        return data

    @model_validator(mode="after")
    def _check(self) -> SamplerColumn:
        if self.params.sampler_type != self.sampler_type:
            raise ValueError(f"params are for {self.params.sampler_type!r}, column says {self.sampler_type!r}")
        conv = self.convert_to
        if (
            conv is not None
            and conv not in ("int", "float", "str")
            and not (self.sampler_type == "datetime" and "%" in conv)
        ):
            raise ValueError(
                f"convert_to must be 'int', 'float' or 'str' (or a strftime format for datetime samplers), "
                f"got {conv!r}"
            )
        if conv is not None:
            _check_conversion(self.params, conv)
        return self


def _check_conversion(params: SamplerParams, convert_to: str) -> None:
    """Refuse a ``convert_to`` that could only fail while generating (the values are known, or the types are)."""
    numeric = convert_to in ("int", "float")
    if numeric and isinstance(params, UUIDParams):
        raise ValueError(f"convert_to {convert_to!r}: uuid values are not numbers; use 'str' or leave it out")
    if convert_to == "float" and isinstance(params, DatetimeParams):
        raise ValueError("convert_to 'float' does not apply to datetimes: use 'int' (the time in units of the "
                         "sampler's unit since 1970) or a strftime format such as '%Y-%m-%d'")  # fmt: skip
    if numeric and isinstance(params, CategoryParams | SubcategoryParams):
        values = params.values if isinstance(params, CategoryParams) else params.all_values
        bad = [v for v in values if isinstance(v, str) and not _is_number(v)]
        if bad:
            raise ValueError(f"convert_to {convert_to!r}: the values {bad[:3]} are not numbers")
    if "%" in convert_to:
        import pyarrow as pa  # the check is Arrow's own strftime, which differs from Python's
        import pyarrow.compute as pc

        try:
            pc.strftime(pa.array([0], pa.timestamp("us")), format=convert_to)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ValueError(f"convert_to {convert_to!r} is not a usable strftime format: {exc}") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class ExpressionColumn(_Column):
    """A column rendered per row from a Jinja2 template over earlier columns, cast to ``dtype``."""

    column_type: Literal["expression"] = "expression"
    expr: str = Field(min_length=1)
    dtype: Literal["int", "float", "str", "bool"] = "str"


class LLMTextColumn(_Column):
    """A column answered by a chat-completions model; ``prompt`` and ``system_prompt`` are Jinja2 templates."""

    column_type: Literal["llm-text"] = "llm-text"
    prompt: str = Field(min_length=1)
    model_alias: str
    system_prompt: str | None = None


Column = Annotated[SamplerColumn | ExpressionColumn | LLMTextColumn, Field(discriminator="column_type")]

# ---------------------------------------------------------------------------------------------- models


class InferenceParameters(_Lenient):
    """Chat-completion settings of a model alias (Data Designer's ``ChatCompletionInferenceParams``)."""

    generation_type: Literal["chat-completion"] = "chat-completion"
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_parallel_requests: int = Field(default=4, ge=1)
    timeout: float | None = Field(default=None, gt=0)
    extra_body: dict[str, Any] | None = None


class ModelConfig(_Lenient):
    """A model alias that ``llm-text`` columns refer to."""

    alias: str
    model: str
    inference_parameters: InferenceParameters = Field(default_factory=InferenceParameters)
    provider: str | None = None
    skip_health_check: bool = False


class ModelProvider(_Lenient):
    """An OpenAI-compatible endpoint (``POST {endpoint}/chat/completions``) and where its API key comes from.

    Attributes:
        name: The name ``model_configs[*].provider`` uses.
        endpoint: Base URL, e.g. ``https://api.openai.com/v1``.
        api_key_env: Environment variable holding the key (read where the batch runs).
        api_key_secret: Name of a saved Prefect ``Secret`` block holding the key.
        api_key: Data Designer's field: an environment variable name (``"OPENAI_API_KEY"``) or, discouraged, the
            key itself, which is kept as a secret and never written back.
        extra_headers: Extra request headers; values of auth-like headers are redacted on write-back.
        extra_body: Extra JSON merged into every request body.
        max_retries: Retries on 429, 5xx, timeouts and connection errors.
        retry_backoff_seconds: First back-off delay; doubles per retry (a longer ``Retry-After`` of the server wins).
        max_backoff_seconds: Cap of the computed back-off.
    """

    name: str
    endpoint: str
    provider_type: str = "openai"
    api_key_env: str | None = None
    api_key_secret: str | None = None
    api_key: SecretStr | None = None
    extra_headers: dict[str, str] | None = None
    extra_body: dict[str, Any] | None = None
    max_retries: int = Field(default=5, ge=0)
    retry_backoff_seconds: float = Field(default=1.0, ge=0)
    max_backoff_seconds: float = Field(default=30.0, ge=0)

    @field_validator("endpoint")
    @classmethod
    def _http(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise ValueError(f"endpoint must be an http(s) URL, got {value!r}")
        return value.rstrip("/")

    @property
    def key_env_var(self) -> str | None:
        """The environment variable that holds the key, when the key is given that way."""
        if self.api_key_env:
            return self.api_key_env
        if self.api_key is not None and ENV_VAR_NAME.match(self.api_key.get_secret_value()):
            return self.api_key.get_secret_value()
        return None

    @property
    def literal_api_key(self) -> str | None:
        """The key itself, when the config holds it directly (never written back)."""
        if self.api_key is None or ENV_VAR_NAME.match(self.api_key.get_secret_value()):
            return None
        return self.api_key.get_secret_value()

    @field_serializer("api_key")
    def _dump_key(self, value: SecretStr | None) -> str | None:
        # An env var name is a reference and is kept; a literal key is never serialised.
        if value is not None and ENV_VAR_NAME.match(value.get_secret_value()):
            return value.get_secret_value()
        return None

    @field_serializer("extra_headers")
    def _dump_headers(self, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        return {k: ("<redacted>" if is_secret_header(k) else v) for k, v in value.items()}


BUILTIN_PROVIDERS: dict[str, ModelProvider] = {
    p.name: p
    for p in (
        ModelProvider(name="nvidia", endpoint="https://integrate.api.nvidia.com/v1", api_key_env="NVIDIA_API_KEY"),
        ModelProvider(name="openai", endpoint="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY"),
        ModelProvider(
            name="openrouter", endpoint="https://openrouter.ai/api/v1", api_key_env="OPENROUTER_API_KEY"
        ),
    )
}

# ---------------------------------------------------------------------------------------------- processors


class SchemaTransformProcessor(_Lenient):
    """Writes ``processors-files/<name>/``: one output column per ``template`` key.

    Values are Jinja2 template strings, or JSON structures (lists, objects) whose strings are templates; a
    structure becomes an Arrow list/struct column (e.g. ``messages`` as a list of ``{role, content}``).
    """

    name: str = Field(min_length=1)
    processor_type: Literal["schema_transform"] = "schema_transform"
    template: dict[str, Any] = Field(min_length=1)


class DropColumnsProcessor(_Lenient):
    """Removes ``column_names`` from the main dataset (processors after it no longer see them)."""

    name: str = Field(min_length=1)
    processor_type: Literal["drop_columns"] = "drop_columns"
    column_names: list[str] = Field(min_length=1)


Processor = Annotated[SchemaTransformProcessor | DropColumnsProcessor, Field(discriminator="processor_type")]

# ---------------------------------------------------------------------------------------------- the config


class DataDesignerConfig(_Lenient):
    """The ``data_designer`` section."""

    columns: list[Column] = Field(min_length=1)
    model_configs: list[ModelConfig] | None = None
    processors: list[Processor] | None = None


class BuilderConfig(_Lenient):
    """A whole ``builder_config.json``: what :func:`tasks.generation.source.from_config` returns.

    Examples:
        ```python
        from tasks.generation.config import BuilderConfig

        config = BuilderConfig.model_validate({"data_designer": {"columns": [
            {"name": "n", "column_type": "sampler", "sampler_type": "poisson", "params": {"mean": 3}},
        ]}})
        config.to_builder_dict()["data_designer"]["columns"][0]["sampler_type"]  # 'poisson'
        ```
    """

    data_designer: DataDesignerConfig
    library_version: str | None = None
    model_providers: list[ModelProvider] | None = None

    def to_builder_dict(self) -> dict[str, Any]:
        """The config in Data Designer's file format, secrets removed, unknown keys kept."""
        data = self.model_dump(mode="json", exclude_none=True, by_alias=True)
        for provider in data.get("model_providers", []):
            if provider.get("api_key") is None:
                provider.pop("api_key", None)  # a literal key serialises to None: leave no trace of it
        return data

    def to_json(self) -> str:
        """``builder_config.json`` content (indented, no secrets).

        Besides what :meth:`to_builder_dict` leaves out, credentials anywhere in it (``extra_body``'s
        ``{"api_key": ...}``, an endpoint's ``?api-key=...`` or ``user:password@``) are redacted by
        :func:`~tasks.redaction.redact_secrets`, as the push does: the file is uploaded as it is by generation
        checkpoints. (Kept in :meth:`to_builder_dict`, which tells configs apart for the plan cache.)
        """
        return json.dumps(redact_secrets(self.to_builder_dict()), indent=2, ensure_ascii=False) + "\n"

    def config_hash(self) -> str:
        """A stable hash of everything that determines the generated data.

        Settings that only change how requests are sent (parallelism, timeouts, retries, where the key comes
        from, auth-like headers) and the ``library_version`` label are left out, so a run resumed after, say,
        lowering ``max_parallel_requests`` keeps its finished batches.
        """
        data = self.to_builder_dict()
        data.pop("library_version", None)
        for model in data["data_designer"].get("model_configs") or []:
            model.pop("skip_health_check", None)
            for name in _TRANSPORT_INFERENCE_FIELDS:
                model.get("inference_parameters", {}).pop(name, None)
        for provider in data.get("model_providers") or []:
            for name in _TRANSPORT_PROVIDER_FIELDS:
                provider.pop(name, None)
            headers = {
                k: v for k, v in (provider.pop("extra_headers", None) or {}).items() if not is_secret_header(k)
            }
            if headers:  # other headers may select a model version or behaviour: they stay
                provider["extra_headers"] = headers
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def columns(self) -> list[SamplerColumn | ExpressionColumn | LLMTextColumn]:
        """The column configs, in config order."""
        return list(self.data_designer.columns)

    @property
    def processors(self) -> list[SchemaTransformProcessor | DropColumnsProcessor]:
        """The processor configs, in run order."""
        return list(self.data_designer.processors or [])

    def model(self, alias: str) -> ModelConfig:
        """The model config named ``alias``."""
        for model in self.data_designer.model_configs or []:
            if model.alias == alias:
                return model
        raise ConfigError(f"no model config with alias {alias!r}")

    def provider(self, model: ModelConfig) -> ModelProvider:
        """The provider a model config uses: from ``model_providers``, else a built-in one (nvidia, openai,
        openrouter); with no ``provider`` set, the only declared provider."""
        providers = {p.name: p for p in self.model_providers or []}
        if model.provider is None:
            if len(providers) == 1:
                return next(iter(providers.values()))
            raise ConfigError(
                f"model config {model.alias!r} names no provider; set 'provider' to one of "
                f"{sorted(providers) or sorted(BUILTIN_PROVIDERS)}"
            )
        found = providers.get(model.provider) or BUILTIN_PROVIDERS.get(model.provider)
        if found is None:
            raise ConfigError(
                f"model config {model.alias!r} uses provider {model.provider!r}, which is neither in "
                f"'model_providers' nor built in ({', '.join(sorted(BUILTIN_PROVIDERS))})"
            )
        return found


# ---------------------------------------------------------------------------------------------- parsing


def _unsupported_items(raw: dict[str, Any]) -> list[str]:
    """Every item of a raw config that this generator cannot run, described for the user."""
    items: list[str] = []
    designer = raw.get("data_designer")
    if not isinstance(designer, dict):
        return items
    for key in _UNSUPPORTED_DESIGNER_KEYS:
        if designer.get(key):
            items.append(f"data_designer.{key} (not supported; remove it)")
    for i, col in enumerate(designer.get("columns") or []):
        if not isinstance(col, dict):
            continue
        label = f"column {col.get('name', f'#{i}')!r}"
        ctype = col.get("column_type")
        if ctype not in SUPPORTED_COLUMN_TYPES:
            items.append(f"{label}: column_type {ctype!r}")
            continue
        if ctype == "sampler":
            stype = col.get("sampler_type")
            if stype not in SUPPORTED_SAMPLER_TYPES:
                items.append(f"{label}: sampler_type {stype!r}")
            if col.get("conditional_params"):
                items.append(f"{label}: conditional_params")
        if ctype == "llm-text":
            if col.get("multi_modal_context"):
                items.append(f"{label}: multi_modal_context")
            if col.get("tool_alias"):
                items.append(f"{label}: tool_alias")
            if col.get("with_trace") not in (None, "none", False):
                items.append(f"{label}: with_trace={col.get('with_trace')!r}")
            if col.get("extract_reasoning_content"):
                items.append(f"{label}: extract_reasoning_content")
        if col.get("allow_resize"):
            items.append(f"{label}: allow_resize")
    for i, proc in enumerate(designer.get("processors") or []):
        if isinstance(proc, dict) and proc.get("processor_type") not in SUPPORTED_PROCESSOR_TYPES:
            items.append(f"processor {proc.get('name', f'#{i}')!r}: processor_type {proc.get('processor_type')!r}")
    for model in designer.get("model_configs") or []:
        if not isinstance(model, dict):
            continue
        params = model.get("inference_parameters") or {}
        label = f"model config {model.get('alias')!r}"
        if isinstance(params, dict):
            gtype = params.get("generation_type", "chat-completion")
            if gtype != "chat-completion" or "encoding_format" in params or "dimensions" in params:
                items.append(f"{label}: generation_type {gtype!r} (only chat-completion)")
            for key in ("temperature", "top_p"):
                if isinstance(params.get(key), dict):
                    items.append(f"{label}: {key} as a distribution (give a number)")
    for provider in raw.get("model_providers") or []:
        if isinstance(provider, dict) and str(provider.get("provider_type", "openai")).lower() != "openai":
            items.append(
                f"model provider {provider.get('name')!r}: provider_type {provider.get('provider_type')!r}"
            )
    return items


def _format_validation_error(exc: ValidationError, raw: dict[str, Any]) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = _describe_location(loc, raw)
        problems.append(f"{where}: {err['msg']}")
    return problems


def _describe_location(loc: list[Any], raw: dict[str, Any]) -> str:
    # Name columns and processors by their name, not their index: "column 'greeting'.expr".
    parts: list[str] = []
    node: Any = raw
    i = 0
    while i < len(loc):
        key = loc[i]
        if key in ("columns", "processors", "model_configs", "model_providers") and i + 1 < len(loc):
            idx = loc[i + 1]
            try:
                item = node[key][idx]
                label = item.get("name") or item.get("alias") or f"#{idx}"
            except (KeyError, IndexError, TypeError, AttributeError):
                item, label = None, f"#{idx}"
            kind = {"columns": "column", "processors": "processor", "model_configs": "model config"}.get(
                key, "model provider"
            )
            parts.append(f"{kind} {label!r}")
            node = item
            i += 2
            continue
        if isinstance(key, str) and key not in ("data_designer",) and not key.startswith(("function-", "tagged-")):
            parts.append(key)
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            node = None
        i += 1
    return ".".join(parts) or "config"


def parse_config(raw: dict[str, Any]) -> BuilderConfig:
    """Validate a config dict (full ``{"data_designer": ...}`` form or the shorthand with ``columns`` at the top).

    Raises:
        UnsupportedConfigError: listing every unsupported column type, sampler type, processor type or option.
        ConfigError: listing every field that does not validate.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping, got {type(raw).__name__}")
    if "data_designer" not in raw and "columns" in raw:
        providers = raw.get("model_providers")
        raw = {"data_designer": {k: v for k, v in raw.items() if k != "model_providers"}}
        if providers is not None:
            raw["model_providers"] = providers
    if "data_designer" not in raw:
        raise ConfigError("no 'data_designer' section (and no top-level 'columns')")
    unsupported = _unsupported_items(raw)
    if unsupported:
        raise UnsupportedConfigError(unsupported)
    try:
        return BuilderConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, raw)) from None
