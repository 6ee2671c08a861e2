"""Pilot tests: every screen and both paths (first run, resume after quitting mid-mirror, upgrade)
against the real step model, state store, .env writer and copy engine, with the offline demo backend."""

from __future__ import annotations

import html
import json
import re
import threading
from datetime import timedelta
from pathlib import Path

from textual.widgets import Button, DataTable, Input, RadioButton

from tests.tui.conftest import FIXED_NOW, make_app, open_wizard, text_of, wait_for, wait_idle
from wizard.core import demo
from wizard.core.events import BlobProgress, ImageProgress
from wizard.core.steps import Wizard
from wizard.tui.screens.auth import AuthScreen
from wizard.tui.screens.commands import CommandsScreen
from wizard.tui.screens.configure import ConfigureScreen
from wizard.tui.screens.create_role import CreateRoleScreen
from wizard.tui.screens.done import DoneScreen
from wizard.tui.screens.error import ErrorScreen
from wizard.tui.screens.help import HelpScreen
from wizard.tui.screens.mirror import MirrorScreen
from wizard.tui.screens.policy import PolicyScreen
from wizard.tui.screens.share import ShareScreen
from wizard.tui.screens.welcome import WelcomeScreen

SIZE = (100, 32)
ROLE_ARN = f"arn:aws:iam::{demo.DEMO_ACCOUNT}:role/{demo.DEMO_ROLE_NAME}"


def state_json(wizard: Wizard) -> dict:
    return json.loads(wizard.store.path.read_text())


async def test_first_run_through_every_screen_to_done(wizard: Wizard) -> None:
    app = make_app(wizard)
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, WelcomeScreen)
        assert "first run" in text_of(app, "#fact-state")
        assert "Currents on-prem checkout" in text_of(app, "#fact-checkout")
        assert str(app.screen.query_one("#next", Button).label) == "Start setup →"

        await pilot.press("ctrl+n")
        assert isinstance(app.screen, PolicyScreen)
        await pilot.press("ctrl+n")  # saves the policy (runs the step), then moves on
        await wait_idle(pilot)
        assert isinstance(app.screen, ShareScreen)
        assert wizard.status("policy") == "done"
        assert (wizard.store.path.parent / "currents-ecr-pull-policy.json").exists()

        assert app.screen.query_one("#role-arn", Input).value == ROLE_ARN
        await pilot.press("ctrl+n")
        await wait_idle(pilot)
        assert isinstance(app.screen, AuthScreen)
        assert wizard.status("share") == "done"

        await pilot.press("ctrl+n")  # Authenticate
        await wait_idle(pilot)
        assert wizard.status("auth") == "done"
        assert isinstance(app.screen, AuthScreen), "auth stays on screen to show identity and expiry"
        assert demo.DEMO_USER_ARN in text_of(app, "#auth-identity")
        assert "assumed-role/CurrentsEcrPull" in text_of(app, "#auth-assumed")
        assert "granted" in text_of(app, "#auth-access")

        await pilot.press("ctrl+n")
        assert isinstance(app.screen, MirrorScreen)
        assert app.screen.query_one("#target", Input).value == demo.DEMO_TARGET
        await pilot.press("ctrl+n")  # Start mirror
        await wait_idle(pilot)
        assert wizard.status("mirror") == "done"
        table = app.screen.query_one("#images", DataTable)
        states = [str(table.get_cell(s, "state")) for s in wizard.settings.services]
        assert states == ["✔ done"] * 6
        assert app.progress.fraction == 1.0
        assert app.coalescer.received >= app.progress.events > 0

        await pilot.press("ctrl+n")
        assert isinstance(app.screen, ConfigureScreen)
        assert "+DC_CURRENTS_IMAGE_REPOSITORY=registry.example.com/currents/" in app.screen.query_one("#diff-box").text
        await pilot.press("ctrl+n")  # Write .env
        await wait_idle(pilot)
        env = wizard.settings.env_path.read_text()
        assert "DC_CURRENTS_IMAGE_REPOSITORY=registry.example.com/currents/" in env
        backup = wizard.state.inputs["env_backup"]
        assert Path(backup).exists() and f"Backup: {backup}" in text_of(app, "#configure-result")

        await pilot.press("ctrl+n")
        assert isinstance(app.screen, DoneScreen)
        await wait_idle(pilot)  # verify runs by itself
        assert wizard.status("verify") == "done"
        assert "Done" in text_of(app, "#done-title")
        digests = app.screen.query_one("#digests", DataTable)
        images = wizard.state.images[wizard.tag]
        for service in wizard.settings.services:
            assert images[service].target_digest.startswith("sha256:")
            assert images[service].target_digest[:19] in str(digests.get_cell(service, "digest"))
            assert "verified" in str(digests.get_cell(service, "verified"))
        assert "docker compose pull && docker compose up -d" in app.screen.query_one("#next-box").text
        await pilot.click("#copy")
        assert app.clipboard.endswith("docker compose pull && docker compose up -d")

    saved = state_json(wizard)
    assert all(step["status"] == "done" for step in saved["steps"].values())
    assert "demo-token" not in wizard.store.path.read_text()


