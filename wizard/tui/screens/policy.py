"""Step 1 — the IAM policy: highlighted JSON, the invalid-ARN note, save, copy, create the role."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Button, Label, Static

from wizard.core.policy import INVALID_ARN_EXPLANATION
from wizard.tui.messages import WorkResult
from wizard.tui.screens.base import WizardScreen
from wizard.tui.widgets.code_box import CodeBox

POLICY_FILE = "currents-ecr-pull-policy.json"


class PolicyScreen(WizardScreen):
    NAME = "policy"
    STEP = "policy"
    SCREEN_TITLE = "1 · IAM policy"
    RUN_LABEL = "Save policy & continue →"

    def compose_content(self) -> ComposeResult:
        yield Label("1 · IAM policy for your pull role", classes="screen-title")
        yield Static(
            "Give a role in your AWS account this policy, or create one here.",
            classes="lead",
        )
        yield CodeBox(self.wizard.policy_text(), "json", id="policy-box", title="identity policy · scroll →")
        with Horizontal(classes="buttons"):
            yield Button("Copy", id="copy", compact=True)
            yield Button("Save to file", id="save", compact=True)
            yield Button("Create the role for me…", id="create-role", compact=True)
        yield Static(id="policy-result", classes="result")
        yield Static(
            Content.from_markup("[b]Why some ARNs are missing:[/b] $t", t=INVALID_ARN_EXPLANATION),
            classes="note",
            id="arn-note",
        )

    def update_view(self, reason: str) -> None:
        inputs = self.wizard.state.inputs
        busy = self.wapp.running.get("step") == "policy" or self.wapp.is_busy("identity")
        self.query_one("#create-role", Button).disabled = busy
        if busy:
            self.set_result("#policy-result", "Working…")
        elif inputs.get("role_created") and inputs.get("role_arn"):
            text = Content.from_markup("[b]✔ Role $arn[/b] — $st", arn=inputs["role_arn"], st=inputs["role_created"])
            self.set_result("#policy-result", text, "ok")
        elif self.step_done():
            self.set_result("#policy-result", f"✔ {self.wizard.state.step('policy').summary}", "ok")
        else:
            self.set_result("#policy-result", "")

    # -- buttons ---------------------------------------------------------------------------------
    @on(Button.Pressed, "#copy")
    def _copy(self, event: Button.Pressed) -> None:
        event.stop()
        self.wapp.copy_text(self.wizard.policy_text(), "The policy")

    @on(Button.Pressed, "#save")
    def _save(self, event: Button.Pressed) -> None:
        event.stop()
        path = self.wizard.settings.dir / POLICY_FILE
        try:
            path.write_text(self.wizard.policy_text(), encoding="utf-8")
        except OSError as exc:
            self.notify(f"Cannot write {path}: {exc.strerror}", severity="error")
            return
        self.notify(str(path), title="Policy saved")
        self.set_result("#policy-result", f"Saved to {path}", "ok")

    @on(Button.Pressed, "#create-role")
    def _create_role(self, event: Button.Pressed) -> None:
        event.stop()
        if self.wapp.identity is not None:
            self._ask_role_name()
            return
        self._want_role = True
        self.wapp.start_work("identity", lambda cancel: self.wizard.backend.identity())
        self.update_view("busy")

    def _ask_role_name(self) -> None:
        from wizard.tui.screens.create_role import DEFAULT_ROLE_NAME, CreateRoleScreen

        ident = self.wapp.identity
        name = self.wizard.state.inputs.get("role_name") or DEFAULT_ROLE_NAME
        screen = CreateRoleScreen(ident.account, ident.arn, self.wizard.trust_text(ident.account), name)
        self.app.push_screen(screen, self._role_name_chosen)

    def _role_name_chosen(self, name: str | None) -> None:
        if not name:
            return
        self.wizard.set_input("role_name", name)
        self.run_own_step(advance=False)

    def work_done(self, result: WorkResult) -> None:
        if result.kind == "identity" and getattr(self, "_want_role", False):
            self._want_role = False
            if result.ok and self.app.screen is self:
                self._ask_role_name()
        elif result.kind == "step" and result.step == "policy" and result.ok:
            arn = self.wizard.state.inputs.get("role_arn")
            if self.wizard.state.inputs.get("role_created") and arn:
                self.notify(arn, title=f"Role {self.wizard.state.inputs['role_created']}")
        self.update_view("work")
