"""A headless browser for the viewer's tests, benchmark and screenshots: Debian's chromium-headless-shell
(`make browser` installs it) driven by Playwright for Python (the dev extra). Playwright's own browser
download is not used."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prunelens.core.errors import PrunelensError

CHROMIUM = Path("/usr/bin/chromium-headless-shell")


@contextmanager
def headless_chromium() -> Iterator:
    """A launched Playwright Browser on CHROMIUM; a one-line error when it is not installed."""
    if not CHROMIUM.exists():
        raise PrunelensError(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium-headless-shell)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
