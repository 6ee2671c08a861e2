"""Every screen of the wizard in a fixed, deterministic state, built from the real app and core.

Used by ``scripts/screenshots.py`` (SVG/PNG for the README) and by the snapshot tests.  Each
:class:`Scene` prepares a demo folder through the real step model (no pauses), starts
:class:`WizardApp` on one screen with a frozen clock, and drives it with Pilot where needed.
Live mirror progress is fed as synthetic events with a fake clock so speeds and ETA are stable.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input

from wizard.core import demo
from wizard.core.events import BlobProgress, ImageProgress
from wizard.core.settings import Settings
from wizard.core.steps import Wizard
from wizard.tui.app import WizardApp

NOW = datetime(2026, 1, 26, 9, 30, 0, tzinfo=timezone.utc)
SIZE = (100, 32)
FOLDER = Path("/tmp/currents-onprem")


class FakeClock:
    """A monotonic clock the showcase advances by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass(frozen=True)
class Scene:
    name: str
    start: str
    prepare: Callable[[Wizard], None] = lambda w: None
    act: Callable[[Pilot[int]], Awaitable[None]] | None = None


# -- helpers --------------------------------------------------------------------------------------
async def settle(pilot: Pilot[int], timeout: float = 60.0) -> None:
    """Wait for background work to end, then drop toasts (they depend on timing)."""
    app = pilot.app
    assert isinstance(app, WizardApp)
    deadline = time.monotonic() + timeout
    await pilot.pause()
    while app.is_busy():
        if time.monotonic() > deadline:
            raise TimeoutError(f"still busy: {app.running}")
        await pilot.pause(0.05)
    await pilot.pause()
    app.clear_notifications()
    await pilot.pause()


def _steps(*ids: str) -> Callable[[Wizard], None]:
    def run(wizard: Wizard) -> None:
        for sid in ids:
            wizard.run_step(sid)

    return run


def _fixed_tokens(wizard: Wizard) -> None:
    """Token lifetimes relative to the frozen clock (the real ones depend on when the run happened)."""
    wizard.state.inputs["sts_expires_at"] = (NOW + timedelta(minutes=58)).isoformat()
    wizard.state.inputs["token_expires_at"] = (NOW + timedelta(hours=11, minutes=58)).isoformat()


def _everything(wizard: Wizard) -> None:
    wizard.run_pending()
    _fixed_tokens(wizard)
    wizard.state.inputs["env_backup"] = str(wizard.settings.env_path) + ".bak-20260126T093000"


# -- scene actions --------------------------------------------------------------------------------
async def _act_settle(pilot: Pilot[int]) -> None:
    await settle(pilot)


async def _act_create_role(pilot: Pilot[int]) -> None:
    await pilot.click("#create-role")
    await settle(pilot)


async def _act_share(pilot: Pilot[int]) -> None:
    await pilot.click("#probe")
    await settle(pilot)


async def _act_auth(pilot: Pilot[int]) -> None:
    await settle(pilot)
    app = pilot.app
    assert isinstance(app, WizardApp)
    _fixed_tokens(app.wizard)
    app.refresh_screens()
    await pilot.pause()


async def _act_mirror_live(pilot: Pilot[int]) -> None:
    """Plan for real, then show the copy two thirds of the way through (synthetic, fixed clock)."""
    app = pilot.app
    assert isinstance(app, WizardApp)
    await settle(pilot)
    plan = await asyncio.get_running_loop().run_in_executor(None, app.wizard.mirror_plan, app.emit)
    await settle(pilot)
    clock = app.progress.clock
    assert isinstance(clock, FakeClock)
    app.running["step"] = "mirror"  # shown as running; no thread is started for the picture
    app.wizard.state.step("mirror").status = "running"
    fractions = {"api": 1.0, "director": 0.83, "change-streams": 0.61, "scheduler": 0.42, "writer": 0.2}
    for step in range(6):
        clock.t += 1.0
        for img in plan.images:
            f = fractions.get(img.key, 0.0) * (step + 1) / 6
            total = img.bytes_to_copy
            state = "done" if f >= 1.0 else "copying" if f > 0 else "planned"
            owned = [d for d, bp in plan.blobs.items() if bp.images and bp.images[0] == img.key]
            for i, digest in enumerate(sorted(owned)):
                size = plan.blobs[digest].size
                part = min(1.0, max(0.0, f * 1.6 - i * 0.15))
                blob_state = "done" if part >= 1.0 else "copying" if part > 0 else "waiting"
                app.emit(BlobProgress(img.key, digest, int(size * part), size, blob_state))
            done_blobs = int(len(img.blobs) * f)
            app.emit(
                ImageProgress(
                    img.key,
                    state,
                    done_bytes=int(total * f),
                    total_bytes=total,
                    blobs_done=done_blobs,
                    blobs_total=len(img.blobs),
                    digest=img.source_digest,
                )
            )
        app.flush_progress()
    app.refresh_screens("busy")
    await pilot.pause()


