"""Running a command against the embedded Hub (``localhub``), for use without a Hugging Face account.

``huggingface_hub`` reads ``HF_ENDPOINT`` when it is imported, so the command cannot switch endpoints once
started: the embedded Hub runs as its own process and the command runs again as a child process with the
endpoint, a local token and ``HF_HUB_DISABLE_XET=1`` (the embedded Hub speaks LFS) in its environment.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

LOCAL_USER = "local"
LOCAL_TOKEN = "hf_local_token"  # noqa: S105 - the embedded Hub's documented default user; never valid on huggingface.co


# The port a data folder was last served on, kept in the folder: the Hub's URLs (the dataset card's citation, the
# commit links, the "browse them again" hint) name it, so a new port each run would make an identical re-push
# commit a new card.
PORT_FILE = ".embedded-hub-port"


def _free_port(preferred: int = 0) -> int:
    """``preferred`` when it can be bound now, else a free port the system picks."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:  # taken (or not allowed): any free one
            s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hub_port(data_dir: Path) -> int:
    """The port to serve ``data_dir`` on: the one it was served on last time when free, else a new one (kept)."""
    saved = data_dir / PORT_FILE
    try:
        previous = int(saved.read_text().strip())
    except (OSError, ValueError):
        previous = 0
    port = _free_port(previous if 1024 <= previous <= 65535 else 0)
    if port != previous:
        with contextlib.suppress(OSError):  # a read-only folder: the next run picks a port again
            saved.write_text(f"{port}\n")
    return port


def _wait_until_serving(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the embedded Hub exited with code {process.returncode} before serving")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the embedded Hub did not start serving on port {port} within {timeout:.0f} s")


def run_with_embedded_hub(data_dir: Path, module: str, args: list[str]) -> int:
    """Start ``localhub`` on ``data_dir``, run ``python -m module *args`` against it, stop the Hub.

    Returns the child's exit code. The Hub's repos stay in ``data_dir``: start it again with
    ``python -m localhub --data-dir DIR`` to browse or download them. Each run on ``data_dir`` serves on the port
    of the run before when it is free (``hub_port``), so the URLs that pushes write into cards stay the same.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = hub_port(data_dir)
    hub = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "localhub",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--user",
            f"{LOCAL_USER}:{LOCAL_TOKEN}",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_until_serving(port, hub)
        env = {
            **os.environ,
            "HF_ENDPOINT": f"http://127.0.0.1:{port}",
            "HF_TOKEN": LOCAL_TOKEN,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        }
        print(f"Embedded Hub serving {data_dir} at {env['HF_ENDPOINT']} (user {LOCAL_USER!r})", flush=True)
        code = subprocess.call([sys.executable, "-m", module, *args], env=env)
        print(
            f"The embedded Hub keeps its repos in {data_dir}; browse them again with: "
            f"python -m localhub --data-dir {data_dir} --port {port} --user {LOCAL_USER}:{LOCAL_TOKEN}"
        )
        return code
    finally:
        hub.terminate()
        try:
            hub.wait(timeout=10)
        except subprocess.TimeoutExpired:
            hub.kill()