async def test_policy_copy_save_and_invalid_arn_note(wizard: Wizard) -> None:
    app = make_app(wizard, start="policy")
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, PolicyScreen)
        assert '"ecr:GetAuthorizationToken"' in app.screen.query_one("#policy-box").text
        assert "match nothing" in text_of(app, "#arn-note")
        await pilot.click("#copy")
        assert app.clipboard == wizard.policy_text()
        await pilot.click("#save")
        saved = wizard.settings.dir / "currents-ecr-pull-policy.json"
        assert json.loads(saved.read_text())["Statement"][1]["Sid"] == "CurrentsEcrPullImages"
        assert wizard.status("policy") == "pending", "saving a copy does not finish the step"


async def test_create_role_shows_trust_policy_first_then_creates(wizard: Wizard) -> None:
    app = make_app(wizard, start="policy")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.click("#create-role")
        await wait_idle(pilot)
        assert isinstance(app.screen, CreateRoleScreen)
        trust = app.screen.query_one("#trust-box").text
        assert f"arn:aws:iam::{demo.DEMO_ACCOUNT}:root" in trust and "sts:AssumeRole" in trust
        name = app.screen.query_one("#role-name", Input)
        name.value = "bad name!"
        await pilot.press("enter")
        assert isinstance(app.screen, CreateRoleScreen), "an invalid IAM name is refused"
        assert "letters, digits" in text_of(app, "#role-name-error")
        name.value = "currents-pull-test"
        await pilot.press("enter")
        await wait_idle(pilot)
        assert isinstance(app.screen, PolicyScreen)
        assert wizard.status("policy") == "done"
        assert wizard.state.inputs["role_arn"] == f"arn:aws:iam::{demo.DEMO_ACCOUNT}:role/currents-pull-test"
        assert wizard.state.inputs["role_created"] == "created"
        assert "currents-pull-test" in text_of(app, "#policy-result")


async def test_share_validates_the_arn_and_probes_access(wizard: Wizard) -> None:
    wizard.mark("policy", "done")
    app = make_app(wizard, start="share")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, ShareScreen)
        arn = screen.query_one("#role-arn", Input)
        arn.value = f"arn:aws:sts::{demo.DEMO_ACCOUNT}:assumed-role/CurrentsEcrPull/session"
        await pilot.pause()
        assert "assumed-role session" in text_of(app, "#arn-error")
        assert screen.query_one("#probe", Button).disabled
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, ShareScreen) and wizard.status("share") == "pending"

        arn.value = ROLE_ARN
        await pilot.pause()
        assert not screen.query_one("#arn-error").display
        message = screen.query_one("#share-box").text
        assert ROLE_ARN in message and "Please grant" in message
        await pilot.click("#copy")
        assert app.clipboard == message
        await pilot.click("#probe")
        await wait_idle(pilot)
        assert "Access granted" in text_of(app, "#verdict")
        assert screen.query_one("#verdict").has_class("-granted")


async def test_share_probe_reports_a_missing_tag(wizard: Wizard) -> None:
    wizard.set_input("tag", "1999-01-01-001")
    app = make_app(wizard, start="share")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.click("#probe")
        await wait_idle(pilot)
        assert "tag is missing" in text_of(app, "#verdict")
        assert app.screen.query_one("#verdict").has_class("-tag_missing")


