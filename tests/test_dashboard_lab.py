"""The dashboard in a lab, end to end: a real lab controller (run by root,
every file under a temporary FLEETSLURM_LAB_ROOT), a real second Unix user
who starts ``fleetslurm dashboard`` as themself, and headless Chromium on
its Queue page. The user's own jobs get buttons, root's get none, a forged
request naming root's job is refused in the controller's words (the CLI's),
and cancelling the user's own job from the page ends it CANCELLED."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from second_user import other_user, prefix_as, shared_tmp  # noqa: F401  (fixtures)
from tests.dashboard_helpers import Dashboard, chromium, click, console_errors, screenshot, \
    text, wait_until
from tests.test_lab_as_user import RootLab, root_lab  # noqa: F401  (fixture)


@pytest.fixture
def user_dash(root_lab: RootLab, other_user: pwd.struct_passwd) -> Iterator[Dashboard]:
    """The second user's own dashboard against the lab's controller."""
    env = dict(root_lab.env, HOME=other_user.pw_dir)
    with prefix_as(other_user, env, str(root_lab.work)) as prefix:
        d = Dashboard(SimpleNamespace(work=root_lab.work, env=env), prefix=prefix)
        try:
            yield d
        finally:
            d.stop()
            # the lab's jobs outlive its controller (as in service): end the
            # user's before the lab stops, so nothing of the test runs on
            root_lab.fs("scancel", "-u", other_user.pw_name, user=other_user)
            wait_until(lambda: subprocess.run(["pgrep", "-u", str(other_user.pw_uid)],
                                              capture_output=True).returncode == 1,
                       30, "the user's processes gone")


@pytest.fixture
def browser(tmp_path: Path):  # type: ignore[no-untyped-def]
    driver = chromium(tmp_path)
    yield driver
    driver.quit()


def _submit(lab: RootLab, *args: str, user: "pwd.struct_passwd | None" = None) -> str:
    p = lab.fs("sbatch", "--parsable", "-o", "/dev/null", *args, user=user)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def _row(driver, job: str) -> "str | None":  # type: ignore[no-untyped-def]
    """The buttons' actions on a job's row of the page, or None without the row."""
    return driver.execute_script(
        "const r = document.querySelector(`tr[data-job=\"${arguments[0]}\"]`);"
        " if (!r) return null;"
        " return Array.from(r.querySelectorAll('button[data-action]'))"
        "  .map(b => b.dataset.action).join(',');", job)


def _post(d: Dashboard, body: dict, token: "str | None") -> tuple[int, dict | str]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(d.base + "/api/action", method="POST",
                                 data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_users_own_dashboard_in_a_lab(root_lab: RootLab, other_user: pwd.struct_passwd,
                                        user_dash: Dashboard, browser: Any,
                                        tmp_path: Path) -> None:
    lab, user, d = root_lab, other_user, user_dash
    assert os.stat(f"/proc/{d.proc.pid}").st_uid == user.pw_uid  # the user's own process
    for path in ("/", "/history", "/metrics"):
        status, body = d.get(f"{path}?token={d.token}")
        assert status == 200, (path, body)
    theirs = _submit(lab, "--hold", "-J", "roots", "--wrap", "true")  # root's, pending
    held = _submit(lab, "--hold", "-J", "mine-held", "--wrap", "true", user=user)
    running = _submit(lab, "-J", "mine-running", "--wrap", "sleep 300", user=user)

    browser.get(d.page("/queue"))
    wait_until(lambda: _row(browser, running) == "cancel,requeue", 30,
               "the user's running job with its buttons")
    assert _row(browser, held) == "cancel,hold,release"
    assert _row(browser, theirs) == ""  # root's row is there, without a button
    assert "root" in text(browser, f'tr[data-job="{theirs}"]')
    screenshot(browser, tmp_path / "artifacts", "lab-queue")

    # a forged request, from the page with its valid token: the controller
    # refuses it, and the page says so in the words the CLI prints
    # (scontrol hold adds SLURM's summary line, "slurm_suspend error: ...")
    cancel_words = f"Kill job error on job id {theirs}: Access/permission denied"
    hold_words = f"Access/permission denied for job {theirs}"
    for action, cli, words, stderr in (
            ("cancel", ["scancel", theirs], cancel_words,
             f"scancel: error: {cancel_words}\n"),
            ("hold", ["scontrol", "hold", theirs], hold_words,
             f"{hold_words}\nslurm_suspend error: Access/permission denied\n")):
        refused = lab.fs(*cli, user=user)
        assert (refused.returncode, refused.stderr) == (1, stderr)
        reply = browser.execute_async_script(
            "const cb = arguments[arguments.length - 1];"
            "window.fleetAction(arguments[0], arguments[1]).then(cb);", action, theirs)
        assert reply == {"ok": False, "message": words}
        assert text(browser, "#flash.refused") == words
        # and the same forged from outside the browser, with the token
        assert _post(d, {"action": action, "job": theirs}, d.token) == \
            (200, {"ok": False, "message": words})
    shown = lab.fs("squeue", "-h", "-j", theirs, "-o", "%i %u %T %r")  # as root
    assert shown.stdout.split() == [theirs, "root", "PENDING", "JobHeldUser"], shown

    # without the token, or with a wrong one: 403, and nothing done
    assert _post(d, {"action": "cancel", "job": running}, None)[0] == 403
    assert _post(d, {"action": "cancel", "job": running}, "wrong")[0] == 403
    assert d.get("/queue")[0] == 403 and d.get("/queue?token=wrong")[0] == 403
    assert d.get(f"/queue?token={d.token}")[0] == 200
    assert lab.fs("squeue", "-h", "-j", running, "-o", "%T").stdout == "RUNNING\n"

    # root's job's own page offers nothing either; its output is root's to
    # read: the controller's refusal stands where the output would, not in
    # the banner that answers a click
    browser.get(d.page(f"/job/{theirs}"))
    wait_until(lambda: text(browser, "#jobstate") == "PENDING", 10, "root's job page")
    assert browser.execute_script(
        "return document.querySelectorAll('button[data-action]').length") == 0
    assert wait_until(lambda: text(browser, "#output + .output-fail"), 10,
                      "the output's refusal") == "output: Access/permission denied"
    assert text(browser, "#flash") == ""
    screenshot(browser, tmp_path / "artifacts", "lab-job-of-another")

    # the user's own running job, cancelled from the page
    browser.get(d.page("/queue"))
    wait_until(lambda: _row(browser, running) == "cancel,requeue", 10, "the row again")
    click(browser, f'tr[data-job="{running}"] button[data-action="cancel"]')
    assert wait_until(lambda: text(browser, "#flash.ok"), 10, "the answer") == \
        f"cancel: job {running}"
    assert lab.wait(running, timeout=30)["state"] == f"CANCELLED by {user.pw_uid}"
    wait_until(lambda: _row(browser, running) is None, 10, "the cancelled row leaves")
    assert _row(browser, theirs) == ""
    assert console_errors(browser) == []


def test_the_admins_read_only_dashboard_shows_everyones_jobs(
        root_lab: RootLab, other_user: pwd.struct_passwd) -> None:
    """Root's ``--read-only`` dashboard in the lab: every user's jobs, no
    button on any, and an action refused before it reaches the controller."""
    lab = root_lab
    mine = _submit(lab, "--hold", "-J", "roots", "--wrap", "true")
    theirs = _submit(lab, "--hold", "-J", "users", "--wrap", "true", user=other_user)
    d = Dashboard(SimpleNamespace(work=lab.work, env=lab.env), "--read-only")
    try:
        status, html = d.get(f"/queue?token={d.token}")
        assert status == 200
        assert f'data-job="{mine}"' in html and f'data-job="{theirs}"' in html
        assert other_user.pw_name in html and "data-action" not in html
        assert _post(d, {"action": "cancel", "job": theirs}, d.token) == (200, {
            "ok": False, "message": "this dashboard is read-only (started with "
            "--read-only); use scancel/scontrol"})
        shown = lab.fs("squeue", "-h", "-j", theirs, "-o", "%i %u %T")
        assert shown.stdout.split() == [theirs, other_user.pw_name, "PENDING"], shown
    finally:
        d.stop()
