"""``python -m localhub``: serve a local Hub until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from .hub import DEFAULT_TOKEN, DEFAULT_USER, LocalHub


def _user(spec: str) -> tuple[str, str]:
    name, sep, token = spec.partition(":")
    if not sep or not name or not token:
        raise argparse.ArgumentTypeError(f"expected NAME:TOKEN, got {spec!r}")
    return name, token


def main(argv: list[str] | None = None) -> int:
    """``python -m localhub``: serve a hub until SIGTERM or SIGINT, then stop it cleanly; returns the exit status.

    Prints the URL once listening (``--port 0``, the default, picks a free port).
    """
    parser = argparse.ArgumentParser(
        prog="python -m localhub",
        description="Serve a Hugging Face Hub-compatible API on 127.0.0.1. Clients need HF_ENDPOINT=<printed URL> "
        "and HF_HUB_DISABLE_XET=1.",
        epilog=f"Without --user, one user '{DEFAULT_USER}' with token '{DEFAULT_TOKEN}' is created.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    parser.add_argument("--data-dir", type=Path, default=Path(".localhub-data"), help="where repos are stored")
    parser.add_argument(
        "--user",
        type=_user,
        action="append",
        default=[],
        metavar="NAME:TOKEN",
        help="a user and its token (repeatable)",
    )
    parser.add_argument("--page-size", type=int, default=1000, help="page size of tree and commit listings")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    args = parser.parse_args(argv)

    hub = LocalHub(
        args.data_dir, port=args.port, users=dict(args.user) or None, host=args.host, page_size=args.page_size
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    hub.start()
    print(f"localhub serving at {hub.url} (data dir {args.data_dir}, users: {', '.join(hub.users)})", flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        hub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
