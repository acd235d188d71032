"""The dashboard in a real browser: log in, watch a run, act on a failed file, roles.

The server runs in this process (uvicorn on a free port); the study runs in a separate
`wearflow run` process while the browser watches the overview.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from study_helpers import write_csv
from wearflow.config import load_study
from wearflow.identity import Role
from wearflow.services.users import add_user
from wearflow.web.app import create_app

STUDY = """\
study: DASH
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.csv"]
  sides: {left: [L], right: [R]}
solutions:
  - name: wrist
    pipeline: builtin:wrist
alerts:
  issue_tags: [DATA_ISSUE]
"""
BROKEN = "P003_L.csv"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A study with three short recordings and a broken one, its users, and the server."""
    root = tmp_path_factory.mktemp("dash")
    (root / "raw").mkdir()
    for i, name in enumerate(("P001_L.csv", "P001_R.csv", "P002_L.csv")):
        write_csv(root / "raw" / name, seed=i, hours=2.0)
    (root / "raw" / BROKEN).write_text("timestamp,x,y,z\nnot,a,number,here\n")
    (root / "study.yaml").write_text(STUDY)
    study = load_study(root)
    tokens = {"olga": add_user(study, "olga", Role.OPERATOR),
              "val": add_user(study, "val", Role.VIEWER)}
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app([study], session_secret="test"),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{base}/login", timeout=1.0)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield {"root": root, "base": base, "tokens": tokens, "sid": "DASH"}
    server.should_exit = True
    thread.join(timeout=10)


def login(page: Any, base: str, token: str, path: str) -> None:
    page.goto(f"{base}{path}")
    assert "/login" in page.url  # not logged in yet: sent to the login page
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{path}")


