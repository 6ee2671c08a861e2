"""Step 5 — configure: the .env diff, then write it (backup shown) and check the compose file."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Label, Static

from wizard.core.errors import WizardError
from wizard.core.steps import compose_check
from wizard.tui.messages import WorkResult
from wizard.tui.screens.base import WizardScreen
from wizard.tui.widgets.code_box import CodeBox


class ConfigureScreen(WizardScreen):
    NAME = "configure"
    STEP = "configure"
    SCREEN_TITLE = "5 · Configure .env"
    RUN_LABEL = "Write .env"
    ADVANCE_AFTER_RUN = False

    def compose_content(self) -> ComposeResult:
        yield Label("5 · Point your .env at the mirror", classes="screen-title")
        yield Static(
            "Two keys change: DC_CURRENTS_IMAGE_REPOSITORY and DC_CURRENTS_IMAGE_TAG. The rest of the "
            "file stays byte for byte, and a backup is written first.",
            classes="lead",
        )
        yield CodeBox("", "diff", id="diff-box", title=".env change")
        yield Static(id="configure-result", classes="result")
        yield Static(id="compose-result", classes="result")

    def on_mount(self) -> None:
        super().on_mount()
        self._render_diff()
        if self.step_done():
            self._compose_check()

    def _render_diff(self) -> None:
        box = self.query_one("#diff-box", CodeBox)
        if self.wizard.status("configure") == "skipped":
            box.set_text(self.wizard.state.step("configure").summary or "skipped", "text")
            return
        try:
            change = self.wizard.env_change()
        except WizardError as exc:
            box.set_text(f"{exc.message}\n{exc.hint}", "text")
            return
        if change.changed:
            box.set_text(change.diff().rstrip("\n"), "diff")
        else:
            box.set_text(
                f"{change.path} already has\n  DC_CURRENTS_IMAGE_REPOSITORY={change.repository}\n"
                f"  DC_CURRENTS_IMAGE_TAG={change.tag}\nNothing to change.",
                "text",
            )

    def update_view(self, reason: str) -> None:
        rec = self.wizard.state.step("configure")
        if self.wapp.running.get("step") == "configure":
            self.set_result("#configure-result", "Writing…")
        elif rec.status == "done":
            backup = self.wizard.state.inputs.get("env_backup", "")
            text = Content.from_markup("[b]✔ $s[/b]", s=rec.summary)
            if backup:
                text = text + Content.from_markup("\nBackup: $b", b=backup)
            warnings = [i.message for i in self.wapp.infos if i.step == "configure" and i.level == "warning"]
            if warnings:
                text = text + Content.from_markup("\n[$text-warning]! $w[/]", w=warnings[-1])
            self.set_result("#configure-result", text, "ok")
        elif rec.status == "failed":
            self.set_result("#configure-result", f"✖ {rec.error}", "bad")
        else:
            self.set_result("#configure-result", "Nothing is written until you press Write .env (Ctrl+N).")
        compose = self.query_one("#compose-result", Static)
        if self.wapp.is_busy("compose"):
            compose.update("Checking the compose file with docker-compose…")
        elif self.wapp.compose_result is not None:
            compose.update(
                Content.from_markup("[b]Compose check[/b]: $r", r=self._compose_summary(self.wapp.compose_result))
                if self.wapp.compose_result
                else Content.from_markup("[dim]Compose check skipped: no docker-compose or no compose file here.[/]")
            )
        else:
            compose.update("")

    def _compose_summary(self, result: str) -> str:
        """``compose resolves: a, b, ...`` → one line when every image is the mirrored one."""
        prefix = "compose resolves: "
        if not result.startswith(prefix):
            return result
        images = [i.strip() for i in result[len(prefix) :].split(",") if i.strip()]
        try:
            repo = self.wizard.target().repository_prefix
        except WizardError:
            return result
        tag = self.wizard.tag
        if images and all(i.startswith(repo) and i.endswith(f":{tag}") for i in images):
            return f"✔ all {len(images)} images resolve to {repo}…:{tag}"
        return result

    def _compose_check(self) -> None:
        settings = self.wizard.settings
        if self.wapp.compose_result is None and not self.wapp.is_busy("compose"):
            self.wapp.start_work("compose", lambda cancel: compose_check(settings.dir, settings.env_path), quiet=True)

    def work_done(self, result: WorkResult) -> None:
        if result.kind == "compose":
            self.wapp.compose_result = str(result.value or "") if result.ok else ""
        elif result.kind == "step" and result.step == "configure" and result.ok:
            self.wapp.compose_result = None
            self.query_one("#diff-box", CodeBox).border_title = ".env change — written"
            self._compose_check()
        self.update_view("work")
