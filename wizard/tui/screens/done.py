"""Done (and step 6, verify): summary, verified digests, and the commands to start Currents."""

from __future__ import annotations

import shlex

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Button, DataTable, Label, Static

from wizard.tui.fmt import short_digest
from wizard.tui.messages import WorkResult
from wizard.tui.screens.base import WizardScreen
from wizard.tui.widgets.code_box import CodeBox

START_COMMANDS = "docker compose pull && docker compose up -d"


class DoneScreen(WizardScreen):
    NAME = "done"
    STEP = "verify"
    SCREEN_TITLE = "6 · Verify & done"
    RUN_LABEL = "Verify"
    ADVANCE_AFTER_RUN = False

    def compose_content(self) -> ComposeResult:
        yield Label("", id="done-title", classes="screen-title")
        yield Static(id="done-summary", classes="lead")
        table: DataTable[Content | str] = DataTable(id="digests", cursor_type="none", show_cursor=False)
        yield table
        yield Label("Next: start Currents with the mirrored images", classes="section", id="next-title")
        yield CodeBox("", "bash", id="next-box")
        with Horizontal(classes="buttons"):
            yield Button("Copy commands", id="copy", compact=True)
            yield Button("Verify again", id="verify", compact=True)
            yield Button("Quit", id="quit", variant="primary", compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#digests", DataTable)
        table.add_column("Image", key="image", width=16)
        table.add_column("Digest", key="digest", width=30)
        table.add_column("Verified", key="verified", width=12)
        super().on_mount()
        pending = self.wizard.status("verify") not in ("done", "skipped")
        if pending and self.wapp.can_visit("verify") and not self.wapp.is_busy("step"):
            self.run_own_step(advance=False)

    def commands_text(self) -> str:
        return f"cd {shlex.quote(str(self.wizard.settings.dir))}\n{START_COMMANDS}"

    def following(self) -> str | None:
        return None

    def next_allowed(self) -> bool:
        return not self.wapp.is_busy("step") and not self.step_done()

    def _refresh_chrome(self) -> None:
        super()._refresh_chrome()
        self.query_one("#next").display = not self.step_done()

    def update_view(self, reason: str) -> None:
        wizard = self.wizard
        rec = wizard.state.step("verify")
        title = self.query_one("#done-title", Label)
        summary = self.query_one("#done-summary", Static)
        inputs = wizard.state.inputs
        archive = wizard.engine == "archive"
        if self.wapp.running.get("step") == "verify":
            title.update("Verifying…")
            summary.update("Reading each image back from your registry and checking the .env.")
        elif rec.status == "done":
            title.update(Content.from_markup("[$text-success]✔[/] Done — Currents $t is ready", t=wizard.tag))
            summary.update(
                Content.from_markup(
                    "The six images are in [b]$target[/b] and [b]$env[/b] points at them.",
                    target=inputs.get("target", "?"),
                    env=str(wizard.settings.env_path),
                )
            )
        elif archive and wizard.status("mirror") == "done":
            title.update(Content.from_markup("[$text-success]✔[/] Done — images exported"))
            summary.update(
                f"The images for {wizard.tag} are in {inputs.get('archive', '?')}. Carry it inside, then run "
                f"`currents-wizard --from-archive {inputs.get('archive', 'PATH')} --target ...` there."
            )
        elif rec.status == "failed":
            title.update(Content.from_markup("[$text-error]✖[/] Verification failed"))
            summary.update(rec.error)
        elif not self.wapp.can_visit("verify"):
            nxt = wizard.next_step() or ""
            title.update("Not finished yet")
            summary.update(f"Finish the earlier steps first (next: {nxt}).")
        else:
            title.update("Verify")
            summary.update("Press Verify to read the images back from your registry.")
        images = wizard.state.images.get(wizard.tag, {})
        table = self.query_one("#digests", DataTable)
        table.clear()
        for service in wizard.settings.services:
            img = images.get(service)
            digest = short_digest(img.target_digest if img else "", 28)
            verified = (
                Content.from_markup("[$text-success]✔ verified[/]")
                if img and img.verified_at
                else Content.from_markup("[$text-success]✔ mirrored[/]")
                if img and img.target_digest
                else Content.from_markup("[dim]—[/]")
            )
            table.add_row(service, digest, verified, key=service)
        self.query_one("#next-box", CodeBox).set_text(self.commands_text())
        finished = rec.status == "done"
        self.query_one("#next-title").display = finished
        self.query_one("#next-box").display = finished
        self.query_one("#copy", Button).display = finished
        self.query_one("#verify", Button).disabled = self.wapp.is_busy("step") or not self.wapp.can_visit("verify")

    @on(Button.Pressed, "#copy")
    def _copy(self, event: Button.Pressed) -> None:
        event.stop()
        self.wapp.copy_text(self.commands_text(), "The commands")

    @on(Button.Pressed, "#verify")
    def _verify(self, event: Button.Pressed) -> None:
        event.stop()
        if not self.wapp.is_busy("step"):
            self.run_own_step(advance=False)

    @on(Button.Pressed, "#quit")
    async def _quit(self, event: Button.Pressed) -> None:
        event.stop()
        await self.wapp.action_quit()

    def work_done(self, result: WorkResult) -> None:
        self.update_view("work")
