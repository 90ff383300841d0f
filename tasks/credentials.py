"""Credentials for the Hugging Face Hub: a Prefect Block and the token lookup order every stage shares."""

from __future__ import annotations

import os

from huggingface_hub import get_token
from prefect import get_client
from prefect.blocks.core import Block
from prefect.context import FlowRunContext
from pydantic import Field, SecretStr

# How Prefect records a SecretStr flow parameter (and how hide_token_parameter masks a plain-string one).
MASKED = "**********"


class MissingTokenError(ValueError):
    """No Hugging Face token was found where the push looks for one."""


class HuggingFaceCredentials(Block):
    """A Hugging Face user access token, stored as a secret.

    Save it once, load it by name in any flow; the token never appears in logs or in the flow-run parameters.

    Attributes:
        token: A user access token with write access to the target repos (https://huggingface.co/settings/tokens).

    Examples:
        Save and load the block:
        ```python
        from tasks.credentials import HuggingFaceCredentials

        HuggingFaceCredentials(token="hf_...").save("hf-writer")
        credentials = HuggingFaceCredentials.load("hf-writer")
        ```
    """

    _block_type_name = "Hugging Face Credentials"
    _logo_url = "https://huggingface.co/front/assets/huggingface_logo-noborder.svg"  # type: ignore[assignment]
    _documentation_url = "https://huggingface.co/docs/hub/security-tokens"  # type: ignore[assignment]

    token: SecretStr = Field(
        default=...,
        description="A Hugging Face user access token with write access to the dataset repos you push to.",
    )


def resolve_token(
    token: str | SecretStr | None = None,
    credentials: HuggingFaceCredentials | None = None,
) -> str:
    """Find the token to use, in the documented order, without any network call.

    Order: the explicit ``token``, then ``credentials``, then the ``HF_TOKEN`` environment variable, then the
    token cached by ``hf auth login``.

    Raises:
        MissingTokenError: when none of them holds a token; the message says how to provide one.
    """
    if isinstance(token, SecretStr):
        token = token.get_secret_value()
    if token == MASKED:  # a retried run gets the recorded parameter back, masked: the token itself is gone
        token = None
    if token:
        return token
    if credentials is not None:
        value = credentials.token.get_secret_value()
        if value:
            return value
    env_token = os.environ.get("HF_TOKEN")
    if env_token:
        return env_token
    cached = get_token()
    if cached:
        return cached
    raise MissingTokenError(
        "No Hugging Face token found. Pass token=..., or a HuggingFaceCredentials block "
        "(HuggingFaceCredentials(token='hf_...').save('hf-writer')), or set HF_TOKEN, or run `hf auth login`. "
        "The token needs write access to the target repo. (A token passed to a flow as a parameter is recorded "
        "masked, so a retried run does not have it: use a block or HF_TOKEN for runs that may be retried.)"
    )


def hide_token_parameter(name: str = "token") -> None:
    """Mask the running flow's ``name`` parameter in its recorded parameters when it was passed as a plain string.

    Prefect records a flow run's parameters as the caller passed them: a ``SecretStr`` is stored masked, but a
    plain string, which Python callers naturally pass, would stay readable in the UI and the API. Call at the
    start of a flow that takes a token; outside a flow run it does nothing.
    """
    context = FlowRunContext.get()
    flow_run = context.flow_run if context else None
    if flow_run is None:
        return
    value = flow_run.parameters.get(name)
    if isinstance(value, str) and value and value != MASKED:
        masked = {**flow_run.parameters, name: MASKED}
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run.id, parameters=masked)
        flow_run.parameters = masked
