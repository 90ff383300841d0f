"""Retry from the Prefect UI, in a real browser.

A push run of the served ``push-folder/push-only`` deployment is made to fail at the processors stage (the
embedded Hub refuses every commit after the first three). Headless Chromium (Debian's ``chromium``, driven by
Playwright) opens the failed run's page in the UI that ``prefect server start`` serves, clicks **Retry** and
confirms; the served runner picks the run up again under the same id and it completes, the stages that had
committed ``Cached``. Screenshots of the completed run (its artifacts, its task runs) are saved under
``test-artifacts/ui-retry/``.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from factories import make_dataset_folder

if TYPE_CHECKING:
    from prefect_server import PrefectServer, ServedDeployments

pytest_plugins = ["prefect_server"]
pytestmark = pytest.mark.timeout(300)

CHROMIUM = Path(os.environ.get("HFDS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "ui-retry"


@pytest.fixture(scope="module")
def browser() -> Any:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run and `make test` install it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_retry_button_in_the_ui_resumes_a_failed_push(
    browser: Any,
    served_deployments: ServedDeployments,
    prefect_server: PrefectServer,
    hub: Any,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect
    from prefect_server import RETRIED_FROM_PROCESSORS  # here: imported at collection, it loses assert rewriting

    folder = make_dataset_folder(tmp_path / "ds", batches=3)
    repo_id = f"alice/ui-retry-{uuid.uuid4().hex[:8]}"
    hub.faults.add("commit", status=503, skip=3, count=None, repo=repo_id)  # card, data, images commit
    run_id = prefect_server.run_deployment(
        "push-folder/push-only",
        {"dataset_dir": str(folder), "repo_id": repo_id, "description": "Greetings, retried from the UI."},
    )
    failed = prefect_server.wait_for_final_state(run_id)
    assert failed.state.is_failed(), served_deployments.log_tail()
    assert prefect_server.task_run_states(run_id)["push-processors"] == "Failed"
    hub.faults.clear()

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(f"{prefect_server.url}/runs/flow-run/{run_id}")
    expect(page.get_by_text("Failed").first).to_be_visible()
    page.get_by_role("button", name="Retry").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Retry")
    dialog.get_by_role("button", name="Retry").click()

    # The click's state change reaches the API after the click returns: wait past the Failed state seen above.
    completed = prefect_server.wait_for_final_state(run_id, timeout=120, after=failed.state.id)
    assert completed.state.is_completed(), served_deployments.log_tail()
    with prefect_server.client() as client:
        states = client.read_flow_run_states(run_id)
    # The browser's click is what rescheduled the run: AwaitingRetry, set through the UI.
    assert any(s.name == "AwaitingRetry" for s in states), [s.name for s in states]
    assert completed.run_count == 2
    assert prefect_server.task_run_states(run_id) == RETRIED_FROM_PROCESSORS

    # The page shows the completed run; screenshots of its artifacts and its task runs.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 2000})  # the run page scrolls inside: a tall window shows all
    page.reload()
    expect(page.get_by_text("Completed").first).to_be_visible()
    page.get_by_text("Artifacts", exact=True).click()  # the tabs are <li class="p-tab">
    slug = repo_id.replace("/", "-")
    expect(page.get_by_text(f"{slug}-push-summary").first).to_be_visible()
    expect(page.get_by_text(f"{slug}-metadata-commit").first).to_be_visible()
    artifacts_png = SCREENSHOTS / f"{slug}-artifacts.png"
    page.screenshot(path=str(artifacts_png), full_page=True)
    page.get_by_text("Task Runs", exact=True).click()
    expect(page.get_by_text("Cached").first).to_be_visible()
    tasks_png = SCREENSHOTS / f"{slug}-task-runs.png"
    page.screenshot(path=str(tasks_png), full_page=True)
    page.close()
    print(f"\nscreenshots of the retried run: {artifacts_png} {tasks_png}")
    assert artifacts_png.stat().st_size > 10_000 and tasks_png.stat().st_size > 10_000
