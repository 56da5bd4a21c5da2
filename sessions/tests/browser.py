"""Launch Debian's Chromium for the browser tests, or say clearly why not.

Without Chromium a browser test skips on a developer machine and fails in CI
(``CI=true``), so a CI image that lost its browser cannot pass silently.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("LOOPDASH_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SHOTS = Path(os.environ.get("LOOPDASH_SHOTS", "/tmp/loopdash-shots"))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_chromium() -> str:
    """The Chromium executable; skip (or fail in CI) the calling test when it is missing."""
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not path:
        _unavailable(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -r requirements-dev.txt)")
    return path


def _unavailable(message: str) -> None:
    if in_ci():
        pytest.fail(message + "; CI=true requires the browser tests to run")
    pytest.skip(message)


def launch(playwright, executable: str):
    """A headless Chromium browser from Playwright's sync API."""
    return playwright.chromium.launch(executable_path=executable, args=ARGS, headless=True)


def shot(page, name: str) -> Path:
    """Save a full-page screenshot to SHOTS (for people to look at, not for assertions)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
