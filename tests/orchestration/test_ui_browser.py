"""The Dagster UI in a real browser: Debian's chromium driven by Playwright against `dagster-webserver`.

The webserver serves a copy of the materialized project on a free loopback port. After a source file is
edited and re-ingested, the browser must show every stage and its partitions in the asset graph, and the
edited source's score partition as Unsynced while the other source's stays in sync. The screenshot of the
graph is what README.md shows (set ZIPFIT_SCREENSHOT_DIR to keep it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from projects import edit_jsonl, ingest, project_defs

from zipfit_pipeline.orchestration.asset_keys import (
    ALIGNMENT_SCORES,
    COMPARISON_REPORT,
    EVAL_LOSS,
    FINETUNED_MODEL,
    SELECTIONS,
    SOURCE_DOCUMENTS,
    TARGET_DOCUMENTS,
)

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
# No sandbox (tests may run as root), no GPU, and no background connections this offline machine refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STAGES = {
    "ingest": [SOURCE_DOCUMENTS, TARGET_DOCUMENTS],
    "score": [ALIGNMENT_SCORES],
    "select": [SELECTIONS],
    "train": [FINETUNED_MODEL],
    "evaluate": [EVAL_LOSS],
    "report": [COMPARISON_REPORT],
}
PARTITION_COUNTS = {
    SOURCE_DOCUMENTS: 2,
    TARGET_DOCUMENTS: 2,
    ALIGNMENT_SCORES: 4,
    SELECTIONS: 2,
    FINETUNED_MODEL: 4,
    EVAL_LOSS: 4,
    COMPARISON_REPORT: 2,
}
CHECKS = {
    ALIGNMENT_SCORES: "1 / 1 Passed",
    SELECTIONS: "2 / 2 Passed",
    FINETUNED_MODEL: "1 / 1 Passed",
    EVAL_LOSS: "1 / 1 Passed",
}


def _browser_or_skip() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `make test` installs Debian's chromium where apt-get is allowed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def webserver(workspace: tuple[Path, dg.DagsterInstance]) -> Iterator[str]:
    """The workspace with one source edited and re-ingested, served by dagster-webserver on loopback."""
    root, instance = workspace
    edit_jsonl(root / "project" / "inputs" / "python_stdlib.jsonl", 3, "text", "def edited():\n    return 42\n")
    ingest(project_defs(root), instance, SOURCE_DOCUMENTS, "python_stdlib")
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(root / "dagster_home"),
        "ZIPFIT_CONFIG": str(root / "project" / "zipfit.yaml"),
    }
    log = (root / "webserver.log").open("w")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster-webserver"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-m",
            "zipfit_pipeline.orchestration.definitions",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/server_info", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"dagster-webserver did not start: {(root / 'webserver.log').read_text()[-2000:]}"
                    ) from None
                time.sleep(1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _screenshot(page: Page, path: Path) -> None:
    page.screenshot(path=str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("ZIPFIT_SCREENSHOT_DIR"):
        shutil.copy(path, Path(os.environ["ZIPFIT_SCREENSHOT_DIR"]) / path.name)


def test_asset_graph_shows_every_stage_and_an_unsynced_partition_after_an_edit(webserver: str, tmp_path: Path) -> None:
    _browser_or_skip()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 2200, "height": 900})

        page.goto(f"{webserver}/asset-groups")
        page.get_by_text("Global asset lineage").wait_for(timeout=60_000)
        try:  # a new instance greets its first visitor with a newsletter dialog
            page.get_by_role("button", name="Skip").click(timeout=15_000)
        except PlaywrightTimeout:
            pass
        for _ in range(2):  # hide the navigation, then the asset tree: the graph gets the whole width
            page.locator("button:has([aria-label=panel_show_right])").first.click()
        page.mouse.click(1200, 700, button="right")
        page.get_by_role("menuitem", name="Expand all groups").click()
        page.wait_for_timeout(2_000)
        for group, assets in STAGES.items():
            page.get_by_text(group, exact=True).first.wait_for()
            for asset in assets:
                node = page.locator("div", has=page.get_by_text(asset, exact=True)).filter(has_text="partitions").last
                assert f"{PARTITION_COUNTS[asset]} partitions" in node.inner_text(), asset
                assert CHECKS.get(asset, "Asset checks\n–") in node.inner_text(), asset
        _screenshot(page, tmp_path / "asset-graph.png")

        def open_partition(partition: str) -> None:
            page.goto(f"{webserver}/assets/alignment_scores?view=partitions&partition={partition.replace('|', '%7C')}")
            page.get_by_text("pairs_scored").wait_for(timeout=60_000)

        open_partition("python_stdlib|task_a")
        page.get_by_text("Unsynced").first.wait_for(timeout=60_000)  # the status arrives after the metadata
        _screenshot(page, tmp_path / "unsynced-partition.png")
        open_partition("c_headers|task_a")
        page.get_by_text("Materialized", exact=True).first.wait_for(timeout=60_000)
        page.wait_for_timeout(3_000)  # time for a status query to answer, had it anything to show
        assert "Unsynced" not in page.inner_text("body")
        browser.close()
