"""Modal: before creating the IAM role, show the trust policy and ask for the role's name."""

from __future__ import annotations

import re
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from wizard.tui.widgets.code_box import CodeBox

DEFAULT_ROLE_NAME = "currents-ecr-pull"
_ROLE_NAME_RE = re.compile(r"^[\w+=,.@-]{1,64}$", re.ASCII)


def role_name_problem(name: str) -> str:
    """Why ``name`` is not a valid IAM role name, or ``""``."""
    if not name:
        return "enter a role name"
    if len(name) > 64:
        return f"{len(name)} characters; IAM allows at most 64"
    if not _ROLE_NAME_RE.match(name):
        return "IAM role names use letters, digits and +=,.@_- only"
    return ""


class CreateRoleScreen(ModalScreen[str | None]):
    """Returns the chosen role name, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, account: str, caller_arn: str, trust_text: str, default_name: str = DEFAULT_ROLE_NAME) -> None:
        super().__init__()
        self.account = account
        self.caller_arn = caller_arn
        self.trust_text = trust_text
        self.default_name = default_name

    def compose(self) -> ComposeResult:
        with Vertical(id="create-role-dialog", classes="dialog"):
            yield Label("[b]Create the pull role in your AWS account[/b]", classes="dialog-title")
            yield Static(
                Content.from_markup(
                    "Signed in as [b]$arn[/b].\nThe role gets the policy shown before, and this trust policy "
                    "(who may assume it — principals in your account $acct):",
                    arn=self.caller_arn,
                    acct=self.account,
                )
            )
            yield CodeBox(self.trust_text, "json", id="trust-box", title="trust policy")
            with Horizontal(classes="field-row"):
                yield Label("Role name", classes="field-label")
                yield Input(self.default_name, id="role-name", compact=True)
            yield Static(id="role-name-error", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Create role", id="create", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#role-name", Input).focus()

    @on(Input.Changed, "#role-name")
    def _changed(self, event: Input.Changed) -> None:
        problem = role_name_problem(event.value.strip())
        error = self.query_one("#role-name-error", Static)
        error.update(problem)
        error.display = bool(problem)

    @on(Input.Submitted, "#role-name")
    @on(Button.Pressed, "#create")
    def _create(self, event: Input.Submitted | Button.Pressed) -> None:
        event.stop()
        name = self.query_one("#role-name", Input).value.strip()
        problem = role_name_problem(name)
        if problem:
            error = self.query_one("#role-name-error", Static)
            error.update(problem)
            error.display = True
            return
        self.dismiss(name)

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
