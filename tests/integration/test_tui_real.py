"""The Textual app against the real backend: moto for IAM/STS/ECR, real loopback registries (vendor with
moto's ECR token as its password, an empty target), skopeo as the digest oracle."""

from __future__ import annotations

import shutil
from pathlib import Path

from textual.widgets import DataTable, Input

from tests.conftest import TAG_OLD, SeededVendor
from tests.testbed import MotoServer, Registry, skopeo_digest
from tests.tui.conftest import FIXED_NOW, wait_idle
from wizard.core.backend import RealBackend
from wizard.core.settings import Settings
from wizard.core.steps import Wizard
from wizard.tui.app import WizardApp
from wizard.tui.screens.auth import AuthScreen
from wizard.tui.screens.configure import ConfigureScreen
from wizard.tui.screens.done import DoneScreen
from wizard.tui.screens.mirror import MirrorScreen
from wizard.tui.screens.policy import PolicyScreen
from wizard.tui.screens.share import ShareScreen

ROLE = "arn:aws:iam::123456789012:role/CurrentsEcrPull"
DEMO_DATA = Path(__file__).resolve().parents[2] / "wizard" / "demo_data"


async def test_real_backend_first_run(
    aws_env: MotoServer, seeded_vendor: SeededVendor, fresh_registry: Registry, tmp_path: Path
) -> None:
    onprem = tmp_path / "on-prem"
    onprem.mkdir()
    for name in (".env.example", "VERSION"):
        shutil.copyfile(DEMO_DATA / name, onprem / name)
    shutil.copyfile(DEMO_DATA / ".env.example", onprem / ".env")
    settings = Settings(
        dir=onprem,
        source_registry=seeded_vendor.host,
        insecure_registries=(seeded_vendor.host, fresh_registry.host),
        role_arn=ROLE,
        target=f"{fresh_registry.host}/mirror",
        tag=TAG_OLD,
    ).validate()
    wizard = Wizard(settings, RealBackend(settings)).open()
    app = WizardApp(wizard, demo=False, now=lambda: FIXED_NOW)
    try:
        async with app.run_test(size=(100, 32)) as pilot:
            await pilot.press("ctrl+n")
            assert isinstance(app.screen, PolicyScreen)
            await pilot.press("ctrl+n")
            await wait_idle(pilot)
            assert isinstance(app.screen, ShareScreen)
            assert app.screen.query_one("#role-arn", Input).value == ROLE
            await pilot.press("ctrl+n")
            await wait_idle(pilot)
            assert isinstance(app.screen, AuthScreen)
            await pilot.press("ctrl+n")  # assume the role (moto), ECR token, access probe (real registry)
            await wait_idle(pilot)
            assert wizard.status("auth") == "done", wizard.state.step("auth").error
            assert wizard.state.inputs["access"] == "granted"
            await pilot.press("ctrl+n")
            assert isinstance(app.screen, MirrorScreen)
            assert app.screen.query_one("#target", Input).value == f"{fresh_registry.host}/mirror"
            await pilot.press("ctrl+n")  # start the real copy
            await wait_idle(pilot, timeout=120)
            assert wizard.status("mirror") == "done", wizard.state.step("mirror").error
            table = app.screen.query_one("#images", DataTable)
            assert [str(table.get_cell(s, "state")) for s in settings.services] == ["✔ done"] * 6
            await pilot.press("ctrl+n")
            assert isinstance(app.screen, ConfigureScreen)
            await pilot.press("ctrl+n")
            await wait_idle(pilot)
            await pilot.press("ctrl+n")
            assert isinstance(app.screen, DoneScreen)
            await wait_idle(pilot)
            assert wizard.status("verify") == "done", wizard.state.step("verify").error
    finally:
        wizard.close()
    for service in settings.services:
        got = skopeo_digest(f"docker://{fresh_registry.host}/mirror/{service}:{TAG_OLD}")
        assert got == seeded_vendor.digests[TAG_OLD][service]
    assert f"DC_CURRENTS_IMAGE_REPOSITORY={fresh_registry.host}/mirror/\n" in (onprem / ".env").read_text()
