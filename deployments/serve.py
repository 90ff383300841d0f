"""Serve every deployment of the project from one process: ``python -m deployments.serve``.

Three deployments (``flow-name/deployment-name``):

- ``generate-then-push/scheduled``: generate a dataset from a config and push it, on a cron schedule, with
  parameters ``config``, ``records``, ``repo``, ``description`` and ``seed: per-run`` (set below, overridable per
  run);
- ``push-folder/push-only``: push a dataset folder that is already on disk (parameters given per run);
- ``verify-after-push/on-push``: started by the ``hf.dataset.pushed`` event of every completed push, with its
  parameters templated from the event; it loads the pushed dataset back and checks it.

The flows run in child processes of this one and inherit its environment: give it ``PREFECT_API_URL`` (a real
server: schedules and event triggers need one), ``HF_TOKEN`` (never a parameter) and, for a self-hosted Hub,
``HF_ENDPOINT``. Example against a local server and the embedded Hub::

    PREFECT_API_URL=http://127.0.0.1:4200/api HF_ENDPOINT=http://127.0.0.1:8765 HF_HUB_DISABLE_XET=1 \
        HF_TOKEN=hf_local_token python -m deployments.serve --repo local/multilingual-greetings

Stop it with Ctrl-C (the schedules are paused while nothing serves them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from prefect import Flow, serve
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron
from prefect.types.entrypoint import EntrypointType

from deployments.entrypoints import generate_then_push, push_folder, verify_after_push
from deployments.parameters import GenerateAndPushParameters
from tasks.events import DATASET_PUSHED

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = "examples/multilingual_greetings.yaml"
DEFAULT_DESCRIPTION = "Multilingual greetings, generated with samplers and templates."
TAGS = ["hf-datasets"]

# Parameters of the chained run, rendered by the server from the event that triggers it. It reads the commit the
# push left (not the branch, which a later push may have moved since). The parentheses matter: the server appends
# `| tojson` to a one-expression template, and a filter binds tighter than `or`.
VERIFY_FROM_EVENT: dict[str, Any] = {
    "params": {
        "repo_id": "{{ event.payload.repo_id }}",
        "revision": "{{ (event.payload.commit or event.payload.revision) }}",
        "expected_records": "{{ event.payload.records }}",
        # the block the push used (a name; null without one): a private repo is read with the same credentials
        "credentials_block": "{{ event.payload.credentials_block }}",
    }
}


def _config_path(config: str) -> str:
    """A config path that works from any working directory (URLs are kept as they are)."""
    if "://" in config:
        return config
    path = Path(config)
    for candidate in (path, ROOT / path):
        if candidate.is_file():
            return str(candidate.resolve())
    return config


def _deployment(flow: Flow[Any, Any], **options: Any) -> RunnerDeployment:
    deployment = flow.to_deployment(entrypoint_type=EntrypointType.MODULE_PATH, **options)
    assert isinstance(deployment, RunnerDeployment)  # to_deployment is sync here (no running event loop)
    return deployment


def build_deployments(
    *,
    repo: str,
    config: str = DEFAULT_CONFIG,
    records: int = 1000,
    description: str = DEFAULT_DESCRIPTION,
    cron: str = "0 3 * * *",
    timezone: str = "UTC",
    verify_match: str = "hf.dataset.*",
) -> list[RunnerDeployment]:
    """The deployments this project serves (see the module docstring)."""
    scheduled = GenerateAndPushParameters(  # a new seed per run: each scheduled run publishes new data
        config=_config_path(config), records=records, repo=repo, description=description, seed="per-run"
    )
    deployments = [
        _deployment(
            generate_then_push,
            name="scheduled",
            description="Generate a dataset from a config and push it to the Hub, stage by stage, on a schedule.",
            schedules=[Cron(cron, timezone=timezone)],
            parameters={"params": scheduled.model_dump(mode="json", exclude_defaults=True)},
            # One run at a time (others wait their turn): runs share the repo's default output folder and push
            # to the same repo, so a manual run beside the nightly one would interleave their files.
            concurrency_limit=1,
            tags=TAGS,
        )
    ]
    deployments.append(
        _deployment(
            push_folder,
            name="push-only",
            description="Push a dataset folder that is on disk to a Hub dataset repo, one commit per stage.",
            tags=TAGS,
        )
    )
    deployments.append(
        _deployment(
            verify_after_push,
            name="on-push",
            description=f"Load a pushed dataset back and check it; started by every `{DATASET_PUSHED}` event.",
            triggers=[
                DeploymentEventTrigger(
                    name="verify-on-push",
                    expect={DATASET_PUSHED},
                    match={"prefect.resource.id": verify_match},
                    parameters=VERIFY_FROM_EVENT,
                )
            ],
            tags=TAGS,
        )
    )
    return deployments


def main(argv: list[str] | None = None) -> int:
    """``python -m deployments.serve``: build the three deployments from the command line and serve them.

    Blocks while serving (the flows run in child processes); returns the exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m deployments.serve",
        description="Serve the scheduled generate-then-push, the push-only and the chained verify deployments.",
    )
    parser.add_argument("--repo", default="local/multilingual-greetings", help="repo of the scheduled push")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="generation config of the scheduled run")
    parser.add_argument("--records", type=int, default=1000, help="records per scheduled run")
    parser.add_argument("--description", default=DEFAULT_DESCRIPTION, help="dataset card description")
    parser.add_argument("--cron", default="0 3 * * *", help="schedule of generate-then-push (default: 03:00)")
    parser.add_argument("--timezone", default="UTC", help="time zone of the cron schedule")
    parser.add_argument(
        "--verify-match",
        default="hf.dataset.*",
        help="resource id pattern of the pushes that start the verify flow (hf.dataset.<repo>, * = prefix)",
    )
    parser.add_argument("--limit", type=int, default=None, help="at most this many runs at once")
    args = parser.parse_args(argv)
    deployments = build_deployments(
        repo=args.repo,
        config=args.config,
        records=args.records,
        description=args.description,
        cron=args.cron,
        timezone=args.timezone,
        verify_match=args.verify_match,
    )
    serve(*deployments, limit=args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
