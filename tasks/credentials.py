"""Credentials for the Hugging Face Hub: a Prefect Block and the token lookup order every stage shares."""

from __future__ import annotations

from huggingface_hub import get_token
from prefect import get_client
from prefect.blocks.core import Block
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectNotFound
from pydantic import Field, SecretStr

from tasks.hub_client import tokens_page
from tasks.validation import InvalidParameterError

# How Prefect records a SecretStr flow parameter (and how hide_token_parameter masks a plain-string one).
MASKED = "**********"


class MissingTokenError(ValueError):
    """No Hugging Face token was found where the push looks for one."""


class InvalidTokenError(ValueError):
    """The token found cannot be a Hugging Face token (it could not even be sent in a request header)."""


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


def load_credentials(block_name: str) -> HuggingFaceCredentials:
    """The ``HuggingFaceCredentials`` block saved as ``block_name`` (what a ``credentials_block`` parameter names).

    Raises:
        InvalidParameterError: no such block is saved on this Prefect server; the message names the parameter and
            the ways out (Prefect's own, "Unable to find block document named ...", names neither).
    """
    try:
        return HuggingFaceCredentials.load(block_name)  # type: ignore[return-value]
    except ValueError as exc:
        if not isinstance(exc.__cause__, ObjectNotFound):  # e.g. a saved block that no longer validates
            raise
        raise InvalidParameterError(
            f"credentials_block {block_name!r}: no HuggingFaceCredentials block of that name is saved on this "
            f"Prefect server. Save one (HuggingFaceCredentials(token=...).save({block_name!r})), or leave "
            "credentials_block empty to use HF_TOKEN in the environment of the process that runs the flow."
        ) from None


def _clean(value: str | None) -> str | None:
    """A token as huggingface_hub reads one: without line breaks and surrounding spaces (a secret mounted from a
    file or pasted from a ``.env`` often ends with a newline, which no HTTP header may hold)."""
    return (value or "").replace("\r", "").replace("\n", "").strip() or None


def _checked(value: str, source: str) -> str:
    # A character no HTTP header may hold fails the first request with an error that quotes the header, token and
    # all, and is taken for a network failure and retried: refuse it here, without echoing the token.
    if not (value.isascii() and value.isprintable()) or " " in value:
        raise InvalidTokenError(
            f"The Hugging Face token from {source} holds characters a token cannot have (spaces, control or "
            f"non-ASCII characters). Copy it again from {tokens_page()}."
        )
    return value


def resolve_token(
    token: str | SecretStr | None = None,
    credentials: HuggingFaceCredentials | None = None,
) -> str:
    """Find the token to use, in the documented order, without any network call.

    Order: the explicit ``token``, then ``credentials``, then what huggingface_hub's ``get_token`` finds: the
    ``HF_TOKEN`` environment variable, the token saved by ``hf auth login`` (an OAuth login's token refreshed when
    due), or a Trusted Publishers token when ``HF_OIDC_RESOURCE`` is set. Line breaks and surrounding spaces are
    removed, as huggingface_hub does.

    Raises:
        MissingTokenError: when none of them holds a token; the message says how to provide one.
        InvalidTokenError: the token found holds characters no token has; the message names where it came from.
    """
    if isinstance(token, SecretStr):
        token = token.get_secret_value()
    if token == MASKED:  # a retried run gets the recorded parameter back, masked: the token itself is gone
        token = None
    if explicit := _clean(token):
        return _checked(explicit, "token=")
    if credentials is not None and credentials.token.get_secret_value() == MASKED:
        credentials = _saved_block_of_this_run()  # a block passed as a parameter comes back masked, like a token
    if credentials is not None and (saved := _clean(credentials.token.get_secret_value())):
        return _checked(saved, "the HuggingFaceCredentials block")
    if found := get_token():
        return _checked(found, "HF_TOKEN or the saved login")
    raise MissingTokenError(
        "No Hugging Face token found. Pass token=..., or a HuggingFaceCredentials block "
        "(HuggingFaceCredentials(token='hf_...').save('hf-writer')), or set HF_TOKEN, or run `hf auth login`. "
        "The token needs write access to the target repo. (A token passed to a flow as a parameter is recorded "
        "masked, so a retried run does not have it: use a block or HF_TOKEN for runs that may be retried.)"
    )


def _saved_block_of_this_run() -> HuggingFaceCredentials | None:
    """The saved block that the running flow run's recorded parameters name, loaded again.

    Prefect records a block parameter with its secret masked (and its name, when it was saved): a run started
    through a deployment (``run_deployment``, a trigger) or retried from the UI gets that masked copy. The saved
    block still holds the token.
    """
    context = FlowRunContext.get()
    recorded = context.flow_run.parameters.values() if context and context.flow_run else ()
    slug = HuggingFaceCredentials.get_block_type_slug()
    for value in recorded:
        if isinstance(value, dict) and value.get("block_type_slug") == slug and value.get("_block_document_name"):
            return load_credentials(value["_block_document_name"])
    return None  # an unsaved block: its token is gone, as a plain token parameter's is


def optional_token(token: str | SecretStr | None, credentials: HuggingFaceCredentials | None) -> str | None:
    """The token by ``resolve_token``'s order, or None when there is none: reads of public repos need none."""
    try:
        return resolve_token(token, credentials)
    except MissingTokenError:
        return None


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
