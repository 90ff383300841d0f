"""The dataset folder's lock (tasks.folder_lock), without the Prefect engine: one generation at a time, no push
while a generation writes, and a crashed holder never leaves the folder locked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.folder_lock import LOCK_FILE, FolderInUseError, generating_into, pushing

# A generation in another process: takes the lock, says so, then waits to be killed.
HOLDER = """
import sys, time
from pathlib import Path
from tasks.folder_lock import generating_into
with generating_into(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(60)
"""


def _generate(root: Path) -> None:
    with generating_into(root):
        pass


def _push(root: Path) -> None:
    with pushing(root):
        pass


def test_one_generation_at_a_time_and_no_push_meanwhile(tmp_path: Path) -> None:
    with generating_into(tmp_path):
        with pytest.raises(FolderInUseError, match=rf"generating into it or pushing it .*pid {os.getpid()}"):
            _generate(tmp_path)
        with pytest.raises(FolderInUseError, match=rf"is being generated \(pid {os.getpid()} on .*since "):
            _push(tmp_path)
    _generate(tmp_path)  # released when the first one ended
    _push(tmp_path)


def test_pushes_share_the_folder_and_keep_generations_out(tmp_path: Path) -> None:
    _generate(tmp_path)  # the folder has been generated into: it has a lock file
    with pushing(tmp_path), pushing(tmp_path), pytest.raises(FolderInUseError, match="or pushing it"):
        _generate(tmp_path)
    _generate(tmp_path)


def test_a_push_leaves_no_file_in_a_folder_another_tool_wrote(tmp_path: Path) -> None:
    _push(tmp_path)
    _push(tmp_path / "missing")  # the folder scan, not the lock, reports a missing folder
    assert list(tmp_path.iterdir()) == []


def test_a_push_error_is_not_chained_to_the_missing_lock_file(tmp_path: Path) -> None:
    """The push's one-line error follows the cause chain; a folder without a lock file is not a cause."""
    with pytest.raises(ValueError) as info, pushing(tmp_path):
        raise ValueError("the push's own problem")
    assert info.value.__context__ is None


def test_a_killed_generation_leaves_the_folder_unlocked(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], cwd=root, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        with pytest.raises(FolderInUseError, match=rf"pid {child.pid} on "):
            _push(tmp_path)
    finally:
        child.kill()
        child.wait(timeout=10)
    assert (tmp_path / LOCK_FILE).exists()  # the file stays; the lock went with the process
    _generate(tmp_path)
    _push(tmp_path)


def test_a_file_system_without_locks_warns_and_runs_unprotected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Some network mounts refuse flock (ENOLCK); a run there must not fail for it. The refusal is the file
    system's, which the test cannot mount, so flock itself stands in for it."""
    import errno
    import fcntl

    def refuse(fd: object, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    _generate(tmp_path)
    monkeypatch.setattr(fcntl, "flock", refuse)
    with caplog.at_level("WARNING", logger="tasks.folder_lock"):
        _generate(tmp_path)
        _push(tmp_path)
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [f"cannot lock {tmp_path}"] * 2
