"""Step 2 — share the role ARN: validated input, the ready-to-send message, and an access probe."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Button, Input, Label, Static

from wizard.core import policy
from wizard.core.backend import ProbeResult
from wizard.core.errors import WizardError
from wizard.tui.messages import WorkResult
from wizard.tui.screens.base import WizardScreen
from wizard.tui.widgets.code_box import CodeBox

SHARE_FILE = "share-with-currents.txt"
VERDICTS: dict[str, str] = {
    "granted": "✔ Access granted",
    "not_granted": "✖ Not granted yet",
    "tag_missing": "! Access works, but the tag is missing",
    "network_error": "✖ Could not reach Currents' registry",
}


class ShareScreen(WizardScreen):
    NAME = "share"
    STEP = "share"
    SCREEN_TITLE = "2 · Share role ARN"
    RUN_LABEL = "Continue →"

    def compose_content(self) -> ComposeResult:
        yield Label("2 · Share your role ARN with Currents", classes="screen-title")
        yield Static(
            "Send the role's ARN to your Currents contact; they allow it to pull. Then check access here.",
            classes="lead",
        )
        with Horizontal(classes="field-row"):
            yield Label("Role ARN", classes="field-label")
            yield Input(
                self.wizard.state.inputs.get("role_arn", ""),
                id="role-arn",
                placeholder="arn:aws:iam::123456789012:role/currents-ecr-pull",
                compact=True,
            )
        yield Static(id="arn-error", classes="field-error")
        yield CodeBox("", "text", id="share-box", title="message for your Currents contact", wrap=True)
        with Horizontal(classes="buttons"):
            yield Button("Copy message", id="copy", compact=True)
            yield Button("Save to file", id="save", compact=True)
            yield Button("Check access now", id="probe", compact=True, variant="success")
        yield Static(id="verdict", classes="verdict")

    def on_mount(self) -> None:
        super().on_mount()
        self._validate(self.query_one("#role-arn", Input).value)
        self.query_one("#role-arn", Input).focus()

    # -- validation ------------------------------------------------------------------------------
    def _validate(self, value: str) -> str | None:
        """The valid ARN or None; renders the error and the message."""
        box = self.query_one("#share-box", CodeBox)
        try:
            arn = policy.validate_role_arn(value)
        except WizardError as exc:
            self.show_field_error("#arn-error", f"{exc.message}\n{exc.hint}" if value.strip() else "")
            box.set_text("Enter your role's ARN above to see the message to send.")
            self._set_buttons(False)
            return None
        self.show_field_error("#arn-error", "")
        settings = self.wizard.settings.with_(tag=self.wizard.tag)
        box.set_text(policy.share_message(settings, arn))
        self._set_buttons(True)
        return arn

    def _set_buttons(self, valid: bool) -> None:
        for bid in ("#copy", "#save", "#probe"):
            self.query_one(bid, Button).disabled = not valid
        if self.wapp.is_busy("probe"):
            self.query_one("#probe", Button).disabled = True

    @on(Input.Changed, "#role-arn")
    def _changed(self, event: Input.Changed) -> None:
        self._validate(event.value)
        self.refresh_bindings()

    @on(Input.Submitted, "#role-arn")
    def _submitted(self, event: Input.Submitted) -> None:
        self.action_next()

    def _store_arn(self) -> str | None:
        arn = self._validate(self.query_one("#role-arn", Input).value)
        if arn is None:
            return None
        if arn != self.wizard.state.inputs.get("role_arn"):
            self.wizard.set_input("role_arn", arn)
            self.refresh_view("state")
        return arn

    def prepare_run(self) -> bool:
        if self._store_arn() is None:
            self.query_one("#role-arn", Input).focus()
            self.notify("Enter a valid role ARN first.", severity="warning")
            return False
        return True

    def go_next(self) -> None:
        # A changed ARN means the message must be produced again.
        arn = self._validate(self.query_one("#role-arn", Input).value)
        if self.step_done() and arn is not None and arn != self.wizard.state.inputs.get("role_arn"):
            self.wizard.mark("share", "pending")
        super().go_next()

    # -- buttons ---------------------------------------------------------------------------------
    @on(Button.Pressed, "#copy")
    def _copy(self, event: Button.Pressed) -> None:
        event.stop()
        if self._store_arn():
            self.wapp.copy_text(self.query_one("#share-box", CodeBox).text, "The message")

    @on(Button.Pressed, "#save")
    def _save(self, event: Button.Pressed) -> None:
        event.stop()
        if not self._store_arn():
            return
        path = self.wizard.settings.dir / SHARE_FILE
        try:
            path.write_text(self.query_one("#share-box", CodeBox).text, encoding="utf-8")
        except OSError as exc:
            self.notify(f"Cannot write {path}: {exc.strerror}", severity="error")
            return
        self.notify(str(path), title="Message saved")

    @on(Button.Pressed, "#probe")
    def _probe(self, event: Button.Pressed) -> None:
        event.stop()
        if not self._store_arn():
            return
        if self.wapp.start_work("probe", lambda cancel: self.wizard.probe()):
            verdict = self.query_one("#verdict", Static)
            verdict.update("Checking access: assuming your role and asking Currents' registry…")
            verdict.set_classes("verdict")
            self._set_buttons(True)

    def work_done(self, result: WorkResult) -> None:
        if result.kind == "probe":
            self._set_buttons(True)
            if result.ok and isinstance(result.value, ProbeResult):
                self.show_verdict(result.value)
            else:
                self.query_one("#verdict", Static).update("")

    def show_verdict(self, probe: ProbeResult) -> None:
        verdict = self.query_one("#verdict", Static)
        title = VERDICTS.get(probe.verdict, probe.verdict)
        text = Content.from_markup("[b]$title[/b] — $msg", title=title, msg=probe.message)
        if probe.hint:
            text = text + Content("\n") + Content(probe.hint)
        verdict.update(text)
        verdict.set_classes(f"verdict -{probe.verdict}")

    def update_view(self, reason: str) -> None:
        if reason == "mount" and self.wizard.last_probe is not None:
            self.show_verdict(self.wizard.last_probe)