async def _act_mirror_done(pilot: Pilot[int]) -> None:
    await pilot.press("ctrl+n")
    await settle(pilot)


async def _act_configure_written(pilot: Pilot[int]) -> None:
    await pilot.press("ctrl+n")
    await settle(pilot)
    app = pilot.app
    assert isinstance(app, WizardApp)
    app.wizard.state.inputs["env_backup"] = str(app.wizard.settings.env_path) + ".bak-20260126T093000"
    app.refresh_screens()
    await pilot.pause()


async def _act_error(pilot: Pilot[int]) -> None:
    await settle(pilot)
    pilot.app.screen.query_one("#target", Input).value = "https://Registry.Example.com:70000/currents"
    await pilot.pause()
    await pilot.click("#start")
    await pilot.pause()


async def _act_commands(pilot: Pilot[int]) -> None:
    await settle(pilot)
    await pilot.press("f2")
    await pilot.pause()


async def _act_help(pilot: Pilot[int]) -> None:
    await settle(pilot)
    await pilot.press("f1")
    await pilot.pause()


def _interrupted(wizard: Wizard) -> None:
    _steps("policy", "share", "auth")(wizard)
    wizard.mark("mirror", "pending", "interrupted — run again to resume")


def _upgrade(wizard: Wizard) -> None:
    _everything(wizard)
    (wizard.settings.dir / "VERSION").write_text(demo.DEMO_TAGS[1] + "\n")


SCENES: tuple[Scene, ...] = (
    Scene("welcome", "welcome", act=_act_settle),
    Scene("policy", "policy", act=_act_settle),
    Scene("create-role", "policy", act=_act_create_role),
    Scene("share", "share", _steps("policy"), _act_share),
    Scene("auth", "auth", _steps("policy", "share", "auth"), _act_auth),
    Scene("mirror-setup", "mirror", _steps("policy", "share", "auth"), _act_settle),
    Scene("mirror-live", "mirror", _steps("policy", "share", "auth"), _act_mirror_live),
    Scene("mirror-done", "mirror", _steps("policy", "share", "auth"), _act_mirror_done),
    Scene("configure", "configure", _steps("policy", "share", "auth", "mirror"), _act_settle),
    Scene("configure-written", "configure", _steps("policy", "share", "auth", "mirror"), _act_configure_written),
    Scene("done", "done", _everything, _act_settle),
    Scene("resume", "welcome", _interrupted, _act_settle),
    Scene("upgrade", "welcome", _upgrade, _act_settle),
    Scene("error", "mirror", _steps("policy", "share", "auth"), _act_error),
    Scene("commands", "mirror", _steps("policy", "share", "auth"), _act_commands),
    Scene("help", "share", _steps("policy"), _act_help),
)


def build(scene: Scene, folder: Path = FOLDER, size_mb: int = 24) -> tuple[Wizard, WizardApp]:
    """A fresh demo folder prepared for ``scene`` and an app on its screen (wizard opened)."""
    shutil.rmtree(folder, ignore_errors=True)
    settings, backend = demo.prepare(folder, Settings(), pace=0)
    backend.size_mb = size_mb
    wizard = Wizard(settings, backend).open()
    try:
        scene.prepare(wizard)
        wizard.save()
    except BaseException:
        wizard.close()
        raise
    if scene.name == "upgrade":
        wizard.close()  # VERSION changed: start again as a user would
        settings, backend = demo.prepare(folder, Settings(), pace=0)
        backend.size_mb = size_mb
        wizard = Wizard(settings, backend).open()
    app = WizardApp(wizard, demo=True, now=lambda: NOW, monotonic=FakeClock(), start=scene.start)
    return wizard, app
