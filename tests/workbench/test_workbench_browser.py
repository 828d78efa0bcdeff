"""The workbench in a real browser: Debian's Chromium, driven by Playwright, against `streamlit run`.

What a person new to the project does: open the workbench, pick a sample, write a mapping for a
new field, see it previewed, make a mistake and see the error at its line, fix it, save. The
saved file (in a tmp copy of mappings/) has the field and the audit history has the save. A
screenshot of every page is kept in test-artifacts/workbench/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.workbench.conftest import ROOT, make_workbench_env

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts" / "workbench"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
ANCHOR = "      attributes.pusher: record.pusher.name"
TIMEOUT_MS = 90_000


def _chromium() -> str:
    """Debian's chromium; `make test` installs it first, so this installs only when run by hand."""
    found = shutil.which("chromium")
    if found:
        return found
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "chromium"], check=False, capture_output=True, timeout=900)
        found = shutil.which("chromium")
    if not found:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    return found


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"streamlit did not answer {url} in {timeout}s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def workbench_server(tmp_path_factory: pytest.TempPathFactory):
    """The real Streamlit server on a free loopback port, over tmp copies of mappings and tenants."""
    chromium = _chromium()
    root = tmp_path_factory.mktemp("workbench")
    wb = make_workbench_env(root)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTEGRATIONS_")}
    env.update(wb.env)
    env["INTEGRATIONS_MASTER_KEY_FILE"] = str(root / "master.key")
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    log = root / "streamlit.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "workbench" / "app.py"),
             "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
             "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", process, log)
        yield {"url": f"http://127.0.0.1:{port}", "wb": wb, "chromium": chromium, "log": log}
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


