"""A process that imports the CLIs once, then forks a child per command it reads (``reliability_support.Launcher``).

A CLI child started with ``python -m flows.push`` spends about 3.4 s of CPU importing Prefect, huggingface_hub
and pyarrow before its first request (2 cores here). The crash test starts one child per kill point; forked from
this process, each starts at its ``main`` with the modules already imported, and is still a process of its own
that a SIGKILL stops wherever it is, as the CLI's process would be.

Protocol (one JSON object per line): the parent writes ``{"module", "args", "env", "out", "err", "rc"}``; this
process forks a child, which runs ``python -m module args`` as ``__main__`` in a session of its own, with ``env``
as its whole environment (Prefect's settings were read at import from this process's environment, so a
``PREFECT_`` variable that differs is refused), stdout and stderr to the files ``out`` and ``err``, and writes its
exit code to the file ``rc`` when it ends by itself; this process answers ``{"pid": N}``. Children are reaped by
the kernel (SIGCHLD ignored): a child that is gone and wrote no ``rc`` was killed.

Usage: ``python tests/child_launcher.py MODULE...`` (the modules to import first), environment as the children's.
"""

from __future__ import annotations

import importlib
import json
import os
import runpy
import signal
import sys
import threading


def _run_child(command: dict[str, object]) -> None:
    """In the forked child: become the command line's process, run the module, exit with its code."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # its own children are its to wait for
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, key in ((1, "out"), (2, "err")):
        target = os.open(str(command[key]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
    env = dict(command["env"])  # type: ignore[call-overload]
    os.environ.clear()
    os.environ.update(env)
    module = str(command["module"])
    sys.argv = [module, *command["args"]]  # type: ignore[misc]
    code = 1
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        with open(str(command["rc"]), "w") as rc:
            rc.write(str(code))
        os._exit(code)


def main() -> None:
    for module in sys.argv[1:]:
        importlib.import_module(module)
    # Forking is only safe while this process is single-threaded (importing them starts no thread).
    assert threading.active_count() == 1, [t.name for t in threading.enumerate()]
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    prefect_env = {k: v for k, v in os.environ.items() if k.startswith("PREFECT_")}
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        child_prefect = {k: v for k, v in command["env"].items() if k.startswith("PREFECT_")}
        if child_prefect != prefect_env:
            print(json.dumps({"error": "the child's PREFECT_ variables differ from the launcher's"}), flush=True)
            continue
        pid = os.fork()
        if pid == 0:
            _run_child(command)
        print(json.dumps({"pid": pid}), flush=True)


if __name__ == "__main__":
    main()