def test_operator_watches_a_run_and_retries_the_failed_file(site: dict[str, Any],
                                                              browser: Any) -> None:
    base, sid = site["base"], site["sid"]
    context = browser.new_context()
    page = context.new_page()
    hosts: set[str] = set()
    page.on("request", lambda r: hosts.add(r.url.split("/")[2]))
    login(page, base, site["tokens"]["olga"], f"/s/{sid}/")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    done = page.locator('[data-live="files.by_state.done"]')
    assert done.inner_text() == "0"
    run = subprocess.Popen([sys.executable, "-m", "wearflow.cli", "run", str(site["root"]),
                            "--workers", "1"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        # the counts change while the study runs, and the page is never reloaded
        page.wait_for_function(
            "document.querySelector('[data-live=\"files.by_state.done\"]').textContent === '3'",
            timeout=180_000)
        page.wait_for_function(
            "document.querySelector('[data-live=\"files.by_state.failed\"]').textContent === '1'",
            timeout=60_000)
    finally:
        assert run.wait(timeout=180) == 1  # the broken file failed, the rest are done
    assert navigations == []
    # the alert the broken file raised (evaluated at the end of the run) is on the page
    page.wait_for_function(
        "document.querySelector('table.alerts tbody').textContent.includes('firing')",
        timeout=30_000)
    assert "DATA_ISSUE" in page.locator("table.alerts").inner_text()
    # the problem is listed with a link to its tag; open the failed file from the issues
    page.goto(f"{base}/s/{sid}/issues?tag=DATA_ISSUE")
    row = page.locator("table.issues tbody tr", has_text=BROKEN)
    assert row.count() == 1
    api = httpx.get(f"{base}/api/s/{sid}/issues", headers={
        "Authorization": f"Bearer {site['tokens']['val']}"}).json()
    [broken] = [i for i in api if (i["uri"] or "").endswith(BROKEN)]
    files = httpx.get(f"{base}/api/s/{sid}/overview", headers={
        "Authorization": f"Bearer {site['tokens']['val']}"}).json()
    assert files["files"]["by_state"]["failed"] == 1 and broken["tag"] == "DATA_ISSUE"
    # the file's name links to its page
    row.locator("a", has_text=BROKEN).click()
    page.wait_for_url(f"{base}/s/{sid}/files/{broken['file_id']}")
    assert page.locator("table.tasks td.bad", has_text="failed").count() == 1
    form = page.locator("form[data-action=retry]")
    form.locator("input[name=reason]").fill("the site re-uploaded a fixed export")
    form.locator("input[name=token]").fill(site["tokens"]["olga"])
    form.locator("button").click()
    page.wait_for_load_state()
    assert "queued again" in page.locator("p.flash").inner_text()
    entry = page.locator("table.audit tbody tr", has_text="manual.retry").first
    assert "olga (operator, token)" in entry.inner_text()
    assert "the site re-uploaded a fixed export" in entry.inner_text()
    assert hosts == {base.split("/")[2]}  # nothing but the server was asked
    context.close()


def test_a_viewer_reads_but_cannot_act(site: dict[str, Any], browser: Any) -> None:
    base, sid = site["base"], site["sid"]
    context = browser.new_context()
    page = context.new_page()
    login(page, base, site["tokens"]["val"], f"/s/{sid}/issues")
    page.goto(f"{base}/s/{sid}/files/1")
    assert page.locator("h1").count() == 1
    assert page.locator("form[data-action]").count() == 0  # no action buttons
    assert page.locator("text=val (viewer)").count() == 1
    # the API: 403 for the viewer's token, 401 without one
    viewer = {"Authorization": f"Bearer {site['tokens']['val']}"}
    assert httpx.post(f"{base}/api/s/{sid}/files/1/exclude", json={"reason": "x"},
                      headers=viewer).status_code == 403
    assert httpx.post(f"{base}/api/s/{sid}/files/1/exclude",
                      json={"reason": "x"}).status_code == 401
    assert httpx.get(f"{base}/api/s/{sid}/overview").status_code == 401
    assert httpx.get(f"{base}/metrics").status_code == 401
    metrics = httpx.get(f"{base}/metrics", headers=viewer).text
    assert 'wearflow_files{state="done",study="DASH"}' in metrics
    context.close()


def test_a_form_without_its_csrf_token_is_refused(site: dict[str, Any], browser: Any) -> None:
    base, sid = site["base"], site["sid"]
    context = browser.new_context()
    page = context.new_page()
    login(page, base, site["tokens"]["olga"], f"/s/{sid}/")
    # the browser's own session cookie, a valid reason and token, but no CSRF token
    refused = context.request.post(f"{base}/s/{sid}/files/1/exclude", form={
        "reason": "forged", "token": site["tokens"]["olga"]})
    assert refused.status == 403
    wrong = context.request.post(f"{base}/s/{sid}/files/1/exclude", form={
        "reason": "forged", "token": site["tokens"]["olga"], "csrf": "guess"})
    assert wrong.status == 403
    audit = httpx.get(f"{base}/api/s/{sid}/files/1",
                      headers={"Authorization": f"Bearer {site['tokens']['olga']}"}).json()
    assert not [e for e in audit["audit"] if e["action"] == "manual.exclude"]
    context.close()


def test_a_token_that_is_not_yours_does_not_sign(site: dict[str, Any], browser: Any) -> None:
    base, sid = site["base"], site["sid"]
    context = browser.new_context()
    page = context.new_page()
    login(page, base, site["tokens"]["olga"], f"/s/{sid}/files/1")
    form = page.locator("form[data-action=exclude]")
    form.locator("input[name=reason]").fill("trying with someone else's token")
    form.locator("input[name=token]").fill(site["tokens"]["val"])
    form.locator("button").click()
    page.wait_for_load_state()
    assert "not your token" in page.inner_text("body")
    context.close()


def test_a_trusted_proxy_header_identifies_only_when_configured(site: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    from wearflow.web.auth import Settings

    study = load_study(site["root"])
    trusting = TestClient(create_app([study], Settings(proxy_header="X-Forwarded-User"),
                                     session_secret="t"))
    plain = TestClient(create_app([study], session_secret="t"))
    url = f"/api/s/{site['sid']}/overview"
    assert trusting.get(url, headers={"X-Forwarded-User": "val"}).status_code == 200
    assert trusting.get(url, headers={"X-Forwarded-User": "mallory"}).status_code == 401
    assert plain.get(url, headers={"X-Forwarded-User": "val"}).status_code == 401
    # a proxy identity reads; an action through the API still needs the bearer token
    assert trusting.post(f"/api/s/{site['sid']}/files/1/exclude", json={"reason": "x"},
                         headers={"X-Forwarded-User": "olga"}).status_code == 401
