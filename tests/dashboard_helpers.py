"""Shared by the dashboard tests: the dashboard process against a test fleet,
and headless Chromium (the system's, through its chromedriver)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional, Sequence

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


class Dashboard:
    """``fleetslurm dashboard --port 0`` for a fleet; ``url`` carries the token.
    ``prefix``: words run before it (another user's, see second_user.prefix_as)."""

    def __init__(self, fleet, *args: str,  # type: ignore[no-untyped-def]
                 prefix: Sequence[str] = ()) -> None:
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "fleetslurm.cli.main", "dashboard", "--port", "0",
             *args],
            cwd=str(fleet.work), env=fleet.env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        m = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
        if not m:
            self.proc.kill()
            raise AssertionError(f"no URL from the dashboard: {line!r} "
                                 f"{self.proc.stderr.read()}")  # type: ignore[union-attr]
        self.base, self.token = m.group(1), m.group(2)
        self.url = f"{self.base}/?token={self.token}"

    def page(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}{path}{sep}token={self.token}"

    def get(self, path: str, headers: Optional[dict] = None) -> tuple[int, str]:
        req = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def chromium(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Headless Chromium at 1280x800 with its console log kept. Missing
    Chromium is a failure that says how to install it, never a pass."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: the dashboard's browser tests need "
                    "Debian's chromium and chromium-driver (apt-get install -y chromium "
                    "chromium-driver; .ci/run installs them)", pytrace=False)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: pip install -e '.[test]'", pytrace=False)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tmp_path / "chromium-profile"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1280,800"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    # the page's viewport itself 1280x800 (the window's includes its frame)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1280, "height": 800, "deviceScaleFactor": 1,
                            "mobile": False})
    return driver


def console_errors(driver) -> list:  # type: ignore[no-untyped-def]
    """The page's JavaScript errors (and failed loads) since the last call."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def screenshot(driver, artifacts: Path, name: str) -> Path:  # type: ignore[no-untyped-def]
    artifacts.mkdir(parents=True, exist_ok=True)
    path = artifacts / f"{name}.png"
    driver.save_screenshot(str(path))
    docs = os.environ.get("FLEETSLURM_DOCS_SHOTS")
    if docs:  # regenerate the README's picture: FLEETSLURM_DOCS_SHOTS=docs
        Path(docs).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(docs) / f"dashboard-{name}.png")
    return path


def wait_until(pred, timeout: float, what: str, step: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(step)


def text(driver, css: str) -> "str | None":  # type: ignore[no-untyped-def]
    """An element's text read in one step (the live fragments replace
    elements under the test's feet: a held reference goes stale)."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;", css)


def click(driver, css: str) -> None:  # type: ignore[no-untyped-def]
    """Click the element ``css`` names now (found and clicked in one step)."""
    ok = driver.execute_script(
        "const e = document.querySelector(arguments[0]); if (!e) return false;"
        " e.click(); return true;", css)
    assert ok, f"nothing to click at {css}"
