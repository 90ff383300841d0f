"""Prefect settings for a flow run started from a terminal (``python -m flows.push ...``).

Prefect 3.8 sends flow-run heartbeats from a thread that sleeps in whole seconds and is joined when the run ends
(``prefect.flow_engine._send_heartbeats``), so every synchronous flow run ends up to one second late: on average
half a second per run, often more than the push itself takes on a small dataset. Heartbeats exist to let an
automation mark a *crashed deployment run* as such; someone running a command in a terminal sees the crash
directly. So the command-line entry points switch them off for their own run. Deployment runs (started by a
worker or ``serve``, which call the flow, not these entry points) keep Prefect's setting, and so does a flow
called from Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.context import SettingsContext


@contextmanager
def terminal_run() -> Iterator[None]:
    """Run the enclosed flow call without flow-run heartbeats (see the module docstring).

    Example:
        ```python
        from flows.push import push_dataset
        from flows.terminal_run import terminal_run

        with terminal_run():
            push_dataset("artifacts/greetings", "alice/greetings", "Greetings in five languages.")
        ```
    """
    # What ``temporary_settings`` does, without re-reading the environment and profiles (20 ms here).
    current = SettingsContext.get()
    assert current is not None  # Prefect always has a root settings context
    settings = current.settings
    quiet = settings.model_copy(update={"flows": settings.flows.model_copy(update={"heartbeat_frequency": None})})
    with SettingsContext(profile=current.profile, settings=quiet):
        yield