async def test_auth_shows_time_left_on_role_and_token(wizard: Wizard) -> None:
    for step in ("policy", "share"):
        wizard.mark(step, "done")
    app = make_app(wizard, start="auth")
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot)
        assert "not yet" in text_of(app, "#auth-assumed")
        await pilot.press("ctrl+n")
        await wait_idle(pilot)
        assert wizard.status("auth") == "done"
        # Token lifetimes are shown relative to the app's clock.
        wizard.state.inputs["sts_expires_at"] = (FIXED_NOW + timedelta(minutes=59, seconds=30)).isoformat()
        wizard.state.inputs["token_expires_at"] = (FIXED_NOW + timedelta(hours=11, minutes=59)).isoformat()
        app.refresh_screens()
        await pilot.pause()
        assert "expires in 59 min" in text_of(app, "#auth-assumed")
        assert "expires in 11 h 59 min" in text_of(app, "#auth-token")
        wizard.state.inputs["sts_expires_at"] = (FIXED_NOW - timedelta(minutes=3)).isoformat()
        app.refresh_screens()
        await pilot.pause()
        assert "expired 3 min ago" in text_of(app, "#auth-assumed")


def _finish_first_three(wizard: Wizard) -> None:
    for step in ("policy", "share", "auth"):
        wizard.run_step(step)


async def test_mirror_refuses_an_invalid_target_with_an_error_modal(wizard: Wizard) -> None:
    _finish_first_three(wizard)
    app = make_app(wizard, start="mirror")
    async with app.run_test(size=SIZE) as pilot:
        target = app.screen.query_one("#target", Input)
        target.value = "Bad Host!/x"
        await pilot.pause()
        assert "invalid registry host" in text_of(app, "#target-error")
        await pilot.click("#start")
        await pilot.pause()
        assert isinstance(app.screen, ErrorScreen)
        assert "invalid registry host" in text_of(app, "#error-message")
        assert text_of(app, "#error-hint")
        await pilot.press("escape")
        assert isinstance(app.screen, MirrorScreen)
        assert not app.is_busy() and wizard.status("mirror") == "pending"


async def test_failed_step_opens_error_modal_and_marks_the_step(wizard: Wizard) -> None:
    _finish_first_three(wizard)
    wizard.run_step("mirror")
    wizard.settings.env_path.unlink()  # configure cannot plan the change now
    app = make_app(wizard, start="configure")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        await wait_idle(pilot)
        assert isinstance(app.screen, ErrorScreen)
        assert "Configure .env failed" in text_of(app, "#error-title")
        await pilot.press("escape")
        assert wizard.status("configure") == "failed"
        assert "failed" in text_of(app, "#step-configure")


SLOW_PACE = 15.0  # ~400 KiB/s per stream: slow enough to stop mid-way


async def test_cancel_mid_mirror_keeps_progress_and_retry_finishes(tmp_path: Path) -> None:
    wizard = open_wizard(tmp_path / "onprem", size_mb=8)
    try:
        await _cancel_and_retry(wizard)
    finally:
        wizard.close()


async def _cancel_and_retry(wizard: Wizard) -> None:
    _finish_first_three(wizard)
    wizard.backend.pace = SLOW_PACE
    app = make_app(wizard, start="mirror")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.click("#start")
        await wait_for(pilot, lambda: app.progress.done_bytes > 0, what="first bytes")
        assert app.screen.query_one("#cancel", Button).display
        await pilot.click("#cancel")
        await wait_idle(pilot)
        assert wizard.status("mirror") == "pending"
        assert wizard.state.step("mirror").summary.startswith("interrupted")
        assert app.results["step"].cancelled
        assert not isinstance(app.screen, ErrorScreen), "a cancel is not an error"
        retry = app.screen.query_one("#retry", Button)
        assert retry.display and str(retry.label) == "Resume"
        wizard.backend.pace = 0
        await pilot.click("#retry")
        await wait_idle(pilot)
        assert wizard.status("mirror") == "done"


