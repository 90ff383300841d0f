"""The commit worker as the checkpointer sees it: start it, send it a commit and read its answer, stop it.

The worker (``checkpoint_worker.py``, run as a script by path, so that it imports only huggingface_hub) hashes,
uploads and commits for the committer thread, so that this work (HTTP in Python threads) does not compete for
the GIL of the generating process. Its protocol is in its module docstring. A commit refused there comes back as
:class:`WorkerCommitError`; the ``commit_failure_*`` functions read a failed commit alike whichever way it was
made, in the worker or in the committer thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tasks.retry_policy import describe_failure, one_line, rate_limit_wait, reported_status, retry_after_seconds

# ``-P``: the worker's own folder is not put on ``sys.path``.
WORKER_COMMAND = [sys.executable, "-P", str(Path(__file__).with_name("checkpoint_worker.py"))]


class WorkerCommitError(Exception):
    """A commit the worker tried and the Hub (or the client) refused; the message is ``Type: message`` (one
    line), with the answer's HTTP status and headers when there was one (a 429 says how long to wait)."""

    def __init__(self, message: str, status: int | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class CommitWorker(subprocess.Popen[str]):
    """A running commit worker; it says it is ready once imported, read before its first commit.

    Raises:
        OSError: the process could not be started.
    """

    def __init__(self) -> None:
        super().__init__(
            WORKER_COMMAND,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            # A background commit's per-file upload bars would interleave with the run's logs on the
            # terminal they share; the committer logs one line per commit instead.
            env={**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1"},
        )
        self.ready = False  # whether its ready line was read

    def commit(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one commit and wait for its answer (``oid`` and ``url``).

        Raises:
            ConnectionError: the worker is gone (a broken pipe, no answer or a garbled one); it is then killed and
                stopped, and the next commit needs another worker.
            WorkerCommitError: the worker tried the commit, and it failed.
        """
        assert self.stdin is not None  # started with a pipe
        try:
            if not self.ready:
                self._read_answer()
                self.ready = True
            self.stdin.write(json.dumps(request) + "\n")
            self.stdin.flush()
            answer = self._read_answer()
        except (OSError, ValueError) as exc:  # a broken pipe or a garbled line: the worker is gone
            self.kill()
            self.stop()
            raise ConnectionError(f"checkpoint worker failed: {exc}") from exc
        if "error" in answer:
            raise WorkerCommitError(
                f"{answer['error']}: {answer.get('message', '')}", answer.get("status"), answer.get("headers")
            )
        return answer

    def stop(self) -> None:
        """Close the worker's stdin (it then exits on its own) and reap it in the background: the run does not
        wait for an interpreter to shut down."""
        self.ready = False
        try:
            if self.stdin is not None:
                self.stdin.close()
        except OSError:
            pass

        def reap() -> None:
            try:
                self.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
                self.wait()
            if self.stdout is not None:
                self.stdout.close()

        threading.Thread(target=reap, name="checkpoint-worker-reaper", daemon=True).start()

    def _read_answer(self) -> dict[str, Any]:
        assert self.stdout is not None
        line = self.stdout.readline()
        if not line:
            raise ConnectionError(f"checkpoint worker exited (code {self.poll()})")
        answer: dict[str, Any] = json.loads(line)
        return answer


def commit_failure_status(exc: Exception) -> int | None:
    """The HTTP status the Hub, or hf_xet for its storage, answered a failed commit with (None: no answer)."""
    if isinstance(exc, WorkerCommitError):
        if exc.status is None and str(exc).startswith("ConnectionError: "):  # hf_xet names it in the message
            return reported_status(ConnectionError(str(exc)))
        return exc.status
    return reported_status(exc)


def commit_failure_message(exc: Exception) -> str:
    """Why a commit failed, on one line."""
    return one_line(str(exc)) if isinstance(exc, WorkerCommitError) else describe_failure(exc)


def commit_failure_rate_limit_wait(exc: Exception) -> float | None:
    """The wait the Hub asked for when it refused a commit for its rate limit (429), else None."""
    return (
        rate_limit_wait(exc.status, exc.headers)
        if isinstance(exc, WorkerCommitError)
        else retry_after_seconds(exc)
    )
