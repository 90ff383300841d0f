"""The push's first Hub calls, as one retried task: check the token, create the repo and its branch.

huggingface_hub does not retry these calls (whoami, repo creation, repo info, settings, branch creation), so one
transient 5xx would fail a nightly run before its first stage. As a task, they get the stages' retry policy:
transient failures are retried with back-off; a rejected token (401) or a refusal (403) fails at once.

Example:
    ```python
    from prefect import flow
    from pydantic import SecretStr
    from tasks.hub_commit import HubTarget
    from tasks.prepare_repo import prepare_repo

    @flow
    def make_repo():
        ready = prepare_repo(HubTarget(repo_id="alice/greetings"), SecretStr("hf_..."), private=True)
        print(ready.user, ready.url)
    ```
"""

from __future__ import annotations

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from prefect import task
from pydantic import BaseModel, SecretStr

from tasks.hub_client import hub_api, tokens_page
from tasks.hub_commit import HubTarget
from tasks.retry_policy import http_status, retry_options
from tasks.validation import InvalidParameterError


class RepoReady(BaseModel):
    """Who the token belongs to, and the repo's URL."""

    user: str
    url: str


def check_token_with_hub(api: HfApi, token: str) -> str:
    """The token's user name, or a clear error when the Hub rejects the token (before any upload)."""
    try:
        return str(api.whoami(token=token)["name"])
    except HfHubHTTPError as exc:
        if http_status(exc) == 401:
            # Name the Hub: a huggingface.co token sent to a self-hosted Hub (HF_ENDPOINT) is rejected too, and
            # "create a token at huggingface.co" would send the user the wrong way.
            endpoint = api.endpoint.rstrip("/")
            raise PermissionError(
                f"The Hub at {endpoint} rejected the token (401). Create a token with write access at "
                f"{tokens_page(endpoint)}, and pass it as token=..., a HuggingFaceCredentials block, HF_TOKEN, or "
                "`hf auth login`."
            ) from None
        raise


def create_repo_and_branch(api: HfApi, target: HubTarget, private: bool, token: str | None) -> str:
    """Create the repo if needed, apply ``private=True`` to an existing repo, create the branch; return its URL.

    ``token=None`` uses the client's own token.

    Raises:
        InvalidParameterError: ``target.revision`` is a pull request (``refs/pr/N``) the repo does not have; checked
            first, so no repo is created for it.
    """
    if target.revision.startswith("refs/pr/"):
        try:
            api.repo_info(target.repo_id, repo_type=target.repo_type, revision=target.revision, token=token)
        except (RepositoryNotFoundError, RevisionNotFoundError):
            raise InvalidParameterError(
                f"revision {target.revision!r}: {target.repo_id} has no pull request {target.revision}. Give one "
                "that is open (its number is in its URL, .../discussions/N), or push with create_pr to open one."
            ) from None
    url = api.create_repo(
        target.repo_id, repo_type=target.repo_type, private=private or None, exist_ok=True, token=token
    )
    if private:
        info = api.repo_info(target.repo_id, repo_type=target.repo_type, token=token)
        if not info.private:
            api.update_repo_settings(target.repo_id, repo_type=target.repo_type, private=True, token=token)
    if target.revision != "main" and not target.revision.startswith("refs/pr/"):
        api.create_branch(
            target.repo_id, branch=target.revision, repo_type=target.repo_type, exist_ok=True, token=token
        )
    return str(url)


@task(name="prepare-repo", **retry_options())
def prepare_repo(target: HubTarget, token: SecretStr, private: bool = False) -> RepoReady:
    """Check the token with the Hub, then create the repo (private if asked) and the target branch if missing.

    Args:
        target: The repo and the branch the push commits to.
        token: A Hub token with write access.
        private: Make the repo private, also when it already exists.

    Returns:
        The token's user name and the repo URL.
    """
    api, secret = hub_api(), token.get_secret_value()
    user = check_token_with_hub(api, secret)
    return RepoReady(user=user, url=create_repo_and_branch(api, target, private, secret))
