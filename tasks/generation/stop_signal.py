"""A run's stop signal for its LLM requests: an interrupted run (Ctrl-C, a cancellation) must not go on sending.

Queued chat completions live in a process-wide thread pool and batches in the task runner's threads; neither
stops with the flow's thread, and Python joins both before it exits. Without a signal, an interrupted run kept
sending (and paying for) every request of its running batches, and its process exited only when they were done.
The flow registers a signal for its folder (one generation per folder), batches running in the same process look it
up; batches in other processes (Dask workers) find none and stop with their worker.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_signals: dict[str, threading.Event] = {}
_lock = threading.Lock()


def _key(output_dir: str | Path) -> str:
    return str(Path(output_dir).expanduser().resolve())


@contextmanager
def stop_signal(output_dir: str | Path) -> Iterator[threading.Event]:
    """A fresh signal for the run generating into ``output_dir``; set it to stop the run's requests.

    Examples:
        ```python
        with stop_signal("out/greetings") as stop:
            ...  # submit batches; on an interrupt: stop.set()
        ```
    """
    key = _key(output_dir)
    event = threading.Event()
    with _lock:
        _signals[key] = event
    try:
        yield event
    finally:
        with _lock:
            if _signals.get(key) is event:
                del _signals[key]


def signal_for(output_dir: str | Path) -> threading.Event | None:
    """The signal of the run generating into ``output_dir`` in this process, if any."""
    with _lock:
        return _signals.get(_key(output_dir))