async def test_quit_mid_mirror_exits_0_and_restart_resumes_at_mirror(tmp_path: Path) -> None:
    folder = tmp_path / "onprem"
    wizard = open_wizard(folder, size_mb=8)
    try:
        _finish_first_three(wizard)
        wizard.backend.pace = SLOW_PACE
        app = make_app(wizard, start="mirror")
        async with app.run_test(size=SIZE) as pilot:
            app.screen.query_one("#username", Input).value = "mirror-bot"
            await pilot.click("#start")
            await wait_for(pilot, lambda: app.progress.done_bytes > 0, timeout=60, what="first bytes")
            await pilot.press("ctrl+q")
        assert app.return_code == 0
        assert app.cancels == {} or all(e.is_set() for e in app.cancels.values())
        # The copy thread stops at its next chunk and records the interruption.
        await wait_for_async(lambda: wizard.wait_idle(timeout=0), 30, "the mirror thread to stop and save")
    finally:
        wizard.close()
    saved = state_json(wizard)["steps"]["mirror"]
    assert saved["status"] == "pending" and saved["summary"].startswith("interrupted"), saved

    again = open_wizard(folder)
    try:
        app = make_app(again)
        async with app.run_test(size=SIZE) as pilot:
            assert isinstance(app.screen, WelcomeScreen)
            assert str(app.screen.query_one("#next", Button).label) == "Resume: Mirror images →"
            assert "interrupted" in text_of(app, "#welcome-plan")
            await pilot.press("ctrl+n")
            assert isinstance(app.screen, MirrorScreen)
            assert app.screen.query_one("#target", Input).value == demo.DEMO_TARGET
            assert app.screen.query_one("#username", Input).value == "mirror-bot"
            assert "interrupted last time" in text_of(app, "#plan-summary")
            await pilot.press("ctrl+n")
            await wait_idle(pilot)
            assert again.status("mirror") == "done"
            assert app.progress.plan is not None
            assert app.progress.plan.bytes_to_copy < sum(int(i["size"]) for i in app.progress.plan.images)
    finally:
        again.close()


async def wait_for_async(predicate: object, timeout: float, what: str) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_upgrade_runs_only_mirror_configure_verify(tmp_path: Path) -> None:
    folder = tmp_path / "onprem"
    wizard = open_wizard(folder)
    try:
        wizard.run_pending()
        first = {s: wizard.state.step(s).finished_at for s in ("policy", "share", "auth")}
    finally:
        wizard.close()
    (folder / "VERSION").write_text(demo.DEMO_TAGS[1] + "\n")

    wizard = open_wizard(folder)
    try:
        assert wizard.mode() == "done"
        app = make_app(wizard)
        async with app.run_test(size=SIZE) as pilot:
            assert isinstance(app.screen, WelcomeScreen)
            await wait_idle(pilot)  # tag discovery
            assert app.screen.query_one("#upgrade-tag", Input).value == demo.DEMO_TAGS[1]
            assert demo.DEMO_TAGS[1] in text_of(app, "#tag-hint")
            assert str(app.screen.query_one("#next", Button).label) == "Upgrade →"
            await pilot.press("ctrl+n")
            await pilot.pause()
            assert isinstance(app.screen, MirrorScreen)
            assert wizard.tag == demo.DEMO_TAGS[1]
            assert [s.status for s in wizard.steps()] == ["done"] * 3 + ["pending"] * 3
            await pilot.press("ctrl+n")
            await wait_idle(pilot)
            await pilot.press("ctrl+n")
            assert isinstance(app.screen, ConfigureScreen)
            assert f"+DC_CURRENTS_IMAGE_TAG={demo.DEMO_TAGS[1]}" in app.screen.query_one("#diff-box").text
            await pilot.press("ctrl+n")
            await wait_idle(pilot)
            await pilot.press("ctrl+n")
            await wait_idle(pilot)
            assert isinstance(app.screen, DoneScreen)
            assert wizard.mode() == "done"
        assert {s: wizard.state.step(s).finished_at for s in ("policy", "share", "auth")} == first
        assert set(wizard.state.images) == set(demo.DEMO_TAGS)
    finally:
        wizard.close()


