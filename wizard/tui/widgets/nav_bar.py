"""Back / Next buttons with a status line, at the bottom of every step screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Label


class NavBar(Horizontal):
    """``status ........ [← Back] [Next →]``; the screen handles the button presses."""

    def compose(self) -> ComposeResult:
        yield Label("", id="nav-status")
        yield Button("← Back", id="back", compact=True)
        yield Button("Next →", id="next", variant="primary", compact=True)

    def set_state(self, *, back: bool, next_: bool, next_label: str = "Next →", status: str = "") -> None:
        back_button = self.query_one("#back", Button)
        next_button = self.query_one("#next", Button)
        back_button.display = back
        next_button.disabled = not next_
        next_button.label = next_label
        self.query_one("#nav-status", Label).update(status)
