"""The deployments' parameter models and the per-run seed, without the Prefect engine (the served deployments
and their runs are tested in ``test_prefect_ops.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect._internal.uuid7 import uuid7
from pydantic import ValidationError

from deployments.entrypoints import run_seed
from deployments.parameters import GenerateAndPushParameters

BASE = {"config": "examples/multilingual_greetings.yaml", "records": 10, "repo": "alice/ds", "description": "d"}


def test_a_per_run_seed_comes_from_the_run_id_and_an_integer_seed_is_kept() -> None:
    # Prefect's run ids are UUIDv7: the scheduler creates the next nights' runs within the same millisecond, so
    # their ids share their leading (timestamp) digits. Each run must still get its own seed.
    scheduled = [str(uuid7()) for _ in range(3)]
    seeds = [run_seed("per-run", run_id) for run_id in scheduled]
    assert len(set(seeds)) == 3 and all(0 <= seed < 2**32 for seed in seeds), seeds
    first = scheduled[0]
    assert run_seed("per-run", first) == run_seed("per-run", first)  # a Retry keeps the run id, so the seed
    assert run_seed("per-run", first.upper()) == run_seed("per-run", first)  # the id, not its spelling
    assert run_seed(7, first) == 7 and run_seed(0, None) == 0
    with pytest.raises(ValueError, match="needs a flow run"):
        run_seed("per-run", None)


def test_the_seed_parameter_takes_an_integer_or_per_run() -> None:
    assert GenerateAndPushParameters(**BASE).seed == 0
    assert GenerateAndPushParameters(**BASE, seed="per-run").seed == "per-run"
    for bad in ("random", -1):
        with pytest.raises(ValidationError, match="seed"):
            GenerateAndPushParameters(**BASE, seed=bad)
    schema = GenerateAndPushParameters.model_json_schema()["properties"]["seed"]
    assert {"type": "integer", "minimum": 0} in schema["anyOf"] and {"const": "per-run", "type": "string"} in (
        schema["anyOf"]
    )


def test_a_dask_address_needs_the_dask_task_runner() -> None:
    """A run given only a scheduler address would generate on threads: its parameters are refused instead."""
    with pytest.raises(ValidationError, match="used only with task_runner='dask', and task_runner is 'threads'"):
        GenerateAndPushParameters(**BASE, dask_address="tcp://scheduler:8786")
    params = GenerateAndPushParameters(**BASE, task_runner="dask", dask_address="tcp://scheduler:8786")
    assert (params.task_runner, params.dask_address) == ("dask", "tcp://scheduler:8786")


def test_card_vocabulary_is_checked_by_the_parameter_schema() -> None:
    params = GenerateAndPushParameters(
        **BASE, license="cc-by-4.0", language=["en"], task_categories=["translation"]
    )
    assert (params.license, params.language, params.task_categories) == ("cc-by-4.0", ["en"], ["translation"])
    for field, bad in (("license", "MIT"), ("language", ["English"]), ("task_categories", ["Text Generation"])):
        with pytest.raises(ValidationError, match=field):
            GenerateAndPushParameters(**BASE, **{field: bad})


def test_deployment_runs_write_no_progress_bars() -> None:
    """The served and deployed runs import the entry points in a fresh process: no huggingface_hub progress bars
    in their logs unless HF_HUB_DISABLE_PROGRESS_BARS says otherwise."""
    check = (
        "import deployments.entrypoints; from huggingface_hub.utils import are_progress_bars_disabled; "
        "print(are_progress_bars_disabled())"
    )
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    for setting, expected in ((None, "True"), ("0", "False")):
        if setting is not None:
            env["HF_HUB_DISABLE_PROGRESS_BARS"] = setting
        out = subprocess.run(
            [sys.executable, "-c", check],
            env=env,
            cwd=Path(__file__).parents[1],
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == expected
