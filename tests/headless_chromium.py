"""Headless Chromium for the tests: Debian's ``chromium`` driven by Playwright.

Nothing is downloaded at run time: Playwright launches the system browser
(``/usr/bin/chromium``, installed by ``scripts/setup-dev.sh``) and never
fetches its own build. A missing browser is a test failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, sync_playwright

CHROMIUM = os.environ.get("WSSERVER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # the tests run as root in CI
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed on exit."""
    if not os.path.exists(CHROMIUM):
        raise AssertionError(f"no Chromium at {CHROMIUM}: run scripts/setup-dev.sh (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()