async def test_archive_engine_skips_configure_and_verify(wizard: Wizard, tmp_path: Path) -> None:
    _finish_first_three(wizard)
    app = make_app(wizard, start="mirror")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.click("#engine-archive")
        await pilot.pause()
        assert app.screen.query_one("#archive-row").display
        app.screen.query_one("#archive", Input).value = str(tmp_path / "export")
        await pilot.click("#start")
        await wait_idle(pilot)
        assert wizard.status("mirror") == "done"
        assert wizard.status("configure") == "skipped" and wizard.status("verify") == "skipped"
        assert (tmp_path / "export" / "index.json").exists()
        app.goto("done")
        await pilot.pause()
        assert "exported" in text_of(app, "#done-title")


async def test_target_password_is_never_written(wizard: Wizard) -> None:
    _finish_first_three(wizard)
    secret = "s3cret-Pa55-never-on-disk"
    app = make_app(wizard, start="mirror")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert screen.query_one("#password", Input).password
        screen.query_one("#username", Input).value = "mirror-bot"
        screen.query_one("#password", Input).value = secret
        await pilot.pause()
        shots = [app.export_screenshot()]  # what a screenshot of the typed password shows
        await pilot.click("#start")
        await wait_idle(pilot)
        shots.append(app.export_screenshot())
        assert wizard.status("mirror") == "done"
        assert wizard.state.inputs["target_username"] == "mirror-bot"
    texts = [html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ") for svg in shots]
    assert "mirror-bot" in texts[0], "the screenshot text is readable (the username shows)"
    assert not [t for t in texts if secret in t], "the password shows in a screenshot"
    for path in wizard.settings.dir.rglob("*"):
        if path.is_file() and path.stat().st_size < 1_000_000:
            assert secret.encode() not in path.read_bytes(), path


async def test_demo_disables_the_docker_engine_and_is_marked(wizard: Wizard) -> None:
    _finish_first_three(wizard)
    app = make_app(wizard, start="mirror")
    async with app.run_test(size=SIZE):
        assert app.screen.query_one("#engine-docker", RadioButton).disabled
        assert "DEMO" in str(app.screen.query_one("#demo-badge").content)
        assert "DEMO" in app.title


async def test_help_commands_and_step_list_navigation(wizard: Wizard) -> None:
    _finish_first_three(wizard)
    app = make_app(wizard, start="mirror")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("f2")
        assert isinstance(app.screen, CommandsScreen)
        text = app.screen.query_one("#commands-box").text
        assert "skopeo" in text and demo.DEMO_TARGET in text
        assert "demo-token" not in text
        await pilot.click("#toggle")
        assert "aws iam create-role" in app.screen.query_one("#commands-box").text
        await pilot.click("#copy")
        assert "aws iam create-role" in app.clipboard
        await pilot.press("escape")
        assert isinstance(app.screen, MirrorScreen)
        await pilot.click("#step-policy")
        await pilot.pause()
        assert isinstance(app.screen, PolicyScreen)
        await pilot.click("#step-configure")  # not reachable yet: mirror is not done
        await pilot.pause()
        assert isinstance(app.screen, PolicyScreen)
        await pilot.press("escape")  # Back from policy: welcome
        assert isinstance(app.screen, WelcomeScreen)


async def test_progress_flood_is_coalesced_and_ui_stays_responsive(wizard: Wizard) -> None:
    app = make_app(wizard, start="mirror")
    async with app.run_test(size=SIZE) as pilot:
        total = 40_000

        def flood() -> None:
            for i in range(total):
                app.emit(BlobProgress("api", f"sha256:{i % 8:064x}", i, total, "copying"))
                app.emit(ImageProgress("api", "copying", done_bytes=i, total_bytes=total, blobs_total=8))

        thread = threading.Thread(target=flood)
        thread.start()
        ticks = 0
        while thread.is_alive():
            await pilot.pause(0.02)  # the event loop keeps turning while the flood runs
            ticks += 1
        thread.join()
        await pilot.pause(0.3)
        assert app.coalescer.received == 2 * total
        assert app.progress.events < app.coalescer.received / 10
        row = app.progress.images["api"]
        assert row.done == total - 1 and len(row.layers) == 8
        table = app.screen.query_one("#images", DataTable)
        assert "copying" in str(table.get_cell("api", "state"))
        assert ticks > 0
