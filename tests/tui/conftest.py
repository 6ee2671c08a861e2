"""Shared fixtures for the Textual front end: real core + the offline demo backend, real state files."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from textual.pilot import Pilot

from wizard.core import demo
from wizard.core.settings import Settings
from wizard.core.steps import Wizard
from wizard.tui.app import WizardApp

#: A fixed "now" for time-dependent text (token lifetimes).
FIXED_NOW = datetime(2026, 1, 26, 12, 0, 0, tzinfo=timezone.utc)


def open_wizard(folder: Path, size_mb: int = 3, **settings: object) -> Wizard:
    """A demo Wizard on ``folder`` (no pauses, small images), opened (holds the state lock)."""
    demo_settings, backend = demo.prepare(folder, Settings(**settings), pace=0)  # type: ignore[arg-type]
    backend.size_mb = size_mb
    return Wizard(demo_settings, backend).open()


def make_app(wizard: Wizard, **kw: object) -> WizardApp:
    kw.setdefault("now", lambda: FIXED_NOW)
    return WizardApp(wizard, demo=True, **kw)  # type: ignore[arg-type]


@pytest.fixture
def wizard(tmp_path: Path) -> Iterator[Wizard]:
    w = open_wizard(tmp_path / "onprem")
    try:
        yield w
    finally:
        w.close()


async def wait_idle(pilot: Pilot, timeout: float = 60.0) -> None:
    """Wait until the app runs no background work (and its last results are handled)."""
    app = pilot.app
    assert isinstance(app, WizardApp)
    deadline = time.monotonic() + timeout
    await pilot.pause()
    while app.is_busy():
        if time.monotonic() > deadline:
            raise AssertionError(f"still busy after {timeout}s: {app.running}")
        await pilot.pause(0.05)
    await pilot.pause()
    await pilot.pause()


async def wait_for(pilot: Pilot, predicate: object, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def text_of(app: WizardApp, selector: str) -> str:
    """The plain text a Static/Label currently shows."""
    from textual.widgets import Static

    return str(app.screen.query_one(selector, Static).content)
