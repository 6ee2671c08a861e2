"""Modal: the equivalent shell commands (aws / docker / skopeo) of the current step, secrets redacted."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from wizard.core import commands as cmd
from wizard.core.errors import WizardError
from wizard.core.settings import parse_target
from wizard.core.steps import TITLES
from wizard.tui.widgets.code_box import CodeBox


def step_commands(wizard: Any, step: str | None) -> list[cmd.Command]:
    """The commands that do ``step`` by hand (all steps when ``step`` is None)."""
    settings = wizard.settings
    inputs = wizard.state.inputs
    role_arn = inputs.get("role_arn") or None
    tag = wizard.tag
    engine = wizard.engine
    tool = "docker" if engine == "docker" else "skopeo"
    target: Any = None
    if inputs.get("target"):
        try:
            target = parse_target(inputs["target"])
        except WizardError:
            target = None
    if step == "policy":
        account = None
        if role_arn:
            account = role_arn.split(":")[4]
        return cmd.create_role_commands(settings, inputs.get("role_name") or cmd.DEFAULT_ROLE_NAME, account)
    if step == "share":
        return cmd.share_commands(settings.with_(tag=tag), role_arn)
    if step == "auth":
        return cmd.assume_role_commands(settings, role_arn) + cmd.ecr_login_commands(settings, tool)
    if step == "mirror":
        out = cmd.assume_role_commands(settings, role_arn) + cmd.ecr_login_commands(settings, tool)
        out += cmd.target_login_commands(settings, target, tool)
        out += cmd.create_target_repos_commands(settings, target)
        mirror = cmd.mirror_docker_commands if engine == "docker" else cmd.mirror_skopeo_commands
        return out + mirror(settings, target, tag)
    if step == "configure":
        repo = target.repository_prefix if target else cmd.PLACEHOLDER_TARGET + "/"
        return cmd.env_commands(repo, tag, settings.env_path)
    if step == "verify":
        return cmd.verify_commands(settings.env_path)
    return cmd.all_commands(
        settings,
        role_arn=role_arn,
        role_name=inputs.get("role_name") or cmd.DEFAULT_ROLE_NAME,
        target=target,
        tag=tag,
        engine=engine,
    )


class CommandsScreen(ModalScreen[None]):
    """Shows the current step's commands; "All steps" switches to the whole flow."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("f2", "close", "Close", show=False),
    ]

    def __init__(self, step: str | None) -> None:
        super().__init__()
        self.step = step
        self.showing: str | None = step

    def compose(self) -> ComposeResult:
        with Vertical(id="commands-dialog", classes="dialog"):
            yield Label("", id="commands-title", classes="dialog-title")
            yield Static(
                "Run these yourself instead, or keep them for a change request. Secrets are shown as "
                "placeholders or read from variables; nothing here contains one.",
                classes="muted",
            )
            yield CodeBox("", "bash", id="commands-box")
            with Horizontal(classes="dialog-buttons"):
                yield Button("All steps", id="toggle", compact=True)
                yield Button("Copy", id="copy", compact=True)
                yield Button("Close", id="close", variant="primary", compact=True)

    def on_mount(self) -> None:
        self._show()
        self.query_one("#close", Button).focus()

    def _text(self) -> str:
        wizard = self.app.wizard  # type: ignore[attr-defined]
        try:
            return cmd.render(step_commands(wizard, self.showing))
        except WizardError as exc:
            return f"# {exc.message}\n# {exc.hint}\n"

    def _show(self) -> None:
        what = TITLES.get(self.showing or "", "every step")
        self.query_one("#commands-title", Label).update(f"Equivalent commands — {what}")
        self.query_one("#commands-box", CodeBox).set_text(self._text().rstrip("\n"))
        toggle = self.query_one("#toggle", Button)
        toggle.label = "This step" if self.showing is None else "All steps"
        toggle.display = self.step is not None

    @on(Button.Pressed, "#toggle")
    def _toggle(self, event: Button.Pressed) -> None:
        event.stop()
        self.showing = self.step if self.showing is None else None
        self._show()

    @on(Button.Pressed, "#copy")
    def _copy(self, event: Button.Pressed) -> None:
        event.stop()
        self.app.copy_text(self._text(), "The commands")  # type: ignore[attr-defined]

    @on(Button.Pressed, "#close")
    def _close(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