@pytest.fixture(scope="session")
def browser(workbench_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=workbench_server["chromium"], headless=True,
                                              args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(viewport={"width": 1600, "height": 2200})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _idle(page) -> None:
    """Wait until the app has finished its run (Streamlit shows a Stop button while it runs)."""
    from playwright.sync_api import expect

    page.wait_for_timeout(300)
    expect(page.get_by_role("button", name="Stop")).to_have_count(0)


def _choose(page, label: str, option: str) -> None:
    from playwright.sync_api import expect

    _idle(page)
    combo = page.get_by_role("combobox", name=label)
    combo.click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(combo).to_have_value(option)
    _idle(page)


def _ace(page):
    """The Ace editor inside the editor component's iframe (once the page has settled on one)."""
    from playwright.sync_api import expect

    frames = page.locator(".st-key-mapping_editor iframe")
    expect(frames).to_have_count(1, timeout=TIMEOUT_MS)
    return frames.content_frame.locator("#REACT_ACE_EDITOR")


def _editor_text(page) -> str:
    return _ace(page).evaluate("el => el.env.editor.getValue()")


def _type_at_end_of_line(page, line: int, keys: list[str]) -> None:
    """Put the cursor at the end of a line (as a click there would) and type, key by key."""
    _idle(page)
    ace = _ace(page)
    ace.evaluate(f"el => {{ el.env.editor.focus(); el.env.editor.gotoLine({line}, 0); el.env.editor.navigateLineEnd(); }}")
    for key in keys:
        if key in ("Enter", "Backspace"):
            page.keyboard.press(key)
        else:
            page.keyboard.type(key, delay=5)
    page.wait_for_timeout(700)  # the editor answers 300 ms after the last keystroke
    _idle(page)


def _sample_to_pick() -> tuple[int, str, str]:
    """A push sample (not the first) that maps: its index, a text only it has (`after`), its pusher."""
    lines = (ROOT / "data" / "samples" / "demo" / "github" / "push.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    for index, record in enumerate(records):
        commits = record.get("commits") or []
        pusher = (record.get("pusher") or {}).get("name")
        after = record.get("after")
        if (index > 0 and pusher and after and sum(after in line for line in lines) == 1 and commits
                and all(c.get("id") and c.get("timestamp") for c in commits)):
            return index, after, pusher
    raise AssertionError("no push sample to pick")


def test_person_writes_previews_fixes_and_saves_a_new_field(workbench_server, page):
    from playwright.sync_api import expect

    from integrations.store import EventStore
    from integrations.store._tenants import list_audit

    wb = workbench_server["wb"]
    saved_file = wb.mappings / "github" / "push.yaml"
    original = saved_file.read_text()
    assert ANCHOR in original
    new_line_no = original[: original.index(ANCHOR)].count("\n") + 2  # the line after the anchor

    page.goto(workbench_server["url"] + "/")
    expect(page.get_by_role("heading", name="Mapping").first).to_be_visible()
    _choose(page, "Tenant", "demo")
    _choose(page, "Plugin", "github")
    _choose(page, "Source", "push")
    expect(_ace(page)).to_be_visible(timeout=TIMEOUT_MS)
    assert _editor_text(page) == original

    # Pick a sample by searching for something in it.
    index, unique_text, pusher = _sample_to_pick()
    search = page.get_by_label("Search the records")
    search.fill(unique_text)
    search.press("Enter")
    _idle(page)
    expect(page.get_by_text(f"Record {index}", exact=True)).to_be_visible()

    # A new field: the preview of the picked record gains it.
    events = page.locator(".st-key-selected_events")
    expect(events).not_to_contain_text("attributes.pusher_name")
    edited = original.replace(ANCHOR, ANCHOR + "\n      attributes.pusher_name: upper(record.pusher.name)")
    anchor_line = new_line_no - 1
    # Typed as a person types it: Enter keeps the indentation; Ace closes the bracket it opens.
    _type_at_end_of_line(page, anchor_line, ["Enter", "attributes.pusher_name: upper(record.pusher.name)"])
    assert _editor_text(page) == edited
    expect(events).to_contain_text("attributes.pusher_name", timeout=TIMEOUT_MS)
    expect(events).to_contain_text(pusher.upper())
    events.scroll_into_view_if_needed()
    _shot(page, "mapping-preview")

    # A mistake: the error is shown at its line, and the preview waits for a fix.
    _type_at_end_of_line(page, new_line_no, ["Backspace"])
    assert _editor_text(page) == edited.replace("upper(record.pusher.name)", "upper(record.pusher.name")
    errors = page.locator(".st-key-mapping_errors")
    expect(errors).to_contain_text(f"line {new_line_no}:", timeout=TIMEOUT_MS)
    expect(errors).to_contain_text(f">{new_line_no:4d} |")
    expect(page.get_by_role("button", name="Save")).to_be_disabled()
    errors.scroll_into_view_if_needed()
    _shot(page, "mapping-error")

    expect(_ace(page).locator(".ace_gutter-cell.ace_error")).to_have_text(str(new_line_no))  # marked in the editor

    # Fixed and saved.
    _type_at_end_of_line(page, new_line_no, [")"])
    assert _editor_text(page) == edited
    expect(page.get_by_text("The mapping is valid.")).to_be_visible(timeout=TIMEOUT_MS)
    expect(events).to_contain_text(pusher.upper(), timeout=TIMEOUT_MS)
    save = page.get_by_role("button", name="Save")
    expect(save).to_be_enabled()
    save.click()
    _idle(page)
    expect(page.get_by_text("the change is in the audit history")).to_be_visible(timeout=TIMEOUT_MS)
    _shot(page, "mapping-saved")

    assert saved_file.read_text() == edited
    assert "attributes.pusher_name: upper(record.pusher.name)" in saved_file.read_text()
    audit = list_audit(EventStore(wb.store), "demo")
    saves = [a for a in audit if a["action"] == "mapping.save"]
    assert len(saves) == 1
    assert saves[0]["actor"] == "wb-tester" and saves[0]["target"] == str(saved_file)
    assert "+      attributes.pusher_name: upper(record.pusher.name)" in saves[0]["diff"]["diff"]
    assert (ROOT / "mappings" / "github" / "push.yaml").read_text() == original  # the repository is untouched


@pytest.mark.parametrize("path,heading", [("correlations", "Correlations"), ("health", "Health"),
                                          ("plugins", "Plugins")])
def test_every_page_renders(workbench_server, page, path, heading):
    from playwright.sync_api import expect

    page.goto(f"{workbench_server['url']}/{path}")
    expect(page.get_by_role("heading", name=heading).first).to_be_visible()
    page.wait_for_load_state("networkidle")
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    if path == "plugins":
        expect(page.locator('[role="gridcell"]', has_text="github").first).to_be_attached()
        expect(page.get_by_text("settings schema").first).to_be_visible()
    _shot(page, path)
