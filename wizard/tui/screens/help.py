"""The help screen: what the wizard does, the keys, and where things are kept."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

KEYS: tuple[tuple[str, str], ...] = (
    ("Ctrl+N", "next step, or this screen's main action (its label is on the Next button)"),
    ("Esc", "back to the previous step; closes a dialog"),
    ("F2", "the equivalent aws / docker commands of this step"),
    ("F1", "this help"),
    ("Tab", "move between fields and buttons (Shift+Tab: backwards)"),
    ("Ctrl+Q", "quit — at any time, even while mirroring"),
)
ABOUT = (
    "The wizard mirrors the six Currents on-prem images from Currents' Amazon ECR into your registry "
    "and points your .env at them. The list on the left shows each step's status; click a finished "
    "step to look at it again."
)
NOTES: tuple[tuple[str, str], ...] = (
    (
        "Quit and come back",
        "progress is saved after every step and every finished image in .currents-wizard/state.json "
        "beside your .env. Start the wizard again in the same folder to resume; copied layers are not "
        "sent again.",
    ),
    ("Upgrades", "when everything is done, enter a new tag: only mirror → configure → verify run again."),
    (
        "Secrets",
        "passwords, tokens and AWS session keys stay in memory: never in the state file, the log or on "
        "screen. After a restart they are obtained again.",
    ),
    (
        "Copying",
        "copy buttons use your terminal's clipboard (OSC 52). Where that does not work, select the text "
        "with the mouse (hold Shift in some terminals).",
    ),
)


def help_content() -> Content:
    lines = [Content(ABOUT), Content("")]
    lines += [Content.from_markup("[b $accent]$k[/]  $d", k=f"{k:<7}", d=d) for k, d in KEYS]
    lines.append(Content(""))
    for title, text in NOTES:
        lines.append(Content.from_markup("[b]$t[/b]: $x", t=title, x=text))
    return Content("\n").join(lines)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("f1", "close", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog", classes="dialog"):
            yield Label("[b]Help[/b]", classes="dialog-title")
            with VerticalScroll(id="help-body"):
                yield Static(help_content())
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close", id="help-close", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#help-close", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
