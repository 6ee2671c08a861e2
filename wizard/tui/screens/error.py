"""The error modal: what failed, and what to do next."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class ErrorScreen(ModalScreen[None]):
    """Shows ``WizardError.message`` and ``.hint``; Enter or Esc closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, title: str, message: str, hint: str = "") -> None:
        super().__init__()
        self.error_title = title
        self.message = message
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(id="error-dialog", classes="dialog"):
            yield Label(Content.from_markup("[b]✖ $t[/b]", t=self.error_title), id="error-title")
            yield Static(self.message, id="error-message")
            if self.hint:
                yield Label("What to do next", classes="dialog-subtitle")
                yield Static(self.hint, id="error-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK", id="error-ok", variant="error", compact=True)

    def on_mount(self) -> None:
        self.query_one("#error-ok", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
