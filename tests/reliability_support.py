"""Shared helpers of the reliability tests (``tests/test_reliability_*.py``); the push, Prefect and checkpoint
tests use its repo readers and its ``wait_for`` too.

- reading a repo back: files with their content ids, commit titles, the card, ``metadata.json``;
- comparing a repo with a clean push of the same folder (same files and ids, same commit titles: nothing duplicated,
  nothing stale);
- seeding a repo with an earlier push's layout in one commit (cheap "re-push" starting points);
- test-speed knobs for huggingface_hub: a shorter client back-off, a client timeout;
- child processes of the CLIs on the session's Prefect API, and SIGKILL at chosen points;
- the figures the matrix produced, written to ``test-artifacts/reliability/figures.json`` for the README.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from conftest import ALICE_TOKEN
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from pydantic import SecretStr

from tasks.hub_client import TIMEOUT_ENV

ROOT = Path(__file__).resolve().parents[1]
DESCRIPTION = "Greetings in five languages, for reliability tests."
FIGURES_FILE = ROOT / "test-artifacts" / "reliability" / "figures.json"

# ----------------------------------------------------------------------------------------------- reading a repo


def api() -> HfApi:
    return HfApi(token=ALICE_TOKEN)


def repo_files(repo_id: str, revision: str = "main") -> dict[str, str]:
    """Repo path → content id (LFS sha256, else git blob id) at ``revision``."""
    entries = api().list_repo_tree(repo_id, recursive=True, repo_type="dataset", revision=revision)
    return {e.path: (e.lfs.sha256 if e.lfs else e.blob_id) for e in entries if hasattr(e, "blob_id")}


def titles(repo_id: str, revision: str = "main") -> list[str]:
    """Commit titles, oldest first (the initial commit included)."""
    return [c.title for c in reversed(api().list_repo_commits(repo_id, repo_type="dataset", revision=revision))]


def read_text(repo_id: str, path: str, revision: str = "main") -> str:
    local = hf_hub_download(repo_id, path, repo_type="dataset", revision=revision, token=ALICE_TOKEN)
    return Path(local).read_text(encoding="utf-8")


def normalised_card(text: str, repo_id: str) -> str:
    """The card with the repo's name replaced (it is the only legitimate difference between two repos)."""
    name = repo_id.split("/")[1]
    return re.sub(f"{re.escape(name)}|{re.escape(name.replace('-', '_'))}", "REPO", text)


def assert_same_as_reference(repo_id: str, reference: str) -> None:
    """``repo_id`` ends exactly like ``reference``: same files with the same ids (no stale file, nothing
    missing), the same card up to the repo name, and the same commit titles (no duplicate commit)."""
    files, expected = repo_files(repo_id), repo_files(reference)
    got = {p: i for p, i in files.items() if p != "README.md"}
    want = {p: i for p, i in expected.items() if p != "README.md"}
    assert set(got) - set(want) == set(), f"stale or unexpected files in {repo_id}: {sorted(set(got) - set(want))}"
    assert set(want) - set(got) == set(), f"files missing from {repo_id}: {sorted(set(want) - set(got))}"
    changed = sorted(p for p in want if got[p] != want[p])
    assert not changed, f"files of {repo_id} differ from the clean push: {changed}"
    assert normalised_card(read_text(repo_id, "README.md"), repo_id) == normalised_card(
        read_text(reference, "README.md"), reference
    ), f"the card of {repo_id} differs from the clean push's"
    got_titles, want_titles = titles(repo_id), titles(reference)
    assert got_titles == want_titles, (
        f"commit history of {repo_id} differs from the clean push (duplicate or missing commit):\n"
        f"  got:      {got_titles}\n  expected: {want_titles}"
    )


def metadata_problems(repo_id: str, revision: str = "main") -> list[str]:
    """What is inconsistent between ``metadata.json`` and the repo: files it lists that are missing, and parquet
    files of the configs it names that it does not list."""
    files = set(repo_files(repo_id, revision))
    metadata = json.loads(read_text(repo_id, "metadata.json", revision))
    paths = metadata.get("file_paths", {})
    listed = list(paths.get("parquet-files", []))
    for names in paths.get("processor-files", {}).values():
        listed += names
    problems = [f"metadata.json lists {p}, which the repo does not have" for p in listed if p not in files]
    folders = {"data", *paths.get("processor-files", {})}
    unlisted = sorted(
        p for p in files if p.endswith(".parquet") and p.split("/")[0] in folders and p not in listed
    )
    problems += [f"{p} is in the repo but not in metadata.json" for p in unlisted]
    processor_folders = {p.split("/")[0] for p in files if p.endswith(".parquet") and "/" in p} - {"data"}
    problems += [
        f"processor folder {name}/ is in the repo but not in metadata.json"
        for name in sorted(processor_folders - set(paths.get("processor-files", {})))
    ]
    return problems


def seed_repo(repo_id: str, folder: Path, title: str = "Seed: an earlier push") -> None:
    """Create ``repo_id`` holding ``folder`` in the repo layout, as an earlier push left it, in one commit
    (``README.md`` a placeholder; ``metadata.json`` as the push uploads it, so vanished processors are known)."""
    from tasks.dataset_folder import scan_dataset_folder
    from tasks.hub_metadata import hub_metadata, json_bytes
    from tasks.repo_layout import repo_path

    scanned = scan_dataset_folder(folder)
    local = [*scanned.data_files, *(f for p in scanned.processors for f in p.files), *scanned.images]
    operations = [
        CommitOperationAdd(path_in_repo=str(repo_path(scanned.relative(p))), path_or_fileobj=str(p)) for p in local
    ]
    operations.append(
        CommitOperationAdd(path_in_repo="metadata.json", path_or_fileobj=json_bytes(hub_metadata(scanned)))
    )
    card = b"---\nlicense: mit\n---\n# An earlier push\n"
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card))
    api().create_repo(repo_id, repo_type="dataset", exist_ok=True)
    api().create_commit(repo_id, operations, commit_message=title, repo_type="dataset")


