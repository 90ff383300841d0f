"""One generation at a time per dataset folder, and no push of a folder while a generation writes it.

Two runs generating into one folder interleave their batches, and a push of a folder mid-generation publishes
half a dataset; neither shows up as an error. The deployment's ``concurrency_limit`` only covers runs of that one
deployment, so the generation flow holds an exclusive lock on the folder's ``.generation.lock`` while it writes,
and the push a shared one while it reads. The locks are ``flock`` locks: the kernel drops them when the process
ends, so a crashed run never leaves the folder locked. On a platform without ``fcntl`` (Windows), or a file
system that refuses locks (some network mounts; a warning says so), there is no lock.

The push only locks a folder that a generation has locked before (the file exists): a push must not leave a file
in a folder another tool wrote.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

LOCK_FILE = ".generation.lock"  # hidden: the push never uploads hidden files


class FolderInUseError(RuntimeError):
    """Another run is generating into the folder (or, for a generation, pushing it)."""


def _holder(lock: IO[str]) -> dict[str, Any]:
    """What the last generation wrote into the lock file: pid, host, flow run, start time (empty if unreadable)."""
    try:
        lock.seek(0)
        value = json.loads(lock.read() or "{}")
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _describe(holder: dict[str, Any], intro: str = "") -> str:
    parts = [f"flow run {holder['flow_run_id']}" if holder.get("flow_run_id") else ""]
    if holder.get("pid"):
        parts.append(f"pid {holder['pid']} on {holder.get('host', '?')}")
    if holder.get("started"):
        parts.append(f"since {holder['started']}")
    text = ", ".join(p for p in parts if p)
    return f" ({intro}{text})" if text else ""


def _acquired(lock: IO[str], root: Path, *, exclusive: bool) -> bool:
    """Take the flock without waiting. False when another process holds it; True when taken, and also where
    there are no locks (no ``fcntl``, or a file system that refuses them: a warning, and the run goes on)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(lock, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:  # e.g. ENOLCK on some network mounts
        logger.warning("cannot lock %s (%s): a run beside this one would not be noticed", root, exc)
    return True


def _flow_run_id() -> str | None:
    """The run a user would look for: the outermost flow run (a deployment's run, not its generation subflow)."""
    # imported only when locking: keeps this module importable without Prefect
    from prefect.context import FlowRunContext
    from prefect.runtime import flow_run

    context = FlowRunContext.get()
    if not context or not context.flow_run:
        return None
    try:
        return str(flow_run.root_flow_run_id)  # reads the parents from the API
    except Exception:  # the lock must not fail for a name in a message
        return str(context.flow_run.id)


@contextmanager
def generating_into(root: Path) -> Iterator[None]:
    """Hold ``root``'s lock exclusively while a generation writes into it.

    Raises:
        FolderInUseError: another generation writes into ``root``, or a push reads it; says which run when the
            lock file names a generation.
    """
    path = root / LOCK_FILE
    with path.open("a+", encoding="utf-8") as lock:
        if not _acquired(lock, root, exclusive=True):
            last = _describe(_holder(lock), "the last generation to lock it: ")
            raise FolderInUseError(
                f"{root} is in use: another run is generating into it or pushing it{last}. "
                "Wait for that run to finish, or generate into another folder."
            )
        lock.seek(0)
        lock.truncate()
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "flow_run_id": _flow_run_id(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        lock.write(json.dumps(holder))
        lock.flush()
        yield  # closing the file releases the lock


@contextmanager
def pushing(root: Path) -> Iterator[None]:
    """Hold ``root``'s lock shared while a push reads it; several pushes may read one folder at once.

    Raises:
        FolderInUseError: a generation is writing into ``root``; names its flow run.
    """
    path = root / LOCK_FILE
    try:
        lock = path.open("r", encoding="utf-8")
    except OSError:  # never generated into by this project's flow; or no folder, which the scan reports
        lock = None
    if lock is None:  # outside the except: a push's own error must not read as caused by the missing file
        yield
        return
    with lock:
        if not _acquired(lock, root, exclusive=False):
            raise FolderInUseError(
                f"{root} is being generated{_describe(_holder(lock))}: a push now would publish part of it. "
                "Push it when that run has finished (generate_and_push does both in order)."
            )
        yield
