"""Prefect settings for a flow run started from a terminal (``python -m flows.push ...``).

Prefect 3.8 sends flow-run heartbeats from a thread that sleeps in whole seconds and is joined when the run ends
(``prefect.flow_engine._send_heartbeats``), so every synchronous flow run ends up to one second late: on average
half a second per run, often more than the push itself takes on a small dataset. Heartbeats exist to let an
automation mark a *crashed deployment run* as such; someone running a command in a terminal sees the crash
directly. So the command-line entry points switch them off for their own run. Deployment runs (started by a
worker or ``serve``, which call the flow, not these entry points) keep Prefect's setting, and so does a flow
called from Python.

A command run with no Prefect server configured starts Prefect's temporary server, which on a machine's first
run creates its database before it answers (13.5 s on an idle 2-core machine, over 20 s with the cores shared).
Prefect waits 20 s for it, then fails the command ("Timed out while attempting to connect to ephemeral Prefect
API server"). The entry points wait up to 120 s instead, unless the user set
``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` (environment, profile), which is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.context import SettingsContext

FIRST_START_SECONDS = 120  # Prefect's temporary server, when the user set no startup timeout


@contextmanager
def terminal_run() -> Iterator[None]:
    """Run the enclosed flow call without flow-run heartbeats, and give Prefect's temporary server time to start
    (see the module docstring).

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
    updates: dict[str, Any] = {"flows": settings.flows.model_copy(update={"heartbeat_frequency": None})}
    ephemeral = settings.server.ephemeral
    if "startup_timeout_seconds" not in ephemeral.model_fields_set:  # set neither in the environment nor a profile
        patient = ephemeral.model_copy(update={"startup_timeout_seconds": FIRST_START_SECONDS})
        updates["server"] = settings.server.model_copy(update={"ephemeral": patient})
    with SettingsContext(profile=current.profile, settings=settings.model_copy(update=updates)):
        yield