# ----------------------------------------------------------------------------------------------- prefect


# ----------------------------------------------------------------------------------------------- pushing


def push(folder: Path, repo_id: str, **kwargs: Any) -> Any:
    """The push flow in this process, with alice's token as a secret."""
    from flows.push import push_dataset

    kwargs.setdefault("token", SecretStr(ALICE_TOKEN))
    return push_dataset(folder, repo_id, DESCRIPTION, **kwargs)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


# ----------------------------------------------------------------------------------------------- client knobs


@contextlib.contextmanager
def fast_client_backoff(base: float = 0.05, maximum: float = 0.2) -> Iterator[None]:
    """Scale huggingface_hub's own retry back-off (1, 2, 4, 8, 8 s) down to ``base``·2^n (capped), in this
    process. ``Retry-After`` waits are unchanged (the client sleeps Retry-After + 1 s)."""
    from huggingface_hub.utils import _http

    stream = getattr(_http.http_stream_backoff, "__wrapped__", _http.http_stream_backoff)
    functions = [fn for fn in (_http.http_backoff, stream, _http._http_backoff_base) if fn.__kwdefaults__]
    saved = {fn: dict(fn.__kwdefaults__) for fn in functions}
    try:
        for fn in functions:
            fn.__kwdefaults__.update(base_wait_time=base, max_wait_time=maximum)
        yield
    finally:
        for fn, defaults in saved.items():
            fn.__kwdefaults__ = defaults


@contextlib.contextmanager
def client_timeout(seconds: float) -> Iterator[None]:
    """Bound every Hub request of this process to ``seconds`` the project's way (``HFDS_HTTP_TIMEOUT``, see
    ``tasks/hub_client.py``), and the file-metadata HEAD of ``hf_hub_download`` the same (``HF_HUB_ETAG_TIMEOUT``,
    10 s by default, which huggingface_hub passes per call)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import close_session

    saved_env, saved_etag = os.environ.get(TIMEOUT_ENV), constants.HF_HUB_ETAG_TIMEOUT
    os.environ[TIMEOUT_ENV] = str(seconds)
    close_session()  # the next request gets a client made with this bound
    constants.HF_HUB_ETAG_TIMEOUT = int(max(1, seconds))
    try:
        yield
    finally:
        constants.HF_HUB_ETAG_TIMEOUT = saved_etag
        if saved_env is None:
            os.environ.pop(TIMEOUT_ENV, None)
        else:
            os.environ[TIMEOUT_ENV] = saved_env
        close_session()


# ----------------------------------------------------------------------------------------------- child processes


def child_env(**extra: str) -> dict[str, str]:
    """The session's environment for a CLI child, on the session's Prefect API (call inside ``prefect_api``)."""
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ)
    env.update(
        {
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
            "HF_TOKEN": ALICE_TOKEN,
        }
    )
    env.update(extra)
    return env


def start_child(module: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


class LaunchedChild:
    """A child forked by ``Launcher``: the part of ``subprocess.Popen`` the crash tests use."""

    def __init__(self, pid: int, files: dict[str, Path]) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._files = files

    def poll(self) -> int | None:
        if self.returncode is None:
            code = self._files["rc"].read_text() if self._files["rc"].exists() else ""
            if code:
                self.returncode = int(code)
            else:
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:  # gone without writing its exit code: killed
                    self.returncode = -signal.SIGKILL
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        if not wait_for(lambda: self.poll() is not None, timeout if timeout is not None else 3600.0):
            raise subprocess.TimeoutExpired(f"child {self.pid}", timeout or 0.0)
        return self._files["out"].read_text(), self._files["err"].read_text()


class Launcher:
    """Starts CLI children forked from one process that imported the CLIs first (``tests/child_launcher.py``):
    a child then costs no interpreter start and no imports (3.4 s of CPU each here), and is still its own
    process, killed by SIGKILL wherever it is. Its ``PREFECT_`` variables are the launcher's (``env``)."""

    def __init__(self, modules: list[str], env: dict[str, str], work: Path) -> None:
        self._work = work
        self._count = 0
        self._process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "child_launcher.py"), *modules],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._read() == {"ready": True}

    def _read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        assert line, f"the child launcher ended (rc {self._process.poll()})"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def start(self, module: str, args: list[str], env: dict[str, str]) -> LaunchedChild:
        """``python -m module args`` with ``env``, as ``start_child`` does, forked from the launcher."""
        self._count += 1
        files = {k: self._work / f"child-{self._count}.{k}" for k in ("out", "err", "rc")}
        command = {"module": module, "args": args, "env": env, **{k: str(v) for k, v in files.items()}}
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(command) + "\n")
        self._process.stdin.flush()
        answer = self._read()
        assert "pid" in answer, answer
        return LaunchedChild(answer["pid"], files)

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=30)


def sigkill(child: subprocess.Popen[str] | LaunchedChild) -> None:
    """SIGKILL the child (only this process, by its id) and reap it."""
    if child.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=30)


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# ----------------------------------------------------------------------------------------------- figures

def record_figures(section: str, values: dict[str, Any]) -> None:
    """Merge ``values`` into ``section`` of the figures file (the README's Reliability section quotes it)."""
    FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(FIGURES_FILE.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # `make test` runs two test workers: one writer at a time
        try:
            data = json.loads(FIGURES_FILE.read_text())
        except (OSError, ValueError):
            data = {}
        data[section] = values
        FIGURES_FILE.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
